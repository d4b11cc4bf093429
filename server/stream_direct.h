/* stream_direct: writing a chunked stream's frames straight to its socket from the core loop, while
 * libmicrohttpd keeps the connection suspended.
 *
 * Through MHD each delivery to a parked stream costs a resume, an epoll_ctl to put the socket back in
 * MHD's set, a read attempt, the send and an epoll_ctl on the next suspend. MHD only calls the content
 * reader once everything it was given is on the wire, so while the reader has the connection suspended
 * MHD's write buffer is empty and the socket is ours to write: a wake on the stream's own loop drains
 * the session's queue into one chunk ("<hex size>\r\n" frames "\r\n") and sends it, one syscall for
 * as many frames as are waiting. A send that does not finish keeps the rest here, watches EPOLLOUT and
 * arms the write deadline (the one MHD's connection timeout gives the reader path); nothing more is
 * drained meanwhile, so a slow client backs up into the session's queue as before. When the session
 * ends (or the socket fails, or the deadline passes) the connection is resumed and the content reader
 * finishes the response the usual way.
 *
 * Only HTTP/1.1 responses are chunked; others stay on the reader path. Wakes from other threads
 * (pings from the timer thread, closes from the admin or Redis threads) resume MHD instead.
 *
 * Threads: everything on the stream's core loop thread. */
#ifndef STREAM_DIRECT_H
#define STREAM_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"

struct request;
struct session;

struct stream_direct {
  struct session *session;
  struct request *req;
  struct evloop *loop; /* the stream's core loop */
  int fd;
  uint64_t write_timeout_ms;
  bool ready;    /* MHD is suspended in the content reader and nothing of ours is unsent */
  bool writing;  /* bytes of ours are unsent (pending), EPOLLOUT watched */
  bool broken;   /* a send failed or the deadline passed: the reader ends the response with an error */
  uint8_t *pending;
  size_t pending_len, pending_off;
  struct evloop_io io;
  struct evloop_timer deadline;
  struct stream_direct *next, **prev; /* the loop's list of writing streams (while writing) */
};

/* Prepares D for the stream of SESSION on REQ's connection (socket FD, -1: never write directly), on
 * LOOP, with WRITE_TIMEOUT_MS for a send that makes no progress. */
void stream_direct_init(struct stream_direct *d, struct session *session, struct request *req,
                        struct evloop *loop, int fd, uint64_t write_timeout_ms);

/* Whether a wake may write directly: the calling thread is the stream's loop and MHD is suspended in
 * the content reader (stream_direct_parked was called since the reader last ran). */
bool stream_direct_usable(const struct stream_direct *d);

/* The content reader suspended the connection with the queue empty: the next wake may write. */
void stream_direct_parked(struct stream_direct *d);

/* The content reader runs again (the connection was resumed): MHD writes until it next parks. */
void stream_direct_resumed(struct stream_direct *d);

/* Writes what the session has queued (stream_direct_usable must be true). Ends in one of: the queue is
 * empty (the session parked again), a send in progress (EPOLLOUT watched), or the connection resumed
 * (the session is closing and drained, or the socket failed). */
void stream_direct_flush(struct stream_direct *d);

/* Drops the watcher, the deadline and unsent bytes (the response is being freed). */
void stream_direct_release(struct stream_direct *d);

/* On a core loop thread: hands every stream of this loop with unsent bytes back to MHD, broken (at
 * shutdown, once the grace for flushing has passed: MHD cannot stop with a connection suspended). */
void stream_direct_abandon_all(void);

#endif
