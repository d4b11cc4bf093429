/* channel_map: a map namespace's effective options (see channel_map.h). The defaults follow
 * Centrifugo's: a stream of 100 changes kept for a minute, an epoch kept ten stream TTLs (never less
 * than a key's life, so that keys never outlive the epoch their offsets belong to) or, for persistent
 * maps, for good. */
#include "channel_map.h"

#include <string.h>

enum {
  DEFAULT_STREAM_SIZE = 100,
  DEFAULT_STREAM_TTL_MS = 60 * 1000,
  META_TTL_STREAM_TTLS = 10,
};

/* "Forever" for a persistent map's epoch: about 292 million years. */
#define FOREVER_MS (UINT64_MAX / 2)

/* The subscription types, by SubscribeRequest.type (Centrifugo 6.8's numbers). */
static const char *const types[] = {"stream", "map", "map_clients", "map_users"};

int channel_subscription_type(const struct channel_options *opts) {
  for (int i = 0; i < (int)(sizeof types / sizeof types[0]); i++)
    if (strcmp(opts->subscription_type, types[i]) == 0) return i;
  return 0;
}

bool channel_is_map(const struct channel_options *opts) { return channel_subscription_type(opts) != 0; }

void channel_map_limits(const struct channel_options *opts, struct channel_map_limits *out) {
  bool persistent = strcmp(opts->map_mode, "persistent") == 0;
  *out = (struct channel_map_limits){
      .stream = persistent || strcmp(opts->map_mode, "recoverable") == 0,
      .key_ttl_ms = persistent ? 0 : (uint64_t)opts->map_key_ttl_ms,
      .page_default = (size_t)opts->map_default_page_size,
      .page_min = (size_t)opts->map_min_page_size,
      .page_max = (size_t)opts->map_max_page_size,
      .catch_up_timeout_ms = (uint64_t)opts->map_subscribe_catch_up_timeout_ms,
  };
  out->live_limit = opts->map_live_transition_max_publication_limit > 0
                        ? (size_t)opts->map_live_transition_max_publication_limit
                        : out->page_max;
  if (!out->stream) return;
  out->stream_size = opts->map_stream_size > 0 ? (size_t)opts->map_stream_size : DEFAULT_STREAM_SIZE;
  out->stream_ttl_ms = opts->map_stream_ttl_ms > 0 ? (uint64_t)opts->map_stream_ttl_ms : DEFAULT_STREAM_TTL_MS;
  if (opts->map_meta_ttl_ms > 0) {
    out->meta_ttl_ms = (uint64_t)opts->map_meta_ttl_ms;
  } else if (persistent) {
    out->meta_ttl_ms = FOREVER_MS;
  } else {
    out->meta_ttl_ms = out->stream_ttl_ms * META_TTL_STREAM_TTLS;
    if (out->meta_ttl_ms < out->key_ttl_ms) out->meta_ttl_ms = out->key_ttl_ms;
  }
  if (out->meta_ttl_ms < out->key_ttl_ms) out->meta_ttl_ms = out->key_ttl_ms; /* see the top of this file */
}

size_t channel_map_page_size(const struct channel_map_limits *l, int64_t asked) {
  size_t n = asked > 0 ? (size_t)asked : l->page_default;
  if (n < l->page_min) n = l->page_min;
  if (n > l->page_max) n = l->page_max;
  return n;
}
