/* Unit tests for proxy.c: the request bodies each proxy kind sends (Centrifugo's field names, data as
 * JSON or b64data), and the parsing of answers: results, errors and disconnects within their code
 * ranges, and everything else (HTTP status, garbage, wrong shapes) as PROXY_FAILED; connect and
 * subscribe results read as token claims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

static ProtobufCBinaryData bytes(const char *s) { return (ProtobufCBinaryData){strlen(s), (uint8_t *)s}; }

static json_t *body_of(enum proxy_kind kind, const struct proxy_call *call) {
  char *text = proxy_request_body(kind, call);
  assert_non_null(text);
  json_t *v = json_loads(text, 0, NULL);
  free(text);
  assert_non_null(v);
  return v;
}

static const char *str(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  assert_true(json_is_string(v));
  return json_string_value(v);
}

static void test_connect_request(void **state) {
  (void)state;
  const char *channels[] = {"news", "chat"};
  struct proxy_call call = {.client = "c1",
                            .transport = "http_stream",
                            .protocol = "json",
                            .name = "js",
                            .version = "5.8.0",
                            .data = bytes("{\"a\":1}"),
                            .channels = channels,
                            .n_channels = 2,
                            .user = "ignored"};
  json_t *o = body_of(PROXY_CONNECT, &call);
  assert_string_equal(str(o, "client"), "c1");
  assert_string_equal(str(o, "transport"), "http_stream");
  assert_string_equal(str(o, "protocol"), "json");
  assert_string_equal(str(o, "encoding"), "json");
  assert_string_equal(str(o, "name"), "js");
  assert_string_equal(str(o, "version"), "5.8.0");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "data"), "a")), 1);
  assert_int_equal(json_array_size(json_object_get(o, "channels")), 2);
  assert_null(json_object_get(o, "user")); /* a connect has no user yet */
  json_decref(o);
}

static void test_request_fields_per_kind(void **state) {
  (void)state;
  struct proxy_call call = {.client = "c1",
                            .transport = "websocket",
                            .protocol = "protobuf",
                            .user = "u1",
                            .channel = "ns:ch",
                            .method = "m",
                            .token = "",
                            .data = bytes("[1]"),
                            .meta = bytes("{\"plan\":\"gold\"}")};
  json_t *rpc = body_of(PROXY_RPC, &call);
  assert_string_equal(str(rpc, "method"), "m");
  assert_string_equal(str(rpc, "user"), "u1");
  assert_null(json_object_get(rpc, "channel"));
  assert_string_equal(str(json_object_get(rpc, "meta"), "plan"), "gold");
  json_decref(rpc);
  json_t *sub = body_of(PROXY_SUBSCRIBE, &call);
  assert_string_equal(str(sub, "channel"), "ns:ch");
  assert_null(json_object_get(sub, "token")); /* empty token: not sent */
  assert_null(json_object_get(sub, "method"));
  json_decref(sub);
  json_t *refresh = body_of(PROXY_REFRESH, &call);
  assert_null(json_object_get(refresh, "data"));
  assert_null(json_object_get(refresh, "channel"));
  assert_string_equal(str(refresh, "user"), "u1");
  json_decref(refresh);
  json_t *sr = body_of(PROXY_SUB_REFRESH, &call);
  assert_string_equal(str(sr, "channel"), "ns:ch");
  assert_null(json_object_get(sr, "data"));
  json_decref(sr);
}

static void test_binary_data(void **state) {
  (void)state;
  struct proxy_call call = {.client = "c", .transport = "t", .protocol = "protobuf", .data = bytes("hi")};
  json_t *o = body_of(PROXY_PUBLISH, &call); /* not JSON: b64data even without binary encoding */
  assert_string_equal(str(o, "b64data"), "aGk=");
  assert_null(json_object_get(o, "data"));
  json_decref(o);
  call.data = bytes("{\"x\":1}");
  call.binary = true;
  o = body_of(PROXY_PUBLISH, &call);
  assert_string_equal(str(o, "encoding"), "binary");
  assert_string_equal(str(o, "b64data"), "eyJ4IjoxfQ==");
  json_decref(o);
}

static void parse(long status, const char *body, struct proxy_answer *a) {
  proxy_answer_parse(status, body, strlen(body), a);
}

static void test_parse_result(void **state) {
  (void)state;
  struct proxy_answer a;
  parse(200, "{\"result\":{\"data\":{\"k\":\"v\"},\"skip_history\":true,\"expire_at\":1900000000}}", &a);
  assert_int_equal(a.outcome, PROXY_RESULT);
  ProtobufCBinaryData d;
  assert_int_equal(proxy_result_data(a.result, &d), 0);
  assert_int_equal(d.len, strlen("{\"k\":\"v\"}"));
  assert_memory_equal(d.data, "{\"k\":\"v\"}", d.len);
  free(d.data);
  assert_true(proxy_result_bool(a.result, "skip_history"));
  assert_false(proxy_result_bool(a.result, "expired"));
  assert_int_equal(proxy_result_expire_at(a.result), 1900000000);
  proxy_answer_cleanup(&a);
  parse(200, "{}", &a); /* no result at all: an empty one */
  assert_int_equal(a.outcome, PROXY_RESULT);
  assert_int_equal(proxy_result_data(a.result, &d), 1);
  proxy_answer_cleanup(&a);
  parse(200, "{\"result\":{\"b64data\":\"aGk=\"}}", &a);
  assert_int_equal(proxy_result_data(a.result, &d), 0);
  assert_memory_equal(d.data, "hi", 2);
  free(d.data);
  proxy_answer_cleanup(&a);
  parse(200, "{\"result\":{\"b64data\":\"!!\"}}", &a);
  assert_int_equal(proxy_result_data(a.result, &d), -1);
  proxy_answer_cleanup(&a);
}

static void test_parse_error_and_disconnect(void **state) {
  (void)state;
  struct proxy_answer a;
  parse(200, "{\"error\":{\"code\":1000,\"message\":\"custom\",\"temporary\":true}}", &a);
  assert_int_equal(a.outcome, PROXY_ERROR);
  assert_int_equal(a.code, 1000);
  assert_string_equal(a.message, "custom");
  assert_true(a.temporary);
  proxy_answer_cleanup(&a);
  parse(200, "{\"disconnect\":{\"code\":4500,\"reason\":\"bye\"}}", &a);
  assert_int_equal(a.outcome, PROXY_DISCONNECT);
  assert_int_equal(a.code, 4500);
  assert_string_equal(a.message, "bye");
  proxy_answer_cleanup(&a);
}

static void test_parse_failures(void **state) {
  (void)state;
  static const struct {
    long status;
    const char *body;
  } cases[] = {
      {500, "{\"result\":{}}"},
      {404, ""},
      {200, ""},
      {200, "<html>"},
      {200, "[]"},
      {200, "{\"result\":[]}"},
      {200, "{\"result\":{},\"result\":{}}"},                    /* duplicate keys */
      {200, "{\"error\":{\"code\":100,\"message\":\"x\"}}"},     /* below 400 */
      {200, "{\"error\":{\"code\":2000,\"message\":\"x\"}}"},    /* above 1999 */
      {200, "{\"error\":{\"code\":\"1000\"}}"},                  /* not an integer */
      {200, "{\"error\":{\"code\":1000,\"message\":5}}"},        /* message not a string */
      {200, "{\"disconnect\":{\"code\":3000,\"reason\":\"\"}}"}, /* below 4000 */
      {200, "{\"disconnect\":{\"code\":5000}}"},
      {200, "{\"disconnect\":true}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct proxy_answer a;
    parse(cases[i].status, cases[i].body, &a);
    if (a.outcome != PROXY_FAILED) fail_msg("case %zu (%s) was accepted", i, cases[i].body);
    assert_true(a.why[0] != '\0');
    assert_null(a.result);
    proxy_answer_cleanup(&a);
  }
}

static void test_connect_claims(void **state) {
  (void)state;
  struct proxy_answer a;
  parse(200,
        "{\"result\":{\"user\":\"u7\",\"expire_at\":1900000000,\"info\":{\"n\":1},\"channels\":[\"a\"],"
        "\"subs\":{\"b\":{\"data\":{\"d\":2},\"override\":{\"presence\":{\"value\":true}}}}}}",
        &a);
  assert_int_equal(a.outcome, PROXY_RESULT);
  struct auth_connection_claims c;
  char why[128];
  assert_int_equal(proxy_connect_claims(a.result, &c, why, sizeof why), AUTH_OK);
  assert_string_equal(c.user, "u7");
  assert_int_equal(auth_connection_expires_at(&c), 1900000000);
  assert_memory_equal(c.info.data, "{\"n\":1}", c.info.len);
  assert_int_equal(c.n_channels, 1);
  assert_string_equal(c.channels[0], "a");
  assert_int_equal(c.n_subs, 1);
  assert_string_equal(c.subs[0].channel, "b");
  assert_int_equal(c.subs[0].opts.override.presence, AUTH_OVERRIDE_TRUE);
  auth_connection_claims_cleanup(&c);
  proxy_answer_cleanup(&a);
  parse(200, "{\"result\":{\"user\":5}}", &a);
  assert_int_equal(proxy_connect_claims(a.result, &c, why, sizeof why), AUTH_INVALID);
  proxy_answer_cleanup(&a);
  parse(200, "{\"result\":{\"channels\":\"a\"}}", &a);
  assert_int_equal(proxy_connect_claims(a.result, &c, why, sizeof why), AUTH_INVALID);
  proxy_answer_cleanup(&a);
  parse(200, "{\"result\":{}}", &a); /* anonymous */
  assert_int_equal(proxy_connect_claims(a.result, &c, why, sizeof why), AUTH_OK);
  assert_string_equal(c.user, "");
  auth_connection_claims_cleanup(&c);
  proxy_answer_cleanup(&a);
}

static void test_subscribe_claims(void **state) {
  (void)state;
  struct proxy_answer a;
  parse(200, "{\"result\":{\"info\":{\"i\":1},\"b64data\":\"aGk=\",\"expire_at\":1900000000}}", &a);
  struct auth_subscription_claims c;
  char why[128];
  assert_int_equal(proxy_subscribe_claims(a.result, "ns:x", "u1", &c, why, sizeof why), AUTH_OK);
  assert_string_equal(c.channel, "ns:x");
  assert_string_equal(c.user, "u1");
  assert_memory_equal(c.opts.info.data, "{\"i\":1}", c.opts.info.len);
  assert_memory_equal(c.opts.data.data, "hi", 2);
  assert_int_equal(auth_subscription_expires_at(&c), 1900000000);
  auth_subscription_claims_cleanup(&c);
  proxy_answer_cleanup(&a);
}

static void test_kind_names(void **state) {
  (void)state;
  static const char *const names[] = {"connect", "refresh", "subscribe", "publish", "sub_refresh", "rpc"};
  for (int k = 0; k < PROXY_KIND_COUNT; k++)
    assert_string_equal(proxy_kind_name((enum proxy_kind)k), names[k]);
  assert_null(proxy_request_body(PROXY_KIND_COUNT, &(struct proxy_call){0}));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_request),
      cmocka_unit_test(test_request_fields_per_kind),
      cmocka_unit_test(test_binary_data),
      cmocka_unit_test(test_parse_result),
      cmocka_unit_test(test_parse_error_and_disconnect),
      cmocka_unit_test(test_parse_failures),
      cmocka_unit_test(test_connect_claims),
      cmocka_unit_test(test_subscribe_claims),
      cmocka_unit_test(test_kind_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
