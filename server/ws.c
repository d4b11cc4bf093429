/* ws: the WebSocket transport (see ws.h). The handshake runs on the MHD thread of the request; the
 * upgrade handler creates the session and hands the socket to the loop thread through the `fresh` list.
 * Session wakes (any thread) put a reference to the session on the `pending` list and signal an
 * eventfd; the loop thread finds the session's connection (if it still has one) and drains the session's
 * queue into the connection's output buffer, writing until EAGAIN (EPOLLOUT is armed while full).
 * Input is read once per turn (at most WS_READ_SIZE bytes) and parsed by ws_input.c, so every ready
 * connection gets its turn however fast one client sends.
 *
 * Deadlines: a connection whose socket is full is `blocked` since the last byte that went out; every
 * WS_SWEEP_MS the loop resets connections blocked for websocket_write_timeout, and those whose session
 * has been closing (while blocked) for client_close_timeout. MHD never times out an upgraded socket,
 * so these are the only bounds on a client that does not read.
 *
 * Control frames the server answers with (pong, the echo of a client Close, the Close of a protocol
 * error) are queued on the session like any reply, so they never land inside a partly written frame.
 * When the session is closing and its queue is drained, the loop asks MHD to close the socket and
 * detaches the session.
 *
 * uni_websocket (issue 13 §2) is the same connection with codec_uni's frames: its ConnectRequest is the
 * first message (or the handshake's cf_connect), run through uni.h; later messages are ignored.
 *
 * Threads: struct ws_conn fields are the loop thread's; `fresh` and `pending` belong to ws->lock.
 * Lifetime: a connection holds the session's transport reference until session_detach; an ended
 * connection is freed after the epoll batch it ended in (a later event of the batch may name it). Wakers
 * never touch a connection, only the session they hold a reference to, so a wake racing with the end
 * of its connection finds the session detached and does nothing. */
#define _GNU_SOURCE /* PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP */
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec_ws.h"
#include "codes.h"
#include "handlers.h"
#include "http.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "proxy_headers.h"
#include "session.h"
#include "uni.h"
#include "ws_input.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_PROTOBUF_PROTOCOL "centrifuge-protobuf"
#define WS_OUT_SIZE (16 * 1024)
#define WS_READ_SIZE (16 * 1024) /* the most one connection reads per turn */
#define WS_CLOSE_TOO_BIG 1009
#define WS_SWEEP_MS 250 /* how often the deadlines of blocked connections are checked */

struct ws_conn {
  struct ws *ws;
  struct session *session;
  MHD_socket fd;
  struct MHD_UpgradeResponseHandle *urh;
  struct ws_conn *next; /* in `all` (loop thread) or `fresh` (ws->lock) */
  struct ws_conn *prev;
  bool epollout;       /* EPOLLOUT armed */
  bool dead;           /* ended; freed after the current epoll batch (events may still name it) */
  bool uni;            /* uni_websocket: the first message is the connect, later ones are ignored */
  bool uni_connect_seen;
  Protocol__ConnectRequest *uni_connect; /* cf_connect of the handshake, run on adoption; owned */
  uint64_t blocked_ms; /* when the last byte went out before the socket filled up; 0 = not blocked */
  uint64_t closing_ms; /* when the loop saw the session closing while blocked; 0 = not seen */
  struct ws_input in;
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
  char *proxy_headers; /* for the event proxies (proxy_headers.h), handed to the session */
  Protocol__ConnectRequest *uni_connect; /* uni_websocket's cf_connect, decoded; owned (NULL: none) */
};

static void signal_loop(struct ws *ws) {
  uint64_t one = 1;
  ssize_t n = write(ws->evfd, &one, sizeof one);
  (void)n; /* the counter saturating still leaves it readable */
}

/* The gate between ws_stop and the callbacks other threads make into this module: the upgrade handler
 * (MHD threads) and the session wake (any thread). `live` is the running loop, NULL before ws_start and
 * from the start of ws_stop on; a callback holds the read side for as long as it uses the loop, and
 * ws_stop takes the write side to clear `live`, so once that returns no callback is inside and none
 * will touch the loop again. Both are static: they must outlive every struct ws, since a wake may come
 * after the loop is freed (it then finds `live` NULL and does nothing). The read side is never taken
 * twice by one thread (the lock prefers writers, so that would deadlock against a waiting ws_stop). */
/* glibc: a stream of wakes must not starve ws_stop */
#ifdef PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
static pthread_rwlock_t gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
#else
static pthread_rwlock_t gate = PTHREAD_RWLOCK_INITIALIZER;
#endif
static struct ws *live;

/* The session transport's wake: any thread. CTX (the connection) may end while the waker runs, so it
 * is not touched here: the loop thread finds the connection from the session, under the session lock. */
static void ws_wake(struct session *s, void *ctx) {
  (void)ctx;
  pthread_rwlock_rdlock(&gate);
  struct ws *ws = live;
  if (ws == NULL) goto out;
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
out:
  pthread_rwlock_unlock(&gate);
}

static const struct session_transport ws_transport = {
    .name = "websocket", .wake = ws_wake, .emulation = false};
/* uni_websocket: the same connection; its first message is a ConnectRequest (uni.h), later ones are
 * ignored, and its frames are codec_uni's */
static const struct session_transport uni_ws_transport = {
    .name = "uni_websocket", .wake = ws_wake, .unidirectional = true};

/* ---- loop thread ---- */

static void conn_free(struct ws_conn *c) {
  ws_input_cleanup(&c->in);
  if (c->uni_connect) protobuf_c_message_free_unpacked(&c->uni_connect->base, NULL);
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

/* Writes queued frames until the session is parked or the socket is full. Returns false when C ended.
 * A full socket starts (or, after some progress, restarts) the write-progress clock `blocked_ms`. */
static bool conn_flush(struct ws_conn *c) {
  bool progress = false;
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
        c->blocked_ms = 0;
        set_epollout(c, false);
        return true;
      }
    }
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n > 0) {
      c->out_off += (size_t)n;
      progress = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (progress || c->blocked_ms == 0) c->blocked_ms = timer_now_ms();
      set_epollout(c, true);
      return true;
    }
    session_close(c->session, DISCONNECT_CONNECTION_CLOSED);
    conn_end(c);
    return false;
  }
}

/* Ends C at once, for a deadline: the socket is reset (SO_LINGER 0) rather than closed, so what the
 * client never read does not stay in the kernel's buffers waiting for it. */
static void conn_abort(struct ws_conn *c, const char *why, uint64_t since_ms) {
  log_info("websocket client %s: %s for %llu ms, closing", c->session->client_id, why,
           (unsigned long long)since_ms);
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  session_close(c->session, DISCONNECT_WRITE_ERROR);
  conn_end(c);
}

/* The deadlines of every blocked connection (websocket_write_timeout, client_close_timeout). A
 * connection that is not blocked either has nothing to send or is being written, so only blocked ones
 * can be stuck; the closing state is looked at for those only. */
static void sweep(struct ws *ws, uint64_t now) {
  const struct config *cfg = ws->srv->boot_cfg;
  uint64_t write_ms = (uint64_t)cfg->websocket_write_timeout_ms,
           close_ms = (uint64_t)cfg->client_close_timeout_ms;
  for (struct ws_conn *c = ws->all, *next; c; c = next) {
    next = c->next; /* conn_abort takes C out of the list */
    if (c->blocked_ms == 0) continue;
    if (c->closing_ms == 0 && session_state(c->session) >= SESSION_CLOSING) c->closing_ms = now;
    if (now - c->blocked_ms >= write_ms)
      conn_abort(c, "nothing could be written", now - c->blocked_ms);
    else if (c->closing_ms && now - c->closing_ms >= close_ms)
      conn_abort(c, "closing, last frames not flushed", now - c->closing_ms);
  }
}

/* Queues a control frame on the session (in order with the replies). */
static void queue_control(struct ws_conn *c, struct frame *f) {
  if (f == NULL) return;
  session_enqueue(c->session, f);
  frame_unref(f);
}

/* ---- what ws_input reports (loop thread) ---- */

static void in_message(void *ctx, const uint8_t *data, size_t len) {
  struct ws_conn *c = ctx;
  if (!c->uni) {
    session_feed(c->session, data, len);
    return;
  }
  if (c->uni_connect_seen) return; /* a uni client has nothing more to say: ignored, as Centrifugo */
  c->uni_connect_seen = true;
  if (uni_connect_text(c->session, data, len) != 0) {
    log_info("uni_websocket client %s: malformed connect message, closing with %u", c->session->client_id,
             DISCONNECT_BAD_REQUEST);
    session_close(c->session, DISCONNECT_BAD_REQUEST);
  }
}

static void in_ping(void *ctx, const uint8_t *payload, size_t len) {
  struct ws_conn *c = ctx;
  queue_control(c, codec_ws_frame(WS_OP_PONG, payload, len));
}

/* The client's Close: echo its code, or an empty Close when it sent none (§5.5.1). */
static void in_close(void *ctx, uint32_t code) {
  struct ws_conn *c = ctx;
  queue_control(c, code ? codec_ws_close_frame(code, NULL) : codec_ws_frame(WS_OP_CLOSE, NULL, 0));
  session_close(c->session, DISCONNECT_CONNECTION_CLOSED);
}

/* A protocol violation: a Close frame of CODE (1002, 1007, 1009), then the end. */
static void in_fail(void *ctx, uint32_t code, const char *reason) {
  struct ws_conn *c = ctx;
  log_info("websocket client %s: %s, closing with %u", c->session->client_id, reason, code);
  queue_control(c, codec_ws_close_frame(code, reason));
  session_close(c->session, DISCONNECT_CONNECTION_CLOSED); /* no push: the Close frame is queued */
}

static const struct ws_input_ops input_ops = {
    .message = in_message, .ping = in_ping, .close = in_close, .fail = in_fail};

/* Reads once, at most WS_READ_SIZE bytes, and runs the complete frames. One read per event keeps the
 * loop fair: a client that sends without pause gets one turn like every other ready connection, and
 * epoll (level-triggered) reports it again in the next round for what is left. Returns false when C
 * ended (client gone). */
static bool conn_read(struct ws_conn *c) {
  size_t avail = 0;
  uint8_t *p = ws_input_space(&c->in, WS_READ_SIZE, &avail);
  if (p == NULL) {
    c->in.stopped = true;
    in_fail(c, WS_CLOSE_TOO_BIG, "out of memory");
    return true;
  }
  if (avail > WS_READ_SIZE) avail = WS_READ_SIZE; /* a large frame takes several turns */
  ssize_t n;
  do n = read(c->fd, p, avail);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    ws_input_commit(&c->in, (size_t)n);
    ws_input_parse(&c->in, &input_ops, c);
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
  session_close(c->session, DISCONNECT_CONNECTION_CLOSED); /* EOF or error: the client is gone */
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
    if (c->uni_connect) { /* uni_websocket with cf_connect: connected before any message */
      c->uni_connect_seen = true;
      uni_connect(c->session, c->uni_connect);
      protobuf_c_message_free_unpacked(&c->uni_connect->base, NULL);
      c->uni_connect = NULL;
    }
    ws_input_parse(&c->in, &input_ops, c);
    conn_flush(c);
  }
}

/* The connection of woken session S if it is still one of ours (loop thread). A connection ends only
 * on the loop thread, which detaches its session (transport NULL) before freeing it. */
static struct ws_conn *conn_of(struct session *s) {
  pthread_mutex_lock(&s->lock);
  bool ours = s->transport == &ws_transport || s->transport == &uni_ws_transport;
  struct ws_conn *c = ours ? s->transport_ctx : NULL;
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
  uint64_t next_sweep = timer_now_ms() + WS_SWEEP_MS;
  while (!atomic_load(&ws->stop)) {
    uint64_t now = timer_now_ms();
    int wait = ws->all == NULL ? -1 : now >= next_sweep ? 0 : (int)(next_sweep - now);
    int n = epoll_wait(ws->epfd, evs, 64, wait);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL)
        on_signal(ws);
      else
        conn_event(evs[i].data.ptr, evs[i].events);
    }
    now = timer_now_ms();
    if (now >= next_sweep) {
      sweep(ws, now);
      next_sweep = now + WS_SWEEP_MS;
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

static void upgrade_cleanup(struct request *req) {
  struct ws_upgrade *up = req->handler_data;
  if (up->uni_connect) protobuf_c_message_free_unpacked(&up->uni_connect->base, NULL);
  free(up->proxy_headers);
  free(up);
}

/* Hands the upgraded socket to the loop thread with a new session; once the loop is stopping, closes
 * it instead (MHD may call this after ws_stop began, for a handshake answered just before). */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
  (void)conn;
  (void)cls;
  struct request *req = con_cls;
  struct ws_upgrade *up = req->handler_data;
  struct server *srv = req->srv;
  pthread_rwlock_rdlock(&gate);
  struct ws *ws = live;
  struct ws_conn *c = ws ? calloc(1, sizeof *c) : NULL;
  bool uni = up->kind == CODEC_UNI_WS;
  size_t limit = (size_t)(uni ? srv->boot_cfg->uni_websocket_message_size_limit
                              : srv->boot_cfg->websocket_message_size_limit);
  bool in_ok = c && ws_input_init(&c->in, limit, (const uint8_t *)extra_in, extra_in_size) == 0;
  struct session *s = in_ok ? session_new(srv, codec_get(up->kind), up->remote) : NULL;
  if (s) proxy_headers_take(s, up->proxy_headers);
  if (s) up->proxy_headers = NULL;
  if (s == NULL || registry_add(srv->registry, s) != 0) {
    pthread_rwlock_unlock(&gate); /* what follows may wake sessions: not inside the gate */
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
  c->uni = uni;
  c->uni_connect = up->uni_connect; /* taken: the request's cleanup may run before the loop adopts C */
  up->uni_connect = NULL;
  c->urh = urh;
  int fl = fcntl(sock, F_GETFL);
  if (fl >= 0) fcntl(sock, F_SETFL, fl | O_NONBLOCK);
  /* unacknowledged data for longer than the write deadline: the peer is gone, let the kernel say so */
  unsigned int user_timeout = (unsigned int)srv->boot_cfg->websocket_write_timeout_ms;
  setsockopt(sock, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
  /* frames are written whole: Nagle would hold a small one back until the peer's delayed ACK (~40 ms) */
  int nodelay = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
  session_attach(s, uni ? &uni_ws_transport : &ws_transport, c);
  pthread_mutex_lock(&ws->lock);
  c->next = ws->fresh;
  ws->fresh = c;
  pthread_mutex_unlock(&ws->lock);
  signal_loop(ws);
  pthread_rwlock_unlock(&gate);
}

/* 400 with TEXT: a request that is not a valid WebSocket handshake. */
static enum MHD_Result bad_handshake(struct request *req, const char *text) {
  return http_respond(req, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", text, strlen(text));
}

/* The handshake of a WebSocket whose frames are of KIND (CODEC_UNI_WS: the unidirectional one). */
static enum MHD_Result handshake(struct request *req, bool uni) {
  struct server *srv = req->srv;
  pthread_rwlock_rdlock(&gate);
  bool running = live != NULL;
  pthread_rwlock_unlock(&gate);
  if (atomic_load(&srv->shutting_down) || !running)
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
  up->kind = uni ? CODEC_UNI_WS : wants_protobuf(req) ? CODEC_WS_PROTOBUF : CODEC_WS_JSON;
  /* uni_websocket may carry its ConnectRequest in the URL (as uni_sse), instead of a first message */
  const char *cf = uni ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "cf_connect") : NULL;
  if (cf && uni_parse_connect(cf, strlen(cf), &up->uni_connect) != 0) {
    free(up);
    return bad_handshake(req, "malformed connect request\n");
  }
  http_remote_address(req, up->remote, sizeof up->remote);
  up->proxy_headers = proxy_headers_collect(srv, req);
  req->handler_data = up;
  req->cleanup = upgrade_cleanup;
  struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, NULL);
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

enum MHD_Result ws_handle(struct request *req) { return handshake(req, false); }

enum MHD_Result uni_ws_handle(struct request *req) { return handshake(req, true); }

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
  pthread_rwlock_wrlock(&gate);
  live = ws;
  pthread_rwlock_unlock(&gate);
  return ws;
}

void ws_stop(struct ws *ws) {
  if (ws == NULL) return;
  pthread_rwlock_wrlock(&gate); /* waits for the callbacks inside; later ones find no loop */
  live = NULL;
  pthread_rwlock_unlock(&gate);
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
