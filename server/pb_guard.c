/* pb_guard: the bounded pre-scan of client protobuf bytes (see pb_guard.h). The scan keeps an explicit
 * stack of open messages (type, end, which singular sub-message fields were met) instead of recursing,
 * and reads each byte once, so its stack use is fixed and its work linear whatever the input holds.
 * Wire types follow the protobuf encoding: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit; groups
 * (3, 4) are refused, as protobuf-c refuses them. */
#include "pb_guard.h"

#include "codec.h"

#define UVARINT_MAX_BYTES 10
#define FIELD_NUMBER_MAX 0x1fffffffu /* 2^29 - 1, the protobuf maximum */

enum wire_type { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

/* Bytes per element of a packed repeated field by scalar type: 0 for varints, -1 for types that are
 * never packed (strings, bytes, messages). */
static const signed char packed_width[] = {
    [PROTOBUF_C_TYPE_INT32] = 0,   [PROTOBUF_C_TYPE_SINT32] = 0,   [PROTOBUF_C_TYPE_SFIXED32] = 4,
    [PROTOBUF_C_TYPE_INT64] = 0,   [PROTOBUF_C_TYPE_SINT64] = 0,   [PROTOBUF_C_TYPE_SFIXED64] = 8,
    [PROTOBUF_C_TYPE_UINT32] = 0,  [PROTOBUF_C_TYPE_FIXED32] = 4,  [PROTOBUF_C_TYPE_UINT64] = 0,
    [PROTOBUF_C_TYPE_FIXED64] = 8, [PROTOBUF_C_TYPE_FLOAT] = 4,    [PROTOBUF_C_TYPE_DOUBLE] = 8,
    [PROTOBUF_C_TYPE_BOOL] = 0,    [PROTOBUF_C_TYPE_ENUM] = 0,     [PROTOBUF_C_TYPE_STRING] = -1,
    [PROTOBUF_C_TYPE_BYTES] = -1,  [PROTOBUF_C_TYPE_MESSAGE] = -1,
};

struct open_message {
  const ProtobufCMessageDescriptor *desc;
  const uint8_t *end;
  uint64_t seen[PB_GUARD_MAX_SCHEMA_FIELDS / 64]; /* singular sub-message fields met, by field index */
};

struct scan {
  struct open_message stack[PB_GUARD_MAX_DEPTH + 1];
  unsigned depth; /* index of the innermost open message */
  size_t fields, messages;
};

int pb_guard_uvarint(const uint8_t **pos, const uint8_t *end, uint64_t *out) {
  const uint8_t *p = *pos;
  uint64_t v = 0;
  for (unsigned i = 0; i < UVARINT_MAX_BYTES; i++) {
    if (p >= end) return -CODEC_EMALFORMED;
    uint8_t b = *p++;
    if (i == UVARINT_MAX_BYTES - 1 && b > 1) return -CODEC_EMALFORMED; /* bits beyond 64 */
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *pos = p;
      *out = v;
      return 0;
    }
  }
  return -CODEC_EMALFORMED;
}

/* Opens a message of type DESC that ends at END as the new innermost one. */
static int push(struct scan *s, const ProtobufCMessageDescriptor *desc, const uint8_t *end, unsigned depth) {
  if (desc->n_fields > PB_GUARD_MAX_SCHEMA_FIELDS) return -CODEC_ELIMIT;
  struct open_message *m = &s->stack[depth];
  m->desc = desc;
  m->end = end;
  for (size_t i = 0; i < sizeof m->seen / sizeof m->seen[0]; i++) m->seen[i] = 0;
  s->depth = depth;
  return 0;
}

/* Enters sub-message field F of the innermost message; its bytes end at END. */
static int enter(struct scan *s, const ProtobufCFieldDescriptor *f, const uint8_t *end) {
  struct open_message *m = &s->stack[s->depth];
  if (f->label != PROTOBUF_C_LABEL_REPEATED) {
    /* protobuf-c would merge the two, copying every repeated field gathered so far: refused */
    size_t i = (size_t)(f - m->desc->fields);
    if (m->seen[i / 64] >> i % 64 & 1) return -CODEC_ELIMIT;
    m->seen[i / 64] |= UINT64_C(1) << i % 64;
  }
  if (s->depth == PB_GUARD_MAX_DEPTH || ++s->messages > PB_GUARD_MAX_MESSAGES) return -CODEC_ELIMIT;
  return push(s, f->descriptor, end, s->depth + 1);
}

/* Elements in the LEN bytes at P of a length-delimited field F, when F is a packed scalar array. */
static size_t packed_elements(const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t len) {
  if (f == NULL || f->label != PROTOBUF_C_LABEL_REPEATED || (size_t)f->type >= sizeof packed_width ||
      packed_width[f->type] < 0)
    return 0;
  if (packed_width[f->type] > 0) return len / (size_t)packed_width[f->type];
  size_t n = 0;
  for (size_t i = 0; i < len; i++) n += p[i] < 0x80; /* one varint ends at each byte below 0x80 */
  return n;
}

/* Scans the length-delimited value at *POS of field F (NULL: unknown) in the innermost message. */
static int scan_delimited(struct scan *s, const ProtobufCFieldDescriptor *f, const uint8_t **pos) {
  const uint8_t *p = *pos, *end = s->stack[s->depth].end;
  uint64_t len;
  if (pb_guard_uvarint(&p, end, &len) != 0 || len > (uint64_t)(end - p)) return -CODEC_EMALFORMED;
  *pos = p;
  if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) return enter(s, f, p + len);
  s->fields += packed_elements(f, p, (size_t)len);
  if (s->fields > PB_GUARD_MAX_FIELDS) return -CODEC_ELIMIT;
  *pos = p + len;
  return 0;
}

/* Scans the field that starts at *POS in the innermost message and moves *POS past it (or, for a
 * sub-message, to its first field). */
static int scan_field(struct scan *s, const uint8_t **pos) {
  const struct open_message *m = &s->stack[s->depth];
  const uint8_t *p = *pos;
  uint64_t key, value;
  if (pb_guard_uvarint(&p, m->end, &key) != 0 || key >> 3 == 0 || key >> 3 > FIELD_NUMBER_MAX)
    return -CODEC_EMALFORMED;
  if (++s->fields > PB_GUARD_MAX_FIELDS) return -CODEC_ELIMIT;
  size_t left = (size_t)(m->end - p);
  switch (key & 7) {
    case WIRE_VARINT:
      if (pb_guard_uvarint(&p, m->end, &value) != 0) return -CODEC_EMALFORMED;
      break;
    case WIRE_I64:
      if (left < 8) return -CODEC_EMALFORMED;
      p += 8;
      break;
    case WIRE_I32:
      if (left < 4) return -CODEC_EMALFORMED;
      p += 4;
      break;
    case WIRE_LEN:
      *pos = p;
      return scan_delimited(s, protobuf_c_message_descriptor_get_field(m->desc, (unsigned)(key >> 3)), pos);
    default:
      return -CODEC_EMALFORMED;
  }
  *pos = p;
  return 0;
}

int pb_guard_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len) {
  if (len == 0) return 0; /* DATA may be NULL: no arithmetic on it */
  struct scan s = {.fields = 0, .messages = 0};
  int rc = push(&s, desc, data + len, 0);
  const uint8_t *p = data;
  while (rc == 0) {
    while (p == s.stack[s.depth].end) { /* close every message that ends here */
      if (s.depth == 0) return 0;
      s.depth--;
    }
    rc = scan_field(&s, &p);
  }
  return rc;
}
