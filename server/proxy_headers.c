/* proxy_headers: the stream request's headers for the event proxies (see proxy_headers.h). The lines
 * are built once, at the stream's start, so a proxy call later never touches the HTTP request. */
#include "proxy_headers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "server.h"
#include "session.h"

char *proxy_headers_collect(struct server *srv, const struct request *req) {
  const struct config *c = srv->boot_cfg; /* proxy keys: restart only */
  size_t len = 0, cap = 0;
  char *out = NULL;
  for (size_t i = 0; i < c->proxy_http_headers_count; i++) {
    const char *name = c->proxy_http_headers[i], *value = http_header(req, name);
    if (value == NULL || strpbrk(value, "\r\n") || strpbrk(name, "\r\n:")) continue;
    size_t need = len + strlen(name) + strlen(value) + 4;
    if (need > cap) {
      char *b = realloc(out, need * 2);
      if (b == NULL) break;
      out = b;
      cap = need * 2;
    }
    len += (size_t)snprintf(out + len, cap - len, "%s: %s\n", name, value);
  }
  return out;
}

void proxy_headers_take(struct session *s, char *headers) {
  pthread_mutex_lock(&s->lock);
  free(s->proxy_headers);
  s->proxy_headers = headers;
  pthread_mutex_unlock(&s->lock);
}

void proxy_headers_capture(struct session *s, const struct request *req) {
  proxy_headers_take(s, proxy_headers_collect(s->srv, req));
}
