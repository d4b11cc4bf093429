/* workers: a few threads for work that may wait, so that no core loop does. Server API calls on the
 * Redis engine wait for Redis and, for surveys, for every other node's answer (up to seconds when a
 * node hangs): a core loop that ran them would stall every stream it owns meanwhile. Each worker is an
 * evloop (evloop.h) that runs posted tasks in order; tasks are spread round-robin.
 *
 * Threads: workers_post from any thread; workers_new and workers_free from the main thread. */
#ifndef WORKERS_H
#define WORKERS_H

#include <stdbool.h>

#include "evloop.h"

struct workers;

/* Starts N worker threads. Returns NULL when they cannot be started. */
struct workers *workers_new(unsigned n);

/* Runs FN(ARG) on one of the workers. Returns 0, or -1 when stopping or out of memory (FN not run). */
int workers_post(struct workers *w, evloop_task_fn fn, void *arg);

/* True on one of W's threads (NULL: false). Any thread. */
bool workers_in_worker(const struct workers *w);

/* Runs the tasks still queued, stops and joins the threads, frees W (NULL: nothing). */
void workers_free(struct workers *w);

#endif
