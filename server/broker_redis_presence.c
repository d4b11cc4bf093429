/* broker_redis_presence: presence on Redis. Per channel a hash "<prefix>.presence.data.<ch>" (client id ⇒
 * packed ClientInfo) and a sorted set "<prefix>.presence.expire.<ch>" (client id, score = when the entry
 * expires, in Redis's own clock so that nodes' clocks need not agree). An entry lives presence_ttl after
 * it was last added; reads drop expired entries first, so the entries of a node that died go away by
 * themselves. This node keeps a copy of each entry it added (until it removes it) and writes them all
 * again every presence_ttl / 2.2 from the loop thread, pipelined, so a live node's entries never expire
 * (Centrifugo: 60 s and 27 s). Results have the memory engine's shape (presence.h: one allocation per
 * entry). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_redis_internal.h"
#include "log.h"
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

/* This node's entries: "<channel>\x1f<client id>" ⇒ struct mine. Channel names hold no control
 * characters (channel_name_valid), so the separator cannot be forged. */
struct mine {
  size_t channel_len, len;
  uint8_t info[]; /* packed ClientInfo */
};

struct rb_presence {
  pthread_mutex_t lock;
  struct strmap *entries;
  struct evloop_timer refresh; /* loop thread */
};

static void mine_key(const char *channel, const char *client, char *buf, size_t len) {
  snprintf(buf, len, "%s\x1f%s", channel, client);
}

static void refresh_done(void *arg, const redisReply *reply) {
  (void)arg;
  if (reply && reply->type == REDIS_REPLY_ERROR) log_warn("redis: presence refresh: %s", reply->str);
}

struct refresh_walk {
  struct redis_broker *rb;
  char ttl[24];
  size_t sent;
};

static void refresh_cb(const char *key, void *value, void *arg) {
  struct mine *m = value;
  struct refresh_walk *w = arg;
  char channel[RB_KEY_MAX], data[RB_KEY_MAX], expire[RB_KEY_MAX];
  snprintf(channel, sizeof channel, "%.*s", (int)m->channel_len, key);
  const char *client = key + m->channel_len + 1;
  size_t dl = rb_key(w->rb, "presence.data", channel, data), el = rb_key(w->rb, "presence.expire", channel, expire);
  if (dl == 0 || el == 0) return;
  const char *values[5] = {data, expire, client, (const char *)m->info, w->ttl};
  const size_t lens[5] = {dl, el, strlen(client), m->len, strlen(w->ttl)};
  struct redis_conn *c = w->rb->shards[rb_shard_of(w->rb, channel)].cmd;
  if (redis_conn_up(c) && redis_script_call(c, &add_script, 2, 3, values, lens, refresh_done, NULL) == 0) w->sent++;
}

static void refresh_fire(struct evloop_timer *t) {
  struct redis_broker *rb = t->arg;
  struct rb_presence *p = rb->presence;
  struct refresh_walk w = {.rb = rb};
  snprintf(w.ttl, sizeof w.ttl, "%" PRIu64, rb->presence_ttl_ms);
  pthread_mutex_lock(&p->lock); /* held only while commands are formatted into the output buffers */
  strmap_foreach(p->entries, refresh_cb, &w);
  pthread_mutex_unlock(&p->lock);
  if (w.sent) log_debug("redis: %zu presence entries refreshed", w.sent);
  evloop_timer_arm(rb->loop, &p->refresh, rb->presence_ttl_ms * 10 / 22);
}

static void refresh_start(void *arg) {
  struct redis_broker *rb = arg;
  evloop_timer_arm(rb->loop, &rb->presence->refresh, rb->presence_ttl_ms * 10 / 22);
}

int rb_presence_init(struct redis_broker *rb) {
  struct rb_presence *p = calloc(1, sizeof *p);
  if (p == NULL) return -1;
  rb->presence = p;
  pthread_mutex_init(&p->lock, NULL);
  p->entries = strmap_new();
  p->refresh = (struct evloop_timer){.fn = refresh_fire, .arg = rb};
  if (p->entries == NULL) return -1;
  return redis_script_init(&add_script) | redis_script_init(&remove_script) | redis_script_init(&get_script);
}

int rb_presence_start(struct redis_broker *rb) { return evloop_post(rb->loop, refresh_start, rb); }

static void mine_free_cb(const char *key, void *value, void *arg) {
  (void)key, (void)arg;
  free(value);
}

void rb_presence_cleanup(struct redis_broker *rb) {
  struct rb_presence *p = rb->presence;
  if (p == NULL) return;
  if (p->entries) {
    strmap_foreach(p->entries, mine_free_cb, NULL);
    strmap_free(p->entries);
  }
  pthread_mutex_destroy(&p->lock);
  free(p);
  rb->presence = NULL;
}

/* Keeps (INFO != NULL) or forgets this node's copy of CLIENT's entry in CHANNEL. */
static void remember(struct redis_broker *rb, const char *channel, const char *client, const uint8_t *info,
                     size_t len) {
  struct rb_presence *p = rb->presence;
  char key[2 * RB_KEY_MAX];
  mine_key(channel, client, key, sizeof key);
  struct mine *m = NULL;
  if (info) {
    m = malloc(sizeof *m + len);
    if (m == NULL) return; /* not refreshed: the entry lives its TTL */
    m->channel_len = strlen(channel);
    m->len = len;
    memcpy(m->info, info, len);
  }
  pthread_mutex_lock(&p->lock);
  struct mine *old = strmap_remove(p->entries, key);
  if (m && strmap_put(p->entries, key, m) != 0) {
    free(m);
    m = NULL;
  }
  pthread_mutex_unlock(&p->lock);
  free(old);
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
  if (rc == 0) remember(rb, channel, info->client, packed, len);
  free(packed);
  return rc;
}

int rb_presence_remove(struct broker *b, const char *channel, const char *client_id) {
  remember((struct redis_broker *)b, channel, client_id, NULL, 0);
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
