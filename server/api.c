/* api: the server HTTP API (PROTOCOL.md §7) for backends: POST <api_handler_prefix>/<method> with a
 * JSON body, or the legacy POST <api_handler_prefix> with {"method","params"}. Authentication by
 * `X-API-Key: KEY` or `Authorization: apikey KEY` (401 otherwise, always 401 when no key is configured,
 * unless api_insecure). Answers are {"result":{...}} or {"error":{"code","message"}}; with the header
 * `X-Centrifugo-Error-Mode: transport` errors become HTTP statuses instead. Methods are a table. */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "broker.h"
#include "channel.h"
#include "codec_json.h"
#include "codes.h"
#include "handlers.h"
#include "log.h"
#include "server.h"

enum api_error { API_OK = 0, API_ERROR_INTERNAL = 100, API_ERROR_UNKNOWN_CHANNEL = 102,
                 API_ERROR_NOT_FOUND = 104, API_ERROR_BAD_REQUEST = 107, API_ERROR_NOT_AVAILABLE = 108 };

/* A method: reads PARAMS (borrowed), stores a new result object in *result or returns an error code. */
typedef int (*api_method_fn)(struct server *srv, json_t *params, json_t **result);

struct api_method {
  const char *name;
  api_method_fn fn;
};

static const char *api_error_message(int code) {
  return code == API_ERROR_NOT_FOUND ? "method not found" : codes_error_message((uint32_t)code);
}

/* Compares without an early exit, so response time does not reveal how much of the key matched. */
static bool key_equal(const char *given, const char *expected) {
  size_t gl = strlen(given), el = strlen(expected);
  unsigned char diff = (unsigned char)(gl != el);
  for (size_t i = 0; i < el; i++) diff |= (unsigned char)(expected[i] ^ given[i < gl ? i : 0]);
  return diff == 0 && gl > 0;
}

static bool authorized(const struct request *req) {
  const struct config *cfg = req->srv->cfg;
  if (cfg->api_insecure) return true;
  if (cfg->api_key[0] == '\0') return false;
  const char *key = http_header(req, "X-API-Key");
  if (key) return key_equal(key, cfg->api_key);
  const char *auth = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth == NULL || strncasecmp(auth, "apikey ", 7) != 0) return false;
  auth += 7;
  if (strchr(auth, ' ')) return false; /* exactly two fields */
  return key_equal(auth, cfg->api_key);
}

/* Fills PUB from publish params (channel already checked). Returns 0 or an API error. */
static int publication_from_params(json_t *params, Protocol__Publication *pub) {
  json_t *data = json_object_get(params, "data");
  if (data == NULL || json_is_null(data)) return API_ERROR_BAD_REQUEST;
  if (codec_json_raw_from_value(data, &pub->data) != 0) return API_ERROR_INTERNAL;
  json_t *tags = json_object_get(params, "tags");
  if (tags == NULL || json_is_null(tags)) return 0;
  if (!json_is_object(tags)) return API_ERROR_BAD_REQUEST;
  ProtobufCMessage *msg = NULL;
  json_t *wrapper = json_pack("{sO}", "tags", tags);
  int rc = codec_json_message_from_value(&protocol__publication__descriptor, wrapper, &msg);
  json_decref(wrapper);
  if (rc != 0) return API_ERROR_BAD_REQUEST;
  Protocol__Publication *tagged = (Protocol__Publication *)msg;
  pub->n_tags = tagged->n_tags;
  pub->tags = tagged->tags;
  tagged->n_tags = 0;
  tagged->tags = NULL;
  protobuf_c_message_free_unpacked(msg, NULL);
  return 0;
}

static void publication_cleanup(Protocol__Publication *pub) {
  free(pub->data.data);
  for (size_t i = 0; i < pub->n_tags; i++) protobuf_c_message_free_unpacked(&pub->tags[i]->base, NULL);
  free(pub->tags);
}

static int publish_one(struct server *srv, const char *channel, json_t *params) {
  if (channel == NULL || channel[0] == '\0' || strlen(channel) > CHANNEL_MAX_LENGTH) return API_ERROR_BAD_REQUEST;
  if (channel_options_for(srv->cfg, channel) == NULL) return API_ERROR_UNKNOWN_CHANNEL;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  int rc = publication_from_params(params, &pub);
  if (rc == 0 && srv->broker->ops->publish(srv->broker, channel, &pub, NULL) != 0) rc = API_ERROR_INTERNAL;
  if (rc == 0) atomic_fetch_add_explicit(&srv->stats.publications, 1, memory_order_relaxed);
  publication_cleanup(&pub);
  return rc;
}

static int method_publish(struct server *srv, json_t *params, json_t **result) {
  int rc = publish_one(srv, json_string_value(json_object_get(params, "channel")), params);
  if (rc == 0) *result = json_object();
  return rc;
}

static json_t *error_object(int code) {
  return json_pack("{s{sIss}}", "error", "code", (json_int_t)code, "message", api_error_message(code));
}

static int method_broadcast(struct server *srv, json_t *params, json_t **result) {
  json_t *channels = json_object_get(params, "channels");
  if (!json_is_array(channels) || json_array_size(channels) == 0) return API_ERROR_BAD_REQUEST;
  json_t *responses = json_array();
  size_t i;
  json_t *ch;
  json_array_foreach(channels, i, ch) {
    int rc = json_is_string(ch) ? publish_one(srv, json_string_value(ch), params) : API_ERROR_BAD_REQUEST;
    json_array_append_new(responses, rc == 0 ? json_pack("{s{}}", "result") : error_object(rc));
  }
  *result = json_pack("{so}", "responses", responses);
  return 0;
}

static const struct api_method methods[] = {
    {"publish", method_publish},
    {"broadcast", method_broadcast},
};

static const struct api_method *find_method(const char *name) {
  for (size_t i = 0; name && i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].name, name) == 0) return &methods[i];
  return NULL;
}

/* HTTP status for an error in transport error mode. */
static unsigned transport_status(int code) {
  switch (code) {
    case API_ERROR_UNKNOWN_CHANNEL:
    case API_ERROR_NOT_FOUND: return MHD_HTTP_NOT_FOUND;
    case API_ERROR_BAD_REQUEST:
    case API_ERROR_NOT_AVAILABLE: return MHD_HTTP_BAD_REQUEST;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
}

static enum MHD_Result respond_json(struct request *req, unsigned status, json_t *body) {
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (text == NULL) return MHD_NO;
  enum MHD_Result ret = http_respond(req, status, "application/json", text, strlen(text));
  free(text);
  return ret;
}

static enum MHD_Result respond_result(struct request *req, int code, json_t *result) {
  if (code == 0) return respond_json(req, MHD_HTTP_OK, json_pack("{so}", "result", result));
  const char *mode = http_header(req, "X-Centrifugo-Error-Mode");
  if (mode && strcmp(mode, "transport") == 0)
    return respond_json(req, transport_status(code),
                        json_pack("{sIss}", "code", (json_int_t)code, "message", api_error_message(code)));
  return respond_json(req, MHD_HTTP_OK, error_object(code));
}

enum MHD_Result api_handle(struct request *req) {
  if (!authorized(req)) return http_respond(req, MHD_HTTP_UNAUTHORIZED, NULL, NULL, 0);
  json_error_t jerr;
  json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr);
  if (!json_is_object(body)) {
    json_decref(body);
    return http_respond(req, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", "malformed JSON\n", 15);
  }
  const char *prefix = req->srv->cfg->api_handler_prefix;
  const char *name = req->url + strlen(prefix);
  json_t *params = body;
  bool legacy = name[0] == '\0';
  if (legacy) {
    name = json_string_value(json_object_get(body, "method"));
    params = json_object_get(body, "params");
    if (!json_is_object(params)) params = NULL;
  } else {
    name++; /* skip '/' */
  }
  const struct api_method *m = find_method(name);
  json_t *result = NULL;
  int code = m == NULL ? API_ERROR_NOT_FOUND : params == NULL ? API_ERROR_BAD_REQUEST : m->fn(req->srv, params, &result);
  json_decref(body);
  if (m == NULL && !legacy) return http_respond(req, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", "unknown API method\n", 19);
  return respond_result(req, code, result);
}
