/* redis_sentinel: asks Redis Sentinels where the master of a name is (SENTINEL get-master-addr-by-name),
 * for redis_conn's connects in Sentinel mode. The question is short and blocking (hiredis' synchronous
 * client, bounded by the connect timeout per Sentinel) and asked only when a connection is being made,
 * so a failover is followed by the next reconnect: the old master's connection breaks or answers
 * READONLY, and the next attempt asks again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "redis_conn.h"

/* Asks one Sentinel. Returns 0 with the master's address, or -1. */
static int ask(const struct redis_addr *s, const char *master, uint64_t timeout_ms, char *host, size_t hostlen,
               int *port) {
  struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
  redisContext *ctx = redisConnectWithTimeout(s->host, s->port, tv);
  int rc = -1;
  if (ctx == NULL || ctx->err) goto out;
  redisSetTimeout(ctx, tv);
  if (s->password[0]) {
    redisReply *auth = redisCommand(ctx, "AUTH %s", s->password);
    bool ok = auth && auth->type != REDIS_REPLY_ERROR;
    if (auth) freeReplyObject(auth);
    if (!ok) goto out;
  }
  redisReply *r = redisCommand(ctx, "SENTINEL get-master-addr-by-name %s", master);
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
      r->element[1]->type == REDIS_REPLY_STRING) {
    snprintf(host, hostlen, "%s", r->element[0]->str);
    *port = atoi(r->element[1]->str);
    rc = *port > 0 && *port < 65536 ? 0 : -1;
  }
  if (r) freeReplyObject(r);
out:
  if (ctx) redisFree(ctx);
  return rc;
}

int redis_sentinel_resolve(const struct redis_addr *sentinels, size_t n, const char *master, uint64_t timeout_ms,
                           char *host, size_t hostlen, int *port) {
  for (size_t i = 0; i < n; i++)
    if (ask(&sentinels[i], master, timeout_ms, host, hostlen, port) == 0) return 0;
  log_warn("redis: no Sentinel of %zu named the master of \"%s\"", n, master);
  return -1;
}
