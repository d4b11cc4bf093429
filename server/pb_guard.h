/* pb_guard: a bounded pre-scan of protobuf bytes from clients, run before protobuf-c unpacks them.
 * protobuf-c's unpack recurses once per nested message with no depth limit, and it merges a singular
 * sub-message given more than once by copying every repeated field gathered so far (quadratic work), so
 * a hostile 64 KiB command could exhaust a thread's stack or burn CPU. The scan walks the wire format
 * iteratively, driven by the message descriptors (so it follows whatever the schema grows into), and
 * refuses before protobuf-c runs: nesting deeper than PB_GUARD_MAX_DEPTH, more than PB_GUARD_MAX_FIELDS
 * fields or PB_GUARD_MAX_MESSAGES sub-messages in one top-level message, and a singular sub-message field
 * given twice in one message. It allocates nothing and keeps no state: any thread. */
#ifndef PB_GUARD_H
#define PB_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* How deep sub-messages may nest below the top-level message (Command → SubscribeRequest is depth 1).
 * The JSON codec's limit is the same (codec_json_map.c). */
#define PB_GUARD_MAX_DEPTH 32
/* Fields (every tag, known or not, and every element of a packed array) in one top-level message. */
#define PB_GUARD_MAX_FIELDS 16384
/* Sub-messages (map entries included) in one top-level message: what protobuf-c allocates per field. */
#define PB_GUARD_MAX_MESSAGES 4096
/* The largest field count a message type may have (duplicates are tracked with one bit per field);
 * a message type with more is refused outright, and test_codec_pb checks that the schema fits. */
#define PB_GUARD_MAX_SCHEMA_FIELDS 128

/* Reads a uvarint from [*pos, end) into *out and advances *pos. Returns 0, or -CODEC_EMALFORMED when
 * the bytes end inside it, it runs past 10 bytes or it overflows 64 bits (*pos untouched). The one varint
 * reader of client bytes (codec_pb.c frames with it too). */
int pb_guard_uvarint(const uint8_t **pos, const uint8_t *end, uint64_t *out);

/* Scans the LEN bytes at DATA as one message of type DESC. Returns 0 when protobuf-c may unpack them
 * (they may still be malformed in ways protobuf-c detects itself), -CODEC_ELIMIT when a limit above is
 * passed, or -CODEC_EMALFORMED when the wire format breaks (a varint or field runs past its message,
 * an unknown or group wire type, field number 0). Reads only [DATA, DATA+LEN). */
int pb_guard_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len);

#endif
