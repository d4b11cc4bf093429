/* loops: the core loops, one event-loop thread per usable core. Each one drives the libmicrohttpd daemon
 * that owns its share of the connections (http.c attaches it) and receives, as posted tasks, the
 * publications the hub hands it once per loop (hub.c), which it fans out into its own sessions' queues.
 * Wakes of transports decided on a core loop thread are deferred to the end of the loop's batch, so a
 * session that received many frames in one batch is woken once and its transport writes them all with
 * one syscall; and no wake (a syscall) happens under the hub's locks.
 *
 * Threads: loops_post, loops_wake, loops_defer, loops_current and loops_count from any thread; the rest from the
 * thread that created the set (main), as their contracts say. Ownership: the set owns its evloops. */
#ifndef LOOPS_H
#define LOOPS_H

#include <stdbool.h>

#include "evloop.h"

struct loops;

/* The most core loops a set has (the hub sizes per-loop tables with it). */
#define LOOPS_MAX 64

/* The cores this process may run on (its CPU affinity: taskset, cgroups): one core loop each, since
 * more threads than cores would only take turns on the same core. At least 1. */
unsigned loops_usable_cores(void);

/* Creates N core loops (1 ≤ N ≤ LOOPS_MAX, clamped), not started yet: tasks posted before
 * loops_start() run once they start. Returns NULL when out of resources. Caller owns the set. */
struct loops *loops_new(unsigned n);

/* The number of loops of the set. */
unsigned loops_count(const struct loops *ls);

/* Makes RUN(ARG) the per-iteration work of loop I (see evloop_set_prepare: it returns the longest the
 * loop may sleep). Deferred wakes are run just before it. Before loops_start() only. */
void loops_set_runner(struct loops *ls, unsigned i, evloop_prepare_fn run, void *arg);

/* The evloop of loop I (to register watchers from its own thread or before the start). */
struct evloop *loops_evloop(struct loops *ls, unsigned i);

/* Starts every loop thread. Returns 0 or -1. */
int loops_start(struct loops *ls);

/* Stops and joins every loop thread (queued tasks run first); later posts fail. Idempotent. */
void loops_stop(struct loops *ls);

/* Frees the set (stopping it first). */
void loops_free(struct loops *ls);

/* Runs FN(ARG) on loop I after its current batch. Returns 0, or -1 when the loop is stopped or out of
 * memory (FN not run: the caller does the work itself). */
int loops_post(struct loops *ls, unsigned i, evloop_task_fn fn, void *arg);

/* Makes loop I run its runner again soon (from any thread; nothing when called on loop I itself). */
void loops_wake(struct loops *ls, unsigned i);

/* The index of the core loop the calling thread runs, or -1 on any other thread. */
int loops_current(void);

/* On a core loop thread: queues FN(A, B) to run at the end of the loop's batch (before its runner) and
 * returns true. On any other thread: returns false and queues nothing (the caller runs FN at once). */
bool loops_defer(void (*fn)(void *a, void *b), void *a, void *b);

#endif
