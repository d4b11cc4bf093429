/* test_codec_uni: the frames the unidirectional codecs make of each kind of reply: the connect reply as
 * the connect push, a publication push bare, the empty reply (a ping) as {}, a Disconnect push, each in
 * its framing (a line, an SSE event, a WebSocket text message; a Close frame after a Disconnect). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "codec_uni.h"

/* Encodes REPLY with CODEC and checks the frame is exactly EXPECTED[0..LEN). */
static void assert_frame(const struct codec *codec, const Protocol__Reply *reply, const void *expected,
                         size_t len) {
  struct frame *f = NULL;
  assert_int_equal(codec->encode_reply(reply, &f), 0);
  assert_non_null(f);
  assert_int_equal(f->len, len);
  assert_memory_equal(f->data, expected, len);
  frame_unref(f);
}

static void assert_text(const struct codec *codec, const Protocol__Reply *reply, const char *expected) {
  assert_frame(codec, reply, expected, strlen(expected));
}

static void test_registered_kinds(void **state) {
  (void)state;
  assert_ptr_equal(codec_get(CODEC_UNI_HTTP_STREAM), &codec_uni_http_stream);
  assert_ptr_equal(codec_get(CODEC_UNI_SSE), &codec_uni_sse);
  assert_ptr_equal(codec_get(CODEC_UNI_WS), &codec_uni_ws);
  for (int k = CODEC_UNI_HTTP_STREAM; k <= CODEC_UNI_WS; k++) assert_string_equal(codec_get(k)->name, "json");
}

static void test_connect_reply_is_the_connect_push(void **state) {
  (void)state;
  Protocol__ConnectResult res = PROTOCOL__CONNECT_RESULT__INIT;
  res.client = "c1";
  res.version = "1.0";
  res.ping = 25;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  reply.id = 1;
  reply.connect = &res;
  assert_text(&codec_uni_http_stream, &reply,
              "{\"connect\":{\"client\":\"c1\",\"version\":\"1.0\",\"ping\":25}}\n");
  assert_text(&codec_uni_sse, &reply,
              "data: {\"connect\":{\"client\":\"c1\",\"version\":\"1.0\",\"ping\":25}}\n\n");
}

static void test_publication_push_is_bare(void **state) {
  (void)state;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data.data = (uint8_t *)"{\"a\":1}";
  pub.data.len = 7;
  pub.offset = 3;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "news";
  push.pub = &pub;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  reply.push = &push;
  const char *json = "{\"channel\":\"news\",\"pub\":{\"data\":{\"a\":1},\"offset\":3}}";
  char line[128];
  snprintf(line, sizeof line, "%s\n", json);
  assert_text(&codec_uni_http_stream, &reply, line);
  uint8_t ws[128] = {0x81, (uint8_t)strlen(json)};
  memcpy(ws + 2, json, strlen(json));
  assert_frame(&codec_uni_ws, &reply, ws, 2 + strlen(json));
}

static void test_ping_is_empty_object(void **state) {
  (void)state;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  assert_text(&codec_uni_http_stream, &reply, "{}\n");
  assert_text(&codec_uni_sse, &reply, "data: {}\n\n");
  const uint8_t ws[] = {0x81, 2, '{', '}'};
  assert_frame(&codec_uni_ws, &reply, ws, sizeof ws);
}

static void test_disconnect_push_and_close_frame(void **state) {
  (void)state;
  Protocol__Disconnect d = PROTOCOL__DISCONNECT__INIT;
  d.code = 3001;
  d.reason = "shutdown";
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.disconnect = &d;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  reply.push = &push;
  const char *json = "{\"disconnect\":{\"code\":3001,\"reason\":\"shutdown\"}}";
  char line[128];
  snprintf(line, sizeof line, "%s\n", json);
  assert_text(&codec_uni_http_stream, &reply, line);
  size_t n = strlen(json);
  uint8_t ws[128] = {0x81, (uint8_t)n};
  memcpy(ws + 2, json, n);
  const uint8_t close[] = {0x88, 10, 3001 >> 8, 3001 & 0xff, 's', 'h', 'u', 't', 'd', 'o', 'w', 'n'};
  memcpy(ws + 2 + n, close, sizeof close);
  assert_frame(&codec_uni_ws, &reply, ws, 2 + n + sizeof close);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registered_kinds),
      cmocka_unit_test(test_connect_reply_is_the_connect_push),
      cmocka_unit_test(test_publication_push_is_bare),
      cmocka_unit_test(test_ping_is_empty_object),
      cmocka_unit_test(test_disconnect_push_and_close_frame),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
