/* loops: the core loops (see loops.h). Each loop is an evloop whose prepare hook first runs the wakes
 * deferred during the iteration (the fan-out tasks queue many), then the runner (MHD_run), then the
 * wakes the runner's own callbacks deferred, asking for no sleep when there were any (their resumes
 * are taken up by the next MHD_run at once). A thread finds its loop through a thread-local pointer
 * set by the loop's first task and by its prepare hook. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "loops.h"

#include <sched.h>
#include <stdlib.h>
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
  struct deferred *deferred; /* loop thread only */
  size_t n_deferred, cap_deferred;
};

struct loops {
  unsigned n;
  struct core_loop loop[];
};

static _Thread_local struct core_loop *self;

static void set_self(void *arg) { self = arg; }

/* Runs the deferred calls queued so far, including those they queue. Returns how many ran. */
static size_t run_deferred(struct core_loop *l) {
  size_t ran = 0;
  for (size_t i = 0; i < l->n_deferred; i++, ran++) l->deferred[i].fn(l->deferred[i].a, l->deferred[i].b);
  l->n_deferred = 0;
  if (l->cap_deferred > 4096) { /* a burst's array goes back */
    free(l->deferred);
    l->deferred = NULL;
    l->cap_deferred = 0;
  }
  return ran;
}

static int prepare(void *arg) {
  struct core_loop *l = arg;
  self = l;
  run_deferred(l);
  int wait_ms = l->run ? l->run(l->run_arg) : -1;
  if (run_deferred(l) > 0) wait_ms = 0;
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
    run_deferred(l);
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
