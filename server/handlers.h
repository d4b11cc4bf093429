/* handlers: the entry points the route table in http.c dispatches to, one per endpoint family. Each
 * is called on the MHD thread once the whole request body is in REQ (within its limit) and must queue
 * a response. */
#ifndef HANDLERS_H
#define HANDLERS_H

#include "client.pb-c.h"
#include "codec.h"
#include "http.h"

struct session;

/* POST <http_stream_handler_prefix>: connect and stream replies (stream.c). */
enum MHD_Result stream_handle(struct request *req);

/* GET <sse_handler_prefix>?cf_connect=<command> (or POST with the command as body): SSE (stream.c). */
enum MHD_Result sse_handle(struct request *req);

/* Opens a stream response of wire format KIND (a stream kind: JSON, protobuf, SSE, uni_http_stream,
 * uni_sse) for REQ: a new session attached over the kind's transport, with CONNECT(session, ARG) run on it
 * before the response is queued (it must connect or close the session). For the uni transports (uni.c). */
enum MHD_Result stream_open(struct request *req, enum codec_kind kind,
                            void (*connect)(struct session *s, void *arg), void *arg);

/* POST <uni_http_stream_handler_prefix>: a ConnectRequest body, then bare pushes (uni.c). */
enum MHD_Result uni_http_stream_handle(struct request *req);

/* GET <uni_sse_handler_prefix>?cf_connect=<ConnectRequest> (or POST with it as body) (uni.c). */
enum MHD_Result uni_sse_handle(struct request *req);

/* GET <uni_websocket_handler_prefix>: the handshake of a unidirectional WebSocket (ws.c). */
enum MHD_Result uni_ws_handle(struct request *req);

/* At shutdown, once the grace for flushing has passed (any thread): every stream that is still writing
 * bytes its client does not take is ended on its loop, so that MHD can stop (stream.c). */
void stream_abandon_writers(struct server *srv);

/* GET <websocket_handler_prefix>: the WebSocket handshake (ws.c). */
enum MHD_Result ws_handle(struct request *req);

/* POST <emulation_handler_prefix>: commands for a stream's session (emulation.c). */
enum MHD_Result emulation_handle(struct request *req);

/* Runs ER's commands (copied) in its session if it lives on this node, on the session's own loop, and
 * calls RAN(ARG, 0) once they have all run; RAN(ARG, 1) at once when no such session is here. The
 * broker runs it for requests routed from other nodes (struct broker_local). Any thread but an
 * engine's I/O thread. */
void emulation_run_local(struct server *srv, const Protocol__EmulationRequest *er, void (*ran)(void *arg, int rc),
                         void *arg);

/* POST <api_handler_prefix>[/<method>]: the server API (api.c). */
enum MHD_Result api_handle(struct request *req);

/* GET /health when `health` is on: 200 {} (ops.c). */
enum MHD_Result health_handle(struct request *req);

/* GET /metrics when `prometheus` is on: Prometheus text exposition format (ops.c). */
enum MHD_Result metrics_handle(struct request *req);

#endif
