/* Unit tests for ws_input.c: the cost of parsing many small frames, and what a client may send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ws_input.h"

/* What the parser reported. */
struct seen {
  size_t messages, pings, closes, fails;
  uint32_t close_code, fail_code;
  size_t last_len;
};

static void on_message(void *ctx, const uint8_t *data, size_t len) {
  (void)data;
  struct seen *s = ctx;
  s->messages++;
  s->last_len = len;
}
static void on_ping(void *ctx, const uint8_t *p, size_t len) {
  (void)p;
  (void)len;
  ((struct seen *)ctx)->pings++;
}
static void on_close(void *ctx, uint32_t code) {
  struct seen *s = ctx;
  s->closes++;
  s->close_code = code;
}
static void on_fail(void *ctx, uint32_t code, const char *reason) {
  (void)reason;
  struct seen *s = ctx;
  s->fails++;
  s->fail_code = code;
}
static const struct ws_input_ops ops = {on_message, on_ping, on_close, on_fail};

/* Appends one masked client frame (mask 0x01020304) of OPCODE (with FIN) around P[0..LEN) at OUT;
 * returns its size. LEN < 126. */
static size_t put_frame(uint8_t *out, unsigned first_byte, const uint8_t *p, size_t len) {
  static const uint8_t mask[4] = {1, 2, 3, 4};
  out[0] = (uint8_t)first_byte;
  out[1] = (uint8_t)(0x80 | len);
  memcpy(out + 2, mask, 4);
  for (size_t i = 0; i < len; i++) out[6 + i] = p[i] ^ mask[i & 3];
  return 6 + len;
}

static struct seen parse_all(const uint8_t *bytes, size_t len, struct ws_input *in) {
  struct seen s = {0};
  assert_int_equal(ws_input_init(in, 65536, bytes, len), 0);
  ws_input_parse(in, &ops, &s);
  return s;
}

/* 64 KiB of 6-byte frames (empty pings) in one buffer: every frame is reported, and the buffer is
 * compacted at most once, so no byte is moved more than once (moving the rest after every frame
 * was ~350 MB of copying for this buffer). */
static void test_small_frames_linear(void **state) {
  (void)state;
  enum { N = 65536 / 6 };
  uint8_t *buf = malloc(N * 6 + 3);
  size_t len = 0;
  for (size_t i = 0; i < N; i++) len += put_frame(buf + len, 0x89, NULL, 0);
  buf[len++] = 0x89; /* a frame still incomplete at the end */
  buf[len++] = 0x80;
  buf[len++] = 0x01;
  struct ws_input in;
  struct seen s = parse_all(buf, len, &in);
  assert_int_equal(s.pings, N);
  assert_int_equal(s.fails, 0);
  assert_true(in.bytes_moved <= len);
  /* the incomplete frame is kept and completes with the next read */
  size_t avail = 0;
  uint8_t *p = ws_input_space(&in, 16, &avail);
  assert_non_null(p);
  memcpy(p, "\x02\x03\x04", 3);
  ws_input_commit(&in, 3);
  ws_input_parse(&in, &ops, &s);
  assert_int_equal(s.pings, N + 1);
  ws_input_cleanup(&in);
  free(buf);
}

/* A fragmented message may start with an empty fragment (found by the fuzzer: UB on a NULL buffer). */
static void test_empty_first_fragment(void **state) {
  (void)state;
  uint8_t bytes[64];
  size_t n = put_frame(bytes, 0x01, NULL, 0);                        /* text, not final, empty */
  n += put_frame(bytes + n, 0x00, (const uint8_t *)"", 0);           /* continuation, not final, empty */
  n += put_frame(bytes + n, 0x80, (const uint8_t *)"{\"id\":1}", 8); /* final continuation */
  struct ws_input in;
  struct seen s = parse_all(bytes, n, &in);
  assert_int_equal(s.fails, 0);
  assert_int_equal(s.messages, 1);
  assert_int_equal(s.last_len, 8);
  ws_input_cleanup(&in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_frames_linear),
      cmocka_unit_test(test_empty_first_fragment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
