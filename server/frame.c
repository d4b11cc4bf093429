/* frame: refcounted immutable message buffers (see frame.h). The refcount is atomic because frames are
 * shared between the publishing thread and the MHD threads that write each subscriber's stream. */
#include "frame.h"

#include <stdlib.h>

/* glibc malloc's chunk layout (malloc/malloc.c): the size word before the user data, chunks in
 * multiples of 16 bytes, the smallest chunk 32 bytes. Other allocators are close enough for a limit. */
#define MALLOC_HEADER 8
#define MALLOC_GRANULE 16
#define MALLOC_MIN_CHUNK 32

struct frame *frame_new(size_t len) {
  struct frame *f = malloc(sizeof *f + len);
  if (f == NULL) return NULL;
  atomic_init(&f->refs, 1);
  f->len = len;
  return f;
}

struct frame *frame_ref(struct frame *f) {
  if (f && atomic_load_explicit(&f->refs, memory_order_relaxed) != 0)
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void frame_unref(struct frame *f) {
  if (f == NULL || atomic_load_explicit(&f->refs, memory_order_relaxed) == 0) return;
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) free(f);
}

size_t frame_footprint(const struct frame *f) {
  size_t n = sizeof *f + f->len + MALLOC_HEADER;
  n = (n + MALLOC_GRANULE - 1) & ~(size_t)(MALLOC_GRANULE - 1);
  return n < MALLOC_MIN_CHUNK ? MALLOC_MIN_CHUNK : n;
}
