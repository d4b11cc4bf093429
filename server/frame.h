/* frame: an immutable, reference-counted buffer holding one encoded message with its framing (a JSON
 * line with its '\n', or a varint-prefixed protobuf message). A publication is encoded once into a frame
 * and every subscriber's queue holds a reference, so fan-out to N sessions costs N increments, not N
 * copies. Static frames (the ping, for example) are immortal: ref/unref leave them alone. */
#ifndef FRAME_H
#define FRAME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct frame {
  atomic_uint refs; /* 0 = immortal (static storage) */
  size_t len;
  uint8_t data[];
};

/* Allocates a frame of LEN bytes (contents uninitialised) with one reference owned by the caller.
 * Returns NULL when out of memory. Any thread. */
struct frame *frame_new(size_t len);

/* Takes another reference; returns F. Any thread. */
struct frame *frame_ref(struct frame *f);

/* Drops a reference; the last one frees the frame. NULL is allowed. Any thread. */
void frame_unref(struct frame *f);

/* The heap F pins: its header and data as glibc's malloc lays out the allocation (an 8-byte chunk
 * header, 16-byte granules, 32 bytes at least), so never less than malloc_usable_size(f). Static
 * frames are costed as if allocated. Pure arithmetic: any thread, no allocation. */
size_t frame_footprint(const struct frame *f);

#endif
