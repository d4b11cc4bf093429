/* stats: recording into struct server_stats (server.h) and rendering it. Disconnect codes and
 * emulation statuses map to fixed counter slots through tables here, so /metrics and `info` read the
 * same numbers. Every function is lock-free and callable from any thread. */
#ifndef STATS_H
#define STATS_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

/* Counts a session closed with CODE. */
void stats_disconnect(struct server *srv, uint32_t code);

/* Counts an /emulation response with HTTP STATUS. */
void stats_emulation(struct server *srv, unsigned status);

/* The disconnect code and emulation status of counter slot I (0 when the slot is unused), so that
 * renderers can walk the slots. */
uint32_t stats_disconnect_code(size_t i);
unsigned stats_emulation_status(size_t i);

#endif
