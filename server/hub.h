/* hub: this node's channel index (channel name ⇒ its local subscribers) and local fan-out.
 * A publication is encoded at most once per codec in use, into a refcounted frame, and each
 * subscriber's queue gets a reference: N subscribers cost N increments and N queue appends. The
 * fan-out itself runs on the core loops (loops.h): each loop that has subscribers of the channel gets
 * the publication once and queues it to its own sessions, in the order the publications were handed
 * over; so deliveries are asynchronous: hub_publish returns before the frames are queued.
 *
 * Threads: any thread. Locks, in the order they may be taken: the index lock (a rwlock, write for
 * subscribe and unsubscribe), a channel's lock (its subscribers and their stream positions), a
 * session's lock. No encode, allocation of payload or wake syscall happens under the index lock; the
 * wakes a fan-out decides on a core loop run after the loop's batch. Callers must hold no session lock. */
#ifndef HUB_H
#define HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "frame.h"

struct hub;
struct hub_channel;
struct session;
struct server;

/* One session's membership of one channel; owned by the session's list, indexed by the hub. */
struct subscription {
  struct subscription *next; /* the session's list (session lock) */
  struct session *session;
  struct hub_channel *channel; /* hub lock */
  size_t index;                /* position in its loop's subscriber array of the channel (hub lock) */
  unsigned loop;               /* the core loop of its session (set once at subscribe) */
  unsigned flags;              /* SUB_* (set once at subscribe) */
  int64_t expires_at;          /* unix seconds its subscription token expires, 0 = never (session lock) */
  /* Positioned subscriptions: the stream position the client has reached (set by hub_set_position
   * under the broker's channel lock, then advanced by fan-out, in order per loop). The hub channel's
   * lock guards the three. Until it is set, publications handed out before are skipped. */
  uint64_t offset;
  char epoch[16];
  bool position_known;
  /* SUB_DELTA: the subscriber has the channel's previous publication (it got the last one fanned out
   * since it subscribed), so the next one may reach it as a delta against that (channel lock). */
  bool delta_ready;
  char channel_name[];
};

/* What a subscription does besides receiving publications. */
enum subscription_flag {
  SUB_PUSH_JOIN_LEAVE = 1 << 0, /* receives join and leave pushes of the channel */
  SUB_PRESENCE = 1 << 1,        /* has a presence entry to remove when it ends */
  SUB_EMIT_JOIN_LEAVE = 1 << 2, /* its end is announced with a leave push */
  SUB_POSITIONED = 1 << 3,
  SUB_RECOVERABLE = 1 << 4,
  SUB_SERVER_REFRESH = 1 << 5, /* its expiry is extended by the sub_refresh proxy, not by the client */
  SUB_DELTA = 1 << 6,          /* negotiated fossil delta compression (hub_publish) */
  SUB_MAP_PRESENCE = 1 << 7,   /* its subscriber has map keys to keep (protocol_map_presence) */
};

enum hub_error {
  HUB_OK = 0,
  HUB_EALREADY = 1,
  HUB_ELIMIT = 2,
  HUB_ENOMEM = 3,
  HUB_ENOTSUB = 4,
  HUB_ECLOSED = 5
};

/* Creates an empty hub for SRV (used to reach the broker when a channel appears or disappears). */
struct hub *hub_new(struct server *srv);

/* Who hears that this node gained the first or lost the last local subscriber of a channel (the broker,
 * which then subscribes the node to the channel, or stops): the hub calls nothing above itself but
 * this. Set once at start-up, before any subscription. The calls come under the hub's index lock, so
 * they must only queue work (no syscall, no call back into the hub). */
struct hub_channel_watch {
  void (*first)(void *arg, const char *channel);
  void (*last)(void *arg, const char *channel);
  void *arg;
};
void hub_set_channel_watch(struct hub *h, const struct hub_channel_watch *w);

/* Frees the hub; every session must have been detached first. */
void hub_free(struct hub *h);

/* Subscribes S to CHANNEL and, on success, queues REPLY (a reference; may be NULL) to S while still
 * holding the index lock, so that no publication on CHANNEL can reach S before its subscribe reply.
 * Fails with -HUB_EALREADY (already subscribed), -HUB_ELIMIT (S already has LIMIT subscriptions;
 * 0 = no limit), -HUB_ECLOSED (S is closing) or -HUB_ENOMEM. */
int hub_subscribe(struct hub *h, struct session *s, const char *channel, size_t limit, unsigned flags,
                  struct frame *reply);

/* Removes S from CHANNEL and returns the subscription that ended (the caller frees it), or NULL when S
 * was not subscribed. */
struct subscription *hub_unsubscribe(struct hub *h, struct session *s, const char *channel);

/* Removes every subscription of S (when it is detached) and returns them as a list linked by ->next
 * (the caller frees each). */
struct subscription *hub_unsubscribe_all(struct hub *h, struct session *s);

/* Delivers a join (JOIN true) or leave push of INFO on CHANNEL to the subscribers with
 * SUB_PUSH_JOIN_LEAVE. Encoded once per codec, like publications. */
size_t hub_publish_join_leave(struct hub *h, const char *channel, const Protocol__ClientInfo *info, int join);

/* Sets when S's subscription to CHANNEL expires (unix seconds, 0 = never). Returns 0 or -HUB_ENOTSUB. */
int hub_set_expiry(struct hub *h, struct session *s, const char *channel, int64_t expires_at);

/* True when S is subscribed to CHANNEL. */
int hub_is_subscribed(struct hub *h, struct session *s, const char *channel);

/* Delivers PUB on CHANNEL to every local subscriber as a publication push. PUB is borrowed (encoded
 * before this returns). Delta compression (PROTOCOL.md, Centrifugo's delta): PUB->delta true means the
 * publisher asked for it (the publish API's `delta`, the namespace's delta_publish); the pushes never
 * carry that flag except as below. Subscribers with SUB_DELTA get the data in the delta form of their
 * codec (JSON: a JSON string holding the JSON text), and, once they have the channel's previous
 * publication, a fossil delta against it (delta true) when PUB asked for one and the delta is smaller.
 * The delta is computed once per publication on this node, never per subscriber. EPOCH is the epoch of the stream PUB->offset belongs to (NULL: no position). A
 * positioned subscriber is given only the publication that follows the position it has reached: one
 * it has (recovered, or a repeat) is skipped, and a gap or another epoch means it lost state, so its
 * session is closed with 3010 "insufficient state" and the SDK reconnects and recovers. Callers
 * serialize the publications of one channel (the broker's channel lock); subscribers get them in that
 * order. Returns the number of subscribers it was handed to (queued to, when there are no core loops). */
size_t hub_publish(struct hub *h, const char *channel, const Protocol__Publication *pub, const char *epoch);

/* Records the stream position S's positioned subscription to CHANNEL has reached (at subscribe, under
 * the channel's publish lock). Returns 0 or -HUB_ENOTSUB. */
int hub_set_position(struct hub *h, struct session *s, const char *channel, uint64_t offset, const char *epoch);

/* Closes with 3010 every positioned subscriber of CHANNEL whose position is behind OFFSET or in
 * another epoch than EPOCH: publications it should have had were lost (a PUB/SUB outage). Under the
 * channel's publish lock, after every publication up to OFFSET was handed to the hub: the check runs
 * on each loop after them. Returns how many were closed when there are no core loops, else 0 (the
 * loops decide later). */
size_t hub_check_position(struct hub *h, const char *channel, uint64_t offset, const char *epoch);

/* Called after every local fan-out with the channel and publication (borrowed), outside the hub lock,
 * on the publishing thread. One observer per hub (the admin socket's `watch`); NULL removes it. */
typedef void (*hub_observer_fn)(const char *channel, const Protocol__Publication *pub, void *arg);
void hub_set_observer(struct hub *h, hub_observer_fn fn, void *arg);

/* Calls FN(channel, subscriber count, ARG) for every channel, under the read lock: FN must not call
 * into the hub or take a session lock. */
void hub_foreach_channel(struct hub *h, void (*fn)(const char *channel, size_t subscribers, void *arg),
                         void *arg);

/* hub_foreach_channel with each channel's count of publications fanned out on this node since the
 * channel got its first local subscriber (cumulative: `streamctl top` turns it into a rate). */
typedef void (*hub_channel_stats_fn)(const char *channel, size_t subscribers, uint64_t publications, void *arg);
void hub_foreach_channel_stats(struct hub *h, hub_channel_stats_fn fn, void *arg);

/* True when CHANNEL has a positioned (or recoverable) local subscriber. */
bool hub_has_positioned(struct hub *h, const char *channel);

/* Number of channels with at least one local subscriber, and of subscribers of CHANNEL. */
size_t hub_channel_count(struct hub *h);
size_t hub_subscriber_count(struct hub *h, const char *channel);

#endif
