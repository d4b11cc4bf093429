/* jwks: JWKS documents parsed into OpenSSL keys, and the self-refreshing cache of one endpoint
 * (jwks.h has the contract). Each JWK type is one row of a table {kty, builder}; an RSA key is built
 * from its base64url `n` and `e`, an EC key from `crv` (a table row too) and the fixed-size `x` and
 * `y`, through EVP_PKEY_fromdata, so OpenSSL checks the point is on the curve.
 *
 * Threads and invariants: the cache's thread is the only one that fetches and the only writer of
 * J->set (under J->lock, swapped whole); readers take a key reference under the lock. Waiters are a
 * list under the same lock; the thread takes the whole list when a fetch ends and calls each DONE
 * with no lock held. Once J->stop is set the thread calls the remaining waiters, frees J and ends:
 * it is detached, so nobody ever waits for it. */
#include "jwks.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "auth.h"
#include "log.h"

struct jwk {
  char kid[JWKS_KID_MAX + 1];
  char alg[JWKS_ALG_MAX + 1];
  EVP_PKEY *key;
};

struct jwks_set {
  struct jwk *keys;
  size_t n;
};

/* ================================ parsing ================================ */

/* Decodes the base64url string member NAME of JWK; NULL when absent, not a string or not base64url. */
static unsigned char *member_bytes(json_t *jwk, const char *name, size_t *len) {
  const char *text = json_string_value(json_object_get(jwk, name));
  ProtobufCBinaryData raw = {0};
  if (text == NULL || auth_base64_decode(text, strlen(text), true, &raw) != AUTH_OK) return NULL;
  *len = raw.len;
  return raw.data;
}

/* Builds a public key of TYPE ("RSA", "EC") from the parameters in BLD; NULL on failure. */
static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld) {
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  EVP_PKEY *key = NULL;
  if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    key = NULL;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return key;
}

static EVP_PKEY *rsa_jwk(json_t *jwk, const char **why) {
  size_t n_len = 0, e_len = 0;
  unsigned char *n = member_bytes(jwk, "n", &n_len), *e = member_bytes(jwk, "e", &e_len);
  BIGNUM *bn_n = n ? BN_bin2bn(n, (int)n_len, NULL) : NULL, *bn_e = e ? BN_bin2bn(e, (int)e_len, NULL) : NULL;
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  EVP_PKEY *key = NULL;
  if (bn_n == NULL || bn_e == NULL)
    *why = "RSA key without base64url n and e";
  else if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
           OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
           (key = from_params("RSA", bld)) == NULL)
    *why = "RSA key OpenSSL refuses";
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  free(n);
  free(e);
  return key;
}

/* The curves a JWK may name (RFC 7518 §6.2.1.1), their OpenSSL group and coordinate size. */
static const struct curve {
  const char *crv;
  const char *group;
  size_t size;
} curves[] = {
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
};

static EVP_PKEY *ec_jwk(json_t *jwk, const char **why) {
  const char *crv = json_string_value(json_object_get(jwk, "crv"));
  const struct curve *c = NULL;
  for (size_t i = 0; crv != NULL && i < sizeof curves / sizeof curves[0]; i++)
    if (strcmp(curves[i].crv, crv) == 0) c = &curves[i];
  if (c == NULL) {
    *why = "EC key on an unsupported crv";
    return NULL;
  }
  size_t x_len = 0, y_len = 0;
  unsigned char *x = member_bytes(jwk, "x", &x_len), *y = member_bytes(jwk, "y", &y_len);
  unsigned char point[1 + 2 * 66];
  EVP_PKEY *key = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  if (x == NULL || y == NULL || x_len != c->size || y_len != c->size) {
    *why = "EC key without x and y of the curve's size";
  } else {
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, c->size);
    memcpy(point + 1 + c->size, y, c->size);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * c->size) != 1 ||
        (key = from_params("EC", bld)) == NULL)
      *why = "EC key OpenSSL refuses (not on the curve?)";
  }
  OSSL_PARAM_BLD_free(bld);
  free(x);
  free(y);
  return key;
}

static const struct key_type {
  const char *kty;
  EVP_PKEY *(*build)(json_t *jwk, const char **why);
} key_types[] = {
    {"RSA", rsa_jwk},
    {"EC", ec_jwk},
};

/* Fills OUT from one JWK; false with *WHY when it cannot be used for verifying signatures. */
static bool parse_key(json_t *jwk, struct jwk *out, const char **why) {
  const char *kty = json_string_value(json_object_get(jwk, "kty"));
  const char *kid = json_string_value(json_object_get(jwk, "kid"));
  json_t *use = json_object_get(jwk, "use"), *alg = json_object_get(jwk, "alg");
  const struct key_type *t = NULL;
  for (size_t i = 0; kty != NULL && i < sizeof key_types / sizeof key_types[0]; i++)
    if (strcmp(key_types[i].kty, kty) == 0) t = &key_types[i];
  if (!json_is_object(jwk))
    *why = "a key that is not an object";
  else if (kid == NULL || kid[0] == '\0' || strlen(kid) > JWKS_KID_MAX)
    *why = "a key without a usable kid";
  else if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
    *why = "a key whose use is not sig";
  else if (alg != NULL && (!json_is_string(alg) || json_string_length(alg) > JWKS_ALG_MAX))
    *why = "a key with a bad alg";
  else if (t == NULL)
    *why = "a key of an unsupported kty";
  else if ((out->key = t->build(jwk, why)) != NULL) {
    snprintf(out->kid, sizeof out->kid, "%s", kid);
    snprintf(out->alg, sizeof out->alg, "%s", alg ? json_string_value(alg) : "");
    return true;
  }
  ERR_clear_error();
  return false;
}

struct jwks_set *jwks_parse(const char *doc, size_t len, size_t *skipped, char *err, size_t errlen) {
  json_error_t e;
  json_t *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &e);
  json_t *keys = json_object_get(root, "keys");
  size_t dropped = 0;
  if (!json_is_array(keys)) {
    auth_say(err, errlen, root ? "no \"keys\" array" : "not JSON: %s", e.text);
    json_decref(root);
    return NULL;
  }
  struct jwks_set *set = calloc(1, sizeof *set);
  size_t n = json_array_size(keys);
  if (set == NULL || (n > 0 && (set->keys = calloc(n, sizeof *set->keys)) == NULL)) {
    free(set);
    json_decref(root);
    auth_say(err, errlen, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    const char *why = NULL;
    if (parse_key(json_array_get(keys, i), &set->keys[set->n], &why)) {
      set->n++;
    } else if (dropped++ == 0) {
      auth_say(err, errlen, "key %zu skipped: %s", i, why);
    }
  }
  if (skipped != NULL) *skipped = dropped;
  json_decref(root);
  return set;
}

size_t jwks_set_count(const struct jwks_set *set) { return set != NULL ? set->n : 0; }

EVP_PKEY *jwks_set_key(const struct jwks_set *set, const char *kid, char alg[JWKS_ALG_MAX + 1]) {
  for (size_t i = 0; set != NULL && i < set->n; i++) {
    if (strcmp(set->keys[i].kid, kid) != 0) continue;
    if (EVP_PKEY_up_ref(set->keys[i].key) != 1) return NULL;
    memcpy(alg, set->keys[i].alg, JWKS_ALG_MAX + 1);
    return set->keys[i].key;
  }
  return NULL;
}

void jwks_set_free(struct jwks_set *set) {
  if (set == NULL) return;
  for (size_t i = 0; i < set->n; i++) EVP_PKEY_free(set->keys[i].key);
  free(set->keys);
  free(set);
}

/* ================================ the cache ================================ */

struct waiter {
  void (*done)(void *arg);
  void *arg;
  struct waiter *next;
};

struct jwks {
  char *url;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct jwks_set *set; /* NULL until the first successful fetch */
  struct waiter *waiters;
  size_t n_waiters;
  bool wanted;           /* a fetch was asked for (jwks_refresh) */
  atomic_int stop;       /* jwks_free was called */
  int64_t last_fetch_ms; /* monotonic end of the last fetch; INT64_MIN before the first */
};

/* How many cache threads are running, for jwks_wait_stopped. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static unsigned live_threads;

static void live_add(int delta) {
  pthread_mutex_lock(&live_lock);
  live_threads = (unsigned)((int)live_threads + delta);
  pthread_cond_broadcast(&live_cond);
  pthread_mutex_unlock(&live_lock);
}

bool jwks_wait_stopped(long timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  int64_t ns = (int64_t)until.tv_nsec + (int64_t)timeout_ms * 1000000;
  until.tv_sec += (time_t)(ns / 1000000000);
  until.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&live_lock);
  while (live_threads > 0 && pthread_cond_timedwait(&live_cond, &live_lock, &until) != ETIMEDOUT) {
  }
  bool none = live_threads == 0;
  pthread_mutex_unlock(&live_lock);
  return none;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One fetch and, when it parsed, the swap of the set; called without the lock. */
static void fetch_once(struct jwks *j) {
  char *body = NULL, err[256] = "";
  size_t len = 0, skipped = 0;
  struct jwks_set *set = NULL;
  if (jwks_fetch(j->url, JWKS_FETCH_TIMEOUT_MS, &j->stop, &body, &len, err, sizeof err) == 0)
    set = jwks_parse(body, len, &skipped, err, sizeof err);
  free(body);
  if (atomic_load(&j->stop)) {
    jwks_set_free(set);
    return;
  }
  if (set == NULL) {
    log_warn("token_jwks_public_endpoint %s: %s; keeping the %zu keys fetched before", j->url, err,
             jwks_set_count(j->set));
    return;
  }
  if (skipped > 0) log_warn("token_jwks_public_endpoint %s: %zu keys skipped (%s)", j->url, skipped, err);
  log_debug("token_jwks_public_endpoint %s: %zu keys", j->url, set->n);
  pthread_mutex_lock(&j->lock);
  struct jwks_set *old = j->set;
  j->set = set;
  pthread_mutex_unlock(&j->lock);
  jwks_set_free(old);
}

static void call_waiters(struct waiter *w) {
  while (w != NULL) {
    struct waiter *next = w->next;
    w->done(w->arg);
    free(w);
    w = next;
  }
}

/* When the next fetch is due (monotonic ms), given what was asked; the lock is held. */
static int64_t next_due(const struct jwks *j) {
  if (j->last_fetch_ms == INT64_MIN) return 0;
  if (j->wanted) return j->last_fetch_ms + JWKS_MIN_INTERVAL_MS;
  return j->last_fetch_ms + (int64_t)JWKS_REFRESH_S * 1000;
}

static void *jwks_thread(void *arg) {
  struct jwks *j = arg;
  pthread_mutex_lock(&j->lock);
  while (!atomic_load(&j->stop)) {
    int64_t due = next_due(j), now = now_ms();
    if (now < due) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts); /* the condition variable's default clock */
      int64_t at_ns = (int64_t)ts.tv_nsec + (due - now) * 1000000;
      ts.tv_sec += (time_t)(at_ns / 1000000000);
      ts.tv_nsec = (long)(at_ns % 1000000000);
      pthread_cond_timedwait(&j->wake, &j->lock, &ts);
      continue;
    }
    j->wanted = false;
    struct waiter *w = j->waiters; /* the callers waiting now are answered by this fetch */
    j->waiters = NULL;
    j->n_waiters = 0;
    pthread_mutex_unlock(&j->lock);
    fetch_once(j);
    call_waiters(w);
    pthread_mutex_lock(&j->lock);
    j->last_fetch_ms = now_ms();
  }
  struct waiter *w = j->waiters;
  j->waiters = NULL;
  pthread_mutex_unlock(&j->lock);
  call_waiters(w);
  pthread_cond_destroy(&j->wake);
  pthread_mutex_destroy(&j->lock);
  jwks_set_free(j->set);
  free(j->url);
  free(j);
  OPENSSL_thread_stop(); /* this thread's OpenSSL error state, which a detached thread leaves behind */
  live_add(-1);
  return NULL;
}

struct jwks *jwks_new(const char *url, char *err, size_t errlen) {
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
    auth_say(err, errlen, "token_jwks_public_endpoint: \"%s\" is not an http:// or https:// URL", url);
    return NULL;
  }
  struct jwks *j = calloc(1, sizeof *j);
  if (j == NULL || (j->url = strdup(url)) == NULL) {
    free(j);
    auth_say(err, errlen, "out of memory");
    return NULL;
  }
  j->last_fetch_ms = INT64_MIN;
  pthread_mutex_init(&j->lock, NULL);
  pthread_cond_init(&j->wake, NULL);
  pthread_t tid;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* the thread takes no signals, whichever thread creates it: they are for main's signal handling */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  live_add(1);
  int rc = pthread_create(&tid, &attr, jwks_thread, j);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    live_add(-1);
    pthread_cond_destroy(&j->wake);
    pthread_mutex_destroy(&j->lock);
    free(j->url);
    free(j);
    auth_say(err, errlen, "token_jwks_public_endpoint: cannot start its thread: %s", strerror(rc));
    return NULL;
  }
  return j;
}

void jwks_free(struct jwks *j) {
  if (j == NULL) return;
  pthread_mutex_lock(&j->lock);
  atomic_store(&j->stop, 1);
  pthread_cond_signal(&j->wake);
  pthread_mutex_unlock(&j->lock); /* J may be gone from here on: the thread frees it */
}

EVP_PKEY *jwks_key(struct jwks *j, const char *kid, char alg[JWKS_ALG_MAX + 1]) {
  pthread_mutex_lock(&j->lock);
  EVP_PKEY *key = jwks_set_key(j->set, kid, alg);
  pthread_mutex_unlock(&j->lock);
  return key;
}

int jwks_refresh(struct jwks *j, void (*done)(void *arg), void *arg) {
  struct waiter *w = malloc(sizeof *w);
  if (w == NULL) return -1;
  *w = (struct waiter){done, arg, NULL};
  pthread_mutex_lock(&j->lock);
  int rc = j->n_waiters < JWKS_MAX_WAITERS ? 0 : -1;
  if (rc == 0) {
    w->next = j->waiters;
    j->waiters = w;
    j->n_waiters++;
    j->wanted = true;
    pthread_cond_signal(&j->wake);
  }
  pthread_mutex_unlock(&j->lock);
  if (rc != 0) free(w);
  return rc;
}
