/* server_config: the running configuration and its reloads. A reader takes a reference under a read
 * lock (server_config_get); a reload publishes the new configuration, then takes the write lock once,
 * which waits out every reader that may have loaded the old pointer but not yet counted itself, and
 * only then drops the server's reference to the old one. So a configuration is freed exactly when its
 * last reader is done with it, however slow that reader is and however many reloads happen meanwhile
 * (it was a 10 s timer). The boot configuration is main's and is never freed before exit: it is the
 * source of the keys that only change on restart (srv->boot_cfg). */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "jwks.h"
#include "log.h"
#include "server.h"

void server_config_init(struct server *srv, const struct config *boot) {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  /* a reload waits for the readers in flight, not for a gap in a stream of them */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&srv->config_lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  atomic_store(&srv->config, boot);
  srv->boot_cfg = boot;
}

void server_config_cleanup(struct server *srv) {
  const struct config *last = atomic_exchange(&srv->config, srv->boot_cfg);
  if (last != srv->boot_cfg) config_unref(last);
  pthread_rwlock_destroy(&srv->config_lock);
}

const struct config *server_config_get(struct server *srv) {
  pthread_rwlock_rdlock(&srv->config_lock);
  const struct config *cfg = config_ref(atomic_load(&srv->config));
  pthread_rwlock_unlock(&srv->config_lock);
  return cfg;
}

/* Makes FRESH (shared; the server takes over the caller's reference) the running configuration. */
static void swap_in(struct server *srv, struct config *fresh) {
  const struct config *old = atomic_exchange(&srv->config, fresh);
  pthread_rwlock_wrlock(&srv->config_lock); /* every reader that saw OLD has counted itself by now */
  pthread_rwlock_unlock(&srv->config_lock);
  if (old != srv->boot_cfg) config_unref(old);
}

int server_config_attach_keys(struct config *cfg, char *err, size_t errlen) {
  struct auth_settings set = {.hmac_secret = cfg->token_hmac_secret_key,
                              .rsa_public_pem = cfg->token_rsa_public_key,
                              .ecdsa_public_pem = cfg->token_ecdsa_public_key,
                              .audience = cfg->token_audience,
                              .issuer = cfg->token_issuer};
  if (cfg->token_jwks_public_endpoint[0] != '\0' &&
      (set.jwks = jwks_new(cfg->token_jwks_public_endpoint, err, errlen)) == NULL)
    return -1;
  cfg->auth = auth_keys_new_with(&set, err, errlen);
  return cfg->auth ? 0 : -1;
}

/* Says at start and reload what an operator would otherwise find out from a 401 or a 421. */
void server_config_warn(const struct config *cfg) {
  if (cfg->api_key[0] == '\0' && !cfg->api_insecure)
    log_warn("api_key is empty: the server API refuses every request (set api_key)");
  bool wildcard = strcmp(cfg->address, "0.0.0.0") == 0 || strcmp(cfg->address, "::") == 0;
  if (wildcard && cfg->allowed_hosts_count == 0)
    log_warn(
        "address %s with allowed_hosts = []: only requests for localhost, 127.0.0.1 and [::1] are "
        "served (421 otherwise); list the names clients use in allowed_hosts",
        cfg->address);
}

int server_config_reload(struct server *srv, const char *path, long port, const char *log_level) {
  char err[512];
  enum log_level level;
  struct config *fresh = malloc(sizeof *fresh);
  if (fresh == NULL) return log_error("reload failed: out of memory"), -1;
  if (config_load(fresh, path, err, sizeof err) != 0) {
    log_error("reload failed, keeping the running configuration: %s", err);
    free(fresh);
    return -1;
  }
  const char *changed[64];
  const struct config *running = server_config_get(srv);
  size_t n = config_keep_static(fresh, running, changed, 64);
  config_unref(running);
  for (size_t i = 0; i < n; i++)
    log_warn("reload: '%s' changed; it takes effect after a restart", changed[i]);
  if (port >= 0) fresh->port = port;
  if (server_config_attach_keys(fresh, err, sizeof err) != 0) {
    log_error("reload failed, keeping the running configuration: %s", err);
    config_cleanup(fresh);
    free(fresh);
    return -1;
  }
  const char *lvl = log_level ? log_level : fresh->log_level;
  if (log_level_parse(lvl, &level) == 0) log_set_level(level);
  server_config_warn(fresh);
  swap_in(srv, config_share(fresh));
  log_info("configuration reloaded");
  return 0;
}
