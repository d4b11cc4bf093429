/* codec_pb: the protobuf wire codec (Centrifugo protocol v2 protobuf, PROTOCOL.md §3.3, Appendix A).
 * Commands and replies on a stream are uvarint-length-prefixed protobuf messages; an /emulation body is
 * one EmulationRequest without a prefix. Packing and unpacking are protobuf-c's own. Thread-safe, no
 * state. */
#ifndef CODEC_PB_H
#define CODEC_PB_H

#include "codec.h"

/* The protobuf codec's function table (also reachable through codec_get(CODEC_PROTOBUF)). */
extern const struct codec codec_pb;

#endif
