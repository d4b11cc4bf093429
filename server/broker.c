/* broker: picks the engine the configuration names (see broker.h), builds it, and gives it what it
 * runs for other nodes (server API calls and emulation requests on this node's sessions, handed in by
 * start-up); and the adapter through which the hub tells the broker of the channels it gains and loses. */
#include "broker.h"

#include <string.h>

#include "config.h"
#include "history.h"
#include "hub.h"
#include "log.h"
#include "server.h"

static struct broker *build(struct server *srv, const struct config *cfg) {
  if (strcmp(cfg->engine, "redis") != 0) return broker_memory_new(srv);
  struct broker_redis_options o = {
      .addresses = (const char *const *)cfg->redis_address,
      .naddresses = cfg->redis_address_count,
      .sentinels = (const char *const *)cfg->redis_sentinel_address,
      .nsentinels = cfg->redis_sentinel_address_count,
      .sentinel_master = cfg->redis_sentinel_master_name,
      .sentinel_password = cfg->redis_sentinel_password,
      .user = cfg->redis_user,
      .password = cfg->redis_password,
      .db = (int)cfg->redis_db,
      .prefix = cfg->redis_prefix,
      .connect_timeout_ms = (uint64_t)cfg->redis_connect_timeout_ms,
      .io_timeout_ms = (uint64_t)cfg->redis_io_timeout_ms,
      .presence_ttl_ms = (uint64_t)cfg->global_presence_ttl_ms,
  };
  char err[256];
  struct broker *b = broker_redis_new(srv, &o, err, sizeof err);
  if (b == NULL) log_error("%s", err);
  return b;
}

struct broker *broker_new(struct server *srv, const struct config *cfg, const struct broker_local *local) {
  struct broker *b = build(srv, cfg);
  if (b) b->local = *local;
  return b;
}

static void channel_first(void *arg, const char *channel) {
  struct broker *b = arg;
  b->ops->node_subscribe(b, channel);
}

static void channel_last(void *arg, const char *channel) {
  struct broker *b = arg;
  b->ops->node_unsubscribe(b, channel);
}

void broker_watch_hub(struct broker *b, struct hub *h) {
  hub_set_channel_watch(h, &(struct hub_channel_watch){.first = channel_first, .last = channel_last, .arg = b});
}
