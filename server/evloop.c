/* evloop: an epoll loop with posted tasks and a binary heap of timers (see evloop.h). One iteration
 * waits for events (at most until the earliest timer), calls the watchers of the fds that are ready,
 * fires the timers that are due, then runs the tasks posted so far. Other threads post through a
 * mutex-guarded list and an eventfd write; the loop thread posts to the same list without the write,
 * since the list is always run before the next wait.
 *
 * Invariant: a watcher removed inside a batch may still be named by a later event of the same batch,
 * so an owner frees a removed watcher only from a posted task (run after the batch) or later. The loop
 * skips events of fds it was told to remove during the batch. */
#define _GNU_SOURCE
#include "evloop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define EVLOOP_BATCH 64

struct evloop_task {
  struct evloop_task *next;
  evloop_task_fn fn;
  void *arg;
};

struct evloop {
  char name[32];
  int epfd;
  struct evloop_io wake;
  pthread_t thread;
  bool started;
  atomic_bool stopping;
  uint64_t now_ms;
  pthread_mutex_t lock; /* guards the task list and `stopping` transitions */
  struct evloop_task *head, **tail;
  struct evloop_timer **heap; /* min-heap on deadline_ms */
  size_t heap_len, heap_cap;
  struct epoll_event *batch; /* the batch being dispatched (loop thread), for evloop_io_del */
  int batch_len;
  evloop_prepare_fn prepare;
  void *prepare_arg;
};

static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wake_drain(struct evloop_io *io, uint32_t events) {
  (void)events;
  uint64_t v;
  while (read(io->fd, &v, sizeof v) == (ssize_t)sizeof v) {
  }
}

struct evloop *evloop_new(const char *name) {
  struct evloop *l = calloc(1, sizeof *l);
  if (l == NULL) return NULL;
  snprintf(l->name, sizeof l->name, "%s", name);
  pthread_mutex_init(&l->lock, NULL);
  l->tail = &l->head;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  l->wake.fn = wake_drain;
  l->wake.arg = l;
  l->now_ms = monotonic_ms();
  if (l->epfd < 0 || l->wake.fd < 0 || evloop_io_add(l, &l->wake) != 0) {
    if (l->epfd >= 0) close(l->epfd);
    if (l->wake.fd >= 0) close(l->wake.fd);
    pthread_mutex_destroy(&l->lock);
    free(l);
    return NULL;
  }
  return l;
}

/* ---- timers: a binary min-heap of pointers; heap_index is position + 1 ---- */

static void heap_set(struct evloop *l, size_t i, struct evloop_timer *t) {
  l->heap[i] = t;
  t->heap_index = i + 1;
}

static void heap_up(struct evloop *l, size_t i) {
  struct evloop_timer *t = l->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (l->heap[parent]->deadline_ms <= t->deadline_ms) break;
    heap_set(l, i, l->heap[parent]);
    i = parent;
  }
  heap_set(l, i, t);
}

static void heap_down(struct evloop *l, size_t i) {
  struct evloop_timer *t = l->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= l->heap_len) break;
    if (child + 1 < l->heap_len && l->heap[child + 1]->deadline_ms < l->heap[child]->deadline_ms) child++;
    if (t->deadline_ms <= l->heap[child]->deadline_ms) break;
    heap_set(l, i, l->heap[child]);
    i = child;
  }
  heap_set(l, i, t);
}

static void heap_remove(struct evloop *l, struct evloop_timer *t) {
  size_t i = t->heap_index - 1;
  t->heap_index = 0;
  struct evloop_timer *last = l->heap[--l->heap_len];
  if (i == l->heap_len) return;
  heap_set(l, i, last);
  heap_down(l, i);
  heap_up(l, last->heap_index - 1);
}

int evloop_timer_arm(struct evloop *l, struct evloop_timer *t, uint64_t delay_ms) {
  if (t->heap_index) heap_remove(l, t);
  if (l->heap_len == l->heap_cap) {
    size_t cap = l->heap_cap ? 2 * l->heap_cap : 16;
    struct evloop_timer **h = realloc(l->heap, cap * sizeof *h);
    if (h == NULL) return -1;
    l->heap = h;
    l->heap_cap = cap;
  }
  t->deadline_ms = monotonic_ms() + delay_ms;
  heap_set(l, l->heap_len++, t);
  heap_up(l, l->heap_len - 1);
  return 0;
}

void evloop_timer_cancel(struct evloop *l, struct evloop_timer *t) {
  if (t->heap_index) heap_remove(l, t);
}

bool evloop_timer_armed(const struct evloop_timer *t) { return t->heap_index != 0; }

uint64_t evloop_now_ms(const struct evloop *l) { return l->now_ms; }

static void fire_timers(struct evloop *l) {
  while (l->heap_len > 0 && l->heap[0]->deadline_ms <= l->now_ms) {
    struct evloop_timer *t = l->heap[0];
    heap_remove(l, t);
    t->fn(t);
  }
}

/* ---- watchers ---- */

int evloop_io_add(struct evloop *l, struct evloop_io *io) {
  struct epoll_event ev = {.events = io->events ? io->events : EPOLLIN, .data.ptr = io};
  io->events = ev.events;
  return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

int evloop_io_mod(struct evloop *l, struct evloop_io *io, uint32_t events) {
  if (io->events == events) return 0;
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->events = events;
  return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void evloop_io_del(struct evloop *l, struct evloop_io *io) {
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
  for (int i = 0; i < l->batch_len; i++) /* later events of this batch must not reach it */
    if (l->batch[i].data.ptr == io) l->batch[i].data.ptr = NULL;
}

/* ---- tasks ---- */

static _Thread_local const struct evloop *current_loop; /* the loop this thread runs, if any */

bool evloop_in_loop(const struct evloop *l) { return current_loop == l; }

void evloop_wake(struct evloop *l) {
  if (evloop_in_loop(l)) return;
  uint64_t one = 1;
  if (write(l->wake.fd, &one, sizeof one) < 0 && errno != EAGAIN)
    log_error("%s: cannot wake the loop: %s", l->name, strerror(errno));
}

int evloop_post(struct evloop *l, evloop_task_fn fn, void *arg) {
  struct evloop_task *task = malloc(sizeof *task);
  if (task == NULL) return -1;
  *task = (struct evloop_task){NULL, fn, arg};
  bool local = evloop_in_loop(l);
  pthread_mutex_lock(&l->lock);
  if (atomic_load(&l->stopping) && !local) {
    pthread_mutex_unlock(&l->lock);
    free(task);
    return -1;
  }
  bool was_empty = l->head == NULL;
  *l->tail = task;
  l->tail = &task->next;
  pthread_mutex_unlock(&l->lock);
  if (!local && was_empty) evloop_wake(l);
  return 0;
}

/* Runs the tasks queued so far (tasks they post wait for the next iteration). Returns true when
 * more tasks are waiting. */
static bool run_tasks(struct evloop *l) {
  pthread_mutex_lock(&l->lock);
  struct evloop_task *t = l->head;
  l->head = NULL;
  l->tail = &l->head;
  pthread_mutex_unlock(&l->lock);
  while (t) {
    struct evloop_task *next = t->next;
    t->fn(t->arg);
    free(t);
    t = next;
  }
  pthread_mutex_lock(&l->lock);
  bool more = l->head != NULL;
  pthread_mutex_unlock(&l->lock);
  return more;
}

/* How long the next wait may last: 0 with tasks waiting, else until the earliest timer, at most
 * LIMIT_MS (-1: none) and 60 s. */
static int wait_timeout(struct evloop *l, bool tasks_waiting, int limit_ms) {
  if (tasks_waiting) return 0;
  uint64_t wait = limit_ms >= 0 ? (uint64_t)limit_ms : 60000;
  if (l->heap_len > 0) {
    uint64_t now = monotonic_ms(), due = l->heap[0]->deadline_ms;
    if (due <= now) return 0;
    if (due - now < wait) wait = due - now;
  }
  if (limit_ms < 0 && l->heap_len == 0) return -1;
  return wait > 60000 ? 60000 : (int)wait;
}

void evloop_set_prepare(struct evloop *l, evloop_prepare_fn fn, void *arg) {
  l->prepare = fn;
  l->prepare_arg = arg;
}

static void *loop_main(void *arg) {
  struct evloop *l = arg;
  current_loop = l;
  struct epoll_event events[EVLOOP_BATCH];
  bool tasks_waiting = false;
  int limit_ms = -1;
  while (!atomic_load(&l->stopping) || tasks_waiting) {
    int n = epoll_wait(l->epfd, events, EVLOOP_BATCH, wait_timeout(l, tasks_waiting, limit_ms));
    if (n < 0 && errno != EINTR) {
      log_error("%s: epoll_wait: %s", l->name, strerror(errno));
      break;
    }
    l->now_ms = monotonic_ms();
    l->batch = events;
    l->batch_len = n > 0 ? n : 0;
    for (int i = 0; i < l->batch_len; i++) {
      struct evloop_io *io = events[i].data.ptr;
      if (io) io->fn(io, events[i].events);
    }
    l->batch_len = 0;
    fire_timers(l);
    tasks_waiting = run_tasks(l);
    limit_ms = l->prepare ? l->prepare(l->prepare_arg) : -1;
  }
  while (run_tasks(l)) { /* tasks posted by the last tasks (a connection's own free) */
  }
  return NULL;
}

int evloop_start(struct evloop *l) {
  if (pthread_create(&l->thread, NULL, loop_main, l) != 0) return -1;
  l->started = true;
  return 0;
}

void evloop_stop(struct evloop *l) {
  if (l == NULL) return;
  pthread_mutex_lock(&l->lock);
  bool was_stopping = atomic_exchange(&l->stopping, true);
  pthread_mutex_unlock(&l->lock);
  if (!l->started) {
    run_tasks(l);
    return;
  }
  if (was_stopping) return;
  uint64_t one = 1;
  (void)!write(l->wake.fd, &one, sizeof one);
  pthread_join(l->thread, NULL);
}

void evloop_free(struct evloop *l) {
  if (l == NULL) return;
  evloop_stop(l);
  close(l->wake.fd);
  close(l->epfd);
  free(l->heap);
  pthread_mutex_destroy(&l->lock);
  free(l);
}
