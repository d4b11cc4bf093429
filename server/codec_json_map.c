/* codec_json_map: the descriptor-driven decoding of JSON text into protobuf-c messages that the JSON
 * codec is built on (PROTOCOL.md §4.2), and the per-type tables it shares with the encoder
 * (codec_json_emit.c). One pass over the text with the json_span scanner: each member's key selects a
 * field by its proto name; integers are read from their digits and range-checked against the field type
 * (the full uint64 range included); strings are unescaped once into their final buffer; `bytes` fields
 * take the raw text of their value verbatim, minus raw '\n' and '\r' (so numbers of any size and
 * spelling survive); map fields (repeated *Entry messages with key=1, value=2) are JSON objects; unknown
 * members are only validated. jansson is not involved: a number no C type can hold fails only the field
 * that must hold it.
 *
 * Invariants: every message built here is laid out exactly as protobuf_c_message_unpack would lay it out
 * (system malloc for every string, bytes buffer, sub-message and repeated array; singular strings left
 * at protobuf_c_empty_string when empty; repeated strings always malloc'd), and it is consistent at every
 * step, so a half-built message is released with protobuf_c_message_free_unpacked(msg, NULL) on error.
 * Oneofs are not handled (client.proto has none). No global mutable state: any thread. */
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "codec_json_map.h"
#include "json_span.h"

/* Sub-messages nest at most this deep (FilterNode is recursive; nothing legitimate comes close). */
#define MAX_NESTING 32
/* Messages with more fields than this are not decoded (duplicate keys are tracked in a bitmap). */
#define MAX_FIELDS 128

static const struct codec_json_type type_infos[] = {
    [PROTOBUF_C_TYPE_INT32] = {KIND_INT, 4, true, INT32_MAX, (uint64_t)INT32_MAX + 1},
    [PROTOBUF_C_TYPE_SINT32] = {KIND_INT, 4, true, INT32_MAX, (uint64_t)INT32_MAX + 1},
    [PROTOBUF_C_TYPE_SFIXED32] = {KIND_INT, 4, true, INT32_MAX, (uint64_t)INT32_MAX + 1},
    [PROTOBUF_C_TYPE_ENUM] = {KIND_INT, 4, true, INT32_MAX, (uint64_t)INT32_MAX + 1},
    [PROTOBUF_C_TYPE_INT64] = {KIND_INT, 8, true, INT64_MAX, (uint64_t)INT64_MAX + 1},
    [PROTOBUF_C_TYPE_SINT64] = {KIND_INT, 8, true, INT64_MAX, (uint64_t)INT64_MAX + 1},
    [PROTOBUF_C_TYPE_SFIXED64] = {KIND_INT, 8, true, INT64_MAX, (uint64_t)INT64_MAX + 1},
    [PROTOBUF_C_TYPE_UINT32] = {KIND_INT, 4, false, UINT32_MAX, 0},
    [PROTOBUF_C_TYPE_FIXED32] = {KIND_INT, 4, false, UINT32_MAX, 0},
    [PROTOBUF_C_TYPE_UINT64] = {KIND_INT, 8, false, UINT64_MAX, 0},
    [PROTOBUF_C_TYPE_FIXED64] = {KIND_INT, 8, false, UINT64_MAX, 0},
    [PROTOBUF_C_TYPE_BOOL] = {KIND_BOOL, sizeof(protobuf_c_boolean), false, 0, 0},
    [PROTOBUF_C_TYPE_FLOAT] = {KIND_FLOAT, sizeof(float), false, 0, 0},
    [PROTOBUF_C_TYPE_DOUBLE] = {KIND_DOUBLE, sizeof(double), false, 0, 0},
    [PROTOBUF_C_TYPE_STRING] = {KIND_STRING, sizeof(char *), false, 0, 0},
    [PROTOBUF_C_TYPE_BYTES] = {KIND_BYTES, sizeof(ProtobufCBinaryData), false, 0, 0},
    [PROTOBUF_C_TYPE_MESSAGE] = {KIND_MESSAGE, sizeof(ProtobufCMessage *), false, 0, 0},
};

/* Fields emitted even when zero or empty (PROTOCOL.md §4.2; Centrifuge's JSON tags lack omitempty). */
static const struct {
  const ProtobufCMessageDescriptor *desc;
  const char *field;
} always_present[] = {
    {&protocol__client_info__descriptor, "user"},
    {&protocol__client_info__descriptor, "client"},
    {&protocol__presence_result__descriptor, "presence"},
    {&protocol__presence_stats_result__descriptor, "num_clients"},
    {&protocol__presence_stats_result__descriptor, "num_users"},
    {&protocol__history_result__descriptor, "publications"},
    {&protocol__history_result__descriptor, "epoch"},
    {&protocol__history_result__descriptor, "offset"},
};

const struct codec_json_type *codec_json_type_of(const ProtobufCFieldDescriptor *f) {
  return &type_infos[f->type];
}

bool codec_json_always_present(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f) {
  for (size_t i = 0; i < sizeof always_present / sizeof always_present[0]; i++)
    if (always_present[i].desc == desc && strcmp(always_present[i].field, f->name) == 0) return true;
  return false;
}

bool codec_json_is_map(const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return false;
  const ProtobufCMessageDescriptor *d = f->descriptor;
  size_t n = strlen(d->name);
  return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0 && d->fields[0].id == 1 &&
         strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 &&
         strcmp(d->fields[1].name, "value") == 0;
}

static ProtobufCMessage *message_new(const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *msg = malloc(desc->sizeof_message);
  if (msg) protobuf_c_message_init(desc, msg);
  return msg;
}

/* ---- growable dump buffer for codec_json_raw_from_value (memory from the system malloc) ---- */

/* Real numbers only occur inside embedded application JSON. 17 significant digits round-trip every
 * IEEE double exactly (0.1 is written 0.10000000000000001, which every JSON parser reads back as 0.1). */
#define RAW_DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

struct dump_buf {
  uint8_t *data;
  size_t len, cap;
};

static int dump_append(const char *chunk, size_t size, void *opaque) {
  struct dump_buf *b = opaque;
  if (size > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < size) cap *= 2;
    uint8_t *grown = realloc(b->data, cap);
    if (grown == NULL) return -1;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, chunk, size);
  b->len += size;
  return 0;
}

int codec_json_raw_from_value(json_t *value, ProtobufCBinaryData *out) {
  struct dump_buf b = {NULL, 0, 0};
  if (json_dump_callback(value, dump_append, &b, RAW_DUMP_FLAGS) != 0 || b.len == 0) {
    free(b.data);
    return -CODEC_ENOMEM;
  }
  out->data = b.data;
  out->len = b.len;
  return 0;
}

/* ================================ JSON text -> message ================================
 * Every decoder gets V, the first byte of one value, and AVAIL, the bytes from there to the end of the
 * text; it stores the value's length in *used. */

static int decode_object(const ProtobufCMessageDescriptor *desc, const char *v, size_t avail, size_t *used,
                         ProtobufCMessage **out, int depth);
static int decode_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const char *v, size_t avail,
                        size_t *used, int depth);

static bool starts_number(char c) { return c == '-' || (c >= '0' && c <= '9'); }

/* Stores the integer at V into SLOT as F's type; a fraction, an exponent or out of range is malformed. */
static int decode_int(const ProtobufCFieldDescriptor *f, const char *v, size_t avail, size_t *used,
                      void *slot) {
  const struct codec_json_type *t = codec_json_type_of(f);
  bool negative;
  uint64_t magnitude;
  if (!starts_number(v[0]) || json_span_value(v, avail, used) != 0 ||
      json_span_integer(v, *used, &negative, &magnitude) != 0 ||
      magnitude > (negative ? t->max_negative : t->max_positive))
    return -CODEC_EMALFORMED;
  uint64_t bits = negative ? 0 - magnitude : magnitude; /* two's complement */
  if (t->size == 4) {
    uint32_t u = (uint32_t)bits;
    memcpy(slot, &u, sizeof u);
  } else {
    memcpy(slot, &bits, sizeof bits);
  }
  return 0;
}

/* float and double (none in client.proto today): jansson reads the number text. */
static int decode_real(const ProtobufCFieldDescriptor *f, const char *v, size_t avail, size_t *used,
                       void *slot) {
  if (!starts_number(v[0]) || json_span_value(v, avail, used) != 0) return -CODEC_EMALFORMED;
  json_t *n = json_loadb(v, *used, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
  if (n == NULL) return -CODEC_EMALFORMED; /* beyond a double's range */
  if (codec_json_type_of(f)->kind == KIND_FLOAT)
    *(float *)slot = (float)json_number_value(n);
  else
    *(double *)slot = json_number_value(n);
  json_decref(n);
  return 0;
}

static int decode_bool(const char *v, size_t avail, size_t *used, void *slot) {
  if ((v[0] != 't' && v[0] != 'f') || json_span_value(v, avail, used) != 0) return -CODEC_EMALFORMED;
  *(protobuf_c_boolean *)slot = v[0] == 't';
  return 0;
}

/* Unescapes the JSON string at V into SLOT. An empty singular string stays at the
 * protobuf_c_empty_string default (free_unpacked skips it); repeated elements are always malloc'd. */
static int decode_string(const char *v, size_t avail, size_t *used, void *slot, bool element) {
  struct json_span_str s;
  if (json_span_string(v, avail, &s, used) != 0) return -CODEC_EMALFORMED;
  if (s.len == 0 && !element) return 0;
  char *copy = malloc(s.len + 1);
  if (copy == NULL) return -CODEC_ENOMEM;
  size_t n = json_span_unescape(&s, copy);
  if (s.escaped && memchr(copy, '\0', n) != NULL) { /* \u0000 cannot live in a C string */
    free(copy);
    return -CODEC_EMALFORMED;
  }
  copy[n] = '\0';
  *(char **)slot = copy;
  return 0;
}

/* Keeps the text of the JSON value at V, minus raw line breaks, as the bytes in SLOT. */
static int decode_bytes(const char *v, size_t avail, size_t *used, ProtobufCBinaryData *slot) {
  if (json_span_value(v, avail, used) != 0) return -CODEC_EMALFORMED;
  uint8_t *copy = malloc(*used);
  if (copy == NULL) return -CODEC_ENOMEM;
  slot->len = json_span_copy_stripped((char *)copy, v, *used);
  slot->data = copy;
  return 0;
}

/* Decodes one non-null value of F's type into SLOT (a singular field or one repeated element). */
static int decode_value(const ProtobufCFieldDescriptor *f, const char *v, size_t avail, size_t *used,
                        void *slot, bool element, int depth) {
  switch (codec_json_type_of(f)->kind) {
    case KIND_INT:
      return decode_int(f, v, avail, used, slot);
    case KIND_BOOL:
      return decode_bool(v, avail, used, slot);
    case KIND_FLOAT:
    case KIND_DOUBLE:
      return decode_real(f, v, avail, used, slot);
    case KIND_STRING:
      return decode_string(v, avail, used, slot, element);
    case KIND_BYTES:
      return decode_bytes(v, avail, used, slot);
    case KIND_MESSAGE:
      return decode_object(f->descriptor, v, avail, used, slot, depth + 1);
  }
  return -CODEC_EMALFORMED;
}

/* Makes room for one more element of SIZE bytes in the repeated array *ARR holding COUNT of CAP. */
static int grow(void **arr, size_t count, size_t *cap, size_t size) {
  if (count < *cap) return 0;
  size_t n = *cap ? *cap * 2 : 4;
  void *grown = realloc(*arr, n * size);
  if (grown == NULL) return -CODEC_ENOMEM;
  *arr = grown;
  *cap = n;
  return 0;
}

/* Decodes a JSON array into a repeated field. The count grows with each stored element so that a
 * failure half way leaves a message free_unpacked can release. JSON null elements are malformed. */
static int decode_array(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const char *v, size_t avail,
                        size_t *used, int depth) {
  struct json_span_iter it;
  if (json_span_iter_begin(&it, v, avail) != 0 || it.close != ']') return -CODEC_EMALFORMED;
  size_t size = codec_json_type_of(f)->size, cap = 0, n;
  size_t *count = codec_json_slot(msg, f->quantifier_offset);
  void **arr = codec_json_slot(msg, f->offset);
  int more, rc;
  while ((more = json_span_iter_next(&it, NULL)) == 1) {
    if (v[it.pos] == 'n') return -CODEC_EMALFORMED;
    if ((rc = grow(arr, *count, &cap, size)) != 0) return rc;
    rc = decode_value(f, v + it.pos, avail - it.pos, &n, (uint8_t *)*arr + *count * size, true, depth);
    if (rc != 0) return rc;
    (*count)++;
    it.pos += n;
  }
  *used = it.pos;
  return more == 0 ? 0 : -CODEC_EMALFORMED;
}

/* Stores the unescaped KEY as the key of the map ENTRY; keys holding \u0000 are malformed. */
static int decode_map_key(ProtobufCMessage *entry, const struct json_span_str *key) {
  char *k = malloc(key->len + 1);
  if (k == NULL) return -CODEC_ENOMEM;
  size_t n = json_span_unescape(key, k);
  k[n] = '\0';
  *(char **)codec_json_slot(entry, entry->descriptor->fields[0].offset) = k; /* owned by the entry now */
  return memchr(k, '\0', n) == NULL ? 0 : -CODEC_EMALFORMED;
}

/* Decodes a JSON object into a map field: one Entry message per member, in document order (a key given
 * twice gives two entries, as two protobuf entries would). */
static int decode_map(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const char *v, size_t avail,
                      size_t *used, int depth) {
  const ProtobufCMessageDescriptor *entry_desc = f->descriptor;
  struct json_span_iter it;
  struct json_span_str key;
  if (entry_desc->fields[0].type != PROTOBUF_C_TYPE_STRING || json_span_iter_begin(&it, v, avail) != 0 ||
      it.close != '}')
    return -CODEC_EMALFORMED;
  size_t *count = codec_json_slot(msg, f->quantifier_offset), cap = 0, n;
  ProtobufCMessage ***arr = codec_json_slot(msg, f->offset);
  int more, rc;
  while ((more = json_span_iter_next(&it, &key)) == 1) {
    if ((rc = grow((void **)arr, *count, &cap, sizeof **arr)) != 0) return rc;
    ProtobufCMessage *entry = message_new(entry_desc);
    if (entry == NULL) return -CODEC_ENOMEM;
    (*arr)[(*count)++] = entry;
    if ((rc = decode_map_key(entry, &key)) != 0) return rc;
    rc = decode_field(entry, &entry_desc->fields[1], v + it.pos, avail - it.pos, &n, depth);
    if (rc != 0) return rc;
    it.pos += n;
  }
  *used = it.pos;
  return more == 0 ? 0 : -CODEC_EMALFORMED;
}

/* Decodes the value at V into field F of MSG. JSON null means "absent" and leaves the default. */
static int decode_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const char *v, size_t avail,
                        size_t *used, int depth) {
  if (v[0] == 'n') return json_span_value(v, avail, used) == 0 ? 0 : -CODEC_EMALFORMED;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return codec_json_is_map(f) ? decode_map(msg, f, v, avail, used, depth)
                                : decode_array(msg, f, v, avail, used, depth);
  int rc = decode_value(f, v, avail, used, codec_json_slot(msg, f->offset), false, depth);
  if (rc == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
    *(protobuf_c_boolean *)codec_json_slot(msg, f->quantifier_offset) = 1; /* has_<field> */
  return rc;
}

/* The field of DESC that KEY names, or NULL (unknown keys are ignored). Field names are short ASCII. */
static const ProtobufCFieldDescriptor *field_by_key(const ProtobufCMessageDescriptor *desc,
                                                    const struct json_span_str *key) {
  char name[64];
  if (key->len >= sizeof name) return NULL;
  size_t n = json_span_unescape(key, name);
  name[n] = '\0';
  if (memchr(name, '\0', n) != NULL) return NULL;
  return protobuf_c_message_descriptor_get_field_by_name(desc, name);
}

/* Decodes member value V of field F, refusing a field given twice (SEEN: one bit per field index; jansson
 * kept the last value, but no client sends duplicates and merging them would leak or mix values). */
static int decode_member(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, uint64_t *seen,
                         const char *v, size_t avail, size_t *used, int depth) {
  size_t i = (size_t)(f - msg->descriptor->fields);
  if (seen[i / 64] >> i % 64 & 1) return -CODEC_EMALFORMED;
  seen[i / 64] |= UINT64_C(1) << i % 64;
  return decode_field(msg, f, v, avail, used, depth);
}

static int decode_object(const ProtobufCMessageDescriptor *desc, const char *v, size_t avail, size_t *used,
                         ProtobufCMessage **out, int depth) {
  struct json_span_iter it;
  struct json_span_str key;
  if (depth > MAX_NESTING || desc->n_fields > MAX_FIELDS || json_span_iter_begin(&it, v, avail) != 0 ||
      it.close != '}')
    return -CODEC_EMALFORMED;
  ProtobufCMessage *msg = message_new(desc);
  if (msg == NULL) return -CODEC_ENOMEM;
  uint64_t seen[MAX_FIELDS / 64] = {0};
  int more, rc = 0;
  while ((more = json_span_iter_next(&it, &key)) == 1) {
    const ProtobufCFieldDescriptor *f = field_by_key(desc, &key);
    size_t n;
    if (f != NULL)
      rc = decode_member(msg, f, seen, v + it.pos, avail - it.pos, &n, depth);
    else /* unknown members are ignored, but must be valid JSON */
      rc = json_span_value(v + it.pos, avail - it.pos, &n) == 0 ? 0 : -CODEC_EMALFORMED;
    if (rc != 0) break;
    it.pos += n;
  }
  if (rc == 0 && more != 0) rc = -CODEC_EMALFORMED;
  if (rc != 0) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
  }
  *used = it.pos;
  *out = msg;
  return 0;
}

int codec_json_message_from_text(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                                 ProtobufCMessage **out) {
  size_t start = json_span_skip_ws(text, len, 0), used;
  ProtobufCMessage *msg;
  if (start >= len) return -CODEC_EMALFORMED;
  int rc = decode_object(desc, text + start, len - start, &used, &msg, 0);
  if (rc != 0) return rc;
  if (json_span_skip_ws(text, len, start + used) != len) { /* trailing garbage */
    protobuf_c_message_free_unpacked(msg, NULL);
    return -CODEC_EMALFORMED;
  }
  *out = msg;
  return 0;
}
