/* redis_conn: a pipelined, self-reconnecting Redis connection on an evloop (see redis_conn.h).
 *
 * States: DOWN (waiting out the backoff) ⇒ CONNECTING (non-blocking TCP connect) ⇒ LOGIN (AUTH and
 * SELECT sent, when configured) ⇒ UP. Any error, a connect or login that takes longer than the connect
 * timeout, or a reply that takes longer than the I/O timeout closes the socket, fails every waiting
 * callback with NULL and goes back to DOWN. on_state(true) is said once per UP, on_state(false) once
 * when an UP connection is lost.
 *
 * Output is buffered and flushed by a task posted on the first command of an iteration, so all the
 * commands queued in one iteration leave in one write. The memory is freed by a task too, posted after
 * any flush task, so no task ever names a freed connection. */
#define _GNU_SOURCE
#include "redis_conn.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 3000
#define READ_CHUNK 16384
#define READ_BUDGET (256 * 1024) /* bytes read per readiness event before other sockets get a turn */

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_LOGIN, CONN_UP };

struct pending {
  redis_reply_fn fn;
  void *arg;
};

struct redis_conn {
  struct evloop *loop;
  struct redis_conn_options opts;
  enum conn_state state;
  struct evloop_io io;
  struct evloop_timer backoff_timer; /* DOWN: when to connect again */
  struct evloop_timer deadline;      /* CONNECTING/LOGIN: connect timeout; UP: I/O timeout */
  uint64_t backoff_ms;
  bool was_up;      /* on_state(false) is owed when it goes down */
  bool flush_queued;
  bool freed;
  redisReader *reader;
  char *out;
  size_t out_len, out_off, out_cap;
  struct pending *fifo; /* ring of callbacks, in the order their replies will come */
  size_t fifo_head, fifo_len, fifo_cap;
  size_t login_replies; /* replies of AUTH/SELECT still due in LOGIN */
};

static void conn_connect(struct redis_conn *c);
static void conn_flush(struct redis_conn *c);

/* ---- the callback ring ---- */

static int fifo_push(struct redis_conn *c, redis_reply_fn fn, void *arg) {
  if (c->fifo_len == c->fifo_cap) {
    size_t cap = c->fifo_cap ? 2 * c->fifo_cap : 64;
    struct pending *r = malloc(cap * sizeof *r);
    if (r == NULL) return -1;
    for (size_t i = 0; i < c->fifo_len; i++) r[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
    free(c->fifo);
    c->fifo = r;
    c->fifo_cap = cap;
    c->fifo_head = 0;
  }
  c->fifo[(c->fifo_head + c->fifo_len) % c->fifo_cap] = (struct pending){fn, arg};
  c->fifo_len++;
  return 0;
}

static struct pending fifo_pop(struct redis_conn *c) {
  struct pending p = c->fifo[c->fifo_head];
  c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
  c->fifo_len--;
  return p;
}

/* ---- going down and coming back ---- */

static void backoff_fire(struct evloop_timer *t) { conn_connect(t->arg); }

/* Closes the socket, fails every waiting callback, and schedules the next attempt (unless freed). */
static void conn_drop(struct redis_conn *c, const char *why) {
  bool was_up = c->was_up;
  if (c->state != CONN_DOWN) {
    if (c->freed)
      log_debug("%s: %s:%d: %s", c->opts.name, c->opts.addr.host, c->opts.addr.port, why);
    else if (c->state == CONN_UP || c->backoff_ms == 0)
      log_warn("%s: %s:%d: %s", c->opts.name, c->opts.addr.host, c->opts.addr.port, why);
    else
      log_debug("%s: %s:%d: %s", c->opts.name, c->opts.addr.host, c->opts.addr.port, why);
    evloop_io_del(c->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
  }
  c->state = CONN_DOWN;
  c->was_up = false;
  evloop_timer_cancel(c->loop, &c->deadline);
  if (c->reader) redisReaderFree(c->reader);
  c->reader = NULL;
  c->out_len = c->out_off = 0;
  while (c->fifo_len > 0) { /* callbacks may queue commands: they fail, the connection is down */
    struct pending p = fifo_pop(c);
    if (p.fn) p.fn(p.arg, NULL);
  }
  if (was_up && c->opts.on_state && !c->freed) c->opts.on_state(c->opts.arg, false);
  if (c->freed) return;
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
  uint64_t jitter = (uint64_t)rand() % (c->backoff_ms / 2 + 1); /* spread nodes' reconnects */
  evloop_timer_arm(c->loop, &c->backoff_timer, c->backoff_ms / 2 + jitter);
}

void redis_conn_reset(struct redis_conn *c, const char *why) {
  if (c->state != CONN_DOWN) conn_drop(c, why);
}

static void deadline_fire(struct evloop_timer *t) {
  struct redis_conn *c = t->arg;
  conn_drop(c, c->state == CONN_UP ? "no reply within the I/O timeout" : "connect timeout");
}

static void conn_became_up(struct redis_conn *c) {
  c->state = CONN_UP;
  c->was_up = true;
  c->backoff_ms = 0;
  evloop_timer_cancel(c->loop, &c->deadline);
  log_info("%s: connected to %s:%d", c->opts.name, c->opts.addr.host, c->opts.addr.port);
  if (c->opts.on_state) c->opts.on_state(c->opts.arg, true);
}

/* ---- input ---- */

static bool is_push(const redisReply *r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING) return false;
  const char *kind = r->element[0]->str;
  return (r->elements == 3 && strcmp(kind, "message") == 0) || (r->elements == 4 && strcmp(kind, "pmessage") == 0);
}

static void login_reply(void *arg, const redisReply *reply) {
  struct redis_conn *c = arg;
  if (reply == NULL) return; /* dropped */
  if (reply->type == REDIS_REPLY_ERROR) {
    char why[300];
    snprintf(why, sizeof why, "login refused: %s", reply->str);
    conn_drop(c, why);
    return;
  }
  if (--c->login_replies == 0) conn_became_up(c);
}

/* Hands one parsed reply to its callback. Returns false when the connection went down meanwhile. */
static bool dispatch(struct redis_conn *c, redisReply *reply) {
  if (c->opts.subscriber && is_push(reply)) {
    if (c->opts.on_push) c->opts.on_push(c->opts.arg, reply);
  } else if (c->fifo_len == 0) {
    freeReplyObject(reply);
    conn_drop(c, "reply to no command (protocol out of step)");
    return false;
  } else {
    struct pending p = fifo_pop(c);
    if (p.fn) p.fn(p.arg, reply);
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "READONLY", 8) == 0 && c->state != CONN_DOWN) {
      freeReplyObject(reply); /* a failover made this server a replica: find the master again */
      conn_drop(c, "the server became a replica");
      return false;
    }
  }
  freeReplyObject(reply);
  return c->state != CONN_DOWN;
}

static void conn_read(struct redis_conn *c) {
  char buf[READ_CHUNK];
  size_t budget = READ_BUDGET;
  while (budget > 0 && c->state != CONN_DOWN) {
    ssize_t n = read(c->io.fd, buf, sizeof buf);
    if (n == 0) return conn_drop(c, "connection closed by the server");
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return conn_drop(c, strerror(errno));
    }
    budget -= (size_t)n < budget ? (size_t)n : budget;
    if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) return conn_drop(c, "out of memory");
    for (;;) {
      void *reply = NULL;
      if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) return conn_drop(c, "malformed reply");
      if (reply == NULL) break;
      if (!dispatch(c, reply)) return;
    }
    if (c->fifo_len == 0)
      evloop_timer_cancel(c->loop, &c->deadline);
    else if (c->state == CONN_UP)
      evloop_timer_arm(c->loop, &c->deadline, c->opts.io_timeout_ms); /* progress: a fresh wait */
  }
}

/* ---- output ---- */

static void conn_flush(struct redis_conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->io.fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        evloop_io_mod(c->loop, &c->io, EPOLLIN | EPOLLOUT);
        return;
      }
      return conn_drop(c, strerror(errno));
    }
    c->out_off += (size_t)n;
  }
  c->out_len = c->out_off = 0;
  evloop_io_mod(c->loop, &c->io, EPOLLIN);
}

static void flush_task(void *arg) {
  struct redis_conn *c = arg;
  c->flush_queued = false;
  if (c->state != CONN_DOWN && !c->freed) conn_flush(c);
}

static int out_append(struct redis_conn *c, const char *cmd, size_t len) {
  if (c->out_len + len > c->out_cap) {
    if (c->out_off > 0) { /* reclaim what was written */
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off;
      c->out_off = 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + len) cap *= 2;
    if (cap != c->out_cap) {
      char *o = realloc(c->out, cap);
      if (o == NULL) return -1;
      c->out = o;
      c->out_cap = cap;
    }
  }
  memcpy(c->out + c->out_len, cmd, len);
  c->out_len += len;
  if (!c->flush_queued && (c->io.events & EPOLLOUT) == 0) {
    if (evloop_post(c->loop, flush_task, c) != 0) return -1;
    c->flush_queued = true;
  }
  return 0;
}

/* Formats and queues a command regardless of state (login commands go out in LOGIN). */
static int queue_command(struct redis_conn *c, int argc, const char **argv, const size_t *argvlen,
                         redis_reply_fn fn, void *arg) {
  char *cmd = NULL;
  int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
  if (len < 0) return -1;
  size_t mark = c->out_len;
  int rc = out_append(c, cmd, (size_t)len);
  redisFreeCommand(cmd);
  if (rc == 0 && fifo_push(c, fn, arg) != 0) {
    c->out_len = mark; /* not sent: take it back */
    rc = -1;
  }
  if (rc == 0 && c->fifo_len == 1 && c->state == CONN_UP)
    evloop_timer_arm(c->loop, &c->deadline, c->opts.io_timeout_ms);
  return rc;
}

int redis_conn_command(struct redis_conn *c, int argc, const char **argv, const size_t *argvlen,
                       redis_reply_fn fn, void *arg) {
  if (c->state != CONN_UP || c->freed) return -1;
  return queue_command(c, argc, argv, argvlen, fn, arg);
}

/* ---- connecting ---- */

static int login(struct redis_conn *c) {
  const struct redis_addr *a = &c->opts.addr;
  c->login_replies = 0;
  if (a->password[0]) {
    const char *auth[3] = {"AUTH", a->user[0] ? a->user : a->password, a->password};
    if (queue_command(c, a->user[0] ? 3 : 2, auth, NULL, login_reply, c) != 0) return -1;
    c->login_replies++;
  }
  if (a->db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", a->db);
    const char *select[2] = {"SELECT", db};
    if (queue_command(c, 2, select, NULL, login_reply, c) != 0) return -1;
    c->login_replies++;
  }
  return 0;
}

static void connected(struct redis_conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return conn_drop(c, strerror(err));
  int one = 1;
  setsockopt(c->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c->io.fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  c->reader = redisReaderCreate();
  if (c->reader == NULL) return conn_drop(c, "out of memory");
  c->state = CONN_LOGIN;
  evloop_io_mod(c->loop, &c->io, EPOLLIN);
  if (login(c) != 0) return conn_drop(c, "out of memory");
  if (c->login_replies == 0) conn_became_up(c);
}

static void conn_event(struct evloop_io *io, uint32_t events) {
  struct redis_conn *c = io->arg;
  if (c->state == CONN_CONNECTING) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connected(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_read(c);
  if (c->state != CONN_DOWN && (events & EPOLLOUT)) conn_flush(c);
}

/* Resolves the address (blocking: the first address of a numeric host is immediate; names are
 * resolved once per attempt) and starts a non-blocking connect. */
static void conn_connect(struct redis_conn *c) {
  if (c->freed) return;
  if (c->opts.nsentinels > 0 &&
      redis_sentinel_resolve(c->opts.sentinels, c->opts.nsentinels, c->opts.master_name, c->opts.connect_timeout_ms,
                             c->opts.addr.host, sizeof c->opts.addr.host, &c->opts.addr.port) != 0) {
    conn_drop(c, "master unknown"); /* DOWN: only backs off */
    return;
  }
  char port[8];
  snprintf(port, sizeof port, "%d", c->opts.addr.port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
  int rc = getaddrinfo(c->opts.addr.host, port, &hints, &res);
  if (rc != 0) {
    log_warn("%s: %s: %s", c->opts.name, c->opts.addr.host, gai_strerror(rc));
    conn_drop(c, "cannot resolve"); /* DOWN: only backs off */
    return;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    log_warn("%s: socket: %s", c->opts.name, strerror(errno));
    conn_drop(c, "no socket");
    return;
  }
  rc = connect(fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  c->io.fd = fd;
  c->io.events = EPOLLOUT;
  c->state = CONN_CONNECTING;
  if (evloop_io_add(c->loop, &c->io) != 0) {
    conn_drop(c, strerror(errno));
    return;
  }
  if (rc != 0 && errno != EINPROGRESS) return conn_drop(c, strerror(errno));
  evloop_timer_arm(c->loop, &c->deadline, c->opts.connect_timeout_ms);
}

struct redis_conn *redis_conn_new(struct evloop *loop, const struct redis_conn_options *opts) {
  struct redis_conn *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->loop = loop;
  c->opts = *opts;
  c->io = (struct evloop_io){.fd = -1, .fn = conn_event, .arg = c};
  c->backoff_timer = (struct evloop_timer){.fn = backoff_fire, .arg = c};
  c->deadline = (struct evloop_timer){.fn = deadline_fire, .arg = c};
  conn_connect(c);
  return c;
}

static void free_task(void *arg) {
  struct redis_conn *c = arg;
  free(c->out);
  free(c->fifo);
  free(c);
}

void redis_conn_free(struct redis_conn *c) {
  if (c == NULL) return;
  c->freed = true;
  evloop_timer_cancel(c->loop, &c->backoff_timer);
  conn_drop(c, "closed");
  if (evloop_post(c->loop, free_task, c) != 0) free_task(c); /* loop stopping: no task can name it */
}

bool redis_conn_up(const struct redis_conn *c) { return c->state == CONN_UP && !c->freed; }

size_t redis_conn_pending(const struct redis_conn *c) { return c->fifo_len; }
