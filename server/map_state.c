/* map_state: keyed state of map channels (see map_state.h). Each channel is a sorted array of entries,
 * found by binary search; a channel with no keys left is dropped. */
#include "map_state.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
#include "strmap.h"

#define STRIPES 16

struct map_entry {
  char *key;
  uint8_t *packed; /* the publication, packed without offset */
  size_t len;
  uint64_t offset;
  uint64_t expires_ms; /* 0 = never */
};

struct map_channel {
  struct map_entry *entries; /* sorted by key (strcmp) */
  size_t n, cap;
};

struct stripe {
  pthread_mutex_t lock;
  struct strmap *channels; /* name => struct map_channel */
};

struct map_state {
  struct stripe stripes[STRIPES];
};

static struct stripe *stripe_of(struct map_state *ms, const char *channel) {
  return &ms->stripes[(siphash_string(channel) >> 32) % STRIPES];
}

struct map_state *map_state_new(void) {
  struct map_state *ms = calloc(1, sizeof *ms);
  if (ms == NULL) return NULL;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_init(&ms->stripes[i].lock, NULL);
    if ((ms->stripes[i].channels = strmap_new()) == NULL) {
      map_state_free(ms);
      return NULL;
    }
  }
  return ms;
}

static void channel_free(struct map_channel *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->entries[i].key);
    free(c->entries[i].packed);
  }
  free(c->entries);
  free(c);
}

static void free_one(const char *name, void *value, void *arg) {
  (void)name;
  (void)arg;
  channel_free(value);
}

void map_state_free(struct map_state *ms) {
  if (ms == NULL) return;
  for (int i = 0; i < STRIPES; i++) {
    if (ms->stripes[i].channels) {
      strmap_foreach(ms->stripes[i].channels, free_one, NULL);
      strmap_free(ms->stripes[i].channels);
    }
    pthread_mutex_destroy(&ms->stripes[i].lock);
  }
  free(ms);
}

/* The index of KEY in C, or where it would go (*FOUND false). */
static size_t find(const struct map_channel *c, const char *key, bool *found) {
  size_t lo = 0, hi = c->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcmp(c->entries[mid].key, key);
    if (cmp == 0) {
      *found = true;
      return mid;
    }
    if (cmp < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

static bool live(const struct map_entry *e, uint64_t now_ms) { return e->expires_ms == 0 || e->expires_ms > now_ms; }

static void entry_drop(struct map_channel *c, size_t i) {
  free(c->entries[i].key);
  free(c->entries[i].packed);
  memmove(&c->entries[i], &c->entries[i + 1], (c->n - i - 1) * sizeof *c->entries);
  c->n--;
}

/* Drops CHANNEL's record once it holds no key (under its stripe's lock). */
static void channel_forget_if_empty(struct stripe *st, const char *channel, struct map_channel *c) {
  if (c->n > 0) return;
  strmap_remove(st->channels, channel);
  channel_free(c);
}

static bool key_allowed(const struct map_channel *c, const char *key, enum map_key_mode mode, uint64_t now_ms) {
  bool found = false;
  size_t i = c ? find(c, key, &found) : 0;
  bool exists = found && live(&c->entries[i], now_ms);
  return mode == MAP_KEY_ANY || ((mode == MAP_KEY_IF_NEW || mode == MAP_KEY_TOUCH) && !exists) ||
         (mode == MAP_KEY_IF_EXISTS && exists);
}

bool map_state_allows(struct map_state *ms, const char *channel, const char *key, enum map_key_mode mode,
                      uint64_t now_ms) {
  struct stripe *st = stripe_of(ms, channel);
  pthread_mutex_lock(&st->lock);
  bool ok = key_allowed(strmap_get(st->channels, channel), key, mode, now_ms);
  pthread_mutex_unlock(&st->lock);
  return ok;
}

int map_state_set(struct map_state *ms, const char *channel, const char *key, const Protocol__Publication *pub,
                  uint64_t offset, uint64_t expires_ms, enum map_key_mode mode, uint64_t now_ms) {
  Protocol__Publication copy = *pub;
  copy.offset = 0;
  size_t len = protocol__publication__get_packed_size(&copy);
  uint8_t *packed = malloc(len ? len : 1);
  char *key_copy = strdup(key);
  if (packed == NULL || key_copy == NULL) {
    free(packed);
    free(key_copy);
    return MAP_STATE_ENOMEM;
  }
  protocol__publication__pack(&copy, packed);

  struct stripe *st = stripe_of(ms, channel);
  int rc = MAP_STATE_OK;
  pthread_mutex_lock(&st->lock);
  struct map_channel *c = strmap_get(st->channels, channel);
  if (!key_allowed(c, key, mode, now_ms)) {
    bool found = false;
    size_t i = c ? find(c, key, &found) : 0;
    if (mode == MAP_KEY_TOUCH && found) c->entries[i].expires_ms = expires_ms;
    rc = MAP_STATE_SUPPRESSED;
    goto out;
  }
  if (c == NULL) {
    if ((c = calloc(1, sizeof *c)) == NULL || strmap_put(st->channels, channel, c) != 0) {
      free(c);
      rc = MAP_STATE_ENOMEM;
      goto out;
    }
  }
  bool found = false;
  size_t i = find(c, key, &found);
  if (!found) {
    if (c->n == c->cap) {
      size_t cap = c->cap ? c->cap * 2 : 4;
      struct map_entry *grown = realloc(c->entries, cap * sizeof *grown);
      if (grown == NULL) {
        channel_forget_if_empty(st, channel, c);
        rc = MAP_STATE_ENOMEM;
        goto out;
      }
      c->entries = grown;
      c->cap = cap;
    }
    memmove(&c->entries[i + 1], &c->entries[i], (c->n - i) * sizeof *c->entries);
    c->n++;
    c->entries[i] = (struct map_entry){.key = key_copy};
    key_copy = NULL;
  }
  struct map_entry *e = &c->entries[i];
  free(e->packed);
  e->packed = packed;
  e->len = len;
  e->offset = offset;
  e->expires_ms = expires_ms;
  packed = NULL;
out:
  pthread_mutex_unlock(&st->lock);
  free(packed);
  free(key_copy);
  return rc;
}

/* Removes KEY when it is there and, with ONLY_EXPIRED, has expired; else when it is live. */
static bool remove_key(struct map_state *ms, const char *channel, const char *key, uint64_t now_ms,
                       bool only_expired) {
  struct stripe *st = stripe_of(ms, channel);
  bool removed = false;
  pthread_mutex_lock(&st->lock);
  struct map_channel *c = strmap_get(st->channels, channel);
  bool found = false;
  size_t i = c ? find(c, key, &found) : 0;
  if (found && live(&c->entries[i], now_ms) != only_expired) {
    entry_drop(c, i);
    channel_forget_if_empty(st, channel, c);
    removed = true;
  }
  pthread_mutex_unlock(&st->lock);
  return removed;
}

bool map_state_remove(struct map_state *ms, const char *channel, const char *key, uint64_t now_ms) {
  return remove_key(ms, channel, key, now_ms, false);
}

bool map_state_take_expired(struct map_state *ms, const char *channel, const char *key, uint64_t now_ms) {
  return remove_key(ms, channel, key, now_ms, true);
}

static Protocol__Publication *entry_unpack(const struct map_entry *e) {
  Protocol__Publication *p = protocol__publication__unpack(NULL, e->len, e->packed);
  if (p == NULL) return NULL;
  p->offset = e->offset;
  return p;
}

int map_state_page(struct map_state *ms, const char *channel, const char *cursor, size_t limit, uint64_t max_offset,
                   uint64_t now_ms, struct map_page *out) {
  *out = (struct map_page){0};
  if (limit == 0) return MAP_STATE_OK;
  struct stripe *st = stripe_of(ms, channel);
  int rc = MAP_STATE_OK;
  pthread_mutex_lock(&st->lock);
  struct map_channel *c = strmap_get(st->channels, channel);
  if (c == NULL) goto out;
  bool found = false;
  size_t i = cursor[0] ? find(c, cursor, &found) : 0;
  if (found) i++; /* the cursor is the last key of the previous page */
  size_t want = limit < c->n - i ? limit : c->n - i;
  if ((out->entries = calloc(want ? want : 1, sizeof *out->entries)) == NULL) {
    rc = MAP_STATE_ENOMEM;
    goto out;
  }
  for (; i < c->n && out->n < limit; i++) {
    const struct map_entry *e = &c->entries[i];
    if (!live(e, now_ms) || (max_offset && e->offset > max_offset)) continue;
    if ((out->entries[out->n] = entry_unpack(e)) == NULL) {
      rc = MAP_STATE_ENOMEM;
      goto out;
    }
    out->n++;
  }
  if (i < c->n && out->n > 0 && (out->next_cursor = strdup(out->entries[out->n - 1]->key)) == NULL)
    rc = MAP_STATE_ENOMEM;
out:
  pthread_mutex_unlock(&st->lock);
  if (rc != MAP_STATE_OK) map_page_cleanup(out);
  return rc;
}

void map_page_cleanup(struct map_page *p) {
  for (size_t i = 0; i < p->n; i++) protocol__publication__free_unpacked(p->entries[i], NULL);
  free(p->entries);
  free(p->next_cursor);
  *p = (struct map_page){0};
}

size_t map_state_count(struct map_state *ms, const char *channel, uint64_t now_ms) {
  struct stripe *st = stripe_of(ms, channel);
  size_t n = 0;
  pthread_mutex_lock(&st->lock);
  const struct map_channel *c = strmap_get(st->channels, channel);
  for (size_t i = 0; c && i < c->n; i++) n += live(&c->entries[i], now_ms);
  pthread_mutex_unlock(&st->lock);
  return n;
}

void map_state_clear(struct map_state *ms, const char *channel) {
  struct stripe *st = stripe_of(ms, channel);
  pthread_mutex_lock(&st->lock);
  struct map_channel *c = strmap_remove(st->channels, channel);
  pthread_mutex_unlock(&st->lock);
  if (c) channel_free(c);
}

/* One expired key found by a sweep, copied out of the lock. */
struct expired {
  char *channel, *key;
};

struct sweep {
  uint64_t now_ms;
  size_t max;
  struct expired *found;
  size_t n;
  bool failed;
};

static void sweep_channel(const char *name, void *value, void *arg) {
  struct sweep *sw = arg;
  const struct map_channel *c = value;
  for (size_t i = 0; i < c->n && sw->n < sw->max && !sw->failed; i++) {
    if (live(&c->entries[i], sw->now_ms)) continue;
    struct expired *x = &sw->found[sw->n];
    x->channel = strdup(name);
    x->key = strdup(c->entries[i].key);
    if (x->channel == NULL || x->key == NULL) {
      free(x->channel);
      free(x->key);
      sw->failed = true;
      return;
    }
    sw->n++;
  }
}

size_t map_state_expired(struct map_state *ms, uint64_t now_ms, size_t max,
                         void (*fn)(void *arg, const char *channel, const char *key), void *arg) {
  struct sweep sw = {.now_ms = now_ms, .max = max};
  if (max == 0 || (sw.found = calloc(max, sizeof *sw.found)) == NULL) return 0;
  for (int i = 0; i < STRIPES && sw.n < max && !sw.failed; i++) {
    pthread_mutex_lock(&ms->stripes[i].lock);
    strmap_foreach(ms->stripes[i].channels, sweep_channel, &sw);
    pthread_mutex_unlock(&ms->stripes[i].lock);
  }
  for (size_t i = 0; i < sw.n; i++) {
    fn(arg, sw.found[i].channel, sw.found[i].key);
    free(sw.found[i].channel);
    free(sw.found[i].key);
  }
  free(sw.found);
  return sw.n;
}
