/* broker_redis: the multi-node engine on Redis (REDIS.md). This file builds it (one evloop thread, per
 * Redis instance a command connection and a PUB/SUB connection for channels, on the first one also a
 * PUB/SUB connection for the nodes' own messages), runs calls from other threads on that loop
 * (rb_call_run waits for the reply; rb_call_post does not, and bounds how many such calls are in
 * flight), picks the instance of a channel (jump consistent hash over FNV-1a 64, the same on every
 * node), and publishes join/leave events. History and publish are in broker_redis_history.c, presence in
 * broker_redis_presence.c, PUB/SUB interest and delivery in broker_redis_sub.c.
 *
 * A publication goes to Redis only; every node, the publishing one included, gets it back over PUB/SUB,
 * so all nodes see a channel's publications in Redis's order. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_redis_internal.h"
#include "client.pb-c.h"
#include "log.h"
#include "server.h"

/* ---- calls from other threads ---- */

static void call_reply(void *arg, const redisReply *reply) {
  struct rb_call *c = arg;
  int rc;
  if (reply == NULL) {
    rc = -BROKER_EUNAVAILABLE;
  } else if (reply->type == REDIS_REPLY_ERROR) {
    log_warn("redis: %s", reply->str);
    rc = -BROKER_EUNAVAILABLE;
  } else {
    rc = c->parse ? c->parse(c, reply) : 0;
  }
  pthread_mutex_lock(&c->lock);
  c->rc = rc;
  c->done = true;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

static void call_start(void *arg) {
  struct rb_call *c = arg;
  struct redis_conn *conn = c->rb->shards[c->shard].cmd;
  int rc = c->script ? redis_script_call(conn, c->script, c->nkeys, c->argc - c->nkeys, c->argv, c->lens,
                                         call_reply, c)
                     : redis_conn_command(conn, c->argc, (const char **)c->argv, c->lens, call_reply, c);
  if (rc != 0) call_reply(c, NULL); /* down: answer at once */
}

int rb_call_run(struct redis_broker *rb, struct rb_call *c) {
  c->rb = rb;
  c->done = false;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  if (evloop_post(rb->loop, call_start, c) != 0) {
    c->rc = -BROKER_EUNAVAILABLE;
  } else {
    pthread_mutex_lock(&c->lock);
    while (!c->done) pthread_cond_wait(&c->cond, &c->lock); /* bounded: every call is answered */
    pthread_mutex_unlock(&c->lock);
  }
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
  return c->rc;
}

/* ---- calls from other threads that do not wait ---- */

/* One posted call: a copy of its command's values (ARGV points into DATA), what to call with the reply,
 * and the bytes it holds against the bound (0 when unbounded). */
struct posted_call {
  struct redis_broker *rb;
  size_t shard;
  const struct redis_script *script;
  int nkeys, argc;
  const char **argv;
  size_t *lens;
  size_t charged;
  bool bounded;
  rb_posted_fn fn;
  void *arg;
  char data[];
};

static void posted_release(struct redis_broker *rb, bool bounded, size_t bytes) {
  if (!bounded) return;
  atomic_fetch_sub(&rb->posted, 1);
  atomic_fetch_sub(&rb->posted_bytes, bytes);
}

/* Takes a place in flight for BYTES, or says there is none (one call alone always gets one). */
static bool posted_admit(struct redis_broker *rb, size_t bytes) {
  size_t n = atomic_fetch_add(&rb->posted, 1);
  size_t held = atomic_fetch_add(&rb->posted_bytes, bytes);
  if (n == 0 || (n < RB_POSTED_MAX && held + bytes <= RB_POSTED_MAX_BYTES)) return true;
  posted_release(rb, true, bytes);
  return false;
}

static void posted_reply(void *arg, const redisReply *reply) {
  struct posted_call *pc = arg;
  int rc = 0;
  if (reply == NULL) {
    rc = -BROKER_EUNAVAILABLE;
  } else if (reply->type == REDIS_REPLY_ERROR) {
    log_warn("redis: %s", reply->str);
    rc = -BROKER_EUNAVAILABLE;
    reply = NULL;
  }
  posted_release(pc->rb, pc->bounded, pc->charged);
  pc->fn(pc->arg, rc, reply);
  free(pc);
}

static void posted_start(void *arg) {
  struct posted_call *pc = arg;
  struct redis_conn *conn = pc->rb->shards[pc->shard].cmd;
  int rc = pc->script ? redis_script_call(conn, pc->script, pc->nkeys, pc->argc - pc->nkeys,
                                          (const char *const *)pc->argv, pc->lens, posted_reply, pc)
                      : redis_conn_command(conn, pc->argc, pc->argv, pc->lens, posted_reply, pc);
  if (rc != 0) posted_reply(pc, NULL); /* down: answer at once */
}

void rb_call_post(struct redis_broker *rb, const struct rb_call *c, bool bounded, rb_posted_fn fn, void *arg) {
  size_t total = 0;
  for (int i = 0; i < c->argc; i++) total += c->lens[i];
  size_t arrays = (size_t)c->argc * (sizeof(char *) + sizeof(size_t));
  if (bounded && !posted_admit(rb, total)) {
    fn(arg, -BROKER_EUNAVAILABLE, NULL);
    return;
  }
  struct posted_call *pc = malloc(sizeof *pc + arrays + total);
  if (pc == NULL) goto refused;
  *pc = (struct posted_call){.rb = rb, .shard = c->shard, .script = c->script, .nkeys = c->nkeys,
                             .argc = c->argc, .charged = total, .bounded = bounded, .fn = fn, .arg = arg};
  pc->argv = (const char **)(void *)pc->data; /* the arrays first: DATA is aligned for pointers */
  pc->lens = (size_t *)(void *)(pc->data + (size_t)c->argc * sizeof(char *));
  char *p = pc->data + arrays;
  for (int i = 0; i < c->argc; i++) {
    memcpy(p, c->argv[i], c->lens[i]);
    pc->argv[i] = p;
    pc->lens[i] = c->lens[i];
    p += c->lens[i];
  }
  if (evloop_post(rb->loop, posted_start, pc) == 0) return;
  free(pc);
refused:
  posted_release(rb, bounded, total);
  fn(arg, -BROKER_EUNAVAILABLE, NULL);
}

/* ---- channels, keys, shards ---- */

static uint64_t fnv1a64(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* Lamping and Veach's jump consistent hash: KEY ⇒ [0, BUCKETS), moving few keys when BUCKETS grows. */
static size_t jump_hash(uint64_t key, size_t buckets) {
  int64_t b = -1, j = 0;
  while (j < (int64_t)buckets) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
  }
  return (size_t)b;
}

size_t rb_shard_of(const struct redis_broker *rb, const char *channel) {
  return rb->nshards == 1 ? 0 : jump_hash(fnv1a64(channel), rb->nshards);
}

size_t rb_key(const struct redis_broker *rb, const char *kind, const char *channel, char *buf) {
  int n = snprintf(buf, RB_KEY_MAX, "%s.%s.%s", rb->prefix, kind, channel);
  return n > 0 && n < RB_KEY_MAX ? (size_t)n : 0;
}

pthread_mutex_t *rb_stripe(struct redis_broker *rb, const char *channel) {
  return &rb->stripes[fnv1a64(channel) % RB_STRIPES];
}

/* ---- operations ---- */

static int rb_join_leave(struct broker *b, const char *channel, const Protocol__ClientInfo *info, int join) {
  struct redis_broker *rb = (struct redis_broker *)b;
  char pubsub[RB_KEY_MAX];
  size_t klen = rb_key(rb, "client", channel, pubsub);
  if (klen == 0) return -BROKER_EBADREQUEST;
  const char *prefix = join ? RB_PREFIX_JOIN : RB_PREFIX_LEAVE;
  size_t plen = strlen(prefix), len = protocol__client_info__get_packed_size(info);
  char *payload = malloc(plen + len);
  if (payload == NULL) return -BROKER_ENOMEM;
  memcpy(payload, prefix, plen);
  protocol__client_info__pack(info, (uint8_t *)payload + plen);
  const char *argv[3] = {"PUBLISH", pubsub, payload};
  const size_t lens[3] = {7, klen, plen + len};
  struct rb_call c = {.shard = rb_shard_of(rb, channel), .argc = 3, .argv = argv, .lens = lens};
  int rc = rb_call_run(rb, &c);
  free(payload);
  return rc;
}

static void rb_with_channel_locked(struct broker *b, const char *channel, void (*fn)(void *arg), void *arg) {
  struct redis_broker *rb = (struct redis_broker *)b;
  /* Publications from now on reach this node; whatever came before is in the history read under the
   * lock. When Redis is away the subscribe goes ahead: its history calls fail and say so. */
  rb_sub_ensure(rb, channel);
  pthread_mutex_t *lock = rb_stripe(rb, channel);
  pthread_mutex_lock(lock);
  fn(arg);
  pthread_mutex_unlock(lock);
}

/* Healthy while every instance's command connection is up (read without the loop: a flag's staleness
 * of one iteration does not matter to /health). */
static bool rb_healthy(struct broker *b) {
  struct redis_broker *rb = (struct redis_broker *)b;
  for (size_t i = 0; i < rb->nshards; i++)
    if (!atomic_load(&rb->shards[i].cmd_up)) return false;
  return true;
}

static void close_connections(void *arg) {
  struct redis_broker *rb = arg;
  for (size_t i = 0; i < rb->nshards; i++) {
    redis_conn_free(rb->shards[i].cmd);
    redis_conn_free(rb->shards[i].sub);
    redis_conn_free(rb->shards[i].ctl); /* NULL-safe: only shard 0 has one */
  }
}

/* Stop order: tell the others, stop the workers (they may wait for Redis through the loop), close the
 * connections on the loop, stop the loop, then free. */
static void rb_free(struct broker *b) {
  struct redis_broker *rb = (struct redis_broker *)b;
  rb_control_say_goodbye(rb);
  rb_control_stop(rb);
  rb_sub_stop(rb);
  if (rb->loop) {
    evloop_post(rb->loop, close_connections, rb);
    evloop_free(rb->loop);
  }
  rb_control_cleanup(rb);
  rb_sub_cleanup(rb);
  rb_presence_cleanup(rb);
  for (int i = 0; i < RB_STRIPES; i++) pthread_mutex_destroy(&rb->stripes[i]);
  free(rb->shards);
  free(rb->sentinels);
  free(rb);
}

static const struct broker_ops redis_ops = {
    .name = "redis",
    .calls_wait = true,
    .publish = rb_publish,
    .publish_async = rb_publish_async,
    .publish_join_leave = rb_join_leave,
    .with_channel_locked = rb_with_channel_locked,
    .history = rb_history,
    .recover = rb_recover,
    .position = rb_position,
    .history_remove = rb_history_remove,
    .map_publish = rb_map_publish,
    .map_page = rb_map_page,
    .map_count = rb_map_count,
    .map_clear = rb_map_clear,
    .presence_add = rb_presence_add,
    .presence_remove = rb_presence_remove,
    .presence_get = rb_presence_get,
    .presence_stats = rb_presence_stats,
    .node_subscribe = rb_node_subscribe,
    .node_unsubscribe = rb_node_unsubscribe,
    .route_emulation = rb_route_emulation,
    .broadcast_api = rb_broadcast_api,
    .survey_api = rb_survey_api,
    .foreach_node = rb_foreach_node,
    .healthy = rb_healthy,
    .free = rb_free,
};

struct open_task {
  struct redis_broker *rb;
  struct redis_addr *addrs;
  int rc;
  bool done;
  pthread_mutex_t lock;
  pthread_cond_t cond;
};

static void cmd_state(void *arg, bool up) {
  struct rb_shard *sh = arg;
  if (up) rb_history_on_up(sh); /* before anything else is queued on it */
  atomic_store(&sh->cmd_up, up);
  if (up && sh->index == 0) rb_control_on_cmd_up(sh->rb);
}

/* On the loop thread: one command and one PUB/SUB connection per instance. */
static void open_connections(void *arg) {
  struct open_task *t = arg;
  struct redis_broker *rb = t->rb;
  t->rc = 0;
  for (size_t i = 0; i < rb->nshards; i++) {
    struct rb_shard *sh = &rb->shards[i];
    struct redis_conn_options o = {.name = "redis", .addr = t->addrs[i], .connect_timeout_ms = rb->connect_timeout_ms,
                                   .io_timeout_ms = rb->io_timeout_ms, .sentinels = rb->sentinels,
                                   .nsentinels = rb->nsentinels, .master_name = rb->sentinel_master,
                                   .on_state = cmd_state, .arg = sh};
    sh->cmd = redis_conn_new(rb->loop, &o);
    o.name = "redis pubsub";
    o.subscriber = true;
    o.on_state = rb_sub_on_state;
    o.on_push = rb_sub_on_push;
    o.arg = sh;
    sh->sub = redis_conn_new(rb->loop, &o);
    if (sh->cmd == NULL || sh->sub == NULL) t->rc = -1;
    if (i > 0) continue;
    o.name = "redis control";
    o.on_state = rb_control_on_state;
    o.on_push = rb_control_on_push;
    o.arg = rb;
    if ((sh->ctl = redis_conn_new(rb->loop, &o)) == NULL) t->rc = -1;
  }
  pthread_mutex_lock(&t->lock);
  t->done = true;
  pthread_cond_signal(&t->cond);
  pthread_mutex_unlock(&t->lock);
}

static int start_loop(struct redis_broker *rb, struct redis_addr *addrs) {
  rb->loop = evloop_new("redis");
  if (rb->loop == NULL || evloop_start(rb->loop) != 0) return -1;
  struct open_task t = {.rb = rb, .addrs = addrs};
  pthread_mutex_init(&t.lock, NULL);
  pthread_cond_init(&t.cond, NULL);
  if (evloop_post(rb->loop, open_connections, &t) != 0) t.rc = -1, t.done = true;
  pthread_mutex_lock(&t.lock);
  while (!t.done) pthread_cond_wait(&t.cond, &t.lock);
  pthread_mutex_unlock(&t.lock);
  pthread_mutex_destroy(&t.lock);
  pthread_cond_destroy(&t.cond);
  return t.rc;
}

struct broker *broker_redis_new(struct server *srv, const struct broker_redis_options *o, char *err,
                                size_t errlen) {
  struct redis_broker *rb = calloc(1, sizeof *rb);
  struct redis_addr *addrs = calloc(o->naddresses ? o->naddresses : 1, sizeof *addrs);
  if (rb == NULL || addrs == NULL) goto oom;
  rb->base.ops = &redis_ops;
  rb->base.srv = srv;
  snprintf(rb->prefix, sizeof rb->prefix, "%s", o->prefix);
  rb->connect_timeout_ms = o->connect_timeout_ms;
  rb->io_timeout_ms = o->io_timeout_ms;
  rb->presence_ttl_ms = o->presence_ttl_ms;
  for (int i = 0; i < RB_STRIPES; i++) pthread_mutex_init(&rb->stripes[i], NULL);
  rb->nshards = o->nsentinels > 0 ? 1 : o->naddresses; /* Sentinel: one master (its replicas fail over) */
  if (o->nsentinels > 0) {
    rb->sentinels = calloc(o->nsentinels, sizeof *rb->sentinels);
    if (rb->sentinels == NULL) goto oom;
    for (size_t i = 0; i < o->nsentinels; i++) {
      if (redis_addr_parse(o->sentinels[i], &rb->sentinels[i], err, errlen) != 0) goto fail;
      if (!rb->sentinels[i].password[0] && o->sentinel_password)
        snprintf(rb->sentinels[i].password, sizeof rb->sentinels[i].password, "%s", o->sentinel_password);
    }
    rb->nsentinels = o->nsentinels;
    snprintf(rb->sentinel_master, sizeof rb->sentinel_master, "%s", o->sentinel_master);
  }
  rb->shards = calloc(rb->nshards, sizeof *rb->shards);
  if (rb->shards == NULL) goto oom;
  for (size_t i = 0; i < rb->nshards; i++) {
    rb->shards[i] = (struct rb_shard){.rb = rb, .index = i};
    if (redis_addr_parse(o->addresses[i], &addrs[i], err, errlen) != 0) goto fail;
    struct redis_addr *a = &addrs[i]; /* the URL's own login wins over the keys */
    if (!a->password[0] && o->password && o->password[0]) {
      snprintf(a->password, sizeof a->password, "%s", o->password);
      if (!a->user[0] && o->user) snprintf(a->user, sizeof a->user, "%s", o->user);
    }
    if (a->db == 0) a->db = o->db;
  }
  if (rb_history_init(rb) != 0 || rb_map_init(rb) != 0 || rb_presence_init(rb) != 0 || rb_sub_init(rb) != 0 ||
      rb_control_init(rb) != 0 || start_loop(rb, addrs) != 0 || rb_control_start(rb) != 0 ||
      rb_presence_start(rb) != 0 || rb_sub_start(rb) != 0 || rb_map_start(rb) != 0)
    goto oom;
  free(addrs);
  return &rb->base;
oom:
  snprintf(err, errlen, "redis engine: out of resources");
fail:
  free(addrs);
  if (rb) {
    if (rb->shards) rb_free(&rb->base);
    else free(rb);
  }
  return NULL;
}
