/* proxy: request bodies and answer parsing of the event proxies (see proxy.h). The fields each kind of
 * request carries are the table FIELDS below (Centrifugo's names); every request has client, transport,
 * protocol and encoding. Answers are checked before anything in them is believed: HTTP 200, a JSON
 * object, and exactly the shape of one outcome, with codes in Centrifugo's ranges. */
#include "proxy.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum field {
  F_USER = 1 << 0,
  F_CHANNEL = 1 << 1,
  F_METHOD = 1 << 2,
  F_TOKEN = 1 << 3,
  F_NAME_VERSION = 1 << 4,
  F_DATA = 1 << 5,
  F_CHANNELS = 1 << 6,
  F_META = 1 << 7,
};

static const struct {
  const char *name;
  unsigned fields;
} kinds[PROXY_KIND_COUNT] = {
    [PROXY_CONNECT] = {"connect", F_NAME_VERSION | F_DATA | F_CHANNELS},
    [PROXY_REFRESH] = {"refresh", F_USER | F_META},
    [PROXY_SUBSCRIBE] = {"subscribe", F_USER | F_CHANNEL | F_TOKEN | F_DATA | F_META},
    [PROXY_PUBLISH] = {"publish", F_USER | F_CHANNEL | F_DATA | F_META},
    [PROXY_SUB_REFRESH] = {"sub_refresh", F_USER | F_CHANNEL | F_META},
    [PROXY_RPC] = {"rpc", F_USER | F_METHOD | F_DATA | F_META},
};

const char *proxy_kind_name(enum proxy_kind kind) {
  return (unsigned)kind < PROXY_KIND_COUNT ? kinds[kind].name : "unknown";
}

static int set_string(json_t *o, const char *key, const char *value) {
  return json_object_set_new(o, key, json_string(value ? value : ""));
}

static json_t *base64_of(const ProtobufCBinaryData *d) {
  char *out = malloc(4 * ((d->len + 2) / 3) + 1);
  if (out == NULL) return NULL;
  EVP_EncodeBlock((unsigned char *)out, d->data, (int)d->len);
  json_t *s = json_string(out);
  free(out);
  return s;
}

/* `data` as raw JSON, or `b64data` when binary encoding is on or the bytes are not JSON. */
static int set_data(json_t *o, const struct proxy_call *call) {
  if (call->data.len == 0) return 0;
  json_t *v = call->binary ? NULL
                           : json_loadb((const char *)call->data.data, call->data.len,
                                        JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
  if (v) return json_object_set_new(o, "data", v);
  return json_object_set_new(o, "b64data", base64_of(&call->data));
}

static int set_meta(json_t *o, const struct proxy_call *call) {
  if (call->meta.len == 0) return 0;
  json_t *v = json_loadb((const char *)call->meta.data, call->meta.len, JSON_DECODE_ANY, NULL);
  return v ? json_object_set_new(o, "meta", v) : 0;
}

static int set_channels(json_t *o, const struct proxy_call *call) {
  if (call->n_channels == 0) return 0;
  json_t *a = json_array();
  for (size_t i = 0; a && i < call->n_channels; i++) json_array_append_new(a, json_string(call->channels[i]));
  return json_object_set_new(o, "channels", a);
}

char *proxy_request_body(enum proxy_kind kind, const struct proxy_call *call) {
  if ((unsigned)kind >= PROXY_KIND_COUNT) return NULL;
  unsigned f = kinds[kind].fields;
  json_t *o = json_object();
  if (o == NULL) return NULL;
  int rc = set_string(o, "client", call->client) | set_string(o, "transport", call->transport) |
           set_string(o, "protocol", call->protocol) |
           set_string(o, "encoding", call->binary ? "binary" : "json");
  if (f & F_USER) rc |= set_string(o, "user", call->user);
  if (f & F_CHANNEL) rc |= set_string(o, "channel", call->channel);
  if (f & F_METHOD) rc |= set_string(o, "method", call->method);
  if ((f & F_TOKEN) && call->token && call->token[0]) rc |= set_string(o, "token", call->token);
  if (f & F_NAME_VERSION) rc |= set_string(o, "name", call->name) | set_string(o, "version", call->version);
  if (f & F_DATA) rc |= set_data(o, call);
  if (f & F_CHANNELS) rc |= set_channels(o, call);
  if (f & F_META) rc |= set_meta(o, call);
  char *body = rc == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return body;
}

/* ---- answers ---- */

static void failed(struct proxy_answer *a, const char *fmt, long arg) {
  a->outcome = PROXY_FAILED;
  snprintf(a->why, sizeof a->why, fmt, arg);
}

/* {"code": N, "message"|"reason": "...", "temporary": bool} with N in [LO, HI]. */
static int parse_code(json_t *o, const char *text_key, unsigned lo, unsigned hi, struct proxy_answer *a) {
  json_t *code = json_object_get(o, "code"), *text = json_object_get(o, text_key);
  json_t *temporary = json_object_get(o, "temporary");
  if (!json_is_object(o) || !json_is_integer(code) || (text && !json_is_string(text)) ||
      (temporary && !json_is_boolean(temporary)))
    return -1;
  json_int_t c = json_integer_value(code);
  if (c < lo || c > hi) return -1;
  a->code = (uint32_t)c;
  a->temporary = json_is_true(temporary);
  free(a->message);
  a->message = strdup(text ? json_string_value(text) : "");
  return a->message ? 0 : -1;
}

void proxy_answer_parse(long status, const char *body, size_t len, struct proxy_answer *out) {
  memset(out, 0, sizeof *out);
  if ((out->message = strdup("")) == NULL) return failed(out, "out of memory", 0);
  if (status != 200) return failed(out, "HTTP status %ld", status);
  json_error_t err;
  json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &err);
  if (!json_is_object(root)) {
    json_decref(root);
    return failed(out, "the answer is not a JSON object (%ld bytes)", (long)len);
  }
  json_t *error = json_object_get(root, "error"), *disconnect = json_object_get(root, "disconnect");
  json_t *result = json_object_get(root, "result");
  if (error && !json_is_null(error)) {
    if (parse_code(error, "message", 400, 1999, out) == 0)
      out->outcome = PROXY_ERROR;
    else
      failed(out, "bad error object (code must be %ld..1999)", 400);
  } else if (disconnect && !json_is_null(disconnect)) {
    if (parse_code(disconnect, "reason", 4000, 4999, out) == 0)
      out->outcome = PROXY_DISCONNECT;
    else
      failed(out, "bad disconnect object (code must be %ld..4999)", 4000);
  } else if (result == NULL || json_is_null(result) || json_is_object(result)) {
    out->outcome = PROXY_RESULT;
    out->result = json_is_object(result) ? json_incref(result) : json_object();
    if (out->result == NULL) failed(out, "out of memory", 0);
  } else {
    failed(out, "result is not an object", 0);
  }
  json_decref(root);
}

void proxy_answer_cleanup(struct proxy_answer *a) {
  json_decref(a->result);
  free(a->message);
  a->result = NULL;
  a->message = NULL;
}

int proxy_result_data(const json_t *result, ProtobufCBinaryData *out) {
  json_t *b64 = json_object_get(result, "b64data"), *data = json_object_get(result, "data");
  *out = (ProtobufCBinaryData){0};
  if (json_is_string(b64)) {
    const char *s = json_string_value(b64);
    return auth_base64_decode(s, strlen(s), false, out) == AUTH_OK ? 0 : -1;
  }
  if (data == NULL || json_is_null(data)) return 1;
  char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
  if (text == NULL) return -1;
  out->data = (uint8_t *)text;
  out->len = strlen(text);
  return 0;
}

bool proxy_result_bool(const json_t *result, const char *key) {
  return json_is_true(json_object_get(result, key));
}

int64_t proxy_result_expire_at(const json_t *result) {
  json_t *v = json_object_get(result, "expire_at");
  return json_is_integer(v) && json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
}

/* A claims object made of RESULT's KEYS plus `sub` = USER (and `channel` when given). */
static json_t *as_claims(const json_t *result, const char *const *keys, const char *user,
                         const char *channel) {
  json_t *o = json_object();
  if (o == NULL) return NULL;
  for (; *keys; keys++) {
    json_t *v = json_object_get(result, *keys);
    if (v && !json_is_null(v)) json_object_set(o, *keys, v);
  }
  if (user) json_object_set_new(o, "sub", json_string(user));
  if (channel) json_object_set_new(o, "channel", json_string(channel));
  return o;
}

enum auth_status proxy_connect_claims(const json_t *result, struct auth_connection_claims *out, char *why,
                                      size_t whylen) {
  static const char *const keys[] = {"expire_at", "info", "b64info", "channels", "subs", NULL};
  json_t *user = json_object_get(result, "user");
  if (user && !json_is_string(user)) {
    memset(out, 0, sizeof *out);
    snprintf(why, whylen, "user is not a string");
    return AUTH_INVALID;
  }
  json_t *o = as_claims(result, keys, user ? json_string_value(user) : "", NULL);
  if (o == NULL) return AUTH_ERROR;
  enum auth_status st = auth_connection_claims_parse(o, 0, out, why, whylen);
  json_decref(o);
  return st;
}

enum auth_status proxy_subscribe_claims(const json_t *result, const char *channel, const char *user,
                                        struct auth_subscription_claims *out, char *why, size_t whylen) {
  static const char *const keys[] = {"expire_at", "info", "b64info", "data", "b64data", "override", NULL};
  json_t *o = as_claims(result, keys, user, channel);
  if (o == NULL) return AUTH_ERROR;
  enum auth_status st = auth_subscription_claims_parse(o, 0, out, why, whylen);
  json_decref(o);
  return st;
}
