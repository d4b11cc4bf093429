/* trace: `streamctl trace ID`'s recorder. While an admin client traces a session, the session's frames
 * (the bytes it was fed and the frames queued to it), the emulation POSTs that carried its commands,
 * the code it closed with and its end are recorded as events into a bounded queue of that trace; the
 * admin thread takes them out and writes them to its client (decoding them there, trace_decode.h).
 *
 * Cost: when nobody traces, each hook is one atomic load (trace_on). While some session is traced, a
 * hook scans the TRACE_MAX traced session pointers (atomic loads) and takes the trace lock only for a
 * traced session. A trace never slows its session: recording copies the bytes fed in, or takes a
 * reference to the queued frame, and never waits; when the queue holds TRACE_QUEUE_EVENTS events or
 * TRACE_QUEUE_BYTES bytes the event is dropped and counted, and the reader is told how many.
 *
 * Threads and locks: hooks run on any thread, some under the session's lock (session ⇒ trace lock; the
 * trace lock is never held while taking a session lock). A trace's WAKE callback runs under the trace
 * lock when its queue stops being empty or its session ends: it must only signal (an eventfd write).
 * trace_start, trace_take and trace_stop belong to the trace's reader (the admin thread). */
#ifndef TRACE_H
#define TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "frame.h"

struct session;
struct trace;

#define TRACE_MAX 8                         /* traces at once on one node */
#define TRACE_QUEUE_EVENTS 4096             /* events one trace holds for its reader */
#define TRACE_QUEUE_BYTES (4 * 1024 * 1024) /* bytes of frames one trace holds for its reader */

/* How many traces run; the hooks' guard. */
extern atomic_uint trace_active;

/* True while some session is traced: the one check a hook makes when nobody traces. Sequentially
 * consistent (a plain load on x86), so that a session that ends as its trace starts is seen by one side:
 * trace_start publishes the trace, then reads the session's state; session_detach stores the state, then
 * runs the hook. */
static inline bool trace_on(void) { return atomic_load(&trace_active) != 0; }

enum trace_event_kind {
  TRACE_EV_IN,        /* bytes the session was fed (one WebSocket message or one POST's commands) */
  TRACE_EV_OUT,       /* a frame queued to the session */
  TRACE_EV_EMULATION, /* an emulation POST carried commands for it (status 0: routed by another node) */
  TRACE_EV_CLOSING,   /* it started closing with CODE */
  TRACE_EV_END,       /* its transport ended: the last event */
};

struct trace_event {
  enum trace_event_kind kind;
  uint64_t time_ms;    /* unix time, milliseconds */
  size_t size;         /* bytes on the wire (IN, OUT: the frame; EMULATION: the commands carried) */
  unsigned status;     /* EMULATION: the POST's HTTP status */
  uint32_t code;       /* CLOSING, END: the disconnect code (END: 3000 when the client went away, 0 when
                          the session was closing already as the trace began) */
  struct frame *frame; /* OUT: a reference; IN: a copy of the bytes in a frame of its own */
};

/* What a trace shows of its session, fixed at its start. */
struct trace_info {
  enum codec_kind codec;
  char transport[16];
};

enum trace_error { TRACE_OK = 0, TRACE_EBUSY = 1, TRACE_EENDED = 2, TRACE_ENOMEM = 3 };

/* Starts tracing S (the trace takes its own reference): from now on its events are recorded, and
 * WAKE(ARG) is called when the queue stops being empty or the session ends. Stores the trace in *out
 * and what it traces in *info. Returns 0, -TRACE_EBUSY (TRACE_MAX traces run already), -TRACE_EENDED
 * (S has ended) or -TRACE_ENOMEM. */
int trace_start(struct session *s, void (*wake)(void *arg), void *arg, struct trace **out,
                struct trace_info *info);

/* Moves up to MAX queued events, oldest first, into OUT (the caller releases each with
 * trace_event_release). *DROPPED receives the events dropped since the last call. Returns how many. */
size_t trace_take(struct trace *t, struct trace_event *out, size_t max, uint64_t *dropped);

void trace_event_release(struct trace_event *ev);

/* Stops T and frees it with whatever it still holds. NULL is allowed. */
void trace_stop(struct trace *t);

/* --- The hooks (call them only when trace_on()). S is the session; any thread. --- */

void trace_in(struct session *s, const uint8_t *data, size_t len);
void trace_out(struct session *s, const struct frame *f);
void trace_emulation(struct session *s, size_t len, unsigned status);
void trace_closing(struct session *s, uint32_t code);
void trace_ended(struct session *s);

#endif
