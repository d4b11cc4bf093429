/* frame: refcounted immutable message buffers (see frame.h). The refcount is atomic because frames are
 * shared between the publishing thread and the MHD threads that write each subscriber's stream. */
#include "frame.h"

#include <stdlib.h>

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
