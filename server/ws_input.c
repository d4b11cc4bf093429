/* ws_input: WebSocket frames in (see ws_input.h). The buffer holds what the socket gave; frames are
 * unmasked in place and handed out; a message in fragments is copied into `msg` until its final frame.
 * The buffer grows to the size of the largest frame seen (bounded by max_message plus a header). */
#include "ws_input.h"

#include <stdlib.h>
#include <string.h>

#include "codec_ws.h"
#include "utf8.h"

#define WS_IN_INITIAL 4096
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_TOO_BIG 1009

int ws_input_init(struct ws_input *in, size_t max_message, const uint8_t *initial, size_t len) {
  memset(in, 0, sizeof *in);
  in->max_message = max_message;
  in->cap = len > WS_IN_INITIAL ? len : WS_IN_INITIAL;
  in->buf = malloc(in->cap);
  if (in->buf == NULL) return -1;
  if (len) memcpy(in->buf, initial, len);
  in->len = len;
  in->need = 2;
  return 0;
}

void ws_input_cleanup(struct ws_input *in) {
  free(in->buf);
  free(in->msg);
  in->buf = in->msg = NULL;
}

static bool grow(uint8_t **p, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : WS_IN_INITIAL;
  while (c < need) c *= 2;
  uint8_t *n = realloc(*p, c);
  if (n == NULL) return false;
  *p = n;
  *cap = c;
  return true;
}

uint8_t *ws_input_space(struct ws_input *in, size_t want, size_t *avail) {
  size_t need = in->off + in->need > in->len + want ? in->off + in->need : in->len + want;
  if (!grow(&in->buf, &in->cap, need)) return NULL;
  *avail = in->cap - in->len;
  return in->buf + in->len;
}

void ws_input_commit(struct ws_input *in, size_t n) {
  if (in->stopped) return; /* nothing more is parsed: keep no bytes */
  in->len += n;
}

static void stop(struct ws_input *in, const struct ws_input_ops *ops, void *ctx, uint32_t code,
                 const char *reason) {
  in->stopped = true;
  ops->fail(ctx, code, reason);
}

/* Opcodes a frame may carry (§5.2): 3-7 and 11-15 are reserved. */
static const bool opcode_known[16] = {[WS_OP_CONT] = true,  [WS_OP_TEXT] = true, [WS_OP_BINARY] = true,
                                      [WS_OP_CLOSE] = true, [WS_OP_PING] = true, [WS_OP_PONG] = true};

/* Close codes a peer may send (§7.4): the registered ones except those that must never be on the wire
 * (1004 reserved, 1005 no code, 1006 abnormal, 1015 TLS), and the 3000-4999 ranges for libraries and
 * applications. */
static bool close_code_valid(uint32_t code) {
  return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
         (code >= 3000 && code <= 4999);
}

/* Checks the text of a text message, piece by piece (§8.1). Returns false after failing. */
static bool text_ok(struct ws_input *in, const struct ws_input_ops *ops, void *ctx, const uint8_t *p,
                    size_t len, bool fin) {
  if (!in->msg_text) return true;
  if (utf8_feed(&in->utf8, p, len) == 0 && (!fin || utf8_complete(&in->utf8))) return true;
  stop(in, ops, ctx, WS_CLOSE_INVALID_DATA, "text is not UTF-8");
  return false;
}

static void on_data(struct ws_input *in, const struct ws_input_ops *ops, void *ctx, unsigned op, bool fin,
                    const uint8_t *p, size_t len) {
  if ((op == WS_OP_CONT) != in->in_msg) {
    stop(in, ops, ctx, WS_CLOSE_PROTOCOL_ERROR, "unexpected continuation");
    return;
  }
  if (op != WS_OP_CONT) {
    in->msg_text = op == WS_OP_TEXT;
    in->utf8 = (struct utf8_check)UTF8_CHECK_INIT;
  }
  if (!text_ok(in, ops, ctx, p, len, fin)) return;
  if (fin && !in->in_msg) {
    ops->message(ctx, p, len);
    return;
  }
  if (!grow(&in->msg, &in->msg_cap, in->msg_len + len)) {
    stop(in, ops, ctx, WS_CLOSE_TOO_BIG, "out of memory");
    return;
  }
  if (len > 0) { /* an empty fragment may come before any byte, while msg is still NULL */
    memcpy(in->msg + in->msg_len, p, len);
    in->msg_len += len;
  }
  in->in_msg = !fin;
  if (fin) {
    ops->message(ctx, in->msg, in->msg_len);
    in->msg_len = 0;
  }
}

/* A Close: no payload, or a valid code and a UTF-8 reason (§5.5.1, §7.4). */
static void on_close(struct ws_input *in, const struct ws_input_ops *ops, void *ctx, const uint8_t *p,
                     size_t len) {
  uint32_t code = len >= 2 ? (uint32_t)p[0] << 8 | p[1] : 0;
  if (len == 1 || (len >= 2 && !close_code_valid(code))) {
    stop(in, ops, ctx, WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
    return;
  }
  if (len > 2 && !utf8_valid(p + 2, len - 2)) {
    stop(in, ops, ctx, WS_CLOSE_INVALID_DATA, "close reason is not UTF-8");
    return;
  }
  in->stopped = true;
  ops->close(ctx, code);
}

/* Parses the frame at buf[off..len). Returns its size, or 0 when it is incomplete (in->need set) or
 * input stopped. */
static size_t parse_frame(struct ws_input *in, const struct ws_input_ops *ops, void *ctx) {
  uint8_t *b = in->buf + in->off;
  size_t avail = in->len - in->off, hl = 2;
  in->need = 2;
  if (avail < 2) return 0;
  unsigned op = b[0] & 0x0Fu;
  bool fin = (b[0] & 0x80u) != 0, control = (op & 0x8u) != 0;
  uint64_t len = b[1] & 0x7Fu;
  if (!opcode_known[op]) {
    stop(in, ops, ctx, WS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
    return 0;
  }
  if ((b[0] & 0x70u) || !(b[1] & 0x80u) || (control && (!fin || len > 125))) {
    stop(in, ops, ctx, WS_CLOSE_PROTOCOL_ERROR, "bad frame");
    return 0;
  }
  if (len >= 126) {
    hl += len == 126 ? 2 : 8;
    if (avail < hl) return (in->need = hl), 0;
    uint64_t l = 0;
    for (size_t i = 2; i < hl; i++) l = l << 8 | b[i];
    len = l;
  }
  if (!control && (len > in->max_message || in->msg_len + len > in->max_message)) {
    stop(in, ops, ctx, WS_CLOSE_TOO_BIG, "message too big");
    return 0;
  }
  size_t total = hl + 4 + (size_t)len;
  in->need = total;
  if (avail < total) return 0;
  uint8_t *p = b + hl + 4;
  for (size_t i = 0; i < len; i++) p[i] ^= b[hl + (i & 3)];
  if (op == WS_OP_PING)
    ops->ping(ctx, p, (size_t)len);
  else if (op == WS_OP_CLOSE)
    on_close(in, ops, ctx, p, (size_t)len);
  else if (op != WS_OP_PONG)
    on_data(in, ops, ctx, op, fin, p, (size_t)len);
  return total;
}

/* Frames are parsed where they lie (off moves on); what is left of an incomplete frame is moved to the
 * front once, after the last complete one, so each byte is moved at most once per parse. */
void ws_input_parse(struct ws_input *in, const struct ws_input_ops *ops, void *ctx) {
  while (!in->stopped) {
    size_t n = parse_frame(in, ops, ctx);
    if (n == 0) break;
    in->off += n;
  }
  if (in->stopped) {
    in->len = in->off = 0;
    return;
  }
  if (in->off > 0) {
    size_t rest = in->len - in->off;
    memmove(in->buf, in->buf + in->off, rest);
    in->bytes_moved += rest;
    in->len = rest;
    in->off = 0;
  }
}
