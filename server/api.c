/* api: the HTTP front of the server API (PROTOCOL.md §7) for backends: POST <api_handler_prefix>/<method>
 * with a JSON body, or the legacy POST <api_handler_prefix> with {"method","params"}. Authentication by
 * `X-API-Key: KEY` or `Authorization: apikey KEY` (401 otherwise, always 401 when no key is configured,
 * unless api_insecure), compared in constant time. Answers are {"result":{...}} or
 * {"error":{"code","message"}}; with the header `X-Centrifugo-Error-Mode: transport` errors become HTTP
 * statuses instead. The methods themselves are in api_methods.c. Bodies are read with json_raw_loadb:
 * every `data` and `info` member reaches the methods as raw JSON text, so a number jansson cannot hold
 * there does not fail the request, and answers are written with json_raw_dumpb. With several nodes
 * (Redis engine) a method acts according to its scope (api.h): here, here and on every other node, or
 * surveyed and merged; calls that other nodes forward run here through api_run_local. When the
 * engine's calls wait (Redis), a request that arrives on a core loop is suspended and its call runs on
 * a worker thread (workers.h), so that the loop's streams never wait for Redis or for a survey; the
 * answer is sent when the handler is called again after the resume. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "broker.h"
#include "handlers.h"
#include "log.h"
#include "loops.h"
#include "workers.h"
#include "json_raw.h"
#include "server.h"

static bool key_equal(const char *given, const char *expected) {
  size_t len = strlen(expected);
  return len > 0 && strlen(given) == len && CRYPTO_memcmp(given, expected, len) == 0;
}

static bool key_given(const struct request *req, const struct config *cfg) {
  if (cfg->api_insecure) return true;
  const char *key = http_header(req, "X-API-Key");
  if (key) return key_equal(key, cfg->api_key);
  const char *auth = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth == NULL || strncasecmp(auth, "apikey ", 7) != 0) return false;
  auth += 7;
  if (strchr(auth, ' ')) return false; /* exactly two fields */
  return key_equal(auth, cfg->api_key);
}

/* Does REQ carry the API key of the running configuration (api_key is reloadable)? */
static bool authorized(const struct request *req) {
  const struct config *cfg = server_config_get(req->srv);
  bool ok = key_given(req, cfg);
  config_unref(cfg);
  return ok;
}

/* HTTP status for an error in transport error mode. */
static unsigned transport_status(int code) {
  static const struct {
    int code;
    unsigned status;
  } map[] = {{API_ERROR_UNKNOWN_CHANNEL, MHD_HTTP_NOT_FOUND},
             {API_ERROR_NOT_FOUND, MHD_HTTP_NOT_FOUND},
             {API_ERROR_BAD_REQUEST, MHD_HTTP_BAD_REQUEST},
             {API_ERROR_NOT_AVAILABLE, MHD_HTTP_BAD_REQUEST},
             {API_ERROR_UNRECOVERABLE_POSITION, 416}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (map[i].code == code) return map[i].status;
  return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* Members of request bodies kept as raw JSON text (json_raw), wherever they occur: publication data and
 * connection info are application JSON, passed on verbatim (numbers of any size and spelling). */
static const char *const raw_keys[] = {"data", "info", NULL};

static enum MHD_Result respond_json(struct request *req, unsigned status, json_t *body) {
  size_t len = 0;
  char *text = body ? json_raw_dumpb(body, JSON_COMPACT, &len) : NULL; /* publications stay verbatim */
  json_decref(body);
  if (text == NULL) return http_respond(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, 0);
  enum MHD_Result ret = http_respond(req, status, "application/json", text, len);
  free(text);
  return ret;
}

static json_t *error_body(int code) {
  return json_pack("{sIss}", "code", (json_int_t)code, "message", api_error_message(code));
}

/* Folds a surveyed node's JSON ANSWER into the result (the merge of the method in ARG). */
struct survey_ctx {
  const struct api_method *m;
  json_t *result;
};

static void survey_answer(void *arg, const char *answer, size_t len) {
  struct survey_ctx *sc = arg;
  json_t *remote = json_raw_loadb(answer, len, raw_keys, 0);
  if (json_is_object(remote)) sc->m->merge(sc->result, remote);
  json_decref(remote);
}

/* Runs M with PARAMS here and, by its scope, on the other nodes. Returns 0 (*RESULT set) or a code. */
static int call_method(struct server *srv, const struct api_method *m, json_t *params, json_t **result) {
  int rc = m->fn(srv, params, result);
  if (rc != 0 || m->scope == API_SCOPE_NODE) return rc;
  size_t len = 0;
  char *text = json_raw_dumpb(params, JSON_COMPACT, &len);
  if (text == NULL) return API_ERROR_INTERNAL;
  struct broker *b = srv->broker;
  if (m->scope == API_SCOPE_BROADCAST) {
    if (b->ops->broadcast_api(b, m->name, text, len) != 0) log_warn("api %s: not sent to the other nodes", m->name);
  } else {
    struct survey_ctx sc = {m, *result};
    if (b->ops->survey_api(b, m->name, text, len, survey_answer, &sc) != 0)
      log_warn("api %s: the other nodes could not be asked", m->name);
  }
  free(text);
  return 0;
}

int api_run_local(struct server *srv, const char *method, const char *params, size_t len, char **answer,
                  size_t *answer_len) {
  const struct api_method *m = api_find_method(method);
  json_t *p = json_raw_loadb(params, len, raw_keys, 0), *result = NULL;
  int rc = m == NULL ? API_ERROR_NOT_FOUND : !json_is_object(p) ? API_ERROR_BAD_REQUEST : m->fn(srv, p, &result);
  if (rc == 0 && answer) {
    *answer = json_raw_dumpb(result ? result : json_object(), JSON_COMPACT, answer_len);
    if (*answer == NULL) rc = API_ERROR_INTERNAL;
  }
  json_decref(result);
  json_decref(p);
  return rc;
}

/* batch: {"commands":[{"<method>":{params}}, ...]} ⇒ {"replies":[{"<method>":{result}} | {"error":{..}}]}.
 * Commands run in order (the "parallel" flag is accepted; order is kept either way). */
static json_t *run_batch(struct server *srv, json_t *params, int *code) {
  json_t *commands = json_object_get(params, "commands");
  *code = json_is_array(commands) ? 0 : API_ERROR_BAD_REQUEST;
  if (*code) return json_pack("{so}", "error", error_body(*code));
  json_t *replies = json_array();
  size_t i;
  json_t *command;
  json_array_foreach(commands, i, command) {
    const char *name = json_is_object(command) && json_object_size(command) == 1
                           ? json_object_iter_key(json_object_iter(command))
                           : NULL;
    const struct api_method *m = name && strcmp(name, "batch") != 0 ? api_find_method(name) : NULL;
    json_t *result = NULL;
    int rc = m == NULL ? API_ERROR_NOT_FOUND
             : !json_is_object(json_object_get(command, name))
                 ? API_ERROR_BAD_REQUEST
                 : call_method(srv, m, json_object_get(command, name), &result);
    json_array_append_new(replies, rc == 0 ? json_pack("{so}", name, result ? result : json_object())
                                           : json_pack("{so}", "error", error_body(rc)));
  }
  return json_pack("{so}", "replies", replies);
}

/* Runs method NAME with PARAMS; returns {"result":..} or {"error":..} and the error code in *CODE. */
static json_t *run_method(struct server *srv, const char *name, json_t *params, int *code) {
  if (strcmp(name, "batch") == 0 && json_is_object(params)) return run_batch(srv, params, code);
  const struct api_method *m = api_find_method(name);
  json_t *result = NULL;
  *code = m == NULL                 ? API_ERROR_NOT_FOUND
          : !json_is_object(params) ? API_ERROR_BAD_REQUEST
                                    : call_method(srv, m, params, &result);
  if (*code == 0) return json_pack("{so}", "result", result ? result : json_object());
  json_decref(result);
  return json_pack("{so}", "error", error_body(*code));
}

/* The answer of a call and how to send it. */
static enum MHD_Result respond_answer(struct request *req, json_t *answer, int code) {
  const char *mode = http_header(req, "X-Centrifugo-Error-Mode");
  if (code != 0 && mode && strcmp(mode, "transport") == 0) {
    json_decref(answer);
    return respond_json(req, transport_status(code), error_body(code));
  }
  return respond_json(req, MHD_HTTP_OK, answer);
}

/* A call handed to a worker; the request stays suspended until it is done. */
struct api_job {
  struct request *req;
  json_t *body;       /* owns NAME (legacy form) and PARAMS */
  const char *name;   /* into BODY or the request's URL */
  json_t *params;
  json_t *answer;     /* set by the worker */
  int code;
  atomic_bool done;
};

static void job_run(void *arg) {
  struct api_job *job = arg;
  job->answer = run_method(job->req->srv, job->name, job->params, &job->code);
  atomic_store(&job->done, true);
  http_resume(job->req); /* the handler runs again on the request's loop and answers */
}

static void job_cleanup(struct request *req) {
  struct api_job *job = req->handler_data;
  json_decref(job->answer);
  json_decref(job->body);
  free(job);
  atomic_fetch_sub(&req->srv->routed_posts, 1);
}

/* Runs the call on a worker with REQ suspended, when the engine's calls wait and this is a core loop.
 * Returns false (nothing done, BODY still the caller's) when the call is to run here. */
static bool hand_to_worker(struct request *req, json_t *body, const char *name, json_t *params) {
  struct server *srv = req->srv;
  if (srv->workers == NULL || !srv->broker->ops->calls_wait || loops_current() < 0) return false;
  struct api_job *job = calloc(1, sizeof *job);
  if (job == NULL) return false;
  *job = (struct api_job){.req = req, .body = body, .name = name, .params = params};
  atomic_fetch_add(&srv->routed_posts, 1); /* before the shutdown check: see emulation.c suspend_post */
  req->handler_data = job;
  req->cleanup = job_cleanup;
  MHD_suspend_connection(req->conn);
  if (workers_post(srv->workers, job_run, job) != 0) job_run(job); /* stopping: here, resumed at once */
  return true;
}

enum MHD_Result api_handle(struct request *req) {
  if (req->handler_data) { /* resumed: the worker's answer is in */
    struct api_job *job = req->handler_data;
    if (!atomic_load(&job->done)) return MHD_YES; /* not from our resume: keep waiting */
    json_t *answer = job->answer;
    job->answer = NULL;
    return respond_answer(req, answer, job->code);
  }
  if (!authorized(req)) return http_respond(req, MHD_HTTP_UNAUTHORIZED, NULL, NULL, 0);
  json_t *body = json_raw_loadb(req->body ? req->body : "", req->body_len, raw_keys, 0);
  if (!json_is_object(body)) {
    json_decref(body);
    return http_respond(req, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", "malformed JSON\n", 15);
  }
  const char *name = req->url + strlen(req->srv->boot_cfg->api_handler_prefix);
  json_t *params = body;
  bool legacy = name[0] == '\0';
  if (legacy) {
    name = json_string_value(json_object_get(body, "method"));
    params = json_object_get(body, "params");
  } else {
    name++; /* skip '/' */
  }
  if (!legacy && api_find_method(name) == NULL && strcmp(name, "batch") != 0) {
    json_decref(body);
    return http_respond(req, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", "unknown API method\n", 19);
  }
  if (hand_to_worker(req, body, name ? name : "", params)) return MHD_YES;
  int code = 0;
  json_t *answer = run_method(req->srv, name ? name : "", params, &code);
  json_decref(body);
  return respond_answer(req, answer, code);
}
