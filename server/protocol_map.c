/* protocol_map: map subscriptions (Centrifugo 6.8's subscription type 1) on the client protocol. A
 * client subscribes in steps, each its own subscribe command: snapshot pages (phase 2, the keys in
 * order, a cursor between pages), then catch-up pages of the stream of changes (phase 1), until the
 * server answers live (no phase): from then on it is an ordinary subscriber whose publications carry
 * the key (and `removed` for a removal). Between the steps the session holds a paging record (the
 * stream position frozen at the first page, the epoch, when it started): it is not a subscriber yet and
 * gets no pushes of the channel. Keys written after the first page are left out of later pages (the
 * catch-up brings them, in order), and the live answer is made under the channel's publish lock (the
 * last page or the last catch-up, the subscribe, and its answer), so nothing is missed or repeated.
 *
 * Every step is authorized like a first subscribe (the SDK sends its token with each); ephemeral maps
 * have no stream, so their snapshot's last page is the live answer. A reconnecting client with a
 * position sends one catch-up request with `recover`, and is answered live with what it missed
 * (recovered) or 112, after which the SDK starts over from a snapshot. Publishes with type 1 set or
 * remove a key; the namespace's map_allow_* options and map_client_key decide who may and which key. */
#include <stddef.h>
#include <stdio.h>
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
#include "protocol.h"
#include "protocol_internal.h"
#include "server.h"
#include "session.h"
#include "timer.h"
#include "workers.h"

enum map_phase { PHASE_LIVE = 0, PHASE_STREAM = 1, PHASE_STATE = 2 };

/* One snapshot being read by a session (its map_pagings list, session lock). */
struct map_paging {
  struct map_paging *next;
  uint64_t started_ms;
  uint64_t frozen_offset; /* the stream top when the first page was read */
  char epoch[16];
  uint64_t stream_start; /* the top when the first catch-up page was read; 0 = none read yet */
  bool stream_started;
  char channel[];
};

static struct map_paging **paging_find(struct session *s, const char *channel) {
  struct map_paging **p = &s->map_pagings;
  while (*p && strcmp((*p)->channel, channel) != 0) p = &(*p)->next;
  return p;
}

/* A copy of S's paging record of CHANNEL (found true), taken under the session lock. */
static bool paging_get(struct session *s, const char *channel, struct map_paging *out) {
  pthread_mutex_lock(&s->lock);
  struct map_paging *p = *paging_find(s, channel);
  if (p) {
    *out = *p;
    out->next = NULL;
  }
  pthread_mutex_unlock(&s->lock);
  return p != NULL;
}

/* Stores (creating or replacing) S's paging record of CHANNEL from REC. Returns -1 when out of memory. */
static int paging_put(struct session *s, const char *channel, const struct map_paging *rec) {
  size_t n = strlen(channel) + 1;
  pthread_mutex_lock(&s->lock);
  struct map_paging **at = paging_find(s, channel), *p = *at;
  if (p == NULL) {
    if ((p = malloc(sizeof *p + n)) == NULL) {
      pthread_mutex_unlock(&s->lock);
      return -1;
    }
    p->next = NULL;
    *at = p;
  }
  struct map_paging *next = p->next;
  memcpy(p, rec, sizeof *p);
  p->next = next;
  memcpy(p->channel, channel, n);
  pthread_mutex_unlock(&s->lock);
  return 0;
}

void protocol_map_paging_drop(struct session *s, const char *channel) {
  pthread_mutex_lock(&s->lock);
  struct map_paging **p = &s->map_pagings;
  while (*p) {
    if (channel == NULL || strcmp((*p)->channel, channel) == 0) {
      struct map_paging *gone = *p;
      *p = gone->next;
      free(gone);
    } else {
      p = &(*p)->next;
    }
  }
  pthread_mutex_unlock(&s->lock);
}

size_t protocol_map_pagings(struct session *s) {
  size_t n = 0;
  pthread_mutex_lock(&s->lock);
  for (struct map_paging *p = s->map_pagings; p; p = p->next) n++;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* One map subscribe request being answered, under the channel lock (map_fill). */
struct map_step {
  struct session *s;
  const Protocol__Command *cmd;
  const char *channel;
  struct channel_map_limits limits;
  size_t page_size;
  struct map_paging rec; /* the paging record as it stands; written back unless DROP */
  bool first_page;       /* a snapshot's first page: REC starts here */
  bool recovering;       /* a catch-up request with recover (a reconnect with a position) */
  bool drop;             /* the record ends (live, or an error that ends the exchange) */
  struct map_page page;  /* the snapshot page read (owned) */
  const struct subscribe_plan *plan;
};

/* Sends a page answer (not live): phase, cursor, position, the snapshot entries or the changes. */
static void send_page(struct map_step *st, enum map_phase phase, const char *cursor, uint64_t offset,
                      Protocol__Publication **pubs, size_t n) {
  Protocol__SubscribeResult res = PROTOCOL__SUBSCRIBE_RESULT__INIT;
  res.type = PROTOCOL_SUBSCRIPTION_TYPE_MAP;
  res.phase = phase;
  res.cursor = (char *)(cursor ? cursor : "");
  res.epoch = st->rec.epoch;
  res.offset = offset;
  if (phase == PHASE_STATE) {
    res.state = pubs;
    res.n_state = n;
  } else {
    res.publications = pubs;
    res.n_publications = n;
  }
  SEND_RESULT(st->s, st->cmd->id, subscribe, &res);
}

/* Catches up from SINCE (the frozen offset, or the client's) to the live top into HIST: 0, or 112 when
 * the stream no longer holds it all (another epoch, trimmed, or more than the live limit). */
static uint32_t catch_up(struct map_step *st, uint64_t since, struct history_result *hist) {
  struct broker *b = st->s->srv->broker;
  int recovered = 0;
  if (b->ops->recover(b, st->channel, since, st->rec.epoch, st->limits.live_limit, hist, &recovered) != 0)
    return ERROR_INTERNAL;
  return recovered ? 0 : ERROR_UNRECOVERABLE_POSITION;
}

/* The live answer, under the channel lock: RES gets the last snapshot page (if any), the changes since
 * SINCE (stream modes) and the position the subscription starts at. */
static uint32_t go_live(struct map_step *st, uint64_t since, Protocol__SubscribeResult *res,
                        struct history_result *hist) {
  st->drop = true;
  if (st->limits.stream) {
    uint32_t err = catch_up(st, since, hist);
    if (err) return err;
    res->publications = hist->pubs;
    res->n_publications = hist->n;
    res->offset = hist->pos.offset;
    res->epoch = hist->pos.epoch;
    res->positioned = true;
    res->recoverable = true;
  }
  res->type = PROTOCOL_SUBSCRIPTION_TYPE_MAP;
  res->state = st->page.entries;
  res->n_state = st->page.n;
  res->recovered = st->recovering;
  res->was_recovering = st->recovering;
  if (st->plan->token) res->data = st->plan->token->data;
  if (st->plan->expires_at > 0 && !st->plan->server_refresh) { /* the SDK schedules a sub_refresh */
    res->expires = true;
    res->ttl = protocol_ttl(st->plan->expires_at, timer_unix_now());
  }
  return 0;
}

/* A snapshot page (phase 2), under the channel lock. */
static uint32_t state_step(struct map_step *st, Protocol__SubscribeResult *res, struct history_result *hist) {
  struct broker *b = st->s->srv->broker;
  struct stream_position now = {0};
  if (st->limits.stream && b->ops->position(b, st->channel, &now) != 0) return ERROR_INTERNAL;
  if (st->first_page) {
    st->rec.frozen_offset = now.offset;
    memcpy(st->rec.epoch, now.epoch, sizeof st->rec.epoch);
  } else if (strcmp(st->rec.epoch, now.epoch) != 0) { /* cleared or forgotten meanwhile: start over */
    st->drop = true;
    return ERROR_UNRECOVERABLE_POSITION;
  }
  const Protocol__SubscribeRequest *req = st->cmd->subscribe;
  if (b->ops->map_page(b, st->channel, st->first_page ? "" : req->cursor, st->page_size, st->rec.frozen_offset,
                       &st->page) != 0)
    return ERROR_INTERNAL;
  bool last = st->page.next_cursor == NULL;
  if (last && (!st->limits.stream || st->rec.frozen_offset + st->page_size >= now.offset))
    return go_live(st, st->rec.frozen_offset, res, hist);
  send_page(st, PHASE_STATE, st->page.next_cursor, st->rec.frozen_offset, st->page.entries, st->page.n);
  return PROTOCOL_MAP_NOT_LIVE;
}

/* A catch-up page (phase 1), under the channel lock. */
static uint32_t stream_step(struct map_step *st, Protocol__SubscribeResult *res, struct history_result *hist) {
  struct broker *b = st->s->srv->broker;
  const Protocol__SubscribeRequest *req = st->cmd->subscribe;
  struct stream_position now = {0};
  if (b->ops->position(b, st->channel, &now) != 0) return ERROR_INTERNAL;
  if (strcmp(req->epoch, now.epoch) != 0 || strcmp(st->rec.epoch, now.epoch) != 0) {
    st->drop = true;
    return ERROR_UNRECOVERABLE_POSITION;
  }
  if (!st->rec.stream_started) {
    st->rec.stream_start = now.offset;
    st->rec.stream_started = true;
  }
  if (req->offset + st->page_size >= st->rec.stream_start) return go_live(st, req->offset, res, hist);
  struct history_query q = {.limit = (int32_t)st->page_size, .has_since = true, .since_offset = req->offset,
                            .since_epoch = now.epoch};
  if (b->ops->history(b, st->channel, &q, hist) != 0) return ERROR_INTERNAL;
  if (hist->n == 0 || hist->pubs[0]->offset != req->offset + 1) { /* trimmed past the client: start over */
    st->drop = true;
    return ERROR_UNRECOVERABLE_POSITION;
  }
  send_page(st, PHASE_STREAM, NULL, hist->pubs[hist->n - 1]->offset, hist->pubs, hist->n);
  return PROTOCOL_MAP_NOT_LIVE;
}

static uint32_t map_fill(void *arg, Protocol__SubscribeResult *res, struct history_result *hist) {
  struct map_step *st = arg;
  return st->cmd->subscribe->phase == PHASE_STATE ? state_step(st, res, hist) : stream_step(st, res, hist);
}

/* Checks a request against S's paging record (filling ST->rec). Returns 0, a negated error code or a
 * disconnect code. */
static int64_t check_step(struct map_step *st) {
  struct session *s = st->s;
  const Protocol__SubscribeRequest *req = st->cmd->subscribe;
  bool have = paging_get(s, st->channel, &st->rec);
  uint64_t now = timer_now_ms();
  if (req->phase == PHASE_STATE && req->cursor[0] == '\0') { /* a new snapshot */
    if (have || hub_is_subscribed(s->srv->hub, s, st->channel)) return -ERROR_ALREADY_SUBSCRIBED;
    size_t limit = (size_t)s->srv->boot_cfg->client_channel_limit;
    if (limit && s->sub_count + protocol_map_pagings(s) >= limit) return -ERROR_LIMIT_EXCEEDED;
    st->rec = (struct map_paging){.started_ms = now};
    st->first_page = true;
    return 0;
  }
  if (req->phase == PHASE_STREAM && !st->limits.stream) return -ERROR_BAD_REQUEST;
  if (req->phase == PHASE_STREAM && !have && req->recover) { /* a reconnect: straight to catch-up */
    if (hub_is_subscribed(s->srv->hub, s, st->channel)) return -ERROR_ALREADY_SUBSCRIBED;
    st->rec = (struct map_paging){.started_ms = now, .frozen_offset = req->offset};
    snprintf(st->rec.epoch, sizeof st->rec.epoch, "%s", req->epoch);
    st->recovering = true;
    return 0;
  }
  if (!have) return -ERROR_PERMISSION_DENIED; /* a later page without a first one */
  st->recovering = req->recover;
  if (st->limits.catch_up_timeout_ms && now - st->rec.started_ms > st->limits.catch_up_timeout_ms) {
    protocol_map_paging_drop(s, st->channel);
    return DISCONNECT_SLOW;
  }
  return 0;
}

uint32_t protocol_map_subscribe(struct session *s, const Protocol__Command *cmd, const struct config *cfg,
                                const struct channel_options *opts, struct auth_subscription_claims *granted,
                                bool server_refresh) {
  const Protocol__SubscribeRequest *req = cmd->subscribe;
  struct broker *b = s->srv->broker;
  if (b->ops->map_page == NULL) return protocol_finish(s, cmd->id, -ERROR_NOT_AVAILABLE);
  if (req->phase != PHASE_STATE && req->phase != PHASE_STREAM) return protocol_finish(s, cmd->id, -ERROR_BAD_REQUEST);
  struct map_step st = {.s = s, .cmd = cmd, .channel = req->channel};
  channel_map_limits(opts, &st.limits);
  st.page_size = channel_map_page_size(&st.limits, req->limit);
  int64_t rc = check_step(&st);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);

  struct subscribe_plan plan = {
      .channel = req->channel,
      .opts = opts,
      .answer = SUBSCRIBE_REPLY,
      .id = cmd->id,
      .want_join_leave = req->join_leave,
      .history_access = channel_can_history(cfg, opts, s->user, true),
      .presence_access = channel_can_presence(cfg, opts, s->user, true),
      .token = granted ? &granted->opts : NULL,
      .expires_at = granted ? auth_subscription_expires_at(granted) : 0,
      .server_refresh = server_refresh,
      .extra_flags = st.limits.stream ? SUB_POSITIONED | SUB_RECOVERABLE : 0,
      .map_fill = map_fill,
      .map_arg = &st,
  };
  st.plan = &plan;
  uint32_t err = protocol_subscribe(s, &plan);
  map_page_cleanup(&st.page);
  if (err == PROTOCOL_MAP_NOT_LIVE) {
    if (paging_put(s, req->channel, &st.rec) != 0) session_send_error(s, cmd->id, ERROR_INTERNAL);
    return 0;
  }
  if (st.drop || err == 0 || st.first_page) protocol_map_paging_drop(s, req->channel);
  if (err >= 3000) return err;
  if (err) session_send_error(s, cmd->id, err);
  return 0;
}

/* The key a client's map publish or remove applies to (map_client_key). Returns 0 with *KEY set, or a
 * negated error code. */
static int64_t client_key(struct session *s, const struct channel_options *opts, const char *asked,
                          const char **key) {
  static const struct {
    const char *mode;
    size_t field; /* offset of the key in struct session; 0 = the client's own */
  } modes[] = {{"client_id", offsetof(struct session, client_id)}, {"user_id", 0}};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    if (strcmp(opts->map_client_key, modes[i].mode) != 0) continue;
    *key = modes[i].field ? (const char *)s + modes[i].field : s->user;
    return (*key)[0] ? 0 : -ERROR_PERMISSION_DENIED; /* user_id for an anonymous client */
  }
  *key = asked;
  return asked[0] && strlen(asked) <= CHANNEL_MAP_KEY_MAX ? 0 : -ERROR_BAD_REQUEST;
}

void protocol_map_options(const struct channel_options *opts, struct map_publish_options *out) {
  struct channel_map_limits l;
  channel_map_limits(opts, &l);
  *out = (struct map_publish_options){l.stream, l.stream_size, l.stream_ttl_ms, l.meta_ttl_ms, l.key_ttl_ms,
                                      MAP_KEY_ANY};
}

/* A client's map change to run: copies of what the command said, and the session (a reference) whose
 * reply it owes. */
struct map_change {
  struct session *s;
  uint32_t id;
  char *channel, *key;
  bool removed;
  ProtobufCBinaryData data;
  struct map_publish_options mo;
};

static void map_change_free(struct map_change *mc) {
  free(mc->channel);
  free(mc->key);
  free(mc->data.data);
  free(mc);
}

/* Runs MC and sends its reply (or error). */
static void map_change_run(struct map_change *mc) {
  struct session *s = mc->s;
  struct broker *b = s->srv->broker;
  Protocol__ClientInfo info;
  protocol_client_info(s, &info);
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.key = mc->key;
  pub.removed = mc->removed;
  if (!mc->removed) {
    pub.data = mc->data;
    pub.info = &info;
  }
  struct map_publish_result res;
  int rc = b->ops->map_publish(b, mc->channel, &pub, &mc->mo, &res);
  if (rc == 0) {
    Protocol__PublishResult result = PROTOCOL__PUBLISH_RESULT__INIT;
    SEND_RESULT(s, mc->id, publish, &result);
  } else {
    session_send_error(s, mc->id, rc == -BROKER_ELIMIT ? ERROR_LIMIT_EXCEEDED : ERROR_INTERNAL);
  }
}

/* On a worker (an engine whose calls wait): the reply may follow replies to later commands, but comes
 * before the 204 of the emulation POST that carried it (session_op_begin/end), as for publishes. */
static void map_change_job(void *arg) {
  struct map_change *mc = arg;
  struct session *s = mc->s;
  map_change_run(mc);
  map_change_free(mc);
  if (session_op_end(s)) protocol_resume_commands(s);
  session_unref(s);
}

/* Runs MC here (the memory engine: nothing waits) or hands it to a worker. Takes MC. */
static void map_change_start(struct map_change *mc) {
  struct server *srv = mc->s->srv;
  if (srv->workers && srv->broker->ops->calls_wait && !workers_in_worker(srv->workers)) {
    session_ref(mc->s);
    session_op_begin(mc->s);
    if (workers_post(srv->workers, map_change_job, mc) == 0) return;
    session_op_end(mc->s);
    session_unref(mc->s);
  }
  map_change_run(mc);
  map_change_free(mc);
}

uint32_t protocol_map_publish(struct session *s, const Protocol__Command *cmd, const struct config *cfg,
                              const struct channel_options *opts) {
  const Protocol__PublishRequest *req = cmd->publish;
  struct broker *b = s->srv->broker;
  if (!channel_is_map(opts) || req->type != PROTOCOL_SUBSCRIPTION_TYPE_MAP)
    return protocol_finish(s, cmd->id, -ERROR_BAD_REQUEST); /* a map publish off a map, or the reverse */
  if (b->ops->map_publish == NULL) return protocol_finish(s, cmd->id, -ERROR_NOT_AVAILABLE);
  const char *key = NULL;
  int64_t rc = client_key(s, opts, req->key, &key);
  if (rc != 0) return protocol_finish(s, cmd->id, rc);
  bool subscribed = hub_is_subscribed(s->srv->hub, s, req->channel);
  if (!channel_can_map_write(cfg, opts, s->user, subscribed, req->removed))
    return protocol_finish(s, cmd->id, -ERROR_PERMISSION_DENIED);
  if (!req->removed && !channel_data_allowed(opts, req->data.data, req->data.len))
    return protocol_finish(s, cmd->id, -ERROR_BAD_REQUEST);
  struct map_change *mc = calloc(1, sizeof *mc);
  if (mc == NULL) return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  *mc = (struct map_change){.s = s, .id = cmd->id, .channel = strdup(req->channel), .key = strdup(key),
                            .removed = req->removed};
  protocol_map_options(opts, &mc->mo);
  if (!req->removed && req->data.len) {
    mc->data.data = malloc(req->data.len);
    if (mc->data.data) memcpy(mc->data.data, req->data.data, mc->data.len = req->data.len);
  }
  if (mc->channel == NULL || mc->key == NULL || (!req->removed && req->data.len && mc->data.data == NULL)) {
    map_change_free(mc);
    return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  }
  map_change_start(mc);
  return 0;
}

/* The map presence channels of a subscription: which prefix, what the key is, whether it carries the
 * client's info and goes away with the subscription. */
static const struct {
  size_t prefix; /* offset of the prefix option in struct channel_options */
  int type;      /* the subscription type the presence namespace must have */
  bool by_user;  /* key = user id (anonymous clients have none); else the client id */
} presence_kinds[] = {
    {offsetof(struct channel_options, map_clients_presence_channel_prefix), 2, false},
    {offsetof(struct channel_options, map_users_presence_channel_prefix), 3, true},
};

void protocol_map_presence(struct session *s, const char *channel, enum map_presence_op op) {
  struct broker *b = s->srv->broker;
  if (b->ops->map_publish == NULL) return;
  const struct config *cfg = server_config_get(s->srv);
  const struct channel_options *opts = channel_options_for(cfg, channel);
  for (size_t i = 0; opts && i < sizeof presence_kinds / sizeof presence_kinds[0]; i++) {
    const char *prefix = *(char *const *)((const char *)opts + presence_kinds[i].prefix);
    const char *key = presence_kinds[i].by_user ? s->user : s->client_id;
    if (prefix[0] == '\0' || key[0] == '\0') continue;
    if (op == MAP_PRESENCE_REMOVE && presence_kinds[i].by_user) continue; /* a user's entry expires */
    char target[CHANNEL_MAX_LENGTH + 1];
    int n = snprintf(target, sizeof target, "%s%s", prefix, channel);
    const struct channel_options *to = n > 0 && (size_t)n < sizeof target ? channel_options_for(cfg, target) : NULL;
    if (to == NULL || channel_subscription_type(to) != presence_kinds[i].type) continue;
    Protocol__ClientInfo info;
    protocol_client_info(s, &info);
    Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
    pub.key = (char *)key;
    pub.removed = op == MAP_PRESENCE_REMOVE;
    if (!pub.removed && !presence_kinds[i].by_user) pub.info = &info;
    struct map_publish_options mo;
    protocol_map_options(to, &mo);
    mo.key_mode = MAP_KEY_TOUCH; /* there already (another tab of the user, a refresh): only its expiry */
    struct map_publish_result res;
    if (b->ops->map_publish(b, target, &pub, &mo, &res) != 0)
      log_info("client %s: map presence of %s in %s not written (the key TTL is the safety net)", s->client_id,
               channel, target);
  }
  if (op == MAP_PRESENCE_REMOVE && opts && channel_is_map(opts) && opts->map_remove_client_on_unsubscribe) {
    Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
    pub.key = s->client_id;
    pub.removed = true;
    struct map_publish_options mo;
    protocol_map_options(opts, &mo);
    struct map_publish_result res;
    if (b->ops->map_publish(b, channel, &pub, &mo, &res) != 0)
      log_info("client %s: its key in %s not removed (the key TTL is the safety net)", s->client_id, channel);
  }
  config_unref(cfg);
}
