/* Unit tests for json_span.c: the strict scanner's grammar (accepted and refused texts, checked against
 * jansson where jansson can hold the value), number texts of any size, UTF-8 and escape rules, the
 * nesting limit, unescaping, key comparison, the container iterator, member lookup and the line-break
 * stripping copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_span.h"

/* The end json_span_value finds for TEXT, or -1. */
static long value_end(const char *text) {
  size_t end;
  return json_span_value(text, strlen(text), &end) == 0 ? (long)end : -1;
}

static bool is_document(const char *text) {
  size_t start, end;
  return json_span_document(text, strlen(text), &start, &end) == 0;
}

static void test_valid_documents(void **state) {
  (void)state;
  static const char *const good[] = {
      "0",
      "-0",
      "1",
      "-1",
      "10",
      "1.5",
      "1.50",
      "-0.0e-0",
      "1E+2",
      "1e400",
      "2.5E-3",
      "123456789012345678901234567890",
      "18446744073709551615",
      "true",
      "false",
      "null",
      "\"\"",
      "\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"",
      "\"\\u0000\"",
      "\"\\uD83D\\uDE00\"",
      "\"é日本😀\"",
      "\"\xf4\x8f\xbf\xbf\"",
      "[]",
      "{}",
      "[1,[2,[3]],{\"a\":{}}]",
      " \t\r\n{ \"a\" : [ 1 , 2 ] }\n",
      "{\"a\":1,\"a\":2}",
      "\"\x7f\"",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    if (!is_document(good[i])) fail_msg("refused: %s", good[i]);
    /* jansson agrees, except on numbers it cannot hold */
    json_t *v = json_loads(good[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v == NULL && strstr(good[i], "1e400") == NULL && strstr(good[i], "12345678901234567890") == NULL &&
        strstr(good[i], "18446744073709551615") == NULL)
      fail_msg("jansson refuses: %s", good[i]);
    json_decref(v);
  }
}

static void test_invalid_documents(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      " ",
      "01",
      "-",
      "+1",
      "1.",
      ".5",
      "1e",
      "1e+",
      "0x10",
      "NaN",
      "Infinity",
      "-Infinity",
      "tru",
      "nul",
      "True",
      "'a'",
      "\"abc",
      "\"\\x\"",
      "\"\\u12\"",
      "\"\\u12G4\"",
      "\"\\uD800\"",
      "\"\\uDC00\"",
      "\"\\uD800\\u0041\"",
      "\"a\tb\"",
      "\"a\nb\"",
      "\"\x01\"",
      "\"\xff\"",
      "\"\xc0\xaf\"",
      "\"\xe0\x80\xaf\"",
      "\"\xed\xa0\x80\"",
      "\"\xf4\x90\x80\x80\"",
      "\"\xc3\"",
      "\"\x80\"",
      "[",
      "[1",
      "[1,]",
      "[,1]",
      "[1 2]",
      "{",
      "{\"a\"}",
      "{\"a\":}",
      "{\"a\":1,}",
      "{,}",
      "{a:1}",
      "{\"a\" 1}",
      "{1:1}",
      "[}",
      "{]",
      "1 2",
      "[] x",
      "{}{}",
      "\xef\xbb\xbf{}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (is_document(bad[i])) fail_msg("accepted: %s", bad[i]);
}

static void test_value_end(void **state) {
  (void)state;
  assert_int_equal(value_end("123,"), 3);
  assert_int_equal(value_end("-1.5e7]"), 6);
  assert_int_equal(value_end("\"a\\\"\" rest"), 5);
  assert_int_equal(value_end("{\"a\":[1,{}]} , 2"), 12);
  assert_int_equal(value_end("null}"), 4);
  assert_int_equal(value_end(" 1"), -1); /* no leading whitespace */
  assert_int_equal(value_end(""), -1);
  assert_int_equal(value_end("}"), -1);
  /* the length bounds the scan: nothing past LEN is read */
  size_t end;
  assert_int_equal(json_span_value("12345", 3, &end), 0);
  assert_int_equal(end, 3);
  assert_int_equal(json_span_value("\"abc\"", 4, &end), -1);
  assert_int_equal(json_span_value("true", 3, &end), -1);
}

static void test_depth_limit(void **state) {
  (void)state;
  size_t n = JSON_SPAN_MAX_DEPTH + 1, end;
  char *text = malloc(6 * n + 16);
  assert_non_null(text);
  for (size_t depth = n - 1; depth <= n; depth++) { /* {"k":[{"k":[...]}]} */
    size_t len = 0;
    for (size_t i = 0; i < depth; i++) {
      if (i % 2)
        text[len++] = '[';
      else
        len += (size_t)sprintf(text + len, "{\"k\":");
    }
    text[len++] = '0';
    for (size_t i = depth; i-- > 0;) text[len++] = i % 2 ? ']' : '}';
    assert_int_equal(json_span_value(text, len, &end), depth < n ? 0 : -1);
    if (depth < n) assert_int_equal(end, len);
  }
  free(text);
}

static void test_string_and_unescape(void **state) {
  (void)state;
  struct json_span_str s;
  size_t end;
  const char *text = "\"plain\" tail";
  assert_int_equal(json_span_string(text, strlen(text), &s, &end), 0);
  assert_int_equal(end, 7);
  assert_int_equal(s.len, 5);
  assert_false(s.escaped);
  assert_memory_equal(s.p, "plain", 5);
  assert_int_equal(json_span_string("x", 1, &s, &end), -1);

  text = "\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u65e5\\ud83d\\ude00\\u0000z\"";
  assert_int_equal(json_span_string(text, strlen(text), &s, &end), 0);
  assert_true(s.escaped);
  char out[64];
  size_t n = json_span_unescape(&s, out);
  const char expected[] = "a\"\\/\b\f\n\r\té日😀\0z";
  assert_int_equal(n, sizeof expected - 1);
  assert_memory_equal(out, expected, n);
  assert_true(n <= s.len);

  /* the same as jansson's unescaping */
  json_t *v = json_loadb(text, strlen(text), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  assert_non_null(v);
  assert_int_equal(json_string_length(v), n);
  assert_memory_equal(json_string_value(v), out, n);
  json_decref(v);
}

static void test_str_equals(void **state) {
  (void)state;
  struct json_span_str s;
  size_t end;
  const char *text = "\"d\\u0061ta\"";
  assert_int_equal(json_span_string(text, strlen(text), &s, &end), 0);
  assert_true(json_span_str_equals(&s, "data"));
  assert_false(json_span_str_equals(&s, "dat"));
  assert_false(json_span_str_equals(&s, "datas"));
  assert_false(json_span_str_equals(&s, ""));
  text = "\"data\"";
  assert_int_equal(json_span_string(text, strlen(text), &s, &end), 0);
  assert_true(json_span_str_equals(&s, "data"));
  assert_false(json_span_str_equals(&s, "Data"));
  text = "\"\\u00e9\"";
  assert_int_equal(json_span_string(text, strlen(text), &s, &end), 0);
  assert_true(json_span_str_equals(&s, "é"));
}

static void test_integer(void **state) {
  (void)state;
  bool neg;
  uint64_t m;
  assert_int_equal(json_span_integer("0", 1, &neg, &m), 0);
  assert_false(neg);
  assert_true(m == 0);
  assert_int_equal(json_span_integer("-42", 3, &neg, &m), 0);
  assert_true(neg && m == 42);
  assert_int_equal(json_span_integer("18446744073709551615", 20, &neg, &m), 0);
  assert_true(m == UINT64_MAX);
  assert_int_equal(json_span_integer("18446744073709551616", 20, &neg, &m), -1);
  assert_int_equal(json_span_integer("-9223372036854775808", 20, &neg, &m), 0);
  assert_true(neg && m == (uint64_t)INT64_MAX + 1);
  assert_int_equal(json_span_integer("1.0", 3, &neg, &m), -1);
  assert_int_equal(json_span_integer("1e2", 3, &neg, &m), -1);
  assert_int_equal(json_span_integer("1E2", 3, &neg, &m), -1);
}

static void test_iterator(void **state) {
  (void)state;
  const char *text = "{ \"a\" : 1 , \"b\\u0063\" : [true, {\"x\":null}] , \"\" : \"s\" } tail";
  struct json_span_iter it;
  struct json_span_str key;
  const char *keys[] = {"a", "bc", ""};
  const char *values[] = {"1", "[true, {\"x\":null}]", "\"s\""};
  assert_int_equal(json_span_iter_begin(&it, text, strlen(text)), 0);
  for (int i = 0; i < 3; i++) {
    size_t n;
    assert_int_equal(json_span_iter_next(&it, &key), 1);
    assert_true(json_span_str_equals(&key, keys[i]));
    assert_int_equal(json_span_value(text + it.pos, strlen(text) - it.pos, &n), 0);
    assert_int_equal(n, strlen(values[i]));
    assert_memory_equal(text + it.pos, values[i], n);
    it.pos += n;
  }
  assert_int_equal(json_span_iter_next(&it, &key), 0);
  assert_string_equal(text + it.pos, " tail");

  text = "[ ]";
  assert_int_equal(json_span_iter_begin(&it, text, strlen(text)), 0);
  assert_int_equal(json_span_iter_next(&it, NULL), 0);
  assert_int_equal(it.pos, 3);

  text = "[1 2]";
  assert_int_equal(json_span_iter_begin(&it, text, strlen(text)), 0);
  assert_int_equal(json_span_iter_next(&it, NULL), 1);
  it.pos += 1;
  assert_int_equal(json_span_iter_next(&it, NULL), -1);

  text = "{\"a\":1,}";
  assert_int_equal(json_span_iter_begin(&it, text, strlen(text)), 0);
  assert_int_equal(json_span_iter_next(&it, &key), 1);
  it.pos += 1;
  assert_int_equal(json_span_iter_next(&it, &key), -1);

  assert_int_equal(json_span_iter_begin(&it, "1", 1), -1);
  assert_int_equal(json_span_iter_begin(&it, "", 0), -1);
  assert_int_equal(json_span_iter_begin(&it, "[", 1), 0);
  assert_int_equal(json_span_iter_next(&it, NULL), -1);
}

static void test_member(void **state) {
  (void)state;
  const char *obj = "{\"channel\":\"c\",\"data\":{\"n\":1.50},\"params\":{\"data\":2},\"d\\u0061ta\":[ 3 ]}";
  const char *v;
  size_t n;
  assert_int_equal(json_span_member(obj, strlen(obj), "channel", &v, &n), 0);
  assert_int_equal(n, 3);
  assert_memory_equal(v, "\"c\"", 3);
  /* the last of two equal keys wins, as in jansson; keys compare unescaped */
  assert_int_equal(json_span_member(obj, strlen(obj), "data", &v, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(v, "[ 3 ]", 5);
  assert_int_equal(json_span_member(obj, strlen(obj), "nope", &v, &n), 1);
  assert_int_equal(json_span_member("[1]", 3, "a", &v, &n), -1);
  assert_int_equal(json_span_member("{\"a\":1", 6, "a", &v, &n), -1);
  assert_int_equal(json_span_member("{\"a\":01}", 8, "b", &v, &n), -1); /* validated throughout */
}

static void test_copy_stripped(void **state) {
  (void)state;
  const char *src = "{\r\n  \"a\" : [1,\n 2],\t\"b\":\"x\\ny\"\r\n}";
  char dst[64];
  size_t n = json_span_copy_stripped(dst, src, strlen(src));
  dst[n] = '\0';
  assert_string_equal(dst, "{  \"a\" : [1, 2],\t\"b\":\"x\\ny\"}");
  n = json_span_copy_stripped(dst, "[1]", 3);
  assert_int_equal(n, 3);
  assert_int_equal(json_span_skip_ws(" \t\r\nx", 5, 0), 4);
  assert_int_equal(json_span_skip_ws("  ", 2, 0), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_documents),
      cmocka_unit_test(test_invalid_documents),
      cmocka_unit_test(test_value_end),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_string_and_unescape),
      cmocka_unit_test(test_str_equals),
      cmocka_unit_test(test_integer),
      cmocka_unit_test(test_iterator),
      cmocka_unit_test(test_member),
      cmocka_unit_test(test_copy_stripped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
