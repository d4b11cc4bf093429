/* admin_commands: what each admin command does, as one handler per row of the shared command table
 * (indexed by enum sd_admin_cmd; `watch` streams and is served by admin.c). Handlers get a request that
 * sd_admin_validate already accepted, so argument types are known. They inspect sessions through
 * registry snapshots (each session read under its own lock, never while calling into the hub) and
 * channels through hub_foreach_channel, and act only through the thread-safe session, protocol and
 * broker calls. Nothing here keeps state. */
#include <fnmatch.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "broker.h"
#include "channel.h"
#include "codec_json.h"
#include "codes.h"
#include "history.h"
#include "hub.h"
#include "log.h"
#include "protocol.h"
#include "registry.h"
#include "sd_version.h"
#include "server.h"
#include "session.h"
#include "timer.h"

/* A handler: reads ARGS (borrowed, may be NULL), stores a new result in *result, or returns -1 with a
 * message in ERR. */
typedef int (*admin_handler_fn)(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen);

#define UNKNOWN_CHANNEL "unknown channel (no such namespace, or the name is not allowed in it)"

static const char *const state_names[] = {"connecting", "connected", "closing", "closed"};

static const char *arg_string(json_t *args, const char *key) {
  return json_string_value(json_object_get(args, key));
}

/* Returns -1 with MESSAGE in ERR. */
static int fail(char *err, size_t errlen, const char *message, const char *detail) {
  snprintf(err, errlen, "%s%s%s", message, detail ? ": " : "", detail ? detail : "");
  return -1;
}

/* --- session snapshots --- */

struct snapshot {
  struct session **v;
  size_t n;
};

static int by_age(const void *a, const void *b) {
  const struct session *x = *(struct session *const *)a, *y = *(struct session *const *)b;
  if (x->created_ms != y->created_ms) return x->created_ms < y->created_ms ? -1 : 1;
  return strcmp(x->client_id, y->client_id);
}

/* Takes references to every session, oldest first. Returns 0 or -1 (out of memory). */
static int snapshot_take(struct server *srv, struct snapshot *snap) {
  size_t cap = registry_count(srv->registry) + 64; /* sessions may arrive meanwhile; extra ones wait */
  snap->v = malloc(cap * sizeof *snap->v);
  if (snap->v == NULL) return -1;
  snap->n = registry_snapshot(srv->registry, snap->v, cap);
  qsort(snap->v, snap->n, sizeof *snap->v, by_age);
  return 0;
}

static void snapshot_release(struct snapshot *snap) {
  for (size_t i = 0; i < snap->n; i++) session_unref(snap->v[i]);
  free(snap->v);
}

/* Caller holds s->lock. */
static bool subscribed_locked(const struct session *s, const char *channel) {
  for (const struct subscription *sub = s->subs; sub; sub = sub->next)
    if (strcmp(sub->channel_name, channel) == 0) return true;
  return false;
}

static json_t *ago(uint64_t now, uint64_t then) {
  return then == 0 ? json_null() : json_integer((json_int_t)(now > then ? now - then : 0));
}

/* The detail fields `session` adds to a row. Caller holds s->lock. */
static void session_details_locked(struct session *s, json_t *o, uint64_t now) {
  json_t *channels = json_array();
  for (const struct subscription *sub = s->subs; sub; sub = sub->next)
    json_array_append_new(channels, json_string(sub->channel_name));
  json_object_set_new(o, "name", json_string(s->name));
  json_object_set_new(o, "version", json_string(s->version));
  json_object_set_new(o, "state", json_string(state_names[s->state]));
  json_object_set_new(o, "channels", channels);
  json_object_set_new(o, "messages_in", json_integer((json_int_t)s->messages_in));
  json_object_set_new(o, "messages_out", json_integer((json_int_t)s->messages_out));
  json_object_set_new(o, "bytes_in", json_integer((json_int_t)s->bytes_in));
  json_object_set_new(o, "bytes_out", json_integer((json_int_t)s->bytes_out));
  json_object_set_new(o, "last_ping_ago_ms", ago(now, s->last_ping_ms));
  json_object_set_new(o, "last_pong_ago_ms", ago(now, s->last_pong_ms));
}

/* One session as JSON (FULL adds the details), read under its lock. New object for the caller. */
static json_t *session_json(struct session *s, uint64_t now, bool full) {
  pthread_mutex_lock(&s->lock);
  json_t *o =
      json_pack("{ss ss ss ss ss ss sI sI sI}", "client", s->client_id, "session", s->session_id, "user",
                s->user, "transport", s->transport ? s->transport->name : "", "protocol", s->codec->name,
                "remote", s->remote, "connected_ms", (json_int_t)(now - s->created_ms), "subscriptions",
                (json_int_t)s->sub_count, "queued_bytes", (json_int_t)s->queued_bytes);
  if (o && full) session_details_locked(s, o, now);
  pthread_mutex_unlock(&s->lock);
  return o;
}

/* Does S pass the `sessions` filters in ARGS? */
static bool session_matches(struct session *s, json_t *args) {
  const char *channel = arg_string(args, "channel"), *user = arg_string(args, "user");
  const char *transport = arg_string(args, "transport");
  pthread_mutex_lock(&s->lock);
  bool ok = (user == NULL || strcmp(s->user, user) == 0) &&
            (transport == NULL || (s->transport && strcmp(s->transport->name, transport) == 0)) &&
            (channel == NULL || subscribed_locked(s, channel));
  pthread_mutex_unlock(&s->lock);
  return ok;
}

static int cmd_sessions(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  struct snapshot snap;
  if (snapshot_take(srv, &snap) != 0) return fail(err, errlen, "out of memory", NULL);
  uint64_t now = timer_now_ms();
  json_t *rows = json_array();
  for (size_t i = 0; i < snap.n; i++)
    if (session_matches(snap.v[i], args)) json_array_append_new(rows, session_json(snap.v[i], now, false));
  snapshot_release(&snap);
  *result = json_pack("{so}", "sessions", rows);
  return 0;
}

static int cmd_session(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  const char *id = arg_string(args, "id");
  struct session *s = registry_find_any(srv->registry, id);
  if (s == NULL) return fail(err, errlen, "no such session", id);
  *result = session_json(s, timer_now_ms(), true);
  session_unref(s);
  return 0;
}

/* --- info --- */

static void add_subscribers(const char *channel, size_t subscribers, void *arg) {
  (void)channel;
  *(size_t *)arg += subscribers;
}

/* The counters `info` shows, by name. */
static const struct {
  const char *name;
  size_t offset;
} counters[] = {
    {"messages_in", offsetof(struct server_stats, messages_in)},
    {"messages_out", offsetof(struct server_stats, messages_out)},
    {"bytes_in", offsetof(struct server_stats, bytes_in)},
    {"bytes_out", offsetof(struct server_stats, bytes_out)},
    {"publications", offsetof(struct server_stats, publications)},
    {"connections", offsetof(struct server_stats, connections)},
    {"queue_drops", offsetof(struct server_stats, queue_drops)},
};

void admin_add_counters(struct server *srv, json_t *o) {
  for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
    const atomic_uint_fast64_t *c =
        (const atomic_uint_fast64_t *)((const char *)&srv->stats + counters[i].offset);
    json_object_set_new(o, counters[i].name, json_integer((json_int_t)atomic_load(c)));
  }
}

static int cmd_info(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  (void)args;
  struct registry_counts rc;
  if (registry_counts(srv->registry, &rc) != 0) return fail(err, errlen, "out of memory", NULL);
  size_t users = rc.users, subs = 0;
  hub_foreach_channel(srv->hub, add_subscribers, &subs);
  uint64_t up = timer_now_ms() - srv->started_ms;
  json_t *o =
      json_pack("{ss ss? ss sI sI ss sI sI sI sI}", "uid", srv->node_id, "name", srv->boot_cfg->name,
                "version", SD_VERSION, "uptime", (json_int_t)(up / 1000), "uptime_ms", (json_int_t)up,
                "engine", srv->broker->ops->name, "num_clients", (json_int_t)registry_count(srv->registry),
                "num_users", (json_int_t)users, "num_channels", (json_int_t)hub_channel_count(srv->hub),
                "num_subs", (json_int_t)subs);
  if (o == NULL) return fail(err, errlen, "out of memory", NULL);
  if (srv->broker->ops->history_streams)
    json_object_set_new(o, "history_streams",
                        json_integer((json_int_t)srv->broker->ops->history_streams(srv->broker)));
  admin_add_counters(srv, o);
  *result = o;
  return 0;
}

/* --- top --- */

static void add_surveyed_node(void *arg, const char *answer, size_t len) {
  json_t *node = json_loadb(answer, len, 0, NULL);
  if (json_is_object(node))
    json_array_append_new(arg, node);
  else
    json_decref(node);
}

/* A node the engine knows of (its heartbeat) that did not answer the survey: listed with what its last
 * heartbeat said, marked {"answered": false}. */
static void add_silent_node(void *arg, const struct broker_node *n) {
  size_t i;
  json_t *node;
  json_array_foreach(arg, i, node) {
    if (strcmp(json_string_value(json_object_get(node, "uid")), n->uid) == 0) return;
  }
  json_array_append_new(arg, json_pack("{ss ss sb sI sI}", "uid", n->uid, "name", n->name, "answered", 0,
                                       "num_clients", (json_int_t)n->num_clients, "uptime_ms",
                                       (json_int_t)n->uptime * 1000));
}

/* This node's sample, then every other node's that answers the survey in time (Redis engine), then the
 * nodes that did not (from their heartbeats). The survey waits for the slowest node (the engine's
 * survey timeout at most) on the admin thread. */
static int cmd_top(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  (void)args; /* --interval and --channels are streamctl's: every sample has the same shape */
  json_t *nodes = json_array(), *self = admin_top_node(srv);
  if (nodes == NULL || self == NULL || json_array_append_new(nodes, self) != 0) {
    json_decref(nodes);
    return fail(err, errlen, "out of memory", NULL);
  }
  struct broker *b = srv->broker;
  if (b->ops->survey_api(b, ADMIN_TOP_METHOD, "{}", 2, add_surveyed_node, nodes) != 0)
    log_warn("admin: top: the other nodes could not be asked");
  b->ops->foreach_node(b, add_silent_node, nodes);
  *result = json_pack("{so}", "nodes", nodes);
  return 0;
}

/* --- channels --- */

struct channel_walk {
  const char *pattern;
  json_t *rows;
};

/* Runs under the hub's read lock: only builds JSON. */
static void collect_channel(const char *channel, size_t subscribers, void *arg) {
  struct channel_walk *w = arg;
  if (w->pattern && fnmatch(w->pattern, channel, 0) != 0) return;
  json_array_append_new(w->rows,
                        json_pack("{sssI}", "channel", channel, "subscribers", (json_int_t)subscribers));
}

static int by_channel(const void *a, const void *b) {
  return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "channel")),
                json_string_value(json_object_get(*(json_t *const *)b, "channel")));
}

/* Adds what the broker knows of the channel's history (length, last offset, epoch) to ROW. A query
 * with limit 0 reads the position and the kept count under the stream's lock without unpacking a
 * publication, and creates no stream. */
static void add_history_state(struct server *srv, const char *channel, json_t *row) {
  struct history_query q = {.limit = 0};
  struct history_result hr = {0};
  if (srv->broker->ops->history(srv->broker, channel, &q, &hr) == 0) {
    json_object_set_new(row, "num_pubs", json_integer((json_int_t)hr.stored));
    json_object_set_new(row, "offset", json_integer((json_int_t)hr.pos.offset));
    json_object_set_new(row, "epoch", json_string(hr.pos.epoch));
  }
  history_result_cleanup(&hr);
}

/* Adds the channel's presence and history settings and state to ROW ({"channel":...}). */
static void add_channel_state(struct server *srv, const struct config *cfg, json_t *row) {
  const char *channel = json_string_value(json_object_get(row, "channel"));
  const struct channel_options *o = channel_options_for(cfg, channel);
  uint32_t clients = 0, users = 0;
  if (o == NULL) return;
  json_object_set_new(row, "presence", json_boolean(o->presence));
  if (o->presence && srv->broker->ops->presence_stats(srv->broker, channel, &clients, &users) == 0) {
    json_object_set_new(row, "presence_clients", json_integer(clients));
    json_object_set_new(row, "presence_users", json_integer(users));
  }
  json_object_set_new(row, "join_leave", json_boolean(o->join_leave));
  json_object_set_new(row, "history_size", json_integer((json_int_t)o->history_size));
  json_object_set_new(row, "history_ttl_ms", json_integer((json_int_t)o->history_ttl_ms));
  if (channel_has_history(o)) add_history_state(srv, channel, row);
}

static int cmd_channels(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  struct channel_walk w = {arg_string(args, "pattern"), json_array()};
  if (w.rows == NULL) return fail(err, errlen, "out of memory", NULL);
  const struct config *cfg = server_config_get(srv); /* one configuration for the whole listing */
  hub_foreach_channel(srv->hub, collect_channel, &w);
  size_t n = json_array_size(w.rows);
  json_t **sorted = malloc((n + 1) * sizeof *sorted);
  json_t *rows = json_array();
  for (size_t i = 0; sorted && i < n; i++) sorted[i] = json_array_get(w.rows, i);
  if (sorted) qsort(sorted, n, sizeof *sorted, by_channel);
  for (size_t i = 0; sorted && i < n; i++) {
    add_channel_state(srv, cfg, sorted[i]);
    json_array_append(rows, sorted[i]);
  }
  config_unref(cfg);
  free(sorted);
  json_decref(w.rows);
  *result = json_pack("{so}", "channels", rows);
  return 0;
}

/* {client, session, user} of every local subscriber of CHANNEL, oldest session first. */
static json_t *channel_clients(struct server *srv, const char *channel) {
  struct snapshot snap;
  json_t *clients = json_array();
  if (snapshot_take(srv, &snap) != 0) return clients;
  for (size_t i = 0; i < snap.n; i++) {
    struct session *s = snap.v[i];
    pthread_mutex_lock(&s->lock);
    if (subscribed_locked(s, channel))
      json_array_append_new(
          clients, json_pack("{ssssss}", "client", s->client_id, "session", s->session_id, "user", s->user));
    pthread_mutex_unlock(&s->lock);
  }
  snapshot_release(&snap);
  return clients;
}

static int cmd_channel(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  const char *name = arg_string(args, "name");
  if (strlen(name) > CHANNEL_MAX_LENGTH) return fail(err, errlen, "channel name too long", NULL);
  const struct config *cfg = server_config_get(srv);
  if (channel_options_for(cfg, name) == NULL) {
    config_unref(cfg);
    return fail(err, errlen, UNKNOWN_CHANNEL, name);
  }
  /* The namespace is what precedes ':' (after a private channel's '$'), "" without one. */
  const char *start = name + (name[0] == '$'), *colon = strchr(start, ':');
  size_t ns_len = colon ? (size_t)(colon - start) : 0;
  json_t *row = json_pack("{ss so sI}", "channel", name, "namespace", json_stringn(start, ns_len),
                          "subscribers", (json_int_t)hub_subscriber_count(srv->hub, name));
  if (row) add_channel_state(srv, cfg, row);
  config_unref(cfg);
  if (row == NULL) return fail(err, errlen, "out of memory", NULL);
  json_object_set_new(row, "clients", channel_clients(srv, name));
  *result = row;
  return 0;
}

/* --- actions --- */

static int cmd_publish(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  const char *channel = arg_string(args, "channel");
  if (strlen(channel) > CHANNEL_MAX_LENGTH) return fail(err, errlen, "channel name too long", NULL);
  const struct config *cfg = server_config_get(srv);
  const struct channel_options *o = channel_options_for(cfg, channel);
  struct publish_options po;
  if (o) protocol_publish_options(o, &po);
  config_unref(cfg);
  if (o == NULL) return fail(err, errlen, UNKNOWN_CHANNEL, channel);
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  struct stream_position pos = {0};
  if (codec_json_raw_from_value(json_object_get(args, "data"), &pub.data) != 0)
    return fail(err, errlen, "out of memory", NULL);
  int rc = protocol_publish(srv, channel, &pub, &po, &pos);
  free(pub.data.data);
  if (rc != 0) return fail(err, errlen, "publish failed", "broker error");
  *result = pos.epoch[0] ? json_pack("{sIss}", "offset", (json_int_t)pos.offset, "epoch", pos.epoch)
                         : json_object();
  return 0;
}

/* Finds the session named by args.id (new reference) or fails with a message. */
static struct session *find_session(struct server *srv, json_t *args, char *err, size_t errlen) {
  const char *id = arg_string(args, "id");
  struct session *s = registry_find_any(srv->registry, id);
  if (s == NULL) fail(err, errlen, "no such session", id);
  return s;
}

static int cmd_message(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  struct session *s = find_session(srv, args, err, errlen);
  if (s == NULL) return -1;
  ProtobufCBinaryData data = {0};
  int rc = codec_json_raw_from_value(json_object_get(args, "data"), &data) == 0
               ? 0
               : fail(err, errlen, "out of memory", NULL);
  if (rc == 0 && session_state(s) != SESSION_CONNECTED) /* no pushes before the connect reply */
    rc = fail(err, errlen, "message not delivered", "the session is not connected");
  if (rc == 0 && protocol_send_message(s, data.data, data.len) != 0)
    rc = fail(err, errlen, "message not delivered", "the session is closing or its queue is full");
  free(data.data);
  session_unref(s);
  if (rc == 0) *result = json_object();
  return rc;
}

static int cmd_disconnect(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  struct session *s = find_session(srv, args, err, errlen);
  if (s == NULL) return -1;
  json_t *code_value = json_object_get(args, "code");
  uint32_t code = code_value ? (uint32_t)json_integer_value(code_value) : DISCONNECT_FORCE;
  session_close_reason(s, code, arg_string(args, "reason"));
  *result = json_pack("{sssI}", "client", s->client_id, "code", (json_int_t)code);
  session_unref(s);
  return 0;
}

static int cmd_unsubscribe(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  struct session *s = find_session(srv, args, err, errlen);
  if (s == NULL) return -1;
  const char *channel = arg_string(args, "channel");
  int rc = protocol_server_unsubscribe(s, channel);
  session_unref(s);
  if (rc != 0) return fail(err, errlen, "the session is not subscribed to", channel);
  *result = json_object();
  return 0;
}

static int cmd_reload(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  (void)srv, (void)args;
  /* main's thread waits for SIGHUP with sigwait(); every thread has it blocked, so this reaches it. */
  if (kill(getpid(), SIGHUP) != 0) return fail(err, errlen, "cannot signal the server", NULL);
  *result = json_object();
  return 0;
}

/* One command's help, as JSON (FULL adds the description and the arguments). */
static json_t *command_help(const struct sd_admin_command *c, bool full) {
  char usage[256];
  json_t *o = json_pack("{ssssss}", "name", c->name, "usage", sd_admin_usage(c, usage, sizeof usage),
                        "summary", c->summary);
  if (!full || o == NULL) return o;
  json_t *list = json_array();
  for (size_t i = 0; i < c->n_args + c->n_opts; i++) {
    const struct sd_admin_arg *a = i < c->n_args ? &c->args[i] : &c->opts[i - c->n_args];
    json_array_append_new(list, json_pack("{ssssss}", "name", i < c->n_args ? a->meta : a->key, "kind",
                                          i < c->n_args ? "argument" : "option", "help", a->help));
  }
  json_object_set_new(o, "description", json_string(c->description));
  json_object_set_new(o, "arguments", list);
  return o;
}

static int cmd_help(struct server *srv, json_t *args, json_t **result, char *err, size_t errlen) {
  (void)srv;
  const char *name = arg_string(args, "command");
  if (name) {
    const struct sd_admin_command *c = sd_admin_find(name);
    if (c == NULL) return fail(err, errlen, "unknown command", name);
    *result = command_help(c, true);
    return 0;
  }
  size_t n;
  const struct sd_admin_command *all = sd_admin_commands(&n);
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(list, command_help(&all[i], false));
  *result = json_pack("{so}", "commands", list);
  return 0;
}

/* The dispatch table: one handler per command of the shared table; watch and trace are served by
 * admin.c. */
static const admin_handler_fn handlers[SD_ADMIN_CMD_COUNT] = {
    [SD_ADMIN_INFO] = cmd_info,
    [SD_ADMIN_SESSIONS] = cmd_sessions,
    [SD_ADMIN_SESSION] = cmd_session,
    [SD_ADMIN_CHANNELS] = cmd_channels,
    [SD_ADMIN_CHANNEL] = cmd_channel,
    [SD_ADMIN_PUBLISH] = cmd_publish,
    [SD_ADMIN_MESSAGE] = cmd_message,
    [SD_ADMIN_DISCONNECT] = cmd_disconnect,
    [SD_ADMIN_UNSUBSCRIBE] = cmd_unsubscribe,
    [SD_ADMIN_WATCH] = NULL,
    [SD_ADMIN_TRACE] = NULL,
    [SD_ADMIN_TOP] = cmd_top,
    [SD_ADMIN_RELOAD] = cmd_reload,
    [SD_ADMIN_HELP] = cmd_help,
};

json_t *admin_execute(struct server *srv, const struct sd_admin_command *cmd, json_t *args) {
  char err[512] = "";
  json_t *result = NULL;
  admin_handler_fn fn = handlers[cmd->id];
  if (fn == NULL)
    return json_pack("{ss}", "error", "this command streams; the admin socket serves it itself");
  if (fn(srv, args, &result, err, sizeof err) != 0 || result == NULL) {
    json_decref(result);
    return json_pack("{ss}", "error", err[0] ? err : "out of memory");
  }
  return json_pack("{so}", "result", result);
}

json_t *admin_publication_line(const char *channel, const Protocol__Publication *pub) {
  json_t *value = NULL;
  if (codec_json_encode_message(&pub->base, &value) != 0) return NULL;
  return json_pack("{ssso}", "channel", channel, "publication", value);
}
