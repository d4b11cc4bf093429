/* api: the server HTTP API's method table, shared by the HTTP front (api.c: authentication, body,
 * error mode, batch) and the methods (api_methods.c). Errors are the API's codes (PROTOCOL.md §7). */
#ifndef API_H
#define API_H

#include <jansson.h>

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

/* The method called NAME, or NULL. */
api_method_fn api_find_method(const char *name);

/* The message of an API error code. */
const char *api_error_message(int code);

#endif
