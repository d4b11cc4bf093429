/* ctl_conn: streamctl's side of the admin socket: connect, send one request line, read one response
 * line. Reads are buffered, so a response split across reads or several lines in one read (a watch
 * stream) come out one line at a time. A line longer than CTL_MAX_LINE ends the connection instead of
 * growing without bound. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_MAX_LINE (256u * 1024 * 1024)

int ctl_conn_open(struct ctl_conn *c, const char *path, char *err, size_t errlen) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  c->fd = -1;
  c->len = c->consumed = 0;
  if (strlen(path) >= sizeof sa.sun_path) {
    snprintf(err, errlen, "cannot connect to %s: path too long", path);
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  c->fd = fd;
  return 0;
}

void ctl_conn_close(struct ctl_conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = c->consumed = 0;
}

int ctl_conn_send(struct ctl_conn *c, json_t *request) {
  char *text = json_dumps(request, JSON_COMPACT);
  if (text == NULL) return -1;
  size_t len = strlen(text), off = 0;
  text[len++] = '\n'; /* the terminator becomes the line's newline; TEXT is sent by length */
  while (off < len) {
    ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += (size_t)n;
  }
  free(text);
  return off == len ? 0 : -1;
}

/* Reads more bytes into the buffer. Returns 0, -1 (closed or failed), 1 (interrupted). */
static int fill(struct ctl_conn *c) {
  if (c->len == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 65536;
    char *nb = cap <= CTL_MAX_LINE ? realloc(c->buf, cap + 1) : NULL;
    if (nb == NULL) return -1;
    c->buf = nb;
    c->cap = cap;
  }
  for (;;) {
    if (ctl_interrupted) return 1;
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n > 0) {
      c->len += (size_t)n;
      return 0;
    }
    /* an interrupt that came between the check and the read shut the socket down: see ctl_run.c */
    if (ctl_interrupted) return 1;
    if (n < 0 && errno == EINTR) continue;
    return -1;
  }
}

int ctl_conn_recv(struct ctl_conn *c, json_t **value, const char **line) {
  if (c->consumed) {
    memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
    c->len -= c->consumed;
    c->consumed = 0;
  }
  char *nl;
  while (c->fd < 0 || (nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL) == NULL) {
    if (c->fd < 0) return -1;
    int rc = fill(c);
    if (rc != 0) return rc;
  }
  *nl = '\0';
  c->consumed = (size_t)(nl - c->buf) + 1;
  *line = c->buf;
  json_error_t jerr;
  *value = json_loadb(c->buf, (size_t)(nl - c->buf), 0, &jerr);
  return *value ? 0 : -2;
}
