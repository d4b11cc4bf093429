/* trace_decode: turns the bytes of one traced frame back into what it says, as JSON, for
 * `streamctl trace` (trace.h records the bytes; the admin thread decodes them when it writes the trace
 * out, so a traced session never pays for the decoding). Frames to a client are stripped of their
 * framing (the JSON line's newline, SSE's "data: ", a protobuf varint prefix, a WebSocket header)
 * and decoded as a Reply; protobuf is shown as its JSON form. Bytes from a client are split into
 * commands with the session's codec. Pure functions, no state: any thread. */
#ifndef TRACE_DECODE_H
#define TRACE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "codec.h"

/* What one decoded frame is, for the trace line's "type". */
enum trace_frame_type {
  TRACE_FRAME_COMMAND,    /* a command with a method (connect, subscribe, publish, ...) */
  TRACE_FRAME_PONG,       /* the empty command: a pong */
  TRACE_FRAME_REPLY,      /* the reply to a command (it has an id) */
  TRACE_FRAME_PUSH,       /* an asynchronous push (publication, join, leave, message, ...) */
  TRACE_FRAME_PING,       /* the empty reply: a ping */
  TRACE_FRAME_DISCONNECT, /* a Disconnect push, or WebSocket's Close frame that carries it */
  TRACE_FRAME_UNDECODABLE,
};

/* The name of TYPE as trace lines spell it ("command", "pong", ...). */
const char *trace_frame_type_name(enum trace_frame_type type);

/* Decodes the frame DATA[0..LEN) queued to a client of codec KIND: a new JSON value (the Reply as its
 * JSON form; {"close":{"code":N,"reason":"..."}} for a WebSocket Close frame; {"undecodable":"<hex of
 * the first bytes>"} when it cannot be read) and its type in *TYPE. Returns NULL only when out of
 * memory. */
json_t *trace_decode_reply(enum codec_kind kind, const uint8_t *data, size_t len,
                           enum trace_frame_type *type);

/* Splits the client bytes DATA[0..LEN) (one WebSocket message or one emulation request's data) into
 * commands with codec KIND's reader and calls FN(ARG, command, size, type) for each, in order: COMMAND is
 * a new JSON value the callee owns (the Command's JSON form, or {"undecodable":...} for the rest of the
 * bytes after a command that cannot be read, which ends the walk), SIZE its bytes on the wire. */
void trace_decode_commands(enum codec_kind kind, const uint8_t *data, size_t len,
                           void (*fn)(void *arg, json_t *command, size_t size, enum trace_frame_type type),
                           void *arg);

#endif
