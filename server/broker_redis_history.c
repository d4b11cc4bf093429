/* broker_redis_history: publish, history, recovery and positions on Redis, with the memory engine's
 * semantics (history.h). A channel's stream is a Redis Stream "<prefix>.stream.<ch>" whose entry ids are
 * "<offset>-0" and whose one field "d" is the packed Publication (no offset, channel or epoch), plus a
 * meta hash "<prefix>.stream.meta.<ch>" with the epoch "e" and the top offset "s". Two Lua scripts keep
 * every step atomic: publish (epoch, offset, XADD with MAXLEN, TTLs, PUBLISH with the position prefix)
 * and read (position plus an XRANGE/XREVRANGE window). Like the memory engine, the publications of a
 * stream all expire history_ttl after its last publish, the meta (epoch, top, its TTL) the channel's
 * history_meta_ttl (0s: global_history_meta_ttl) after its last publish or read, and only a publication
 * creates a stream. A read of a channel without one answers offset 0 and the epoch its first
 * publication will get, derived from the channel name and a seed kept once per Redis (as the memory
 * engine derives it from a key kept per process), so every node answers the same. Unlike the memory
 * engine, a stream that is forgotten (meta TTL) and made again gets the same epoch again.
 * history_max_streams is the memory engine's: Redis streams are bounded by their meta TTL. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_redis_internal.h"
#include "history.h"
#include "ids.h"
#include "server.h"

/* The derived epoch (RB_LUA_DERIVED_EPOCH) of the script's channel: the seed at KEYS[3], ARGV[SEED] a
 * fresh seed in case none exists, ARGV[CHANNEL] the channel. */
#define EPOCH_OF_LUA(seed_arg, channel_arg)                                                                     \
  RB_LUA_DERIVED_EPOCH                                                                                         \
  "local function epoch_of() return derived_epoch(KEYS[3], ARGV[" seed_arg "], ARGV[" channel_arg "]) end\n"

static struct redis_script publish_script = {
    .name = "publish",
    /* KEYS: stream, meta, seed. ARGV: payload, history size, history ttl ms, pubsub channel, meta ttl
     * ms, a fresh seed, the channel. Returns {offset, epoch}; {0, ""} without history. */
    .source = EPOCH_OF_LUA("6", "7") "if ARGV[2] == '0' then\n"
              "  redis.call('publish', ARGV[4], ARGV[1])\n"
              "  return {0, ''}\n"
              "end\n"
              "local epoch = redis.call('hget', KEYS[2], 'e')\n"
              "if not epoch then\n"
              "  epoch = epoch_of()\n"
              "  redis.call('hset', KEYS[2], 'e', epoch)\n"
              "end\n"
              "local offset = redis.call('hincrby', KEYS[2], 's', 1)\n"
              "redis.call('hset', KEYS[2], 't', ARGV[5])\n"
              "if ARGV[5] ~= '0' then redis.call('pexpire', KEYS[2], ARGV[5]) else redis.call('persist', KEYS[2]) end\n"
              "redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-0', 'd', ARGV[1])\n"
              "redis.call('pexpire', KEYS[1], ARGV[3])\n"
              "redis.call('publish', ARGV[4], '__p1:' .. offset .. ':' .. epoch .. '__' .. ARGV[1])\n"
              "return {offset, epoch}\n"};

static struct redis_script read_script = {
    .name = "history",
    /* KEYS: stream, meta, seed. ARGV: direction ("" = position only, "fwd", "rev"), first id, count
     * (-1 = all), a fresh seed, the channel. Returns {top, epoch, entries}; for a channel without a
     * stream {0, the epoch its first publication will get, {}}, and the read creates nothing. A read
     * restarts the meta TTL the last publish set ("t"). */
    .source = EPOCH_OF_LUA("4", "5") "local epoch = redis.call('hget', KEYS[2], 'e')\n"
              "if not epoch then return {0, epoch_of(), {}} end\n"
              "local top = redis.call('hget', KEYS[2], 's') or '0'\n"
              "local ttl = redis.call('hget', KEYS[2], 't')\n"
              "if ttl and ttl ~= '0' then redis.call('pexpire', KEYS[2], ttl) end\n"
              "local entries = {}\n"
              "local limit = {}\n"
              "if ARGV[3] ~= '-1' then limit = {'COUNT', ARGV[3]} end\n"
              "if ARGV[1] == 'fwd' then\n"
              "  entries = redis.call('xrange', KEYS[1], ARGV[2], '+', unpack(limit))\n"
              "elseif ARGV[1] == 'rev' then\n"
              "  entries = redis.call('xrevrange', KEYS[1], ARGV[2], '-', unpack(limit))\n"
              "end\n"
              "return {top, epoch, entries}\n"};

static struct redis_script remove_script = {
    .name = "history_remove",
    /* KEYS: stream. The meta (epoch, top) stays, as in the memory engine. */
    .source = "redis.call('del', KEYS[1])\nreturn 0\n"};

int rb_history_init(struct redis_broker *rb) {
  (void)rb;
  return redis_script_init(&publish_script) | redis_script_init(&read_script) | redis_script_init(&remove_script);
}

/* The publish script first: a client's publishes are pipelined, and none may overtake another by a
 * NOSCRIPT fallback (redis_script_load). The reads are waited for one at a time: EVALSHA/EVAL suits them. */
void rb_history_on_up(struct rb_shard *sh) { redis_script_load(sh->cmd, &publish_script); }

/* "<prefix>.epoch.seed": the seed of derived epochs (one key per Redis, never expires). */
static size_t seed_key(const struct redis_broker *rb, char *buf) {
  int n = snprintf(buf, RB_KEY_MAX, "%s.epoch.seed", rb->prefix);
  return n > 0 && n < RB_KEY_MAX ? (size_t)n : 0;
}

static void new_seed(char out[ID_UUID_LEN + 1]) {
  if (id_new_uuid(out) != 0) snprintf(out, ID_UUID_LEN + 1, "%llx", (unsigned long long)id_random_below(~0UL));
}

static uint64_t reply_u64(const redisReply *r) {
  if (r->type == REDIS_REPLY_INTEGER) return r->integer > 0 ? (uint64_t)r->integer : 0;
  if (r->type == REDIS_REPLY_STRING) return strtoull(r->str, NULL, 10);
  return 0;
}

static void reply_epoch(const redisReply *r, struct stream_position *pos) {
  snprintf(pos->epoch, sizeof pos->epoch, "%.*s", r->type == REDIS_REPLY_STRING ? (int)r->len : 0,
           r->type == REDIS_REPLY_STRING ? r->str : "");
}

/* ---- publish ---- */

/* A publish in flight: whom to tell. */
struct publish_call {
  broker_publish_done_fn done;
  void *arg;
};

static void publish_replied(void *arg, int rc, const redisReply *r) {
  struct publish_call *pc = arg;
  struct stream_position pos = {0};
  if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 2)) rc = -BROKER_EUNAVAILABLE;
  if (rc == 0) {
    pos.offset = reply_u64(r->element[0]);
    reply_epoch(r->element[1], &pos);
  }
  pc->done(pc->arg, rc, &pos);
  free(pc);
}

/* Runs the publish script for PUB on CHANNEL's shard without waiting (rb_call_post); BOUNDED as there. */
static void publish_post(struct redis_broker *rb, const char *channel, Protocol__Publication *pub,
                         const struct publish_options *opts, bool bounded, broker_publish_done_fn done,
                         void *arg) {
  struct stream_position none = {0};
  char stream[RB_KEY_MAX], meta[RB_KEY_MAX], pubsub[RB_KEY_MAX], seedkey[RB_KEY_MAX];
  size_t sl = rb_key(rb, "stream", channel, stream), ml = rb_key(rb, "stream.meta", channel, meta),
         pl = rb_key(rb, "client", channel, pubsub), kl = seed_key(rb, seedkey);
  if (sl == 0 || ml == 0 || pl == 0) {
    done(arg, -BROKER_EBADREQUEST, &none);
    return;
  }
  bool history = opts && opts->history_size > 0 && opts->history_ttl_ms > 0;
  pub->offset = 0; /* the position travels beside the publication, never inside it */
  size_t len = protocol__publication__get_packed_size(pub);
  uint8_t *payload = malloc(len ? len : 1);
  struct publish_call *pc = malloc(sizeof *pc);
  if (payload == NULL || pc == NULL) {
    free(payload);
    free(pc);
    done(arg, -BROKER_ENOMEM, &none);
    return;
  }
  *pc = (struct publish_call){done, arg};
  protocol__publication__pack(pub, payload);
  char size[24], ttl[24], meta_ttl[24], seed[ID_UUID_LEN + 1];
  snprintf(size, sizeof size, "%zu", history ? opts->history_size : 0);
  snprintf(ttl, sizeof ttl, "%" PRIu64, history ? opts->history_ttl_ms : 0);
  const struct config *cfg = server_config_get(rb->base.srv); /* global_history_meta_ttl is reloadable */
  uint64_t meta_ttl_ms = history && opts->history_meta_ttl_ms ? opts->history_meta_ttl_ms
                                                              : (uint64_t)cfg->global_history_meta_ttl_ms;
  config_unref(cfg);
  snprintf(meta_ttl, sizeof meta_ttl, "%" PRIu64, meta_ttl_ms);
  new_seed(seed);
  const char *values[10] = {stream, meta, seedkey, (const char *)payload, size, ttl, pubsub, meta_ttl, seed, channel};
  const size_t lens[10] = {sl, ml, kl, len, strlen(size), strlen(ttl), pl, strlen(meta_ttl), strlen(seed),
                           strlen(channel)};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = &publish_script, .nkeys = 3, .argc = 10,
                      .argv = values, .lens = lens};
  rb_call_post(rb, &c, bounded, publish_replied, pc); /* copies the values */
  free(payload);
}

void rb_publish_async(struct broker *b, const char *channel, Protocol__Publication *pub,
                      const struct publish_options *opts, broker_publish_done_fn done, void *arg) {
  publish_post((struct redis_broker *)b, channel, pub, opts, true, done, arg);
}

/* A synchronous publish: the caller waits on this for the reply. */
struct publish_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int rc;
  struct stream_position pos;
};

static void publish_waited(void *arg, int rc, const struct stream_position *pos) {
  struct publish_wait *w = arg;
  pthread_mutex_lock(&w->lock);
  w->rc = rc;
  w->pos = *pos;
  w->done = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

/* The API's and the admin socket's publish: the same script, waited for (so not counted against the
 * bound of publishes in flight: each waiting thread bounds itself). */
int rb_publish(struct broker *b, const char *channel, Protocol__Publication *pub, const struct publish_options *opts,
               struct stream_position *pos) {
  struct publish_wait w = {.done = false};
  uint64_t offset = pub->offset;
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  publish_post((struct redis_broker *)b, channel, pub, opts, false, publish_waited, &w);
  pthread_mutex_lock(&w.lock);
  while (!w.done) pthread_cond_wait(&w.cond, &w.lock); /* bounded: every posted call is answered */
  pthread_mutex_unlock(&w.lock);
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  pub->offset = w.rc == 0 ? w.pos.offset : offset;
  if (pos) *pos = w.pos;
  return w.rc;
}

/* ---- reads ---- */

/* {top, epoch, [[id, [field, value, ...]], ...]} into the result: publications unpacked, offsets from
 * the entry ids. */
static int parse_read(struct rb_call *c, const redisReply *r) {
  struct history_result *res = c->out;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[2]->type != REDIS_REPLY_ARRAY)
    return -BROKER_EUNAVAILABLE;
  res->pos.offset = reply_u64(r->element[0]);
  reply_epoch(r->element[1], &res->pos);
  const redisReply *entries = r->element[2];
  if (entries->elements == 0) return 0;
  res->pubs = calloc(entries->elements, sizeof *res->pubs);
  if (res->pubs == NULL) return -BROKER_ENOMEM;
  for (size_t i = 0; i < entries->elements; i++) {
    const redisReply *e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements < 2)
      continue;
    const redisReply *data = e->element[1]->element[1];
    Protocol__Publication *p = protocol__publication__unpack(NULL, data->len, (const uint8_t *)data->str);
    if (p == NULL) continue; /* not ours: skipped rather than failing the whole read */
    p->offset = strtoull(e->element[0]->str, NULL, 10);
    p->delta = false; /* packed once for PUB/SUB too: the publisher's delta wish is not history */
    res->pubs[res->n++] = p;
  }
  return 0;
}

/* Runs the read script: DIRECTION "" (position only), "fwd" or "rev" from FIRST (an entry id, "-" or
 * "+"), at most COUNT entries (< 0 = all). */
static int run_read(struct redis_broker *rb, const char *channel, const char *direction, const char *first,
                    long long count, struct history_result *out) {
  memset(out, 0, sizeof *out);
  char stream[RB_KEY_MAX], meta[RB_KEY_MAX], seedkey[RB_KEY_MAX];
  size_t sl = rb_key(rb, "stream", channel, stream), ml = rb_key(rb, "stream.meta", channel, meta),
         kl = seed_key(rb, seedkey);
  if (sl == 0 || ml == 0) return -BROKER_EBADREQUEST;
  char cnt[24], seed[ID_UUID_LEN + 1];
  snprintf(cnt, sizeof cnt, "%lld", count < 0 ? -1 : count);
  new_seed(seed);
  const char *values[8] = {stream, meta, seedkey, direction, first, cnt, seed, channel};
  const size_t lens[8] = {sl, ml, kl, strlen(direction), strlen(first), strlen(cnt), strlen(seed), strlen(channel)};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = &read_script, .nkeys = 3, .argc = 8,
                      .argv = values, .lens = lens, .parse = parse_read, .out = out};
  int rc = rb_call_run(rb, &c);
  if (rc != 0) history_result_cleanup(out);
  return rc;
}

static bool epoch_matches(const struct stream_position *pos, const char *epoch) {
  return epoch == NULL || epoch[0] == '\0' || strcmp(pos->epoch, epoch) == 0;
}

int rb_history(struct broker *b, const char *channel, const struct history_query *q, struct history_result *out) {
  struct redis_broker *rb = (struct redis_broker *)b;
  memset(out, 0, sizeof *out);
  if (q->has_since && q->reverse && q->since_offset == 0) return -BROKER_EBADREQUEST;
  long long limit = q->limit < 0 ? -1 : q->limit;
  if (q->max_limit > 0 && (limit < 0 || (size_t)limit > q->max_limit)) limit = (long long)q->max_limit;
  char first[32] = "-";
  if (!q->reverse && q->has_since) snprintf(first, sizeof first, "%" PRIu64 "-0", q->since_offset + 1);
  if (q->reverse) snprintf(first, sizeof first, q->has_since ? "%" PRIu64 "-0" : "+", q->since_offset - 1);
  const char *direction = limit == 0 ? "" : q->reverse ? "rev" : "fwd";
  int rc = run_read(rb, channel, direction, first, limit, out);
  if (rc != 0) return rc;
  if (q->has_since && !epoch_matches(&out->pos, q->since_epoch)) {
    struct stream_position pos = out->pos;
    history_result_cleanup(out);
    out->pos = pos;
    return -BROKER_EUNRECOVERABLE;
  }
  return 0;
}

int rb_recover(struct broker *b, const char *channel, uint64_t since_offset, const char *since_epoch,
               size_t max_publications, struct history_result *out, int *recovered) {
  struct redis_broker *rb = (struct redis_broker *)b;
  *recovered = 0;
  char first[32];
  snprintf(first, sizeof first, "%" PRIu64 "-0", since_offset + 1);
  /* one more than allowed tells "too many" from "exactly enough" */
  long long count = max_publications > 0 ? (long long)max_publications + 1 : -1;
  int rc = run_read(rb, channel, "fwd", first, count, out);
  if (rc != 0) return rc;
  uint64_t top = out->pos.offset;
  bool ok = epoch_matches(&out->pos, since_epoch) && since_offset <= top;
  if (ok && top > since_offset) {
    uint64_t missed = top - since_offset;
    ok = (max_publications == 0 || missed <= max_publications) && out->n == missed &&
         out->pubs[0]->offset == since_offset + 1;
  }
  if (!ok) {
    struct stream_position pos = out->pos;
    history_result_cleanup(out);
    out->pos = pos;
  }
  *recovered = ok;
  return 0;
}

int rb_position(struct broker *b, const char *channel, struct stream_position *pos) {
  struct history_result res;
  int rc = run_read((struct redis_broker *)b, channel, "", "-", 0, &res);
  if (rc == 0) *pos = res.pos;
  history_result_cleanup(&res);
  return rc;
}

int rb_history_remove(struct broker *b, const char *channel) {
  struct redis_broker *rb = (struct redis_broker *)b;
  char stream[RB_KEY_MAX];
  size_t sl = rb_key(rb, "stream", channel, stream);
  if (sl == 0) return -BROKER_EBADREQUEST;
  const char *values[1] = {stream};
  const size_t lens[1] = {sl};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = &remove_script, .nkeys = 1, .argc = 1,
                      .argv = values, .lens = lens};
  return rb_call_run(rb, &c);
}
