/* Unit tests for `streamctl trace`'s server side: the recorder (server/trace.c) against real sessions
 * of the server fixture (what a traced session's frames, close and end become as events, in order; that
 * a full queue drops and counts instead of growing or waiting; that the end always gets through; the
 * limit on traces at once), and the decoder (server/trace_decode.c): every codec kind's framing undone,
 * protobuf shown as JSON, pings, pongs, Close frames and undecodable bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "codec_ws.h"
#include "codes.h"
#include "frame.h"
#include "session.h"
#include "trace.h"
#include "trace_decode.h"

#include "server_fixture.h"

static int wakes;
static void count_wake(void *arg) {
  (void)arg;
  wakes++;
}

static struct session *new_session(struct fixture *fx, enum codec_kind kind) {
  struct session *s = session_new(&fx->srv, codec_get(kind), "127.0.0.1");
  assert_non_null(s);
  session_set_connected(s);
  return s;
}

/* Queues a publication push with DATA (JSON text) to S. */
static void push_publication(struct session *s, const char *data) {
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  pub.data.data = (uint8_t *)data;
  pub.data.len = strlen(data);
  push.channel = "news";
  push.pub = &pub;
  reply.push = &push;
  assert_int_equal(session_send_reply(s, &reply), 0);
}

static void events_follow_the_session_in_order(void **state) {
  struct fixture *fx = *state;
  struct session *s = new_session(fx, CODEC_JSON), *other = new_session(fx, CODEC_JSON);
  struct trace *t = NULL;
  struct trace_info info;
  wakes = 0;
  assert_false(trace_on());
  assert_int_equal(trace_start(s, count_wake, NULL, &t, &info), 0);
  assert_true(trace_on());
  assert_int_equal(info.codec, CODEC_JSON);

  trace_emulation(s, 3, 204);
  session_feed(s, (const uint8_t *)"{}\n", 3); /* no ping was sent: a pong out of turn closes with 3501 */
  push_publication(other, "1");                /* not traced */
  session_detach(s);

  struct trace_event ev[16];
  uint64_t dropped = 9;
  size_t n = trace_take(t, ev, 16, &dropped);
  assert_int_equal(dropped, 0);
  enum trace_event_kind want[] = {TRACE_EV_EMULATION, TRACE_EV_IN, TRACE_EV_CLOSING, TRACE_EV_OUT,
                                  TRACE_EV_END};
  assert_int_equal(n, sizeof want / sizeof want[0]);
  for (size_t i = 0; i < n; i++) assert_int_equal(ev[i].kind, want[i]);
  assert_int_equal(ev[0].status, 204);
  assert_memory_equal(ev[1].frame->data, "{}\n", 3);
  assert_int_equal(ev[2].code, DISCONNECT_BAD_REQUEST);
  enum trace_frame_type type;
  json_t *out = trace_decode_reply(info.codec, ev[3].frame->data, ev[3].frame->len, &type);
  assert_int_equal(type, TRACE_FRAME_DISCONNECT);
  assert_int_equal(json_integer_value(
                       json_object_get(json_object_get(json_object_get(out, "push"), "disconnect"), "code")),
                   DISCONNECT_BAD_REQUEST);
  json_decref(out);
  assert_int_equal(ev[4].code, DISCONNECT_BAD_REQUEST);
  assert_true(ev[0].time_ms > 0 && ev[0].time_ms <= ev[4].time_ms);
  assert_true(wakes >= 2); /* the first event, and the end */
  for (size_t i = 0; i < n; i++) trace_event_release(&ev[i]);

  trace_stop(t);
  assert_false(trace_on());
  session_detach(other);
}

static void a_full_queue_drops_and_counts_but_the_end_gets_through(void **state) {
  struct fixture *fx = *state;
  fx->cfg.client_queue_max_size = 1 << 30;
  struct session *s = new_session(fx, CODEC_JSON);
  struct trace *t = NULL;
  struct trace_info info;
  assert_int_equal(trace_start(s, count_wake, NULL, &t, &info), 0);
  size_t extra = 100;
  for (size_t i = 0; i < TRACE_QUEUE_EVENTS + extra; i++) push_publication(s, "1");
  session_detach(s); /* its queue is cleared: the pushes were queued, then dropped with the session */
  struct trace_event *ev = calloc(TRACE_QUEUE_EVENTS + 1, sizeof *ev);
  assert_non_null(ev);
  uint64_t dropped = 0;
  size_t n = trace_take(t, ev, TRACE_QUEUE_EVENTS + 1, &dropped);
  assert_int_equal(n, TRACE_QUEUE_EVENTS);
  assert_int_equal(ev[n - 1].kind, TRACE_EV_END);                 /* in place of the newest event */
  assert_int_equal(ev[n - 1].code, DISCONNECT_CONNECTION_CLOSED); /* it went away without closing */
  assert_int_equal(dropped, extra + 1);
  for (size_t i = 0; i < n; i++) trace_event_release(&ev[i]);
  free(ev);
  trace_stop(t);
}

static void traces_are_limited_and_an_ended_session_is_refused(void **state) {
  struct fixture *fx = *state;
  struct session *s[TRACE_MAX + 1];
  struct trace *t[TRACE_MAX + 1];
  struct trace_info info;
  for (int i = 0; i <= TRACE_MAX; i++) s[i] = new_session(fx, CODEC_PROTOBUF);
  for (int i = 0; i < TRACE_MAX; i++) assert_int_equal(trace_start(s[i], count_wake, NULL, &t[i], &info), 0);
  assert_int_equal(trace_start(s[TRACE_MAX], count_wake, NULL, &t[TRACE_MAX], &info), -TRACE_EBUSY);
  trace_stop(t[0]);
  session_ref(s[TRACE_MAX]); /* as the registry lookup of `trace ID` holds one */
  session_detach(s[TRACE_MAX]);
  assert_int_equal(trace_start(s[TRACE_MAX], count_wake, NULL, &t[TRACE_MAX], &info), -TRACE_EENDED);
  session_unref(s[TRACE_MAX]);
  for (int i = 1; i < TRACE_MAX; i++) trace_stop(t[i]);
  for (int i = 0; i < TRACE_MAX; i++) session_detach(s[i]);
  assert_false(trace_on());
}

/* --- decoding --- */

/* REPLY encoded by codec KIND, decoded back: the JSON text of the decoded value and its type. */
static char *roundtrip(enum codec_kind kind, const Protocol__Reply *reply, enum trace_frame_type *type) {
  struct frame *f = NULL;
  assert_int_equal(codec_get(kind)->encode_reply(reply, &f), 0);
  json_t *v = trace_decode_reply(kind, f->data, f->len, type);
  frame_unref(f);
  char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(v);
  return text;
}

static void replies_of_every_kind_decode_to_the_same_json(void **state) {
  (void)state;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT, ping = PROTOCOL__REPLY__INIT;
  pub.data.data = (uint8_t *)"{\"a\":1}";
  pub.data.len = 7;
  pub.offset = 5;
  push.channel = "news";
  push.pub = &pub;
  reply.push = &push;
  for (int k = 0; k < CODEC_COUNT; k++) {
    enum trace_frame_type type;
    char *text = roundtrip((enum codec_kind)k, &reply, &type);
    assert_string_equal(text, "{\"push\":{\"channel\":\"news\",\"pub\":{\"data\":{\"a\":1},\"offset\":5}}}");
    assert_int_equal(type, TRACE_FRAME_PUSH);
    free(text);
    text = roundtrip((enum codec_kind)k, &ping, &type);
    assert_string_equal(text, "{}");
    assert_int_equal(type, TRACE_FRAME_PING);
    free(text);
  }
}

static void a_websocket_close_frame_shows_its_code(void **state) {
  (void)state;
  struct frame *f = codec_ws_close_frame(3012, "no pong");
  enum trace_frame_type type;
  json_t *v = trace_decode_reply(CODEC_WS_PROTOBUF, f->data, f->len, &type);
  assert_int_equal(type, TRACE_FRAME_DISCONNECT);
  json_t *close = json_object_get(v, "close");
  assert_int_equal(json_integer_value(json_object_get(close, "code")), 3012);
  assert_string_equal(json_string_value(json_object_get(close, "reason")), "no pong");
  json_decref(v);
  frame_unref(f);
  v = trace_decode_reply(CODEC_PROTOBUF, (const uint8_t *)"\x05\x01", 2, &type); /* a length it lacks */
  assert_int_equal(type, TRACE_FRAME_UNDECODABLE);
  assert_string_equal(json_string_value(json_object_get(v, "undecodable")), "0501");
  json_decref(v);
}

struct seen {
  char *text[8];
  size_t size[8];
  enum trace_frame_type type[8];
  size_t n;
};

static void collect(void *arg, json_t *command, size_t size, enum trace_frame_type type) {
  struct seen *s = arg;
  assert_true(s->n < 8);
  s->text[s->n] = json_dumps(command, JSON_COMPACT | JSON_SORT_KEYS);
  s->size[s->n] = size;
  s->type[s->n++] = type;
  json_decref(command);
}

static void commands_are_split_and_pongs_named(void **state) {
  (void)state;
  struct seen s = {0};
  const char *json = "{\"id\":2,\"subscribe\":{\"channel\":\"a\"}}\n{}\nnot json";
  trace_decode_commands(CODEC_JSON, (const uint8_t *)json, strlen(json), collect, &s);
  assert_int_equal(s.n, 3);
  assert_string_equal(s.text[0], "{\"id\":2,\"subscribe\":{\"channel\":\"a\"}}");
  assert_int_equal(s.type[0], TRACE_FRAME_COMMAND);
  assert_int_equal(s.size[0],
                   strlen("{\"id\":2,\"subscribe\":{\"channel\":\"a\"}}")); /* without its newline */
  assert_string_equal(s.text[1], "{}");
  assert_int_equal(s.type[1], TRACE_FRAME_PONG);
  assert_int_equal(s.size[1], 2);
  assert_int_equal(s.type[2], TRACE_FRAME_UNDECODABLE);
  for (size_t i = 0; i < s.n; i++) free(s.text[i]);

  /* protobuf: {id: 3, subscribe: {channel: "b"}} delimited (Command.id = 1, subscribe = 5) */
  struct seen p = {0};
  const uint8_t pb[] = {7, 0x08, 3, 0x2a, 3, 0x0a, 1, 'b'};
  trace_decode_commands(CODEC_PROTOBUF, pb, sizeof pb, collect, &p);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.text[0], "{\"id\":3,\"subscribe\":{\"channel\":\"b\"}}");
  assert_int_equal(p.size[0], sizeof pb);
  free(p.text[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(events_follow_the_session_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(a_full_queue_drops_and_counts_but_the_end_gets_through, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(traces_are_limited_and_an_ended_session_is_refused, setup, teardown),
      cmocka_unit_test(replies_of_every_kind_decode_to_the_same_json),
      cmocka_unit_test(a_websocket_close_frame_shows_its_code),
      cmocka_unit_test(commands_are_split_and_pongs_named),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
