/* history: the memory engine's per-channel publication streams (PROTOCOL.md §4.7). A stream has an
 * epoch (8 ASCII letters, new each time the stream is created), a top offset (the first publication
 * gets 1, then +1 per publication) and a ring of at most `size` packed publications whose offsets are
 * always the contiguous run (top - count, top]. Retention follows Centrifugo's memory engine: a
 * stream's publications are all dropped `history_ttl` after its LAST publication (not one by one), and
 * the stream itself (epoch and top) is forgotten `history_meta_ttl` after its last publish or read, so
 * the next publish starts a new epoch at offset 1. Expiry happens lazily on access and in
 * history_expire sweeps.
 *
 * Unlike Centrifugo's memory engine, only a publication creates a stream: a read (history, positioned
 * or recovering subscribe) of a channel without one answers offset 0 and the epoch that channel's next
 * stream will get, and stores nothing, so readers cannot fill memory. That epoch is stable for as long
 * as the channel has no stream and changes once a stream of it was forgotten (history.c says how). The
 * number of streams can be capped (history_max_streams): at the cap a publication that needs a new
 * stream is refused with -HISTORY_ELIMIT (clients see error 106), existing streams go on.
 *
 * Memory: per publication one malloc of (8 + packed size) bytes plus one 8-byte ring slot; the ring
 * grows by doubling up to `size` (and shrinks when `size` is lowered). Per stream about 120 bytes plus
 * the channel name (struct, index entry, allocator overhead), even when it holds no publications.
 * Publications are packed with protobuf-c outside the lock and stored without offset, channel and epoch (the
 * offset is implied by the ring position and set again on every unpacked copy); readers get freshly unpacked
 * copies they own.
 *
 * Threads: every function may be called from any thread; the channels are spread over striped mutexes.
 * Offsets are assigned under the lock, but delivery happens after history_add returns: callers that need
 * subscribers to see publications in offset order serialize publishes per channel themselves. */
#ifndef HISTORY_H
#define HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h" /* struct stream_position */
#include "client.pb-c.h"

#define HISTORY_EPOCH_LEN 8
#define HISTORY_MAX_SIZE 1000000 /* the largest history_size config.c accepts; larger sizes are clamped */

/* Negative return values. history_error_code maps them to protocol error codes. */
enum history_error {
  HISTORY_OK = 0,
  HISTORY_ENOMEM = 1,         /* 100 internal */
  HISTORY_EINVAL = 2,         /* bad argument from our own code (size or ttl 0, NULL): 100 internal */
  HISTORY_EBADREQUEST = 3,    /* reverse with since.offset == 0: 107 bad request */
  HISTORY_EUNRECOVERABLE = 4, /* since.epoch is not the stream's epoch: 112 unrecoverable position */
  HISTORY_ELIMIT = 5,         /* a new stream would pass max_streams: 106 limit exceeded */
};

/* How history_add keeps a channel's publications: SIZE of them (clamped to HISTORY_MAX_SIZE) for
 * TTL_MS after the last one; the stream for META_TTL_MS after its last publish or read (0 = forever);
 * a stream is created only while fewer than MAX_STREAMS exist (0 = no cap). */
struct history_retention {
  size_t size;
  uint64_t ttl_ms;
  uint64_t meta_ttl_ms;
  size_t max_streams;
};

struct history;

/* A history call: LIMIT 0 = no publications (position only), < 0 = all, > 0 = at most LIMIT; every
 * non-zero limit is capped by MAX_LIMIT (0 = no cap). With HAS_SINCE: forward returns offsets >
 * SINCE_OFFSET, reverse returns offsets < SINCE_OFFSET newest first; SINCE_EPOCH (NULL or "" = any)
 * must be the current epoch. Without: forward starts at the oldest, reverse at the newest. */
struct history_query {
  int32_t limit;
  bool has_since;
  uint64_t since_offset;
  const char *since_epoch;
  bool reverse;
  size_t max_limit;
};

/* What a history call returns: PUBS[0..N) are owned by the result (free with history_result_cleanup),
 * each with its offset set and channel/epoch empty; POS is the stream's current top and epoch; STORED
 * how many publications the stream keeps now (so counting them needs no unpacking: limit 0). */
struct history_result {
  Protocol__Publication **pubs;
  size_t n;
  struct stream_position pos;
  size_t stored;
};

/* Returns an empty history with a random epoch key, or NULL when out of memory. The caller owns it. */
struct history *history_new(void);

/* Frees H and every stream. NULL is allowed. No other call on H may be in flight. */
void history_free(struct history *h);

/* Appends PUB (borrowed; packed without offset, channel and epoch) as the next offset of CHANNEL's
 * stream, creating the stream (the channel's next epoch) when it has none, and keeps it as R says
 * (its meta TTL applies from now on). *POS_OUT (may be NULL) receives the new top and the epoch; the
 * caller sets pub->offset from it for fan-out. Returns 0 or -HISTORY_ENOMEM, -HISTORY_ELIMIT (no
 * stream and R->max_streams of them exist), -HISTORY_EINVAL (size or ttl_ms 0: such channels keep no
 * history and have no offsets). */
int history_add(struct history *h, const char *channel, const Protocol__Publication *pub,
                const struct history_retention *r, uint64_t now_ms, struct stream_position *pos_out);

/* Runs the history command Q on CHANNEL into OUT. A channel without a stream reads as an empty one
 * (offset 0, the channel's next epoch) and gets none. Returns 0, -HISTORY_EBADREQUEST (reverse with
 * since offset 0; checked first, OUT->pos then empty), -HISTORY_EUNRECOVERABLE (epoch mismatch;
 * OUT->pos is the current position) or -HISTORY_ENOMEM. OUT is initialized on every return and holds
 * publications only after 0: history_result_cleanup(OUT) is always safe and needed after 0. */
int history_query(struct history *h, const char *channel, const struct history_query *q, uint64_t now_ms,
                  struct history_result *out);

/* Recovery on subscribe: *RECOVERED is true iff SINCE_EPOCH (NULL or "" = any) is the current epoch,
 * and top == SINCE_OFFSET, or every publication from SINCE_OFFSET + 1 to top is still kept and there
 * are at most MAX_PUBLICATIONS (0 = no cap) of them; OUT then holds them in offset order. Otherwise OUT
 * holds none. OUT->pos is the current position either way (no stream is created). Returns 0
 * or -HISTORY_ENOMEM (then *RECOVERED is false and OUT holds none); cleanup as for history_query. */
int history_recover(struct history *h, const char *channel, uint64_t since_offset, const char *since_epoch,
                    size_t max_publications, uint64_t now_ms, struct history_result *out, bool *recovered);

/* *POS receives CHANNEL's current top and epoch (subscribe with positioning); a channel without a
 * stream gets none and reads as offset 0 with its next epoch. Returns 0. */
int history_position(struct history *h, const char *channel, uint64_t now_ms, struct stream_position *pos);

/* Drops CHANNEL's publications (the history_remove API method); its epoch and top offset stay, so
 * positioned clients see a gap rather than a new stream. A channel without a stream is not an error. */
int history_remove(struct history *h, const char *channel);

/* Forgets CHANNEL's stream altogether (a map channel's map_clear): the next publication starts a new
 * epoch at offset 1, and positioned clients of the old one find it unrecoverable. Returns 0. */
int history_forget(struct history *h, const char *channel);

/* Sweeps every stream: drops publications older than their TTL and forgets streams past the meta TTL.
 * Call periodically (every second or so) from one timer; it takes each stripe's lock in turn. */
void history_expire(struct history *h, uint64_t now_ms);

/* Number of streams currently known (for metrics and tests). Lock-free. */
size_t history_count(struct history *h);

/* Frees the publications R holds (R->pos stays); R itself is the caller's. NULL-safe, idempotent. */
void history_result_cleanup(struct history_result *r);

/* Protocol error code (ERROR_* from codes.h) for a negative history return value ERR. */
uint32_t history_error_code(int err);

#endif
