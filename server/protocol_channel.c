/* protocol_channel: the channel commands (subscribe, unsubscribe, publish, presence, presence_stats,
 * history, sub_refresh) and the one subscribe path shared by client subscribes, token subscriptions at
 * connect and the server API. A subscription that wants a stream position (positioning, recovery) is
 * made under the channel's publish lock (broker with_channel_locked): the position is read, missed
 * publications recovered, the hub joined and the answer queued before any newer publication can be
 * delivered, so a subscriber never misses or repeats one around its subscribe. The same lock orders
 * each channel's membership changes: a subscribe joins the hub, adds its presence entry and pushes its
 * join, and an unsubscribe or detach leaves the hub, removes the entry and pushes the leave, each as one
 * critical section, so a leave never precedes its join and no presence entry outlives its subscription.
 * Lock order: channel lock ⇒ hub ⇒ session; presence stripes are leaves.
 *
 * A client's publish does not wait for the broker (protocol_publish_async): its reply is sent from the
 * broker's completion, which on Redis comes from the engine's I/O thread, holding a reference to the
 * session meanwhile; so a publish reply may follow replies to later commands (PROTOCOL.md §4.3). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "channel.h"
#include "channel_map.h"
#include "codes.h"
#include "history.h"
#include "hub.h"
#include "log.h"
#include "presence.h"
#include "protocol.h"
#include "protocol_internal.h"
#include "proxy_calls.h"
#include "pub_delta.h"
#include "server.h"
#include "session.h"
#include "timer.h"

int64_t protocol_check_channel(const struct config *cfg, const char *channel,
                               const struct channel_options **opts) {
  if (channel[0] == '\0') return DISCONNECT_BAD_REQUEST;
  if (strlen(channel) > CHANNEL_MAX_LENGTH || !channel_name_valid(channel)) return -ERROR_BAD_REQUEST;
  *opts = channel_options_for(cfg, channel);
  return *opts ? 0 : -ERROR_UNKNOWN_CHANNEL;
}

uint32_t protocol_finish(struct session *s, uint32_t id, int64_t rc) {
  if (rc < 0) {
    session_send_error(s, id, (uint32_t)-rc);
    return 0;
  }
  return (uint32_t)rc;
}

void protocol_client_info(const struct session *s, Protocol__ClientInfo *info) {
  protocol__client_info__init(info);
  info->user = s->user;
  info->client = (char *)s->client_id;
  info->conn_info = s->conn_info;
}

void protocol_publish_options(const struct channel_options *opts, struct publish_options *out) {
  out->history_size = channel_has_history(opts) ? (size_t)opts->history_size : 0;
  out->history_ttl_ms = channel_has_history(opts) ? (uint64_t)opts->history_ttl_ms : 0;
  out->history_meta_ttl_ms = (uint64_t)opts->history_meta_ttl_ms;
}

static bool overridden(enum auth_override o, bool fallback) {
  return o == AUTH_OVERRIDE_UNSET ? fallback : o == AUTH_OVERRIDE_TRUE;
}

/* The SUB_* flags PLAN earns from its channel options, the token's overrides and what was asked. */
static unsigned plan_flags(const struct subscribe_plan *p) {
  const struct channel_options *o = p->opts;
  const struct auth_overrides *ov = p->token ? &p->token->override : NULL;
  bool presence = ov ? overridden(ov->presence, o->presence) : o->presence;
  bool join_leave = ov ? overridden(ov->join_leave, o->join_leave) : o->join_leave;
  bool force_push =
      ov ? overridden(ov->force_push_join_leave, o->force_push_join_leave) : o->force_push_join_leave;
  bool force_rec = ov ? overridden(ov->force_recovery, o->force_recovery) : o->force_recovery;
  bool force_pos = ov ? overridden(ov->force_positioning, o->force_positioning) : o->force_positioning;
  bool history = channel_has_history(o);
  bool recoverable =
      history && (force_rec || (p->want_recoverable && (o->allow_recovery || p->history_access)));
  bool positioned = history && (recoverable || force_pos ||
                                (p->want_positioned && (o->allow_positioning || p->history_access)));
  unsigned flags = 0;
  if (presence) flags |= SUB_PRESENCE;
  if (join_leave) flags |= SUB_EMIT_JOIN_LEAVE;
  if (join_leave && (force_push || (p->want_join_leave && p->presence_access))) flags |= SUB_PUSH_JOIN_LEAVE;
  if (p->server_refresh && p->expires_at > 0) flags |= SUB_SERVER_REFRESH;
  if (positioned) flags |= SUB_POSITIONED;
  if (recoverable) flags |= SUB_RECOVERABLE;
  if (p->want_delta && channel_delta_allowed(o, "fossil")) flags |= SUB_DELTA;
  if (o->map_clients_presence_channel_prefix[0] || o->map_users_presence_channel_prefix[0] ||
      (channel_is_map(o) && o->map_remove_client_on_unsubscribe))
    flags |= SUB_MAP_PRESENCE;
  return flags | p->extra_flags;
}

struct locked_subscribe {
  struct session *s;
  struct subscribe_plan *plan;
  unsigned flags;
  uint32_t error;
  Protocol__SubscribeResult local; /* the result unless the plan brings its own */
  struct history_result hist;
};

/* Gives the N recovered publications PUBS (owned) the data form a JSON subscriber with delta compression
 * expects: a JSON string holding the JSON text (the SDK keeps it as its delta base). They go in full.
 * Returns 0, or -1 when one cannot be converted (not UTF-8, out of memory). */
static int delta_json_forms(Protocol__Publication **pubs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint8_t *text = NULL;
    size_t len = pub_delta_json_string(pubs[i]->data.data, pubs[i]->data.len, &text);
    if (len == 0) return -1;
    free(pubs[i]->data.data);
    pubs[i]->data = (ProtobufCBinaryData){len, text};
  }
  return 0;
}

/* Reads the stream position or recovers into RES (under the channel lock). */
static uint32_t position_result(struct locked_subscribe *ls, Protocol__SubscribeResult *res) {
  struct broker *b = ls->s->srv->broker;
  struct subscribe_plan *p = ls->plan;
  if ((ls->flags & SUB_RECOVERABLE) && p->recover) {
    int recovered = 0;
    size_t max = (size_t)ls->s->srv->boot_cfg->client_recovery_max_publication_limit;
    if (b->ops->recover(b, p->channel, p->offset, p->epoch, max, &ls->hist, &recovered) != 0)
      return ERROR_INTERNAL;
    if (!recovered && p->reject_unrecovered) return ERROR_UNRECOVERABLE_POSITION;
    res->was_recovering = true;
    res->recovered = recovered != 0;
    res->offset = recovered ? p->offset : ls->hist.pos.offset;
    res->n_publications = recovered ? ls->hist.n : 0;
    res->publications = recovered ? ls->hist.pubs : NULL;
  } else if (ls->flags & SUB_POSITIONED) {
    if (b->ops->position(b, p->channel, &ls->hist.pos) != 0) return ERROR_INTERNAL;
    res->offset = ls->hist.pos.offset;
  }
  if (ls->flags & SUB_POSITIONED) {
    res->epoch = ls->hist.pos.epoch;
    res->positioned = true;
    res->recoverable = (ls->flags & SUB_RECOVERABLE) != 0;
  }
  if (p->token) res->data = p->token->data;
  res->delta = (ls->flags & SUB_DELTA) != 0;
  if (res->delta && res->n_publications && strcmp(ls->s->codec->name, "json") == 0 &&
      delta_json_forms(res->publications, res->n_publications) != 0)
    return ERROR_INTERNAL;
  if (p->expires_at > 0 && !p->server_refresh) { /* the SDK schedules a sub_refresh from these */
    res->expires = true;
    res->ttl = protocol_ttl(p->expires_at, timer_unix_now());
  }
  return 0;
}

/* The frame that answers the subscription (NULL for SUBSCRIBE_CONNECT). */
static struct frame *answer_frame(struct locked_subscribe *ls, Protocol__SubscribeResult *res) {
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Subscribe sub = PROTOCOL__SUBSCRIBE__INIT;
  if (ls->plan->answer == SUBSCRIBE_CONNECT) return NULL;
  if (ls->plan->answer == SUBSCRIBE_REPLY) {
    reply.id = ls->plan->id;
    reply.subscribe = res;
  } else {
    sub.recoverable = res->recoverable;
    sub.epoch = res->epoch;
    sub.offset = res->offset;
    sub.positioned = res->positioned;
    sub.data = res->data;
    push.channel = (char *)ls->plan->channel;
    push.subscribe = &sub;
    reply.push = &push;
  }
  struct frame *f = NULL;
  return ls->s->codec->encode_reply(&reply, &f) == 0 ? f : NULL;
}

/* What follows a successful hub join, still under the channel lock: the token's expiry, the presence
 * entry and the join push, so that an unsubscribe or detach (which take the same lock) always sees them
 * done and undoes them after. */
static void subscribe_joined(struct locked_subscribe *ls) {
  struct session *s = ls->s;
  struct subscribe_plan *p = ls->plan;
  struct broker *b = s->srv->broker;
  Protocol__ClientInfo info;
  protocol_client_info(s, &info);
  if (p->token) info.chan_info = p->token->info;
  if (p->expires_at > 0) hub_set_expiry(s->srv->hub, s, p->channel, p->expires_at);
  if (ls->flags & SUB_POSITIONED) hub_set_position(s->srv->hub, s, p->channel, ls->hist.pos.offset, ls->hist.pos.epoch);
  if (ls->flags & SUB_PRESENCE) b->ops->presence_add(b, p->channel, &info);
  if (ls->flags & SUB_EMIT_JOIN_LEAVE) b->ops->publish_join_leave(b, p->channel, &info, 1);
}

static void subscribe_locked(void *arg) {
  struct locked_subscribe *ls = arg;
  struct subscribe_plan *p = ls->plan;
  Protocol__SubscribeResult *res = p->result ? p->result : &ls->local;
  ls->error = p->map_fill ? p->map_fill(p->map_arg, res, &ls->hist) : position_result(ls, res);
  if (ls->error) return;
  struct frame *f = answer_frame(ls, res);
  if (f == NULL && p->answer != SUBSCRIBE_CONNECT) {
    ls->error = ERROR_INTERNAL;
    return;
  }
  size_t limit = p->answer == SUBSCRIBE_REPLY ? (size_t)ls->s->srv->boot_cfg->client_channel_limit : 0;
  int rc = hub_subscribe(ls->s->srv->hub, ls->s, p->channel, limit, ls->flags, f);
  frame_unref(f);
  static const uint32_t errors[] = {[HUB_EALREADY] = ERROR_ALREADY_SUBSCRIBED,
                                    [HUB_ELIMIT] = ERROR_LIMIT_EXCEEDED,
                                    [HUB_ENOMEM] = ERROR_INTERNAL,
                                    [HUB_ECLOSED] = ERROR_INTERNAL};
  if (rc < 0)
    ls->error = errors[-rc];
  else
    subscribe_joined(ls);
}

uint32_t protocol_subscribe(struct session *s, struct subscribe_plan *plan) {
  struct broker *b = s->srv->broker;
  /* a map channel is joined through its snapshot (protocol_map.c), never by a server-side subscribe
   * (connection token channels, the server API's subscribe): those skip it */
  if (channel_is_map(plan->opts) && plan->map_fill == NULL) return ERROR_PERMISSION_DENIED;
  struct locked_subscribe ls = {.s = s, .plan = plan, .flags = plan_flags(plan)};
  protocol__subscribe_result__init(&ls.local);
  if (plan->result) protocol__subscribe_result__init(plan->result);
  b->ops->with_channel_locked(b, plan->channel, subscribe_locked, &ls);
  if (!ls.error && (ls.flags & SUB_MAP_PRESENCE)) /* after the lock: it writes other channels */
    protocol_map_presence(s, plan->channel, MAP_PRESENCE_ADD);
  if (plan->result && !ls.error) {
    ls.hist.pubs = NULL; /* now owned by plan->result */
    ls.hist.n = 0;
    if (plan->result->epoch == ls.hist.pos.epoch) plan->result->epoch = strdup(ls.hist.pos.epoch);
  } else if (plan->result) {
    plan->result->publications = NULL;
    plan->result->n_publications = 0;
    plan->result->epoch = (char *)protobuf_c_empty_string;
  }
  history_result_cleanup(&ls.hist);
  return ls.error;
}

void protocol_subscribe_result_cleanup(Protocol__SubscribeResult *res) {
  for (size_t i = 0; i < res->n_publications; i++)
    protobuf_c_message_free_unpacked(&res->publications[i]->base, NULL);
  free(res->publications);
  if (res->epoch != protobuf_c_empty_string) free(res->epoch);
  res->publications = NULL;
  res->n_publications = 0;
  res->epoch = (char *)protobuf_c_empty_string;
}

/* A subscription's end, run under its channel's lock: CHANNEL non-NULL leaves the hub first. */
struct locked_end {
  struct session *s;
  const char *channel;
  struct subscription *sub;
};

static void end_locked(void *arg) {
  struct locked_end *le = arg;
  struct session *s = le->s;
  struct broker *b = s->srv->broker;
  if (le->channel) le->sub = hub_unsubscribe(s->srv->hub, s, le->channel);
  if (le->sub == NULL) return;
  if (le->sub->flags & SUB_PRESENCE) b->ops->presence_remove(b, le->sub->channel_name, s->client_id);
  if (le->sub->flags & SUB_EMIT_JOIN_LEAVE) {
    Protocol__ClientInfo info;
    protocol_client_info(s, &info);
    b->ops->publish_join_leave(b, le->sub->channel_name, &info, 0);
  }
}

void protocol_subscription_ended(struct session *s, struct subscription *sub) {
  struct locked_end le = {.s = s, .sub = sub};
  struct broker *b = s->srv->broker;
  b->ops->with_channel_locked(b, sub->channel_name, end_locked, &le);
  if (sub->flags & SUB_MAP_PRESENCE) protocol_map_presence(s, sub->channel_name, MAP_PRESENCE_REMOVE);
}

struct subscription *protocol_subscription_end(struct session *s, const char *channel) {
  struct locked_end le = {.s = s, .channel = channel};
  struct broker *b = s->srv->broker;
  b->ops->with_channel_locked(b, channel, end_locked, &le);
  if (le.sub && (le.sub->flags & SUB_MAP_PRESENCE)) protocol_map_presence(s, channel, MAP_PRESENCE_REMOVE);
  return le.sub;
}

/* Verifies a subscription token for CHANNEL. Returns 0 with *CLAIMS filled, a negated error (109
 * expired, 103 invalid; 100 for an unknown JWKS kid when not RETRY_OK, after asking for a refresh), a
 * disconnect code (3500: channel, user or client mismatch), or PROTOCOL_AWAIT_KEYS (RETRY_OK: the
 * caller waits for a JWKS refresh with protocol_await_keys). */
static int64_t verify_sub_token(struct session *s, const char *token, const char *channel, bool retry_ok,
                                struct auth_subscription_claims *claims) {
  char why[256];
  const struct config *cfg = server_config_get(s->srv); /* the token keys are reloadable */
  enum auth_status st =
      auth_verify_subscription(cfg->auth, token, timer_unix_now(), claims, why, sizeof why);
  if (st == AUTH_NEED_KEYS && !retry_ok) auth_keys_refresh(cfg->auth, protocol_keys_nothing, NULL);
  config_unref(cfg);
  if (st == AUTH_NEED_KEYS && retry_ok && !protocol_keys_retrying()) return PROTOCOL_AWAIT_KEYS;
  if (st == AUTH_NEED_KEYS && !retry_ok) return -ERROR_INTERNAL; /* sub_refresh: the SDK retries */
  if (st == AUTH_EXPIRED) return -ERROR_TOKEN_EXPIRED;
  if (st != AUTH_OK) {
    log_info("client %s: subscription token for %s rejected: %s", s->client_id, channel, why);
    return -ERROR_PERMISSION_DENIED;
  }
  if (strcmp(claims->channel, channel) != 0 || strcmp(claims->user, s->user) != 0 ||
      (claims->client[0] && strcmp(claims->client, s->client_id) != 0)) {
    auth_subscription_claims_cleanup(claims);
    return DISCONNECT_INVALID_TOKEN;
  }
  return 0;
}

static uint32_t handle_subscribe(struct session *s, const Protocol__Command *cmd, const struct config *cfg) {
  const Protocol__SubscribeRequest *req = cmd->subscribe;
  const struct channel_options *opts = NULL;
  int64_t rc = protocol_check_channel(cfg, req->channel, &opts);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);
  struct auth_subscription_claims claims = {0};
  bool with_token = req->token[0] != '\0';
  if (with_token) {
    rc = verify_sub_token(s, req->token, req->channel, true, &claims);
    if (rc == PROTOCOL_AWAIT_KEYS) return protocol_await_keys(s, cmd, protocol_handle_subscribe);
    if (rc != 0) return protocol_finish(s, cmd->id, rc);
  } else if (proxy_calls_wants_subscribe(s, opts, req->channel)) {
    return proxy_calls_subscribe(s, cmd);
  } else if (channel_is_private(req->channel) || !channel_can_subscribe(cfg, opts, req->channel, s->user)) {
    return protocol_finish(s, cmd->id, -ERROR_PERMISSION_DENIED);
  }
  uint32_t err = protocol_subscribe_command(s, cmd, cfg, opts, with_token ? &claims : NULL, false);
  auth_subscription_claims_cleanup(&claims);
  return err;
}

uint32_t protocol_subscribe_command(struct session *s, const Protocol__Command *cmd, const struct config *cfg,
                                    const struct channel_options *opts, struct auth_subscription_claims *granted,
                                    bool server_refresh) {
  const Protocol__SubscribeRequest *req = cmd->subscribe;
  bool with_token = granted != NULL;
  if (req->type != channel_subscription_type(opts)) /* as Centrifugo: 103 */
    return protocol_finish(s, cmd->id, -ERROR_PERMISSION_DENIED);
  if (channel_is_map(opts)) return protocol_map_subscribe(s, cmd, cfg, opts, granted, server_refresh);
  struct subscribe_plan plan = {
      .channel = req->channel,
      .opts = opts,
      .answer = SUBSCRIBE_REPLY,
      .id = cmd->id,
      .want_positioned = req->positioned,
      .want_recoverable = req->recoverable,
      .want_join_leave = req->join_leave,
      .want_delta = strcmp(req->delta, "fossil") == 0,
      .recover = req->recover,
      .offset = req->offset,
      .epoch = req->epoch,
      .reject_unrecovered = (req->flag & 2) != 0,
      .history_access = channel_can_history(cfg, opts, s->user, true),
      .presence_access = channel_can_presence(cfg, opts, s->user, true),
      .token = with_token ? &granted->opts : NULL,
      .expires_at = with_token ? auth_subscription_expires_at(granted) : 0,
      .server_refresh = server_refresh,
  };
  uint32_t err = protocol_subscribe(s, &plan);
  if (err >= 3000) return err;
  if (err) session_send_error(s, cmd->id, err);
  return 0;
}

uint32_t protocol_handle_unsubscribe(struct session *s, const Protocol__Command *cmd) {
  const char *channel = cmd->unsubscribe->channel;
  if (channel[0] == '\0') return DISCONNECT_BAD_REQUEST;
  protocol_map_paging_drop(s, channel); /* a map snapshot being read: forgotten */
  free(protocol_subscription_end(s, channel)); /* succeeds even when not subscribed */
  Protocol__UnsubscribeResult res = PROTOCOL__UNSUBSCRIBE_RESULT__INIT;
  SEND_RESULT(s, cmd->id, unsubscribe, &res);
  return 0;
}

/* The handlers below hold one reference to the running configuration for their whole run: the
 * channel options they found stay valid across the channel locks they take, whatever reloads happen. */
uint32_t protocol_handle_subscribe(struct session *s, const Protocol__Command *cmd) {
  const struct config *cfg = server_config_get(s->srv);
  uint32_t rc = handle_subscribe(s, cmd, cfg);
  config_unref(cfg);
  return rc;
}

/* A client's publish command in flight: the session (one reference, so that a session that ends
 * meanwhile is not freed under the reply) and the id its reply answers. */
struct client_publish {
  struct session *s;
  uint32_t id;
};

/* The broker's answer (inline, or on the engine's I/O thread): the publish reply or the error reply,
 * which may come after replies to the client's later commands (the SDK matches replies by id), but
 * before the 204 of the emulation POST that carried it (session_op_begin/end). A session that closed
 * meanwhile drops the frame. */
static void client_published(void *arg, int rc, const struct stream_position *pos) {
  struct client_publish *cp = arg;
  (void)pos; /* a client's PublishResult carries no position */
  if (rc == 0) {
    Protocol__PublishResult res = PROTOCOL__PUBLISH_RESULT__INIT;
    SEND_RESULT(cp->s, cp->id, publish, &res);
  } else { /* -BROKER_ELIMIT: the history_max_streams cap; anything else is temporary (Redis away) */
    session_send_error(cp->s, cp->id, rc == -BROKER_ELIMIT ? ERROR_LIMIT_EXCEEDED : ERROR_INTERNAL);
  }
  if (session_op_end(cp->s)) protocol_resume_commands(cp->s); /* an emulation 204 waited for this reply */
  session_unref(cp->s);
  free(cp);
}

static uint32_t handle_publish(struct session *s, const Protocol__Command *cmd, const struct config *cfg) {
  const Protocol__PublishRequest *req = cmd->publish;
  const struct channel_options *opts = NULL;
  int64_t rc = protocol_check_channel(cfg, req->channel, &opts);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);
  if (req->type != 0 || channel_is_map(opts)) return protocol_map_publish(s, cmd, cfg, opts);
  if (req->data.len == 0) return protocol_finish(s, cmd->id, -ERROR_BAD_REQUEST);
  if (proxy_calls_wants_publish(s, opts)) return proxy_calls_publish(s, cmd);
  bool subscribed = hub_is_subscribed(s->srv->hub, s, req->channel);
  if (!channel_can_publish(cfg, opts, s->user, subscribed))
    return protocol_finish(s, cmd->id, -ERROR_PERMISSION_DENIED);
  return protocol_publish_command(s, cmd, opts, &req->data, false);
}

uint32_t protocol_publish_command(struct session *s, const Protocol__Command *cmd,
                                  const struct channel_options *opts, const ProtobufCBinaryData *data,
                                  bool skip_history) {
  const Protocol__PublishRequest *req = cmd->publish;
  if (!channel_data_allowed(opts, data->data, data->len)) /* JSON subscribers would get 3506 */
    return protocol_finish(s, cmd->id, -ERROR_BAD_REQUEST);
  Protocol__ClientInfo info;
  protocol_client_info(s, &info);
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = *data;
  pub.info = &info;
  pub.delta = opts->delta_publish;
  struct publish_options po;
  protocol_publish_options(opts, &po);
  if (skip_history) po.history_size = 0, po.history_ttl_ms = 0;
  struct client_publish *cp = malloc(sizeof *cp);
  if (cp == NULL) return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  *cp = (struct client_publish){session_ref(s), cmd->id};
  session_op_begin(s);
  protocol_publish_async(s->srv, req->channel, &pub, &po, client_published, cp);
  return 0;
}

uint32_t protocol_handle_publish(struct session *s, const Protocol__Command *cmd) {
  const struct config *cfg = server_config_get(s->srv);
  uint32_t rc = handle_publish(s, cmd, cfg);
  config_unref(cfg);
  return rc;
}

static int64_t check_read_in(struct session *s, const struct config *cfg, const char *channel,
                             bool presence) {
  const struct channel_options *opts;
  int64_t rc = protocol_check_channel(cfg, channel, &opts);
  if (rc != 0) return rc;
  if (presence ? !opts->presence : !channel_has_history(opts)) return -ERROR_NOT_AVAILABLE;
  bool subscribed = hub_is_subscribed(s->srv->hub, s, channel);
  bool ok = presence ? channel_can_presence(cfg, opts, s->user, subscribed)
                     : channel_can_history(cfg, opts, s->user, subscribed);
  return ok ? 0 : -ERROR_PERMISSION_DENIED;
}

/* Common checks of presence, presence_stats and history: channel, feature on, permission. *OPTS is
 * set to NULL: the options are not kept past the check. */
static int64_t check_read(struct session *s, const char *channel, bool presence,
                          const struct channel_options **opts) {
  const struct config *cfg = server_config_get(s->srv);
  int64_t rc = check_read_in(s, cfg, channel, presence);
  config_unref(cfg);
  *opts = NULL;
  return rc;
}

uint32_t protocol_handle_presence(struct session *s, const Protocol__Command *cmd) {
  const struct channel_options *opts = NULL;
  int64_t rc = check_read(s, cmd->presence->channel, true, &opts);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);
  struct presence_result pr = {0};
  struct broker *b = s->srv->broker;
  if (b->ops->presence_get(b, cmd->presence->channel, 0, &pr) != 0)
    return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  Protocol__PresenceResult res = PROTOCOL__PRESENCE_RESULT__INIT;
  Protocol__PresenceResult__PresenceEntry *entries = calloc(pr.n ? pr.n : 1, sizeof *entries);
  Protocol__PresenceResult__PresenceEntry **ptrs = calloc(pr.n ? pr.n : 1, sizeof *ptrs);
  if (entries && ptrs) {
    for (size_t i = 0; i < pr.n; i++) {
      protocol__presence_result__presence_entry__init(&entries[i]);
      entries[i].key = pr.infos[i]->client;
      entries[i].value = pr.infos[i];
      ptrs[i] = &entries[i];
    }
    res.n_presence = pr.n;
    res.presence = ptrs;
    SEND_RESULT(s, cmd->id, presence, &res);
  } else {
    session_send_error(s, cmd->id, ERROR_INTERNAL);
  }
  free(entries);
  free(ptrs);
  presence_result_cleanup(&pr);
  return 0;
}

uint32_t protocol_handle_presence_stats(struct session *s, const Protocol__Command *cmd) {
  const struct channel_options *opts = NULL;
  int64_t rc = check_read(s, cmd->presence_stats->channel, true, &opts);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);
  Protocol__PresenceStatsResult res = PROTOCOL__PRESENCE_STATS_RESULT__INIT;
  struct broker *b = s->srv->broker;
  if (b->ops->presence_stats(b, cmd->presence_stats->channel, &res.num_clients, &res.num_users) != 0)
    return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  SEND_RESULT(s, cmd->id, presence_stats, &res);
  return 0;
}

uint32_t protocol_handle_history(struct session *s, const Protocol__Command *cmd) {
  const Protocol__HistoryRequest *req = cmd->history;
  const struct channel_options *opts = NULL;
  int64_t rc = check_read(s, req->channel, false, &opts);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);
  struct history_query q = {.limit = req->limit,
                            .has_since = req->since != NULL,
                            .since_offset = req->since ? req->since->offset : 0,
                            .since_epoch = req->since ? req->since->epoch : NULL,
                            .reverse = req->reverse,
                            .max_limit = (size_t)s->srv->boot_cfg->client_history_max_publication_limit};
  struct history_result hr = {0};
  struct broker *b = s->srv->broker;
  rc = b->ops->history(b, req->channel, &q, &hr);
  if (rc == 0) {
    Protocol__HistoryResult res = PROTOCOL__HISTORY_RESULT__INIT;
    res.publications = hr.pubs;
    res.n_publications = hr.n;
    res.epoch = hr.pos.epoch;
    res.offset = hr.pos.offset;
    SEND_RESULT(s, cmd->id, history, &res);
  } else {
    session_send_error(s, cmd->id,
                       rc == -BROKER_EBADREQUEST      ? ERROR_BAD_REQUEST
                       : rc == -BROKER_EUNRECOVERABLE ? ERROR_UNRECOVERABLE_POSITION
                                                      : ERROR_INTERNAL);
  }
  history_result_cleanup(&hr);
  return 0;
}

uint32_t protocol_handle_sub_refresh(struct session *s, const Protocol__Command *cmd) {
  const Protocol__SubRefreshRequest *req = cmd->sub_refresh;
  if (req->channel[0] == '\0' || req->token[0] == '\0') return DISCONNECT_BAD_REQUEST;
  struct auth_subscription_claims claims = {0};
  int64_t rc = verify_sub_token(s, req->token, req->channel, false, &claims);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);
  Protocol__SubRefreshResult res = PROTOCOL__SUB_REFRESH_RESULT__INIT;
  int64_t exp = auth_subscription_expires_at(&claims);
  hub_set_expiry(s->srv->hub, s, req->channel, exp);
  if (exp > 0) {
    res.expires = true;
    res.ttl = protocol_ttl(exp, timer_unix_now());
  }
  auth_subscription_claims_cleanup(&claims);
  SEND_RESULT(s, cmd->id, sub_refresh, &res);
  return 0;
}
