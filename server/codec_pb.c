/* codec_pb: the protobuf wire codec (see codec_pb.h). Framing is a uvarint length (at most 10 bytes,
 * value ≤ the caller's command limit) followed by that many bytes of message; protobuf-c does the rest.
 * A set sub-message is packed even when empty (tag + length 0) because protobuf-c emits every non-NULL
 * message pointer, which is what the SDK needs for result fields (PROTOCOL.md §1 item 7). Every client
 * message passes pb_guard_check before protobuf-c sees it: protobuf-c's unpack recurses without a depth
 * limit (pb_guard.h). No state: any thread. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "codec_pb.h"
#include "pb_guard.h"

/* Writes V as a uvarint into BUF (NULL: only measure). Returns the number of bytes. */
static size_t uvarint_put(uint8_t *buf, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t b = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (buf) buf[n] = b | (v ? 0x80 : 0);
    n++;
  } while (v);
  return n;
}

/* protobuf-c's unpack returns NULL both for bytes that are not a message and for a failed allocation;
 * this allocator notes the failure, so that out of memory is not reported as malformed input. What it
 * allocates is freed with free(), as protobuf_c_message_free_unpacked(..., NULL) does. */
struct noting_allocator {
  ProtobufCAllocator base;
  bool failed;
};

static void *noting_alloc(void *data, size_t size) {
  void *p = malloc(size);
  if (p == NULL && size > 0) ((struct noting_allocator *)data)->failed = true;
  return p;
}

static void noting_free(void *data, void *p) {
  (void)data;
  free(p);
}

#define NOTING_ALLOCATOR(a) {.base = {.alloc = noting_alloc, .free = noting_free, .allocator_data = &(a)}}

static int pb_next_command(const uint8_t **pos, const uint8_t *end, size_t max_command,
                           Protocol__Command **out) {
  const uint8_t *p = *pos;
  uint64_t len;
  if (p >= end) return 1;
  int rc = pb_guard_uvarint(&p, end, &len);
  if (rc != 0) return rc;
  if (len > max_command) return -CODEC_ETOOBIG;
  if (len > (uint64_t)(end - p)) return -CODEC_EMALFORMED; /* the stream ends inside the message */
  rc = pb_guard_check(&protocol__command__descriptor, p, (size_t)len);
  if (rc != 0) return rc;
  struct noting_allocator a = NOTING_ALLOCATOR(a);
  Protocol__Command *cmd = protocol__command__unpack(&a.base, (size_t)len, p);
  if (cmd == NULL) return a.failed ? -CODEC_ENOMEM : -CODEC_EMALFORMED;
  *pos = p + len;
  *out = cmd;
  return 0;
}

static int pb_encode_reply(const Protocol__Reply *reply, struct frame **out) {
  size_t len = protocol__reply__get_packed_size(reply);
  size_t prefix = uvarint_put(NULL, len);
  struct frame *f = frame_new(prefix + len);
  if (f == NULL) return -CODEC_ENOMEM;
  uvarint_put(f->data, len);
  protocol__reply__pack(reply, f->data + prefix);
  *out = f;
  return 0;
}

static int pb_decode_emulation(const uint8_t *body, size_t len, Protocol__EmulationRequest **out) {
  int rc = pb_guard_check(&protocol__emulation_request__descriptor, body, len);
  if (rc != 0) return rc;
  struct noting_allocator a = NOTING_ALLOCATOR(a);
  Protocol__EmulationRequest *req = protocol__emulation_request__unpack(&a.base, len, body);
  if (req == NULL) return a.failed ? -CODEC_ENOMEM : -CODEC_EMALFORMED;
  *out = req;
  return 0;
}

const struct codec codec_pb = {
    .name = "protobuf",
    .kind = CODEC_PROTOBUF,
    .next_command = pb_next_command,
    .encode_reply = pb_encode_reply,
    .decode_emulation = pb_decode_emulation,
};
