/* protocol: connection-level commands and the dispatch table (PROTOCOL.md §4.3). The table lists, in
 * the order Centrifugo checks them, where each request field sits in a Command and which handler
 * serves it; the first set field wins, and a Command with no request field and id 0 is a pong.
 * Handlers reply through the session (an error reply for request-level failures) or return a
 * disconnect code for protocol violations. Channel commands live in protocol_channel.c. */
#include "protocol.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "broker.h"
#include "channel.h"
#include "codes.h"
#include "hub.h"
#include "log.h"
#include "protocol_internal.h"
#include "proxy_calls.h"
#include "registry.h"
#include "sd_version.h"
#include "server.h"
#include "session.h"
#include "workers.h"
#include "timer.h"

typedef uint32_t (*command_handler)(struct session *s, const Protocol__Command *cmd);

struct command_route {
  size_t offset; /* of the request pointer inside Protocol__Command */
  command_handler handle;
  bool waits; /* calls the broker synchronously: on an engine whose calls wait, it runs on a worker */
};

/* What a connect establishes: identity, expiry and the token's server-side subscriptions. */
struct connect_state {
  struct auth_connection_claims claims;
  bool have_claims;
  Protocol__ConnectResult__SubsEntry *entries;
  Protocol__ConnectResult__SubsEntry **entry_ptrs;
  Protocol__SubscribeResult *results;
  size_t n_subs;
};

/* Checks the credentials of REQ. Returns 0 (claims in CS when a token was verified), a disconnect code,
 * or a negated error code (109 expired: the SDK fetches a new token and reconnects). */
static int64_t check_credentials(struct session *s, const Protocol__ConnectRequest *req,
                                 struct connect_state *cs) {
  const struct config *cfg = s->srv->boot_cfg; /* client_insecure, anonymous: restart only */
  if (req->token[0] == '\0')
    return cfg->client_insecure || cfg->allow_anonymous_connect_without_token ? 0 : DISCONNECT_BAD_REQUEST;
  char why[256];
  const struct config *live = server_config_get(s->srv); /* the token keys are reloadable */
  bool configured = auth_keys_configured(live->auth);
  enum auth_status st = configured ? auth_verify_connection(live->auth, req->token, timer_unix_now(),
                                                            &cs->claims, why, sizeof why)
                                   : AUTH_OK;
  config_unref(live);
  if (!configured) return cfg->client_insecure ? 0 : DISCONNECT_INVALID_TOKEN;
  if (st == AUTH_NEED_KEYS && !protocol_keys_retrying()) return PROTOCOL_AWAIT_KEYS;
  if (st == AUTH_EXPIRED) return -ERROR_TOKEN_EXPIRED;
  if (st == AUTH_ERROR) return -ERROR_INTERNAL;
  if (st != AUTH_OK) {
    log_info("client %s: connection token rejected: %s", s->client_id, why);
    return DISCONNECT_INVALID_TOKEN;
  }
  cs->have_claims = true;
  return 0;
}

/* Node-wide and per-user connection limits (3504 when over). Admitted, the session counts as one of
 * USER's from now until it leaves the registry (the check and the count are one registry step). */
static int64_t check_limits(struct session *s, const char *user) {
  const struct config *cfg = s->srv->boot_cfg; /* limits: restart only */
  if (cfg->client_connection_limit > 0 &&
      registry_count(s->srv->registry) > (size_t)cfg->client_connection_limit)
    return DISCONNECT_CONNECTION_LIMIT;
  int rc = registry_claim_user(s->srv->registry, s, user, (size_t)cfg->client_user_connection_limit);
  if (rc == REGISTRY_LIMIT) return DISCONNECT_CONNECTION_LIMIT;
  return rc == 0 ? 0 : -ERROR_INTERNAL;
}

/* Takes the identity from the claims (or anonymous) into the session. */
static void adopt_identity(struct session *s, const Protocol__ConnectRequest *req, struct connect_state *cs) {
  pthread_mutex_lock(&s->lock);
  if (cs->have_claims) {
    free(s->user);
    s->user = cs->claims.user;
    cs->claims.user = NULL;
    s->conn_info = cs->claims.info;
    cs->claims.info = (ProtobufCBinaryData){0};
  }
  char *name = strdup(req->name), *version = strdup(req->version);
  if (name && version) {
    free(s->name);
    free(s->version);
    s->name = name;
    s->version = version;
  } else {
    free(name);
    free(version);
  }
  pthread_mutex_unlock(&s->lock);
}

/* The SubscribeRequest in ConnectRequest.subs for CHANNEL (resubscribe with recovery), or NULL. */
static const Protocol__SubscribeRequest *requested_sub(const Protocol__ConnectRequest *req,
                                                       const char *channel) {
  for (size_t i = 0; i < req->n_subs; i++)
    if (req->subs[i] && req->subs[i]->value && strcmp(req->subs[i]->key, channel) == 0)
      return req->subs[i]->value;
  return NULL;
}

/* Subscribes one server-side channel of the token and records it in the connect result. */
static void subscribe_from_token(struct session *s, const Protocol__ConnectRequest *req,
                                 struct connect_state *cs, const char *channel,
                                 const struct auth_sub_options *token) {
  const struct config *cfg = server_config_get(s->srv); /* holds OPTS for the whole subscribe */
  const struct channel_options *opts = channel_options_for(cfg, channel);
  if (opts == NULL) {
    config_unref(cfg);
    log_warn("client %s: token channel %s has an unknown namespace; skipped", s->client_id, channel);
    return;
  }
  const Protocol__SubscribeRequest *again = requested_sub(req, channel);
  size_t i = cs->n_subs;
  struct subscribe_plan plan = {.channel = channel,
                                .opts = opts,
                                .answer = SUBSCRIBE_CONNECT,
                                .want_positioned = true,
                                .want_recoverable = true,
                                .recover = again && again->recover,
                                .offset = again ? again->offset : 0,
                                .epoch = again ? again->epoch : "",
                                .token = token,
                                .result = &cs->results[i]};
  int rc = protocol_subscribe(s, &plan);
  config_unref(cfg);
  if (rc != 0) return;
  protocol__connect_result__subs_entry__init(&cs->entries[i]);
  cs->entries[i].key = (char *)channel;
  cs->entries[i].value = &cs->results[i];
  cs->entry_ptrs[i] = &cs->entries[i];
  cs->n_subs++;
}

static void subscribe_token_channels(struct session *s, const Protocol__ConnectRequest *req,
                                     struct connect_state *cs) {
  size_t n = cs->claims.n_channels + cs->claims.n_subs;
  if (n == 0) return;
  cs->entries = calloc(n, sizeof *cs->entries);
  cs->entry_ptrs = calloc(n, sizeof *cs->entry_ptrs);
  cs->results = calloc(n, sizeof *cs->results);
  if (!cs->entries || !cs->entry_ptrs || !cs->results) return;
  for (size_t i = 0; i < cs->claims.n_channels; i++)
    subscribe_from_token(s, req, cs, cs->claims.channels[i], NULL);
  for (size_t i = 0; i < cs->claims.n_subs; i++)
    subscribe_from_token(s, req, cs, cs->claims.subs[i].channel, &cs->claims.subs[i].opts);
}

static void connect_state_cleanup(struct connect_state *cs) {
  for (size_t i = 0; i < cs->n_subs; i++) protocol_subscribe_result_cleanup(&cs->results[i]);
  free(cs->entries);
  free(cs->entry_ptrs);
  free(cs->results);
  auth_connection_claims_cleanup(&cs->claims);
}

static uint32_t handle_connect(struct session *s, const Protocol__Command *cmd) {
  const Protocol__ConnectRequest *req = cmd->connect;
  struct connect_state cs = {0};
  if (session_state(s) != SESSION_CONNECTING) return DISCONNECT_BAD_REQUEST; /* a second connect */
  if (req->token[0] == '\0' && s->srv->boot_cfg->proxy_connect_endpoint[0]) return proxy_calls_connect(s, cmd);
  int64_t rc = check_credentials(s, req, &cs);
  if (rc == PROTOCOL_AWAIT_KEYS) return protocol_await_keys(s, cmd, handle_connect);
  if (rc < 0) {
    pthread_mutex_lock(&s->lock);
    s->unusable = true; /* the stale timer ends it unless the client goes first */
    pthread_mutex_unlock(&s->lock);
  }
  if (rc != 0) {
    connect_state_cleanup(&cs);
    if (rc < 0 && s->transport && s->transport->unidirectional) return codes_uni_disconnect((uint32_t)-rc);
    return protocol_finish(s, cmd->id, rc);
  }
  return protocol_connect_with(s, cmd, cs.have_claims ? &cs.claims : NULL, NULL, false);
}

uint32_t protocol_connect_with(struct session *s, const Protocol__Command *cmd,
                               struct auth_connection_claims *claims, const ProtobufCBinaryData *data,
                               bool server_refresh) {
  const Protocol__ConnectRequest *req = cmd->connect;
  const struct config *cfg = s->srv->boot_cfg; /* ping and pong: restart only */
  struct connect_state cs = {0};
  if (claims) {
    cs.claims = *claims;
    cs.have_claims = true;
    memset(claims, 0, sizeof *claims);
  }
  int64_t rc = check_limits(s, cs.have_claims ? cs.claims.user : "");
  if (rc != 0) {
    connect_state_cleanup(&cs);
    if (rc < 0 && s->transport && s->transport->unidirectional) return codes_uni_disconnect((uint32_t)-rc);
    return protocol_finish(s, cmd->id, rc);
  }
  int64_t expires_at = cs.have_claims ? auth_connection_expires_at(&cs.claims) : 0;
  adopt_identity(s, req, &cs);
  session_set_connected(s);
  subscribe_token_channels(s, req, &cs);
  if (server_refresh && cfg->proxy_refresh_endpoint[0]) { /* the refresh proxy extends it (at pings) */
    pthread_mutex_lock(&s->lock);
    s->proxy_expires_at = expires_at;
    pthread_mutex_unlock(&s->lock);
  } else {
    session_set_expiry(s, expires_at);
  }
  Protocol__ConnectResult res = PROTOCOL__CONNECT_RESULT__INIT;
  res.client = s->client_id;
  res.version = SD_VERSION;
  res.ping = (uint32_t)(cfg->ping_interval_ms / 1000);
  res.pong = cfg->pong_timeout_ms > 0 && !(s->transport && s->transport->unidirectional);
  if (data) res.data = *data;
  if (s->transport == NULL || s->transport->emulation) { /* set before the connect command runs */
    res.session = s->session_id;
    res.node = s->srv->node_id;
  } else if (s->transport->unidirectional) {
    res.session = s->session_id; /* as Centrifugo; no node: nothing routes to a uni session */
  }
  if (expires_at > 0 && !server_refresh) { /* else the client has no token to refresh with */
    res.expires = true;
    res.ttl = protocol_ttl(expires_at, timer_unix_now());
  }
  res.n_subs = cs.n_subs;
  res.subs = cs.entry_ptrs;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  reply.id = cmd->id;
  reply.connect = &res;
  session_send_reply_first(s, &reply); /* a reply it cannot send closes the session (3506 / 3004) */
  connect_state_cleanup(&cs);
  log_debug("session %s client %s connected (user '%s', name %s)", s->session_id, s->client_id, s->user,
            req->name);
  return 0;
}

static uint32_t handle_refresh(struct session *s, const Protocol__Command *cmd) {
  if (cmd->refresh->token[0] == '\0') return DISCONNECT_BAD_REQUEST;
  struct auth_connection_claims claims = {0};
  char why[256];
  int64_t now = timer_unix_now();
  const struct config *cfg = server_config_get(s->srv); /* the token keys are reloadable */
  bool configured = auth_keys_configured(cfg->auth);
  enum auth_status st =
      configured ? auth_verify_connection(cfg->auth, cmd->refresh->token, now, &claims, why, sizeof why)
                 : AUTH_OK;
  if (st == AUTH_NEED_KEYS) auth_keys_refresh(cfg->auth, protocol_keys_nothing, NULL);
  config_unref(cfg);
  if (!configured) return protocol_finish(s, cmd->id, -ERROR_NOT_AVAILABLE);
  if (st == AUTH_NEED_KEYS) return protocol_finish(s, cmd->id, -ERROR_INTERNAL); /* the SDK retries */
  if (st == AUTH_EXPIRED) return DISCONNECT_EXPIRED;
  if (st != AUTH_OK)
    return st == AUTH_ERROR ? protocol_finish(s, cmd->id, -ERROR_INTERNAL) : DISCONNECT_INVALID_TOKEN;
  uint32_t rc = strcmp(claims.user, s->user) != 0 ? DISCONNECT_INVALID_TOKEN : 0;
  int64_t expires_at = auth_connection_expires_at(&claims);
  auth_connection_claims_cleanup(&claims);
  if (rc != 0) return rc;
  if (expires_at > 0 && expires_at <= now) return protocol_finish(s, cmd->id, -ERROR_EXPIRED);
  session_set_expiry(s, expires_at);
  Protocol__RefreshResult res = PROTOCOL__REFRESH_RESULT__INIT;
  res.expires = expires_at > 0;
  res.ttl = expires_at > 0 ? protocol_ttl(expires_at, now) : 0;
  SEND_RESULT(s, cmd->id, refresh, &res);
  return 0;
}

static uint32_t handle_rpc(struct session *s, const Protocol__Command *cmd) {
  if (s->srv->boot_cfg->proxy_rpc_endpoint[0]) return proxy_calls_rpc(s, cmd);
  /* Without an RPC proxy there is no RPC handler at all: Centrifugo answers 108, not 104. */
  session_send_error(s, cmd->id, ERROR_NOT_AVAILABLE);
  return 0;
}

static uint32_t handle_send(struct session *s, const Protocol__Command *cmd) {
  (void)s;
  (void)cmd;
  return DISCONNECT_NOT_AVAILABLE; /* no async message handler, as in Centrifugo OSS */
}

static const struct command_route routes[] = {
    {offsetof(Protocol__Command, connect), handle_connect, true}, /* token subscriptions */
    {offsetof(Protocol__Command, subscribe), protocol_handle_subscribe, true},
    {offsetof(Protocol__Command, unsubscribe), protocol_handle_unsubscribe, true},
    {offsetof(Protocol__Command, publish), protocol_handle_publish, false}, /* publish_async */
    {offsetof(Protocol__Command, presence), protocol_handle_presence, true},
    {offsetof(Protocol__Command, presence_stats), protocol_handle_presence_stats, true},
    {offsetof(Protocol__Command, history), protocol_handle_history, true},
    {offsetof(Protocol__Command, rpc), handle_rpc, false},
    {offsetof(Protocol__Command, send), handle_send, false},
    {offsetof(Protocol__Command, refresh), handle_refresh, false},
    {offsetof(Protocol__Command, sub_refresh), protocol_handle_sub_refresh, false},
};

static const struct command_route *find_route(const Protocol__Command *cmd) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    if (*(void *const *)((const char *)cmd + routes[i].offset) != NULL) return &routes[i];
  return NULL;
}

/* Whether broker calls made on this thread would wait for I/O that a worker should wait for instead:
 * the engine's calls wait and this is not a worker. */
static bool broker_waits_here(const struct server *srv) {
  return srv->workers && srv->broker->ops->calls_wait && !workers_in_worker(srv->workers);
}

/* Runs FN(S) on a worker when broker calls would wait here, holding a reference to S meanwhile;
 * otherwise (or when no worker takes it) here. */
struct session_job {
  struct session *s;
  void (*fn)(struct session *s);
};

static void session_job_run(void *arg) {
  struct session_job job = *(struct session_job *)arg;
  free(arg);
  job.fn(job.s);
  session_unref(job.s);
}

static void run_where_broker_may_wait(struct session *s, void (*fn)(struct session *s)) {
  struct session_job *job = broker_waits_here(s->srv) ? malloc(sizeof *job) : NULL;
  if (job) {
    *job = (struct session_job){session_ref(s), fn};
    if (workers_post(s->srv->workers, session_job_run, job) == 0) return;
    session_unref(s);
    free(job);
  }
  fn(s);
}

static void resume_commands(struct session *s) {
  session_command_done(s, 0);
}

void protocol_resume_commands(struct session *s) {
  struct session_job *job = s->srv->workers ? malloc(sizeof *job) : NULL;
  if (job) {
    *job = (struct session_job){session_ref(s), resume_commands};
    if (workers_post(s->srv->workers, session_job_run, job) == 0) return;
    session_unref(s);
    free(job);
  }
  resume_commands(s);
}

/* A command handed to a worker: the session (a reference), the command (owned) and its handler. */
struct worker_command {
  struct session *s;
  const Protocol__Command *cmd;
  command_handler handle;
};

static void worker_command_run(void *arg) {
  struct worker_command wc = *(struct worker_command *)arg;
  free(arg);
  uint32_t code = wc.handle(wc.s, wc.cmd);
  if (code != SESSION_COMMAND_PENDING) protocol_command_finish(wc.s, wc.cmd, code);
  session_unref(wc.s);
}

/* Hands CMD to a worker when ROUTE waits for the broker, the engine's calls wait and this thread is
 * not a worker already: a core loop, the WebSocket or timer thread never waits for Redis. Returns
 * true when handed over (CMD is the worker's from now on). */
static bool hand_to_worker(struct session *s, const Protocol__Command *cmd, const struct command_route *route) {
  struct server *srv = s->srv;
  if (!route->waits || !broker_waits_here(srv)) return false;
  struct worker_command *wc = malloc(sizeof *wc);
  if (wc == NULL) return false;
  *wc = (struct worker_command){session_ref(s), cmd, route->handle};
  if (workers_post(srv->workers, worker_command_run, wc) == 0) return true;
  session_unref(s);
  free(wc);
  return false; /* stopping: run it here */
}

void protocol_command_finish(struct session *s, const Protocol__Command *cmd, uint32_t code) {
  protobuf_c_message_free_unpacked((ProtobufCMessage *)&cmd->base, NULL);
  session_command_done(s, code);
}

uint32_t protocol_dispatch(struct session *s, const Protocol__Command *cmd) {
  const struct command_route *route = find_route(cmd);
  pthread_mutex_lock(&s->lock);
  enum session_state state = s->state;
  bool unusable = s->unusable;
  pthread_mutex_unlock(&s->lock);
  if (state == SESSION_CONNECTING && !unusable && (route == NULL || route->handle != handle_connect))
    return DISCONNECT_BAD_REQUEST; /* unexpected frame before connect */
  if (unusable) return DISCONNECT_BAD_REQUEST;
  if (route == NULL) {
    if (cmd->id != 0) return DISCONNECT_BAD_REQUEST; /* no request field (a v1 ping among them) */
    return session_pong(s) == 0 ? 0 : DISCONNECT_BAD_REQUEST;
  }
  if (cmd->id == 0 && route->handle != handle_send) return DISCONNECT_BAD_REQUEST;
  if (hand_to_worker(s, cmd, route)) return SESSION_COMMAND_PENDING;
  return route->handle(s, cmd);
}

int protocol_publish(struct server *srv, const char *channel, Protocol__Publication *pub,
                     const struct publish_options *po, struct stream_position *pos) {
  int rc = srv->broker->ops->publish(srv->broker, channel, pub, po, pos);
  if (rc != 0) return rc;
  atomic_fetch_add_explicit(&srv->stats.publications, 1, memory_order_relaxed);
  return 0;
}

/* A publish protocol_publish_async passed on: what to count it in and whom to tell. */
struct counted_publish {
  struct server *srv;
  broker_publish_done_fn done;
  void *arg;
};

static void counted_done(void *arg, int rc, const struct stream_position *pos) {
  struct counted_publish cp = *(struct counted_publish *)arg;
  free(arg);
  if (rc == 0) atomic_fetch_add_explicit(&cp.srv->stats.publications, 1, memory_order_relaxed);
  cp.done(cp.arg, rc, pos);
}

void protocol_publish_async(struct server *srv, const char *channel, Protocol__Publication *pub,
                            const struct publish_options *po, broker_publish_done_fn done, void *arg) {
  struct counted_publish *cp = malloc(sizeof *cp);
  if (cp == NULL) {
    struct stream_position none = {0};
    done(arg, -BROKER_ENOMEM, &none);
    return;
  }
  *cp = (struct counted_publish){srv, done, arg};
  srv->broker->ops->publish_async(srv->broker, channel, pub, po, counted_done, cp);
}

int protocol_server_unsubscribe(struct session *s, const char *channel) {
  return protocol_unsubscribe_with(s, channel, UNSUBSCRIBE_SERVER, "server unsubscribe");
}

int protocol_unsubscribe_with(struct session *s, const char *channel, uint32_t code, const char *reason) {
  struct subscription *sub = protocol_subscription_end(s, channel);
  if (sub == NULL) return -1;
  Protocol__Unsubscribe u = PROTOCOL__UNSUBSCRIBE__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  u.code = code;
  u.reason = (char *)reason;
  push.channel = (char *)channel;
  push.unsubscribe = &u;
  reply.push = &push;
  int rc = session_send_reply(s, &reply);
  free(sub);
  return rc;
}

int protocol_send_message(struct session *s, const uint8_t *data, size_t len) {
  Protocol__Message m = PROTOCOL__MESSAGE__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  m.data.data = (uint8_t *)data;
  m.data.len = len;
  push.message = &m;
  reply.push = &push;
  return session_send_reply(s, &reply);
}

uint32_t protocol_ttl(int64_t expires_at, int64_t now) {
  if (expires_at <= now) return 0;
  /* both sides are valid int64 and EXPIRES_AT > NOW: the difference only overflows for NOW < 0 */
  if (now < 0 || expires_at - now > (int64_t)UINT32_MAX) return UINT32_MAX;
  return (uint32_t)(expires_at - now);
}

static void expire_subscriptions(struct session *s) {
  proxy_calls_refresh_check(s);
  int64_t now = timer_unix_now();
  int64_t cutoff = now - s->srv->boot_cfg->client_expired_close_delay_ms / 1000;
  char *expired[16], *refresh[16], *presence[16];
  size_t n = 0, r = 0, m = 0;
  pthread_mutex_lock(&s->lock);
  for (struct subscription *sub = s->subs; sub && m < 16; sub = sub->next)
    if (sub->flags & SUB_MAP_PRESENCE) presence[m++] = strdup(sub->channel_name);
  for (struct subscription *sub = s->subs; sub && n < 16 && r < 16; sub = sub->next) {
    if ((sub->flags & SUB_SERVER_REFRESH) && sub->expires_at > 0 && sub->expires_at <= now) {
      sub->expires_at = INT64_MAX; /* being refreshed: the sub_refresh proxy's answer sets it */
      refresh[r++] = strdup(sub->channel_name);
    } else if (sub->expires_at > 0 && sub->expires_at <= cutoff) {
      expired[n++] = strdup(sub->channel_name);
    }
  }
  pthread_mutex_unlock(&s->lock);
  for (size_t i = 0; i < n; i++) {
    if (expired[i]) protocol_unsubscribe_with(s, expired[i], UNSUBSCRIBE_EXPIRED, "subscription expired");
    free(expired[i]);
  }
  for (size_t i = 0; i < r; i++) {
    if (refresh[i]) proxy_calls_sub_refresh(s, refresh[i]);
    free(refresh[i]);
  }
  for (size_t i = 0; i < m; i++) { /* the entries' expiry is extended a ping interval at a time */
    if (presence[i]) protocol_map_presence(s, presence[i], MAP_PRESENCE_REFRESH);
    free(presence[i]);
  }
}

/* From the ping timer: on a worker when the unsubscribes would wait for Redis (the timer thread serves
 * every session's pings). */
void protocol_expire_subscriptions(struct session *s) {
  run_where_broker_may_wait(s, expire_subscriptions);
}

static void end_session(struct session *s) {
  protocol_map_paging_drop(s, NULL);
  struct subscription *subs = hub_unsubscribe_all(s->srv->hub, s);
  while (subs) {
    struct subscription *next = subs->next;
    protocol_subscription_ended(s, subs);
    free(subs);
    subs = next;
  }
  registry_remove(s->srv->registry, s);
}

/* Its subscriptions' presence entries and leaves: on a worker when they would wait for Redis here (the
 * stream's loop, which must not). */
static void session_ended(struct session *s) {
  run_where_broker_may_wait(s, end_session);
}

const struct session_hooks protocol_session_hooks = {
    .dispatch = protocol_dispatch,
    .ended = session_ended,
    .ping_check = protocol_expire_subscriptions,
};
