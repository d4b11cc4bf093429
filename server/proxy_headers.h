/* proxy_headers: copies the client request headers named by proxy_http_headers (Cookie,
 * Authorization, ...) into a new session, where the event proxies forward them from (session.h
 * proxy_headers). Transport layer: it reads the HTTP request.
 *
 * Threads: the thread that handles REQ, before the session's connect runs. */
#ifndef PROXY_HEADERS_H
#define PROXY_HEADERS_H

struct request;
struct session;

/* Stores REQ's headers named by proxy_http_headers into S (nothing when none is configured or
 * present; a header with a line break is skipped). */
void proxy_headers_capture(struct session *s, const struct request *req);

#endif
