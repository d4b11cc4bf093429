/* loadgen: a load generator for streamd's transports (HTTP streaming, WebSocket, SSE), and for Nchan's
 * chunked, WebSocket and EventSource subscribers, so that the two can be measured with the same tool
 * (tests/bench/compare.py runs it).
 *
 * One process, one epoll loop, no threads. Modes:
 *
 *   subscribe  open --conns streams (at --rate new streams/s, at most --inflight handshakes at a time),
 *              subscribe each to one channel, answer pings, parse the stream, read the CLOCK_MONOTONIC
 *              nanosecond timestamp ("ts":N) the publisher put in each publication, and keep a
 *              latency histogram. Prints {"event":"ready",...} once every stream is subscribed, then
 *              the report when --count deliveries per stream arrived, --quiet seconds passed without a
 *              delivery, --hold seconds passed after ready, --duration ran out, or on SIGTERM/SIGINT.
 *   publish    publish --count publications through the HTTP API (streamd: POST /api/publish;
 *              Nchan: POST /pub?id=CH) over --conns keep-alive connections, at --rate publications/s
 *              or, with --rate 0, each connection sending the next as soon as the previous answered.
 *   emulate    (streamd) open --conns streams, then drive POST /emulation over --posters keep-alive
 *              connections, one command each; a command counts when its reply arrives on its stream.
 *   connect    open sessions (connect command + connect reply; Nchan: subscriber response headers) and
 *              close them, --conns at a time, --count in total: new sessions per second.
 *
 * Streams (--transport; one table, `transports`, says how each opens, reads, subscribes and answers pings):
 *   http_stream  streamd: POST /connection/http_stream, chunked response, JSON lines or (--protobuf)
 *                uvarint-length-prefixed protobuf Replies; commands through POST /emulation.
 *                Nchan: GET /sub?id=CH with "TE: chunked", one message per chunk.
 *   websocket    streamd: GET /connection/websocket upgraded; the connect and subscribe commands and the
 *                pongs ({}) go as masked text frames on the socket itself; server frames are unmasked
 *                text frames of replies joined by newlines. Nchan: GET /sub?id=CH upgraded, one message
 *                per frame. Pings in WebSocket control frames are answered with pongs.
 *   sse          streamd: GET /connection/sse?cf_connect=<URL-encoded connect command>, "data:" lines of
 *                one Reply each; subscribe and pongs through POST /emulation (as http_stream).
 *                Nchan: GET /sub?id=CH with "Accept: text/event-stream", one message per event.
 *
 * CPU: the report gives the process's CPU time and the share of one core it used in the measured window
 * (first to last delivery, publication, reply or session; the whole run when there was none), sampled
 * from getrusage every CPU_SAMPLE_MS, so that a caller can tell a load-bound figure from a server-bound one.
 *
 * Only loopback (127.0.0.0/8) is accepted as the server address and as source addresses
 * (--src-addrs K binds streams round-robin to 127.0.0.B .. 127.0.0.B+K-1, for more than ~28k
 * connections). Everything is bounded by --duration. Output: one JSON line on stdout at the end
 * (plus the "ready" event line in subscribe/emulate modes); progress on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------------------------------------ */
/* options */

enum mode { MODE_SUBSCRIBE, MODE_PUBLISH, MODE_EMULATE, MODE_CONNECT };
enum target { TARGET_STREAMD, TARGET_NCHAN };
enum transport_kind { TR_HTTP_STREAM, TR_WEBSOCKET, TR_SSE };

static struct {
  enum mode mode;
  enum target target;
  enum transport_kind transport;
  char host[64];
  uint16_t port;
  bool protobuf;
  long conns;
  double rate;
  long inflight;
  long channels;
  long channel_offset;
  char prefix[64];
  long count;
  double duration;
  double hold;
  double quiet;
  int src_addrs;
  int src_base;
  long size;
  long posters;
  char api_key[128];
  char command[16];
  bool verbose;
} opt = {
    .mode = MODE_SUBSCRIBE,
    .target = TARGET_STREAMD,
    .transport = TR_HTTP_STREAM,
    .host = "127.0.0.1",
    .conns = 100,
    .inflight = 256,
    .channels = 1,
    .prefix = "bench",
    .duration = 60,
    .quiet = 3,
    .src_addrs = 1,
    .src_base = 1,
    .size = 64,
    .posters = 8,
    .api_key = "k",
    .command = "publish",
};

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen[%d]: ", (int)getpid());
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ------------------------------------------------------------------------------------------------ */
/* time and histogram */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Log-linear histogram of microseconds: values below 128 exactly, above that 64 sub-buckets per power
 * of two (under 1.6 % error). */
#define HIST_SUB 64
#define HIST_BUCKETS (64 * HIST_SUB)
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_n, hist_max_us;

static unsigned hist_index(uint64_t us) {
  if (us < 2 * HIST_SUB) return (unsigned)us;
  unsigned msb = 63u - (unsigned)__builtin_clzll(us);        /* >= 7 */
  unsigned shift = msb - 6;                                  /* keep 7 bits: 1xxxxxx */
  unsigned idx = (shift + 1) * HIST_SUB + (unsigned)((us >> shift) & (HIST_SUB - 1));
  return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The lowest value of bucket IDX. */
static uint64_t hist_value(unsigned idx) {
  if (idx < 2 * HIST_SUB) return idx;
  unsigned shift = idx / HIST_SUB - 1;
  return ((uint64_t)(HIST_SUB + idx % HIST_SUB)) << shift;
}

static void hist_add(uint64_t ns) {
  uint64_t us = ns / 1000;
  hist[hist_index(us)]++;
  hist_n++;
  if (us > hist_max_us) hist_max_us = us;
}

static uint64_t hist_pct(double p) {
  if (hist_n == 0) return 0;
  uint64_t want = (uint64_t)(p * (double)hist_n + 0.5);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    seen += hist[i];
    if (seen >= want) return hist_value(i);
  }
  return hist_max_us;
}

/* ------------------------------------------------------------------------------------------------ */
/* connections */

enum conn_kind { K_STREAM, K_POSTER, K_CONNECT };

enum stream_state {
  S_IDLE,       /* not opened yet */
  S_CONNECTING, /* TCP connect in progress, request not yet written */
  S_HEADERS,    /* request written, waiting for the response head */
  S_CONNECT,    /* streamd: waiting for the connect reply */
  S_SUBSCRIBE,  /* streamd: subscribe command sent, waiting for its reply */
  S_READY,      /* subscribed (or connected, in emulate mode) */
  S_CLOSED,
};

enum rx_phase { RX_HEAD, RX_LEN, RX_CHUNK_SIZE, RX_CHUNK_DATA, RX_CHUNK_CRLF, RX_TRAILER, RX_EOF, RX_DONE };

struct conn {
  int fd;
  uint8_t kind;
  uint8_t state;
  uint8_t rx;          /* enum rx_phase */
  bool chunked, size_seen_ext, out_wait;
  int status;
  uint64_t left;       /* body bytes (RX_LEN) or chunk bytes (RX_CHUNK_DATA) still to come */
  char *buf;           /* partial head / partial frame */
  uint32_t blen, bcap;
  char *out;           /* unsent request bytes */
  uint32_t olen, ooff, ocap;
  uint32_t index;      /* stream: its index; poster: its index */
  uint64_t t_start;    /* connect mode: when the attempt began; poster: when the request was sent */
  /* stream */
  uint32_t delivered;
  uint32_t next_id;
  char session[48], node[48];
  /* poster */
  int job;             /* job in flight (-1 none) */
  uint32_t job_arg;
  uint64_t job_seq;
  /* WebSocket streams: the frame being read (header bytes so far, then its payload); last in the struct
   * because the other transports never touch it */
  uint8_t ws_hdr[14], ws_hlen, ws_op, ws_msg_op, ws_ctl_len;
  bool ws_in_payload, ws_fin;
  uint64_t ws_left;    /* payload bytes of the current frame still to come */
  char ws_ctl[125];    /* payload of the current control frame */
};

/* jobs for the poster pool */
enum job_kind { J_SUBSCRIBE, J_PONG, J_COMMAND, J_PUBLISH };
struct job {
  uint8_t kind;
  uint32_t stream;
  uint64_t seq;
};

static int ep;
static struct conn *streams;   /* --conns streams (subscribe, emulate) or attempts (connect) */
static struct conn *posters;   /* emulation / publish pool */
static long nposters;
static struct sockaddr_in server_addr;
static struct sockaddr_in post_addr; /* --post-port: where emulation POSTs go (another node) */
static volatile sig_atomic_t stop_flag;
static uint64_t t0;

static struct {
  uint64_t opened, ready, closed_by_server, conn_errors, http_errors, disconnects, errors_in_stream;
  uint64_t pings, pongs_sent, deliveries, bad_frames, post_ok, post_fail, post_reconnects;
  uint64_t first_delivery, last_delivery, ready_at;
  uint64_t first_ts; /* subscribe: the earliest publication timestamp delivered (its send time) */
  uint64_t commands_sent, replies, published, publish_failed, first_publish, last_publish;
  uint64_t connects_done, connect_failed, connect_first, connect_last;
  int last_disconnect_code;
} st;

static struct job *jobs;
static size_t jobs_head, jobs_len, jobs_cap;

/* CPU time samples (CLOCK_MONOTONIC ns, CPU ns of this process), one every CPU_SAMPLE_MS at most */
#define CPU_SAMPLE_MS 100
struct cpu_sample {
  uint64_t t, cpu;
};
static struct cpu_sample *cpu_samples;
static size_t cpu_nsamples, cpu_cap;

static void job_push(uint8_t kind, uint32_t stream, uint64_t seq) {
  if (jobs_len == jobs_cap) {
    size_t cap = jobs_cap ? jobs_cap * 2 : 1024;
    struct job *q = malloc(cap * sizeof *q);
    if (!q) die("out of memory");
    for (size_t i = 0; i < jobs_len; i++) q[i] = jobs[(jobs_head + i) % jobs_cap];
    free(jobs);
    jobs = q;
    jobs_cap = cap;
    jobs_head = 0;
  }
  jobs[(jobs_head + jobs_len) % jobs_cap] = (struct job){kind, stream, seq};
  jobs_len++;
}

static bool job_pop(struct job *j) {
  if (jobs_len == 0) return false;
  *j = jobs[jobs_head];
  jobs_head = (jobs_head + 1) % jobs_cap;
  jobs_len--;
  return true;
}

static void buf_reserve(char **b, uint32_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  char *nb = realloc(*b, c);
  if (!nb) die("out of memory");
  *b = nb;
  *cap = (uint32_t)c;
}

static void conn_append(struct conn *c, const char *d, size_t n) {
  buf_reserve(&c->buf, &c->bcap, (size_t)c->blen + n + 1);
  memcpy(c->buf + c->blen, d, n);
  c->blen += (uint32_t)n;
  c->buf[c->blen] = '\0';
}

/* The longest line, WebSocket message or chunk a stream may leave partial; a server that sends more
 * without ending it gets the stream closed as bad. */
#define MAX_PARTIAL (16u << 20)

/* conn_append for a stream's partial frame: false (and the stream failed) when it passes MAX_PARTIAL. */
static void stream_fail(struct conn *c, bool by_server);
static bool stream_append(struct conn *c, const char *d, size_t n) {
  if ((size_t)c->blen + n > MAX_PARTIAL) {
    if (st.bad_frames++ < 3) note("stream %u: a frame longer than %u bytes", c->index, MAX_PARTIAL);
    stream_fail(c, true);
    return false;
  }
  conn_append(c, d, n);
  return true;
}

static void rx_reset(struct conn *c) {
  c->rx = RX_HEAD;
  c->chunked = false;
  c->status = 0;
  c->left = 0;
  c->blen = 0;
}

static int sock_open(uint32_t index, const struct sockaddr_in *to) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt.src_addrs > 1 || opt.src_base != 1) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(opt.src_base + (int)(index % (uint32_t)opt.src_addrs)));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static void conn_watch(struct conn *c, bool want_out) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
  c->out_wait = want_out;
}

static int conn_start(struct conn *c) {
  c->fd = sock_open(c->index, c->kind == K_POSTER && post_addr.sin_port ? &post_addr : &server_addr);
  if (c->fd < 0) return -1;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
  c->out_wait = true;
  c->olen = c->ooff = 0;
  rx_reset(c);
  return 0;
}

static void conn_close(struct conn *c) {
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
}

/* Queues bytes for C and writes what the socket takes now. Returns -1 on a write error. */
static int conn_send(struct conn *c, const char *d, size_t n) {
  buf_reserve(&c->out, &c->ocap, (size_t)c->olen + n);
  memcpy(c->out + c->olen, d, n);
  c->olen += (uint32_t)n;
  if (c->out_wait && c->state == S_CONNECTING) return 0; /* connect still in progress */
  while (c->ooff < c->olen) {
    ssize_t w = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN) {
        if (!c->out_wait) conn_watch(c, true);
        return 0;
      }
      return -1;
    }
    c->ooff += (uint32_t)w;
  }
  c->olen = c->ooff = 0;
  if (c->out_wait) conn_watch(c, false);
  return 0;
}

static int conn_flush(struct conn *c) {
  if (c->olen == 0) {
    if (c->out_wait) conn_watch(c, false);
    return 0;
  }
  return conn_send(c, "", 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* requests */

static char hostport[96];

static void channel_name(char *out, size_t n, uint32_t stream) {
  snprintf(out, n, "%s-%ld", opt.prefix, ((long)stream + opt.channel_offset) % opt.channels);
}

/* Nchan streams name their channel in the URL: the stream's channel, or one of its own in connect mode. */
static void nchan_channel(char *out, size_t n, const struct conn *c) {
  if (opt.mode == MODE_CONNECT)
    snprintf(out, n, "%s-conn-%u", opt.prefix, c->index);
  else
    channel_name(out, n, c->index);
}

static size_t put_uvarint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    p[n++] = b | (v ? 0x80 : 0);
  } while (v);
  return n;
}

static size_t pb_put_bytes(uint8_t *p, unsigned field, const void *d, size_t n) {
  size_t k = put_uvarint(p, (uint64_t)field << 3 | 2);
  k += put_uvarint(p + k, n);
  memcpy(p + k, d, n);
  return k + n;
}

static size_t pb_put_varint(uint8_t *p, unsigned field, uint64_t v) {
  size_t k = put_uvarint(p, (uint64_t)field << 3);
  return k + put_uvarint(p + k, v);
}

/* The opening request of an http_stream stream (or connect attempt). */
static int open_http_stream(struct conn *c) {
  char req[1024];
  int n;
  if (opt.target == TARGET_NCHAN) {
    char ch[96];
    nchan_channel(ch, sizeof ch, c);
    n = snprintf(req, sizeof req,
                 "GET /sub?id=%s HTTP/1.1\r\nHost: %s\r\nTE: chunked\r\nAccept: */*\r\n\r\n", ch, hostport);
  } else if (opt.protobuf) {
    uint8_t cmd[64], inner[32];
    size_t in = pb_put_bytes(inner, 4, "bench", 5);  /* ConnectRequest.name */
    size_t cn = pb_put_varint(cmd, 1, 1);             /* Command.id = 1 */
    cn += pb_put_bytes(cmd + cn, 4, inner, in);       /* Command.connect */
    uint8_t body[80];
    size_t bn = put_uvarint(body, cn);
    memcpy(body + bn, cmd, cn);
    bn += cn;
    n = snprintf(req, sizeof req,
                 "POST /connection/http_stream HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
                 "Accept: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                 hostport, bn);
    memcpy(req + n, body, bn);
    n += (int)bn;
  } else {
    static const char body[] = "{\"connect\":{\"name\":\"bench\"},\"id\":1}";
    n = snprintf(req, sizeof req,
                 "POST /connection/http_stream HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 "Accept: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 hostport, sizeof body - 1, body);
  }
  return conn_send(c, req, (size_t)n);
}

/* Builds the emulation POST carrying CMD (one JSON command, or one protobuf Command) for stream S. */
static size_t build_emulation(char *out, size_t cap, const struct conn *s, const char *cmd, size_t cmdlen) {
  char body[2048];
  size_t bn = 0;
  if (opt.protobuf) {
    uint8_t data[600];
    size_t dn = put_uvarint(data, cmdlen);
    memcpy(data + dn, cmd, cmdlen);
    dn += cmdlen;
    bn += pb_put_bytes((uint8_t *)body + bn, 1, s->node, strlen(s->node));
    bn += pb_put_bytes((uint8_t *)body + bn, 2, s->session, strlen(s->session));
    bn += pb_put_bytes((uint8_t *)body + bn, 3, data, dn);
  } else {
    bn = (size_t)snprintf(body, sizeof body, "{\"session\":\"%s\",\"node\":\"%s\",\"data\":\"", s->session, s->node);
    for (size_t i = 0; i < cmdlen && bn < sizeof body - 4; i++) {
      if (cmd[i] == '"' || cmd[i] == '\\') body[bn++] = '\\';
      body[bn++] = cmd[i];
    }
    body[bn++] = '"';
    body[bn++] = '}';
  }
  int n = snprintf(out, cap,
                   "POST /emulation HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                   hostport, opt.protobuf ? "application/octet-stream" : "application/json", bn);
  memcpy(out + n, body, bn);
  return (size_t)n + bn;
}

/* The publication payload: {"ts":<ns>,"seq":N,"p":"xxx"} padded to --size bytes. */
static size_t build_payload(char *out, size_t cap, uint64_t ts, uint64_t seq) {
  int n = snprintf(out, cap, "{\"ts\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"p\":\"", ts, seq);
  size_t want = (size_t)opt.size > (size_t)n + 2 ? (size_t)opt.size - 2 : (size_t)n;
  size_t k = (size_t)n;
  while (k < want && k < cap - 3) out[k++] = 'x';
  out[k++] = '"';
  out[k++] = '}';
  out[k] = '\0';
  return k;
}

static uint64_t *cmd_sent_at; /* emulate mode: send time by command id % CMD_RING */
#define CMD_RING 65536u
#define CMD_ID_BASE 1000u

/* Starts job J on poster P. Returns -1 when the connection failed. */
static int poster_run(struct conn *p, const struct job *j) {
  char req[4096];
  size_t n = 0;
  struct conn *s = j->kind != J_PUBLISH ? &streams[j->stream] : NULL;
  if (s && s->state == S_CLOSED) return 0; /* the stream ended meanwhile: drop the job */
  p->job = j->kind;
  p->job_arg = j->stream;
  p->job_seq = j->seq;
  p->t_start = now_ns();
  switch (j->kind) {
    case J_SUBSCRIBE: {
      char ch[96], cmd[256];
      channel_name(ch, sizeof ch, s->index);
      size_t cn;
      if (opt.protobuf) {
        uint8_t inner[128];
        size_t in = pb_put_bytes(inner, 1, ch, strlen(ch));
        cn = pb_put_varint((uint8_t *)cmd, 1, 2);
        cn += pb_put_bytes((uint8_t *)cmd + cn, 5, inner, in);
      } else {
        cn = (size_t)snprintf(cmd, sizeof cmd, "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2}", ch);
      }
      n = build_emulation(req, sizeof req, s, cmd, cn);
      break;
    }
    case J_PONG:
      n = build_emulation(req, sizeof req, s, opt.protobuf ? "" : "{}", opt.protobuf ? 0 : 2);
      st.pongs_sent++;
      break;
    case J_COMMAND: {
      char cmd[512], payload[300];
      uint32_t id = (uint32_t)j->seq;
      size_t cn;
      if (strcmp(opt.command, "rpc") == 0) {
        if (opt.protobuf) {
          uint8_t inner[64];
          size_t in = pb_put_bytes(inner, 2, "bench", 5);
          cn = pb_put_varint((uint8_t *)cmd, 1, id);
          cn += pb_put_bytes((uint8_t *)cmd + cn, 13, inner, in);
        } else {
          cn = (size_t)snprintf(cmd, sizeof cmd, "{\"rpc\":{\"method\":\"bench\"},\"id\":%u}", id);
        }
      } else {
        size_t pn = build_payload(payload, sizeof payload, now_ns(), j->seq);
        if (opt.protobuf) {
          uint8_t inner[400];
          char ch[96];
          snprintf(ch, sizeof ch, "%s-emu", opt.prefix);
          size_t in = pb_put_bytes(inner, 1, ch, strlen(ch));
          in += pb_put_bytes(inner + in, 2, payload, pn);
          cn = pb_put_varint((uint8_t *)cmd, 1, id);
          cn += pb_put_bytes((uint8_t *)cmd + cn, 7, inner, in);
        } else {
          cn = (size_t)snprintf(cmd, sizeof cmd, "{\"publish\":{\"channel\":\"%s-emu\",\"data\":%s},\"id\":%u}",
                                opt.prefix, payload, id);
        }
      }
      cmd_sent_at[id % CMD_RING] = p->t_start;
      n = build_emulation(req, sizeof req, s, cmd, cn);
      st.commands_sent++;
      break;
    }
    case J_PUBLISH: {
      char payload[4096 - 512], ch[96];
      uint64_t ts = now_ns();
      size_t pn = build_payload(payload, sizeof payload, ts, j->seq);
      snprintf(ch, sizeof ch, "%s-%ld", opt.prefix, (long)(j->seq % (uint64_t)opt.channels));
      if (opt.target == TARGET_NCHAN) {
        int h = snprintf(req, sizeof req,
                         "POST /pub?id=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         ch, hostport, pn);
        memcpy(req + h, payload, pn);
        n = (size_t)h + pn;
      } else {
        char body[4096];
        int bn = snprintf(body, sizeof body, "{\"channel\":\"%s\",\"data\":%s}", ch, payload);
        n = (size_t)snprintf(req, sizeof req,
                             "POST /api/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                             "X-API-Key: %s\r\nContent-Length: %d\r\n\r\n%s",
                             hostport, opt.api_key, bn, body);
      }
      if (st.first_publish == 0) st.first_publish = ts;
      st.last_publish = ts;
      break;
    }
  }
  return conn_send(p, req, n);
}

static bool poster_idle(const struct conn *p) { return p->fd >= 0 && p->state == S_READY && p->job < 0; }

static void poster_open(struct conn *p) {
  p->state = S_CONNECTING;
  p->job = -1;
  if (conn_start(p) != 0) {
    p->state = S_CLOSED;
    st.conn_errors++;
  }
}

/* Hands queued jobs to idle posters. */
static void dispatch(void) {
  for (long i = 0; i < nposters && jobs_len > 0; i++) {
    struct conn *p = &posters[i];
    if (!poster_idle(p)) continue;
    struct job j;
    while (poster_idle(p) && job_pop(&j)) {
      if (poster_run(p, &j) != 0) {
        job_push(j.kind, j.stream, j.seq);
        conn_close(p);
        st.post_reconnects++;
        poster_open(p);
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* frames */

static void stream_fail(struct conn *c, bool by_server);
static void stream_subscribe(struct conn *c);
static void stream_pong(struct conn *c);

static long open_streams, handshakes;

static void stream_ready(struct conn *c) {
  c->state = S_READY;
  handshakes--;
  st.ready++;
  if (st.ready == (uint64_t)opt.conns) {
    st.ready_at = now_ns();
    if (opt.mode != MODE_CONNECT) {
      printf("{\"event\":\"ready\",\"streams\":%" PRIu64 ",\"seconds\":%.3f}\n", st.ready,
             (double)(st.ready_at - t0) / 1e9);
      fflush(stdout);
    }
  }
}

static void on_delivery(struct conn *c, uint64_t ts) {
  uint64_t now = now_ns();
  if (ts && ts <= now) hist_add(now - ts);
  if (ts && (st.first_ts == 0 || ts < st.first_ts)) st.first_ts = ts;
  c->delivered++;
  st.deliveries++;
  if (st.first_delivery == 0) st.first_delivery = now;
  st.last_delivery = now;
}

static uint64_t parse_ts(const char *p, size_t n) {
  const char *q = memmem(p, n, "\"ts\":", 5);
  if (!q) return 0;
  q += 5;
  const char *end = p + n;
  uint64_t v = 0;
  while (q < end && *q >= '0' && *q <= '9') v = v * 10 + (uint64_t)(*q++ - '0');
  return v;
}

/* Copies the JSON string value of KEY ("key":"value") into OUT. */
static bool json_string_field(const char *p, size_t n, const char *key, char *out, size_t cap) {
  char pat[32];
  int k = snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *q = memmem(p, n, pat, (size_t)k);
  if (!q) return false;
  q += k;
  size_t i = 0;
  while (q < p + n && *q != '"' && i + 1 < cap) out[i++] = *q++;
  out[i] = '\0';
  return i > 0;
}

/* Reply id of a JSON reply ({"id":N,...}); 0 when absent. */
static uint32_t json_reply_id(const char *p, size_t n) {
  if (n < 7 || memcmp(p, "{\"id\":", 6) != 0) return 0;
  uint32_t v = 0;
  for (size_t i = 6; i < n && p[i] >= '0' && p[i] <= '9'; i++) v = v * 10 + (uint32_t)(p[i] - '0');
  return v;
}

static void on_connected(struct conn *c);

static void on_reply(struct conn *c, uint32_t id, bool is_error) {
  if (is_error) st.errors_in_stream++;
  if (id == 1 && c->state == S_CONNECT) { /* a connect reply without session and node: WebSocket */
    if (is_error) {
      if (st.errors_in_stream < 5) note("stream %u: connect failed", c->index);
      stream_fail(c, true);
      return;
    }
    on_connected(c);
  } else if (id == 2 && c->state == S_SUBSCRIBE) {
    if (is_error) {
      if (st.errors_in_stream < 5) note("stream %u: subscribe failed", c->index);
      stream_fail(c, true);
      return;
    }
    stream_ready(c);
  } else if (id >= CMD_ID_BASE && cmd_sent_at) {
    uint64_t now = now_ns();
    hist_add(now - cmd_sent_at[id % CMD_RING]);
    st.replies++;
    if (st.first_delivery == 0) st.first_delivery = now;
    st.last_delivery = now;
  }
}

static void on_connected(struct conn *c) {
  if (opt.mode == MODE_CONNECT) {
    uint64_t now = now_ns();
    hist_add(now - c->t_start);
    st.connects_done++;
    if (st.connect_first == 0) st.connect_first = now;
    st.connect_last = now;
    conn_close(c);
    c->state = S_IDLE;
    handshakes--;
    open_streams--;
    return;
  }
  if (opt.mode == MODE_SUBSCRIBE) {
    c->state = S_SUBSCRIBE;
    stream_subscribe(c);
  } else {
    stream_ready(c);
  }
}

static void json_frame(struct conn *c, const char *p, size_t n) {
  if (n == 0) return;
  if (n == 2 && p[0] == '{' && p[1] == '}') {
    st.pings++;
    stream_pong(c);
    return;
  }
  if (c->state == S_CONNECT) {
    if (json_string_field(p, n, "session", c->session, sizeof c->session) &&
        json_string_field(p, n, "node", c->node, sizeof c->node)) {
      on_connected(c);
      return;
    }
  }
  if (n > 8 && p[2] == 'p' && memcmp(p, "{\"push\":", 8) == 0) {
    uint64_t ts = parse_ts(p, n);
    if (ts) {
      on_delivery(c, ts);
      return;
    }
    const char *d = memmem(p, n, "\"disconnect\":{\"code\":", 21);
    if (d) {
      st.disconnects++;
      st.last_disconnect_code = atoi(d + 21);
    }
    return;
  }
  uint32_t id = json_reply_id(p, n);
  if (id) {
    on_reply(c, id, memmem(p, n, "\"error\":", 8) != NULL);
    return;
  }
  st.bad_frames++;
}

/* Minimal protobuf walking: calls back on each top-level field. */
static bool pb_uvarint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  const uint8_t *p = *pp;
  uint64_t x = 0;
  for (unsigned sh = 0; p < end && sh < 64; sh += 7) {
    uint8_t b = *p++;
    x |= (uint64_t)(b & 0x7f) << sh;
    if (!(b & 0x80)) {
      *pp = p;
      *v = x;
      return true;
    }
  }
  return false;
}

/* Finds field FIELD (length-delimited) in [p, end); returns its bytes. */
static bool pb_find(const uint8_t *p, const uint8_t *end, unsigned field, const uint8_t **out, size_t *outlen,
                    uint64_t *varint) {
  while (p < end) {
    uint64_t key, v;
    if (!pb_uvarint(&p, end, &key)) return false;
    unsigned wt = key & 7, f = (unsigned)(key >> 3);
    if (wt == 0) {
      if (!pb_uvarint(&p, end, &v)) return false;
      if (f == field && varint) {
        *varint = v;
        return true;
      }
    } else if (wt == 2) {
      if (!pb_uvarint(&p, end, &v) || v > (uint64_t)(end - p)) return false;
      if (f == field && out) {
        *out = p;
        *outlen = (size_t)v;
        return true;
      }
      p += v;
    } else if (wt == 1) {
      p += 8;
    } else if (wt == 5) {
      p += 4;
    } else {
      return false;
    }
  }
  return false;
}

static void pb_frame(struct conn *c, const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  if (n == 0) {
    st.pings++;
    stream_pong(c);
    return;
  }
  const uint8_t *f;
  size_t fl;
  if (c->state == S_CONNECT && pb_find(p, end, 5, &f, &fl, NULL)) {
    const uint8_t *s, *nd;
    size_t sl, nl;
    if (pb_find(f, f + fl, 9, &s, &sl, NULL) && pb_find(f, f + fl, 10, &nd, &nl, NULL) &&
        sl < sizeof c->session && nl < sizeof c->node) {
      memcpy(c->session, s, sl);
      c->session[sl] = '\0';
      memcpy(c->node, nd, nl);
      c->node[nl] = '\0';
      on_connected(c);
      return;
    }
  }
  if (pb_find(p, end, 4, &f, &fl, NULL)) { /* push */
    uint64_t ts = parse_ts((const char *)f, fl);
    if (ts) {
      on_delivery(c, ts);
      return;
    }
    const uint8_t *d;
    size_t dl;
    if (pb_find(f, f + fl, 11, &d, &dl, NULL)) {
      uint64_t code = 0;
      pb_find(d, d + dl, 1, NULL, NULL, &code);
      st.disconnects++;
      st.last_disconnect_code = (int)code;
    }
    return;
  }
  uint64_t id = 0;
  if (pb_find(p, end, 1, NULL, NULL, &id) && id) {
    on_reply(c, (uint32_t)id, pb_find(p, end, 2, &f, &fl, NULL));
    return;
  }
  st.bad_frames++;
}

/* Splits D into '\n'-terminated lines and calls FN on each complete one (without the '\n'); a partial
 * line waits in c->buf for the rest. Stops when FN closed the stream. */
static void each_line(struct conn *c, const char *d, size_t n, void (*fn)(struct conn *, const char *, size_t)) {
  while (n > 0) {
    const char *nl = memchr(d, '\n', n);
    if (!nl) {
      if (!stream_append(c, d, n)) return;
      return;
    }
    size_t k = (size_t)(nl - d);
    if (c->blen) {
      if (!stream_append(c, d, k)) return;
      uint32_t len = c->blen;
      c->blen = 0;
      fn(c, c->buf, len);
    } else {
      fn(c, d, k);
    }
    d += k + 1;
    n -= k + 1;
    if (c->state == S_CLOSED || c->fd < 0) return;
  }
}

/* De-chunked body bytes of an http_stream stream. */
static void body_http_stream(struct conn *c, const char *d, size_t n) {
  if (opt.target == TARGET_NCHAN) { /* one message per chunk: collect until the chunk ends */
    if (c->blen == 0 && c->left == 0) {
      on_delivery(c, parse_ts(d, n));
      return;
    }
    if (!stream_append(c, d, n)) return;
    if (c->left == 0) {
      on_delivery(c, parse_ts(c->buf, c->blen));
      c->blen = 0;
    }
    return;
  }
  if (!opt.protobuf) {
    each_line(c, d, n, json_frame);
    return;
  }
  /* protobuf: uvarint length + message */
  while (n > 0) {
    if (c->blen == 0) {
      const uint8_t *p = (const uint8_t *)d, *end = p + n;
      uint64_t len;
      if (pb_uvarint(&p, end, &len) && len <= (uint64_t)(end - p)) {
        pb_frame(c, p, (size_t)len);
        size_t used = (size_t)(p - (const uint8_t *)d) + (size_t)len;
        d += used;
        n -= used;
        if (c->state == S_CLOSED || c->fd < 0) return;
        continue;
      }
      if (!stream_append(c, d, n)) return;
      return;
    }
    /* complete the partial frame in buf */
    const uint8_t *p = (const uint8_t *)c->buf, *end = p + c->blen;
    uint64_t len;
    if (!pb_uvarint(&p, end, &len)) {
      if (!stream_append(c, d, 1)) return;
      d++;
      n--;
      continue;
    }
    size_t have = (size_t)(end - p), want = (size_t)len - (have < len ? have : len);
    size_t take = want < n ? want : n;
    if (!stream_append(c, d, take)) return;
    d += take;
    n -= take;
    p = (const uint8_t *)c->buf;
    end = p + c->blen;
    pb_uvarint(&p, end, &len);
    if ((uint64_t)(end - p) >= len) {
      pb_frame(c, p, (size_t)len);
      c->blen = 0;
      if (c->state == S_CLOSED || c->fd < 0) return;
    }
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* WebSocket and SSE streams */

/* Any 16 bytes in base64 will do (RFC 6455 4.1); the accept header is not checked: the status 101 and
 * the frames that follow are what a load generator needs. */
static const char ws_key[] = "dGhlIHNhbXBsZSBub25jZQ==";

/* Queues one client frame with opcode OP and payload D: FIN set, masked (RFC 6455 5.3: every client
 * frame is). Returns -1 on a write error. */
static int ws_send(struct conn *c, uint8_t op, const char *d, size_t n) {
  static uint32_t seed = 0x9e3779b9u;
  char small[512];
  char *f = n + 14 <= sizeof small ? small : malloc(n + 14);
  if (!f) die("out of memory");
  size_t h = 0;
  f[h++] = (char)(0x80 | op);
  if (n < 126) {
    f[h++] = (char)(0x80 | n);
  } else if (n < 65536) {
    f[h++] = (char)(0x80 | 126);
    f[h++] = (char)(n >> 8);
    f[h++] = (char)n;
  } else {
    f[h++] = (char)(0x80 | 127);
    for (int i = 7; i >= 0; i--) f[h++] = (char)((uint64_t)n >> (8 * i));
  }
  seed ^= seed << 13; /* xorshift32: the mask only has to vary */
  seed ^= seed >> 17;
  seed ^= seed << 5;
  uint8_t mask[4] = {(uint8_t)(seed >> 24), (uint8_t)(seed >> 16), (uint8_t)(seed >> 8), (uint8_t)seed};
  memcpy(f + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < n; i++) f[h + i] = (char)(d[i] ^ mask[i & 3]);
  int rc = conn_send(c, f, h + n);
  if (f != small) free(f);
  return rc;
}

static void ws_send_text(struct conn *c, const char *text) {
  if (ws_send(c, 0x1, text, strlen(text)) != 0) stream_fail(c, false);
}

/* The header length of a frame once its first two bytes are known (0 before). */
static size_t ws_header_len(const uint8_t *h, size_t have) {
  if (have < 2) return 0;
  unsigned l7 = h[1] & 0x7f;
  return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
}

/* Takes the complete header in c->ws_hdr. Returns -1 for a frame a server must not send. */
static int ws_frame_start(struct conn *c) {
  const uint8_t *h = c->ws_hdr;
  bool fin = h[0] & 0x80;
  uint8_t op = h[0] & 0x0f;
  if (h[0] & 0x70 || h[1] & 0x80) return -1; /* no extension was negotiated; server frames are unmasked */
  uint64_t len = h[1] & 0x7f;
  if (len == 126) {
    len = (uint64_t)h[2] << 8 | h[3];
  } else if (len == 127) {
    len = 0;
    for (int i = 2; i < 10; i++) len = len << 8 | h[i];
  }
  if (op & 0x8) {
    if (!fin || len > sizeof c->ws_ctl) return -1; /* control frames: whole and short (RFC 6455 5.5) */
  } else if (op == 0x0) {
    if (!c->ws_msg_op) return -1; /* a continuation of nothing */
  } else if (op == 0x1 || op == 0x2) {
    if (c->ws_msg_op) return -1; /* a new message inside a fragmented one */
    c->ws_msg_op = op;
  } else {
    return -1;
  }
  if (len > (64u << 20)) return -1;
  c->ws_op = op;
  c->ws_fin = fin;
  c->ws_left = len;
  c->ws_hlen = 0;
  c->ws_ctl_len = 0;
  c->ws_in_payload = true;
  return 0;
}

/* Payload bytes of a data frame. streamd joins a message's replies with '\n' (none after the last one);
 * Nchan sends one publication per message. */
static void ws_data(struct conn *c, const char *d, size_t n) {
  if (opt.target == TARGET_STREAMD)
    each_line(c, d, n, json_frame);
  else
    (void)stream_append(c, d, n); /* false: the stream is failed already */
}

static void ws_message_end(struct conn *c) {
  uint32_t len = c->blen;
  c->ws_msg_op = 0;
  c->blen = 0;
  if (opt.target == TARGET_STREAMD) {
    if (len) json_frame(c, c->buf, len);
  } else {
    on_delivery(c, parse_ts(c->buf, len));
  }
}

static void ws_control(struct conn *c) {
  switch (c->ws_op) {
    case 0x8: /* Close: the code is the disconnect code (streamd sends no Disconnect push on WebSocket) */
      st.disconnects++;
      st.last_disconnect_code = c->ws_ctl_len >= 2 ? (uint8_t)c->ws_ctl[0] << 8 | (uint8_t)c->ws_ctl[1] : 1005;
      stream_fail(c, true);
      break;
    case 0x9: /* Ping: Pong with the same payload */
      st.pings++;
      st.pongs_sent++;
      if (ws_send(c, 0xA, c->ws_ctl, c->ws_ctl_len) != 0) stream_fail(c, false);
      break;
    default: /* Pong: nothing to do */
      break;
  }
}

/* The bytes after the 101 response: frames, in pieces of any size. */
static void body_websocket(struct conn *c, const char *d, size_t n) {
  while (n > 0 || (c->ws_in_payload && c->ws_left == 0)) {
    if (!c->ws_in_payload) {
      c->ws_hdr[c->ws_hlen++] = (uint8_t)*d++;
      n--;
      size_t need = ws_header_len(c->ws_hdr, c->ws_hlen);
      if (need == 0 || c->ws_hlen < need) continue;
      if (ws_frame_start(c) != 0) {
        if (st.bad_frames++ < 3) note("stream %u: bad WebSocket frame header", c->index);
        stream_fail(c, true);
        return;
      }
      continue;
    }
    size_t take = n < c->ws_left ? n : (size_t)c->ws_left;
    if (c->ws_op & 0x8) {
      memcpy(c->ws_ctl + c->ws_ctl_len, d, take);
      c->ws_ctl_len += (uint8_t)take;
    } else {
      ws_data(c, d, take);
      if (c->fd < 0) return;
    }
    d += take;
    n -= take;
    c->ws_left -= take;
    if (c->ws_left == 0) {
      c->ws_in_payload = false;
      if (c->ws_op & 0x8)
        ws_control(c);
      else if (c->ws_fin)
        ws_message_end(c);
      if (c->fd < 0 || c->state == S_CLOSED) return;
    }
  }
}

static int open_websocket(struct conn *c) {
  char req[512], path[128];
  if (opt.target == TARGET_NCHAN) {
    char ch[96];
    nchan_channel(ch, sizeof ch, c);
    snprintf(path, sizeof path, "/sub?id=%s", ch);
  } else {
    snprintf(path, sizeof path, "/connection/websocket");
  }
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   path, hostport, ws_key);
  return conn_send(c, req, (size_t)n);
}

/* streamd, after the 101: the connect command (its reply has no session: the socket is the session). */
static int start_websocket(struct conn *c) {
  c->ws_hlen = 0;
  c->ws_in_payload = false;
  c->ws_msg_op = 0;
  static const char cmd[] = "{\"connect\":{\"name\":\"bench\"},\"id\":1}";
  return ws_send(c, 0x1, cmd, sizeof cmd - 1);
}

static void subscribe_websocket(struct conn *c) {
  char ch[96], cmd[160];
  channel_name(ch, sizeof ch, c->index);
  snprintf(cmd, sizeof cmd, "{\"subscribe\":{\"channel\":\"%s\"},\"id\":2}", ch);
  ws_send_text(c, cmd);
}

static void pong_websocket(struct conn *c) {
  st.pongs_sent++;
  ws_send_text(c, "{}");
}

/* One line of an event stream: a "data:" line carries one Reply (streamd) or one message (Nchan);
 * blank lines, comments (":"), "id:" and "retry:" lines carry nothing a subscriber counts. */
static void sse_line(struct conn *c, const char *p, size_t n) {
  if (n && p[n - 1] == '\r') n--;
  if (n < 5 || memcmp(p, "data:", 5) != 0) return;
  p += 5;
  n -= 5;
  if (n && *p == ' ') p++, n--;
  if (opt.target == TARGET_STREAMD)
    json_frame(c, p, n);
  else
    on_delivery(c, parse_ts(p, n));
}

static void body_sse(struct conn *c, const char *d, size_t n) { each_line(c, d, n, sse_line); }

static int open_sse(struct conn *c) {
  char req[768], path[512];
  if (opt.target == TARGET_NCHAN) {
    char ch[96];
    nchan_channel(ch, sizeof ch, c);
    snprintf(path, sizeof path, "/sub?id=%s", ch);
  } else { /* what EventSource sends: the connect command URL-encoded in cf_connect */
    static const char cmd[] = "{\"connect\":{\"name\":\"bench\"},\"id\":1}";
    size_t k = (size_t)snprintf(path, sizeof path, "/connection/sse?cf_connect=");
    for (const char *q = cmd; *q && k + 4 < sizeof path; q++) {
      bool plain = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9');
      k += plain ? (size_t)snprintf(path + k, 2, "%c", *q) : (size_t)snprintf(path + k, 4, "%%%02X", (unsigned char)*q);
    }
  }
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                   path, hostport);
  return conn_send(c, req, (size_t)n);
}

static void subscribe_emulation(struct conn *c) { job_push(J_SUBSCRIBE, c->index, 0); }

static void pong_emulation(struct conn *c) { job_push(J_PONG, c->index, 0); }

/* How each transport opens a stream, reads it, subscribes and answers pings (the latter two: streamd). */
struct transport {
  const char *name;
  int status;                                            /* status of a good opening response */
  int (*open)(struct conn *c);                           /* writes the opening request */
  int (*start)(struct conn *c);                          /* streamd, after a good head (NULL: nothing) */
  void (*body)(struct conn *c, const char *d, size_t n); /* response bytes after the head (de-chunked) */
  void (*subscribe)(struct conn *c);                     /* the subscribe command, once connected */
  void (*pong)(struct conn *c);                          /* the answer to a ping */
};

static const struct transport transports[] = {
    [TR_HTTP_STREAM] = {"http_stream", 200, open_http_stream, NULL, body_http_stream, subscribe_emulation,
                        pong_emulation},
    [TR_WEBSOCKET] = {"websocket", 101, open_websocket, start_websocket, body_websocket, subscribe_websocket,
                      pong_websocket},
    [TR_SSE] = {"sse", 200, open_sse, NULL, body_sse, subscribe_emulation, pong_emulation},
};

static void stream_subscribe(struct conn *c) { transports[opt.transport].subscribe(c); }

static void stream_pong(struct conn *c) { transports[opt.transport].pong(c); }

/* ------------------------------------------------------------------------------------------------ */
/* HTTP response parsing */

static bool head_done(struct conn *c) {
  if (sscanf(c->buf, "HTTP/1.%*d %d", &c->status) != 1) return false;
  c->chunked = false;
  c->left = 0;
  bool have_len = false;
  for (char *line = strstr(c->buf, "\r\n"); line && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
    char *h = line + 2;
    if (strncasecmp(h, "transfer-encoding:", 18) == 0 && strcasestr(h, "chunked") &&
        strcasestr(h, "chunked") < strstr(h, "\r\n"))
      c->chunked = true;
    else if (strncasecmp(h, "content-length:", 15) == 0) {
      c->left = strtoull(h + 15, NULL, 10);
      have_len = true;
    }
  }
  if (c->status == 101) /* switched to WebSocket: frames follow */
    c->rx = RX_EOF;
  else if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200))
    c->rx = RX_DONE;
  else if (c->chunked)
    c->rx = RX_CHUNK_SIZE;
  else if (have_len)
    c->rx = c->left ? RX_LEN : RX_DONE;
  else
    c->rx = RX_EOF;
  c->blen = 0;
  return true;
}

static void on_head(struct conn *c);
static void on_response(struct conn *c);

/* Body bytes: streams frame them; posters keep the first bytes for diagnostics. */
static void body_bytes(struct conn *c, const char *d, size_t n) {
  if (c->kind == K_STREAM || c->kind == K_CONNECT)
    transports[opt.transport].body(c, d, n);
  else if (c->blen < 512)
    conn_append(c, d, n < 512 - c->blen ? n : 512 - c->blen);
}

/* Feeds received bytes through the response parser. Returns false when the connection was closed. */
static bool rx_feed(struct conn *c, const char *d, size_t n) {
  while (n > 0 || c->rx == RX_DONE) {
    switch (c->rx) {
      case RX_HEAD: {
        uint32_t from = c->blen > 3 ? c->blen - 3 : 0;
        const char *e = memmem(d, n, "\r\n\r\n", 4);
        size_t take = e ? (size_t)(e - d) + 4 : n;
        conn_append(c, d, take);
        d += take;
        n -= take;
        const char *term = memmem(c->buf + from, c->blen - from, "\r\n\r\n", 4);
        if (!term) {
          if (c->blen > 16384) return stream_fail(c, true), false;
          break;
        }
        size_t excess = c->blen - (size_t)(term + 4 - c->buf); /* body bytes appended with the head */
        d -= excess;
        n += excess;
        c->blen -= (uint32_t)excess;
        c->buf[c->blen] = '\0';
        if (!head_done(c)) return stream_fail(c, true), false;
        on_head(c);
        if (c->fd < 0) return false;
        break;
      }
      case RX_LEN: {
        size_t take = n < c->left ? n : (size_t)c->left;
        body_bytes(c, d, take);
        d += take;
        n -= take;
        c->left -= take;
        if (c->left == 0) c->rx = RX_DONE;
        break;
      }
      case RX_EOF:
        body_bytes(c, d, n);
        n = 0;
        break;
      case RX_CHUNK_SIZE:
        while (n > 0) {
          char ch = *d++;
          n--;
          if (ch == '\n') {
            c->size_seen_ext = false;
            c->rx = c->left ? RX_CHUNK_DATA : RX_TRAILER;
            if (c->rx == RX_TRAILER) c->blen = 0;
            break;
          }
          if (c->size_seen_ext || ch == '\r') continue;
          if (ch == ';' || ch == ' ') {
            c->size_seen_ext = true;
            continue;
          }
          int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                  : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
          if (v < 0) return stream_fail(c, true), false;
          c->left = c->left * 16 + (uint64_t)v;
        }
        break;
      case RX_CHUNK_DATA: {
        size_t take = n < c->left ? n : (size_t)c->left;
        c->left -= take;
        body_bytes(c, d, take);
        if (c->fd < 0) return false;
        d += take;
        n -= take;
        if (c->left == 0) c->rx = RX_CHUNK_CRLF;
        break;
      }
      case RX_CHUNK_CRLF:
        while (n > 0) {
          char ch = *d++;
          n--;
          if (ch == '\n') {
            c->rx = RX_CHUNK_SIZE;
            break;
          }
        }
        break;
      case RX_TRAILER: /* lines until an empty one; c->left counts the current line's length */
        while (n > 0) {
          char ch = *d++;
          n--;
          if (ch == '\r') continue;
          if (ch == '\n') {
            if (c->left == 0) {
              c->rx = RX_DONE;
              break;
            }
            c->left = 0;
          } else {
            c->left++;
          }
        }
        break;
      case RX_DONE:
        on_response(c);
        if (c->fd < 0) return false;
        if (c->rx == RX_DONE) return true; /* nothing more expected */
        break;
    }
  }
  return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* connection events */

static void stream_fail(struct conn *c, bool by_server) {
  if (c->kind == K_POSTER) {
    conn_close(c);
    c->state = S_CLOSED;
    return;
  }
  if (c->state == S_IDLE || c->state == S_CLOSED) {
    conn_close(c);
    return;
  }
  if (opt.mode == MODE_CONNECT)
    st.connect_failed++;
  else if (c->state == S_CONNECTING || c->state == S_HEADERS)
    st.conn_errors++;
  else if (by_server)
    st.closed_by_server++;
  if (c->state == S_READY)
    st.ready--;
  else
    handshakes--;
  conn_close(c);
  open_streams--;
  c->state = opt.mode == MODE_CONNECT ? S_IDLE : S_CLOSED;
}

static void on_head(struct conn *c) {
  if (c->kind == K_POSTER) return;
  const struct transport *t = &transports[opt.transport];
  if (c->status != t->status) {
    st.http_errors++;
    if (st.http_errors <= 3) note("stream %u: HTTP status %d", c->index, c->status);
    stream_fail(c, true);
    return;
  }
  if (opt.target == TARGET_NCHAN) {
    if (opt.mode == MODE_CONNECT)
      on_connected(c);
    else
      stream_ready(c);
    return;
  }
  c->state = S_CONNECT;
  if (t->start && t->start(c) != 0) stream_fail(c, false);
}

static void on_response(struct conn *c) {
  if (c->kind != K_POSTER) { /* a stream's response ended */
    stream_fail(c, true);
    return;
  }
  uint64_t now = now_ns();
  bool ok = c->status >= 200 && c->status < 300;
  if (ok)
    st.post_ok++;
  else {
    st.post_fail++;
    if (st.post_fail <= 3) note("POST answered %d: %.*s", c->status, (int)c->blen, c->blen ? c->buf : "");
  }
  if (c->job == J_PUBLISH) {
    if (ok) {
      st.published++;
      hist_add(now - c->t_start);
    } else {
      st.publish_failed++;
    }
  }
  c->job = -1;
  rx_reset(c);
  struct job j;
  if (job_pop(&j) && poster_run(c, &j) != 0) {
    job_push(j.kind, j.stream, j.seq);
    conn_close(c);
    st.post_reconnects++;
    poster_open(c);
  }
}

static void on_writable(struct conn *c) {
  if (c->state == S_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      if (c->kind == K_POSTER) {
        note("poster connect failed: %s", strerror(err));
        conn_close(c);
        c->state = S_CLOSED;
        st.conn_errors++;
        return;
      }
      stream_fail(c, false);
      return;
    }
    if (c->kind == K_POSTER) {
      c->state = S_READY;
      conn_flush(c);
      if (c->job < 0) {
        struct job j;
        if (job_pop(&j) && poster_run(c, &j) != 0) stream_fail(c, false);
      }
      return;
    }
    c->state = S_HEADERS;
    if (transports[opt.transport].open(c) != 0) stream_fail(c, false);
    return;
  }
  if (conn_flush(c) != 0) stream_fail(c, false);
}

static char rxbuf[256 * 1024];

static void on_readable(struct conn *c) {
  ssize_t r = recv(c->fd, rxbuf, sizeof rxbuf, 0);
  if (r > 0) {
    rx_feed(c, rxbuf, (size_t)r);
    return;
  }
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  /* closed */
  if (c->kind == K_POSTER) {
    bool had_job = c->job >= 0;
    if (had_job) job_push((uint8_t)c->job, c->job_arg, c->job_seq);
    conn_close(c);
    if (!stop_flag) {
      st.post_reconnects++;
      poster_open(c);
    }
    return;
  }
  stream_fail(c, true);
}

/* ------------------------------------------------------------------------------------------------ */
/* main loop */

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static double elapsed_s(void) { return (double)(now_ns() - t0) / 1e9; }

static void open_more_streams(void) {
  static long next = 0;
  long target = opt.conns;
  if (opt.rate > 0) {
    long due = (long)(elapsed_s() * opt.rate) + 1;
    if (due < target) target = due;
  }
  if (opt.mode == MODE_CONNECT) {
    /* connect mode: --conns attempts at a time, --count in total */
    for (long i = 0; i < opt.conns && handshakes < opt.conns; i++) {
      struct conn *c = &streams[i];
      if (c->state != S_IDLE || (long)st.opened >= opt.count) continue;
      if (opt.rate > 0 && (double)st.opened >= elapsed_s() * opt.rate + 1) break;
      c->t_start = now_ns();
      c->state = S_CONNECTING;
      if (conn_start(c) != 0) {
        st.connect_failed++;
        c->state = S_IDLE;
        continue;
      }
      st.opened++;
      handshakes++;
      open_streams++;
    }
    return;
  }
  while (next < target && handshakes < opt.inflight) {
    struct conn *c = &streams[next];
    c->state = S_CONNECTING;
    if (conn_start(c) != 0) {
      if (st.conn_errors++ < 3) note("cannot open stream %ld: %s", next, strerror(errno));
      c->state = S_CLOSED;
    } else {
      handshakes++;
      open_streams++;
      st.opened++;
    }
    next++;
  }
}

/* Paced or unpaced publishing: queue publications as they come due. */
static uint64_t pub_queued;

static void publish_schedule(void) {
  if ((long)pub_queued >= opt.count) return;
  if (opt.rate > 0) {
    uint64_t due = (uint64_t)(elapsed_s() * opt.rate) + 1;
    while (pub_queued < due && (long)pub_queued < opt.count) job_push(J_PUBLISH, 0, pub_queued++);
  } else {
    /* unpaced: keep one job per poster queued */
    while (jobs_len < (size_t)nposters && (long)pub_queued < opt.count) job_push(J_PUBLISH, 0, pub_queued++);
  }
}

static uint64_t cmd_next = CMD_ID_BASE;

static void command_schedule(void) {
  if (st.ready < (uint64_t)opt.conns) return;
  long sent = (long)(cmd_next - CMD_ID_BASE);
  if (opt.count > 0 && sent >= opt.count) return;
  size_t want = (size_t)nposters;
  if (opt.rate > 0) {
    double since = (double)(now_ns() - st.ready_at) / 1e9;
    long due = (long)(since * opt.rate) + 1;
    while ((long)(cmd_next - CMD_ID_BASE) < due && (opt.count == 0 || (long)(cmd_next - CMD_ID_BASE) < opt.count)) {
      uint32_t s = (uint32_t)(cmd_next % (uint64_t)opt.conns);
      job_push(J_COMMAND, s, cmd_next++);
    }
    return;
  }
  while (jobs_len < want && (opt.count == 0 || (long)(cmd_next - CMD_ID_BASE) < opt.count)) {
    uint32_t s = (uint32_t)(cmd_next % (uint64_t)opt.conns);
    job_push(J_COMMAND, s, cmd_next++);
  }
}

static bool finished(void) {
  double t = elapsed_s();
  if (stop_flag || t >= opt.duration) return true;
  uint64_t now = now_ns();
  switch (opt.mode) {
    case MODE_SUBSCRIBE:
      if (opt.count > 0 && st.deliveries >= (uint64_t)opt.count * (uint64_t)opt.conns) return true;
      if (opt.quiet > 0 && st.last_delivery && (double)(now - st.last_delivery) / 1e9 >= opt.quiet) return true;
      if (opt.hold > 0 && st.ready_at && (double)(now - st.ready_at) / 1e9 >= opt.hold) return true;
      if (open_streams == 0 && st.opened == (uint64_t)opt.conns) return true; /* every stream ended */
      return false;
    case MODE_PUBLISH: {
      if ((long)(st.published + st.publish_failed) >= opt.count) return true;
      bool any = false;
      for (long i = 0; i < nposters; i++) any |= posters[i].state != S_CLOSED;
      return !any;
    }
    case MODE_EMULATE:
      if (opt.count > 0 && (long)st.replies >= opt.count) return true;
      if (opt.hold > 0 && st.ready_at && (double)(now - st.ready_at) / 1e9 >= opt.hold) return true;
      return false;
    case MODE_CONNECT:
      return (long)(st.connects_done + st.connect_failed) >= opt.count;
  }
  return true;
}

static uint64_t cpu_now_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/* Records (now, CPU time) when the last sample is CPU_SAMPLE_MS old, or always with FORCE. */
static void cpu_sample(bool force) {
  uint64_t now = now_ns();
  if (!force && cpu_nsamples && now - cpu_samples[cpu_nsamples - 1].t < CPU_SAMPLE_MS * 1000000ull) return;
  if (cpu_nsamples == cpu_cap) {
    size_t cap = cpu_cap ? cpu_cap * 2 : 1024;
    struct cpu_sample *q = realloc(cpu_samples, cap * sizeof *q);
    if (!q) die("out of memory");
    cpu_samples = q;
    cpu_cap = cap;
  }
  cpu_samples[cpu_nsamples++] = (struct cpu_sample){now, cpu_now_ns()};
}

/* The share of one core this process used from the last sample at or before START to the first at or
 * after END (the whole run when START is 0 or END is not after it); the interval's length in *SECONDS. */
static double cpu_share(uint64_t start, uint64_t end, double *seconds) {
  size_t a = 0, b = cpu_nsamples - 1;
  if (start && end > start) {
    for (size_t i = 0; i < cpu_nsamples && cpu_samples[i].t <= start; i++) a = i;
    for (size_t i = cpu_nsamples; i-- > a;)
      if (cpu_samples[i].t >= end) b = i;
  }
  *seconds = b > a ? (double)(cpu_samples[b].t - cpu_samples[a].t) / 1e9 : 0;
  if (b <= a) return 0;
  return (double)(cpu_samples[b].cpu - cpu_samples[a].cpu) / (double)(cpu_samples[b].t - cpu_samples[a].t);
}

static void report(void) {
  double dt = 0;
  char extra[512] = "";
  const char *mode = opt.mode == MODE_SUBSCRIBE ? "subscribe"
                     : opt.mode == MODE_PUBLISH ? "publish"
                     : opt.mode == MODE_EMULATE ? "emulate"
                                                : "connect";
  uint64_t count = 0, w0 = 0, w1 = 0; /* the measured window, for the CPU share */
  switch (opt.mode) {
    case MODE_SUBSCRIBE: {
      count = st.deliveries;
      w0 = st.first_delivery, w1 = st.last_delivery;
      if (st.last_delivery > st.first_delivery) dt = (double)(st.last_delivery - st.first_delivery) / 1e9;
      uint32_t mn = UINT32_MAX, mx = 0;
      long complete = 0;
      for (long i = 0; i < opt.conns; i++) {
        uint32_t d = streams[i].delivered;
        if (d < mn) mn = d;
        if (d > mx) mx = d;
        if (opt.count > 0 && d >= (uint32_t)opt.count) complete++;
      }
      /* e2e: from the first publication's send time (its "ts") to the last delivery, which also counts
       * the wait for the first delivery that the first-to-last window leaves out */
      double e2e = st.first_ts && st.last_delivery > st.first_ts ? (double)(st.last_delivery - st.first_ts) / 1e9 : 0;
      snprintf(extra, sizeof extra,
               ",\"min_per_stream\":%u,\"max_per_stream\":%u,\"streams_complete\":%ld,\"ready_seconds\":%.3f"
               ",\"first_ts_ns\":%" PRIu64 ",\"last_delivery_ns\":%" PRIu64 ",\"e2e_seconds\":%.3f,\"e2e_rate\":%.1f",
               opt.conns ? mn : 0, mx, complete, st.ready_at ? (double)(st.ready_at - t0) / 1e9 : -1.0, st.first_ts,
               st.last_delivery, e2e, e2e > 0 ? (double)st.deliveries / e2e : 0.0);
      break;
    }
    case MODE_PUBLISH:
      count = st.published;
      w0 = st.first_publish, w1 = st.last_publish;
      if (st.last_publish > st.first_publish) dt = (double)(st.last_publish - st.first_publish) / 1e9;
      snprintf(extra, sizeof extra, ",\"publish_failed\":%" PRIu64, st.publish_failed);
      break;
    case MODE_EMULATE:
      count = st.replies;
      w0 = st.first_delivery, w1 = st.last_delivery;
      if (st.last_delivery > st.first_delivery) dt = (double)(st.last_delivery - st.first_delivery) / 1e9;
      snprintf(extra, sizeof extra, ",\"commands_sent\":%" PRIu64, st.commands_sent);
      break;
    case MODE_CONNECT:
      count = st.connects_done;
      w0 = st.connect_first, w1 = st.connect_last;
      if (st.connect_last > st.connect_first) dt = (double)(st.connect_last - st.connect_first) / 1e9;
      snprintf(extra, sizeof extra, ",\"connect_failed\":%" PRIu64, st.connect_failed);
      break;
  }
  cpu_sample(true);
  double cpu = (double)cpu_samples[cpu_nsamples - 1].cpu / 1e9, window_s;
  double share = cpu_share(w0, w1, &window_s);
  printf("{\"mode\":\"%s\",\"target\":\"%s\",\"transport\":\"%s\",\"pid\":%d,\"cpu_s\":%.3f,"
         "\"cpu_share\":%.3f,\"cpu_window_s\":%.3f,\"conns\":%ld,\"ready\":%" PRIu64 ",\"count\":%" PRIu64
         ",\"seconds\":%.3f,\"rate\":%.1f,\"p50_us\":%" PRIu64 ",\"p90_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
         ",\"max_us\":%" PRIu64 ",\"pings\":%" PRIu64 ",\"pongs\":%" PRIu64 ",\"disconnects\":%" PRIu64
         ",\"last_disconnect_code\":%d,\"closed_by_server\":%" PRIu64 ",\"conn_errors\":%" PRIu64
         ",\"http_errors\":%" PRIu64 ",\"stream_errors\":%" PRIu64 ",\"bad_frames\":%" PRIu64
         ",\"post_ok\":%" PRIu64 ",\"post_fail\":%" PRIu64 ",\"post_reconnects\":%" PRIu64 "%s,\"hist\":[",
         mode, opt.target == TARGET_NCHAN ? "nchan" : "streamd", transports[opt.transport].name, (int)getpid(), cpu,
         share, window_s, opt.conns, st.ready, count, dt,
         dt > 0 ? (double)count / dt : 0.0, hist_pct(0.50), hist_pct(0.90), hist_pct(0.99), hist_max_us, st.pings,
         st.pongs_sent, st.disconnects, st.last_disconnect_code, st.closed_by_server, st.conn_errors,
         st.http_errors, st.errors_in_stream, st.bad_frames, st.post_ok, st.post_fail, st.post_reconnects, extra);
  bool first = true;
  for (unsigned i = 0; i < HIST_BUCKETS; i++) {
    if (!hist[i]) continue;
    printf("%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", hist_value(i), hist[i]);
    first = false;
  }
  printf("]}\n");
  fflush(stdout);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen MODE --port N [options]\n"
          "  MODE: subscribe | publish | emulate | connect\n"
          "  --target streamd|nchan   server flavour (default streamd)\n"
          "  --transport T            http_stream (default), websocket or sse (subscribe, connect; emulate:\n"
          "                           http_stream or sse)\n"
          "  --host ADDR              loopback server address (default 127.0.0.1; 127.0.0.0/8 only)\n"
          "  --port N                 server port\n"
          "  --protobuf               streamd protobuf protocol instead of JSON\n"
          "  --conns N                streams (subscribe/emulate), POST connections (publish),\n"
          "                           concurrent attempts (connect); default 100\n"
          "  --rate R                 new streams/s (subscribe/emulate), publications/s (publish),\n"
          "                           sessions/s (connect); 0 = as fast as possible\n"
          "  --cmd-rate R             emulate: commands/s (0 = as fast as possible)\n"
          "  --inflight N             subscribe/emulate: handshakes in progress at most (default 256)\n"
          "  --channels C             channels; stream i uses channel (i + offset) %% C (default 1)\n"
          "  --channel-offset K       (several subscriber processes share the channel set)\n"
          "  --prefix P               channel name prefix (default bench)\n"
          "  --count M                publish/connect/emulate: total; subscribe: deliveries per stream\n"
          "  --duration S             hard time limit in seconds (default 60)\n"
          "  --hold S                 subscribe/emulate: stop S seconds after every stream is ready\n"
          "  --quiet S                subscribe: stop S s after the last delivery (default 3; 0 = off)\n"
          "  --src-addrs K --src-base B   bind sources to 127.0.0.B .. 127.0.0.B+K-1\n"
          "  --size B                 publication payload bytes (default 64)\n"
          "  --posters N              subscribe/emulate: keep-alive emulation connections (default 8)\n"
          "  --api-key KEY            streamd API key (default k)\n"
          "  --command publish|rpc    emulate: the command each POST carries (default publish)\n"
          "  --post-port N            subscribe/emulate: send the emulation POSTs to this port (another node)\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *m = argv[1];
  if (strcmp(m, "subscribe") == 0) opt.mode = MODE_SUBSCRIBE;
  else if (strcmp(m, "publish") == 0) opt.mode = MODE_PUBLISH;
  else if (strcmp(m, "emulate") == 0) opt.mode = MODE_EMULATE;
  else if (strcmp(m, "connect") == 0) opt.mode = MODE_CONNECT;
  else usage();
  double cmd_rate = 0;
  static const struct option longopts[] = {
      {"target", 1, 0, 't'},  {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},     {"protobuf", 0, 0, 'P'},
      {"conns", 1, 0, 'n'},   {"rate", 1, 0, 'r'},        {"inflight", 1, 0, 'i'}, {"channels", 1, 0, 'C'},
      {"channel-offset", 1, 0, 'o'}, {"prefix", 1, 0, 'x'}, {"count", 1, 0, 'c'}, {"duration", 1, 0, 'd'},
      {"hold", 1, 0, 'h'},    {"quiet", 1, 0, 'q'},       {"src-addrs", 1, 0, 'S'}, {"src-base", 1, 0, 'B'},
      {"size", 1, 0, 's'},    {"posters", 1, 0, 'w'},     {"api-key", 1, 0, 'k'},  {"command", 1, 0, 'm'},
      {"cmd-rate", 1, 0, 'R'}, {"verbose", 0, 0, 'v'},    {"post-port", 1, 0, 'O'},
      {"transport", 1, 0, 'T'}, {0, 0, 0, 0}};
  int ch;
  optind = 2;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
      case 't':
        if (strcmp(optarg, "nchan") == 0) opt.target = TARGET_NCHAN;
        else if (strcmp(optarg, "streamd") == 0) opt.target = TARGET_STREAMD;
        else usage();
        break;
      case 'H': snprintf(opt.host, sizeof opt.host, "%s", optarg); break;
      case 'p': opt.port = (uint16_t)atoi(optarg); break;
      case 'P': opt.protobuf = true; break;
      case 'n': opt.conns = atol(optarg); break;
      case 'r': opt.rate = atof(optarg); break;
      case 'i': opt.inflight = atol(optarg); break;
      case 'C': opt.channels = atol(optarg); break;
      case 'o': opt.channel_offset = atol(optarg); break;
      case 'x': snprintf(opt.prefix, sizeof opt.prefix, "%s", optarg); break;
      case 'c': opt.count = atol(optarg); break;
      case 'd': opt.duration = atof(optarg); break;
      case 'h': opt.hold = atof(optarg); break;
      case 'q': opt.quiet = atof(optarg); break;
      case 'S': opt.src_addrs = atoi(optarg); break;
      case 'B': opt.src_base = atoi(optarg); break;
      case 's': opt.size = atol(optarg); break;
      case 'w': opt.posters = atol(optarg); break;
      case 'k': snprintf(opt.api_key, sizeof opt.api_key, "%s", optarg); break;
      case 'm': snprintf(opt.command, sizeof opt.command, "%s", optarg); break;
      case 'R': cmd_rate = atof(optarg); break;
      case 'v': opt.verbose = true; break;
      case 'O': post_addr.sin_port = htons((uint16_t)atoi(optarg)); break;
      case 'T': {
        size_t i = 0;
        while (i < sizeof transports / sizeof transports[0] && strcmp(optarg, transports[i].name) != 0) i++;
        if (i == sizeof transports / sizeof transports[0]) die("--transport must be http_stream, websocket or sse");
        opt.transport = (enum transport_kind)i;
        break;
      }
      default: usage();
    }
  }
  if (opt.port == 0) die("--port is required");
  if (opt.conns <= 0 || opt.channels <= 0 || opt.posters <= 0 || opt.src_addrs <= 0) die("bad counts");
  if (opt.size < 24 || opt.size > 3000) die("--size must be 24..3000");
  if (opt.duration <= 0 || opt.duration > 3600) die("--duration must be in (0, 3600]");
  if ((opt.mode == MODE_PUBLISH || opt.mode == MODE_CONNECT) && opt.count <= 0) die("--count is required");
  if (opt.target == TARGET_NCHAN && (opt.mode == MODE_EMULATE || opt.protobuf))
    die("Nchan has no emulation and no protobuf framing");
  if (opt.protobuf && opt.transport != TR_HTTP_STREAM) die("--protobuf is for --transport http_stream only");
  if (opt.mode == MODE_EMULATE && opt.transport == TR_WEBSOCKET)
    die("emulate needs a session for POST /emulation: --transport http_stream or sse");
  if (opt.src_base < 1 || opt.src_base + opt.src_addrs - 1 > 254) die("source addresses must be 127.0.0.1..254");
  server_addr.sin_family = AF_INET;
  server_addr.sin_port = htons(opt.port);
  if (inet_pton(AF_INET, opt.host, &server_addr.sin_addr) != 1) die("--host must be an IPv4 address");
  if ((ntohl(server_addr.sin_addr.s_addr) >> 24) != 127) die("--host must be a loopback address (127.0.0.0/8)");
  snprintf(hostport, sizeof hostport, "%s:%u", opt.host, opt.port);
  post_addr.sin_family = AF_INET;
  post_addr.sin_addr = server_addr.sin_addr;

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  long fds_needed = (opt.mode == MODE_PUBLISH ? 0 : opt.conns) + opt.posters + 16;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)fds_needed > rl.rlim_cur)
    die("%ld connections need more open files than the limit %ld: spread them over several processes",
        fds_needed, (long)rl.rlim_cur);

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);

  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1: %s", strerror(errno));
  t0 = now_ns();
  cpu_sample(true);

  if (opt.mode != MODE_PUBLISH) {
    streams = calloc((size_t)opt.conns, sizeof *streams);
    if (!streams) die("out of memory");
    for (long i = 0; i < opt.conns; i++) {
      streams[i].fd = -1;
      streams[i].index = (uint32_t)i;
      streams[i].kind = opt.mode == MODE_CONNECT ? K_CONNECT : K_STREAM;
      streams[i].job = -1;
    }
  }
  if (opt.mode == MODE_EMULATE) {
    cmd_sent_at = calloc(CMD_RING, sizeof *cmd_sent_at);
    if (!cmd_sent_at) die("out of memory");
  }
  /* emulation connections: none where commands have no POST /emulation to go to (connect mode, Nchan,
   * WebSocket: its commands go on the socket) */
  bool emulation = opt.mode != MODE_CONNECT && opt.target != TARGET_NCHAN && opt.transport != TR_WEBSOCKET;
  nposters = opt.mode == MODE_PUBLISH ? opt.conns : emulation ? opt.posters : 0;
  if (nposters) {
    posters = calloc((size_t)nposters, sizeof *posters);
    if (!posters) die("out of memory");
    for (long i = 0; i < nposters; i++) {
      posters[i].fd = -1;
      posters[i].kind = K_POSTER;
      posters[i].index = (uint32_t)i;
      poster_open(&posters[i]);
    }
  }

  struct epoll_event evs[512];
  double last_progress = 0;
  while (!finished()) {
    if (opt.mode == MODE_SUBSCRIBE || opt.mode == MODE_EMULATE || opt.mode == MODE_CONNECT) open_more_streams();
    if (opt.mode == MODE_PUBLISH) publish_schedule();
    if (opt.mode == MODE_EMULATE && st.ready >= (uint64_t)opt.conns) {
      opt.rate = cmd_rate; /* every stream is open: from now on --rate is --cmd-rate */
      command_schedule();
    }
    dispatch();
    cpu_sample(false);
    bool pacing = opt.rate > 0 || (opt.mode != MODE_PUBLISH && st.opened < (uint64_t)opt.conns);
    int n = epoll_wait(ep, evs, 512, pacing ? 1 : 50);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      if (evs[i].events & EPOLLOUT) {
        on_writable(c);
        if (c->fd < 0) continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
    }
    double t = elapsed_s();
    if (opt.verbose && t - last_progress >= 1) {
      last_progress = t;
      note("t=%.0fs open=%ld ready=%" PRIu64 " deliveries=%" PRIu64 " published=%" PRIu64 " replies=%" PRIu64
           " connects=%" PRIu64 " jobs=%zu",
           t, open_streams, st.ready, st.deliveries, st.published, st.replies, st.connects_done, jobs_len);
    }
  }
  report();
  return 0;
}
