/* Unit tests for the JSON codec (codec_json.c, codec_json_map.c, codec_json_emit.c, codec.c): the exact
 * commands the JavaScript SDK sends (TRANSCRIPTS.txt), the exact reply bytes of PROTOCOL.md §3–§4,
 * embedded raw JSON payloads kept verbatim (number spellings and sizes jansson cannot hold, escapes,
 * whitespace, UTF-8, nesting, 50 KB), the always-present fields, maps, integer ranges, stream framing, and
 * the error paths. Run under ASan to check that decoded messages free cleanly with free_unpacked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_json.h"

#define MAX_COMMAND 65536

/* ---- helpers ---- */

static void cmd_free(Protocol__Command *cmd) { protobuf_c_message_free_unpacked(&cmd->base, NULL); }

/* Decodes TEXT, which must hold exactly one command. */
static Protocol__Command *decode_one(const char *text) {
  const uint8_t *p = (const uint8_t *)text, *end = p + strlen(text);
  Protocol__Command *cmd = NULL, *none = NULL;
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_non_null(cmd);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &none), 1);
  assert_null(none);
  return cmd;
}

/* Returns what next_command says about the first command of TEXT (freeing it on success). */
static int decode_rc(const char *text, size_t len, size_t max) {
  const uint8_t *p = (const uint8_t *)text;
  Protocol__Command *cmd = NULL;
  int rc = codec_json.next_command(&p, p + len, max, &cmd);
  if (rc == 0) cmd_free(cmd);
  if (rc != 0) assert_ptr_equal(p, (const uint8_t *)text); /* errors never advance the stream */
  return rc;
}

static void assert_decode_fails(const char *text) {
  assert_int_equal(decode_rc(text, strlen(text), MAX_COMMAND), -CODEC_EMALFORMED);
}

static void assert_bytes(ProtobufCBinaryData bd, const char *expected) {
  assert_int_equal(bd.len, strlen(expected));
  assert_memory_equal(bd.data, expected, bd.len);
}

/* Encodes R and returns the frame's text as a NUL-terminated malloc'd string. */
static char *encode_text(const Protocol__Reply *r) {
  struct frame *f = NULL;
  assert_int_equal(codec_json.encode_reply(r, &f), 0);
  assert_non_null(f);
  assert_true(f->len > 0 && f->data[f->len - 1] == '\n');
  assert_null(memchr(f->data, '\n', f->len - 1)); /* exactly one line */
  char *s = malloc(f->len + 1);
  assert_non_null(s);
  memcpy(s, f->data, f->len);
  s[f->len] = '\0';
  frame_unref(f);
  return s;
}

static void assert_reply(const Protocol__Reply *r, const char *expected) {
  char *s = encode_text(r);
  assert_string_equal(s, expected);
  free(s);
}

static ProtobufCBinaryData raw(const char *text) {
  return (ProtobufCBinaryData){strlen(text), (uint8_t *)text};
}

/* ---- decoding the SDK's commands (TRANSCRIPTS.txt, PROTOCOL.md §3.1, §4.3) ---- */

static void test_decode_connect(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one("{\"connect\":{\"token\":\"tok\",\"name\":\"js\"},\"id\":1}");
  assert_int_equal(cmd->id, 1);
  assert_non_null(cmd->connect);
  assert_string_equal(cmd->connect->token, "tok");
  assert_string_equal(cmd->connect->name, "js");
  assert_int_equal(cmd->connect->data.len, 0);
  assert_null(cmd->subscribe);
  cmd_free(cmd);

  cmd = decode_one("{\"connect\":{\"name\":\"js\"},\"id\":1}"); /* anonymous */
  assert_string_equal(cmd->connect->token, "");
  assert_ptr_equal(cmd->connect->token, protobuf_c_empty_string);
  cmd_free(cmd);
}

static void test_decode_connect_maps(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one(
      "{\"connect\":{\"name\":\"js\",\"data\":{\"x\":[1,2]},\"headers\":{\"a\":\"1\",\"b\":\"\"},"
      "\"subs\":{\"ch\":{\"recover\":true,\"offset\":5,\"epoch\":\"abcd\"}}},\"id\":12}");
  Protocol__ConnectRequest *c = cmd->connect;
  assert_int_equal(cmd->id, 12);
  assert_bytes(c->data, "{\"x\":[1,2]}");
  assert_int_equal(c->n_headers, 2);
  assert_string_equal(c->headers[0]->key, "a");
  assert_string_equal(c->headers[0]->value, "1");
  assert_string_equal(c->headers[1]->key, "b");
  assert_string_equal(c->headers[1]->value, "");
  assert_int_equal(c->n_subs, 1);
  assert_string_equal(c->subs[0]->key, "ch");
  assert_true(c->subs[0]->value->recover);
  assert_int_equal(c->subs[0]->value->offset, 5);
  assert_string_equal(c->subs[0]->value->epoch, "abcd");
  cmd_free(cmd);
}

static void test_decode_subscribe(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one("{\"subscribe\":{\"channel\":\"news\",\"flag\":1},\"id\":2}");
  assert_int_equal(cmd->id, 2);
  assert_string_equal(cmd->subscribe->channel, "news");
  assert_int_equal(cmd->subscribe->flag, 1);
  assert_false(cmd->subscribe->recover);
  cmd_free(cmd);

  cmd = decode_one(
      "{\"subscribe\":{\"channel\":\"b\",\"positioned\":true,\"recoverable\":true,\"join_leave\":true,"
      "\"flag\":1},\"id\":3}");
  assert_true(cmd->subscribe->positioned && cmd->subscribe->recoverable && cmd->subscribe->join_leave);
  cmd_free(cmd);
}

static void test_decode_publish_rpc_send(void **state) {
  (void)state;
  Protocol__Command *cmd =
      decode_one("{\"publish\":{\"channel\":\"news\",\"data\":{\"text\":\"from client\"}},\"id\":3}");
  assert_int_equal(cmd->id, 3);
  assert_string_equal(cmd->publish->channel, "news");
  assert_bytes(cmd->publish->data, "{\"text\":\"from client\"}");
  cmd_free(cmd);

  cmd = decode_one("{\"rpc\":{\"method\":\"echo\",\"data\":{\"a\":1}},\"id\":4}");
  assert_string_equal(cmd->rpc->method, "echo");
  assert_bytes(cmd->rpc->data, "{\"a\":1}");
  cmd_free(cmd);

  cmd = decode_one("{\"send\":{\"data\":{\"fire\":\"forget\"}}}");
  assert_int_equal(cmd->id, 0);
  assert_bytes(cmd->send->data, "{\"fire\":\"forget\"}");
  cmd_free(cmd);
}

static void test_decode_presence_history(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one("{\"presence\":{\"channel\":\"news\"},\"id\":6}");
  assert_string_equal(cmd->presence->channel, "news");
  cmd_free(cmd);

  cmd = decode_one("{\"presence_stats\":{\"channel\":\"news\"},\"id\":7}");
  assert_string_equal(cmd->presence_stats->channel, "news");
  cmd_free(cmd);

  cmd = decode_one(
      "{\"history\":{\"channel\":\"news\",\"limit\":10,\"since\":{\"offset\":5,\"epoch\":\"abcd\"},"
      "\"reverse\":true},\"id\":8}");
  assert_int_equal(cmd->id, 8);
  assert_int_equal(cmd->history->limit, 10);
  assert_int_equal(cmd->history->since->offset, 5);
  assert_string_equal(cmd->history->since->epoch, "abcd");
  assert_true(cmd->history->reverse);
  cmd_free(cmd);

  cmd = decode_one("{\"history\":{\"channel\":\"news\",\"limit\":-1},\"id\":9}");
  assert_int_equal(cmd->history->limit, -1);
  assert_null(cmd->history->since);
  cmd_free(cmd);
}

static void test_decode_pong_and_nulls(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one("{}");
  assert_int_equal(cmd->id, 0);
  assert_null(cmd->connect);
  assert_null(cmd->send);
  cmd_free(cmd);

  /* null = absent; unknown keys are ignored at every level */
  cmd = decode_one(
      "{\"id\":3,\"connect\":null,\"future\":{\"x\":[1]},\"publish\":{\"channel\":\"c\",\"data\":null,"
      "\"zzz\":1}}");
  assert_null(cmd->connect);
  assert_int_equal(cmd->publish->data.len, 0);
  assert_null(cmd->publish->data.data);
  cmd_free(cmd);
}

static void test_decode_sub_refresh_repeated(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one(
      "{\"sub_refresh\":{\"channel\":\"c\",\"untrack\":[\"a\",\"\",\"b\"],"
      "\"track\":[{\"signature\":\"s\",\"items\":[{\"key\":\"k\",\"version\":3}]}]},\"id\":10}");
  Protocol__SubRefreshRequest *r = cmd->sub_refresh;
  assert_int_equal(r->n_untrack, 3);
  assert_string_equal(r->untrack[1], "");
  assert_string_equal(r->untrack[2], "b");
  assert_int_equal(r->n_track, 1);
  assert_int_equal(r->track[0]->items[0]->version, 3);
  cmd_free(cmd);
}

/* Keys with escapes, the whole uint64 range, -0, nesting limits, unknown members with odd numbers. */
static void test_decode_edges(void **state) {
  (void)state;
  Protocol__Command *cmd = decode_one("{\"\\u0069d\":5,\"sub\\u0073cribe\":{\"channel\":\"\\u00e9\\n\"}}");
  assert_int_equal(cmd->id, 5);
  assert_string_equal(cmd->subscribe->channel, "é\n");
  cmd_free(cmd);

  cmd = decode_one("{\"subscribe\":{\"channel\":\"a\",\"offset\":18446744073709551615,\"flag\":-9223372036854775808},"
                   "\"id\":-0}");
  assert_int_equal(cmd->id, 0);
  assert_true(cmd->subscribe->offset == UINT64_MAX);
  assert_true(cmd->subscribe->flag == INT64_MIN);
  cmd_free(cmd);
  assert_decode_fails("{\"subscribe\":{\"offset\":18446744073709551616},\"id\":2}");
  assert_decode_fails("{\"subscribe\":{\"flag\":-9223372036854775809},\"id\":2}");
  assert_decode_fails("{\"subscribe\":{\"flag\":9223372036854775808},\"id\":2}");
  assert_decode_fails("{\"history\":{\"limit\":-2147483649},\"id\":8}");
  cmd = decode_one("{\"history\":{\"limit\":-2147483648},\"id\":8}");
  assert_int_equal(cmd->history->limit, INT32_MIN);
  cmd_free(cmd);

  /* FilterNode is recursive: 30 levels decode, 40 are refused (nothing legitimate nests that deep) */
  char line[1024];
  for (int depth = 30; depth <= 40; depth += 10) {
    size_t n = (size_t)snprintf(line, sizeof line, "{\"id\":2,\"subscribe\":{\"channel\":\"c\",\"tf\":");
    for (int i = 0; i < depth; i++) n += (size_t)snprintf(line + n, sizeof line - n, "{\"nodes\":[");
    n += (size_t)snprintf(line + n, sizeof line - n, "{\"op\":\"x\"}");
    for (int i = 0; i < depth; i++) n += (size_t)snprintf(line + n, sizeof line - n, "]}");
    snprintf(line + n, sizeof line - n, "}}");
    if (depth == 30) {
      cmd = decode_one(line);
      assert_int_equal(cmd->subscribe->tf->n_nodes, 1);
      cmd_free(cmd);
    } else {
      assert_decode_fails(line);
    }
  }

  /* embedded JSON nests up to JSON_SPAN_MAX_DEPTH (512) */
  char *deep = malloc(4096);
  assert_non_null(deep);
  for (int depth = 512; depth <= 513; depth++) {
    size_t n = (size_t)sprintf(deep, "{\"send\":{\"data\":");
    for (int i = 0; i < depth; i++) deep[n++] = '[';
    for (int i = 0; i < depth; i++) deep[n++] = ']';
    strcpy(deep + n, "}}");
    if (depth == 512) {
      cmd = decode_one(deep);
      assert_int_equal(cmd->send->data.len, 1024);
      cmd_free(cmd);
    } else {
      assert_decode_fails(deep);
    }
  }
  free(deep);

  /* map keys are unescaped; an empty repeated array stays NULL */
  cmd = decode_one("{\"connect\":{\"headers\":{\"a\\\"b\":\"\\u0041\"},\"subs\":{}},\"sub_refresh\":{\"untrack\":[]},\"id\":1}");
  assert_int_equal(cmd->connect->n_headers, 1);
  assert_string_equal(cmd->connect->headers[0]->key, "a\"b");
  assert_string_equal(cmd->connect->headers[0]->value, "A");
  assert_int_equal(cmd->connect->n_subs, 0);
  assert_null(cmd->sub_refresh->untrack);
  cmd_free(cmd);
  assert_decode_fails("{\"connect\":{\"headers\":{\"a\\u0000\":\"x\"}},\"id\":1}");

  /* many repeated elements (the array grows) */
  char *many = malloc(64 * 1024);
  assert_non_null(many);
  size_t n = (size_t)sprintf(many, "{\"sub_refresh\":{\"untrack\":[");
  for (int i = 0; i < 1000; i++) n += (size_t)sprintf(many + n, "%s\"k%d\"", i ? "," : "", i);
  strcpy(many + n, "]},\"id\":1}");
  cmd = decode_one(many);
  assert_int_equal(cmd->sub_refresh->n_untrack, 1000);
  assert_string_equal(cmd->sub_refresh->untrack[999], "k999");
  cmd_free(cmd);
  free(many);
}

/* ---- encoding replies byte for byte (PROTOCOL.md §3.2, §3.4, §3.6, §4.3, §4.4) ---- */

static void test_encode_connect_reply(void **state) {
  (void)state;
  Protocol__ConnectResult res = PROTOCOL__CONNECT_RESULT__INIT;
  res.client = "2c4314d3-cbfd-4c57-9f00-2e199335505d";
  res.version = "0.0.1";
  res.ping = 2;
  res.pong = 1;
  res.session = "3df2cb80-b9b5-42b3-af25-1dfd89826f55";
  res.node = "413f1e54-6b90-432f-8444-f0a22426fe1c";
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 1;
  r.connect = &res;
  assert_reply(&r,
               "{\"id\":1,\"connect\":{\"client\":\"2c4314d3-cbfd-4c57-9f00-2e199335505d\",\"version\":"
               "\"0.0.1\",\"ping\":2,\"pong\":true,\"session\":\"3df2cb80-b9b5-42b3-af25-1dfd89826f55\","
               "\"node\":\"413f1e54-6b90-432f-8444-f0a22426fe1c\"}}\n");

  /* Centrifuge key order: client, version, expires, ttl, data, subs, ping, pong, session, node */
  Protocol__SubscribeResult sub = PROTOCOL__SUBSCRIBE_RESULT__INIT;
  Protocol__ConnectResult__SubsEntry entry = PROTOCOL__CONNECT_RESULT__SUBS_ENTRY__INIT;
  Protocol__ConnectResult__SubsEntry *entries[] = {&entry};
  entry.key = "personal:u";
  entry.value = &sub;
  res.expires = 1;
  res.ttl = 3600;
  res.data = raw("{\"motd\":\"hi\"}");
  res.n_subs = 1;
  res.subs = entries;
  assert_reply(
      &r,
      "{\"id\":1,\"connect\":{\"client\":\"2c4314d3-cbfd-4c57-9f00-2e199335505d\",\"version\":"
      "\"0.0.1\",\"expires\":true,\"ttl\":3600,\"data\":{\"motd\":\"hi\"},\"subs\":{\"personal:u\":{}},"
      "\"ping\":2,\"pong\":true,\"session\":\"3df2cb80-b9b5-42b3-af25-1dfd89826f55\","
      "\"node\":\"413f1e54-6b90-432f-8444-f0a22426fe1c\"}}\n");
}

static void test_encode_empty_results(void **state) {
  (void)state;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  assert_reply(&r, "{}\n"); /* ping */

  Protocol__SubscribeResult sub = PROTOCOL__SUBSCRIBE_RESULT__INIT;
  r.id = 2;
  r.subscribe = &sub;
  assert_reply(&r, "{\"id\":2,\"subscribe\":{}}\n");

  Protocol__PublishResult pub = PROTOCOL__PUBLISH_RESULT__INIT;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 3;
  r.publish = &pub;
  assert_reply(&r, "{\"id\":3,\"publish\":{}}\n");

  Protocol__UnsubscribeResult unsub = PROTOCOL__UNSUBSCRIBE_RESULT__INIT;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 4;
  r.unsubscribe = &unsub;
  assert_reply(&r, "{\"id\":4,\"unsubscribe\":{}}\n");
}

static void test_encode_error_rpc_refresh(void **state) {
  (void)state;
  Protocol__Error err = PROTOCOL__ERROR__INIT;
  err.code = 103;
  err.message = "permission denied";
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 5;
  r.error = &err;
  assert_reply(&r, "{\"id\":5,\"error\":{\"code\":103,\"message\":\"permission denied\"}}\n");
  err.code = 100;
  err.message = "internal server error";
  err.temporary = 1;
  assert_reply(
      &r, "{\"id\":5,\"error\":{\"code\":100,\"message\":\"internal server error\",\"temporary\":true}}\n");

  Protocol__RPCResult rpc = PROTOCOL__RPCRESULT__INIT;
  rpc.data = raw("{\"a\":1}");
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 4;
  r.rpc = &rpc;
  assert_reply(&r, "{\"id\":4,\"rpc\":{\"data\":{\"a\":1}}}\n");

  Protocol__RefreshResult ref = PROTOCOL__REFRESH_RESULT__INIT;
  ref.expires = 1;
  ref.ttl = 3600;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 9;
  r.refresh = &ref;
  assert_reply(&r, "{\"id\":9,\"refresh\":{\"expires\":true,\"ttl\":3600}}\n");
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
  assert_reply(&r, "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"text\":\"hello\"}}}}\n");

  Protocol__Disconnect d = PROTOCOL__DISCONNECT__INIT;
  d.code = 3503;
  d.reason = "force disconnect";
  push = (Protocol__Push)PROTOCOL__PUSH__INIT;
  push.disconnect = &d;
  assert_reply(&r, "{\"push\":{\"disconnect\":{\"code\":3503,\"reason\":\"force disconnect\"}}}\n");

  Protocol__Unsubscribe u = PROTOCOL__UNSUBSCRIBE__INIT;
  u.code = 2000;
  u.reason = "server unsubscribe";
  push = (Protocol__Push)PROTOCOL__PUSH__INIT;
  push.channel = "news";
  push.unsubscribe = &u;
  assert_reply(&r,
               "{\"push\":{\"channel\":\"news\",\"unsubscribe\":{\"code\":2000,\"reason\":\"server "
               "unsubscribe\"}}}\n");

  Protocol__Message m = PROTOCOL__MESSAGE__INIT;
  m.data = raw("\"hi\"");
  push = (Protocol__Push)PROTOCOL__PUSH__INIT;
  push.message = &m;
  push.id = -1; /* int64 field: negative numbers survive */
  assert_reply(&r, "{\"push\":{\"id\":-1,\"message\":{\"data\":\"hi\"}}}\n");
}

static void test_encode_publication_full(void **state) {
  (void)state;
  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT;
  info.user = "u";
  info.client = "c";
  Protocol__Publication__TagsEntry t1 = PROTOCOL__PUBLICATION__TAGS_ENTRY__INIT, t2 = t1;
  t1.key = "k";
  t1.value = "v";
  t2.key = "empty";
  Protocol__Publication__TagsEntry *tags[] = {&t1, &t2};
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = raw("{\"text\":\"hi\"}");
  pub.info = &info;
  pub.offset = 7;
  pub.n_tags = 2;
  pub.tags = tags;
  pub.score = -3;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "news";
  push.pub = &pub;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.push = &push;
  assert_reply(&r,
               "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"text\":\"hi\"},\"info\":{\"user\":\"u\","
               "\"client\":\"c\"},\"offset\":7,\"tags\":{\"k\":\"v\",\"empty\":\"\"},\"score\":-3}}}\n");

  /* uint64 beyond int64: exact digits, as Centrifuge writes them */
  pub = (Protocol__Publication)PROTOCOL__PUBLICATION__INIT;
  pub.offset = UINT64_MAX;
  assert_reply(&r, "{\"push\":{\"channel\":\"news\",\"pub\":{\"offset\":18446744073709551615}}}\n");
  pub.offset = 0;
  pub.score = INT64_MIN; /* sint64 */
  assert_reply(&r, "{\"push\":{\"channel\":\"news\",\"pub\":{\"score\":-9223372036854775808}}}\n");
}

static void test_encode_subscribe_result_publications(void **state) {
  (void)state;
  Protocol__Publication p1 = PROTOCOL__PUBLICATION__INIT, p2 = PROTOCOL__PUBLICATION__INIT;
  p1.data = raw("1");
  p1.offset = 5;
  p2.data = raw("[true,null]");
  p2.offset = 6;
  Protocol__Publication *pubs[] = {&p1, &p2};
  Protocol__SubscribeResult sub = PROTOCOL__SUBSCRIBE_RESULT__INIT;
  sub.recoverable = 1;
  sub.epoch = "abcd";
  sub.n_publications = 2;
  sub.publications = pubs;
  sub.recovered = 1;
  sub.offset = 4;
  sub.positioned = 1;
  sub.was_recovering = 1;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 2;
  r.subscribe = &sub;
  assert_reply(
      &r,
      "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"abcd\",\"publications\":[{\"data\":1,"
      "\"offset\":5},{\"data\":[true,null],\"offset\":6}],\"recovered\":true,\"offset\":4,"
      "\"positioned\":true,\"was_recovering\":true}}\n");
}

/* ---- always-present fields and maps ---- */

static void test_always_present(void **state) {
  (void)state;
  Protocol__PresenceStatsResult ps = PROTOCOL__PRESENCE_STATS_RESULT__INIT;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 7;
  r.presence_stats = &ps;
  assert_reply(&r, "{\"id\":7,\"presence_stats\":{\"num_clients\":0,\"num_users\":0}}\n");
  ps.num_clients = 1;
  ps.num_users = 1;
  assert_reply(&r, "{\"id\":7,\"presence_stats\":{\"num_clients\":1,\"num_users\":1}}\n");

  Protocol__HistoryResult h = PROTOCOL__HISTORY_RESULT__INIT;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 8;
  r.history = &h;
  assert_reply(&r, "{\"id\":8,\"history\":{\"publications\":[],\"epoch\":\"\",\"offset\":0}}\n");

  Protocol__Publication p = PROTOCOL__PUBLICATION__INIT;
  Protocol__Publication *pubs[] = {&p};
  p.data = raw("{\"n\":1}");
  p.offset = 7;
  h.n_publications = 1;
  h.publications = pubs;
  h.epoch = "abc";
  h.offset = 7;
  assert_reply(
      &r,
      "{\"id\":8,\"history\":{\"publications\":[{\"data\":{\"n\":1},\"offset\":7}],\"epoch\":\"abc\","
      "\"offset\":7}}\n");

  Protocol__PresenceResult pr = PROTOCOL__PRESENCE_RESULT__INIT;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.id = 6;
  r.presence = &pr;
  assert_reply(&r, "{\"id\":6,\"presence\":{\"presence\":{}}}\n");

  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT; /* user and client both "" */
  Protocol__Join join = PROTOCOL__JOIN__INIT;
  join.info = &info;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "news";
  push.join = &join;
  r = (Protocol__Reply)PROTOCOL__REPLY__INIT;
  r.push = &push;
  assert_reply(&r, "{\"push\":{\"channel\":\"news\",\"join\":{\"info\":{\"user\":\"\",\"client\":\"\"}}}}\n");
}

static void test_presence_map(void **state) {
  (void)state;
  const char *cid = "2c4314d3-cbfd-4c57-9f00-2e199335505d";
  Protocol__ClientInfo a = PROTOCOL__CLIENT_INFO__INIT, b = PROTOCOL__CLIENT_INFO__INIT;
  a.user = "u1";
  a.client = (char *)cid;
  b.user = "u2";
  b.client = "c2";
  b.conn_info = raw("{\"name\":\"Bob\"}");
  b.chan_info = raw("[1]");
  Protocol__PresenceResult__PresenceEntry e1 = PROTOCOL__PRESENCE_RESULT__PRESENCE_ENTRY__INIT, e2 = e1;
  e1.key = (char *)cid;
  e1.value = &a;
  Protocol__PresenceResult__PresenceEntry *entries[] = {&e1, &e2};
  Protocol__PresenceResult pr = PROTOCOL__PRESENCE_RESULT__INIT;
  pr.n_presence = 1;
  pr.presence = entries;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.id = 6;
  r.presence = &pr;
  assert_reply(
      &r,
      "{\"id\":6,\"presence\":{\"presence\":{\"2c4314d3-cbfd-4c57-9f00-2e199335505d\":{\"user\":\"u1\","
      "\"client\":\"2c4314d3-cbfd-4c57-9f00-2e199335505d\"}}}}\n");

  e2.key = "c2";
  e2.value = &b;
  pr.n_presence = 2;
  char *text = encode_text(&r);
  assert_non_null(strstr(text,
                         ",\"c2\":{\"user\":\"u2\",\"client\":\"c2\",\"conn_info\":{\"name\":\"Bob\"},"
                         "\"chan_info\":[1]}}}}\n"));
  free(text);
}

/* Decodes TEXT as a message of type DESC (codec_json_message_from_text). */
static int from_text(const ProtobufCMessageDescriptor *desc, const char *text, ProtobufCMessage **msg) {
  return codec_json_message_from_text(desc, text, strlen(text), msg);
}

static void test_message_value_helpers(void **state) {
  (void)state;
  const char *text = " {\"channel\":\"x\",\"tags\":{\"a\":\"b\"},\"offset\":3}\r\n";
  json_t *v = json_loads(text, 0, NULL);
  ProtobufCMessage *msg = NULL;
  assert_int_equal(from_text(&protocol__publication__descriptor, text, &msg), 0);
  Protocol__Publication *p = (Protocol__Publication *)msg;
  assert_string_equal(p->channel, "x");
  assert_int_equal(p->n_tags, 1);
  json_t *back = codec_json_message_to_value(msg);
  assert_true(json_equal(v, back));
  json_decref(back);
  json_decref(v);

  p->data = (ProtobufCBinaryData){4, (uint8_t *)strdup("nope")};
  assert_null(codec_json_message_to_value(msg));
  protobuf_c_message_free_unpacked(msg, NULL);

  assert_int_equal(from_text(&protocol__publication__descriptor, "\"x\"", &msg), -CODEC_EMALFORMED);
  assert_int_equal(from_text(&protocol__publication__descriptor, "{} {}", &msg), -CODEC_EMALFORMED);
  assert_int_equal(from_text(&protocol__publication__descriptor, "  ", &msg), -CODEC_EMALFORMED);
  v = json_string("x");
  ProtobufCBinaryData bd;
  assert_int_equal(codec_json_raw_from_value(v, &bd), 0);
  assert_bytes(bd, "\"x\"");
  free(bd.data);
  json_decref(v);
}

/* ---- embedded raw JSON payloads ---- */

/* Decodes a publish command carrying the JSON text DATA_IN, checks the stored bytes equal DATA_STORED,
 * then encodes a pub push with them and checks the payload comes back as DATA_STORED, byte for byte. */
static void round_trip(const char *data_in, const char *data_stored) {
  const char *head = "{\"publish\":{\"channel\":\"c\",\"data\":", *tail = "},\"id\":3}";
  char *text = malloc(strlen(head) + strlen(data_in) + strlen(tail) + 1);
  assert_non_null(text);
  strcat(strcat(strcpy(text, head), data_in), tail);
  Protocol__Command *cmd = decode_one(text);
  free(text);
  assert_bytes(cmd->publish->data, data_stored);

  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = cmd->publish->data;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "c";
  push.pub = &pub;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.push = &push;
  char *out = encode_text(&r);
  const char *prefix = "{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":";
  assert_memory_equal(out, prefix, strlen(prefix));
  assert_int_equal(strlen(out), strlen(prefix) + strlen(data_stored) + 4);
  assert_memory_equal(out + strlen(prefix), data_stored, strlen(data_stored));
  assert_string_equal(out + strlen(prefix) + strlen(data_stored), "}}}\n");
  free(out);
  cmd_free(cmd);
}

/* Embedded JSON is kept as sent: spelling of numbers, escapes, whitespace (minus raw '\r'; a raw '\n'
 * cannot occur inside one command line). */
static void test_raw_round_trip(void **state) {
  (void)state;
  round_trip("{\"a\":{\"b\":[1,2,{\"c\":null}]},\"t\":true,\"n\":-5,\"f\":1.5}",
             "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"t\":true,\"n\":-5,\"f\":1.5}");
  round_trip("{ \"spaced\" :\r [ 1 ,\t2 ] }", "{ \"spaced\" : [ 1 ,\t2 ] }");
  round_trip("\"line1\\nline2\\ttab\\\"q\\\\\\/\"", "\"line1\\nline2\\ttab\\\"q\\\\\\/\"");
  round_trip("{\"u\":\"\\u00e9\\u65e5\\u672c\\ud83d\\ude00\"}", "{\"u\":\"\\u00e9\\u65e5\\u672c\\ud83d\\ude00\"}");
  round_trip("{\"u\":\"é日本😀\"}", "{\"u\":\"é日本😀\"}");
  round_trip("{\"nul\":\"a\\u0000b\"}", "{\"nul\":\"a\\u0000b\"}");
  round_trip("42", "42");
  round_trip("[]", "[]");
  round_trip("{}", "{}");
  round_trip("\"\"", "\"\"");
  round_trip("false", "false");
  round_trip("0.1", "0.1");
  /* numbers of any size and spelling (jansson would fail the command, or write 1.5, 100.0, ...) */
  round_trip("{\"a\":1.50,\"huge\":123456789012345678901234567890,\"u64\":18446744073709551615,\"e\":1E+2}",
             "{\"a\":1.50,\"huge\":123456789012345678901234567890,\"u64\":18446744073709551615,\"e\":1E+2}");
  round_trip("[-1.5e-7,-0,0.0,1e400,-123456789012345678901234567890.5e-999]",
             "[-1.5e-7,-0,0.0,1e400,-123456789012345678901234567890.5e-999]");
}

static void test_raw_decode_whitespace_in_line(void **state) {
  (void)state;
  Protocol__Command *cmd =
      decode_one("{\"publish\":{\"channel\":\"c\",\"data\": { \"a\" : [ 1 ,\t2 ] } },\"id\":3}");
  assert_bytes(cmd->publish->data, "{ \"a\" : [ 1 ,\t2 ] }"); /* the value's span, not the space around */
  cmd_free(cmd);

  cmd = decode_one("{\"rpc\":{\"data\":{\"big\":99999999999999999999999},\"method\":\"m\"},\"id\":4}");
  assert_bytes(cmd->rpc->data, "{\"big\":99999999999999999999999}");
  assert_string_equal(cmd->rpc->method, "m");
  cmd_free(cmd);

  /* big or odd numbers outside known fields do not fail the command (jansson failed the whole line) */
  cmd = decode_one("{\"future\":[1e999,123456789012345678901234567890],\"id\":7,\"send\":{\"data\":1}}");
  assert_int_equal(cmd->id, 7);
  assert_bytes(cmd->send->data, "1");
  cmd_free(cmd);
}

static void test_raw_50k_unicode(void **state) {
  (void)state;
  const char *unit = "é日本😀 \\n\"x\" ";
  size_t n = 0;
  char *big = malloc(60000);
  assert_non_null(big);
  while (n + strlen(unit) < 50 * 1024) {
    memcpy(big + n, unit, strlen(unit));
    n += strlen(unit);
  }
  big[n] = '\0';
  json_t *data = json_pack("{s:s,s:[s,i]}", "text", big, "more", "日本", 1);
  assert_non_null(data);
  char *compact = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
  assert_true(strlen(compact) > 50 * 1024 && strlen(compact) < MAX_COMMAND - 64);
  round_trip(compact, compact);
  free(compact);
  json_decref(data);
  free(big);
}

/* ---- invalid input ---- */

static void test_invalid_commands(void **state) {
  (void)state;
  static const char *const bad[] = {
      "[1,2]",
      "\"connect\"",
      "42",
      "null",
      "{\"connect\":{\"token\":\"tok\"", /* truncated */
      "{\"id\":1} x",                    /* trailing garbage */
      "{\"id\":\"1\"}",                  /* string for uint32 */
      "{\"id\":-1}",                     /* out of range */
      "{\"id\":4294967296}",             /* > UINT32_MAX */
      "{\"id\":1.5}",                    /* real for an integer */
      "{\"id\":true}",
      "{\"subscribe\":\"news\",\"id\":2}", /* message field not an object */
      "{\"subscribe\":[],\"id\":2}",
      "{\"subscribe\":{\"channel\":5},\"id\":2}",    /* number for a string */
      "{\"subscribe\":{\"channel\":\"a\\u0000b\"}}", /* NUL inside a string field */
      "{\"subscribe\":{\"recover\":1},\"id\":2}",    /* number for a bool */
      "{\"history\":{\"limit\":2147483648},\"id\":8}",
      "{\"history\":{\"since\":{\"offset\":-1}},\"id\":8}",
      "{\"connect\":{\"headers\":[\"a\"]},\"id\":1}", /* array for a map */
      "{\"connect\":{\"headers\":{\"a\":1}},\"id\":1}",
      "{\"connect\":{\"subs\":{\"ch\":{\"offset\":\"x\"}}},\"id\":1}",
      "{\"sub_refresh\":{\"untrack\":\"a\"},\"id\":1}",
      "{\"sub_refresh\":{\"untrack\":[\"a\",null]},\"id\":1}",
      "{\"sub_refresh\":{\"track\":[{\"items\":[{\"version\":\"1\"}]}]},\"id\":1}",
      "{\"id\":1,\"connect\":{\"name\":\"\xff\"}}", /* invalid UTF-8 */
      "{\"id\":1,\"id\":2}",                      /* a known key twice */
      "{\"id\":1,\"connect\":{},\"connect\":null}",
      "{\"id\":123456789012345678901234567890}",    /* beyond 64 bits */
      "{\"id\":1e2}",                                /* an exponent is not an integer */
      "{\"id\":01}",                                 /* leading zero */
      "{\"id\":+1}",
      "{\"id\":1,}",                                 /* trailing comma */
      "{\"id\" 1}",
      "{'id':1}",
      "{\"future\":[1,],\"id\":1}",                /* unknown members must still be JSON */
      "{\"future\":\"\\x\",\"id\":1}",
      "{\"publish\":{\"channel\":\"c\",\"data\":{\"a\":}},\"id\":3}",
      "{\"publish\":{\"channel\":\"c\",\"data\":tru},\"id\":3}",
      "{\"publish\":{\"channel\":\"c\",\"data\":\"\\ud800\"},\"id\":3}", /* lone surrogate */
      "{\"publish\":{\"channel\":\"c\",\"data\":\"a\tb\"},\"id\":3}",    /* raw control character */
      "{\"publish\":{\"channel\":\"c\",\"data\":\"\xc0\xaf\"},\"id\":3}", /* overlong UTF-8 */
      "{\"publish\":{\"channel\":\"c\",\"data\":[1.]},\"id\":3}",
      "{\"publish\":{\"channel\":\"c\",\"data\":[.5]},\"id\":3}",
      "{\"publish\":{\"channel\":\"c\",\"data\":[1e]},\"id\":3}",
      "{\"publish\":{\"channel\":\"c\",\"data\":[-]},\"id\":3}",
      "{\"publish\":{\"channel\":\"c\",\"data\":NaN},\"id\":3}",
      "{\"publish\":{\"channel\":\"c\",\"data\":{\"a\":1 \"b\":2}},\"id\":3}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_decode_fails(bad[i]);
}

static void test_encode_edata(void **state) {
  (void)state;
  static const uint8_t binary[] = {0x01, 0x02, 0xff, 0x00};
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = (ProtobufCBinaryData){sizeof binary, (uint8_t *)binary};
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  push.channel = "news";
  push.pub = &pub;
  Protocol__Reply r = PROTOCOL__REPLY__INIT;
  r.push = &push;
  struct frame *f = NULL;
  assert_int_equal(codec_json.encode_reply(&r, &f), -CODEC_EDATA);
  assert_null(f);

  pub.data = raw("not json");
  assert_int_equal(codec_json.encode_reply(&r, &f), -CODEC_EDATA);
  pub.data = raw("{\"a\":1} trailing");
  assert_int_equal(codec_json.encode_reply(&r, &f), -CODEC_EDATA);

  pub.data = raw("[1,2");
  assert_int_equal(codec_json.encode_reply(&r, &f), -CODEC_EDATA);
  pub.data = raw("{\"a\":\"\\ud800\"}");
  assert_int_equal(codec_json.encode_reply(&r, &f), -CODEC_EDATA);

  /* bytes from a protobuf client: surrounding whitespace and raw line breaks go, the rest is kept */
  pub.data = raw(" \r\n{\"a\":\n 1.50,\r\n\"b\":\"x y\"}\n\t");
  char *text = encode_text(&r);
  assert_string_equal(text, "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"a\": 1.50,\"b\":\"x y\"}}}}\n");
  free(text);

  pub.data = raw("{}");
  push.channel = "bad\xc3"; /* invalid UTF-8 in a string field */
  assert_int_equal(codec_json.encode_reply(&r, &f), -CODEC_EDATA);
  assert_null(f);
}

/* ---- stream framing ---- */

static void test_multi_line_stream(void **state) {
  (void)state;
  const char *s =
      "\n{\"subscribe\":{\"channel\":\"a\",\"flag\":1},\"id\":2}\r\n\n  \r\n"
      "{\"subscribe\":{\"channel\":\"b\"},\"id\":3}\n{}\n\n";
  const uint8_t *p = (const uint8_t *)s, *end = p + strlen(s);
  Protocol__Command *cmd;
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_string_equal(cmd->subscribe->channel, "a");
  cmd_free(cmd);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_int_equal(cmd->id, 3);
  cmd_free(cmd);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_int_equal(cmd->id, 0);
  cmd_free(cmd);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 1);
  assert_ptr_equal(p, end);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 1);

  p = (const uint8_t *)"";
  assert_int_equal(codec_json.next_command(&p, p, MAX_COMMAND, &cmd), 1);

  /* an error stops at the bad line; what came before was consumed */
  s = "{\"id\":1,\"connect\":{}}\n{oops}\n{}";
  p = (const uint8_t *)s;
  end = p + strlen(s);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  cmd_free(cmd);
  const uint8_t *bad = p;
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), -CODEC_EMALFORMED);
  assert_ptr_equal(p, bad);
}

static void test_too_big(void **state) {
  (void)state;
  const char *line = "{\"id\":123456789}"; /* 16 bytes */
  assert_int_equal(decode_rc(line, 16, 16), 0);
  assert_int_equal(decode_rc("{\"id\":123456789}\n", 17, 16), 0);
  assert_int_equal(decode_rc("{\"id\":123456789}\r\n", 18, 16), -CODEC_ETOOBIG);
  assert_int_equal(decode_rc(line, 16, 15), -CODEC_ETOOBIG);
  assert_int_equal(decode_rc("{\"id\":123456789}\n{}", 19, 15), -CODEC_ETOOBIG);

  const char *s = "{}\n{\"id\":123456789}";
  const uint8_t *p = (const uint8_t *)s, *end = p + strlen(s);
  Protocol__Command *cmd;
  assert_int_equal(codec_json.next_command(&p, end, 8, &cmd), 0);
  cmd_free(cmd);
  assert_int_equal(codec_json.next_command(&p, end, 8, &cmd), -CODEC_ETOOBIG);
}

/* ---- /emulation bodies ---- */

static void test_emulation(void **state) {
  (void)state;
  const char *body =
      "{\"session\":\"3df2cb80-b9b5-42b3-af25-1dfd89826f55\",\"node\":\"413f1e54-6b90-432f-8444-"
      "f0a22426fe1c\","
      "\"data\":\"{\\\"subscribe\\\":{\\\"channel\\\":\\\"a\\\",\\\"flag\\\":1},\\\"id\\\":2}\\n{"
      "\\\"subscribe\\\":"
      "{\\\"channel\\\":\\\"b\\\"},\\\"id\\\":3}\"}";
  Protocol__EmulationRequest *req = NULL;
  assert_int_equal(codec_json.decode_emulation((const uint8_t *)body, strlen(body), &req), 0);
  assert_string_equal(req->session, "3df2cb80-b9b5-42b3-af25-1dfd89826f55");
  assert_string_equal(req->node, "413f1e54-6b90-432f-8444-f0a22426fe1c");
  assert_bytes(req->data,
               "{\"subscribe\":{\"channel\":\"a\",\"flag\":1},\"id\":2}\n"
               "{\"subscribe\":{\"channel\":\"b\"},\"id\":3}");
  const uint8_t *p = req->data.data, *end = p + req->data.len;
  Protocol__Command *cmd;
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_string_equal(cmd->subscribe->channel, "a");
  cmd_free(cmd);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 0);
  assert_int_equal(cmd->id, 3);
  cmd_free(cmd);
  assert_int_equal(codec_json.next_command(&p, end, MAX_COMMAND, &cmd), 1);
  protocol__emulation_request__free_unpacked(req, NULL);

  body = "{\"data\":\"{}\"}"; /* pong; missing session/node read as empty */
  assert_int_equal(codec_json.decode_emulation((const uint8_t *)body, strlen(body), &req), 0);
  assert_string_equal(req->session, "");
  assert_string_equal(req->node, "");
  assert_bytes(req->data, "{}");
  protobuf_c_message_free_unpacked(&req->base, NULL);
}

static void test_emulation_invalid(void **state) {
  (void)state;
  static const char *const bad[] = {
      "{\"session\":\"s\",\"node\":\"n\",\"data\":{\"id\":1}}", /* data must be a JSON string */
      "{\"session\":\"s\",\"node\":\"n\",\"data\":1}",
      "{\"session\":\"s\",\"node\":\"n\",\"data\":null}",
      "{\"session\":\"s\",\"node\":\"n\"}",
      "{\"session\":1,\"node\":\"n\",\"data\":\"{}\"}",
      "{\"session\":\"s\",\"node\":[],\"data\":\"{}\"}",
      "[\"s\",\"n\",\"{}\"]",
      "\"{}\"",
      "{\"session\":\"s\",\"node\":\"n\",\"data\":\"{}\"",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    Protocol__EmulationRequest *req = NULL;
    assert_int_equal(codec_json.decode_emulation((const uint8_t *)bad[i], strlen(bad[i]), &req),
                     -CODEC_EMALFORMED);
    assert_null(req);
  }
}

static void test_codec_registry(void **state) {
  (void)state;
  assert_ptr_equal(codec_get(CODEC_JSON), &codec_json);
  assert_string_equal(codec_get(CODEC_JSON)->name, "json");
  assert_int_equal(codec_get(CODEC_PROTOBUF)->kind, CODEC_PROTOBUF);
  assert_null(codec_get(CODEC_COUNT));
  assert_string_equal(codec_strerror(-CODEC_ETOOBIG), codec_strerror(CODEC_ETOOBIG));
  assert_string_equal(codec_strerror(0), "success");
  assert_string_equal(codec_strerror(-99), "unknown codec error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_connect),
      cmocka_unit_test(test_decode_connect_maps),
      cmocka_unit_test(test_decode_subscribe),
      cmocka_unit_test(test_decode_publish_rpc_send),
      cmocka_unit_test(test_decode_presence_history),
      cmocka_unit_test(test_decode_pong_and_nulls),
      cmocka_unit_test(test_decode_sub_refresh_repeated),
      cmocka_unit_test(test_decode_edges),
      cmocka_unit_test(test_encode_connect_reply),
      cmocka_unit_test(test_encode_empty_results),
      cmocka_unit_test(test_encode_error_rpc_refresh),
      cmocka_unit_test(test_encode_pushes),
      cmocka_unit_test(test_encode_publication_full),
      cmocka_unit_test(test_encode_subscribe_result_publications),
      cmocka_unit_test(test_always_present),
      cmocka_unit_test(test_presence_map),
      cmocka_unit_test(test_message_value_helpers),
      cmocka_unit_test(test_raw_round_trip),
      cmocka_unit_test(test_raw_decode_whitespace_in_line),
      cmocka_unit_test(test_raw_50k_unicode),
      cmocka_unit_test(test_invalid_commands),
      cmocka_unit_test(test_encode_edata),
      cmocka_unit_test(test_multi_line_stream),
      cmocka_unit_test(test_too_big),
      cmocka_unit_test(test_emulation),
      cmocka_unit_test(test_emulation_invalid),
      cmocka_unit_test(test_codec_registry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
