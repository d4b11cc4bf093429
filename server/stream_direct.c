/* stream_direct: a suspended chunked stream written from its core loop (see stream_direct.h). One
 * scratch buffer per loop thread holds the chunk being sent; only what a send leaves over is copied
 * into the stream's own (malloc'd) pending buffer, so an idle or keeping-up stream holds no buffer. */
#include "stream_direct.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "http.h"
#include "log.h"
#include "loops.h"
#include "session.h"

#define CHUNK_HEADER_MAX 10 /* "ffffffff\r\n" */
#define CHUNK_DATA_MAX 16384

static _Thread_local uint8_t scratch[CHUNK_HEADER_MAX + CHUNK_DATA_MAX + 2];
static _Thread_local struct stream_direct *writing_list; /* this loop's streams with unsent bytes */

static void on_writable(struct evloop_io *io, uint32_t events);
static void on_deadline(struct evloop_timer *t);

void stream_direct_init(struct stream_direct *d, struct session *session, struct request *req,
                        struct evloop *loop, int fd, uint64_t write_timeout_ms) {
  memset(d, 0, sizeof *d);
  d->session = session;
  d->req = req;
  d->loop = loop;
  d->fd = fd;
  d->write_timeout_ms = write_timeout_ms;
  d->io = (struct evloop_io){.fd = fd, .events = EPOLLOUT, .fn = on_writable, .arg = d};
  d->deadline = (struct evloop_timer){.fn = on_deadline, .arg = d};
}

bool stream_direct_usable(const struct stream_direct *d) {
  return d->ready && d->loop != NULL && evloop_in_loop(d->loop);
}

void stream_direct_parked(struct stream_direct *d) {
  if (d->fd >= 0 && d->loop != NULL) d->ready = true;
}

void stream_direct_resumed(struct stream_direct *d) { d->ready = false; }

static void stop_writing(struct stream_direct *d) {
  if (d->writing) {
    evloop_io_del(d->loop, &d->io);
    if (d->next) d->next->prev = d->prev;
    *d->prev = d->next;
    d->next = NULL;
    d->prev = NULL;
  }
  d->writing = false;
  evloop_timer_cancel(d->loop, &d->deadline);
  free(d->pending);
  d->pending = NULL;
  d->pending_len = d->pending_off = 0;
}

/* Hands the connection back to MHD: the reader ends the response (with an error when BROKEN). */
static void give_back(struct stream_direct *d, bool broken) {
  stop_writing(d);
  d->broken = d->broken || broken;
  d->ready = false;
  http_resume(d->req);
}

/* Sends BUF[0..LEN). Returns how many bytes went, or -1 when the socket failed. */
static ssize_t send_some(struct stream_direct *d, const uint8_t *buf, size_t len) {
  for (;;) {
    ssize_t n = send(d->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    log_debug("stream: send: %s", strerror(errno));
    return -1;
  }
}

/* Keeps BUF[0..LEN) for EPOLLOUT. Returns false when out of memory (the stream is then broken). */
static bool keep_pending(struct stream_direct *d, const uint8_t *buf, size_t len) {
  d->pending = malloc(len);
  if (d->pending == NULL) return false;
  memcpy(d->pending, buf, len);
  d->pending_len = len;
  d->pending_off = 0;
  if (!d->writing) {
    if (evloop_io_add(d->loop, &d->io) != 0) return false;
    d->next = writing_list;
    if (d->next) d->next->prev = &d->next;
    d->prev = &writing_list;
    writing_list = d;
  }
  d->writing = true;
  evloop_timer_arm(d->loop, &d->deadline, d->write_timeout_ms);
  return true;
}

void stream_direct_flush(struct stream_direct *d) {
  if (d->writing) return; /* EPOLLOUT goes on with what is pending first */
  for (;;) {
    bool eof = false;
    uint8_t *data = scratch + CHUNK_HEADER_MAX;
    size_t n = session_drain(d->session, data, CHUNK_DATA_MAX, &eof);
    if (n == 0) {
      if (eof) give_back(d, false); /* closing and drained: the reader ends the stream */
      return;                       /* else parked: the next wake comes back here */
    }
    char header[CHUNK_HEADER_MAX + 1];
    int hlen = snprintf(header, sizeof header, "%zx\r\n", n);
    uint8_t *chunk = data - hlen;
    memcpy(chunk, header, (size_t)hlen);
    memcpy(data + n, "\r\n", 2);
    size_t len = (size_t)hlen + n + 2;
    ssize_t sent = send_some(d, chunk, len);
    if (sent < 0) {
      give_back(d, true);
      return;
    }
    if ((size_t)sent < len) {
      if (!keep_pending(d, chunk + sent, len - (size_t)sent)) give_back(d, true);
      return;
    }
  }
}

static void on_writable(struct evloop_io *io, uint32_t events) {
  struct stream_direct *d = io->arg;
  (void)events; /* an error or hang-up shows as a failing send */
  ssize_t sent = send_some(d, d->pending + d->pending_off, d->pending_len - d->pending_off);
  if (sent < 0) {
    give_back(d, true);
    return;
  }
  if (sent > 0) evloop_timer_arm(d->loop, &d->deadline, d->write_timeout_ms); /* progress */
  d->pending_off += (size_t)sent;
  if (d->pending_off < d->pending_len) return;
  stop_writing(d);
  stream_direct_flush(d);
}

static void on_deadline(struct evloop_timer *t) {
  struct stream_direct *d = t->arg;
  log_debug("stream: no write progress within %llu ms: closing", (unsigned long long)d->write_timeout_ms);
  give_back(d, true);
}

void stream_direct_release(struct stream_direct *d) {
  if (d->loop != NULL) stop_writing(d);
}

void stream_direct_abandon_all(void) {
  while (writing_list) give_back(writing_list, true); /* give_back takes it off the list */
}
