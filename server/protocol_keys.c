/* protocol_keys: a connect or subscribe whose token names a JWKS key id the cache does not hold yet
 * waits for the cache's refresh without holding its core loop: the handler asks for a refresh, goes
 * pending, and is run again, with the same command, once the fetch has ended: on a worker thread
 * (workers.h) when the server has workers, else on the JWKS thread itself (never a core loop or an
 * MHD thread). During that second run protocol_keys_retrying() is true, so the handler treats a kid
 * that is still unknown as an invalid token instead of waiting again.
 *
 * TEMPORARY SHIM (until SESSION_COMMAND_PENDING and protocol_command_finish are on main): the handler
 * keeps a copy of the command (packed and unpacked again) and a session reference, returns 0 to the
 * session, and ends the session itself when the second run returns a disconnect code. With the
 * contract in place this becomes: return SESSION_COMMAND_PENDING, keep CMD, and finish with
 * protocol_command_finish(s, cmd, code).
 *
 * Threads: protocol_await_keys on the session's thread; the rest on the refresh's thread. */
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

struct key_wait {
  struct session *s; /* a reference of ours */
  Protocol__Command *cmd;
  uint32_t (*handle)(struct session *s, const Protocol__Command *cmd);
};

bool protocol_keys_retrying(void) { return retrying; }

void protocol_keys_nothing(void *arg) { (void)arg; }

/* The second run of the handler, then the end of the wait. */
static void rerun(void *arg) {
  struct key_wait *w = arg;
  enum session_state st = session_state(w->s);
  if (st == SESSION_CONNECTING || st == SESSION_CONNECTED) {
    retrying = true;
    uint32_t code = w->handle(w->s, w->cmd);
    retrying = false;
    if (code != 0) session_close(w->s, code);
  }
  protocol__command__free_unpacked(w->cmd, NULL);
  session_unref(w->s);
  free(w);
}

/* DONE of the refresh: on the JWKS thread. */
static void keys_ready(void *arg) {
  struct key_wait *w = arg;
  struct workers *workers = w->s->srv->workers;
  if (workers == NULL || workers_post(workers, rerun, w) != 0) rerun(w);
}

uint32_t protocol_await_keys(struct session *s, const Protocol__Command *cmd,
                             uint32_t (*handle)(struct session *s, const Protocol__Command *cmd)) {
  struct key_wait *w = calloc(1, sizeof *w);
  size_t size = protocol__command__get_packed_size(cmd);
  uint8_t *packed = malloc(size ? size : 1);
  if (w != NULL && packed != NULL) {
    protocol__command__pack(cmd, packed);
    w->cmd = protocol__command__unpack(NULL, size, packed);
  }
  free(packed);
  if (w == NULL || w->cmd == NULL) {
    free(w);
    return protocol_finish(s, cmd->id, -ERROR_INTERNAL);
  }
  w->s = session_ref(s);
  w->handle = handle;
  const struct config *cfg = server_config_get(s->srv);
  int rc = auth_keys_refresh(cfg->auth, keys_ready, w);
  config_unref(cfg);
  if (rc != 0) { /* no JWKS any more (a reload) or too many waiting: decide now, without waiting */
    log_warn("client %s: cannot wait for a JWKS refresh; the token is judged on the keys at hand",
             s->client_id);
    keys_ready(w);
  }
  return 0;
}
