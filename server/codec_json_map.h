/* codec_json_map: what the JSON codec's decoder (codec_json_map.c) and encoder (codec_json_emit.c)
 * share about protobuf-c descriptors: how each proto type travels in JSON, which fields are always
 * emitted, how map fields are recognised, and field slot access. Private to the JSON codec; tables are
 * constant: any thread. */
#ifndef CODEC_JSON_MAP_H
#define CODEC_JSON_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* How a proto type is read from / written to JSON. */
enum codec_json_kind { KIND_INT, KIND_BOOL, KIND_FLOAT, KIND_DOUBLE, KIND_STRING, KIND_BYTES, KIND_MESSAGE };

struct codec_json_type {
  enum codec_json_kind kind;
  size_t size;           /* bytes one value takes in a struct field or a repeated array */
  bool is_signed;        /* KIND_INT only */
  uint64_t max_positive; /* KIND_INT only: the largest accepted magnitude of a positive number, */
  uint64_t max_negative; /* and of a negative one (0 for unsigned types) */
};

/* The JSON treatment of field F's type (static storage). */
const struct codec_json_type *codec_json_type_of(const ProtobufCFieldDescriptor *f);

/* True when field F of messages of type DESC is emitted even when zero or empty (PROTOCOL.md §4.2). */
bool codec_json_always_present(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f);

/* True when F is a map field: protobuf-c has no map flag, so a repeated message whose type is a nested
 * "...Entry" message with exactly the fields key = 1 and value = 2 (what protoc generates). */
bool codec_json_is_map(const ProtobufCFieldDescriptor *f);

static inline void *codec_json_slot(ProtobufCMessage *msg, size_t offset) { return (char *)msg + offset; }

static inline const void *codec_json_cslot(const ProtobufCMessage *msg, size_t offset) {
  return (const char *)msg + offset;
}

#endif
