/* presence: the memory engine's record of who is subscribed to each channel (PROTOCOL.md §4.8). Per
 * channel a map client id -> ClientInfo (user, client, conn_info, chan_info) and a count of entries per
 * user id, so presence_stats is O(1): num_clients = entries, num_users = distinct user ids, the anonymous
 * user "" counting once like any other id (Centrifugo does the same). A channel's maps are freed with its
 * last entry. Entries do not expire: in one process the session that added an entry removes it (on
 * unsubscribe and disconnect), so there is no refresh protocol to miss; callers add and remove an entry
 * under the channel's lock together with the membership change (protocol_channel.c), so the removal can
 * never run before the add.
 *
 * Memory: per entry one malloc of ~72 bytes plus the strings and bytes it copies, plus the index entry
 * (~40 bytes and the client id); per channel two maps (~350 bytes) while it has entries.
 *
 * Threads: every function may be called from any thread; channels are spread over striped mutexes. */
#ifndef PRESENCE_H
#define PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"

/* Negative return values; both map to protocol error 100 (internal). */
enum presence_error {
  PRESENCE_OK = 0,
  PRESENCE_ENOMEM = 1,
  PRESENCE_EINVAL = 2, /* no client id */
};

struct presence;

/* What presence_get returns: INFOS[0..N) in no particular order, owned by the result. Each info is a
 * single allocation holding its strings and bytes (NOT protobuf-c unpacked: never pass one to
 * protocol__client_info__free_unpacked); they may be borrowed into a Protocol__PresenceResult until
 * presence_result_cleanup. TOTAL is how many entries the channel had (N < TOTAL when capped). */
struct presence_result {
  Protocol__ClientInfo **infos;
  size_t n;
  size_t total;
};

/* Returns an empty presence table, or NULL when out of memory. The caller owns it. */
struct presence *presence_new(void);

/* Frees P and every entry. NULL is allowed. No other call on P may be in flight. */
void presence_free(struct presence *p);

/* Records INFO (borrowed; user, client, conn_info and chan_info are copied) under CHANNEL and
 * info->client, replacing that client's previous entry. Returns 0, -PRESENCE_EINVAL (empty client id) or
 * -PRESENCE_ENOMEM (then the previous entry, if any, stays). */
int presence_add(struct presence *p, const char *channel, const Protocol__ClientInfo *info);

/* Forgets CLIENT_ID in CHANNEL. Absent entries are not an error. Returns 0. */
int presence_remove(struct presence *p, const char *channel, const char *client_id);

/* Copies at most MAX (0 = all) of CHANNEL's entries into OUT (initialized here; call
 * presence_result_cleanup whatever this returns). Returns 0 or -PRESENCE_ENOMEM. */
int presence_get(struct presence *p, const char *channel, size_t max, struct presence_result *out);

/* *NUM_CLIENTS and *NUM_USERS receive CHANNEL's entry count and distinct user count (0 and 0 when the
 * channel has none). Returns 0. */
int presence_stats(struct presence *p, const char *channel, uint32_t *num_clients, uint32_t *num_users);

/* SRC copied into one allocation (the struct, then user, client, conn_info and chan_info), the form
 * presence_result entries have: freed with free(). NULL when out of memory. Any thread. */
Protocol__ClientInfo *presence_info_copy(const Protocol__ClientInfo *src);

/* Frees what R holds and empties it; R itself is the caller's. NULL-safe, idempotent. */
void presence_result_cleanup(struct presence_result *r);

#endif
