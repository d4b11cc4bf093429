/* Unit tests for history.c: offsets, epochs, size and TTL retention, the history command's limit /
 * since / reverse rules, recovery decisions, meta TTL and a two-thread smoke test. Time is a fake
 * millisecond clock passed to every call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "history.h"

#define T0 1000000u
#define TTL 60000u
#define META_TTL 3600000u

/* Publishes "{\"n\":I}" with a tag and publisher info on CH; returns the new offset. */
static uint64_t add_at(struct history *h, const char *ch, int i, size_t size, uint64_t now) {
  char data[32];
  int len = snprintf(data, sizeof data, "{\"n\":%d}", i);
  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT;
  info.user = "u1";
  info.client = "c1";
  Protocol__Publication__TagsEntry tag = PROTOCOL__PUBLICATION__TAGS_ENTRY__INIT;
  tag.key = "k";
  tag.value = "v";
  Protocol__Publication__TagsEntry *tags[] = {&tag};
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = (ProtobufCBinaryData){(size_t)len, (uint8_t *)data};
  pub.info = &info;
  pub.n_tags = 1;
  pub.tags = tags;
  pub.channel = (char *)ch; /* must not be stored */
  pub.epoch = "zzzzzzzz";
  struct stream_position pos;
  struct history_retention r = {.size = size, .ttl_ms = TTL, .meta_ttl_ms = META_TTL};
  assert_int_equal(history_add(h, ch, &pub, &r, now, &pos), 0);
  return pos.offset;
}

static uint64_t add(struct history *h, const char *ch, int i, size_t size) {
  return add_at(h, ch, i, size, T0);
}

/* The number in a stored publication's data. */
static int pub_n(const Protocol__Publication *p) {
  int n = -1;
  char buf[32] = {0};
  memcpy(buf, p->data.data, p->data.len < 31 ? p->data.len : 31);
  assert_int_equal(sscanf(buf, "{\"n\":%d}", &n), 1);
  return n;
}

/* Runs a query and checks the offsets it returns against WANT[0..N). */
static void expect_offsets(struct history *h, const char *ch, const struct history_query *q,
                           const uint64_t *want, size_t n) {
  struct history_result r;
  assert_int_equal(history_query(h, ch, q, T0, &r), 0);
  assert_int_equal(r.n, n);
  for (size_t i = 0; i < n; i++) assert_int_equal(r.pubs[i]->offset, want[i]);
  history_result_cleanup(&r);
}

static void offsets_start_at_one_and_increase(void **state) {
  (void)state;
  struct history *h = history_new();
  for (int i = 1; i <= 5; i++) assert_int_equal(add(h, "a", i, 10), (uint64_t)i);
  assert_int_equal(add(h, "b", 1, 10), 1); /* streams are independent */
  struct history_retention none = {.size = 0, .ttl_ms = TTL};
  assert_int_equal(history_add(h, "a", &(Protocol__Publication)PROTOCOL__PUBLICATION__INIT, &none, T0, NULL),
                   -HISTORY_EINVAL);
  struct stream_position pos;
  assert_int_equal(history_position(h, "a", T0, &pos), 0);
  assert_int_equal(pos.offset, 5);
  assert_int_equal(history_count(h), 2);
  history_free(h);
}

static void epoch_is_eight_letters_and_stable(void **state) {
  (void)state;
  struct history *h = history_new();
  struct stream_position a, b, c;
  assert_int_equal(history_position(h, "x", T0, &a), 0); /* created by a read: offset 0 */
  assert_int_equal(a.offset, 0);
  assert_int_equal(strlen(a.epoch), HISTORY_EPOCH_LEN);
  for (int i = 0; i < HISTORY_EPOCH_LEN; i++)
    assert_true((a.epoch[i] >= 'a' && a.epoch[i] <= 'z') || (a.epoch[i] >= 'A' && a.epoch[i] <= 'Z'));
  add(h, "x", 1, 10);
  assert_int_equal(history_position(h, "x", T0, &b), 0);
  assert_string_equal(a.epoch, b.epoch);
  assert_int_equal(history_position(h, "y", T0, &c), 0);
  assert_string_not_equal(a.epoch, c.epoch); /* 52^8 values: a clash is practically impossible */
  history_free(h);
}

static void stored_publication_round_trips(void **state) {
  (void)state;
  struct history *h = history_new();
  add(h, "a", 7, 10);
  struct history_query q = {.limit = -1};
  struct history_result r;
  assert_int_equal(history_query(h, "a", &q, T0, &r), 0);
  assert_int_equal(r.n, 1);
  const Protocol__Publication *p = r.pubs[0];
  assert_int_equal(pub_n(p), 7);
  assert_int_equal(p->offset, 1);
  assert_string_equal(p->info->user, "u1");
  assert_string_equal(p->info->client, "c1");
  assert_int_equal(p->n_tags, 1);
  assert_string_equal(p->tags[0]->key, "k");
  assert_string_equal(p->channel, ""); /* neither channel nor epoch is stored */
  assert_string_equal(p->epoch, "");
  assert_int_equal(r.pos.offset, 1);
  history_result_cleanup(&r);
  history_result_cleanup(&r); /* idempotent */
  history_free(h);
}

static void size_cap_keeps_newest(void **state) {
  (void)state;
  struct history *h = history_new();
  for (int i = 1; i <= 25; i++) add(h, "a", i, 3);
  struct history_query q = {.limit = -1};
  expect_offsets(h, "a", &q, (const uint64_t[]){23, 24, 25}, 3);
  for (int i = 26; i <= 30; i++) add(h, "a", i, 2); /* a lowered size (config reload) shrinks the ring */
  expect_offsets(h, "a", &q, (const uint64_t[]){29, 30}, 2);
  for (int i = 31; i <= 60; i++) add(h, "a", i, 100); /* and a raised one grows it again */
  struct history_result r;
  assert_int_equal(history_query(h, "a", &q, T0, &r), 0);
  assert_int_equal(r.n, 32);
  assert_int_equal(r.pubs[0]->offset, 29);
  assert_int_equal(pub_n(r.pubs[31]), 60);
  history_result_cleanup(&r);
  history_free(h);
}

static void ttl_drops_publications_keeps_position(void **state) {
  (void)state;
  struct history *h = history_new();
  add_at(h, "a", 1, 10, T0);
  add_at(h, "a", 2, 10, T0 + 1000); /* Centrifugo: the TTL runs from the last publication */
  add_at(h, "b", 1, 10, T0);
  struct history_query q = {.limit = -1};
  struct history_result r;
  assert_int_equal(history_query(h, "a", &q, T0 + TTL + 999, &r), 0);
  assert_int_equal(r.n, 2);
  history_result_cleanup(&r);
  assert_int_equal(history_query(h, "a", &q, T0 + TTL + 1000, &r), 0); /* lazily on access */
  assert_int_equal(r.n, 0);
  assert_int_equal(r.pos.offset, 2);
  history_result_cleanup(&r);
  history_expire(h, T0 + TTL); /* and by the sweep */
  assert_int_equal(history_query(h, "b", &q, T0, &r), 0);
  assert_int_equal(r.n, 0);
  assert_int_equal(r.pos.offset, 1);
  history_result_cleanup(&r);
  assert_int_equal(add_at(h, "a", 3, 10, T0 + TTL + 2000), 3); /* offsets continue */
  history_free(h);
}

static void limits(void **state) {
  (void)state;
  struct history *h = history_new();
  for (int i = 1; i <= 10; i++) add(h, "a", i, 100);
  struct history_query q = {.limit = 0};
  struct history_result r;
  assert_int_equal(history_query(h, "a", &q, T0, &r), 0); /* position only */
  assert_int_equal(r.n, 0);
  assert_int_equal(r.pos.offset, 10);
  assert_int_equal(strlen(r.pos.epoch), HISTORY_EPOCH_LEN);
  history_result_cleanup(&r);
  q = (struct history_query){.limit = -1};
  expect_offsets(h, "a", &q, (const uint64_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10);
  q = (struct history_query){.limit = 3};
  expect_offsets(h, "a", &q, (const uint64_t[]){1, 2, 3}, 3);
  q = (struct history_query){.limit = -1, .max_limit = 4};
  expect_offsets(h, "a", &q, (const uint64_t[]){1, 2, 3, 4}, 4);
  q = (struct history_query){.limit = 6, .max_limit = 4};
  expect_offsets(h, "a", &q, (const uint64_t[]){1, 2, 3, 4}, 4);
  q = (struct history_query){.limit = 2, .reverse = true};
  expect_offsets(h, "a", &q, (const uint64_t[]){10, 9}, 2);
  q = (struct history_query){.limit = 50};
  expect_offsets(h, "a", &q, (const uint64_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10);
  history_free(h);
}

static void since_and_reverse(void **state) {
  (void)state;
  struct history *h = history_new();
  for (int i = 1; i <= 10; i++) add(h, "a", i, 8); /* keeps 3..10 */
  struct history_query q = {.limit = -1, .has_since = true, .since_offset = 6};
  expect_offsets(h, "a", &q, (const uint64_t[]){7, 8, 9, 10}, 4);
  q.limit = 2;
  expect_offsets(h, "a", &q, (const uint64_t[]){7, 8}, 2);
  q = (struct history_query){.limit = -1, .has_since = true, .since_offset = 6, .reverse = true};
  expect_offsets(h, "a", &q, (const uint64_t[]){5, 4, 3}, 3);
  q.limit = 1;
  expect_offsets(h, "a", &q, (const uint64_t[]){5}, 1);
  q = (struct history_query){
      .limit = -1, .has_since = true, .since_offset = 1}; /* gap evicted: from oldest */
  expect_offsets(h, "a", &q, (const uint64_t[]){3, 4, 5, 6, 7, 8, 9, 10}, 8);
  q.since_offset = 10; /* at the top */
  expect_offsets(h, "a", &q, NULL, 0);
  q.since_offset = 99; /* past the top */
  expect_offsets(h, "a", &q, NULL, 0);
  q = (struct history_query){.limit = -1, .has_since = true, .since_offset = 3, .reverse = true};
  expect_offsets(h, "a", &q, NULL, 0); /* nothing older than the oldest kept */
  q.since_offset = 99;
  expect_offsets(h, "a", &q, (const uint64_t[]){10, 9, 8, 7, 6, 5, 4, 3}, 8);
  q.since_offset = 0;
  struct history_result r;
  assert_int_equal(history_query(h, "a", &q, T0, &r), -HISTORY_EBADREQUEST);
  assert_int_equal(r.n, 0);
  assert_int_equal(history_error_code(-HISTORY_EBADREQUEST), ERROR_BAD_REQUEST);
  history_free(h);
}

static void epoch_mismatch_is_unrecoverable(void **state) {
  (void)state;
  struct history *h = history_new();
  for (int i = 1; i <= 3; i++) add(h, "a", i, 10);
  struct history_query q = {.limit = -1, .has_since = true, .since_offset = 1, .since_epoch = "nothisep"};
  struct history_result r;
  assert_int_equal(history_query(h, "a", &q, T0, &r), -HISTORY_EUNRECOVERABLE);
  assert_int_equal(r.n, 0);
  assert_int_equal(r.pos.offset, 3); /* the current position still comes back */
  assert_int_equal(history_error_code(-HISTORY_EUNRECOVERABLE), ERROR_UNRECOVERABLE_POSITION);
  history_result_cleanup(&r);
  q.limit = 0; /* also when only the position is asked for */
  assert_int_equal(history_query(h, "a", &q, T0, &r), -HISTORY_EUNRECOVERABLE);
  q.limit = -1;
  q.since_epoch = r.pos.epoch; /* the right epoch */
  expect_offsets(h, "a", &q, (const uint64_t[]){2, 3}, 2);
  q.since_epoch = ""; /* no epoch: any */
  expect_offsets(h, "a", &q, (const uint64_t[]){2, 3}, 2);
  history_free(h);
}

/* Recovers CH from SINCE with the stream's own epoch (or EPOCH when non-NULL) and checks the outcome:
 * RECOVERED, N publications with offsets FIRST, FIRST + 1, ..., and the current position. */
static void expect_recover(struct history *h, const char *ch, uint64_t since, const char *epoch, size_t max,
                           bool recovered, uint64_t first, size_t n) {
  struct stream_position pos;
  assert_int_equal(history_position(h, ch, T0, &pos), 0);
  struct history_result r;
  bool ok = !recovered;
  assert_int_equal(history_recover(h, ch, since, epoch ? epoch : pos.epoch, max, T0, &r, &ok), 0);
  assert_int_equal(ok, recovered);
  assert_int_equal(r.n, n);
  assert_int_equal(r.pos.offset, pos.offset);
  assert_string_equal(r.pos.epoch, pos.epoch);
  for (size_t i = 0; i < n; i++) assert_int_equal(r.pubs[i]->offset, first + i);
  history_result_cleanup(&r);
}

static void recovery_decisions(void **state) {
  (void)state;
  struct history *h = history_new();
  for (int i = 1; i <= 10; i++) add(h, "a", i, 5);         /* keeps 6..10 */
  expect_recover(h, "a", 7, NULL, 300, true, 8, 3);        /* full gap present, in order */
  expect_recover(h, "a", 5, NULL, 300, true, 6, 5);        /* exactly the oldest kept */
  expect_recover(h, "a", 4, NULL, 300, false, 0, 0);       /* offset 5 evicted */
  expect_recover(h, "a", 7, "nothisep", 300, false, 0, 0); /* wrong epoch */
  expect_recover(h, "a", 7, "", 300, true, 8, 3);          /* no epoch: any */
  expect_recover(h, "a", 6, NULL, 3, false, 0, 0);         /* 4 missed > max 3 */
  expect_recover(h, "a", 7, NULL, 3, true, 8, 3);          /* 3 missed == max */
  expect_recover(h, "a", 10, NULL, 300, true, 0, 0);       /* top == offset: nothing missed */
  expect_recover(h, "a", 11, NULL, 300, false, 0, 0);      /* from the future */
  expect_recover(h, "fresh", 0, "", 300, true, 0, 0);      /* a new stream at offset 0 */
  expect_recover(h, "fresh", 0, "nothisep", 300, false, 0, 0);
  history_expire(h, T0 + TTL); /* publications gone, position stays */
  struct history_result r;
  bool ok = true;
  assert_int_equal(history_recover(h, "a", 9, "", 300, T0 + TTL, &r, &ok), 0);
  assert_false(ok);
  history_result_cleanup(&r);
  assert_int_equal(history_recover(h, "a", 10, "", 300, T0 + TTL, &r, &ok), 0);
  assert_true(ok);
  history_result_cleanup(&r);
  history_free(h);
}

static void remove_drops_publications_keeps_position(void **state) {
  (void)state;
  struct history *h = history_new();
  for (int i = 1; i <= 4; i++) add(h, "a", i, 10);
  struct stream_position before, after;
  assert_int_equal(history_position(h, "a", T0, &before), 0);
  assert_int_equal(history_remove(h, "a"), 0);
  assert_int_equal(history_remove(h, "nosuch"), 0);
  struct history_query q = {.limit = -1};
  expect_offsets(h, "a", &q, NULL, 0);
  assert_int_equal(history_position(h, "a", T0, &after), 0);
  assert_int_equal(after.offset, 4);
  assert_string_equal(after.epoch, before.epoch);
  assert_int_equal(add(h, "a", 5, 10), 5);
  expect_offsets(h, "a", &q, (const uint64_t[]){5}, 1);
  history_free(h);
}

static void meta_ttl_regenerates_epoch(void **state) {
  (void)state;
  struct history *h = history_new();
  struct stream_position a, b, c;
  add_at(h, "a", 1, 10, T0);
  add_at(h, "b", 1, 10, T0);
  assert_int_equal(history_position(h, "a", T0 + META_TTL - 1, &a), 0); /* a read keeps it alive */
  assert_int_equal(a.offset, 1);
  history_expire(h, T0 + META_TTL); /* "b" goes, "a" stays */
  assert_int_equal(history_count(h), 1);
  assert_int_equal(add_at(h, "b", 1, 10, T0 + META_TTL), 1);
  assert_int_equal(history_position(h, "a", T0 + 2 * META_TTL - 2, &b), 0);
  assert_string_equal(a.epoch, b.epoch);
  assert_int_equal(add_at(h, "a", 2, 10, T0 + 3 * META_TTL), 1); /* lazily: a new stream */
  assert_int_equal(history_position(h, "a", T0 + 3 * META_TTL, &c), 0);
  assert_string_not_equal(a.epoch, c.epoch);
  struct history_query q = {.limit = -1};
  struct history_result r;
  assert_int_equal(history_query(h, "a", &q, T0 + 3 * META_TTL, &r), 0);
  assert_int_equal(r.n, 1); /* only the new stream's publication */
  assert_int_equal(pub_n(r.pubs[0]), 2);
  history_result_cleanup(&r);
  history_free(h);

  h = history_new(); /* meta TTL 0: streams are never forgotten */
  struct history_retention forever = {.size = 10, .ttl_ms = TTL, .meta_ttl_ms = 0};
  assert_int_equal(
      history_add(h, "a", &(Protocol__Publication)PROTOCOL__PUBLICATION__INIT, &forever, T0, NULL), 0);
  history_expire(h, UINT64_MAX - 1);
  assert_int_equal(history_count(h), 1);
  history_free(h);
}

/* Issue 10, item 7: a read (history, positioned or recovering subscribe) of a channel without a stream
 * creates nothing; it answers offset 0 and the epoch the channel's first publication will have, so a
 * client positioned before that publication can still recover it. */
static void reads_create_no_state(void **state) {
  (void)state;
  struct history *h = history_new();
  enum { N = 1000 };
  char ch[32];
  for (int i = 0; i < N; i++) {
    snprintf(ch, sizeof ch, "unknown:%d", i);
    struct history_query q = {.limit = -1};
    struct history_result r;
    assert_int_equal(history_query(h, ch, &q, T0, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.pos.offset, 0);
    assert_int_equal(strlen(r.pos.epoch), HISTORY_EPOCH_LEN);
    history_result_cleanup(&r);
    struct stream_position pos;
    assert_int_equal(history_position(h, ch, T0, &pos), 0);
    assert_string_equal(pos.epoch, r.pos.epoch); /* stable while the channel has no stream */
    bool recovered = false;
    assert_int_equal(history_recover(h, ch, 0, pos.epoch, 0, T0, &r, &recovered), 0);
    assert_true(recovered); /* nothing was missed */
    history_result_cleanup(&r);
  }
  assert_int_equal(history_count(h), 0);
  /* the first publication keeps the epoch a reader saw: positioned at (0, epoch), it recovers */
  struct stream_position seen, now;
  assert_int_equal(history_position(h, "late", T0, &seen), 0);
  assert_int_equal(add(h, "late", 1, 10), 1);
  assert_int_equal(history_count(h), 1);
  assert_int_equal(history_position(h, "late", T0, &now), 0);
  assert_string_equal(now.epoch, seen.epoch);
  struct history_result r;
  bool recovered = false;
  assert_int_equal(history_recover(h, "late", 0, seen.epoch, 0, T0, &r, &recovered), 0);
  assert_true(recovered);
  assert_int_equal(r.n, 1);
  history_result_cleanup(&r);
  history_free(h);
}

/* Each publish sets its stream's meta TTL (the channel's history_meta_ttl): a short one forgets the
 * stream that long after its last publish or read, sweeps count it gone, and the next publish starts a
 * new epoch at offset 1; a read of the forgotten channel sees that new epoch before it exists. */
static void streams_expire_after_their_meta_ttl(void **state) {
  (void)state;
  struct history *h = history_new();
  struct history_retention shortlived = {.size = 10, .ttl_ms = TTL, .meta_ttl_ms = 5000};
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = (ProtobufCBinaryData){2, (uint8_t *)"{}"};
  struct stream_position first, later, seen;
  for (int i = 0; i < 100; i++) {
    char ch[32];
    snprintf(ch, sizeof ch, "short:%d", i);
    assert_int_equal(history_add(h, ch, &pub, &shortlived, T0, i == 0 ? &first : NULL), 0);
  }
  assert_int_equal(history_count(h), 100);
  history_expire(h, T0 + 4999);
  assert_int_equal(history_count(h), 100);
  history_expire(h, T0 + 5000);
  assert_int_equal(history_count(h), 0);
  assert_int_equal(history_position(h, "short:0", T0 + 5000, &seen), 0);
  assert_int_equal(seen.offset, 0);
  assert_string_not_equal(seen.epoch, first.epoch);
  assert_int_equal(history_add(h, "short:0", &pub, &shortlived, T0 + 5000, &later), 0);
  assert_int_equal(later.offset, 1);
  assert_string_equal(later.epoch, seen.epoch);
  history_free(h);
}

/* history_max_streams: at the cap a publish that needs a new stream is refused, existing streams take
 * publications, and a stream forgotten by its meta TTL makes room. */
static void stream_count_is_capped(void **state) {
  (void)state;
  struct history *h = history_new();
  struct history_retention capped = {.size = 10, .ttl_ms = TTL, .meta_ttl_ms = 5000, .max_streams = 3};
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = (ProtobufCBinaryData){2, (uint8_t *)"{}"};
  assert_int_equal(history_add(h, "a", &pub, &capped, T0, NULL), 0);
  assert_int_equal(history_add(h, "b", &pub, &capped, T0, NULL), 0);
  assert_int_equal(history_add(h, "c", &pub, &capped, T0 + 10, NULL), 0);
  assert_int_equal(history_add(h, "d", &pub, &capped, T0, NULL), -HISTORY_ELIMIT);
  assert_int_equal(history_error_code(-HISTORY_ELIMIT), ERROR_LIMIT_EXCEEDED);
  struct stream_position pos;
  assert_int_equal(history_add(h, "a", &pub, &capped, T0, &pos), 0);
  assert_int_equal(pos.offset, 2);
  assert_int_equal(history_count(h), 3);
  history_expire(h, T0 + 5000); /* a and b go, c (published later) stays */
  assert_int_equal(history_count(h), 1);
  assert_int_equal(history_add(h, "d", &pub, &capped, T0 + 5000, NULL), 0);
  assert_int_equal(history_count(h), 2);
  history_free(h);
}

struct adder {
  struct history *h;
  uint64_t offsets[1000];
};

static void *adder_run(void *arg) {
  struct adder *a = arg;
  for (int i = 0; i < 1000; i++) a->offsets[i] = add(a->h, "shared", i, 100);
  return NULL;
}

static void concurrent_adds_get_unique_offsets(void **state) {
  (void)state;
  struct history *h = history_new();
  static struct adder a[2];
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    a[i].h = h;
    assert_int_equal(pthread_create(&t[i], NULL, adder_run, &a[i]), 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  static bool seen[2001];
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 1000; j++) {
      uint64_t off = a[i].offsets[j];
      assert_true(off >= 1 && off <= 2000);
      assert_false(seen[off]);
      seen[off] = true;
      if (j > 0) assert_true(off > a[i].offsets[j - 1]); /* monotonic per publisher */
    }
  struct history_query q = {.limit = -1};
  struct history_result r;
  assert_int_equal(history_query(h, "shared", &q, T0, &r), 0);
  assert_int_equal(r.n, 100);
  assert_int_equal(r.pubs[99]->offset, 2000);
  history_result_cleanup(&r);
  history_free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(offsets_start_at_one_and_increase),
      cmocka_unit_test(epoch_is_eight_letters_and_stable),
      cmocka_unit_test(stored_publication_round_trips),
      cmocka_unit_test(size_cap_keeps_newest),
      cmocka_unit_test(ttl_drops_publications_keeps_position),
      cmocka_unit_test(limits),
      cmocka_unit_test(since_and_reverse),
      cmocka_unit_test(epoch_mismatch_is_unrecoverable),
      cmocka_unit_test(recovery_decisions),
      cmocka_unit_test(remove_drops_publications_keeps_position),
      cmocka_unit_test(meta_ttl_regenerates_epoch),
      cmocka_unit_test(concurrent_adds_get_unique_offsets),
      cmocka_unit_test(reads_create_no_state),
      cmocka_unit_test(streams_expire_after_their_meta_ttl),
      cmocka_unit_test(stream_count_is_capped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
