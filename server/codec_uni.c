/* codec_uni: the unidirectional wire formats (see codec_uni.h). One function makes the JSON text of a
 * reply as a uni client sees it; three framings wrap it. */
#include "codec_uni.h"

#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "codec_ws.h"

static const char connect_open[] = "{\"connect\":";

/* The uni JSON text of REPLY in a new malloc'd buffer *text of *len bytes (caller frees): its push;
 * its connect result wrapped as the connect push; anything else as the reply itself (the empty reply,
 * a ping, is "{}"). Returns 0, -CODEC_EDATA or -CODEC_ENOMEM. */
static int uni_text(const Protocol__Reply *reply, char **text, size_t *len) {
  if (reply->push) return codec_json_message_to_text(&reply->push->base, text, len);
  if (reply->connect == NULL) return codec_json_message_to_text(&reply->base, text, len);
  char *inner = NULL;
  size_t n = 0;
  int rc = codec_json_message_to_text(&reply->connect->base, &inner, &n);
  if (rc != 0) return rc;
  size_t total = sizeof connect_open - 1 + n + 1;
  char *t = malloc(total + 1);
  if (t == NULL) {
    free(inner);
    return -CODEC_ENOMEM;
  }
  memcpy(t, connect_open, sizeof connect_open - 1);
  memcpy(t + sizeof connect_open - 1, inner, n);
  t[total - 1] = '}';
  t[total] = '\0';
  free(inner);
  *text = t;
  *len = total;
  return 0;
}

/* A frame of PREFIX, REPLY's uni text and SUFFIX. */
static int framed(const Protocol__Reply *reply, const char *prefix, const char *suffix, struct frame **out) {
  char *text = NULL;
  size_t len = 0;
  int rc = uni_text(reply, &text, &len);
  if (rc != 0) return rc;
  size_t pl = strlen(prefix), sl = strlen(suffix);
  struct frame *f = frame_new(pl + len + sl);
  if (f == NULL) {
    free(text);
    return -CODEC_ENOMEM;
  }
  memcpy(f->data, prefix, pl);
  memcpy(f->data + pl, text, len);
  memcpy(f->data + pl + len, suffix, sl);
  free(text);
  *out = f;
  return 0;
}

static int line_encode(const Protocol__Reply *reply, struct frame **out) {
  return framed(reply, "", "\n", out);
}

static int sse_encode(const Protocol__Reply *reply, struct frame **out) {
  return framed(reply, "data: ", "\n\n", out);
}

/* One text message; a Disconnect push is followed by a Close frame with its code and reason, in the
 * same frame, so the client reads the push and then sees the connection close the WebSocket way. */
static int ws_encode(const Protocol__Reply *reply, struct frame **out) {
  char *text = NULL;
  size_t len = 0;
  int rc = uni_text(reply, &text, &len);
  if (rc != 0) return rc;
  struct frame *msg = codec_ws_frame(WS_OP_TEXT, (const uint8_t *)text, len);
  free(text);
  if (msg == NULL) return -CODEC_ENOMEM;
  const Protocol__Disconnect *d = reply->push ? reply->push->disconnect : NULL;
  if (d == NULL) {
    *out = msg;
    return 0;
  }
  struct frame *close = codec_ws_close_frame(d->code, d->reason);
  struct frame *both = close ? frame_new(msg->len + close->len) : NULL;
  if (both) {
    memcpy(both->data, msg->data, msg->len);
    memcpy(both->data + msg->len, close->data, close->len);
  }
  frame_unref(msg);
  frame_unref(close);
  if (both == NULL) return -CODEC_ENOMEM;
  *out = both;
  return 0;
}

const struct codec codec_uni_http_stream = {
    .name = "json",
    .kind = CODEC_UNI_HTTP_STREAM,
    .next_command = codec_json_next_command,
    .encode_reply = line_encode,
    .decode_emulation = codec_json_decode_emulation,
};

const struct codec codec_uni_sse = {
    .name = "json",
    .kind = CODEC_UNI_SSE,
    .next_command = codec_json_next_command,
    .encode_reply = sse_encode,
    .decode_emulation = codec_json_decode_emulation,
};

const struct codec codec_uni_ws = {
    .name = "json",
    .kind = CODEC_UNI_WS,
    .next_command = codec_json_next_command,
    .encode_reply = ws_encode,
    .decode_emulation = codec_json_decode_emulation,
};
