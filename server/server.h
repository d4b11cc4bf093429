/* server: the process-wide context every module reaches through its session or request: the loaded
 * configuration, this node's id, the hub, the broker, the session registry and the timer wheel.
 * It is built once in main.c before the HTTP daemon starts and torn down after it stops; its fields
 * are set once and only read afterwards (counters are atomics). */
#ifndef SERVER_H
#define SERVER_H

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
struct ws;

/* Counters for `info`, the admin socket and /metrics (monotonic; gauges are computed when read). */
#define STATS_DISCONNECT_CODES 24 /* slots for disconnect codes, see stats_disconnect_slot() */
#define STATS_HTTP_STATUSES 8     /* slots for emulation response statuses */
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
};

struct server {
  /* The running configuration. SIGHUP swaps in a new one (reloadable keys changed, the others kept);
   * readers load the pointer once per use and never keep it beyond the call they are in. */
  const struct config *_Atomic cfg;
  const struct config *boot_cfg; /* the one loaded at start (main's, not heap-allocated) */
  char node_id[ID_UUID_LEN + 1];
  struct hub *hub;
  struct broker *broker;
  struct registry *registry;
  struct timer_wheel *timers;
  struct hangup *hangup;          /* notices clients leaving suspended streams */
  struct ws *ws;                  /* the WebSocket loop; NULL once stopped (ws_stop runs before http_stop) */
  struct auth_keys *_Atomic auth; /* token keys of the running configuration (swapped with it on reload) */
  uint64_t started_ms;
  atomic_bool shutting_down; /* set first thing on SIGTERM: new streams are refused with 503 */
  struct server_stats stats;
};

#endif
