/* proxy: the JSON of Centrifugo's event proxies, without any I/O. It builds the body of each proxy
 * request (connect, refresh, subscribe, publish, sub_refresh, rpc: which fields each carries is one
 * table in proxy.c) and parses the backend's answer into a struct proxy_answer: a result object, an
 * error {code 400..1999, message, temporary} or a disconnect {code 4000..4999, reason}; anything else
 * (an HTTP status other than 200, a body that is not such JSON, codes out of range) is PROXY_FAILED
 * with a reason for the log, which the caller answers as internal error 100 (temporary).
 *
 * Threads: pure functions on caller-owned data; any thread. */
#ifndef PROXY_H
#define PROXY_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"

enum proxy_kind {
  PROXY_CONNECT,
  PROXY_REFRESH,
  PROXY_SUBSCRIBE,
  PROXY_PUBLISH,
  PROXY_SUB_REFRESH,
  PROXY_RPC,
  PROXY_KIND_COUNT
};

/* "connect", "refresh", "subscribe", "publish", "sub_refresh", "rpc" (logs and metric labels). */
const char *proxy_kind_name(enum proxy_kind kind);

/* What one proxy request says about its client and command; every pointer is borrowed, NULL or a
 * zero length meaning "not given". Which of them a request carries depends on its kind. */
struct proxy_call {
  const char *client, *transport, *protocol; /* protocol "json" or "protobuf" */
  bool binary;                               /* proxy_binary_encoding: data as b64data, encoding "binary" */
  const char *user, *channel, *method, *token, *name, *version;
  ProtobufCBinaryData data;    /* the client's payload (raw JSON, or bytes from a protobuf client) */
  const char *const *channels; /* connect: the channels of ConnectRequest.subs */
  size_t n_channels;
  ProtobufCBinaryData meta; /* the connection's meta (raw JSON), sent when len > 0 */
};

/* The JSON body of a KIND request for CALL: a malloc'd NUL-terminated string the caller frees, or
 * NULL when out of memory. Data that is not valid JSON goes as b64data even without BINARY (a protobuf
 * client may send any bytes; `data` must stay JSON). */
char *proxy_request_body(enum proxy_kind kind, const struct proxy_call *call);

enum proxy_outcome { PROXY_RESULT, PROXY_ERROR, PROXY_DISCONNECT, PROXY_FAILED };

struct proxy_answer {
  enum proxy_outcome outcome;
  json_t *result; /* PROXY_RESULT: the result object (owned; `{}` when the answer had none) */
  uint32_t code;  /* PROXY_ERROR / PROXY_DISCONNECT */
  char *message;  /* error message or disconnect reason (owned, never NULL after a parse) */
  bool temporary; /* PROXY_ERROR */
  char why[160];  /* PROXY_FAILED: what was wrong, for the log */
};

/* Parses an answer with HTTP STATUS and BODY[0..LEN) into *OUT (always filled; release with
 * proxy_answer_cleanup). Never fails otherwise: what is not a valid answer is PROXY_FAILED. */
void proxy_answer_parse(long status, const char *body, size_t len, struct proxy_answer *out);

void proxy_answer_cleanup(struct proxy_answer *a);

/* `b64data` (decoded) or `data` (compact raw JSON) of RESULT into *OUT (malloc'd, the caller frees
 * out->data). Returns 1 when RESULT has neither, 0 when found, -1 when b64data is not base64 or out
 * of memory. */
int proxy_result_data(const json_t *result, ProtobufCBinaryData *out);

/* A boolean of RESULT (false when absent or not a boolean). */
bool proxy_result_bool(const json_t *result, const char *key);

/* `expire_at` of RESULT in unix seconds (0 when absent or not a positive integer). */
int64_t proxy_result_expire_at(const json_t *result);

/* A connect result as the claims of a connection token (`user` as `sub`, `expire_at`, `info` /
 * `b64info`, `channels`, `subs` with their options), so the connect path treats both alike. Same
 * outcomes and ownership as auth_connection_claims_parse; AUTH_INVALID when a field has a bad type. */
enum auth_status proxy_connect_claims(const json_t *result, struct auth_connection_claims *out, char *why,
                                      size_t whylen);

/* A subscribe result (`info`/`b64info`, `data`/`b64data`, `override`, `expire_at`) as subscription
 * options and expiry for CHANNEL and USER. Same ownership as auth_subscription_claims_parse. */
enum auth_status proxy_subscribe_claims(const json_t *result, const char *channel, const char *user,
                                        struct auth_subscription_claims *out, char *why, size_t whylen);

#endif
