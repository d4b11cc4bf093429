/* channel: channel names and the options that apply to them. A channel "ns:rest" belongs to namespace
 * "ns" (after stripping a leading private prefix "$"); a channel without ':' uses the top-level options.
 * Permission checks follow PROTOCOL.md §5.4 for what this build supports (anonymous and insecure
 * clients; tokens come later). */
#ifndef CHANNEL_H
#define CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define CHANNEL_MAX_LENGTH 255

/* Returns the options of CHANNEL's namespace, or NULL when the namespace is unknown. */
const struct channel_options *channel_options_for(const struct config *cfg, const char *channel);

/* True for private channels ("$..."), which need a subscription token. */
bool channel_is_private(const char *channel);

/* May a client of USER ("" = anonymous) subscribe to a channel with OPTS? */
bool channel_can_subscribe(const struct config *cfg, const struct channel_options *opts, const char *user);

/* May a client of USER publish to a channel with OPTS, being subscribed to it or not? */
bool channel_can_publish(const struct config *cfg, const struct channel_options *opts, const char *user,
                         bool subscribed);

#endif
