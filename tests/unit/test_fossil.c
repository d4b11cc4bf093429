/* Unit tests for fossil.c: deltas applied by a strict decoder written here from the format (every
 * command checked against the declared length, the source and the checksum) turn the source into the
 * target for random edits, text and binary; the UTF-8-safe mode keeps deltas of text valid UTF-8; a
 * delta that does not fit in the buffer is refused; and the checksum has its known value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fossil.h"
#include "utf8.h"

/* Reads a base-64 integer at *P (at least one digit). -1 when there is none. */
static long long get_int(const uint8_t **p, const uint8_t *end) {
  static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";
  long long v = 0;
  int n = 0;
  while (*p < end) {
    const char *d = memchr(digits, **p, 64);
    if (d == NULL || **p == 0) break;
    v = v * 64 + (d - digits);
    (*p)++;
    n++;
  }
  return n ? v : -1;
}

/* Applies DELTA to SRC into a malloc'd buffer (*OUT, *OUT_LEN). Returns false on any malformation. */
static bool apply(const uint8_t *src, size_t src_len, const uint8_t *delta, size_t delta_len, uint8_t **out,
                  size_t *out_len) {
  const uint8_t *p = delta, *end = delta + delta_len;
  long long limit = get_int(&p, end);
  if (limit < 0 || p >= end || *p++ != '\n') return false;
  uint8_t *buf = malloc((size_t)limit + 1);
  size_t total = 0;
  for (;;) {
    long long cnt = get_int(&p, end);
    if (cnt < 0 || p >= end) break;
    uint8_t op = *p++;
    if (op == '@') {
      long long off = get_int(&p, end);
      if (off < 0 || p >= end || *p++ != ',' || cnt == 0) break;
      if ((size_t)(off + cnt) > src_len || total + (size_t)cnt > (size_t)limit) break;
      memcpy(buf + total, src + off, (size_t)cnt);
      total += (size_t)cnt;
    } else if (op == ':') {
      if (cnt == 0 || (size_t)(end - p) < (size_t)cnt || total + (size_t)cnt > (size_t)limit) break;
      memcpy(buf + total, p, (size_t)cnt);
      p += cnt;
      total += (size_t)cnt;
    } else if (op == ';') {
      if (p != end || total != (size_t)limit || (uint32_t)cnt != fossil_checksum(buf, total)) break;
      *out = buf;
      *out_len = total;
      return true;
    } else {
      break;
    }
  }
  free(buf);
  return false;
}

static uint32_t rng = 12345;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

/* Round-trips SRC -> TARGET and returns the delta's length. */
static size_t roundtrip(const uint8_t *src, size_t src_len, const uint8_t *target, size_t target_len, bool utf8) {
  size_t cap = target_len * 2 + 64;
  uint8_t *delta = malloc(cap);
  size_t n = fossil_delta_create(src, src_len, target, target_len, delta, cap, utf8);
  assert_true(n > 0);
  uint8_t *got = NULL;
  size_t got_len = 0;
  assert_true(apply(src, src_len, delta, n, &got, &got_len));
  assert_int_equal(got_len, target_len);
  assert_memory_equal(got, target, target_len);
  if (utf8 && utf8_valid(target, target_len)) assert_true(utf8_valid(delta, n));
  free(got);
  free(delta);
  return n;
}

static void test_checksum(void **state) {
  (void)state;
  assert_int_equal(fossil_checksum((const uint8_t *)"abcd", 4), 0x61626364u);
  assert_int_equal(fossil_checksum((const uint8_t *)"", 0), 0);
  /* tail bytes land high: "abcde" = 0x61626364 + ('e' << 24) */
  assert_int_equal(fossil_checksum((const uint8_t *)"abcde", 5), 0x61626364u + (0x65u << 24));
}

static void test_small_and_known(void **state) {
  (void)state;
  uint8_t out[64];
  /* no usable source: the whole target as one literal */
  size_t n = fossil_delta_create((const uint8_t *)"", 0, (const uint8_t *)"hello", 5, out, sizeof out, false);
  uint32_t ck = fossil_checksum((const uint8_t *)"hello", 5);
  char want[64];
  const char *digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";
  char ckbuf[16];
  int k = 0;
  char rev[16];
  for (uint32_t v = ck; v; v >>= 6) rev[k++] = digits[v & 63];
  for (int i = 0; i < k; i++) ckbuf[i] = rev[k - 1 - i];
  ckbuf[k] = 0;
  snprintf(want, sizeof want, "5\n5:hello%s;", ckbuf);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);

  /* an unchanged long text is one copy */
  const char *text = "{\"price\": 100.25, \"symbol\": \"ACME\", \"volume\": 123456789}";
  size_t len = strlen(text);
  n = fossil_delta_create((const uint8_t *)text, len, (const uint8_t *)text, len, out, sizeof out, true);
  assert_true(n > 0 && n < 16);
  assert_non_null(memchr(out, '@', n));
  assert_null(memchr(out, ':', n));
}

static void test_random_edits(void **state) {
  (void)state;
  for (int round = 0; round < 400; round++) {
    size_t src_len = next_rand() % 4000;
    uint8_t *src = malloc(src_len + 1);
    bool binary = round % 2;
    for (size_t i = 0; i < src_len; i++) src[i] = binary ? (uint8_t)next_rand() : (uint8_t)('a' + next_rand() % 8);
    /* the target: the source with a few edits (replace, insert, delete), or something unrelated */
    size_t cap = src_len + 2000;
    uint8_t *target = malloc(cap);
    size_t tlen = 0;
    if (round % 17 == 0) {
      tlen = next_rand() % 1000;
      for (size_t i = 0; i < tlen; i++) target[i] = (uint8_t)next_rand();
    } else {
      size_t i = 0;
      while (i < src_len && tlen < cap - 64) {
        uint32_t r = next_rand() % 400;
        if (r == 0) {
          size_t k = next_rand() % 40;
          for (size_t j = 0; j < k; j++) target[tlen++] = (uint8_t)next_rand();
        } else if (r == 1) {
          i += next_rand() % 40;
        } else {
          target[tlen++] = src[i++];
        }
      }
    }
    size_t n = roundtrip(src, src_len, target, tlen, false);
    if (round % 17 != 0 && src_len > 2000) assert_true(n < tlen / 2); /* a few edits: a small delta */
    free(src);
    free(target);
  }
}

/* Appends the UTF-8 form of code point C. */
static size_t put_utf8(uint8_t *p, uint32_t c) {
  if (c < 0x80) return p[0] = (uint8_t)c, 1;
  if (c < 0x800) return p[0] = (uint8_t)(0xC0 | c >> 6), p[1] = (uint8_t)(0x80 | (c & 63)), 2;
  if (c < 0x10000) {
    p[0] = (uint8_t)(0xE0 | c >> 12), p[1] = (uint8_t)(0x80 | (c >> 6 & 63)), p[2] = (uint8_t)(0x80 | (c & 63));
    return 3;
  }
  p[0] = (uint8_t)(0xF0 | c >> 18), p[1] = (uint8_t)(0x80 | (c >> 12 & 63));
  p[2] = (uint8_t)(0x80 | (c >> 6 & 63)), p[3] = (uint8_t)(0x80 | (c & 63));
  return 4;
}

/* A few multi-byte characters, sharing lead bytes so that matches tend to start or end mid-character. */
static uint32_t random_char(void) {
  static const uint32_t chars[] = {'a', 'b', 0xE9, 0xE8, 0x20AC, 0x20AD, 0x1F600, 0x1F601, 0x4E2D, 0x4E2E};
  return chars[next_rand() % (sizeof chars / sizeof chars[0])];
}

static void test_utf8_safe(void **state) {
  (void)state;
  int unsafe_seen = 0;
  for (int round = 0; round < 300; round++) {
    uint8_t src[8000], target[9000];
    size_t slen = 0, tlen = 0;
    size_t chars = 50 + next_rand() % 1500;
    for (size_t i = 0; i < chars; i++) slen += put_utf8(src + slen, random_char());
    /* edit whole characters: the target is valid UTF-8 */
    size_t i = 0;
    while (i < slen) {
      size_t clen = 1;
      while (i + clen < slen && (src[i + clen] & 0xC0) == 0x80) clen++;
      uint32_t r = next_rand() % 30;
      if (r == 0) {
        tlen += put_utf8(target + tlen, random_char());
      } else if (r != 1) {
        memcpy(target + tlen, src + i, clen);
        tlen += clen;
      }
      i += clen;
    }
    assert_true(utf8_valid(target, tlen));
    roundtrip(src, slen, target, tlen, true);
    /* without the mode, some of these deltas are not UTF-8: the test can tell the modes apart */
    uint8_t delta[20000];
    size_t n = fossil_delta_create(src, slen, target, tlen, delta, sizeof delta, false);
    if (n > 0 && !utf8_valid(delta, n)) unsafe_seen++;
  }
  assert_true(unsafe_seen > 0);
}

static void test_out_cap(void **state) {
  (void)state;
  uint8_t src[1000], target[1000], out[1200];
  for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)next_rand();
  for (size_t i = 0; i < sizeof target; i++) target[i] = (uint8_t)next_rand(); /* unrelated */
  size_t full = fossil_delta_create(src, sizeof src, target, sizeof target, out, sizeof out, false);
  assert_true(full > sizeof target);
  assert_int_equal(fossil_delta_create(src, sizeof src, target, sizeof target, out, full - 1, false), 0);
  assert_int_equal(fossil_delta_create(src, sizeof src, target, sizeof target, out, full, false), full);
  assert_int_equal(fossil_delta_create(src, sizeof src, target, sizeof target, out, 0, false), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_checksum),   cmocka_unit_test(test_small_and_known), cmocka_unit_test(test_random_edits),
      cmocka_unit_test(test_utf8_safe), cmocka_unit_test(test_out_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
