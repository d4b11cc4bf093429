/* redis_conn: one connection to one Redis server, driven by an evloop. Commands are pipelined: each one
 * is formatted (hiredis' RESP writer) into an output buffer that is written once per loop iteration,
 * however many commands were queued in it, and replies (hiredis' RESP reader) are matched to their
 * callbacks in order. The connection reconnects by itself with a capped, jittered backoff, says when it
 * comes up and goes down, and gives up on a server that does not answer within the I/O timeout.
 *
 * A connection in subscriber mode carries PUB/SUB: "message" and "pmessage" pushes go to the push
 * callback; the confirmations of SUBSCRIBE/UNSUBSCRIBE (one per channel named) and of PING go to the
 * command callbacks like any reply, so each such command must name exactly one channel.
 *
 * Threads: everything runs on the loop thread (see evloop.h); other threads use evloop_post(). Callbacks
 * run on the loop thread and must not free the connection they are called for (post a task for that).
 * Ownership: replies passed to callbacks are borrowed for the duration of the call. */
#ifndef REDIS_CONN_H
#define REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evloop;
struct redis_conn;

/* Where a Redis server is and how to log in. */
struct redis_addr {
  char host[256];
  int port;
  char user[128];     /* "" = no ACL user (AUTH password only) */
  char password[256]; /* "" = no AUTH */
  int db;             /* SELECT when not 0 */
};

/* Parses "host:port", "host" (port 6379), "[v6]:port" or "redis://[user:password@]host[:port][/db]"
 * into *OUT. Returns 0, or -1 with a message in ERR. Any thread. */
int redis_addr_parse(const char *text, struct redis_addr *out, char *err, size_t errlen);

/* REPLY is the server's answer (an error reply is a reply: check its type), or NULL when the
 * connection was lost or timed out before it came. Called exactly once per queued command. */
typedef void (*redis_reply_fn)(void *arg, const redisReply *reply);
/* The connection became usable (UP true: connected, logged in, database selected) or stopped being. */
typedef void (*redis_state_fn)(void *arg, bool up);
/* A PUB/SUB push: the whole ["message", channel, payload] (or pmessage) array. */
typedef void (*redis_push_fn)(void *arg, const redisReply *push);

struct redis_conn_options {
  const char *name; /* for logs: "redis commands" */
  struct redis_addr addr;
  uint64_t connect_timeout_ms; /* TCP connect plus login */
  uint64_t io_timeout_ms;      /* longest wait for the next reply while replies are due */
  bool subscriber;
  /* Sentinel mode (NSENTINELS > 0): before each connect the Sentinels are asked where MASTER_NAME's
   * master is, and ADDR's host and port are replaced (its password and db stay). Borrowed: the array
   * outlives the connection. */
  const struct redis_addr *sentinels;
  size_t nsentinels;
  const char *master_name;
  redis_state_fn on_state;
  redis_push_fn on_push; /* subscriber mode */
  void *arg;             /* passed to on_state and on_push */
};

/* Creates a connection and starts connecting. Returns NULL when out of memory. Loop thread (or before
 * the loop starts). The caller owns it (redis_conn_free). */
struct redis_conn *redis_conn_new(struct evloop *loop, const struct redis_conn_options *opts);

/* Closes the connection: callbacks of commands still waiting get NULL, on_state is not called. The
 * memory is released after the current batch. Loop thread. */
void redis_conn_free(struct redis_conn *c);

/* True when commands can be queued. Loop thread. */
bool redis_conn_up(const struct redis_conn *c);

/* Queues one command (ARGC arguments, binary-safe with ARGVLEN, or NUL-terminated when ARGVLEN is NULL)
 * and will call FN(ARG, reply) once. Returns 0, or -1 when the connection is not up or out of memory
 * (then FN is never called). Loop thread. */
int redis_conn_command(struct redis_conn *c, int argc, const char **argv, const size_t *argvlen,
                       redis_reply_fn fn, void *arg);

/* Drops the connection now (callbacks get NULL, on_state(false) when it was up) and reconnects after
 * the backoff: for a caller whose probe found the connection dead although TCP looks fine. Loop thread. */
void redis_conn_reset(struct redis_conn *c, const char *why);

/* Asks SENTINELS[0..N) in turn where MASTER's master is (blocking, TIMEOUT_MS per Sentinel). Returns 0
 * with its HOST and *PORT, or -1 (logged) when none answers. Any thread (redis_sentinel.c). */
int redis_sentinel_resolve(const struct redis_addr *sentinels, size_t n, const char *master, uint64_t timeout_ms,
                           char *host, size_t hostlen, int *port);

/* Commands queued whose replies have not come yet. Loop thread. */
size_t redis_conn_pending(const struct redis_conn *c);

#endif
