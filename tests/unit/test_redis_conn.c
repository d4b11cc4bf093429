/* Unit tests for evloop.c, redis_addr.c, redis_conn.c and redis_script.c against a real redis-server (tests/unit/
 * redis_fixture.h): address forms, commands and their replies in order, a deep pipeline, PUB/SUB pushes,
 * a server that goes away and comes back, one that stops answering (I/O timeout), one that is not there
 * yet, login (AUTH, SELECT), and scripts sent by SHA-1 with the source as the fallback. The loop runs on its own thread; the test thread posts tasks to it and
 * waits for their results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "evloop.h"
#include "redis_conn.h"
#include "redis_fixture.h"
#include "redis_script.h"

/* ---- a tiny harness: run a function on the loop and wait for it ---- */

struct harness {
  struct evloop *loop;
  struct redis_conn *conn;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int ups, downs;          /* on_state counts */
  int replies, nulls;      /* command callbacks */
  long long last_integer;  /* of the last integer reply */
  char last_str[256];      /* of the last string, status or error reply */
  int last_type;
  char push_channel[64], push_payload[256];
  int pushes;
};

static void h_signal(struct harness *h) {
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

static void on_state(void *arg, bool up) {
  struct harness *h = arg;
  pthread_mutex_lock(&h->lock);
  if (up)
    h->ups++;
  else
    h->downs++;
  h_signal(h);
}

static void on_push(void *arg, const redisReply *push) {
  struct harness *h = arg;
  pthread_mutex_lock(&h->lock);
  snprintf(h->push_channel, sizeof h->push_channel, "%s", push->element[1]->str);
  snprintf(h->push_payload, sizeof h->push_payload, "%.*s", (int)push->element[2]->len, push->element[2]->str);
  h->pushes++;
  h_signal(h);
}

static void on_reply(void *arg, const redisReply *r) {
  struct harness *h = arg;
  pthread_mutex_lock(&h->lock);
  if (r == NULL) {
    h->nulls++;
  } else {
    h->replies++;
    h->last_type = r->type;
    if (r->type == REDIS_REPLY_INTEGER) h->last_integer = r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
      snprintf(h->last_str, sizeof h->last_str, "%s", r->str);
    if (r->type == REDIS_REPLY_NIL) h->last_str[0] = '\0';
  }
  h_signal(h);
}

/* Waits until *COUNTER reaches AT_LEAST (under h->lock), at most MS. Returns the counter. */
static int wait_for(struct harness *h, const int *counter, int at_least, long ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&h->lock);
  while (*counter < at_least)
    if (pthread_cond_timedwait(&h->cond, &h->lock, &until) != 0) break;
  int v = *counter;
  pthread_mutex_unlock(&h->lock);
  return v;
}

struct cmd_task {
  struct harness *h;
  int argc;
  const char *argv[8];
  int repeat;
  int rc; /* of the last redis_conn_command */
  bool done;
};

static void cmd_run(void *arg) {
  struct cmd_task *t = arg;
  for (int i = 0; i < t->repeat; i++) t->rc = redis_conn_command(t->h->conn, t->argc, t->argv, NULL, on_reply, t->h);
  pthread_mutex_lock(&t->h->lock);
  t->done = true;
  h_signal(t->h);
}

/* Queues ARGV REPEAT times in one loop task. Returns the last redis_conn_command result. */
static int command(struct harness *h, int repeat, int argc, ...) {
  struct cmd_task t = {.h = h, .argc = argc, .repeat = repeat};
  va_list ap;
  va_start(ap, argc);
  for (int i = 0; i < argc; i++) t.argv[i] = va_arg(ap, const char *);
  va_end(ap);
  assert_int_equal(evloop_post(h->loop, cmd_run, &t), 0);
  pthread_mutex_lock(&h->lock);
  while (!t.done) pthread_cond_wait(&h->cond, &h->lock);
  pthread_mutex_unlock(&h->lock);
  return t.rc;
}

struct open_task {
  struct harness *h;
  struct redis_conn_options opts;
  bool done;
};

static void open_run(void *arg) {
  struct open_task *t = arg;
  t->h->conn = redis_conn_new(t->h->loop, &t->opts);
  pthread_mutex_lock(&t->h->lock);
  t->done = true;
  h_signal(t->h);
}

static void close_run(void *arg) {
  struct harness *h = arg;
  redis_conn_free(h->conn);
  h->conn = NULL;
}

static void harness_open(struct harness *h, const char *address, bool subscriber, uint64_t io_timeout_ms) {
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  h->loop = evloop_new("test");
  assert_non_null(h->loop);
  assert_int_equal(evloop_start(h->loop), 0);
  struct open_task t = {.h = h,
                        .opts = {.name = "test redis", .connect_timeout_ms = 1000, .io_timeout_ms = io_timeout_ms,
                                 .subscriber = subscriber, .on_state = on_state, .on_push = on_push, .arg = h}};
  char err[256];
  assert_int_equal(redis_addr_parse(address, &t.opts.addr, err, sizeof err), 0);
  assert_int_equal(evloop_post(h->loop, open_run, &t), 0);
  pthread_mutex_lock(&h->lock);
  while (!t.done) pthread_cond_wait(&h->cond, &h->lock);
  pthread_mutex_unlock(&h->lock);
}

static void harness_close(struct harness *h) {
  evloop_post(h->loop, close_run, h);
  evloop_free(h->loop); /* runs the close task, then the memory's own free task, then joins */
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->cond);
}

static char *address_of(const struct redis_fixture *f, char *buf, size_t len) {
  snprintf(buf, len, "127.0.0.1:%d", f->port);
  return buf;
}

/* Each test gets a fresh redis-server; *STATE stays NULL (and the test skips) without one installed. */
static int setup(void **state) {
  static struct redis_fixture f;
  *state = NULL;
  if (!redis_fixture_available()) return 0;
  memset(&f, 0, sizeof f);
  if (redis_fixture_start(&f) != 0) return -1;
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  if (*state) redis_fixture_stop(*state);
  return 0;
}

#define REDIS_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define NEEDS_REDIS(state) \
  do {                     \
    if (*(state) == NULL) skip(); \
  } while (0)

/* ---- tests ---- */

static void test_address_forms(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *host;
    int port;
    const char *user, *password;
    int db;
  } ok[] = {
      {"localhost", "localhost", 6379, "", "", 0},
      {"127.0.0.1:6380", "127.0.0.1", 6380, "", "", 0},
      {"[::1]:7000", "::1", 7000, "", "", 0},
      {"redis://h:1", "h", 1, "", "", 0},
      {"redis://u:p@h:2/3", "h", 2, "u", "p", 3},
      {"redis://:secret@h", "h", 6379, "", "secret", 0},
      {"redis://secret@h/1", "h", 6379, "", "secret", 1},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    struct redis_addr a;
    char err[256];
    assert_int_equal(redis_addr_parse(ok[i].text, &a, err, sizeof err), 0);
    assert_string_equal(a.host, ok[i].host);
    assert_int_equal(a.port, ok[i].port);
    assert_string_equal(a.user, ok[i].user);
    assert_string_equal(a.password, ok[i].password);
    assert_int_equal(a.db, ok[i].db);
  }
  static const char *bad[] = {"", ":6379", "h:0", "h:65536", "h:port", "[::1", "[::1]x", "redis://h/db"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct redis_addr a;
    char err[256] = "";
    assert_int_equal(redis_addr_parse(bad[i], &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "redis address"));
  }
}

static void test_commands_in_order_and_pipelined(void **state) {
  NEEDS_REDIS(state);
  struct redis_fixture *f = *state;
  struct harness h;
  char addr[64];
  harness_open(&h, address_of(f, addr, sizeof addr), false, 2000);
  assert_int_equal(wait_for(&h, &h.ups, 1, 3000), 1);
  assert_int_equal(command(&h, 1, 3, "SET", "k", "v"), 0);
  assert_int_equal(command(&h, 1, 2, "GET", "k"), 0);
  assert_int_equal(wait_for(&h, &h.replies, 2, 2000), 2);
  assert_int_equal(h.last_type, REDIS_REPLY_STRING);
  assert_string_equal(h.last_str, "v");
  /* 20,000 commands queued in one iteration: every reply comes, the last one is the last INCR */
  assert_int_equal(command(&h, 20000, 2, "INCR", "n"), 0);
  assert_int_equal(wait_for(&h, &h.replies, 20002, 10000), 20002);
  assert_int_equal(h.last_integer, 20000);
  assert_int_equal(h.nulls, 0);
  harness_close(&h);
}

static void test_pubsub_push(void **state) {
  NEEDS_REDIS(state);
  struct redis_fixture *f = *state;
  struct harness sub, pub;
  char addr[64];
  harness_open(&sub, address_of(f, addr, sizeof addr), true, 2000);
  harness_open(&pub, addr, false, 2000);
  assert_int_equal(wait_for(&sub, &sub.ups, 1, 3000), 1);
  assert_int_equal(wait_for(&pub, &pub.ups, 1, 3000), 1);
  assert_int_equal(command(&sub, 1, 2, "SUBSCRIBE", "news"), 0);
  assert_int_equal(wait_for(&sub, &sub.replies, 1, 2000), 1); /* the confirmation is a reply */
  assert_int_equal(sub.pushes, 0);
  assert_int_equal(command(&pub, 1, 3, "PUBLISH", "news", "hello"), 0);
  assert_int_equal(wait_for(&pub, &pub.replies, 1, 2000), 1);
  assert_int_equal(pub.last_integer, 1); /* one subscriber got it */
  assert_int_equal(wait_for(&sub, &sub.pushes, 1, 2000), 1);
  assert_string_equal(sub.push_channel, "news");
  assert_string_equal(sub.push_payload, "hello");
  /* PING in subscriber mode is answered in order like any command */
  assert_int_equal(command(&sub, 1, 1, "PING"), 0);
  assert_int_equal(wait_for(&sub, &sub.replies, 2, 2000), 2);
  assert_int_equal(sub.last_type, REDIS_REPLY_ARRAY);
  harness_close(&sub);
  harness_close(&pub);
}

static void test_server_restart(void **state) {
  NEEDS_REDIS(state);
  struct redis_fixture *f = *state;
  struct harness h;
  char addr[64];
  harness_open(&h, address_of(f, addr, sizeof addr), false, 2000);
  assert_int_equal(wait_for(&h, &h.ups, 1, 3000), 1);
  redis_fixture_stop(f);
  assert_int_equal(wait_for(&h, &h.downs, 1, 3000), 1);
  assert_int_equal(command(&h, 1, 1, "PING"), -1); /* down: refused at once, no callback */
  assert_int_equal(redis_fixture_start(f), 0);
  assert_int_equal(wait_for(&h, &h.ups, 2, 5000), 2);
  assert_int_equal(command(&h, 1, 1, "PING"), 0);
  assert_int_equal(wait_for(&h, &h.replies, 1, 2000), 1);
  assert_string_equal(h.last_str, "PONG");
  harness_close(&h);
}

static void test_io_timeout(void **state) {
  NEEDS_REDIS(state);
  struct redis_fixture *f = *state;
  struct harness h;
  char addr[64];
  harness_open(&h, address_of(f, addr, sizeof addr), false, 300);
  assert_int_equal(wait_for(&h, &h.ups, 1, 3000), 1);
  redis_fixture_pause(f, true);
  assert_int_equal(command(&h, 1, 1, "PING"), 0);
  assert_int_equal(wait_for(&h, &h.nulls, 1, 3000), 1); /* given up on, not waited for forever */
  assert_int_equal(wait_for(&h, &h.downs, 1, 1000), 1);
  redis_fixture_pause(f, false);
  assert_int_equal(wait_for(&h, &h.ups, 2, 5000), 2);
  harness_close(&h);
}

static void test_not_there_yet(void **state) {
  NEEDS_REDIS(state);
  (void)state;
  struct redis_fixture late = {0};
  late.port = redis_fixture_free_port();
  struct harness h;
  char addr[64];
  harness_open(&h, address_of(&late, addr, sizeof addr), false, 2000);
  redis_fixture_sleep_ms(300); /* a few refused attempts */
  assert_int_equal(h.ups, 0);
  assert_int_equal(command(&h, 1, 1, "PING"), -1);
  assert_int_equal(redis_fixture_start(&late), 0);
  assert_int_equal(wait_for(&h, &h.ups, 1, 5000), 1);
  harness_close(&h);
  redis_fixture_stop(&late);
}

static void test_login(void **state) {
  NEEDS_REDIS(state);
  (void)state;
  struct redis_fixture locked = {.password = "s3cret"};
  assert_int_equal(redis_fixture_start(&locked), 0);
  struct harness good, db0, wrong;
  char addr[128];
  snprintf(addr, sizeof addr, "redis://:s3cret@127.0.0.1:%d/2", locked.port);
  harness_open(&good, addr, false, 2000);
  snprintf(addr, sizeof addr, "redis://:s3cret@127.0.0.1:%d", locked.port);
  harness_open(&db0, addr, false, 2000);
  snprintf(addr, sizeof addr, "redis://:nope@127.0.0.1:%d", locked.port);
  harness_open(&wrong, addr, false, 2000);
  assert_int_equal(wait_for(&good, &good.ups, 1, 3000), 1);
  assert_int_equal(wait_for(&db0, &db0.ups, 1, 3000), 1);
  assert_int_equal(command(&good, 1, 3, "SET", "where", "db2"), 0);
  assert_int_equal(wait_for(&good, &good.replies, 1, 2000), 1);
  assert_int_equal(command(&db0, 1, 2, "GET", "where"), 0);
  assert_int_equal(wait_for(&db0, &db0.replies, 1, 2000), 1);
  assert_int_equal(db0.last_type, REDIS_REPLY_NIL); /* the key went to database 2 */
  redis_fixture_sleep_ms(300);
  assert_int_equal(wrong.ups, 0); /* a refused login never counts as up */
  harness_close(&good);
  harness_close(&db0);
  harness_close(&wrong);
  redis_fixture_stop(&locked);
}

struct script_task {
  struct harness *h;
  struct redis_script *script;
  int rc;
  bool done;
};

static void script_run(void *arg) {
  struct script_task *t = arg;
  const char *values[2] = {"key", "value"};
  const size_t lens[2] = {3, 5};
  t->rc = redis_script_call(t->h->conn, t->script, 1, 1, values, lens, on_reply, t->h);
  pthread_mutex_lock(&t->h->lock);
  t->done = true;
  h_signal(t->h);
}

static void test_script_fallback_then_sha(void **state) {
  NEEDS_REDIS(state);
  struct redis_fixture *f = *state;
  struct redis_script script = {.name = "concat", .source = "return ARGV[1] .. ':' .. KEYS[1]"};
  assert_int_equal(redis_script_init(&script), 0);
  assert_int_equal(strlen(script.sha1), 40);
  struct harness h;
  char addr[64];
  harness_open(&h, address_of(f, addr, sizeof addr), false, 2000);
  assert_int_equal(wait_for(&h, &h.ups, 1, 3000), 1);
  for (int round = 1; round <= 2; round++) { /* unknown to the server (EVAL fallback), then known */
    struct script_task t = {.h = &h, .script = &script};
    assert_int_equal(evloop_post(h.loop, script_run, &t), 0);
    assert_int_equal(wait_for(&h, &h.replies, round, 2000), round);
    assert_int_equal(t.rc, 0);
    if (h.last_type != REDIS_REPLY_STRING) fail_msg("round %d: %s", round, h.last_str);
    assert_string_equal(h.last_str, "value:key");
  }
  assert_int_equal(command(&h, 1, 3, "SCRIPT", "EXISTS", script.sha1), 0);
  assert_int_equal(wait_for(&h, &h.replies, 3, 2000), 3);
  assert_int_equal(h.last_type, REDIS_REPLY_ARRAY); /* [1]: the server has it by its SHA-1 now */
  harness_close(&h);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_address_forms),
      REDIS_TEST(test_commands_in_order_and_pipelined),
      REDIS_TEST(test_pubsub_push),
      REDIS_TEST(test_server_restart),
      REDIS_TEST(test_io_timeout),
      REDIS_TEST(test_not_there_yet),
      REDIS_TEST(test_login),
      REDIS_TEST(test_script_fallback_then_sha),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
