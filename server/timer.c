/* timer: a hashed timing wheel. `slots` circular lists with sentinel heads; a timer whose deadline is D
 * lives in slot (D / tick_ms) % slots however far ahead D is, and a slot scan skips every timer whose
 * deadline has not come yet (the rounds are implicit in that compare). Invariants, all under w->lock:
 * an armed timer is linked in exactly the slot of its deadline and a disarmed one in none; every armed
 * timer's deadline tick is >= w->tick, so scanning the slots of ticks w->tick .. now/tick_ms finds every
 * due timer, and one lap (at most `slots` scans) covers a jump of any size. Due timers are unlinked,
 * disarmed and copied out as (deadline, fn, arg) firings under the lock; after the unlock nothing
 * touches a struct timer again, so callbacks may reschedule, cancel or free any timer, their own too. */
#include "timer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

struct timer_wheel {
  pthread_mutex_t lock;
  uint32_t tick_ms, slots;
  uint64_t now_ms;     /* the wheel's clock: the latest advance (never goes back) */
  uint64_t tick;       /* first tick whose slot may still hold a due timer */
  struct timer *heads; /* `slots` sentinels */
  pthread_t thread;
  bool running; /* touched only by start/stop/free, never by the wheel's thread */
  atomic_bool stop;
};

/* A due timer copied out of the wheel; seq keeps equal deadlines in the order they were scheduled. */
struct firing {
  uint64_t deadline, seq;
  timer_fn fn;
  void *arg;
};

struct due {
  struct firing *v;
  size_t n, cap;
};

uint64_t timer_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t timer_unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec;
}

struct timer_wheel *timer_wheel_new(uint32_t tick_ms, uint32_t slots, uint64_t now_ms) {
  if (tick_ms == 0 || slots == 0) return NULL;
  struct timer_wheel *w = calloc(1, sizeof(*w));
  if (!w) return NULL;
  w->heads = calloc(slots, sizeof(*w->heads));
  if (!w->heads || pthread_mutex_init(&w->lock, NULL) != 0) {
    free(w->heads);
    free(w);
    return NULL;
  }
  for (uint32_t i = 0; i < slots; i++) w->heads[i].next = w->heads[i].prev = &w->heads[i];
  w->tick_ms = tick_ms;
  w->slots = slots;
  w->now_ms = now_ms;
  w->tick = now_ms / tick_ms;
  atomic_init(&w->stop, false);
  return w;
}

static void unlink_timer(struct timer *t) {
  t->prev->next = t->next;
  t->next->prev = t->prev;
  t->next = t->prev = NULL;
  t->armed = false;
}

void timer_wheel_free(struct timer_wheel *w) {
  if (!w) return;
  timer_wheel_stop(w);
  /* Disarm what is left so an owner that reuses its struct timer never unlinks it from freed memory. */
  for (uint32_t i = 0; i < w->slots; i++)
    while (w->heads[i].next != &w->heads[i]) unlink_timer(w->heads[i].next);
  pthread_mutex_destroy(&w->lock);
  free(w->heads);
  free(w);
}

bool timer_wheel_schedule(struct timer_wheel *w, struct timer *t, uint64_t delay_ms, timer_fn fn, void *arg) {
  pthread_mutex_lock(&w->lock);
  bool was_armed = t->armed;
  if (was_armed) unlink_timer(t);
  t->deadline_ms = delay_ms > UINT64_MAX - w->now_ms ? UINT64_MAX : w->now_ms + delay_ms;
  t->fn = fn;
  t->arg = arg;
  /* Append, so timers with equal deadlines (same slot) fire in the order they were scheduled. */
  struct timer *head = &w->heads[(t->deadline_ms / w->tick_ms) % w->slots];
  t->next = head;
  t->prev = head->prev;
  head->prev->next = t;
  head->prev = t;
  t->armed = true;
  pthread_mutex_unlock(&w->lock);
  return was_armed;
}

bool timer_wheel_cancel(struct timer_wheel *w, struct timer *t) {
  pthread_mutex_lock(&w->lock);
  bool was_armed = t->armed;
  if (was_armed) unlink_timer(t);
  pthread_mutex_unlock(&w->lock);
  return was_armed;
}

static int due_push(struct due *d, const struct timer *t) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    struct firing *v = realloc(d->v, cap * sizeof(*v));
    if (!v) return -1;
    d->v = v;
    d->cap = cap;
  }
  d->v[d->n] = (struct firing){t->deadline_ms, d->n, t->fn, t->arg};
  d->n++;
  return 0;
}

/* Moves every timer of HEAD due by NOW into D. -1 when D cannot grow: the rest stay armed and linked. */
static int collect_slot(struct timer *head, uint64_t now, struct due *d) {
  struct timer *next;
  for (struct timer *t = head->next; t != head; t = next) {
    next = t->next;
    if (t->deadline_ms > now) continue;
    if (due_push(d, t) != 0) return -1;
    unlink_timer(t);
  }
  return 0;
}

static int firing_cmp(const void *a, const void *b) {
  const struct firing *x = a, *y = b;
  if (x->deadline != y->deadline) return x->deadline < y->deadline ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

unsigned timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms) {
  struct due d = {0};
  int rc = 0;
  pthread_mutex_lock(&w->lock);
  if (now_ms > w->now_ms) w->now_ms = now_ms;
  uint64_t now = w->now_ms, last = now / w->tick_ms;
  /* w->tick's own slot is rescanned: an earlier advance inside that tick left its later deadlines. */
  uint64_t steps = last - w->tick >= w->slots ? w->slots : last - w->tick + 1;
  for (uint64_t i = 0; i < steps && rc == 0; i++)
    rc = collect_slot(&w->heads[(w->tick + i) % w->slots], now, &d);
  if (rc == 0) /* out of memory: keep w->tick, the next advance rescans and fires the rest */
    w->tick = last;
  pthread_mutex_unlock(&w->lock);

  /* Sorting by deadline gives deadline order within a tick and earlier ticks first. */
  if (d.n > 1) qsort(d.v, d.n, sizeof(*d.v), firing_cmp);
  for (size_t i = 0; i < d.n; i++) d.v[i].fn(d.v[i].arg);
  free(d.v);
  return (unsigned)d.n;
}

static void *wheel_main(void *arg) {
  struct timer_wheel *w = arg;
  while (!atomic_load(&w->stop)) {
    /* Sleep to the next tick boundary, absolute, so time spent in callbacks does not make ticks drift. */
    uint64_t next = (timer_now_ms() / w->tick_ms + 1) * w->tick_ms;
    struct timespec ts = {.tv_sec = (time_t)(next / 1000), .tv_nsec = (long)(next % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    if (!atomic_load(&w->stop)) timer_wheel_advance(w, timer_now_ms());
  }
  return NULL;
}

int timer_wheel_start(struct timer_wheel *w) {
  if (w->running) return 0;
  atomic_store(&w->stop, false);
  /* The thread starts with every signal blocked so that signals go to the threads that handle them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&w->thread, NULL, wheel_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return -1;
  w->running = true;
  return 0;
}

void timer_wheel_stop(struct timer_wheel *w) {
  if (!w->running) return;
  /* The thread sees the flag when its current sleep ends: stopping takes at most one tick. */
  atomic_store(&w->stop, true);
  pthread_join(w->thread, NULL);
  w->running = false;
}
