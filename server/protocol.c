/* protocol: command dispatch and handlers. The dispatch table lists, in the order PROTOCOL.md §4.3
 * gives, where each request field sits in a Command and which handler serves it; the first set field
 * wins. A Command with no request field and id 0 is a pong. Handlers reply through the session (an error
 * reply for request-level failures) or return a disconnect code for protocol violations. */
#include "protocol.h"

#include <stddef.h>
#include <string.h>

#include "broker.h"
#include "channel.h"
#include "codes.h"
#include "hub.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "sd_version.h"

typedef uint32_t (*command_handler)(struct session *s, const Protocol__Command *cmd);

struct command_route {
  size_t offset; /* of the request pointer inside Protocol__Command */
  command_handler handle;
};

/* Sends {id, <result>} where RESULT_FIELD names which Reply member holds RESULT. */
#define SEND_RESULT(s, cmd_id, result_field, result_ptr)   \
  do {                                                     \
    Protocol__Reply reply_ = PROTOCOL__REPLY__INIT;        \
    reply_.id = (cmd_id);                                  \
    reply_.result_field = (result_ptr);                    \
    session_send_reply((s), &reply_);                      \
  } while (0)

static uint32_t handle_connect(struct session *s, const Protocol__Command *cmd) {
  const struct config *cfg = s->srv->cfg;
  const Protocol__ConnectRequest *req = cmd->connect;
  if (session_state(s) != SESSION_CONNECTING) return DISCONNECT_BAD_REQUEST;
  if (req->token[0] != '\0' && !cfg->client_insecure) {
    /* Token verification arrives with JWT support; until then no token can be valid. */
    return DISCONNECT_INVALID_TOKEN;
  }
  if (req->token[0] == '\0' && !cfg->client_insecure && !cfg->allow_anonymous_connect_without_token)
    return DISCONNECT_BAD_REQUEST;
  Protocol__ConnectResult res = PROTOCOL__CONNECT_RESULT__INIT;
  res.client = s->client_id;
  res.version = SD_VERSION;
  res.ping = (uint32_t)(cfg->ping_interval_ms / 1000);
  res.pong = cfg->pong_timeout_ms > 0;
  res.session = s->session_id;
  res.node = s->srv->node_id;
  session_set_connected(s);
  SEND_RESULT(s, cmd->id, connect, &res);
  log_debug("session %s client %s connected (name %s)", s->session_id, s->client_id, req->name);
  return 0;
}

/* Common checks of a channel argument: empty ⇒ disconnect, too long ⇒ 107, unknown namespace ⇒ 102.
 * Returns 0 with *opts set, a disconnect code, or (as a negative number) an error code to reply with. */
static int64_t check_channel(struct session *s, const char *channel, const struct channel_options **opts) {
  if (channel[0] == '\0') return DISCONNECT_BAD_REQUEST;
  if (strlen(channel) > CHANNEL_MAX_LENGTH) return -ERROR_BAD_REQUEST;
  *opts = channel_options_for(s->srv->cfg, channel);
  return *opts ? 0 : -ERROR_UNKNOWN_CHANNEL;
}

/* Turns a check_channel result into the handler's return, sending the error reply if there is one. */
static uint32_t finish_check(struct session *s, uint32_t id, int64_t rc) {
  if (rc < 0) {
    session_send_error(s, id, (uint32_t)-rc);
    return 0;
  }
  return (uint32_t)rc;
}

static uint32_t handle_subscribe(struct session *s, const Protocol__Command *cmd) {
  const char *channel = cmd->subscribe->channel;
  const struct channel_options *opts = NULL;
  int64_t rc = check_channel(s, channel, &opts);
  if (rc != 0) return finish_check(s, cmd->id, rc);
  if (channel_is_private(channel) || !channel_can_subscribe(s->srv->cfg, opts, s->user))
    return finish_check(s, cmd->id, -ERROR_PERMISSION_DENIED);

  Protocol__SubscribeResult res = PROTOCOL__SUBSCRIBE_RESULT__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  reply.id = cmd->id;
  reply.subscribe = &res;
  struct frame *f = NULL;
  if (s->codec->encode_reply(&reply, &f) != 0) return DISCONNECT_SERVER_ERROR;
  int hrc = hub_subscribe(s->srv->hub, s, channel, (size_t)s->srv->cfg->client_channel_limit, f);
  frame_unref(f);
  if (hrc == -HUB_EALREADY) session_send_error(s, cmd->id, ERROR_ALREADY_SUBSCRIBED);
  else if (hrc == -HUB_ELIMIT) session_send_error(s, cmd->id, ERROR_LIMIT_EXCEEDED);
  else if (hrc == -HUB_ENOMEM) session_send_error(s, cmd->id, ERROR_INTERNAL);
  return 0;
}

static uint32_t handle_unsubscribe(struct session *s, const Protocol__Command *cmd) {
  const char *channel = cmd->unsubscribe->channel;
  if (channel[0] == '\0') return DISCONNECT_BAD_REQUEST;
  hub_unsubscribe(s->srv->hub, s, channel); /* succeeds even when not subscribed */
  Protocol__UnsubscribeResult res = PROTOCOL__UNSUBSCRIBE_RESULT__INIT;
  SEND_RESULT(s, cmd->id, unsubscribe, &res);
  return 0;
}

static uint32_t handle_publish(struct session *s, const Protocol__Command *cmd) {
  const Protocol__PublishRequest *req = cmd->publish;
  const struct channel_options *opts = NULL;
  int64_t rc = check_channel(s, req->channel, &opts);
  if (rc != 0) return finish_check(s, cmd->id, rc);
  if (req->data.len == 0) return finish_check(s, cmd->id, -ERROR_BAD_REQUEST);
  bool subscribed = hub_is_subscribed(s->srv->hub, s, req->channel);
  if (!channel_can_publish(s->srv->cfg, opts, s->user, subscribed))
    return finish_check(s, cmd->id, -ERROR_PERMISSION_DENIED);

  Protocol__ClientInfo info = PROTOCOL__CLIENT_INFO__INIT;
  info.user = s->user;
  info.client = s->client_id;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  pub.data = req->data;
  pub.info = &info;
  struct broker *b = s->srv->broker;
  if (b->ops->publish(b, req->channel, &pub, NULL) != 0) return finish_check(s, cmd->id, -ERROR_INTERNAL);
  atomic_fetch_add_explicit(&s->srv->stats.publications, 1, memory_order_relaxed);
  Protocol__PublishResult res = PROTOCOL__PUBLISH_RESULT__INIT;
  SEND_RESULT(s, cmd->id, publish, &res);
  return 0;
}

/* presence, presence_stats and history: the channel is checked, then the feature is not available
 * in this build (they arrive with the history/presence engine). */
static uint32_t handle_not_yet_channel(struct session *s, const Protocol__Command *cmd) {
  const char *channel = cmd->presence         ? cmd->presence->channel
                        : cmd->presence_stats ? cmd->presence_stats->channel
                                              : cmd->history->channel;
  const struct channel_options *opts = NULL;
  int64_t rc = check_channel(s, channel, &opts);
  if (rc != 0) return finish_check(s, cmd->id, rc);
  return finish_check(s, cmd->id, -ERROR_NOT_AVAILABLE);
}

static uint32_t handle_rpc(struct session *s, const Protocol__Command *cmd) {
  /* No RPC handler is configured in streamd: every method is unknown (Centrifugo answers the same). */
  session_send_error(s, cmd->id, ERROR_METHOD_NOT_FOUND);
  return 0;
}

static uint32_t handle_send(struct session *s, const Protocol__Command *cmd) {
  (void)s;
  (void)cmd;
  return DISCONNECT_NOT_AVAILABLE; /* no async message handler, as in Centrifugo OSS */
}

static uint32_t handle_refresh(struct session *s, const Protocol__Command *cmd) {
  if (cmd->refresh->token[0] == '\0') return DISCONNECT_BAD_REQUEST;
  session_send_error(s, cmd->id, ERROR_NOT_AVAILABLE); /* connections never expire in this build */
  return 0;
}

static uint32_t handle_sub_refresh(struct session *s, const Protocol__Command *cmd) {
  if (cmd->sub_refresh->channel[0] == '\0') return DISCONNECT_BAD_REQUEST;
  session_send_error(s, cmd->id, ERROR_NOT_AVAILABLE);
  return 0;
}

static const struct command_route routes[] = {
    {offsetof(Protocol__Command, connect), handle_connect},
    {offsetof(Protocol__Command, subscribe), handle_subscribe},
    {offsetof(Protocol__Command, unsubscribe), handle_unsubscribe},
    {offsetof(Protocol__Command, publish), handle_publish},
    {offsetof(Protocol__Command, presence), handle_not_yet_channel},
    {offsetof(Protocol__Command, presence_stats), handle_not_yet_channel},
    {offsetof(Protocol__Command, history), handle_not_yet_channel},
    {offsetof(Protocol__Command, rpc), handle_rpc},
    {offsetof(Protocol__Command, send), handle_send},
    {offsetof(Protocol__Command, refresh), handle_refresh},
    {offsetof(Protocol__Command, sub_refresh), handle_sub_refresh},
};

static const struct command_route *find_route(const Protocol__Command *cmd) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    if (*(void *const *)((const char *)cmd + routes[i].offset) != NULL) return &routes[i];
  return NULL;
}

uint32_t protocol_dispatch(struct session *s, const Protocol__Command *cmd) {
  const struct command_route *route = find_route(cmd);
  enum session_state state = session_state(s);
  if (state == SESSION_CONNECTING && (route == NULL || route->handle != handle_connect))
    return DISCONNECT_BAD_REQUEST; /* unexpected frame before connect */
  if (s->unusable) return DISCONNECT_BAD_REQUEST;
  if (route == NULL) {
    if (cmd->id != 0) return DISCONNECT_BAD_REQUEST; /* no request field (a v1 ping among them) */
    return session_pong(s) == 0 ? 0 : DISCONNECT_BAD_REQUEST;
  }
  if (cmd->id == 0 && route->handle != handle_send) return DISCONNECT_BAD_REQUEST;
  return route->handle(s, cmd);
}

int protocol_server_unsubscribe(struct session *s, const char *channel) {
  if (hub_unsubscribe(s->srv->hub, s, channel) != 0) return -1;
  Protocol__Unsubscribe u = PROTOCOL__UNSUBSCRIBE__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  u.code = UNSUBSCRIBE_SERVER;
  u.reason = "server unsubscribe";
  push.channel = (char *)channel;
  push.unsubscribe = &u;
  reply.push = &push;
  return session_send_reply(s, &reply);
}

int protocol_send_message(struct session *s, const uint8_t *data, size_t len) {
  Protocol__Message m = PROTOCOL__MESSAGE__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  m.data.data = (uint8_t *)data;
  m.data.len = len;
  push.message = &m;
  reply.push = &push;
  return session_send_reply(s, &reply);
}
