/* broker_memory: the single-node engine. Publications go to the history (when the channel keeps one)
 * and then straight to the local hub; both steps happen under the channel's publish stripe lock, so
 * subscribers see a channel's publications in offset order and a subscribe that holds the same lock
 * (with_channel_locked) reads a position that no concurrent publication can overtake. History streams
 * are swept once a second from the timer wheel; their node-wide limits (global_history_meta_ttl,
 * history_max_streams) are read from the current configuration at each publish, so a reload applies
 * them. Map channels keep their keys in a map_state beside the history, which holds their stream of
 * changes; a change updates both and is delivered under the same stripe lock, and keys that expire are
 * removed (and their removals published) by the same sweep. There are no other nodes to route emulation
 * to. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "channel.h"
#include "channel_map.h"
#include "config.h"
#include "history.h"
#include "hub.h"
#include "map_state.h"
#include "presence.h"
#include "server.h"
#include "siphash.h"
#include "timer.h"

#define PUBLISH_STRIPES 64
#define SWEEP_INTERVAL_MS 1000
#define MAP_EXPIRIES_PER_SWEEP 10000 /* the rest wait for the next sweep */

struct memory_broker {
  struct broker base;
  struct history *history;
  struct presence *presence;
  struct map_state *maps;
  pthread_mutex_t stripes[PUBLISH_STRIPES];
  struct timer sweep;
};

static struct memory_broker *mem(struct broker *b) { return (struct memory_broker *)b; }

/* CHANNEL's publish lock, chosen by the keyed hash so that no client can pick channel names that all
 * share one lock. */
static pthread_mutex_t *stripe_of(struct memory_broker *m, const char *channel) {
  return &m->stripes[(siphash_string(channel) >> 40) % PUBLISH_STRIPES];
}

static int map_history_error(int rc) {
  static const int errors[] = {[HISTORY_EBADREQUEST] = -BROKER_EBADREQUEST,
                               [HISTORY_EUNRECOVERABLE] = -BROKER_EUNRECOVERABLE,
                               [HISTORY_ELIMIT] = -BROKER_ELIMIT};
  size_t i = (size_t)-rc;
  if (rc == 0) return 0;
  return i < sizeof errors / sizeof *errors && errors[i] ? errors[i] : -BROKER_ENOMEM;
}

/* Appends PUB to CHANNEL's stream, kept as OPTS says (its meta TTL 0: the node's
 * global_history_meta_ttl); the node-wide limits come from the current configuration (reloadable). */
static int stream_append(struct memory_broker *m, const char *channel, const Protocol__Publication *pub,
                         const struct publish_options *opts, struct stream_position *where) {
  const struct config *cfg = server_config_get(m->base.srv);
  struct history_retention r = {
      .size = opts->history_size,
      .ttl_ms = opts->history_ttl_ms,
      .meta_ttl_ms = opts->history_meta_ttl_ms ? opts->history_meta_ttl_ms : (uint64_t)cfg->global_history_meta_ttl_ms,
      .max_streams = (size_t)cfg->history_max_streams,
  };
  config_unref(cfg);
  return history_add(m->history, channel, pub, &r, timer_now_ms(), where);
}

static int memory_publish(struct broker *b, const char *channel, Protocol__Publication *pub,
                          const struct publish_options *opts, struct stream_position *pos) {
  struct memory_broker *m = mem(b);
  struct stream_position where = {0};
  int rc = 0;
  pthread_mutex_t *lock = stripe_of(m, channel);
  pthread_mutex_lock(lock);
  if (opts && opts->history_size > 0 && opts->history_ttl_ms > 0) {
    rc = stream_append(m, channel, pub, opts, &where);
    pub->offset = where.offset;
  }
  if (rc == 0) hub_publish(b->srv->hub, channel, pub, where.offset ? where.epoch : NULL);
  pthread_mutex_unlock(lock);
  if (pos) *pos = where;
  return map_history_error(rc);
}

/* Nothing to wait for on one node: the publish is done inline and so is its answer. */
static void memory_publish_async(struct broker *b, const char *channel, Protocol__Publication *pub,
                                 const struct publish_options *opts, broker_publish_done_fn done, void *arg) {
  struct stream_position where = {0};
  int rc = memory_publish(b, channel, pub, opts, &where);
  done(arg, rc, &where);
}

static int memory_join_leave(struct broker *b, const char *channel, const Protocol__ClientInfo *info,
                             int join) {
  hub_publish_join_leave(b->srv->hub, channel, info, join);
  return 0;
}

static void memory_with_channel_locked(struct broker *b, const char *channel, void (*fn)(void *arg),
                                       void *arg) {
  pthread_mutex_t *lock = stripe_of(mem(b), channel);
  pthread_mutex_lock(lock);
  fn(arg);
  pthread_mutex_unlock(lock);
}

static int memory_history(struct broker *b, const char *channel, const struct history_query *q,
                          struct history_result *out) {
  return map_history_error(history_query(mem(b)->history, channel, q, timer_now_ms(), out));
}

static int memory_recover(struct broker *b, const char *channel, uint64_t since_offset,
                          const char *since_epoch, size_t max_publications, struct history_result *out,
                          int *recovered) {
  bool ok = false;
  int rc = history_recover(mem(b)->history, channel, since_offset, since_epoch, max_publications,
                           timer_now_ms(), out, &ok);
  *recovered = ok;
  return map_history_error(rc);
}

static int memory_position(struct broker *b, const char *channel, struct stream_position *pos) {
  return map_history_error(history_position(mem(b)->history, channel, timer_now_ms(), pos));
}

static int memory_history_remove(struct broker *b, const char *channel) {
  return map_history_error(history_remove(mem(b)->history, channel));
}

static size_t memory_history_streams(struct broker *b) { return history_count(mem(b)->history); }

static int memory_presence_add(struct broker *b, const char *channel, const Protocol__ClientInfo *info) {
  return presence_add(mem(b)->presence, channel, info) == 0 ? 0 : -BROKER_ENOMEM;
}

static int memory_presence_remove(struct broker *b, const char *channel, const char *client_id) {
  presence_remove(mem(b)->presence, channel, client_id);
  return 0;
}

static int memory_presence_get(struct broker *b, const char *channel, size_t max,
                               struct presence_result *out) {
  return presence_get(mem(b)->presence, channel, max, out) == 0 ? 0 : -BROKER_ENOMEM;
}

static int memory_presence_stats(struct broker *b, const char *channel, uint32_t *clients, uint32_t *users) {
  return presence_stats(mem(b)->presence, channel, clients, users) == 0 ? 0 : -BROKER_ENOMEM;
}

static int memory_interest(struct broker *b, const char *channel) {
  (void)b;
  (void)channel;
  return BROKER_OK;
}

static int memory_route_emulation(struct broker *b, const Protocol__EmulationRequest *req,
                                  void (*done)(void *arg, int rc), void *arg) {
  (void)b, (void)req, (void)done, (void)arg;
  return -BROKER_EUNKNOWN_NODE;
}

/* One node: nobody else to tell or ask. */
static int memory_broadcast_api(struct broker *b, const char *method, const char *params, size_t len) {
  (void)b, (void)method, (void)params, (void)len;
  return 0;
}

static int memory_survey_api(struct broker *b, const char *method, const char *params, size_t len,
                             void (*fn)(void *arg, const char *answer, size_t len), void *arg) {
  (void)b, (void)method, (void)params, (void)len, (void)fn, (void)arg;
  return 0;
}

static void memory_foreach_node(struct broker *b, void (*fn)(void *arg, const struct broker_node *node), void *arg) {
  (void)b, (void)fn, (void)arg;
}

static bool memory_healthy(struct broker *b) {
  (void)b;
  return true;
}

/* A map change under CHANNEL's stripe lock: checked, appended to the stream, stored, delivered. */
static int map_change_locked(struct memory_broker *m, const char *channel, Protocol__Publication *pub,
                             const struct map_publish_options *opts, struct map_publish_result *res) {
  uint64_t now = timer_now_ms();
  *res = (struct map_publish_result){0};
  enum map_key_mode mode = pub->removed ? MAP_KEY_IF_EXISTS : (enum map_key_mode)opts->key_mode;
  if (!map_state_allows(m->maps, channel, pub->key, mode, now)) {
    res->suppress_reason = mode == MAP_KEY_IF_EXISTS ? "key_not_found" : "key_exists";
    if (mode == MAP_KEY_TOUCH) /* only its expiry moves */
      map_state_set(m->maps, channel, pub->key, pub, 0, opts->key_ttl_ms ? now + opts->key_ttl_ms : 0, mode, now);
    return 0;
  }
  if (opts->stream) {
    struct publish_options po = {opts->stream_size, opts->stream_ttl_ms, opts->meta_ttl_ms};
    int rc = stream_append(m, channel, pub, &po, &res->pos);
    if (rc != 0) return map_history_error(rc);
    pub->offset = res->pos.offset;
  }
  if (pub->removed) {
    map_state_remove(m->maps, channel, pub->key, now);
  } else if (map_state_set(m->maps, channel, pub->key, pub, pub->offset, opts->key_ttl_ms ? now + opts->key_ttl_ms : 0,
                           MAP_KEY_ANY, now) != MAP_STATE_OK) {
    return -BROKER_ENOMEM; /* the change is in the stream but not in the state: a snapshot misses it */
  }
  hub_publish(m->base.srv->hub, channel, pub, pub->offset ? res->pos.epoch : NULL);
  return 0;
}

static int memory_map_publish(struct broker *b, const char *channel, Protocol__Publication *pub,
                              const struct map_publish_options *opts, struct map_publish_result *res) {
  struct memory_broker *m = mem(b);
  pthread_mutex_t *lock = stripe_of(m, channel);
  pthread_mutex_lock(lock);
  int rc = map_change_locked(m, channel, pub, opts, res);
  pthread_mutex_unlock(lock);
  return rc;
}

static int memory_map_page(struct broker *b, const char *channel, const char *cursor, size_t limit,
                           uint64_t max_offset, struct map_page *out) {
  int rc = map_state_page(mem(b)->maps, channel, cursor, limit, max_offset, timer_now_ms(), out);
  return rc == MAP_STATE_OK ? 0 : -BROKER_ENOMEM;
}

static size_t memory_map_count(struct broker *b, const char *channel) {
  return map_state_count(mem(b)->maps, channel, timer_now_ms());
}

static int memory_map_clear(struct broker *b, const char *channel) {
  struct memory_broker *m = mem(b);
  pthread_mutex_t *lock = stripe_of(m, channel);
  pthread_mutex_lock(lock);
  map_state_clear(m->maps, channel);
  int rc = history_forget(m->history, channel);
  pthread_mutex_unlock(lock);
  return map_history_error(rc);
}

/* A key the sweep found expired: removed and its removal published, unless it was written again
 * meanwhile, or its namespace is no longer a map one (then it is only forgotten). */
static void expire_key(void *arg, const char *channel, const char *key) {
  struct memory_broker *m = arg;
  const struct config *cfg = server_config_get(m->base.srv);
  const struct channel_options *opts = channel_options_for(cfg, channel);
  pthread_mutex_t *lock = stripe_of(m, channel);
  pthread_mutex_lock(lock);
  if (opts == NULL || !channel_is_map(opts)) {
    map_state_take_expired(m->maps, channel, key, timer_now_ms());
  } else if (map_state_allows(m->maps, channel, key, MAP_KEY_IF_NEW, timer_now_ms())) { /* expired, not rewritten */
    struct channel_map_limits l;
    channel_map_limits(opts, &l);
    struct map_publish_options mo = {l.stream, l.stream_size, l.stream_ttl_ms, l.meta_ttl_ms, 0, MAP_KEY_ANY};
    Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
    pub.key = (char *)key;
    pub.removed = true;
    struct map_publish_result res;
    if (map_state_take_expired(m->maps, channel, key, timer_now_ms())) {
      if (mo.stream) {
        struct publish_options po = {mo.stream_size, mo.stream_ttl_ms, mo.meta_ttl_ms};
        if (stream_append(m, channel, &pub, &po, &res.pos) == 0) pub.offset = res.pos.offset;
      }
      hub_publish(m->base.srv->hub, channel, &pub, pub.offset ? res.pos.epoch : NULL);
    }
  }
  pthread_mutex_unlock(lock);
  config_unref(cfg);
}

static void sweep(void *arg) {
  struct memory_broker *m = arg;
  history_expire(m->history, timer_now_ms());
  map_state_expired(m->maps, timer_now_ms(), MAP_EXPIRIES_PER_SWEEP, expire_key, m);
  timer_wheel_schedule(m->base.srv->timers, &m->sweep, SWEEP_INTERVAL_MS, sweep, m);
}

static void memory_free(struct broker *b) {
  struct memory_broker *m = mem(b);
  timer_wheel_cancel(b->srv->timers, &m->sweep);
  history_free(m->history);
  presence_free(m->presence);
  map_state_free(m->maps);
  for (int i = 0; i < PUBLISH_STRIPES; i++) pthread_mutex_destroy(&m->stripes[i]);
  free(m);
}

static const struct broker_ops memory_ops = {
    .name = "memory",
    .publish = memory_publish,
    .publish_async = memory_publish_async,
    .publish_join_leave = memory_join_leave,
    .with_channel_locked = memory_with_channel_locked,
    .history = memory_history,
    .recover = memory_recover,
    .position = memory_position,
    .history_remove = memory_history_remove,
    .history_streams = memory_history_streams,
    .map_publish = memory_map_publish,
    .map_page = memory_map_page,
    .map_count = memory_map_count,
    .map_clear = memory_map_clear,
    .presence_add = memory_presence_add,
    .presence_remove = memory_presence_remove,
    .presence_get = memory_presence_get,
    .presence_stats = memory_presence_stats,
    .node_subscribe = memory_interest,
    .node_unsubscribe = memory_interest,
    .route_emulation = memory_route_emulation,
    .broadcast_api = memory_broadcast_api,
    .survey_api = memory_survey_api,
    .foreach_node = memory_foreach_node,
    .healthy = memory_healthy,
    .free = memory_free,
};

struct broker *broker_memory_new(struct server *srv) {
  struct memory_broker *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->history = history_new();
  m->presence = presence_new();
  m->maps = map_state_new();
  if (m->history == NULL || m->presence == NULL || m->maps == NULL) {
    history_free(m->history);
    presence_free(m->presence);
    map_state_free(m->maps);
    free(m);
    return NULL;
  }
  for (int i = 0; i < PUBLISH_STRIPES; i++) pthread_mutex_init(&m->stripes[i], NULL);
  m->base.ops = &memory_ops;
  m->base.srv = srv;
  if (srv->timers) timer_wheel_schedule(srv->timers, &m->sweep, SWEEP_INTERVAL_MS, sweep, m);
  return &m->base;
}
