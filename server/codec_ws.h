/* codec_ws: the WebSocket wire formats (PROTOCOL.md §2.6). Each reply is one complete, unmasked
 * WebSocket frame: JSON replies as text frames (one reply per message), protobuf replies as binary
 * frames holding the uvarint-delimited reply. A Disconnect push is encoded as a Close frame with the
 * code and the reason (cut to 123 bytes,
 * never inside a code point) instead, since WebSocket clients learn disconnects that way. */
#ifndef CODEC_WS_H
#define CODEC_WS_H

#include "codec.h"

/* WebSocket opcodes (RFC 6455 §5.2). */
enum ws_opcode {
  WS_OP_CONT = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA
};

/* Builds one unmasked final frame of OPCODE around PAYLOAD[0..LEN) into a new frame (one reference for
 * the caller). Returns NULL when out of memory. Pure; any thread. */
struct frame *codec_ws_frame(enum ws_opcode opcode, const uint8_t *payload, size_t len);

/* A Close frame with CODE and REASON (UTF-8, cut to at most 123 bytes at a code point boundary;
 * NULL = none). Returns NULL when out of memory. */
struct frame *codec_ws_close_frame(uint32_t code, const char *reason);

extern const struct codec codec_ws_json;
extern const struct codec codec_ws_pb;

#endif
