/* hangup: an epoll set of stream sockets waiting for the peer to hang up (see hangup.h). Each socket
 * is registered one-shot, so a hang-up is reported once; the fd ⇒ session table is the only link from
 * an event to a session, and it is cleared under the lock by unwatch. Events carry the fd and a
 * registration number, so an event that was already returned when its fd was unwatched and reused by
 * a newer stream is recognised as stale. The same table drives the close deadline: every SWEEP_MS the
 * thread looks at the watched sessions, and a socket whose session has been closing for longer than
 * client_close_timeout is shut down (see hangup.h); under the lock the fd is still the stream's. */
#include "hangup.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codes.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "timer.h"

#define EVENTS_PER_WAIT 256
#define WAIT_MS 200  /* how often the thread looks at the stop flag */
#define SWEEP_MS 250 /* how often the close deadlines are checked */

struct watched {
  struct session *session;
  uint32_t generation;
  uint64_t closing_ms; /* when the sweep first saw the session closing; 0 = not yet */
};

struct hangup {
  int epfd;
  pthread_t thread;
  pthread_mutex_t lock;
  struct watched *by_fd; /* guarded by lock */
  size_t size;
  uint32_t generation; /* guarded by lock */
  bool stop;           /* guarded by lock */
};

static struct session *take_session(struct hangup *h, uint64_t key) {
  struct session *s = NULL;
  size_t fd = (size_t)(key & 0xffffffffu);
  pthread_mutex_lock(&h->lock);
  if (fd < h->size && h->by_fd[fd].session && h->by_fd[fd].generation == (uint32_t)(key >> 32))
    s = session_ref(h->by_fd[fd].session);
  pthread_mutex_unlock(&h->lock);
  return s;
}

static bool stopping(struct hangup *h) {
  pthread_mutex_lock(&h->lock);
  bool stop = h->stop;
  pthread_mutex_unlock(&h->lock);
  return stop;
}

/* Shuts down the sockets of sessions closing for longer than client_close_timeout. SO_LINGER 0 first,
 * so that when libmicrohttpd, failing its next write, closes the socket, it is reset and what the
 * client never read leaves the kernel's buffers. */
static void sweep(struct hangup *h, uint64_t now) {
  pthread_mutex_lock(&h->lock);
  for (size_t fd = 0; fd < h->size; fd++) {
    struct watched *w = &h->by_fd[fd];
    if (w->session == NULL || w->closing_ms == UINT64_MAX) continue;
    if (session_state(w->session) < SESSION_CLOSING) continue;
    if (w->closing_ms == 0) w->closing_ms = now;
    uint64_t limit = (uint64_t)w->session->srv->boot_cfg->client_close_timeout_ms;
    if (now - w->closing_ms < limit) continue;
    log_info("client %s: closing, last frames not flushed within %llu ms", w->session->client_id,
             (unsigned long long)limit);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    shutdown((int)fd, SHUT_RDWR);
    w->closing_ms = UINT64_MAX; /* done: the stream ends on its own now */
  }
  pthread_mutex_unlock(&h->lock);
}

static void *run(void *arg) {
  struct hangup *h = arg;
  struct epoll_event events[EVENTS_PER_WAIT];
  uint64_t next_sweep = timer_now_ms() + SWEEP_MS;
  while (!stopping(h)) {
    int n = epoll_wait(h->epfd, events, EVENTS_PER_WAIT, WAIT_MS < SWEEP_MS ? WAIT_MS : SWEEP_MS);
    for (int i = 0; i < n; i++) {
      struct session *s = take_session(h, events[i].data.u64);
      if (s == NULL) continue;
      log_debug("session %s: client hung up", s->session_id);
      session_close(s, DISCONNECT_CONNECTION_CLOSED);
      session_unref(s);
    }
    uint64_t now = timer_now_ms();
    if (now >= next_sweep) {
      sweep(h, now);
      next_sweep = now + SWEEP_MS;
    }
  }
  return NULL;
}

struct hangup *hangup_start(void) {
  struct hangup *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  pthread_mutex_init(&h->lock, NULL);
  h->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (h->epfd < 0 || pthread_create(&h->thread, NULL, run, h) != 0) {
    if (h->epfd >= 0) close(h->epfd);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return NULL;
  }
  return h;
}

void hangup_stop(struct hangup *h) {
  if (h == NULL) return;
  pthread_mutex_lock(&h->lock);
  h->stop = true;
  pthread_mutex_unlock(&h->lock);
  pthread_join(h->thread, NULL);
  close(h->epfd);
  free(h->by_fd);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

/* Grows the table to hold FD. Caller holds the lock. */
static int reserve(struct hangup *h, int fd) {
  if ((size_t)fd < h->size) return 0;
  size_t size = h->size ? h->size : 1024;
  while (size <= (size_t)fd) size *= 2;
  struct watched *t = realloc(h->by_fd, size * sizeof *t);
  if (t == NULL) return -1;
  for (size_t i = h->size; i < size; i++) t[i] = (struct watched){0};
  h->by_fd = t;
  h->size = size;
  return 0;
}

int hangup_watch(struct hangup *h, int fd, struct session *s) {
  int rc = -1;
  pthread_mutex_lock(&h->lock);
  if (fd >= 0 && reserve(h, fd) == 0) {
    uint32_t gen = ++h->generation;
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLHUP | EPOLLONESHOT,
                             .data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd};
    h->by_fd[fd] = (struct watched){s, gen, 0};
    rc = epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (rc != 0) h->by_fd[fd] = (struct watched){0};
  }
  pthread_mutex_unlock(&h->lock);
  return rc;
}

void hangup_unwatch(struct hangup *h, int fd) {
  pthread_mutex_lock(&h->lock);
  if (fd >= 0 && (size_t)fd < h->size && h->by_fd[fd].session) {
    h->by_fd[fd] = (struct watched){0};
    epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
  }
  pthread_mutex_unlock(&h->lock);
}
