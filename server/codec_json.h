/* codec_json: the JSON wire format (Centrifugo protocol v2 JSON), mapped onto the protobuf-c structs by
 * walking their descriptors. JSON keys are the proto field names (snake_case); `bytes` fields are raw
 * embedded JSON values (not base64), kept as the exact text the peer sent minus raw line breaks, and
 * written back verbatim; zero values are omitted except where PROTOCOL.md §4.2 says a field is always
 * present; a set sub-message is always emitted, as `{}` when empty. All functions are thread-safe and
 * keep no state. */
#ifndef CODEC_JSON_H
#define CODEC_JSON_H

#include <stdbool.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "codec.h"

/* The JSON codec's command reader and emulation decoder, shared with the SSE codec (codec_sse.c),
 * which reads the same JSON and only frames replies differently. Contracts as in struct codec. */
int codec_json_next_command(const uint8_t **pos, const uint8_t *end, size_t max_command,
                            Protocol__Command **out);
int codec_json_decode_emulation(const uint8_t *body, size_t len, Protocol__EmulationRequest **out);

/* The JSON codec's function table (also reachable through codec_get(CODEC_JSON)). */
extern const struct codec codec_json;

/* Builds a message of type DESC from the JSON object in TEXT (LEN bytes; whitespace around it allowed,
 * nothing else). Unknown keys are ignored (but must be valid JSON), null means absent; a wrong type, an
 * integer out of the field's range, a known key given twice, a string field holding "\u0000" or nesting
 * beyond 32 messages is malformed. A bytes field keeps its value's text verbatim, minus raw '\n' and
 * '\r'. On success *out is a new message the caller frees with protobuf_c_message_free_unpacked(*out,
 * NULL). Returns 0 or -CODEC_EMALFORMED / -CODEC_ENOMEM. */
int codec_json_message_from_text(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                                 ProtobufCMessage **out);

/* Encodes MSG as one compact JSON line ending in '\n' into a new frame stored in *out (one reference for
 * the caller). Returns 0, -CODEC_EDATA (a bytes field that is not one JSON value, a string that is not
 * UTF-8) or -CODEC_ENOMEM. */
int codec_json_encode_frame(const ProtobufCMessage *msg, struct frame **out);

/* The same JSON text without the '\n', in a new NUL-terminated malloc'd buffer *text (caller frees) of
 * *len bytes. Returns 0, -CODEC_EDATA or -CODEC_ENOMEM. */
int codec_json_message_to_text(const ProtobufCMessage *msg, char **text, size_t *len);

/* The same as a jansson tree, for callers that build JSON with jansson: stores a new object (caller owns
 * the reference) in *out and returns 0, or -CODEC_EDATA / -CODEC_ENOMEM. Embedded JSON goes through
 * jansson here, so numbers are re-spelled and integers beyond int64 become the nearest double (use
 * codec_json_message_to_text, or json_raw_new on it, to keep them exact). */
int codec_json_encode_message(const ProtobufCMessage *msg, json_t **out);

/* codec_json_encode_message returning the tree, or NULL on failure. */
json_t *codec_json_message_to_value(const ProtobufCMessage *msg);

/* Stores the compact JSON text of VALUE into *out (malloc'd; free out->data), numbers as jansson holds
 * them (reals with 17 significant digits). For bytes built from jansson values (JWT claims, the admin
 * socket's data). Returns 0 or -CODEC_ENOMEM. */
int codec_json_raw_from_value(json_t *value, ProtobufCBinaryData *out);

/* True when the LEN bytes at DATA can be carried as a bytes field to JSON clients: one JSON value,
 * JSON whitespace around it allowed (the test the encoder applies; anything else is CODEC_EDATA there).
 * Empty data is not. Pure: any thread. */
bool codec_json_embeddable(const uint8_t *data, size_t len);

#endif
