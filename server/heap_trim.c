/* heap_trim: malloc_trim after a load peak (see heap_trim.h). */
#include "heap_trim.h"

#include <malloc.h>
#include <stdlib.h>

#include "log.h"
#include "timer.h"

enum {
  TICK_MS = 5000,
  PEAK_WORTH_TRIMMING = 64, /* sessions: below this a peak leaves too little to give back */
};

struct heap_trim {
  struct timer_wheel *wheel;
  struct timer timer;
  size_t (*load)(void *arg);
  void *arg;
  size_t peak;
};

int heap_trim_due(size_t load, size_t peak) { return peak >= PEAK_WORTH_TRIMMING && load * 2 <= peak; }

static void tick(void *arg) {
  struct heap_trim *t = arg;
  size_t load = t->load(t->arg);
  if (load > t->peak) t->peak = load;
  if (heap_trim_due(load, t->peak)) {
    size_t before = mallinfo2().fordblks;
    malloc_trim(0);
    log_debug("heap: load %zu after a peak of %zu: trimmed (%zu bytes free in the heap)", load, t->peak, before);
    t->peak = load;
  }
  timer_wheel_schedule(t->wheel, &t->timer, TICK_MS, tick, t);
}

struct heap_trim *heap_trim_start(struct timer_wheel *w, size_t (*load)(void *arg), void *arg) {
  struct heap_trim *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  *t = (struct heap_trim){.wheel = w, .load = load, .arg = arg};
  timer_wheel_schedule(w, &t->timer, TICK_MS, tick, t);
  return t;
}

void heap_trim_stop(struct heap_trim *t) {
  if (t == NULL) return;
  timer_wheel_cancel(t->wheel, &t->timer);
  free(t);
}
