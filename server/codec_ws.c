/* codec_ws: replies as WebSocket frames (see codec_ws.h). The JSON and protobuf codecs produce the
 * payload; this file only adds the frame header, or turns a Disconnect push into a Close frame. */
#include "codec_ws.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "codec_pb.h"
#include "utf8.h"

/* The longest reason a Close frame carries: a control frame payload is at most 125 bytes (§5.5). */
#define WS_REASON_MAX 123

static size_t header_len(size_t len) { return len < 126 ? 2 : len <= 0xFFFF ? 4 : 10; }

struct frame *codec_ws_frame(enum ws_opcode opcode, const uint8_t *payload, size_t len) {
  size_t hl = header_len(len);
  struct frame *f = frame_new(hl + len);
  if (f == NULL) return NULL;
  uint8_t *h = f->data;
  h[0] = (uint8_t)(0x80 | opcode);
  if (hl == 2) {
    h[1] = (uint8_t)len;
  } else if (hl == 4) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  }
  if (len > 0) memcpy(h + hl, payload, len);
  return f;
}

struct frame *codec_ws_close_frame(uint32_t code, const char *reason) {
  uint8_t payload[2 + WS_REASON_MAX];
  size_t n = reason ? utf8_cut((const uint8_t *)reason, strlen(reason), WS_REASON_MAX) : 0;
  payload[0] = (uint8_t)(code >> 8);
  payload[1] = (uint8_t)code;
  if (n > 0) memcpy(payload + 2, reason, n);
  return codec_ws_frame(WS_OP_CLOSE, payload, 2 + n);
}

/* A Disconnect push becomes a Close frame; returns true (with *out set or -ENOMEM in *rc) when it was. */
static bool encode_disconnect(const Protocol__Reply *reply, struct frame **out, int *rc) {
  if (reply->push == NULL || reply->push->disconnect == NULL) return false;
  const Protocol__Disconnect *d = reply->push->disconnect;
  *out = codec_ws_close_frame(d->code, d->reason);
  *rc = *out ? 0 : -CODEC_ENOMEM;
  return true;
}

static int ws_json_encode_reply(const Protocol__Reply *reply, struct frame **out) {
  int rc = 0;
  if (encode_disconnect(reply, out, &rc)) return rc;
  char *text = NULL;
  size_t len = 0;
  rc = codec_json_message_to_text(&reply->base, &text, &len);
  if (rc != 0) return rc;
  *out = codec_ws_frame(WS_OP_TEXT, (const uint8_t *)text, len);
  free(text);
  return *out ? 0 : -CODEC_ENOMEM;
}

static int ws_pb_encode_reply(const Protocol__Reply *reply, struct frame **out) {
  int rc = 0;
  if (encode_disconnect(reply, out, &rc)) return rc;
  struct frame *delimited = NULL;
  rc = codec_pb.encode_reply(reply, &delimited);
  if (rc != 0) return rc;
  *out = codec_ws_frame(WS_OP_BINARY, delimited->data, delimited->len);
  frame_unref(delimited);
  return *out ? 0 : -CODEC_ENOMEM;
}

static int ws_pb_next_command(const uint8_t **pos, const uint8_t *end, size_t max_command,
                              Protocol__Command **out) {
  return codec_pb.next_command(pos, end, max_command, out);
}

static int ws_pb_decode_emulation(const uint8_t *body, size_t len, Protocol__EmulationRequest **out) {
  return codec_pb.decode_emulation(body, len, out);
}

const struct codec codec_ws_json = {
    .name = "json",
    .kind = CODEC_WS_JSON,
    .next_command = codec_json_next_command,
    .encode_reply = ws_json_encode_reply,
    .decode_emulation = codec_json_decode_emulation,
};

const struct codec codec_ws_pb = {
    .name = "protobuf",
    .kind = CODEC_WS_PROTOBUF,
    .next_command = ws_pb_next_command,
    .encode_reply = ws_pb_encode_reply,
    .decode_emulation = ws_pb_decode_emulation,
};
