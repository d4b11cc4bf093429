/* broker_redis_internal: what the files of the Redis engine share (broker_redis.c: construction, shards,
 * the call mechanism, publish; broker_redis_sub.c: this node's PUB/SUB channels and the delivery
 * worker; broker_redis_history.c; broker_redis_map.c; broker_redis_presence.c). Not for other modules.
 *
 * Threads: one evloop thread owns every Redis connection and the `channels` map; callers on any other
 * thread reach Redis through rb_call_run(), which posts to the loop and waits for the reply (bounded by
 * the connections' I/O timeout), or rb_call_post(), which posts and returns (the reply callback runs on
 * the loop thread). The delivery worker thread hands publications that came over PUB/SUB to
 * the hub, under the channel's stripe lock, which with_channel_locked() takes too. The loop thread never
 * takes a stripe lock, so a caller holding one may wait for Redis. */
#ifndef BROKER_REDIS_INTERNAL_H
#define BROKER_REDIS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "evloop.h"
#include "redis_conn.h"
#include "redis_script.h"

#define RB_STRIPES 64
#define RB_KEY_MAX 512 /* prefix + kind + channel name */

struct strmap;
struct rb_delivery;
struct rb_control;
struct rb_presence;

/* One Redis instance: a connection for commands and one for PUB/SUB. */
struct rb_shard {
  struct redis_conn *cmd;
  struct redis_conn *sub;
  struct redis_conn *ctl; /* shard 0 only: PUB/SUB of the nodes' own channels (control) */
  bool sub_up;        /* loop thread */
  uint64_t last_push_ms, probe_sent_ms; /* loop thread: PUB/SUB liveness (probe_sent_ms 0 = none out) */
  struct evloop_timer probe;
  bool was_up; /* loop thread: its PUB/SUB was up before (a reconnect checks positions) */
  atomic_bool cmd_up;  /* written by the loop thread, read by /health */
  struct redis_broker *rb;
  size_t index;
};

struct redis_broker {
  struct broker base;
  struct evloop *loop;
  char prefix[128];
  struct rb_shard *shards;
  size_t nshards;
  uint64_t connect_timeout_ms, io_timeout_ms;
  struct redis_addr *sentinels; /* owned; NULL without Sentinel */
  size_t nsentinels;
  char sentinel_master[128];
  uint64_t presence_ttl_ms;   /* presence entries' TTL */
  struct strmap *channels;    /* loop thread: channel ⇒ struct rb_channel (this node's PUB/SUB interest) */
  char probe_key[RB_KEY_MAX]; /* "<prefix>.probe.<node id>", set once (rb_sub_init) */
  size_t probe_key_len;
  size_t client_prefix_len;   /* strlen("<prefix>.client."): what PUB/SUB channel names start with */
  struct rb_delivery *delivery;
  struct rb_control *control;
  struct rb_presence *presence;
  struct evloop_timer position_check; /* loop thread */
  struct evloop_timer map_sweep;      /* loop thread: expired map keys (broker_redis_map.c) */
  atomic_size_t posted, posted_bytes; /* bounded rb_call_post calls in flight and their values' bytes */
  pthread_mutex_t stripes[RB_STRIPES];
};

/* A Redis call made from a thread other than the loop's: the command (or script) and how to read its
 * reply. PARSE runs on the loop thread with the reply and returns 0 or -BROKER_E*. */
struct rb_call {
  size_t shard;
  const struct redis_script *script; /* NULL: a plain command */
  int nkeys;                         /* script: how many of the values are keys */
  int argc;
  const char *const *argv;
  const size_t *lens;
  int (*parse)(struct rb_call *c, const redisReply *reply);
  void *out;
  /* private */
  struct redis_broker *rb;
  int rc;
  bool done;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

/* Runs C on its shard and waits for the reply. Returns C's parse result, or -BROKER_EUNAVAILABLE (Redis
 * down, an error reply, a timeout). Never from the loop thread. */
int rb_call_run(struct redis_broker *rb, struct rb_call *c);

/* How a posted call ended: RC 0 with REPLY (borrowed for the call), or -BROKER_EUNAVAILABLE with REPLY
 * NULL (Redis down, an error reply, a timeout, too many calls in flight). */
typedef void (*rb_posted_fn)(void *arg, int rc, const redisReply *reply);

/* The most calls rb_call_post keeps in flight per node when asked to bound them (BOUNDED), and the most
 * bytes of values they may hold together (one call alone is always let through). Past either, a call
 * is refused at once (-BROKER_EUNAVAILABLE, the temporary error), never queued: the callers are I/O
 * threads that must not wait, and a client that floods publishes faster than Redis stores them gets
 * errors instead of growing the node's memory. A client's publishes leave one per command, so the
 * bound is far above what a healthy Redis keeps in flight (the pipeline drains ~10^5 a second). */
#define RB_POSTED_MAX 4096
#define RB_POSTED_MAX_BYTES ((size_t)32 << 20)

/* Sends C's command (or script) without waiting: C's values are copied before it returns (C->parse and
 * C->out are not used), and FN(ARG, rc, reply) is called once, on the loop thread, or on the calling
 * thread before it returns when the call is refused at once (the loop stopping, out of memory, over the
 * bound). Calls made one after the other on one shard reach Redis in that order. BOUNDED: the call counts
 * against RB_POSTED_MAX / RB_POSTED_MAX_BYTES (a caller that waits for its call bounds itself: pass
 * false). Never from the loop thread. */
void rb_call_post(struct redis_broker *rb, const struct rb_call *c, bool bounded, rb_posted_fn fn, void *arg);

/* The shard CHANNEL's keys and PUB/SUB channel live on (jump consistent hash of FNV-1a 64). */
size_t rb_shard_of(const struct redis_broker *rb, const char *channel);

/* Writes "<prefix>.<kind>.<channel>" into BUF (RB_KEY_MAX). Returns its length, or 0 when too long. */
size_t rb_key(const struct redis_broker *rb, const char *kind, const char *channel, char *buf);

/* The stripe lock that orders deliveries of CHANNEL against with_channel_locked. */
pthread_mutex_t *rb_stripe(struct redis_broker *rb, const char *channel);

/* broker_redis_sub.c: node interest in channels, PUB/SUB delivery. */
int rb_sub_init(struct redis_broker *rb);
int rb_sub_start(struct redis_broker *rb); /* arms the periodic position check */
void rb_sub_stop(struct redis_broker *rb);             /* joins the delivery worker */
void rb_sub_cleanup(struct redis_broker *rb);          /* after the loop stopped */
void rb_sub_on_push(void *shard, const redisReply *push); /* loop thread */
void rb_sub_on_state(void *shard, bool up);               /* loop thread */
int rb_node_subscribe(struct broker *b, const char *channel);
int rb_node_unsubscribe(struct broker *b, const char *channel);
/* Waits until this node's PUB/SUB subscription to CHANNEL is confirmed by Redis (subscribing when
 * needed). Returns 0 or -BROKER_EUNAVAILABLE. Never from the loop thread. */
int rb_sub_ensure(struct redis_broker *rb, const char *channel);

/* broker_redis_control.c: heartbeats and the node table, broadcast and surveyed API calls, routed
 * emulation. The stop order is say_goodbye, stop (joins its worker), then after the loop: cleanup. */
int rb_control_init(struct redis_broker *rb);
int rb_control_start(struct redis_broker *rb);
void rb_control_on_message(struct redis_broker *rb, const char *data, size_t len); /* loop thread */
void rb_control_on_state(void *rb, bool up);               /* loop thread: the control connection */
void rb_control_on_push(void *rb, const redisReply *push); /* loop thread */
/* Loop thread: the first instance's command connection came up (a node listening already says hello). */
void rb_control_on_cmd_up(struct redis_broker *rb);
void rb_control_say_goodbye(struct redis_broker *rb);
void rb_control_stop(struct redis_broker *rb);
void rb_control_cleanup(struct redis_broker *rb);
int rb_broadcast_api(struct broker *b, const char *method, const char *params, size_t len);
int rb_survey_api(struct broker *b, const char *method, const char *params, size_t len,
                  void (*fn)(void *arg, const char *answer, size_t len), void *arg);
int rb_route_emulation(struct broker *b, const Protocol__EmulationRequest *req, void (*done)(void *arg, int rc),
                       void *arg);
void rb_foreach_node(struct broker *b, void (*fn)(void *arg, const struct broker_node *node), void *arg);

/* broker_redis_history.c */
int rb_history_init(struct redis_broker *rb);
void rb_history_on_up(struct rb_shard *sh); /* loop thread: SH's command connection came up */
int rb_publish(struct broker *b, const char *channel, Protocol__Publication *pub, const struct publish_options *opts,
               struct stream_position *pos);
void rb_publish_async(struct broker *b, const char *channel, Protocol__Publication *pub,
                      const struct publish_options *opts, broker_publish_done_fn done, void *arg);
int rb_history(struct broker *b, const char *channel, const struct history_query *q, struct history_result *out);
int rb_recover(struct broker *b, const char *channel, uint64_t since_offset, const char *since_epoch,
               size_t max_publications, struct history_result *out, int *recovered);
int rb_position(struct broker *b, const char *channel, struct stream_position *pos);
int rb_history_remove(struct broker *b, const char *channel);

/* broker_redis_map.c: map channels (broker.h's map_* operations) and the expiry sweep. */
int rb_map_init(struct redis_broker *rb);
int rb_map_start(struct redis_broker *rb); /* arms the sweep */
int rb_map_publish(struct broker *b, const char *channel, Protocol__Publication *pub,
                   const struct map_publish_options *opts, struct map_publish_result *res);
int rb_map_page(struct broker *b, const char *channel, const char *cursor, size_t limit, uint64_t max_offset,
                struct map_page *out);
size_t rb_map_count(struct broker *b, const char *channel);
int rb_map_clear(struct broker *b, const char *channel);

/* broker_redis_presence.c */
int rb_presence_init(struct redis_broker *rb);
int rb_presence_start(struct redis_broker *rb);   /* arms the refresh timer */
void rb_presence_cleanup(struct redis_broker *rb); /* after the loop stopped */
int rb_presence_add(struct broker *b, const char *channel, const Protocol__ClientInfo *info);
int rb_presence_remove(struct broker *b, const char *channel, const char *client_id);
int rb_presence_get(struct broker *b, const char *channel, size_t max, struct presence_result *out);
int rb_presence_stats(struct broker *b, const char *channel, uint32_t *num_clients, uint32_t *num_users);

/* Lua shared by the scripts that create streams: derived_epoch(seed_key, fresh_seed, channel) is the
 * epoch of a channel that has no stream yet, eight letters of SHA-1(seed ":" channel), where the seed
 * (at SEED_KEY) is drawn once per Redis (FRESH_SEED when there is none yet), so that every node names
 * the same epoch for it and the channel's first publication gets that very epoch. */
#define RB_LUA_DERIVED_EPOCH                                                                                   \
  "local function derived_epoch(seed_key, fresh_seed, channel)\n"                                             \
  "  local seed = redis.call('get', seed_key)\n"                                                               \
  "  if not seed then seed = fresh_seed; redis.call('set', seed_key, seed) end\n"                              \
  "  local h = redis.sha1hex(seed .. ':' .. channel)\n"                                                        \
  "  local letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'\n"                                 \
  "  local out = {}\n"                                                                                         \
  "  for i = 1, 8 do\n"                                                                                        \
  "    local v = tonumber(string.sub(h, 2 * i - 1, 2 * i), 16) % 52\n"                                         \
  "    out[i] = string.sub(letters, v + 1, v + 1)\n"                                                           \
  "  end\n"                                                                                                    \
  "  return table.concat(out)\n"                                                                               \
  "end\n"

/* PUB/SUB framing: a publication with a position is "__p1:<offset>:<epoch>__" + packed Publication; join
 * and leave are "__j__" / "__l__" + packed ClientInfo; a publication without history is bare. */
#define RB_PREFIX_POSITIONED "__p1:"
#define RB_PREFIX_JOIN "__j__"
#define RB_PREFIX_LEAVE "__l__"

#endif
