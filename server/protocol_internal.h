/* protocol_internal: what the protocol's handler files (protocol.c: connection-level commands,
 * protocol_channel.c: channel commands) share with each other and with api.c: channel argument checks,
 * reply helpers, and the one subscribe path used by client subscribes, token subscriptions at connect
 * and the server API. Not for other modules. */
#ifndef PROTOCOL_INTERNAL_H
#define PROTOCOL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "client.pb-c.h"
#include "config.h"
#include "history.h"

struct session;

/* Sends {id, <result>} where RESULT_FIELD names which Reply member holds RESULT_PTR. */
#define SEND_RESULT(s, cmd_id, result_field, result_ptr) \
  do {                                                   \
    Protocol__Reply reply_ = PROTOCOL__REPLY__INIT;      \
    reply_.id = (cmd_id);                                \
    reply_.result_field = (result_ptr);                  \
    session_send_reply((s), &reply_);                    \
  } while (0)

/* Checks a channel argument: empty ⇒ disconnect 3501 (returned as is), too long ⇒ -107, unknown
 * namespace ⇒ -102. Returns 0 with *OPTS set, a disconnect code, or a negated error code. */
int64_t protocol_check_channel(const struct config *cfg, const char *channel,
                               const struct channel_options **opts);

/* Turns a protocol_check_channel-style result into a handler's return: sends the error reply for
 * negative values (and returns 0), returns disconnect codes as they are. */
uint32_t protocol_finish(struct session *s, uint32_t id, int64_t rc);

/* Finishes a command whose handler returned SESSION_COMMAND_PENDING (session.h) and so kept CMD: frees
 * CMD, closes S with CODE when it is a disconnect code (not 0), then runs the commands S received
 * meanwhile. Exactly once per pending command, after its reply was sent, from a thread that may run
 * commands (a worker: workers_post; not a Redis or HTTP client I/O thread), holding a reference to S. */
void protocol_command_finish(struct session *s, const Protocol__Command *cmd, uint32_t code);

/* Resumes S's held commands (session_command_done(S, 0)) on a worker, or here when there is none:
 * for a thread that must not run commands itself (an engine's I/O thread). Holds a reference to S
 * meanwhile. */
void protocol_resume_commands(struct session *s);

/* How a subscription is made and answered. */
enum subscribe_answer {
  SUBSCRIBE_REPLY,   /* reply {id, subscribe: result} to a client's subscribe command */
  SUBSCRIBE_PUSH,    /* push {channel, subscribe: {...}} (server API subscribe) */
  SUBSCRIBE_CONNECT, /* no frame: RESULT goes into the connect reply's subs map */
};

struct subscribe_plan {
  const char *channel;
  const struct channel_options *opts;
  enum subscribe_answer answer;
  uint32_t id;                                             /* command id for SUBSCRIBE_REPLY */
  bool want_positioned, want_recoverable, want_join_leave; /* what the client asked for */
  bool want_delta;         /* asked for fossil delta compression (SubscribeRequest.delta "fossil") */
  bool recover;                                            /* resubscribe with recovery from OFFSET/EPOCH */
  uint64_t offset;
  const char *epoch;
  bool reject_unrecovered; /* SubscribeRequest.flag bit 2: error 112 instead of recovered:false */
  bool history_access;     /* the client may read history (honours its positioned/recoverable) */
  bool presence_access;
  const struct auth_sub_options *token; /* subscription token or token-claim options, or NULL */
  int64_t expires_at;                   /* unix seconds the subscription token expires; 0 = never */
  bool server_refresh;                  /* the sub_refresh proxy extends EXPIRES_AT: the client is not told */
  Protocol__SubscribeResult *result;    /* SUBSCRIBE_CONNECT: filled (caller cleans with
                                           protocol_subscribe_result_cleanup) */
  unsigned extra_flags;                 /* SUB_* the caller grants besides what the options give */
  /* Map subscriptions (protocol_map.c): run under the channel lock instead of the stream position
   * logic, MAP_FILL(MAP_ARG, RES, HIST) fills RES, with publications and the position in HIST (owned by
   * the subscribe, which frees them), and returns 0 to join, a protocol error code, or
   * PROTOCOL_MAP_NOT_LIVE: it answered with a snapshot page itself, nothing is joined. */
  uint32_t (*map_fill)(void *arg, Protocol__SubscribeResult *res, struct history_result *hist);
  void *map_arg;
};

/* What map_fill returns for "answered, not live yet"; protocol_subscribe returns it as is. */
#define PROTOCOL_MAP_NOT_LIVE 0xFFFFFFFFu

/* SubscribeRequest.type / PublishRequest.type of a map subscription (Centrifugo 6.8). */
#define PROTOCOL_SUBSCRIPTION_TYPE_MAP 1

/* A client's subscribe to a map channel, allowed as for protocol_subscribe_command: one request of the
 * snapshot / catch-up / live exchange (protocol_map.c). Returns 0 or a disconnect code. */
uint32_t protocol_map_subscribe(struct session *s, const Protocol__Command *cmd, const struct config *cfg,
                                const struct channel_options *opts, struct auth_subscription_claims *granted,
                                bool server_refresh);

/* A client's publish with type 1 or to a map channel: sets or removes a key (protocol_map.c). Returns 0
 * or a disconnect code. */
uint32_t protocol_map_publish(struct session *s, const Protocol__Command *cmd, const struct config *cfg,
                              const struct channel_options *opts);

/* The map_publish options of a map namespace's changes (its mode, stream and key TTL). */
struct map_publish_options;
void protocol_map_options(const struct channel_options *opts, struct map_publish_options *out);

/* S's entries in the map presence channels of CHANNEL (its namespace's map_clients_ and
 * map_users_presence_channel_prefix): written when S subscribes, their expiry extended at each ping,
 * the map_clients one removed when the subscription ends (the map_users one expires); and with
 * map_remove_client_on_unsubscribe, the end removes the key of S's client id from CHANNEL itself. Not
 * under a channel lock. */
enum map_presence_op { MAP_PRESENCE_ADD, MAP_PRESENCE_REFRESH, MAP_PRESENCE_REMOVE };
void protocol_map_presence(struct session *s, const char *channel, enum map_presence_op op);

/* Forgets S's snapshot reading of CHANNEL (NULL: of every channel; at the session's end). */
void protocol_map_paging_drop(struct session *s, const char *channel);

/* How many snapshot readings S has in progress (they count against client_channel_limit). */
size_t protocol_map_pagings(struct session *s);

/* Subscribes S as PLAN says: positions or recovers under the channel's publish lock, joins the hub,
 * answers, adds presence and announces the join. Returns 0, a protocol error code (105, 106, 112, 100)
 * that the caller reports (nothing was subscribed), or a disconnect code (>= 3000). */
uint32_t protocol_subscribe(struct session *s, struct subscribe_plan *plan);

/* Frees what protocol_subscribe put into a SUBSCRIBE_CONNECT result (not the struct itself). */
void protocol_subscribe_result_cleanup(Protocol__SubscribeResult *res);

/* Channel-level handlers (protocol_channel.c). */
uint32_t protocol_handle_subscribe(struct session *s, const Protocol__Command *cmd);
uint32_t protocol_handle_unsubscribe(struct session *s, const Protocol__Command *cmd);
uint32_t protocol_handle_publish(struct session *s, const Protocol__Command *cmd);
uint32_t protocol_handle_presence(struct session *s, const Protocol__Command *cmd);
uint32_t protocol_handle_presence_stats(struct session *s, const Protocol__Command *cmd);
uint32_t protocol_handle_history(struct session *s, const Protocol__Command *cmd);
uint32_t protocol_handle_sub_refresh(struct session *s, const Protocol__Command *cmd);

/* The rest of a connect once the client is known: limits, identity, CLAIMS' server-side subscriptions
 * (CLAIMS may be NULL: anonymous; its contents are taken), the reply carrying DATA (may be NULL).
 * SERVER_REFRESH: the reply says nothing of an expiry (the client has no token to refresh with).
 * Returns 0 or a disconnect code, like a handler. */
uint32_t protocol_connect_with(struct session *s, const Protocol__Command *cmd,
                               struct auth_connection_claims *claims, const ProtobufCBinaryData *data,
                               bool server_refresh);

/* A client's subscribe once it is allowed: GRANTED (token claims or a subscribe proxy's answer; NULL =
 * namespace permissions) gives its options and expiry; SERVER_REFRESH: the sub_refresh proxy extends
 * that expiry. Returns 0 or a disconnect code. */
uint32_t protocol_subscribe_command(struct session *s, const Protocol__Command *cmd, const struct config *cfg,
                                    const struct channel_options *opts, struct auth_subscription_claims *granted,
                                    bool server_refresh);

/* A client's publish once it is allowed, publishing DATA (the client's or a publish proxy's), without
 * history when SKIP_HISTORY. Returns 0 or a disconnect code. */
uint32_t protocol_publish_command(struct session *s, const Protocol__Command *cmd,
                                  const struct channel_options *opts, const ProtobufCBinaryData *data,
                                  bool skip_history);

/* What a credential check returns when the token's key is not known yet (auth AUTH_NEED_KEYS on a
 * first run): the handler then returns protocol_await_keys(s, cmd, itself). */
#define PROTOCOL_AWAIT_KEYS INT64_MAX

/* Waits for a JWKS refresh without blocking the caller's thread and then runs HANDLE(S, CMD) again
 * (protocol_keys.c), with protocol_keys_retrying() true, and finishes CMD (protocol_command_finish).
 * Returns SESSION_COMMAND_PENDING: the handler returns that, and CMD is the wait's from now on. */
uint32_t protocol_await_keys(struct session *s, const Protocol__Command *cmd,
                             uint32_t (*handle)(struct session *s, const Protocol__Command *cmd));

/* True while a handler runs again after a JWKS refresh: an unknown kid is then an invalid token. */
bool protocol_keys_retrying(void);

/* A DONE for auth_keys_refresh that nobody waits on (refresh and sub_refresh only ask for the fetch). */
void protocol_keys_nothing(void *arg);

/* Fills INFO (borrowing from S) with the session's ClientInfo for presence and join/leave. */
void protocol_client_info(const struct session *s, Protocol__ClientInfo *info);

#endif
