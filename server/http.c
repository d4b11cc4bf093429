/* http: libmicrohttpd daemon, route table, Origin/CORS policy and request bodies (see http.h).
 *
 * The access handler is called several times per request: first with the headers (route lookup,
 * Origin check, method check, Content-Length check: each can answer at once, before the body is read),
 * then once per piece of body (collected up to the route's limit; past it the rest is discarded and the
 * answer is 413), then once with no data (the route's handler runs). */
#define _GNU_SOURCE /* accept4 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "fdlimit.h"
#include "handlers.h"
#include "http_framing.h"
#include "http_host.h"
#include "log.h"
#include "loops.h"
#include "server.h"
#include "stats.h"

/* One core loop's daemon: libmicrohttpd in external-epoll mode, run by the loop after each batch. The
 * loop accepts connections itself (listen_io) and hands them to the daemon with MHD_add_connection:
 * libmicrohttpd, at the open-files limit, leaves the connection in the backlog (its client waiting) and,
 * in a daemon with no connection of its own, keeps the shared listen socket in its epoll set while
 * accept fails, a busy loop; here such connections are refused (fdlimit.h). */
struct http_loop {
  struct http *h;
  struct MHD_Daemon *daemon;
  struct evloop *ev;
  struct evloop_io io;        /* the daemon's epoll fd in the loop's epoll set */
  struct evloop_io listen_io; /* the shared listen socket, while listening */
  struct evloop_timer pause;  /* out of descriptors with no reserve: listen again when it fires */
  bool listening;             /* loop thread: listen_io is in the loop's set */
  bool quiesced;              /* loop thread (and the quiesce wait) */
};

struct http {
  struct server *srv;
  int listen_fd; /* shared by every daemon; closed after the last MHD_stop_daemon */
  unsigned n;
  bool started; /* the loops run */
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a loop quiesced its daemon */
  char address[64];
  unsigned port;
  struct fdlimit_gate fd_gate; /* refusals at the open-files limit, for every loop */
  struct http_loop loop[LOOPS_MAX];
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
static bool uni_http_stream_enabled(const struct config *cfg) { return cfg->uni_http_stream; }
static bool uni_sse_enabled(const struct config *cfg) { return cfg->uni_sse; }
static bool uni_ws_enabled(const struct config *cfg) { return cfg->uni_websocket; }
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
    {"uni_http_stream", ROUTE_CLIENT, CFG_FIELD(uni_http_stream_handler_prefix),
     CFG_FIELD(uni_http_stream_max_request_body_size), uni_http_stream_enabled, false, "POST",
     uni_http_stream_handle, NULL},
    {"uni_sse", ROUTE_CLIENT, CFG_FIELD(uni_sse_handler_prefix), CFG_FIELD(uni_sse_max_request_body_size),
     uni_sse_enabled, false, "GET POST", uni_sse_handle, NULL},
    {"uni_websocket", ROUTE_CLIENT, CFG_FIELD(uni_websocket_handler_prefix), 0, uni_ws_enabled, false, "GET",
     uni_ws_handle, NULL},
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
  if (req->body_too_big || req->body_no_memory) return;
  if (req->body_len + len > req->body_limit) {
    req->body_too_big = true;
    return;
  }
  if (req->body_len + len + 1 > req->body_cap) {
    size_t cap = req->body_cap ? req->body_cap : 1024;
    while (cap < req->body_len + len + 1) cap *= 2;
    char *b = realloc(req->body, cap);
    if (b == NULL) {
      req->body_no_memory = true;
      return;
    }
    req->body = b;
    req->body_cap = cap;
  }
  memcpy(req->body + req->body_len, data, len);
  req->body_len += len;
  req->body[req->body_len] = '\0';
}

void http_resume(struct request *req) {
  /* once resumed, the connection's loop may answer and free REQ at once: read it before */
  int loop = req->loop;
  struct loops *loops = req->srv->loops;
  MHD_resume_connection(req->conn);
  if (loop >= 0 && loops_current() != loop) loops_wake(loops, (unsigned)loop);
}

static struct request *request_new(struct http *h, struct MHD_Connection *conn, const struct route *route,
                                   const char *url, const char *method) {
  struct request *req = calloc(1, sizeof *req);
  if (req == NULL) return NULL;
  req->srv = h->srv;
  req->conn = conn;
  req->loop = loops_current();
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
                                  const char *url, const char *method, const char *version, void **con_cls) {
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
  req->http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
  *con_cls = req;
  enum MHD_Result ret;
  return check_headers(req, cfg, &ret) ? ret : MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  struct http *h = cls;
  struct request *req = *con_cls;
  if (req == NULL) {
    const struct config *cfg = server_config_get(h->srv);
    enum MHD_Result ret = first_call(h, cfg, conn, url, method, version, con_cls);
    config_unref(cfg);
    return ret;
  }
  if (*upload_data_size > 0) {
    body_append(req, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (req->body_too_big) return respond_text(req, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
  if (req->body_no_memory) return respond_text(req, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
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
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(h->listen_fd, (struct sockaddr *)&ss, &len) != 0) return;
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

/* The listening socket every loop accepts from (non-blocking: the loops race for each connection, the
 * loser's accept gets EAGAIN). Returns the fd or -1. */
static int listen_on(const struct sockaddr_storage *ss, socklen_t len) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 4096) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* The loop's work after each batch: let the daemon do what is ready (accept, read, run handlers, write
 * the streams the batch resumed), then sleep no longer than its next connection timeout. */
static int run_daemon(void *arg) {
  struct http_loop *hl = arg;
  MHD_run(hl->daemon);
  MHD_UNSIGNED_LONG_LONG timeout = 0;
  if (MHD_get_timeout(hl->daemon, &timeout) != MHD_YES) return 1000;
  return timeout > 1000 ? 1000 : (int)timeout;
}

static void daemon_ready(struct evloop_io *io, uint32_t events) {
  (void)io;
  (void)events; /* MHD_run follows in run_daemon, after the batch */
}

/* Connections accepted per readiness of the listen socket before the loop does other work (it stays
 * readable: the rest are taken at the next iteration), as libmicrohttpd's own accept did. */
enum { ACCEPT_BATCH = 10 };

static const char refused_reply[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    "out of file descriptors\n";

static void listen_start(struct http_loop *hl) {
  if (hl->listening || hl->quiesced) return;
  if (evloop_io_add(hl->ev, &hl->listen_io) != 0) {
    log_error("http: cannot watch the listen socket: %s", strerror(errno));
    return;
  }
  hl->listening = true;
}

static void listen_stop(struct http_loop *hl) {
  if (hl->listening) evloop_io_del(hl->ev, &hl->listen_io);
  hl->listening = false;
  evloop_timer_cancel(hl->ev, &hl->pause);
}

static void pause_over(struct evloop_timer *t) { listen_start(t->arg); }

/* Out of descriptors with no reserve left to refuse with: stop watching the socket for a moment
 * rather than wake up for it again at once. */
static void listen_pause(struct http_loop *hl) {
  listen_stop(hl);
  evloop_timer_arm(hl->ev, &hl->pause, FDLIMIT_PAUSE_MS);
}

/* The listen socket is readable: accept up to ACCEPT_BATCH connections into this loop's daemon. At
 * the open-files limit, pending connections are refused with a 503 (fdlimit.h). */
static void accept_ready(struct evloop_io *io, uint32_t events) {
  (void)events;
  struct http_loop *hl = io->arg;
  struct http *h = hl->h;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      fdlimit_accepted(&h->fd_gate);
      if (MHD_add_connection(hl->daemon, fd, (struct sockaddr *)&ss, len) != MHD_YES) /* it closed FD */
        log_debug("http: connection not taken by the daemon: %s", strerror(errno));
      continue;
    }
    int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (!fdlimit_exhausted(err)) {
      log_warn("http: accept: %s", strerror(err));
      listen_pause(hl);
      return;
    }
    int refused = fdlimit_refuse(h->listen_fd, refused_reply, sizeof refused_reply - 1);
    fdlimit_note(&h->fd_gate, err, refused > 0 ? 1u : 0u);
    if (refused == 0) return;
    if (refused < 0) {
      listen_pause(hl);
      return;
    }
  }
}

static struct MHD_Daemon *start_daemon(struct http *h) {
  unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_TURBO |
                       MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET;
  return MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                          (size_t)CONNECTION_MEMORY, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)100000,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_NOTIFY_COMPLETED,
                          on_completed, h, MHD_OPTION_END);
}

/* Creates loop I's daemon and hands it to the loop (before the loops start). */
static int attach_daemon(struct http *h, unsigned i) {
  struct http_loop *hl = &h->loop[i];
  hl->h = h;
  hl->ev = loops_evloop(h->srv->loops, i);
  hl->daemon = start_daemon(h);
  if (hl->daemon == NULL) return -1;
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(hl->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  if (di == NULL) return -1;
  hl->io = (struct evloop_io){.fd = di->epoll_fd, .events = EPOLLIN, .fn = daemon_ready, .arg = hl};
  if (evloop_io_add(hl->ev, &hl->io) != 0) return -1;
  hl->listen_io = (struct evloop_io){.fd = h->listen_fd, .events = EPOLLIN, .fn = accept_ready, .arg = hl};
  hl->pause = (struct evloop_timer){.fn = pause_over, .arg = hl};
  listen_start(hl);
  if (!hl->listening) return -1;
  loops_set_runner(h->srv->loops, i, run_daemon, hl);
  return 0;
}

/* With no loop running: every loop stops watching the shared listen socket (the daemons have none of
 * their own), which is closed after the last daemon. */
static void stop_daemons(struct http *h) {
  for (unsigned i = 0; i < h->n; i++) {
    if (h->loop[i].daemon == NULL) continue;
    if (!h->loop[i].quiesced) listen_stop(&h->loop[i]);
    MHD_stop_daemon(h->loop[i].daemon);
  }
  if (h->listen_fd >= 0) close(h->listen_fd);
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

struct http *http_start(struct server *srv, char *err, size_t errlen) {
  struct http *h = calloc(1, sizeof *h);
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (h == NULL) return NULL;
  h->srv = srv;
  h->fd_gate = (struct fdlimit_gate)FDLIMIT_GATE("http");
  fdlimit_init();
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->cond, NULL);
  const struct config *cfg = srv->boot_cfg; /* address and port: restart only */
  if (bind_address(cfg, &ss, &sslen) != 0) {
    snprintf(err, errlen, "address '%s' is not an IPv4 or IPv6 address", cfg->address);
    h->listen_fd = -1;
    stop_daemons(h);
    return NULL;
  }
  h->listen_fd = listen_on(&ss, sslen);
  if (h->listen_fd < 0) {
    snprintf(err, errlen, "cannot listen on %s:%lld (%s)", cfg->address, (long long)cfg->port, strerror(errno));
    stop_daemons(h);
    return NULL;
  }
  unsigned n = loops_count(srv->loops);
  for (h->n = 0; h->n < n; h->n++) {
    if (attach_daemon(h, h->n) != 0) {
      h->n++; /* its daemon, if made, is stopped too */
      snprintf(err, errlen, "cannot start the HTTP daemon of core loop %u", h->n - 1);
      stop_daemons(h);
      return NULL;
    }
  }
  if (loops_start(srv->loops) != 0) {
    snprintf(err, errlen, "cannot start the core loop threads");
    loops_stop(srv->loops);
    stop_daemons(h);
    return NULL;
  }
  h->started = true;
  read_bound_address(h);
  return h;
}

const char *http_address(const struct http *h) { return h->address; }
unsigned http_port(const struct http *h) { return h->port; }

/* A loop stops accepting on its own thread: the listen socket's watcher and pause timer are the loop's. */
static void quiesce_on_loop(void *arg) {
  struct http_loop *hl = arg;
  if (hl->daemon) listen_stop(hl);
  pthread_mutex_lock(&hl->h->lock);
  hl->quiesced = true;
  pthread_cond_broadcast(&hl->h->cond);
  pthread_mutex_unlock(&hl->h->lock);
}

void http_quiesce(struct http *h) {
  for (unsigned i = 0; i < h->n; i++) {
    struct http_loop *hl = &h->loop[i];
    pthread_mutex_lock(&h->lock);
    bool done = hl->quiesced;
    pthread_mutex_unlock(&h->lock);
    if (done) continue;
    if (!h->started || loops_post(h->srv->loops, i, quiesce_on_loop, hl) != 0) {
      quiesce_on_loop(hl); /* the loop does not run: nothing races */
      continue;
    }
    pthread_mutex_lock(&h->lock);
    while (!hl->quiesced) pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
  }
}

/* The loops stop first (nothing runs a daemon any more), then the daemons, then the shared socket. */
void http_stop(struct http *h) {
  if (h == NULL) return;
  http_quiesce(h);
  loops_stop(h->srv->loops);
  stop_daemons(h);
}
