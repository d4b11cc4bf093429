/* ws_input: the receiving half of one WebSocket connection (RFC 6455 §5): the buffer its socket is read
 * into, frame parsing, unmasking, the reassembly of fragmented messages and the checks on what a client
 * may send. Complete data messages and control frames go to the caller's callbacks; the first
 * violation calls `fail` once with the close code to send, after which every further byte is ignored.
 *
 * Threads: a struct ws_input has one owner (the WebSocket loop thread) and no lock. Callbacks run on
 * the caller's thread, inside ws_input_parse, and must not call back into the same ws_input. */
#ifndef WS_INPUT_H
#define WS_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

/* What parsing reports. DATA/LEN point into the input's buffers and are valid during the call only. */
struct ws_input_ops {
  void (*message)(void *ctx, const uint8_t *data, size_t len); /* a complete text or binary message */
  void (*ping)(void *ctx, const uint8_t *payload, size_t len); /* answer with a pong of PAYLOAD */
  void (*close)(void *ctx, uint32_t code);                     /* the client's Close; 0 = no code */
  void (*fail)(void *ctx, uint32_t code, const char *reason);  /* a violation: close with CODE */
};

struct ws_input {
  uint8_t *buf; /* received bytes; buf[off..len) are not parsed yet */
  size_t off, len, cap;
  size_t need;  /* bytes buf[off..] must hold for the next frame to be complete */
  uint8_t *msg; /* a fragmented message being assembled */
  size_t msg_len, msg_cap;
  bool in_msg;            /* a fragmented message is open */
  bool msg_text;          /* the current message is text: its bytes must be UTF-8 */
  struct utf8_check utf8; /* where the check of the current text message stands */
  bool stopped;           /* fail or close was reported: input is ignored */
  size_t max_message;
  uint64_t bytes_moved; /* bytes moved to compact the buffer, over the input's life (for tests) */
};

/* Initialises IN for messages of at most MAX_MESSAGE bytes, holding a copy of INITIAL[0..LEN) (bytes
 * that arrived with the handshake). Returns 0 or -1 (out of memory; IN then holds nothing). */
int ws_input_init(struct ws_input *in, size_t max_message, const uint8_t *initial, size_t len);

/* Frees IN's buffers. */
void ws_input_cleanup(struct ws_input *in);

/* Room for the next read: makes at least WANT bytes (and whatever the next frame needs) writable at
 * the end of the buffer and returns where, with the writable size in *AVAIL; NULL when out of memory.
 * Call ws_input_commit with what was read there. */
uint8_t *ws_input_space(struct ws_input *in, size_t want, size_t *avail);
void ws_input_commit(struct ws_input *in, size_t n);

/* Parses every complete frame received so far and reports it through OPS. */
void ws_input_parse(struct ws_input *in, const struct ws_input_ops *ops, void *ctx);

#endif
