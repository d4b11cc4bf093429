/* redis_script: EVALSHA with an EVAL fallback (see redis_script.h). A call keeps one heap copy of its
 * command (EVALSHA sha nkeys keys... args...) until the reply came; on NOSCRIPT the same copy is sent
 * again with the source in place of the SHA-1, so the caller's arguments need not outlive the call. */
#include "redis_script.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define NOSCRIPT "NOSCRIPT"

int redis_script_init(struct redis_script *s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(s->source, strlen(s->source), md, &len, EVP_sha1(), NULL) != 1 || len != 20) return -1;
  for (unsigned i = 0; i < len; i++) snprintf(s->sha1 + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/* One call in flight: the command's arguments (argv[0] "EVALSHA"/"EVAL", argv[1] sha or source,
 * argv[2] the key count, then keys and args) point into DATA. */
struct script_call {
  struct redis_conn *conn;
  const struct redis_script *script;
  redis_reply_fn fn;
  void *arg;
  int argc;
  const char **argv;
  size_t *lens;
  char nkeys[12];
  char data[];
};

static void call_free(struct script_call *sc) {
  free(sc->argv);
  free(sc->lens);
  free(sc);
}

static void script_reply(void *arg, const redisReply *reply) {
  struct script_call *sc = arg;
  if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, NOSCRIPT, strlen(NOSCRIPT)) == 0 &&
      strcmp(sc->argv[0], "EVALSHA") == 0) {
    sc->argv[0] = "EVAL";
    sc->lens[0] = 4;
    sc->argv[1] = sc->script->source;
    sc->lens[1] = strlen(sc->script->source);
    log_debug("redis script %s: not loaded on the server, sending its source", sc->script->name);
    if (redis_conn_command(sc->conn, sc->argc, sc->argv, sc->lens, script_reply, sc) == 0) return;
    reply = NULL; /* the connection went down meanwhile */
  }
  sc->fn(sc->arg, reply);
  call_free(sc);
}

int redis_script_call(struct redis_conn *c, const struct redis_script *s, int nkeys, int nargs,
                      const char *const *values, const size_t *lens, redis_reply_fn fn, void *arg) {
  size_t total = 0;
  int n = nkeys + nargs;
  for (int i = 0; i < n; i++) total += lens[i];
  struct script_call *sc = calloc(1, sizeof *sc + total);
  if (sc == NULL) return -1;
  sc->argc = 3 + n;
  sc->argv = calloc((size_t)sc->argc, sizeof *sc->argv);
  sc->lens = calloc((size_t)sc->argc, sizeof *sc->lens);
  if (sc->argv == NULL || sc->lens == NULL) {
    call_free(sc);
    return -1;
  }
  *sc = (struct script_call){c, s, fn, arg, sc->argc, sc->argv, sc->lens, {0}};
  snprintf(sc->nkeys, sizeof sc->nkeys, "%d", nkeys);
  sc->argv[0] = "EVALSHA";
  sc->lens[0] = 7;
  sc->argv[1] = s->sha1;
  sc->lens[1] = 40;
  sc->argv[2] = sc->nkeys;
  sc->lens[2] = strlen(sc->nkeys);
  char *p = sc->data;
  for (int i = 0; i < n; i++) {
    memcpy(p, values[i], lens[i]);
    sc->argv[3 + i] = p;
    sc->lens[3 + i] = lens[i];
    p += lens[i];
  }
  if (redis_conn_command(c, sc->argc, sc->argv, sc->lens, script_reply, sc) != 0) {
    call_free(sc);
    return -1;
  }
  return 0;
}

static void load_reply(void *arg, const redisReply *reply) {
  const struct redis_script *s = arg;
  if (reply && reply->type == REDIS_REPLY_ERROR)
    log_warn("redis script %s: not loaded: %s", s->name, reply->str);
}

int redis_script_load(struct redis_conn *c, const struct redis_script *s) {
  const char *argv[3] = {"SCRIPT", "LOAD", s->source};
  return redis_conn_command(c, 3, argv, NULL, load_reply, (void *)s);
}
