/* redis_script: Lua scripts run by their SHA-1 (EVALSHA), falling back to EVAL with the source when the
 * server does not know the script yet (NOSCRIPT: a fresh or restarted Redis), so each script crosses the
 * wire in full about once per server lifetime. The SHA-1 is computed here with OpenSSL.
 *
 * Threads: redis_script_init any thread (once, before use); redis_script_call on the connection's loop
 * thread. Ownership: a script's source is borrowed (a string literal); the call copies its arguments. */
#ifndef REDIS_SCRIPT_H
#define REDIS_SCRIPT_H

#include <stddef.h>

#include "redis_conn.h"

struct redis_script {
  const char *name;   /* for logs */
  const char *source; /* Lua */
  char sha1[41];      /* hex, set by redis_script_init */
};

/* Computes S->sha1 from S->source. Returns 0 or -1. */
int redis_script_init(struct redis_script *s);

/* Runs S with NKEYS keys and NARGS arguments (binary-safe: LENS[i] bytes of VALUES[i], keys first) on
 * C and calls FN(ARG, reply) once, as redis_conn_command does. Returns 0, or -1 (C down, out of
 * memory; FN never called). */
int redis_script_call(struct redis_conn *c, const struct redis_script *s, int nkeys, int nargs,
                      const char *const *values, const size_t *lens, redis_reply_fn fn, void *arg);

/* Queues SCRIPT LOAD of S on C (a connection that just came up), so that the EVALSHA calls queued after
 * it find the script: without it, the calls pipelined before the first NOSCRIPT answer would all be sent
 * again after it, and a call queued meanwhile could run before them (publishes out of order). A refusal
 * is logged; the calls then fall back to EVAL as usual. Returns 0, or -1 when C is down. */
int redis_script_load(struct redis_conn *c, const struct redis_script *s);

#endif
