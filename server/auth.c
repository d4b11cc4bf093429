/* auth: the cryptographic half of JWT verification (the claims half is auth_claims.c). A compact JWS
 * "header.payload.signature" is split, its header's `alg` looked up in one table (name → digest,
 * family), and the signature checked with OpenSSL 3 EVP: HMAC through EVP_MAC compared with
 * CRYPTO_memcmp, RSA PKCS#1 v1.5 through EVP_DigestVerify. The payload is not even decoded before the
 * signature verifies.
 *
 * Invariants: an algorithm is usable only when its family's key was configured, so `alg: none`, an
 * unknown alg and an HS token against an RSA-only setup (the RS→HS key-confusion attack) all fail the
 * same lookup. struct auth_keys is read-only after auth_keys_new: each verification duplicates the
 * keyed HMAC template or creates its own EVP_MD_CTX, so concurrent callers share nothing mutable.
 * Failed verifications clear the calling thread's OpenSSL error queue. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth.h"

enum alg_family { ALG_HMAC, ALG_RSA };

/* Every algorithm streamd accepts; anything else (`none` included) is AUTH_INVALID. */
static const struct alg {
  const char *name;   /* the header's `alg` */
  const char *digest; /* OpenSSL digest name */
  enum alg_family family;
} algs[] = {
    {"HS256", "SHA256", ALG_HMAC}, {"HS384", "SHA384", ALG_HMAC}, {"HS512", "SHA512", ALG_HMAC},
    {"RS256", "SHA256", ALG_RSA},  {"RS384", "SHA384", ALG_RSA},  {"RS512", "SHA512", ALG_RSA},
};
#define N_ALGS (sizeof algs / sizeof algs[0])

/* What each algorithm needs, prepared once; all NULL for an algorithm whose key is not configured. */
struct alg_key {
  EVP_MAC_CTX *hmac; /* HMAC already keyed with the secret: a template, duplicated per verification */
  EVP_MD *md;        /* the fetched digest, for RSA */
};

struct auth_keys {
  struct alg_key by_alg[N_ALGS]; /* indexed like algs[] */
  EVP_PKEY *rsa;
};

/* The three parts of a compact JWS; the signing input is header '.' payload, starting at header. */
struct jws {
  const char *header, *payload, *sig;
  size_t header_len, payload_len, sig_len;
};

static void say(char *buf, size_t len, const char *fmt, ...) {
  if (buf == NULL || len == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
}

/* Reports WHAT with OpenSSL's reason for the latest error, and empties the thread's error queue. */
static void say_openssl(char *err, size_t errlen, const char *what) {
  const char *reason = ERR_reason_error_string(ERR_peek_last_error());
  say(err, errlen, "%s%s%s%s", what, reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
  ERR_clear_error();
}

/* ================================ keys ================================ */

/* An HMAC context keyed with SECRET for DIGEST, ready for EVP_MAC_CTX_dup; NULL on failure. */
static EVP_MAC_CTX *hmac_template(EVP_MAC *mac, const char *digest, const char *secret) {
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
                         OSSL_PARAM_construct_end()};
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
  if (ctx != NULL && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) == 1)
    return ctx;
  EVP_MAC_CTX_free(ctx);
  return NULL;
}

static int prepare_hmac(struct auth_keys *k, const char *secret, char *err, size_t errlen) {
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  int rc = mac != NULL ? 0 : -1;
  for (size_t i = 0; i < N_ALGS && rc == 0; i++) {
    if (algs[i].family != ALG_HMAC) continue;
    k->by_alg[i].hmac = hmac_template(mac, algs[i].digest, secret);
    if (k->by_alg[i].hmac == NULL) rc = -1;
  }
  EVP_MAC_free(mac); /* each context holds its own reference */
  if (rc != 0) say_openssl(err, errlen, "token_hmac_secret_key: cannot set up HMAC");
  return rc;
}

/* OpenSSL 3's PEM_read_bio_PUBKEY decodes through OSSL_DECODER, which takes both SubjectPublicKeyInfo
 * ("BEGIN PUBLIC KEY") and PKCS#1 ("BEGIN RSA PUBLIC KEY"); the unit tests hold it to that. */
static int prepare_rsa(struct auth_keys *k, const char *pem, char *err, size_t errlen) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  k->rsa = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (k->rsa == NULL) {
    say_openssl(err, errlen, "token_rsa_public_key: no PEM public key found");
    return -1;
  }
  if (!EVP_PKEY_is_a(k->rsa, "RSA")) {
    say(err, errlen, "token_rsa_public_key: a %s key, not an RSA key", EVP_PKEY_get0_type_name(k->rsa));
    return -1;
  }
  for (size_t i = 0; i < N_ALGS; i++) {
    if (algs[i].family != ALG_RSA) continue;
    k->by_alg[i].md = EVP_MD_fetch(NULL, algs[i].digest, NULL);
    if (k->by_alg[i].md == NULL) {
      say_openssl(err, errlen, "token_rsa_public_key: digest unavailable");
      return -1;
    }
  }
  return 0;
}

struct auth_keys *auth_keys_new(const char *hmac_secret, const char *rsa_public_pem, char *err,
                                size_t errlen) {
  struct auth_keys *k = calloc(1, sizeof *k);
  if (k == NULL) {
    say(err, errlen, "out of memory");
    return NULL;
  }
  if ((hmac_secret != NULL && hmac_secret[0] != '\0' && prepare_hmac(k, hmac_secret, err, errlen) != 0) ||
      (rsa_public_pem != NULL && rsa_public_pem[0] != '\0' &&
       prepare_rsa(k, rsa_public_pem, err, errlen) != 0)) {
    auth_keys_free(k);
    return NULL;
  }
  return k;
}

void auth_keys_free(struct auth_keys *keys) {
  if (keys == NULL) return;
  for (size_t i = 0; i < N_ALGS; i++) {
    EVP_MAC_CTX_free(keys->by_alg[i].hmac);
    EVP_MD_free(keys->by_alg[i].md);
  }
  EVP_PKEY_free(keys->rsa);
  free(keys);
}

static bool alg_configured(const struct auth_keys *k, size_t i) {
  return k->by_alg[i].hmac != NULL || k->by_alg[i].md != NULL;
}

bool auth_keys_configured(const struct auth_keys *keys) {
  for (size_t i = 0; keys != NULL && i < N_ALGS; i++)
    if (alg_configured(keys, i)) return true;
  return false;
}

/* ================================ base64 ================================ */

static bool b64_char(unsigned char c, bool url) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return url ? (c == '-' || c == '_') : (c == '+' || c == '/');
}

/* Checks the alphabet and the length and returns how many characters carry data (without the
 * padding), or SIZE_MAX when IN is not valid base64 of its kind. */
static size_t b64_body(const char *in, size_t len, bool url) {
  size_t pad = 0;
  if (!url) {
    if (len % 4 != 0) return SIZE_MAX;
    while (pad < 2 && pad < len && in[len - 1 - pad] == '=') pad++;
  }
  size_t body = len - pad;
  if (body % 4 == 1 || len > INT_MAX / 2) return SIZE_MAX; /* one char carries no whole byte */
  for (size_t i = 0; i < body; i++)
    if (!b64_char((unsigned char)in[i], url)) return SIZE_MAX;
  return body;
}

enum auth_status auth_base64_decode(const char *in, size_t len, bool url, ProtobufCBinaryData *out) {
  size_t body = b64_body(in, len, url);
  if (body == SIZE_MAX) return AUTH_INVALID;
  /* EVP_DecodeBlock wants the standard alphabet in padded quads; it returns whole quads' worth of
   * bytes (padding decodes as zeros), so the exact length is computed from the data characters. */
  size_t quads = (body + 3) / 4;
  unsigned char *text = malloc(quads * 4 + 1), *bin = malloc(quads * 3 + 1);
  if (text == NULL || bin == NULL) {
    free(text);
    free(bin);
    return AUTH_ERROR;
  }
  for (size_t i = 0; i < quads * 4; i++)
    text[i] = i >= body ? '=' : in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
  int n = EVP_DecodeBlock(bin, text, (int)(quads * 4));
  free(text);
  if (n < 0 || (size_t)n != quads * 3) {
    free(bin);
    return AUTH_INVALID;
  }
  out->data = bin;
  out->len = body * 3 / 4;
  return AUTH_OK;
}

/* ================================ the JWS ================================ */

/* Splits TOKEN into exactly three parts; header and payload must not be empty. */
static bool jws_split(const char *token, struct jws *j) {
  const char *d1 = strchr(token, '.');
  const char *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
  if (d2 == NULL || strchr(d2 + 1, '.') != NULL) return false;
  j->header = token;
  j->header_len = (size_t)(d1 - token);
  j->payload = d1 + 1;
  j->payload_len = (size_t)(d2 - j->payload);
  j->sig = d2 + 1;
  j->sig_len = strlen(j->sig);
  return j->header_len > 0 && j->payload_len > 0;
}

/* Decodes a base64url segment holding a JSON object into *out (caller decrefs). Duplicate keys are
 * rejected: a claim must not mean one thing to the issuer and another to us. */
static enum auth_status segment_object(const char *s, size_t len, json_t **out) {
  ProtobufCBinaryData raw = {0};
  enum auth_status st = auth_base64_decode(s, len, true, &raw);
  if (st != AUTH_OK) return st;
  json_error_t e;
  json_t *v = json_loadb((const char *)raw.data, raw.len, JSON_REJECT_DUPLICATES, &e);
  free(raw.data);
  if (!json_is_object(v)) {
    json_decref(v);
    return AUTH_INVALID;
  }
  *out = v;
  return AUTH_OK;
}

/* Finds the header's algorithm in algs[] and checks that its key is configured. A `crit` header names
 * extensions we would have to understand (RFC 7515 §4.1.11); we understand none. */
static enum auth_status header_alg(const struct auth_keys *k, const struct jws *j, size_t *alg,
                                   const char **why) {
  json_t *h = NULL;
  enum auth_status st = segment_object(j->header, j->header_len, &h);
  if (st != AUTH_OK) {
    *why = "malformed header";
    return st;
  }
  const char *name = json_string_value(json_object_get(h, "alg"));
  size_t i = 0;
  while (name != NULL && i < N_ALGS && strcmp(algs[i].name, name) != 0) i++;
  st = AUTH_INVALID;
  if (json_object_get(h, "crit") != NULL)
    *why = "unsupported crit header";
  else if (name == NULL)
    *why = "no alg in header";
  else if (i == N_ALGS)
    *why = "unsupported alg";
  else if (!alg_configured(k, i))
    *why = "no key configured for alg";
  else
    st = AUTH_OK;
  *alg = i;
  json_decref(h);
  return st;
}

typedef enum auth_status (*verify_fn)(const struct auth_keys *k, size_t alg, const uint8_t *msg, size_t len,
                                      const ProtobufCBinaryData *sig);

static enum auth_status hmac_verify(const struct auth_keys *k, size_t alg, const uint8_t *msg, size_t len,
                                    const ProtobufCBinaryData *sig) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(k->by_alg[alg].hmac);
  if (ctx == NULL) return AUTH_ERROR;
  bool done = EVP_MAC_update(ctx, msg, len) == 1 && EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) == 1;
  EVP_MAC_CTX_free(ctx);
  if (!done) return AUTH_ERROR;
  bool same = mac_len == sig->len && CRYPTO_memcmp(mac, sig->data, mac_len) == 0;
  OPENSSL_cleanse(mac, sizeof mac);
  return same ? AUTH_OK : AUTH_INVALID;
}

/* RS*: RSASSA-PKCS1-v1_5 (RFC 7518 §3.3); a signature of the wrong length simply fails to verify. */
static enum auth_status rsa_verify(const struct auth_keys *k, size_t alg, const uint8_t *msg, size_t len,
                                   const ProtobufCBinaryData *sig) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  if (ctx == NULL) return AUTH_ERROR;
  bool ok = EVP_DigestVerifyInit(ctx, &pctx, k->by_alg[alg].md, NULL, k->rsa) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
            EVP_DigestVerify(ctx, sig->data, sig->len, msg, len) == 1;
  EVP_MD_CTX_free(ctx); /* frees PCTX too */
  return ok ? AUTH_OK : AUTH_INVALID;
}

static const verify_fn verifiers[] = {[ALG_HMAC] = hmac_verify, [ALG_RSA] = rsa_verify};

static enum auth_status jws_signature(const struct auth_keys *k, size_t alg, const struct jws *j,
                                      const char **why) {
  ProtobufCBinaryData sig = {0};
  enum auth_status st = auth_base64_decode(j->sig, j->sig_len, true, &sig);
  if (st == AUTH_OK) {
    size_t signed_len = j->header_len + 1 + j->payload_len;
    st = verifiers[algs[alg].family](k, alg, (const uint8_t *)j->header, signed_len, &sig);
    free(sig.data);
  }
  if (st != AUTH_OK) *why = st == AUTH_ERROR ? "signature check failed (internal)" : "bad signature";
  return st;
}

/* Everything up to and including the signature; on AUTH_OK *payload is the claims object (caller
 * decrefs). */
static enum auth_status verify_token(const struct auth_keys *k, const char *token, json_t **payload,
                                     const char **why) {
  struct jws j;
  size_t alg;
  enum auth_status st;
  if (k == NULL || token == NULL || !jws_split(token, &j)) {
    *why = "malformed token";
    return AUTH_INVALID;
  }
  if ((st = header_alg(k, &j, &alg, why)) != AUTH_OK || (st = jws_signature(k, alg, &j, why)) != AUTH_OK) {
    ERR_clear_error();
    return st;
  }
  st = segment_object(j.payload, j.payload_len, payload);
  if (st != AUTH_OK) *why = "malformed payload";
  return st;
}

/* Verifies TOKEN, then hands its payload to PARSE (which fills OUT); the shared part of both verbs. */
static enum auth_status verify_and_parse(const struct auth_keys *keys, const char *token, int64_t now_unix,
                                         enum auth_status (*parse)(json_t *, int64_t, void *, char *, size_t),
                                         void *out, char *why, size_t whylen) {
  json_t *payload = NULL;
  const char *reason = NULL;
  enum auth_status st = verify_token(keys, token, &payload, &reason);
  if (st != AUTH_OK) {
    say(why, whylen, "%s", reason);
    return st;
  }
  st = parse(payload, now_unix, out, why, whylen);
  json_decref(payload);
  return st;
}

static enum auth_status parse_connection(json_t *payload, int64_t now, void *out, char *why, size_t len) {
  return auth_connection_claims_parse(payload, now, out, why, len);
}

static enum auth_status parse_subscription(json_t *payload, int64_t now, void *out, char *why, size_t len) {
  return auth_subscription_claims_parse(payload, now, out, why, len);
}

enum auth_status auth_verify_connection(const struct auth_keys *keys, const char *token, int64_t now_unix,
                                        struct auth_connection_claims *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  return verify_and_parse(keys, token, now_unix, parse_connection, out, why, whylen);
}

enum auth_status auth_verify_subscription(const struct auth_keys *keys, const char *token, int64_t now_unix,
                                          struct auth_subscription_claims *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  return verify_and_parse(keys, token, now_unix, parse_subscription, out, why, whylen);
}
