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
#include <stdlib.h>
#include <string.h>

#include "broker_redis_internal.h"
#include "hub.h"
#include "log.h"
#include "server.h"
#include "strmap.h"

#define UNSUBSCRIBE_DELAY_MS 1000
#define ENSURE_RECHECK_MS 5000  /* a channel subscribed for a subscribe that then failed is dropped */
#define PROBE_INTERVAL_MS 5000
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

struct rb_message {
  struct rb_message *next;
  size_t name_len, len;
  char data[]; /* name NUL payload */
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
  size_t plen = strlen(rb->prefix) + strlen(".client.");
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

/* ---- liveness (loop thread) ---- */

static size_t probe_channel(struct rb_shard *sh, char *buf) { return rb_key(sh->rb, "probe", sh->rb->base.srv->node_id, buf); }

static void probe_fire(struct evloop_timer *t) {
  struct rb_shard *sh = t->arg;
  struct redis_broker *rb = sh->rb;
  uint64_t now = evloop_now_ms(rb->loop);
  if (sh->sub_up && sh->probe_sent_ms && now - sh->probe_sent_ms > rb->io_timeout_ms) {
    sh->probe_sent_ms = 0;
    redis_conn_reset(sh->sub, "PUB/SUB silent: the probe did not come back");
  } else if (sh->sub_up && !sh->probe_sent_ms && now - sh->last_push_ms >= PROBE_INTERVAL_MS &&
             redis_conn_up(sh->cmd)) {
    char key[RB_KEY_MAX];
    size_t klen = probe_channel(sh, key);
    const char *argv[3] = {"PUBLISH", key, "probe"};
    const size_t lens[3] = {7, klen, 5};
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
    char key[RB_KEY_MAX];
    size_t klen = probe_channel(sh, key);
    const char *argv[2] = {"SUBSCRIBE", key};
    const size_t lens[2] = {9, klen};
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
  if (sh->index == 0) rb_control_subscribe(sh->rb);
}

/* ---- delivery ---- */

void rb_sub_on_push(void *arg, const redisReply *push) {
  struct rb_shard *sh = arg;
  struct redis_broker *rb = sh->rb;
  struct rb_delivery *d = rb->delivery;
  const redisReply *name = push->element[push->elements - 2], *payload = push->element[push->elements - 1];
  if (name->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
  sh->last_push_ms = evloop_now_ms(rb->loop);
  char probe[RB_KEY_MAX];
  size_t plen0 = probe_channel(sh, probe);
  if (name->len == plen0 && memcmp(name->str, probe, plen0) == 0) {
    sh->probe_sent_ms = 0; /* the connection carries */
    return;
  }
  if (rb_control_wants(rb, name->str, name->len)) return rb_control_on_message(rb, payload->str, payload->len);
  size_t plen = strlen(rb->prefix) + strlen(".client.");
  if (name->len <= plen) return;
  size_t nlen = name->len - plen;
  struct rb_message *m = malloc(sizeof *m + nlen + 1 + payload->len);
  if (m == NULL) return;
  m->next = NULL;
  m->name_len = nlen;
  m->len = payload->len;
  memcpy(m->data, name->str + plen, nlen);
  m->data[nlen] = '\0';
  memcpy(m->data + nlen + 1, payload->str, payload->len);
  pthread_mutex_lock(&d->lock);
  if (d->queued >= DELIVERY_QUEUE_MAX) {
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
  size_t pl = strlen(RB_PREFIX_POSITIONED);
  if (len >= pl && memcmp(p, RB_PREFIX_POSITIONED, pl) == 0) {
    const char *s = p + pl;
    if (!take_number(&s, end, &offset)) return;
    const char *mark = memchr(s, '_', (size_t)(end - s)); /* <epoch>__ */
    if (mark == NULL || end - mark < 2 || mark[1] != '_') return;
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
  hub_publish(hub, channel, pub);
  pthread_mutex_unlock(lock);
  protocol__publication__free_unpacked(pub, NULL);
}

static void *delivery_main(void *arg) {
  struct rb_delivery *d = arg;
  pthread_mutex_lock(&d->lock);
  for (;;) {
    while (d->head == NULL && !d->stopping) pthread_cond_wait(&d->cond, &d->lock);
    if (d->head == NULL) break;
    struct rb_message *batch = d->head;
    d->head = NULL;
    d->tail = &d->head;
    d->queued = 0;
    pthread_mutex_unlock(&d->lock);
    while (batch) {
      struct rb_message *next = batch->next;
      deliver(d->rb, batch->data, batch->data + batch->name_len + 1, batch->len);
      free(batch);
      batch = next;
    }
    pthread_mutex_lock(&d->lock);
  }
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

int rb_sub_init(struct redis_broker *rb) {
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
