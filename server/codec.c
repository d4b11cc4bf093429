/* codec: the registry of wire codecs and the text of their error codes (see codec.h). Both tables are
 * constant, so every function here is pure and callable from any thread. */
#include "codec.h"

#include "codec_json.h"
#include "codec_pb.h"
#include "codec_sse.h"
#include "codec_uni.h"
#include "codec_ws.h"

static const struct codec *const codecs[CODEC_COUNT] = {
    [CODEC_JSON] = &codec_json,       [CODEC_PROTOBUF] = &codec_pb,       [CODEC_SSE] = &codec_sse,
    [CODEC_WS_JSON] = &codec_ws_json, [CODEC_WS_PROTOBUF] = &codec_ws_pb,
    [CODEC_UNI_HTTP_STREAM] = &codec_uni_http_stream, [CODEC_UNI_SSE] = &codec_uni_sse,
    [CODEC_UNI_WS] = &codec_uni_ws,
};

static const char *const error_texts[] = {
    [CODEC_OK] = "success",
    [CODEC_EMALFORMED] = "malformed message",
    [CODEC_ETOOBIG] = "command too large",
    [CODEC_EDATA] = "payload cannot be carried by this protocol",
    [CODEC_ENOMEM] = "out of memory",
    [CODEC_ELIMIT] = "message nests too deep or has too many fields",
};

const struct codec *codec_get(enum codec_kind kind) {
  if ((unsigned)kind >= CODEC_COUNT) return NULL;
  return codecs[kind];
}

const char *codec_strerror(int err) {
  unsigned code = err < 0 ? 0u - (unsigned)err : (unsigned)err;
  if (code >= sizeof error_texts / sizeof error_texts[0]) return "unknown codec error";
  return error_texts[code];
}
