/* broker_redis_sub: this node's PUB/SUB interest and the delivery of what comes over it.
 *
 * Interest: the hub says when a channel gets its first local subscriber (node_subscribe) and loses its
 * last (node_unsubscribe); the loop thread keeps a map of channels with their state (SUBSCRIBE sent,
 * confirmed) and sends SUBSCRIBE at once, UNSUBSCRIBE only about a second after the last subscriber left
 * and only if no new one came (a client that resubscribes right away costs nothing). A subscribe that
 * needs to see every publication from a point on waits for the confirmation first (rb_sub_ensure).
 * When the PUB/SUB connection comes back, every channel in the map is subscribed again, pipelined.
 *
 * Liveness: a PUB/SUB connection can stay open and go silent (a failover behind it). When a shard's
 * has carried nothing for PROBE_INTERVAL_MS, the node publishes to a probe channel of its own through
 * the command connection; no echo within the I/O timeout and the PUB/SUB connection is made again.
 *
 * Delivery: the loop thread only copies each message into the delivery queue; the worker thread
 * decodes it and hands it to the hub under the channel's stripe lock, so the loop never waits for a
 * lock that a subscriber may hold while it waits for Redis. One worker keeps each channel's order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_redis_internal.h"
#include "hub.h"
#include "log.h"
#include "server.h"
#include "strmap.h"
#include "timer.h"

#define UNSUBSCRIBE_DELAY_MS 1000
#define ENSURE_RECHECK_MS 5000  /* a channel subscribed for a subscribe that then failed is dropped */
#define PROBE_INTERVAL_MS 5000
#define POSITION_CHECK_MS 40000 /* Centrifugo's periodic check of positioned channels */
#define VERIFY_DELAY_MS 500      /* publications up to a position read may still be on their way */
#define DELIVERY_QUEUE_MAX 200000 /* messages waiting for the worker; past it they are dropped (logged) */

struct rb_waiter {
  struct rb_waiter *next;
  int rc;
  bool done;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

struct rb_channel {
  struct redis_broker *rb;
  size_t shard;
  bool sent, confirmed;
  struct rb_waiter *waiters;
  struct evloop_timer check; /* drop the subscription when the hub has no subscriber */
  char name[];
};

/* What the worker is handed: a PUB/SUB message to deliver, or a channel whose positioned subscribers
 * are to be checked against the stream's top (after an outage, and periodically). */
enum message_kind { MESSAGE_PUBSUB, MESSAGE_CHECK };

struct rb_message {
  struct rb_message *next;
  enum message_kind kind;
  size_t name_len, len;
  char data[]; /* name NUL payload */
};

/* A position read by a check, compared once every publication up to it has had time to arrive. */
struct rb_verify {
  struct rb_verify *next;
  uint64_t due_ms;
  struct stream_position pos;
  char channel[];
};

struct rb_delivery {
  struct redis_broker *rb;
  pthread_t thread;
  bool started, stopping;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct rb_message *head, **tail;
  size_t queued;
  uint64_t dropped;
  struct rb_verify *verify; /* the worker's own, in due order */
};

/* ---- waiters ---- */

static void waiter_finish(struct rb_waiter *w, int rc) {
  pthread_mutex_lock(&w->lock);
  w->rc = rc;
  w->done = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static void channel_finish_waiters(struct rb_channel *ch, int rc) {
  struct rb_waiter *w = ch->waiters;
  ch->waiters = NULL;
  while (w) {
    struct rb_waiter *next = w->next;
    waiter_finish(w, rc);
    w = next;
  }
}

/* ---- interest (loop thread) ---- */

static void subscribe_reply(void *arg, const redisReply *reply) {
  struct rb_shard *sh = arg;
  struct redis_broker *rb = sh->rb;
  if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) return; /* dropped */
  size_t plen = rb->client_prefix_len;
  const redisReply *name = reply->element[1];
  if (name->type != REDIS_REPLY_STRING || name->len <= plen) return;
  struct rb_channel *ch = strmap_get(rb->channels, name->str + plen);
  if (ch == NULL || ch->confirmed) return;
  ch->confirmed = true;
  channel_finish_waiters(ch, 0);
}

static void send_subscribe(struct rb_channel *ch, const char *verb) {
  struct redis_broker *rb = ch->rb;
  struct rb_shard *sh = &rb->shards[ch->shard];
  char key[RB_KEY_MAX];
  size_t klen = rb_key(rb, "client", ch->name, key);
  const char *argv[2] = {verb, key};
  const size_t lens[2] = {strlen(verb), klen};
  if (klen == 0 || !sh->sub_up) return;
  if (redis_conn_command(sh->sub, 2, argv, lens, subscribe_reply, sh) == 0 && verb[0] == 'S') ch->sent = true;
}

static void check_fire(struct evloop_timer *t) {
  struct rb_channel *ch = t->arg;
  struct redis_broker *rb = ch->rb;
  if (ch->waiters) { /* a subscribe is still waiting for the confirmation: look again later */
    evloop_timer_arm(rb->loop, &ch->check, ENSURE_RECHECK_MS);
    return;
  }
  if (hub_subscriber_count(rb->base.srv->hub, ch->name) > 0) return; /* node_unsubscribe re-arms */
  send_subscribe(ch, "UNSUBSCRIBE");
  strmap_remove(rb->channels, ch->name);
  free(ch);
}

static struct rb_channel *channel_get(struct redis_broker *rb, const char *name) {
  struct rb_channel *ch = strmap_get(rb->channels, name);
  if (ch) return ch;
  size_t len = strlen(name);
  ch = calloc(1, sizeof *ch + len + 1);
  if (ch == NULL) return NULL;
  ch->rb = rb;
  ch->shard = rb_shard_of(rb, name);
  ch->check = (struct evloop_timer){.fn = check_fire, .arg = ch};
  memcpy(ch->name, name, len + 1);
  if (strmap_put(rb->channels, ch->name, ch) != 0) {
    free(ch);
    return NULL;
  }
  return ch;
}

struct interest_task {
  struct redis_broker *rb;
  bool subscribe;
  char name[];
};

static void interest_run(void *arg) {
  struct interest_task *t = arg;
  struct redis_broker *rb = t->rb;
  if (t->subscribe) {
    struct rb_channel *ch = channel_get(rb, t->name);
    if (ch == NULL)
      log_error("redis: out of memory subscribing to %s", t->name);
    else if (!ch->sent)
      send_subscribe(ch, "SUBSCRIBE");
  } else {
    struct rb_channel *ch = strmap_get(rb->channels, t->name);
    if (ch) evloop_timer_arm(rb->loop, &ch->check, UNSUBSCRIBE_DELAY_MS);
  }
  free(t);
}

static int post_interest(struct broker *b, const char *channel, bool subscribe) {
  struct redis_broker *rb = (struct redis_broker *)b;
  size_t len = strlen(channel);
  struct interest_task *t = malloc(sizeof *t + len + 1);
  if (t == NULL) return -BROKER_ENOMEM;
  t->rb = rb;
  t->subscribe = subscribe;
  memcpy(t->name, channel, len + 1);
  if (evloop_post(rb->loop, interest_run, t) != 0) {
    free(t);
    return -BROKER_EUNAVAILABLE;
  }
  return 0;
}

int rb_node_subscribe(struct broker *b, const char *channel) { return post_interest(b, channel, true); }

int rb_node_unsubscribe(struct broker *b, const char *channel) { return post_interest(b, channel, false); }

struct ensure_task {
  struct redis_broker *rb;
  const char *name;
  struct rb_waiter *w;
};

static void ensure_run(void *arg) {
  struct ensure_task *t = arg;
  struct rb_channel *ch = channel_get(t->rb, t->name);
  if (ch == NULL) return waiter_finish(t->w, -BROKER_ENOMEM);
  if (ch->confirmed) return waiter_finish(t->w, 0);
  if (!t->rb->shards[ch->shard].sub_up) return waiter_finish(t->w, -BROKER_EUNAVAILABLE);
  t->w->next = ch->waiters;
  ch->waiters = t->w;
  if (!ch->sent) send_subscribe(ch, "SUBSCRIBE");
  if (!evloop_timer_armed(&ch->check)) evloop_timer_arm(t->rb->loop, &ch->check, ENSURE_RECHECK_MS);
}

int rb_sub_ensure(struct redis_broker *rb, const char *channel) {
  struct rb_waiter w = {0};
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  struct ensure_task t = {rb, channel, &w};
  if (evloop_post(rb->loop, ensure_run, &t) != 0) {
    w.rc = -BROKER_EUNAVAILABLE;
  } else {
    pthread_mutex_lock(&w.lock);
    while (!w.done) pthread_cond_wait(&w.cond, &w.lock); /* answered: confirmed, or the connection dropped */
    pthread_mutex_unlock(&w.lock);
  }
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  return w.rc;
}

static void check_channels(struct redis_broker *rb, size_t shard);

/* ---- liveness (loop thread) ---- */


static void probe_fire(struct evloop_timer *t) {
  struct rb_shard *sh = t->arg;
  struct redis_broker *rb = sh->rb;
  uint64_t now = evloop_now_ms(rb->loop);
  if (sh->sub_up && sh->probe_sent_ms && now - sh->probe_sent_ms > rb->io_timeout_ms) {
    sh->probe_sent_ms = 0;
    redis_conn_reset(sh->sub, "PUB/SUB silent: the probe did not come back");
  } else if (sh->sub_up && !sh->probe_sent_ms && now - sh->last_push_ms >= PROBE_INTERVAL_MS &&
             redis_conn_up(sh->cmd)) {
    const char *argv[3] = {"PUBLISH", rb->probe_key, "probe"};
    const size_t lens[3] = {7, rb->probe_key_len, 5};
    if (redis_conn_command(sh->cmd, 3, argv, lens, NULL, NULL) == 0) sh->probe_sent_ms = now;
  }
  evloop_timer_arm(rb->loop, &sh->probe, sh->probe_sent_ms ? rb->io_timeout_ms / 2 + 1 : PROBE_INTERVAL_MS);
}

struct state_walk {
  struct rb_shard *sh;
  bool up;
};

static void state_cb(const char *key, void *value, void *arg) {
  (void)key;
  struct rb_channel *ch = value;
  struct state_walk *sw = arg;
  if (ch->shard != sw->sh->index) return;
  ch->sent = ch->confirmed = false;
  if (sw->up)
    send_subscribe(ch, "SUBSCRIBE");
  else
    channel_finish_waiters(ch, -BROKER_EUNAVAILABLE);
}

void rb_sub_on_state(void *arg, bool up) {
  struct rb_shard *sh = arg;
  struct redis_broker *rb = sh->rb;
  sh->sub_up = up;
  sh->probe_sent_ms = 0;
  sh->last_push_ms = evloop_now_ms(rb->loop);
  if (up) {
    const char *argv[2] = {"SUBSCRIBE", rb->probe_key};
    const size_t lens[2] = {9, rb->probe_key_len};
    redis_conn_command(sh->sub, 2, argv, lens, NULL, NULL);
    sh->probe.fn = probe_fire; /* the timer itself may be armed already: only its callback is set */
    sh->probe.arg = sh;
    evloop_timer_arm(rb->loop, &sh->probe, PROBE_INTERVAL_MS);
  } else {
    evloop_timer_cancel(rb->loop, &sh->probe);
  }
  struct state_walk sw = {sh, up};
  strmap_foreach(sh->rb->channels, state_cb, &sw);
  if (!up) return;
  log_info("redis: PUB/SUB of shard %zu up, %zu channels subscribed again", sh->index,
           strmap_count(sh->rb->channels));
  if (sh->was_up) check_channels(rb, sh->index); /* what was published during the outage is lost to PUB/SUB */
  sh->was_up = true;
}

/* ---- delivery ---- */

/* Queues a copy of NAME (and PAYLOAD) for the worker. Loop thread. */
static void enqueue(struct rb_delivery *d, enum message_kind kind, const char *name, size_t nlen, const char *payload,
                    size_t len) {
  struct rb_message *m = malloc(sizeof *m + nlen + 1 + len);
  if (m == NULL) return;
  m->next = NULL;
  m->kind = kind;
  m->name_len = nlen;
  m->len = len;
  memcpy(m->data, name, nlen);
  m->data[nlen] = '\0';
  if (len) memcpy(m->data + nlen + 1, payload, len);
  pthread_mutex_lock(&d->lock);
  if (d->queued >= DELIVERY_QUEUE_MAX && kind == MESSAGE_PUBSUB) {
    if (d->dropped++ % 10000 == 0) log_error("redis: delivery queue full, publications dropped");
    pthread_mutex_unlock(&d->lock);
    free(m);
    return;
  }
  *d->tail = m;
  d->tail = &m->next;
  if (d->queued++ == 0) pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
}

struct check_walk {
  struct redis_broker *rb;
  size_t shard; /* SIZE_MAX: every shard */
  size_t queued;
};

static void check_cb(const char *key, void *value, void *arg) {
  struct rb_channel *ch = value;
  struct check_walk *w = arg;
  if (w->shard != SIZE_MAX && ch->shard != w->shard) return;
  if (!hub_has_positioned(w->rb->base.srv->hub, key)) return;
  enqueue(w->rb->delivery, MESSAGE_CHECK, key, strlen(key), NULL, 0);
  w->queued++;
}

/* Has the worker check the positioned channels of SHARD (SIZE_MAX: all). Loop thread. */
static void check_channels(struct redis_broker *rb, size_t shard) {
  struct check_walk w = {rb, shard, 0};
  strmap_foreach(rb->channels, check_cb, &w);
  if (w.queued) log_debug("redis: checking the position of %zu channels", w.queued);
}

static void position_check_fire(struct evloop_timer *t) {
  struct redis_broker *rb = t->arg;
  check_channels(rb, SIZE_MAX);
  evloop_timer_arm(rb->loop, t, POSITION_CHECK_MS);
}

void rb_sub_on_push(void *arg, const redisReply *push) {
  struct rb_shard *sh = arg;
  struct redis_broker *rb = sh->rb;
  struct rb_delivery *d = rb->delivery;
  const redisReply *name = push->element[push->elements - 2], *payload = push->element[push->elements - 1];
  if (name->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
  sh->last_push_ms = evloop_now_ms(rb->loop);
  if (name->len == rb->probe_key_len && memcmp(name->str, rb->probe_key, name->len) == 0) {
    sh->probe_sent_ms = 0; /* the connection carries */
    return;
  }
  size_t plen = rb->client_prefix_len;
  if (name->len <= plen) return;
  enqueue(d, MESSAGE_PUBSUB, name->str + plen, name->len - plen, payload->str, payload->len);
}

/* Reads "<digits>:" from [*P, END) into *OUT. */
static bool take_number(const char **p, const char *end, uint64_t *out) {
  uint64_t v = 0;
  const char *s = *p;
  while (s < end && *s >= '0' && *s <= '9' && v < UINT64_MAX / 10) v = v * 10 + (uint64_t)(*s++ - '0');
  if (s == *p || s >= end || *s != ':') return false;
  *p = s + 1;
  *out = v;
  return true;
}

static void deliver(struct redis_broker *rb, const char *channel, const char *p, size_t len) {
  struct hub *hub = rb->base.srv->hub;
  const char *end = p + len;
  size_t jl = strlen(RB_PREFIX_JOIN);
  if (len >= jl && (memcmp(p, RB_PREFIX_JOIN, jl) == 0 || memcmp(p, RB_PREFIX_LEAVE, jl) == 0)) {
    Protocol__ClientInfo *info = protocol__client_info__unpack(NULL, len - jl, (const uint8_t *)p + jl);
    if (info == NULL) return;
    pthread_mutex_t *lock = rb_stripe(rb, channel);
    pthread_mutex_lock(lock);
    hub_publish_join_leave(hub, channel, info, p[2] == 'j');
    pthread_mutex_unlock(lock);
    protocol__client_info__free_unpacked(info, NULL);
    return;
  }
  uint64_t offset = 0;
  char epoch[16] = "";
  size_t pl = strlen(RB_PREFIX_POSITIONED);
  if (len >= pl && memcmp(p, RB_PREFIX_POSITIONED, pl) == 0) {
    const char *s = p + pl;
    if (!take_number(&s, end, &offset)) return;
    const char *mark = memchr(s, '_', (size_t)(end - s)); /* <epoch>__ */
    if (mark == NULL || end - mark < 2 || mark[1] != '_' || (size_t)(mark - s) >= sizeof epoch) return;
    memcpy(epoch, s, (size_t)(mark - s));
    p = mark + 2;
  }
  Protocol__Publication *pub = protocol__publication__unpack(NULL, (size_t)(end - p), (const uint8_t *)p);
  if (pub == NULL) {
    log_warn("redis: undecodable publication on %s dropped", channel);
    return;
  }
  pub->offset = offset;
  pthread_mutex_t *lock = rb_stripe(rb, channel);
  pthread_mutex_lock(lock);
  hub_publish(hub, channel, pub, offset ? epoch : NULL);
  pthread_mutex_unlock(lock);
  protocol__publication__free_unpacked(pub, NULL);
}

/* Reads CHANNEL's position and schedules its comparison (worker thread). */
static void check_start(struct rb_delivery *d, const char *channel) {
  struct stream_position pos;
  if (rb_position(&d->rb->base, channel, &pos) != 0 || pos.offset == 0) return;
  size_t len = strlen(channel);
  struct rb_verify *v = malloc(sizeof *v + len + 1);
  if (v == NULL) return;
  v->due_ms = timer_now_ms() + VERIFY_DELAY_MS;
  v->pos = pos;
  memcpy(v->channel, channel, len + 1);
  struct rb_verify **at = &d->verify; /* due times only grow: append */
  while (*at) at = &(*at)->next;
  v->next = NULL;
  *at = v;
}

/* Compares the positions that are due (worker thread, no lock held). */
static void verify_due(struct rb_delivery *d) {
  uint64_t now = timer_now_ms();
  while (d->verify && d->verify->due_ms <= now) {
    struct rb_verify *v = d->verify;
    d->verify = v->next;
    pthread_mutex_t *lock = rb_stripe(d->rb, v->channel);
    pthread_mutex_lock(lock);
    hub_check_position(d->rb->base.srv->hub, v->channel, v->pos.offset, v->pos.epoch);
    pthread_mutex_unlock(lock);
    free(v);
  }
}

/* Waits for messages, or until the first verification is due (D->lock held). */
static void wait_work(struct rb_delivery *d) {
  if (d->verify == NULL) {
    pthread_cond_wait(&d->cond, &d->lock);
    return;
  }
  uint64_t now = timer_now_ms(), due = d->verify->due_ms;
  if (due <= now) return;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  uint64_t wait = due - now;
  until.tv_sec += (time_t)(wait / 1000);
  until.tv_nsec += (long)(wait % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_cond_timedwait(&d->cond, &d->lock, &until);
}

static void *delivery_main(void *arg) {
  struct rb_delivery *d = arg;
  pthread_mutex_lock(&d->lock);
  for (;;) {
    while (d->head == NULL && !d->stopping) {
      pthread_mutex_unlock(&d->lock);
      verify_due(d);
      pthread_mutex_lock(&d->lock);
      if (d->head != NULL || d->stopping) break;
      wait_work(d);
    }
    if (d->head == NULL) break;
    struct rb_message *batch = d->head;
    d->head = NULL;
    d->tail = &d->head;
    d->queued = 0;
    pthread_mutex_unlock(&d->lock);
    while (batch) {
      struct rb_message *next = batch->next;
      if (batch->kind == MESSAGE_CHECK)
        check_start(d, batch->data);
      else
        deliver(d->rb, batch->data, batch->data + batch->name_len + 1, batch->len);
      free(batch);
      batch = next;
    }
    verify_due(d);
    pthread_mutex_lock(&d->lock);
  }
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

static void position_check_start(void *arg) {
  struct redis_broker *rb = arg;
  rb->position_check = (struct evloop_timer){.fn = position_check_fire, .arg = rb};
  evloop_timer_arm(rb->loop, &rb->position_check, POSITION_CHECK_MS);
}

int rb_sub_start(struct redis_broker *rb) { return evloop_post(rb->loop, position_check_start, rb); }

int rb_sub_init(struct redis_broker *rb) {
  rb->probe_key_len = rb_key(rb, "probe", rb->base.srv->node_id, rb->probe_key);
  rb->client_prefix_len = strlen(rb->prefix) + strlen(".client.");
  rb->channels = strmap_new();
  struct rb_delivery *d = calloc(1, sizeof *d);
  if (rb->channels == NULL || d == NULL) {
    free(d);
    return -1;
  }
  d->rb = rb;
  d->tail = &d->head;
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->cond, NULL);
  rb->delivery = d;
  if (pthread_create(&d->thread, NULL, delivery_main, d) != 0) return -1;
  d->started = true;
  return 0;
}

static void channel_free_cb(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  free(value);
}

void rb_sub_stop(struct redis_broker *rb) {
  struct rb_delivery *d = rb->delivery;
  if (d == NULL || !d->started) return;
  pthread_mutex_lock(&d->lock);
  d->stopping = true;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->lock);
  pthread_join(d->thread, NULL);
  d->started = false;
}

void rb_sub_cleanup(struct redis_broker *rb) {
  struct rb_delivery *d = rb->delivery;
  rb_sub_stop(rb);
  if (d) {
    while (d->head) {
      struct rb_message *next = d->head->next;
      free(d->head);
      d->head = next;
    }
    while (d->verify) {
      struct rb_verify *next = d->verify->next;
      free(d->verify);
      d->verify = next;
    }
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d);
    rb->delivery = NULL;
  }
  if (rb->channels) {
    strmap_foreach(rb->channels, channel_free_cb, NULL);
    strmap_free(rb->channels);
    rb->channels = NULL;
  }
}
