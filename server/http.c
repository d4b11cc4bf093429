/* http: libmicrohttpd daemon, route table, Origin/CORS policy and request bodies (see http.h).
 *
 * The access handler is called several times per request: first with the headers (route lookup,
 * Origin check, method check, Content-Length check: each can answer at once, before the body is read),
 * then once per piece of body (collected up to the route's limit; past it the rest is discarded and the
 * answer is 413), then once with no data (the route's handler runs). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "handlers.h"
#include "http_framing.h"
#include "http_host.h"
#include "log.h"
#include "server.h"
#include "stats.h"

struct http {
  struct MHD_Daemon *daemon;
  MHD_socket listen_fd; /* handed back by MHD_quiesce_daemon; closed after MHD_stop_daemon */
  struct server *srv;
  char address[64];
  unsigned port;
};

enum route_kind { ROUTE_CLIENT, ROUTE_API, ROUTE_OPS };

struct route {
  const char *name;
  enum route_kind kind;
  size_t prefix_offset; /* char * in struct config */
  size_t limit_offset;  /* int64_t in struct config; 0 = no body limit of its own */
  bool (*enabled)(const struct config *cfg);
  bool subpaths;       /* also matches "<prefix>/<name>" */
  const char *methods; /* the methods served, space-separated (besides OPTIONS for client routes) */
  enum MHD_Result (*handle)(struct request *req);
  void (*count)(struct server *srv, unsigned status); /* optional: told every response status */
};

static bool stream_enabled(const struct config *cfg) { return cfg->http_stream; }
static bool sse_enabled(const struct config *cfg) { return cfg->sse; }
static bool ws_enabled(const struct config *cfg) { return !cfg->websocket_disable; }
static bool emulation_enabled(const struct config *cfg) { return cfg->http_stream || cfg->sse; }
static bool always(const struct config *cfg) { return cfg != NULL; }
static bool health_enabled(const struct config *cfg) { return cfg->health; }
static bool prometheus_enabled(const struct config *cfg) { return cfg->prometheus; }

/* Fixed paths of the operations endpoints (they have no prefix key). */
static const char *const health_path = "/health";
static const char *const metrics_path = "/metrics";

#define CFG_FIELD(field) offsetof(struct config, field)

#define FIXED_PATH SIZE_MAX /* prefix_offset value: the route's path is route->path */

static const struct route routes[] = {
    {"http_stream", ROUTE_CLIENT, CFG_FIELD(http_stream_handler_prefix),
     CFG_FIELD(http_stream_max_request_body_size), stream_enabled, false, "POST", stream_handle, NULL},
    {"emulation", ROUTE_CLIENT, CFG_FIELD(emulation_handler_prefix),
     CFG_FIELD(emulation_max_request_body_size), emulation_enabled, false, "POST", emulation_handle,
     stats_emulation},
    {"sse", ROUTE_CLIENT, CFG_FIELD(sse_handler_prefix), CFG_FIELD(sse_max_request_body_size), sse_enabled,
     false, "GET POST", sse_handle, NULL},
    {"websocket", ROUTE_CLIENT, CFG_FIELD(websocket_handler_prefix), 0, ws_enabled, false, "GET", ws_handle,
     NULL},
    {"api", ROUTE_API, CFG_FIELD(api_handler_prefix), 0, always, true, "POST", api_handle, NULL},
    {"health", ROUTE_OPS, FIXED_PATH, 0, health_enabled, false, "GET", health_handle, NULL},
    {"metrics", ROUTE_OPS, FIXED_PATH, 0, prometheus_enabled, false, "GET", metrics_handle, NULL},
};

static const char *route_path(const struct config *cfg, const struct route *r) {
  if (r->prefix_offset != FIXED_PATH) return *(char *const *)((const char *)cfg + r->prefix_offset);
  return r->handle == health_handle ? health_path : metrics_path;
}

/* libmicrohttpd's memory pool per connection: request headers, the read buffer and the write buffer
 * that chunks of a stream are built in. It is most of the memory a stream costs (the benchmark measured
 * 7.7 KB per idle stream at 4 KiB, 11.6 KB at 8 KiB, 31.6 KB at 32 KiB); 4 KiB still holds ordinary
 * browser headers, and request bodies arrive in pieces whatever their size. Larger headers get 431. */
#define CONNECTION_MEMORY (4 * 1024)

/* The body limit of routes without a configured one (the API). */
#define DEFAULT_BODY_LIMIT (1024 * 1024)

static const struct route *route_match(const struct config *cfg, const char *url) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    const struct route *r = &routes[i];
    if (!r->enabled(cfg)) continue;
    const char *prefix = route_path(cfg, r);
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) != 0) continue;
    if (url[n] == '\0' || (r->subpaths && url[n] == '/' && url[n + 1] != '\0')) return r;
  }
  return NULL;
}

const char *http_header(const struct request *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* Does ORIGIN match one of the allowed_origins globs? Matching is on the lowercased Origin. */
static bool origin_allowed(const struct config *cfg, const char *origin, const char *host) {
  char same[300];
  if (host && snprintf(same, sizeof same, "http://%s", host) < (int)sizeof same && strcmp(origin, same) == 0)
    return true; /* a page served from this server's own origin */
  char lower[512];
  size_t n = strlen(origin);
  if (n >= sizeof lower) return false;
  for (size_t i = 0; i <= n; i++) lower[i] = (char)tolower((unsigned char)origin[i]);
  for (size_t i = 0; i < cfg->allowed_origins_count; i++)
    if (fnmatch(cfg->allowed_origins[i], lower, 0) == 0) return true;
  return false;
}

void http_add_cors(const struct request *req, struct MHD_Response *response) {
  if (req->cors_origin == NULL) return;
  MHD_add_response_header(response, "Access-Control-Allow-Origin", req->cors_origin);
  MHD_add_response_header(response, "Access-Control-Allow-Credentials", "true");
  const char *acrh = http_header(req, "Access-Control-Request-Headers");
  if (acrh && *acrh && strcmp(acrh, "null") != 0)
    MHD_add_response_header(response, "Access-Control-Allow-Headers", acrh);
  MHD_add_response_header(response, "Vary", "Origin");
}

enum MHD_Result http_respond(struct request *req, unsigned status, const char *content_type, const void *body,
                             size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (r == NULL) return MHD_NO;
  if (content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  http_add_cors(req, r);
  enum MHD_Result ret = http_queue(req, status, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result http_queue(struct request *req, unsigned status, struct MHD_Response *response) {
  req->status = status;
  if (req->route && req->route->count) req->route->count(req->srv, status);
  return MHD_queue_response(req->conn, status, response);
}

static enum MHD_Result respond_text(struct request *req, unsigned status, const char *text) {
  return http_respond(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* 400 for a request whose framing is ambiguous: the rest of what the client sent cannot be trusted to
 * be the next request, so the connection is closed after the answer. */
static enum MHD_Result respond_bad_framing(struct request *req, const char *why) {
  char text[128];
  int n = snprintf(text, sizeof text, "bad request: %s\n", why);
  struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
  if (r == NULL) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ret = http_queue(req, MHD_HTTP_BAD_REQUEST, r);
  MHD_destroy_response(r);
  return ret;
}

/* A CORS preflight (OPTIONS on a client endpoint) is answered on the last access-handler call, after
 * its (empty) body was read, not on the first: libmicrohttpd 0.9.75 treats a response queued while it
 * has only the headers as an early answer, discards the rest of the request and closes the connection,
 * and the browser would pay a new connection (a TLS handshake) for the POST that follows each preflight. */
static bool is_preflight(const struct request *req) {
  return req->route->kind == ROUTE_CLIENT && strcmp(req->method, MHD_HTTP_METHOD_OPTIONS) == 0;
}

static enum MHD_Result respond_preflight(struct request *req) {
  struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (r == NULL) return MHD_NO;
  http_add_cors(req, r);
  MHD_add_response_header(r, "Access-Control-Allow-Methods", "POST, OPTIONS");
  MHD_add_response_header(r, "Access-Control-Max-Age", "300");
  enum MHD_Result ret = http_queue(req, MHD_HTTP_NO_CONTENT, r);
  MHD_destroy_response(r);
  return ret;
}

void http_remote_address(const struct request *req, char *buf, size_t len) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  buf[0] = '\0';
  if (ci == NULL || ci->client_addr == NULL) return;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, (socklen_t)len);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf, (socklen_t)len);
}

/* Is METHOD one of the space-separated METHODS? */
static bool method_allowed(const char *methods, const char *method) {
  size_t len = strlen(method);
  for (const char *p = methods; (p = strstr(p, method)) != NULL; p += len)
    if ((p == methods || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0')) return true;
  return false;
}

/* First call for a request: everything that can be decided from the headers alone. Returns true when a
 * response was queued (into *ret). */
static bool check_headers(struct request *req, const struct config *cfg, enum MHD_Result *ret) {
  /* The API is for backends, which send no Origin: a browser page's request to it is refused by the
   * same rule as on client endpoints (a CSRF against api_insecure), but earns no CORS headers. */
  const char *origin = req->route->kind != ROUTE_OPS ? http_header(req, "Origin") : NULL;
  if (origin && !origin_allowed(cfg, origin, http_header(req, "Host"))) {
    log_info("%s: refused a request from a page whose origin is not allowed", req->route->name);
    *ret = respond_text(req, MHD_HTTP_FORBIDDEN, "origin not allowed\n");
    return true;
  }
  if (req->route->kind == ROUTE_CLIENT) req->cors_origin = origin;
  if (!is_preflight(req) && !method_allowed(req->route->methods, req->method)) {
    *ret = respond_text(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    return true;
  }
  const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && strtoull(cl, NULL, 10) > req->body_limit) {
    *ret = respond_text(req, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
    return true;
  }
  return false;
}

static void body_append(struct request *req, const char *data, size_t len) {
  if (req->body_too_big) return;
  if (req->body_len + len > req->body_limit) {
    req->body_too_big = true;
    return;
  }
  if (req->body_len + len + 1 > req->body_cap) {
    size_t cap = req->body_cap ? req->body_cap : 1024;
    while (cap < req->body_len + len + 1) cap *= 2;
    char *b = realloc(req->body, cap);
    if (b == NULL) {
      req->body_too_big = true;
      return;
    }
    req->body = b;
    req->body_cap = cap;
  }
  memcpy(req->body + req->body_len, data, len);
  req->body_len += len;
  req->body[req->body_len] = '\0';
}

static struct request *request_new(struct http *h, struct MHD_Connection *conn, const struct route *route,
                                   const char *url, const char *method) {
  struct request *req = calloc(1, sizeof *req);
  if (req == NULL) return NULL;
  req->srv = h->srv;
  req->conn = conn;
  req->route = route;
  req->url = url;
  req->method = method;
  req->body_limit = route->limit_offset
                        ? (size_t) * (const int64_t *)((const char *)h->srv->boot_cfg + route->limit_offset)
                        : DEFAULT_BODY_LIMIT;
  return req;
}

/* The first call for a request: framing, Host, route, Origin and method checks under one reference
 * to the running configuration. Returns what MHD is to be told; *CON_CLS gets the request context. */
static enum MHD_Result first_call(struct http *h, const struct config *cfg, struct MHD_Connection *conn,
                                  const char *url, const char *method, void **con_cls) {
  struct request probe = {.srv = h->srv, .conn = conn, .method = method};
  const char *why;
  if (http_framing_check(conn, &why) != 0) {
    char remote[64];
    http_remote_address(&probe, remote, sizeof remote);
    log_info("refused a request from %s: %s", remote, why);
    return respond_bad_framing(&probe, why);
  }
  if (!http_host_allowed(cfg, http_header(&probe, MHD_HTTP_HEADER_HOST))) {
    char remote[64];
    http_remote_address(&probe, remote, sizeof remote);
    log_info("refused a request from %s: its Host is not in allowed_hosts", remote);
    return respond_text(&probe, MHD_HTTP_MISDIRECTED_REQUEST, "host not allowed\n");
  }
  const struct route *route = route_match(h->srv->boot_cfg, url); /* paths and switches: restart only */
  if (route == NULL) return respond_text(&probe, MHD_HTTP_NOT_FOUND, "not found\n");
  struct request *req = request_new(h, conn, route, url, method);
  if (req == NULL) return MHD_NO;
  *con_cls = req;
  enum MHD_Result ret;
  return check_headers(req, cfg, &ret) ? ret : MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version;
  struct http *h = cls;
  struct request *req = *con_cls;
  if (req == NULL) {
    const struct config *cfg = server_config_get(h->srv);
    enum MHD_Result ret = first_call(h, cfg, conn, url, method, con_cls);
    config_unref(cfg);
    return ret;
  }
  if (*upload_data_size > 0) {
    body_append(req, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (req->body_too_big) return respond_text(req, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
  return is_preflight(req) ? respond_preflight(req) : req->route->handle(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  struct request *req = *con_cls;
  if (req == NULL) return;
  if (req->cleanup) req->cleanup(req);
  free(req->body);
  free(req);
  *con_cls = NULL;
}

static int bind_address(const struct config *cfg, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, cfg->address, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)cfg->port);
    *len = sizeof *in4;
    return 0;
  }
  if (inet_pton(AF_INET6, cfg->address, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)cfg->port);
    *len = sizeof *in6;
    return 0;
  }
  return -1;
}

static void read_bound_address(struct http *h) {
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_LISTEN_FD);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (di == NULL || getsockname(di->listen_fd, (struct sockaddr *)&ss, &len) != 0) return;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &in4->sin_addr, h->address, sizeof h->address);
    h->port = ntohs(in4->sin_port);
  } else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, h->address, sizeof h->address);
    h->port = ntohs(in6->sin6_port);
  }
}

/* The cores this process may run on (its CPU affinity: taskset, cgroups), one MHD thread each; more
 * threads than cores would only take turns on the same core. */
static unsigned int usable_cores(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return (unsigned int)CPU_COUNT(&set);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? (unsigned int)cores : 1;
}

struct http *http_start(struct server *srv, char *err, size_t errlen) {
  struct http *h = calloc(1, sizeof *h);
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (h == NULL) return NULL;
  h->srv = srv;
  h->listen_fd = MHD_INVALID_SOCKET;
  const struct config *cfg = srv->boot_cfg; /* address and port: restart only */
  if (bind_address(cfg, &ss, &sslen) != 0) {
    snprintf(err, errlen, "address '%s' is not an IPv4 or IPv6 address", cfg->address);
    free(h);
    return NULL;
  }
  unsigned int pool = usable_cores();
  unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
                       MHD_USE_TURBO | MHD_USE_ITC;
  if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  h->daemon =
      MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                       MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                       (size_t)CONNECTION_MEMORY, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)100000,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_LISTEN_BACKLOG_SIZE,
                       (unsigned int)4096, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
  if (h->daemon == NULL) {
    snprintf(err, errlen, "cannot listen on %s:%lld (address in use or not permitted)", cfg->address,
             (long long)cfg->port);
    free(h);
    return NULL;
  }
  read_bound_address(h);
  return h;
}

const char *http_address(const struct http *h) { return h->address; }
unsigned http_port(const struct http *h) { return h->port; }

/* MHD's manual: with internal threads the socket MHD_quiesce_daemon returns "must not be closed until
 * AFTER MHD_stop_daemon has been called (as it is theoretically possible that an existing thread is
 * still using it)"; http_stop closes it. */
void http_quiesce(struct http *h) {
  if (h->listen_fd == MHD_INVALID_SOCKET) h->listen_fd = MHD_quiesce_daemon(h->daemon);
}

void http_stop(struct http *h) {
  if (h == NULL) return;
  MHD_stop_daemon(h->daemon);
  if (h->listen_fd != MHD_INVALID_SOCKET) close(h->listen_fd);
  free(h);
}
