/* emulation: POST <emulation_handler_prefix> (PROTOCOL.md §2.3). The body names a node and a session
 * and carries commands for that session; they run here, on this request's thread, and their replies go
 * to the session's stream. The POST itself answers 204 once every command ran, 400 when the envelope
 * cannot be decoded, 404 when the node is unknown; an unknown session on our node is still 204, as in
 * Centrifugo (the client learns of it from its stream ending). A request for another node goes through
 * the broker to that node, and is answered 204 once the owner ran it, 500 when it did not say so in time. */
#include <string.h>

#include "broker.h"
#include "codec.h"
#include "handlers.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "session.h"

static enum MHD_Result respond_status(struct request *req, unsigned status) {
  return http_respond(req, status, NULL, NULL, 0);
}

int emulation_run_local(struct server *srv, const Protocol__EmulationRequest *er) {
  struct session *s = registry_find(srv->registry, er->session);
  if (s == NULL) {
    log_debug("emulation: unknown session");
    return 1;
  }
  session_feed(s, er->data.data, er->data.len);
  session_unref(s);
  return 0;
}

enum MHD_Result emulation_handle(struct request *req) {
  struct server *srv = req->srv;
  const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
  enum codec_kind kind = ct && strcmp(ct, "application/octet-stream") == 0 ? CODEC_PROTOBUF : CODEC_JSON;
  Protocol__EmulationRequest *er = NULL;
  if (codec_get(kind)->decode_emulation((const uint8_t *)req->body, req->body_len, &er) != 0)
    return respond_status(req, MHD_HTTP_BAD_REQUEST);
  unsigned status = MHD_HTTP_NO_CONTENT;
  if (strcmp(er->node, srv->node_id) == 0) {
    emulation_run_local(srv, er);
  } else {
    int rc = srv->broker->ops->route_emulation(srv->broker, er);
    if (rc == -BROKER_EUNKNOWN_NODE)
      status = MHD_HTTP_NOT_FOUND;
    else if (rc != 0)
      status = MHD_HTTP_INTERNAL_SERVER_ERROR; /* the owner did not confirm in time */
  }
  protobuf_c_message_free_unpacked(&er->base, NULL);
  return respond_status(req, status);
}
