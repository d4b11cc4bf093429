/* hangup: notices when the client of a suspended stream goes away. libmicrohttpd takes a suspended
 * connection out of its epoll set, so on its own it would only see the close at the next write (the
 * next ping, up to ping_interval later), leaving the socket in CLOSE-WAIT and the session alive. This
 * module keeps every stream socket in an epoll set of its own, waiting for EPOLLRDHUP/EPOLLHUP only,
 * and closes the session (code 3000, no push) when the peer hangs up: the close resumes the connection
 * and libmicrohttpd then ends it and runs the completion callback.
 *
 * It also keeps the streams' close deadline: a stream whose session has been closing for longer than
 * client_close_timeout (its last frames not out: the client reads too slowly or not at all) has its
 * socket shut down and reset, which makes libmicrohttpd's next write fail and end the stream. MHD
 * itself would wait for the connection timeout, which only counts time without any write.
 *
 * Threads: one thread of its own; watch/unwatch from any thread. Sessions are looked up by fd in a
 * table under one mutex, so the watcher never touches a session that was unwatched (unwatch must run
 * before the session is detached, while the fd is still the stream's). */
#ifndef HANGUP_H
#define HANGUP_H

struct hangup;
struct session;

/* Starts the watcher thread. Returns NULL when epoll or the thread cannot be created. */
struct hangup *hangup_start(void);

/* Stops the thread and frees H (sessions still watched are just forgotten). NULL is allowed. */
void hangup_stop(struct hangup *h);

/* Watches FD, the socket of S's stream. Takes no reference: the caller unwatches before S goes.
 * Returns 0 or -1. */
int hangup_watch(struct hangup *h, int fd, struct session *s);

/* Stops watching FD. Must be called before FD is closed. */
void hangup_unwatch(struct hangup *h, int fd);

#endif
