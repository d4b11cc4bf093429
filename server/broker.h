/* broker: how publications and emulation requests cross nodes. The memory engine (broker_memory.c)
 * serves one node: publishing is local fan-out through the hub and an emulation request for another node
 * has nowhere to go. A Redis engine implements the same operations across nodes (PUBLISH to a channel
 * per stream channel, a control channel per node for routed emulation requests).
 *
 * Threads: every operation may be called from any thread. */
#ifndef BROKER_H
#define BROKER_H

#include <stdint.h>

#include "client.pb-c.h"

struct server;
struct broker;

enum broker_error { BROKER_OK = 0, BROKER_EUNKNOWN_NODE = 1, BROKER_EUNAVAILABLE = 2 };

/* Where a publication landed in its channel's history stream: offset 0 and an empty epoch when the
 * channel keeps no history. */
struct stream_position {
  uint64_t offset;
  char epoch[16];
};

struct broker_ops {
  const char *name;
  /* Delivers PUB (borrowed; the broker may set its offset/epoch) on CHANNEL to its subscribers on
   * every node and stores it in the channel's history when the channel keeps one; *POS (may be NULL)
   * receives its position. Returns 0 or -BROKER_E*. */
  int (*publish)(struct broker *b, const char *channel, Protocol__Publication *pub, struct stream_position *pos);
  /* This node has its first local subscriber of CHANNEL / lost its last one. */
  int (*node_subscribe)(struct broker *b, const char *channel);
  int (*node_unsubscribe)(struct broker *b, const char *channel);
  /* Hands REQ to the node named in it and waits until it ran. Returns 0, or -BROKER_EUNKNOWN_NODE. */
  int (*route_emulation)(struct broker *b, const Protocol__EmulationRequest *req);
  void (*free)(struct broker *b);
};

struct broker {
  const struct broker_ops *ops;
  struct server *srv;
};

/* The single-node engine. Returns NULL when out of memory. */
struct broker *broker_memory_new(struct server *srv);

#endif
