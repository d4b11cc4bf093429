/* config: libconfig file ⇒ validated struct config, driven by ONE table of keys. CONFIG_KEYS below lists
 * every key once (name, type, default as written in a file, bounds, reloadable, where it is stored,
 * extra string check, help); it expands into the exported table keys[] and the parallel slots[] that
 * say where each value lives (offsetof into struct config, or into struct channel_options for channel
 * options). Parsing, defaults, validation and cleanup walk these two arrays through a per-type ops
 * table, so adding a key is one line here plus one field in config.h. Invariants: every string field
 * of a loaded or defaulted config is heap-allocated (never NULL, never a literal); a failed load leaves
 * nothing allocated; every error names FILE:LINE and the key. */
#include "config.h"

#include "channel_map.h"
#include "redis_conn.h"

#include <errno.h>
#include <libconfig.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "sd_duration.h"

#define CONFIG_DEFAULT_PATH "/etc/streamd/streamd.conf"

#define MIB (1024LL * 1024)
#define SEC 1000LL
#define HOUR (3600 * SEC)
#define I32 2147483647LL

/* ---- string checks: each fills WHY and returns -1 when VALUE is not acceptable ---- */

typedef int (*check_fn)(const char *value, char *why, size_t len);

static int check_nonempty(const char *value, char *why, size_t len) {
  if (*value) return 0;
  snprintf(why, len, "must not be empty");
  return -1;
}

static int check_prefix(const char *value, char *why, size_t len) {
  if (value[0] == '/') return 0;
  snprintf(why, len, "\"%s\" must start with '/'", value);
  return -1;
}

static int check_log_level(const char *value, char *why, size_t len) {
  enum log_level level;
  if (log_level_parse(value, &level) == 0) return 0;
  snprintf(why, len, "\"%s\" is not one of debug, info, warn, error", value);
  return -1;
}

static int check_engine(const char *value, char *why, size_t len) {
  if (strcmp(value, "memory") == 0 || strcmp(value, "redis") == 0) return 0;
  snprintf(why, len, "\"%s\" is not one of memory, redis", value);
  return -1;
}

static int check_redis_address(const char *value, char *why, size_t len) {
  struct redis_addr a;
  return redis_addr_parse(value, &a, why, len);
}

/* Checks VALUE against the NULL-terminated list ALLOWED; WHY names them all. */
static int check_one_of(const char *value, const char *const *allowed, char *why, size_t len) {
  for (size_t i = 0; allowed[i]; i++)
    if (strcmp(value, allowed[i]) == 0) return 0;
  int n = snprintf(why, len, "\"%s\" is not one of", value);
  for (size_t i = 0; allowed[i] && n > 0 && (size_t)n < len; i++)
    n += snprintf(why + n, len - (size_t)n, "%s \"%s\"", i ? "," : "", allowed[i]);
  return -1;
}

static int check_subscription_type(const char *value, char *why, size_t len) {
  static const char *const types[] = {"stream", "map", "map_clients", "map_users", NULL};
  return check_one_of(value, types, why, len);
}

static int check_map_mode(const char *value, char *why, size_t len) {
  static const char *const modes[] = {"", "ephemeral", "recoverable", "persistent", NULL};
  return check_one_of(value, modes, why, len);
}

static int check_map_client_key(const char *value, char *why, size_t len) {
  static const char *const keys[] = {"", "client_id", "user_id", NULL};
  return check_one_of(value, keys, why, len);
}

static int check_data_format(const char *value, char *why, size_t len) {
  if (strcmp(value, "json") == 0 || strcmp(value, "binary") == 0) return 0;
  snprintf(why, len, "\"%s\" is not one of json, binary", value);
  return -1;
}

static int check_url(const char *value, char *why, size_t len) {
  if (*value == '\0' || strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0) return 0;
  snprintf(why, len, "\"%s\" is not an http:// or https:// URL", value);
  return -1;
}

static int check_mode(const char *value, char *why, size_t len) {
  char *end;
  long mode = strtol(value, &end, 8);
  size_t n = strlen(value);
  if (n >= 3 && n <= 4 && *end == '\0' && mode >= 0 && mode <= 0777) return 0;
  snprintf(why, len, "\"%s\" is not an octal file mode like \"0660\"", value);
  return -1;
}

/* X(name, type, default text, min, max, reloadable, where (TOP|CHAN), field, check, help).
 * Order is documentation order (etc/streamd.conf and streamd.conf(5) follow it). Laid out by hand,
 * one row per key: the formatter would reflow the macro into one long paragraph. */
/* clang-format off */
#define CONFIG_KEYS(X)                                                                                       \
  X(address, STRING, "127.0.0.1", 0, 0, false, TOP, address, check_nonempty, "listen address")               \
  X(port, INT, "8000", 0, 65535, false, TOP, port, NULL, "listen port; 0 = any free port")                   \
  X(name, STRING, "", 0, 0, false, TOP, name, NULL, "node name shown in info; \"\" = the host name")         \
  X(http_stream, BOOL, "false", 0, 0, false, TOP, http_stream, NULL,                                         \
    "enable the HTTP-streaming and emulation endpoints")                                                     \
  X(http_stream_handler_prefix, STRING, "/connection/http_stream", 0, 0, false, TOP,                         \
    http_stream_handler_prefix, check_prefix, "path of the HTTP-streaming endpoint")                         \
  X(http_stream_max_request_body_size, INT, "65536", 1, 64 * MIB, false, TOP,                                \
    http_stream_max_request_body_size, NULL, "max bytes of the initial POST (1..64 MiB); larger => 413")     \
  X(http_stream_write_timeout, DURATION, "30s", SEC, HOUR, false, TOP, http_stream_write_timeout_ms, NULL,    \
    "close a stream when nothing could be written for this long (1s..1h, whole seconds)")                   \
  X(sse, BOOL, "false", 0, 0, false, TOP, sse, NULL, "enable the SSE and emulation endpoints")               \
  X(sse_handler_prefix, STRING, "/connection/sse", 0, 0, false, TOP, sse_handler_prefix, check_prefix,       \
    "path of the SSE endpoint")                                                                              \
  X(sse_max_request_body_size, INT, "65536", 1, 64 * MIB, false, TOP, sse_max_request_body_size, NULL,       \
    "max bytes of a POST-initiated SSE connect (1..64 MiB)")                                                 \
  X(sse_write_timeout, DURATION, "30s", SEC, HOUR, false, TOP, sse_write_timeout_ms, NULL,                      \
    "close an SSE stream when nothing could be written for this long (1s..1h, whole seconds)")              \
  X(emulation_handler_prefix, STRING, "/emulation", 0, 0, false, TOP, emulation_handler_prefix,              \
    check_prefix, "path of the emulation endpoint")                                                          \
  X(emulation_max_request_body_size, INT, "65536", 1, 64 * MIB, false, TOP, emulation_max_request_body_size, \
    NULL, "max bytes of one emulation request (1..64 MiB); larger => 413")                                   \
  X(websocket_disable, BOOL, "false", 0, 0, false, TOP, websocket_disable, NULL,                             \
    "turn the WebSocket endpoint off")                                                                       \
  X(websocket_handler_prefix, STRING, "/connection/websocket", 0, 0, false, TOP, websocket_handler_prefix,   \
    check_prefix, "path of the WebSocket endpoint")                                                          \
  X(websocket_message_size_limit, INT, "65536", 1, 64 * MIB, false, TOP, websocket_message_size_limit, NULL, \
    "max bytes of one WebSocket message (1..64 MiB)")                                                        \
  X(websocket_write_timeout, DURATION, "30s", SEC, HOUR, false, TOP, websocket_write_timeout_ms, NULL,        \
    "close a WebSocket when nothing could be written for this long (1s..1h)")                                \
  X(uni_http_stream, BOOL, "false", 0, 0, false, TOP, uni_http_stream, NULL,                                 \
    "enable the unidirectional HTTP-streaming endpoint")                                                     \
  X(uni_http_stream_handler_prefix, STRING, "/connection/uni_http_stream", 0, 0, false, TOP,                 \
    uni_http_stream_handler_prefix, check_prefix, "path of the unidirectional HTTP-streaming endpoint")      \
  X(uni_http_stream_max_request_body_size, INT, "65536", 1, 64 * MIB, false, TOP,                            \
    uni_http_stream_max_request_body_size, NULL, "max bytes of its connect POST (1..64 MiB); larger => 413") \
  X(uni_sse, BOOL, "false", 0, 0, false, TOP, uni_sse, NULL, "enable the unidirectional SSE endpoint")       \
  X(uni_sse_handler_prefix, STRING, "/connection/uni_sse", 0, 0, false, TOP, uni_sse_handler_prefix,         \
    check_prefix, "path of the unidirectional SSE endpoint")                                                 \
  X(uni_sse_max_request_body_size, INT, "65536", 1, 64 * MIB, false, TOP, uni_sse_max_request_body_size,     \
    NULL, "max bytes of a POST-initiated unidirectional SSE connect (1..64 MiB); larger => 413")            \
  X(uni_websocket, BOOL, "false", 0, 0, false, TOP, uni_websocket, NULL,                                     \
    "enable the unidirectional WebSocket endpoint")                                                          \
  X(uni_websocket_handler_prefix, STRING, "/connection/uni_websocket", 0, 0, false, TOP,                     \
    uni_websocket_handler_prefix, check_prefix, "path of the unidirectional WebSocket endpoint")             \
  X(uni_websocket_message_size_limit, INT, "65536", 1, 64 * MIB, false, TOP, uni_websocket_message_size_limit,\
    NULL, "max bytes of the connect message of a unidirectional WebSocket (1..64 MiB)")                     \
  X(allowed_origins, STRING_LIST, "[]", 0, 0, true, TOP, allowed_origins, NULL,                              \
    "browser origins allowed, glob patterns like \"http://localhost:*\"")                                    \
  X(allowed_hosts, STRING_LIST, "[]", 0, 0, true, TOP, allowed_hosts, NULL,                                  \
    "Host names served, globs like \"*.example.com\"; [] = listen address and localhost")                    \
  X(client_insecure, BOOL, "false", 0, 0, false, TOP, client_insecure, NULL,                                 \
    "development only: connect without token, everything allowed")                                           \
  X(allow_anonymous_connect_without_token, BOOL, "false", 0, 0, false, TOP,                                  \
    allow_anonymous_connect_without_token, NULL, "connect without a token as anonymous user \"\"")           \
  X(token_hmac_secret_key, STRING, "", 0, 0, true, TOP, token_hmac_secret_key, NULL,                         \
    "secret for HS256/384/512 connection and subscription JWTs")                                             \
  X(token_rsa_public_key, STRING, "", 0, 0, true, TOP, token_rsa_public_key, NULL,                           \
    "PEM public key for RS256/384/512 JWTs")                                                                 \
  X(token_ecdsa_public_key, STRING, "", 0, 0, true, TOP, token_ecdsa_public_key, NULL,                       \
    "PEM public key (P-256/384/521) for ES256/384/512 JWTs")                                                 \
  X(token_jwks_public_endpoint, STRING, "", 0, 0, true, TOP, token_jwks_public_endpoint, NULL,               \
    "JWKS URL: RS/ES keys by kid, replacing the two PEM keys")                                               \
  X(token_audience, STRING, "", 0, 0, true, TOP, token_audience, NULL,                                       \
    "when set, a token's aud must name it (else invalid token)")                                             \
  X(token_issuer, STRING, "", 0, 0, true, TOP, token_issuer, NULL,                                           \
    "when set, a token's iss must equal it (else invalid token)")                                            \
  X(ping_interval, DURATION, "25s", SEC, 24 * HOUR, false, TOP, ping_interval_ms, NULL,                      \
    "how often the server pings each client (1s..24h, whole seconds on the wire)")                           \
  X(pong_timeout, DURATION, "8s", 0, 24 * HOUR, false, TOP, pong_timeout_ms, NULL,                           \
    "time a client has to answer a ping; < ping_interval; 0s = no pong needed")                              \
  X(client_stale_close_delay, DURATION, "10s", 100, 24 * HOUR, false, TOP, client_stale_close_delay_ms,      \
    NULL, "close a connection that sent no connect command within this")                                     \
  X(client_expired_close_delay, DURATION, "25s", 0, 24 * HOUR, false, TOP, client_expired_close_delay_ms,    \
    NULL, "grace after connection token expiry before disconnect 3005")                                      \
  X(client_channel_limit, INT, "128", 1, 1048576, false, TOP, client_channel_limit, NULL,                    \
    "max subscriptions of one client (1..1048576)")                                                          \
  X(client_user_connection_limit, INT, "0", 0, I32, false, TOP, client_user_connection_limit, NULL,          \
    "max connections of one user on this node; 0 = off")                                                     \
  X(client_connection_limit, INT, "0", 0, I32, false, TOP, client_connection_limit, NULL,                    \
    "max connections on this node; 0 = off; over => disconnect 3504")                                        \
  X(client_queue_max_size, INT, "1048576", 1024, 1024 * MIB, false, TOP, client_queue_max_size, NULL,        \
    "bytes queued for one client (1 KiB..1 GiB); over => disconnect 3008")                                   \
  X(client_close_timeout, DURATION, "10s", 100, HOUR, false, TOP, client_close_timeout_ms, NULL,              \
    "tear down a closing connection whose last frames are not out within this (100ms..1h)")                  \
  X(client_history_max_publication_limit, INT, "300", 1, 1000000, false, TOP,                                \
    client_history_max_publication_limit, NULL, "max publications one history call returns")                 \
  X(client_recovery_max_publication_limit, INT, "300", 1, 1000000, false, TOP,                               \
    client_recovery_max_publication_limit, NULL, "max publications one recovery may replay")                 \
  X(global_history_meta_ttl, DURATION, "720h", 0, 8760 * HOUR, true, TOP, global_history_meta_ttl_ms, NULL,   \
    "history stream kept after its last publish or read (0s..8760h; 0s = forever)")                          \
  X(history_max_streams, INT, "1000000", 0, I32, true, TOP, history_max_streams, NULL,                       \
    "max history streams on this node; 0 = no cap; at the cap a publish needing a new one => 106")           \
  X(api_key, STRING, "", 0, 0, true, TOP, api_key, NULL,                                                     \
    "server API key (X-API-Key: KEY); \"\" = API refuses all")                                               \
  X(api_insecure, BOOL, "false", 0, 0, false, TOP, api_insecure, NULL,                                       \
    "development only: server API without key")                                                              \
  X(api_handler_prefix, STRING, "/api", 0, 0, false, TOP, api_handler_prefix, check_prefix,                  \
    "path of the server HTTP API")                                                                           \
  X(health, BOOL, "false", 0, 0, false, TOP, health, NULL, "serve GET /health")                              \
  X(prometheus, BOOL, "false", 0, 0, false, TOP, prometheus, NULL,                                           \
    "serve GET /metrics in Prometheus text format")                                                          \
  X(admin_socket, STRING, "", 0, 0, false, TOP, admin_socket, NULL,                                          \
    "Unix socket of the admin API; \"\" = disabled")                                                         \
  X(admin_socket_mode, STRING, "0660", 0, 0, false, TOP, admin_socket_mode, check_mode,                      \
    "file mode of the admin socket (octal)")                                                                 \
  X(engine, STRING, "memory", 0, 0, false, TOP, engine, check_engine, "\"memory\" or \"redis\"")             \
  X(redis_address, STRINGS, "[\"127.0.0.1:6379\"]", 0, 0, false, TOP, redis_address, NULL,               \
    "Redis (host:port or redis:// URL), or an array of them: shards (engine = \"redis\")")                   \
  X(redis_prefix, STRING, "streamd", 0, 0, false, TOP, redis_prefix, check_nonempty,                         \
    "prefix of keys and channels in Redis")                                                                  \
  X(redis_user, STRING, "", 0, 0, false, TOP, redis_user, NULL,                                              \
    "Redis ACL user for addresses that name none; \"\" = none")                                               \
  X(redis_password, STRING, "", 0, 0, false, TOP, redis_password, NULL,                                      \
    "Redis password for addresses that name none; \"\" = no AUTH")                                           \
  X(redis_db, INT, "0", 0, 1048576, false, TOP, redis_db, NULL,                                              \
    "Redis database for addresses that name none")                                                           \
  X(redis_connect_timeout, DURATION, "1s", 10, HOUR, false, TOP, redis_connect_timeout_ms, NULL,              \
    "time to connect and log in to Redis")                                                                   \
  X(redis_io_timeout, DURATION, "4s", 10, HOUR, false, TOP, redis_io_timeout_ms, NULL,                       \
    "longest wait for a Redis reply before the connection is dropped and made again")                        \
  X(global_presence_ttl, DURATION, "60s", SEC, 24 * HOUR, false, TOP, global_presence_ttl_ms, NULL,          \
    "Redis engine: how long a presence entry lives unless its node refreshes it")                            \
  X(redis_sentinel_address, STRING_LIST, "[]", 0, 0, false, TOP, redis_sentinel_address, NULL,              \
    "Sentinels (host:port) that name the Redis master; set: redis_address is not used")                      \
  X(redis_sentinel_master_name, STRING, "", 0, 0, false, TOP, redis_sentinel_master_name, NULL,              \
    "name of the master the Sentinels watch (needed with redis_sentinel_address)")                           \
  X(redis_sentinel_password, STRING, "", 0, 0, false, TOP, redis_sentinel_password, NULL,                    \
    "password of the Sentinels; \"\" = none")                                                               \
  X(proxy_connect_endpoint, STRING, "", 0, 0, false, TOP, proxy_connect_endpoint, check_url,                 \
    "URL the server POSTs a tokenless connect to (the backend authenticates); \"\" = off")                   \
  X(proxy_connect_timeout, DURATION, "1s", 10, 60 * SEC, false, TOP, proxy_connect_timeout_ms, NULL,         \
    "longest wait for the connect proxy's answer (10ms..60s)")                                               \
  X(proxy_refresh_endpoint, STRING, "", 0, 0, false, TOP, proxy_refresh_endpoint, check_url,                 \
    "URL asked to extend a connection whose proxy-given expire_at is reached; \"\" = off")                   \
  X(proxy_refresh_timeout, DURATION, "1s", 10, 60 * SEC, false, TOP, proxy_refresh_timeout_ms, NULL,         \
    "longest wait for the refresh proxy's answer (10ms..60s)")                                               \
  X(proxy_subscribe_endpoint, STRING, "", 0, 0, false, TOP, proxy_subscribe_endpoint, check_url,             \
    "URL asked about subscribes in namespaces with proxy_subscribe; \"\" = off")                             \
  X(proxy_subscribe_timeout, DURATION, "1s", 10, 60 * SEC, false, TOP, proxy_subscribe_timeout_ms, NULL,     \
    "longest wait for the subscribe proxy's answer (10ms..60s)")                                             \
  X(proxy_publish_endpoint, STRING, "", 0, 0, false, TOP, proxy_publish_endpoint, check_url,                 \
    "URL asked about publications in namespaces with proxy_publish; \"\" = off")                             \
  X(proxy_publish_timeout, DURATION, "1s", 10, 60 * SEC, false, TOP, proxy_publish_timeout_ms, NULL,         \
    "longest wait for the publish proxy's answer (10ms..60s)")                                               \
  X(proxy_sub_refresh_endpoint, STRING, "", 0, 0, false, TOP, proxy_sub_refresh_endpoint, check_url,         \
    "URL asked to extend subscriptions in namespaces with proxy_sub_refresh; \"\" = off")                    \
  X(proxy_sub_refresh_timeout, DURATION, "1s", 10, 60 * SEC, false, TOP, proxy_sub_refresh_timeout_ms, NULL, \
    "longest wait for the sub_refresh proxy's answer (10ms..60s)")                                           \
  X(proxy_rpc_endpoint, STRING, "", 0, 0, false, TOP, proxy_rpc_endpoint, check_url,                         \
    "URL that answers client RPC calls; \"\" = off")                                                         \
  X(proxy_rpc_timeout, DURATION, "1s", 10, 60 * SEC, false, TOP, proxy_rpc_timeout_ms, NULL,                 \
    "longest wait for the rpc proxy's answer (10ms..60s)")                                                   \
  X(proxy_http_headers, STRING_LIST, "[]", 0, 0, false, TOP, proxy_http_headers, NULL,                       \
    "client request headers (e.g. \"Cookie\") forwarded to every proxy")                                     \
  X(proxy_static_http_headers, STRING_LIST, "[]", 0, 0, false, TOP, proxy_static_http_headers, NULL,         \
    "extra \"Name: value\" headers sent with every proxy request")                                           \
  X(proxy_include_connection_meta, BOOL, "false", 0, 0, false, TOP, proxy_include_connection_meta, NULL,     \
    "send the connect proxy's meta with every later proxy request")                                          \
  X(proxy_binary_encoding, BOOL, "false", 0, 0, false, TOP, proxy_binary_encoding, NULL,                     \
    "send payloads to proxies as b64data (base64) instead of data (JSON)")                                   \
  X(log_level, STRING, "info", 0, 0, true, TOP, log_level, check_log_level, "debug, info, warn or error")    \
  X(presence, BOOL, "false", 0, 0, true, CHAN, presence, NULL, "keep presence information")                  \
  X(join_leave, BOOL, "false", 0, 0, true, CHAN, join_leave, NULL, "send join and leave events")             \
  X(force_push_join_leave, BOOL, "false", 0, 0, true, CHAN, force_push_join_leave, NULL,                     \
    "push join/leave to every subscriber")                                                                   \
  X(history_size, INT, "0", 0, 1000000, true, CHAN, history_size, NULL,                                      \
    "publications kept per channel (0..1000000); needs history_ttl")                                         \
  X(history_ttl, DURATION, "0s", 0, 720 * HOUR, true, CHAN, history_ttl_ms, NULL,                            \
    "how long history is kept (0s..720h); needs history_size")                                               \
  X(history_meta_ttl, DURATION, "0s", 0, 8760 * HOUR, true, CHAN, history_meta_ttl_ms, NULL,                  \
    "stream kept after its last publish or read; 0s = global_history_meta_ttl")                              \
  X(force_positioning, BOOL, "false", 0, 0, true, CHAN, force_positioning, NULL,                             \
    "positioning for every subscription (needs history)")                                                    \
  X(allow_positioning, BOOL, "false", 0, 0, true, CHAN, allow_positioning, NULL,                             \
    "clients may ask for positioning")                                                                       \
  X(force_recovery, BOOL, "false", 0, 0, true, CHAN, force_recovery, NULL,                                   \
    "recovery for every subscription (needs history)")                                                       \
  X(allow_recovery, BOOL, "false", 0, 0, true, CHAN, allow_recovery, NULL, "clients may ask for recovery")   \
  X(allow_subscribe_for_client, BOOL, "false", 0, 0, true, CHAN, allow_subscribe_for_client, NULL,           \
    "authenticated clients may subscribe")                                                                   \
  X(allow_subscribe_for_anonymous, BOOL, "false", 0, 0, true, CHAN, allow_subscribe_for_anonymous, NULL,     \
    "anonymous clients may subscribe too")                                                                   \
  X(allow_publish_for_subscriber, BOOL, "false", 0, 0, true, CHAN, allow_publish_for_subscriber, NULL,       \
    "subscribers may publish")                                                                               \
  X(allow_publish_for_client, BOOL, "false", 0, 0, true, CHAN, allow_publish_for_client, NULL,               \
    "any authenticated client may publish")                                                                  \
  X(allow_publish_for_anonymous, BOOL, "false", 0, 0, true, CHAN, allow_publish_for_anonymous, NULL,         \
    "anonymous clients may publish too")                                                                     \
  X(allow_presence_for_subscriber, BOOL, "false", 0, 0, true, CHAN, allow_presence_for_subscriber, NULL,     \
    "subscribers may call presence")                                                                         \
  X(allow_presence_for_client, BOOL, "false", 0, 0, true, CHAN, allow_presence_for_client, NULL,             \
    "any authenticated client may call presence")                                                            \
  X(allow_presence_for_anonymous, BOOL, "false", 0, 0, true, CHAN, allow_presence_for_anonymous, NULL,       \
    "anonymous clients may call presence too")                                                               \
  X(allow_history_for_subscriber, BOOL, "false", 0, 0, true, CHAN, allow_history_for_subscriber, NULL,       \
    "subscribers may call history")                                                                          \
  X(allow_history_for_client, BOOL, "false", 0, 0, true, CHAN, allow_history_for_client, NULL,               \
    "any authenticated client may call history")                                                             \
  X(allow_history_for_anonymous, BOOL, "false", 0, 0, true, CHAN, allow_history_for_anonymous, NULL,         \
    "anonymous clients may call history too")                                                                \
  X(allow_user_limited_channels, BOOL, "false", 0, 0, true, CHAN, allow_user_limited_channels, NULL,         \
    "channels like \"ns:name#user1,user2\" admit only the listed users")                                     \
  X(channel_regex, REGEX, "", 0, 0, true, CHAN, channel_regex, NULL,                                        \
    "POSIX extended regex channel names must match; \"\" = any")                                             \
  X(publication_data_format, STRING, "json", 0, 0, true, CHAN, publication_data_format, check_data_format,     \
    "\"json\": client publications must be JSON; \"binary\": any bytes")                                       \
  X(proxy_subscribe, BOOL, "false", 0, 0, true, CHAN, proxy_subscribe, NULL,                                 \
    "client subscribes are asked of proxy_subscribe_endpoint")                                               \
  X(proxy_publish, BOOL, "false", 0, 0, true, CHAN, proxy_publish, NULL,                                     \
    "client publications are asked of proxy_publish_endpoint")                                               \
  X(proxy_sub_refresh, BOOL, "false", 0, 0, true, CHAN, proxy_sub_refresh, NULL,                             \
    "expiring subscriptions are asked of proxy_sub_refresh_endpoint")                                        \
  X(allowed_delta_types, STRING_LIST, "[]", 0, 0, true, CHAN, allowed_delta_types, NULL,                     \
    "delta compressions subscribers may ask for: [] or [\"fossil\"]")                                         \
  X(delta_publish, BOOL, "false", 0, 0, true, CHAN, delta_publish, NULL,                                     \
    "publications go as fossil deltas to subscribers that negotiated one")                                   \
  X(subscription_type, STRING, "stream", 0, 0, true, CHAN, subscription_type, check_subscription_type,       \
    "\"stream\", \"map\" (keyed state: snapshot, then changes), \"map_clients\" or \"map_users\"")         \
  X(map_clients_presence_channel_prefix, STRING, "", 0, 0, true, CHAN, map_clients_presence_channel_prefix, NULL, \
    "a subscriber of channel X is also key <client id> of map channel <prefix>X (a map_clients namespace)")  \
  X(map_users_presence_channel_prefix, STRING, "", 0, 0, true, CHAN, map_users_presence_channel_prefix, NULL,  \
    "a subscriber of channel X is also key <user id> of map channel <prefix>X (a map_users namespace)")      \
  X(map_mode, STRING, "", 0, 0, true, CHAN, map_mode, check_map_mode,                                        \
    "map channels: \"ephemeral\", \"recoverable\" or \"persistent\"")                                       \
  X(map_key_ttl, DURATION, "0s", 0, 8760 * HOUR, true, CHAN, map_key_ttl_ms, NULL,                           \
    "map channels: a key expires this long after its last write (ephemeral, recoverable)")                   \
  X(map_stream_size, INT, "0", 0, 1000000, true, CHAN, map_stream_size, NULL,                                \
    "map channels: changes kept for catch-up and recovery; 0 = 100 (not ephemeral)")                          \
  X(map_stream_ttl, DURATION, "0s", 0, 720 * HOUR, true, CHAN, map_stream_ttl_ms, NULL,                      \
    "map channels: how long changes are kept after the last one; 0s = 60s (not ephemeral)")                  \
  X(map_meta_ttl, DURATION, "0s", 0, 8760 * HOUR, true, CHAN, map_meta_ttl_ms, NULL,                         \
    "map channels: how long the epoch outlives the last change; 0s = 10 x map_stream_ttl, at least "          \
    "map_key_ttl (recoverable), forever (persistent)")                                                      \
  X(map_allow_publish_for_subscriber, BOOL, "false", 0, 0, true, CHAN, map_allow_publish_for_subscriber, NULL, \
    "map channels: subscribers may set keys")                                                                \
  X(map_allow_publish_for_client, BOOL, "false", 0, 0, true, CHAN, map_allow_publish_for_client, NULL,       \
    "map channels: any authenticated client may set keys")                                                   \
  X(map_allow_publish_for_anonymous, BOOL, "false", 0, 0, true, CHAN, map_allow_publish_for_anonymous, NULL, \
    "map channels: the two above include anonymous clients")                                                 \
  X(map_allow_remove_for_subscriber, BOOL, "false", 0, 0, true, CHAN, map_allow_remove_for_subscriber, NULL, \
    "map channels: subscribers may remove keys")                                                             \
  X(map_allow_remove_for_client, BOOL, "false", 0, 0, true, CHAN, map_allow_remove_for_client, NULL,         \
    "map channels: any authenticated client may remove keys")                                                \
  X(map_allow_remove_for_anonymous, BOOL, "false", 0, 0, true, CHAN, map_allow_remove_for_anonymous, NULL,   \
    "map channels: the two above include anonymous clients")                                                 \
  X(map_client_key, STRING, "", 0, 0, true, CHAN, map_client_key, check_map_client_key,                      \
    "map channels: the key of a client's publish or remove: \"\" as sent, \"client_id\", \"user_id\"")         \
  X(map_remove_client_on_unsubscribe, BOOL, "false", 0, 0, true, CHAN, map_remove_client_on_unsubscribe, NULL,   \
    "map channels: when a subscription ends, the key named by its client id is removed")                     \
  X(map_default_page_size, INT, "100", 1, 100000, true, CHAN, map_default_page_size, NULL,                   \
    "map channels: snapshot and catch-up page size when the client asks for none")                           \
  X(map_min_page_size, INT, "100", 1, 100000, true, CHAN, map_min_page_size, NULL,                           \
    "map channels: the smallest page a client may ask for")                                                  \
  X(map_max_page_size, INT, "1000", 1, 100000, true, CHAN, map_max_page_size, NULL,                          \
    "map channels: the largest page a client may ask for")                                                   \
  X(map_live_transition_max_publication_limit, INT, "0", 0, 1000000, true, CHAN,                             \
    map_live_transition_max_publication_limit, NULL,                                                         \
    "map channels: most changes caught up when going live (more: error 112); 0 = map_max_page_size")         \
  X(map_subscribe_catch_up_timeout, DURATION, "5s", 0, 24 * HOUR, true, CHAN, map_subscribe_catch_up_timeout_ms, \
    NULL, "map channels: the longest a client may take from its first snapshot page to live (then 3008)")    \
  X(namespaces, NAMESPACES, "()", 0, 0, true, TOP, namespaces, NULL,                                         \
    "groups { name = \"ns\"; channel options }")
/* clang-format on */

#define STRUCT_TOP struct config
#define STRUCT_CHAN struct channel_options
#define IS_CHAN_TOP false
#define IS_CHAN_CHAN true

#define KEY_ROW(n, t, d, lo, hi, r, w, f, c, h) {#n, CONFIG_##t, d, lo, hi, r, IS_CHAN_##w, h},
static const struct config_key keys[] = {CONFIG_KEYS(KEY_ROW)};

struct slot {
  size_t offset; /* into struct config, or into struct channel_options when the key is a channel option */
  check_fn check;
};
#define SLOT_ROW(n, t, d, lo, hi, r, w, f, c, h) {offsetof(STRUCT_##w, f), c},
static const struct slot slots[] = {CONFIG_KEYS(SLOT_ROW)};

#define KEY_COUNT (sizeof keys / sizeof keys[0])

/* A string list and the namespaces are stored as {items, count} pairs in struct config. */
struct string_list {
  char **items;
  size_t count;
};
struct ns_list {
  struct namespace_config *items;
  size_t count;
};
_Static_assert(offsetof(struct config, allowed_origins_count) - offsetof(struct config, allowed_origins) ==
                   offsetof(struct string_list, count),
               "allowed_origins must be followed by its count");
_Static_assert(offsetof(struct config, allowed_hosts_count) - offsetof(struct config, allowed_hosts) ==
                   offsetof(struct string_list, count),
               "allowed_hosts must be followed by its count");
_Static_assert(offsetof(struct config, namespaces_count) - offsetof(struct config, namespaces) ==
                   offsetof(struct ns_list, count),
               "namespaces must be followed by its count");
/* A regex is stored as its text followed by its compiled form. */
struct regex_slot {
  char *source;
  regex_t *compiled; /* NULL for "" */
};
_Static_assert(offsetof(struct channel_options, channel_regex_compiled) -
                       offsetof(struct channel_options, channel_regex) ==
                   offsetof(struct regex_slot, compiled),
               "channel_regex must be followed by its compiled form");

/* State of one load: where errors go. */
struct load {
  const char *path;
  char *err;
  size_t errlen;
};

/* Writes "FILE:LINE: key 'KEY': WHY" (the place of AT, or of the file when AT is NULL); returns -1. */
__attribute__((format(printf, 4, 5))) static int fail(struct load *ld, const config_setting_t *at,
                                                      const char *key, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  const char *file = at && config_setting_source_file(at) ? config_setting_source_file(at) : ld->path;
  unsigned line = at ? config_setting_source_line(at) : 0;
  if (ld->err && ld->errlen) snprintf(ld->err, ld->errlen, "%s:%u: key '%s': %s", file, line, key, why);
  return -1;
}

static void *slot_at(struct config *cfg, struct channel_options *opts, size_t k) {
  return (keys[k].channel_option ? (char *)opts : (char *)cfg) + slots[k].offset;
}

/* ---- per-type operations: parse a setting, set a default from text, release ---- */

static void release_none(void *slot) { (void)slot; }

static void release_string(void *slot) {
  free(*(char **)slot);
  *(char **)slot = NULL;
}

static void release_string_list(void *slot) {
  struct string_list *list = slot;
  for (size_t i = 0; i < list->count; i++) free(list->items[i]);
  free(list->items);
  list->items = NULL;
  list->count = 0;
}

static void release_regex(void *slot) {
  struct regex_slot *rx = slot;
  free(rx->source);
  rx->source = NULL;
  if (rx->compiled) regfree(rx->compiled);
  free(rx->compiled);
  rx->compiled = NULL;
}

static void release_options(struct channel_options *opts);

static void release_namespaces(void *slot) {
  struct ns_list *list = slot;
  for (size_t i = 0; i < list->count; i++) {
    free(list->items[i].name);
    release_options(&list->items[i].options);
  }
  free(list->items);
  list->items = NULL;
  list->count = 0;
}

static int text_bool(const char *text, void *slot) {
  *(bool *)slot = strcmp(text, "true") == 0;
  return 0;
}

static int text_int(const char *text, void *slot) {
  *(int64_t *)slot = strtoll(text, NULL, 10);
  return 0;
}

static int text_string(const char *text, void *slot) {
  char *copy = strdup(text);
  if (!copy) return -1;
  free(*(char **)slot);
  *(char **)slot = copy;
  return 0;
}

static int text_duration(const char *text, void *slot) { return sd_duration_parse(text, slot); }

/* "()": lists of groups start empty. */
static int text_empty(const char *text, void *slot) {
  (void)text;
  (void)slot;
  return 0;
}

/* Compiles TEXT into SLOT, replacing what it held ("" stores no compiled form). Returns 0, or -1 with
 * the reason in WHY (LEN bytes) and SLOT unchanged. */
static int regex_set(const char *text, struct regex_slot *slot, char *why, size_t len) {
  int rc = -1;
  char *source = strdup(text);
  regex_t *re = NULL;
  if (source == NULL || (text[0] && (re = malloc(sizeof *re)) == NULL)) {
    snprintf(why, len, "out of memory");
    goto out;
  }
  int err = re ? regcomp(re, text, REG_EXTENDED | REG_NOSUB) : 0;
  if (err != 0) {
    char msg[128];
    regerror(err, re, msg, sizeof msg);
    snprintf(why, len, "bad regular expression: %s", msg);
    goto out; /* a failed regcomp leaves nothing to regfree */
  }
  release_regex(slot);
  slot->source = source;
  slot->compiled = re;
  source = NULL;
  re = NULL;
  rc = 0;
out:
  free(source);
  free(re);
  return rc;
}

static int text_regex(const char *text, void *slot) {
  char why[160];
  return regex_set(text, slot, why, sizeof why);
}

static void release_string_list(void *slot);

/* A string list default as the table writes it: "[]" or ["a","b"] (no spaces, no quotes inside). */
static int text_string_list(const char *text, void *slot) {
  struct string_list *list = slot;
  release_string_list(list);
  size_t n = 0;
  for (const char *p = text; *p; p++) n += *p == ',';
  if (strcmp(text, "[]") == 0) return 0;
  list->items = calloc(n + 1, sizeof *list->items);
  if (!list->items) return -1;
  for (const char *p = strchr(text, '"'); p; p = strchr(p, '"')) {
    const char *end = strchr(p + 1, '"');
    if (!end) return -1;
    if (!(list->items[list->count] = strndup(p + 1, (size_t)(end - p - 1)))) return -1;
    list->count++;
    p = end + 1;
  }
  return 0;
}

static int parse_bool(struct load *ld, const config_setting_t *s, size_t k, void *slot) {
  if (config_setting_type(s) != CONFIG_TYPE_BOOL) return fail(ld, s, keys[k].name, "expected true or false");
  *(bool *)slot = config_setting_get_bool(s);
  return 0;
}

static int parse_int(struct load *ld, const config_setting_t *s, size_t k, void *slot) {
  int type = config_setting_type(s);
  if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
    return fail(ld, s, keys[k].name, "expected an integer");
  long long v = config_setting_get_int64(s);
  if (v < keys[k].min || v > keys[k].max)
    return fail(ld, s, keys[k].name, "%lld is out of range %lld..%lld", v, (long long)keys[k].min,
                (long long)keys[k].max);
  *(int64_t *)slot = v;
  return 0;
}

/* Returns the string value of S, or NULL after writing the error when S is not a string. */
static const char *string_of(struct load *ld, const config_setting_t *s, const char *key) {
  if (config_setting_type(s) == CONFIG_TYPE_STRING) return config_setting_get_string(s);
  fail(ld, s, key, "expected a string in double quotes");
  return NULL;
}

static int parse_string(struct load *ld, const config_setting_t *s, size_t k, void *slot) {
  const char *v = string_of(ld, s, keys[k].name);
  if (!v) return -1;
  char why[256];
  if (slots[k].check && slots[k].check(v, why, sizeof why) != 0) return fail(ld, s, keys[k].name, "%s", why);
  if (text_string(v, slot) != 0) return fail(ld, s, keys[k].name, "out of memory");
  return 0;
}

static int parse_duration(struct load *ld, const config_setting_t *s, size_t k, void *slot) {
  const char *v = string_of(ld, s, keys[k].name);
  if (!v) return -1;
  int64_t ms;
  if (sd_duration_parse(v, &ms) != 0)
    return fail(ld, s, keys[k].name, "\"%s\" is not a duration (write e.g. \"25s\", \"500ms\", \"5m\")", v);
  if (ms < keys[k].min || ms > keys[k].max) {
    char lo[32], hi[32];
    return fail(ld, s, keys[k].name, "\"%s\" is out of range %s..%s", v,
                sd_duration_format(keys[k].min, lo, sizeof lo),
                sd_duration_format(keys[k].max, hi, sizeof hi));
  }
  *(int64_t *)slot = ms;
  return 0;
}

static int parse_regex(struct load *ld, const config_setting_t *s, size_t k, void *slot) {
  const char *v = string_of(ld, s, keys[k].name);
  char why[256];
  if (!v) return -1;
  if (regex_set(v, slot, why, sizeof why) != 0) return fail(ld, s, keys[k].name, "%s", why);
  return 0;
}

/* A list of strings; for CONFIG_STRINGS one string is a list of one. */
static int parse_string_list(struct load *ld, const config_setting_t *s, size_t k, void *slot) {
  struct string_list *list = slot;
  if (keys[k].type == CONFIG_STRINGS && config_setting_type(s) == CONFIG_TYPE_STRING) {
    release_string_list(list);
    list->items = calloc(1, sizeof *list->items);
    if (!list->items || !(list->items[0] = strdup(config_setting_get_string(s))))
      return fail(ld, s, keys[k].name, "out of memory");
    list->count = 1;
    return 0;
  }
  if (!config_setting_is_array(s) && !config_setting_is_list(s))
    return fail(ld, s, keys[k].name, keys[k].type == CONFIG_STRINGS
                                         ? "expected a string or an array of strings like [ \"a\", \"b\" ]"
                                         : "expected an array of strings like [ \"a\", \"b\" ]");
  release_string_list(list);
  int n = config_setting_length(s);
  if (n == 0) return 0;
  list->items = calloc((size_t)n, sizeof *list->items);
  if (!list->items) return fail(ld, s, keys[k].name, "out of memory");
  for (int i = 0; i < n; i++) {
    const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
    const char *v = string_of(ld, e, keys[k].name);
    if (!v) return -1;
    if (!(list->items[list->count] = strdup(v))) return fail(ld, e, keys[k].name, "out of memory");
    list->count++;
  }
  return 0;
}

static int parse_namespaces(struct load *ld, const config_setting_t *s, size_t k, void *slot);

static const struct type_ops {
  int (*parse)(struct load *ld, const config_setting_t *s, size_t k, void *slot);
  int (*from_text)(const char *text, void *slot);
  void (*release)(void *slot);
} ops[] = {
    [CONFIG_BOOL] = {parse_bool, text_bool, release_none},
    [CONFIG_INT] = {parse_int, text_int, release_none},
    [CONFIG_STRING] = {parse_string, text_string, release_string},
    [CONFIG_DURATION] = {parse_duration, text_duration, release_none},
    [CONFIG_STRING_LIST] = {parse_string_list, text_string_list, release_string_list},
    [CONFIG_STRINGS] = {parse_string_list, text_string_list, release_string_list},
    [CONFIG_REGEX] = {parse_regex, text_regex, release_regex},
    [CONFIG_NAMESPACES] = {parse_namespaces, text_empty, release_namespaces},
};

/* ---- table walks ---- */

/* Sets the defaults of the top-level keys (CHANNEL false, BASE is a struct config) or of the channel
 * options (CHANNEL true, BASE is a struct channel_options). Returns -1 when out of memory. */
static int apply_defaults(void *base, bool channel) {
  for (size_t k = 0; k < KEY_COUNT; k++) {
    if (keys[k].channel_option != channel) continue;
    if (ops[keys[k].type].from_text(keys[k].default_text, (char *)base + slots[k].offset) != 0) return -1;
  }
  return 0;
}

static void release_options(struct channel_options *opts) {
  for (size_t k = 0; k < KEY_COUNT; k++)
    if (keys[k].channel_option) ops[keys[k].type].release((char *)opts + slots[k].offset);
}

static size_t key_find(const char *name) {
  for (size_t k = 0; k < KEY_COUNT; k++)
    if (strcmp(keys[k].name, name) == 0) return k;
  return KEY_COUNT;
}

/* Parses every member of GROUP. At top level CFG is the config and NS is NULL; inside a namespace
 * CFG is NULL, NS its name, only channel options are allowed and `name` is left to the caller. */
static int parse_members(struct load *ld, const config_setting_t *group, struct config *cfg,
                         struct channel_options *opts, const char *ns) {
  int n = config_setting_length(group);
  for (int i = 0; i < n; i++) {
    const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
    const char *name = config_setting_name(s);
    if (ns && strcmp(name, "name") == 0) continue;
    size_t k = key_find(name);
    if (k == KEY_COUNT && ns) return fail(ld, s, name, "unknown key in namespace '%s'", ns);
    if (k == KEY_COUNT) return fail(ld, s, name, "unknown key");
    if (ns && !keys[k].channel_option)
      return fail(ld, s, name, "not a channel option, not allowed in namespace '%s'", ns);
    if (ops[keys[k].type].parse(ld, s, k, slot_at(cfg, opts, k)) != 0) return -1;
  }
  return 0;
}

/* The map options of a map namespace (Centrifugo's rules for its `map` object): a mode; a key TTL
 * exactly when keys expire; no stream in ephemeral mode; page sizes in order. */
static int check_map_options(struct load *ld, const config_setting_t *group, const struct channel_options *o) {
  const config_setting_t *at = config_setting_get_member(group, "map_mode");
  if (o->map_mode[0] == '\0')
    return fail(ld, at ? at : config_setting_get_member(group, "subscription_type"), "map_mode",
                "a map namespace needs map_mode: \"ephemeral\", \"recoverable\" or \"persistent\"");
  bool persistent = strcmp(o->map_mode, "persistent") == 0, ephemeral = strcmp(o->map_mode, "ephemeral") == 0;
  if (persistent && strcmp(o->subscription_type, "map") != 0) /* presence entries must go away */
    return fail(ld, at, "map_mode", "a %s namespace cannot be persistent", o->subscription_type);
  const config_setting_t *ttl = config_setting_get_member(group, "map_key_ttl");
  if (persistent && o->map_key_ttl_ms > 0)
    return fail(ld, ttl, "map_key_ttl", "persistent keys never expire: leave map_key_ttl unset");
  if (!persistent && o->map_key_ttl_ms == 0)
    return fail(ld, ttl ? ttl : at, "map_key_ttl", "map_mode \"%s\" needs map_key_ttl > 0s", o->map_mode);
  const char *const stream_key[] = {"map_stream_size", "map_stream_ttl", "map_meta_ttl"};
  const bool stream_set[] = {o->map_stream_size > 0, o->map_stream_ttl_ms > 0, o->map_meta_ttl_ms > 0};
  for (size_t i = 0; ephemeral && i < sizeof stream_set / sizeof stream_set[0]; i++)
    if (stream_set[i])
      return fail(ld, config_setting_get_member(group, stream_key[i]), stream_key[i],
                  "an ephemeral map keeps no stream of changes: leave it unset");
  if (o->map_min_page_size > o->map_default_page_size || o->map_default_page_size > o->map_max_page_size) {
    const config_setting_t *p = config_setting_get_member(group, "map_default_page_size");
    return fail(ld, p ? p : group, "map_default_page_size",
                "needs map_min_page_size <= map_default_page_size <= map_max_page_size (%lld, %lld, %lld)",
                (long long)o->map_min_page_size, (long long)o->map_default_page_size,
                (long long)o->map_max_page_size);
  }
  return 0;
}

/* Checks that need several channel options at once (Centrifugo's rules: history needs both size and
 * ttl; forced recovery and positioning need history). GROUP is where the options were read. */
static int check_options(struct load *ld, const config_setting_t *group, const struct channel_options *o) {
  for (size_t i = 0; i < o->allowed_delta_types_count; i++)
    if (strcmp(o->allowed_delta_types[i], "fossil") != 0) {
      const config_setting_t *list = config_setting_get_member(group, "allowed_delta_types");
      return fail(ld, list ? config_setting_get_elem(list, (unsigned)i) : group, "allowed_delta_types",
                  "\"%s\" is not a delta type (the one there is: \"fossil\")", o->allowed_delta_types[i]);
    }
  if (channel_is_map(o) && check_map_options(ld, group, o) != 0) return -1;
  if (o->history_size > 0 && o->history_ttl_ms > 0) return 0;
  const char *const key[] = {"history_size", "force_recovery", "force_positioning"};
  const bool on[] = {o->history_size > 0, o->force_recovery, o->force_positioning};
  for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
    if (on[i])
      return fail(ld, config_setting_get_member(group, key[i]), key[i],
                  "needs history: set both history_size > 0 and history_ttl > 0s");
  return 0;
}

/* True when NAME matches ^[-a-zA-Z0-9_.]{2,}$. */
static bool namespace_name_ok(const char *name) {
  static const char ok[] = "-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.";
  size_t n = strlen(name);
  return n >= 2 && strspn(name, ok) == n;
}

/* Reads, checks and stores the `name` of namespace group G, the last of the LIST->count entries. */
static int namespace_name(struct load *ld, const config_setting_t *g, struct ns_list *list) {
  const config_setting_t *s = config_setting_get_member(g, "name");
  if (!s) return fail(ld, g, "name", "namespace %zu has no name", list->count);
  const char *v = string_of(ld, s, "name");
  if (!v) return -1;
  if (!namespace_name_ok(v)) return fail(ld, s, "name", "\"%s\" must match ^[-a-zA-Z0-9_.]{2,}$", v);
  for (size_t i = 0; i + 1 < list->count; i++)
    if (strcmp(list->items[i].name, v) == 0) return fail(ld, s, "name", "duplicate namespace \"%s\"", v);
  if (!(list->items[list->count - 1].name = strdup(v))) return fail(ld, s, "name", "out of memory");
  return 0;
}

static int parse_namespaces(struct load *ld, const config_setting_t *s, size_t k, void *slot) {
  struct ns_list *list = slot;
  int n = config_setting_length(s);
  if (!config_setting_is_list(s) && !(config_setting_is_array(s) && n == 0))
    return fail(ld, s, keys[k].name, "expected a list of groups like ( { name = \"chat\"; } )");
  release_namespaces(list);
  if (n == 0) return 0;
  list->items = calloc((size_t)n, sizeof *list->items);
  if (!list->items) return fail(ld, s, keys[k].name, "out of memory");
  for (int i = 0; i < n; i++) {
    const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
    if (!config_setting_is_group(g))
      return fail(ld, g, keys[k].name, "element %d is not a group { ... }", i + 1);
    struct namespace_config *ns = &list->items[list->count++]; /* counted first: released on any error */
    if (apply_defaults(&ns->options, true) != 0) return fail(ld, g, keys[k].name, "out of memory");
    if (namespace_name(ld, g, list) != 0 || parse_members(ld, g, NULL, &ns->options, ns->name) != 0 ||
        check_options(ld, g, &ns->options) != 0)
      return -1;
  }
  return 0;
}

/* A map presence prefix (KEY of group G) must name a namespace ("ns:") of subscription type TYPE. */
static int check_presence_prefix(struct load *ld, const struct config *cfg, const config_setting_t *g, const char *key,
                                 const char *prefix, const char *type) {
  if (prefix[0] == '\0') return 0;
  const config_setting_t *at = config_setting_get_member(g, key);
  const char *colon = strchr(prefix, ':');
  const struct namespace_config *ns = colon ? config_find_namespace(cfg, prefix, (size_t)(colon - prefix)) : NULL;
  if (ns == NULL || strcmp(ns->options.subscription_type, type) != 0)
    return fail(ld, at ? at : g, key, "\"%s\" must be \"<namespace>:\" of a namespace with subscription_type = \"%s\"",
                prefix, type);
  return 0;
}

/* Checks across top-level keys, once every key is read. */
static int check_config(struct load *ld, const config_t *lc, const struct config *cfg) {
  if (cfg->pong_timeout_ms >= cfg->ping_interval_ms) {
    const config_setting_t *at = config_lookup(lc, "pong_timeout");
    if (!at) at = config_lookup(lc, "ping_interval");
    char p[32], q[32];
    return fail(ld, at, "pong_timeout", "must be less than ping_interval (%s >= %s)",
                sd_duration_format(cfg->pong_timeout_ms, p, sizeof p),
                sd_duration_format(cfg->ping_interval_ms, q, sizeof q));
  }
  if (cfg->redis_sentinel_address_count > 0 && !cfg->redis_sentinel_master_name[0])
    return fail(ld, config_lookup(lc, "redis_sentinel_address"), "redis_sentinel_master_name",
                "must name the master when redis_sentinel_address is set");
  for (size_t i = 0; i < cfg->redis_sentinel_address_count; i++) {
    char why[256];
    if (check_redis_address(cfg->redis_sentinel_address[i], why, sizeof why) != 0)
      return fail(ld, config_lookup(lc, "redis_sentinel_address"), "redis_sentinel_address", "%s", why);
  }
  if (cfg->redis_address_count == 0)
    return fail(ld, config_lookup(lc, "redis_address"), "redis_address", "needs at least one address");
  for (size_t i = 0; i < cfg->redis_address_count; i++) {
    char why[256];
    if (check_redis_address(cfg->redis_address[i], why, sizeof why) != 0)
      return fail(ld, config_lookup(lc, "redis_address"), "redis_address", "%s", why);
  }
  for (size_t i = 0; i <= cfg->namespaces_count; i++) {
    const struct channel_options *o = i ? &cfg->namespaces[i - 1].options : &cfg->channel_defaults;
    const config_setting_t *g = i ? config_setting_get_elem(config_lookup(lc, "namespaces"), (unsigned)(i - 1))
                                  : config_root_setting(lc);
    if (check_presence_prefix(ld, cfg, g, "map_clients_presence_channel_prefix", o->map_clients_presence_channel_prefix,
                              "map_clients") != 0 ||
        check_presence_prefix(ld, cfg, g, "map_users_presence_channel_prefix", o->map_users_presence_channel_prefix,
                              "map_users") != 0)
      return -1;
  }
  return check_options(ld, config_root_setting(lc), &cfg->channel_defaults);
}

/* An empty name means the host name. */
static int resolve_name(struct config *cfg) {
  if (cfg->name && *cfg->name) return 0;
  char host[256];
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  return text_string(host, &cfg->name);
}

/* ---- exported ---- */

int config_defaults(struct config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  if (apply_defaults(cfg, false) != 0 || apply_defaults(&cfg->channel_defaults, true) != 0 ||
      resolve_name(cfg) != 0) {
    config_cleanup(cfg);
    return -1;
  }
  return 0;
}

/* Reads PATH with libconfig into LC; file errors and syntax errors become messages. */
static int read_file(struct load *ld, config_t *lc) {
  struct stat st;
  int saved = 0;
  FILE *f = fopen(ld->path, "r");
  if (!f)
    saved = errno;
  else if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
    saved = EISDIR; /* fopen accepts a directory; libconfig would only say "file I/O error" */
  if (f) fclose(f);
  if (saved) {
    if (ld->err && ld->errlen)
      snprintf(ld->err, ld->errlen, "%s: cannot open: %s", ld->path, strerror(saved));
    return -1;
  }
  if (config_read_file(lc, ld->path) == CONFIG_TRUE) return 0;
  const char *file = config_error_file(lc) ? config_error_file(lc) : ld->path;
  if (ld->err && ld->errlen) {
    if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
      snprintf(ld->err, ld->errlen, "%s: cannot read: %s", file, config_error_text(lc));
    else
      snprintf(ld->err, ld->errlen, "%s:%d: %s", file, config_error_line(lc), config_error_text(lc));
  }
  return -1;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen) {
  struct load ld = {path, err, errlen};
  config_t lc;
  int rc = -1;
  if (err && errlen) err[0] = '\0';
  if (config_defaults(cfg) != 0) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (!path) {
    if (access(CONFIG_DEFAULT_PATH, F_OK) != 0 && errno == ENOENT) return 0;
    ld.path = CONFIG_DEFAULT_PATH;
  }
  config_init(&lc);
  if (read_file(&ld, &lc) != 0) goto out;
  if (parse_members(&ld, config_root_setting(&lc), cfg, &cfg->channel_defaults, NULL) != 0) goto out;
  if (check_config(&ld, &lc, cfg) != 0) goto out;
  if (resolve_name(cfg) != 0 || !(cfg->source_path = strdup(ld.path))) {
    fail(&ld, NULL, "name", "out of memory");
    goto out;
  }
  rc = 0;
out:
  config_destroy(&lc);
  if (rc != 0) config_cleanup(cfg);
  return rc;
}

void config_cleanup(struct config *cfg) {
  auth_keys_free(cfg->auth);
  cfg->auth = NULL;
  for (size_t k = 0; k < KEY_COUNT; k++) ops[keys[k].type].release(slot_at(cfg, &cfg->channel_defaults, k));
  free(cfg->source_path);
  cfg->source_path = NULL;
}

const struct namespace_config *config_find_namespace(const struct config *cfg, const char *name, size_t len) {
  for (size_t i = 0; i < cfg->namespaces_count; i++) {
    const struct namespace_config *ns = &cfg->namespaces[i];
    if (strlen(ns->name) == len && memcmp(ns->name, name, len) == 0) return ns;
  }
  return NULL;
}

const struct config_key *config_keys(size_t *count) {
  *count = KEY_COUNT;
  return keys;
}

/* Copies one non-reloadable scalar or string value; returns true when it differed. */
static bool keep_value(enum config_type type, void *dst, const void *src) {
  switch (type) {
    case CONFIG_BOOL: {
      bool changed = *(bool *)dst != *(const bool *)src;
      *(bool *)dst = *(const bool *)src;
      return changed;
    }
    case CONFIG_INT:
    case CONFIG_DURATION: {
      bool changed = *(int64_t *)dst != *(const int64_t *)src;
      *(int64_t *)dst = *(const int64_t *)src;
      return changed;
    }
    case CONFIG_STRING: {
      const char *old = *(char *const *)src;
      if (strcmp(*(char **)dst, old) == 0) return false;
      char *copy = strdup(old);
      if (copy == NULL) return false; /* keep the new text: still a valid config */
      free(*(char **)dst);
      *(char **)dst = copy;
      return true;
    }
    case CONFIG_STRING_LIST:
    case CONFIG_STRINGS: {
      struct string_list *to = dst;
      const struct string_list *from = src;
      bool same = to->count == from->count;
      for (size_t i = 0; same && i < to->count; i++) same = strcmp(to->items[i], from->items[i]) == 0;
      if (same) return false;
      struct string_list copy = {calloc(from->count ? from->count : 1, sizeof *copy.items), 0};
      for (size_t i = 0; copy.items && i < from->count; i++)
        if ((copy.items[copy.count] = strdup(from->items[i])) != NULL) copy.count++;
      if (copy.items == NULL || copy.count != from->count) { /* keep the new lists: still a valid config */
        release_string_list(&copy);
        return false;
      }
      release_string_list(to);
      *to = copy;
      return true;
    }
    default:
      return false; /* namespaces are reloadable */
  }
}

size_t config_keep_static(struct config *fresh, const struct config *running, const char **changed,
                          size_t max) {
  size_t n = 0;
  for (size_t k = 0; k < KEY_COUNT; k++) {
    if (keys[k].reloadable || keys[k].channel_option) continue;
    if (keep_value(keys[k].type, (char *)fresh + slots[k].offset, (const char *)running + slots[k].offset) &&
        n < max)
      changed[n++] = keys[k].name;
  }
  return n;
}

struct config *config_share(struct config *cfg) {
  atomic_store(&cfg->refs, 1);
  return cfg;
}

const struct config *config_ref(const struct config *cfg) {
  struct config *c = (struct config *)cfg; /* the count is the one field a reader may change */
  if (atomic_load_explicit(&c->refs, memory_order_relaxed) > 0)
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  return cfg;
}

void config_unref(const struct config *cfg) {
  struct config *c = (struct config *)cfg;
  if (c == NULL || atomic_load_explicit(&c->refs, memory_order_relaxed) == 0) return;
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
  config_cleanup(c);
  free(c);
}
