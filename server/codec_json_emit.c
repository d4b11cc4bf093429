/* codec_json_emit: the descriptor-driven encoding of protobuf-c messages as compact JSON text
 * (PROTOCOL.md §4.2), written straight into one buffer. Keys are the proto field names (plain ASCII,
 * written as they are); fields come in descriptor (field-number) order; zero values are omitted except
 * the always-present ones; a set sub-message is always emitted, `{}` when empty; integers are exact
 * decimal text (uint64 beyond int64 included); `bytes` fields are embedded application JSON, copied
 * verbatim after json_span validates them (minus raw '\n' and '\r' and surrounding whitespace), so
 * numbers keep their spelling and size. Strings are escaped by jansson (json_dumpb of a json_string),
 * except those made only of printable ASCII without '"' and '\\', which need no escaping.
 *
 * Invariant: the output never holds a raw '\n' or '\r' (jansson escapes them inside strings, and they are
 * dropped from embedded JSON), so a reply is one line, safe for line framing and for SSE. Small replies
 * are built on the stack; the heap is used only beyond EMIT_STACK bytes. No state: any thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "codec_json_map.h"
#include "json_raw.h"
#include "json_span.h"
#include "utf8.h"

#define EMIT_STACK 2048

/* The output: starts in a caller's stack array, moves to the heap when it outgrows it. */
struct out {
  char *data;
  size_t len, cap;
  char *heap; /* == data once on the heap */
};

static int reserve(struct out *o, size_t n) {
  if (n <= o->cap - o->len) return 0;
  size_t cap = o->cap * 2;
  while (cap - o->len < n) cap *= 2;
  char *grown = realloc(o->heap, cap);
  if (grown == NULL) return -CODEC_ENOMEM;
  if (o->heap == NULL) memcpy(grown, o->data, o->len);
  o->data = o->heap = grown;
  o->cap = cap;
  return 0;
}

static int put(struct out *o, const char *s, size_t n) {
  int rc = reserve(o, n);
  if (rc == 0) {
    memcpy(o->data + o->len, s, n);
    o->len += n;
  }
  return rc;
}

static int put_str(struct out *o, const char *s) { return put(o, s, strlen(s)); }

/* Writes the jansson scalar V (taking the reference) as jansson dumps it. NULL V: a value jansson
 * refused, which JSON cannot carry (the callers tell that apart from jansson out of memory). */
static int put_json(struct out *o, json_t *v) {
  if (v == NULL) return -CODEC_EDATA;
  size_t n = json_dumpb(v, o->data + o->len, o->cap - o->len, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
  int rc = n == 0 ? -CODEC_ENOMEM : 0;
  if (rc == 0 && n > o->cap - o->len && (rc = reserve(o, n)) == 0) /* did not fit: again, with room */
    json_dumpb(v, o->data + o->len, n, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
  if (rc == 0) o->len += n;
  json_decref(v);
  return rc;
}

/* A real: one that is NaN or infinite JSON cannot carry; any other refused means out of memory. */
static int put_real(struct out *o, double d) {
  json_t *v = json_real(d);
  if (v == NULL) return isfinite(d) ? -CODEC_ENOMEM : -CODEC_EDATA;
  return put_json(o, v);
}

/* ---- values ---- */

static int put_integer(struct out *o, bool negative, uint64_t magnitude) {
  char digits[21];
  size_t i = sizeof digits;
  do {
    digits[--i] = (char)('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (negative) digits[--i] = '-';
  return put(o, digits + i, sizeof digits - i);
}

static int emit_int(struct out *o, const ProtobufCFieldDescriptor *f, const void *slot) {
  const struct codec_json_type *t = codec_json_type_of(f);
  int64_t s;
  uint64_t u;
  if (t->size == 4) {
    uint32_t u32;
    memcpy(&u32, slot, sizeof u32);
    s = (int32_t)u32;
    u = u32;
  } else {
    memcpy(&u, slot, sizeof u);
    s = (int64_t)u;
  }
  if (t->is_signed && s < 0) return put_integer(o, true, 0 - (uint64_t)s);
  return put_integer(o, false, t->is_signed ? (uint64_t)s : u);
}

/* Strings of printable ASCII without '"' and '\\' are written as they are; jansson escapes the rest. */
static int emit_string(struct out *o, const char *s) {
  size_t n = s ? strlen(s) : 0, i = 0;
  while (i < n && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') i++;
  if (i < n) {
    json_t *v = json_stringn(s, n);
    if (v == NULL) return utf8_valid((const uint8_t *)s, n) ? -CODEC_ENOMEM : -CODEC_EDATA;
    return put_json(o, v);
  }
  int rc = reserve(o, n + 2);
  if (rc == 0) {
    o->data[o->len] = '"';
    memcpy(o->data + o->len + 1, s, n);
    o->data[o->len + n + 1] = '"';
    o->len += n + 2;
  }
  return rc;
}

/* Embeds the JSON text held in a bytes field; text that is not one JSON value cannot be carried
 * (CODEC_EDATA). Empty bytes (only reached for map values and repeated elements) become null, as
 * Centrifuge does. */
static int emit_bytes(struct out *o, const ProtobufCBinaryData *bd) {
  size_t start, end;
  if (bd->len == 0) return put_str(o, "null");
  if (json_span_document((const char *)bd->data, bd->len, &start, &end) != 0) return -CODEC_EDATA;
  int rc = reserve(o, end - start);
  if (rc == 0)
    o->len += json_span_copy_stripped(o->data + o->len, (const char *)bd->data + start, end - start);
  return rc;
}

bool codec_json_embeddable(const uint8_t *data, size_t len) {
  size_t start, end;
  return len > 0 && json_span_document((const char *)data, len, &start, &end) == 0;
}

static int emit_message(struct out *o, const ProtobufCMessage *msg);

/* Encodes the value of F's type at SLOT (a singular field or one repeated element). */
static int emit_value(struct out *o, const ProtobufCFieldDescriptor *f, const void *slot) {
  switch (codec_json_type_of(f)->kind) {
    case KIND_INT:
      return emit_int(o, f, slot);
    case KIND_BOOL:
      return put_str(o, *(const protobuf_c_boolean *)slot ? "true" : "false");
    case KIND_FLOAT:
      return put_real(o, *(const float *)slot);
    case KIND_DOUBLE:
      return put_real(o, *(const double *)slot);
    case KIND_STRING:
      return emit_string(o, *(char *const *)slot);
    case KIND_BYTES:
      return emit_bytes(o, slot);
    case KIND_MESSAGE: {
      const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
      return sub ? emit_message(o, sub) : put_str(o, "null");
    }
  }
  return -CODEC_EDATA;
}

/* ---- fields ---- */

/* True when a singular field holds a non-zero value (or has_<field> is set for proto2/optional). */
static bool field_is_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  const void *slot = codec_json_cslot(msg, f->offset);
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
    return *(const protobuf_c_boolean *)codec_json_cslot(msg, f->quantifier_offset);
  switch (codec_json_type_of(f)->kind) {
    case KIND_STRING:
      return *(char *const *)slot && **(char *const *)slot;
    case KIND_BYTES:
      return ((const ProtobufCBinaryData *)slot)->len > 0;
    case KIND_MESSAGE:
      return *(ProtobufCMessage *const *)slot != NULL;
    case KIND_FLOAT:
      return *(const float *)slot != 0;
    case KIND_DOUBLE:
      return *(const double *)slot != 0;
    default:
      break;
  }
  static const uint8_t zero[8];
  return memcmp(slot, zero, codec_json_type_of(f)->size) != 0;
}

static int emit_array(struct out *o, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  size_t n = *(const size_t *)codec_json_cslot(msg, f->quantifier_offset), size = codec_json_type_of(f)->size;
  const uint8_t *arr = *(void *const *)codec_json_cslot(msg, f->offset);
  int rc = put_str(o, "[");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (i > 0) rc = put_str(o, ",");
    if (rc == 0) rc = emit_value(o, f, arr + i * size);
  }
  return rc == 0 ? put_str(o, "]") : rc;
}

/* Writes one map Entry as `"key":value`. Entries are written in order; a key given twice is written
 * twice (a JSON parser keeps the last, as a protobuf parser does). */
static int emit_entry(struct out *o, const ProtobufCMessage *entry) {
  const ProtobufCFieldDescriptor *kf = &entry->descriptor->fields[0], *vf = &entry->descriptor->fields[1];
  if (kf->type != PROTOBUF_C_TYPE_STRING) return -CODEC_EDATA;
  int rc = emit_string(o, *(char *const *)codec_json_cslot(entry, kf->offset));
  if (rc == 0) rc = put_str(o, ":");
  return rc == 0 ? emit_value(o, vf, codec_json_cslot(entry, vf->offset)) : rc;
}

static int emit_map(struct out *o, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  size_t n = *(const size_t *)codec_json_cslot(msg, f->quantifier_offset);
  ProtobufCMessage *const *arr = *(ProtobufCMessage * *const *)codec_json_cslot(msg, f->offset);
  int rc = put_str(o, "{");
  bool first = true;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (arr[i] == NULL) continue;
    if (!first) rc = put_str(o, ",");
    if (rc == 0) rc = emit_entry(o, arr[i]);
    first = false;
  }
  return rc == 0 ? put_str(o, "}") : rc;
}

/* Writes `,"name":value` for field F of MSG (no comma for the first), or nothing when it is omitted. */
static int emit_field(struct out *o, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                      bool *first) {
  bool always = codec_json_always_present(msg->descriptor, f);
  bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
  if (!always &&
      (repeated ? *(const size_t *)codec_json_cslot(msg, f->quantifier_offset) == 0 : !field_is_set(msg, f)))
    return 0;
  int rc = put_str(o, *first ? "\"" : ",\"");
  *first = false;
  if (rc == 0) rc = put_str(o, f->name); /* proto names: [A-Za-z0-9_], nothing to escape */
  if (rc == 0) rc = put_str(o, "\":");
  if (rc != 0) return rc;
  if (repeated) return codec_json_is_map(f) ? emit_map(o, msg, f) : emit_array(o, msg, f);
  return emit_value(o, f, codec_json_cslot(msg, f->offset));
}

static int emit_message(struct out *o, const ProtobufCMessage *msg) {
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  bool first = true;
  int rc = put_str(o, "{");
  for (unsigned i = 0; rc == 0 && i < desc->n_fields; i++) rc = emit_field(o, msg, &desc->fields[i], &first);
  return rc == 0 ? put_str(o, "}") : rc;
}

/* ---- entry points ---- */

int codec_json_encode_frame(const ProtobufCMessage *msg, struct frame **out) {
  char stack[EMIT_STACK];
  struct out o = {stack, 0, sizeof stack, NULL};
  int rc = emit_message(&o, msg);
  if (rc == 0) rc = put_str(&o, "\n");
  struct frame *f = rc == 0 ? frame_new(o.len) : NULL;
  if (f != NULL) {
    memcpy(f->data, o.data, o.len);
    *out = f;
  } else if (rc == 0) {
    rc = -CODEC_ENOMEM;
  }
  free(o.heap);
  return rc;
}

int codec_json_message_to_text(const ProtobufCMessage *msg, char **text, size_t *len) {
  char stack[EMIT_STACK];
  struct out o = {stack, 0, sizeof stack, NULL};
  int rc = emit_message(&o, msg);
  if (rc == 0) rc = put(&o, "", 1); /* a NUL terminator, for the caller's convenience */
  if (rc == 0 && o.heap == NULL && (o.heap = malloc(o.len)) != NULL) memcpy(o.heap, stack, o.len);
  if (rc == 0 && o.heap == NULL) rc = -CODEC_ENOMEM;
  if (rc != 0) {
    free(o.heap);
    return rc;
  }
  *text = o.heap;
  *len = o.len - 1;
  return 0;
}

int codec_json_encode_message(const ProtobufCMessage *msg, json_t **out) {
  char *text;
  size_t len;
  int rc = codec_json_message_to_text(msg, &text, &len);
  if (rc != 0) return rc;
  /* jansson holds no integer beyond int64: such numbers in embedded JSON become the nearest double
   * (what a JavaScript reader gets anyway); a number jansson cannot hold at all (1e400) is CODEC_EDATA.
   * The tree may hold "\u0000" from embedded JSON, so it is never given to json_raw_dumpb. */
  *out = json_raw_loadb(text, len, NULL, JSON_RAW_INT_AS_REAL | JSON_RAW_ALLOW_NUL);
  free(text);
  return *out ? 0 : -CODEC_EDATA;
}

json_t *codec_json_message_to_value(const ProtobufCMessage *msg) {
  json_t *v;
  return codec_json_encode_message(msg, &v) == 0 ? v : NULL;
}
