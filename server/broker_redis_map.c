/* broker_redis_map: map channels on Redis, with the memory engine's semantics (map_state.h, broker.h).
 * Per channel, on its shard: a hash "<prefix>.map.state.<ch>" of key => "<offset>:" + packed
 * Publication, a sorted set "<prefix>.map.keys.<ch>" of the keys (all score 0, so ZRANGEBYLEX pages
 * them in bytewise order with the last key as the cursor), a sorted set "<prefix>.map.expire.<ch>" of
 * key => expiry (ms, Redis time) for keys that expire, and a hash "<prefix>.map.meta.<ch>" of how the
 * channel's changes are kept (stream size, TTLs, PUB/SUB channel) for the sweep. The stream of changes
 * is the channel's history stream (broker_redis_history.c's keys and framing), so positions, recovery
 * and delivery are the ones of publications. Per shard, "<prefix>.map.expiring" holds each channel with
 * expiring keys at its earliest expiry. Scripts keep each step atomic: a change (check, stream append,
 * state, PUBLISH), a page read, a count, a clear (a fresh epoch, offsets from 1 again), and the sweep,
 * which every node runs once a second on every shard: it removes the keys that expired and appends and
 * publishes their removals (a second node's sweep finds nothing left to do). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_redis_internal.h"
#include "ids.h"
#include "log.h"
#include "map_state.h"
#include "server.h"

#define SWEEP_INTERVAL_MS 1000
#define SWEEP_CHANNELS "100" /* channels per shard and sweep; the rest wait for the next */
#define SWEEP_KEYS "1000"    /* keys per channel and sweep */

/* Lua: `now`, Redis's clock in ms (every node's scripts agree on it, whatever the nodes' clocks say). */
#define MAP_NOW_LUA                                                                                            \
  "local t = redis.call('time')\n"                                                                             \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* Lua shared by the change and the sweep scripts: now (Redis time, ms) and the stream append with the
 * publish script's semantics (epoch, offset, MAXLEN, TTLs) plus the PUBLISH with the position prefix.
 * append(stream, meta, size, ttl, meta_ttl, pubsub, payload, epoch_if_new) returns offset, epoch. */
#define MAP_COMMON_LUA                                                                                         \
  MAP_NOW_LUA                                                                                                  \
  "local function append(stream, meta, size, ttl, meta_ttl, pubsub, payload, fresh_epoch)\n"                   \
  "  if size == '0' then\n"                                                                                    \
  "    redis.call('publish', pubsub, payload)\n"                                                               \
  "    return 0, ''\n"                                                                                         \
  "  end\n"                                                                                                    \
  "  local epoch = redis.call('hget', meta, 'e')\n"                                                            \
  "  if not epoch then epoch = fresh_epoch(); redis.call('hset', meta, 'e', epoch) end\n"                      \
  "  local offset = redis.call('hincrby', meta, 's', 1)\n"                                                     \
  "  redis.call('hset', meta, 't', meta_ttl)\n"                                                                \
  "  if meta_ttl ~= '0' then redis.call('pexpire', meta, meta_ttl) else redis.call('persist', meta) end\n"     \
  "  redis.call('xadd', stream, 'MAXLEN', size, offset .. '-0', 'd', payload)\n"                               \
  "  redis.call('pexpire', stream, ttl)\n"                                                                     \
  "  redis.call('publish', pubsub, '__p1:' .. offset .. ':' .. epoch .. '__' .. payload)\n"                    \
  "  return offset, epoch\n"                                                                                   \
  "end\n"                                                                                                      \
  RB_LUA_DERIVED_EPOCH                                                                                         \
  "local function live(exp, key)\n"                                                                            \
  "  local e = redis.call('zscore', exp, key)\n"                                                               \
  "  return (not e) or tonumber(e) > now\n"                                                                    \
  "end\n"

/* KEYS: stream, stream meta, seed, state, keys, expire, map meta, expiring. ARGV: payload (the packed
 * Publication, key and removed set), key, removed ("1"/"0"), key mode (0 any, 1 if new, 2 if exists, 3
 * touch: when it exists only its expiry moves), stream size ("0" = none), stream ttl ms, pubsub channel, meta ttl ms, a fresh seed, the channel, key
 * ttl ms ("0" = never), state ttl ms ("0" = keep). Returns {offset, epoch} or {-1, reason}. */
static struct redis_script change_script = {
    .name = "map_change",
    .source = MAP_COMMON_LUA
    "local function fresh_epoch() return derived_epoch(KEYS[3], ARGV[9], ARGV[10]) end\n"
    "local key = ARGV[2]\n"
    "local exists = redis.call('hexists', KEYS[4], key) == 1 and live(KEYS[6], key)\n"
    "if ARGV[3] == '1' or ARGV[4] == '2' then\n"
    "  if not exists then return {-1, 'key_not_found'} end\n"
    "elseif ARGV[4] == '1' and exists then\n"
    "  return {-1, 'key_exists'}\n"
    "elseif ARGV[4] == '3' and exists then\n"
    "  if ARGV[11] ~= '0' then\n"
    "    local at = now + tonumber(ARGV[11])\n"
    "    redis.call('zadd', KEYS[6], at, key)\n"
    "    redis.call('zadd', KEYS[8], 'LT', at, ARGV[10])\n"
    "    for i = 4, 7 do redis.call('pexpire', KEYS[i], ARGV[12]) end\n"
    "  end\n"
    "  return {-1, 'key_exists'}\n"
    "end\n"
    "redis.call('hset', KEYS[7], 'size', ARGV[5], 'ttl', ARGV[6], 'mttl', ARGV[8], 'pubsub', ARGV[7])\n"
    "local offset, epoch = append(KEYS[1], KEYS[2], ARGV[5], ARGV[6], ARGV[8], ARGV[7], ARGV[1], fresh_epoch)\n"
    "if ARGV[3] == '1' then\n"
    "  redis.call('hdel', KEYS[4], key)\n"
    "  redis.call('zrem', KEYS[5], key)\n"
    "  redis.call('zrem', KEYS[6], key)\n"
    "else\n"
    "  redis.call('hset', KEYS[4], key, offset .. ':' .. ARGV[1])\n"
    "  redis.call('zadd', KEYS[5], 0, key)\n"
    "  if ARGV[11] ~= '0' then\n"
    "    local at = now + tonumber(ARGV[11])\n"
    "    redis.call('zadd', KEYS[6], at, key)\n"
    "    redis.call('zadd', KEYS[8], 'LT', at, ARGV[10])\n"
    "  else\n"
    "    redis.call('zrem', KEYS[6], key)\n"
    "  end\n"
    "end\n"
    "for i = 4, 7 do\n"
    "  if ARGV[12] ~= '0' then redis.call('pexpire', KEYS[i], ARGV[12]) else redis.call('persist', KEYS[i]) end\n"
    "end\n"
    "return {offset, epoch}\n"};

/* KEYS: state, keys, expire. ARGV: cursor ("" = from the first), limit, max offset ("0" = any). Returns
 * {next cursor ("" = last page), key1, value1, key2, value2, ...}. */
static struct redis_script page_script = {
    .name = "map_page",
    .source = MAP_NOW_LUA
              "local limit = tonumber(ARGV[2])\n"
              "local max = tonumber(ARGV[3])\n"
              "local out = {''}\n"
              "local n = 0\n"
              "local from = ARGV[1] == '' and '-' or '(' .. ARGV[1]\n"
              "local last = nil\n"
              "while n < limit do\n"
              "  local ks = redis.call('zrangebylex', KEYS[2], from, '+', 'LIMIT', 0, limit)\n"
              "  if #ks == 0 then break end\n"
              "  for _, k in ipairs(ks) do\n"
              "    from = '(' .. k\n"
              "    local v = redis.call('hget', KEYS[1], k)\n"
              "    local e = redis.call('zscore', KEYS[3], k)\n"
              "    if v and ((not e) or tonumber(e) > now) then\n"
              "      local off = tonumber(string.match(v, '^(%d+):'))\n"
              "      if max == 0 or off <= max then\n"
              "        out[#out + 1] = k\n"
              "        out[#out + 1] = v\n"
              "        n = n + 1\n"
              "        last = k\n"
              "        if n == limit then break end\n"
              "      end\n"
              "    end\n"
              "  end\n"
              "end\n"
              "if last and #redis.call('zrangebylex', KEYS[2], '(' .. last, '+', 'LIMIT', 0, 1) > 0 then out[1] = last end\n"
              "return out\n"};

/* KEYS: keys, expire. Returns the number of live keys. */
static struct redis_script count_script = {
    .name = "map_count",
    .source = MAP_NOW_LUA
              "return redis.call('zcard', KEYS[1]) - redis.call('zcount', KEYS[2], '-inf', now)\n"};

/* KEYS: state, keys, expire, map meta, stream, stream meta. ARGV: a new epoch. The stream's meta gets
 * the new epoch and offset 0: the next change is offset 1 of a new epoch. */
static struct redis_script clear_script = {
    .name = "map_clear",
    .source = "redis.call('del', KEYS[1], KEYS[2], KEYS[3], KEYS[5])\n"
              "local ttl = redis.call('hget', KEYS[6], 't') or redis.call('hget', KEYS[4], 'mttl') or '0'\n"
              "redis.call('del', KEYS[6])\n"
              "redis.call('hset', KEYS[6], 'e', ARGV[1], 's', 0, 't', ttl)\n"
              "if ttl ~= '0' then redis.call('pexpire', KEYS[6], ttl) end\n"
              "return 0\n"};

/* KEYS: expiring. ARGV: prefix, channels per sweep, keys per channel, a fresh seed. The removal of key K is the packed
 * Publication {key (field 11) = K, removed (field 12) = true}. Returns how many keys it removed. */
static struct redis_script sweep_script = {
    .name = "map_sweep",
    .source = MAP_COMMON_LUA
    "local function varint(n)\n"
    "  local s = ''\n"
    "  while n >= 128 do s = s .. string.char(n % 128 + 128); n = math.floor(n / 128) end\n"
    "  return s .. string.char(n)\n"
    "end\n"
    "local removed = 0\n"
    "local p = ARGV[1]\n"
    "for _, ch in ipairs(redis.call('zrangebyscore', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do\n"
    "  local state, keys, exp = p .. '.map.state.' .. ch, p .. '.map.keys.' .. ch, p .. '.map.expire.' .. ch\n"
    "  local m = redis.call('hmget', p .. '.map.meta.' .. ch, 'size', 'ttl', 'mttl', 'pubsub')\n"
    "  local function fresh_epoch() return derived_epoch(p .. '.epoch.seed', ARGV[4], ch) end\n"
    "  for _, k in ipairs(redis.call('zrangebyscore', exp, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))) do\n"
    "    redis.call('hdel', state, k)\n"
    "    redis.call('zrem', keys, k)\n"
    "    redis.call('zrem', exp, k)\n"
    "    removed = removed + 1\n"
    "    if m[4] then\n"
    "      append(p .. '.stream.' .. ch, p .. '.stream.meta.' .. ch, m[1] or '0', m[2] or '0', m[3] or '0', m[4],\n"
    "             '\\90' .. varint(#k) .. k .. '\\96\\1', fresh_epoch)\n"
    "    end\n"
    "  end\n"
    "  local first = redis.call('zrange', exp, 0, 0, 'WITHSCORES')\n"
    "  if #first == 2 then redis.call('zadd', KEYS[1], first[2], ch) else redis.call('zrem', KEYS[1], ch) end\n"
    "end\n"
    "return removed\n"};

/* "<prefix>.epoch.seed", as broker_redis_history.c names it. */
static size_t seed_key(const struct redis_broker *rb, char *buf) {
  int n = snprintf(buf, RB_KEY_MAX, "%s.epoch.seed", rb->prefix);
  return n > 0 && n < RB_KEY_MAX ? (size_t)n : 0;
}

/* "<prefix>.map.expiring" (one per shard). */
static size_t expiring_key(const struct redis_broker *rb, char *buf) {
  int n = snprintf(buf, RB_KEY_MAX, "%s.map.expiring", rb->prefix);
  return n > 0 && n < RB_KEY_MAX ? (size_t)n : 0;
}

/* The reply of the change script into RES. */
static int parse_change(struct rb_call *c, const redisReply *r) {
  struct map_publish_result *res = c->out;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
      r->element[1]->type != REDIS_REPLY_STRING)
    return -BROKER_EUNAVAILABLE;
  static const char *const reasons[] = {"key_exists", "key_not_found"};
  if (r->element[0]->integer < 0) {
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
      if (strcmp(r->element[1]->str, reasons[i]) == 0) res->suppress_reason = reasons[i];
    if (res->suppress_reason == NULL) return -BROKER_EUNAVAILABLE;
    return 0;
  }
  res->pos.offset = (uint64_t)r->element[0]->integer;
  snprintf(res->pos.epoch, sizeof res->pos.epoch, "%.*s", (int)r->element[1]->len, r->element[1]->str);
  return 0;
}

int rb_map_publish(struct broker *b, const char *channel, Protocol__Publication *pub,
                   const struct map_publish_options *opts, struct map_publish_result *res) {
  struct redis_broker *rb = (struct redis_broker *)b;
  *res = (struct map_publish_result){0};
  char k[8][RB_KEY_MAX];
  static const char *const kinds[] = {"stream", "stream.meta", NULL, "map.state", "map.keys", "map.expire", "map.meta"};
  size_t kl[8];
  for (int i = 0; i < 7; i++) {
    kl[i] = kinds[i] ? rb_key(rb, kinds[i], channel, k[i]) : seed_key(rb, k[i]);
    if (kl[i] == 0) return -BROKER_EBADREQUEST;
  }
  kl[7] = expiring_key(rb, k[7]);
  pub->offset = 0;
  size_t len = protocol__publication__get_packed_size(pub);
  uint8_t *payload = malloc(len ? len : 1);
  if (payload == NULL) return -BROKER_ENOMEM;
  protocol__publication__pack(pub, payload);
  char pubsub[RB_KEY_MAX], size[24], ttl[24], meta_ttl[24], key_ttl[24], state_ttl[24], mode[8],
      seed[ID_UUID_LEN + 1];
  size_t pl = rb_key(rb, "client", channel, pubsub);
  snprintf(size, sizeof size, "%zu", opts->stream ? opts->stream_size : 0);
  snprintf(ttl, sizeof ttl, "%" PRIu64, opts->stream ? opts->stream_ttl_ms : 0);
  snprintf(meta_ttl, sizeof meta_ttl, "%" PRIu64, opts->stream ? opts->meta_ttl_ms : 0);
  snprintf(key_ttl, sizeof key_ttl, "%" PRIu64, opts->key_ttl_ms);
  /* the state's keys outlive their last write by the epoch's life (stream) or the keys' own (ephemeral);
   * keys that never expire keep them for good */
  snprintf(state_ttl, sizeof state_ttl, "%" PRIu64, opts->key_ttl_ms == 0 ? 0 : opts->stream ? opts->meta_ttl_ms : opts->key_ttl_ms);
  snprintf(mode, sizeof mode, "%d", opts->key_mode);
  if (id_new_uuid(seed) != 0) snprintf(seed, sizeof seed, "%llx", (unsigned long long)id_random_below(~0UL));
  const char *removed = pub->removed ? "1" : "0";
  const char *values[20] = {k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], (const char *)payload, pub->key,
                            removed, mode, size, ttl, pubsub, meta_ttl, seed, channel, key_ttl, state_ttl};
  size_t lens[20] = {kl[0], kl[1], kl[2], kl[3], kl[4], kl[5], kl[6], kl[7], len, strlen(pub->key), 1,
                     strlen(mode), strlen(size), strlen(ttl), pl, strlen(meta_ttl), strlen(seed), strlen(channel),
                     strlen(key_ttl), strlen(state_ttl)};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = &change_script, .nkeys = 8, .argc = 20,
                      .argv = values, .lens = lens, .parse = parse_change, .out = res};
  int rc = pl == 0 ? -BROKER_EBADREQUEST : rb_call_run(rb, &c);
  free(payload);
  pub->offset = rc == 0 ? res->pos.offset : 0;
  return rc;
}

/* {cursor, key, value, ...} into the page: values are "<offset>:" + packed Publication. */
static int parse_page(struct rb_call *c, const redisReply *r) {
  struct map_page *out = c->out;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING)
    return -BROKER_EUNAVAILABLE;
  size_t n = (r->elements - 1) / 2;
  if (n && (out->entries = calloc(n, sizeof *out->entries)) == NULL) return -BROKER_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const redisReply *v = r->element[2 + 2 * i];
    if (v->type != REDIS_REPLY_STRING) continue;
    const char *colon = memchr(v->str, ':', v->len);
    if (colon == NULL) continue;
    size_t skip = (size_t)(colon - v->str) + 1;
    Protocol__Publication *p = protocol__publication__unpack(NULL, v->len - skip, (const uint8_t *)colon + 1);
    if (p == NULL) continue; /* not ours: skipped rather than failing the page */
    p->offset = strtoull(v->str, NULL, 10);
    out->entries[out->n++] = p;
  }
  if (r->element[0]->len && (out->next_cursor = strndup(r->element[0]->str, r->element[0]->len)) == NULL)
    return -BROKER_ENOMEM;
  return 0;
}

int rb_map_page(struct broker *b, const char *channel, const char *cursor, size_t limit, uint64_t max_offset,
                struct map_page *out) {
  struct redis_broker *rb = (struct redis_broker *)b;
  *out = (struct map_page){0};
  char state[RB_KEY_MAX], keys[RB_KEY_MAX], exp[RB_KEY_MAX], lim[24], max[24];
  size_t sl = rb_key(rb, "map.state", channel, state), kl = rb_key(rb, "map.keys", channel, keys),
         el = rb_key(rb, "map.expire", channel, exp);
  if (sl == 0 || kl == 0 || el == 0) return -BROKER_EBADREQUEST;
  snprintf(lim, sizeof lim, "%zu", limit);
  snprintf(max, sizeof max, "%" PRIu64, max_offset);
  const char *values[6] = {state, keys, exp, cursor, lim, max};
  const size_t lens[6] = {sl, kl, el, strlen(cursor), strlen(lim), strlen(max)};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = &page_script, .nkeys = 3, .argc = 6,
                      .argv = values, .lens = lens, .parse = parse_page, .out = out};
  int rc = limit == 0 ? 0 : rb_call_run(rb, &c);
  if (rc != 0) map_page_cleanup(out);
  return rc;
}

static int parse_count(struct rb_call *c, const redisReply *r) {
  if (r->type != REDIS_REPLY_INTEGER) return -BROKER_EUNAVAILABLE;
  *(size_t *)c->out = r->integer > 0 ? (size_t)r->integer : 0;
  return 0;
}

size_t rb_map_count(struct broker *b, const char *channel) {
  struct redis_broker *rb = (struct redis_broker *)b;
  char keys[RB_KEY_MAX], exp[RB_KEY_MAX];
  size_t kl = rb_key(rb, "map.keys", channel, keys), el = rb_key(rb, "map.expire", channel, exp), n = 0;
  const char *values[2] = {keys, exp};
  const size_t lens[2] = {kl, el};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = &count_script, .nkeys = 2, .argc = 2,
                      .argv = values, .lens = lens, .parse = parse_count, .out = &n};
  if (kl == 0 || el == 0 || rb_call_run(rb, &c) != 0) return 0;
  return n;
}

int rb_map_clear(struct broker *b, const char *channel) {
  struct redis_broker *rb = (struct redis_broker *)b;
  static const char *const kinds[] = {"map.state", "map.keys", "map.expire", "map.meta", "stream", "stream.meta"};
  char k[6][RB_KEY_MAX];
  size_t kl[6];
  for (int i = 0; i < 6; i++)
    if ((kl[i] = rb_key(rb, kinds[i], channel, k[i])) == 0) return -BROKER_EBADREQUEST;
  char epoch[9];
  static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (int i = 0; i < 8; i++) epoch[i] = letters[id_random_below(52)];
  epoch[8] = '\0';
  const char *values[7] = {k[0], k[1], k[2], k[3], k[4], k[5], epoch};
  const size_t lens[7] = {kl[0], kl[1], kl[2], kl[3], kl[4], kl[5], 8};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = &clear_script, .nkeys = 6, .argc = 7,
                      .argv = values, .lens = lens};
  return rb_call_run(rb, &c);
}

/* ---- the sweep (loop thread) ---- */

static void sweep_done(void *arg, const redisReply *reply) {
  (void)arg;
  if (reply && reply->type == REDIS_REPLY_ERROR) log_warn("redis: map key expiry: %s", reply->str);
  if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
    log_debug("redis: %lld expired map keys removed", reply->integer);
}

static void sweep_fire(struct evloop_timer *t) {
  struct redis_broker *rb = t->arg;
  char expiring[RB_KEY_MAX];
  size_t el = expiring_key(rb, expiring);
  char seed[ID_UUID_LEN + 1];
  if (id_new_uuid(seed) != 0) snprintf(seed, sizeof seed, "%llx", (unsigned long long)id_random_below(~0UL));
  const char *values[5] = {expiring, rb->prefix, SWEEP_CHANNELS, SWEEP_KEYS, seed};
  const size_t lens[5] = {el, strlen(rb->prefix), strlen(SWEEP_CHANNELS), strlen(SWEEP_KEYS), strlen(seed)};
  for (size_t i = 0; el && i < rb->nshards; i++)
    if (redis_conn_up(rb->shards[i].cmd))
      redis_script_call(rb->shards[i].cmd, &sweep_script, 1, 4, values, lens, sweep_done, NULL);
  evloop_timer_arm(rb->loop, &rb->map_sweep, SWEEP_INTERVAL_MS);
}

static void sweep_start(void *arg) {
  struct redis_broker *rb = arg;
  evloop_timer_arm(rb->loop, &rb->map_sweep, SWEEP_INTERVAL_MS);
}

int rb_map_init(struct redis_broker *rb) {
  rb->map_sweep = (struct evloop_timer){.fn = sweep_fire, .arg = rb};
  return redis_script_init(&change_script) | redis_script_init(&page_script) | redis_script_init(&count_script) |
         redis_script_init(&clear_script) | redis_script_init(&sweep_script);
}

int rb_map_start(struct redis_broker *rb) { return evloop_post(rb->loop, sweep_start, rb); }
