/* stats: the code ⇒ slot tables behind the counters in struct server_stats. Unknown codes share the
 * last slot (reported as code 0, "other"). */
#include "stats.h"

#include "codes.h"

static const uint32_t disconnect_codes[STATS_DISCONNECT_CODES - 1] = {
    DISCONNECT_CONNECTION_CLOSED,
    DISCONNECT_SHUTDOWN,
    DISCONNECT_SERVER_ERROR,
    DISCONNECT_EXPIRED,
    DISCONNECT_SLOW,
    DISCONNECT_WRITE_ERROR,
    DISCONNECT_INSUFFICIENT_STATE,
    DISCONNECT_NO_PONG,
    DISCONNECT_INVALID_TOKEN,
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_STALE,
    DISCONNECT_FORCE,
    DISCONNECT_CONNECTION_LIMIT,
    DISCONNECT_CHANNEL_LIMIT,
    DISCONNECT_INAPPROPRIATE_PROTOCOL,
    DISCONNECT_PERMISSION_DENIED,
    DISCONNECT_NOT_AVAILABLE,
};

static const unsigned emulation_statuses[STATS_HTTP_STATUSES - 1] = {204, 400, 403, 404, 405, 413, 500};

void stats_disconnect(struct server *srv, uint32_t code) {
  size_t i = 0;
  while (i < STATS_DISCONNECT_CODES - 1 && disconnect_codes[i] != code && disconnect_codes[i] != 0) i++;
  if (i < STATS_DISCONNECT_CODES - 1 && disconnect_codes[i] != code) i = STATS_DISCONNECT_CODES - 1;
  atomic_fetch_add_explicit(&srv->stats.disconnects[i], 1, memory_order_relaxed);
}

void stats_emulation(struct server *srv, unsigned status) {
  size_t i = 0;
  while (i < STATS_HTTP_STATUSES - 1 && emulation_statuses[i] != status) i++;
  atomic_fetch_add_explicit(&srv->stats.emulation[i], 1, memory_order_relaxed);
}

uint32_t stats_disconnect_code(size_t i) { return i < STATS_DISCONNECT_CODES - 1 ? disconnect_codes[i] : 0; }

unsigned stats_emulation_status(size_t i) { return i < STATS_HTTP_STATUSES - 1 ? emulation_statuses[i] : 0; }
