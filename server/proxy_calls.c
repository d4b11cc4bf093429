/* proxy_calls: pending client commands answered by the application's backend (see proxy_calls.h).
 * One struct pending per call: made where the command runs, handed to the HTTP client, filled with the
 * answer's copy on the client's thread and posted to a worker, which parses it, runs the command's
 * continuation (a table entry per proxy kind) and finishes the command. Invariant: a pending call owns
 * one session reference and the command until protocol_command_finish; its in-flight gauge is raised at
 * the start and lowered exactly once, on the worker. */
#include "proxy_calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "channel.h"
#include "codes.h"
#include "http_client.h"
#include "hub.h"
#include "log.h"
#include "protocol.h"
#include "protocol_internal.h"
#include "proxy.h"
#include "server.h"
#include "session.h"
#include "workers.h"
#include "timer.h"

#define PROXY_MAX_IN_FLIGHT 1024         /* per node, all proxies together */
#define PROXY_MAX_BODY (4 * 1024 * 1024) /* an answer's body */
#define PROXY_WORKERS 2
_Static_assert(STATS_PROXY_KINDS == PROXY_KIND_COUNT, "one stats slot per proxy kind");

struct pending;
/* Runs on a worker with the parsed answer: replies and returns 0 or a disconnect code. */
typedef uint32_t (*answer_fn)(struct pending *p, struct proxy_answer *a);

struct pending {
  struct server *srv;
  struct session *s;
  const Protocol__Command *cmd;
  enum proxy_kind kind;
  answer_fn on_answer;
  char *channel;                    /* sub_refresh: the subscription's channel (owned) */
  struct http_client_response resp; /* copied on the HTTP client's thread */
  char *body;
  char why[128];
};

/* ---- where each proxy goes ---- */

static const char *endpoint_of(const struct config *c, enum proxy_kind k) {
  const char *const urls[PROXY_KIND_COUNT] = {
      [PROXY_CONNECT] = c->proxy_connect_endpoint,         [PROXY_REFRESH] = c->proxy_refresh_endpoint,
      [PROXY_SUBSCRIBE] = c->proxy_subscribe_endpoint,     [PROXY_PUBLISH] = c->proxy_publish_endpoint,
      [PROXY_SUB_REFRESH] = c->proxy_sub_refresh_endpoint, [PROXY_RPC] = c->proxy_rpc_endpoint};
  return urls[k];
}

static long timeout_of(const struct config *c, enum proxy_kind k) {
  const int64_t ms[PROXY_KIND_COUNT] = {
      [PROXY_CONNECT] = c->proxy_connect_timeout_ms,         [PROXY_REFRESH] = c->proxy_refresh_timeout_ms,
      [PROXY_SUBSCRIBE] = c->proxy_subscribe_timeout_ms,     [PROXY_PUBLISH] = c->proxy_publish_timeout_ms,
      [PROXY_SUB_REFRESH] = c->proxy_sub_refresh_timeout_ms, [PROXY_RPC] = c->proxy_rpc_timeout_ms};
  return (long)ms[k];
}

int proxy_calls_start(struct server *srv) {
  /* always: the JWKS fetch uses it too, and token_jwks_public_endpoint may appear on a reload */
  srv->http_client = http_client_new(PROXY_MAX_IN_FLIGHT, PROXY_MAX_BODY);
  if (srv->http_client == NULL) return -1;
  if (srv->workers == NULL && (srv->workers = workers_new(PROXY_WORKERS)) == NULL) return -1;
  return 0;
}

void proxy_calls_stop(struct server *srv) {
  http_client_free(srv->http_client);
  srv->http_client = NULL;
}

/* ---- headers ---- */

static bool forwarded(const struct config *c, const char *name, size_t len) {
  for (size_t i = 0; i < c->proxy_http_headers_count; i++)
    if (strlen(c->proxy_http_headers[i]) == len && strncasecmp(c->proxy_http_headers[i], name, len) == 0)
      return true;
  return false;
}

/* The request's header lines: JSON content type, static headers, the stream request's forwarded
 * headers, and for emulated transports the ConnectRequest's `headers` of those names. Returns the
 * number of lines in LINES (the strings in STORE, freed by the caller), at most MAX. */
static size_t build_headers(struct pending *p, const char **lines, size_t max, char **store) {
  const struct config *c = p->srv->boot_cfg;
  size_t n = 0;
  lines[n++] = "Content-Type: application/json";
  for (size_t i = 0; i < c->proxy_static_http_headers_count && n < max; i++)
    lines[n++] = c->proxy_static_http_headers[i];
  *store = p->s->proxy_headers ? strdup(p->s->proxy_headers) : NULL;
  for (char *line = *store, *next; line && *line && n < max; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = '\0';
    else
      next = line + strlen(line);
    lines[n++] = line;
  }
  return n;
}

static size_t connect_headers(struct pending *p, const char **lines, size_t n, size_t max, char ***extra) {
  const Protocol__ConnectRequest *req = p->cmd->connect;
  *extra = calloc(req->n_headers + 1, sizeof **extra);
  for (size_t i = 0; *extra && i < req->n_headers && n < max; i++) {
    const char *k = req->headers[i]->key, *v = req->headers[i]->value;
    if (!forwarded(p->srv->boot_cfg, k, strlen(k)) || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n")) continue;
    size_t len = strlen(k) + strlen(v) + 3;
    if (((*extra)[i] = malloc(len)) == NULL) continue;
    snprintf((*extra)[i], len, "%s: %s", k, v);
    lines[n++] = (*extra)[i];
  }
  return n;
}

/* ---- completion ---- */

static void count_end(struct pending *p, bool failed) {
  struct proxy_stats *ps = &p->srv->stats.proxy[p->kind];
  atomic_fetch_add_explicit(&ps->requests, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&ps->micros, (uint64_t)(p->resp.seconds * 1e6), memory_order_relaxed);
  if (failed) atomic_fetch_add_explicit(&ps->errors, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&ps->in_flight, 1, memory_order_relaxed);
}

/* An error reply with the backend's CODE, MESSAGE and TEMPORARY. */
static void send_error(struct session *s, uint32_t id, uint32_t code, const char *message, bool temporary) {
  Protocol__Error e = PROTOCOL__ERROR__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  e.code = code;
  e.message = (char *)(message && message[0] ? message : codes_error_message(code));
  e.temporary = temporary;
  reply.id = id;
  reply.error = &e;
  session_send_reply(s, &reply);
}

/* What every kind does with an answer that is not a result. Returns true when it handled A. */
static bool answer_not_result(struct pending *p, struct proxy_answer *a) {
  if (a->outcome == PROXY_RESULT) return false;
  if (p->kind == PROXY_CONNECT) { /* as after a rejected token: every later command ⇒ 3501 */
    pthread_mutex_lock(&p->s->lock);
    p->s->unusable = a->outcome != PROXY_DISCONNECT;
    pthread_mutex_unlock(&p->s->lock);
  }
  bool uni = p->kind == PROXY_CONNECT && p->s->transport && p->s->transport->unidirectional;
  if (a->outcome == PROXY_DISCONNECT)
    session_close_reason(p->s, a->code, a->message);
  else if (uni) /* a uni client gets no error replies: its connect fails with a disconnect (codes.h) */
    session_close(p->s, codes_uni_disconnect(a->outcome == PROXY_ERROR ? a->code : ERROR_INTERNAL));
  else if (a->outcome == PROXY_ERROR)
    send_error(p->s, p->cmd->id, a->code, a->message, a->temporary);
  else
    send_error(p->s, p->cmd->id, ERROR_INTERNAL, NULL, true);
  return true;
}

static void on_worker(void *arg) {
  struct pending *p = arg;
  struct proxy_answer a;
  if (p->resp.error == HTTP_CLIENT_OK) {
    proxy_answer_parse(p->resp.status, p->body, p->resp.body_len, &a);
  } else {
    memset(&a, 0, sizeof a);
    a.outcome = PROXY_FAILED;
    snprintf(a.why, sizeof a.why, "%s", p->why);
  }
  count_end(p, a.outcome == PROXY_FAILED);
  if (a.outcome == PROXY_FAILED)
    log_warn("%s proxy: client %s: %s", proxy_kind_name(p->kind), p->s->client_id, a.why);
  uint32_t code = 0;
  if (p->cmd == NULL) /* not a command (refresh): its function decides every outcome */
    p->on_answer(p, &a);
  else if (session_state(p->s) < SESSION_CLOSING && !answer_not_result(p, &a))
    code = p->on_answer(p, &a);
  proxy_answer_cleanup(&a);
  if (p->cmd) protocol_command_finish(p->s, p->cmd, code);
  session_unref(p->s);
  free(p->channel);
  free(p->body);
  free(p);
}

/* On the HTTP client's thread: copy what came back and hand it to a worker. */
static void on_http(void *arg, const struct http_client_response *r) {
  struct pending *p = arg;
  p->resp = *r;
  p->resp.body = NULL;
  p->resp.why = NULL;
  snprintf(p->why, sizeof p->why, "%s", r->error ? r->why : "");
  if (r->error == HTTP_CLIENT_OK && r->body_len && (p->body = malloc(r->body_len)) != NULL)
    memcpy(p->body, r->body, r->body_len);
  else if (r->error == HTTP_CLIENT_OK && r->body_len)
    p->resp.error = HTTP_CLIENT_ENOMEM, snprintf(p->why, sizeof p->why, "out of memory");
  if (workers_post(p->srv->workers, on_worker, p) != 0) on_worker(p); /* stopping: finish here */
}

/* Starts P's request with CALL. Returns SESSION_COMMAND_PENDING, or 0 after answering 100 (P freed). */
static uint32_t start(struct pending *p, struct proxy_call *call) {
  const struct config *c = p->srv->boot_cfg;
  struct session *s = p->s;
  call->client = s->client_id;
  call->transport = s->transport ? s->transport->name : "";
  call->protocol = s->codec->name;
  call->binary = c->proxy_binary_encoding;
  if (c->proxy_include_connection_meta) call->meta = s->meta;
  char *body = proxy_request_body(p->kind, call), *store = NULL, **extra = NULL;
  const char *lines[64];
  size_t n = build_headers(p, lines, 64, &store);
  if (p->kind == PROXY_CONNECT) n = connect_headers(p, lines, n, 64, &extra);
  struct http_client_request req = {.method = "POST",
                                    .url = endpoint_of(c, p->kind),
                                    .headers = lines,
                                    .n_headers = n,
                                    .body = body,
                                    .body_len = body ? strlen(body) : 0,
                                    .timeout_ms = timeout_of(c, p->kind)};
  atomic_fetch_add_explicit(&p->srv->stats.proxy[p->kind].in_flight, 1, memory_order_relaxed);
  session_ref(s);
  /* once sent, P (and the command it finishes) may be answered and freed on a worker at once */
  size_t n_extra = extra && p->kind == PROXY_CONNECT ? p->cmd->connect->n_headers : 0;
  int rc = body ? http_client_send(p->srv->http_client, &req, on_http, p) : -HTTP_CLIENT_ENOMEM;
  free(body);
  free(store);
  for (size_t i = 0; i < n_extra; i++) free(extra[i]);
  free(extra);
  if (rc == 0) return SESSION_COMMAND_PENDING;
  struct http_client_response failed = {.error = (enum http_client_error) - rc,
                                        .why = http_client_strerror((enum http_client_error) - rc)};
  on_http(p, &failed); /* the same path as a failed request, on a worker */
  return SESSION_COMMAND_PENDING;
}

static struct pending *pending_new(struct session *s, const Protocol__Command *cmd, enum proxy_kind kind,
                                   answer_fn fn) {
  struct pending *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  *p = (struct pending){.srv = s->srv, .s = s, .cmd = cmd, .kind = kind, .on_answer = fn};
  return p;
}

/* ---- per kind: the request's fields and what a result does ---- */

static uint32_t connect_answered(struct pending *p, struct proxy_answer *a) {
  struct auth_connection_claims claims;
  char why[128] = "";
  if (proxy_connect_claims(a->result, &claims, why, sizeof why) != AUTH_OK) {
    log_warn("connect proxy: client %s: bad result: %s", p->s->client_id, why);
    pthread_mutex_lock(&p->s->lock);
    p->s->unusable = true;
    pthread_mutex_unlock(&p->s->lock);
    atomic_fetch_add_explicit(&p->srv->stats.proxy[p->kind].errors, 1, memory_order_relaxed);
    send_error(p->s, p->cmd->id, ERROR_INTERNAL, NULL, true);
    return 0;
  }
  ProtobufCBinaryData data = {0}, meta = {0};
  int has_data = proxy_result_data(a->result, &data) == 0;
  json_t *m = json_object_get(a->result, "meta");
  if (m && !json_is_null(m) && (meta.data = (uint8_t *)json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY)))
    meta.len = strlen((char *)meta.data);
  pthread_mutex_lock(&p->s->lock);
  free(p->s->meta.data);
  p->s->meta = meta;
  pthread_mutex_unlock(&p->s->lock);
  uint32_t code = protocol_connect_with(p->s, p->cmd, &claims, has_data ? &data : NULL, true);
  auth_connection_claims_cleanup(&claims);
  free(data.data);
  return code;
}

uint32_t proxy_calls_connect(struct session *s, const Protocol__Command *cmd) {
  const Protocol__ConnectRequest *req = cmd->connect;
  struct pending *p = pending_new(s, cmd, PROXY_CONNECT, connect_answered);
  if (p == NULL) return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  const char *channels[64];
  size_t n = 0;
  for (size_t i = 0; i < req->n_subs && n < 64; i++)
    if (req->subs[i]) channels[n++] = req->subs[i]->key;
  struct proxy_call call = {
      .name = req->name, .version = req->version, .data = req->data, .channels = channels, .n_channels = n};
  return start(p, &call);
}

static uint32_t rpc_answered(struct pending *p, struct proxy_answer *a) {
  Protocol__RPCResult res = PROTOCOL__RPCRESULT__INIT;
  if (proxy_result_data(a->result, &res.data) < 0) {
    send_error(p->s, p->cmd->id, ERROR_INTERNAL, NULL, true);
    return 0;
  }
  SEND_RESULT(p->s, p->cmd->id, rpc, &res);
  free(res.data.data);
  return 0;
}

uint32_t proxy_calls_rpc(struct session *s, const Protocol__Command *cmd) {
  struct pending *p = pending_new(s, cmd, PROXY_RPC, rpc_answered);
  if (p == NULL) return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  struct proxy_call call = {.user = s->user, .method = cmd->rpc->method, .data = cmd->rpc->data};
  return start(p, &call);
}

bool proxy_calls_wants_subscribe(struct session *s, const struct channel_options *opts, const char *channel) {
  if (!opts->proxy_subscribe || s->srv->boot_cfg->proxy_subscribe_endpoint[0] == '\0') return false;
  return !(opts->allow_user_limited_channels && strchr(channel, '#'));
}

static uint32_t subscribe_answered(struct pending *p, struct proxy_answer *a) {
  const Protocol__SubscribeRequest *req = p->cmd->subscribe;
  const struct config *cfg = server_config_get(p->srv);
  const struct channel_options *opts = NULL;
  struct auth_subscription_claims claims;
  char why[128] = "";
  uint32_t code = 0;
  int64_t rc = protocol_check_channel(cfg, req->channel, &opts); /* a reload may have dropped it */
  if (rc != 0) {
    code = protocol_finish(p->s, p->cmd->id, rc);
  } else if (proxy_subscribe_claims(a->result, req->channel, p->s->user, &claims, why, sizeof why) !=
             AUTH_OK) {
    log_warn("subscribe proxy: client %s: bad result: %s", p->s->client_id, why);
    send_error(p->s, p->cmd->id, ERROR_INTERNAL, NULL, true);
  } else {
    bool server_refresh = opts->proxy_sub_refresh && p->srv->boot_cfg->proxy_sub_refresh_endpoint[0];
    code = protocol_subscribe_command(p->s, p->cmd, cfg, opts, &claims, server_refresh);
    auth_subscription_claims_cleanup(&claims);
  }
  config_unref(cfg);
  return code;
}

uint32_t proxy_calls_subscribe(struct session *s, const Protocol__Command *cmd) {
  struct pending *p = pending_new(s, cmd, PROXY_SUBSCRIBE, subscribe_answered);
  if (p == NULL) return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  const Protocol__SubscribeRequest *req = cmd->subscribe;
  struct proxy_call call = {.user = s->user, .channel = req->channel, .token = req->token, .data = req->data};
  return start(p, &call);
}

bool proxy_calls_wants_publish(struct session *s, const struct channel_options *opts) {
  return opts->proxy_publish && s->srv->boot_cfg->proxy_publish_endpoint[0] != '\0';
}

static uint32_t publish_answered(struct pending *p, struct proxy_answer *a) {
  const Protocol__PublishRequest *req = p->cmd->publish;
  const struct config *cfg = server_config_get(p->srv);
  const struct channel_options *opts = NULL;
  ProtobufCBinaryData data = {0};
  uint32_t code = 0;
  int64_t rc = protocol_check_channel(cfg, req->channel, &opts);
  int replaced = rc == 0 ? proxy_result_data(a->result, &data) : 1;
  if (rc != 0)
    code = protocol_finish(p->s, p->cmd->id, rc);
  else if (replaced < 0)
    send_error(p->s, p->cmd->id, ERROR_INTERNAL, NULL, true);
  else
    code = protocol_publish_command(p->s, p->cmd, opts, replaced == 0 ? &data : &req->data,
                                    proxy_result_bool(a->result, "skip_history"));
  free(data.data);
  config_unref(cfg);
  return code;
}

uint32_t proxy_calls_publish(struct session *s, const Protocol__Command *cmd) {
  struct pending *p = pending_new(s, cmd, PROXY_PUBLISH, publish_answered);
  if (p == NULL) return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  const Protocol__PublishRequest *req = cmd->publish;
  struct proxy_call call = {.user = s->user, .channel = req->channel, .data = req->data};
  return start(p, &call);
}

static uint32_t refresh_answered(struct pending *p, struct proxy_answer *a) {
  struct session *s = p->s;
  int64_t extended = -1; /* -1: unchanged (retry at the next ping) */
  if (a->outcome == PROXY_DISCONNECT) {
    session_close_reason(s, a->code, a->message);
  } else if (a->outcome == PROXY_RESULT && proxy_result_bool(a->result, "expired")) {
    session_close(s, DISCONNECT_EXPIRED);
  } else if (a->outcome == PROXY_RESULT) {
    extended = proxy_result_expire_at(a->result);
  } else if (a->outcome == PROXY_ERROR) {
    log_warn("refresh proxy: client %s: error %u %s; asking again at the next ping", s->client_id, a->code,
             a->message);
  }
  pthread_mutex_lock(&s->lock);
  if (extended >= 0) s->proxy_expires_at = extended;
  s->proxy_refreshing = false;
  pthread_mutex_unlock(&s->lock);
  return 0;
}

void proxy_calls_refresh_check(struct session *s) {
  if (s->srv->boot_cfg->proxy_refresh_endpoint[0] == '\0') return;
  pthread_mutex_lock(&s->lock);
  bool due = s->proxy_expires_at > 0 && s->proxy_expires_at <= timer_unix_now() && !s->proxy_refreshing &&
             s->state == SESSION_CONNECTED;
  if (due) s->proxy_refreshing = true;
  pthread_mutex_unlock(&s->lock);
  if (!due) return;
  struct pending *p = pending_new(s, NULL, PROXY_REFRESH, refresh_answered);
  if (p == NULL) {
    pthread_mutex_lock(&s->lock);
    s->proxy_refreshing = false;
    pthread_mutex_unlock(&s->lock);
    return;
  }
  struct proxy_call call = {.user = s->user};
  start(p, &call);
}

static uint32_t sub_refresh_answered(struct pending *p, struct proxy_answer *a) {
  struct session *s = p->s;
  if (a->outcome == PROXY_DISCONNECT) {
    session_close_reason(s, a->code, a->message);
  } else if (a->outcome == PROXY_RESULT && proxy_result_bool(a->result, "expired")) {
    protocol_unsubscribe_with(s, p->channel, UNSUBSCRIBE_EXPIRED, "subscription expired");
  } else if (a->outcome == PROXY_RESULT) {
    hub_set_expiry(p->srv->hub, s, p->channel, proxy_result_expire_at(a->result));
  } else { /* asked again at the next ping */
    if (a->outcome == PROXY_ERROR)
      log_warn("sub_refresh proxy: client %s channel %s: error %u %s", s->client_id, p->channel, a->code,
               a->message);
    hub_set_expiry(p->srv->hub, s, p->channel, timer_unix_now());
  }
  return 0;
}

void proxy_calls_sub_refresh(struct session *s, const char *channel) {
  struct pending *p = pending_new(s, NULL, PROXY_SUB_REFRESH, sub_refresh_answered);
  if (p && (p->channel = strdup(channel)) == NULL) {
    free(p);
    p = NULL;
  }
  if (p == NULL) { /* asked again at the next ping */
    hub_set_expiry(s->srv->hub, s, channel, timer_unix_now());
    return;
  }
  struct proxy_call call = {.user = s->user, .channel = channel};
  start(p, &call);
}
