/* Unit tests for timer.c. Time is deterministic: every test but the last drives the wheel with
 * timer_wheel_advance and its own clock; the last runs the real thread briefly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "timer.h"

#define T0 1000000u /* the wheels' start time: not zero, not a multiple of the lap */

/* What fired, in order, and at what (test) time. */
struct log {
  uint64_t now;
  int ids[64];
  uint64_t at[64];
  size_t n;
};

struct probe {
  struct log *log;
  int id;
  struct timer timer;
  struct timer_wheel *w;
  struct probe *other; /* for the callbacks that act on another timer */
  uint64_t period;
  bool other_result;
};

static void record(void *arg) {
  struct probe *p = arg;
  struct log *l = p->log;
  assert_true(l->n < 64);
  l->ids[l->n] = p->id;
  l->at[l->n++] = l->now;
}

static unsigned advance_to(struct timer_wheel *w, struct log *l, uint64_t now) {
  l->now = now;
  return timer_wheel_advance(w, now);
}

static void schedule(struct timer_wheel *w, struct probe *p, uint64_t delay) {
  timer_wheel_schedule(w, &p->timer, delay, record, p);
}

static void fires_at_deadline_not_before(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0);
  struct probe p = {.log = &l, .id = 1};
  assert_false(timer_wheel_schedule(w, &p.timer, 95, record, &p)); /* deadline T0 + 95, mid-tick */
  for (uint64_t t = T0; t < T0 + 95; t += 1)
    assert_int_equal(advance_to(w, &l, t), 0);
  assert_int_equal(advance_to(w, &l, T0 + 95), 1);
  assert_int_equal(l.n, 1);
  assert_int_equal(l.at[0], T0 + 95);
  assert_int_equal(advance_to(w, &l, T0 + 1000), 0); /* exactly once */
  timer_wheel_free(w);
}

static void fires_in_deadline_order(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0);
  static const uint64_t delays[] = {38, 12, 31, 15, 12, 200, 1};
  static const int expected[] = {7, 2, 5, 4, 3, 1, 6}; /* equal deadlines: scheduling order */
  struct probe p[7];
  for (int i = 0; i < 7; i++) {
    p[i] = (struct probe){.log = &l, .id = i + 1};
    schedule(w, &p[i], delays[i]);
  }
  assert_int_equal(advance_to(w, &l, T0 + 500), 7); /* several ticks in one advance */
  for (int i = 0; i < 7; i++)
    assert_int_equal(l.ids[i], expected[i]);
  timer_wheel_free(w);
}

static void cancel_prevents_firing(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0);
  struct probe a = {.log = &l, .id = 1}, b = {.log = &l, .id = 2}, never = {.log = &l, .id = 3};
  schedule(w, &a, 50);
  schedule(w, &b, 50);
  assert_true(timer_wheel_cancel(w, &a.timer));
  assert_false(timer_wheel_cancel(w, &a.timer)); /* no longer armed */
  assert_false(timer_wheel_cancel(w, &never.timer));
  assert_int_equal(advance_to(w, &l, T0 + 100), 1);
  assert_int_equal(l.ids[0], 2);
  assert_false(timer_wheel_cancel(w, &b.timer)); /* already fired */
  timer_wheel_free(w);
}

static void reschedule_moves_deadline(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0);
  struct probe a = {.log = &l, .id = 1}, b = {.log = &l, .id = 2};
  assert_false(timer_wheel_schedule(w, &a.timer, 50, record, &a));
  assert_true(timer_wheel_schedule(w, &a.timer, 300, record, &a)); /* later */
  schedule(w, &b, 500);
  assert_true(timer_wheel_schedule(w, &b.timer, 20, record, &b)); /* earlier */
  assert_int_equal(advance_to(w, &l, T0 + 299), 1);
  assert_int_equal(l.ids[0], 2);
  assert_int_equal(l.at[0], T0 + 299);
  assert_int_equal(advance_to(w, &l, T0 + 300), 1);
  assert_int_equal(l.ids[1], 1);
  assert_int_equal(advance_to(w, &l, T0 + 1000), 0); /* the old deadlines are gone */
  timer_wheel_free(w);
}

static void periodic(void *arg) {
  struct probe *p = arg;
  record(p);
  assert_false(timer_wheel_schedule(p->w, &p->timer, p->period, periodic, p)); /* disarmed while firing */
}

static void callback_reschedules_itself(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 16, T0);
  struct probe p = {.log = &l, .id = 1, .w = w, .period = 25};
  timer_wheel_schedule(w, &p.timer, 25, periodic, &p);
  for (uint64_t t = T0; t <= T0 + 1000; t += 5)
    advance_to(w, &l, t);
  assert_int_equal(l.n, 40);
  for (size_t i = 0; i < l.n; i++)
    assert_int_equal(l.at[i], T0 + 25 * (i + 1));
  assert_true(timer_wheel_cancel(w, &p.timer)); /* still armed for T0 + 1025 */
  timer_wheel_free(w);
}

static void cancel_other(void *arg) {
  struct probe *p = arg;
  record(p);
  p->other_result = timer_wheel_cancel(p->w, &p->other->timer);
}

/* A callback cancelling a timer due in the same advance gets false (it is already disarmed and will
 * run: the owner's reference goes with that call); cancelling one due later gets true. */
static void callback_cancels_another(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0);
  struct probe b = {.log = &l, .id = 2}, c = {.log = &l, .id = 3};
  struct probe a1 = {.log = &l, .id = 1, .w = w, .other = &b};
  struct probe a2 = {.log = &l, .id = 4, .w = w, .other = &c};
  timer_wheel_schedule(w, &a1.timer, 10, cancel_other, &a1);
  schedule(w, &b, 15); /* same tick as a1 */
  timer_wheel_schedule(w, &a2.timer, 12, cancel_other, &a2);
  schedule(w, &c, 30);
  assert_int_equal(advance_to(w, &l, T0 + 19), 3);
  assert_false(a1.other_result);
  assert_true(a2.other_result);
  assert_int_equal(l.ids[0], 1);
  assert_int_equal(l.ids[1], 4);
  assert_int_equal(l.ids[2], 2);
  assert_int_equal(advance_to(w, &l, T0 + 1000), 0); /* c never fires */
  timer_wheel_free(w);
}

static void far_future_many_rounds(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 8, T0); /* one lap is 80 ms */
  struct probe far = {.log = &l, .id = 1}, near = {.log = &l, .id = 2};
  schedule(w, &far, 10000); /* 125 laps */
  schedule(w, &near, 80);   /* the same slot, one lap */
  for (uint64_t t = T0; t < T0 + 10000; t += 10)
    advance_to(w, &l, t);
  assert_int_equal(l.n, 1);
  assert_int_equal(l.ids[0], 2);
  assert_int_equal(advance_to(w, &l, T0 + 10000), 1);
  assert_int_equal(l.ids[1], 1);
  timer_wheel_free(w);
}

static void large_jump(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0);
  static const uint64_t delays[] = {3599999, 5, 1800000, 640, 3600000, 3600001};
  struct probe p[6];
  for (int i = 0; i < 6; i++) {
    p[i] = (struct probe){.log = &l, .id = i + 1};
    schedule(w, &p[i], delays[i]);
  }
  assert_int_equal(advance_to(w, &l, T0 + 3600000), 5); /* one hour in one call */
  static const int expected[] = {2, 4, 3, 1, 5};
  for (int i = 0; i < 5; i++)
    assert_int_equal(l.ids[i], expected[i]);
  /* The clock moved: new delays count from the jump, and the one left fires 1 ms later. */
  schedule(w, &p[0], 20);
  assert_int_equal(advance_to(w, &l, T0 + 3600001), 1);
  assert_int_equal(l.ids[5], 6);
  assert_int_equal(advance_to(w, &l, T0 + 3600019), 0);
  assert_int_equal(advance_to(w, &l, T0 + 3600020), 1);
  /* A jump of 2^50 ms returns at once: the slot walk stops after one lap (a tick-by-tick walk hangs). */
  schedule(w, &p[1], UINT64_C(1) << 50);
  assert_int_equal(advance_to(w, &l, T0 + 3600020 + (UINT64_C(1) << 50)), 1);
  timer_wheel_free(w);
}

#define MANY 20000

struct many {
  struct timer timer;
  uint64_t deadline;
  unsigned fired;
  const uint64_t *now;
};

static void many_fn(void *arg) {
  struct many *m = arg;
  m->fired++;
  assert_true(*m->now >= m->deadline);
}

static void twenty_thousand_fire_once(void **state) {
  (void)state;
  struct timer_wheel *w = timer_wheel_new(10, 256, T0);
  struct many *m = calloc(MANY, sizeof(*m));
  uint64_t now = T0;
  for (unsigned i = 0; i < MANY; i++) {
    uint64_t delay = (i * 7919u) % 30000u; /* spread over many laps, with collisions */
    m[i].deadline = T0 + delay;
    m[i].now = &now;
    timer_wheel_schedule(w, &m[i].timer, delay, many_fn, &m[i]);
  }
  unsigned total = 0;
  for (now = T0; now < T0 + 30000 + 7; now += 7) /* the last step passes every deadline */
    total += timer_wheel_advance(w, now);
  assert_int_equal(total, MANY);
  for (unsigned i = 0; i < MANY; i++)
    assert_int_equal(m[i].fired, 1);
  free(m);
  timer_wheel_free(w);
}

static void schedule_zero(void *arg) {
  struct probe *p = arg;
  record(p);
  if (p->log->n == 1)
    timer_wheel_schedule(p->w, &p->timer, 0, schedule_zero, p);
}

static void delay_zero_fires_on_next_advance(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0 + 3); /* mid-tick */
  struct probe p = {.log = &l, .id = 1, .w = w};
  timer_wheel_schedule(w, &p.timer, 0, schedule_zero, &p);
  assert_int_equal(advance_to(w, &l, T0 + 3), 1); /* same time: due */
  /* rescheduled with delay 0 from its callback: not in the same advance, but in the next one */
  assert_int_equal(l.n, 1);
  assert_int_equal(advance_to(w, &l, T0 + 3), 1);
  assert_int_equal(advance_to(w, &l, T0 + 100), 0);
  timer_wheel_free(w);
}

static void free_disarms_armed_timers(void **state) {
  (void)state;
  struct log l = {0};
  struct timer_wheel *w = timer_wheel_new(10, 64, T0);
  struct probe p = {.log = &l, .id = 1};
  schedule(w, &p, 100);
  timer_wheel_free(w); /* dropped without being called */
  assert_int_equal(l.n, 0);
  w = timer_wheel_new(10, 64, T0);
  assert_false(timer_wheel_schedule(w, &p.timer, 10, record, &p)); /* reusable, not armed */
  assert_int_equal(advance_to(w, &l, T0 + 10), 1);
  timer_wheel_free(w);
}

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool fired;
  uint64_t at;
};

static void wake(void *arg) {
  struct waiter *wt = arg;
  pthread_mutex_lock(&wt->mu);
  wt->fired = true;
  wt->at = timer_now_ms();
  pthread_cond_signal(&wt->cond);
  pthread_mutex_unlock(&wt->mu);
}

/* The real thread: a 30 ms timer fires within a generous second. */
static void thread_fires_real_timer(void **state) {
  (void)state;
  struct waiter wt = {.fired = false};
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_mutex_init(&wt.mu, NULL);
  pthread_cond_init(&wt.cond, &attr);
  uint64_t created = timer_now_ms();
  struct timer_wheel *w = timer_wheel_new(5, 64, created);
  assert_int_equal(timer_wheel_start(w), 0);
  struct timer t = TIMER_INIT;
  timer_wheel_schedule(w, &t, 30, wake, &wt);
  struct timespec limit;
  clock_gettime(CLOCK_MONOTONIC, &limit);
  limit.tv_sec += 1;
  pthread_mutex_lock(&wt.mu);
  while (!wt.fired && pthread_cond_timedwait(&wt.cond, &wt.mu, &limit) == 0) {
  }
  bool fired = wt.fired;
  uint64_t at = wt.at;
  pthread_mutex_unlock(&wt.mu);
  timer_wheel_stop(w);
  assert_true(fired);
  /* The deadline counts from the wheel's last advance, which is no earlier than its creation. */
  assert_true(at >= created + 30);
  timer_wheel_free(w);
  pthread_cond_destroy(&wt.cond);
  pthread_mutex_destroy(&wt.mu);
  pthread_condattr_destroy(&attr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fires_at_deadline_not_before),
      cmocka_unit_test(fires_in_deadline_order),
      cmocka_unit_test(cancel_prevents_firing),
      cmocka_unit_test(reschedule_moves_deadline),
      cmocka_unit_test(callback_reschedules_itself),
      cmocka_unit_test(callback_cancels_another),
      cmocka_unit_test(far_future_many_rounds),
      cmocka_unit_test(large_jump),
      cmocka_unit_test(twenty_thousand_fire_once),
      cmocka_unit_test(delay_zero_fires_on_next_advance),
      cmocka_unit_test(free_disarms_armed_timers),
      cmocka_unit_test(thread_fires_real_timer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
