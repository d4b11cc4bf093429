/* Unit tests for the decoders of client bytes under allocation failure (issue 14): for each decoder
 * (the JSON and protobuf command streams, both /emulation envelopes) and a valid input, the first,
 * second, ... allocation made while decoding fails in turn, until a run makes no allocation fail. Each
 * run must end in success or in -CODEC_ENOMEM: a valid message reported as malformed would make
 * streamd tell a well-behaved client "bad request" (a terminal disconnect, a 400) when it only ran out
 * of memory for a moment. Likewise for encoding a reply. The executable's own malloc, calloc and realloc
 * stand in front of libc's (as any program's may), failing only while a countdown is armed; not in an
 * ASan build, where the tests skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "frame.h"

static long countdown = -1; /* allocations to let through before the one that fails; -1: none fails */
static bool failed;         /* the armed failure happened */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* ASan and TSan replace malloc themselves: no allocator of ours in front of theirs, and the tests skip. */
#define SKIP_UNDER_ASAN() skip()
#else
#define SKIP_UNDER_ASAN() (void)0
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

static bool fail_now(size_t size) {
  if (countdown < 0 || size == 0) return false;
  if (countdown-- > 0) return false;
  failed = true;
  return true;
}

void *malloc(size_t size) { return fail_now(size) ? NULL : __libc_malloc(size); }
void *calloc(size_t n, size_t size) { return fail_now(n * size) ? NULL : __libc_calloc(n, size); }
void *realloc(void *ptr, size_t size) { return fail_now(size) ? NULL : __libc_realloc(ptr, size); }
#endif

enum { MAX_COMMAND = 65536, MAX_RUNS = 10000 };

/* One decode of INPUT by KIND's decoder (commands or an emulation envelope); frees what it made. */
typedef int (*decode_fn)(enum codec_kind kind, const uint8_t *input, size_t len);

static int decode_commands(enum codec_kind kind, const uint8_t *input, size_t len) {
  const uint8_t *pos = input, *end = input + len;
  for (;;) {
    Protocol__Command *cmd = NULL;
    int rc = codec_get(kind)->next_command(&pos, end, MAX_COMMAND, &cmd);
    if (rc != 0) return rc == 1 ? 0 : rc;
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
  }
}

static int decode_emulation(enum codec_kind kind, const uint8_t *input, size_t len) {
  Protocol__EmulationRequest *er = NULL;
  int rc = codec_get(kind)->decode_emulation(input, len, &er);
  if (rc == 0) protobuf_c_message_free_unpacked(&er->base, NULL);
  return rc;
}

/* Fails each allocation of the decode in turn; every outcome must be success or -CODEC_ENOMEM. */
static void sweep(const char *what, decode_fn decode, enum codec_kind kind, const uint8_t *input,
                  size_t len) {
  assert_int_equal(decode(kind, input, len), 0); /* the input is valid */
  for (long k = 0; k < MAX_RUNS; k++) {
    failed = false;
    countdown = k;
    int rc = decode(kind, input, len);
    countdown = -1;
    if (!failed) {
      assert_int_equal(rc, 0);
      return;
    }
    if (rc != 0 && rc != -CODEC_ENOMEM)
      fail_msg("%s: allocation %ld failed and the decoder said %d (%s), not out of memory", what, k, rc,
               codec_strerror(rc));
  }
  fail_msg("%s: more than %d allocations", what, MAX_RUNS);
}

static const char json_cmds[] =
    "{\"id\":1,\"connect\":{\"token\":\"t\",\"data\":{\"a\":[1,2.5,\"x\"]},\"name\":\"n\",\"subs\":"
    "{\"news\":{\"recover\":true,\"offset\":3,\"epoch\":\"e\"}},\"headers\":{\"h\":\"v\"}}}\n"
    "{\"id\":2,\"subscribe\":{\"channel\":\"chat\",\"data\":{\"k\":null}}}\n"
    "{\"id\":3,\"publish\":{\"channel\":\"chat\",\"data\":{\"text\":\"h\\u00e9llo\",\"n\":[{},[]]}}}\n"
    "{\"id\":4,\"history\":{\"channel\":\"chat\",\"limit\":10,\"since\":{\"offset\":1,\"epoch\":\"e\"}}}\n";

/* The same commands, packed by protobuf-c (each behind its varint length). */
static size_t pb_cmds(uint8_t *out, size_t cap) {
  Protocol__SubscribeRequest news = PROTOCOL__SUBSCRIBE_REQUEST__INIT;
  news.recover = true;
  news.offset = 3;
  news.epoch = "e";
  Protocol__ConnectRequest__SubsEntry entry = PROTOCOL__CONNECT_REQUEST__SUBS_ENTRY__INIT;
  entry.key = "news";
  entry.value = &news;
  Protocol__ConnectRequest__SubsEntry *entries[] = {&entry};
  Protocol__ConnectRequest connect = PROTOCOL__CONNECT_REQUEST__INIT;
  connect.token = "t";
  connect.name = "n";
  connect.data = (ProtobufCBinaryData){7, (uint8_t *)"{\"a\":1}"};
  connect.n_subs = 1;
  connect.subs = entries;
  Protocol__PublishRequest publish = PROTOCOL__PUBLISH_REQUEST__INIT;
  publish.channel = "chat";
  publish.data = (ProtobufCBinaryData){4, (uint8_t *)"\"hi\""};
  Protocol__Command c1 = PROTOCOL__COMMAND__INIT, c2 = PROTOCOL__COMMAND__INIT;
  c1.id = 1;
  c1.connect = &connect;
  c2.id = 2;
  c2.publish = &publish;
  const Protocol__Command *cmds[] = {&c1, &c2};
  size_t len = 0;
  for (size_t i = 0; i < 2; i++) {
    size_t n = protocol__command__get_packed_size(cmds[i]);
    assert_true(n < 128 && len + 1 + n <= cap);
    out[len++] = (uint8_t)n;
    len += protocol__command__pack(cmds[i], out + len);
  }
  return len;
}

static void test_json_commands(void **state) {
  (void)state;
  SKIP_UNDER_ASAN();
  sweep("json commands", decode_commands, CODEC_JSON, (const uint8_t *)json_cmds, sizeof json_cmds - 1);
}

static void test_pb_commands(void **state) {
  (void)state;
  SKIP_UNDER_ASAN();
  uint8_t buf[512];
  size_t len = pb_cmds(buf, sizeof buf);
  sweep("protobuf commands", decode_commands, CODEC_PROTOBUF, buf, len);
}

static void test_json_emulation(void **state) {
  (void)state;
  SKIP_UNDER_ASAN();
  static const char body[] =
      "{\"node\":\"n1\",\"session\":\"s1\",\"data\":\"{\\\"id\\\":2,\\\"publish\\\":{\\\"channel\\\":"
      "\\\"c\\\","
      "\\\"data\\\":{\\\"x\\\":1}}}\"}";
  sweep("json emulation", decode_emulation, CODEC_JSON, (const uint8_t *)body, sizeof body - 1);
}

static void test_pb_emulation(void **state) {
  (void)state;
  SKIP_UNDER_ASAN();
  uint8_t cmds[512], body[1024];
  Protocol__EmulationRequest er = PROTOCOL__EMULATION_REQUEST__INIT;
  er.node = "n1";
  er.session = "s1";
  er.data = (ProtobufCBinaryData){pb_cmds(cmds, sizeof cmds), cmds};
  assert_true(protocol__emulation_request__get_packed_size(&er) <= sizeof body);
  size_t len = protocol__emulation_request__pack(&er, body);
  sweep("protobuf emulation", decode_emulation, CODEC_PROTOBUF, body, len);
}

/* Encoding a reply (the publication push a subscriber gets): out of memory is CODEC_ENOMEM, never
 * CODEC_EDATA, which would end the session with the terminal 3506 as if its protocol could not carry
 * the data. The channel and the publisher's name are not ASCII, so jansson escapes them. */
static void test_encode_reply(void **state) {
  (void)state;
  SKIP_UNDER_ASAN();
  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT;
  info.user = "us\xc3\xa9r \"q\"";
  info.client = "c1";
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = (ProtobufCBinaryData){24, (uint8_t *)"{\"text\":\"h\xc3\xa9\",\"n\":[1,2]}"};
  pub.info = &info;
  pub.offset = 7;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "caf\xc3\xa9";
  push.pub = &pub;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  reply.push = &push;
  for (int k = 0; k < CODEC_COUNT; k++) {
    struct frame *f = NULL;
    assert_int_equal(codec_get((enum codec_kind)k)->encode_reply(&reply, &f), 0);
    frame_unref(f);
    for (long n = 0; n < MAX_RUNS; n++) {
      failed = false;
      countdown = n;
      f = NULL;
      int rc = codec_get((enum codec_kind)k)->encode_reply(&reply, &f);
      countdown = -1;
      if (rc == 0) frame_unref(f);
      if (!failed) break;
      if (rc != 0 && rc != -CODEC_ENOMEM)
        fail_msg("%s reply: allocation %ld failed and the encoder said %d (%s), not out of memory",
                 codec_get((enum codec_kind)k)->name, n, rc, codec_strerror(rc));
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_commands),  cmocka_unit_test(test_pb_commands),
      cmocka_unit_test(test_json_emulation), cmocka_unit_test(test_pb_emulation),
      cmocka_unit_test(test_encode_reply),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
