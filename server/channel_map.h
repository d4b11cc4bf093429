/* channel_map: what a map namespace's options mean once their defaults are resolved (Centrifugo's map
 * subscriptions): whether it keeps a stream of changes, how long keys and changes live, and the page
 * sizes of a snapshot. One place for these rules, read by the engine, the protocol and the server API.
 * Pure functions over the options; any thread. */
#ifndef CHANNEL_MAP_H
#define CHANNEL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The longest map key, in bytes (longer ones: error 107). */
#define CHANNEL_MAP_KEY_MAX 1024

/* The effective limits of a map namespace. */
struct channel_map_limits {
  bool stream;            /* keeps a stream of changes (recoverable, persistent): offsets, recovery */
  size_t stream_size;     /* changes kept (stream only) */
  uint64_t stream_ttl_ms; /* changes dropped this long after the last one (stream only) */
  uint64_t meta_ttl_ms;   /* the epoch forgotten this long after the last change (stream only) */
  uint64_t key_ttl_ms;    /* 0 = keys never expire */
  size_t page_default, page_min, page_max;
  size_t live_limit;                /* most changes caught up when going live */
  uint64_t catch_up_timeout_ms;     /* 0 = none */
};

/* OPTS's subscription type as SubscribeRequest.type numbers it: 0 stream, 1 map, 2 map_clients (a map
 * of the channel's subscribers by client id), 3 map_users (by user id). */
int channel_subscription_type(const struct channel_options *opts);

/* Is OPTS a map namespace of any of the three kinds? */
bool channel_is_map(const struct channel_options *opts);

/* Fills *OUT with OPTS's effective map limits. */
void channel_map_limits(const struct channel_options *opts, struct channel_map_limits *out);

/* The page size for a client that asked for ASKED (<= 0: none): the default, clamped to [min, max]. */
size_t channel_map_page_size(const struct channel_map_limits *l, int64_t asked);

#endif
