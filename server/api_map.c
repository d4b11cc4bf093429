/* api_map: the server API's methods for map channels (Centrifugo 6.8's map_publish, map_remove,
 * map_stats, map_clear). A change from the API carries no ClientInfo and is delivered to the channel's
 * map subscribers like a client's; `key_mode` "if_new" / "if_exists" may suppress a set, and removing a
 * key that is not there is suppressed too: the answer then says so (suppressed, suppress_reason) and
 * nothing is stored or delivered. map_read_state pages the keys (a cursor between pages, as the
 * snapshot a subscriber reads) and map_read_stream the stream of changes; for both `limit` 0 answers
 * the position only, -1 everything (up to READ_ALL). Only map namespaces take these methods (107
 * elsewhere). */
#include <stdint.h>
#include <string.h>

#include "api.h"
#include "broker.h"
#include "channel_map.h"
#include "history.h"
#include "map_state.h"
#include "protocol_internal.h"
#include "server.h"

/* A map method's channel and key, checked, with the configuration the options live in (a reference,
 * dropped by map_call_end). */
struct map_call {
  const char *channel, *key;
  const struct config *cfg;
  const struct channel_options *opts;
};

/* Checks PARAMS' channel (a map namespace: 107 otherwise, on an engine with maps: 108) and, with
 * NEED_KEY, its key (1 to CHANNEL_MAP_KEY_MAX bytes: 107). Returns 0 (then map_call_end) or an API error. */
static int map_call_begin(struct server *srv, json_t *params, bool need_key, struct map_call *c) {
  const char *ch = json_string_value(json_object_get(params, "channel"));
  const char *k = json_string_value(json_object_get(params, "key"));
  c->channel = ch ? ch : "";
  c->key = k ? k : "";
  int rc = api_param_channel(srv, c->channel, &c->cfg, &c->opts);
  if (rc) return rc;
  if (!channel_is_map(c->opts) || (need_key && (c->key[0] == '\0' || strlen(c->key) > CHANNEL_MAP_KEY_MAX)))
    rc = API_ERROR_BAD_REQUEST;
  else if (srv->broker->ops->map_publish == NULL)
    rc = API_ERROR_NOT_AVAILABLE;
  if (rc) config_unref(c->cfg);
  return rc;
}

static void map_call_end(struct map_call *c) { config_unref(c->cfg); }

/* The key modes of map_publish, by name. */
static const struct {
  const char *name;
  enum map_key_mode mode;
} key_modes[] = {{"", MAP_KEY_ANY}, {"if_new", MAP_KEY_IF_NEW}, {"if_exists", MAP_KEY_IF_EXISTS}};

static int key_mode_of(json_t *params, int *mode) {
  json_t *v = json_object_get(params, "key_mode");
  const char *name = v == NULL || json_is_null(v) ? "" : json_string_value(v);
  for (size_t i = 0; name && i < sizeof key_modes / sizeof key_modes[0]; i++)
    if (strcmp(name, key_modes[i].name) == 0) {
      *mode = (int)key_modes[i].mode;
      return 0;
    }
  return API_ERROR_BAD_REQUEST;
}

/* Runs one change (PUB set up but for the key) and builds its answer. */
static int map_change(struct server *srv, const struct map_call *c, Protocol__Publication *pub, int key_mode,
                      json_t **result) {
  struct map_publish_options mo;
  protocol_map_options(c->opts, &mo);
  mo.key_mode = key_mode;
  pub->key = (char *)c->key;
  struct map_publish_result res;
  int rc = srv->broker->ops->map_publish(srv->broker, c->channel, pub, &mo, &res);
  pub->key = (char *)protobuf_c_empty_string;
  if (rc != 0) return rc == -BROKER_ELIMIT ? API_ERROR_LIMIT_EXCEEDED : API_ERROR_INTERNAL;
  if (res.suppress_reason)
    *result = json_pack("{sbss}", "suppressed", 1, "suppress_reason", res.suppress_reason);
  else if (res.pos.offset)
    *result = json_pack("{sIss}", "offset", (json_int_t)res.pos.offset, "epoch", res.pos.epoch);
  else
    *result = json_object();
  return *result ? 0 : API_ERROR_INTERNAL;
}

int api_map_publish(struct server *srv, json_t *params, json_t **result) {
  struct map_call c;
  int rc = map_call_begin(srv, params, true, &c);
  if (rc) return rc;
  int mode = MAP_KEY_ANY;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  rc = key_mode_of(params, &mode);
  if (rc == 0) rc = api_publication_from_params(params, &pub);
  if (rc == 0) rc = map_change(srv, &c, &pub, mode, result);
  api_publication_cleanup(&pub);
  map_call_end(&c);
  return rc;
}

int api_map_remove(struct server *srv, json_t *params, json_t **result) {
  struct map_call c;
  int rc = map_call_begin(srv, params, true, &c);
  if (rc) return rc;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.removed = true;
  rc = map_change(srv, &c, &pub, MAP_KEY_ANY, result);
  map_call_end(&c);
  return rc;
}

int api_map_stats(struct server *srv, json_t *params, json_t **result) {
  struct map_call c;
  int rc = map_call_begin(srv, params, false, &c);
  if (rc) return rc;
  size_t n = srv->broker->ops->map_count(srv->broker, c.channel);
  map_call_end(&c);
  *result = json_pack("{sI}", "num_keys", (json_int_t)n);
  return *result ? 0 : API_ERROR_INTERNAL;
}

int api_map_clear(struct server *srv, json_t *params, json_t **result) {
  struct map_call c;
  int rc = map_call_begin(srv, params, false, &c);
  if (rc) return rc;
  rc = srv->broker->ops->map_clear(srv->broker, c.channel);
  map_call_end(&c);
  if (rc != 0) return API_ERROR_INTERNAL;
  *result = json_object();
  return *result ? 0 : API_ERROR_INTERNAL;
}

/* What `limit` -1 reads at most. */
#define READ_ALL 100000

static size_t limit_of(json_t *params) {
  json_int_t l = json_integer_value(json_object_get(params, "limit"));
  return l < 0 ? READ_ALL : l > READ_ALL ? READ_ALL : (size_t)l;
}

/* ENTRIES[0..N) as a JSON array of publications (key, data, offset, removed, info, tags). */
static json_t *entries_json(Protocol__Publication *const *entries, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) {
    json_t *e = api_message_json(&entries[i]->base);
    if (e == NULL || json_array_append_new(a, e) != 0) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

int api_map_read_state(struct server *srv, json_t *params, json_t **result) {
  struct map_call c;
  int rc = map_call_begin(srv, params, false, &c);
  if (rc) return rc;
  const char *channel = c.channel; /* borrowed from PARAMS: it outlives the configuration reference */
  map_call_end(&c);
  struct broker *b = srv->broker;
  const char *cursor = json_string_value(json_object_get(params, "cursor"));
  struct stream_position pos = {0};
  struct map_page page = {0};
  if (b->ops->position(b, channel, &pos) != 0 ||
      b->ops->map_page(b, channel, cursor ? cursor : "", limit_of(params), 0, &page) != 0)
    return API_ERROR_INTERNAL;
  json_t *entries = entries_json(page.entries, page.n);
  *result = entries ? json_pack("{sosIss}", "entries", entries, "offset", (json_int_t)pos.offset, "epoch", pos.epoch)
                    : NULL;
  if (*result && page.next_cursor && json_object_set_new(*result, "cursor", json_string(page.next_cursor)) != 0) {
    json_decref(*result);
    *result = NULL;
  }
  map_page_cleanup(&page);
  return *result ? 0 : API_ERROR_INTERNAL;
}

int api_map_read_stream(struct server *srv, json_t *params, json_t **result) {
  struct map_call c;
  int rc = map_call_begin(srv, params, false, &c);
  if (rc) return rc;
  const char *channel = c.channel; /* borrowed from PARAMS: it outlives the configuration reference */
  map_call_end(&c);
  json_t *since = json_object_get(params, "since_offset");
  const char *epoch = json_string_value(json_object_get(params, "since_epoch"));
  struct history_query q = {.limit = (int32_t)limit_of(params),
                            .has_since = since != NULL,
                            .since_offset = (uint64_t)json_integer_value(since),
                            .since_epoch = epoch,
                            .reverse = json_is_true(json_object_get(params, "reverse"))};
  struct history_result hr = {0};
  rc = srv->broker->ops->history(srv->broker, channel, &q, &hr);
  if (rc == 0) {
    json_t *entries = entries_json(hr.pubs, hr.n);
    *result = entries ? json_pack("{sosIss}", "entries", entries, "offset", (json_int_t)hr.pos.offset, "epoch",
                                  hr.pos.epoch)
                      : NULL;
  }
  history_result_cleanup(&hr);
  if (rc == -BROKER_EUNRECOVERABLE) return API_ERROR_UNRECOVERABLE_POSITION;
  if (rc == -BROKER_EBADREQUEST) return API_ERROR_BAD_REQUEST;
  return rc == 0 && *result ? 0 : API_ERROR_INTERNAL;
}
