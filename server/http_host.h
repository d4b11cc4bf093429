/* http_host: the Host allow-list that defeats DNS rebinding (a hostile page whose name is re-pointed at
 * streamd's address reaches it with its own name in Host, and meets the same-origin rule too). Every
 * request whose Host header is not allowed is refused (421 Misdirected Request, in http.c) before any
 * endpoint runs.
 *
 * Threads: any thread; reads only the configuration it is given. */
#ifndef HTTP_HOST_H
#define HTTP_HOST_H

#include <stdbool.h>

#include "config.h"

/* Is HOST (a Host header value, NULL when absent) allowed by CFG? The port is ignored. With
 * allowed_hosts empty the names allowed are the listen address, "localhost", "127.0.0.1" and "[::1]";
 * otherwise the list's case-insensitive glob patterns ("*" allows every name). A request without Host
 * (HTTP/1.0; libmicrohttpd refuses HTTP/1.1 without one) is allowed: a browser always sends one. */
bool http_host_allowed(const struct config *cfg, const char *host);

#endif
