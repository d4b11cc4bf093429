/* broker: the engine behind channels: how publications, join/leave events and emulation requests
 * cross nodes, and where history and presence live. The memory engine (broker_memory.c) serves one
 * node: publishing is local fan-out through the hub, history and presence are in-process structures,
 * and an emulation request for another node has nowhere to go. A Redis engine implements the same
 * operations across nodes (PUBLISH per channel, a control channel per node for routed emulation
 * requests, history streams and presence hashes in Redis).
 *
 * Threads: every operation may be called from any thread. */
#ifndef BROKER_H
#define BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "map_state.h"

struct server;
struct broker;
struct history_query;
struct history_result;
struct presence_result;
struct hub;
struct broker_node;

enum broker_error {
  BROKER_OK = 0,
  BROKER_EUNKNOWN_NODE = 1,
  BROKER_EUNAVAILABLE = 2,
  BROKER_ENOMEM = 3,
  BROKER_EBADREQUEST = 4,    /* history: reverse with since.offset 0 */
  BROKER_EUNRECOVERABLE = 5, /* history: since.epoch is not the stream's epoch */
  BROKER_ELIMIT = 6,         /* publish: the channel needs a new history stream and none may be made */
};

/* Where a publication landed in its channel's history stream: offset 0 and an empty epoch when the
 * channel keeps no history. */
struct stream_position {
  uint64_t offset;
  char epoch[16];
};

/* How a publication is kept: HISTORY_SIZE publications for HISTORY_TTL_MS (either 0 = no history),
 * the stream for HISTORY_META_TTL_MS after its last publish or read (0 = the node's
 * global_history_meta_ttl). */
struct publish_options {
  size_t history_size;
  uint64_t history_ttl_ms;
  uint64_t history_meta_ttl_ms;
};

/* How an asynchronous publish ended: RC 0 or -BROKER_E*, and where the publication landed (POS: offset 0
 * and "" without history; meaningless when RC is not 0). POS is borrowed for the call. */
typedef void (*broker_publish_done_fn)(void *arg, int rc, const struct stream_position *pos);

/* How a map channel's change is kept (channel_map_limits): with STREAM, appended to the channel's
 * stream (offsets, recovery) kept as the three say; the key expires KEY_TTL_MS after this write (0 =
 * never); KEY_MODE (enum map_key_mode) may suppress a set. */
struct map_publish_options {
  bool stream;
  size_t stream_size;
  uint64_t stream_ttl_ms, meta_ttl_ms;
  uint64_t key_ttl_ms;
  int key_mode;
};

/* What a map change did: POS (offset 0 without a stream) or, when SUPPRESS_REASON is not NULL, nothing
 * (Centrifugo's reasons: "key_exists", "key_not_found"). */
struct map_publish_result {
  struct stream_position pos;
  const char *suppress_reason;
};

struct broker_ops {
  const char *name;
  /* Its calls wait for I/O (Redis, other nodes): a core loop hands the server API's calls to a worker
   * (workers.h) instead of running them itself. */
  bool calls_wait;
  /* Stores PUB (borrowed) in CHANNEL's history when OPTS asks for it, sets pub->offset, and delivers it
   * to the channel's subscribers on every node, in offset order per channel. *POS (may be NULL)
   * receives its position. Returns 0 or -BROKER_E* (-BROKER_ELIMIT: not stored, not delivered). */
  int (*publish)(struct broker *b, const char *channel, Protocol__Publication *pub,
                 const struct publish_options *opts, struct stream_position *pos);
  /* The same publish without waiting for it: PUB (borrowed; its offset field may be overwritten) and
   * OPTS are read before it returns, and DONE(ARG, rc, pos) is called exactly once: on the calling thread before it
   * returns (the memory engine, which publishes inline; and any engine that refuses at once: a channel
   * name too long for its keys, out of memory, too many publishes in flight ⇒ -BROKER_EUNAVAILABLE), or
   * later on the engine's I/O thread. DONE must be quick and must not call the broker (on the I/O thread
   * a synchronous operation would wait for its own thread). One thread's publishes on one channel are
   * stored and delivered in the order it made them. Any thread but an engine's own. */
  void (*publish_async)(struct broker *b, const char *channel, Protocol__Publication *pub,
                        const struct publish_options *opts, broker_publish_done_fn done, void *arg);
  /* Delivers a join (JOIN true) or leave of INFO on CHANNEL to the subscribers that want them. */
  int (*publish_join_leave)(struct broker *b, const char *channel, const Protocol__ClientInfo *info,
                            int join);
  /* Runs FN(ARG) while no publication on CHANNEL can be delivered on this node, so that a subscriber
   * can read the stream position, recover, and join the channel without missing or repeating one. */
  void (*with_channel_locked)(struct broker *b, const char *channel, void (*fn)(void *arg), void *arg);
  /* History (see history.h for the semantics): query, recovery, current position (creating the
   * stream), removal. Results are owned by the caller (history_result_cleanup). */
  int (*history)(struct broker *b, const char *channel, const struct history_query *q,
                 struct history_result *out);
  int (*recover)(struct broker *b, const char *channel, uint64_t since_offset, const char *since_epoch,
                 size_t max_publications, struct history_result *out, int *recovered);
  int (*position)(struct broker *b, const char *channel, struct stream_position *pos);
  int (*history_remove)(struct broker *b, const char *channel);
  /* How many history streams the engine keeps on this node (what history_max_streams caps). May be
   * NULL: an engine that cannot tell cheaply. */
  size_t (*history_streams)(struct broker *b);
  /* Map channels (map_state.h). NULL in an engine without them (the configuration then refuses map
   * namespaces). map_publish: sets PUB->key to PUB (borrowed; PUB->removed: removes it), appends the
   * change to the stream when OPTS says, and delivers it like publish; a removal of a key that is not
   * there, or a set KEY_MODE refuses, is suppressed (nothing stored or delivered, RES says why).
   * Returns 0 or -BROKER_E*. map_page: a page of the snapshot (map_state_page), to be called under
   * with_channel_locked when it must agree with the stream position. map_clear forgets the keys and the
   * stream (the next change starts a new epoch). */
  int (*map_publish)(struct broker *b, const char *channel, Protocol__Publication *pub,
                     const struct map_publish_options *opts, struct map_publish_result *res);
  int (*map_page)(struct broker *b, const char *channel, const char *cursor, size_t limit, uint64_t max_offset,
                  struct map_page *out);
  size_t (*map_count)(struct broker *b, const char *channel);
  int (*map_clear)(struct broker *b, const char *channel);
  /* Presence: entries keyed by client id; results owned by the caller (presence_result_cleanup). */
  int (*presence_add)(struct broker *b, const char *channel, const Protocol__ClientInfo *info);
  int (*presence_remove)(struct broker *b, const char *channel, const char *client_id);
  int (*presence_get)(struct broker *b, const char *channel, size_t max, struct presence_result *out);
  int (*presence_stats)(struct broker *b, const char *channel, uint32_t *num_clients, uint32_t *num_users);
  /* This node has its first local subscriber of CHANNEL / lost its last one. */
  int (*node_subscribe)(struct broker *b, const char *channel); /* under the hub's index lock: queue only */
  int (*node_unsubscribe)(struct broker *b, const char *channel);
  /* Hands REQ (copied) to the node named in it and returns at once: 0, and DONE(ARG, rc) is called
   * later, once, from some other thread, with 0 when it ran there or -BROKER_EUNAVAILABLE when the node
   * did not confirm in time (or -BROKER_EUNKNOWN_NODE when it just went away); or -BROKER_EUNKNOWN_NODE
   * / -BROKER_E* right away, and DONE is never called. */
  int (*route_emulation)(struct broker *b, const Protocol__EmulationRequest *req, void (*done)(void *arg, int rc),
                         void *arg);
  /* Has every other node run the server API call METHOD (PARAMS: its JSON, LEN bytes) on its own
   * sessions (disconnect, unsubscribe, subscribe, refresh). Returns 0 once sent, or -BROKER_E*. */
  int (*broadcast_api)(struct broker *b, const char *method, const char *params, size_t len);
  /* Asks every other node for its own answer to METHOD(PARAMS) and calls FN(ARG, answer, len) with each
   * JSON answer that comes within the survey timeout, on the calling thread. Returns 0 or -BROKER_E*. */
  int (*survey_api)(struct broker *b, const char *method, const char *params, size_t len,
                    void (*fn)(void *arg, const char *answer, size_t len), void *arg);
  /* Calls FN(ARG, node) for every other live node, with its last heartbeat (uid, name, counts). */
  void (*foreach_node)(struct broker *b, void (*fn)(void *arg, const struct broker_node *node), void *arg);
  /* False while the engine cannot reach what it keeps its state in (/health answers 503). */
  bool (*healthy)(struct broker *b);
  void (*free)(struct broker *b);
};

/* What a node said of itself in its last heartbeat. */
struct broker_node {
  const char *uid, *name, *version;
  uint32_t num_clients, num_users, num_channels, num_subs, uptime;
};

/* What a broker runs on this node for other nodes: handed to broker_new by start-up (the server API
 * and emulation, layers above the broker). */
struct broker_local {
  /* Runs server API method METHOD with PARAMS (JSON text) on this node's own sessions only; for a
   * survey *ANSWER receives the JSON answer (malloc'd, *ANSWER_LEN bytes; may be NULL). Returns 0 or an
   * API error code. Any thread but an engine's I/O thread. */
  int (*api)(struct server *srv, const char *method, const char *params, size_t len, char **answer,
             size_t *answer_len);
  /* Feeds REQ's commands (copied) into its session on this node and returns; RAN(ARG, rc) is called
   * once, from any thread, when they have all run (rc 0: their replies are queued) or at once with rc 1
   * when the session is not here. */
  void (*emulation)(struct server *srv, const Protocol__EmulationRequest *req, void (*ran)(void *arg, int rc),
                    void *arg);
};

struct broker {
  const struct broker_ops *ops;
  struct server *srv;
  struct broker_local local;
};

struct config;

/* The engine CFG names (engine = "memory" | "redis"), built for SRV, running LOCAL for other nodes.
 * Returns NULL (logged) when it cannot be built. The caller owns it (ops->free). */
struct broker *broker_new(struct server *srv, const struct config *cfg, const struct broker_local *local);

/* The single-node engine. Returns NULL when out of memory. */
struct broker *broker_memory_new(struct server *srv);

/* How the Redis engine reaches Redis and keeps its data. */
struct broker_redis_options {
  const char *const *addresses; /* one per Redis instance (shards), in redis_addr_parse's forms */
  size_t naddresses;
  const char *const *sentinels; /* set (NSENTINELS > 0): the master of SENTINEL_MASTER, found through them */
  size_t nsentinels;
  const char *sentinel_master, *sentinel_password;
  const char *user, *password; /* for addresses that name none ("" = none) */
  int db;                       /* for addresses that name none */
  const char *prefix;
  uint64_t connect_timeout_ms, io_timeout_ms;
  uint64_t presence_ttl_ms;
};

/* The multi-node engine on Redis (broker_redis.c). It starts connecting at once and keeps trying;
 * operations answer -BROKER_EUNAVAILABLE while Redis cannot be reached. Returns NULL with a message in
 * ERR for a bad address or when out of resources. */
struct broker *broker_redis_new(struct server *srv, const struct broker_redis_options *o, char *err,
                                size_t errlen);

/* Makes B hear of the channels this node's hub gains and loses (hub_set_channel_watch), so that B
 * subscribes the node to them. Once, at start-up, after both exist and before any subscription. */
void broker_watch_hub(struct broker *b, struct hub *h);

#endif
