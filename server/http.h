/* http: the libmicrohttpd daemons (one per core loop, in external-epoll mode, each fed the connections
 * its loop accepts from the one shared listening socket, refused with a 503 at the open-files limit;
 * suspend/resume), the route table
 * that maps a path to its handler, the Origin/CORS rules for client endpoints (PROTOCOL.md §2.5, with
 * the stricter 403 for a disallowed Origin), request body collection with per-route limits (413), and
 * the per-request context freed by MHD's completion callback.
 *
 * Threads: handlers run on the core loop thread whose daemon owns the connection (loops.h); a
 * connection never moves to another loop. http_start, http_quiesce and http_stop: the main thread. */
#ifndef HTTP_H
#define HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

struct server;
struct http;

/* One HTTP request in progress. Handlers may set CLEANUP to run when MHD is done with the request. */
struct request {
  struct server *srv;
  struct MHD_Connection *conn;
  const struct route *route;
  const char *url;
  const char *method;
  char *body;
  size_t body_len, body_cap, body_limit;
  bool body_too_big;
  bool body_no_memory;     /* the body could not be stored: answered 503 */
  const char *cors_origin; /* the request's Origin when it is allowed and CORS headers are due */
  unsigned status;         /* of the response queued, 0 before */
  void (*cleanup)(struct request *req);
  void *handler_data;
  int loop;    /* the core loop whose daemon owns the connection */
  bool http11; /* HTTP/1.1: a response of unknown length is chunked */
};

/* Starts listening on the configured address and port with one daemon per core loop and starts the
 * core loops (srv->loops). Returns NULL and writes a message into ERR on failure. */
struct http *http_start(struct server *srv, char *err, size_t errlen);

/* The bound address and port (the real port when the config said 0). */
const char *http_address(const struct http *h);
unsigned http_port(const struct http *h);

/* Stops accepting new connections; existing ones go on. The listening socket stays open until
 * http_stop. */
void http_quiesce(struct http *h);

/* Stops the daemon, closes the listening socket and frees H. Every stream must have ended (suspended
 * connections abort MHD). */
void http_stop(struct http *h);

/* Resumes REQ's suspended connection, from any thread. libmicrohttpd 0.9.75 in external-poll mode has
 * no wake-up of its own (it drops MHD_USE_ITC), so a resume from another thread than REQ's loop also
 * wakes that loop, which then runs its daemon at once instead of at its next timeout (up to a second).
 * REQ stays valid meanwhile: a suspended connection cannot complete. */
void http_resume(struct request *req);

/* Queues a response with STATUS, an optional body (copied) and content type, plus the CORS headers the
 * request earned. Returns what MHD_queue_response returned. */
enum MHD_Result http_respond(struct request *req, unsigned status, const char *content_type, const void *body,
                             size_t len);

/* Queues RESPONSE with STATUS for REQ (every response goes through here: it records the status for
 * the route's counters). */
enum MHD_Result http_queue(struct request *req, unsigned status, struct MHD_Response *response);

/* Adds the CORS headers due to REQ (if any) to RESPONSE. */
void http_add_cors(const struct request *req, struct MHD_Response *response);

/* The value of request header NAME, or NULL. */
const char *http_header(const struct request *req, const char *name);

/* Writes the peer's address as text into BUF. */
void http_remote_address(const struct request *req, char *buf, size_t len);

#endif
