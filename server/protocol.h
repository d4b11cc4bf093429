/* protocol: the client protocol's command handlers (PROTOCOL.md §4.3), reached through one dispatch
 * table keyed by which request field of the Command is set. Handlers see only the protobuf-c structs and
 * the session; replies go out through session_send_reply, whatever the session's codec. */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <stdint.h>

#include "client.pb-c.h"

struct session;

/* Runs CMD (borrowed) for S. Returns 0, or a disconnect code (>= 3000) the caller closes S with.
 * Any thread; takes the hub and session locks as needed (never both in the wrong order). */
uint32_t protocol_dispatch(struct session *s, const Protocol__Command *cmd);

#endif
