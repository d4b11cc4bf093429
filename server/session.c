/* session: per-client state, its bounded frame queue and its timer (see session.h for the threading
 * and lifetime rules). The queue is a ring of frame references that grows by doubling; a frame is never
 * copied on the way in, and the drain copies as many whole frames as fit into the transport's buffer,
 * so one write carries many messages. client_queue_max_size bounds the queue's real memory: each entry
 * is charged its frame's heap footprint (in full, even when other queues share the frame) and the ring
 * is charged its whole capacity, so tiny frames cannot pin many times the limit; an emptied ring that
 * had grown past QUEUE_SHRINK_CAP slots is freed, so a burst's memory goes back once it is drained. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codes.h"
#include "log.h"
#include "loops.h"
#include "server.h"
#include "stats.h"
#include "trace.h"
#include "timer.h"

static struct frame *ping_frames[CODEC_COUNT];
static pthread_once_t ping_once = PTHREAD_ONCE_INIT;

static void make_ping_frames(void) {
  Protocol__Reply empty = PROTOCOL__REPLY__INIT;
  for (int k = 0; k < CODEC_COUNT; k++) codec_get((enum codec_kind)k)->encode_reply(&empty, &ping_frames[k]);
}

static void on_timer(void *arg);

/* Arms the session's one timer for KIND; the armed timer holds a reference. Caller holds s->lock.
 * Pings are rounded up to the next whole second: libmicrohttpd walks every suspended connection each
 * time one is resumed in a batch, so pings that fire together cost one walk instead of one per tick
 * (the benchmark measured idle CPU for 10k streams falling from 4.2 % to 1.7 % of a core). */
static void arm_timer(struct session *s, enum session_timer kind, uint64_t delay_ms) {
  if (kind == SESSION_TIMER_PING) {
    uint64_t now = timer_now_ms();
    delay_ms = (now + delay_ms + 999) / 1000 * 1000 - now;
  }
  s->timer_kind = kind;
  if (!timer_wheel_schedule(s->srv->timers, &s->timer, delay_ms, on_timer, s)) session_ref(s);
}

struct session *session_new(struct server *srv, const struct codec *codec, const char *remote) {
  struct session *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  atomic_init(&s->refs, 1);
  pthread_mutex_init(&s->lock, NULL);
  s->srv = srv;
  s->codec = codec;
  s->user = strdup("");
  s->name = strdup("");
  s->version = strdup("");
  if (s->user == NULL || s->name == NULL || s->version == NULL || id_new_uuid(s->client_id) != 0 ||
      id_new_uuid(s->session_id) != 0) {
    session_unref(s);
    return NULL;
  }
  snprintf(s->remote, sizeof s->remote, "%s", remote ? remote : "");
  s->created_ms = timer_now_ms();
  int loop = loops_current();
  s->loop = loop > 0 ? (unsigned)loop : 0;
  s->state = SESSION_CONNECTING;
  pthread_mutex_lock(&s->lock);
  arm_timer(s, SESSION_TIMER_STALE, (uint64_t)srv->boot_cfg->client_stale_close_delay_ms);
  pthread_mutex_unlock(&s->lock);
  return s;
}

struct session *session_ref(struct session *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  return s;
}

void session_unref(struct session *s) {
  if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  for (size_t i = 0; i < s->queue_len; i++) frame_unref(s->queue[(s->queue_head + i) % s->queue_cap]);
  free(s->queue);
  free(s->conn_info.data);
  free(s->meta.data);
  free(s->proxy_headers);
  free(s->user);
  free(s->name);
  free(s->version);
  session_feed_release(s);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

void session_attach(struct session *s, const struct session_transport *t, void *ctx) {
  pthread_mutex_lock(&s->lock);
  s->transport = t;
  s->transport_ctx = ctx;
  pthread_mutex_unlock(&s->lock);
}

#define QUEUE_INITIAL_CAP 8
#define QUEUE_SHRINK_CAP (8 * QUEUE_INITIAL_CAP) /* an empty ring with more slots than this is freed */

/* The ring's capacity once it holds one more frame. Caller holds s->lock. */
static size_t cap_for_one_more(const struct session *s) {
  if (s->queue_len < s->queue_cap) return s->queue_cap;
  return s->queue_cap ? s->queue_cap * 2 : QUEUE_INITIAL_CAP;
}

/* Whether one more reference to F keeps the queue's memory (frames and ring) within
 * client_queue_max_size. Caller holds s->lock. */
static bool queue_admits(const struct session *s, const struct frame *f) {
  size_t total = s->queued_bytes + frame_footprint(f) + cap_for_one_more(s) * sizeof *s->queue;
  return total <= (size_t)s->srv->boot_cfg->client_queue_max_size;
}

void *(*session_ring_alloc)(size_t size) = malloc;

/* Makes room for one more frame in the ring. Caller holds s->lock. Returns 0 or -1 (out of memory). */
static int queue_reserve(struct session *s) {
  if (s->queue_len < s->queue_cap) return 0;
  size_t cap = cap_for_one_more(s);
  struct frame **q = session_ring_alloc(cap * sizeof *q);
  if (q == NULL) return -1;
  for (size_t i = 0; i < s->queue_len; i++) q[i] = s->queue[(s->queue_head + i) % s->queue_cap];
  free(s->queue);
  s->queue = q;
  s->queue_cap = cap;
  s->queue_head = 0;
  return 0;
}

/* Frees an emptied ring that a burst made large (the next frame allocates QUEUE_INITIAL_CAP slots).
 * Caller holds s->lock. */
static void queue_shrink(struct session *s) {
  if (s->queue_len > 0 || s->queue_cap <= QUEUE_SHRINK_CAP) return;
  free(s->queue);
  s->queue = NULL;
  s->queue_cap = 0;
  s->queue_head = 0;
}

static void account(struct session *s, const struct frame *f) {
  s->queue_len++;
  s->queued_bytes += frame_footprint(f);
  s->messages_out++;
  s->bytes_out += f->len;
  atomic_fetch_add_explicit(&s->srv->stats.messages_out, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->srv->stats.bytes_out, f->len, memory_order_relaxed);
  if (trace_on()) trace_out(s, f);
}

/* Appends a reference to F to the ring. Caller holds s->lock. Returns 0 or -1 (out of memory). */
static int queue_push(struct session *s, struct frame *f) {
  if (queue_reserve(s) != 0) return -1;
  s->queue[(s->queue_head + s->queue_len) % s->queue_cap] = frame_ref(f);
  account(s, f);
  return 0;
}

/* Puts a reference to F at the head of the ring (nothing drained yet). Caller holds s->lock. */
static int queue_push_front(struct session *s, struct frame *f) {
  if (s->head_offset != 0 || queue_reserve(s) != 0) return -1;
  s->queue_head = (s->queue_head + s->queue_cap - 1) % s->queue_cap;
  s->queue[s->queue_head] = frame_ref(f);
  account(s, f);
  return 0;
}

/* Drops every queued frame, except a head frame already partly written (so the stream never carries a
 * torn frame). The ring stays (a Disconnect push follows without allocating); the drain shrinks it.
 * Caller holds s->lock. */
static void queue_clear(struct session *s) {
  size_t keep = s->head_offset > 0 ? 1 : 0;
  while (s->queue_len > keep) {
    struct frame *f = s->queue[(s->queue_head + s->queue_len - 1) % s->queue_cap];
    s->queued_bytes -= frame_footprint(f);
    frame_unref(f);
    s->queue_len--;
  }
}

/* Clears the parked flag; returns true when the caller must call the transport's wake after unlocking.
 * Caller holds s->lock. */
static bool take_wake(struct session *s) {
  bool wake = s->parked && s->transport != NULL;
  s->parked = false;
  return wake;
}

/* Calls the transport's wake. The transport is read again under the lock: it may have detached since
 * the wake was decided. */
static void wake_now(struct session *s) {
  pthread_mutex_lock(&s->lock);
  const struct session_transport *t = s->transport;
  void *ctx = s->transport_ctx;
  pthread_mutex_unlock(&s->lock);
  if (t) t->wake(s, ctx);
}

static void wake_deferred(void *a, void *b) {
  (void)b;
  wake_now(a);
  session_unref(a);
}

/* Wakes the transport: on a core loop thread after the loop's batch (so fan-out wakes each session
 * once however many frames it queued, and never makes a syscall under the hub's locks), at once
 * elsewhere. The deferred wake holds a reference. */
static void do_wake(struct session *s, bool wake) {
  if (!wake) return;
  session_ref(s);
  if (loops_defer(wake_deferred, s, NULL)) return;
  session_unref(s);
  wake_now(s);
}

/* Starts closing under the lock (see session_close). Returns whether a wake is due. */
static bool close_locked(struct session *s, uint32_t code, const char *reason) {
  if (s->state >= SESSION_CLOSING) return false;
  s->state = SESSION_CLOSING;
  stats_disconnect(s->srv, code);
  if (trace_on()) trace_closing(s, code);
  if (code == DISCONNECT_SLOW) queue_clear(s);
  if (code != DISCONNECT_CONNECTION_CLOSED) {
    Protocol__Disconnect d = PROTOCOL__DISCONNECT__INIT;
    Protocol__Push push = PROTOCOL__PUSH__INIT;
    Protocol__Reply reply = PROTOCOL__REPLY__INIT;
    d.code = code;
    d.reason = (char *)(reason ? reason : codes_disconnect_reason(code));
    push.disconnect = &d;
    reply.push = &push;
    struct frame *f = NULL;
    if (s->codec->encode_reply(&reply, &f) == 0) {
      queue_push(s, f);
      frame_unref(f);
    }
  }
  log_debug("session %s client %s closing with %u", s->session_id, s->client_id, code);
  return take_wake(s);
}

/* The ring could not grow: a frame would be lost unnoticed, so the session ends with 3004 and the client
 * reconnects and recovers. The queued frames go (as for 3008), which leaves room for the Disconnect
 * push. Caller holds s->lock; returns whether a wake is due. */
static bool close_no_room(struct session *s) {
  log_warn("client %s: out of memory for its queue: disconnecting", s->client_id);
  queue_clear(s);
  return close_locked(s, DISCONNECT_SERVER_ERROR, NULL);
}

void session_close(struct session *s, uint32_t code) { session_close_reason(s, code, NULL); }

void session_close_reason(struct session *s, uint32_t code, const char *reason) {
  pthread_mutex_lock(&s->lock);
  bool wake = close_locked(s, code, reason);
  pthread_mutex_unlock(&s->lock);
  do_wake(s, wake);
}

int session_enqueue(struct session *s, struct frame *f) {
  int rc = -1;
  bool wake = false;
  pthread_mutex_lock(&s->lock);
  if (s->state >= SESSION_CLOSING) goto out;
  if (!queue_admits(s, f)) {
    atomic_fetch_add_explicit(&s->srv->stats.queue_drops, 1, memory_order_relaxed);
    wake = close_locked(s, DISCONNECT_SLOW, NULL);
    goto out;
  }
  rc = queue_push(s, f);
  if (rc == 0) {
    wake = take_wake(s);
  } else {
    wake = close_no_room(s);
  }
out:
  pthread_mutex_unlock(&s->lock);
  do_wake(s, wake);
  return rc;
}

/* How a session ends when one of its replies cannot be encoded: a payload its protocol cannot carry
 * will never fit (3506, terminal), anything else (out of memory) may pass on a new connection (3004). */
static const struct {
  int rc;
  uint32_t code;
} reply_failures[] = {
    {-CODEC_EDATA, DISCONNECT_INAPPROPRIATE_PROTOCOL},
    {-CODEC_ENOMEM, DISCONNECT_SERVER_ERROR},
};

uint32_t session_encode_failure_code(int rc) {
  uint32_t code = DISCONNECT_SERVER_ERROR;
  for (size_t i = 0; i < sizeof reply_failures / sizeof reply_failures[0]; i++)
    if (reply_failures[i].rc == rc) code = reply_failures[i].code;
  return code;
}

/* Closes S because a reply failed to encode with RC: the client is never left waiting for it. */
static void reply_failed(struct session *s, int rc) {
  uint32_t code = session_encode_failure_code(rc);
  log_warn("client %s: cannot encode reply (%s): disconnecting with %u", s->client_id, codec_strerror(rc),
           code);
  session_close(s, code);
}

int session_send_reply(struct session *s, const Protocol__Reply *reply) {
  struct frame *f = NULL;
  int rc = s->codec->encode_reply(reply, &f);
  if (rc != 0) {
    reply_failed(s, rc);
    return -1;
  }
  rc = session_enqueue(s, f);
  frame_unref(f);
  return rc;
}

int session_send_reply_first(struct session *s, const Protocol__Reply *reply) {
  struct frame *f = NULL;
  int rc = s->codec->encode_reply(reply, &f);
  if (rc != 0) {
    reply_failed(s, rc);
    return -1;
  }
  pthread_mutex_lock(&s->lock);
  bool wake = false;
  rc = -1;
  if (s->state < SESSION_CLOSING && queue_push_front(s, f) == 0) {
    rc = 0;
    wake = take_wake(s);
  } else if (s->state < SESSION_CLOSING) {
    wake = close_no_room(s);
  }
  pthread_mutex_unlock(&s->lock);
  do_wake(s, wake);
  frame_unref(f);
  return rc;
}

int session_send_error(struct session *s, uint32_t id, uint32_t code) {
  Protocol__Error e = PROTOCOL__ERROR__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  e.code = code;
  e.message = (char *)codes_error_message(code);
  e.temporary = codes_error_temporary(code);
  reply.id = id;
  reply.error = &e;
  return session_send_reply(s, &reply);
}

size_t session_drain(struct session *s, uint8_t *buf, size_t max, bool *eof) {
  size_t n = 0;
  *eof = false;
  pthread_mutex_lock(&s->lock);
  while (s->queue_len > 0 && n < max) {
    struct frame *f = s->queue[s->queue_head];
    size_t avail = f->len - s->head_offset;
    if (n > 0 && avail > max - n) break; /* whole frames per write, unless one frame is bigger */
    size_t take = avail < max - n ? avail : max - n;
    memcpy(buf + n, f->data + s->head_offset, take);
    n += take;
    s->head_offset += take;
    if (s->head_offset < f->len) break;
    s->head_offset = 0;
    s->queued_bytes -= frame_footprint(f);
    s->queue_head = (s->queue_head + 1) % s->queue_cap;
    s->queue_len--;
    frame_unref(f);
  }
  queue_shrink(s);
  if (n == 0) {
    if (s->state >= SESSION_CLOSING)
      *eof = true;
    else
      s->parked = true;
  }
  pthread_mutex_unlock(&s->lock);
  return n;
}

void session_detach(struct session *s) {
  pthread_mutex_lock(&s->lock);
  if (s->state < SESSION_CLOSING) {
    log_debug("session %s client %s: client went away", s->session_id, s->client_id);
    stats_disconnect(s->srv, DISCONNECT_CONNECTION_CLOSED);
  }
  s->state = SESSION_CLOSED;
  s->transport = NULL;
  s->parked = false;
  queue_clear(s);
  pthread_mutex_unlock(&s->lock);
  if (s->srv->session_hooks) s->srv->session_hooks->ended(s);
  if (trace_on()) trace_ended(s);
  if (timer_wheel_cancel(s->srv->timers, &s->timer)) session_unref(s);
  if (timer_wheel_cancel(s->srv->timers, &s->expire_timer)) session_unref(s);
  session_unref(s);
}

void session_set_connected(struct session *s) {
  const struct config *cfg = s->srv->boot_cfg;
  uint64_t interval = (uint64_t)cfg->ping_interval_ms;
  pthread_mutex_lock(&s->lock);
  if (s->state == SESSION_CONNECTING) {
    s->state = SESSION_CONNECTED;
    atomic_fetch_add_explicit(&s->srv->stats.connections, 1, memory_order_relaxed);
    /* first ping at a random point in [interval/2, interval) so that pings of sessions that connected
     * together do not all fire in the same tick */
    if (interval > 0)
      arm_timer(s, SESSION_TIMER_PING, interval / 2 + id_random_below(interval / 2 + 1));
    else if (timer_wheel_cancel(s->srv->timers, &s->timer))
      session_unref(s);
  }
  pthread_mutex_unlock(&s->lock);
}

static void on_expire_timer(void *arg) {
  struct session *s = arg;
  bool wake = false;
  pthread_mutex_lock(&s->lock);
  /* now - expires_at, not expires_at + grace: an exp claim may be 2^63-1, and both are positive */
  int64_t overdue_s = timer_unix_now() - s->expires_at;
  if (s->state == SESSION_CONNECTED && s->expires_at > 0 &&
      overdue_s >= s->srv->boot_cfg->client_expired_close_delay_ms / 1000)
    wake = close_locked(s, DISCONNECT_EXPIRED, NULL);
  pthread_mutex_unlock(&s->lock);
  do_wake(s, wake);
  session_unref(s);
}

/* Milliseconds until the expiry check for EXPIRES_AT (unix seconds, > 0) seen at NOW: after the grace
 * and one more second (the check compares whole seconds). Saturates at UINT64_MAX (never, for the
 * timing wheel) instead of overflowing: a token may say exp = 2^63-1. */
static uint64_t expiry_check_delay_ms(int64_t expires_at, int64_t now, int64_t grace_ms) {
  int64_t left_s = expires_at - now; /* both positive: cannot overflow */
  if (left_s > (INT64_MAX - grace_ms - 1000) / 1000) return UINT64_MAX;
  int64_t delay_ms = left_s * 1000 + grace_ms;
  return (uint64_t)(delay_ms < 0 ? 0 : delay_ms) + 1000;
}

void session_set_expiry(struct session *s, int64_t expires_at) {
  pthread_mutex_lock(&s->lock);
  s->expires_at = expires_at;
  if (expires_at > 0 && s->state < SESSION_CLOSING) {
    uint64_t delay_ms =
        expiry_check_delay_ms(expires_at, timer_unix_now(), s->srv->boot_cfg->client_expired_close_delay_ms);
    if (!timer_wheel_schedule(s->srv->timers, &s->expire_timer, delay_ms, on_expire_timer, s)) session_ref(s);
  } else if (timer_wheel_cancel(s->srv->timers, &s->expire_timer)) {
    session_unref(s);
  }
  pthread_mutex_unlock(&s->lock);
}

int session_pong(struct session *s) {
  pthread_mutex_lock(&s->lock);
  int rc = s->pong_pending ? 0 : -1;
  s->pong_pending = false;
  s->last_pong_ms = timer_now_ms();
  pthread_mutex_unlock(&s->lock);
  return rc;
}

enum session_state session_state(struct session *s) { return atomic_load(&s->state); }

/* Sends a ping and arms the pong check (or the next ping when pongs are not required). */
static bool ping_locked(struct session *s) {
  const struct config *cfg = s->srv->boot_cfg;
  pthread_once(&ping_once, make_ping_frames);
  if (ping_frames[s->codec->kind]) queue_push(s, ping_frames[s->codec->kind]);
  s->last_ping_ms = timer_now_ms();
  if (cfg->pong_timeout_ms > 0 && !(s->transport && s->transport->unidirectional)) {
    s->pong_pending = true;
    arm_timer(s, SESSION_TIMER_PONG_CHECK, (uint64_t)cfg->pong_timeout_ms);
  } else {
    arm_timer(s, SESSION_TIMER_PING, (uint64_t)cfg->ping_interval_ms);
  }
  return take_wake(s);
}

static void on_timer(void *arg) {
  struct session *s = arg;
  const struct config *cfg = s->srv->boot_cfg;
  bool wake = false, expire_subs = false;
  pthread_mutex_lock(&s->lock);
  switch (s->timer_kind) {
    case SESSION_TIMER_STALE:
      if (s->state == SESSION_CONNECTING || (s->state == SESSION_CONNECTED && s->unusable))
        wake = close_locked(s, DISCONNECT_STALE, NULL);
      break;
    case SESSION_TIMER_PING:
      if (s->state == SESSION_CONNECTED) wake = ping_locked(s);
      expire_subs = s->state == SESSION_CONNECTED && (s->sub_count > 0 || s->proxy_expires_at > 0);
      break;
    case SESSION_TIMER_PONG_CHECK:
      if (s->state != SESSION_CONNECTED) break;
      if (s->pong_pending)
        wake = close_locked(s, DISCONNECT_NO_PONG, NULL);
      else
        arm_timer(s, SESSION_TIMER_PING, (uint64_t)(cfg->ping_interval_ms - cfg->pong_timeout_ms));
      break;
  }
  pthread_mutex_unlock(&s->lock);
  do_wake(s, wake);
  if (expire_subs && s->srv->session_hooks) s->srv->session_hooks->ping_check(s); /* checked with every ping: ping_interval granularity */
  session_unref(s);
}
