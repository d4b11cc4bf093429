/* timer: one hashed timing wheel, driven by one thread, for every per-session deadline (pings, pong
 * checks, stale and expiry checks). 20k sessions cost 20k intrusive list nodes, not 20k timers or
 * threads. Scheduling and cancelling are O(1) under the wheel's mutex; callbacks run on the wheel's
 * thread (or the thread calling timer_wheel_advance) with no lock held, so a callback may schedule or
 * cancel any timer, its own included. Resolution is one tick; a timer never fires early. */
#ifndef TIMER_H
#define TIMER_H

#include <stdbool.h>
#include <stdint.h>

struct timer_wheel;

typedef void (*timer_fn)(void *arg);

/* Embedded in its owner (a session); the owner keeps it alive while it is armed. Zero-initialise it
 * (or use TIMER_INIT) before first use. Fields are private to timer.c. */
struct timer {
  struct timer *next, *prev;
  uint64_t deadline_ms;
  timer_fn fn;
  void *arg;
  bool armed;
};
#define TIMER_INIT \
  { 0 }

/* Milliseconds on CLOCK_MONOTONIC. Any thread. */
uint64_t timer_now_ms(void);

/* Unix seconds now (CLOCK_REALTIME), for token times. Not time(): glibc reads that from the coarse clock,
 * up to a tick behind, so a token's ttl could read a second longer than the client reckons. Any thread. */
int64_t timer_unix_now(void);

/* Creates a wheel with TICK_MS resolution and SLOTS buckets, whose clock starts at NOW_MS.
 * Returns NULL when out of memory. The caller owns it (timer_wheel_free). */
struct timer_wheel *timer_wheel_new(uint32_t tick_ms, uint32_t slots, uint64_t now_ms);

/* Stops the thread if running and frees the wheel. Armed timers are dropped without being called. */
void timer_wheel_free(struct timer_wheel *w);

/* Arms T to call FN(ARG) DELAY_MS from now (the wheel's notion of now: the last advance). When T is
 * already armed it is moved to the new deadline. Returns true when T was already armed (so an owner
 * that takes a reference per armed timer knows not to take another). Any thread. */
bool timer_wheel_schedule(struct timer_wheel *w, struct timer *t, uint64_t delay_ms, timer_fn fn, void *arg);

/* Disarms T. Returns true when T was armed (it will not fire), false when it was not armed (it has
 * already fired, is firing now, or was never scheduled). Any thread. */
bool timer_wheel_cancel(struct timer_wheel *w, struct timer *t);

/* Moves the wheel's clock to NOW_MS and calls every timer whose deadline is <= NOW_MS, in deadline
 * order per tick. Each timer is disarmed before its callback runs. Returns the number fired.
 * Used by the wheel's own thread and by tests (deterministic time). */
unsigned timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms);

/* Starts the thread that advances the wheel every tick on CLOCK_MONOTONIC. Returns 0 or -1. */
int timer_wheel_start(struct timer_wheel *w);

/* Stops and joins the thread (armed timers stay armed). Must not be called from a timer callback. */
void timer_wheel_stop(struct timer_wheel *w);

#endif
