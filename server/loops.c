/* loops: the core loops (see loops.h). Each loop is an evloop whose prepare hook first runs wakes
 * deferred during the iteration (the fan-out tasks queue many), then the runner (MHD_run), then more
 * of the wakes, asking for no sleep when it ran any (their resumes are taken up by the next MHD_run at
 * once) or some are left. Wakes run DEFERRED_SLICE at a time, oldest first, with the loop's input
 * polled between slices: a fan-out to many streams (one send each) does not keep the loop from
 * reading the next publication meanwhile, and that publication joins the frames still queued for the
 * streams not yet written, so a loop that falls behind writes several frames per send instead of one.
 * A thread finds its loop through a thread-local pointer set by the loop's first task and by its
 * prepare hook. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "loops.h"

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct deferred {
  void (*fn)(void *a, void *b);
  void *a, *b;
};

struct core_loop {
  struct evloop *ev;
  int index;
  evloop_prepare_fn run;
  void *run_arg;
  struct deferred *deferred; /* loop thread only: [head_deferred, n_deferred) still to run */
  size_t head_deferred, n_deferred, cap_deferred;
};

struct loops {
  unsigned n;
  struct core_loop loop[];
};

static _Thread_local struct core_loop *self;

static void set_self(void *arg) { self = arg; }

#define DEFERRED_SLICE 512

/* Runs up to LIMIT of the deferred calls queued before this call, oldest first (those they queue wait
 * for the next call). Returns how many ran. */
static size_t run_deferred(struct core_loop *l, size_t limit) {
  size_t end = l->n_deferred - l->head_deferred > limit ? l->head_deferred + limit : l->n_deferred;
  size_t ran = 0;
  while (l->head_deferred < end) {
    struct deferred d = l->deferred[l->head_deferred++]; /* a copy: FN may grow (move) the array */
    d.fn(d.a, d.b);
    ran++;
  }
  if (l->head_deferred == l->n_deferred) {
    l->head_deferred = l->n_deferred = 0;
    if (l->cap_deferred > 4096) { /* a burst's array goes back */
      free(l->deferred);
      l->deferred = NULL;
      l->cap_deferred = 0;
    }
  }
  return ran;
}

static bool deferred_left(const struct core_loop *l) { return l->head_deferred < l->n_deferred; }

static int prepare(void *arg) {
  struct core_loop *l = arg;
  self = l;
  run_deferred(l, DEFERRED_SLICE);
  int wait_ms = l->run ? l->run(l->run_arg) : -1;
  if (run_deferred(l, DEFERRED_SLICE) > 0 || deferred_left(l)) wait_ms = 0;
  return wait_ms;
}

unsigned loops_usable_cores(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return (unsigned)CPU_COUNT(&set);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? (unsigned)cores : 1;
}

struct loops *loops_new(unsigned n) {
  if (n < 1) n = 1;
  if (n > LOOPS_MAX) n = LOOPS_MAX;
  struct loops *ls = calloc(1, sizeof *ls + n * sizeof ls->loop[0]);
  if (ls == NULL) return NULL;
  ls->n = n;
  for (unsigned i = 0; i < n; i++) {
    struct core_loop *l = &ls->loop[i];
    l->index = (int)i;
    l->ev = evloop_new("core loop");
    if (l->ev == NULL || evloop_post(l->ev, set_self, l) != 0) {
      loops_free(ls);
      return NULL;
    }
    evloop_set_prepare(l->ev, prepare, l);
  }
  return ls;
}

unsigned loops_count(const struct loops *ls) { return ls->n; }

void loops_set_runner(struct loops *ls, unsigned i, evloop_prepare_fn run, void *arg) {
  ls->loop[i].run = run;
  ls->loop[i].run_arg = arg;
}

struct evloop *loops_evloop(struct loops *ls, unsigned i) { return ls->loop[i].ev; }

int loops_start(struct loops *ls) {
  for (unsigned i = 0; i < ls->n; i++)
    if (evloop_start(ls->loop[i].ev) != 0) return -1;
  return 0;
}

void loops_stop(struct loops *ls) {
  if (ls == NULL) return;
  for (unsigned i = 0; i < ls->n; i++) evloop_stop(ls->loop[i].ev);
}

void loops_free(struct loops *ls) {
  if (ls == NULL) return;
  for (unsigned i = 0; i < ls->n; i++) {
    struct core_loop *l = &ls->loop[i];
    if (l->ev == NULL) continue;
    evloop_stop(l->ev);
    while (deferred_left(l)) run_deferred(l, SIZE_MAX);
    evloop_free(l->ev);
    free(l->deferred);
  }
  free(ls);
}

int loops_post(struct loops *ls, unsigned i, evloop_task_fn fn, void *arg) {
  if (i >= ls->n) return -1;
  return evloop_post(ls->loop[i].ev, fn, arg);
}

void loops_wake(struct loops *ls, unsigned i) {
  if (i < ls->n) evloop_wake(ls->loop[i].ev);
}

int loops_current(void) { return self ? self->index : -1; }

bool loops_defer(void (*fn)(void *a, void *b), void *a, void *b) {
  struct core_loop *l = self;
  if (l == NULL) return false;
  if (l->n_deferred == l->cap_deferred && l->head_deferred > 0 && l->head_deferred >= l->cap_deferred / 2) {
    /* full, but its first half already ran: reuse it */
    memmove(l->deferred, l->deferred + l->head_deferred, (l->n_deferred - l->head_deferred) * sizeof *l->deferred);
    l->n_deferred -= l->head_deferred;
    l->head_deferred = 0;
  }
  if (l->n_deferred == l->cap_deferred) {
    size_t cap = l->cap_deferred ? 2 * l->cap_deferred : 64;
    struct deferred *d = realloc(l->deferred, cap * sizeof *d);
    if (d == NULL) return false; /* the caller wakes at once */
    l->deferred = d;
    l->cap_deferred = cap;
  }
  l->deferred[l->n_deferred++] = (struct deferred){fn, a, b};
  return true;
}
