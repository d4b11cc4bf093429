/* api: the server HTTP API's method table, shared by the HTTP front (api.c: authentication, body,
 * error mode, batch) and the methods (api_methods.c). Errors are the API's codes (PROTOCOL.md §7). */
#ifndef API_H
#define API_H

#include <jansson.h>

#include "client.pb-c.h"
#include "config.h"

struct server;

enum api_error {
  API_OK = 0,
  API_ERROR_INTERNAL = 100,
  API_ERROR_UNKNOWN_CHANNEL = 102,
  API_ERROR_NOT_FOUND = 104,
  API_ERROR_LIMIT_EXCEEDED = 106, /* publish: the history_max_streams cap */
  API_ERROR_BAD_REQUEST = 107,
  API_ERROR_NOT_AVAILABLE = 108,
  API_ERROR_UNRECOVERABLE_POSITION = 112,
};

/* A method: reads PARAMS (a JSON object, borrowed), stores a new result object in *RESULT and returns
 * 0, or returns an API error code. Runs on an MHD thread. */
typedef int (*api_method_fn)(struct server *srv, json_t *params, json_t **result);

/* Where a method acts when several nodes share the channels (Redis engine): on this node only (its
 * data is shared already, or it reads the cluster's view itself), on every node's sessions (run here,
 * then sent to the others), or surveyed (every node answers for itself and MERGE folds each other
 * node's answer into this node's result). */
enum api_scope { API_SCOPE_NODE, API_SCOPE_BROADCAST, API_SCOPE_SURVEY };

struct api_method {
  const char *name;
  api_method_fn fn;
  enum api_scope scope;
  void (*merge)(json_t *result, json_t *remote); /* API_SCOPE_SURVEY */
};

/* The method called NAME, or NULL. */
const struct api_method *api_find_method(const char *name);

/* Runs method METHOD with PARAMS (LEN bytes of JSON) on this node alone, for a call another node
 * forwarded (struct broker_local). *ANSWER (may be NULL) receives the result's JSON (malloc'd). Returns
 * 0 or an API error code. */
int api_run_local(struct server *srv, const char *method, const char *params, size_t len, char **answer,
                  size_t *answer_len);

/* The channel parameter with its options, or an API error. On success *CFG is a reference to the
 * configuration *OPTS lives in, which the caller drops (config_unref) once done with *OPTS. */
int api_param_channel(struct server *srv, const char *channel, const struct config **cfg,
                      const struct channel_options **opts);

/* Fills PUB's data and tags from publish params: `data` (JSON) or `b64data` (base64 bytes). Returns 0
 * or an API error; api_publication_cleanup frees what it set either way. */
int api_publication_from_params(json_t *params, Protocol__Publication *pub);
void api_publication_cleanup(Protocol__Publication *pub);

/* MSG as a raw JSON value (its JSON codec text), or NULL when out of memory. */
json_t *api_message_json(const ProtobufCMessage *msg);

/* The map channel methods (api_map.c): map_publish, map_remove, map_stats, map_clear, map_read_state,
 * map_read_stream. */
int api_map_publish(struct server *srv, json_t *params, json_t **result);
int api_map_remove(struct server *srv, json_t *params, json_t **result);
int api_map_stats(struct server *srv, json_t *params, json_t **result);
int api_map_clear(struct server *srv, json_t *params, json_t **result);
int api_map_read_state(struct server *srv, json_t *params, json_t **result);
int api_map_read_stream(struct server *srv, json_t *params, json_t **result);

/* The message of an API error code. */
const char *api_error_message(int code);

#endif
