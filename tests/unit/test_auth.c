/* Unit tests for auth.c and auth_claims.c. Every key and token is made here at run time with OpenSSL
 * (an RSA key from EVP_PKEY_Q_keygen, its public half written as "PUBLIC KEY" and "RSA PUBLIC KEY" PEM,
 * HMAC with EVP_Q_mac, RSA signatures with EVP_DigestSign, base64url with EVP_EncodeBlock), so the
 * tests check our verifier against OpenSSL's signer and nothing copied from elsewhere; ECDSA keys
 * come from EVP_PKEY_Q_keygen on each curve, their DER signatures turned into JWS r || s here. Time is
 * fixed (NOW); the last test verifies from several threads at once with shared keys. */
#define _GNU_SOURCE /* vasprintf */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jwks.h"

#define NOW INT64_C(1700000000)
#define SECRET "streamd-test-secret"

static EVP_PKEY *rsa_key;   /* the issuer's key pair */
static char *rsa_spki_pem;  /* its public half, "BEGIN PUBLIC KEY" */
static char *rsa_pkcs1_pem; /* the same, "BEGIN RSA PUBLIC KEY" */
static char *ec_spki_pem;   /* a P-256 public key: valid PEM, wrong key type */

/* ---- token making ---- */

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, f);
  assert_true(vasprintf(&s, f, ap) >= 0);
  va_end(ap);
  return s;
}

static char *b64url(const void *data, size_t len) {
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  assert_non_null(out);
  int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
  assert_true(n >= 0);
  while (n > 0 && out[n - 1] == '=') n--;
  out[n] = '\0';
  for (char *p = out; *p; p++) *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
  return out;
}

/* base64url(HEADER) "." base64url(PAYLOAD): what gets signed. */
static char *signing_input(const char *header, const char *payload) {
  char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
  char *s = fmt("%s.%s", h, p);
  free(h);
  free(p);
  return s;
}

struct sig {
  unsigned char b[1024];
  size_t len;
};

static void hmac_sign(const char *digest, const char *secret, const char *input, struct sig *s) {
  assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, secret, strlen(secret),
                            (const unsigned char *)input, strlen(input), s->b, sizeof s->b, &s->len));
}

static void rsa_sign(const char *digest, const char *input, struct sig *s) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_MD *md = EVP_MD_fetch(NULL, digest, NULL);
  s->len = sizeof s->b;
  assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, rsa_key), 1);
  assert_int_equal(EVP_DigestSign(ctx, s->b, &s->len, (const unsigned char *)input, strlen(input)), 1);
  EVP_MD_free(md);
  EVP_MD_CTX_free(ctx);
}

/* Appends "." base64url(S) to INPUT (freed). */
static char *finish(char *input, const struct sig *s) {
  char *enc = b64url(s->b, s->len);
  char *t = fmt("%s.%s", input, enc);
  free(enc);
  free(input);
  return t;
}

/* A token with any header text, HMAC-signed with DIGEST and SECRET (or unsigned when DIGEST is NULL). */
static char *hs_token_raw(const char *header, const char *payload, const char *digest, const char *secret) {
  char *input = signing_input(header, payload);
  struct sig s = {.len = 0};
  if (digest != NULL) hmac_sign(digest, secret, input, &s);
  return finish(input, &s);
}

static char *hs_token(const char *alg, const char *secret, const char *payload) {
  char *header = fmt("{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg), *digest = fmt("SHA%s", alg + 2);
  char *t = hs_token_raw(header, payload, digest, secret);
  free(header);
  free(digest);
  return t;
}

static char *rs_token(const char *alg, const char *payload) {
  char *header = fmt("{\"typ\":\"JWT\",\"alg\":\"%s\"}", alg), *digest = fmt("SHA%s", alg + 2);
  char *input = signing_input(header, payload);
  struct sig s;
  rsa_sign(digest, input, &s);
  free(header);
  free(digest);
  return finish(input, &s);
}

/* ---- verifying ---- */

/* Verifies TOKEN (freed here) as a connection token at NOW. On AUTH_OK the claims stay in *C; on
 * anything else *C must be empty and WHY must say something. */
static enum auth_status verify_conn(const struct auth_keys *k, char *token,
                                    struct auth_connection_claims *c) {
  char why[160] = "";
  enum auth_status st = auth_verify_connection(k, token, NOW, c, why, sizeof why);
  free(token);
  if (st == AUTH_OK) {
    assert_non_null(c->user);
  } else {
    assert_true(why[0] != '\0');
    assert_null(strstr(why, SECRET));
    assert_null(c->user);
    assert_null(c->info.data);
    assert_null(c->channels);
    assert_null(c->subs);
  }
  return st;
}

static enum auth_status conn_status(const struct auth_keys *k, char *token) {
  struct auth_connection_claims c;
  enum auth_status st = verify_conn(k, token, &c);
  auth_connection_claims_cleanup(&c);
  return st;
}

static enum auth_status verify_sub(const struct auth_keys *k, char *token,
                                   struct auth_subscription_claims *c) {
  char why[160] = "";
  enum auth_status st = auth_verify_subscription(k, token, NOW, c, why, sizeof why);
  free(token);
  if (st == AUTH_OK) {
    assert_non_null(c->user);
    assert_non_null(c->client);
    assert_true(c->channel != NULL && c->channel[0] != '\0');
  } else {
    assert_true(why[0] != '\0');
    assert_null(c->user);
    assert_null(c->channel);
    assert_null(c->opts.info.data);
  }
  return st;
}

static enum auth_status sub_status(const struct auth_keys *k, char *token) {
  struct auth_subscription_claims c;
  enum auth_status st = verify_sub(k, token, &c);
  auth_subscription_claims_cleanup(&c);
  return st;
}

static void assert_bytes(ProtobufCBinaryData b, const void *want, size_t len) {
  assert_int_equal(b.len, len);
  assert_memory_equal(b.data, want, len);
}

#define assert_text(b, s) assert_bytes((b), (s), strlen(s))

static struct auth_keys *keys(const char *secret, const char *pem) {
  char err[256] = "";
  struct auth_keys *k = auth_keys_new(secret, pem, err, sizeof err);
  assert_non_null(k);
  return k;
}

/* ---- fixtures ---- */

static char *pem_of(EVP_PKEY *k, const char *structure) {
  OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_PUBLIC_KEY, "PEM", structure, NULL);
  unsigned char *data = NULL;
  size_t len = 0;
  assert_int_equal(OSSL_ENCODER_to_data(ctx, &data, &len), 1);
  char *s = fmt("%.*s", (int)len, data);
  OPENSSL_free(data);
  OSSL_ENCODER_CTX_free(ctx);
  return s;
}

static int group_setup(void **state) {
  (void)state;
  rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (rsa_key == NULL || ec == NULL) return -1;
  rsa_spki_pem = pem_of(rsa_key, "SubjectPublicKeyInfo");
  rsa_pkcs1_pem = pem_of(rsa_key, "type-specific");
  ec_spki_pem = pem_of(ec, "SubjectPublicKeyInfo");
  EVP_PKEY_free(ec);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  EVP_PKEY_free(rsa_key);
  free(rsa_spki_pem);
  free(rsa_pkcs1_pem);
  free(ec_spki_pem);
  return 0;
}

/* ---- tests ---- */

static void pems_have_both_headers(void **state) {
  (void)state;
  assert_non_null(strstr(rsa_spki_pem, "-----BEGIN PUBLIC KEY-----"));
  assert_non_null(strstr(rsa_pkcs1_pem, "-----BEGIN RSA PUBLIC KEY-----"));
}

static void hmac_algorithms_verify(void **state) {
  (void)state;
  static const char *const algs[] = {"HS256", "HS384", "HS512"};
  struct auth_keys *k = keys(SECRET, "");
  char *payload = fmt("{\"sub\":\"u1\",\"exp\":%lld}", (long long)NOW + 60);
  for (size_t i = 0; i < 3; i++) {
    struct auth_connection_claims c;
    assert_int_equal(verify_conn(k, hs_token(algs[i], SECRET, payload), &c), AUTH_OK);
    assert_string_equal(c.user, "u1");
    assert_int_equal(c.exp, NOW + 60);
    assert_false(c.has_expire_at);
    assert_int_equal(auth_connection_expires_at(&c), NOW + 60);
    assert_int_equal(c.n_channels, 0);
    assert_int_equal(c.n_subs, 0);
    auth_connection_claims_cleanup(&c);
    auth_connection_claims_cleanup(&c); /* twice is fine */
    assert_int_equal(conn_status(k, hs_token(algs[i], "another secret", payload)), AUTH_INVALID);
  }
  free(payload);
  assert_true(auth_keys_configured(k));
  auth_keys_free(k);
}

static void rsa_algorithms_verify(void **state) {
  (void)state;
  static const char *const algs[] = {"RS256", "RS384", "RS512"};
  const char *pems[] = {rsa_spki_pem, rsa_pkcs1_pem};
  for (size_t p = 0; p < 2; p++) {
    struct auth_keys *k = keys("", pems[p]);
    for (size_t i = 0; i < 3; i++) {
      struct auth_connection_claims c;
      assert_int_equal(verify_conn(k, rs_token(algs[i], "{\"sub\":\"rsa-user\"}"), &c), AUTH_OK);
      assert_string_equal(c.user, "rsa-user");
      assert_int_equal(c.exp, 0);
      assert_int_equal(auth_connection_expires_at(&c), 0); /* no exp: never expires */
      auth_connection_claims_cleanup(&c);
    }
    auth_keys_free(k);
  }
}

static void both_families_configured(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, rsa_spki_pem);
  assert_int_equal(conn_status(k, hs_token("HS384", SECRET, "{}")), AUTH_OK);
  assert_int_equal(conn_status(k, rs_token("RS512", "{}")), AUTH_OK);
  /* key confusion still fails: the HMAC key is the secret, not the PEM */
  assert_int_equal(conn_status(k, hs_token("HS256", rsa_spki_pem, "{}")), AUTH_INVALID);
  auth_keys_free(k);
}

static void expired_and_not_yet_valid(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  char *p;
  struct {
    long long exp_delta;
    enum auth_status want;
  } exps[] = {{-10, AUTH_EXPIRED}, {0, AUTH_EXPIRED}, {1, AUTH_OK}};
  for (size_t i = 0; i < 3; i++) {
    p = fmt("{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW + exps[i].exp_delta);
    assert_int_equal(conn_status(k, hs_token("HS256", SECRET, p)), exps[i].want);
    free(p);
  }
  p = fmt("{\"nbf\":%lld}", (long long)NOW + 10);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, p)), AUTH_EXPIRED);
  free(p);
  p = fmt("{\"nbf\":%lld,\"exp\":%lld}", (long long)NOW, (long long)NOW + 5);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, p)), AUTH_OK);
  free(p);
  /* the signature is checked before the time, and the claims' types too */
  p = fmt("{\"exp\":%lld}", (long long)NOW - 10);
  assert_int_equal(conn_status(k, hs_token("HS256", "wrong", p)), AUTH_INVALID);
  free(p);
  p = fmt("{\"exp\":%lld,\"sub\":7}", (long long)NOW - 10);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, p)), AUTH_INVALID);
  free(p);
  /* a real NumericDate: the integer part counts */
  struct auth_connection_claims c;
  p = fmt("{\"exp\":%lld.9}", (long long)NOW + 60);
  assert_int_equal(verify_conn(k, hs_token("HS256", SECRET, p), &c), AUTH_OK);
  assert_int_equal(c.exp, NOW + 60);
  auth_connection_claims_cleanup(&c);
  free(p);
  p = fmt("{\"exp\":%lld.5}", (long long)NOW);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, p)), AUTH_EXPIRED);
  free(p);
  auth_keys_free(k);
}

/* Times at the edges of int64 and of JSON numbers (issue 10 item 13): kept as given when they fit an
 * int64 (the arithmetic on them saturates later: protocol_ttl, the session's expiry check), expired
 * when at or before now, invalid when they are no int64 at all. iat is not checked, as in Centrifugo. */
static void extreme_times(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  static const struct {
    const char *payload;
    enum auth_status want;
    int64_t expires_at; /* when AUTH_OK */
  } cases[] = {
      {"{\"exp\":9223372036854775807}", AUTH_OK, INT64_MAX},
      {"{\"exp\":9007199254740992}", AUTH_OK, INT64_C(9007199254740992)},
      {"{\"exp\":9.2e18}", AUTH_OK, INT64_C(9200000000000000000)},
      {"{\"exp\":1,\"expire_at\":9223372036854775807}", AUTH_EXPIRED, 0},
      {"{\"expire_at\":9223372036854775807}", AUTH_OK, INT64_MAX},
      {"{\"expire_at\":-9223372036854775808}", AUTH_OK, 0}, /* <= 0: never expires */
      {"{\"iat\":9223372036854775807}", AUTH_OK, 0},
      {"{\"iat\":-9223372036854775808}", AUTH_OK, 0},
      {"{\"exp\":-9223372036854775808}", AUTH_EXPIRED, 0},
      {"{\"exp\":0}", AUTH_EXPIRED, 0},
      {"{\"exp\":-0.5}", AUTH_EXPIRED, 0},
      {"{\"nbf\":9223372036854775807}", AUTH_EXPIRED, 0},
      {"{\"nbf\":-9223372036854775808}", AUTH_OK, 0},
      {"{\"exp\":9223372036854775808}", AUTH_INVALID, 0}, /* beyond int64: the payload is refused */
      {"{\"exp\":-1e300}", AUTH_INVALID, 0},
      {"{\"exp\":9.3e18}", AUTH_INVALID, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct auth_connection_claims c;
    enum auth_status st = verify_conn(k, hs_token("HS256", SECRET, cases[i].payload), &c);
    if (st != cases[i].want) fail_msg("%s: status %d, want %d", cases[i].payload, st, cases[i].want);
    if (st == AUTH_OK && auth_connection_expires_at(&c) != cases[i].expires_at)
      fail_msg("%s: expires at %lld", cases[i].payload, (long long)auth_connection_expires_at(&c));
    auth_connection_claims_cleanup(&c);
  }
  auth_keys_free(k);
}

/* Returns TOKEN with the first character of its signature changed (a flipped byte, still base64url). */
static char *flip_signature(char *token) {
  char *sig = strrchr(token, '.') + 1;
  *sig = *sig == 'A' ? 'B' : 'A';
  return token;
}

static void bad_signature(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, rsa_spki_pem);
  assert_int_equal(conn_status(k, flip_signature(hs_token("HS256", SECRET, "{\"sub\":\"u\"}"))),
                   AUTH_INVALID);
  assert_int_equal(conn_status(k, flip_signature(rs_token("RS256", "{\"sub\":\"u\"}"))), AUTH_INVALID);
  /* the payload swapped under a valid signature */
  char *good = hs_token("HS256", SECRET, "{\"sub\":\"alice\"}"), *evil = b64url("{\"sub\":\"admin\"}", 15);
  char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
  char *forged = fmt("%.*s.%s%s", (int)(dot1 - good), good, evil, dot2);
  assert_int_equal(conn_status(k, forged), AUTH_INVALID);
  /* a truncated and an empty signature */
  char *cut = fmt("%.*s", (int)strlen(good) - 4, good);
  assert_int_equal(conn_status(k, cut), AUTH_INVALID);
  assert_int_equal(conn_status(k, fmt("%.*s.", (int)(dot2 - good), good)), AUTH_INVALID);
  /* the right MAC with bytes appended (a prefix match is no match) */
  assert_int_equal(conn_status(k, fmt("%sAAAA", good)), AUTH_INVALID);
  assert_int_equal(conn_status(k, good), AUTH_OK);
  free(evil);
  auth_keys_free(k);
}

static void alg_none_and_unknown(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, rsa_spki_pem);
  static const char *const headers[] = {
      "{\"alg\":\"none\"}",   "{\"alg\":\"None\"}",  "{\"alg\":\"hs256\"}",
      "{\"alg\":\"HS1024\"}", "{\"alg\":\"ES256\"}", "{\"alg\":\"PS256\"}",
      "{\"alg\":256}",        "{\"typ\":\"JWT\"}",   "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
  };
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    assert_int_equal(conn_status(k, hs_token_raw(headers[i], "{}", NULL, NULL)), AUTH_INVALID);
    assert_int_equal(conn_status(k, hs_token_raw(headers[i], "{}", "SHA256", SECRET)), AUTH_INVALID);
  }
  assert_int_equal(conn_status(k, hs_token_raw("{\"alg\":\"HS256\"}", "{}", "SHA256", SECRET)), AUTH_OK);
  auth_keys_free(k);
}

static void wrong_family_and_key_confusion(void **state) {
  (void)state;
  struct auth_keys *rsa_only = keys(NULL, rsa_spki_pem), *hmac_only = keys(SECRET, NULL);
  assert_int_equal(conn_status(rsa_only, hs_token("HS256", SECRET, "{}")), AUTH_INVALID);
  /* RS→HS confusion: an attacker signs with the (public) PEM text as an HMAC secret */
  assert_int_equal(conn_status(rsa_only, hs_token("HS256", rsa_spki_pem, "{\"sub\":\"admin\"}")),
                   AUTH_INVALID);
  assert_int_equal(conn_status(rsa_only, hs_token("HS512", rsa_pkcs1_pem, "{}")), AUTH_INVALID);
  assert_int_equal(conn_status(hmac_only, rs_token("RS256", "{}")), AUTH_INVALID);
  auth_keys_free(rsa_only);
  auth_keys_free(hmac_only);
  struct auth_keys *none = keys("", "");
  assert_false(auth_keys_configured(none));
  assert_int_equal(conn_status(none, hs_token("HS256", "", "{}")), AUTH_INVALID);
  auth_keys_free(none);
}

static void malformed_tokens(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  char *good = hs_token("HS256", SECRET, "{\"sub\":\"u\"}");
  char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
  int h = (int)(dot1 - good), hp = (int)(dot2 - good);
  char *bad[] = {
      strdup(""),
      strdup("abc"),
      fmt("%.*s", hp, good),              /* two parts */
      fmt("%s.xyz", good),                /* four parts */
      fmt("%s", dot1),                    /* empty header */
      fmt("%.*s.%s", h, good, dot2),      /* empty payload */
      fmt("%.*s*%s", hp - 1, good, dot2), /* a non-base64url character */
      fmt("%.*s=%s", hp, good, dot2),     /* padding in a segment */
      fmt("%.*s+%s", hp - 1, good, dot2), /* the standard alphabet, not base64url */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(conn_status(k, bad[i]), AUTH_INVALID);
  /* well signed, but the payload or header is not a JSON object */
  static const char *const payloads[] = {"not json", "[1,2]", "\"x\"", "{\"sub\":\"a\",\"sub\":\"b\"}", ""};
  for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++)
    assert_int_equal(conn_status(k, hs_token_raw("{\"alg\":\"HS256\"}", payloads[i], "SHA256", SECRET)),
                     AUTH_INVALID);
  assert_int_equal(conn_status(k, hs_token_raw("alg=HS256", "{}", "SHA256", SECRET)), AUTH_INVALID);
  assert_int_equal(conn_status(k, hs_token_raw("[\"HS256\"]", "{}", "SHA256", SECRET)), AUTH_INVALID);
  assert_int_equal(conn_status(k, NULL), AUTH_INVALID);
  assert_int_equal(conn_status(k, good), AUTH_OK);
  auth_keys_free(k);
}

static void wrong_claim_types(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  static const char *const bad[] = {
      "{\"sub\":5}",
      "{\"sub\":{}}",
      "{\"exp\":\"1800000000\"}",
      "{\"exp\":true}",
      "{\"exp\":1e300}",
      "{\"nbf\":[]}",
      "{\"iat\":\"x\"}",
      "{\"expire_at\":\"0\"}",
      "{\"jti\":1}",
      "{\"iss\":false}",
      "{\"aud\":5}",
      "{\"aud\":[\"a\",1]}",
      "{\"channels\":\"news\"}",
      "{\"channels\":[\"a\",1]}",
      "{\"subs\":[\"a\"]}",
      "{\"subs\":{\"a\":1}}",
      "{\"subs\":{\"a\":{\"info\":1},\"b\":{\"b64info\":\"***\"}}}",
      "{\"b64info\":5}",
      "{\"b64info\":\"***\"}",
      "{\"b64info\":\"aGVsbG8\"}", /* standard base64 needs its padding */
      "{\"subs\":{\"a\":{\"override\":{\"presence\":true}}}}",
      "{\"subs\":{\"a\":{\"override\":{\"join_leave\":{\"value\":1}}}}}",
      "{\"subs\":{\"a\":{\"override\":[]}}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char why[160] = "";
    struct auth_connection_claims c;
    char *t = hs_token("HS256", SECRET, bad[i]);
    enum auth_status st = auth_verify_connection(k, t, NOW, &c, why, sizeof why);
    free(t);
    if (st != AUTH_INVALID) fail_msg("%s: status %d", bad[i], st);
    assert_non_null(strstr(why, "claim"));
  }
  /* standard claims of the right types, null claims and unknown claims are fine */
  char *ok =
      fmt("{\"aud\":[\"a\",\"b\"],\"iss\":\"me\",\"jti\":\"j\",\"iat\":%lld,\"meta\":{\"k\":1},"
          "\"sub\":null,\"info\":null,\"channels\":null,\"x-custom\":[1]}",
          (long long)NOW);
  struct auth_connection_claims c;
  assert_int_equal(verify_conn(k, hs_token("HS256", SECRET, ok), &c), AUTH_OK);
  assert_string_equal(c.user, "");
  assert_int_equal(c.info.len, 0);
  auth_connection_claims_cleanup(&c);
  free(ok);
  auth_keys_free(k);
}

static void info_raw_json_and_b64info(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  static const struct {
    const char *payload;
    const char *info;
    size_t len;
  } cases[] = {
      {"{\"info\": {\"name\": \"Alice\", \"tags\": [1, 2.5, null, true]}}",
       "{\"name\":\"Alice\",\"tags\":[1,2.5,null,true]}", 0},
      {"{\"info\":\"hi\"}", "\"hi\"", 4},
      {"{\"info\":42}", "42", 2},
      {"{\"b64info\":\"aGVsbG8=\"}", "hello", 5},
      {"{\"info\":{\"a\":1},\"b64info\":\"aGVsbG8=\"}", "hello", 5}, /* b64info wins */
      {"{\"b64info\":\"aGVsbG8=\",\"info\":{\"a\":1}}", "hello", 5}, /* whatever the order */
      {"{\"info\":{\"a\":1},\"b64info\":\"\"}", "{\"a\":1}", 7},     /* an empty one does not */
      {"{\"b64info\":\"AAEC/w==\"}", "\x00\x01\x02\xff", 4},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct auth_connection_claims c;
    assert_int_equal(verify_conn(k, hs_token("HS256", SECRET, cases[i].payload), &c), AUTH_OK);
    assert_bytes(c.info, cases[i].info, cases[i].len ? cases[i].len : strlen(cases[i].info));
    auth_connection_claims_cleanup(&c);
  }
  auth_keys_free(k);
}

static void channels_and_subs(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  const char *p =
      "{\"sub\":\"u\",\"channels\":[\"news\",\"chat:room\"],\"subs\":{"
      "\"s1\":{\"info\":{\"x\":1},\"b64data\":\"AQI=\",\"override\":{\"presence\":{\"value\":true},"
      "\"join_leave\":{\"value\":false},\"force_recovery\":{},\"force_positioning\":null}},"
      "\"s2\":null,\"s3\":{\"data\":[true],\"override\":{\"force_push_join_leave\":{\"value\":true},"
      "\"force_positioning\":{\"value\":null}}}}}";
  struct auth_connection_claims c;
  assert_int_equal(verify_conn(k, hs_token("HS512", SECRET, p), &c), AUTH_OK);
  assert_int_equal(c.n_channels, 2);
  assert_string_equal(c.channels[0], "news");
  assert_string_equal(c.channels[1], "chat:room");
  assert_int_equal(c.n_subs, 3);
  const struct auth_sub_claim *s1 = &c.subs[0], *s2 = &c.subs[1], *s3 = &c.subs[2];
  assert_string_equal(s1->channel, "s1");
  assert_text(s1->opts.info, "{\"x\":1}");
  assert_bytes(s1->opts.data, "\x01\x02", 2);
  assert_int_equal(s1->opts.override.presence, AUTH_OVERRIDE_TRUE);
  assert_int_equal(s1->opts.override.join_leave, AUTH_OVERRIDE_FALSE);
  assert_int_equal(s1->opts.override.force_recovery, AUTH_OVERRIDE_FALSE); /* {} is {value:false} */
  assert_int_equal(s1->opts.override.force_positioning, AUTH_OVERRIDE_UNSET);
  assert_int_equal(s1->opts.override.force_push_join_leave, AUTH_OVERRIDE_UNSET);
  assert_string_equal(s2->channel, "s2");
  assert_int_equal(s2->opts.info.len, 0);
  assert_int_equal(s2->opts.override.presence, AUTH_OVERRIDE_UNSET);
  assert_string_equal(s3->channel, "s3");
  assert_text(s3->opts.data, "[true]");
  assert_int_equal(s3->opts.override.force_push_join_leave, AUTH_OVERRIDE_TRUE);
  assert_int_equal(s3->opts.override.force_positioning, AUTH_OVERRIDE_FALSE);
  auth_connection_claims_cleanup(&c);
  /* empty lists are not an error */
  assert_int_equal(verify_conn(k, hs_token("HS256", SECRET, "{\"channels\":[],\"subs\":{}}"), &c), AUTH_OK);
  assert_int_equal(c.n_channels + c.n_subs, 0);
  auth_connection_claims_cleanup(&c);
  auth_keys_free(k);
}

static void connection_token_with_channel(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  char why[160] = "";
  struct auth_connection_claims c;
  char *t = hs_token("HS256", SECRET, "{\"sub\":\"u\",\"channel\":\"$private\"}");
  assert_int_equal(auth_verify_connection(k, t, NOW, &c, why, sizeof why), AUTH_INVALID);
  assert_non_null(strstr(why, "channel"));
  free(t);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, "{\"channel\":5}")), AUTH_INVALID);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, "{\"channel\":\"\"}")),
                   AUTH_OK); /* as Centrifugo */
  auth_keys_free(k);
}

static void expire_at_overrides_exp(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, "");
  struct {
    const char *fmt;
    int64_t want;
  } cases[] = {
      {"{\"exp\":%lld,\"expire_at\":%lld}", NOW + 3600},
      {"{\"exp\":%lld,\"expire_at\":0}", 0},
      {"{\"exp\":%lld}", NOW + 60},
      {"{\"exp\":%lld,\"expire_at\":%lld.7}", NOW + 3600},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *p = fmt(cases[i].fmt, (long long)NOW + 60, (long long)NOW + 3600);
    struct auth_connection_claims c;
    assert_int_equal(verify_conn(k, hs_token("HS256", SECRET, p), &c), AUTH_OK);
    assert_int_equal(auth_connection_expires_at(&c), cases[i].want);
    assert_int_equal(c.exp, NOW + 60);
    auth_connection_claims_cleanup(&c);
    free(p);
  }
  /* an expire_at in the past does not fail verification: refresh decides that (error 110) */
  char *p = fmt("{\"expire_at\":%lld}", (long long)NOW - 5);
  struct auth_connection_claims c;
  assert_int_equal(verify_conn(k, hs_token("HS256", SECRET, p), &c), AUTH_OK);
  assert_true(c.has_expire_at);
  assert_int_equal(auth_connection_expires_at(&c), NOW - 5);
  auth_connection_claims_cleanup(&c);
  free(p);
  auth_keys_free(k);
}

static void subscription_claims(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, rsa_spki_pem);
  char *p =
      fmt("{\"sub\":\"u1\",\"channel\":\"$chat\",\"client\":\"c-1\",\"exp\":%lld,\"expire_at\":%lld,"
          "\"info\":{\"role\":\"mod\"},\"b64data\":\"eyJ4IjoxfQ==\","
          "\"override\":{\"presence\":{\"value\":false},\"force_positioning\":{\"value\":true}}}",
          (long long)NOW + 60, (long long)NOW + 90);
  for (int rsa = 0; rsa < 2; rsa++) {
    struct auth_subscription_claims c;
    char *t = rsa ? rs_token("RS384", p) : hs_token("HS256", SECRET, p);
    assert_int_equal(verify_sub(k, t, &c), AUTH_OK);
    assert_string_equal(c.user, "u1");
    assert_string_equal(c.channel, "$chat");
    assert_string_equal(c.client, "c-1");
    assert_int_equal(c.exp, NOW + 60);
    assert_int_equal(auth_subscription_expires_at(&c), NOW + 90);
    assert_text(c.opts.info, "{\"role\":\"mod\"}");
    assert_text(c.opts.data, "{\"x\":1}");
    assert_int_equal(c.opts.override.presence, AUTH_OVERRIDE_FALSE);
    assert_int_equal(c.opts.override.force_positioning, AUTH_OVERRIDE_TRUE);
    assert_int_equal(c.opts.override.join_leave, AUTH_OVERRIDE_UNSET);
    auth_subscription_claims_cleanup(&c);
  }
  /* a subscription token is not a connection token */
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, p)), AUTH_INVALID);
  assert_int_equal(sub_status(k, flip_signature(hs_token("HS256", SECRET, p))), AUTH_INVALID);
  free(p);
  /* the minimum: a channel; user and client default to "" */
  struct auth_subscription_claims c;
  assert_int_equal(verify_sub(k, hs_token("HS256", SECRET, "{\"channel\":\"ch\"}"), &c), AUTH_OK);
  assert_string_equal(c.user, "");
  assert_string_equal(c.client, "");
  assert_int_equal(auth_subscription_expires_at(&c), 0);
  auth_subscription_claims_cleanup(&c);
  static const char *const bad[] = {"{\"sub\":\"u\"}",
                                    "{\"channel\":\"\"}",
                                    "{\"channel\":5}",
                                    "{\"channel\":\"ch\",\"client\":[]}",
                                    "{\"channel\":\"ch\",\"b64data\":\"!\"}",
                                    "{\"channel\":\"ch\",\"override\":{\"presence\":1}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(sub_status(k, hs_token("HS256", SECRET, bad[i])), AUTH_INVALID);
  p = fmt("{\"channel\":\"ch\",\"exp\":%lld}", (long long)NOW - 1);
  assert_int_equal(sub_status(k, hs_token("HS256", SECRET, p)), AUTH_EXPIRED);
  free(p);
  p = fmt("{\"channel\":\"ch\",\"nbf\":%lld}", (long long)NOW + 100);
  assert_int_equal(sub_status(k, rs_token("RS256", p)), AUTH_EXPIRED);
  free(p);
  auth_keys_free(k);
}

static void keys_new_errors(void **state) {
  (void)state;
  static const char *const bad[] = {
      "garbage",
      "-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n",
      "-----BEGIN RSA PUBLIC KEY-----\n-----END RSA PUBLIC KEY-----\n",
  };
  char err[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    assert_null(auth_keys_new(SECRET, bad[i], err, sizeof err));
    assert_non_null(strstr(err, "token_rsa_public_key"));
  }
  err[0] = '\0';
  assert_null(auth_keys_new(NULL, ec_spki_pem, err, sizeof err));
  assert_non_null(strstr(err, "not an RSA key"));
  /* nothing configured is allowed (every token is then invalid) */
  struct auth_keys *k = auth_keys_new(NULL, NULL, err, sizeof err);
  assert_non_null(k);
  assert_false(auth_keys_configured(k));
  auth_keys_free(k);
  auth_keys_free(NULL);
}

static void base64_decoding(void **state) {
  (void)state;
  static const struct {
    const char *in;
    bool url;
    enum auth_status want;
    const char *out;
    size_t len;
  } cases[] = {
      {"", true, AUTH_OK, "", 0},
      {"QQ", true, AUTH_OK, "A", 1},
      {"QUI", true, AUTH_OK, "AB", 2},
      {"QUJD", true, AUTH_OK, "ABC", 3},
      {"-_8", true, AUTH_OK, "\xfb\xff", 2},
      {"Q", true, AUTH_INVALID, NULL, 0},
      {"QQ==", true, AUTH_INVALID, NULL, 0},
      {"+/8", true, AUTH_INVALID, NULL, 0},
      {"QQ==", false, AUTH_OK, "A", 1},
      {"QUI=", false, AUTH_OK, "AB", 2},
      {"+/8=", false, AUTH_OK, "\xfb\xff", 2},
      {"QQ", false, AUTH_INVALID, NULL, 0},
      {"Q===", false, AUTH_INVALID, NULL, 0},
      {"====", false, AUTH_INVALID, NULL, 0},
      {"Q=Q=", false, AUTH_INVALID, NULL, 0},
      {"-_8=", false, AUTH_INVALID, NULL, 0},
      {"QU I", false, AUTH_INVALID, NULL, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ProtobufCBinaryData b = {0};
    enum auth_status st = auth_base64_decode(cases[i].in, strlen(cases[i].in), cases[i].url, &b);
    if (st != cases[i].want) fail_msg("\"%s\" (url %d): status %d", cases[i].in, cases[i].url, st);
    if (st == AUTH_OK) assert_bytes(b, cases[i].out, cases[i].len);
    free(b.data);
  }
}

/* Many threads, one struct auth_keys: every verification must succeed (and ASan/TSan stay quiet). */
struct worker {
  const struct auth_keys *keys;
  const char *hs, *rs, *forged;
  int failures;
};

static void *verify_many(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 200; i++) {
    struct auth_connection_claims c;
    const char *t = i % 3 == 0 ? w->rs : i % 3 == 1 ? w->hs : w->forged;
    enum auth_status st = auth_verify_connection(w->keys, t, NOW, &c, NULL, 0);
    if (st != (t == w->forged ? AUTH_INVALID : AUTH_OK)) w->failures++;
    auth_connection_claims_cleanup(&c);
  }
  return NULL;
}

static void concurrent_verification(void **state) {
  (void)state;
  struct auth_keys *k = keys(SECRET, rsa_pkcs1_pem);
  char *hs = hs_token("HS256", SECRET, "{\"sub\":\"u\",\"info\":{\"a\":[1,2,3]}}");
  char *rs = rs_token("RS256", "{\"sub\":\"u\",\"channels\":[\"a\",\"b\"]}");
  char *forged = hs_token("HS256", rsa_pkcs1_pem, "{\"sub\":\"u\"}");
  pthread_t threads[4];
  struct worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (struct worker){.keys = k, .hs = hs, .rs = rs, .forged = forged};
    assert_int_equal(pthread_create(&threads[i], NULL, verify_many, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(threads[i], NULL);
    assert_int_equal(w[i].failures, 0);
  }
  free(hs);
  free(rs);
  free(forged);
  auth_keys_free(k);
}

/* ---- ECDSA, audience and issuer, JWKS ---- */

/* The three ES algorithms, their curve and the size of r and of s. */
static const struct es_case {
  const char *alg, *curve;
  size_t half;
} es_cases[] = {{"ES256", "P-256", 32}, {"ES384", "P-384", 48}, {"ES512", "P-521", 66}};

/* A JWS ECDSA signature (r || s, each HALF bytes) by KEY over INPUT with DIGEST. */
static void es_sign(EVP_PKEY *key, const char *digest, size_t half, const char *input, struct sig *s) {
  unsigned char der[256];
  size_t der_len = sizeof der;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, digest, NULL, NULL, key, NULL), 1);
  assert_int_equal(EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input, strlen(input)), 1);
  EVP_MD_CTX_free(ctx);
  const unsigned char *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
  assert_non_null(es);
  assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), s->b, (int)half), (int)half);
  assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), s->b + half, (int)half), (int)half);
  s->len = 2 * half;
  ECDSA_SIG_free(es);
}

/* An ES token over PAYLOAD by KEY; TRIM > 0 drops bytes of the signature, < 0 appends zero bytes,
 * FLIP flips a bit of it; KID (may be NULL) goes into the header. */
static char *es_token_ex(EVP_PKEY *key, const struct es_case *c, const char *payload, int trim, bool flip,
                         const char *kid) {
  char *header = kid ? fmt("{\"alg\":\"%s\",\"kid\":\"%s\"}", c->alg, kid) : fmt("{\"alg\":\"%s\"}", c->alg);
  char *digest = fmt("SHA%s", c->alg + 2);
  char *input = signing_input(header, payload);
  struct sig s;
  es_sign(key, digest, c->half, input, &s);
  if (trim > 0) s.len -= (size_t)trim;
  for (int i = 0; i > trim; i--) s.b[s.len++] = 0;
  if (flip) s.b[3] ^= 0x10;
  free(header);
  free(digest);
  return finish(input, &s);
}

static char *es_token(EVP_PKEY *key, const struct es_case *c, const char *payload) {
  return es_token_ex(key, c, payload, 0, false, NULL);
}

static struct auth_keys *keys_with(const struct auth_settings *set) {
  char err[256] = "";
  struct auth_keys *k = auth_keys_new_with(set, err, sizeof err);
  if (k == NULL) fail_msg("auth_keys_new_with: %s", err);
  return k;
}

static void ecdsa_algorithms_verify(void **state) {
  (void)state;
  for (size_t i = 0; i < 3; i++) {
    const struct es_case *c = &es_cases[i];
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", c->curve);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", c->curve);
    char *pem = pem_of(key, "SubjectPublicKeyInfo");
    struct auth_keys *k = keys_with(&(struct auth_settings){.ecdsa_public_pem = pem});
    assert_true(auth_keys_configured(k));
    struct auth_connection_claims cl;
    assert_int_equal(verify_conn(k, es_token(key, c, "{\"sub\":\"ec-user\"}"), &cl), AUTH_OK);
    assert_string_equal(cl.user, "ec-user");
    auth_connection_claims_cleanup(&cl);
    assert_int_equal(sub_status(k, es_token(key, c, "{\"sub\":\"u\",\"channel\":\"$c\"}")), AUTH_OK);
    /* a flipped bit, one byte short, one byte long, a signature by another key */
    assert_int_equal(conn_status(k, es_token_ex(key, c, "{}", 0, true, NULL)), AUTH_INVALID);
    assert_int_equal(conn_status(k, es_token_ex(key, c, "{}", 1, false, NULL)), AUTH_INVALID);
    assert_int_equal(conn_status(k, es_token_ex(key, c, "{}", -1, false, NULL)), AUTH_INVALID);
    assert_int_equal(conn_status(k, es_token(other, c, "{}")), AUTH_INVALID);
    /* the other two ES algorithms are not configured by a key on this curve, even when the
     * signature is made with a key of their curve */
    for (size_t j = 0; j < 3; j++) {
      if (j == i) continue;
      EVP_PKEY *theirs = EVP_PKEY_Q_keygen(NULL, NULL, "EC", es_cases[j].curve);
      assert_int_equal(conn_status(k, es_token(theirs, &es_cases[j], "{}")), AUTH_INVALID);
      EVP_PKEY_free(theirs);
    }
    auth_keys_free(k);
    free(pem);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
  }
}

static void ecdsa_der_signature_refused(void **state) {
  (void)state;
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  char *pem = pem_of(key, "SubjectPublicKeyInfo");
  struct auth_keys *k = keys_with(&(struct auth_settings){.ecdsa_public_pem = pem});
  /* OpenSSL's own DER encoding is what a careless signer sends; a JWS verifier must refuse it */
  char *input = signing_input("{\"alg\":\"ES256\"}", "{}");
  struct sig s = {.len = sizeof s.b};
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL), 1);
  assert_int_equal(EVP_DigestSign(ctx, s.b, &s.len, (const unsigned char *)input, strlen(input)), 1);
  EVP_MD_CTX_free(ctx);
  assert_int_equal(conn_status(k, finish(input, &s)), AUTH_INVALID);
  /* all zeros, of the right length */
  struct sig zero = {.len = 64};
  memset(zero.b, 0, 64);
  assert_int_equal(conn_status(k, finish(signing_input("{\"alg\":\"ES256\"}", "{}"), &zero)), AUTH_INVALID);
  auth_keys_free(k);
  free(pem);
  EVP_PKEY_free(key);
}

static void ecdsa_alg_confusion(void **state) {
  (void)state;
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  char *pem = pem_of(key, "SubjectPublicKeyInfo");
  struct auth_keys *ec_only = keys_with(&(struct auth_settings){.ecdsa_public_pem = pem});
  /* ES→HS: the public PEM text as an HMAC secret; an RS token; alg none */
  assert_int_equal(conn_status(ec_only, hs_token("HS256", pem, "{\"sub\":\"admin\"}")), AUTH_INVALID);
  assert_int_equal(conn_status(ec_only, rs_token("RS256", "{}")), AUTH_INVALID);
  assert_int_equal(conn_status(ec_only, hs_token_raw("{\"alg\":\"none\"}", "{}", NULL, NULL)), AUTH_INVALID);
  /* an ES token against an HMAC + RSA setup */
  struct auth_keys *hs_rs = keys(SECRET, rsa_spki_pem);
  assert_int_equal(conn_status(hs_rs, es_token(key, &es_cases[0], "{}")), AUTH_INVALID);
  auth_keys_free(hs_rs);
  auth_keys_free(ec_only);
  /* PEM of the wrong type or curve for token_ecdsa_public_key */
  char err[256] = "";
  assert_null(auth_keys_new_with(&(struct auth_settings){.ecdsa_public_pem = rsa_spki_pem}, err, sizeof err));
  assert_non_null(strstr(err, "token_ecdsa_public_key"));
  EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
  char *k1_pem = pem_of(k1, "SubjectPublicKeyInfo");
  err[0] = '\0';
  assert_null(auth_keys_new_with(&(struct auth_settings){.ecdsa_public_pem = k1_pem}, err, sizeof err));
  assert_non_null(strstr(err, "P-256"));
  free(k1_pem);
  EVP_PKEY_free(k1);
  free(pem);
  EVP_PKEY_free(key);
}

static void audience_and_issuer(void **state) {
  (void)state;
  struct auth_keys *k =
      keys_with(&(struct auth_settings){.hmac_secret = SECRET, .audience = "app", .issuer = "https://iss"});
  const char *iss = "\"iss\":\"https://iss\"";
  struct {
    const char *claims;
    enum auth_status want;
  } cases[] = {
      {"\"aud\":\"app\"", AUTH_OK},        {"\"aud\":[\"other\",\"app\"]", AUTH_OK},
      {"\"aud\":\"other\"", AUTH_INVALID}, {"\"aud\":\"App\"", AUTH_INVALID},
      {"\"aud\":[]", AUTH_INVALID},        {"\"aud\":[\"a\",\"b\"]", AUTH_INVALID},
      {"\"aud\":5", AUTH_INVALID},         {"\"aud\":null", AUTH_INVALID},
      {"\"x\":1", AUTH_INVALID}, /* no aud at all */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *payload = fmt("{\"sub\":\"u\",%s,%s}", cases[i].claims, iss);
    assert_int_equal(conn_status(k, hs_token("HS256", SECRET, payload)), cases[i].want);
    char *sub = fmt("{\"sub\":\"u\",\"channel\":\"$c\",%s,%s}", cases[i].claims, iss);
    assert_int_equal(sub_status(k, hs_token("HS256", SECRET, sub)), cases[i].want);
    free(payload);
    free(sub);
  }
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, "{\"aud\":\"app\",\"iss\":\"https://evil\"}")),
                   AUTH_INVALID);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, "{\"aud\":\"app\"}")), AUTH_INVALID);
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, "{\"aud\":\"app\",\"iss\":[\"https://iss\"]}")),
                   AUTH_INVALID);
  /* the mismatch is INVALID even for an expired token: the audience is checked first */
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, "{\"aud\":\"x\",\"exp\":1}")), AUTH_INVALID);
  auth_keys_free(k);
  /* without the options, any aud and iss of the right type pass */
  struct auth_keys *open = keys(SECRET, NULL);
  assert_int_equal(conn_status(open, hs_token("HS256", SECRET, "{\"aud\":\"whatever\",\"iss\":\"x\"}")),
                   AUTH_OK);
  auth_keys_free(open);
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

/* With a JWKS endpoint that cannot be reached, an RS or ES token with a kid needs keys (and a
 * refresh reports back once it has failed), one without a kid is invalid, the PEM keys are not
 * used, and HS tokens still verify with the secret. */
static void jwks_unknown_kid(void **state) {
  (void)state;
  char err[256] = "";
  struct jwks *j = jwks_new("http://127.0.0.1:1/jwks.json", err, sizeof err);
  assert_non_null(j);
  struct auth_keys *k =
      keys_with(&(struct auth_settings){.hmac_secret = SECRET, .rsa_public_pem = rsa_spki_pem, .jwks = j});
  EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  assert_int_equal(conn_status(k, es_token_ex(ec, &es_cases[0], "{}", 0, false, "k1")), AUTH_NEED_KEYS);
  assert_int_equal(conn_status(k, rs_token("RS256", "{}")), AUTH_INVALID); /* no kid; PEM key unused */
  assert_int_equal(conn_status(k, hs_token("HS256", SECRET, "{}")), AUTH_OK);
  pthread_mutex_lock(&done_lock);
  done_calls = 0;
  pthread_mutex_unlock(&done_lock);
  assert_int_equal(auth_keys_refresh(k, count_done, NULL), 0);
  pthread_mutex_lock(&done_lock);
  while (done_calls == 0) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
  assert_int_equal(conn_status(k, es_token_ex(ec, &es_cases[0], "{}", 0, false, "k1")), AUTH_NEED_KEYS);
  /* a waiter still registered when the keys are freed is called by the ending thread */
  assert_int_equal(auth_keys_refresh(k, count_done, NULL), 0);
  auth_keys_free(k);
  pthread_mutex_lock(&done_lock);
  while (done_calls < 2) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
  assert_true(jwks_wait_stopped(JWKS_EXIT_WAIT_MS));
  struct auth_keys *plain = keys(SECRET, NULL);
  assert_int_equal(auth_keys_refresh(plain, count_done, NULL), -1); /* no endpoint */
  auth_keys_free(plain);
  EVP_PKEY_free(ec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pems_have_both_headers),
      cmocka_unit_test(hmac_algorithms_verify),
      cmocka_unit_test(rsa_algorithms_verify),
      cmocka_unit_test(both_families_configured),
      cmocka_unit_test(expired_and_not_yet_valid),
      cmocka_unit_test(extreme_times),
      cmocka_unit_test(bad_signature),
      cmocka_unit_test(alg_none_and_unknown),
      cmocka_unit_test(wrong_family_and_key_confusion),
      cmocka_unit_test(malformed_tokens),
      cmocka_unit_test(wrong_claim_types),
      cmocka_unit_test(info_raw_json_and_b64info),
      cmocka_unit_test(channels_and_subs),
      cmocka_unit_test(connection_token_with_channel),
      cmocka_unit_test(expire_at_overrides_exp),
      cmocka_unit_test(subscription_claims),
      cmocka_unit_test(keys_new_errors),
      cmocka_unit_test(base64_decoding),
      cmocka_unit_test(concurrent_verification),
      cmocka_unit_test(ecdsa_algorithms_verify),
      cmocka_unit_test(ecdsa_der_signature_refused),
      cmocka_unit_test(ecdsa_alg_confusion),
      cmocka_unit_test(audience_and_issuer),
      cmocka_unit_test(jwks_unknown_kid),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
