/* Tests of the Redis engine's asynchronous publish (broker_redis_history.c, rb_call_post in
 * broker_redis.c) against a real redis-server: publishes answered from the engine's I/O thread in the
 * order they were made, the bound of publishes in flight answered at once with the temporary error, and
 * Redis away answered with the same error, never silence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "broker_redis_internal.h"
#include "ids.h"
#include "redis_fixture.h"
#include "server_fixture.h"

#define MANY 1000

/* What the completions of a run of publishes said, by the order the publishes were made. */
struct answers {
  pthread_mutex_t lock;
  size_t n;
  int rc[RB_POSTED_MAX + 1];
  uint64_t offset[RB_POSTED_MAX + 1];
};

/* One publish's completion: its place in the run. */
struct slot {
  struct answers *a;
  size_t i;
  atomic_bool answered;
};

static struct answers answers;
static struct slot slots[RB_POSTED_MAX + 1];

static void answered(void *arg, int rc, const struct stream_position *pos) {
  struct slot *s = arg;
  pthread_mutex_lock(&s->a->lock);
  s->a->rc[s->i] = rc;
  s->a->offset[s->i] = pos->offset;
  s->a->n++;
  pthread_mutex_unlock(&s->a->lock);
  atomic_store(&s->answered, true);
}

static size_t answered_count(void) {
  pthread_mutex_lock(&answers.lock);
  size_t n = answers.n;
  pthread_mutex_unlock(&answers.lock);
  return n;
}

/* Waits until N completions came (at most MS). Returns how many came. */
static size_t wait_answers(size_t n, long ms) {
  for (long t = 0; t < ms && answered_count() < n; t += 5) redis_fixture_sleep_ms(5);
  return answered_count();
}

struct env {
  struct redis_fixture redis;
  struct fixture *fx;
  struct broker *b;
};

static struct env env;

static bool wait_healthy(struct broker *b, bool want, long ms) {
  for (long t = 0; t < ms; t += 10) {
    if (b->ops->healthy(b) == want) return true;
    redis_fixture_sleep_ms(10);
  }
  return false;
}

static int setup_redis(void **state) {
  memset(&env, 0, sizeof env);
  memset(&answers, 0, sizeof answers);
  pthread_mutex_init(&answers.lock, NULL);
  if (!redis_fixture_available()) {
    *state = NULL;
    return 0;
  }
  if (redis_fixture_start(&env.redis) != 0) return -1;
  void *fx = NULL;
  setup(&fx);
  env.fx = fx;
  id_new_uuid(env.fx->srv.node_id);
  char address[64], err[256];
  snprintf(address, sizeof address, "127.0.0.1:%d", env.redis.port);
  const char *addresses[1] = {address};
  struct broker_redis_options o = {.addresses = addresses,
                                   .naddresses = 1,
                                   .prefix = "unit",
                                   .user = "",
                                   .password = "",
                                   .connect_timeout_ms = 1000,
                                   .io_timeout_ms = 4000,
                                   .presence_ttl_ms = 60000};
  env.b = broker_redis_new(&env.fx->srv, &o, err, sizeof err);
  if (env.b == NULL || !wait_healthy(env.b, true, 5000)) return -1;
  *state = &env;
  return 0;
}

static int teardown_redis(void **state) {
  if (*state == NULL) return 0;
  env.b->ops->free(env.b);
  void *fx = env.fx;
  teardown(&fx);
  redis_fixture_stop(&env.redis);
  pthread_mutex_destroy(&answers.lock);
  return 0;
}

#define NEEDS_REDIS(state)        \
  do {                            \
    if (*(state) == NULL) skip(); \
  } while (0)

/* Makes publish I of the run on CHANNEL (history kept) and returns whether it was answered before
 * publish_async returned. */
static bool publish(struct broker *b, const char *channel, size_t i) {
  static uint8_t data[] = "{\"n\":1}";
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data.data = data;
  pub.data.len = sizeof data - 1;
  struct publish_options po = {.history_size = RB_POSTED_MAX + 10, .history_ttl_ms = 60000};
  slots[i] = (struct slot){.a = &answers, .i = i};
  b->ops->publish_async(b, channel, &pub, &po, answered, &slots[i]);
  return atomic_load(&slots[i].answered);
}

static void test_answers_in_order(void **state) {
  NEEDS_REDIS(state);
  for (size_t i = 0; i < MANY; i++) publish(env.b, "order", i);
  assert_int_equal(wait_answers(MANY, 10000), MANY);
  for (size_t i = 0; i < MANY; i++) {
    assert_int_equal(answers.rc[i], 0);
    assert_int_equal(answers.offset[i], i + 1); /* stored in the order they were made */
  }
}

/* With Redis frozen, RB_POSTED_MAX publishes stay in flight; one more is refused at once with the
 * temporary error (not queued, not silent); once Redis answers again every one in flight succeeds. */
static void test_bound_in_flight(void **state) {
  NEEDS_REDIS(state);
  redis_fixture_pause(&env.redis, true);
  for (size_t i = 0; i < RB_POSTED_MAX; i++) assert_false(publish(env.b, "bound", i));
  assert_true(publish(env.b, "bound", RB_POSTED_MAX)); /* answered before publish_async returned */
  assert_int_equal(answers.rc[RB_POSTED_MAX], -BROKER_EUNAVAILABLE);
  redis_fixture_pause(&env.redis, false);
  assert_int_equal(wait_answers(RB_POSTED_MAX + 1, 10000), RB_POSTED_MAX + 1);
  for (size_t i = 0; i < RB_POSTED_MAX; i++) {
    assert_int_equal(answers.rc[i], 0);
    assert_int_equal(answers.offset[i], i + 1);
  }
}

/* Redis gone: publishes in flight and new ones are answered with the temporary error. */
static void test_redis_away(void **state) {
  NEEDS_REDIS(state);
  redis_fixture_pause(&env.redis, true);
  for (size_t i = 0; i < 10; i++) publish(env.b, "away", i);
  redis_fixture_stop(&env.redis); /* the connection closes under the ten in flight */
  assert_int_equal(wait_answers(10, 10000), 10);
  assert_true(wait_healthy(env.b, false, 5000));
  publish(env.b, "away", 10);
  assert_int_equal(wait_answers(11, 10000), 11);
  for (size_t i = 0; i <= 10; i++) assert_int_equal(answers.rc[i], -BROKER_EUNAVAILABLE);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_answers_in_order, setup_redis, teardown_redis),
      cmocka_unit_test_setup_teardown(test_bound_in_flight, setup_redis, teardown_redis),
      cmocka_unit_test_setup_teardown(test_redis_away, setup_redis, teardown_redis),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
