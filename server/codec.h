/* codec: one interface, one implementation per wire format (codec_json.c now, codec_pb.c with the
 * protobuf issue). Commands and replies are always the protoc-c generated structs of proto/client.proto;
 * a codec only turns bytes into those structs and back, so no protocol handler knows the wire format.
 *
 * Ownership: decoded messages belong to the caller and are freed with
 * protobuf_c_message_free_unpacked(msg, NULL). Encoded frames come with one reference for the caller.
 * All functions are pure (no global state) and may be called from any thread. */
#ifndef CODEC_H
#define CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "frame.h"

/* A codec is a wire format: how commands are read and how replies are framed. SSE speaks JSON but
 * frames each reply as an event ("data: <json>\n\n"), so it is a kind of its own: a publication is
 * encoded at most once per kind in use on its channel. */
enum codec_kind {
  CODEC_JSON = 0,
  CODEC_PROTOBUF = 1,
  CODEC_SSE = 2,
  CODEC_WS_JSON = 3,     /* WebSocket: JSON replies in text frames (codec_ws.c) */
  CODEC_WS_PROTOBUF = 4, /* WebSocket: delimited protobuf replies in binary frames */
  CODEC_UNI_HTTP_STREAM = 5, /* unidirectional: bare JSON pushes, one per line (codec_uni.c) */
  CODEC_UNI_SSE = 6,         /* unidirectional: bare JSON pushes as SSE events */
  CODEC_UNI_WS = 7,          /* unidirectional: bare JSON pushes as WebSocket text messages */
  CODEC_COUNT
};

/* Errors returned (negated) by codec functions. */
enum codec_error {
  CODEC_OK = 0,
  CODEC_EMALFORMED = 1, /* the bytes are not a valid message of the expected type */
  CODEC_ETOOBIG = 2,    /* one command is larger than the caller's limit */
  CODEC_EDATA = 3,      /* a bytes payload cannot be carried by this codec (binary data to JSON) */
  CODEC_ENOMEM = 4,
  CODEC_ELIMIT = 5, /* a message nests too deep, repeats a sub-message or has too many fields (pb_guard.h) */
};

struct codec {
  const char *name; /* "json" or "protobuf" */
  enum codec_kind kind;

  /* Takes the next command out of a command stream [*pos, end): JSON commands are separated by '\n'
   * (blank lines are skipped), protobuf commands are uvarint-length-prefixed. On success stores the
   * decoded command in *out, advances *pos and returns 0. Returns 1 when the stream is exhausted
   * (*out untouched), or -CODEC_EMALFORMED / -CODEC_ETOOBIG (a command over MAX_COMMAND bytes) /
   * -CODEC_ELIMIT (a protobuf command past the nesting or field limits of pb_guard.h) /
   * -CODEC_ENOMEM (out of memory: the command itself may be fine). */
  int (*next_command)(const uint8_t **pos, const uint8_t *end, size_t max_command, Protocol__Command **out);

  /* Encodes REPLY with its stream framing (JSON: one line ending in '\n'; protobuf: uvarint length
   * prefix) into a new frame stored in *out. Returns 0, -CODEC_EDATA or -CODEC_ENOMEM. */
  int (*encode_reply)(const Protocol__Reply *reply, struct frame **out);

  /* Decodes an /emulation request body into *out; for JSON, EmulationRequest.data holds the bytes of
   * the `data` string (the newline-joined commands). Returns 0, -CODEC_EMALFORMED, -CODEC_ELIMIT or
   * -CODEC_ENOMEM. */
  int (*decode_emulation)(const uint8_t *body, size_t len, Protocol__EmulationRequest **out);
};

/* Returns the codec for KIND (static storage, never NULL for a valid kind). */
const struct codec *codec_get(enum codec_kind kind);

/* A short text for a codec_error code (positive or negative). */
const char *codec_strerror(int err);

#endif
