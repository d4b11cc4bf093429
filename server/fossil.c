/* fossil: the fossil delta encoder (see fossil.h). The source is cut into BLOCK-byte blocks, each
 * indexed by a hash of its bytes; a window of BLOCK bytes slides over the target with a rolling hash,
 * and where it lands on an indexed block with the same bytes the match is grown forwards and backwards
 * (backwards no further than the pending literal run) and, when it saves more than a copy command
 * costs, becomes a copy. Whatever no copy covers goes out as literal runs. */
#include "fossil.h"

#include <stdlib.h>
#include <string.h>

enum {
  BLOCK = 16,          /* the source block, and the target window, in bytes */
  MAX_CANDIDATES = 64, /* blocks with the same hash tried per window (bounds repetitive sources) */
};

static const char DIGITS[64] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

/* The rolling hash of a window: sum of byte * B^(BLOCK-1-i), modulo 2^32. */
static const uint32_t HASH_BASE = 0x01000193u;

uint32_t fossil_checksum(const uint8_t *p, size_t len) {
  uint32_t s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= len; i += 4)
    for (int k = 0; k < 4; k++) s[k] += p[i + k];
  uint32_t sum = s[3] + (s[2] << 8) + (s[1] << 16) + (s[0] << 24);
  size_t tail = len - i;
  if (tail >= 3) sum += (uint32_t)p[i + 2] << 8;
  if (tail >= 2) sum += (uint32_t)p[i + 1] << 16;
  if (tail >= 1) sum += (uint32_t)p[i] << 24;
  return sum;
}

/* A bounded writer: once something does not fit, it stays failed. */
struct writer {
  uint8_t *out;
  size_t cap, len;
  bool full;
};

static void put_bytes(struct writer *w, const void *p, size_t n) {
  if (w->full || n > w->cap - w->len) {
    w->full = true;
    return;
  }
  memcpy(w->out + w->len, p, n);
  w->len += n;
}

static size_t int_digits(size_t v) {
  size_t n = 1;
  while (v >>= 6) n++;
  return n;
}

static void put_int(struct writer *w, size_t v) {
  char buf[16];
  size_t n = int_digits(v);
  for (size_t i = n; i-- > 0; v >>= 6) buf[i] = DIGITS[v & 63];
  put_bytes(w, buf, n);
}

static void put_char(struct writer *w, char c) { put_bytes(w, &c, 1); }

static void put_literal(struct writer *w, const uint8_t *p, size_t n) {
  if (n == 0) return;
  put_int(w, n);
  put_char(w, ':');
  put_bytes(w, p, n);
}

static void put_copy(struct writer *w, size_t count, size_t offset) {
  put_int(w, count);
  put_char(w, '@');
  put_int(w, offset);
  put_char(w, ',');
}

static uint32_t window_hash(const uint8_t *p) {
  uint32_t h = 0;
  for (int i = 0; i < BLOCK; i++) h = h * HASH_BASE + p[i];
  return h;
}

/* The index of the source's blocks: HEAD[bucket] is the last block with that bucket, NEXT[block] the
 * one before it with the same bucket, -1 ending a chain. */
struct block_index {
  int32_t *head, *next;
  uint32_t mask;
};

static size_t bucket_of(const struct block_index *ix, uint32_t h) { return (h * 0x9E3779B1u) >> 7 & ix->mask; }

static bool index_build(struct block_index *ix, const uint8_t *src, size_t nblocks) {
  size_t buckets = 64;
  while (buckets < nblocks * 2) buckets <<= 1;
  ix->mask = (uint32_t)(buckets - 1);
  ix->head = malloc(buckets * sizeof *ix->head);
  ix->next = malloc(nblocks * sizeof *ix->next);
  if (ix->head == NULL || ix->next == NULL) return false;
  memset(ix->head, 0xff, buckets * sizeof *ix->head);
  for (size_t b = 0; b < nblocks; b++) {
    size_t k = bucket_of(ix, window_hash(src + b * BLOCK));
    ix->next[b] = ix->head[k];
    ix->head[k] = (int32_t)b;
  }
  return true;
}

static bool is_continuation(uint8_t c) { return (c & 0xC0) == 0x80; }

/* The best copy found for the window at target position P. */
struct match {
  size_t start, end; /* target range [start, end) */
  size_t src_off;    /* where target[start] is in the source */
};

/* Finds the longest copy through the window at P, grown backwards no further than LIT (the start of the
 * pending literal) and, with UTF8_SAFE, trimmed to character boundaries. False when none is worth a
 * copy command. */
static bool find_match(const struct block_index *ix, uint32_t h, const uint8_t *src, size_t src_len,
                       const uint8_t *target, size_t target_len, size_t p, size_t lit, bool utf8_safe,
                       struct match *best) {
  size_t best_len = 0;
  int tries = 0;
  for (int32_t b = ix->head[bucket_of(ix, h)]; b >= 0 && tries < MAX_CANDIDATES; b = ix->next[b], tries++) {
    size_t so = (size_t)b * BLOCK;
    if (memcmp(src + so, target + p, BLOCK) != 0) continue;
    size_t fwd = BLOCK;
    while (so + fwd < src_len && p + fwd < target_len && src[so + fwd] == target[p + fwd]) fwd++;
    size_t back = 0;
    while (back < p - lit && back < so && src[so - back - 1] == target[p - back - 1]) back++;
    struct match m = {p - back, p + fwd, so - back};
    if (utf8_safe) {
      while (m.start < m.end && is_continuation(target[m.start])) m.start++, m.src_off++;
      while (m.end > m.start && m.end < target_len && is_continuation(target[m.end])) m.end--;
    }
    if (m.end - m.start > best_len) {
      best_len = m.end - m.start;
      *best = m;
    }
  }
  /* A copy splits the literal run in two: it must save more than its own command and the second
   * literal's count. */
  if (best_len == 0) return false;
  return best_len > int_digits(best_len) + int_digits(best->src_off) + 2 + int_digits(target_len) + 1;
}

size_t fossil_delta_create(const uint8_t *src, size_t src_len, const uint8_t *target, size_t target_len, uint8_t *out,
                           size_t out_cap, bool utf8_safe) {
  struct writer w = {out, out_cap, 0, false};
  put_int(&w, target_len);
  put_char(&w, '\n');

  size_t lit = 0; /* the start of the literal run not yet written */
  size_t nblocks = src_len / BLOCK;
  if (nblocks > 0 && target_len >= BLOCK && nblocks < INT32_MAX) {
    struct block_index ix = {NULL, NULL, 0};
    if (!index_build(&ix, src, nblocks)) {
      free(ix.head);
      free(ix.next);
      return 0;
    }
    uint32_t top = 1; /* HASH_BASE^(BLOCK-1): the weight of the byte leaving the window */
    for (int i = 0; i < BLOCK - 1; i++) top *= HASH_BASE;
    size_t p = 0;
    uint32_t h = window_hash(target);
    while (p + BLOCK <= target_len && !w.full) {
      struct match m;
      if (find_match(&ix, h, src, src_len, target, target_len, p, lit, utf8_safe, &m)) {
        put_literal(&w, target + lit, m.start - lit);
        put_copy(&w, m.end - m.start, m.src_off);
        lit = p = m.end;
        if (p + BLOCK <= target_len) h = window_hash(target + p);
        continue;
      }
      if (p + BLOCK < target_len) h = (h - target[p] * top) * HASH_BASE + target[p + BLOCK];
      p++;
    }
    free(ix.head);
    free(ix.next);
  }
  put_literal(&w, target + lit, target_len - lit);
  put_int(&w, fossil_checksum(target, target_len));
  put_char(&w, ';');
  return w.full ? 0 : w.len;
}
