/* strmap: chained hash table with keyed SipHash-2-4 hashing (siphash.h: nobody outside the process can
 * make keys collide, so no chain grows long under hostile keys) and power-of-two bucket counts; it doubles
 * when the load factor passes 1 and never shrinks below its initial size. Each entry holds its key inline. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"

struct entry {
  struct entry *next;
  void *value;
  uint64_t hash;
  char key[];
};

struct strmap {
  struct entry **buckets;
  size_t nbuckets; /* power of two */
  size_t count;
};

/* Keys come from clients (channel names, ids): the keyed hash keeps collisions unpredictable. */
static uint64_t hash_key(const char *s) { return siphash_string(s); }

struct strmap *strmap_new(void) {
  struct strmap *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->nbuckets = 16;
  m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
  if (m->buckets == NULL) {
    free(m);
    return NULL;
  }
  return m;
}

void strmap_free(struct strmap *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct entry *e = m->buckets[i];
    while (e) {
      struct entry *next = e->next;
      free(e);
      e = next;
    }
  }
  free(m->buckets);
  free(m);
}

static struct entry **find_slot(const struct strmap *m, const char *key, uint64_t h) {
  struct entry **pp = &m->buckets[h & (m->nbuckets - 1)];
  while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0)) pp = &(*pp)->next;
  return pp;
}

void *strmap_get(const struct strmap *m, const char *key) {
  struct entry *e = *find_slot(m, key, hash_key(key));
  return e ? e->value : NULL;
}

static void grow(struct strmap *m) {
  size_t n = m->nbuckets * 2;
  struct entry **b = calloc(n, sizeof *b);
  if (b == NULL) return; /* keep the longer chains; still correct */
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct entry *e = m->buckets[i];
    while (e) {
      struct entry *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
}

int strmap_put(struct strmap *m, const char *key, void *value) {
  uint64_t h = hash_key(key);
  struct entry **pp = find_slot(m, key, h);
  if (*pp) {
    (*pp)->value = value;
    return 0;
  }
  size_t klen = strlen(key);
  struct entry *e = malloc(sizeof *e + klen + 1);
  if (e == NULL) return -1;
  memcpy(e->key, key, klen + 1);
  e->hash = h;
  e->value = value;
  e->next = NULL;
  *pp = e;
  if (++m->count > m->nbuckets) grow(m);
  return 0;
}

void *strmap_remove(struct strmap *m, const char *key) {
  struct entry **pp = find_slot(m, key, hash_key(key));
  struct entry *e = *pp;
  if (e == NULL) return NULL;
  void *value = e->value;
  *pp = e->next;
  free(e);
  m->count--;
  return value;
}

size_t strmap_count(const struct strmap *m) { return m->count; }

size_t strmap_longest_chain(const struct strmap *m) {
  size_t longest = 0;
  for (size_t i = 0; i < m->nbuckets; i++) {
    size_t n = 0;
    for (const struct entry *e = m->buckets[i]; e; e = e->next) n++;
    if (n > longest) longest = n;
  }
  return longest;
}

void strmap_foreach(const struct strmap *m, void (*fn)(const char *key, void *value, void *arg), void *arg) {
  for (size_t i = 0; i < m->nbuckets; i++)
    for (struct entry *e = m->buckets[i]; e; e = e->next) fn(e->key, e->value, arg);
}
