/* broker_memory: the single-node engine. Publications go straight to the local hub; channel interest
 * needs no bookkeeping; there are no other nodes to route emulation requests to. */
#include <stdlib.h>

#include "broker.h"
#include "hub.h"
#include "server.h"

static int memory_publish(struct broker *b, const char *channel, Protocol__Publication *pub,
                          struct stream_position *pos) {
  if (pos) *pos = (struct stream_position){0};
  hub_publish(b->srv->hub, channel, pub);
  return BROKER_OK;
}

static int memory_interest(struct broker *b, const char *channel) {
  (void)b;
  (void)channel;
  return BROKER_OK;
}

static int memory_route_emulation(struct broker *b, const Protocol__EmulationRequest *req) {
  (void)b;
  (void)req;
  return -BROKER_EUNKNOWN_NODE;
}

static void memory_free(struct broker *b) { free(b); }

static const struct broker_ops memory_ops = {
    .name = "memory",
    .publish = memory_publish,
    .node_subscribe = memory_interest,
    .node_unsubscribe = memory_interest,
    .route_emulation = memory_route_emulation,
    .free = memory_free,
};

struct broker *broker_memory_new(struct server *srv) {
  struct broker *b = calloc(1, sizeof *b);
  if (b == NULL) return NULL;
  b->ops = &memory_ops;
  b->srv = srv;
  return b;
}
