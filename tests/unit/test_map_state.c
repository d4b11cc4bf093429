/* Unit tests for map_state.c (the memory engine's map keys) and channel_map.c (a map namespace's
 * effective limits): pages in key order joined by cursors, keys written after a snapshot froze left out,
 * key modes, expiry (absent at once, taken by the sweep), clearing, and the defaults of the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel_map.h"
#include "map_state.h"

static void set(struct map_state *ms, const char *key, const char *data, uint64_t offset, uint64_t expires,
                uint64_t now) {
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.key = (char *)key;
  pub.data = (ProtobufCBinaryData){strlen(data), (uint8_t *)data};
  assert_int_equal(map_state_set(ms, "m", key, &pub, offset, expires, MAP_KEY_ANY, now), MAP_STATE_OK);
}

/* Reads every page of "m" with LIMIT and returns the keys joined by ',' (caller frees). */
static char *read_all(struct map_state *ms, size_t limit, uint64_t max_offset, uint64_t now, int *pages) {
  char *keys = calloc(1, 4096), cursor[256] = "";
  *pages = 0;
  for (;;) {
    struct map_page p;
    assert_int_equal(map_state_page(ms, "m", cursor, limit, max_offset, now, &p), 0);
    (*pages)++;
    assert_true(p.n <= limit);
    for (size_t i = 0; i < p.n; i++) {
      if (keys[0]) strcat(keys, ",");
      strcat(keys, p.entries[i]->key);
    }
    bool more = p.next_cursor != NULL;
    if (more) snprintf(cursor, sizeof cursor, "%s", p.next_cursor);
    map_page_cleanup(&p);
    if (!more) return keys;
  }
}

static void test_pages_in_key_order(void **state) {
  (void)state;
  struct map_state *ms = map_state_new();
  const char *keys[] = {"d", "a", "c", "e", "b"};
  for (size_t i = 0; i < 5; i++) set(ms, keys[i], "{}", i + 1, 0, 0);
  int pages = 0;
  char *all = read_all(ms, 2, 0, 0, &pages);
  assert_string_equal(all, "a,b,c,d,e");
  assert_int_equal(pages, 3);
  free(all);
  /* a page's entries carry their data and the offset of their last write */
  struct map_page p;
  assert_int_equal(map_state_page(ms, "m", "", 1, 0, 0, &p), 0);
  assert_string_equal(p.entries[0]->key, "a");
  assert_int_equal(p.entries[0]->offset, 2);
  assert_memory_equal(p.entries[0]->data.data, "{}", 2);
  assert_string_equal(p.next_cursor, "a");
  map_page_cleanup(&p);
  /* keys rewritten after the freeze (offset > 3) are left out; the catch-up brings them */
  set(ms, "b", "{\"v\":2}", 6, 0, 0);
  all = read_all(ms, 10, 3, 0, &pages);
  assert_string_equal(all, "a,c,d"); /* d=1, a=2, c=3 written before; e=4 and b=6 after */
  free(all);
  map_state_free(ms);
}

/* A key written between two pages lands on its side of the cursor: before it, it is not read again. */
static void test_cursor_survives_writes(void **state) {
  (void)state;
  struct map_state *ms = map_state_new();
  set(ms, "b", "1", 1, 0, 0);
  set(ms, "d", "1", 2, 0, 0);
  struct map_page p;
  assert_int_equal(map_state_page(ms, "m", "", 1, 0, 0, &p), 0);
  assert_string_equal(p.next_cursor, "b");
  map_page_cleanup(&p);
  set(ms, "a", "1", 3, 0, 0); /* before the cursor */
  set(ms, "c", "1", 4, 0, 0); /* after it */
  assert_int_equal(map_state_page(ms, "m", "b", 10, 0, 0, &p), 0);
  assert_int_equal(p.n, 2);
  assert_string_equal(p.entries[0]->key, "c");
  assert_string_equal(p.entries[1]->key, "d");
  assert_null(p.next_cursor);
  map_page_cleanup(&p);
  /* a cursor whose key was removed meanwhile still works */
  assert_true(map_state_remove(ms, "m", "b", 0));
  assert_int_equal(map_state_page(ms, "m", "b", 10, 0, 0, &p), 0);
  assert_int_equal(p.n, 2);
  assert_string_equal(p.entries[0]->key, "c");
  map_page_cleanup(&p);
  map_state_free(ms);
}

static void test_key_modes_and_remove(void **state) {
  (void)state;
  struct map_state *ms = map_state_new();
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  assert_true(map_state_allows(ms, "m", "k", MAP_KEY_IF_NEW, 0));
  assert_false(map_state_allows(ms, "m", "k", MAP_KEY_IF_EXISTS, 0));
  assert_int_equal(map_state_set(ms, "m", "k", &pub, 1, 0, MAP_KEY_IF_EXISTS, 0), MAP_STATE_SUPPRESSED);
  assert_int_equal(map_state_count(ms, "m", 0), 0);
  assert_int_equal(map_state_set(ms, "m", "k", &pub, 1, 0, MAP_KEY_IF_NEW, 0), MAP_STATE_OK);
  assert_int_equal(map_state_set(ms, "m", "k", &pub, 2, 0, MAP_KEY_IF_NEW, 0), MAP_STATE_SUPPRESSED);
  assert_int_equal(map_state_set(ms, "m", "k", &pub, 2, 0, MAP_KEY_IF_EXISTS, 0), MAP_STATE_OK);
  assert_int_equal(map_state_count(ms, "m", 0), 1);
  assert_int_equal(map_state_count(ms, "other", 0), 0);
  assert_true(map_state_remove(ms, "m", "k", 0));
  assert_false(map_state_remove(ms, "m", "k", 0));
  set(ms, "x", "1", 1, 0, 0);
  set(ms, "y", "1", 2, 0, 0);
  map_state_clear(ms, "m");
  assert_int_equal(map_state_count(ms, "m", 0), 0);
  map_state_free(ms);
}

static void collect(void *arg, const char *channel, const char *key) {
  char *out = arg;
  snprintf(out + strlen(out), 256 - strlen(out), "%s/%s;", channel, key);
}

static void test_expiry(void **state) {
  (void)state;
  struct map_state *ms = map_state_new();
  set(ms, "old", "1", 1, 1000, 0);
  set(ms, "new", "1", 2, 5000, 0);
  set(ms, "forever", "1", 3, 0, 0);
  assert_int_equal(map_state_count(ms, "m", 999), 3);
  /* expired: absent from reads at once, and a key mode sees it as gone */
  assert_int_equal(map_state_count(ms, "m", 1000), 2);
  assert_true(map_state_allows(ms, "m", "old", MAP_KEY_IF_NEW, 1000));
  assert_false(map_state_remove(ms, "m", "old", 1000)); /* a removal of an expired key is no removal */
  int pages = 0;
  char *all = read_all(ms, 10, 0, 1000, &pages);
  assert_string_equal(all, "forever,new");
  free(all);
  /* the sweep lists it, and taking it removes it once */
  char found[256] = "";
  assert_int_equal(map_state_expired(ms, 1000, 10, collect, found), 1);
  assert_string_equal(found, "m/old;");
  assert_false(map_state_take_expired(ms, "m", "new", 1000)); /* not expired: stays */
  assert_true(map_state_take_expired(ms, "m", "old", 1000));
  assert_false(map_state_take_expired(ms, "m", "old", 1000));
  found[0] = '\0';
  assert_int_equal(map_state_expired(ms, 1000, 10, collect, found), 0);
  /* rewritten before the sweep took it: it lives on */
  set(ms, "new", "2", 4, 9000, 6000);
  assert_false(map_state_take_expired(ms, "m", "new", 6000));
  assert_int_equal(map_state_count(ms, "m", 6000), 2);
  map_state_free(ms);
}

static void test_limits(void **state) {
  (void)state;
  struct channel_options o = {.subscription_type = "map", .map_mode = "recoverable", .map_key_ttl_ms = 30000,
                              .map_default_page_size = 100, .map_min_page_size = 10, .map_max_page_size = 1000};
  struct channel_map_limits l;
  channel_map_limits(&o, &l);
  assert_true(channel_is_map(&o));
  assert_true(l.stream);
  assert_int_equal(l.stream_size, 100);
  assert_int_equal(l.stream_ttl_ms, 60000);
  assert_int_equal(l.meta_ttl_ms, 600000);
  assert_int_equal(l.live_limit, 1000);
  assert_int_equal(channel_map_page_size(&l, 0), 100);
  assert_int_equal(channel_map_page_size(&l, 2), 10);
  assert_int_equal(channel_map_page_size(&l, 5000), 1000);
  o.map_key_ttl_ms = 3600000; /* keys outlive ten stream TTLs: the epoch must outlive the keys */
  channel_map_limits(&o, &l);
  assert_int_equal(l.meta_ttl_ms, 3600000);
  o.map_mode = "ephemeral";
  channel_map_limits(&o, &l);
  assert_false(l.stream);
  assert_int_equal(l.stream_size, 0);
  o.map_mode = "persistent";
  channel_map_limits(&o, &l);
  assert_true(l.stream);
  assert_int_equal(l.key_ttl_ms, 0);
  assert_true(l.meta_ttl_ms > (uint64_t)1e15);
  o.subscription_type = "stream";
  assert_false(channel_is_map(&o));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pages_in_key_order), cmocka_unit_test(test_cursor_survives_writes),
      cmocka_unit_test(test_key_modes_and_remove), cmocka_unit_test(test_expiry),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
