/* codec_uni: the wire formats of the unidirectional transports (uni_http_stream, uni_sse,
 * uni_websocket). A uni client sends no commands after its connect, so it gets no replies: every frame
 * is a bare Push in JSON (Centrifugo's unidirectional shapes): the connect reply as the connect push
 * {"connect":{...}}, a publication as {"channel":"c","pub":{...}}, a Disconnect as
 * {"disconnect":{"code":N,"reason":"..."}}, a ping (the empty reply) as {}. The three kinds differ only in
 * framing: a line ending in '\n', an SSE event "data: <json>\n\n", or one WebSocket text message (a
 * Disconnect is that message followed by a Close frame with its code and reason). Each is a codec kind
 * of its own, so a publication is encoded once per kind in use on its channel, as for the others.
 * Commands (never read from uni clients after connect) are JSON, as codec_json. Pure: any thread. */
#ifndef CODEC_UNI_H
#define CODEC_UNI_H

#include "codec.h"

extern const struct codec codec_uni_http_stream;
extern const struct codec codec_uni_sse;
extern const struct codec codec_uni_ws;

#endif
