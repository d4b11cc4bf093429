/* codec_json: the JSON wire format (Centrifugo protocol v2 JSON), mapped onto the protobuf-c structs by
 * walking their descriptors. JSON keys are the proto field names (snake_case); `bytes` fields are raw
 * embedded JSON values (not base64); zero values are omitted except where PROTOCOL.md §4.2 says a field
 * is always present; a set sub-message is always emitted, as `{}` when empty. All functions are
 * thread-safe and keep no state. */
#ifndef CODEC_JSON_H
#define CODEC_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "codec.h"

/* The JSON codec's function table (also reachable through codec_get(CODEC_JSON)). */
extern const struct codec codec_json;

/* Builds a message of type DESC from the JSON object VALUE (unknown keys ignored, wrong types are an
 * error). On success *out is a new message the caller frees with protobuf_c_message_free_unpacked(*out,
 * NULL). Returns 0 or -CODEC_EMALFORMED / -CODEC_ENOMEM. VALUE is borrowed. */
int codec_json_message_from_value(const ProtobufCMessageDescriptor *desc, json_t *value,
                                  ProtobufCMessage **out);

/* Returns a new JSON object (caller owns the reference) for MSG, or NULL when a bytes field does not
 * hold valid JSON (the caller maps that to CODEC_EDATA) or memory runs out. */
json_t *codec_json_message_to_value(const ProtobufCMessage *msg);

/* The same as codec_json_message_to_value with the reason on failure: stores a new JSON object (caller
 * owns the reference) in *out and returns 0, or returns -CODEC_EDATA (a bytes field that is not JSON, a
 * string that is not UTF-8) or -CODEC_ENOMEM. */
int codec_json_encode_message(const ProtobufCMessage *msg, json_t **out);

/* Stores the compact JSON text of VALUE into *out (malloc'd; free out->data). Used for `bytes` fields
 * (publication data and the like). Returns 0 or -CODEC_ENOMEM. */
int codec_json_raw_from_value(json_t *value, ProtobufCBinaryData *out);

#endif
