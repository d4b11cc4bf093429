/* stream: the HTTP-streaming and SSE transports (PROTOCOL.md §2.2, §2.4, §3), and the stream half of
 * the unidirectional uni_http_stream and uni_sse (uni.c opens them through stream_open with a connect
 * of its own; their frames are codec_uni's, their sessions never wait for a pong). SSE differs only in how
 * the connect command arrives (the cf_connect query parameter of a GET, or a POST body), in its framing
 * (the SSE codec) and in a comment line ":\n" sent first. The POST body holds the connect command;
 * the answer is a 200 with a chunked body that libmicrohttpd fills through stream_read(), a content
 * reader that drains the session's queue, as many frames per call as fit, and suspends the connection
 * when the queue is empty. An enqueue wakes it (session.c clears the parked flag, then stream_wake()):
 * on the stream's own core loop the frames are written straight to the socket while the connection
 * stays suspended (stream_direct.h; HTTP/1.1, chunked); a wake from another thread is handed to that
 * loop as a task; the connection is resumed (http_resume) only to end the response or for HTTP/1.0,
 * and a resume that overtakes the suspend is absorbed by MHD's "resuming" flag.
 *
 * Ownership: the response holds a session reference (released by stream_free when MHD destroys the
 * response); the request holds the transport reference (released by session_detach in stream_cleanup,
 * from MHD's completion callback). */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "codec.h"
#include "codes.h"
#include "handlers.h"
#include "hangup.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "proxy_headers.h"
#include "session.h"
#include "stream_direct.h"
#include "loops.h"

/* Per-response state handed to the content reader. */
struct stream {
  struct session *session;
  struct MHD_Connection *conn;
  bool preamble; /* SSE: the preamble still to be sent before the first event */
  struct stream_direct direct;
};

/* On the stream's loop: write directly when the connection is parked in the reader, else resume it. */
static void wake_here(struct stream *st) {
  if (stream_direct_usable(&st->direct))
    stream_direct_flush(&st->direct);
  else
    http_resume(st->direct.req);
}

static void wake_task(void *arg) { wake_here(arg); }

/* A parked stream is a suspended MHD connection, which cannot end until it is resumed, and only this
 * wake resumes it: CTX (the stream) stays valid until the wake is done, on whatever thread. Wakes on the
 * stream's own loop (fan-out, its emulation commands) write at once; wakes from other threads (the timer
 * thread's pings, closes from the admin, Redis or worker threads) are handed to the stream's loop as a
 * task, which writes the same way (a burst of pings costs one wake-up of the loop, then one send
 * each). When the loop no longer takes tasks (stopping), the connection is resumed from here. */
static void stream_wake(struct session *s, void *ctx) {
  (void)s;
  struct stream *st = ctx;
  struct request *req = st->direct.req;
  int here = loops_current();
  if (req->loop < 0 || here == req->loop) {
    wake_here(st);
    return;
  }
  if (loops_post(req->srv->loops, (unsigned)req->loop, wake_task, st) != 0) http_resume(req);
}

static const struct session_transport http_stream_transport = {
    .name = "http_stream", .wake = stream_wake, .emulation = true};
static const struct session_transport sse_transport = {.name = "sse", .wake = stream_wake, .emulation = true};
static const struct session_transport uni_http_stream_transport = {
    .name = "uni_http_stream", .wake = stream_wake, .unidirectional = true};
static const struct session_transport uni_sse_transport = {
    .name = "uni_sse", .wake = stream_wake, .unidirectional = true};

/* The transport of a stream of each wire format (NULL: not a stream kind). */
static const struct session_transport *const transports[CODEC_COUNT] = {
    [CODEC_JSON] = &http_stream_transport,
    [CODEC_PROTOBUF] = &http_stream_transport,
    [CODEC_SSE] = &sse_transport,
    [CODEC_UNI_HTTP_STREAM] = &uni_http_stream_transport,
    [CODEC_UNI_SSE] = &uni_sse_transport,
};

/* Content-Type of the stream response for each wire format. */
static const char *const content_types[CODEC_COUNT] = {
    [CODEC_JSON] = "application/json",
    [CODEC_PROTOBUF] = "application/octet-stream",
    [CODEC_SSE] = "text/event-stream; charset=utf-8",
    [CODEC_UNI_HTTP_STREAM] = "application/json",
    [CODEC_UNI_SSE] = "text/event-stream; charset=utf-8",
};

/* SSE preamble: bytes that make proxies pass the headers on at once. It is an SSE comment line, which
 * every conforming parser (WHATWG HTML §9.2.6) skips whatever chunk it arrives in; a bare "\r\n" (what
 * Centrifugo sends) is an empty line that eventsource 2.x mis-reads when the connect reply follows in
 * the same chunk, so that reply was only dispatched at the next ping. */
static const char sse_preamble[] = ":\n";

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct stream *st = cls;
  bool eof = false;
  size_t off = 0;
  stream_direct_resumed(&st->direct);
  if (st->direct.broken) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (st->preamble && max >= sizeof sse_preamble - 1) {
    memcpy(buf, sse_preamble, sizeof sse_preamble - 1);
    off = sizeof sse_preamble - 1;
    st->preamble = false;
  }
  size_t n = off + session_drain(st->session, (uint8_t *)buf + off, max - off, &eof);
  if (n > 0) return (ssize_t)n;
  if (eof) return MHD_CONTENT_READER_END_OF_STREAM;
  MHD_suspend_connection(st->conn);
  stream_direct_parked(&st->direct);
  return 0;
}

static void stream_free(void *cls) {
  struct stream *st = cls;
  stream_direct_release(&st->direct);
  session_unref(st->session);
  free(st);
}

/* Per-request state of a stream: the session and the socket the hang-up watcher knows. */
struct stream_request {
  struct session *session;
  int fd; /* -1 when not watched */
};

static void stream_cleanup(struct request *req) {
  struct stream_request *sr = req->handler_data;
  if (sr->fd >= 0) hangup_unwatch(req->srv->hangup, sr->fd);
  session_detach(sr->session);
  free(sr);
}

/* Lets the hang-up watcher see this stream's socket while libmicrohttpd has it suspended. */
static void watch_hangup(struct request *req, struct stream_request *sr) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci && req->srv->hangup && hangup_watch(req->srv->hangup, ci->connect_fd, sr->session) == 0)
    sr->fd = ci->connect_fd;
}

/* The write-progress deadline of the stream: MHD's connection timeout, which counts from the last byte
 * sent (or the last resume) and never runs while the connection is suspended, so it ends exactly the
 * streams that have frames waiting and a client that takes none of them. TCP_USER_TIMEOUT lets the
 * kernel drop a peer that stopped acknowledging in the same time. (The close deadline is the hang-up
 * watcher's, see hangup.h: it needs a thread of its own, since MHD calls nothing while it waits.) */
static void set_deadlines(struct request *req, int64_t write_ms) {
  unsigned int secs = (unsigned int)((write_ms + 999) / 1000);
  MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, secs);
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  unsigned int ms = (unsigned int)write_ms;
  if (ci) setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
}

/* The write-progress deadline of a stream of wire format KIND. */
static int64_t write_timeout_ms(const struct server *srv, enum codec_kind kind) {
  bool sse = kind == CODEC_SSE || kind == CODEC_UNI_SSE;
  return sse ? srv->boot_cfg->sse_write_timeout_ms : srv->boot_cfg->http_stream_write_timeout_ms;
}

/* The socket of REQ's connection, or -1. */
static int connection_fd(const struct request *req) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  return ci ? ci->connect_fd : -1;
}

/* The protocol is protobuf only when the Content-Type is exactly application/octet-stream (§2.2). */
static enum codec_kind request_codec(const struct request *req) {
  const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
  return ct && strcmp(ct, "application/octet-stream") == 0 ? CODEC_PROTOBUF : CODEC_JSON;
}

static void add_stream_headers(const struct request *req, struct MHD_Response *r, enum codec_kind kind) {
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_types[kind]);
  MHD_add_response_header(r, "X-Accel-Buffering", "no");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                          "private, no-cache, no-store, must-revalidate, max-age=0");
  MHD_add_response_header(r, MHD_HTTP_HEADER_PRAGMA, "no-cache");
  MHD_add_response_header(r, "Expire", "0"); /* sic: Centrifugo sends this literal name */
  http_add_cors(req, r);
}

/* The connect command of a bidirectional stream: the bytes of the body or of cf_connect. */
struct command_text {
  const char *text;
  size_t len;
};

/* Runs the connect command in the body. An empty body or a first command other than connect closes the
 * session with 3501, whose Disconnect push then becomes the stream's only frame. */
static void run_connect(struct session *s, const char *command, size_t len) {
  if (len == 0) {
    session_close(s, DISCONNECT_BAD_REQUEST);
    return;
  }
  /* still connecting once every command ran: there was none (a pending connect decides for itself) */
  if (session_feed(s, (const uint8_t *)command, len) && session_state(s) == SESSION_CONNECTING)
    session_close(s, DISCONNECT_BAD_REQUEST);
}

static void connect_command(struct session *s, void *arg) {
  const struct command_text *c = arg;
  run_connect(s, c->text, c->len);
}

/* Block size of the callback response: chunked responses are written straight into the connection's
 * buffer, so this block is only used for HTTP/1.0 clients; small keeps memory per stream small. */
#define STREAM_BLOCK_SIZE 512

enum MHD_Result stream_open(struct request *req, enum codec_kind kind,
                            void (*connect)(struct session *s, void *arg), void *arg) {
  const struct session_transport *t = transports[kind];
  struct server *srv = req->srv;
  if (atomic_load(&srv->shutting_down))
    return http_respond(req, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "shutting down\n",
                        14);
  char remote[64];
  http_remote_address(req, remote, sizeof remote);
  struct session *s = session_new(srv, codec_get(kind), remote);
  if (s == NULL) return MHD_NO;
  struct stream *st = calloc(1, sizeof *st);
  struct stream_request *sr = calloc(1, sizeof *sr);
  int added = st && sr ? registry_add(srv->registry, s) : -1;
  if (added != 0) {
    free(st);
    free(sr);
    session_close(s, DISCONNECT_SERVER_ERROR);
    session_detach(s);
    if (added == REGISTRY_CLOSED) /* shutdown began after the check above: never suspend now */
      return http_respond(req, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", "shutting down\n",
                          14);
    return MHD_NO;
  }
  st->session = session_ref(s);
  st->conn = req->conn;
  st->preamble = kind == CODEC_SSE || kind == CODEC_UNI_SSE;
  stream_direct_init(&st->direct, s, req, req->loop >= 0 ? loops_evloop(srv->loops, (unsigned)req->loop) : NULL,
                     req->http11 ? connection_fd(req) : -1, (uint64_t)write_timeout_ms(srv, kind));
  sr->session = s;
  sr->fd = -1;
  req->handler_data = sr;
  req->cleanup = stream_cleanup;
  session_attach(s, t, st);
  proxy_headers_capture(s, req); /* before the connect: the connect proxy forwards them */
  connect(s, arg);
  struct MHD_Response *r =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, stream_read, st, stream_free);
  if (r == NULL) {
    stream_free(st);
    session_close(s, DISCONNECT_SERVER_ERROR);
    return MHD_NO;
  }
  add_stream_headers(req, r, kind);
  enum MHD_Result ret = http_queue(req, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  if (ret == MHD_YES) {
    watch_hangup(req, sr);
    set_deadlines(req, write_timeout_ms(srv, kind));
  }
  return ret;
}

/* Opens a stream of wire format KIND whose connect command is COMMAND[0..LEN). */
static enum MHD_Result start_stream(struct request *req, enum codec_kind kind, const char *command,
                                    size_t len) {
  struct command_text c = {command, len};
  return stream_open(req, kind, connect_command, &c);
}

enum MHD_Result stream_handle(struct request *req) {
  return start_stream(req, request_codec(req), req->body, req->body_len);
}

enum MHD_Result sse_handle(struct request *req) {
  if (strcmp(req->method, MHD_HTTP_METHOD_POST) == 0)
    return start_stream(req, CODEC_SSE, req->body, req->body_len);
  /* EventSource cannot send a body: the connect command is the URL-encoded cf_connect parameter */
  const char *command = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "cf_connect");
  if (command == NULL)
    return http_respond(req, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", "cf_connect missing\n", 19);
  return start_stream(req, CODEC_SSE, command, strlen(command));
}

static void abandon_on_loop(void *arg) {
  (void)arg;
  stream_direct_abandon_all();
}

void stream_abandon_writers(struct server *srv) {
  for (unsigned i = 0; i < loops_count(srv->loops); i++) loops_post(srv->loops, i, abandon_on_loop, NULL);
}
