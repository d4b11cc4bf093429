/* Unit tests for the protobuf codec (codec_pb.c): every byte sequence of PROTOCOL.md Appendix A and the
 * protobuf transcript in TRANSCRIPTS.txt (commands decoded, replies encoded and compared as hex), plus
 * the framing errors: truncated and overlong varints, oversized lengths, wrong wire types, bodies that
 * end inside a message, unknown fields, several commands in one stream; and the pb_guard limits every
 * decoder of client bytes goes through: nesting depth (a 15,000-deep FilterNode must be refused, not
 * overflow the stack), field and sub-message counts, a singular sub-message given twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_pb.h"
#include "pb_guard.h"

#define MAX_COMMAND 65536
#define CID "9acac656-5a4b-4e4f-a203-6c0781983f5b"
#define CID_HEX "39616361633635362d356134622d346534662d613230332d366330373831393833663562"
#define SESSION_HEX "61303164626561372d643232302d346563352d623739332d343465656462356530333432"
#define NODE_HEX "34373832393863382d653165322d343737662d623361632d306134323636653834653738"

/* ---- helpers ---- */

struct bytes {
  uint8_t data[512];
  size_t len;
};

/* Parses hex digits (spaces ignored) into a byte buffer. */
static struct bytes hex(const char *text) {
  struct bytes b = {{0}, 0};
  for (const char *p = text; *p;) {
    if (*p == ' ') {
      p++;
      continue;
    }
    unsigned v;
    assert_int_equal(sscanf(p, "%2x", &v), 1);
    assert_true(b.len < sizeof b.data);
    b.data[b.len++] = (uint8_t)v;
    p += 2;
  }
  return b;
}

static void cmd_free(Protocol__Command *cmd) { protobuf_c_message_free_unpacked(&cmd->base, NULL); }

/* Decodes the stream HEX, which must hold exactly one command, and checks that packing the command
 * again gives the same bytes (prefix excluded). */
static Protocol__Command *decode_one(const char *hex_text) {
  struct bytes b = hex(hex_text);
  const uint8_t *p = b.data, *end = b.data + b.len;
  Protocol__Command *cmd = NULL, *none = NULL;
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_ptr_equal(p, end);
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &none), 1);
  assert_null(none);
  uint8_t again[512];
  size_t n = protocol__command__pack(cmd, again);
  assert_int_equal(n + 1, b.len); /* all test commands are < 128 bytes: one prefix byte */
  assert_memory_equal(again, b.data + 1, n);
  return cmd;
}

/* Returns next_command's verdict on the stream HEX with limit MAX, checking errors do not advance. */
static int decode_rc(const char *hex_text, size_t max) {
  struct bytes b = hex(hex_text);
  const uint8_t *p = b.data;
  Protocol__Command *cmd = NULL;
  int rc = codec_pb.next_command(&p, b.data + b.len, max, &cmd);
  if (rc == 0) cmd_free(cmd);
  if (rc < 0) assert_ptr_equal(p, b.data);
  return rc;
}

static void assert_reply_hex(const Protocol__Reply *r, const char *expected_hex) {
  struct bytes want = hex(expected_hex);
  struct frame *f = NULL;
  assert_int_equal(codec_pb.encode_reply(r, &f), 0);
  assert_non_null(f);
  assert_int_equal(f->len, want.len);
  assert_memory_equal(f->data, want.data, want.len);
  frame_unref(f);
}

static ProtobufCBinaryData raw(const char *text) {
  return (ProtobufCBinaryData){strlen(text), (uint8_t *)text};
}

static void assert_bytes(ProtobufCBinaryData bd, const char *expected) {
  assert_int_equal(bd.len, strlen(expected));
  assert_memory_equal(bd.data, expected, bd.len);
}

/* ---- large messages for the limit tests ---- */

/* A growable byte buffer (assert-checked allocations). */
struct buf {
  uint8_t *data;
  size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2;
    b->data = realloc(b->data, b->cap);
    assert_non_null(b->data);
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, n++;
  return n;
}

static void put_varint(struct buf *b, uint64_t v) {
  uint8_t out[10];
  size_t n = 0;
  for (; v >= 0x80; v >>= 7) out[n++] = (uint8_t)(v | 0x80);
  out[n++] = (uint8_t)v;
  put(b, out, n);
}

/* A length-delimited field header: tag (field FIELD, wire type 2) and LEN. */
static void put_header(struct buf *b, unsigned field, size_t len) {
  put_varint(b, field << 3 | 2);
  put_varint(b, len);
}

/* The stream bytes (uvarint length prefix included) of Command{id 1, subscribe{channel "x", tf}} where
 * tf is LEVELS FilterNodes nested through `nodes` (tf = 13, nodes = 6): the innermost is at depth
 * LEVELS + 1 below the Command. Built outside-in from precomputed lengths: linear, not quadratic. */
static struct buf deep_subscribe(size_t levels) {
  size_t *inner = malloc(levels * sizeof *inner); /* inner[k]: length of the k-th FilterNode from inside */
  assert_non_null(inner);
  inner[0] = 0;
  for (size_t k = 1; k < levels; k++) inner[k] = 1 + varint_len(inner[k - 1]) + inner[k - 1];
  size_t tf = inner[levels - 1];
  size_t sub = 3 + 1 + varint_len(tf) + tf;
  size_t cmd = 2 + 1 + varint_len(sub) + sub;
  struct buf b = {NULL, 0, 0};
  put_varint(&b, cmd);
  put(&b, "\x08\x01", 2);
  put_header(&b, 5, sub);
  put(&b, "\x0a\x01x", 3);
  put_header(&b, 13, tf);
  for (size_t k = levels - 1; k > 0; k--) put_header(&b, 6, inner[k - 1]);
  free(inner);
  return b;
}

/* next_command's verdict on the stream in B (freed), checking that an error does not advance. */
static int buf_rc(struct buf *b) {
  const uint8_t *p = b->data;
  Protocol__Command *cmd = NULL;
  int rc = codec_pb.next_command(&p, b->data + b->len, MAX_COMMAND, &cmd);
  if (rc == 0) cmd_free(cmd);
  if (rc < 0) assert_ptr_equal(p, b->data);
  free(b->data);
  return rc;
}

/* The stream bytes of a Command whose body is COUNT copies of the LEN bytes at FIELD (prefix included),
 * optionally wrapped as subscribe{tf{...}} (WRAP). */
static struct buf repeated(const char *field, size_t len, size_t count, bool wrap) {
  size_t body = len * count;
  size_t tf = 1 + varint_len(body) + body, sub = 1 + varint_len(tf) + tf;
  struct buf b = {NULL, 0, 0};
  put_varint(&b, wrap ? sub : body);
  if (wrap) put_header(&b, 5, tf), put_header(&b, 13, body);
  for (size_t i = 0; i < count; i++) put(&b, field, len);
  return b;
}

/* ---- commands (Appendix A and the protobuf transcript) ---- */

static void test_decode_connect_subscribe_pong(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one("0d 08 01 22 09 0a 03 74 6f 6b 22 02 6a 73");
  assert_int_equal(cmd->id, 1);
  assert_string_equal(cmd->connect->token, "tok");
  assert_string_equal(cmd->connect->name, "js");
  cmd_free(cmd);

  cmd = decode_one("0c 08 02 2a 08 0a 04 6e 65 77 73 70 01");
  assert_int_equal(cmd->id, 2);
  assert_string_equal(cmd->subscribe->channel, "news");
  assert_int_equal(cmd->subscribe->flag, 1);
  cmd_free(cmd);

  cmd = decode_one("00");
  assert_int_equal(cmd->id, 0);
  assert_null(cmd->connect);
  assert_null(cmd->send);
  cmd_free(cmd);
}

static void test_decode_transcript_commands(void **state) {
  (void)state;
  Protocol__Command *cmd =
      decode_one("2208033a1e0a046e65777312167b2274657874223a2266726f6d20636c69656e74227d");
  assert_int_equal(cmd->id, 3);
  assert_string_equal(cmd->publish->channel, "news");
  assert_bytes(cmd->publish->data, "{\"text\":\"from client\"}");
  cmd_free(cmd);

  cmd = decode_one("1308046a0f0a077b2261223a317d12046563686f");
  assert_string_equal(cmd->rpc->method, "echo");
  assert_bytes(cmd->rpc->data, "{\"a\":1}");
  cmd_free(cmd);

  cmd = decode_one("0a080642060a046e657773");
  assert_string_equal(cmd->presence->channel, "news");
  cmd_free(cmd);

  cmd = decode_one("0a08074a060a046e657773");
  assert_string_equal(cmd->presence_stats->channel, "news");
  cmd_free(cmd);

  cmd = decode_one("0c080852080a046e657773380a");
  assert_int_equal(cmd->id, 8);
  assert_int_equal(cmd->history->limit, 10);
  cmd_free(cmd);

  cmd = decode_one("1562130a117b2266697265223a22666f72676574227d");
  assert_int_equal(cmd->id, 0);
  assert_bytes(cmd->send->data, "{\"fire\":\"forget\"}");
  cmd_free(cmd);
}

static void test_decode_emulation(void **state) {
  (void)state;
  struct bytes b = hex("0a24" NODE_HEX "1224" SESSION_HEX "1a0d0c08022a080a046e6577737001");
  Protocol__EmulationRequest *req = NULL;
  assert_int_equal(codec_pb.decode_emulation(b.data, b.len, &req), 0);
  assert_string_equal(req->node, "478298c8-e1e2-477f-b3ac-0a4266e84e78");
  assert_string_equal(req->session, "a01dbea7-d220-4ec5-b793-44eedb5e0342");
  const uint8_t *p = req->data.data, *end = p + req->data.len;
  Protocol__Command *cmd;
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_string_equal(cmd->subscribe->channel, "news");
  cmd_free(cmd);
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 1);
  protocol__emulation_request__free_unpacked(req, NULL);

  b = hex("0a24" NODE_HEX "1224" SESSION_HEX "1a0100"); /* Appendix A: data = pong */
  assert_int_equal(codec_pb.decode_emulation(b.data, b.len, &req), 0);
  assert_int_equal(req->data.len, 1);
  assert_int_equal(req->data.data[0], 0);
  protocol__emulation_request__free_unpacked(req, NULL);

  req = NULL;
  b = hex("0a2461"); /* string longer than the body */
  assert_int_equal(codec_pb.decode_emulation(b.data, b.len, &req), -CODEC_EMALFORMED);
  b = hex("ff");
  assert_int_equal(codec_pb.decode_emulation(b.data, b.len, &req), -CODEC_EMALFORMED);
  b = hex("08 01"); /* node as a varint: wrong wire type */
  assert_int_equal(codec_pb.decode_emulation(b.data, b.len, &req), -CODEC_EMALFORMED);
  assert_null(req);
}

/* ---- replies (Appendix A and the protobuf transcript) ---- */

static void test_encode_connect_reply(void **state) {
  (void)state;
  Protocol__ConnectResult res = PROTOCOL__CONNECT_RESULT__INIT;
  res.client = CID;
  res.version = "0.0.1";
  res.ping = 2;
  res.pong = 1;
  res.session = "a01dbea7-d220-4ec5-b793-44eedb5e0342";
  res.node = "478298c8-e1e2-477f-b3ac-0a4266e84e78";
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 1;
  r.connect = &res;
  assert_reply_hex(&r,
                   "8101 0801 2a7d 0a24" CID_HEX "1205302e302e31 3802 4001 4a24" SESSION_HEX "5224" NODE_HEX);
}

static void test_encode_empty_results(void **state) {
  (void)state;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  assert_reply_hex(&r, "00"); /* ping */

  Protocol__SubscribeResult sub = PROTOCOL__SUBSCRIBE_RESULT__INIT;
  r.id = 2;
  r.subscribe = &sub;
  assert_reply_hex(&r, "04 08 02 32 00");

  Protocol__PublishResult pub = PROTOCOL__PUBLISH_RESULT__INIT;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 3;
  r.publish = &pub;
  assert_reply_hex(&r, "04 08 03 42 00");
}

static void test_encode_error_rpc(void **state) {
  (void)state;
  Protocol__Error err = PROTOCOL__ERROR__INIT;
  err.code = 103;
  err.message = "permission denied";
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 5;
  r.error = &err;
  assert_reply_hex(&r, "19 08 05 12 15 08 67 12 11 70 65 72 6d 69 73 73 69 6f 6e 20 64 65 6e 69 65 64");

  Protocol__RPCResult rpc = PROTOCOL__RPCRESULT__INIT;
  rpc.data = raw("{\"a\":1}");
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 4;
  r.rpc = &rpc;
  assert_reply_hex(&r, "0d 08 04 6a 09 0a 07 7b 22 61 22 3a 31 7d");
}

static void test_encode_pushes(void **state) {
  (void)state;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = raw("{\"text\":\"hello\"}");
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "news";
  push.pub = &pub;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.push = &push;
  assert_reply_hex(&r,
                   "1c 22 1a 12 04 6e 65 77 73 22 12 22 10 7b 22 74 65 78 74 22 3a 22 68 65 6c 6c 6f 22 7d");

  Protocol__Disconnect d = PROTOCOL__DISCONNECT__INIT;
  d.code = 3503;
  d.reason = "force disconnect";
  push = (Protocol__Push)PROTOCOL__PUSH__INIT;
  push.disconnect = &d;
  assert_reply_hex(&r, "19 22 17 5a 15 08 af 1b 12 10 66 6f 72 63 65 20 64 69 73 63 6f 6e 6e 65 63 74");
}

static void test_encode_presence_history(void **state) {
  (void)state;
  Protocol__PresenceStatsResult ps = PROTOCOL__PRESENCE_STATS_RESULT__INIT;
  ps.num_clients = 1;
  ps.num_users = 1;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 7;
  r.presence_stats = &ps;
  assert_reply_hex(&r, "08 08 07 52 04 08 01 10 01");

  Protocol__Publication p = PROTOCOL__PUBLICATION__INIT;
  p.data = raw("{\"n\":1}");
  p.offset = 7;
  Protocol__Publication *pubs[] = {&p};
  Protocol__HistoryResult h = PROTOCOL__HISTORY_RESULT__INIT;
  h.n_publications = 1;
  h.publications = pubs;
  h.epoch = "abc";
  h.offset = 7;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 8;
  r.history = &h;
  assert_reply_hex(&r, "18 08 08 5a 14 0a 0b 22 07 7b 22 6e 22 3a 31 7d 30 07 12 03 61 62 63 18 07");

  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT;
  info.user = "u1";
  info.client = CID;
  Protocol__PresenceResult__PresenceEntry e = PROTOCOL__PRESENCE_RESULT__PRESENCE_ENTRY__INIT;
  e.key = CID;
  e.value = &info;
  Protocol__PresenceResult__PresenceEntry *entries[] = {&e};
  Protocol__PresenceResult pr = PROTOCOL__PRESENCE_RESULT__INIT;
  pr.n_presence = 1;
  pr.presence = entries;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 6;
  r.presence = &pr;
  assert_reply_hex(&r, "58 0806 4a54 0a52 0a24" CID_HEX "122a 0a027531 1224" CID_HEX);
}

static void test_encode_long_prefix(void **state) {
  (void)state;
  static char big[300];
  memset(big, 'x', sizeof big - 1);
  Protocol__Error err = PROTOCOL__ERROR__INIT;
  err.message = big; /* 299 bytes: 3 + 299 + 3 = 305 = 0xb1 0x02 */
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.error = &err;
  struct frame *f = NULL;
  assert_int_equal(codec_pb.encode_reply(&r, &f), 0);
  assert_int_equal(f->len, 2 + 305);
  assert_int_equal(f->data[0], 0xb1);
  assert_int_equal(f->data[1], 0x02);
  Protocol__Reply *back = protocol__reply__unpack(NULL, f->len - 2, f->data + 2);
  assert_non_null(back);
  assert_string_equal(back->error->message, big);
  protocol__reply__free_unpacked(back, NULL);
  frame_unref(f);
}

/* ---- framing errors and streams ---- */

static void test_bad_varints(void **state) {
  (void)state;
  assert_int_equal(decode_rc("80", MAX_COMMAND), -CODEC_EMALFORMED); /* stream ends in varint */
  assert_int_equal(decode_rc("ff ff", MAX_COMMAND), -CODEC_EMALFORMED);
  assert_int_equal(decode_rc("ff ff ff ff ff ff ff ff ff ff 01", MAX_COMMAND),
                   -CODEC_EMALFORMED); /* 11 bytes */
  assert_int_equal(decode_rc("ff ff ff ff ff ff ff ff ff 02", MAX_COMMAND),
                   -CODEC_EMALFORMED);                                                       /* > 64 bits */
  assert_int_equal(decode_rc("ff ff ff ff ff ff ff ff ff 01", MAX_COMMAND), -CODEC_ETOOBIG); /* 2^64-1 */
  assert_int_equal(decode_rc("80 00", MAX_COMMAND), 0); /* non-minimal zero length: an empty command */
}

static void test_lengths(void **state) {
  (void)state;
  assert_int_equal(decode_rc("0b 08 02 2a 07 0a 04 6e 65 77 73", 10), -CODEC_ETOOBIG);
  assert_int_equal(decode_rc("0b 08 02 2a 07 0a 04 6e 65 77 73 70", 11), -CODEC_EMALFORMED);
  assert_int_equal(decode_rc("0c 08 02 2a 08 0a 04 6e 65 77 73 70 01", 12), 0);
  assert_int_equal(decode_rc("81 80 04", MAX_COMMAND), -CODEC_ETOOBIG);          /* 65537 */
  assert_int_equal(decode_rc("05 08 01", MAX_COMMAND), -CODEC_EMALFORMED);       /* body ends early */
  assert_int_equal(decode_rc("04 08 01 22 05", MAX_COMMAND), -CODEC_EMALFORMED); /* inside a sub-message */
  assert_int_equal(decode_rc("06 08 01 22 03 0a 05 61", MAX_COMMAND), -CODEC_EMALFORMED); /* nested string */
  assert_int_equal(decode_rc("01 08", MAX_COMMAND), -CODEC_EMALFORMED); /* tag without value */
}

static void test_wire_types(void **state) {
  (void)state;
  assert_int_equal(decode_rc("03 0a 01 00", MAX_COMMAND), -CODEC_EMALFORMED); /* id as length-delimited */
  assert_int_equal(decode_rc("02 20 01", MAX_COMMAND), -CODEC_EMALFORMED);    /* connect as a varint */
  assert_int_equal(decode_rc("02 0f 01", MAX_COMMAND), -CODEC_EMALFORMED);    /* wire type 7 */
  assert_int_equal(decode_rc("02 00 01", MAX_COMMAND), -CODEC_EMALFORMED);    /* field number 0 */
}

static void test_unknown_fields(void **state) {
  (void)state;
  /* id = 7, unknown varint field 31, reserved field 2 as bytes, unknown field inside subscribe */
  struct bytes b = hex("0f 08 07 f8 01 05 12 02 61 62 2a 04 0a 00 20 09");
  const uint8_t *p = b.data;
  Protocol__Command *cmd = NULL;
  assert_int_equal(codec_pb.next_command(&p, b.data + b.len, MAX_COMMAND, &cmd), 0);
  assert_int_equal(cmd->id, 7);
  assert_non_null(cmd->subscribe);
  assert_string_equal(cmd->subscribe->channel, "");
  assert_null(cmd->connect);
  cmd_free(cmd);
}

static void test_stream_of_commands(void **state) {
  (void)state;
  struct bytes b =
      hex("0d 08 01 22 09 0a 03 74 6f 6b 22 02 6a 73 0c 08 02 2a 08 0a 04 6e 65 77 73 70 01 00 "
          "04 08 03 3a 00 05");
  const uint8_t *p = b.data, *end = b.data + b.len;
  Protocol__Command *cmd;
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_non_null(cmd->connect);
  cmd_free(cmd);
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_string_equal(cmd->subscribe->channel, "news");
  cmd_free(cmd);
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 0); /* pong */
  assert_int_equal(cmd->id, 0);
  cmd_free(cmd);
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_int_equal(cmd->id, 3);
  assert_non_null(cmd->publish);
  cmd_free(cmd);
  const uint8_t *last = p; /* a trailing "05" announces 5 bytes that never come */
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), -CODEC_EMALFORMED);
  assert_ptr_equal(p, last);
  p = end;
  assert_int_equal(codec_pb.next_command(&p, end, MAX_COMMAND, &cmd), 1);
}

static void test_round_trip_maps(void **state) {
  (void)state;
  Protocol__Publication__TagsEntry t = PROTOCOL__PUBLICATION__TAGS_ENTRY__INIT;
  t.key = "k";
  t.value = "v";
  Protocol__Publication__TagsEntry *tags[] = {&t};
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = raw("\x01\x02 binary is fine here");
  pub.n_tags = 1;
  pub.tags = tags;
  pub.offset = UINT64_MAX;
  pub.score = -2;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "news";
  push.pub = &pub;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.push = &push;
  struct frame *f = NULL;
  assert_int_equal(codec_pb.encode_reply(&r, &f), 0);
  const uint8_t *p = f->data;
  size_t len = f->data[0]; /* < 128 */
  Protocol__Reply *back = protocol__reply__unpack(NULL, len, p + 1);
  assert_non_null(back);
  assert_int_equal(back->push->pub->n_tags, 1);
  assert_string_equal(back->push->pub->tags[0]->value, "v");
  assert_true(back->push->pub->offset == UINT64_MAX);
  assert_int_equal(back->push->pub->score, -2);
  assert_bytes(back->push->pub->data, "\x01\x02 binary is fine here");
  protocol__reply__free_unpacked(back, NULL);
  frame_unref(f);
}

/* The remote crash of issue 10 item 1: 15,000 nested FilterNodes (about 54 KB) overflowed the stack
 * inside protobuf-c's unpack. Up to PB_GUARD_MAX_DEPTH nested messages decode; one more is refused. */
static void test_deep_nesting(void **state) {
  (void)state;
  struct buf b = deep_subscribe(15000);
  assert_true(b.len > 50000 && b.len < MAX_COMMAND);
  assert_int_equal(buf_rc(&b), -CODEC_ELIMIT);

  b = deep_subscribe(PB_GUARD_MAX_DEPTH - 1); /* the innermost FilterNode is at depth 32 */
  const uint8_t *p = b.data;
  Protocol__Command *cmd = NULL;
  assert_int_equal(codec_pb.next_command(&p, b.data + b.len, MAX_COMMAND, &cmd), 0);
  assert_ptr_equal(p, b.data + b.len);
  size_t levels = 0;
  for (const Protocol__FilterNode *n = cmd->subscribe->tf; n; n = n->n_nodes ? n->nodes[0] : NULL) levels++;
  assert_int_equal(levels, PB_GUARD_MAX_DEPTH - 1);
  cmd_free(cmd);
  free(b.data);

  b = deep_subscribe(PB_GUARD_MAX_DEPTH);
  assert_int_equal(buf_rc(&b), -CODEC_ELIMIT);
}

/* The /emulation envelope carries commands as bytes: it decodes, and the deep command in it is refused
 * when the session reads it. The envelope itself is guarded too (a field flood is refused). */
static void test_deep_nesting_emulation(void **state) {
  (void)state;
  struct buf deep = deep_subscribe(15000);
  struct buf body = {NULL, 0, 0};
  put(&body, "\x0a\x01n\x12\x01s", 6);
  put_header(&body, 3, deep.len);
  put(&body, deep.data, deep.len);
  free(deep.data);
  Protocol__EmulationRequest *req = NULL;
  assert_int_equal(codec_pb.decode_emulation(body.data, body.len, &req), 0);
  const uint8_t *p = req->data.data;
  Protocol__Command *cmd = NULL;
  assert_int_equal(codec_pb.next_command(&p, p + req->data.len, MAX_COMMAND, &cmd), -CODEC_ELIMIT);
  assert_null(cmd);
  protocol__emulation_request__free_unpacked(req, NULL);
  free(body.data);

  struct buf flood = repeated("\x20\x00", 2, PB_GUARD_MAX_FIELDS + 1, false); /* unknown field 4 */
  req = NULL;
  assert_int_equal(codec_pb.decode_emulation(flood.data + 3, flood.len - 3, &req), -CODEC_ELIMIT);
  assert_null(req);
  free(flood.data);
}

/* Work limits: fields and sub-messages per command, and a singular sub-message given twice (which
 * protobuf-c merges by copying every repeated field so far: quadratic). */
static void test_field_limits(void **state) {
  (void)state;
  struct buf b = repeated("\x08\x00", 2, PB_GUARD_MAX_FIELDS, false); /* Command.id, over and over */
  assert_int_equal(buf_rc(&b), 0);
  b = repeated("\x08\x00", 2, PB_GUARD_MAX_FIELDS + 1, false);
  assert_int_equal(buf_rc(&b), -CODEC_ELIMIT);

  /* empty FilterNodes in tf.nodes: Command → subscribe → tf are 2 messages of the budget */
  b = repeated("\x32\x00", 2, PB_GUARD_MAX_MESSAGES - 2, true);
  const uint8_t *p = b.data;
  Protocol__Command *cmd = NULL;
  assert_int_equal(codec_pb.next_command(&p, b.data + b.len, MAX_COMMAND, &cmd), 0);
  assert_int_equal(cmd->subscribe->tf->n_nodes, PB_GUARD_MAX_MESSAGES - 2);
  cmd_free(cmd);
  free(b.data);
  b = repeated("\x32\x00", 2, PB_GUARD_MAX_MESSAGES - 1, true);
  assert_int_equal(buf_rc(&b), -CODEC_ELIMIT);

  /* strings in tf.vals are fields but not sub-messages */
  b = repeated("\x2a\x00", 2, PB_GUARD_MAX_MESSAGES * 2, true);
  assert_int_equal(buf_rc(&b), 0);

  /* Command.subscribe twice, and tf twice inside one subscribe */
  assert_int_equal(decode_rc("0a 08 01 2a 02 0a 00 2a 02 0a 00", MAX_COMMAND), -CODEC_ELIMIT);
  assert_int_equal(decode_rc("06 2a 04 6a 00 6a 00", MAX_COMMAND), -CODEC_ELIMIT);
  /* repeated messages (map entries, nodes) may repeat; so may a scalar (the last one wins) */
  assert_int_equal(decode_rc("06 2a 04 6a 02 32 00", MAX_COMMAND), 0);
  assert_int_equal(decode_rc("04 08 01 08 02", MAX_COMMAND), 0);
}

/* Every message type a client can send fits the guard's per-message bookkeeping (one bit per field):
 * a schema change that breaks this fails here, not in production. */
static void check_schema(const ProtobufCMessageDescriptor *desc, unsigned depth) {
  assert_true(desc->n_fields <= PB_GUARD_MAX_SCHEMA_FIELDS);
  if (depth == 8) return; /* recursive types (FilterNode) were checked on the way down */
  for (unsigned i = 0; i < desc->n_fields; i++)
    if (desc->fields[i].type == PROTOBUF_C_TYPE_MESSAGE) check_schema(desc->fields[i].descriptor, depth + 1);
}

static void test_schema_fits_guard(void **state) {
  (void)state;
  check_schema(&protocol__command__descriptor, 0);
  check_schema(&protocol__emulation_request__descriptor, 0);
}

/* Packed scalar arrays count one field per element. client.proto has none yet, so the guard is tried
 * on a hand-made descriptor: message P { repeated uint32 v = 1 [packed]; repeated fixed64 w = 2; }. */
static const ProtobufCFieldDescriptor packed_fields[] = {
    {"v", 1, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_UINT32, 0, 0, NULL, NULL,
     PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL},
    {"w", 2, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_FIXED64, 0, 0, NULL, NULL,
     PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL},
};
static const unsigned packed_by_name[] = {0, 1};
static const ProtobufCIntRange packed_ranges[] = {{1, 0}, {0, 2}};
static const ProtobufCMessageDescriptor packed_desc = {PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                       "t.P",
                                                       "P",
                                                       "T__P",
                                                       "t",
                                                       sizeof(ProtobufCMessage),
                                                       2,
                                                       packed_fields,
                                                       packed_by_name,
                                                       1,
                                                       packed_ranges,
                                                       NULL,
                                                       NULL,
                                                       NULL,
                                                       NULL};

static void test_packed_fields_count(void **state) {
  (void)state;
  for (size_t count = PB_GUARD_MAX_FIELDS - 1; count <= PB_GUARD_MAX_FIELDS; count++) {
    struct buf b = {NULL, 0, 0};
    put_header(&b, 1, 2 * count);
    for (size_t i = 0; i < count; i++) put(&b, "\x81\x01", 2); /* 129: two bytes, one element */
    assert_int_equal(pb_guard_check(&packed_desc, b.data, b.len),
                     count < PB_GUARD_MAX_FIELDS ? 0 : -CODEC_ELIMIT);
    free(b.data);
    b = (struct buf){NULL, 0, 0};
    put_header(&b, 2, 8 * count);
    for (size_t i = 0; i < count; i++) put(&b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(pb_guard_check(&packed_desc, b.data, b.len),
                     count < PB_GUARD_MAX_FIELDS ? 0 : -CODEC_ELIMIT);
    free(b.data);
  }
  /* the wire format itself: a varint past the end, a group, a fixed64 cut short */
  assert_int_equal(pb_guard_check(&packed_desc, (const uint8_t *)"\x08\x80", 2), -CODEC_EMALFORMED);
  assert_int_equal(pb_guard_check(&packed_desc, (const uint8_t *)"\x0b\x0c", 2), -CODEC_EMALFORMED);
  assert_int_equal(pb_guard_check(&packed_desc, (const uint8_t *)"\x11\x01\x02", 3), -CODEC_EMALFORMED);
  assert_int_equal(pb_guard_check(&packed_desc, NULL, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_connect_subscribe_pong),
      cmocka_unit_test(test_decode_transcript_commands),
      cmocka_unit_test(test_decode_emulation),
      cmocka_unit_test(test_encode_connect_reply),
      cmocka_unit_test(test_encode_empty_results),
      cmocka_unit_test(test_encode_error_rpc),
      cmocka_unit_test(test_encode_pushes),
      cmocka_unit_test(test_encode_presence_history),
      cmocka_unit_test(test_encode_long_prefix),
      cmocka_unit_test(test_bad_varints),
      cmocka_unit_test(test_lengths),
      cmocka_unit_test(test_wire_types),
      cmocka_unit_test(test_unknown_fields),
      cmocka_unit_test(test_stream_of_commands),
      cmocka_unit_test(test_round_trip_maps),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_deep_nesting_emulation),
      cmocka_unit_test(test_field_limits),
      cmocka_unit_test(test_schema_fits_guard),
      cmocka_unit_test(test_packed_fields_count),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
