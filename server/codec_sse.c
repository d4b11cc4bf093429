/* codec_sse: JSON replies framed as SSE events. The JSON text never holds a raw '\n' or '\r' (it is
 * compact and embedded raw JSON loses its line breaks), so one "data:" line per reply is enough. */
#include "codec_sse.h"

#include <stdlib.h>
#include <string.h>

#include "codec_json.h"

static const char prefix[] = "data: ";
static const char suffix[] = "\n\n";

static int sse_encode_reply(const Protocol__Reply *reply, struct frame **out) {
  char *text = NULL;
  size_t len = 0;
  int rc = codec_json_message_to_text(&reply->base, &text, &len);
  if (rc != 0) return rc;
  struct frame *f = frame_new(sizeof prefix - 1 + len + sizeof suffix - 1);
  if (f == NULL) {
    free(text);
    return -CODEC_ENOMEM;
  }
  memcpy(f->data, prefix, sizeof prefix - 1);
  memcpy(f->data + sizeof prefix - 1, text, len);
  memcpy(f->data + sizeof prefix - 1 + len, suffix, sizeof suffix - 1);
  free(text);
  *out = f;
  return 0;
}

const struct codec codec_sse = {
    .name = "json",
    .kind = CODEC_SSE,
    .next_command = codec_json_next_command,
    .encode_reply = sse_encode_reply,
    .decode_emulation = codec_json_decode_emulation,
};
