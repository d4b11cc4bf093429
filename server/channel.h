/* channel: channel names and the options that apply to them. A channel "ns:rest" belongs to namespace
 * "ns" (after stripping a leading private prefix "$"); a channel without ':' uses the top-level options.
 * The permission checks follow PROTOCOL.md §5.4: what a connected client (anonymous when its user is
 * "") may do on a channel without a subscription token, in insecure mode everything. */
#ifndef CHANNEL_H
#define CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CHANNEL_MAX_LENGTH 255

/* Is CHANNEL (NUL-terminated) text: well-formed UTF-8 without control characters (C0, DEL, C1), as
 * sd_text_valid defines it? Such names could break JSON output
 * and inject into log lines and terminals; protocol_check_channel refuses them. */
bool channel_name_valid(const char *channel);

/* Returns the options of CHANNEL's namespace, or NULL when the namespace is unknown or the channel
 * does not match the namespace's channel_regex. */
const struct channel_options *channel_options_for(const struct config *cfg, const char *channel);

/* True for private channels ("$..."), which need a subscription token. */
bool channel_is_private(const char *channel);

/* True when CHANNEL is user-limited ("name#u1,u2") for OPTS and USER is one of the listed users. */
bool channel_user_allowed(const struct channel_options *opts, const char *channel, const char *user);

/* May a client of USER subscribe to a channel with OPTS (no token)? */
bool channel_can_subscribe(const struct config *cfg, const struct channel_options *opts, const char *channel,
                           const char *user);

/* May a client of USER publish to a channel with OPTS, being subscribed to it or not? */
bool channel_can_publish(const struct config *cfg, const struct channel_options *opts, const char *user,
                         bool subscribed);

/* May a client of USER ask for presence / history of a channel with OPTS? */
/* May USER set (REMOVING: remove) keys of a map channel (the map_allow_publish_* / map_allow_remove_*
 * options; client_insecure allows everything)? */
bool channel_can_map_write(const struct config *cfg, const struct channel_options *opts, const char *user,
                           bool subscribed, bool removing);

bool channel_can_presence(const struct config *cfg, const struct channel_options *opts, const char *user,
                          bool subscribed);
bool channel_can_history(const struct config *cfg, const struct channel_options *opts, const char *user,
                         bool subscribed);

/* May a client publish the LEN bytes at DATA to a channel with OPTS? With publication_data_format
 * "json" (the default) only one JSON value is allowed, what every JSON subscriber can receive; "binary"
 * allows any bytes. The server API is trusted and not checked. Pure: any thread. */
bool channel_data_allowed(const struct channel_options *opts, const uint8_t *data, size_t len);

/* True when subscribers of a channel with OPTS may negotiate delta compression TYPE ("fossil"). */
bool channel_delta_allowed(const struct channel_options *opts, const char *type);

/* True when the channel keeps history (history_size and history_ttl both set). */
bool channel_has_history(const struct channel_options *opts);

#endif
