/* api_methods: the server API's methods (PROTOCOL.md §7), one table from name to function. Methods
 * that act on connections (subscribe, unsubscribe, disconnect, refresh) select live sessions by user,
 * client id and/or session id — at least one must be given, so that anonymous connections can be
 * addressed by their ids. Publications from the API carry no ClientInfo. `data` and `info` arrive as
 * raw JSON text (json_raw, see api.c) and are stored verbatim; publications and client infos in answers
 * are raw values too, so their embedded JSON is written back as it was published. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "auth.h"
#include "broker.h"
#include "channel.h"
#include "codec_json.h"
#include "codes.h"
#include "history.h"
#include "hub.h"
#include "json_raw.h"
#include "presence.h"
#include "protocol.h"
#include "protocol_internal.h"
#include "registry.h"
#include "sd_version.h"
#include "server.h"
#include "session.h"
#include "timer.h"

const char *api_error_message(int code) {
  return code == API_ERROR_NOT_FOUND ? "method not found" : codes_error_message((uint32_t)code);
}

static const char *param_string(json_t *params, const char *key) {
  const char *v = json_string_value(json_object_get(params, key));
  return v ? v : "";
}

/* The channel parameter with its options, or an API error. On success *CFG is a reference to the
 * configuration *OPTS lives in, which the caller drops (config_unref) once done with *OPTS. */
int api_param_channel(struct server *srv, const char *channel, const struct config **cfg,
                         const struct channel_options **opts) {
  *cfg = server_config_get(srv);
  /* the client protocol's check; its disconnect for an empty channel is a bad request here */
  int64_t rc = protocol_check_channel(*cfg, channel, opts);
  if (rc == 0) return 0;
  config_unref(*cfg);
  *cfg = NULL;
  return rc < 0 ? (int)-rc : API_ERROR_BAD_REQUEST;
}

/* Copies the JSON text of params' member KEY into *out (malloc'd): the raw text api.c kept, or for a
 * plain jansson value its compact serialization. Returns 0, 1 when absent or null, -1 out of memory. */
static int param_raw(json_t *params, const char *key, ProtobufCBinaryData *out) {
  json_t *v = json_object_get(params, key);
  const char *text;
  size_t len;
  if (v == NULL || json_is_null(v)) return 1;
  if (!json_raw_text(v, &text, &len)) return codec_json_raw_from_value(v, out) == 0 ? 0 : -1;
  out->data = malloc(len);
  if (out->data == NULL) return -1;
  memcpy(out->data, text, len);
  out->len = len;
  return 0;
}

/* Stores the `tags` object (string values only) as PUB's tags map. Returns 0 or an API error. */
static int tags_from_params(json_t *tags, Protocol__Publication *pub) {
  if (tags == NULL || json_is_null(tags)) return 0;
  if (!json_is_object(tags)) return API_ERROR_BAD_REQUEST;
  pub->tags = calloc(json_object_size(tags) + 1, sizeof *pub->tags);
  if (pub->tags == NULL) return API_ERROR_INTERNAL;
  const char *key;
  json_t *value;
  json_object_foreach(tags, key, value) {
    if (!json_is_string(value)) return API_ERROR_BAD_REQUEST;
    Protocol__Publication__TagsEntry *e = malloc(sizeof *e);
    if (e == NULL) return API_ERROR_INTERNAL;
    protocol__publication__tags_entry__init(e);
    pub->tags[pub->n_tags++] = e;
    if ((e->key = strdup(key)) == NULL || (e->value = strdup(json_string_value(value))) == NULL)
      return API_ERROR_INTERNAL;
  }
  return 0;
}

/* Fills PUB's data and tags from publish params: `data` (JSON) or `b64data` (base64 bytes). */
int api_publication_from_params(json_t *params, Protocol__Publication *pub) {
  const char *b64 = param_string(params, "b64data");
  if (b64[0]) {
    if (auth_base64_decode(b64, strlen(b64), false, &pub->data) != AUTH_OK) return API_ERROR_BAD_REQUEST;
  } else {
    int rc = param_raw(params, "data", &pub->data);
    if (rc != 0) return rc > 0 ? API_ERROR_BAD_REQUEST : API_ERROR_INTERNAL;
  }
  return tags_from_params(json_object_get(params, "tags"), pub);
}

void api_publication_cleanup(Protocol__Publication *pub) {
  free(pub->data.data);
  for (size_t i = 0; i < pub->n_tags; i++) {
    Protocol__Publication__TagsEntry *e = pub->tags[i];
    if (e->key != protobuf_c_empty_string) free(e->key);
    if (e->value != protobuf_c_empty_string) free(e->value);
    free(e);
  }
  free(pub->tags);
}

/* Publishes params' data to CHANNEL; *RESULT gets {offset, epoch} when the channel keeps history. */
static int publish_one(struct server *srv, const char *channel, json_t *params, json_t **result) {
  const struct config *cfg;
  const struct channel_options *opts = NULL;
  int rc = api_param_channel(srv, channel, &cfg, &opts);
  if (rc) return rc;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  struct publish_options po;
  struct stream_position pos = {0};
  protocol_publish_options(opts, &po);
  if (json_is_true(json_object_get(params, "skip_history"))) po = (struct publish_options){0};
  rc = api_publication_from_params(params, &pub);
  pub.delta = opts->delta_publish || json_is_true(json_object_get(params, "delta"));
  if (rc == 0) rc = protocol_publish(srv, channel, &pub, &po, &pos);
  if (rc < 0) rc = rc == -BROKER_ELIMIT ? API_ERROR_LIMIT_EXCEEDED : API_ERROR_INTERNAL;
  api_publication_cleanup(&pub);
  config_unref(cfg);
  if (rc == 0)
    *result = pos.offset ? json_pack("{sIss}", "offset", (json_int_t)pos.offset, "epoch", pos.epoch)
                         : json_object();
  return rc;
}

static int method_publish(struct server *srv, json_t *params, json_t **result) {
  return publish_one(srv, param_string(params, "channel"), params, result);
}

static int method_broadcast(struct server *srv, json_t *params, json_t **result) {
  json_t *channels = json_object_get(params, "channels");
  if (!json_is_array(channels) || json_array_size(channels) == 0) return API_ERROR_BAD_REQUEST;
  json_t *responses = json_array();
  size_t i;
  json_t *ch;
  json_array_foreach(channels, i, ch) {
    json_t *one = NULL;
    int rc =
        json_is_string(ch) ? publish_one(srv, json_string_value(ch), params, &one) : API_ERROR_BAD_REQUEST;
    json_array_append_new(responses, rc == 0 ? json_pack("{so}", "result", one)
                                             : json_pack("{s{sIss}}", "error", "code", (json_int_t)rc,
                                                         "message", api_error_message(rc)));
  }
  *result = json_pack("{so}", "responses", responses);
  return 0;
}

/* The live sessions params address (user / client / session, at least one). Returns how many were
 * stored in *OUT (each referenced; release with release_sessions), or -1 when none is given. */
static long select_sessions(struct server *srv, json_t *params, struct session ***out) {
  const char *user = param_string(params, "user"), *client = param_string(params, "client"),
             *session = param_string(params, "session");
  if (!user[0] && !client[0] && !session[0]) return -1;
  size_t max = registry_count(srv->registry) + 64, kept = 0;
  struct session **all = malloc(max * sizeof *all);
  if (all == NULL) return 0;
  size_t n = registry_snapshot(srv->registry, all, max);
  for (size_t i = 0; i < n; i++) {
    struct session *s = all[i];
    pthread_mutex_lock(&s->lock);
    bool match = s->state == SESSION_CONNECTED && (!user[0] || strcmp(s->user, user) == 0) &&
                 (!client[0] || strcmp(s->client_id, client) == 0) &&
                 (!session[0] || strcmp(s->session_id, session) == 0);
    pthread_mutex_unlock(&s->lock);
    if (match)
      all[kept++] = s;
    else
      session_unref(s);
  }
  *out = all;
  return (long)kept;
}

static void release_sessions(struct session **all, long n) {
  for (long i = 0; i < n; i++) session_unref(all[i]);
  free(all);
}

/* Applies ACT to every session params address. */
static int for_selected(struct server *srv, json_t *params, void (*act)(struct session *, json_t *, void *),
                        void *arg) {
  struct session **all = NULL;
  long n = select_sessions(srv, params, &all);
  if (n < 0) return API_ERROR_BAD_REQUEST;
  for (long i = 0; i < n; i++) act(all[i], params, arg);
  release_sessions(all, n);
  return 0;
}

struct api_subscribe {
  const char *channel;
  const struct channel_options *opts;
  struct auth_sub_options token; /* info and data from the params */
};

static void subscribe_one(struct session *s, json_t *params, void *arg) {
  struct api_subscribe *as = arg;
  json_t *since = json_object_get(params, "recover_since");
  struct subscribe_plan plan = {.channel = as->channel,
                                .opts = as->opts,
                                .answer = SUBSCRIBE_PUSH,
                                .want_positioned = true,
                                .want_recoverable = true,
                                .recover = json_is_object(since),
                                .offset = (uint64_t)json_integer_value(json_object_get(since, "offset")),
                                .epoch = json_string_value(json_object_get(since, "epoch")),
                                .token = &as->token};
  if (plan.epoch == NULL) plan.epoch = "";
  protocol_subscribe(s, &plan);
}

static int method_subscribe(struct server *srv, json_t *params, json_t **result) {
  struct api_subscribe as = {.channel = param_string(params, "channel")};
  const struct config *cfg;
  int rc = api_param_channel(srv, as.channel, &cfg, &as.opts);
  if (rc) return rc;
  if (param_raw(params, "info", &as.token.info) < 0 || param_raw(params, "data", &as.token.data) < 0) {
    free(as.token.info.data);
    config_unref(cfg);
    return API_ERROR_INTERNAL;
  }
  rc = for_selected(srv, params, subscribe_one, &as);
  config_unref(cfg);
  free(as.token.info.data);
  free(as.token.data.data);
  if (rc == 0) *result = json_object();
  return rc;
}

static void unsubscribe_one(struct session *s, json_t *params, void *arg) {
  (void)arg;
  protocol_server_unsubscribe(s, param_string(params, "channel"));
}

static int method_unsubscribe(struct server *srv, json_t *params, json_t **result) {
  if (param_string(params, "channel")[0] == '\0') return API_ERROR_BAD_REQUEST;
  int rc = for_selected(srv, params, unsubscribe_one, NULL);
  if (rc == 0) *result = json_object();
  return rc;
}

static bool whitelisted(json_t *params, const char *client) {
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(params, "whitelist"), i,
                     v) if (json_is_string(v) && strcmp(json_string_value(v), client) == 0) return true;
  return false;
}

static void disconnect_one(struct session *s, json_t *params, void *arg) {
  (void)arg;
  if (whitelisted(params, s->client_id)) return;
  json_t *d = json_object_get(params, "disconnect");
  json_int_t code = json_integer_value(json_object_get(d, "code"));
  const char *reason = json_string_value(json_object_get(d, "reason"));
  session_close_reason(s, code > 0 ? (uint32_t)code : DISCONNECT_FORCE, reason && reason[0] ? reason : NULL);
}

static int method_disconnect(struct server *srv, json_t *params, json_t **result) {
  json_t *d = json_object_get(params, "disconnect");
  json_int_t code = json_integer_value(json_object_get(d, "code"));
  if (d && (!json_is_object(d) || (code != 0 && (code < 3000 || code > 4999)))) return API_ERROR_BAD_REQUEST;
  int rc = for_selected(srv, params, disconnect_one, NULL);
  if (rc == 0) *result = json_object();
  return rc;
}

static void refresh_one(struct session *s, json_t *params, void *arg) {
  (void)arg;
  if (json_is_true(json_object_get(params, "expired"))) {
    session_close(s, DISCONNECT_EXPIRED);
    return;
  }
  json_int_t expire_at = json_integer_value(json_object_get(params, "expire_at"));
  session_set_expiry(s, expire_at > 0 ? (int64_t)expire_at : 0);
}

static int method_refresh(struct server *srv, json_t *params, json_t **result) {
  int rc = for_selected(srv, params, refresh_one, NULL);
  if (rc == 0) *result = json_object();
  return rc;
}

/* Channel parameter for presence and history methods, with the feature check (108 when off). */
static int param_feature_channel(struct server *srv, json_t *params, bool presence, const char **channel) {
  const struct config *cfg;
  const struct channel_options *opts = NULL;
  *channel = param_string(params, "channel");
  int rc = api_param_channel(srv, *channel, &cfg, &opts);
  if (rc) return rc;
  bool on = presence ? opts->presence : channel_has_history(opts);
  config_unref(cfg);
  return on ? 0 : API_ERROR_NOT_AVAILABLE;
}

/* MSG as a raw JSON value (json_raw: its embedded application JSON stays verbatim in the answer), or
 * NULL when it cannot be carried in JSON (binary data from a protobuf client). */
json_t *api_message_json(const ProtobufCMessage *msg) {
  char *text;
  size_t len;
  if (codec_json_message_to_text(msg, &text, &len) != 0) return NULL;
  json_t *v = json_raw_new(text, len);
  free(text);
  return v;
}

static int method_presence(struct server *srv, json_t *params, json_t **result) {
  const char *channel;
  int rc = param_feature_channel(srv, params, true, &channel);
  if (rc) return rc;
  struct presence_result pr = {0};
  if (srv->broker->ops->presence_get(srv->broker, channel, 0, &pr) != 0) return API_ERROR_INTERNAL;
  json_t *map = json_object();
  for (size_t i = 0; i < pr.n; i++) {
    json_t *info = api_message_json(&pr.infos[i]->base);
    if (info) json_object_set_new(map, pr.infos[i]->client, info);
  }
  presence_result_cleanup(&pr);
  *result = json_pack("{so}", "presence", map);
  return 0;
}

static int method_presence_stats(struct server *srv, json_t *params, json_t **result) {
  const char *channel;
  int rc = param_feature_channel(srv, params, true, &channel);
  if (rc) return rc;
  uint32_t clients = 0, users = 0;
  if (srv->broker->ops->presence_stats(srv->broker, channel, &clients, &users) != 0)
    return API_ERROR_INTERNAL;
  *result = json_pack("{sIsI}", "num_clients", (json_int_t)clients, "num_users", (json_int_t)users);
  return 0;
}

static int method_history(struct server *srv, json_t *params, json_t **result) {
  const char *channel;
  int rc = param_feature_channel(srv, params, false, &channel);
  if (rc) return rc;
  json_t *since = json_object_get(params, "since");
  struct history_query q = {.limit = (int32_t)json_integer_value(json_object_get(params, "limit")),
                            .has_since = json_is_object(since),
                            .since_offset = (uint64_t)json_integer_value(json_object_get(since, "offset")),
                            .since_epoch = json_string_value(json_object_get(since, "epoch")),
                            .reverse = json_is_true(json_object_get(params, "reverse"))};
  struct history_result hr = {0};
  rc = srv->broker->ops->history(srv->broker, channel, &q, &hr);
  if (rc == 0) {
    json_t *pubs = json_array();
    for (size_t i = 0; i < hr.n; i++) {
      json_t *p = api_message_json(&hr.pubs[i]->base);
      if (p) json_array_append_new(pubs, p);
    }
    *result = json_pack("{sosssI}", "publications", pubs, "epoch", hr.pos.epoch, "offset",
                        (json_int_t)hr.pos.offset);
  }
  history_result_cleanup(&hr);
  return rc == 0                        ? 0
         : rc == -BROKER_EBADREQUEST    ? API_ERROR_BAD_REQUEST
         : rc == -BROKER_EUNRECOVERABLE ? API_ERROR_UNRECOVERABLE_POSITION
                                        : API_ERROR_INTERNAL;
}

static int method_history_remove(struct server *srv, json_t *params, json_t **result) {
  const char *channel;
  int rc = param_feature_channel(srv, params, false, &channel);
  if (rc) return rc;
  if (srv->broker->ops->history_remove(srv->broker, channel) != 0) return API_ERROR_INTERNAL;
  *result = json_object();
  return 0;
}

struct channels_ctx {
  const char *pattern;
  json_t *map;
};

static void add_channel(const char *channel, size_t subscribers, void *arg) {
  struct channels_ctx *cc = arg;
  if (cc->pattern[0] && fnmatch(cc->pattern, channel, 0) != 0) return;
  json_object_set_new(cc->map, channel, json_pack("{sI}", "num_clients", (json_int_t)subscribers));
}

static int method_channels(struct server *srv, json_t *params, json_t **result) {
  struct channels_ctx cc = {param_string(params, "pattern"), json_object()};
  hub_foreach_channel(srv->hub, add_channel, &cc);
  *result = json_pack("{so}", "channels", cc.map);
  return 0;
}

static void add_node(void *arg, const struct broker_node *n) {
  json_array_append_new(arg, json_pack("{sssssssIsIsIsIsI}", "uid", n->uid, "name", n->name, "version", n->version,
                                       "num_clients", (json_int_t)n->num_clients, "num_users",
                                       (json_int_t)n->num_users, "num_channels", (json_int_t)n->num_channels,
                                       "num_subs", (json_int_t)n->num_subs, "uptime", (json_int_t)n->uptime));
}

/* This node, then every other live node the engine knows of (their last heartbeat). */
static int method_info(struct server *srv, json_t *params, json_t **result) {
  (void)params;
  struct registry_counts rc;
  if (registry_counts(srv->registry, &rc) != 0) return API_ERROR_INTERNAL;
  struct broker_node self = {srv->node_id,
                             srv->boot_cfg->name,
                             SD_VERSION,
                             (uint32_t)rc.sessions,
                             (uint32_t)rc.users,
                             (uint32_t)hub_channel_count(srv->hub),
                             (uint32_t)rc.subscriptions,
                             (uint32_t)((timer_now_ms() - srv->started_ms) / 1000)};
  json_t *nodes = json_array();
  add_node(nodes, &self);
  srv->broker->ops->foreach_node(srv->broker, add_node, nodes);
  *result = json_pack("{so}", "nodes", nodes);
  return 0;
}

/* Sums each channel's subscriber count over the nodes. */
static void merge_channels(json_t *result, json_t *remote) {
  json_t *mine = json_object_get(result, "channels"), *theirs = json_object_get(remote, "channels");
  const char *name;
  json_t *v;
  json_object_foreach(theirs, name, v) {
    json_int_t n = json_integer_value(json_object_get(v, "num_clients"));
    json_t *have = json_object_get(mine, name);
    if (have)
      json_object_set_new(have, "num_clients", json_integer(json_integer_value(json_object_get(have, "num_clients")) + n));
    else
      json_object_set_new(mine, name, json_pack("{sI}", "num_clients", n));
  }
}

static const struct api_method methods[] = {
    {"publish", method_publish, API_SCOPE_NODE, NULL},
    {"broadcast", method_broadcast, API_SCOPE_NODE, NULL},
    {"subscribe", method_subscribe, API_SCOPE_BROADCAST, NULL},
    {"unsubscribe", method_unsubscribe, API_SCOPE_BROADCAST, NULL},
    {"disconnect", method_disconnect, API_SCOPE_BROADCAST, NULL},
    {"refresh", method_refresh, API_SCOPE_BROADCAST, NULL},
    {"presence", method_presence, API_SCOPE_NODE, NULL},
    {"presence_stats", method_presence_stats, API_SCOPE_NODE, NULL},
    {"history", method_history, API_SCOPE_NODE, NULL},
    {"history_remove", method_history_remove, API_SCOPE_NODE, NULL},
    {"channels", method_channels, API_SCOPE_SURVEY, merge_channels},
    {"info", method_info, API_SCOPE_NODE, NULL},
    {"map_publish", api_map_publish, API_SCOPE_NODE, NULL},
    {"map_remove", api_map_remove, API_SCOPE_NODE, NULL},
    {"map_stats", api_map_stats, API_SCOPE_NODE, NULL},
    {"map_clear", api_map_clear, API_SCOPE_NODE, NULL},
    {"map_read_state", api_map_read_state, API_SCOPE_NODE, NULL},
    {"map_read_stream", api_map_read_stream, API_SCOPE_NODE, NULL},
};

const struct api_method *api_find_method(const char *name) {
  for (size_t i = 0; name && i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].name, name) == 0) return &methods[i];
  return NULL;
}
