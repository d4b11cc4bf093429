/* uni: the connect of the unidirectional transports and the HTTP handlers of uni_http_stream and
 * uni_sse (see uni.h). The request's ConnectRequest is decoded before the response starts, so a
 * malformed one is a 400 and never a stream; a decoded one runs as a connect command (id 1) through
 * the protocol layer's dispatch, like every other transport's connect. */
#include "uni.h"

#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "codec_json.h"
#include "codes.h"
#include "handlers.h"
#include "log.h"
#include "server.h"
#include "session.h"

int uni_parse_connect(const char *text, size_t len, Protocol__ConnectRequest **out) {
  ProtobufCMessage *msg = NULL;
  if (len == 0 || codec_json_message_from_text(&protocol__connect_request__descriptor, text, len, &msg) != 0)
    return -1;
  *out = (Protocol__ConnectRequest *)msg;
  return 0;
}

/* A heap Command {id 1, connect: REQ} of its own (packed and unpacked), or NULL when out of memory. */
static Protocol__Command *connect_command(const Protocol__ConnectRequest *req) {
  Protocol__Command tmp = PROTOCOL__COMMAND__INIT;
  tmp.id = 1;
  tmp.connect = (Protocol__ConnectRequest *)req; /* read only */
  size_t len = protocol__command__get_packed_size(&tmp);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) return NULL;
  protocol__command__pack(&tmp, buf);
  Protocol__Command *cmd = protocol__command__unpack(NULL, len, buf);
  free(buf);
  return cmd;
}

void uni_connect(struct session *s, const Protocol__ConnectRequest *req) {
  /* The command is a message of its own: a connect that finishes later (on a worker when the engine's
   * calls wait, or after the connect proxy) keeps it (SESSION_COMMAND_PENDING) and frees it with
   * protocol_command_finish; meanwhile the stale timer bounds it, as for every transport. */
  Protocol__Command *cmd = connect_command(req);
  uint32_t code = cmd && s->srv->session_hooks ? s->srv->session_hooks->dispatch(s, cmd) : DISCONNECT_SERVER_ERROR;
  if (code == SESSION_COMMAND_PENDING) return;
  if (cmd) protobuf_c_message_free_unpacked(&cmd->base, NULL);
  if (code != 0) {
    log_info("client %s (%s): connect refused, disconnect %u", s->client_id,
             s->transport ? s->transport->name : "uni", code);
    session_close(s, code);
  }
}

/* stream_open's connect callback: ARG is the decoded ConnectRequest. */
static void connect_stream(struct session *s, void *arg) { uni_connect(s, arg); }

int uni_connect_text(struct session *s, const uint8_t *json, size_t len) {
  Protocol__ConnectRequest *req = NULL;
  if (uni_parse_connect((const char *)json, len, &req) != 0) return -1;
  uni_connect(s, req);
  protobuf_c_message_free_unpacked(&req->base, NULL);
  return 0;
}

/* 400: the connect request is not a ConnectRequest JSON object. */
static enum MHD_Result malformed(struct request *req, const char *transport) {
  char remote[64];
  http_remote_address(req, remote, sizeof remote);
  log_info("%s: malformed connect request from %s: 400", transport, remote);
  static const char text[] = "malformed connect request\n";
  return http_respond(req, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8", text, sizeof text - 1);
}

/* Opens a uni stream of KIND whose ConnectRequest is TEXT[0..LEN). */
static enum MHD_Result open_uni(struct request *req, enum codec_kind kind, const char *name, const char *text,
                                size_t len) {
  Protocol__ConnectRequest *cr = NULL;
  if (uni_parse_connect(text, len, &cr) != 0) return malformed(req, name);
  enum MHD_Result ret = stream_open(req, kind, connect_stream, cr);
  protobuf_c_message_free_unpacked(&cr->base, NULL);
  return ret;
}

enum MHD_Result uni_http_stream_handle(struct request *req) {
  return open_uni(req, CODEC_UNI_HTTP_STREAM, "uni_http_stream", req->body, req->body_len);
}

enum MHD_Result uni_sse_handle(struct request *req) {
  if (strcmp(req->method, MHD_HTTP_METHOD_POST) == 0)
    return open_uni(req, CODEC_UNI_SSE, "uni_sse", req->body, req->body_len);
  /* EventSource cannot send a body: the ConnectRequest is the URL-encoded cf_connect parameter, and
   * without one the connect is an empty request (anonymous, as Centrifugo) */
  const char *text = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "cf_connect");
  if (text == NULL || *text == '\0') text = "{}";
  return open_uni(req, CODEC_UNI_SSE, "uni_sse", text, strlen(text));
}
