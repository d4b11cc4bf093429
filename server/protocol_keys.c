/* protocol_keys: a connect or subscribe whose token names a JWKS key id the cache does not hold yet
 * waits for the cache's refresh without holding the thread it runs on (a core loop, the WebSocket
 * thread, a worker): the handler asks for a refresh and returns SESSION_COMMAND_PENDING, keeping the
 * command; once the fetch has ended, the same handler runs again with the same command, on a worker
 * (workers.h) when the server has workers, else on the JWKS thread itself (never a core loop or an MHD
 * thread), and the command is finished with protocol_command_finish. During that second run
 * protocol_keys_retrying() is true, so the handler treats a kid that is still unknown as an invalid
 * token instead of waiting again. Meanwhile the session holds the client's later commands back
 * (session_feed.c), so nothing overtakes the waiting command.
 *
 * Threads: protocol_await_keys on the thread running the command; the rest on the refresh's thread or
 * a worker. */
#include <stdlib.h>

#include "auth.h"
#include "codes.h"
#include "config.h"
#include "log.h"
#include "protocol_internal.h"
#include "server.h"
#include "session.h"
#include "workers.h"

static _Thread_local bool retrying;

/* A command waiting for keys: the session (a reference of ours), the command (ours since the handler
 * returned SESSION_COMMAND_PENDING) and the handler to run again. */
struct key_wait {
  struct session *s;
  const Protocol__Command *cmd;
  uint32_t (*handle)(struct session *s, const Protocol__Command *cmd);
};

bool protocol_keys_retrying(void) { return retrying; }

void protocol_keys_nothing(void *arg) { (void)arg; }

/* The second run of the handler, then the end of the command. */
static void rerun(void *arg) {
  struct key_wait w = *(struct key_wait *)arg;
  free(arg);
  enum session_state st = session_state(w.s);
  uint32_t code = 0;
  bool stopping = atomic_load(&w.s->srv->shutting_down); /* every session is being closed with 3001 */
  if (!stopping && (st == SESSION_CONNECTING || st == SESSION_CONNECTED)) {
    retrying = true;
    code = w.handle(w.s, w.cmd);
    retrying = false;
  }
  if (code != SESSION_COMMAND_PENDING) protocol_command_finish(w.s, w.cmd, code);
  session_unref(w.s);
}

/* DONE of the refresh: on the JWKS thread. */
static void keys_ready(void *arg) {
  struct key_wait *w = arg;
  struct server *srv = w->s->srv;
  /* at shutdown the workers may be gone already (the running configuration, and with it the JWKS
   * cache that calls this, is freed after them) */
  if (atomic_load(&srv->shutting_down) || srv->workers == NULL || workers_post(srv->workers, rerun, w) != 0)
    rerun(w);
}

uint32_t protocol_await_keys(struct session *s, const Protocol__Command *cmd,
                             uint32_t (*handle)(struct session *s, const Protocol__Command *cmd)) {
  struct key_wait *w = malloc(sizeof *w);
  if (w == NULL) return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  *w = (struct key_wait){session_ref(s), cmd, handle};
  const struct config *cfg = server_config_get(s->srv);
  int rc = auth_keys_refresh(cfg->auth, keys_ready, w);
  config_unref(cfg);
  if (rc != 0) { /* no JWKS any more (a reload) or too many waiting: decide now, without waiting */
    log_warn("client %s: cannot wait for a JWKS refresh; the token is judged on the keys at hand",
             s->client_id);
    keys_ready(w);
  }
  return SESSION_COMMAND_PENDING;
}
