/* trace_decode: frame bytes back to JSON for `streamctl trace` (see trace_decode.h). The framing of each
 * codec kind is undone by one function per kind in a table; what is left is a JSON reply (shown as the
 * JSON it is) or a protobuf Reply (unpacked and shown through the JSON codec's descriptor walk). The
 * unidirectional kinds carry bare pushes: each is shown inside {"push": ...}, as a bidirectional client
 * would get it, so that a trace reads the same whatever the transport. */
#include "trace_decode.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "codec_json.h"
#include "pb_guard.h"

#define UNDECODABLE_SHOWN 64 /* bytes of an undecodable frame shown, in hex */

static const char *const type_names[] = {
    [TRACE_FRAME_COMMAND] = "command",
    [TRACE_FRAME_PONG] = "pong",
    [TRACE_FRAME_REPLY] = "reply",
    [TRACE_FRAME_PUSH] = "push",
    [TRACE_FRAME_PING] = "ping",
    [TRACE_FRAME_DISCONNECT] = "disconnect",
    [TRACE_FRAME_UNDECODABLE] = "undecodable",
};

const char *trace_frame_type_name(enum trace_frame_type type) { return type_names[type]; }

static json_t *undecodable(const uint8_t *data, size_t len) {
  char hex[2 * UNDECODABLE_SHOWN + 4];
  size_t n = len < UNDECODABLE_SHOWN ? len : UNDECODABLE_SHOWN, k = 0;
  for (size_t i = 0; i < n; i++) k += (size_t)snprintf(hex + k, sizeof hex - k, "%02x", data[i]);
  if (n < len) snprintf(hex + k, sizeof hex - k, "...");
  return json_pack("{ss}", "undecodable", hex);
}

/* --- replies --- */

/* The payload of one frame once its framing is gone: JSON text or protobuf bytes. */
struct payload {
  const uint8_t *data;
  size_t len;
  bool protobuf;
  bool ws_close; /* a WebSocket Close frame: DATA is its code and reason */
  bool bare_push; /* a unidirectional transport's frame: the Push itself, without the Reply around it */
};

/* Strips one framing; returns false when the frame does not have it. */
typedef bool (*unframe_fn)(const uint8_t *data, size_t len, struct payload *out);

static bool unframe_json(const uint8_t *data, size_t len, struct payload *out) {
  *out = (struct payload){data, len, false, false, false};
  return true; /* the line's newline is whitespace to the parser */
}

static bool unframe_pb(const uint8_t *data, size_t len, struct payload *out) {
  const uint8_t *p = data, *end = data + len;
  uint64_t n;
  if (pb_guard_uvarint(&p, end, &n) != 0 || n != (uint64_t)(end - p)) return false;
  *out = (struct payload){p, (size_t)n, true, false, false};
  return true;
}

static bool unframe_sse(const uint8_t *data, size_t len, struct payload *out) {
  static const char prefix[] = "data: ";
  if (len < sizeof prefix - 1 || memcmp(data, prefix, sizeof prefix - 1) != 0) return false;
  *out = (struct payload){data + sizeof prefix - 1, len - (sizeof prefix - 1), false, false, false};
  return true;
}

/* The WebSocket frame header (RFC 6455 §5.2; server frames are not masked). */
static bool unframe_ws(const uint8_t *data, size_t len, struct payload *out, bool protobuf) {
  if (len < 2) return false;
  size_t hl = 2, n = data[1] & 0x7F;
  if (n == 126) hl = 4;
  if (n == 127) hl = 10;
  if (len < hl) return false;
  if (hl == 4) n = (size_t)data[2] << 8 | data[3];
  if (hl == 10) {
    n = 0;
    for (int i = 0; i < 8; i++) n = n << 8 | data[2 + i];
  }
  if (n != len - hl) return false;
  *out = (struct payload){data + hl, n, protobuf, (data[0] & 0x0F) == 0x8, false};
  if (protobuf && !out->ws_close) return unframe_pb(data + hl, n, out);
  return true;
}

static bool unframe_ws_json(const uint8_t *data, size_t len, struct payload *out) {
  return unframe_ws(data, len, out, false);
}

static bool unframe_ws_pb(const uint8_t *data, size_t len, struct payload *out) {
  return unframe_ws(data, len, out, true);
}

/* The unidirectional kinds frame bare pushes the way their bidirectional counterparts frame replies. */
static bool unframe_uni_line(const uint8_t *data, size_t len, struct payload *out) {
  out->bare_push = unframe_json(data, len, out);
  return out->bare_push;
}

static bool unframe_uni_sse(const uint8_t *data, size_t len, struct payload *out) {
  out->bare_push = unframe_sse(data, len, out);
  return out->bare_push;
}

static bool unframe_uni_ws(const uint8_t *data, size_t len, struct payload *out) {
  out->bare_push = unframe_ws_json(data, len, out) && !out->ws_close;
  return out->bare_push || out->ws_close;
}

static const unframe_fn unframers[CODEC_COUNT] = {
    [CODEC_JSON] = unframe_json,       [CODEC_PROTOBUF] = unframe_pb,       [CODEC_SSE] = unframe_sse,
    [CODEC_WS_JSON] = unframe_ws_json, [CODEC_WS_PROTOBUF] = unframe_ws_pb,
    [CODEC_UNI_HTTP_STREAM] = unframe_uni_line, [CODEC_UNI_SSE] = unframe_uni_sse, [CODEC_UNI_WS] = unframe_uni_ws,
};

static json_t *ws_close(const struct payload *p, enum trace_frame_type *type) {
  *type = TRACE_FRAME_DISCONNECT;
  unsigned code = p->len >= 2 ? (unsigned)p->data[0] << 8 | p->data[1] : 0;
  json_t *reason = p->len > 2 ? json_stringn((const char *)p->data + 2, p->len - 2) : json_string("");
  return json_pack("{s{sIso}}", "close", "code", (json_int_t)code, "reason",
                   reason ? reason : json_string(""));
}

/* What a decoded reply is. */
static enum trace_frame_type reply_type(json_t *reply) {
  json_t *push = json_object_get(reply, "push");
  if (json_object_get(push, "disconnect")) return TRACE_FRAME_DISCONNECT;
  if (push) return TRACE_FRAME_PUSH;
  return json_object_size(reply) == 0 ? TRACE_FRAME_PING : TRACE_FRAME_REPLY;
}

json_t *trace_decode_reply(enum codec_kind kind, const uint8_t *data, size_t len,
                           enum trace_frame_type *type) {
  struct payload p = {0};
  json_t *value = NULL;
  *type = TRACE_FRAME_UNDECODABLE;
  if ((unsigned)kind >= CODEC_COUNT || !unframers[kind](data, len, &p)) return undecodable(data, len);
  if (p.ws_close) return ws_close(&p, type);
  if (p.protobuf) {
    Protocol__Reply *r = protocol__reply__unpack(NULL, p.len, p.data);
    if (r) codec_json_encode_message(&r->base, &value);
    if (r) protobuf_c_message_free_unpacked(&r->base, NULL);
  } else {
    value = json_loadb((const char *)p.data, p.len, 0, NULL);
  }
  if (!json_is_object(value)) {
    json_decref(value);
    return undecodable(data, len);
  }
  if (p.bare_push && json_object_size(value) > 0) { /* shown as the Reply a bidirectional client gets */
    json_t *wrapped = json_pack("{so}", "push", value);
    if (wrapped == NULL) return undecodable(data, len);
    value = wrapped;
  }
  *type = reply_type(value);
  return value;
}

/* --- commands --- */

void trace_decode_commands(enum codec_kind kind, const uint8_t *data, size_t len,
                           void (*fn)(void *arg, json_t *command, size_t size, enum trace_frame_type type),
                           void *arg) {
  if ((unsigned)kind >= CODEC_COUNT || len == 0) return;
  const struct codec *codec = codec_get(kind);
  const uint8_t *pos = data, *end = data + len;
  while (pos < end) {
    const uint8_t *start = pos;
    Protocol__Command *cmd = NULL;
    int rc = codec->next_command(&pos, end, len, &cmd);
    if (rc == 1) return;
    bool text = kind != CODEC_PROTOBUF && kind != CODEC_WS_PROTOBUF;
    const uint8_t *stop = pos;
    while (text && start < stop && strchr(" \t\r\n", *start)) start++;
    while (text && stop > start && strchr(" \t\r\n", stop[-1])) stop--;
    json_t *value = NULL; /* the separators are not the command's: SIZE is the command's own bytes */
    if (rc == 0) codec_json_encode_message(&cmd->base, &value);
    if (cmd) protobuf_c_message_free_unpacked(&cmd->base, NULL);
    if (value == NULL) {
      fn(arg, undecodable(start, (size_t)(end - start)), (size_t)(end - start), TRACE_FRAME_UNDECODABLE);
      return;
    }
    /* the id does not make a command: a pong is a command with no method */
    size_t methods = json_object_size(value) - (json_object_get(value, "id") != NULL);
    fn(arg, value, (size_t)(stop - start), methods == 0 ? TRACE_FRAME_PONG : TRACE_FRAME_COMMAND);
  }
}
