/* broker_redis_presence: presence on Redis. Per channel a hash "<prefix>.presence.data.<ch>" (client id ⇒
 * packed ClientInfo) and a sorted set "<prefix>.presence.expire.<ch>" (client id, score = when the entry
 * expires, in Redis's own clock so that nodes' clocks need not agree). An entry lives presence_ttl after
 * it was last added; reads drop expired entries first, so the entries of a node that died go away by
 * themselves. Results have the memory engine's shape (presence.h: one allocation per entry). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_redis_internal.h"
#include "presence.h"
#include "strmap.h"

static struct redis_script add_script = {
    .name = "presence_add",
    /* KEYS: data, expire. ARGV: client id, packed info, ttl ms. */
    .source = "local t = redis.call('time')\n"
              "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
              "redis.call('hset', KEYS[1], ARGV[1], ARGV[2])\n"
              "redis.call('zadd', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])\n"
              "redis.call('pexpire', KEYS[1], ARGV[3])\n"
              "redis.call('pexpire', KEYS[2], ARGV[3])\n"
              "return 0\n"};

static struct redis_script remove_script = {
    .name = "presence_remove",
    /* KEYS: data, expire. ARGV: client id. */
    .source = "redis.call('hdel', KEYS[1], ARGV[1])\n"
              "redis.call('zrem', KEYS[2], ARGV[1])\n"
              "return 0\n"};

static struct redis_script get_script = {
    .name = "presence_get",
    /* KEYS: data, expire. Returns HGETALL after dropping expired entries. */
    .source = "local t = redis.call('time')\n"
              "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
              "local expired = redis.call('zrangebyscore', KEYS[2], '-inf', now)\n"
              "for _, id in ipairs(expired) do redis.call('hdel', KEYS[1], id) end\n"
              "if #expired > 0 then redis.call('zremrangebyscore', KEYS[2], '-inf', now) end\n"
              "return redis.call('hgetall', KEYS[1])\n"};

int rb_presence_init(struct redis_broker *rb) {
  (void)rb;
  return redis_script_init(&add_script) | redis_script_init(&remove_script) | redis_script_init(&get_script);
}

/* Runs SCRIPT with CHANNEL's two keys and ARGS. */
static int run(struct redis_broker *rb, const struct redis_script *script, const char *channel, int nargs,
               const char *const *args, const size_t *arg_lens, int (*parse)(struct rb_call *, const redisReply *),
               void *out) {
  char data[RB_KEY_MAX], expire[RB_KEY_MAX];
  size_t dl = rb_key(rb, "presence.data", channel, data), el = rb_key(rb, "presence.expire", channel, expire);
  if (dl == 0 || el == 0) return -BROKER_EBADREQUEST;
  const char *values[5] = {data, expire};
  size_t lens[5] = {dl, el};
  for (int i = 0; i < nargs; i++) {
    values[2 + i] = args[i];
    lens[2 + i] = arg_lens[i];
  }
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .script = script, .nkeys = 2, .argc = 2 + nargs,
                      .argv = values, .lens = lens, .parse = parse, .out = out};
  return rb_call_run(rb, &c);
}

int rb_presence_add(struct broker *b, const char *channel, const Protocol__ClientInfo *info) {
  struct redis_broker *rb = (struct redis_broker *)b;
  if (info->client == NULL || info->client[0] == '\0') return -BROKER_EBADREQUEST;
  size_t len = protocol__client_info__get_packed_size(info);
  uint8_t *packed = malloc(len ? len : 1);
  if (packed == NULL) return -BROKER_ENOMEM;
  protocol__client_info__pack(info, packed);
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%" PRIu64, rb->presence_ttl_ms);
  const char *args[3] = {info->client, (const char *)packed, ttl};
  const size_t lens[3] = {strlen(info->client), len, strlen(ttl)};
  int rc = run(rb, &add_script, channel, 3, args, lens, NULL, NULL);
  free(packed);
  return rc;
}

int rb_presence_remove(struct broker *b, const char *channel, const char *client_id) {
  const char *args[1] = {client_id};
  const size_t lens[1] = {strlen(client_id)};
  return run((struct redis_broker *)b, &remove_script, channel, 1, args, lens, NULL, NULL);
}

struct get_out {
  struct presence_result *res; /* entries wanted (NULL: only counts) */
  size_t max;
  uint32_t clients, users;
};

/* HGETALL's flat [id, info, id, info, ...]: entries copied (up to MAX) and users counted. */
static int parse_get(struct rb_call *c, const redisReply *r) {
  struct get_out *g = c->out;
  if (r->type != REDIS_REPLY_ARRAY) return -BROKER_EUNAVAILABLE;
  size_t total = r->elements / 2, want = g->max > 0 && g->max < total ? g->max : total;
  struct strmap *users = strmap_new();
  if (users == NULL) return -BROKER_ENOMEM;
  if (g->res) {
    g->res->total = total;
    g->res->infos = want ? calloc(want, sizeof *g->res->infos) : NULL;
    if (want && g->res->infos == NULL) {
      strmap_free(users);
      return -BROKER_ENOMEM;
    }
  }
  int rc = 0;
  for (size_t i = 0; i < total && rc == 0; i++) {
    const redisReply *v = r->element[2 * i + 1];
    Protocol__ClientInfo *info = protocol__client_info__unpack(NULL, v->len, (const uint8_t *)v->str);
    if (info == NULL) continue;
    g->clients++;
    const char *user = info->user ? info->user : "";
    if (strmap_get(users, user) == NULL && strmap_put(users, user, (void *)1) == 0) g->users++;
    if (g->res && g->res->n < want) {
      Protocol__ClientInfo *copy = presence_info_copy(info);
      if (copy == NULL)
        rc = -BROKER_ENOMEM;
      else
        g->res->infos[g->res->n++] = copy;
    }
    protocol__client_info__free_unpacked(info, NULL);
  }
  strmap_free(users);
  return rc;
}

int rb_presence_get(struct broker *b, const char *channel, size_t max, struct presence_result *out) {
  memset(out, 0, sizeof *out);
  struct get_out g = {.res = out, .max = max};
  int rc = run((struct redis_broker *)b, &get_script, channel, 0, NULL, NULL, parse_get, &g);
  if (rc != 0) presence_result_cleanup(out);
  return rc;
}

int rb_presence_stats(struct broker *b, const char *channel, uint32_t *num_clients, uint32_t *num_users) {
  struct get_out g = {0};
  int rc = run((struct redis_broker *)b, &get_script, channel, 0, NULL, NULL, parse_get, &g);
  *num_clients = rc == 0 ? g.clients : 0;
  *num_users = rc == 0 ? g.users : 0;
  return rc;
}
