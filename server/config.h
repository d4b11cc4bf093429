/* config: streamd's configuration, read from a libconfig file into a validated struct config.
 * Every key lives in ONE table in config.c (name, type, default, bounds, reloadable, where it is stored):
 * that table drives parsing, validation, defaults, `streamd -t` and the tests that check etc/streamd.conf
 * and man/streamd.conf.5 against it. Key names follow Centrifugo v5's flat names (INTERFACE.md).
 * Errors name the file and line and the key. A struct config is immutable once loaded; a reload builds
 * a new one. */
#ifndef CONFIG_H
#define CONFIG_H

#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth_keys;

/* Channel options: at top level (channels without a namespace) and per namespace. */
struct channel_options {
  bool presence;
  bool join_leave;
  bool force_push_join_leave;
  int64_t history_size;
  int64_t history_ttl_ms;
  int64_t history_meta_ttl_ms; /* 0 = global_history_meta_ttl */
  bool force_positioning;
  bool allow_positioning;
  bool force_recovery;
  bool allow_recovery;
  bool allow_subscribe_for_client;
  bool allow_subscribe_for_anonymous;
  bool allow_publish_for_subscriber;
  bool allow_publish_for_client;
  bool allow_publish_for_anonymous;
  bool allow_presence_for_subscriber;
  bool allow_presence_for_client;
  bool allow_presence_for_anonymous;
  bool allow_history_for_subscriber;
  bool allow_history_for_client;
  bool allow_history_for_anonymous;
  bool allow_user_limited_channels;
  char *channel_regex; /* "" = no restriction */
  /* channel_regex compiled once when the configuration is loaded (REG_EXTENDED | REG_NOSUB), NULL for
   * ""; owned, freed with the configuration. regexec on it is safe from any thread at once. */
  regex_t *channel_regex_compiled;
  char *publication_data_format; /* "json": client publications must be JSON; "binary": any bytes */
  bool proxy_subscribe;          /* ask proxy_subscribe_endpoint before a client subscribes */
  bool proxy_publish;            /* ask proxy_publish_endpoint before a client's publication */
  bool proxy_sub_refresh;        /* ask proxy_sub_refresh_endpoint when a subscription expires */
  char **allowed_delta_types;    /* delta compressions subscribers may negotiate: none, or "fossil" */
  size_t allowed_delta_types_count;
  bool delta_publish;            /* every publication is sent as a delta where negotiated */
  /* Map subscriptions (channel_map.h gives the effective values): */
  char *subscription_type; /* "stream", "map", "map_clients" or "map_users" */
  char *map_mode;          /* "ephemeral", "recoverable", "persistent" ("" outside map namespaces) */
  char *map_clients_presence_channel_prefix; /* "ns:" of a map_clients namespace, or "" */
  char *map_users_presence_channel_prefix;   /* "ns:" of a map_users namespace, or "" */
  int64_t map_key_ttl_ms;  /* 0 = keys never expire (persistent) */
  int64_t map_stream_size, map_stream_ttl_ms, map_meta_ttl_ms; /* 0 = the mode's default */
  bool map_allow_publish_for_subscriber, map_allow_publish_for_client, map_allow_publish_for_anonymous;
  bool map_allow_remove_for_subscriber, map_allow_remove_for_client, map_allow_remove_for_anonymous;
  char *map_client_key; /* "", "client_id" or "user_id" */
  bool map_remove_client_on_unsubscribe; /* a subscription's end removes the key of its client id */
  int64_t map_default_page_size, map_min_page_size, map_max_page_size;
  int64_t map_live_transition_max_publication_limit; /* 0 = map_max_page_size */
  int64_t map_subscribe_catch_up_timeout_ms;
};

struct namespace_config {
  char *name;
  struct channel_options options;
};

struct config {
  char *source_path; /* file it was loaded from, NULL for built-in defaults */

  /* Lifetime: 0 for a configuration its holder owns outright (main's boot configuration, a test's);
   * once config_share()d, the number of references (config_ref/config_unref; the last frees it). */
  atomic_long refs;
  struct auth_keys *auth; /* token keys built from this configuration, owned (NULL until set) */

  char *address;
  int64_t port;
  char *name; /* default: the host name */

  bool http_stream;
  char *http_stream_handler_prefix;
  int64_t http_stream_max_request_body_size;
  int64_t http_stream_write_timeout_ms;
  bool sse;
  char *sse_handler_prefix;
  int64_t sse_max_request_body_size;
  int64_t sse_write_timeout_ms;
  char *emulation_handler_prefix;
  int64_t emulation_max_request_body_size;
  bool websocket_disable;
  char *websocket_handler_prefix;
  int64_t websocket_message_size_limit;
  int64_t websocket_write_timeout_ms;
  bool uni_http_stream; /* unidirectional transports (uni.c) */
  char *uni_http_stream_handler_prefix;
  int64_t uni_http_stream_max_request_body_size;
  bool uni_sse;
  char *uni_sse_handler_prefix;
  int64_t uni_sse_max_request_body_size;
  bool uni_websocket;
  char *uni_websocket_handler_prefix;
  int64_t uni_websocket_message_size_limit;

  char **allowed_origins;
  size_t allowed_origins_count;

  char **allowed_hosts; /* Host header patterns; none = the listen address, localhost and loopback */
  size_t allowed_hosts_count;

  bool client_insecure;
  bool allow_anonymous_connect_without_token;
  char *token_hmac_secret_key;
  char *token_rsa_public_key;
  char *token_ecdsa_public_key;
  char *token_jwks_public_endpoint;
  char *token_audience;
  char *token_issuer;

  int64_t ping_interval_ms;
  int64_t pong_timeout_ms;
  int64_t client_stale_close_delay_ms;
  int64_t client_expired_close_delay_ms;
  int64_t client_channel_limit;
  int64_t client_user_connection_limit;
  int64_t client_connection_limit;
  int64_t client_queue_max_size;
  int64_t client_close_timeout_ms;
  int64_t client_history_max_publication_limit;
  int64_t client_recovery_max_publication_limit;

  int64_t global_history_meta_ttl_ms; /* 0 = streams are never forgotten */
  int64_t history_max_streams;        /* 0 = no cap */

  char *api_key;
  bool api_insecure;
  char *api_handler_prefix;

  bool health;
  bool prometheus;

  char *admin_socket;
  char *admin_socket_mode;

  char *engine;
  char **redis_address; /* one or more: shards */
  size_t redis_address_count;
  char *redis_prefix;
  char *redis_user;
  char *redis_password;
  int64_t redis_db;
  int64_t redis_connect_timeout_ms;
  int64_t redis_io_timeout_ms;
  int64_t global_presence_ttl_ms;
  char **redis_sentinel_address;
  size_t redis_sentinel_address_count;
  char *redis_sentinel_master_name;
  char *redis_sentinel_password;

  /* Event proxies (proxy_calls.c): "" = that proxy is off. */
  char *proxy_connect_endpoint;
  int64_t proxy_connect_timeout_ms;
  char *proxy_refresh_endpoint;
  int64_t proxy_refresh_timeout_ms;
  char *proxy_subscribe_endpoint;
  int64_t proxy_subscribe_timeout_ms;
  char *proxy_publish_endpoint;
  int64_t proxy_publish_timeout_ms;
  char *proxy_sub_refresh_endpoint;
  int64_t proxy_sub_refresh_timeout_ms;
  char *proxy_rpc_endpoint;
  int64_t proxy_rpc_timeout_ms;
  char **proxy_http_headers; /* client headers forwarded (names, any case) */
  size_t proxy_http_headers_count;
  char **proxy_static_http_headers; /* "Name: value" lines added to every proxy request */
  size_t proxy_static_http_headers_count;
  bool proxy_include_connection_meta;
  bool proxy_binary_encoding;

  char *log_level;

  struct channel_options channel_defaults; /* options at top level */
  struct namespace_config *namespaces;
  size_t namespaces_count;
};

/* Fills CFG with the built-in defaults (every string allocated, so config_cleanup always applies).
 * Returns 0 or -1 when out of memory. */
int config_defaults(struct config *cfg);

/* Loads PATH over the defaults into CFG. When PATH is NULL, loads the default path
 * (/etc/streamd/streamd.conf) if it exists, else keeps the defaults. CFG need not be initialized: this
 * fills the defaults itself and does not free what CFG held (do not call config_defaults first).
 * On error returns -1, leaves CFG cleaned up, and writes "FILE:LINE: message naming the key" into ERR
 * (ERRLEN bytes).
 * Not thread-safe with respect to CFG; call before sharing it. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* For a reload: puts the RUNNING values of every non-reloadable key into FRESH (ports, prefixes and the
 * like only change on restart) and stores the names of those whose value the file changed into CHANGED
 * (at most MAX). Returns how many changed. */
size_t config_keep_static(struct config *fresh, const struct config *running, const char **changed,
                          size_t max);

/* Frees everything CFG owns (its auth keys too). NULL-safe fields; CFG itself is not freed. */
void config_cleanup(struct config *cfg);

/* Hands CFG (malloc'd and loaded) over to reference counting with one reference for the caller; the
 * last config_unref cleans it up and frees it. Returns CFG. Call before sharing it. */
struct config *config_share(struct config *cfg);

/* A new reference to CFG (an atomic increment; nothing for a configuration that is not shared).
 * Returns CFG. Any thread. */
const struct config *config_ref(const struct config *cfg);

/* Drops a reference; the last one frees a shared configuration. NULL-safe; any thread. Everything
 * read from CFG (channel options, strings, keys) is valid until the caller's reference is dropped. */
void config_unref(const struct config *cfg);

/* Finds the namespace NAME (length LEN, not NUL-terminated) or returns NULL. */
const struct namespace_config *config_find_namespace(const struct config *cfg, const char *name, size_t len);

/* The description of one configuration key, exported for `-t`, the docs tests and streamctl. */
enum config_type {
  CONFIG_BOOL,
  CONFIG_INT,
  CONFIG_STRING,
  CONFIG_DURATION,
  CONFIG_STRING_LIST,
  CONFIG_STRINGS, /* a string list that may also be written as one string */
  CONFIG_REGEX,   /* a string holding a POSIX extended regex, stored with its compiled form */
  CONFIG_NAMESPACES
};

struct config_key {
  const char *name;
  enum config_type type;
  const char *default_text; /* the default as written in a config file, e.g. "25s", "false", "65536" */
  int64_t min, max;         /* bounds for ints and durations (ms) */
  bool reloadable;
  bool channel_option; /* also allowed inside a namespace group */
  const char *help;    /* one line for docs */
};

/* The table of every key, in documentation order; *count receives its length. */
const struct config_key *config_keys(size_t *count);

#endif
