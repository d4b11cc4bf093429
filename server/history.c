/* history: channel streams spread over STRIPES mutex-guarded hash maps (channel -> struct stream). A
 * stream's publications live in a ring buffer of packed entries; the ring always holds the contiguous
 * offsets (top - count, top], so the entry for an offset is found by arithmetic and "is the whole gap
 * still here" is one comparison. Invariants: count <= cap; count <= the size of the latest add; a
 * stream with count > 0 has pubs_expire_at > the time of its last access; ring == NULL iff cap == 0;
 * `streams` is the number of streams in all maps.
 *
 * Only history_add creates streams. A read of a channel without one is answered from a blank stream
 * on the stack whose epoch is derived, not drawn: SipHash of the channel name under this history's
 * random key and the channel's generation, one of GENERATIONS counters per stripe that is bumped
 * whenever a stream hashing to it is forgotten. So the epoch a reader sees is the one the first
 * publication's stream gets (a client positioned on an empty channel recovers its first
 * publications), and it changes whenever a stream of that channel has been forgotten, as a new epoch
 * must (offsets restart at 1). */
#include "history.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "codes.h"
#include "ids.h"
#include "log.h"
#include "siphash.h"
#include "strmap.h"

#define STRIPES 16     /* power of two */
#define RING_MIN 8     /* first ring allocation, in entries */
#define GENERATIONS 64 /* epoch generation counters per stripe (power of two) */

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
  uint64_t meta_ttl_ms;    /* of the latest add: how long a publish or read keeps it (0 = forever) */
  struct entry **ring;
  size_t cap, head, count; /* ring[head] holds offset top - count + 1 */
};

struct stripe {
  pthread_mutex_t lock;
  struct strmap *streams;
  uint32_t generation[GENERATIONS]; /* see the top of the file */
};

struct history {
  uint8_t epoch_key[SIPHASH_KEY_LEN];
  atomic_size_t streams;
  atomic_bool cap_logged; /* the cap was hit and said so; cleared when the count falls well below */
  atomic_size_t cap_seen;
  struct stripe stripes[STRIPES];
};

/* Where a channel lives: its stripe (locked while this is in use) and its generation counter. */
struct place {
  struct stripe *st;
  uint32_t *generation;
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

/* CHANNEL's epoch in GENERATION: eight letters from SipHash under the history's key with the
 * generation folded into it (52^8 < 2^46 of the 64 bits used). */
static void epoch_of(const struct history *h, const char *channel, uint32_t generation,
                     char out[HISTORY_EPOCH_LEN + 1]) {
  uint8_t key[SIPHASH_KEY_LEN];
  memcpy(key, h->epoch_key, sizeof key);
  for (int i = 0; i < 4; i++) key[i] ^= (uint8_t)(generation >> (8 * i));
  const uint64_t base = sizeof epoch_letters - 1;
  uint64_t r = siphash_24(key, channel, strlen(channel));
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

/* Forgets CHANNEL's stream in ST (locked): the channel's next epoch is a new one. */
static void stream_drop(struct history *h, struct stripe *st, const char *channel) {
  stream_free(strmap_remove(st->streams, channel));
  st->generation[siphash_string(channel) & (GENERATIONS - 1)]++;
  atomic_fetch_sub(&h->streams, 1);
}

/* CHANNEL's stream at P after lazy expiry, or NULL. */
static struct stream *stream_find(struct history *h, struct place p, const char *channel, uint64_t now) {
  struct stream *s = strmap_get(p.st->streams, channel);
  if (s != NULL && now >= s->meta_expire_at) {
    stream_drop(h, p.st, channel);
    return NULL;
  }
  if (s != NULL && s->count > 0 && now >= s->pubs_expire_at) ring_clear(s);
  return s;
}

/* Restarts S's meta TTL: every publish and read keeps a stream alive, as in Centrifugo. */
static void stream_touch(struct stream *s, uint64_t now) {
  uint64_t ttl = s->meta_ttl_ms;
  s->meta_expire_at = ttl > 0 && now <= UINT64_MAX - ttl ? now + ttl : UINT64_MAX;
}

/* CHANNEL's stream for a read, touched, or BLANK (offset 0, the channel's current epoch) when it has
 * none: reads never create state. */
static struct stream *stream_read(struct history *h, struct place p, const char *channel, uint64_t now,
                                  struct stream *blank) {
  struct stream *s = stream_find(h, p, channel, now);
  if (s != NULL) {
    stream_touch(s, now);
    return s;
  }
  memset(blank, 0, sizeof *blank);
  epoch_of(h, channel, *p.generation, blank->epoch);
  return blank;
}

/* Counts one more stream unless that passes MAX (0 = no cap). Returns 0 or -HISTORY_ELIMIT (said once
 * in the log until the count falls well below the cap again). */
static int stream_reserve(struct history *h, size_t max) {
  size_t n = atomic_fetch_add(&h->streams, 1);
  if (max == 0 || n < max) return 0;
  atomic_fetch_sub(&h->streams, 1);
  atomic_store(&h->cap_seen, max);
  if (!atomic_exchange(&h->cap_logged, true))
    log_warn(
        "history: %zu streams reached history_max_streams; publications to channels without a "
        "stream are refused",
        max);
  return -HISTORY_ELIMIT;
}

/* CHANNEL's stream at P for a publish: found, or created with the channel's current epoch and top 0.
 * Returns 0 with *OUT set, -HISTORY_ELIMIT or -HISTORY_ENOMEM. */
static int stream_open(struct history *h, struct place p, const char *channel, size_t max_streams,
                       uint64_t now, struct stream **out) {
  *out = stream_find(h, p, channel, now);
  if (*out != NULL) return 0;
  int rc = stream_reserve(h, max_streams);
  if (rc != 0) return rc;
  struct stream *s = calloc(1, sizeof *s);
  if (s == NULL || strmap_put(p.st->streams, channel, s) != 0) {
    free(s);
    atomic_fetch_sub(&h->streams, 1);
    return -HISTORY_ENOMEM;
  }
  epoch_of(h, channel, *p.generation, s->epoch);
  *out = s;
  return 0;
}

/* Where CHANNEL lives, its stripe locked (the keyed hash of the name: no client can pick names that all
 * share one stripe). */
static struct place place_lock(struct history *h, const char *channel) {
  uint64_t x = siphash_string(channel);
  struct stripe *st = &h->stripes[(x >> 32) & (STRIPES - 1)];
  pthread_mutex_lock(&st->lock);
  return (struct place){st, &st->generation[x & (GENERATIONS - 1)]};
}

/* ---- publications ---- */

/* PUB packed without offset, channel and epoch, in one allocation; NULL when out of memory. */
static struct entry *entry_pack(const Protocol__Publication *pub) {
  Protocol__Publication c = *pub; /* shallow: only the copy's top-level fields change */
  c.offset = 0;
  c.channel = (char *)protobuf_c_empty_string;
  c.epoch = (char *)protobuf_c_empty_string;
  c.delta = false; /* the publisher's wish for delta compression concerns live delivery only */
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

struct history *history_new(void) {
  struct history *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  if (getrandom(h->epoch_key, sizeof h->epoch_key, 0) != (ssize_t)sizeof h->epoch_key) {
    uint64_t a = siphash_string("history epoch key"), b = (uint64_t)id_random_below(~0UL);
    memcpy(h->epoch_key, &a, 8); /* the process hash key is random: still unpredictable */
    memcpy(h->epoch_key + 8, &b, 8);
  }
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

int history_add(struct history *h, const char *channel, const Protocol__Publication *pub,
                const struct history_retention *r, uint64_t now_ms, struct stream_position *pos_out) {
  if (h == NULL || channel == NULL || pub == NULL || r == NULL || r->size == 0 || r->ttl_ms == 0)
    return -HISTORY_EINVAL;
  size_t size = r->size > HISTORY_MAX_SIZE ? HISTORY_MAX_SIZE : r->size;
  struct entry *e = entry_pack(pub); /* outside the lock: packing is the costly part */
  if (e == NULL) return -HISTORY_ENOMEM;
  struct stream *s = NULL;
  struct place p = place_lock(h, channel);
  int rc = stream_open(h, p, channel, r->max_streams, now_ms, &s);
  if (rc != 0) goto out;
  s->meta_ttl_ms = r->meta_ttl_ms;
  stream_touch(s, now_ms);
  rc = ring_reserve(s, size);
  if (rc != 0) goto out;
  s->ring[(s->head + s->count) % s->cap] = e;
  s->count++;
  s->top++;
  s->pubs_expire_at = r->ttl_ms <= UINT64_MAX - now_ms ? now_ms + r->ttl_ms : UINT64_MAX;
  if (pos_out != NULL) position_of(s, pos_out);
  e = NULL;
out:
  pthread_mutex_unlock(&p.st->lock);
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
  int rc = -HISTORY_EUNRECOVERABLE;
  struct stream blank;
  struct place p = place_lock(h, channel);
  struct stream *s = stream_read(h, p, channel, now_ms, &blank);
  position_of(s, &out->pos);
  out->stored = s->count;
  if (q->has_since && !epoch_matches(s, q->since_epoch)) goto out;
  uint64_t from = 0;
  size_t n;
  query_range(s, q, query_limit(q), &from, &n);
  rc = collect(s, from, n, q->reverse, out);
out:
  pthread_mutex_unlock(&p.st->lock);
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
  int rc = 0;
  struct stream blank;
  struct place p = place_lock(h, channel);
  struct stream *s = stream_read(h, p, channel, now_ms, &blank);
  position_of(s, &out->pos);
  out->stored = s->count;
  if (recoverable(s, since_offset, since_epoch, max_publications)) {
    rc = collect(s, since_offset + 1, (size_t)(s->top - since_offset), false, out);
    *recovered = rc == 0;
  }
  pthread_mutex_unlock(&p.st->lock);
  if (rc != 0) history_result_cleanup(out);
  return rc;
}

int history_position(struct history *h, const char *channel, uint64_t now_ms, struct stream_position *pos) {
  struct stream blank;
  struct place p = place_lock(h, channel);
  position_of(stream_read(h, p, channel, now_ms, &blank), pos);
  pthread_mutex_unlock(&p.st->lock);
  return 0;
}

int history_remove(struct history *h, const char *channel) {
  struct place p = place_lock(h, channel);
  struct stream *s = strmap_get(p.st->streams, channel); /* no expiry: removing is not an access */
  if (s != NULL) ring_clear(s);
  pthread_mutex_unlock(&p.st->lock);
  return 0;
}

int history_forget(struct history *h, const char *channel) {
  struct place p = place_lock(h, channel);
  if (strmap_get(p.st->streams, channel) != NULL) stream_drop(h, p.st, channel);
  pthread_mutex_unlock(&p.st->lock);
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
      stream_drop(h, st, sw.dead[j]);
      free(sw.dead[j]);
    }
    pthread_mutex_unlock(&st->lock);
    sw.n = 0;
  }
  free(sw.dead);
  size_t cap = atomic_load(&h->cap_seen);
  if (atomic_load(&h->cap_logged) && atomic_load(&h->streams) < cap - cap / 10)
    atomic_store(&h->cap_logged, false);
}

size_t history_count(struct history *h) { return atomic_load(&h->streams); }

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
    [HISTORY_ELIMIT] = ERROR_LIMIT_EXCEEDED,
};

uint32_t history_error_code(int err) {
  size_t i = err < 0 ? (size_t)-err : (size_t)err;
  return i < sizeof error_codes / sizeof *error_codes ? error_codes[i] : ERROR_INTERNAL;
}
