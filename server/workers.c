/* workers: round-robin over a few evloops that only run posted tasks (see workers.h). */
#include "workers.h"

#include <stdatomic.h>
#include <stdlib.h>

struct workers {
  unsigned n;
  atomic_uint next;
  struct evloop *ev[];
};

struct workers *workers_new(unsigned n) {
  if (n < 1) n = 1;
  struct workers *w = calloc(1, sizeof *w + n * sizeof w->ev[0]);
  if (w == NULL) return NULL;
  w->n = n;
  for (unsigned i = 0; i < n; i++) {
    w->ev[i] = evloop_new("worker");
    if (w->ev[i] == NULL || evloop_start(w->ev[i]) != 0) {
      workers_free(w);
      return NULL;
    }
  }
  return w;
}

int workers_post(struct workers *w, evloop_task_fn fn, void *arg) {
  unsigned i = atomic_fetch_add_explicit(&w->next, 1, memory_order_relaxed) % w->n;
  return evloop_post(w->ev[i], fn, arg);
}

bool workers_in_worker(const struct workers *w) {
  if (w == NULL) return false;
  for (unsigned i = 0; i < w->n; i++)
    if (evloop_in_loop(w->ev[i])) return true;
  return false;
}

void workers_free(struct workers *w) {
  if (w == NULL) return;
  for (unsigned i = 0; i < w->n; i++)
    if (w->ev[i]) evloop_free(w->ev[i]);
  free(w);
}
