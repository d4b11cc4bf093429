/* fdlimit: what a listener does when the process is out of file descriptors (RLIMIT_NOFILE or the
 * system's table: accept() fails with EMFILE/ENFILE, or ENOBUFS/ENOMEM). The pending connection would
 * stay in the listen backlog, its client waiting for nothing, and the listen socket would stay
 * readable, so a level-triggered loop would spin on it. Instead the listener refuses it with the
 * process's one reserve descriptor (closed, the connection accepted, answered and closed, the reserve
 * reopened), and when the reserve is gone too (another thread took the number meanwhile) it stops
 * watching its socket for a short while (FDLIMIT_PAUSE_MS). A gate per listener counts the refusals and
 * logs at most one line per FDLIMIT_LOG_INTERVAL_MS: the condition, or that accepting works again.
 *
 * Threads: every function may be called from any thread; the reserve is one atomic, a gate's fields
 * are atomics. */
#ifndef FDLIMIT_H
#define FDLIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { FDLIMIT_PAUSE_MS = 100, FDLIMIT_LOG_INTERVAL_MS = 10000 };

/* One listener's record of the condition. Initialise with FDLIMIT_GATE("name"). */
struct fdlimit_gate {
  const char *what;             /* the listener, in log lines ("http", "admin") */
  atomic_uint_fast64_t refused; /* since the last report */
  atomic_uint_fast64_t last_log_ms;
  atomic_bool refusing; /* logged as refusing, not yet as accepting again */
};
#define FDLIMIT_GATE(name) \
  { .what = (name) }

/* Opens the reserve descriptor (start-up, before the listeners; again later is harmless). */
void fdlimit_init(void);

/* Is ERR (an accept() errno) a lack of descriptors or kernel memory rather than a bad connection? */
bool fdlimit_exhausted(int err);

/* Refuses one pending connection of the non-blocking LISTEN_FD with the reserve descriptor: it is
 * accepted, whatever the client sent so far is read and dropped, REPLY (LEN bytes, may be 0) is sent
 * without blocking, and it is closed. Returns 1 when one was refused, 0 when none was pending, -1 when
 * there was no reserve (or the accept failed anyway): the caller should stop watching LISTEN_FD for
 * FDLIMIT_PAUSE_MS. */
int fdlimit_refuse(int listen_fd, const char *reply, size_t len);

/* Records that G hit the condition ERR and refused N connections; logs a warning naming the limit
 * at most once per FDLIMIT_LOG_INTERVAL_MS. */
void fdlimit_note(struct fdlimit_gate *g, int err, unsigned n);

/* Records a successful accept on G: after refusals, logs once that accepting works again (when the
 * interval since G's last line is over, else at a later accept). Cheap when nothing was refused. */
void fdlimit_accepted(struct fdlimit_gate *g);

#endif
