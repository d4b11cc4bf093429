/* Unit tests for presence.c: add, replace, remove, deep copies, the bounded get and presence_stats's
 * distinct-user count (the anonymous user "" counting once), plus a two-thread smoke test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"

static int add(struct presence *p, const char *ch, const char *user, const char *client, const char *conn) {
  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT;
  info.user = (char *)user;
  info.client = (char *)client;
  if (conn != NULL) info.conn_info = (ProtobufCBinaryData){strlen(conn), (uint8_t *)conn};
  return presence_add(p, ch, &info);
}

static void expect_stats(struct presence *p, const char *ch, uint32_t clients, uint32_t users) {
  uint32_t c = 99, u = 99;
  assert_int_equal(presence_stats(p, ch, &c, &u), 0);
  assert_int_equal(c, clients);
  assert_int_equal(u, users);
}

/* The entry of CLIENT in R, or NULL. */
static const Protocol__ClientInfo *find(const struct presence_result *r, const char *client) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->infos[i]->client, client) == 0) return r->infos[i];
  return NULL;
}

static void add_get_copies(void **state) {
  (void)state;
  struct presence *p = presence_new();
  char user[] = "alice", client[] = "c1", conn[] = "{\"name\":\"A\"}";
  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT;
  info.user = user;
  info.client = client;
  info.conn_info = (ProtobufCBinaryData){strlen(conn), (uint8_t *)conn};
  info.chan_info = (ProtobufCBinaryData){2, (uint8_t *)"{}"};
  assert_int_equal(presence_add(p, "room", &info), 0);
  memset(user, 'x', 5); /* the entry owns copies */
  memset(conn, 'x', strlen(conn));
  struct presence_result r;
  assert_int_equal(presence_get(p, "room", 0, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.total, 1);
  const Protocol__ClientInfo *got = r.infos[0];
  assert_string_equal(got->user, "alice");
  assert_string_equal(got->client, "c1");
  assert_int_equal(got->conn_info.len, 12);
  assert_memory_equal(got->conn_info.data, "{\"name\":\"A\"}", 12);
  assert_memory_equal(got->chan_info.data, "{}", 2);
  presence_result_cleanup(&r);
  presence_result_cleanup(&r);
  assert_int_equal(presence_get(p, "empty", 0, &r), 0); /* unknown channel: nobody */
  assert_int_equal(r.n, 0);
  presence_result_cleanup(&r);
  info.client = "";
  assert_int_equal(presence_add(p, "room", &info), -PRESENCE_EINVAL);
  presence_free(p);
}

static void replace_same_client(void **state) {
  (void)state;
  struct presence *p = presence_new();
  assert_int_equal(add(p, "room", "alice", "c1", "{\"v\":1}"), 0);
  assert_int_equal(add(p, "room", "alice", "c1", "{\"v\":2}"), 0);
  expect_stats(p, "room", 1, 1);
  assert_int_equal(add(p, "room", "bob", "c1", NULL), 0); /* same client, other user */
  expect_stats(p, "room", 1, 1);
  struct presence_result r;
  assert_int_equal(presence_get(p, "room", 0, &r), 0);
  assert_int_equal(r.n, 1);
  assert_string_equal(r.infos[0]->user, "bob");
  assert_int_equal(r.infos[0]->conn_info.len, 0);
  presence_result_cleanup(&r);
  presence_free(p);
}

static void remove_entries(void **state) {
  (void)state;
  struct presence *p = presence_new();
  assert_int_equal(add(p, "room", "alice", "c1", NULL), 0);
  assert_int_equal(add(p, "room", "alice", "c2", NULL), 0);
  assert_int_equal(add(p, "other", "alice", "c1", NULL), 0);
  assert_int_equal(presence_remove(p, "room", "c1"), 0);
  expect_stats(p, "room", 1, 1);
  expect_stats(p, "other", 1, 1);                        /* channels are independent */
  assert_int_equal(presence_remove(p, "room", "c1"), 0); /* twice: not an error */
  assert_int_equal(presence_remove(p, "nosuch", "c1"), 0);
  assert_int_equal(presence_remove(p, "room", "c2"), 0);
  expect_stats(p, "room", 0, 0);
  assert_int_equal(add(p, "room", "carol", "c3", NULL), 0); /* the channel comes back */
  expect_stats(p, "room", 1, 1);
  presence_free(p); /* frees what is left */
}

static void stats_count_distinct_users(void **state) {
  (void)state;
  struct presence *p = presence_new();
  expect_stats(p, "room", 0, 0);
  static const char *const rows[][2] = {
      {"alice", "c1"}, {"alice", "c2"}, {"bob", "c3"}, {"", "c4"}, {"", "c5"}, {"carol", "c6"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
    assert_int_equal(add(p, "room", rows[i][0], rows[i][1], NULL), 0);
  expect_stats(p, "room", 6, 4); /* alice, bob, carol and the anonymous user once */
  assert_int_equal(presence_remove(p, "room", "c4"), 0);
  expect_stats(p, "room", 5, 4);
  assert_int_equal(presence_remove(p, "room", "c5"), 0);
  expect_stats(p, "room", 4, 3);
  assert_int_equal(presence_remove(p, "room", "c3"), 0);
  expect_stats(p, "room", 3, 2);
  presence_free(p);
}

static void get_is_bounded(void **state) {
  (void)state;
  struct presence *p = presence_new();
  char client[16];
  for (int i = 0; i < 50; i++) {
    snprintf(client, sizeof client, "c%d", i);
    assert_int_equal(add(p, "room", "u", client, NULL), 0);
  }
  struct presence_result r;
  assert_int_equal(presence_get(p, "room", 10, &r), 0);
  assert_int_equal(r.n, 10);
  assert_int_equal(r.total, 50);
  presence_result_cleanup(&r);
  assert_int_equal(presence_get(p, "room", 0, &r), 0);
  assert_int_equal(r.n, 50);
  for (int i = 0; i < 50; i++) {
    snprintf(client, sizeof client, "c%d", i);
    assert_non_null(find(&r, client));
  }
  presence_result_cleanup(&r);
  presence_free(p);
}

struct worker {
  struct presence *p;
  int id;
};

static void *worker_run(void *arg) {
  struct worker *w = arg;
  char client[32];
  for (int i = 0; i < 500; i++) {
    snprintf(client, sizeof client, "w%d-%d", w->id, i);
    add(w->p, "shared", w->id ? "even" : "odd", client, NULL);
    if (i % 2) presence_remove(w->p, "shared", client);
  }
  return NULL;
}

static void concurrent_add_remove(void **state) {
  (void)state;
  struct presence *p = presence_new();
  struct worker w[2] = {{p, 0}, {p, 1}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  expect_stats(p, "shared", 500, 2);
  presence_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(add_get_copies), cmocka_unit_test(replace_same_client),
      cmocka_unit_test(remove_entries), cmocka_unit_test(stats_count_distinct_users),
      cmocka_unit_test(get_is_bounded), cmocka_unit_test(concurrent_add_remove),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
