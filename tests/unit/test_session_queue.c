/* Unit tests for the session's outgoing queue as a bound on memory: client_queue_max_size limits what
 * the frames and the ring of one slow client really pin in the heap (not only their payload bytes), so
 * a flood of tiny frames ends in Disconnect 3008 before the queue outgrows the limit; and the ring
 * gives its memory back once a burst has been drained; a queue that cannot grow ends its session with
 * 3004 rather than losing a frame (the connect reply included). Sessions have no transport: the tests drain
 * their queues directly, as stream.c would. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "frame.h"
#include "session.h"

#include "server_fixture.h"

#define LIMIT (64 * 1024)
#define MANY 100000 /* far more tiny frames than a 64 KiB queue can hold */

static struct session *connected_session(struct fixture *fx) {
  struct session *s = session_new(&fx->srv, codec_get(CODEC_JSON), "127.0.0.1");
  assert_non_null(s);
  session_set_connected(s);
  return s;
}

static struct frame *tiny_frame(void) {
  struct frame *f = frame_new(2);
  assert_non_null(f);
  memcpy(f->data, "1\n", 2);
  return f;
}

/* Drains everything queued for S into a NUL-terminated string (caller frees). */
static char *drain_all(struct session *s) {
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap + 1);
  assert_non_null(buf);
  bool eof = false;
  size_t n;
  while ((n = session_drain(s, (uint8_t *)buf + len, cap - len, &eof)) > 0) len += n;
  buf[len] = '\0';
  return buf;
}

/* What the queue of S pins in the heap right now: every queued frame's allocation as malloc sized it,
 * plus the ring of frame pointers. Caller holds no lock; the session is idle. */
static size_t queue_heap(const struct session *s) {
  size_t total = s->queue_cap * sizeof(struct frame *);
  for (size_t i = 0; i < s->queue_len; i++)
    total += malloc_usable_size(s->queue[(s->queue_head + i) % s->queue_cap]);
  return total;
}

static void tiny_frames_end_in_3008_within_the_limit(void **state) {
  struct fixture *fx = *state;
  fx->cfg.client_queue_max_size = LIMIT;
  struct session *s = connected_session(fx);
  size_t admitted = 0, peak = 0;
  for (int i = 0; i < MANY; i++) {
    struct frame *f = tiny_frame(); /* one allocation each, as publications to different channels are */
    int rc = session_enqueue(s, f);
    frame_unref(f);
    if (rc != 0) break;
    admitted++;
    size_t heap = queue_heap(s);
    if (heap > peak) peak = heap;
  }
  assert_true(admitted > 0);
  assert_true(admitted < MANY);
  assert_int_equal(session_state(s), SESSION_CLOSING);
  /* the limit bounds real memory: the frames' allocations and the ring never went over 64 KiB */
  if (peak > LIMIT)
    fail_msg("a 64 KiB queue pinned %zu bytes of heap in %zu frames of 2 bytes", peak, admitted);
  char *out = drain_all(s);
  assert_string_equal(out, "{\"push\":{\"disconnect\":{\"code\":3008,\"reason\":\"slow\"}}}\n");
  free(out);
  session_detach(s);
}

/* A frame shared by many queues is charged in full to each: the limit bounds what one slow client can
 * pin even when every other holder lets go (man streamd.conf(5), client_queue_max_size). */
static void a_shared_frame_is_charged_in_full_per_reference(void **state) {
  struct fixture *fx = *state;
  fx->cfg.client_queue_max_size = LIMIT;
  struct session *s = connected_session(fx);
  struct frame *f = frame_new(1000);
  assert_non_null(f);
  memset(f->data, 'x', 999);
  f->data[999] = '\n';
  size_t admitted = 0;
  while (session_enqueue(s, f) == 0) admitted++;
  /* 65 references of 1000 payload bytes would fit a payload count; the allocation and slot do not */
  assert_true(admitted * (sizeof *f + f->len + sizeof(struct frame *)) <= LIMIT);
  assert_true(admitted >= 60);
  frame_unref(f);
  char *out = drain_all(s);
  assert_non_null(strstr(out, "\"code\":3008"));
  free(out);
  session_detach(s);
}

static void ring_shrinks_after_a_drained_burst(void **state) {
  struct fixture *fx = *state;
  fx->cfg.client_queue_max_size = 64 * 1024 * 1024;
  struct session *s = connected_session(fx);
  struct frame *f = tiny_frame();
  assert_int_equal(session_enqueue(s, f), 0);
  size_t initial = s->queue_cap;
  for (int i = 0; i < 10000; i++) assert_int_equal(session_enqueue(s, f), 0);
  assert_true(s->queue_cap >= 10001);
  char *out = drain_all(s);
  assert_int_equal(strlen(out), 10001 * 2);
  free(out);
  /* empty again: the ring is back to its first size, and takes frames as before */
  assert_true(s->queue_cap <= initial);
  assert_int_equal(s->queue_len, 0);
  assert_int_equal(session_enqueue(s, f), 0);
  out = drain_all(s);
  assert_string_equal(out, "1\n");
  free(out);
  frame_unref(f);
  session_detach(s);
}

/* The queue's charge goes back to zero once everything is drained (nothing leaks from the account). */
static void charge_returns_to_zero_after_drain(void **state) {
  struct fixture *fx = *state;
  fx->cfg.client_queue_max_size = LIMIT;
  struct session *s = connected_session(fx);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 100; i++) {
      struct frame *f = tiny_frame();
      assert_int_equal(session_enqueue(s, f), 0);
      frame_unref(f);
    }
    free(drain_all(s));
    assert_int_equal(s->queued_bytes, 0);
  }
  assert_int_equal(session_state(s), SESSION_CONNECTED);
  session_detach(s);
}

static void *no_memory(size_t size) {
  (void)size;
  return NULL;
}

/* Fills the ring of S to its first capacity, so that the next frame needs it to grow. */
static void fill_ring(struct session *s) {
  struct frame *f = tiny_frame();
  do assert_int_equal(session_enqueue(s, f), 0);
  while (s->queue_len < s->queue_cap);
  frame_unref(f);
}

static const char disconnect_3004[] =
    "{\"push\":{\"disconnect\":{\"code\":3004,\"reason\":\"internal server error\"}}}\n";

/* Out of memory for the ring (session_ring_alloc, the tests' failure-injection hook): the frame would
 * be lost unnoticed, so the session ends with 3004 and the client reconnects and recovers. */
static void a_queue_that_cannot_grow_closes_with_3004(void **state) {
  struct fixture *fx = *state;
  struct session *s = connected_session(fx);
  fill_ring(s);
  struct frame *f = tiny_frame();
  session_ring_alloc = no_memory;
  int rc = session_enqueue(s, f);
  session_ring_alloc = malloc;
  frame_unref(f);
  assert_int_equal(rc, -1);
  assert_int_equal(session_state(s), SESSION_CLOSING);
  char *out = drain_all(s);
  assert_string_equal(out, disconnect_3004);
  free(out);
  session_detach(s);
}

/* The connect reply goes first; with no room for it the client would wait forever: 3004 instead. */
static void a_connect_reply_without_room_closes_with_3004(void **state) {
  struct fixture *fx = *state;
  struct session *s = session_new(&fx->srv, codec_get(CODEC_JSON), "127.0.0.1");
  assert_non_null(s);
  fill_ring(s); /* publications of server-side subscriptions, queued while connecting */
  Protocol__ConnectResult res = PROTOCOL__CONNECT_RESULT__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  res.client = s->client_id;
  reply.id = 1;
  reply.connect = &res;
  session_ring_alloc = no_memory;
  int rc = session_send_reply_first(s, &reply);
  session_ring_alloc = malloc;
  assert_int_equal(rc, -1);
  assert_int_equal(session_state(s), SESSION_CLOSING);
  char *out = drain_all(s);
  assert_string_equal(out, disconnect_3004);
  free(out);
  session_detach(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(tiny_frames_end_in_3008_within_the_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(a_shared_frame_is_charged_in_full_per_reference, setup, teardown),
      cmocka_unit_test_setup_teardown(ring_shrinks_after_a_drained_burst, setup, teardown),
      cmocka_unit_test_setup_teardown(charge_returns_to_zero_after_drain, setup, teardown),
      cmocka_unit_test_setup_teardown(a_queue_that_cannot_grow_closes_with_3004, setup, teardown),
      cmocka_unit_test_setup_teardown(a_connect_reply_without_room_closes_with_3004, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
