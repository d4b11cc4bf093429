/* broker: picks the engine the configuration names (see broker.h) and builds it. */
#include "broker.h"

#include <string.h>

#include "config.h"
#include "history.h"
#include "log.h"
#include "server.h"

struct broker *broker_new(struct server *srv, const struct config *cfg) {
  if (strcmp(cfg->engine, "redis") != 0) return broker_memory_new(srv);
  const char *addresses[1] = {cfg->redis_address};
  struct broker_redis_options o = {
      .addresses = addresses,
      .naddresses = 1,
      .prefix = cfg->redis_prefix,
      .connect_timeout_ms = (uint64_t)cfg->redis_connect_timeout_ms,
      .io_timeout_ms = (uint64_t)cfg->redis_io_timeout_ms,
      .history_meta_ttl_ms = HISTORY_DEFAULT_META_TTL_MS,
      .presence_ttl_ms = (uint64_t)cfg->global_presence_ttl_ms,
  };
  char err[256];
  struct broker *b = broker_redis_new(srv, &o, err, sizeof err);
  if (b == NULL) log_error("%s", err);
  return b;
}
