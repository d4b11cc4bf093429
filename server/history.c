/* history: channel streams spread over STRIPES mutex-guarded hash maps (channel -> struct stream). A
 * stream's publications live in a ring buffer of packed entries; the ring always holds the contiguous
 * offsets (top - count, top], so the entry for an offset is found by arithmetic and "is the whole gap
 * still here" is one comparison. Invariants: count <= cap; count <= the size of the latest add; a
 * stream with count > 0 has pubs_expire_at > the time of its last access; ring == NULL iff cap == 0. */
#include "history.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "ids.h"
#include "siphash.h"
#include "strmap.h"

#define STRIPES 16 /* power of two */
#define RING_MIN 8 /* first ring allocation, in entries */

static const char epoch_letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* One stored publication: protobuf-c bytes of a Publication without offset, channel and epoch. */
struct entry {
  size_t len;
  uint8_t buf[];
};

struct stream {
  char epoch[HISTORY_EPOCH_LEN + 1];
  uint64_t top;            /* offset of the newest publication ever added, 0 before the first */
  uint64_t pubs_expire_at; /* every publication goes at this time */
  uint64_t meta_expire_at; /* the whole stream goes at this time (UINT64_MAX = never) */
  struct entry **ring;
  size_t cap, head, count; /* ring[head] holds offset top - count + 1 */
};

struct stripe {
  pthread_mutex_t lock;
  struct strmap *streams;
};

struct history {
  uint64_t meta_ttl_ms;
  struct stripe stripes[STRIPES];
};

/* ---- ring ---- */

static uint64_t ring_first(const struct stream *s) { return s->top - s->count + 1; }

/* The entry holding OFFSET, which must lie in (top - count, top]. */
static struct entry *ring_at(const struct stream *s, uint64_t offset) {
  return s->ring[(s->head + (size_t)(offset - ring_first(s))) % s->cap];
}

static void ring_drop_oldest(struct stream *s) {
  free(s->ring[s->head]);
  s->ring[s->head] = NULL;
  s->head = (s->head + 1) % s->cap;
  s->count--;
}

/* Drops every publication and the ring itself; top and epoch stay. */
static void ring_clear(struct stream *s) {
  while (s->count > 0) ring_drop_oldest(s);
  free(s->ring);
  s->ring = NULL;
  s->cap = s->head = 0;
}

/* Moves the entries into a fresh ring of CAP (>= count) slots, oldest first. */
static int ring_resize(struct stream *s, size_t cap) {
  struct entry **ring = calloc(cap, sizeof *ring);
  if (ring == NULL) return -HISTORY_ENOMEM;
  for (size_t i = 0; i < s->count; i++) ring[i] = s->ring[(s->head + i) % s->cap];
  free(s->ring);
  s->ring = ring;
  s->cap = cap;
  s->head = 0;
  return 0;
}

/* Makes room for one more entry under the limit SIZE (>= 1): evicts the oldest so that at most SIZE - 1
 * remain, then grows the ring by doubling (never past SIZE) or shrinks it to SIZE after a lowered limit. */
static int ring_reserve(struct stream *s, size_t size) {
  while (s->count >= size) ring_drop_oldest(s);
  size_t cap = s->cap;
  if (cap > size)
    cap = size;
  else if (s->count == cap)
    cap = cap == 0 ? RING_MIN : cap * 2;
  if (cap > size) cap = size;
  return cap == s->cap ? 0 : ring_resize(s, cap);
}

/* ---- streams ---- */

/* Eight letters from one random number below 52^8 (< 2^46): one getrandom call per new stream. */
_Static_assert(sizeof(unsigned long) >= 8, "epoch_new draws 46 random bits in one unsigned long");
static void epoch_new(char out[HISTORY_EPOCH_LEN + 1]) {
  const unsigned long base = sizeof epoch_letters - 1;
  unsigned long bound = 1;
  for (int i = 0; i < HISTORY_EPOCH_LEN; i++) bound *= base;
  unsigned long r = id_random_below(bound);
  for (int i = 0; i < HISTORY_EPOCH_LEN; i++, r /= base) out[i] = epoch_letters[r % base];
  out[HISTORY_EPOCH_LEN] = '\0';
}

static void stream_free(struct stream *s) {
  ring_clear(s);
  free(s);
}

static void stream_free_cb(const char *key, void *value, void *arg) {
  (void)key, (void)arg;
  stream_free(value);
}

static bool epoch_matches(const struct stream *s, const char *epoch) {
  return epoch == NULL || epoch[0] == '\0' || strcmp(s->epoch, epoch) == 0;
}

static void position_of(const struct stream *s, struct stream_position *pos) {
  pos->offset = s->top;
  memcpy(pos->epoch, s->epoch, sizeof s->epoch);
}

/* CHANNEL's stream in ST (locked) after lazy expiry, or NULL. */
static struct stream *stream_find(struct stripe *st, const char *channel, uint64_t now) {
  struct stream *s = strmap_get(st->streams, channel);
  if (s != NULL && now >= s->meta_expire_at) {
    strmap_remove(st->streams, channel);
    stream_free(s);
    return NULL;
  }
  if (s != NULL && s->count > 0 && now >= s->pubs_expire_at) ring_clear(s);
  return s;
}

/* CHANNEL's stream, created (new epoch, top 0) when missing, with its meta TTL restarted: every publish
 * and read keeps a stream alive, as in Centrifugo. NULL when out of memory. */
static struct stream *stream_open(struct history *h, struct stripe *st, const char *channel, uint64_t now) {
  struct stream *s = stream_find(st, channel, now);
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    epoch_new(s->epoch);
    if (strmap_put(st->streams, channel, s) != 0) {
      free(s);
      return NULL;
    }
  }
  s->meta_expire_at =
      h->meta_ttl_ms > 0 && now <= UINT64_MAX - h->meta_ttl_ms ? now + h->meta_ttl_ms : UINT64_MAX;
  return s;
}

/* The stripe CHANNEL belongs to, locked (the keyed hash of the name: no client can pick names that
 * all share one stripe). */
static struct stripe *stripe_lock(struct history *h, const char *channel) {
  struct stripe *st = &h->stripes[(siphash_string(channel) >> 32) & (STRIPES - 1)];
  pthread_mutex_lock(&st->lock);
  return st;
}

/* ---- publications ---- */

/* PUB packed without offset, channel and epoch, in one allocation; NULL when out of memory. */
static struct entry *entry_pack(const Protocol__Publication *pub) {
  Protocol__Publication c = *pub; /* shallow: only the copy's top-level fields change */
  c.offset = 0;
  c.channel = (char *)protobuf_c_empty_string;
  c.epoch = (char *)protobuf_c_empty_string;
  size_t len = protocol__publication__get_packed_size(&c);
  struct entry *e = malloc(sizeof *e + len);
  if (e == NULL) return NULL;
  e->len = protocol__publication__pack(&c, e->buf);
  return e;
}

/* Unpacks N publications into OUT starting at offset FROM, going forward or BACKWARD. On error OUT
 * keeps what was unpacked so far (the caller cleans up). */
static int collect(const struct stream *s, uint64_t from, size_t n, bool backward,
                   struct history_result *out) {
  if (n == 0) return 0;
  out->pubs = malloc(n * sizeof *out->pubs);
  if (out->pubs == NULL) return -HISTORY_ENOMEM;
  uint64_t off = from;
  for (size_t i = 0; i < n; i++) {
    const struct entry *e = ring_at(s, off);
    Protocol__Publication *p = protocol__publication__unpack(NULL, e->len, e->buf);
    if (p == NULL) return -HISTORY_ENOMEM; /* we packed these bytes: only allocation can fail */
    p->offset = off;
    out->pubs[out->n++] = p;
    off = backward ? off - 1 : off + 1;
  }
  return 0;
}

/* ---- public API ---- */

struct history *history_new(uint64_t meta_ttl_ms) {
  struct history *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  h->meta_ttl_ms = meta_ttl_ms;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_init(&h->stripes[i].lock, NULL);
    h->stripes[i].streams = strmap_new();
    if (h->stripes[i].streams == NULL) {
      history_free(h);
      return NULL;
    }
  }
  return h;
}

void history_free(struct history *h) {
  if (h == NULL) return;
  for (int i = 0; i < STRIPES; i++) {
    if (h->stripes[i].streams != NULL) strmap_foreach(h->stripes[i].streams, stream_free_cb, NULL);
    strmap_free(h->stripes[i].streams);
    pthread_mutex_destroy(&h->stripes[i].lock);
  }
  free(h);
}

int history_add(struct history *h, const char *channel, const Protocol__Publication *pub, size_t size,
                uint64_t ttl_ms, uint64_t now_ms, struct stream_position *pos_out) {
  if (h == NULL || channel == NULL || pub == NULL || size == 0 || ttl_ms == 0) return -HISTORY_EINVAL;
  if (size > HISTORY_MAX_SIZE) size = HISTORY_MAX_SIZE;
  struct entry *e = entry_pack(pub); /* outside the lock: packing is the costly part */
  if (e == NULL) return -HISTORY_ENOMEM;
  int rc = -HISTORY_ENOMEM;
  struct stripe *st = stripe_lock(h, channel);
  struct stream *s = stream_open(h, st, channel, now_ms);
  if (s == NULL || ring_reserve(s, size) != 0) goto out;
  s->ring[(s->head + s->count) % s->cap] = e;
  s->count++;
  s->top++;
  s->pubs_expire_at = ttl_ms <= UINT64_MAX - now_ms ? now_ms + ttl_ms : UINT64_MAX;
  if (pos_out != NULL) position_of(s, pos_out);
  e = NULL;
  rc = 0;
out:
  pthread_mutex_unlock(&st->lock);
  free(e);
  return rc;
}

/* How many publications Q asks for at most: SIZE_MAX = all. */
static size_t query_limit(const struct history_query *q) {
  if (q->limit == 0) return 0;
  size_t n = q->limit < 0 ? SIZE_MAX : (size_t)q->limit;
  return q->max_limit > 0 && n > q->max_limit ? q->max_limit : n;
}

/* Where Q starts reading in S (*FROM) and how many it reads (*N, at most LIMIT). */
static void query_range(const struct stream *s, const struct history_query *q, size_t limit, uint64_t *from,
                        size_t *n) {
  *n = 0;
  if (s->count == 0 || limit == 0) return;
  uint64_t lo = ring_first(s), hi = s->top, avail;
  if (!q->reverse) {
    if (q->has_since && q->since_offset >= hi) return;
    *from = q->has_since && q->since_offset + 1 > lo ? q->since_offset + 1 : lo;
    avail = hi - *from + 1;
  } else {
    if (q->has_since && q->since_offset <= lo) return;
    *from = q->has_since && q->since_offset - 1 < hi ? q->since_offset - 1 : hi;
    avail = *from - lo + 1;
  }
  *n = avail < limit ? (size_t)avail : limit;
}

static void result_init(struct history_result *out) { memset(out, 0, sizeof *out); }

int history_query(struct history *h, const char *channel, const struct history_query *q, uint64_t now_ms,
                  struct history_result *out) {
  result_init(out);
  if (q->has_since && q->reverse && q->since_offset == 0) return -HISTORY_EBADREQUEST;
  int rc = -HISTORY_ENOMEM;
  struct stripe *st = stripe_lock(h, channel);
  struct stream *s = stream_open(h, st, channel, now_ms);
  if (s == NULL) goto out;
  position_of(s, &out->pos);
  rc = -HISTORY_EUNRECOVERABLE;
  if (q->has_since && !epoch_matches(s, q->since_epoch)) goto out;
  uint64_t from = 0;
  size_t n;
  query_range(s, q, query_limit(q), &from, &n);
  rc = collect(s, from, n, q->reverse, out);
out:
  pthread_mutex_unlock(&st->lock);
  if (rc != 0) history_result_cleanup(out);
  return rc;
}

/* True when every publication after SINCE is still in S (or there is none) and within MAX (0 = any). */
static bool recoverable(const struct stream *s, uint64_t since, const char *epoch, size_t max) {
  if (!epoch_matches(s, epoch) || since > s->top) return false;
  uint64_t missed = s->top - since;
  if (missed == 0) return true;
  if (max > 0 && missed > max) return false;
  return missed <= s->count; /* the ring holds a contiguous run ending at top */
}

int history_recover(struct history *h, const char *channel, uint64_t since_offset, const char *since_epoch,
                    size_t max_publications, uint64_t now_ms, struct history_result *out, bool *recovered) {
  result_init(out);
  *recovered = false;
  int rc = -HISTORY_ENOMEM;
  struct stripe *st = stripe_lock(h, channel);
  struct stream *s = stream_open(h, st, channel, now_ms);
  if (s == NULL) goto out;
  position_of(s, &out->pos);
  rc = 0;
  if (recoverable(s, since_offset, since_epoch, max_publications)) {
    rc = collect(s, since_offset + 1, (size_t)(s->top - since_offset), false, out);
    *recovered = rc == 0;
  }
out:
  pthread_mutex_unlock(&st->lock);
  if (rc != 0) history_result_cleanup(out);
  return rc;
}

int history_position(struct history *h, const char *channel, uint64_t now_ms, struct stream_position *pos) {
  struct stripe *st = stripe_lock(h, channel);
  struct stream *s = stream_open(h, st, channel, now_ms);
  if (s != NULL) position_of(s, pos);
  pthread_mutex_unlock(&st->lock);
  return s != NULL ? 0 : -HISTORY_ENOMEM;
}

int history_remove(struct history *h, const char *channel) {
  struct stripe *st = stripe_lock(h, channel);
  struct stream *s = strmap_get(st->streams, channel); /* no expiry: removing is not an access */
  if (s != NULL) ring_clear(s);
  pthread_mutex_unlock(&st->lock);
  return 0;
}

/* The names of a stripe's dead streams, gathered during strmap_foreach (which forbids removal). */
struct sweep {
  uint64_t now;
  char **dead;
  size_t n, cap;
};

static void sweep_cb(const char *key, void *value, void *arg) {
  struct sweep *sw = arg;
  struct stream *s = value;
  if (sw->now < s->meta_expire_at) {
    if (s->count > 0 && sw->now >= s->pubs_expire_at) ring_clear(s);
    return;
  }
  if (sw->n == sw->cap) {
    size_t cap = sw->cap ? sw->cap * 2 : 64;
    char **dead = realloc(sw->dead, cap * sizeof *dead);
    if (dead == NULL) return; /* out of memory: the next sweep (or an access) catches it */
    sw->dead = dead;
    sw->cap = cap;
  }
  char *name = strdup(key);
  if (name != NULL) sw->dead[sw->n++] = name;
}

void history_expire(struct history *h, uint64_t now_ms) {
  struct sweep sw = {.now = now_ms};
  for (int i = 0; i < STRIPES; i++) {
    struct stripe *st = &h->stripes[i];
    pthread_mutex_lock(&st->lock);
    strmap_foreach(st->streams, sweep_cb, &sw);
    for (size_t j = 0; j < sw.n; j++) {
      stream_free(strmap_remove(st->streams, sw.dead[j]));
      free(sw.dead[j]);
    }
    pthread_mutex_unlock(&st->lock);
    sw.n = 0;
  }
  free(sw.dead);
}

size_t history_count(struct history *h) {
  size_t n = 0;
  for (int i = 0; i < STRIPES; i++) {
    pthread_mutex_lock(&h->stripes[i].lock);
    n += strmap_count(h->stripes[i].streams);
    pthread_mutex_unlock(&h->stripes[i].lock);
  }
  return n;
}

void history_result_cleanup(struct history_result *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n; i++) protocol__publication__free_unpacked(r->pubs[i], NULL);
  free(r->pubs);
  r->pubs = NULL;
  r->n = 0;
}

/* Protocol error for each enum history_error, indexed by its value. */
static const uint32_t error_codes[] = {
    [HISTORY_OK] = 0,
    [HISTORY_ENOMEM] = ERROR_INTERNAL,
    [HISTORY_EINVAL] = ERROR_INTERNAL,
    [HISTORY_EBADREQUEST] = ERROR_BAD_REQUEST,
    [HISTORY_EUNRECOVERABLE] = ERROR_UNRECOVERABLE_POSITION,
};

uint32_t history_error_code(int err) {
  size_t i = err < 0 ? (size_t)-err : (size_t)err;
  return i < sizeof error_codes / sizeof *error_codes ? error_codes[i] : ERROR_INTERNAL;
}
