/* codec_json: the JSON wire codec (Centrifugo protocol v2 JSON, PROTOCOL.md §3.3, §4.2). A command
 * stream is '\n'-separated JSON objects (blank lines and a trailing '\r' are tolerated); a reply is one
 * compact JSON line ending in '\n'. The mapping between JSON and the protobuf-c structs lives in
 * codec_json_map.c; this file only does the framing and the /emulation body.
 *
 * Invariant: an encoded reply never contains a raw '\n' before its terminator (compact output escapes
 * newlines inside strings, and embedded application JSON is re-serialized compactly), so it is safe for
 * line-based framing and for SSE. UTF-8 is written as is (no \u escapes). No state: any thread. */
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"

/* True when [p, p+len) holds only JSON whitespace (a blank line between commands). */
static int is_blank(const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
  return 1;
}

/* Finds the line starting at P: stores its length (without '\n' and a trailing '\r') in *len and the
 * start of the following line in *next. Returns 0 or -CODEC_ETOOBIG when the line exceeds MAX. */
static int line_at(const uint8_t *p, const uint8_t *end, size_t max, size_t *len, const uint8_t **next) {
  size_t avail = (size_t)(end - p);
  size_t window = max < avail ? max + 1 : avail; /* a '\n' after max+1 bytes is too late anyway */
  const uint8_t *nl = memchr(p, '\n', window);
  if (nl == NULL && avail > max) return -CODEC_ETOOBIG;
  const uint8_t *stop = nl ? nl : end;
  *next = nl ? nl + 1 : end;
  *len = (size_t)(stop - p);
  if (*len > 0 && p[*len - 1] == '\r') (*len)--;
  return 0;
}

static int json_next_command(const uint8_t **pos, const uint8_t *end, size_t max_command,
                             Protocol__Command **out) {
  const uint8_t *p = *pos, *next;
  size_t len;
  for (;; p = next) {
    if (p >= end) {
      *pos = end;
      return 1;
    }
    int rc = line_at(p, end, max_command, &len, &next);
    if (rc != 0) return rc;
    if (!is_blank(p, len)) break;
  }
  /* JSON_ALLOW_NUL keeps "\u0000" inside embedded application data; string fields reject it later. */
  json_t *v = json_loadb((const char *)p, len, JSON_ALLOW_NUL, NULL);
  if (v == NULL) return -CODEC_EMALFORMED;
  ProtobufCMessage *msg;
  int rc = codec_json_message_from_value(&protocol__command__descriptor, v, &msg);
  json_decref(v);
  if (rc != 0) return rc;
  *out = (Protocol__Command *)msg;
  *pos = next;
  return 0;
}

static int json_encode_reply(const Protocol__Reply *reply, struct frame **out) {
  json_t *v;
  int rc = codec_json_encode_message(&reply->base, &v);
  if (rc != 0) return rc;
  ProtobufCBinaryData text; /* one serialization pass into a malloc'd buffer, then one copy */
  rc = codec_json_raw_from_value(v, &text);
  json_decref(v);
  if (rc != 0) return rc;
  struct frame *f = frame_new(text.len + 1);
  if (f != NULL) {
    memcpy(f->data, text.data, text.len);
    f->data[text.len] = '\n';
    *out = f;
  }
  free(text.data);
  return f ? 0 : -CODEC_ENOMEM;
}

/* Copies the optional string member KEY of the object BODY into *dst (missing or null = empty). */
static int emulation_string(json_t *body, const char *key, char **dst) {
  json_t *v = json_object_get(body, key);
  if (v == NULL || json_is_null(v)) return 0;
  if (!json_is_string(v) || memchr(json_string_value(v), '\0', json_string_length(v)))
    return -CODEC_EMALFORMED;
  if (json_string_length(v) == 0) return 0;
  *dst = strdup(json_string_value(v));
  return *dst ? 0 : -CODEC_ENOMEM;
}

/* Takes the bytes of the `data` string (the newline-joined commands); any other type is malformed. */
static int emulation_data(json_t *body, ProtobufCBinaryData *dst) {
  json_t *v = json_object_get(body, "data");
  if (!json_is_string(v)) return -CODEC_EMALFORMED;
  size_t len = json_string_length(v);
  if (len == 0) return 0;
  dst->data = malloc(len);
  if (dst->data == NULL) return -CODEC_ENOMEM;
  memcpy(dst->data, json_string_value(v), len);
  dst->len = len;
  return 0;
}

static int json_decode_emulation(const uint8_t *body, size_t len, Protocol__EmulationRequest **out) {
  json_t *v = json_loadb((const char *)body, len, JSON_ALLOW_NUL, NULL);
  if (!json_is_object(v)) {
    json_decref(v);
    return -CODEC_EMALFORMED;
  }
  Protocol__EmulationRequest *req = malloc(sizeof *req);
  int rc = -CODEC_ENOMEM;
  if (req != NULL) {
    protocol__emulation_request__init(req);
    rc = emulation_string(v, "session", &req->session);
    if (rc == 0) rc = emulation_string(v, "node", &req->node);
    if (rc == 0) rc = emulation_data(v, &req->data);
    if (rc != 0) protocol__emulation_request__free_unpacked(req, NULL);
  }
  json_decref(v);
  if (rc == 0) *out = req;
  return rc;
}

const struct codec codec_json = {
    .name = "json",
    .kind = CODEC_JSON,
    .next_command = json_next_command,
    .encode_reply = json_encode_reply,
    .decode_emulation = json_decode_emulation,
};
