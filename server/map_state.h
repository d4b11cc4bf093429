/* map_state: the memory engine's keyed state of map channels (Centrifugo's map subscriptions): per
 * channel, a set of keys, each holding its last publication (data, tags, publisher info), the stream
 * offset of its last write and when it expires. Keys are kept sorted bytewise, so that a snapshot is
 * read in pages with the last key of a page as the cursor of the next, and a key written between pages
 * lands on the right side of the cursor. The stream of changes itself is the channel's history
 * (history.h): this module only keeps the state, and the engine writes both under the channel's publish
 * lock.
 *
 * Expiry: an expired key reads as absent at once, but stays stored until map_state_take_expired
 * removes it, so that the engine can publish its removal (map_state_expired lists the candidates).
 *
 * Memory: per key one malloc of the key, one of the packed publication, and a 32-byte slot in its
 * channel's sorted array (which doubles as it grows). Threads: any thread; channels are spread over
 * striped mutexes. */
#ifndef MAP_STATE_H
#define MAP_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"

struct map_state;

/* How map_state_set treats an existing key (the API's key_mode). */
enum map_key_mode {
  MAP_KEY_ANY = 0,       /* set it whether or not it exists */
  MAP_KEY_IF_NEW = 1,    /* only when it does not exist */
  MAP_KEY_IF_EXISTS = 2, /* only when it exists */
  MAP_KEY_TOUCH = 3,     /* set it when it does not exist; when it does, only extend its expiry (suppressed) */
};

enum map_state_rc {
  MAP_STATE_OK = 0,
  MAP_STATE_SUPPRESSED = 1, /* the key mode said no; nothing changed */
  MAP_STATE_ENOMEM = -1,
};

/* Returns an empty state, or NULL when out of memory. The caller owns it. */
struct map_state *map_state_new(void);

/* Frees MS and every channel's keys. NULL is allowed. No other call on MS may be in flight. */
void map_state_free(struct map_state *ms);

/* Would map_state_set with MODE store KEY of CHANNEL now? (The engine asks before it appends the
 * change to the stream.) */
bool map_state_allows(struct map_state *ms, const char *channel, const char *key, enum map_key_mode mode,
                      uint64_t now_ms);

/* Sets KEY of CHANNEL to PUB (borrowed; packed as it is, offset left out) written at stream OFFSET (0
 * without a stream), expiring at EXPIRES_MS (0 = never). Returns MAP_STATE_OK, MAP_STATE_SUPPRESSED
 * (MODE) or MAP_STATE_ENOMEM. */
int map_state_set(struct map_state *ms, const char *channel, const char *key, const Protocol__Publication *pub,
                  uint64_t offset, uint64_t expires_ms, enum map_key_mode mode, uint64_t now_ms);

/* Removes KEY of CHANNEL. Returns true when it was there (and not expired). */
bool map_state_remove(struct map_state *ms, const char *channel, const char *key, uint64_t now_ms);

/* Removes KEY of CHANNEL if it has expired by NOW_MS. Returns true when it did: its removal is then the
 * caller's to publish. */
bool map_state_take_expired(struct map_state *ms, const char *channel, const char *key, uint64_t now_ms);

/* A page of a snapshot: ENTRIES[0..N) owned (unpacked copies with key and offset set, sorted by key);
 * NEXT_CURSOR (owned) is the cursor of the next page, or NULL when this was the last. */
struct map_page {
  Protocol__Publication **entries;
  size_t n;
  char *next_cursor;
};

/* Reads into OUT at most LIMIT (> 0) live keys of CHANNEL after CURSOR ("" = from the first), leaving
 * out keys whose last write is after MAX_OFFSET (0 = none left out: the caller's stream catch-up
 * brings those). Returns 0 or MAP_STATE_ENOMEM; OUT is initialized on every return
 * (map_page_cleanup). */
int map_state_page(struct map_state *ms, const char *channel, const char *cursor, size_t limit, uint64_t max_offset,
                   uint64_t now_ms, struct map_page *out);

/* Frees what a page holds. */
void map_page_cleanup(struct map_page *p);

/* How many live keys CHANNEL has. */
size_t map_state_count(struct map_state *ms, const char *channel, uint64_t now_ms);

/* Forgets every key of CHANNEL (no removals are published). */
void map_state_clear(struct map_state *ms, const char *channel);

/* Calls FN(ARG, channel, key) for each stored key that has expired by NOW_MS, at most MAX of them
 * (copies: FN may call back into MS). Returns how many it listed. */
size_t map_state_expired(struct map_state *ms, uint64_t now_ms, size_t max,
                         void (*fn)(void *arg, const char *channel, const char *key), void *arg);

#endif
