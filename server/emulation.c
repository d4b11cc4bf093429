/* emulation: POST <emulation_handler_prefix> (PROTOCOL.md §2.3). The body names a node and a session
 * and carries commands for that session; they run here, on this request's thread, and their replies go
 * to the session's stream. The POST itself answers 204 once every command ran, 400 when the envelope
 * cannot be decoded, 404 when the node is unknown; an unknown session on our node is still 204, as in
 * Centrifugo (the client learns of it from its stream ending), and so is one whose transport takes no
 * emulation (WebSocket, the unidirectional ones, whose clients learn their session id). A request for another node goes through
 * the broker to that node while the POST is suspended (no thread waits), and is answered 204 once the owner
 * ran it, 404 when the node is unknown or gone, 500 when it did not say so in time, 503 during shutdown.
 *
 * A session's commands run on its own core loop (the one that owns its stream, loops.h): a POST that
 * arrived on another loop is suspended and its commands handed to the owner's loop, which resumes the
 * POST once they ran. So a session's commands, its fan-out and its stream are one thread's work, and a
 * client's own publication reaches its own subscription before the publish reply, as with one thread.
 * A command that waits for Redis runs on a worker instead (protocol.c); the POST then stays suspended
 * until the session's commands have all run (session_after_commands), so its 204 still follows them. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "codec.h"
#include "handlers.h"
#include "log.h"
#include "loops.h"
#include "registry.h"
#include "server.h"
#include "session.h"
#include "trace.h"

static enum MHD_Result respond_status(struct request *req, unsigned status) {
  return http_respond(req, status, NULL, NULL, 0);
}

/* The session ID with a reference, when it is one whose commands come through /emulation (a
 * unidirectional client learns its session id but takes no commands; WebSocket sessions read their own);
 * else NULL. */
static struct session *emulated_session(struct server *srv, const char *id) {
  struct session *s = registry_find(srv->registry, id);
  if (s == NULL) return NULL;
  pthread_mutex_lock(&s->lock);
  bool emulated = s->transport && s->transport->emulation;
  pthread_mutex_unlock(&s->lock);
  if (emulated) return s;
  session_unref(s);
  return NULL;
}

/* A POST for a session on another node, suspended until the broker says how it went. */
struct routed_post {
  struct request *req;
  atomic_uint status; /* the answer, set before the connection is resumed */
};

static unsigned routed_status(int rc) {
  return rc == 0                      ? MHD_HTTP_NO_CONTENT
         : rc == -BROKER_EUNKNOWN_NODE ? MHD_HTTP_NOT_FOUND
                                       : MHD_HTTP_INTERNAL_SERVER_ERROR; /* the owner did not confirm */
}

/* The broker's word (any thread): answer the POST when MHD calls the handler again. */
static void routed_done(void *arg, int rc) {
  struct routed_post *rp = arg;
  atomic_store(&rp->status, routed_status(rc));
  http_resume(rp->req);
}

static void routed_cleanup(struct request *req) {
  free(req->handler_data);
  atomic_fetch_sub(&req->srv->routed_posts, 1);
}

/* Suspends REQ until routed_done is called for the returned state (owned by REQ), counted in
 * routed_posts so that shutdown waits for it. Returns NULL after answering REQ (out of memory: 500,
 * shutting down: 503); *RET is then the answer's result. EXTRA bytes are allocated after the state. */
static struct routed_post *suspend_post(struct request *req, size_t extra, enum MHD_Result *ret) {
  struct server *srv = req->srv;
  struct routed_post *rp = calloc(1, sizeof *rp + extra);
  if (rp == NULL) {
    *ret = respond_status(req, MHD_HTTP_INTERNAL_SERVER_ERROR);
    return NULL;
  }
  atomic_fetch_add(&srv->routed_posts, 1);
  rp->req = req;
  req->handler_data = rp;
  req->cleanup = routed_cleanup;
  if (atomic_load(&srv->shutting_down)) {
    *ret = respond_status(req, MHD_HTTP_SERVICE_UNAVAILABLE);
    return NULL;
  }
  MHD_suspend_connection(req->conn);
  *ret = MHD_YES;
  return rp;
}

/* Commands for a session of this node whose stream another loop owns. */
struct hop {
  struct routed_post post; /* first: freed as the POST's handler data */
  struct session *session; /* a reference */
  size_t len;
  uint8_t data[];
};

/* The commands a POST carried have all run (their replies are queued): it answers 204. */
static void commands_ran(void *arg) {
  routed_done(arg, 0);
}

/* HOP belongs to the POST: once commands_ran resumed it (here, or on a worker as soon as
 * session_after_commands registered the callback), its loop may answer and free HOP at any moment, so
 * nothing of HOP is read after that point (the soak's ASan run caught hop->session read after free). */
static void hop_run(void *arg) {
  struct hop *hop = arg;
  struct session *s = hop->session; /* the 204 may end the request, and free HOP, at once */
  if (trace_on()) trace_emulation(s, hop->len, MHD_HTTP_NO_CONTENT);
  session_feed(s, hop->data, hop->len);
  if (!session_after_commands(s, commands_ran, &hop->post)) commands_ran(&hop->post);
  session_unref(s);
}

/* Commands routed from another node, for a session of this one: run on the session's loop; the
 * broker hears when they ran. */
struct routed_in {
  struct session *session; /* a reference */
  void (*ran)(void *arg, int rc);
  void *arg;
  size_t len;
  uint8_t data[];
};

static void routed_in_ran(void *arg) {
  struct routed_in *ri = arg;
  ri->ran(ri->arg, 0);
  free(ri);
}

static void routed_in_run(void *arg) {
  struct routed_in *ri = arg;
  struct session *s = ri->session;
  session_feed(s, ri->data, ri->len);
  if (!session_after_commands(s, routed_in_ran, ri)) routed_in_ran(ri);
  session_unref(s);
}

void emulation_run_local(struct server *srv, const Protocol__EmulationRequest *er, void (*ran)(void *arg, int rc),
                         void *arg) {
  struct session *s = emulated_session(srv, er->session);
  if (s == NULL) {
    log_debug("emulation: unknown session");
    ran(arg, 1);
    return;
  }
  if (trace_on()) trace_emulation(s, er->data.len, 0); /* routed: the status is the other node's */
  struct routed_in *ri = malloc(sizeof *ri + er->data.len);
  if (ri == NULL) { /* run here, now */
    session_feed(s, er->data.data, er->data.len);
    session_unref(s);
    ran(arg, 0);
    return;
  }
  *ri = (struct routed_in){s, ran, arg, er->data.len};
  if (er->data.len) memcpy(ri->data, er->data.data, er->data.len);
  if (srv->loops == NULL || loops_post(srv->loops, s->loop, routed_in_run, ri) != 0) routed_in_run(ri);
}

/* Runs ER's commands for S on S's loop: here when this is it, else handed over with REQ suspended. */
static enum MHD_Result run_on_owner(struct request *req, struct session *s, const Protocol__EmulationRequest *er) {
  struct server *srv = req->srv;
  int here = loops_current();
  enum MHD_Result ret;
  if (srv->loops == NULL || here < 0 || (unsigned)here == s->loop) {
    if (trace_on()) trace_emulation(s, er->data.len, MHD_HTTP_NO_CONTENT);
    if (session_feed(s, er->data.data, er->data.len)) {
      session_unref(s);
      return respond_status(req, MHD_HTTP_NO_CONTENT);
    }
    /* a command still runs (on a worker): the 204 waits for it, as it follows the replies */
    struct routed_post *rp = suspend_post(req, 0, &ret);
    if (rp && !session_after_commands(s, commands_ran, rp)) commands_ran(rp);
    session_unref(s);
    return ret;
  }
  struct hop *hop = (struct hop *)suspend_post(req, sizeof *hop - sizeof hop->post + er->data.len, &ret);
  if (hop == NULL) {
    session_unref(s);
    return ret;
  }
  hop->session = s;
  hop->len = er->data.len;
  if (er->data.len) memcpy(hop->data, er->data.data, er->data.len);
  if (loops_post(srv->loops, s->loop, hop_run, hop) != 0) hop_run(hop); /* the loop is stopping: run it here */
  return ret;
}

/* Hands ER to its node and suspends REQ meanwhile, so that no MHD thread waits for another node. The
 * count of suspended POSTs is raised before shutting_down is read, so shutdown (which sets it, then
 * waits for the count to reach 0 before stopping MHD) never misses one. */
static enum MHD_Result route(struct request *req, const Protocol__EmulationRequest *er) {
  struct server *srv = req->srv;
  enum MHD_Result ret;
  struct routed_post *rp = suspend_post(req, 0, &ret);
  if (rp == NULL) return ret;
  int rc = srv->broker->ops->route_emulation(srv->broker, er, routed_done, rp);
  if (rc != 0) routed_done(rp, rc); /* refused at once: answered on the handler's next call */
  return ret;
}

enum MHD_Result emulation_handle(struct request *req) {
  struct server *srv = req->srv;
  if (req->handler_data) { /* resumed: the routed POST's answer is in */
    struct routed_post *rp = req->handler_data;
    return respond_status(req, atomic_load(&rp->status));
  }
  const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
  enum codec_kind kind = ct && strcmp(ct, "application/octet-stream") == 0 ? CODEC_PROTOBUF : CODEC_JSON;
  Protocol__EmulationRequest *er = NULL;
  int rc = codec_get(kind)->decode_emulation((const uint8_t *)req->body, req->body_len, &er);
  if (rc != 0) /* out of memory is no fault of the request's */
    return respond_status(req, rc == -CODEC_ENOMEM ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_BAD_REQUEST);
  enum MHD_Result ret;
  if (strcmp(er->node, srv->node_id) == 0) {
    struct session *s = emulated_session(srv, er->session);
    if (s)
      ret = run_on_owner(req, s, er);
    else
      ret = respond_status(req, MHD_HTTP_NO_CONTENT); /* unknown session: 204, as Centrifugo */
  } else {
    ret = route(req, er);
  }
  protobuf_c_message_free_unpacked(&er->base, NULL);
  return ret;
}
