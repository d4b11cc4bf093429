/* ws: the WebSocket transport (PROTOCOL.md §2.6). ws_handle (an MHD thread) checks the handshake and
 * answers 101; from then on the connection belongs to the WebSocket loop, ONE thread of this module
 * that runs epoll over every upgraded socket: it reads client frames and feeds complete messages to the
 * session, and writes the session's queued frames (already WebSocket frames, see codec_ws.h). */
#ifndef WS_H
#define WS_H

struct server;
struct ws;

/* Starts the WebSocket loop thread. Returns NULL on failure. */
struct ws *ws_start(struct server *srv);

/* Stops the loop thread, then ends every connection still open (socket closed through MHD, session
 * detached) and frees WS. Must run before MHD_stop_daemon (the upgrade handles belong to the daemon),
 * after the sessions were asked to close. Safe against MHD threads and wakers still calling in: it
 * first waits for the upgrade and wake callbacks in progress, and later ones do nothing (an upgrade is
 * closed, a wake is dropped), so WS may be freed while the daemon still runs. NULL is ignored. */
void ws_stop(struct ws *ws);

#endif
