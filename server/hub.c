/* hub: channel index and local fan-out (see hub.h). Each channel keeps an array of subscription
 * pointers; each subscription remembers its index in that array, so unsubscribing is O(1) by moving the
 * last entry into the hole. Fan-out encodes the publication push lazily, once per codec in use among
 * the channel's subscribers, and hands each session a reference to the shared frame. */
#include "hub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "codec.h"
#include "codes.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "strmap.h"

/* Subscriptions whose client tracks the stream position. */
#define POSITIONED (SUB_POSITIONED | SUB_RECOVERABLE)

struct hub_channel {
  struct subscription **subs;
  size_t count, cap;
  char name[];
};

struct hub {
  pthread_rwlock_t lock;
  struct strmap *channels;
  struct server *srv;
  _Atomic(hub_observer_fn) observer;
  void *_Atomic observer_arg;
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
  return h;
}

static void free_channel(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  struct hub_channel *ch = value;
  free(ch->subs);
  free(ch);
}

void hub_free(struct hub *h) {
  if (h == NULL) return;
  strmap_foreach(h->channels, free_channel, NULL);
  strmap_free(h->channels);
  pthread_rwlock_destroy(&h->lock);
  free(h);
}

/* Finds or creates CHANNEL. Caller holds the write lock. */
static struct hub_channel *channel_get(struct hub *h, const char *name) {
  struct hub_channel *ch = strmap_get(h->channels, name);
  if (ch) return ch;
  size_t len = strlen(name);
  ch = calloc(1, sizeof *ch + len + 1);
  if (ch == NULL) return NULL;
  memcpy(ch->name, name, len + 1);
  if (strmap_put(h->channels, name, ch) != 0) {
    free(ch);
    return NULL;
  }
  h->srv->broker->ops->node_subscribe(h->srv->broker, name);
  return ch;
}

static int channel_add(struct hub_channel *ch, struct subscription *sub) {
  if (ch->count == ch->cap) {
    size_t cap = ch->cap ? ch->cap * 2 : 4;
    struct subscription **subs = realloc(ch->subs, cap * sizeof *subs);
    if (subs == NULL) return -1;
    ch->subs = subs;
    ch->cap = cap;
  }
  sub->channel = ch;
  sub->index = ch->count;
  ch->subs[ch->count++] = sub;
  return 0;
}

/* Drops CH when it has no subscribers left. Caller holds the write lock. */
static void channel_drop_if_empty(struct hub *h, struct hub_channel *ch) {
  if (ch->count > 0) return;
  strmap_remove(h->channels, ch->name);
  h->srv->broker->ops->node_unsubscribe(h->srv->broker, ch->name);
  free(ch->subs);
  free(ch);
}

/* Removes SUB from its channel, dropping the channel when it empties. Caller holds the write lock. */
static void channel_remove(struct hub *h, struct subscription *sub) {
  struct hub_channel *ch = sub->channel;
  struct subscription *last = ch->subs[--ch->count];
  ch->subs[sub->index] = last;
  last->index = sub->index;
  channel_drop_if_empty(h, ch);
}

/* The session's subscription to CHANNEL, or NULL. Caller holds s->lock. */
static struct subscription **find_sub(struct session *s, const char *channel) {
  struct subscription **pp = &s->subs;
  while (*pp && strcmp((*pp)->channel_name, channel) != 0) pp = &(*pp)->next;
  return pp;
}

static int subscribe_locked(struct hub *h, struct session *s, const char *channel, size_t limit,
                            unsigned flags) {
  if (s->state >= SESSION_CLOSING) return -HUB_ECLOSED;
  if (*find_sub(s, channel)) return -HUB_EALREADY;
  if (limit > 0 && s->sub_count >= limit) return -HUB_ELIMIT;
  size_t len = strlen(channel);
  struct subscription *sub = calloc(1, sizeof *sub + len + 1);
  if (sub == NULL) return -HUB_ENOMEM;
  memcpy(sub->channel_name, channel, len + 1);
  sub->session = s;
  sub->flags = flags;
  struct hub_channel *ch = channel_get(h, channel);
  if (ch == NULL || channel_add(ch, sub) != 0) {
    if (ch) channel_drop_if_empty(h, ch);
    free(sub);
    return -HUB_ENOMEM;
  }
  sub->next = s->subs;
  s->subs = sub;
  s->sub_count++;
  return 0;
}

int hub_subscribe(struct hub *h, struct session *s, const char *channel, size_t limit, unsigned flags,
                  struct frame *reply) {
  pthread_rwlock_wrlock(&h->lock);
  pthread_mutex_lock(&s->lock);
  int rc = subscribe_locked(h, s, channel, limit, flags);
  pthread_mutex_unlock(&s->lock);
  if (rc == 0 && reply) session_enqueue(s, reply);
  pthread_rwlock_unlock(&h->lock);
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

int hub_set_position(struct hub *h, struct session *s, const char *channel, uint64_t offset, const char *epoch) {
  (void)h;
  pthread_mutex_lock(&s->lock);
  struct subscription *sub = *find_sub(s, channel);
  if (sub) {
    sub->offset = offset;
    snprintf(sub->epoch, sizeof sub->epoch, "%s", epoch ? epoch : "");
  }
  pthread_mutex_unlock(&s->lock);
  return sub ? 0 : -HUB_ENOTSUB;
}

size_t hub_check_position(struct hub *h, const char *channel, uint64_t offset, const char *epoch) {
  size_t lost = 0;
  pthread_rwlock_rdlock(&h->lock);
  struct hub_channel *ch = strmap_get(h->channels, channel);
  for (size_t i = 0; ch && i < ch->count; i++) {
    struct subscription *sub = ch->subs[i];
    if (!(sub->flags & POSITIONED)) continue;
    bool other_epoch = epoch && epoch[0] && sub->epoch[0] && strcmp(epoch, sub->epoch) != 0;
    if (!other_epoch && sub->offset >= offset) continue;
    log_info("client %s: behind the stream of channel %s (at %llu, top %llu)", sub->session->client_id, channel,
             (unsigned long long)sub->offset, (unsigned long long)offset);
    session_close(sub->session, DISCONNECT_INSUFFICIENT_STATE);
    lost++;
  }
  pthread_rwlock_unlock(&h->lock);
  return lost;
}

bool hub_has_positioned(struct hub *h, const char *channel) {
  bool found = false;
  pthread_rwlock_rdlock(&h->lock);
  struct hub_channel *ch = strmap_get(h->channels, channel);
  for (size_t i = 0; ch && i < ch->count && !found; i++) found = (ch->subs[i]->flags & POSITIONED) != 0;
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

/* Encodes REPLY (a push) for codec KIND; NULL when the codec cannot carry it. */
static struct frame *encode_push(enum codec_kind kind, const char *channel, const Protocol__Reply *reply) {
  struct frame *f = NULL;
  int rc = codec_get(kind)->encode_reply(reply, &f);
  if (rc != 0)
    log_warn("channel %s: push not encodable as %s: %s", channel, codec_get(kind)->name, codec_strerror(rc));
  return rc == 0 ? f : NULL;
}

/* Whether positioned SUB is to get the publication at OFFSET of EPOCH: 1 yes (and its position moves),
 * 0 it has it already, -1 it lost state. */
static int position_next(struct subscription *sub, uint64_t offset, const char *epoch) {
  if (epoch && epoch[0] && sub->epoch[0] && strcmp(epoch, sub->epoch) != 0) return -1;
  if (offset <= sub->offset) return 0;
  if (offset > sub->offset + 1) return -1;
  sub->offset = offset;
  return 1;
}

/* Queues REPLY to every subscriber of CHANNEL having all of REQUIRED flags, encoding it at most once
 * per codec. A session whose codec cannot carry the push is closed with 3506. With OFFSET > 0 the push
 * is that stream position's publication (of EPOCH): positioned subscribers get it only in order. */
static size_t fan_out(struct hub *h, const char *channel, const Protocol__Reply *reply, unsigned required,
                      uint64_t offset, const char *epoch) {
  struct frame *frames[CODEC_COUNT] = {0};
  bool tried[CODEC_COUNT] = {0};
  size_t delivered = 0;
  pthread_rwlock_rdlock(&h->lock);
  struct hub_channel *ch = strmap_get(h->channels, channel);
  for (size_t i = 0; ch && i < ch->count; i++) {
    if ((ch->subs[i]->flags & required) != required) continue;
    struct session *s = ch->subs[i]->session;
    if (offset > 0 && (ch->subs[i]->flags & POSITIONED)) {
      int next = position_next(ch->subs[i], offset, epoch);
      if (next == 0) continue;
      if (next < 0) {
        log_info("client %s: lost its position in channel %s (at %llu, got %llu)", s->client_id, channel,
                 (unsigned long long)ch->subs[i]->offset, (unsigned long long)offset);
        session_close(s, DISCONNECT_INSUFFICIENT_STATE);
        continue;
      }
    }
    enum codec_kind k = s->codec->kind;
    if (!tried[k]) {
      frames[k] = encode_push(k, channel, reply);
      tried[k] = true;
    }
    if (frames[k] == NULL) {
      session_close(s, DISCONNECT_INAPPROPRIATE_PROTOCOL);
      continue;
    }
    if (session_enqueue(s, frames[k]) == 0) delivered++;
  }
  pthread_rwlock_unlock(&h->lock);
  for (int k = 0; k < CODEC_COUNT; k++) frame_unref(frames[k]);
  return delivered;
}

size_t hub_publish(struct hub *h, const char *channel, const Protocol__Publication *pub, const char *epoch) {
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  push.channel = (char *)channel;
  push.pub = (Protocol__Publication *)pub;
  reply.push = &push;
  size_t delivered = fan_out(h, channel, &reply, 0, epoch ? pub->offset : 0, epoch);
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
  return fan_out(h, channel, &reply, SUB_PUSH_JOIN_LEAVE, 0, NULL);
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

void hub_set_observer(struct hub *h, hub_observer_fn fn, void *arg) {
  atomic_store(&h->observer_arg, arg);
  atomic_store(&h->observer, fn);
}
