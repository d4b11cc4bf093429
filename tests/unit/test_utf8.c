/* Unit tests for utf8.c: what RFC 3629 rejects, checking in pieces, and cutting at a boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "utf8.h"

#define V(s) utf8_valid((const uint8_t *)(s), sizeof(s) - 1)

static void test_valid_and_invalid(void **state) {
  (void)state;
  assert_true(V("plain ascii"));
  assert_true(V("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")); /* é € 😀 */
  assert_true(V("\xed\x9f\xbf\xf4\x8f\xbf\xbf"));         /* U+D7FF, U+10FFFF */
  assert_false(V("\xc0\xaf"));                            /* overlong '/' */
  assert_false(V("\xe0\x80\xaf"));                        /* overlong, 3 bytes */
  assert_false(V("\xed\xa0\x80"));                        /* surrogate U+D800 */
  assert_false(V("\xf4\x90\x80\x80"));                    /* U+110000 */
  assert_false(V("\xff"));
  assert_false(V("\x80"));     /* a lone continuation byte */
  assert_false(V("\xe2\x82")); /* truncated */
}

static void test_pieces(void **state) {
  (void)state;
  struct utf8_check u = UTF8_CHECK_INIT;
  assert_int_equal(utf8_feed(&u, (const uint8_t *)"a\xe2", 2), 0);
  assert_false(utf8_complete(&u));
  assert_int_equal(utf8_feed(&u, (const uint8_t *)"\x82", 1), 0);
  assert_int_equal(utf8_feed(&u, (const uint8_t *)"\xac", 1), 0);
  assert_true(utf8_complete(&u));
  assert_int_equal(utf8_feed(&u, (const uint8_t *)"\xe2\x28", 2), -1);
}

static void test_cut(void **state) {
  (void)state;
  const uint8_t *s = (const uint8_t *)"ab\xc3\xa9\xe2\x82\xac";
  assert_int_equal(utf8_cut(s, 7, 10), 7);
  assert_int_equal(utf8_cut(s, 7, 4), 4);
  assert_int_equal(utf8_cut(s, 7, 3), 2); /* not inside é */
  assert_int_equal(utf8_cut(s, 7, 6), 4); /* not inside € */
  assert_int_equal(utf8_cut(s, 7, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_and_invalid),
      cmocka_unit_test(test_pieces),
      cmocka_unit_test(test_cut),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
