/* evloop: one event loop thread: an epoll set of file descriptors, a queue of tasks that other threads
 * post to it, and one-shot timers. It is the base of the engine's I/O (the Redis connections) and is
 * meant for any module that owns sockets and wants to be driven by events instead of by a thread per
 * socket.
 *
 * Threads: evloop_post() and evloop_in_loop() may be called from any thread; every other function only
 * from the loop's own thread (inside a callback or a posted task), or before evloop_start() / after
 * evloop_free() joined the thread. Callbacks run on the loop thread with no evloop lock held, so they
 * may add, change or remove any watcher or timer, their own included.
 *
 * Ownership: watchers and timers are embedded in their owner, which keeps them alive while they are
 * registered or armed. The loop owns nothing but its own fds and the posted-task queue. */
#ifndef EVLOOP_H
#define EVLOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evloop;
struct evloop_io;
struct evloop_timer;

typedef void (*evloop_io_fn)(struct evloop_io *io, uint32_t events);
typedef void (*evloop_timer_fn)(struct evloop_timer *t);
typedef void (*evloop_task_fn)(void *arg);

/* A file descriptor watcher: FD with the epoll EVENTS wanted; FN is called with what happened. */
struct evloop_io {
  int fd;
  uint32_t events;
  evloop_io_fn fn;
  void *arg;
};

/* A one-shot timer. Zero-initialise before first use; fields but FN and ARG are private. */
struct evloop_timer {
  uint64_t deadline_ms;
  size_t heap_index; /* position + 1 in the loop's heap; 0 when not armed */
  evloop_timer_fn fn;
  void *arg;
};

/* Creates a loop named NAME (for logs). Returns NULL when out of resources. Caller owns it. */
struct evloop *evloop_new(const char *name);

/* Starts the loop thread. Returns 0 or -1. */
int evloop_start(struct evloop *l);

/* Called once per iteration on the loop thread, after the watchers, timers and tasks of the iteration
 * and before the loop waits again; returns the longest the loop may then wait in milliseconds (-1: no
 * limit of its own). What a module drives from the loop without an fd of its own (libmicrohttpd's
 * MHD_run). Set it before evloop_start(). */
typedef int (*evloop_prepare_fn)(void *arg);
void evloop_set_prepare(struct evloop *l, evloop_prepare_fn fn, void *arg);

/* Stops the thread (posted tasks still queued are run first) and joins it; later evloop_post() calls
 * fail. The loop stays allocated (its watchers and timers may still be removed) until evloop_free().
 * Idempotent. Not from the loop thread. */
void evloop_stop(struct evloop *l);

/* Stops the thread (posted tasks still queued are run first), joins it and frees the loop. Watchers
 * still registered are dropped without a call; their owners close their fds. Not from the loop thread. */
void evloop_free(struct evloop *l);

/* Runs FN(ARG) on the loop thread, after the current batch of events when called from the loop thread
 * itself (no syscall then). Returns 0, or -1 when out of memory or the loop is stopping (FN not run). */
int evloop_post(struct evloop *l, evloop_task_fn fn, void *arg);

/* Makes L's thread run one more iteration (its prepare hook included) soon: from another thread it
 * interrupts the wait; on the loop thread it does nothing (the iteration follows anyway). */
void evloop_wake(struct evloop *l);

/* True when the calling thread is L's loop thread. */
bool evloop_in_loop(const struct evloop *l);

/* Registers, changes or removes IO (its fd and events). Return 0 or -1 with errno. */
int evloop_io_add(struct evloop *l, struct evloop_io *io);
int evloop_io_mod(struct evloop *l, struct evloop_io *io, uint32_t events);
void evloop_io_del(struct evloop *l, struct evloop_io *io);

/* Arms T to fire DELAY_MS from now (re-arming moves it), or cancels it (no-op when not armed). */
int evloop_timer_arm(struct evloop *l, struct evloop_timer *t, uint64_t delay_ms);
void evloop_timer_cancel(struct evloop *l, struct evloop_timer *t);
bool evloop_timer_armed(const struct evloop_timer *t);

/* The loop's clock: CLOCK_MONOTONIC milliseconds read at the start of the current iteration. */
uint64_t evloop_now_ms(const struct evloop *l);

#endif
