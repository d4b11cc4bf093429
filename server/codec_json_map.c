/* codec_json_map: the descriptor-driven mapping between jansson values and protobuf-c messages that the
 * JSON codec is built on (PROTOCOL.md §4.2). JSON keys are the proto field names; integers are JSON
 * numbers, range-checked against the field type; `bytes` fields hold the compact text of an embedded JSON
 * value; map fields (repeated *Entry messages with key=1, value=2) are JSON objects; zero values are
 * omitted except for the few fields in always_present[]; a set sub-message is always emitted.
 *
 * Invariants: every message built here is laid out exactly as protobuf_c_message_unpack would lay it out
 * (system malloc for every string, bytes buffer, sub-message and repeated array; singular strings left
 * at protobuf_c_empty_string when empty; repeated strings always malloc'd), and it is consistent at every
 * step, so a half-built message is released with protobuf_c_message_free_unpacked(msg, NULL) on error.
 * Oneofs are not handled (client.proto has none). No global mutable state: any thread. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"

/* Real numbers only occur inside embedded application JSON. 17 significant digits round-trip every
 * IEEE double exactly (0.1 is written 0.10000000000000001, which every JSON parser reads back as 0.1);
 * fewer digits would silently change some values. */
#define RAW_DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

/* How a proto type is read from / written to JSON. */
enum kind { KIND_INT, KIND_BOOL, KIND_FLOAT, KIND_DOUBLE, KIND_STRING, KIND_BYTES, KIND_MESSAGE };

struct type_info {
  enum kind kind;
  size_t size;         /* bytes one value takes in a struct field or a repeated array */
  bool is_signed;      /* KIND_INT only */
  json_int_t min, max; /* KIND_INT only: accepted JSON range (jansson cannot hold more than int64) */
};

static const struct type_info type_infos[] = {
    [PROTOBUF_C_TYPE_INT32] = {KIND_INT, 4, true, INT32_MIN, INT32_MAX},
    [PROTOBUF_C_TYPE_SINT32] = {KIND_INT, 4, true, INT32_MIN, INT32_MAX},
    [PROTOBUF_C_TYPE_SFIXED32] = {KIND_INT, 4, true, INT32_MIN, INT32_MAX},
    [PROTOBUF_C_TYPE_ENUM] = {KIND_INT, 4, true, INT32_MIN, INT32_MAX},
    [PROTOBUF_C_TYPE_INT64] = {KIND_INT, 8, true, INT64_MIN, INT64_MAX},
    [PROTOBUF_C_TYPE_SINT64] = {KIND_INT, 8, true, INT64_MIN, INT64_MAX},
    [PROTOBUF_C_TYPE_SFIXED64] = {KIND_INT, 8, true, INT64_MIN, INT64_MAX},
    [PROTOBUF_C_TYPE_UINT32] = {KIND_INT, 4, false, 0, UINT32_MAX},
    [PROTOBUF_C_TYPE_FIXED32] = {KIND_INT, 4, false, 0, UINT32_MAX},
    [PROTOBUF_C_TYPE_UINT64] = {KIND_INT, 8, false, 0, INT64_MAX},
    [PROTOBUF_C_TYPE_FIXED64] = {KIND_INT, 8, false, 0, INT64_MAX},
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

static const struct type_info *type_info(const ProtobufCFieldDescriptor *f) { return &type_infos[f->type]; }

static void *slot_at(ProtobufCMessage *msg, size_t offset) { return (char *)msg + offset; }

static const void *cslot_at(const ProtobufCMessage *msg, size_t offset) { return (const char *)msg + offset; }

static bool is_always_present(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f) {
  for (size_t i = 0; i < sizeof always_present / sizeof always_present[0]; i++)
    if (always_present[i].desc == desc && strcmp(always_present[i].field, f->name) == 0) return true;
  return false;
}

/* protobuf-c has no map flag: a map field is a repeated message whose type is a nested "...Entry"
 * message with exactly the fields key = 1 and value = 2 (what protoc generates for map<K, V>). */
static bool is_map_field(const ProtobufCFieldDescriptor *f) {
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

/* ---- growable dump buffer (one serialization pass, memory from the system malloc) ---- */

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

/* ================================ JSON -> message ================================ */

static int decode_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, json_t *v);

/* Stores the integer V into SLOT as F's type; out of range or not an integer is malformed. */
static int decode_int(const ProtobufCFieldDescriptor *f, json_t *v, void *slot) {
  const struct type_info *t = type_info(f);
  if (!json_is_integer(v)) return -CODEC_EMALFORMED;
  json_int_t x = json_integer_value(v);
  if (x < t->min || x > t->max) return -CODEC_EMALFORMED;
  if (t->size == 4) {
    uint32_t u = (uint32_t)x; /* two's complement bits for int32 as well */
    memcpy(slot, &u, sizeof u);
  } else {
    uint64_t u = (uint64_t)x;
    memcpy(slot, &u, sizeof u);
  }
  return 0;
}

/* Copies the JSON string V into SLOT. An empty singular string stays at the protobuf_c_empty_string
 * default (free_unpacked skips it); repeated elements are always malloc'd (free_unpacked frees each). */
static int decode_string(json_t *v, void *slot, bool element) {
  if (!json_is_string(v)) return -CODEC_EMALFORMED;
  const char *s = json_string_value(v);
  size_t len = json_string_length(v);
  if (memchr(s, '\0', len) != NULL) return -CODEC_EMALFORMED; /* \u0000 cannot live in a C string */
  if (len == 0 && !element) return 0;
  char *copy = malloc(len + 1);
  if (copy == NULL) return -CODEC_ENOMEM;
  memcpy(copy, s, len + 1);
  *(char **)slot = copy;
  return 0;
}

static int decode_message(const ProtobufCFieldDescriptor *f, json_t *v, void *slot) {
  ProtobufCMessage *sub;
  int rc = codec_json_message_from_value(f->descriptor, v, &sub);
  if (rc == 0) *(ProtobufCMessage **)slot = sub;
  return rc;
}

/* Decodes one non-null value of F's type into SLOT (a singular field or one repeated element). */
static int decode_value(const ProtobufCFieldDescriptor *f, json_t *v, void *slot, bool element) {
  switch (type_info(f)->kind) {
    case KIND_INT:
      return decode_int(f, v, slot);
    case KIND_BOOL:
      if (!json_is_boolean(v)) return -CODEC_EMALFORMED;
      *(protobuf_c_boolean *)slot = json_is_true(v);
      return 0;
    case KIND_FLOAT:
      if (!json_is_number(v)) return -CODEC_EMALFORMED;
      *(float *)slot = (float)json_number_value(v);
      return 0;
    case KIND_DOUBLE:
      if (!json_is_number(v)) return -CODEC_EMALFORMED;
      *(double *)slot = json_number_value(v);
      return 0;
    case KIND_STRING:
      return decode_string(v, slot, element);
    case KIND_BYTES:
      return codec_json_raw_from_value(v, slot);
    case KIND_MESSAGE:
      return decode_message(f, v, slot);
  }
  return -CODEC_EMALFORMED;
}

/* Decodes a JSON array into a repeated field. The count grows with each stored element so that a
 * failure half way leaves a message free_unpacked can release. JSON null elements are malformed. */
static int decode_array(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, json_t *v) {
  if (!json_is_array(v)) return -CODEC_EMALFORMED;
  size_t n = json_array_size(v), size = type_info(f)->size;
  if (n == 0) return 0;
  uint8_t *arr = calloc(n, size);
  if (arr == NULL) return -CODEC_ENOMEM;
  size_t *count = slot_at(msg, f->quantifier_offset);
  *(void **)slot_at(msg, f->offset) = arr;
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(v, i);
    if (json_is_null(e)) return -CODEC_EMALFORMED;
    int rc = decode_value(f, e, arr + i * size, true);
    if (rc != 0) return rc;
    (*count)++;
  }
  return 0;
}

/* Decodes a JSON object into a map field: one Entry message per member, in document order. */
static int decode_map(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, json_t *v) {
  const ProtobufCMessageDescriptor *entry_desc = f->descriptor;
  if (!json_is_object(v) || entry_desc->fields[0].type != PROTOBUF_C_TYPE_STRING) return -CODEC_EMALFORMED;
  size_t n = json_object_size(v);
  if (n == 0) return 0;
  ProtobufCMessage **arr = calloc(n, sizeof *arr);
  if (arr == NULL) return -CODEC_ENOMEM;
  size_t *count = slot_at(msg, f->quantifier_offset);
  *(ProtobufCMessage ***)slot_at(msg, f->offset) = arr;
  const char *key;
  json_t *value;
  json_object_foreach(v, key, value) {
    ProtobufCMessage *entry = message_new(entry_desc);
    if (entry == NULL) return -CODEC_ENOMEM;
    arr[(*count)++] = entry;
    char *k = strdup(key);
    if (k == NULL) return -CODEC_ENOMEM;
    *(char **)slot_at(entry, entry_desc->fields[0].offset) = k;
    int rc = decode_field(entry, &entry_desc->fields[1], value);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Decodes V into field F of MSG. JSON null means "absent" and leaves the field at its default. */
static int decode_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, json_t *v) {
  if (json_is_null(v)) return 0;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return is_map_field(f) ? decode_map(msg, f, v) : decode_array(msg, f, v);
  int rc = decode_value(f, v, slot_at(msg, f->offset), false);
  if (rc == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
    *(protobuf_c_boolean *)slot_at(msg, f->quantifier_offset) = 1; /* has_<field> */
  return rc;
}

int codec_json_message_from_value(const ProtobufCMessageDescriptor *desc, json_t *value,
                                  ProtobufCMessage **out) {
  if (!json_is_object(value)) return -CODEC_EMALFORMED;
  ProtobufCMessage *msg = message_new(desc);
  if (msg == NULL) return -CODEC_ENOMEM;
  for (unsigned i = 0; i < desc->n_fields; i++) {
    json_t *v = json_object_get(value, desc->fields[i].name);
    int rc = v ? decode_field(msg, &desc->fields[i], v) : 0;
    if (rc != 0) {
      protobuf_c_message_free_unpacked(msg, NULL);
      return rc;
    }
  }
  *out = msg;
  return 0;
}

/* ================================ message -> JSON ================================ */

static int encode_int(const ProtobufCFieldDescriptor *f, const void *slot, json_t **out) {
  const struct type_info *t = type_info(f);
  if (t->size == 4) {
    uint32_t u;
    memcpy(&u, slot, sizeof u);
    *out = json_integer(t->is_signed ? (json_int_t)(int32_t)u : (json_int_t)u);
  } else {
    uint64_t u;
    memcpy(&u, slot, sizeof u);
    if (t->is_signed || u <= INT64_MAX)
      *out = json_integer((json_int_t)u);
    else /* beyond jansson's integers: a real, the same double a JavaScript client would parse anyway */
      *out = json_real((double)u);
  }
  return *out ? 0 : -CODEC_ENOMEM;
}

/* Embeds the JSON text held in a bytes field; text that is not JSON cannot be carried (CODEC_EDATA).
 * Empty bytes (only reached for map values and repeated elements) become null, as Centrifuge does. */
static int encode_bytes(const ProtobufCBinaryData *bd, json_t **out) {
  if (bd->len == 0) {
    *out = json_null();
    return 0;
  }
  *out = json_loadb((const char *)bd->data, bd->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  return *out ? 0 : -CODEC_EDATA;
}

static int encode_string(const char *s, json_t **out) {
  *out = json_stringn(s ? s : "", s ? strlen(s) : 0);
  return *out ? 0 : -CODEC_EDATA; /* invalid UTF-8 cannot travel as a JSON string */
}

/* Encodes the value of F's type at SLOT (a singular field or one repeated element). */
static int encode_value(const ProtobufCFieldDescriptor *f, const void *slot, json_t **out) {
  switch (type_info(f)->kind) {
    case KIND_INT:
      return encode_int(f, slot, out);
    case KIND_BOOL:
      *out = json_boolean(*(const protobuf_c_boolean *)slot);
      break;
    case KIND_FLOAT:
      *out = json_real(*(const float *)slot);
      break;
    case KIND_DOUBLE:
      *out = json_real(*(const double *)slot);
      break;
    case KIND_STRING:
      return encode_string(*(char *const *)slot, out);
    case KIND_BYTES:
      return encode_bytes(slot, out);
    case KIND_MESSAGE: {
      const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
      if (sub) return codec_json_encode_message(sub, out);
      *out = json_null();
      break;
    }
  }
  return *out ? 0 : -CODEC_EDATA; /* json_real refuses NaN and infinities */
}

/* True when a singular field holds a non-zero value (or has_<field> is set for proto2/optional). */
static bool field_is_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  const void *slot = cslot_at(msg, f->offset);
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
    return *(const protobuf_c_boolean *)cslot_at(msg, f->quantifier_offset);
  switch (type_info(f)->kind) {
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
  return memcmp(slot, zero, type_info(f)->size) != 0;
}

static int encode_array(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, json_t **out) {
  size_t n = *(const size_t *)cslot_at(msg, f->quantifier_offset), size = type_info(f)->size;
  const uint8_t *arr = *(void *const *)cslot_at(msg, f->offset);
  json_t *a = json_array();
  if (a == NULL) return -CODEC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *e;
    int rc = encode_value(f, arr + i * size, &e);
    if (rc == 0 && json_array_append_new(a, e) != 0) rc = -CODEC_ENOMEM;
    if (rc != 0) {
      json_decref(a);
      return rc;
    }
  }
  *out = a;
  return 0;
}

/* Adds one map Entry to the object O (a later duplicate key replaces the earlier value). */
static int encode_entry(json_t *o, const ProtobufCMessage *entry) {
  const ProtobufCFieldDescriptor *kf = &entry->descriptor->fields[0], *vf = &entry->descriptor->fields[1];
  if (kf->type != PROTOBUF_C_TYPE_STRING) return -CODEC_EDATA;
  const char *key = *(char *const *)cslot_at(entry, kf->offset);
  json_t *value;
  int rc = encode_value(vf, cslot_at(entry, vf->offset), &value);
  if (rc != 0) return rc;
  return json_object_set_new(o, key ? key : "", value) == 0 ? 0 : -CODEC_EDATA; /* key not UTF-8 */
}

static int encode_map(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, json_t **out) {
  size_t n = *(const size_t *)cslot_at(msg, f->quantifier_offset);
  ProtobufCMessage *const *arr = *(ProtobufCMessage * *const *)cslot_at(msg, f->offset);
  json_t *o = json_object();
  if (o == NULL) return -CODEC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    int rc = arr[i] ? encode_entry(o, arr[i]) : 0;
    if (rc != 0) {
      json_decref(o);
      return rc;
    }
  }
  *out = o;
  return 0;
}

/* Encodes field F of MSG into *out, or leaves *out NULL when the field is omitted. */
static int encode_field(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, json_t **out) {
  bool always = is_always_present(msg->descriptor, f);
  *out = NULL;
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (*(const size_t *)cslot_at(msg, f->quantifier_offset) == 0 && !always) return 0;
    return is_map_field(f) ? encode_map(msg, f, out) : encode_array(msg, f, out);
  }
  if (!always && !field_is_set(msg, f)) return 0;
  return encode_value(f, cslot_at(msg, f->offset), out);
}

int codec_json_encode_message(const ProtobufCMessage *msg, json_t **out) {
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  json_t *o = json_object();
  if (o == NULL) return -CODEC_ENOMEM;
  for (unsigned i = 0; i < desc->n_fields; i++) { /* descriptor order = field-number order */
    json_t *v;
    int rc = encode_field(msg, &desc->fields[i], &v);
    if (rc == 0 && v && json_object_set_new(o, desc->fields[i].name, v) != 0) rc = -CODEC_ENOMEM;
    if (rc != 0) {
      json_decref(o);
      return rc;
    }
  }
  *out = o;
  return 0;
}

json_t *codec_json_message_to_value(const ProtobufCMessage *msg) {
  json_t *v;
  return codec_json_encode_message(msg, &v) == 0 ? v : NULL;
}
