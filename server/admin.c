/* admin: the admin socket's transport: the Unix socket's life (refuse a path that is not a socket,
 * replace a stale one of ours, create it with the configured mode before anyone can connect, remove it
 * on stop), one epoll thread serving every admin client, newline-delimited JSON framing, and the two
 * streaming commands, `watch` and `trace`. What each other command does lives in admin_commands.c.
 *
 * `trace`: the recorder (trace.h) queues the traced session's events and wakes this thread, which
 * moves them into the client's output buffer only while less than ADMIN_OUT_SOFT bytes wait there
 * (so a reader that stalls leaves them in the recorder's bounded queue, which drops and counts),
 * decodes and writes them, and closes the connection after the end line.
 *
 * Invariants: a request line is at most SD_ADMIN_MAX_REQUEST bytes (a longer one gets an error and is
 * skipped up to its newline); a client's pending output is bounded: requests are not read while more
 * than ADMIN_OUT_SOFT bytes wait for it, and a watcher further behind than ADMIN_WATCH_MAX is dropped.
 * Admin clients never touch sessions except through admin_execute, so a bad request only ever costs
 * its sender an error line.
 *
 * Threads and locks: the admin thread owns the client list's structure, the epoll set and each
 * client's input side. admin->lock guards every client's output buffer and watch state, and the list
 * while it changes, because the hub observer (publishing threads) appends watch lines to them.
 * The observer reaches the admin only through `current` under observer_lock, which admin_stop clears
 * before freeing anything, so a publishing thread can never touch a stopped admin; a publication on
 * a channel whose watch slot is empty (no watcher, or watchers of other channels only) returns before
 * taking either lock. Lock order:
 * observer_lock ⇒ admin->lock; no admin lock is held while a command runs. A trace's recorder wakes
 * this thread from under its own lock (trace.c) with an eventfd write only, and this thread takes the
 * recorder's events before it takes admin->lock, so the two locks are never held together. */
#define _GNU_SOURCE /* accept4 */
#include "admin.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fdlimit.h"
#include "hub.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "session.h"
#include "siphash.h"
#include "trace.h"

#define ADMIN_MAX_CLIENTS 64
#define ADMIN_OUT_SOFT (256 * 1024)
#define ADMIN_WATCH_MAX (1024 * 1024)
#define ADMIN_IN_CAP (SD_ADMIN_MAX_REQUEST + 4096)

struct buf {
  char *data;
  size_t len, cap;
};

struct admin_client {
  struct admin_client *next, *prev;
  int fd;
  uint32_t interest; /* the epoll events registered */
  /* Admin thread only. */
  struct buf in;
  bool discarding; /* skipping the rest of an oversized request line */
  bool eof;        /* the client closed its side: close once the output is flushed */
  bool dead;       /* to be freed at the end of this round of events */
  /* Under admin->lock. */
  struct buf out;
  char *watch;   /* the channel it watches, NULL when not watching */
  bool overflow; /* a watcher that fell behind: dropped on the next round */
  /* Admin thread only: a trace client's recorder and what it traces. */
  struct trace *trace;
  struct trace_info trace_info;
  uint64_t trace_dropped; /* events dropped over the whole trace */
};

struct admin {
  struct server *srv;
  char *path; /* NULL when disabled */
  dev_t dev;
  ino_t ino;
  int listen_fd, epoll_fd, wake_fd;
  pthread_t thread;
  bool thread_started;
  atomic_bool stopping;
  pthread_mutex_t lock;
  struct admin_client *clients;
  size_t n_clients;
  /* Admin thread: at the open-files limit (fdlimit.h), refusals counted and logged; while even the
   * reserve descriptor is gone, the listen socket is out of the epoll set since paused_at (ms). */
  struct fdlimit_gate fd_gate;
  bool listen_paused;
  uint64_t paused_at;
};

/* epoll tags for the two fds that are not clients. */
static char listen_tag, wake_tag;

/* What the hub observer may reach: the running admin, how many watchers it has, and how many watch
 * each slot of channels (by the keyed hash of the name), so that a publication on a channel nobody
 * watches costs an atomic load or two and takes no lock, even while other channels are watched. */
#define WATCH_SLOTS 256 /* power of two */
static pthread_mutex_t observer_lock = PTHREAD_MUTEX_INITIALIZER;
static struct admin *current;
static atomic_size_t watchers;
static atomic_uint watched[WATCH_SLOTS];

static atomic_uint *watch_slot(const char *channel) {
  return &watched[siphash_string(channel) & (WATCH_SLOTS - 1)];
}

static int buf_append(struct buf *b, const char *data, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + len) cap *= 2;
    char *nd = realloc(b->data, cap);
    if (nd == NULL) return -1;
    b->data = nd;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static void buf_consume(struct buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

static void wake(struct admin *a) {
  uint64_t one = 1;
  if (write(a->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
    log_warn("admin: wake: %s", strerror(errno));
}

/* --- output --- */

/* Writes what C's output buffer holds until the socket would block. Caller holds a->lock.
 * Marks C dead on a write error, or when it is done (eof and nothing left). */
static void flush_locked(struct admin_client *c) {
  while (c->out.len > 0) {
    ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      c->dead = true;
      return;
    }
    buf_consume(&c->out, (size_t)n);
  }
  if (c->out.len == 0 && c->eof) c->dead = true;
}

/* Queues VALUE (stolen) as one line for C and tries to send it. */
static void reply(struct admin *a, struct admin_client *c, json_t *value) {
  char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
  json_decref(value);
  pthread_mutex_lock(&a->lock);
  if (text == NULL || buf_append(&c->out, text, strlen(text)) != 0 || buf_append(&c->out, "\n", 1) != 0)
    c->dead = true; /* out of memory: this admin client is the one that pays */
  else
    flush_locked(c);
  pthread_mutex_unlock(&a->lock);
  free(text);
}

static void reply_error(struct admin *a, struct admin_client *c, const char *message) {
  reply(a, c, json_pack("{ss}", "error", message));
}

static size_t out_len(struct admin *a, struct admin_client *c) {
  pthread_mutex_lock(&a->lock);
  size_t n = c->out.len;
  pthread_mutex_unlock(&a->lock);
  return n;
}

/* --- watch --- */

/* Appends LINE to every watcher of CHANNEL, dropping those too far behind. Caller holds a->lock. */
static bool deliver_locked(struct admin *a, const char *channel, const Protocol__Publication *pub) {
  char *text = NULL;
  size_t len = 0;
  bool any = false;
  for (struct admin_client *c = a->clients; c; c = c->next) {
    if (c->watch == NULL || c->overflow || strcmp(c->watch, channel) != 0) continue;
    if (text == NULL) {
      json_t *line = admin_publication_line(channel, pub);
      text = line ? json_dumps(line, JSON_COMPACT) : NULL;
      json_decref(line);
      if (text == NULL) return any;
      len = strlen(text);
      text[len++] = '\n'; /* replaces the terminator: TEXT is used with its length from here on */
    }
    if (c->out.len + len > ADMIN_WATCH_MAX || buf_append(&c->out, text, len) != 0) c->overflow = true;
    any = true;
  }
  free(text);
  return any;
}

/* The hub observer: publishing threads, outside the hub lock. Free when nobody watches. */
static void on_publication(const char *channel, const Protocol__Publication *pub, void *arg) {
  (void)arg;
  if (atomic_load_explicit(&watchers, memory_order_relaxed) == 0) return;
  if (atomic_load_explicit(watch_slot(channel), memory_order_relaxed) == 0) return;
  pthread_mutex_lock(&observer_lock);
  struct admin *a = current;
  if (a) {
    pthread_mutex_lock(&a->lock);
    bool any = deliver_locked(a, channel, pub);
    pthread_mutex_unlock(&a->lock);
    if (any) wake(a);
  }
  pthread_mutex_unlock(&observer_lock);
}

static void start_watch(struct admin *a, struct admin_client *c, const char *channel) {
  char *copy = strdup(channel);
  if (copy == NULL) {
    reply_error(a, c, "out of memory");
    return;
  }
  reply(a, c, json_pack("{s{ss}}", "result", "watching", channel));
  pthread_mutex_lock(&a->lock);
  c->watch = copy;
  pthread_mutex_unlock(&a->lock);
  atomic_fetch_add(watch_slot(copy), 1);
  atomic_fetch_add(&watchers, 1);
}

static void pump_trace(struct admin *a, struct admin_client *c);

/* After a wake: moves what traces recorded into their clients' output, sends what watchers have pending,
 * drops the ones that fell behind. */
static void flush_watchers(struct admin *a) {
  uint64_t count;
  if (read(a->wake_fd, &count, sizeof count) < 0 && errno != EAGAIN) log_warn("admin: %s", strerror(errno));
  for (struct admin_client *c = a->clients; c; c = c->next) /* the list is this thread's to change */
    if (c->trace && !c->dead) pump_trace(a, c);
  pthread_mutex_lock(&a->lock);
  for (struct admin_client *c = a->clients; c; c = c->next) {
    if (c->watch == NULL || c->dead) continue;
    if (c->overflow) {
      log_warn("admin: dropping a watcher of %s: it does not read fast enough", c->watch);
      c->dead = true;
    } else {
      flush_locked(c);
    }
  }
  pthread_mutex_unlock(&a->lock);
}

/* --- trace --- */

static void trace_wake(void *arg) { wake(arg); }

/* Appends VALUE (stolen) as one line to C's output. Caller holds a->lock. */
static void append_line_locked(struct admin_client *c, json_t *value) {
  char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
  json_decref(value);
  if (text == NULL || buf_append(&c->out, text, strlen(text)) != 0 || buf_append(&c->out, "\n", 1) != 0)
    c->dead = true;
  free(text);
}

/* admin_trace_lines' EMIT: appends LINE to the client in ARG. Caller holds a->lock. */
static void emit_line_locked(void *arg, json_t *line) { append_line_locked(arg, line); }

/* Moves what C's recorder holds into its output while the output is below the soft limit, and sends. */
static void pump_trace(struct admin *a, struct admin_client *c) {
  struct trace_event evs[64];
  while (c->trace && !c->dead && !c->eof && out_len(a, c) < ADMIN_OUT_SOFT) {
    uint64_t dropped;
    size_t n = trace_take(c->trace, evs, sizeof evs / sizeof evs[0], &dropped);
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < n; i++) {
      if (evs[i].kind == TRACE_EV_END && dropped) { /* the drops go before the end line and its total */
        c->trace_dropped += dropped;
        append_line_locked(c, admin_trace_dropped_line(dropped));
        dropped = 0;
      }
      /* the end line is the last: the connection closes once it is sent */
      if (!c->eof && admin_trace_lines(&c->trace_info, &evs[i], c->trace_dropped, emit_line_locked, c))
        c->eof = true;
      trace_event_release(&evs[i]);
    }
    if (dropped) {
      c->trace_dropped += dropped;
      append_line_locked(c, admin_trace_dropped_line(dropped));
    }
    flush_locked(c);
    pthread_mutex_unlock(&a->lock);
    if (n == 0) break;
  }
}

static void start_trace(struct admin *a, struct admin_client *c, json_t *args) {
  const char *id = json_string_value(json_object_get(args, "id"));
  struct session *s = registry_find_any(a->srv->registry, id);
  char err[160];
  if (s == NULL) {
    snprintf(err, sizeof err, "no such session on this node: %s", id);
    reply_error(a, c, err);
    return;
  }
  struct trace *t = NULL;
  int rc = trace_start(s, trace_wake, a, &t, &c->trace_info);
  json_t *ack = rc != 0 ? NULL : admin_trace_ack(s, &c->trace_info);
  session_unref(s);
  if (rc == -TRACE_EBUSY)
    snprintf(err, sizeof err, "too many traces (at most %d at once)", TRACE_MAX);
  else if (rc == -TRACE_EENDED)
    snprintf(err, sizeof err, "the session has ended");
  else if (rc != 0 || ack == NULL)
    snprintf(err, sizeof err, "out of memory");
  if (rc != 0 || ack == NULL) {
    trace_stop(t);
    json_decref(ack);
    reply_error(a, c, err);
    return;
  }
  reply(a, c, ack);
  c->trace = t;
  pump_trace(a, c);
}

static void start_watch_args(struct admin *a, struct admin_client *c, json_t *args) {
  start_watch(a, c, json_string_value(json_object_get(args, "channel")));
}

/* The streaming commands, by the shared table's enum. */
typedef void (*streamer_fn)(struct admin *a, struct admin_client *c, json_t *args);
static const streamer_fn streamers[SD_ADMIN_CMD_COUNT] = {
    [SD_ADMIN_WATCH] = start_watch_args,
    [SD_ADMIN_TRACE] = start_trace,
};

/* --- input --- */

/* Parses, validates and runs one request line. */
static void handle_line(struct admin *a, struct admin_client *c, const char *line, size_t len) {
  char err[256];
  json_error_t jerr;
  const struct sd_admin_command *cmd;
  if (len == 0 || (len == 1 && line[0] == '\r')) return; /* blank lines are not requests */
  json_t *req = json_loadb(line, len, 0, &jerr);
  if (req == NULL) {
    snprintf(err, sizeof err, "malformed JSON: %s", jerr.text);
    reply_error(a, c, err);
    return;
  }
  if (sd_admin_validate(req, &cmd, err, sizeof err) != 0)
    reply_error(a, c, err);
  else if (cmd->streaming && streamers[cmd->id])
    streamers[cmd->id](a, c, json_object_get(req, "args"));
  else
    reply(a, c, admin_execute(a->srv, cmd, json_object_get(req, "args")));
  json_decref(req);
}

static void reply_too_large(struct admin *a, struct admin_client *c) {
  char err[96];
  snprintf(err, sizeof err, "request too large (the limit is %d bytes)", SD_ADMIN_MAX_REQUEST);
  reply_error(a, c, err);
}

/* Runs the complete lines in C's input while its output is below the soft limit. */
static void process_input(struct admin *a, struct admin_client *c) {
  size_t start = 0;
  while (!c->dead && c->watch == NULL && c->trace == NULL && out_len(a, c) < ADMIN_OUT_SOFT) {
    char *nl = memchr(c->in.data + start, '\n', c->in.len - start);
    if (nl == NULL) break;
    size_t len = (size_t)(nl - (c->in.data + start));
    if (!c->discarding && len > SD_ADMIN_MAX_REQUEST)
      reply_too_large(a, c);
    else if (!c->discarding)
      handle_line(a, c, c->in.data + start, len);
    c->discarding = false;
    start += len + 1;
  }
  buf_consume(&c->in, start);
  if (c->watch || c->trace) c->in.len = 0; /* a watcher's or tracer's further input means nothing */
  bool partial_only = c->in.len > 0 && memchr(c->in.data, '\n', c->in.len) == NULL;
  if (partial_only && (c->discarding || c->in.len > SD_ADMIN_MAX_REQUEST)) {
    if (!c->discarding) reply_too_large(a, c);
    c->in.len = 0;
    c->discarding = true;
  }
}

/* Reads what C sent, as far as its input buffer and output backlog allow, and runs its requests. */
static void read_client(struct admin *a, struct admin_client *c) {
  char chunk[4096];
  while (!c->dead && !c->eof && c->in.len < ADMIN_IN_CAP && out_len(a, c) < ADMIN_OUT_SOFT) {
    size_t room = ADMIN_IN_CAP - c->in.len;
    ssize_t n = recv(c->fd, chunk, room < sizeof chunk ? room : sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      c->eof = true;
      break;
    }
    if (buf_append(&c->in, chunk, (size_t)n) != 0) {
      c->dead = true;
      return;
    }
    process_input(a, c);
  }
  if (c->eof) {
    pthread_mutex_lock(&a->lock);
    flush_locked(c); /* closes it now when nothing is left to send */
    pthread_mutex_unlock(&a->lock);
  }
}

/* --- client list and the event loop --- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Stops watching the listen socket for FDLIMIT_PAUSE_MS (resume_listen, from the thread's loop): it
 * stays readable while accept fails, and would wake the thread again at once. */
static void pause_listen(struct admin *a) {
  if (a->listen_paused) return;
  epoll_ctl(a->epoll_fd, EPOLL_CTL_DEL, a->listen_fd, NULL);
  a->listen_paused = true;
  a->paused_at = mono_ms();
}

static void resume_listen(struct admin *a) {
  if (!a->listen_paused || mono_ms() - a->paused_at < FDLIMIT_PAUSE_MS) return;
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listen_tag};
  if (epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, a->listen_fd, &lev) == 0) a->listen_paused = false;
}

/* Accepts what is pending. Out of descriptors, the pending clients are refused with an error line
 * (fdlimit.h); any other failure pauses the listener rather than retry at once. */
static void accept_clients(struct admin *a) {
  static const char no_fds[] = "{\"error\":\"out of file descriptors\"}\n";
  for (;;) {
    int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (fdlimit_exhausted(err)) {
        int refused = fdlimit_refuse(a->listen_fd, no_fds, sizeof no_fds - 1);
        fdlimit_note(&a->fd_gate, err, refused > 0 ? 1u : 0u);
        if (refused > 0) continue;
        if (refused == 0) return;
      } else {
        log_warn("admin: accept: %s", strerror(err));
      }
      pause_listen(a);
      return;
    }
    fdlimit_accepted(&a->fd_gate);
    struct admin_client *c = a->n_clients < ADMIN_MAX_CLIENTS ? calloc(1, sizeof *c) : NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (c == NULL || epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      static const char busy[] = "{\"error\":\"too many admin clients\"}\n";
      (void)send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT); /* best effort */
      close(fd);
      free(c);
      continue;
    }
    c->fd = fd;
    c->interest = EPOLLIN;
    pthread_mutex_lock(&a->lock);
    c->next = a->clients;
    if (a->clients) a->clients->prev = c;
    a->clients = c;
    a->n_clients++;
    pthread_mutex_unlock(&a->lock);
  }
}

/* Unlinks and frees C. Admin thread (or admin_stop once the thread is gone). */
static void client_free(struct admin *a, struct admin_client *c) {
  pthread_mutex_lock(&a->lock);
  if (c->prev)
    c->prev->next = c->next;
  else
    a->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  a->n_clients--;
  if (c->watch) {
    atomic_fetch_sub(watch_slot(c->watch), 1);
    atomic_fetch_sub(&watchers, 1);
  }
  pthread_mutex_unlock(&a->lock);
  trace_stop(c->trace);
  close(c->fd); /* also removes it from the epoll set */
  free(c->in.data);
  free(c->out.data);
  free(c->watch);
  free(c);
}

/* Registers the events C needs now: input while it may send requests, output while some waits. */
static void update_interest(struct admin *a, struct admin_client *c) {
  size_t pending = out_len(a, c);
  uint32_t want = 0;
  if (!c->eof && pending < ADMIN_OUT_SOFT && c->in.len < ADMIN_IN_CAP) want |= EPOLLIN;
  if (pending > 0) want |= EPOLLOUT;
  if (want == c->interest) return;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(a->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    c->interest = want;
  else
    c->dead = true;
}

static void client_event(struct admin *a, struct admin_client *c, uint32_t events) {
  if (c->dead) return;
  if (events & EPOLLOUT) {
    pthread_mutex_lock(&a->lock);
    flush_locked(c);
    pthread_mutex_unlock(&a->lock);
    if (!c->dead) process_input(a, c); /* requests held back by the backlog may run now */
    if (!c->dead) pump_trace(a, c);    /* a trace's reader caught up: more events may go */
  }
  if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read_client(a, c);
}

/* Ends the round: frees dead clients, updates the others' interest. */
static void sweep(struct admin *a) {
  struct admin_client *next;
  for (struct admin_client *c = a->clients; c; c = next) {
    next = c->next;
    if (!c->dead) update_interest(a, c);
    if (c->dead) client_free(a, c);
  }
}

static void *admin_thread(void *arg) {
  struct admin *a = arg;
  struct epoll_event events[32];
  while (!atomic_load(&a->stopping)) {
    int n = epoll_wait(a->epoll_fd, events, 32, a->listen_paused ? FDLIMIT_PAUSE_MS : -1);
    if (n < 0 && errno != EINTR) {
      log_error("admin: epoll_wait: %s", strerror(errno));
      break;
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == &listen_tag)
        accept_clients(a);
      else if (events[i].data.ptr == &wake_tag)
        flush_watchers(a);
      else
        client_event(a, events[i].data.ptr, events[i].events);
    }
    sweep(a);
    resume_listen(a);
  }
  return NULL;
}

/* --- the socket file --- */

/* Makes PATH free for our socket: nothing there, or a stale socket nobody listens on (removed).
 * Returns 0 or -1 with a message in ERR. */
static int clear_path(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    snprintf(err, errlen, "admin socket %s: %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen, "admin socket %s: the path exists and is not a socket; refusing to replace it",
             path);
    return -1;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof sa);
  int why = errno;
  if (fd >= 0) close(fd);
  if (rc == 0) {
    snprintf(err, errlen, "admin socket %s: another process is listening there", path);
    return -1;
  }
  if (why != ECONNREFUSED || unlink(path) != 0) {
    snprintf(err, errlen, "admin socket %s: %s", path, strerror(why != ECONNREFUSED ? why : errno));
    return -1;
  }
  log_info("removed stale admin socket %s", path);
  return 0;
}

/* Creates, binds and listens on the socket. The mode is set before listen(), so nobody can connect
 * while the file still has the default permissions. Returns 0 or -1 with a message in ERR. */
static int open_socket(struct admin *a, mode_t mode, char *err, size_t errlen) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
  struct stat st;
  a->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (a->listen_fd < 0 || bind(a->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    snprintf(err, errlen, "admin socket %s: %s", a->path, strerror(errno));
    return -1;
  }
  if (chmod(a->path, mode) != 0 || stat(a->path, &st) != 0 || listen(a->listen_fd, 64) != 0) {
    snprintf(err, errlen, "admin socket %s: %s", a->path, strerror(errno));
    unlink(a->path);
    return -1;
  }
  a->dev = st.st_dev;
  a->ino = st.st_ino;
  return 0;
}

/* The epoll set, the wake eventfd and the thread. Returns 0 or -1 with a message in ERR. */
static int start_loop(struct admin *a, char *err, size_t errlen) {
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listen_tag};
  struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &wake_tag};
  a->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (a->epoll_fd < 0 || a->wake_fd < 0 || epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, a->listen_fd, &lev) != 0 ||
      epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, a->wake_fd, &wev) != 0) {
    snprintf(err, errlen, "admin socket: %s", strerror(errno));
    return -1;
  }
  int rc = pthread_create(&a->thread, NULL, admin_thread, a);
  if (rc != 0) {
    snprintf(err, errlen, "admin socket: cannot start its thread: %s", strerror(rc));
    return -1;
  }
  a->thread_started = true;
  return 0;
}

static int parse_mode(const char *text, mode_t *mode) {
  char *end;
  long m = strtol(text, &end, 8);
  if (*text == '\0' || *end != '\0' || m < 0 || m > 0777) return -1;
  *mode = (mode_t)m;
  return 0;
}

struct admin *admin_start(struct server *srv, char *err, size_t errlen) {
  struct admin *a = calloc(1, sizeof *a);
  const struct config *cfg = srv->boot_cfg; /* admin_socket* are not reloadable */
  const char *path = cfg->admin_socket;
  mode_t mode;
  if (a == NULL) {
    snprintf(err, errlen, "admin socket: out of memory");
    return NULL;
  }
  a->srv = srv;
  a->fd_gate = (struct fdlimit_gate)FDLIMIT_GATE("admin");
  fdlimit_init();
  a->listen_fd = a->epoll_fd = a->wake_fd = -1;
  pthread_mutex_init(&a->lock, NULL);
  if (path == NULL || path[0] == '\0') return a; /* disabled */
  if (strlen(path) >= sizeof((struct sockaddr_un *)0)->sun_path) {
    snprintf(err, errlen, "admin socket %s: path too long (at most %zu bytes)", path,
             sizeof((struct sockaddr_un *)0)->sun_path - 1);
  } else if (parse_mode(cfg->admin_socket_mode, &mode) != 0) {
    snprintf(err, errlen, "admin_socket_mode \"%s\" is not an octal file mode", cfg->admin_socket_mode);
  } else if (clear_path(path, err, errlen) == 0 && (a->path = strdup(path)) != NULL &&
             open_socket(a, mode, err, errlen) == 0) {
    pthread_mutex_lock(&observer_lock);
    current = a;
    pthread_mutex_unlock(&observer_lock);
    hub_set_observer(srv->hub, on_publication, NULL);
    if (start_loop(a, err, errlen) == 0) {
      log_info("admin socket %s (mode %s)", path, cfg->admin_socket_mode);
      return a;
    }
  }
  admin_stop(a);
  return NULL;
}

void admin_stop(struct admin *a) {
  if (a == NULL) return;
  if (a->path) {
    hub_set_observer(a->srv->hub, NULL, NULL);
    pthread_mutex_lock(&observer_lock); /* waits out an observer call in progress */
    if (current == a) current = NULL;
    pthread_mutex_unlock(&observer_lock);
  }
  if (a->thread_started) {
    atomic_store(&a->stopping, true);
    wake(a);
    pthread_join(a->thread, NULL);
  }
  while (a->clients) client_free(a, a->clients);
  struct stat st;
  /* Remove the file only while it is still the socket we made (someone may have replaced it). */
  if (a->listen_fd >= 0 && a->path && stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
    unlink(a->path);
  if (a->listen_fd >= 0) close(a->listen_fd);
  if (a->epoll_fd >= 0) close(a->epoll_fd);
  if (a->wake_fd >= 0) close(a->wake_fd);
  pthread_mutex_destroy(&a->lock);
  free(a->path);
  free(a);
}
