/* codec_json: the JSON wire codec (Centrifugo protocol v2 JSON, PROTOCOL.md §3.3, §4.2). A command
 * stream is '\n'-separated JSON objects (blank lines and a trailing '\r' are tolerated); a reply is one
 * compact JSON line ending in '\n'. The mapping between JSON and the protobuf-c structs lives in
 * codec_json_map.c (decoding) and codec_json_emit.c (encoding); this file only does the framing and the
 * /emulation body, which it reads with the json_span scanner (no jansson tree per request).
 *
 * Invariant: an encoded reply never contains a raw '\n' before its terminator (strings are escaped, and
 * raw line breaks are dropped from embedded application JSON), so it is safe for line-based framing and
 * for SSE. UTF-8 is written as is (no \u escapes). No state: any thread. */
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "json_span.h"

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

int codec_json_next_command(const uint8_t **pos, const uint8_t *end, size_t max_command,
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
  ProtobufCMessage *msg;
  int rc = codec_json_message_from_text(&protocol__command__descriptor, (const char *)p, len, &msg);
  if (rc != 0) return rc;
  *out = (Protocol__Command *)msg;
  *pos = next;
  return 0;
}

static int json_encode_reply(const Protocol__Reply *reply, struct frame **out) {
  return codec_json_encode_frame(&reply->base, out);
}

/* The members of an /emulation body, in the order of emulation_keys (v == NULL: absent). */
static const char *const emulation_keys[] = {"session", "node", "data"};

struct emulation_members {
  const char *v[3];
  size_t len[3];
};

/* Finds the members of the object BODY that emulation_keys names (a key given twice: the last wins, as
 * in jansson); the whole body is validated. Returns 0 or -CODEC_EMALFORMED. */
static int emulation_scan(const char *body, size_t len, struct emulation_members *m) {
  size_t start, end, n;
  struct json_span_iter it;
  struct json_span_str key;
  int more;
  if (json_span_document(body, len, &start, &end) != 0 ||
      json_span_iter_begin(&it, body + start, end - start) != 0 || it.close != '}')
    return -CODEC_EMALFORMED;
  while ((more = json_span_iter_next(&it, &key)) == 1) {
    json_span_value(it.text + it.pos, it.len - it.pos, &n); /* cannot fail: the document is valid */
    for (size_t i = 0; i < sizeof emulation_keys / sizeof emulation_keys[0]; i++)
      if (json_span_str_equals(&key, emulation_keys[i])) {
        m->v[i] = it.text + it.pos;
        m->len[i] = n;
      }
    it.pos += n;
  }
  return more == 0 ? 0 : -CODEC_EMALFORMED;
}

/* Unescapes the JSON string V (VLEN bytes) into a new NUL-terminated buffer *dst of *dlen bytes.
 * Anything but a string, or a string holding "\u0000" when NUL is not allowed, is malformed. */
static int emulation_string(const char *v, size_t vlen, bool allow_nul, char **dst, size_t *dlen) {
  struct json_span_str s;
  size_t end;
  if (json_span_string(v, vlen, &s, &end) != 0) return -CODEC_EMALFORMED;
  char *text = malloc(s.len + 1);
  if (text == NULL) return -CODEC_ENOMEM;
  *dlen = json_span_unescape(&s, text);
  text[*dlen] = '\0';
  if (!allow_nul && memchr(text, '\0', *dlen) != NULL) {
    free(text);
    return -CODEC_EMALFORMED;
  }
  *dst = text;
  return 0;
}

/* Fills REQ from the members: session and node are optional strings (missing or null = empty); data,
 * the newline-joined commands, must be a string. */
static int emulation_fill(const struct emulation_members *m, Protocol__EmulationRequest *req) {
  char **ids[] = {&req->session, &req->node};
  size_t n;
  for (size_t i = 0; i < 2; i++) {
    if (m->v[i] == NULL || m->v[i][0] == 'n') continue; /* null (the only value starting with 'n') */
    char *id;
    int rc = emulation_string(m->v[i], m->len[i], false, &id, &n);
    if (rc != 0) return rc;
    if (n > 0)
      *ids[i] = id;
    else
      free(id); /* empty stays at the protobuf_c_empty_string default */
  }
  if (m->v[2] == NULL) return -CODEC_EMALFORMED;
  char *data;
  int rc = emulation_string(m->v[2], m->len[2], true, &data, &n);
  if (rc != 0) return rc;
  req->data.data = (uint8_t *)data;
  req->data.len = n;
  return 0;
}

int codec_json_decode_emulation(const uint8_t *body, size_t len, Protocol__EmulationRequest **out) {
  struct emulation_members m = {{NULL, NULL, NULL}, {0, 0, 0}};
  int rc = emulation_scan((const char *)body, len, &m);
  if (rc != 0) return rc;
  Protocol__EmulationRequest *req = malloc(sizeof *req);
  if (req == NULL) return -CODEC_ENOMEM;
  protocol__emulation_request__init(req);
  rc = emulation_fill(&m, req);
  if (rc != 0) {
    protocol__emulation_request__free_unpacked(req, NULL);
    return rc;
  }
  *out = req;
  return 0;
}

const struct codec codec_json = {
    .name = "json",
    .kind = CODEC_JSON,
    .next_command = codec_json_next_command,
    .encode_reply = json_encode_reply,
    .decode_emulation = codec_json_decode_emulation,
};
