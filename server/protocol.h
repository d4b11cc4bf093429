/* protocol: the client protocol's command handlers (PROTOCOL.md §4.3), reached through one dispatch
 * table keyed by which request field of the Command is set. Handlers see only the protobuf-c structs and
 * the session; replies go out through session_send_reply, whatever the session's codec. */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"

struct session;

/* Runs CMD (borrowed) for S. Returns 0, or a disconnect code (>= 3000) the caller closes S with.
 * Any thread; takes the hub and session locks as needed (never both in the wrong order). */
uint32_t protocol_dispatch(struct session *s, const Protocol__Command *cmd);

struct server;
struct subscription;
struct publish_options;
struct stream_position;

/* Publishes PUB (borrowed) on CHANNEL through the broker with the channel's options PO (history) and
 * counts it; *POS (may be NULL) receives its position. The one publish path of clients, the API and
 * the admin socket. Returns 0 or the broker's -BROKER_E* error. Any thread. */
int protocol_publish(struct server *srv, const char *channel, Protocol__Publication *pub,
                     const struct publish_options *po, struct stream_position *pos);

/* protocol_publish without waiting for the broker: DONE(ARG, rc, pos) is called once, as the broker's
 * publish_async says (inline on the memory engine; from the engine's I/O thread on Redis, so DONE must
 * be quick and must not call the broker), after the publication was counted when RC is 0. The client
 * publish command's path: no thread waits for Redis. Any thread but an engine's own. */
void protocol_publish_async(struct server *srv, const char *channel, Protocol__Publication *pub,
                            const struct publish_options *po,
                            void (*done)(void *arg, int rc, const struct stream_position *pos), void *arg);

/* The publish options (history size and TTL) of a channel with OPTS. */
struct channel_options;
void protocol_publish_options(const struct channel_options *opts, struct publish_options *out);

/* What ends with a subscription: its presence entry and, in join_leave channels, the leave push, done
 * under the channel's lock (broker with_channel_locked) so that they cannot overtake the join of the
 * same subscription. SUB has already left the hub (hub_unsubscribe_all of a closed session, which can
 * no longer subscribe); the caller frees it. Any thread, no lock held. */
void protocol_subscription_ended(struct session *s, struct subscription *sub);

/* Ends S's subscription to CHANNEL: leaves the hub, removes the presence entry and pushes the leave,
 * all under the channel's lock, the one per-channel order that subscribes also follow. Returns the
 * subscription that ended (the caller frees it) or NULL when S was not subscribed. Any thread, no lock
 * held. */
struct subscription *protocol_subscription_end(struct session *s, const char *channel);

/* Server-side unsubscribe: removes S from CHANNEL and sends it an unsubscribe push with code 2000
 * "server unsubscribe". Returns 0, or -1 when S was not subscribed. Any thread. */
int protocol_server_unsubscribe(struct session *s, const char *channel);

/* The same with another unsubscribe CODE (2501 subscription expired: the SDK resubscribes). */
int protocol_unsubscribe_with(struct session *s, const char *channel, uint32_t code, const char *reason);

/* The hooks sessions call (session.h struct session_hooks): protocol_dispatch; at a session's end its
 * subscriptions end (protocol_subscription_ended each) and it leaves the registry; with its pings,
 * protocol_expire_subscriptions. */
extern const struct session_hooks protocol_session_hooks;

/* Ends S's subscriptions whose token expired more than client_expired_close_delay ago (unsubscribe
 * push 2501, so the SDK resubscribes with a fresh token). Called from S's ping timer. */
void protocol_expire_subscriptions(struct session *s);

/* Sends S an async message push carrying DATA (raw bytes, JSON text for JSON clients). Returns 0 or -1. */
int protocol_send_message(struct session *s, const uint8_t *data, size_t len);

/* The `ttl` of a reply for an expiry at EXPIRES_AT (unix seconds, > 0) seen at NOW: the seconds left,
 * 0 when already past, clamped to UINT32_MAX for any later expiry (a token may say exp = 2^63-1), so
 * the wire's uint32 never wraps. Pure: any thread. */
uint32_t protocol_ttl(int64_t expires_at, int64_t now);

#endif
