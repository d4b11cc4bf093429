/* trace: the recorder behind `streamctl trace` (see trace.h). Every running trace sits in one slot of
 * a fixed table, looked up by session pointer under one lock; each has a ring of events. An event
 * never waits and never blocks: a full ring drops it and counts the drop.
 *
 * Invariants: trace_active equals the number of occupied slots; a trace in a slot holds a reference to
 * its session; once a trace saw its session's end (`ended`), it records nothing more. */
#include "trace.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codes.h"
#include "session.h"

struct trace {
  struct session *session; /* a reference */
  void (*wake)(void *arg);
  void *wake_arg;
  struct trace_event *ring; /* TRACE_QUEUE_EVENTS slots */
  size_t head, len, bytes;
  uint64_t dropped;   /* since the reader's last take */
  uint32_t code;      /* the code it started closing with, 0 until then */
  bool began_closing; /* it was closing already when the trace began: its code is not known */
  bool ended;
};

atomic_uint trace_active;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct trace *slots[TRACE_MAX];
static const struct session *_Atomic traced[TRACE_MAX]; /* slots[i]->session, readable without the lock */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The trace of S, or NULL. Caller holds the lock. */
static struct trace *find_locked(const struct session *s) {
  for (size_t i = 0; i < TRACE_MAX; i++)
    if (slots[i] && slots[i]->session == s) return slots[i];
  return NULL;
}

/* Appends EV to T's ring (taking ownership of its frame), or drops it. Caller holds the lock. */
static void push_locked(struct trace *t, struct trace_event ev) {
  size_t bytes = ev.frame ? ev.frame->len : 0;
  bool last = ev.kind == TRACE_EV_END; /* the end always finds room: it replaces the newest event */
  if (!last && (t->len == TRACE_QUEUE_EVENTS || t->bytes + bytes > TRACE_QUEUE_BYTES)) {
    frame_unref(ev.frame);
    t->dropped++;
    return;
  }
  if (last && t->len == TRACE_QUEUE_EVENTS) {
    struct trace_event *newest = &t->ring[(t->head + t->len - 1) % TRACE_QUEUE_EVENTS];
    t->bytes -= newest->frame ? newest->frame->len : 0;
    trace_event_release(newest);
    t->len--;
    t->dropped++;
  }
  ev.time_ms = now_ms();
  t->ring[(t->head + t->len) % TRACE_QUEUE_EVENTS] = ev;
  t->len++;
  t->bytes += bytes;
  if (t->len == 1 || last) t->wake(t->wake_arg);
}

/* Whether S may be traced: a scan of TRACE_MAX atomic pointers, without the lock, so that while some
 * session is traced the others' frames do not all meet on the trace lock. */
static bool maybe_traced(const struct session *s) {
  for (size_t i = 0; i < TRACE_MAX; i++)
    if (atomic_load(&traced[i]) == s) return true; /* seq_cst: see trace_on */
  return false;
}

/* Records EV for S when S is traced, with a reference to SHARE or a copy of DATA[0..LEN) as its frame
 * when given. Nothing is copied or referenced for a session nobody traces. */
static void record(struct session *s, struct trace_event ev, const struct frame *share, const uint8_t *data,
                   size_t len) {
  if (!maybe_traced(s)) return;
  pthread_mutex_lock(&lock);
  struct trace *t = find_locked(s);
  if (t && !t->ended) {
    if (share) ev.frame = frame_ref((struct frame *)share);
    if (data && len && (ev.frame = frame_new(len)) != NULL) memcpy(ev.frame->data, data, len);
    if (ev.kind == TRACE_EV_CLOSING && t->code == 0) t->code = ev.code;
    if (ev.kind == TRACE_EV_END) {
      t->ended = true;
      /* ended without closing: its client went away (3000), as session_detach counts it */
      ev.code = t->code ? t->code : t->began_closing ? 0 : DISCONNECT_CONNECTION_CLOSED;
    }
    if (data && len && ev.frame == NULL)
      t->dropped++; /* out of memory for the copy */
    else
      push_locked(t, ev);
  }
  pthread_mutex_unlock(&lock);
}

int trace_start(struct session *s, void (*wake)(void *arg), void *arg, struct trace **out,
                struct trace_info *info) {
  struct trace *t = calloc(1, sizeof *t);
  struct trace_event *ring = t ? calloc(TRACE_QUEUE_EVENTS, sizeof *ring) : NULL;
  if (ring == NULL) {
    free(t);
    return -TRACE_ENOMEM;
  }
  info->codec = s->codec->kind;
  pthread_mutex_lock(&s->lock);
  snprintf(info->transport, sizeof info->transport, "%s", s->transport ? s->transport->name : "");
  pthread_mutex_unlock(&s->lock);
  t->session = session_ref(s);
  t->wake = wake;
  t->wake_arg = arg;
  t->ring = ring;
  t->began_closing = session_state(s) >= SESSION_CLOSING;
  int rc = -TRACE_EBUSY;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < TRACE_MAX && rc != 0; i++) {
    if (slots[i]) continue;
    slots[i] = t;
    atomic_fetch_add(&trace_active, 1);
    atomic_store(&traced[i], s);
    rc = 0;
  }
  pthread_mutex_unlock(&lock);
  /* A session that ended before the slot was taken was never seen by trace_ended: refuse it. One that
   * ends from here on is (its state is set before the hook runs). */
  if (rc == 0 && session_state(s) == SESSION_CLOSED) {
    trace_stop(t);
    return -TRACE_EENDED;
  }
  if (rc != 0) {
    session_unref(s);
    free(ring);
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

size_t trace_take(struct trace *t, struct trace_event *out, size_t max, uint64_t *dropped) {
  size_t n = 0;
  pthread_mutex_lock(&lock);
  while (n < max && t->len > 0) {
    out[n] = t->ring[t->head];
    t->bytes -= out[n].frame ? out[n].frame->len : 0;
    t->head = (t->head + 1) % TRACE_QUEUE_EVENTS;
    t->len--;
    n++;
  }
  *dropped = t->dropped;
  t->dropped = 0;
  pthread_mutex_unlock(&lock);
  return n;
}

void trace_event_release(struct trace_event *ev) {
  frame_unref(ev->frame);
  ev->frame = NULL;
}

void trace_stop(struct trace *t) {
  if (t == NULL) return;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < TRACE_MAX; i++) {
    if (slots[i] != t) continue;
    slots[i] = NULL;
    atomic_store(&traced[i], NULL);
    atomic_fetch_sub(&trace_active, 1);
  }
  pthread_mutex_unlock(&lock);
  for (size_t i = 0; i < t->len; i++) trace_event_release(&t->ring[(t->head + i) % TRACE_QUEUE_EVENTS]);
  session_unref(t->session);
  free(t->ring);
  free(t);
}

void trace_in(struct session *s, const uint8_t *data, size_t len) {
  record(s, (struct trace_event){.kind = TRACE_EV_IN, .size = len}, NULL, data, len);
}

void trace_out(struct session *s, const struct frame *f) {
  record(s,
         (struct trace_event){
             .kind = TRACE_EV_OUT,
             .size = f->len,
         },
         f, NULL, 0);
}

void trace_emulation(struct session *s, size_t len, unsigned status) {
  record(s, (struct trace_event){.kind = TRACE_EV_EMULATION, .size = len, .status = status}, NULL, NULL, 0);
}

void trace_closing(struct session *s, uint32_t code) {
  record(s, (struct trace_event){.kind = TRACE_EV_CLOSING, .code = code}, NULL, NULL, 0);
}

void trace_ended(struct session *s) { record(s, (struct trace_event){.kind = TRACE_EV_END}, NULL, NULL, 0); }
