/* http_client: outgoing HTTP requests (the event proxies to the application backend, later the JWKS
 * fetch) on libcurl's multi interface, driven by one thread of its own, so that no MHD, core-loop,
 * WebSocket or timer thread ever waits on the network. Connections are kept alive and reused between
 * requests to the same host (one multi handle, one connection cache). At most MAX_IN_FLIGHT requests
 * run or wait at once per client; one more is refused at once (HTTP_CLIENT_EBUSY), so a backend that
 * hangs costs bounded memory and every caller an answer within its timeout.
 *
 * Threads: http_client_send from any thread; the completion callback runs on the client's own thread
 * and must not block (post the work elsewhere: workers_post). http_client_new/free from the main thread.
 * Every request gets exactly one completion, also when the client is freed with requests in flight
 * (HTTP_CLIENT_ESTOPPED). */
#ifndef HTTP_CLIENT_H
#define HTTP_CLIENT_H

#include <stddef.h>

struct http_client;

enum http_client_error {
  HTTP_CLIENT_OK = 0,
  HTTP_CLIENT_EBUSY = 1,     /* MAX_IN_FLIGHT requests already running */
  HTTP_CLIENT_ETIMEOUT = 2,  /* no complete answer within the request's timeout */
  HTTP_CLIENT_ENETWORK = 3,  /* could not connect, or the connection failed */
  HTTP_CLIENT_ETOOLARGE = 4, /* the answer's body is over the client's MAX_BODY */
  HTTP_CLIENT_ESTOPPED = 5,  /* the client was freed before the answer came */
  HTTP_CLIENT_ENOMEM = 6,
};

/* A request to send. Everything is copied by http_client_send; nothing is kept. */
struct http_client_request {
  const char *method;         /* "POST", "GET" */
  const char *url;            /* http:// or https:// */
  const char *const *headers; /* "Name: value" lines */
  size_t n_headers;
  const char *body; /* may be NULL with body_len 0 */
  size_t body_len;
  long timeout_ms; /* the whole exchange, connect included; > 0 */
};

/* What came back. ERROR is HTTP_CLIENT_OK when an HTTP answer arrived (of any status); BODY (not
 * NUL-terminated; may be NULL when empty) and WHY are valid only during the callback. */
struct http_client_response {
  enum http_client_error error;
  long status;
  const char *body;
  size_t body_len;
  const char *why; /* curl's message when ERROR is set, "" otherwise */
  double seconds;  /* how long the exchange took */
};

typedef void (*http_client_done_fn)(void *arg, const struct http_client_response *resp);

/* Starts a client and its thread. MAX_IN_FLIGHT >= 1 bounds the requests at once; MAX_BODY bounds
 * an answer's body. Returns NULL when out of memory or the thread cannot start. */
struct http_client *http_client_new(unsigned max_in_flight, size_t max_body);

/* Queues REQ; DONE(ARG, response) is called exactly once, on the client's thread, except when this
 * returns non-zero (then never): -HTTP_CLIENT_EBUSY when MAX_IN_FLIGHT requests are in flight,
 * -HTTP_CLIENT_ENOMEM, -HTTP_CLIENT_ESTOPPED after http_client_free began. Any thread. */
int http_client_send(struct http_client *c, const struct http_client_request *req, http_client_done_fn done,
                     void *arg);

/* Requests in flight now (a gauge; any thread). */
unsigned http_client_in_flight(struct http_client *c);

/* Names an error for logs ("timeout", "network", ...). */
const char *http_client_strerror(enum http_client_error e);

/* Stops the thread: requests still in flight complete with HTTP_CLIENT_ESTOPPED. Frees C (NULL is
 * fine). Main thread, after every caller that could send has stopped sending. */
void http_client_free(struct http_client *c);

#endif
