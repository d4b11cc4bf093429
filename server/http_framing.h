/* http_framing: the request-smuggling guard (RFC 9112 §6.1, §6.3, §5.5). A request whose body length
 * two HTTP parsers could read differently, or whose header values hold bytes a proxy may split lines
 * on, is refused before any handler runs: libmicrohttpd picks one of several Content-Length headers,
 * accepts Content-Length beside Transfer-Encoding and passes NUL and bare CR through in values.
 *
 * Threads: any thread; no state. */
#ifndef HTTP_FRAMING_H
#define HTTP_FRAMING_H

#include <microhttpd.h>

/* Checks the headers of CONN (call once, when MHD has parsed them). Returns 0 when the framing is
 * unambiguous, or -1 with *WHY set to a static text naming the defect. */
int http_framing_check(struct MHD_Connection *conn, const char **why);

#endif
