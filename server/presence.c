/* presence: channels spread over STRIPES mutex-guarded maps (channel -> struct channel). A channel maps
 * client ids to flat ClientInfo copies and user ids to their entry count (stored as the pointer value,
 * always >= 1). Invariants: the user counts sum to the number of clients; a channel in the index has at
 * least one client. */
#include "presence.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
#include "strmap.h"

#define STRIPES 16 /* power of two */

struct channel {
  struct strmap *clients; /* client id -> Protocol__ClientInfo * (one allocation, see info_dup) */
  struct strmap *users;   /* user id -> (void *)(uintptr_t)entries */
};

struct stripe {
  pthread_mutex_t lock;
  struct strmap *channels;
};

struct presence {
  struct stripe stripes[STRIPES];
};

Protocol__ClientInfo *presence_info_copy(const Protocol__ClientInfo *src) {
  const char *user = src->user ? src->user : "";
  size_t ulen = strlen(user) + 1, clen = strlen(src->client) + 1;
  size_t nlen = src->conn_info.len, hlen = src->chan_info.len;
  Protocol__ClientInfo *d = malloc(sizeof *d + ulen + clen + nlen + hlen);
  if (d == NULL) return NULL;
  *d = (Protocol__ClientInfo)PROTOCOL__CLIENT_INFO__INIT;
  char *p = (char *)(d + 1);
  d->user = memcpy(p, user, ulen);
  d->client = memcpy(p += ulen, src->client, clen);
  p += clen;
  d->conn_info = (ProtobufCBinaryData){nlen, nlen ? memcpy(p, src->conn_info.data, nlen) : NULL};
  p += nlen;
  d->chan_info = (ProtobufCBinaryData){hlen, hlen ? memcpy(p, src->chan_info.data, hlen) : NULL};
  return d;
}

static void free_value(const char *key, void *value, void *arg) {
  (void)key, (void)arg;
  free(value);
}

static void channel_free(struct channel *ch) {
  if (ch == NULL) return;
  if (ch->clients != NULL) strmap_foreach(ch->clients, free_value, NULL);
  strmap_free(ch->clients);
  strmap_free(ch->users);
  free(ch);
}

static void channel_free_cb(const char *key, void *value, void *arg) {
  (void)key, (void)arg;
  channel_free(value);
}

static struct channel *channel_new(void) {
  struct channel *ch = calloc(1, sizeof *ch);
  if (ch == NULL) return NULL;
  ch->clients = strmap_new();
  ch->users = strmap_new();
  if (ch->clients == NULL || ch->users == NULL) {
    channel_free(ch);
    return NULL;
  }
  return ch;
}

/* Counts one more entry of USER. Returns 0 or -PRESENCE_ENOMEM. */
static int user_retain(struct channel *ch, const char *user) {
  uintptr_t n = (uintptr_t)strmap_get(ch->users, user);
  return strmap_put(ch->users, user, (void *)(n + 1)) == 0 ? 0 : -PRESENCE_ENOMEM;
}

/* Counts one entry of USER less (never allocates: the key exists). */
static void user_release(struct channel *ch, const char *user) {
  uintptr_t n = (uintptr_t)strmap_get(ch->users, user);
  if (n <= 1)
    strmap_remove(ch->users, user);
  else
    strmap_put(ch->users, user, (void *)(n - 1));
}

/* The stripe CHANNEL belongs to, locked (the keyed hash of the name: no client can pick names that
 * all share one stripe). */
static struct stripe *stripe_lock(struct presence *p, const char *channel) {
  struct stripe *st = &p->stripes[(siphash_string(channel) >> 32) & (STRIPES - 1)];
  pthread_mutex_lock(&st->lock);
  return st;
}

/* Drops CHANNEL from ST when its last entry is gone. */
static void channel_release(struct stripe *st, const char *channel, struct channel *ch) {
  if (strmap_count(ch->clients) > 0) return;
  strmap_remove(st->channels, channel);
  channel_free(ch);
}

struct presence *presence_new(void) {
  struct presence *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_init(&p->stripes[i].lock, NULL);
    p->stripes[i].channels = strmap_new();
    if (p->stripes[i].channels == NULL) {
      presence_free(p);
      return NULL;
    }
  }
  return p;
}

void presence_free(struct presence *p) {
  if (p == NULL) return;
  for (int i = 0; i < STRIPES; i++) {
    if (p->stripes[i].channels != NULL) strmap_foreach(p->stripes[i].channels, channel_free_cb, NULL);
    strmap_free(p->stripes[i].channels);
    pthread_mutex_destroy(&p->stripes[i].lock);
  }
  free(p);
}

/* Stores the entry INFO (taken) in CH; on error INFO is not taken and CH is unchanged. */
static int channel_put(struct channel *ch, Protocol__ClientInfo *info) {
  if (user_retain(ch, info->user) != 0) return -PRESENCE_ENOMEM;
  Protocol__ClientInfo *old = strmap_get(ch->clients, info->client);
  if (strmap_put(ch->clients, info->client, info) != 0) {
    user_release(ch, info->user);
    return -PRESENCE_ENOMEM;
  }
  if (old != NULL) {
    user_release(ch, old->user);
    free(old);
  }
  return 0;
}

int presence_add(struct presence *p, const char *channel, const Protocol__ClientInfo *info) {
  if (info == NULL || info->client == NULL || info->client[0] == '\0') return -PRESENCE_EINVAL;
  Protocol__ClientInfo *copy = presence_info_copy(info); /* outside the lock */
  if (copy == NULL) return -PRESENCE_ENOMEM;
  int rc = -PRESENCE_ENOMEM;
  struct stripe *st = stripe_lock(p, channel);
  struct channel *ch = strmap_get(st->channels, channel);
  if (ch == NULL) {
    ch = channel_new();
    if (ch == NULL) goto out;
    if (strmap_put(st->channels, channel, ch) != 0) {
      channel_free(ch);
      goto out;
    }
  }
  rc = channel_put(ch, copy);
  if (rc == 0) copy = NULL;
  channel_release(st, channel, ch); /* a channel created for a failed add */
out:
  pthread_mutex_unlock(&st->lock);
  free(copy);
  return rc;
}

int presence_remove(struct presence *p, const char *channel, const char *client_id) {
  struct stripe *st = stripe_lock(p, channel);
  struct channel *ch = strmap_get(st->channels, channel);
  Protocol__ClientInfo *info = ch ? strmap_remove(ch->clients, client_id) : NULL;
  if (info != NULL) {
    user_release(ch, info->user);
    channel_release(st, channel, ch);
  }
  pthread_mutex_unlock(&st->lock);
  free(info);
  return 0;
}

/* Copies entries into a presence_result until it is full, during strmap_foreach. */
struct gather {
  struct presence_result *out;
  size_t max;
  int rc;
};

static void gather_cb(const char *key, void *value, void *arg) {
  (void)key;
  struct gather *g = arg;
  if (g->rc != 0 || g->out->n == g->max) return;
  Protocol__ClientInfo *copy = presence_info_copy(value);
  if (copy == NULL) {
    g->rc = -PRESENCE_ENOMEM;
    return;
  }
  g->out->infos[g->out->n++] = copy;
}

int presence_get(struct presence *p, const char *channel, size_t max, struct presence_result *out) {
  memset(out, 0, sizeof *out);
  struct gather g = {.out = out, .rc = 0};
  struct stripe *st = stripe_lock(p, channel);
  struct channel *ch = strmap_get(st->channels, channel);
  if (ch != NULL) {
    out->total = strmap_count(ch->clients);
    g.max = max > 0 && max < out->total ? max : out->total;
    out->infos = malloc(g.max * sizeof *out->infos); /* g.max >= 1: channels are never empty */
    if (out->infos == NULL)
      g.rc = -PRESENCE_ENOMEM;
    else
      strmap_foreach(ch->clients, gather_cb, &g);
  }
  pthread_mutex_unlock(&st->lock);
  return g.rc;
}

int presence_stats(struct presence *p, const char *channel, uint32_t *num_clients, uint32_t *num_users) {
  struct stripe *st = stripe_lock(p, channel);
  struct channel *ch = strmap_get(st->channels, channel);
  *num_clients = ch ? (uint32_t)strmap_count(ch->clients) : 0;
  *num_users = ch ? (uint32_t)strmap_count(ch->users) : 0;
  pthread_mutex_unlock(&st->lock);
  return 0;
}

void presence_result_cleanup(struct presence_result *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n; i++) free(r->infos[i]);
  free(r->infos);
  r->infos = NULL;
  r->n = r->total = 0;
}
