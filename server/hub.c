/* hub: channel index and local fan-out (see hub.h).
 *
 * Each channel keeps one array of subscription pointers per core loop (the loop of the subscriber's
 * session); each subscription remembers its index in its array, so unsubscribing is O(1) by moving the
 * last entry into the hole. A publication is encoded on the publishing thread, once per codec in use
 * among the channel's subscribers, outside every lock, and handed to each loop that has subscribers as
 * one posted task (a delivery); the loop fans it out into its own sessions' queues under the channel's
 * lock only, and the wakes that fan-out decides are deferred to the end of the loop's batch (loops.h),
 * so a session that got several publications in one batch is woken, and written to, once.
 *
 * Locks: the index lock (a rwlock: write for subscribe and unsubscribe, read for lookups) is held only
 * to find or change channels, never while fanning out; each channel has its own mutex guarding its
 * arrays, counts and its subscriptions' stream positions; fan-out holds it while taking session locks.
 * Order: index ⇒ channel ⇒ session; the session lock is never held while taking a channel lock.
 * Lifetime: a channel is refcounted: the index holds one reference while it has subscribers, each
 * delivery in flight one, so a delivery finds its channel even after the last subscriber left.
 * Without core loops (unit tests) deliveries run inline on the publishing thread. */
#include "hub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codes.h"
#include "log.h"
#include "loops.h"
#include "pub_delta.h"
#include "server.h"
#include "session.h"
#include "strmap.h"
#include "utf8.h"

/* Subscriptions whose client tracks the stream position. */
#define POSITIONED (SUB_POSITIONED | SUB_RECOVERABLE)

struct sub_array {
  struct subscription **v;
  size_t n, cap;
};

struct hub_channel {
  atomic_uint refs;
  pthread_mutex_t lock;                /* the arrays, counts and subscriptions' positions */
  unsigned n_loops;
  size_t count;                        /* subscribers over every loop (also read under the index lock) */
  size_t codec_subs[CODEC_COUNT];      /* subscribers per codec */
  size_t delta_subs[CODEC_COUNT];      /* of them, with SUB_DELTA */
  /* The data of the last publication fanned out while the channel had SUB_DELTA subscribers: what their
   * next delta is made against. Touched only by hub_publish, which callers serialize per channel. */
  uint8_t *delta_base;
  size_t delta_base_len;
  bool has_delta_base;
  atomic_uint_fast64_t publications;   /* publications fanned out since the channel appeared here */
  char *name;                          /* in the same allocation, after the arrays */
  struct sub_array loop[];             /* one per core loop */
};

struct hub {
  pthread_rwlock_t lock; /* the index */
  struct strmap *channels;
  struct server *srv;
  unsigned n_loops;
  atomic_uint queued[LOOPS_MAX]; /* deliveries handed to each loop and not run yet */
  _Atomic(hub_observer_fn) observer;
  void *_Atomic observer_arg;
  struct hub_channel_watch watch; /* set before the first subscription */
};

struct hub *hub_new(struct server *srv) {
  struct hub *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  h->channels = strmap_new();
  if (h->channels == NULL) {
    free(h);
    return NULL;
  }
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* a steady stream of publications must not starve subscribers waiting for the write lock */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&h->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  h->srv = srv;
  h->n_loops = srv->loops ? loops_count(srv->loops) : 1;
  return h;
}

static void channel_unref(struct hub_channel *ch) {
  if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1) return;
  for (unsigned i = 0; i < ch->n_loops; i++) free(ch->loop[i].v);
  free(ch->delta_base);
  pthread_mutex_destroy(&ch->lock);
  free(ch);
}

static void free_channel(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  channel_unref(value);
}

void hub_free(struct hub *h) {
  if (h == NULL) return;
  strmap_foreach(h->channels, free_channel, NULL);
  strmap_free(h->channels);
  pthread_rwlock_destroy(&h->lock);
  free(h);
}

/* Finds or creates CHANNEL (a new one holds the index's reference). Caller holds the write lock. */
static struct hub_channel *channel_get(struct hub *h, const char *name) {
  struct hub_channel *ch = strmap_get(h->channels, name);
  if (ch) return ch;
  size_t len = strlen(name);
  size_t arrays = h->n_loops * sizeof(struct sub_array);
  ch = calloc(1, sizeof *ch + arrays + len + 1);
  if (ch == NULL) return NULL;
  atomic_init(&ch->refs, 1);
  pthread_mutex_init(&ch->lock, NULL);
  ch->n_loops = h->n_loops;
  ch->name = (char *)ch->loop + arrays;
  memcpy(ch->name, name, len + 1);
  if (strmap_put(h->channels, name, ch) != 0) {
    channel_unref(ch);
    return NULL;
  }
  if (h->watch.first) h->watch.first(h->watch.arg, name);
  return ch;
}

/* Adds SUB to its loop's array of CH. Caller holds the write lock and ch->lock. */
static int channel_add(struct hub_channel *ch, struct subscription *sub) {
  struct sub_array *a = &ch->loop[sub->loop];
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 4;
    struct subscription **v = realloc(a->v, cap * sizeof *v);
    if (v == NULL) return -1;
    a->v = v;
    a->cap = cap;
  }
  sub->channel = ch;
  sub->index = a->n;
  a->v[a->n++] = sub;
  ch->count++;
  ch->codec_subs[sub->session->codec->kind]++;
  if (sub->flags & SUB_DELTA) ch->delta_subs[sub->session->codec->kind]++;
  return 0;
}

/* Drops CH from the index when it has no subscribers left. Caller holds the write lock. */
static void channel_drop_if_empty(struct hub *h, struct hub_channel *ch) {
  if (ch->count > 0) return;
  strmap_remove(h->channels, ch->name);
  if (h->watch.last) h->watch.last(h->watch.arg, ch->name);
  channel_unref(ch);
}

/* Removes SUB from its channel, dropping the channel when it empties. Caller holds the write lock. */
static void channel_remove(struct hub *h, struct subscription *sub) {
  struct hub_channel *ch = sub->channel;
  pthread_mutex_lock(&ch->lock);
  struct sub_array *a = &ch->loop[sub->loop];
  struct subscription *last = a->v[--a->n];
  a->v[sub->index] = last;
  last->index = sub->index;
  ch->count--;
  ch->codec_subs[sub->session->codec->kind]--;
  if (sub->flags & SUB_DELTA) ch->delta_subs[sub->session->codec->kind]--;
  if (a->n == 0 && a->cap > 64) { /* a crowd's array goes back once it left */
    free(a->v);
    a->v = NULL;
    a->cap = 0;
  }
  pthread_mutex_unlock(&ch->lock);
  channel_drop_if_empty(h, ch);
}

/* The session's subscription to CHANNEL, or NULL. Caller holds s->lock. */
static struct subscription **find_sub(struct session *s, const char *channel) {
  struct subscription **pp = &s->subs;
  while (*pp && strcmp((*pp)->channel_name, channel) != 0) pp = &(*pp)->next;
  return pp;
}

/* Checks whether S may subscribe to CHANNEL. Caller holds s->lock. */
static int subscribe_check(struct session *s, const char *channel, size_t limit) {
  if (s->state >= SESSION_CLOSING) return -HUB_ECLOSED;
  if (*find_sub(s, channel)) return -HUB_EALREADY;
  if (limit > 0 && s->sub_count >= limit) return -HUB_ELIMIT;
  return 0;
}

/* Puts SUB in the index and queues REPLY before any fan-out can see SUB. Caller holds the write lock. */
static int subscribe_index(struct hub *h, struct subscription *sub, struct frame *reply) {
  struct hub_channel *ch = channel_get(h, sub->channel_name);
  if (ch == NULL) return -HUB_ENOMEM;
  pthread_mutex_lock(&ch->lock);
  int rc = channel_add(ch, sub);
  if (rc == 0 && reply) session_enqueue(sub->session, reply);
  pthread_mutex_unlock(&ch->lock);
  if (rc != 0) {
    channel_drop_if_empty(h, ch);
    return -HUB_ENOMEM;
  }
  return 0;
}

/* The session's subscriptions and the index change together under the write lock, so the session
 * lock is never held while the channel lock is taken (fan-out takes them the other way round). */
int hub_subscribe(struct hub *h, struct session *s, const char *channel, size_t limit, unsigned flags,
                  struct frame *reply) {
  size_t len = strlen(channel);
  struct subscription *sub = calloc(1, sizeof *sub + len + 1);
  if (sub == NULL) return -HUB_ENOMEM;
  memcpy(sub->channel_name, channel, len + 1);
  sub->session = s;
  sub->flags = flags;
  sub->loop = s->loop < h->n_loops ? s->loop : 0;
  pthread_rwlock_wrlock(&h->lock);
  pthread_mutex_lock(&s->lock);
  int rc = subscribe_check(s, channel, limit);
  pthread_mutex_unlock(&s->lock);
  if (rc == 0) rc = subscribe_index(h, sub, reply);
  if (rc == 0) {
    pthread_mutex_lock(&s->lock);
    sub->next = s->subs;
    s->subs = sub;
    s->sub_count++;
    pthread_mutex_unlock(&s->lock);
  }
  pthread_rwlock_unlock(&h->lock);
  if (rc != 0) free(sub);
  return rc;
}

struct subscription *hub_unsubscribe(struct hub *h, struct session *s, const char *channel) {
  pthread_rwlock_wrlock(&h->lock);
  pthread_mutex_lock(&s->lock);
  struct subscription **pp = find_sub(s, channel);
  struct subscription *sub = *pp;
  if (sub) {
    *pp = sub->next;
    sub->next = NULL;
    s->sub_count--;
  }
  pthread_mutex_unlock(&s->lock);
  if (sub) channel_remove(h, sub);
  pthread_rwlock_unlock(&h->lock);
  return sub;
}

struct subscription *hub_unsubscribe_all(struct hub *h, struct session *s) {
  pthread_rwlock_wrlock(&h->lock);
  pthread_mutex_lock(&s->lock);
  struct subscription *list = s->subs;
  s->subs = NULL;
  s->sub_count = 0;
  pthread_mutex_unlock(&s->lock);
  for (struct subscription *sub = list; sub; sub = sub->next) channel_remove(h, sub);
  pthread_rwlock_unlock(&h->lock);
  return list;
}

int hub_set_expiry(struct hub *h, struct session *s, const char *channel, int64_t expires_at) {
  (void)h;
  pthread_mutex_lock(&s->lock);
  struct subscription *sub = *find_sub(s, channel);
  if (sub) sub->expires_at = expires_at;
  pthread_mutex_unlock(&s->lock);
  return sub ? 0 : -HUB_ENOTSUB;
}

/* The subscription's position is the channel lock's (fan-out moves it): find the subscription under
 * the session lock, then set it under the channel lock; the index read lock keeps it alive between. */
int hub_set_position(struct hub *h, struct session *s, const char *channel, uint64_t offset, const char *epoch) {
  pthread_rwlock_rdlock(&h->lock);
  pthread_mutex_lock(&s->lock);
  struct subscription *sub = *find_sub(s, channel);
  pthread_mutex_unlock(&s->lock);
  if (sub) {
    pthread_mutex_lock(&sub->channel->lock);
    sub->offset = offset;
    snprintf(sub->epoch, sizeof sub->epoch, "%s", epoch ? epoch : "");
    sub->position_known = true;
    pthread_mutex_unlock(&sub->channel->lock);
  }
  pthread_rwlock_unlock(&h->lock);
  return sub ? 0 : -HUB_ENOTSUB;
}

bool hub_has_positioned(struct hub *h, const char *channel) {
  bool found = false;
  pthread_rwlock_rdlock(&h->lock);
  struct hub_channel *ch = strmap_get(h->channels, channel);
  if (ch) {
    pthread_mutex_lock(&ch->lock);
    for (unsigned l = 0; l < ch->n_loops && !found; l++)
      for (size_t i = 0; i < ch->loop[l].n && !found; i++) found = (ch->loop[l].v[i]->flags & POSITIONED) != 0;
    pthread_mutex_unlock(&ch->lock);
  }
  pthread_rwlock_unlock(&h->lock);
  return found;
}

int hub_is_subscribed(struct hub *h, struct session *s, const char *channel) {
  (void)h;
  pthread_mutex_lock(&s->lock);
  int found = *find_sub(s, channel) != NULL;
  pthread_mutex_unlock(&s->lock);
  return found;
}

/* Encodes REPLY (a push) for codec KIND; NULL when it cannot, with the disconnect code for its
 * subscribers in *FAIL_CODE (3506 when the codec cannot carry it, 3004 out of memory). */
static struct frame *encode_push(enum codec_kind kind, const char *channel, const Protocol__Reply *reply,
                                 uint32_t *fail_code) {
  struct frame *f = NULL;
  int rc = codec_get(kind)->encode_reply(reply, &f);
  if (rc != 0) {
    log_warn("channel %s: push not encodable as %s: %s", channel, codec_get(kind)->name, codec_strerror(rc));
    *fail_code = session_encode_failure_code(rc);
  }
  return rc == 0 ? f : NULL;
}

/* What a delivery does on each loop it is handed to. */
enum delivery_kind { DELIVER_PUSH, DELIVER_CHECK_POSITION };

/* One publication (or join/leave push, or position check) on its way to the loops that have
 * subscribers of its channel: each of them holds a reference. Immutable once posted. */
struct delivery {
  atomic_uint refs;
  enum delivery_kind kind;
  struct hub_channel *channel; /* a reference */
  struct frame *frames[CODEC_COUNT];
  uint32_t fail_code[CODEC_COUNT]; /* not 0: subscribers of that codec cannot be given the push and
                                      are disconnected with this code */
  unsigned required;           /* flags a subscriber needs to get it */
  /* A publication's forms for SUB_DELTA subscribers (hub_publish), prepared when the channel had any as
   * the publication was handed over; one that subscribed since does not get it (it subscribed after
   * the publication was made: the broker's channel lock orders both). */
  bool is_publication; /* a publication push (else join, leave or a check) */
  bool delta_forms;
  struct frame *delta_full[CODEC_COUNT]; /* full data in the codec's delta form */
  struct frame *delta_diff[CODEC_COUNT]; /* a delta against the previous publication, or NULL */
  uint32_t delta_fail[CODEC_COUNT];      /* like fail_code, for delta_full */
  uint64_t offset;             /* > 0: the stream position of the publication (or checked up to) */
  char epoch[sizeof ((struct subscription *)0)->epoch];
  bool has_epoch;
};

static void delivery_unref(struct delivery *d) {
  if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1) return;
  for (int k = 0; k < CODEC_COUNT; k++) {
    frame_unref(d->frames[k]);
    frame_unref(d->delta_full[k]);
    frame_unref(d->delta_diff[k]);
  }
  channel_unref(d->channel);
  free(d);
}

/* Whether positioned SUB is to get the publication at OFFSET of EPOCH (NULL: none): 1 yes (and its
 * position moves), 0 not (it has it already, or its position is not set yet: it subscribed after this
 * publication was handed out and recovers up to a later position), -1 it lost state. Caller holds the
 * channel lock. */
static int position_next(struct subscription *sub, uint64_t offset, const char *epoch) {
  if (!sub->position_known) return 0;
  if (epoch && epoch[0] && sub->epoch[0] && strcmp(epoch, sub->epoch) != 0) return -1;
  if (offset <= sub->offset) return 0;
  if (offset > sub->offset + 1) return -1;
  sub->offset = offset;
  return 1;
}

/* The frame of D for SUB_DELTA subscriber SUB of codec K: the delta when SUB has its base, else the
 * full form; NULL when D has no delta forms (SUB subscribed after it was published). SUB's base is
 * then unknown until it gets one, which the caller records. Caller holds the channel lock. */
static struct frame *delta_frame(const struct delivery *d, struct subscription *sub, enum codec_kind k) {
  if (!d->delta_forms) return NULL;
  if (sub->delta_ready && d->delta_diff[k]) return d->delta_diff[k];
  return d->delta_full[k];
}

/* Queues D's push to SUB. Returns 1 when queued. Caller holds the channel lock. */
static size_t deliver_push(const struct delivery *d, struct subscription *sub) {
  struct session *s = sub->session;
  if ((sub->flags & d->required) != d->required) return 0;
  if (d->offset > 0 && (sub->flags & POSITIONED)) {
    int next = position_next(sub, d->offset, d->has_epoch ? d->epoch : NULL);
    if (next == 0) sub->delta_ready = false; /* a skipped publication moves the channel's base */
    if (next == 0) return 0;
    if (next < 0) {
      log_info("client %s: lost its position in channel %s (at %llu, got %llu)", s->client_id, d->channel->name,
               (unsigned long long)sub->offset, (unsigned long long)d->offset);
      session_close(s, DISCONNECT_INSUFFICIENT_STATE);
      return 0;
    }
  }
  enum codec_kind k = s->codec->kind;
  if ((sub->flags & SUB_DELTA) && d->is_publication) {
    struct frame *f = delta_frame(d, sub, k);
    sub->delta_ready = false;
    if (f == NULL && !d->delta_forms) return 0;
    if (f == NULL) {
      session_close(s, d->delta_fail[k] ? d->delta_fail[k] : DISCONNECT_SERVER_ERROR);
      return 0;
    }
    if (session_enqueue(s, f) != 0) return 0;
    sub->delta_ready = true;
    return 1;
  }
  if (d->fail_code[k] != 0) {
    session_close(s, d->fail_code[k]);
    return 0;
  }
  return session_enqueue(s, d->frames[k]) == 0 ? 1 : 0;
}

/* Closes positioned SUB with 3010 when it is behind D's position or in another epoch. Returns 1 when
 * it did. Caller holds the channel lock. */
static size_t deliver_check(const struct delivery *d, struct subscription *sub) {
  if (!(sub->flags & POSITIONED) || !sub->position_known) return 0;
  bool other_epoch = d->has_epoch && d->epoch[0] && sub->epoch[0] && strcmp(d->epoch, sub->epoch) != 0;
  if (!other_epoch && sub->offset >= d->offset) return 0;
  log_info("client %s: behind the stream of channel %s (at %llu, top %llu)", sub->session->client_id,
           d->channel->name, (unsigned long long)sub->offset, (unsigned long long)d->offset);
  session_close(sub->session, DISCONNECT_INSUFFICIENT_STATE);
  return 1;
}

/* Runs D for the subscribers of loop LOOP. Returns how many it reached (queued to, or closed). */
static size_t deliver(const struct delivery *d, unsigned loop) {
  struct hub_channel *ch = d->channel;
  size_t n = 0;
  pthread_mutex_lock(&ch->lock);
  struct sub_array *a = &ch->loop[loop];
  for (size_t i = 0; i < a->n; i++) n += d->kind == DELIVER_PUSH ? deliver_push(d, a->v[i]) : deliver_check(d, a->v[i]);
  pthread_mutex_unlock(&ch->lock);
  return n;
}

struct delivery_task {
  struct hub *hub;
  struct delivery *d;
  unsigned loop;
};

static void delivery_run(void *arg) {
  struct delivery_task *t = arg;
  deliver(t->d, t->loop);
  atomic_fetch_sub_explicit(&t->hub->queued[t->loop], 1, memory_order_release);
  delivery_unref(t->d);
  free(t);
}

/* Whether D can run inline for loop L: on L's own thread with nothing handed to L still waiting (so
 * it cannot overtake an earlier publication of its channel), or when there are no core loops. Inline
 * on the loop, a client's own publication reaches its own subscriptions before its publish reply,
 * and its wakes still wait for the end of the batch. */
static bool inline_for(struct hub *h, unsigned l) {
  if (h->srv->loops == NULL) return true;
  return loops_current() == (int)l && atomic_load_explicit(&h->queued[l], memory_order_acquire) == 0;
}

/* Hands D to loop L as a task. Returns 0, or -1 when the loop cannot take it (stopped, or out of
 * memory): the caller runs it inline instead. */
static int hand_over(struct hub *h, struct delivery *d, unsigned l) {
  struct delivery_task *t = malloc(sizeof *t);
  if (t == NULL) return -1;
  *t = (struct delivery_task){h, d, l};
  atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->queued[l], 1, memory_order_relaxed);
  if (loops_post(h->srv->loops, l, delivery_run, t) == 0) return 0;
  atomic_fetch_sub_explicit(&h->queued[l], 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&d->refs, 1, memory_order_relaxed);
  free(t);
  return -1;
}

/* Runs D for every loop marked in LOOPS: inline where it may, else handed to the loop (inline after
 * all when the loop cannot take it). Consumes the caller's reference. Returns what the inline runs
 * reached plus the subscribers (SUBS[l]) of the loops it was handed to. */
static size_t dispatch(struct hub *h, struct delivery *d, const bool *loops, const size_t *subs) {
  size_t n = 0;
  for (unsigned l = 0; l < h->n_loops; l++) {
    if (!loops[l]) continue;
    if (!inline_for(h, l) && hand_over(h, d, l) == 0)
      n += subs[l];
    else
      n += deliver(d, l);
  }
  delivery_unref(d);
  return n;
}

/* A new delivery for CHANNEL with a reference to its channel, or NULL when CHANNEL has no local
 * subscriber (or out of memory). Fills LOOPS[l] (loop l has subscribers), SUBS[l] (how many),
 * CODECS[k] (codec k is in use) and DELTA[k] (codec k has SUB_DELTA subscribers). */
static struct delivery *delivery_new(struct hub *h, const char *channel, enum delivery_kind kind, bool *loops,
                                     size_t *subs, bool *codecs, bool *delta) {
  struct delivery *d = calloc(1, sizeof *d);
  if (d == NULL) return NULL;
  pthread_rwlock_rdlock(&h->lock);
  struct hub_channel *ch = strmap_get(h->channels, channel);
  if (ch) {
    atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&ch->lock);
    for (unsigned l = 0; l < h->n_loops; l++) {
      subs[l] = ch->loop[l].n;
      loops[l] = subs[l] > 0;
    }
    for (int k = 0; k < CODEC_COUNT; k++) {
      codecs[k] = ch->codec_subs[k] > ch->delta_subs[k];
      delta[k] = ch->delta_subs[k] > 0;
    }
    pthread_mutex_unlock(&ch->lock);
  }
  pthread_rwlock_unlock(&h->lock);
  if (ch == NULL) {
    free(d);
    return NULL;
  }
  atomic_init(&d->refs, 1);
  d->kind = kind;
  d->channel = ch;
  return d;
}

/* Whether codec K carries publication data as embedded JSON (so its delta form is a JSON string). */
static bool codec_is_json(enum codec_kind k) { return strcmp(codec_get(k)->name, "json") == 0; }

/* Replaces CH's delta base with DATA (LEN bytes); without memory for it, CH has no base. */
static void delta_base_set(struct hub_channel *ch, const uint8_t *data, size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  if (copy) memcpy(copy, data, len);
  free(ch->delta_base);
  ch->delta_base = copy;
  ch->delta_base_len = len;
  ch->has_delta_base = copy != NULL;
}

/* Encodes publication PUB (borrowed; REPLY's push) with DATA and DELTA in place of its own, for codec K. */
static struct frame *encode_pub_as(enum codec_kind k, const Protocol__Reply *reply, ProtobufCBinaryData data,
                                   bool delta, uint32_t *fail_code) {
  Protocol__Publication pub = *reply->push->pub;
  Protocol__Push push = *reply->push;
  Protocol__Reply r = *reply;
  pub.data = data;
  pub.delta = delta;
  push.pub = &pub;
  r.push = &push;
  return encode_push(k, push.channel, &r, fail_code);
}

/* Fills D's forms for the SUB_DELTA subscribers of the codecs in DELTA (none: the channel drops its
 * base) from publication REPLY->push->pub, made as a delta when ASKED and the channel has a base, then
 * makes this publication the base. Runs on the publishing thread, serialized per channel. */
static void delta_prepare(struct delivery *d, const Protocol__Reply *reply, bool asked, const bool *delta) {
  struct hub_channel *ch = d->channel;
  bool any = false;
  for (int k = 0; k < CODEC_COUNT; k++) any |= delta[k];
  if (!any) {
    free(ch->delta_base);
    ch->delta_base = NULL;
    ch->has_delta_base = false;
    return;
  }
  const ProtobufCBinaryData *data = &reply->push->pub->data;
  ProtobufCBinaryData diff = {0}, full_json = {0}, diff_json = {0};
  if (asked && ch->has_delta_base)
    diff.len = pub_delta_make(ch->delta_base, ch->delta_base_len, data->data, data->len, &diff.data);
  for (int k = 0; k < CODEC_COUNT; k++) {
    if (!delta[k]) continue;
    bool json = codec_is_json((enum codec_kind)k);
    if (json && full_json.data == NULL) full_json.len = pub_delta_json_string(data->data, data->len, &full_json.data);
    if (json && diff.len && diff_json.data == NULL) diff_json.len = pub_delta_json_string(diff.data, diff.len, &diff_json.data);
    if (json && full_json.data == NULL)
      d->delta_fail[k] = session_encode_failure_code(utf8_valid(data->data, data->len) ? -CODEC_ENOMEM : -CODEC_EDATA);
    else
      d->delta_full[k] = encode_pub_as((enum codec_kind)k, reply, json ? full_json : *data, false, &d->delta_fail[k]);
    if (json ? diff_json.data != NULL : diff.len > 0) {
      uint32_t ignored = 0; /* without its delta a subscriber gets the full form */
      d->delta_diff[k] = encode_pub_as((enum codec_kind)k, reply, json ? diff_json : diff, true, &ignored);
    }
  }
  free(diff.data);
  free(full_json.data);
  free(diff_json.data);
  d->delta_forms = true;
  delta_base_set(ch, data->data, data->len);
}

/* Delivers REPLY (a push) to every subscriber of CHANNEL having all of REQUIRED flags, encoded at most
 * once per codec in use. With OFFSET > 0 the push is that stream position's publication (of EPOCH):
 * positioned subscribers get it only in order. DELTA_ASKED: a publication whose publisher asked for
 * delta compression (hub_publish). */
static size_t fan_out(struct hub *h, const char *channel, const Protocol__Reply *reply, unsigned required,
                      uint64_t offset, const char *epoch, bool delta_asked) {
  bool loops[LOOPS_MAX] = {0}, codecs[CODEC_COUNT] = {0}, delta[CODEC_COUNT] = {0};
  size_t subs[LOOPS_MAX] = {0};
  struct delivery *d = delivery_new(h, channel, DELIVER_PUSH, loops, subs, codecs, delta);
  if (d == NULL) return 0;
  if (reply->push->pub) {
    atomic_fetch_add_explicit(&d->channel->publications, 1, memory_order_relaxed);
    d->is_publication = true;
    delta_prepare(d, reply, delta_asked, delta);
  } else {
    for (int k = 0; k < CODEC_COUNT; k++) codecs[k] |= delta[k]; /* joins and leaves: one form */
  }
  for (int k = 0; k < CODEC_COUNT; k++) {
    if (!codecs[k]) continue;
    d->frames[k] = encode_push((enum codec_kind)k, channel, reply, &d->fail_code[k]);
  }
  d->required = required;
  d->offset = offset;
  if (epoch) {
    snprintf(d->epoch, sizeof d->epoch, "%s", epoch);
    d->has_epoch = true;
  }
  return dispatch(h, d, loops, subs);
}

size_t hub_check_position(struct hub *h, const char *channel, uint64_t offset, const char *epoch) {
  bool loops[LOOPS_MAX] = {0}, codecs[CODEC_COUNT] = {0}, delta[CODEC_COUNT] = {0};
  size_t subs[LOOPS_MAX] = {0};
  struct delivery *d = delivery_new(h, channel, DELIVER_CHECK_POSITION, loops, subs, codecs, delta);
  if (d == NULL) return 0;
  d->offset = offset;
  if (epoch) {
    snprintf(d->epoch, sizeof d->epoch, "%s", epoch);
    d->has_epoch = true;
  }
  if (h->srv->loops == NULL) return dispatch(h, d, loops, subs);
  dispatch(h, d, loops, subs);
  return 0; /* decided on the loops (after the publications handed to them before): not counted */
}

size_t hub_publish(struct hub *h, const char *channel, const Protocol__Publication *pub, const char *epoch) {
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  Protocol__Publication plain = *pub; /* the publisher's delta wish is not a pushed flag */
  plain.delta = false;
  push.channel = (char *)channel;
  push.pub = &plain;
  reply.push = &push;
  size_t delivered = fan_out(h, channel, &reply, 0, epoch ? pub->offset : 0, epoch, pub->delta);
  hub_observer_fn observer = atomic_load(&h->observer);
  if (observer) observer(channel, pub, atomic_load(&h->observer_arg));
  return delivered;
}

size_t hub_publish_join_leave(struct hub *h, const char *channel, const Protocol__ClientInfo *info,
                              int join) {
  Protocol__Join j = PROTOCOL__JOIN__INIT;
  Protocol__Leave l = PROTOCOL__LEAVE__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  j.info = l.info = (Protocol__ClientInfo *)info;
  push.channel = (char *)channel;
  if (join)
    push.join = &j;
  else
    push.leave = &l;
  reply.push = &push;
  return fan_out(h, channel, &reply, SUB_PUSH_JOIN_LEAVE, 0, NULL, false);
}

size_t hub_channel_count(struct hub *h) {
  pthread_rwlock_rdlock(&h->lock);
  size_t n = strmap_count(h->channels);
  pthread_rwlock_unlock(&h->lock);
  return n;
}

size_t hub_subscriber_count(struct hub *h, const char *channel) {
  pthread_rwlock_rdlock(&h->lock);
  struct hub_channel *ch = strmap_get(h->channels, channel);
  size_t n = ch ? ch->count : 0;
  pthread_rwlock_unlock(&h->lock);
  return n;
}

struct foreach_ctx {
  void (*fn)(const char *channel, size_t subscribers, void *arg);
  void *arg;
};

static void foreach_one(const char *key, void *value, void *arg) {
  struct foreach_ctx *ctx = arg;
  ctx->fn(key, ((struct hub_channel *)value)->count, ctx->arg);
}

void hub_foreach_channel(struct hub *h, void (*fn)(const char *channel, size_t subscribers, void *arg),
                         void *arg) {
  struct foreach_ctx ctx = {fn, arg};
  pthread_rwlock_rdlock(&h->lock);
  strmap_foreach(h->channels, foreach_one, &ctx);
  pthread_rwlock_unlock(&h->lock);
}

struct foreach_stats_ctx {
  hub_channel_stats_fn fn;
  void *arg;
};

static void foreach_stats_one(const char *key, void *value, void *arg) {
  struct foreach_stats_ctx *ctx = arg;
  struct hub_channel *ch = value;
  ctx->fn(key, ch->count, atomic_load_explicit(&ch->publications, memory_order_relaxed), ctx->arg);
}

void hub_foreach_channel_stats(struct hub *h, hub_channel_stats_fn fn, void *arg) {
  struct foreach_stats_ctx ctx = {fn, arg};
  pthread_rwlock_rdlock(&h->lock);
  strmap_foreach(h->channels, foreach_stats_one, &ctx);
  pthread_rwlock_unlock(&h->lock);
}

void hub_set_observer(struct hub *h, hub_observer_fn fn, void *arg) {
  atomic_store(&h->observer_arg, arg);
  atomic_store(&h->observer, fn);
}

void hub_set_channel_watch(struct hub *h, const struct hub_channel_watch *w) { h->watch = *w; }
