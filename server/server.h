/* server: the process-wide context every module reaches through its session or request: the loaded
 * configuration, this node's id, the hub, the broker, the session registry and the timer wheel.
 * It is built once in main.c before the HTTP daemon starts and torn down after it stops; its fields
 * are set once and only read afterwards (counters are atomics). */
#ifndef SERVER_H
#define SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ids.h"

struct hub;
struct broker;
struct registry;
struct timer_wheel;
struct auth_keys;
struct hangup;
struct heap_trim;
struct ws;
struct loops;
struct workers;
struct http_client;

/* Counters for `info`, the admin socket and /metrics (monotonic; gauges are computed when read). */
#define STATS_DISCONNECT_CODES 24 /* slots for disconnect codes, see stats_disconnect_slot() */
#define STATS_HTTP_STATUSES 8     /* slots for emulation response statuses */
/* One event proxy's numbers (proxy_calls.c), indexed by enum proxy_kind (proxy.h). */
#define STATS_PROXY_KINDS 6
struct proxy_stats {
  atomic_uint_fast64_t requests; /* answered or failed */
  atomic_uint_fast64_t errors;   /* failed: timeout, network, not 200, not a valid answer */
  atomic_uint_fast64_t micros;   /* total time of the requests */
  atomic_uint in_flight;
};

struct server_stats {
  atomic_uint_fast64_t messages_in;  /* commands received from clients */
  atomic_uint_fast64_t messages_out; /* frames queued to clients */
  atomic_uint_fast64_t bytes_in;     /* command bytes received from clients */
  atomic_uint_fast64_t bytes_out;    /* frame bytes queued to clients */
  atomic_uint_fast64_t publications; /* publications accepted (client, API, admin) */
  atomic_uint_fast64_t queue_drops;  /* sessions closed because their queue overflowed (3008) */
  atomic_uint_fast64_t connections;  /* sessions ever connected */
  atomic_uint_fast64_t disconnects[STATS_DISCONNECT_CODES];
  atomic_uint_fast64_t emulation[STATS_HTTP_STATUSES];
  struct proxy_stats proxy[STATS_PROXY_KINDS];
};

struct server {
  /* The running configuration, swapped by SIGHUP (server_config.c). Never read it directly: take a
   * reference with server_config_get() for reloadable keys (channel options, namespaces, origins,
   * hosts, token keys, api_key), or read keys that only change on restart from boot_cfg. */
  const struct config *_Atomic config;
  pthread_rwlock_t config_lock; /* readers hold it only while taking their reference */
  /* The configuration loaded at start (main's): valid until exit. Its non-reloadable keys are the
   * running values (a reload keeps them); its reloadable ones may be stale. */
  const struct config *boot_cfg;
  char node_id[ID_UUID_LEN + 1];
  struct hub *hub;
  const struct session_hooks *session_hooks; /* what sessions call above themselves (session.h) */
  struct broker *broker;
  struct registry *registry;
  struct timer_wheel *timers;
  struct hangup *hangup; /* notices clients leaving suspended streams */
  struct heap_trim *heap_trim; /* gives freed memory back after a load peak (heap_trim.h) */
  struct ws *ws;         /* the WebSocket loop; NULL once stopped (ws_stop runs before http_stop) */
  struct loops *loops;   /* the core loops: HTTP connections and fan-out (http.c starts and stops them) */
  uint64_t started_ms;
  atomic_bool shutting_down; /* set first thing on SIGTERM: new streams are refused with 503 */
  atomic_uint routed_posts;  /* POSTs suspended while another node or a worker runs them (emulation.c,
                                api.c); shutdown waits for them before it stops MHD */
  struct workers *workers;   /* for calls that wait (workers.h); set at start-up */
  struct http_client *http_client; /* the event proxies' (NULL when none is configured) */
  struct server_stats stats;
};

/* ---- the running configuration (server_config.c) ---- */

/* Makes BOOT (owned by the caller, not shared, valid until exit) the running and the boot
 * configuration of SRV. Call before any thread reads it. */
void server_config_init(struct server *srv, const struct config *boot);

/* Drops SRV's reference to the running configuration (when a reload replaced the boot one). Call after
 * every thread that reads it has stopped. */
void server_config_cleanup(struct server *srv);

/* A new reference to the running configuration: the caller reads it as long as it likes (across locks
 * and reloads) and drops it with config_unref(). Cost: a read lock and an atomic increment. Any thread. */
const struct config *server_config_get(struct server *srv);

/* Builds the token keys of CFG into cfg->auth. Returns 0, or -1 with a message in ERR (a bad PEM). */
int server_config_attach_keys(struct config *cfg, char *err, size_t errlen);

/* Logs what an operator should know about CFG at start (an empty api_key). */
void server_config_warn(const struct config *cfg);

/* SIGHUP: loads PATH again (PORT >= 0 and LOG_LEVEL non-NULL are command-line overrides) and, on
 * success, makes it the running configuration: reloadable keys take effect at once, the others keep
 * their running values (a warning names each one the file changed). The old configuration is freed
 * when its last reader drops its reference. A file that does not load changes nothing. Returns 0 or -1
 * (logged). Call from one thread at a time (main's signal loop). */
int server_config_reload(struct server *srv, const char *path, long port, const char *log_level);

#endif
