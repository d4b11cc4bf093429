/* codec_sse: the Server-Sent Events wire format: commands are JSON (as codec_json), each reply is one
 * event "data: <compact JSON>\n\n" (PROTOCOL.md §2.4). */
#ifndef CODEC_SSE_H
#define CODEC_SSE_H

#include "codec.h"

extern const struct codec codec_sse;

#endif
