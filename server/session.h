/* session: one client connection's state: its ids and user, its protocol state machine (connecting ⇒
 * connected ⇒ closing ⇒ closed), its bounded outgoing queue of frames, its subscriptions and its
 * ping/pong/stale timer.
 *
 * Threads: a session belongs to the core loop that owns its stream (s->loop, loops.h): its /emulation
 * commands are run there (emulation.c hands them over), the hub fans publications out to it there, and
 * the transport (stream.c) drains its queue there. Other threads still reach it (the WebSocket thread
 * runs WebSocket commands, the timer thread pings, the Redis threads run routed commands), so
 * everything mutable is guarded by the session's mutex, except the subscription index fields that
 * belong to the hub's locks. Wakes decided on a core loop run after the loop's batch.
 *
 * Lifetime: sessions are refcounted. The transport holds one reference for as long as the HTTP request
 * lives, each armed timer one, each in-flight emulation request one. session_close() never frees: it
 * marks the session closing, queues the Disconnect push and wakes the transport; the transport ends the
 * stream, and session_detach() (from MHD's completion callback, with no lock held) removes it from the
 * hub and registry and drops the transport's reference. So no session is freed during fan-out or inside
 * another session's callback. Lock order: hub ⇒ session; never take the hub lock holding a session lock. */
#ifndef SESSION_H
#define SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "frame.h"
#include "ids.h"
#include "timer.h"

struct server;
struct session;
struct subscription;
struct held_input;

enum session_state { SESSION_CONNECTING, SESSION_CONNECTED, SESSION_CLOSING, SESSION_CLOSED };

enum session_timer { SESSION_TIMER_STALE, SESSION_TIMER_PING, SESSION_TIMER_PONG_CHECK };

/* How a session reaches its transport: WAKE is called (outside the session lock) when frames were
 * queued while the transport was parked in session_drain(). */
struct session_transport {
  const char *name; /* "http_stream" */
  /* Called with no lock held, from any thread, with the session (the caller holds a reference) and
   * the transport context as it was when the wake was decided; a transport whose connection may end
   * while parked must not trust CTX and find its connection from S instead. */
  void (*wake)(struct session *s, void *ctx);
  bool emulation; /* a unidirectional transport (commands via /emulation): connect replies carry
                     the session and node ids (§3.2) */
  bool unidirectional; /* uni_* transports: the client never sends pongs (no pong check), and a
                          failed connect is a disconnect rather than an error reply (uni.h) */
};

/* What a session asks of the layers above it. The protocol layer provides them
 * (protocol_session_hooks) and server start-up puts them in srv->session_hooks before any session
 * exists; session.c calls nothing above itself (protocol, hub, registry) except through these, so the
 * layers stay one-way: transports → protocol → sessions. All are called with no session lock held. */
struct map_paging;

struct session_hooks {
  /* Runs one decoded command of S; returns 0, or the disconnect code S is then closed with. */
  uint32_t (*dispatch)(struct session *s, const Protocol__Command *cmd);
  /* S ended (closed, its transport gone, its queue cleared): its subscriptions end and it leaves
   * the registry. Called once, from the thread that detached the transport. */
  void (*ended)(struct session *s);
  /* From S's ping timer (the timer thread): end the subscriptions whose tokens expired. */
  void (*ping_check)(struct session *s);
};

struct session {
  atomic_uint refs;
  pthread_mutex_t lock;
  struct server *srv;
  const struct codec *codec;
  char client_id[ID_UUID_LEN + 1];
  char session_id[ID_UUID_LEN + 1];
  char *user;    /* "" for anonymous; owned */
  char *name;    /* client name from connect ("js"); owned */
  char *version; /* client version from connect; owned */
  char remote[64];
  uint64_t created_ms;
  unsigned loop; /* the core loop that owns its stream (loops_current() when it was made; 0 elsewhere) */
  ProtobufCBinaryData conn_info; /* `info` of the connection token (raw JSON or bytes); owned; set at
                                    connect, read-only afterwards */
  ProtobufCBinaryData meta; /* `meta` from the connect proxy (raw JSON); owned; set at connect */
  char *proxy_headers;      /* the stream request's headers named by proxy_http_headers, "Name: value"
                               lines each ending in '\n'; owned; set by the transport before the
                               connect runs (proxy_headers.c), read-only afterwards; NULL = none */

  /* Written under lock; read without it by session_state() (the hang-up sweep walks every stream's
   * session four times a second, and a lock each made most of an idle server's CPU). */
  _Atomic enum session_state state;

  /* Guarded by lock. */
  bool unusable; /* connect failed with an error reply: every command ⇒ 3501 */
  bool parked;   /* the transport found the queue empty and waits for a wake */
  bool feeding;  /* a thread runs S's commands (session_feed.c): others hold theirs back */
  struct held_input *held, *held_tail; /* fed while feeding: input and after-commands calls, in order */
  unsigned ops_in_flight; /* commands that finished but whose reply is still to come (Redis publishes) */
  bool after_waits_ops;   /* an after-commands call waits for ops_in_flight to reach 0 */
  const struct session_transport *transport;
  void *transport_ctx;
  struct frame **queue; /* ring of frames */
  size_t queue_cap, queue_head, queue_len;
  size_t head_offset;        /* bytes of the head frame already handed to the transport */
  size_t queued_bytes;       /* heap footprint of the queued frames (frame_footprint), each reference in
                                full; with the ring's capacity it is what client_queue_max_size bounds */
  struct subscription *subs; /* this session's subscriptions (list) */
  size_t sub_count;
  struct map_paging *map_pagings; /* map snapshots being read (protocol_map.c; freed at the end) */
  bool pong_pending;
  uint64_t last_ping_ms, last_pong_ms;
  enum session_timer timer_kind;
  struct timer timer;
  uint64_t messages_in, messages_out, bytes_in, bytes_out;
  int64_t expires_at;        /* unix seconds when the connection's token expires; 0 = never */
  int64_t proxy_expires_at;  /* connect proxy's expire_at with a refresh proxy: the refresh proxy is
                                asked once it passed (at a ping, proxy_calls.c); 0 = never */
  bool proxy_refreshing;     /* a refresh proxy request is in flight */
  struct timer expire_timer; /* fires client_expired_close_delay after expires_at: 3005 unless refreshed */
};

/* Creates a session in state connecting with a fresh client and session id, one reference for the
 * caller, and the stale timer armed. Returns NULL when out of memory. Any thread. */
struct session *session_new(struct server *srv, const struct codec *codec, const char *remote);

struct session *session_ref(struct session *s);
/* Drops a reference; the last one frees the session (which must be closed and detached by then). */
void session_unref(struct session *s);

/* Attaches the transport that drains the queue. Called once, before the stream response is queued. */
void session_attach(struct session *s, const struct session_transport *t, void *ctx);

/* Queues a reference to F (the caller keeps its own). When the queue's memory (every queued frame's
 * footprint, charged in full per reference, plus the ring's slots) would go over client_queue_max_size,
 * F is dropped and the session is closed with 3008. Frames for a closing or closed session are dropped.
 * When the ring cannot grow (out of memory) the session is closed with 3004 (the client reconnects and
 * recovers). Returns 0, or -1 when dropped. No allocation unless the ring grows. */
int session_enqueue(struct session *s, struct frame *f);

/* Encodes REPLY with the session's codec and queues it. Returns 0 or -1 (dropped / not encodable). A
 * reply that cannot be encoded closes the session, so the client never waits for it: 3506 when its
 * protocol cannot carry a payload (binary data to a JSON client), 3004 when out of memory. */
int session_send_reply(struct session *s, const Protocol__Reply *reply);

/* The disconnect code for a session whose reply or push failed to encode with RC (a codec error):
 * 3506 (terminal) for a payload its protocol cannot carry, 3004 (reconnect) for anything else, out of
 * memory included. */
uint32_t session_encode_failure_code(int rc);

/* Like session_send_reply, but puts the frame at the head of the queue, before anything already queued
 * (the connect reply, which must come first although server-side subscriptions made while connecting
 * may have queued publications). Only valid before the transport drained anything. A reply that cannot
 * be encoded or queued closes the session as above (3004 when the ring cannot grow). */
int session_send_reply_first(struct session *s, const Protocol__Reply *reply);

/* Sends an error reply {id, error{code, message}} for command ID. */
int session_send_error(struct session *s, uint32_t id, uint32_t code);

/* Copies queued bytes into BUF (at most MAX), as many frames as fit (the last one possibly in part).
 * Returns the number of bytes copied; 0 with *eof set when the session is closing and its queue is
 * empty (the transport then ends the stream); 0 with *eof clear when the queue is empty: the session is
 * now parked and the transport must suspend until its wake callback runs. Transport thread only. */
size_t session_drain(struct session *s, uint8_t *buf, size_t max, bool *eof);

/* Starts closing: queues a Disconnect push with CODE and its reason (none for 3000), drops queued
 * frames first when CODE is 3008, and wakes the transport. Idempotent: only the first call counts.
 * Never frees and never takes the hub lock, so it is safe inside fan-out and timer callbacks. */
void session_close(struct session *s, uint32_t code);

/* session_close with a REASON of the caller's (NULL = the code's standard reason). REASON is copied. */
void session_close_reason(struct session *s, uint32_t code, const char *reason);

/* Called once by the transport when its request has ended (client gone or stream finished): marks the
 * session closed, removes its subscriptions from the hub, removes it from the registry, cancels its
 * timer and drops the transport's reference. Must be called with no hub or session lock held. */
void session_detach(struct session *s);

/* What a dispatch hook returns for a command that is still running (it waits for Redis on a worker, or
 * for the application's backend): the hook now owns the command and finishes it later with
 * session_command_done; meanwhile the session holds every later command back, so that a client's
 * commands always run one at a time and in the order it sent them. */
#define SESSION_COMMAND_PENDING UINT32_MAX

/* Decodes and runs every command in DATA[0..LEN) with the session's codec (an emulation request's data,
 * a WebSocket message, the connect in a stream request's body), one at a time, in order, after any
 * command of S still running: while one is pending (SESSION_COMMAND_PENDING) the rest, and whatever
 * is fed later, is copied and held until it finishes. A decoding error closes the session with 3501.
 * Returns true when every command ran and every reply is queued, false when some are still pending
 * or held, or a reply is still to come (session_op_begin: a publish on the Redis engine). Any thread. */
bool session_feed(struct session *s, const uint8_t *data, size_t len);

/* Ends S's pending command: closes S with CODE when it is a disconnect code (not 0), then runs the
 * commands held meanwhile on the calling thread (until one is pending again). Exactly once per pending
 * command, from any thread that may run commands (a worker; not an engine's I/O thread), by whoever
 * holds a reference to S. */
void session_command_done(struct session *s, uint32_t code);

/* Calls FN(ARG) once every command fed to S so far has finished (its reply queued): later, from the
 * thread that finishes the last of them, and returns true; or returns false when none is pending or
 * held (FN is not called: the caller goes on at once). Any thread. */
bool session_after_commands(struct session *s, void (*fn)(void *arg), void *arg);

/* A command that finished (the next one may run) but whose reply comes later from another thread (a
 * publish on the Redis engine): session_after_commands calls wait for it too. Every begin is matched
 * by one end, after the reply was queued; END returns true when the caller must then resume S's
 * commands with session_command_done(S, 0), from a thread that may run commands (not the engine's I/O
 * thread: post it to a worker). Any thread. */
void session_op_begin(struct session *s);
bool session_op_end(struct session *s);

/* session.c's use only: frees what session_feed still holds for S (nothing, unless a pending command
 * was never finished). */
void session_feed_release(struct session *s);

/* Marks the session connected (after a successful connect) and arms its first ping. */
void session_set_connected(struct session *s);

/* Sets (or, with 0, clears) the connection expiry and arms the expiry check for
 * EXPIRES_AT + client_expired_close_delay. EXPIRES_AT is unix seconds. */
void session_set_expiry(struct session *s, int64_t expires_at);

/* Records a pong. Returns 0, or -1 when no ping was outstanding (a protocol error: 3501). */
int session_pong(struct session *s);

/* The current state (an atomic read, no lock: any thread). */
enum session_state session_state(struct session *s);

/* Tests only (a failure-injection hook): the allocator of the queue's ring, malloc unless a unit test
 * swaps in one that fails, to show that a queue which cannot grow closes its session with 3004 instead
 * of losing frames. Never changed by the server; not synchronised. */
extern void *(*session_ring_alloc)(size_t size);

#endif
