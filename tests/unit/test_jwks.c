/* Unit tests for jwks.c and jwks_fetch.c. JWKS documents are written here from keys OpenSSL makes at
 * run time (RSA n/e and EC x/y read back out of EVP_PKEYs and base64url-encoded), so parsing is held
 * to "the key that comes out equals the key that went in" (EVP_PKEY_eq). The cache is tested against
 * a real HTTP server on loopback: a thread of this file that answers each request with the document
 * (or status) the test set, counting requests. */
#define _GNU_SOURCE /* vasprintf */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jwks.h"

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, f);
  assert_true(vasprintf(&s, f, ap) >= 0);
  va_end(ap);
  return s;
}

static char *b64url(const unsigned char *data, size_t len) {
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  assert_non_null(out);
  int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
  while (n > 0 && out[n - 1] == '=') n--;
  out[n] = '\0';
  for (char *p = out; *p; p++) *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
  return out;
}

static char *bn_member(EVP_PKEY *k, const char *param) {
  BIGNUM *bn = NULL;
  assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
  unsigned char buf[1024];
  int n = BN_bn2bin(bn, buf);
  BN_free(bn);
  return b64url(buf, (size_t)n);
}

/* The JWK of an RSA key, with EXTRA members (", ..." or ""). */
static char *rsa_jwk(EVP_PKEY *k, const char *kid, const char *extra) {
  char *n = bn_member(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_member(k, OSSL_PKEY_PARAM_RSA_E);
  char *j = fmt("{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, n, e, extra);
  free(n);
  free(e);
  return j;
}

/* The JWK of an EC key on CRV (coordinates SIZE bytes); X_BYTES overrides the length of x (0: SIZE). */
static char *ec_jwk(EVP_PKEY *k, const char *crv, size_t size, const char *kid, size_t x_bytes,
                    const char *extra) {
  unsigned char pub[1 + 2 * 66];
  size_t len = 0;
  assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len), 1);
  assert_int_equal(len, 1 + 2 * size);
  char *x = b64url(pub + 1, x_bytes ? x_bytes : size), *y = b64url(pub + 1 + size, size);
  char *j = fmt("{\"kty\":\"EC\",\"crv\":\"%s\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}", crv, kid, x, y,
                extra);
  free(x);
  free(y);
  return j;
}

static void key_is(struct jwks_set *set, const char *kid, EVP_PKEY *want, const char *want_alg) {
  char alg[JWKS_ALG_MAX + 1];
  EVP_PKEY *got = jwks_set_key(set, kid, alg);
  assert_non_null(got);
  assert_int_equal(EVP_PKEY_eq(got, want), 1);
  assert_string_equal(alg, want_alg);
  EVP_PKEY_free(got);
}

static void parses_rsa_and_ec_keys(void **state) {
  (void)state;
  EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
  char *j1 = rsa_jwk(rsa, "r1", ",\"use\":\"sig\",\"alg\":\"RS256\"");
  char *j2 = ec_jwk(p256, "P-256", 32, "e256", 0, ",\"alg\":\"ES256\"");
  char *j3 = ec_jwk(p384, "P-384", 48, "e384", 0, "");
  char *j4 = ec_jwk(p521, "P-521", 66, "e521", 0, ",\"use\":\"sig\"");
  char *doc = fmt("{\"keys\":[%s,%s,%s,%s]}", j1, j2, j3, j4);
  char err[200] = "";
  size_t skipped = 99;
  struct jwks_set *set = jwks_parse(doc, strlen(doc), &skipped, err, sizeof err);
  assert_non_null(set);
  assert_int_equal(skipped, 0);
  assert_int_equal(jwks_set_count(set), 4);
  key_is(set, "r1", rsa, "RS256");
  key_is(set, "e256", p256, "ES256");
  key_is(set, "e384", p384, "");
  key_is(set, "e521", p521, "");
  char alg[JWKS_ALG_MAX + 1];
  assert_null(jwks_set_key(set, "nope", alg));
  jwks_set_free(set);
  free(doc);
  free(j1), free(j2), free(j3), free(j4);
  EVP_PKEY_free(rsa), EVP_PKEY_free(p256), EVP_PKEY_free(p384), EVP_PKEY_free(p521);
}

static void skips_unusable_keys(void **state) {
  (void)state;
  EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  char *bad[] = {
      ec_jwk(p256, "P-256", 32, "enc", 0, ",\"use\":\"enc\""), /* not for signatures */
      ec_jwk(p256, "P-256", 32, "", 0, ""),                    /* no kid */
      ec_jwk(p256, "P-384", 32, "wrong-crv", 0, ""),           /* x and y of the wrong size for P-384 */
      ec_jwk(p384, "P-256", 48, "wrong-crv2", 0, ""),          /* the same the other way */
      ec_jwk(p256, "secp256k1", 32, "k1", 0, ""),              /* unsupported curve */
      ec_jwk(p256, "P-256", 32, "short-x", 31, ""),            /* x one byte short */
      ec_jwk(p256, "P-256", 32, "alg-type", 0, ",\"alg\":5"),  /* alg not a string */
      strdup("{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0\"}"), /* symmetric: never from JWKS */
      strdup("{\"kty\":\"RSA\",\"kid\":\"no-n\",\"e\":\"AQAB\"}"),
      strdup("{\"kty\":\"RSA\",\"kid\":\"bad-n\",\"n\":\"!!\",\"e\":\"AQAB\"}"),
      /* a point that is not on the curve: x and y all ones */
      strdup("{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"off\",\"x\":"
             "\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\","
             "\"y\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\"}"),
      strdup("\"not an object\""),
  };
  size_t n = sizeof bad / sizeof bad[0];
  char *good = ec_jwk(p256, "P-256", 32, "good", 0, "");
  for (size_t i = 0; i < n; i++) {
    char *doc = fmt("{\"keys\":[%s,%s]}", bad[i], good);
    char err[200] = "";
    size_t skipped = 0;
    struct jwks_set *set = jwks_parse(doc, strlen(doc), &skipped, err, sizeof err);
    assert_non_null(set);
    if (skipped != 1 || jwks_set_count(set) != 1) fail_msg("case %zu (%s): skipped %zu", i, bad[i], skipped);
    assert_true(err[0] != '\0');
    key_is(set, "good", p256, "");
    jwks_set_free(set);
    free(doc);
    free(bad[i]);
  }
  free(good);
  EVP_PKEY_free(p256);
  EVP_PKEY_free(p384);
}

static void refuses_documents_without_keys(void **state) {
  (void)state;
  const char *docs[] = {"", "not json", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]} trailing"};
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    char err[200] = "";
    assert_null(jwks_parse(docs[i], strlen(docs[i]), NULL, err, sizeof err));
    assert_true(err[0] != '\0');
  }
  struct jwks_set *empty = jwks_parse("{\"keys\":[]}", 11, NULL, NULL, 0);
  assert_non_null(empty);
  assert_int_equal(jwks_set_count(empty), 0);
  jwks_set_free(empty);
  char err[200] = "";
  assert_null(jwks_new("ftp://example.com/jwks", err, sizeof err));
  assert_non_null(strstr(err, "token_jwks_public_endpoint"));
}

/* ---- the cache against a loopback HTTP server ---- */

static struct {
  pthread_mutex_t lock;
  char *body;   /* what the next answers carry */
  int status;   /* their status */
  int requests; /* answered so far */
  int fd;
  int port;
} web = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static void *web_thread(void *arg) {
  (void)arg;
  for (;;) {
    int c = accept(web.fd, NULL, NULL);
    if (c < 0) return NULL;
    char req[4096];
    ssize_t got = 0, n;
    while ((n = read(c, req + got, sizeof req - 1 - (size_t)got)) > 0) { /* up to the blank line */
      got += n;
      req[got] = '\0';
      if (strstr(req, "\r\n\r\n")) break;
    }
    pthread_mutex_lock(&web.lock);
    char *resp =
        fmt("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n%s",
            web.status, strlen(web.body), web.body);
    web.requests++;
    pthread_mutex_unlock(&web.lock);
    size_t off = 0, len = strlen(resp);
    while (off < len && (n = write(c, resp + off, len - off)) > 0) off += (size_t)n;
    free(resp);
    close(c);
  }
}

static void web_serve(int status, char *body) {
  pthread_mutex_lock(&web.lock);
  free(web.body);
  web.body = body;
  web.status = status;
  pthread_mutex_unlock(&web.lock);
}

static int web_requests(void) {
  pthread_mutex_lock(&web.lock);
  int n = web.requests;
  pthread_mutex_unlock(&web.lock);
  return n;
}

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_calls;

static void count_done(void *arg) {
  (void)arg;
  pthread_mutex_lock(&done_lock);
  done_calls++;
  pthread_cond_signal(&done_cond);
  pthread_mutex_unlock(&done_lock);
}

/* Asks J for a refresh and waits until it has ended. */
static void refresh_and_wait(struct jwks *j) {
  pthread_mutex_lock(&done_lock);
  int before = done_calls;
  pthread_mutex_unlock(&done_lock);
  assert_int_equal(jwks_refresh(j, count_done, NULL), 0);
  pthread_mutex_lock(&done_lock);
  while (done_calls == before) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
}

static bool has_key(struct jwks *j, const char *kid) {
  char alg[JWKS_ALG_MAX + 1];
  EVP_PKEY *k = jwks_key(j, kid, alg);
  EVP_PKEY_free(k);
  return k != NULL;
}

static void cache_fetches_rotates_and_keeps_on_failure(void **state) {
  (void)state;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  web.fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(bind(web.fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(web.fd, 16), 0);
  assert_int_equal(getsockname(web.fd, (struct sockaddr *)&a, &alen), 0);
  web.port = ntohs(a.sin_port);
  EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
           *k2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  char *j1 = ec_jwk(k1, "P-256", 32, "one", 0, ""), *j2 = ec_jwk(k2, "P-256", 32, "two", 0, "");
  web_serve(200, fmt("{\"keys\":[%s]}", j1));
  pthread_t tid;
  assert_int_equal(pthread_create(&tid, NULL, web_thread, NULL), 0);

  char *url = fmt("http://127.0.0.1:%d/jwks.json", web.port), err[200] = "";
  struct jwks *j = jwks_new(url, err, sizeof err);
  assert_non_null(j);
  refresh_and_wait(j); /* the first fetch, or one right after it */
  assert_true(has_key(j, "one"));
  assert_false(has_key(j, "two"));
  /* rotation: the next refresh brings the new key and drops the old */
  web_serve(200, fmt("{\"keys\":[%s]}", j2));
  int before = web_requests();
  refresh_and_wait(j);
  assert_true(web_requests() > before);
  assert_true(has_key(j, "two"));
  assert_false(has_key(j, "one"));
  /* a 500 or a document that is not a JWKS keeps what was there */
  web_serve(500, strdup("{\"keys\":[]}"));
  refresh_and_wait(j);
  assert_true(has_key(j, "two"));
  web_serve(200, strdup("<html>"));
  refresh_and_wait(j);
  assert_true(has_key(j, "two"));
  jwks_free(j);
  assert_true(jwks_wait_stopped(JWKS_EXIT_WAIT_MS)); /* the thread ends and frees the cache by itself */

  shutdown(web.fd, SHUT_RDWR);
  close(web.fd);
  pthread_join(tid, NULL);
  web_serve(0, NULL);
  free(url);
  free(j1);
  free(j2);
  EVP_PKEY_free(k1);
  EVP_PKEY_free(k2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parses_rsa_and_ec_keys),
      cmocka_unit_test(skips_unusable_keys),
      cmocka_unit_test(refuses_documents_without_keys),
      cmocka_unit_test(cache_fetches_rotates_and_keeps_on_failure),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  if (!jwks_wait_stopped(JWKS_EXIT_WAIT_MS)) fprintf(stderr, "a JWKS thread did not end\n"), failed++;
  return failed;
}
