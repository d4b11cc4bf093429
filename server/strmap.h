/* strmap: a hash map from NUL-terminated string keys to opaque pointers. Keys are copied in; values are
 * borrowed (the map never frees them). Not thread-safe: every user guards its map with its own lock. */
#ifndef STRMAP_H
#define STRMAP_H

#include <stddef.h>

struct strmap;

/* Returns an empty map, or NULL when out of memory. The caller owns it. */
struct strmap *strmap_new(void);

/* Frees the map and its key copies (not the values). NULL is allowed. */
void strmap_free(struct strmap *m);

/* Returns the value stored under KEY, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);

/* Stores VALUE (non-NULL) under KEY, replacing any previous value. Returns 0 or -1 (out of memory). */
int strmap_put(struct strmap *m, const char *key, void *value);

/* Removes KEY and returns the value it had, or NULL when absent. */
void *strmap_remove(struct strmap *m, const char *key);

/* Number of keys. */
size_t strmap_count(const struct strmap *m);

/* Length of the longest bucket chain (for tests and diagnostics): O(buckets). */
size_t strmap_longest_chain(const struct strmap *m);

/* Calls FN(key, value, ARG) for every entry, in no particular order. FN must not modify the map. */
void strmap_foreach(const struct strmap *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
