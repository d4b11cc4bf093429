/* proxy_headers: copies the client request headers named by proxy_http_headers (Cookie,
 * Authorization, ...) into a new session, where the event proxies forward them from (session.h
 * proxy_headers). Transport layer: it reads the HTTP request.
 *
 * Threads: the thread that handles REQ, before the session's connect runs. */
#ifndef PROXY_HEADERS_H
#define PROXY_HEADERS_H

struct request;
struct session;

struct server;

/* REQ's headers named by proxy_http_headers as "Name: value\n" lines: a malloc'd string the caller
 * owns, or NULL when none is configured or present (a header with a line break is skipped). */
char *proxy_headers_collect(struct server *srv, const struct request *req);

/* Gives S the lines of proxy_headers_collect (HEADERS, taken; NULL = none). */
void proxy_headers_take(struct session *s, char *headers);

/* proxy_headers_take(S, proxy_headers_collect(...)): for transports that make the session while
 * the request is at hand. */
void proxy_headers_capture(struct session *s, const struct request *req);

#endif
