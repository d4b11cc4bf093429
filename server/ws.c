/* ws: the WebSocket transport (see ws.h). The handshake runs on the MHD thread of the request; the
 * upgrade handler creates the session and hands the socket to the loop thread through the `fresh` list.
 * Session wakes (any thread) put a reference to the session on the `pending` list and signal an
 * eventfd; the loop thread finds the session's connection (if it still has one) and drains the session's
 * queue into the connection's output buffer, writing until EAGAIN (EPOLLOUT is armed while full).
 *
 * Control frames the server answers with (pong, the echo of a client Close, the Close of a protocol
 * error) are queued on the session like any reply, so they never land inside a partly written frame.
 * When the session is closing and its queue is drained, the loop asks MHD to close the socket and
 * detaches the session.
 *
 * Threads: struct ws_conn fields are the loop thread's; `fresh` and `pending` belong to ws->lock.
 * Lifetime: a connection holds the session's transport reference until session_detach; an ended
 * connection is freed after the epoll batch it ended in (a later event of the batch may name it). Wakers
 * never touch a connection, only the session they hold a reference to, so a wake racing with the end
 * of its connection finds the session detached and does nothing. */
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "codec_ws.h"
#include "codes.h"
#include "handlers.h"
#include "http.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "session.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_PROTOBUF_PROTOCOL "centrifuge-protobuf"
#define WS_OUT_SIZE (16 * 1024)
#define WS_IN_INITIAL 4096
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_TOO_BIG 1009

struct ws_conn {
  struct ws *ws;
  struct session *session;
  MHD_socket fd;
  struct MHD_UpgradeResponseHandle *urh;
  struct ws_conn *next; /* in `all` (loop thread) or `fresh` (ws->lock) */
  struct ws_conn *prev;
  bool epollout; /* EPOLLOUT armed */
  bool reading;  /* false after a Close frame or a protocol error: input is ignored */
  bool dead;     /* ended; freed after the current epoll batch (events may still name it) */
  uint8_t *in;   /* received bytes not yet parsed */
  size_t in_len, in_cap;
  uint8_t *msg; /* a fragmented message being assembled */
  size_t msg_len, msg_cap;
  bool in_msg;
  size_t out_off, out_len;
  uint8_t out[WS_OUT_SIZE];
};

struct ws {
  struct server *srv;
  int epfd, evfd;
  pthread_t thread;
  atomic_bool stop;
  pthread_mutex_t lock;
  struct ws_conn *fresh;    /* upgraded, not yet in epoll (lock) */
  struct session **pending; /* woken sessions, one reference each (lock) */
  size_t npending, cap_pending;
  bool flush_all;       /* a wake could not be recorded (no memory): flush every connection (lock) */
  struct ws_conn *all;  /* in epoll (loop thread) */
  struct ws_conn *dead; /* ended, to be freed once no epoll event of this batch can name them */
};

/* Per-request state between the handshake and the upgrade. */
struct ws_upgrade {
  enum codec_kind kind;
  char remote[64];
};

static void signal_loop(struct ws *ws) {
  uint64_t one = 1;
  ssize_t n = write(ws->evfd, &one, sizeof one);
  (void)n; /* the counter saturating still leaves it readable */
}

/* The session transport's wake: any thread. CTX (the connection) may end while the waker runs, so it
 * is not touched here: the loop thread finds the connection from the session, under the session lock. */
static void ws_wake(struct session *s, void *ctx) {
  (void)ctx;
  struct ws *ws = s->srv->ws;
  pthread_mutex_lock(&ws->lock);
  if (ws->npending == ws->cap_pending) {
    size_t cap = ws->cap_pending ? ws->cap_pending * 2 : 64;
    struct session **p = realloc(ws->pending, cap * sizeof *p);
    if (p) {
      ws->pending = p;
      ws->cap_pending = cap;
    }
  }
  if (ws->npending < ws->cap_pending)
    ws->pending[ws->npending++] = session_ref(s);
  else
    ws->flush_all = true;
  pthread_mutex_unlock(&ws->lock);
  signal_loop(ws);
}

static const struct session_transport ws_transport = {
    .name = "websocket", .wake = ws_wake, .emulation = false};

/* ---- loop thread ---- */

static void conn_free(struct ws_conn *c) {
  free(c->in);
  free(c->msg);
  free(c);
}

/* Ends C: takes it out of epoll and the lists, has MHD close the socket, detaches the session. */
static void conn_end(struct ws_conn *c) {
  struct ws *ws = c->ws;
  epoll_ctl(ws->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  if (c->prev)
    c->prev->next = c->next;
  else if (ws->all == c)
    ws->all = c->next;
  if (c->next) c->next->prev = c->prev;
  MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
  session_detach(c->session);
  c->dead = true;
  c->next = ws->dead;
  ws->dead = c;
}

static void free_dead(struct ws *ws) {
  while (ws->dead) {
    struct ws_conn *c = ws->dead;
    ws->dead = c->next;
    conn_free(c);
  }
}

static void set_epollout(struct ws_conn *c, bool on) {
  if (c->epollout == on) return;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(c->ws->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->epollout = on;
}

/* Writes queued frames until the session is parked or the socket is full. Returns false when C ended. */
static bool conn_flush(struct ws_conn *c) {
  for (;;) {
    if (c->out_off == c->out_len) {
      bool eof = false;
      c->out_off = 0;
      c->out_len = session_drain(c->session, c->out, sizeof c->out, &eof);
      if (c->out_len == 0) {
        if (eof) {
          conn_end(c);
          return false;
        }
        set_epollout(c, false);
        return true;
      }
    }
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n > 0) {
      c->out_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_epollout(c, true);
      return true;
    }
    session_close(c->session, DISCONNECT_CONNECTION_CLOSED);
    conn_end(c);
    return false;
  }
}

/* Queues a control frame on the session (in order with the replies). */
static void queue_control(struct ws_conn *c, struct frame *f) {
  if (f == NULL) return;
  session_enqueue(c->session, f);
  frame_unref(f);
}

/* Ends the connection with a Close frame of CODE (1002, 1009) or the echo of the client's Close. */
static void fail(struct ws_conn *c, uint32_t code, const char *reason) {
  queue_control(c, codec_ws_close_frame(code, reason));
  session_close(c->session, DISCONNECT_CONNECTION_CLOSED); /* no push: the Close frame is queued */
  c->reading = false;
}

static bool msg_append(struct ws_conn *c, const uint8_t *data, size_t len) {
  if (c->msg_len + len > c->msg_cap) {
    size_t cap = c->msg_cap ? c->msg_cap : WS_IN_INITIAL;
    while (cap < c->msg_len + len) cap *= 2;
    uint8_t *m = realloc(c->msg, cap);
    if (m == NULL) return false;
    c->msg = m;
    c->msg_cap = cap;
  }
  memcpy(c->msg + c->msg_len, data, len);
  c->msg_len += len;
  return true;
}

/* Handles one data frame (text, binary or continuation). */
static void on_data(struct ws_conn *c, unsigned op, bool fin, const uint8_t *p, size_t len) {
  if ((op == WS_OP_CONT) != c->in_msg) {
    fail(c, WS_CLOSE_PROTOCOL_ERROR, "unexpected continuation");
    return;
  }
  if (fin && !c->in_msg) {
    session_feed(c->session, p, len);
    return;
  }
  if (!msg_append(c, p, len)) { /* cannot exceed the limit: parse_frame checked msg_len + len */
    fail(c, WS_CLOSE_TOO_BIG, "out of memory");
    return;
  }
  c->in_msg = !fin;
  if (fin) {
    session_feed(c->session, c->msg, c->msg_len);
    c->msg_len = 0;
  }
}

static void on_control(struct ws_conn *c, unsigned op, const uint8_t *p, size_t len) {
  if (op == WS_OP_PING) {
    queue_control(c, codec_ws_frame(WS_OP_PONG, p, len));
  } else if (op == WS_OP_CLOSE) {
    /* echo the client's code, or an empty Close when it sent none */
    queue_control(c, len >= 2 ? codec_ws_close_frame((uint32_t)p[0] << 8 | p[1], NULL)
                              : codec_ws_frame(WS_OP_CLOSE, NULL, 0));
    session_close(c->session, DISCONNECT_CONNECTION_CLOSED);
    c->reading = false;
  } else if (op != WS_OP_PONG) {
    fail(c, WS_CLOSE_PROTOCOL_ERROR, "unknown opcode");
  }
}

/* Parses one frame at the start of c->in. Returns its total size, 0 when incomplete, or SIZE_MAX after
 * a protocol error (the connection is failing). *need is set to the size still missing. */
static size_t parse_frame(struct ws_conn *c, size_t limit, size_t *need) {
  const uint8_t *b = c->in;
  size_t avail = c->in_len, hl = 2;
  *need = 2;
  if (avail < 2) return 0;
  unsigned op = b[0] & 0x0Fu;
  bool fin = (b[0] & 0x80u) != 0, control = (op & 0x8u) != 0;
  uint64_t len = b[1] & 0x7Fu;
  if ((b[0] & 0x70u) || !(b[1] & 0x80u) || (control && (!fin || len > 125))) {
    fail(c, WS_CLOSE_PROTOCOL_ERROR, "bad frame");
    return SIZE_MAX;
  }
  if (len >= 126) {
    hl += len == 126 ? 2 : 8;
    if (avail < hl) return (*need = hl), 0;
    uint64_t l = 0;
    for (size_t i = 2; i < hl; i++) l = l << 8 | b[i];
    len = l;
  }
  if (!control && (len > limit || c->msg_len + len > limit)) {
    fail(c, WS_CLOSE_TOO_BIG, "message too big");
    return SIZE_MAX;
  }
  size_t total = hl + 4 + (size_t)len;
  *need = total;
  if (avail < total) return 0;
  uint8_t *p = c->in + hl + 4;
  for (size_t i = 0; i < len; i++) p[i] ^= b[hl + (i & 3)];
  if (control)
    on_control(c, op, p, (size_t)len);
  else
    on_data(c, op, fin, p, (size_t)len);
  return total;
}

/* Parses every complete frame in c->in; keeps the rest and makes room for the next frame. */
static void parse_input(struct ws_conn *c) {
  size_t limit = (size_t)c->ws->srv->boot_cfg->websocket_message_size_limit, need = 0;
  while (c->reading) {
    size_t n = parse_frame(c, limit, &need);
    if (n == SIZE_MAX || n == 0) break;
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
  }
  if (!c->reading) c->in_len = 0;
  if (c->reading && need > c->in_cap) {
    uint8_t *in = realloc(c->in, need);
    if (in == NULL) {
      fail(c, WS_CLOSE_TOO_BIG, "out of memory");
      return;
    }
    c->in = in;
    c->in_cap = need;
  }
}

/* Reads what the socket has. Returns false when C ended (client gone). */
static bool conn_read(struct ws_conn *c) {
  for (;;) {
    if (c->in_len == c->in_cap) {
      size_t cap = c->in_cap * 2;
      uint8_t *in = realloc(c->in, cap);
      if (in == NULL) break;
      c->in = in;
      c->in_cap = cap;
    }
    ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n > 0) {
      c->in_len += (size_t)n;
      if (c->reading)
        parse_input(c);
      else
        c->in_len = 0;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    break; /* EOF or error: the client is gone */
  }
  session_close(c->session, DISCONNECT_CONNECTION_CLOSED);
  conn_end(c);
  return false;
}

static void conn_event(struct ws_conn *c, uint32_t events) {
  if (c->dead) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !conn_read(c)) return;
  conn_flush(c);
}

/* Puts the fresh connections into epoll and runs what came with the handshake. */
static void adopt_fresh(struct ws *ws, struct ws_conn *list) {
  while (list) {
    struct ws_conn *c = list;
    list = c->next;
    c->prev = NULL;
    c->next = ws->all;
    if (ws->all) ws->all->prev = c;
    ws->all = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(ws->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
      session_close(c->session, DISCONNECT_SERVER_ERROR);
      conn_end(c);
      continue;
    }
    parse_input(c);
    conn_flush(c);
  }
}

/* The connection of woken session S if it is still one of ours (loop thread). A connection ends only
 * on the loop thread, which detaches its session (transport NULL) before freeing it. */
static struct ws_conn *conn_of(struct session *s) {
  pthread_mutex_lock(&s->lock);
  struct ws_conn *c = s->transport == &ws_transport ? s->transport_ctx : NULL;
  pthread_mutex_unlock(&s->lock);
  return c;
}

static void on_signal(struct ws *ws) {
  uint64_t v;
  ssize_t n = read(ws->evfd, &v, sizeof v);
  (void)n;
  pthread_mutex_lock(&ws->lock);
  struct ws_conn *fresh = ws->fresh;
  ws->fresh = NULL;
  pthread_mutex_unlock(&ws->lock);
  adopt_fresh(ws, fresh);
  pthread_mutex_lock(&ws->lock);
  struct session **woken = ws->pending;
  size_t n_woken = ws->npending;
  bool all = ws->flush_all;
  ws->pending = NULL;
  ws->npending = ws->cap_pending = 0;
  ws->flush_all = false;
  pthread_mutex_unlock(&ws->lock);
  for (size_t i = 0; i < n_woken; i++) {
    struct ws_conn *c = conn_of(woken[i]);
    if (c && !c->dead) conn_flush(c);
    session_unref(woken[i]);
  }
  free(woken);
  for (struct ws_conn *c = ws->all; all && c;) {
    struct ws_conn *next = c->next; /* conn_flush may end C */
    conn_flush(c);
    c = next;
  }
}

static void *loop(void *arg) {
  struct ws *ws = arg;
  struct epoll_event evs[64];
  while (!atomic_load(&ws->stop)) {
    int n = epoll_wait(ws->epfd, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL)
        on_signal(ws);
      else
        conn_event(evs[i].data.ptr, evs[i].events);
    }
    free_dead(ws);
  }
  return NULL;
}

/* ---- handshake (MHD threads) ---- */

/* Does the comma-separated header VALUE list TOKEN (case-insensitive)? */
static bool header_has_token(const char *value, const char *token) {
  size_t n = strlen(token);
  for (const char *p = value; p && *p;) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    size_t len = strcspn(p, ",");
    size_t trimmed = len;
    while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t')) trimmed--;
    if (trimmed == n && strncasecmp(p, token, n) == 0) return true;
    p += len;
  }
  return false;
}

/* Sec-WebSocket-Accept for KEY into OUT (29 bytes with the NUL): base64(SHA-1(key + GUID)). */
static bool accept_key(const char *key, char out[29]) {
  char buf[128];
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  size_t klen = strlen(key);
  if (klen + sizeof WS_GUID > sizeof buf) return false;
  memcpy(buf, key, klen);
  memcpy(buf + klen, WS_GUID, sizeof WS_GUID - 1);
  if (!EVP_Digest(buf, klen + sizeof WS_GUID - 1, digest, &dlen, EVP_sha1(), NULL) || dlen != 20)
    return false;
  return EVP_EncodeBlock((unsigned char *)out, digest, 20) == 28;
}

static bool wants_protobuf(const struct request *req) {
  const char *proto = http_header(req, "Sec-WebSocket-Protocol");
  if (proto && header_has_token(proto, WS_PROTOBUF_PROTOCOL)) return true;
  const char *f = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "format");
  const char *cf = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "cf_protocol");
  return (f && strcmp(f, "protobuf") == 0) || (cf && strcmp(cf, "protobuf") == 0);
}

static void upgrade_cleanup(struct request *req) { free(req->handler_data); }

/* Hands the upgraded socket to the loop thread with a new session. */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
  (void)conn;
  struct ws *ws = cls;
  struct request *req = con_cls;
  struct ws_upgrade *up = req->handler_data;
  struct ws_conn *c = calloc(1, sizeof *c);
  size_t cap = extra_in_size > WS_IN_INITIAL ? extra_in_size : WS_IN_INITIAL;
  struct session *s = c ? session_new(ws->srv, codec_get(up->kind), up->remote) : NULL;
  if (c) c->in = malloc(cap);
  if (s == NULL || c->in == NULL || registry_add(ws->srv->registry, s) != 0) {
    if (s) {
      session_close(s, DISCONNECT_SERVER_ERROR);
      session_detach(s);
    }
    if (c) conn_free(c);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    return;
  }
  c->ws = ws;
  c->session = s;
  c->fd = sock;
  c->urh = urh;
  c->reading = true;
  c->in_cap = cap;
  if (extra_in_size) memcpy(c->in, extra_in, extra_in_size);
  c->in_len = extra_in_size;
  int fl = fcntl(sock, F_GETFL);
  if (fl >= 0) fcntl(sock, F_SETFL, fl | O_NONBLOCK);
  session_attach(s, &ws_transport, c);
  pthread_mutex_lock(&ws->lock);
  c->next = ws->fresh;
  ws->fresh = c;
  pthread_mutex_unlock(&ws->lock);
  signal_loop(ws);
}

/* 400 with TEXT: a request that is not a valid WebSocket handshake. */
static enum MHD_Result bad_handshake(struct request *req, const char *text) {
  return http_respond(req, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", text, strlen(text));
}

enum MHD_Result ws_handle(struct request *req) {
  struct server *srv = req->srv;
  if (atomic_load(&srv->shutting_down) || srv->ws == NULL)
    return http_respond(req, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "shutting down\n",
                        14);
  const char *upgrade = http_header(req, "Upgrade");
  const char *connection = http_header(req, "Connection");
  const char *version = http_header(req, "Sec-WebSocket-Version");
  const char *key = http_header(req, "Sec-WebSocket-Key");
  if (!upgrade || !header_has_token(upgrade, "websocket") || !connection ||
      !header_has_token(connection, "upgrade"))
    return bad_handshake(req, "not a websocket handshake\n");
  if (!version || strcmp(version, "13") != 0) return bad_handshake(req, "unsupported websocket version\n");
  char accept[29];
  if (!key || !*key || !accept_key(key, accept)) return bad_handshake(req, "bad Sec-WebSocket-Key\n");
  struct ws_upgrade *up = calloc(1, sizeof *up);
  if (up == NULL) return MHD_NO;
  up->kind = wants_protobuf(req) ? CODEC_WS_PROTOBUF : CODEC_WS_JSON;
  http_remote_address(req, up->remote, sizeof up->remote);
  req->handler_data = up;
  req->cleanup = upgrade_cleanup;
  struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, srv->ws);
  if (r == NULL) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket"); /* MHD adds Connection: Upgrade */
  MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
  const char *proto = http_header(req, "Sec-WebSocket-Protocol");
  if (up->kind == CODEC_WS_PROTOBUF && proto && header_has_token(proto, WS_PROTOBUF_PROTOCOL))
    MHD_add_response_header(r, "Sec-WebSocket-Protocol", WS_PROTOBUF_PROTOCOL);
  enum MHD_Result ret = http_queue(req, MHD_HTTP_SWITCHING_PROTOCOLS, r);
  MHD_destroy_response(r);
  return ret;
}

/* ---- start / stop ---- */

struct ws *ws_start(struct server *srv) {
  struct ws *ws = calloc(1, sizeof *ws);
  if (ws == NULL) return NULL;
  ws->srv = srv;
  pthread_mutex_init(&ws->lock, NULL);
  ws->epfd = epoll_create1(EPOLL_CLOEXEC);
  ws->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (ws->epfd < 0 || ws->evfd < 0 || epoll_ctl(ws->epfd, EPOLL_CTL_ADD, ws->evfd, &ev) != 0 ||
      pthread_create(&ws->thread, NULL, loop, ws) != 0) {
    if (ws->epfd >= 0) close(ws->epfd);
    if (ws->evfd >= 0) close(ws->evfd);
    pthread_mutex_destroy(&ws->lock);
    free(ws);
    return NULL;
  }
  return ws;
}

void ws_stop(struct ws *ws) {
  if (ws == NULL) return;
  atomic_store(&ws->stop, true);
  signal_loop(ws);
  pthread_join(ws->thread, NULL);
  pthread_mutex_lock(&ws->lock);
  struct ws_conn *fresh = ws->fresh;
  ws->fresh = NULL;
  pthread_mutex_unlock(&ws->lock);
  adopt_fresh(ws, fresh); /* now on this thread: the loop is gone */
  for (size_t i = 0; i < ws->npending; i++) session_unref(ws->pending[i]);
  free(ws->pending);
  ws->pending = NULL;
  ws->npending = 0;
  while (ws->all) {
    session_close(ws->all->session, DISCONNECT_SHUTDOWN);
    conn_end(ws->all);
  }
  free_dead(ws);
  close(ws->epfd);
  close(ws->evfd);
  pthread_mutex_destroy(&ws->lock);
  free(ws);
}
