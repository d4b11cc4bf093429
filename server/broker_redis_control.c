/* broker_redis_control: the nodes of a cluster talking to each other (proto/control.proto) on
 * "<prefix>.control" (everyone) and "<prefix>.node.<id>" (one node), both on the first Redis instance,
 * on a PUB/SUB connection of their own (alive while our own heartbeats come back on it; three beats
 * missing and it is made again).
 *
 * - Heartbeats: every node says who it is and its counts every HEARTBEAT_MS; a node not heard from for
 *   NODE_TIMEOUT_MS is forgotten, and a stopping node says so (SHUTDOWN) so the others forget it at once.
 *   A node announces itself (a heartbeat marked hello) once both its connections are up and its control
 *   subscriptions are confirmed, and every node that hears a hello or a newcomer answers with a heartbeat
 *   of its own right away, so a node knows the cluster within a round trip of listening.
 * - Server API calls that act on sessions are broadcast and run by every node on its own sessions;
 *   surveys ask every known node and collect the answers until all came or SURVEY_TIMEOUT_MS.
 * - Emulation requests for a session on another node go to that node, which feeds them into the
 *   session and answers; the requester is called back (its HTTP request stays suspended meanwhile,
 *   so no thread waits) when the answer comes, or after EMULATION_TIMEOUT_MS.
 *
 * Threads: messages arrive on the loop thread, which only queues them, in one of CONTROL_LANES worker
 * threads (emulation requests by session, the rest in lane 0); the workers run them (they may block on
 * locks and on Redis). Replies are sent without waiting. The node table and the waiting calls have their own
 * mutex; requesters wait on their own condition variable. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_redis_internal.h"
#include "control.pb-c.h"
#include "hub.h"
#include "log.h"
#include "registry.h"
#include "sd_version.h"
#include "server.h"
#include "strmap.h"
#include "timer.h"

#define HEARTBEAT_MS 3000
#define NODE_TIMEOUT_MS 7000
#define SURVEY_TIMEOUT_MS 3000
#define EMULATION_TIMEOUT_MS 10000
#define CONTROL_QUEUE_MAX 100000

struct known_node {
  uint64_t seen_ms;
  Control__Node *info; /* protobuf-c unpacked */
};

/* A request waiting for answers: a survey (many) or an emulation (one). */
struct pending_call {
  struct pending_call *next;
  uint64_t id;
  size_t expected, got;
  uint32_t code;
  void (*fn)(void *arg, const char *answer, size_t len);
  void *arg;
  pthread_cond_t cond;
};

/* An emulation request routed to another node, waiting for that node's word (or its deadline). */
struct routed {
  struct routed *next;
  uint64_t id, deadline_ms;
  void (*done)(void *arg, int rc);
  void *arg;
};

struct control_msg {
  struct control_msg *next;
  size_t len;
  uint8_t data[];
};

/* One worker thread and its queue. Lane 0 runs everything but emulation requests, which go to the
 * other lanes by their session, so one session's requests keep their order while different sessions'
 * run side by side (each may wait for Redis). */
#define CONTROL_LANES 4
struct control_lane {
  struct rb_control *ctl;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct control_msg *head, **tail;
  size_t queued;
};

struct rb_control {
  struct redis_broker *rb;
  char control_channel[RB_KEY_MAX], node_channel[RB_KEY_MAX];
  struct evloop_timer heartbeat; /* loop thread */
  pthread_mutex_t lock;          /* nodes, pending, next_id */
  struct strmap *nodes;          /* uid ⇒ struct known_node */
  struct pending_call *pending;
  struct routed *routed;
  uint64_t next_id;
  struct evloop_timer routed_sweep; /* loop thread: routed requests past their deadline */
  atomic_uint_fast64_t self_seen_ms; /* our own last heartbeat came back on the control connection */
  bool listening;                    /* loop thread: the control subscriptions are confirmed */
  atomic_bool stopping;
  atomic_uint acks_owed; /* routed emulation requests whose commands still run on this node */
  struct control_lane lanes[CONTROL_LANES];
};

static struct rb_control *ctl_of(struct redis_broker *rb) { return rb->control; }

/* ---- sending ---- */

static int publish_raw(struct redis_broker *rb, const char *channel, const uint8_t *data, size_t len,
                       long long *receivers);

static int parse_receivers(struct rb_call *c, const redisReply *r) {
  if (c->out) *(long long *)c->out = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
  return 0;
}

/* PUBLISH from a thread other than the loop's; *RECEIVERS (may be NULL) gets Redis's count. */
static int publish_raw(struct redis_broker *rb, const char *channel, const uint8_t *data, size_t len,
                       long long *receivers) {
  const char *argv[3] = {"PUBLISH", channel, (const char *)data};
  const size_t lens[3] = {7, strlen(channel), len};
  struct rb_call c = {.shard = 0, .argc = 3, .argv = argv, .lens = lens, .parse = parse_receivers, .out = receivers};
  return rb_call_run(rb, &c);
}

/* Packs a Command of METHOD around the packed PARAMS. Returns a malloc'd buffer or NULL. */
static uint8_t *pack_command(struct redis_broker *rb, Control__Command__Method method, const uint8_t *params,
                             size_t plen, size_t *len) {
  Control__Command cmd = CONTROL__COMMAND__INIT;
  cmd.from = rb->base.srv->node_id;
  cmd.method = method;
  cmd.params = (ProtobufCBinaryData){plen, (uint8_t *)params};
  *len = control__command__get_packed_size(&cmd);
  uint8_t *buf = malloc(*len ? *len : 1);
  if (buf) control__command__pack(&cmd, buf);
  return buf;
}

static int send_command(struct redis_broker *rb, const char *channel, Control__Command__Method method,
                        const ProtobufCMessage *params, long long *receivers) {
  size_t plen = params ? protobuf_c_message_get_packed_size(params) : 0, len;
  uint8_t *p = malloc(plen ? plen : 1);
  if (p == NULL) return -BROKER_ENOMEM;
  if (params) protobuf_c_message_pack(params, p);
  uint8_t *buf = pack_command(rb, method, p, plen, &len);
  free(p);
  if (buf == NULL) return -BROKER_ENOMEM;
  int rc = publish_raw(rb, channel, buf, len, receivers);
  free(buf);
  return rc;
}

static void node_channel_of(struct redis_broker *rb, const char *uid, char *buf) { rb_key(rb, "node", uid, buf); }

/* A PUBLISH handed to the loop without waiting for it (its reply goes to FN, which may be NULL). */
struct async_publish {
  struct redis_broker *rb;
  redis_reply_fn fn;
  void *arg;
  size_t len;
  char channel[RB_KEY_MAX];
  uint8_t data[];
};

static void async_publish_run(void *arg) {
  struct async_publish *ap = arg;
  const char *argv[3] = {"PUBLISH", ap->channel, (const char *)ap->data};
  const size_t lens[3] = {7, strlen(ap->channel), ap->len};
  if (redis_conn_command(ap->rb->shards[0].cmd, 3, argv, lens, ap->fn, ap->arg) != 0 && ap->fn) ap->fn(ap->arg, NULL);
  free(ap);
}

/* Sends a Command of METHOD around PARAMS to CHANNEL without waiting. FN(ARG, reply) is called on the
 * loop thread with the PUBLISH's reply (NULL: not sent), unless this returns -1 (then never). */
static int send_command_async(struct redis_broker *rb, const char *channel, Control__Command__Method method,
                              const ProtobufCMessage *params, redis_reply_fn fn, void *arg) {
  size_t plen = params ? protobuf_c_message_get_packed_size(params) : 0, len;
  uint8_t *p = malloc(plen ? plen : 1);
  if (p == NULL) return -1;
  if (params) protobuf_c_message_pack(params, p);
  uint8_t *buf = pack_command(rb, method, p, plen, &len);
  free(p);
  struct async_publish *ap = buf ? malloc(sizeof *ap + len) : NULL;
  if (ap == NULL) {
    free(buf);
    return -1;
  }
  ap->rb = rb;
  ap->fn = fn;
  ap->arg = arg;
  ap->len = len;
  snprintf(ap->channel, sizeof ap->channel, "%s", channel);
  memcpy(ap->data, buf, len);
  free(buf);
  if (evloop_post(rb->loop, async_publish_run, ap) != 0) {
    free(ap);
    return -1;
  }
  return 0;
}

/* ---- heartbeats (loop thread) ---- */

static void self_info(struct redis_broker *rb, Control__Node *n, struct registry_counts *rc) {
  struct server *srv = rb->base.srv;
  if (registry_counts(srv->registry, rc) != 0) memset(rc, 0, sizeof *rc);
  n->uid = srv->node_id;
  n->name = (char *)srv->boot_cfg->name;
  n->version = SD_VERSION;
  n->num_clients = (uint32_t)rc->sessions;
  n->num_users = (uint32_t)rc->users;
  n->num_channels = (uint32_t)hub_channel_count(srv->hub);
  n->num_subs = (uint32_t)rc->subscriptions;
  n->uptime = (uint32_t)((timer_now_ms() - srv->started_ms) / 1000);
}

/* Sends this node's heartbeat from the loop thread (no waiting for the reply); HELLO asks every node
 * that hears it to answer with its own. */
static void heartbeat_send(struct redis_broker *rb, bool hello) {
  struct rb_control *ctl = ctl_of(rb);
  struct rb_shard *sh = &rb->shards[0];
  if (!redis_conn_up(sh->cmd)) return;
  Control__Node n = CONTROL__NODE__INIT;
  struct registry_counts rc;
  self_info(rb, &n, &rc);
  n.hello = hello;
  size_t plen = control__node__get_packed_size(&n), len;
  uint8_t *p = malloc(plen ? plen : 1);
  if (p == NULL) return;
  control__node__pack(&n, p);
  uint8_t *buf = pack_command(rb, CONTROL__COMMAND__METHOD__NODE, p, plen, &len);
  free(p);
  if (buf == NULL) return;
  const char *argv[3] = {"PUBLISH", ctl->control_channel, (const char *)buf};
  const size_t lens[3] = {7, strlen(ctl->control_channel), len};
  redis_conn_command(sh->cmd, 3, argv, lens, NULL, NULL);
  free(buf);
}

struct expire_walk {
  uint64_t now;
  const char *gone[64];
  size_t n;
};

static void expire_cb(const char *key, void *value, void *arg) {
  struct known_node *kn = value;
  struct expire_walk *w = arg;
  if (w->now - kn->seen_ms > NODE_TIMEOUT_MS && w->n < 64) w->gone[w->n++] = key;
}

static void forget_node(struct rb_control *ctl, const char *uid) { /* ctl->lock held */
  struct known_node *kn = strmap_remove(ctl->nodes, uid);
  if (kn == NULL) return;
  log_info("redis: node %s left the cluster", kn->info->uid);
  control__node__free_unpacked(kn->info, NULL);
  free(kn);
}

static void heartbeat_fire(struct evloop_timer *t) {
  struct redis_broker *rb = t->arg;
  struct rb_control *ctl = ctl_of(rb);
  struct redis_conn *cc = rb->shards[0].ctl;
  if (redis_conn_up(cc) && redis_conn_up(rb->shards[0].cmd) &&
      timer_now_ms() - atomic_load(&ctl->self_seen_ms) > 3 * HEARTBEAT_MS + rb->io_timeout_ms)
    redis_conn_reset(cc, "control connection silent: our own heartbeats do not come back");
  heartbeat_send(rb, false);
  pthread_mutex_lock(&ctl->lock);
  struct expire_walk w = {.now = timer_now_ms()};
  strmap_foreach(ctl->nodes, expire_cb, &w);
  char gone[64][ID_UUID_LEN + 1];
  for (size_t i = 0; i < w.n; i++) snprintf(gone[i], sizeof gone[i], "%s", w.gone[i]);
  for (size_t i = 0; i < w.n; i++) forget_node(ctl, gone[i]);
  pthread_mutex_unlock(&ctl->lock);
  evloop_timer_arm(rb->loop, &ctl->heartbeat, HEARTBEAT_MS);
}

static void heartbeat_now(void *arg) { heartbeat_send(arg, false); }

/* ---- receiving (loop thread: queue; worker: run) ---- */

/* The lane a message runs in: an emulation request's by its session, everything else lane 0. */
static size_t lane_of(const char *data, size_t len) {
  Control__Command *cmd = control__command__unpack(NULL, len, (const uint8_t *)data);
  size_t lane = 0;
  if (cmd && cmd->method == CONTROL__COMMAND__METHOD__EMULATION) {
    Control__Emulation *e = control__emulation__unpack(NULL, cmd->params.len, cmd->params.data);
    if (e) {
      uint64_t h = 1469598103934665603ULL; /* FNV-1a: spreading sessions, not a defence */
      for (const char *q = e->session; *q; q++) h = (h ^ (unsigned char)*q) * 1099511628211ULL;
      lane = 1 + (size_t)(h % (CONTROL_LANES - 1));
      control__emulation__free_unpacked(e, NULL);
    }
  }
  if (cmd) control__command__free_unpacked(cmd, NULL);
  return lane;
}

void rb_control_on_message(struct redis_broker *rb, const char *data, size_t len) {
  struct rb_control *ctl = ctl_of(rb);
  struct control_lane *ln = &ctl->lanes[lane_of(data, len)];
  struct control_msg *m = malloc(sizeof *m + len);
  if (m == NULL) return;
  m->next = NULL;
  m->len = len;
  memcpy(m->data, data, len);
  pthread_mutex_lock(&ln->lock);
  if (ln->queued >= CONTROL_QUEUE_MAX) {
    pthread_mutex_unlock(&ln->lock);
    free(m);
    return;
  }
  *ln->tail = m;
  ln->tail = &m->next;
  if (ln->queued++ == 0) pthread_cond_signal(&ln->cond);
  pthread_mutex_unlock(&ln->lock);
}

/* The answer to the last control SUBSCRIBE: we hear the cluster now, so we say hello (if the command
 * connection is up already; otherwise rb_control_on_cmd_up does). */
static void subscribed(void *arg, const redisReply *reply) {
  struct redis_broker *rb = arg;
  if (reply == NULL || reply->type == REDIS_REPLY_ERROR) return; /* dropped or refused: the next up retries */
  ctl_of(rb)->listening = true;
  heartbeat_send(rb, true);
}

/* The control connection (a PUB/SUB connection of its own on the first Redis, so that heavy channel
 * traffic never delays heartbeats or routed requests) came up: subscribe; hello once confirmed. */
void rb_control_on_state(void *arg, bool up) {
  struct redis_broker *rb = arg;
  struct rb_control *ctl = ctl_of(rb);
  ctl->listening = false;
  if (!up) return;
  atomic_store(&ctl->self_seen_ms, timer_now_ms());
  const char *chans[2] = {ctl->control_channel, ctl->node_channel};
  for (int i = 0; i < 2; i++) {
    const char *argv[2] = {"SUBSCRIBE", chans[i]};
    redis_conn_command(rb->shards[0].ctl, 2, argv, NULL, i == 1 ? subscribed : NULL, i == 1 ? rb : NULL);
  }
}

void rb_control_on_cmd_up(struct redis_broker *rb) {
  if (ctl_of(rb)->listening) heartbeat_send(rb, true);
}

void rb_control_on_push(void *arg, const redisReply *push) {
  const redisReply *payload = push->element[push->elements - 1];
  if (payload->type == REDIS_REPLY_STRING) rb_control_on_message(arg, payload->str, payload->len);
}

static void on_node(struct redis_broker *rb, const Control__Command *cmd) {
  struct rb_control *ctl = ctl_of(rb);
  Control__Node *info = control__node__unpack(NULL, cmd->params.len, cmd->params.data);
  if (info == NULL || strcmp(info->uid, cmd->from) != 0 || strlen(info->uid) > ID_UUID_LEN) {
    if (info) control__node__free_unpacked(info, NULL);
    return;
  }
  pthread_mutex_lock(&ctl->lock);
  struct known_node *kn = strmap_get(ctl->nodes, info->uid);
  bool fresh = kn == NULL;
  if (fresh) {
    kn = calloc(1, sizeof *kn);
    if (kn == NULL || strmap_put(ctl->nodes, info->uid, kn) != 0) {
      free(kn);
      pthread_mutex_unlock(&ctl->lock);
      control__node__free_unpacked(info, NULL);
      return;
    }
    log_info("redis: node %s joined the cluster", info->uid);
  } else {
    control__node__free_unpacked(kn->info, NULL);
  }
  kn->info = info;
  kn->seen_ms = timer_now_ms();
  bool answer = fresh || info->hello; /* info belongs to the table once the lock is let go */
  pthread_mutex_unlock(&ctl->lock);
  if (answer) evloop_post(rb->loop, heartbeat_now, rb); /* the newcomer learns of us at once */
}

/* The pending call ID (ctl->lock held), or NULL. */
static struct pending_call *pending_find(struct rb_control *ctl, uint64_t id) {
  for (struct pending_call *p = ctl->pending; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

/* Takes the routed request ID out of the list (NULL: answered or expired already). */
static struct routed *routed_take(struct rb_control *ctl, uint64_t id) {
  pthread_mutex_lock(&ctl->lock);
  struct routed *r = NULL;
  for (struct routed **pp = &ctl->routed; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id) {
      r = *pp;
      *pp = r->next;
      break;
    }
  pthread_mutex_unlock(&ctl->lock);
  return r;
}

/* Tells the requester of R how it went and forgets R. */
static void routed_finish(struct routed *r, int rc) {
  r->done(r->arg, rc);
  free(r);
}

static void on_reply(struct redis_broker *rb, const Control__Command *cmd) {
  struct rb_control *ctl = ctl_of(rb);
  Control__Reply *r = control__reply__unpack(NULL, cmd->params.len, cmd->params.data);
  if (r == NULL) return;
  if (cmd->method == CONTROL__COMMAND__METHOD__EMULATION_REPLY) {
    struct routed *rt = routed_take(ctl, r->id);
    if (rt) routed_finish(rt, 0); /* ran there (or no such session there: 204 like a local one) */
    control__reply__free_unpacked(r, NULL);
    return;
  }
  pthread_mutex_lock(&ctl->lock);
  struct pending_call *p = pending_find(ctl, r->id);
  if (p && p->got < p->expected) {
    p->got++;
    p->code = r->code;
    if (p->fn && r->code == 0) p->fn(p->arg, (const char *)r->data.data, r->data.len); /* under the lock: the
                                                                                 requester is waiting */
    pthread_cond_signal(&p->cond);
  }
  pthread_mutex_unlock(&ctl->lock);
  control__reply__free_unpacked(r, NULL);
}

static void reply_to(struct redis_broker *rb, const char *node, uint64_t id, uint32_t code, char *data, size_t len,
                     Control__Command__Method method) {
  Control__Reply r = CONTROL__REPLY__INIT;
  r.id = id;
  r.code = code;
  r.data = (ProtobufCBinaryData){len, (uint8_t *)data};
  char channel[RB_KEY_MAX];
  node_channel_of(rb, node, channel);
  send_command_async(rb, channel, method, &r.base, NULL, NULL); /* the requester waits, not we */
}

static void on_api(struct redis_broker *rb, const Control__Command *cmd, bool survey) {
  Control__Api *a = control__api__unpack(NULL, cmd->params.len, cmd->params.data);
  if (a == NULL || rb->base.local.api == NULL) {
    if (a) control__api__free_unpacked(a, NULL);
    return;
  }
  char *answer = NULL;
  size_t alen = 0;
  int rc = rb->base.local.api(rb->base.srv, a->method, (const char *)a->params.data, a->params.len,
                              survey ? &answer : NULL, &alen);
  if (survey) reply_to(rb, cmd->from, a->id, (uint32_t)rc, answer, alen, CONTROL__COMMAND__METHOD__SURVEY_REPLY);
  free(answer);
  control__api__free_unpacked(a, NULL);
}

/* A routed emulation request being run here: whom to tell when its commands ran. */
struct emulation_ack {
  struct redis_broker *rb;
  uint64_t id;
  char from[];
};

static void emulation_ran(void *arg, int rc) {
  struct emulation_ack *ack = arg;
  struct rb_control *ctl = ctl_of(ack->rb);
  reply_to(ack->rb, ack->from, ack->id, (uint32_t)rc, NULL, 0, CONTROL__COMMAND__METHOD__EMULATION_REPLY);
  free(ack);
  atomic_fetch_sub(&ctl->acks_owed, 1);
}

static void on_emulation(struct redis_broker *rb, const Control__Command *cmd) {
  Control__Emulation *e = control__emulation__unpack(NULL, cmd->params.len, cmd->params.data);
  if (e == NULL) return;
  Protocol__EmulationRequest *req = protocol__emulation_request__unpack(NULL, e->request.len, e->request.data);
  size_t from_len = strlen(cmd->from) + 1;
  struct emulation_ack *ack = req && rb->base.local.emulation ? malloc(sizeof *ack + from_len) : NULL;
  if (ack) {
    ack->rb = rb;
    ack->id = e->id;
    memcpy(ack->from, cmd->from, from_len);
    atomic_fetch_add(&ctl_of(rb)->acks_owed, 1);
    rb->base.local.emulation(rb->base.srv, req, emulation_ran, ack); /* answers when the commands ran */
  } else {
    reply_to(rb, cmd->from, e->id, 1, NULL, 0, CONTROL__COMMAND__METHOD__EMULATION_REPLY);
  }
  if (req) protocol__emulation_request__free_unpacked(req, NULL);
  control__emulation__free_unpacked(e, NULL);
}

static void run_message(struct redis_broker *rb, const uint8_t *data, size_t len) {
  Control__Command *cmd = control__command__unpack(NULL, len, data);
  if (cmd == NULL) return;
  if (strcmp(cmd->from, rb->base.srv->node_id) == 0) { /* our own broadcast: proof the connection carries */
    if (cmd->method == CONTROL__COMMAND__METHOD__NODE) atomic_store(&ctl_of(rb)->self_seen_ms, timer_now_ms());
    goto out;
  }
  switch (cmd->method) {
  case CONTROL__COMMAND__METHOD__NODE: on_node(rb, cmd); break;
  case CONTROL__COMMAND__METHOD__SHUTDOWN:
    pthread_mutex_lock(&ctl_of(rb)->lock);
    forget_node(ctl_of(rb), cmd->from);
    pthread_mutex_unlock(&ctl_of(rb)->lock);
    break;
  case CONTROL__COMMAND__METHOD__API: on_api(rb, cmd, false); break;
  case CONTROL__COMMAND__METHOD__SURVEY: on_api(rb, cmd, true); break;
  case CONTROL__COMMAND__METHOD__SURVEY_REPLY:
  case CONTROL__COMMAND__METHOD__EMULATION_REPLY: on_reply(rb, cmd); break;
  case CONTROL__COMMAND__METHOD__EMULATION: on_emulation(rb, cmd); break;
  default: break;
  }
out:
  control__command__free_unpacked(cmd, NULL);
}

static void *control_main(void *arg) {
  struct control_lane *ln = arg;
  pthread_mutex_lock(&ln->lock);
  for (;;) {
    while (ln->head == NULL && !atomic_load(&ln->ctl->stopping)) pthread_cond_wait(&ln->cond, &ln->lock);
    if (ln->head == NULL) break;
    struct control_msg *batch = ln->head;
    ln->head = NULL;
    ln->tail = &ln->head;
    ln->queued = 0;
    pthread_mutex_unlock(&ln->lock);
    while (batch) {
      struct control_msg *next = batch->next;
      run_message(ln->ctl->rb, batch->data, batch->len);
      free(batch);
      batch = next;
    }
    pthread_mutex_lock(&ln->lock);
  }
  pthread_mutex_unlock(&ln->lock);
  return NULL;
}

/* ---- requests (API and MHD threads) ---- */

static size_t node_count(struct rb_control *ctl) {
  pthread_mutex_lock(&ctl->lock);
  size_t n = strmap_count(ctl->nodes);
  pthread_mutex_unlock(&ctl->lock);
  return n;
}

static bool node_known(struct rb_control *ctl, const char *uid) {
  pthread_mutex_lock(&ctl->lock);
  bool known = strmap_get(ctl->nodes, uid) != NULL;
  pthread_mutex_unlock(&ctl->lock);
  return known;
}

/* Registers a call waiting for EXPECTED answers. */
static void pending_add(struct rb_control *ctl, struct pending_call *p) {
  pthread_cond_init(&p->cond, NULL);
  pthread_mutex_lock(&ctl->lock);
  p->id = ++ctl->next_id;
  p->next = ctl->pending;
  ctl->pending = p;
  pthread_mutex_unlock(&ctl->lock);
}

/* Waits until P has its answers or TIMEOUT_MS passed, then unregisters it. Returns true when complete. */
static bool pending_wait(struct rb_control *ctl, struct pending_call *p, uint64_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)(timeout_ms / 1000);
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&ctl->lock);
  while (p->got < p->expected)
    if (pthread_cond_timedwait(&p->cond, &ctl->lock, &until) != 0) break;
  bool complete = p->got >= p->expected;
  for (struct pending_call **pp = &ctl->pending; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  pthread_mutex_unlock(&ctl->lock);
  pthread_cond_destroy(&p->cond);
  return complete;
}

int rb_broadcast_api(struct broker *b, const char *method, const char *params, size_t len) {
  struct redis_broker *rb = (struct redis_broker *)b;
  Control__Api a = CONTROL__API__INIT;
  a.method = (char *)method;
  a.params = (ProtobufCBinaryData){len, (uint8_t *)params};
  return send_command(rb, ctl_of(rb)->control_channel, CONTROL__COMMAND__METHOD__API, &a.base, NULL);
}

int rb_survey_api(struct broker *b, const char *method, const char *params, size_t len,
                  void (*fn)(void *arg, const char *answer, size_t len), void *arg) {
  struct redis_broker *rb = (struct redis_broker *)b;
  struct rb_control *ctl = ctl_of(rb);
  struct pending_call p = {.expected = node_count(ctl), .fn = fn, .arg = arg};
  if (p.expected == 0) return 0;
  pending_add(ctl, &p);
  Control__Api a = CONTROL__API__INIT;
  a.id = p.id;
  a.method = (char *)method;
  a.params = (ProtobufCBinaryData){len, (uint8_t *)params};
  int rc = send_command(rb, ctl->control_channel, CONTROL__COMMAND__METHOD__SURVEY, &a.base, NULL);
  if (rc != 0) p.expected = 0;
  if (!pending_wait(ctl, &p, SURVEY_TIMEOUT_MS)) log_warn("redis: survey %s: %zu of %zu nodes answered", method, p.got, p.expected);
  return rc;
}

struct sent {
  struct rb_control *ctl;
  uint64_t id;
};

/* The PUBLISH of an emulation request came back (loop thread): nobody received it ⇒ no such node. */
static void emulation_sent(void *arg, const redisReply *reply) {
  struct sent *st = arg;
  if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer == 0) {
    struct routed *rt = routed_take(st->ctl, st->id);
    if (rt) routed_finish(rt, reply && reply->type == REDIS_REPLY_INTEGER ? -BROKER_EUNKNOWN_NODE : -BROKER_EUNAVAILABLE);
  }
  free(st);
}

/* Every EMULATION_SWEEP_MS on the loop: routed requests whose node never answered fail. */
#define EMULATION_SWEEP_MS 250
static void routed_sweep_fire(struct evloop_timer *t) {
  struct rb_control *ctl = t->arg;
  uint64_t now = timer_now_ms();
  struct routed *expired = NULL;
  pthread_mutex_lock(&ctl->lock);
  for (struct routed **pp = &ctl->routed; *pp;) {
    struct routed *r = *pp;
    if (r->deadline_ms > now) {
      pp = &r->next;
      continue;
    }
    *pp = r->next;
    r->next = expired;
    expired = r;
  }
  pthread_mutex_unlock(&ctl->lock);
  while (expired) {
    struct routed *next = expired->next;
    log_warn("redis: a node did not confirm an emulation request within %d ms", EMULATION_TIMEOUT_MS);
    routed_finish(expired, -BROKER_EUNAVAILABLE);
    expired = next;
  }
  evloop_timer_arm(ctl->rb->loop, t, EMULATION_SWEEP_MS);
}

int rb_route_emulation(struct broker *b, const Protocol__EmulationRequest *req, void (*done)(void *arg, int rc),
                       void *arg) {
  struct redis_broker *rb = (struct redis_broker *)b;
  struct rb_control *ctl = ctl_of(rb);
  if (strlen(req->node) > ID_UUID_LEN || !node_known(ctl, req->node)) return -BROKER_EUNKNOWN_NODE;
  size_t rlen = protocol__emulation_request__get_packed_size(req);
  uint8_t *packed = malloc(rlen ? rlen : 1);
  struct sent *st = malloc(sizeof *st);
  struct routed *rt = malloc(sizeof *rt);
  if (packed == NULL || st == NULL || rt == NULL) {
    free(packed);
    free(st);
    free(rt);
    return -BROKER_ENOMEM;
  }
  protocol__emulation_request__pack(req, packed);
  pthread_mutex_lock(&ctl->lock);
  *rt = (struct routed){ctl->routed, ++ctl->next_id, timer_now_ms() + EMULATION_TIMEOUT_MS, done, arg};
  ctl->routed = rt;
  uint64_t id = rt->id;
  pthread_mutex_unlock(&ctl->lock);
  *st = (struct sent){ctl, id};
  Control__Emulation e = CONTROL__EMULATION__INIT;
  e.id = id;
  e.request = (ProtobufCBinaryData){rlen, packed};
  e.session = req->session;
  char channel[RB_KEY_MAX];
  node_channel_of(rb, req->node, channel);
  int rc = send_command_async(rb, channel, CONTROL__COMMAND__METHOD__EMULATION, &e.base, emulation_sent, st);
  free(packed);
  if (rc != 0) {
    free(st);
    if (routed_take(ctl, id) == rt) { /* not sent: the caller learns it now, DONE is never called */
      free(rt);
      return -BROKER_EUNAVAILABLE;
    }
  }
  return 0;
}

struct node_walk {
  void (*fn)(void *arg, const struct broker_node *node);
  void *arg;
};

static void node_cb(const char *key, void *value, void *arg) {
  (void)key;
  struct known_node *kn = value;
  struct node_walk *w = arg;
  const Control__Node *i = kn->info;
  struct broker_node n = {i->uid,         i->name,         i->version,  i->num_clients, i->num_users,
                          i->num_channels, i->num_subs, i->uptime};
  w->fn(w->arg, &n);
}

void rb_foreach_node(struct broker *b, void (*fn)(void *arg, const struct broker_node *node), void *arg) {
  struct rb_control *ctl = ctl_of((struct redis_broker *)b);
  struct node_walk w = {fn, arg};
  pthread_mutex_lock(&ctl->lock);
  strmap_foreach(ctl->nodes, node_cb, &w);
  pthread_mutex_unlock(&ctl->lock);
}

/* ---- life ---- */

static void heartbeat_start(void *arg) {
  struct redis_broker *rb = arg;
  struct rb_control *ctl = ctl_of(rb);
  evloop_timer_arm(rb->loop, &ctl->heartbeat, HEARTBEAT_MS);
  ctl->routed_sweep = (struct evloop_timer){.fn = routed_sweep_fire, .arg = ctl};
  evloop_timer_arm(rb->loop, &ctl->routed_sweep, EMULATION_SWEEP_MS);
}

int rb_control_init(struct redis_broker *rb) {
  struct rb_control *ctl = calloc(1, sizeof *ctl);
  if (ctl == NULL) return -1;
  rb->control = ctl;
  ctl->rb = rb;
  rb_key(rb, "control", "", ctl->control_channel);
  ctl->control_channel[strlen(ctl->control_channel) - 1] = '\0'; /* "<prefix>.control" */
  node_channel_of(rb, rb->base.srv->node_id, ctl->node_channel);
  ctl->heartbeat = (struct evloop_timer){.fn = heartbeat_fire, .arg = rb};
  pthread_mutex_init(&ctl->lock, NULL);
  ctl->nodes = strmap_new();
  if (ctl->nodes == NULL) return -1;
  for (size_t i = 0; i < CONTROL_LANES; i++) {
    struct control_lane *ln = &ctl->lanes[i];
    ln->ctl = ctl;
    ln->tail = &ln->head;
    pthread_mutex_init(&ln->lock, NULL);
    pthread_cond_init(&ln->cond, NULL);
    if (pthread_create(&ln->thread, NULL, control_main, ln) != 0) return -1;
    ln->started = true;
  }
  return 0;
}

int rb_control_start(struct redis_broker *rb) { return evloop_post(rb->loop, heartbeat_start, rb); }

void rb_control_say_goodbye(struct redis_broker *rb) {
  if (rb->control && rb->loop) send_command(rb, ctl_of(rb)->control_channel, CONTROL__COMMAND__METHOD__SHUTDOWN, NULL, NULL);
}

static void node_free_cb(const char *key, void *value, void *arg) {
  (void)key, (void)arg;
  struct known_node *kn = value;
  control__node__free_unpacked(kn->info, NULL);
  free(kn);
}

void rb_control_stop(struct redis_broker *rb) {
  struct rb_control *ctl = rb->control;
  if (ctl == NULL) return;
  atomic_store(&ctl->stopping, true);
  for (size_t i = 0; i < CONTROL_LANES; i++) {
    struct control_lane *ln = &ctl->lanes[i];
    if (!ln->started) continue;
    pthread_mutex_lock(&ln->lock);
    pthread_cond_signal(&ln->cond);
    pthread_mutex_unlock(&ln->lock);
    pthread_join(ln->thread, NULL);
    ln->started = false;
  }
  /* routed commands still running on the core loops or workers answer through us: wait for them
   * (bounded: a command that never ends must not hang the stop) */
  for (int i = 0; i < 2000 && atomic_load(&ctl->acks_owed) > 0; i++) nanosleep(&(struct timespec){0, 1000000}, NULL);
}

void rb_control_cleanup(struct redis_broker *rb) {
  struct rb_control *ctl = rb->control;
  if (ctl == NULL) return;
  rb_control_stop(rb);
  while (ctl->routed) { /* none should be left: the HTTP side waited for its routed requests */
    struct routed *next = ctl->routed->next;
    routed_finish(ctl->routed, -BROKER_EUNAVAILABLE);
    ctl->routed = next;
  }
  for (size_t i = 0; i < CONTROL_LANES; i++) {
    struct control_lane *ln = &ctl->lanes[i];
    while (ln->head) {
      struct control_msg *next = ln->head->next;
      free(ln->head);
      ln->head = next;
    }
    if (ln->tail) { /* initialized */
      pthread_mutex_destroy(&ln->lock);
      pthread_cond_destroy(&ln->cond);
    }
  }
  if (ctl->nodes) {
    strmap_foreach(ctl->nodes, node_free_cb, NULL);
    strmap_free(ctl->nodes);
  }
  pthread_mutex_destroy(&ctl->lock);
  free(ctl);
  rb->control = NULL;
}
