/* Unit tests for registry: the per-user session counts behind client_user_connection_limit and the
 * `info` user count. A claim is counted at once and refused at the limit, the anonymous user is never
 * counted, leaving gives the place back, a claim needs a registered session and is made once, and many
 * threads claiming one user at the limit admit exactly LIMIT of them (check and count are one step). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "server_fixture.h"
#include "session.h"

static struct session *added_session(struct fixture *fx) {
  struct session *s = session_new(&fx->srv, codec_get(CODEC_JSON), "127.0.0.1");
  assert_non_null(s);
  assert_int_equal(registry_add(fx->srv.registry, s), 0);
  return s;
}

/* What a transport does when its request ends: removes S from the registry and drops its reference. */
static void leave(struct session *s) {
  session_close(s, 3000);
  session_detach(s);
}

static void test_claims_count_and_the_limit_refuses(void **state) {
  struct fixture *fx = *state;
  struct registry *r = fx->srv.registry;
  struct session *a = added_session(fx), *b = added_session(fx), *c = added_session(fx);
  assert_int_equal(registry_claim_user(r, a, "alice", 2), 0);
  assert_int_equal(registry_claim_user(r, b, "alice", 2), 0);
  assert_int_equal(registry_user_count(r, "alice"), 2);
  assert_int_equal(registry_claim_user(r, c, "alice", 2), REGISTRY_LIMIT);
  assert_int_equal(registry_user_count(r, "alice"), 2);     /* a refused claim counts nothing */
  assert_int_equal(registry_claim_user(r, c, "bob", 2), 0); /* the limit is per user */
  assert_int_equal(registry_user_count(r, "bob"), 1);

  leave(a); /* leaving gives the place back */
  assert_int_equal(registry_user_count(r, "alice"), 1);
  struct session *d = added_session(fx);
  assert_int_equal(registry_claim_user(r, d, "alice", 2), 0);
  assert_int_equal(registry_user_count(r, "alice"), 2);
  leave(b);
  leave(d);
  assert_int_equal(registry_user_count(r, "alice"), 0);
  leave(c);
  assert_int_equal(registry_user_count(r, "bob"), 0);
}

static void test_no_limit_and_anonymous(void **state) {
  struct fixture *fx = *state;
  struct registry *r = fx->srv.registry;
  struct session *s[6];
  for (size_t i = 0; i < 5; i++) {
    s[i] = added_session(fx);
    assert_int_equal(registry_claim_user(r, s[i], i < 3 ? "carol" : "", 0), 0); /* 0 = no limit */
  }
  assert_int_equal(registry_user_count(r, "carol"), 3);
  assert_int_equal(registry_user_count(r, ""), 0); /* anonymous is no user: never counted */
  s[5] = added_session(fx);
  assert_int_equal(registry_claim_user(r, s[5], "", 1), 0); /* nor limited */
  struct registry_counts rc;
  assert_int_equal(registry_counts(r, &rc), 0);
  assert_int_equal(rc.sessions, 6);
  assert_int_equal(rc.users, 1);
  for (size_t i = 0; i < 6; i++) leave(s[i]);
}

static void test_claim_needs_a_registered_session_once(void **state) {
  struct fixture *fx = *state;
  struct registry *r = fx->srv.registry;
  struct session *loose = session_new(&fx->srv, codec_get(CODEC_JSON), "127.0.0.1");
  assert_non_null(loose);
  assert_int_equal(registry_claim_user(r, loose, "dave", 0), REGISTRY_ABSENT);
  assert_int_equal(registry_user_count(r, "dave"), 0);
  leave(loose); /* removing a session that is not there is harmless */

  struct session *s = added_session(fx);
  assert_int_equal(registry_claim_user(r, s, "dave", 0), 0);
  assert_int_equal(registry_claim_user(r, s, "dave", 0), REGISTRY_ABSENT); /* a second claim */
  assert_int_equal(registry_claim_user(r, s, "erin", 0), REGISTRY_ABSENT);
  assert_int_equal(registry_user_count(r, "dave"), 1);
  assert_int_equal(registry_user_count(r, "erin"), 0);
  leave(s);
  assert_int_equal(registry_user_count(r, "dave"), 0);
}

static void test_counts_distinct_users_and_subscriptions(void **state) {
  struct fixture *fx = *state;
  struct registry *r = fx->srv.registry;
  struct registry_counts rc;
  assert_int_equal(registry_counts(r, &rc), 0);
  assert_int_equal(rc.sessions, 0);
  assert_int_equal(rc.users, 0);
  const char *users[] = {"", "u1", "u2", "u1", ""};
  struct session *s[5];
  for (size_t i = 0; i < 5; i++) {
    s[i] = added_session(fx);
    assert_int_equal(registry_claim_user(r, s[i], users[i], 0), 0);
  }
  struct session *connecting = added_session(fx); /* no claim yet: a session, not a user */
  assert_int_equal(registry_counts(r, &rc), 0);
  assert_int_equal(rc.sessions, 6);
  assert_int_equal(rc.users, 2); /* u1 and u2: the anonymous sessions are no user */
  assert_int_equal(rc.subscriptions, 0);
  leave(s[1]);
  assert_int_equal(registry_counts(r, &rc), 0);
  assert_int_equal(rc.users, 2); /* u1 still has s[3] */
  leave(s[3]);
  assert_int_equal(registry_counts(r, &rc), 0);
  assert_int_equal(rc.users, 1);
  for (size_t i = 0; i < 5; i++)
    if (i != 1 && i != 3) leave(s[i]);
  leave(connecting);
  assert_int_equal(registry_counts(r, &rc), 0);
  assert_int_equal(rc.sessions, 0);
  assert_int_equal(rc.users, 0);
}

#define RACERS 8
#define RACE_LIMIT 3

struct racer {
  struct registry *r;
  struct session *s;
  pthread_barrier_t *start;
  int rc;
};

static void *race(void *arg) {
  struct racer *x = arg;
  pthread_barrier_wait(x->start);
  x->rc = registry_claim_user(x->r, x->s, "frank", RACE_LIMIT);
  return NULL;
}

/* Connects of one user that arrive together at the limit: exactly LIMIT get in, however they interleave. */
static void test_concurrent_claims_at_the_limit(void **state) {
  struct fixture *fx = *state;
  for (int round = 0; round < 50; round++) {
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    struct racer x[RACERS];
    pthread_t t[RACERS];
    for (size_t i = 0; i < RACERS; i++) {
      x[i] = (struct racer){fx->srv.registry, added_session(fx), &start, 1};
      assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
    }
    size_t admitted = 0, refused = 0;
    for (size_t i = 0; i < RACERS; i++) {
      pthread_join(t[i], NULL);
      admitted += x[i].rc == 0;
      refused += x[i].rc == REGISTRY_LIMIT;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(admitted, RACE_LIMIT);
    assert_int_equal(refused, RACERS - RACE_LIMIT);
    assert_int_equal(registry_user_count(fx->srv.registry, "frank"), RACE_LIMIT);
    for (size_t i = 0; i < RACERS; i++) leave(x[i].s);
    assert_int_equal(registry_user_count(fx->srv.registry, "frank"), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_claims_count_and_the_limit_refuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_limit_and_anonymous, setup, teardown),
      cmocka_unit_test_setup_teardown(test_claim_needs_a_registered_session_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counts_distinct_users_and_subscriptions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_claims_at_the_limit, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
