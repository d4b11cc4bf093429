/* auth: the cryptographic half of JWT verification (the claims half is auth_claims.c). A compact JWS
 * "header.payload.signature" is split, its header's `alg` looked up in one table (name → digest,
 * family, curve), and the signature checked with OpenSSL 3 EVP: HMAC through EVP_MAC compared with
 * CRYPTO_memcmp, RSA PKCS#1 v1.5 and ECDSA through EVP_DigestVerify (a JWS carries ECDSA's r and s as
 * fixed-size big-endian halves, RFC 7518 §3.4; they are re-encoded as the DER OpenSSL verifies). The
 * key of an RS/ES token is the configured PEM key, or, with a JWKS endpoint, the set's key named by the
 * header's `kid` (jwks.c). The payload is not even decoded before the signature verifies; then `aud`
 * and `iss` are held to token_audience and token_issuer when those are set.
 *
 * Invariants: an algorithm is usable only when its family's key was configured (an ES alg only when
 * the configured EC key is on that alg's curve), so `alg: none`, an unknown alg and an HS token
 * against an RSA-only setup (the RS→HS key-confusion attack) all fail the same lookup. struct
 * auth_keys is read-only after auth_keys_new (its JWKS cache locks itself): each verification
 * duplicates the keyed HMAC template or creates its own EVP_MD_CTX, so concurrent callers share
 * nothing mutable. Failed verifications clear the calling thread's OpenSSL error queue. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth.h"
#include "jwks.h"

enum alg_family { ALG_HMAC, ALG_RSA, ALG_ECDSA };

/* Every algorithm streamd accepts; anything else (`none` included) is AUTH_INVALID. */
static const struct alg {
  const char *name;   /* the header's `alg` */
  const char *digest; /* OpenSSL digest name */
  enum alg_family family;
  const char *curve; /* ECDSA: the OpenSSL group the key must be on */
  size_t half;       /* ECDSA: bytes of r and of s in the JWS signature */
} algs[] = {
    {"HS256", "SHA256", ALG_HMAC, NULL, 0},
    {"HS384", "SHA384", ALG_HMAC, NULL, 0},
    {"HS512", "SHA512", ALG_HMAC, NULL, 0},
    {"RS256", "SHA256", ALG_RSA, NULL, 0},
    {"RS384", "SHA384", ALG_RSA, NULL, 0},
    {"RS512", "SHA512", ALG_RSA, NULL, 0},
    {"ES256", "SHA256", ALG_ECDSA, "prime256v1", 32},
    {"ES384", "SHA384", ALG_ECDSA, "secp384r1", 48},
    {"ES512", "SHA512", ALG_ECDSA, "secp521r1", 66},
};

/* What each family's static key is called in the configuration and which OpenSSL key type it is. */
static const struct family {
  const char *config_key;
  const char *key_type;
} families[] = {
    [ALG_HMAC] = {"token_hmac_secret_key", NULL},
    [ALG_RSA] = {"token_rsa_public_key", "RSA"},
    [ALG_ECDSA] = {"token_ecdsa_public_key", "EC"},
};
#define N_ALGS (sizeof algs / sizeof algs[0])

/* What each algorithm needs, prepared once; all NULL for an algorithm whose key is not configured. */
struct alg_key {
  EVP_MAC_CTX *hmac; /* HMAC already keyed with the secret: a template, duplicated per verification */
  EVP_MD *md;        /* the fetched digest, for RSA and ECDSA */
  EVP_PKEY *pkey;    /* the static public key (borrowed from auth_keys.pem_key); NULL with JWKS */
};

struct auth_keys {
  struct alg_key by_alg[N_ALGS]; /* indexed like algs[] */
  EVP_PKEY *pem_key[3];          /* the static RSA and EC keys, indexed by family */
  char *audience, *issuer;       /* NULL = not checked */
  struct jwks *jwks;             /* RS and ES keys by kid, or NULL */
};

/* The three parts of a compact JWS; the signing input is header '.' payload, starting at header. */
struct jws {
  const char *header, *payload, *sig;
  size_t header_len, payload_len, sig_len;
};

void auth_say(char *buf, size_t len, const char *fmt, ...) {
  if (buf == NULL || len == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
}

/* Reports WHAT with OpenSSL's reason for the latest error, and empties the thread's error queue. */
static void say_openssl(char *err, size_t errlen, const char *what) {
  const char *reason = ERR_reason_error_string(ERR_peek_last_error());
  auth_say(err, errlen, "%s%s%s%s", what, reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
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

bool auth_curve_fits(EVP_PKEY *key, const char *alg) {
  char group[64];
  size_t i = 0;
  while (i < N_ALGS && strcmp(algs[i].name, alg) != 0) i++;
  if (i == N_ALGS || algs[i].family != ALG_ECDSA || !EVP_PKEY_is_a(key, "EC")) return false;
  return EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) == 1 &&
         strcmp(group, algs[i].curve) == 0;
}

/* Fetches the digests of FAMILY's algorithms and, when KEY is given, lends it to those whose curve it
 * fits (every RSA alg; the one ES alg of an EC key's curve). */
static int prepare_family(struct auth_keys *k, enum alg_family family, EVP_PKEY *key, char *err,
                          size_t errlen) {
  for (size_t i = 0; i < N_ALGS; i++) {
    if (algs[i].family != family) continue;
    if (key != NULL && family == ALG_ECDSA && !auth_curve_fits(key, algs[i].name)) continue;
    k->by_alg[i].md = EVP_MD_fetch(NULL, algs[i].digest, NULL);
    k->by_alg[i].pkey = key;
    if (k->by_alg[i].md == NULL) {
      say_openssl(err, errlen, "digest unavailable");
      return -1;
    }
  }
  return 0;
}

/* OpenSSL 3's PEM_read_bio_PUBKEY decodes through OSSL_DECODER, which takes both SubjectPublicKeyInfo
 * ("BEGIN PUBLIC KEY") and PKCS#1 ("BEGIN RSA PUBLIC KEY"); the unit tests hold it to that. */
static int prepare_pem(struct auth_keys *k, enum alg_family family, const char *pem, char *err,
                       size_t errlen) {
  const struct family *f = &families[family];
  BIO *bio = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *key = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  k->pem_key[family] = key;
  if (key == NULL) {
    char what[96];
    auth_say(what, sizeof what, "%s: no PEM public key found", f->config_key);
    say_openssl(err, errlen, what);
    return -1;
  }
  if (!EVP_PKEY_is_a(key, f->key_type)) {
    auth_say(err, errlen, "%s: a %s key, not an %s key", f->config_key, EVP_PKEY_get0_type_name(key), f->key_type);
    return -1;
  }
  bool fits = false;
  for (size_t i = 0; i < N_ALGS && family == ALG_ECDSA; i++)
    fits = fits || (algs[i].family == ALG_ECDSA && auth_curve_fits(key, algs[i].name));
  if (family == ALG_ECDSA && !fits) {
    auth_say(err, errlen, "%s: the key is not on P-256, P-384 or P-521", f->config_key);
    return -1;
  }
  return prepare_family(k, family, key, err, errlen);
}

static int copy_opt(char **dst, const char *src) {
  if (src == NULL || src[0] == '\0') return 0;
  *dst = strdup(src);
  return *dst != NULL ? 0 : -1;
}

struct auth_keys *auth_keys_new_with(const struct auth_settings *set, char *err, size_t errlen) {
  struct auth_keys *k = calloc(1, sizeof *k);
  if (k == NULL) {
    jwks_free(set->jwks);
    auth_say(err, errlen, "out of memory");
    return NULL;
  }
  k->jwks = set->jwks; /* ours from here on, even on failure */
  bool given[3] = {set->hmac_secret && set->hmac_secret[0], set->rsa_public_pem && set->rsa_public_pem[0],
                   set->ecdsa_public_pem && set->ecdsa_public_pem[0]};
  const char *pem[3] = {NULL, set->rsa_public_pem, set->ecdsa_public_pem};
  int rc = given[ALG_HMAC] ? prepare_hmac(k, set->hmac_secret, err, errlen) : 0;
  for (int f = ALG_RSA; f <= ALG_ECDSA && rc == 0; f++) {
    if (k->jwks != NULL) /* the endpoint's keys replace the static ones */
      rc = prepare_family(k, (enum alg_family)f, NULL, err, errlen);
    else if (given[f])
      rc = prepare_pem(k, (enum alg_family)f, pem[f], err, errlen);
  }
  if (rc == 0 && (copy_opt(&k->audience, set->audience) != 0 || copy_opt(&k->issuer, set->issuer) != 0)) {
    auth_say(err, errlen, "out of memory");
    rc = -1;
  }
  if (rc != 0) {
    auth_keys_free(k);
    return NULL;
  }
  return k;
}

struct auth_keys *auth_keys_new(const char *hmac_secret, const char *rsa_public_pem, char *err,
                                size_t errlen) {
  struct auth_settings set = {.hmac_secret = hmac_secret, .rsa_public_pem = rsa_public_pem};
  return auth_keys_new_with(&set, err, errlen);
}

void auth_keys_free(struct auth_keys *keys) {
  if (keys == NULL) return;
  for (size_t i = 0; i < N_ALGS; i++) {
    EVP_MAC_CTX_free(keys->by_alg[i].hmac);
    EVP_MD_free(keys->by_alg[i].md);
  }
  for (size_t f = 0; f < 3; f++) EVP_PKEY_free(keys->pem_key[f]);
  jwks_free(keys->jwks);
  free(keys->audience);
  free(keys->issuer);
  free(keys);
}

int auth_keys_refresh(const struct auth_keys *keys, void (*done)(void *arg), void *arg) {
  if (keys == NULL || keys->jwks == NULL) return -1;
  return jwks_refresh(keys->jwks, done, arg);
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

/* What the header says: the algorithm (index into algs[]) and the key id (`kid`, "" when absent). */
struct jws_header {
  size_t alg;
  char kid[JWKS_KID_MAX + 1];
};

/* Finds the header's algorithm in algs[] and checks that its key is configured. A `crit` header names
 * extensions we would have to understand (RFC 7515 §4.1.11); we understand none. */
static enum auth_status header_alg(const struct auth_keys *k, const struct jws *j, struct jws_header *out,
                                   const char **why) {
  json_t *h = NULL;
  enum auth_status st = segment_object(j->header, j->header_len, &h);
  if (st != AUTH_OK) {
    *why = "malformed header";
    return st;
  }
  const char *name = json_string_value(json_object_get(h, "alg"));
  json_t *kid = json_object_get(h, "kid");
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
  else if (kid != NULL && (!json_is_string(kid) || json_string_length(kid) > JWKS_KID_MAX))
    *why = "bad kid in header";
  else
    st = AUTH_OK;
  out->alg = i;
  snprintf(out->kid, sizeof out->kid, "%s", kid != NULL && st == AUTH_OK ? json_string_value(kid) : "");
  json_decref(h);
  return st;
}

/* The public key for an RS/ES token: the static key, or the JWKS key named by the header's kid (a
 * new reference either way, for the caller to free). NULL with *ST and *WHY set: AUTH_NEED_KEYS when
 * the set does not know the kid (yet), AUTH_INVALID when the key cannot serve this algorithm. */
static EVP_PKEY *token_key(const struct auth_keys *k, const struct jws_header *h, enum auth_status *st,
                           const char **why) {
  const struct alg *a = &algs[h->alg];
  *st = AUTH_INVALID;
  if (k->jwks == NULL) {
    if (EVP_PKEY_up_ref(k->by_alg[h->alg].pkey) == 1) return k->by_alg[h->alg].pkey;
    *st = AUTH_ERROR;
    *why = "key reference failed";
    return NULL;
  }
  if (h->kid[0] == '\0') {
    *why = "no kid in header (keys come from the JWKS endpoint)";
    return NULL;
  }
  char key_alg[JWKS_ALG_MAX + 1];
  EVP_PKEY *key = jwks_key(k->jwks, h->kid, key_alg);
  if (key == NULL) {
    *st = AUTH_NEED_KEYS;
    *why = "unknown kid";
    return NULL;
  }
  bool fits = EVP_PKEY_is_a(key, families[a->family].key_type) &&
              (a->family != ALG_ECDSA || auth_curve_fits(key, a->name)) &&
              (key_alg[0] == '\0' || strcmp(key_alg, a->name) == 0);
  if (fits) return key;
  EVP_PKEY_free(key);
  *why = "the kid's key is not for this alg";
  return NULL;
}

typedef enum auth_status (*verify_fn)(const struct auth_keys *k, size_t alg, EVP_PKEY *key,
                                      const uint8_t *msg, size_t len, const ProtobufCBinaryData *sig);

static enum auth_status hmac_verify(const struct auth_keys *k, size_t alg, EVP_PKEY *key, const uint8_t *msg,
                                    size_t len, const ProtobufCBinaryData *sig) {
  (void)key;
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

/* EVP_DigestVerify of SIG over MSG with KEY, PAD the RSA padding (0: none to set). */
static enum auth_status digest_verify(const EVP_MD *md, EVP_PKEY *key, int pad, const uint8_t *msg,
                                      size_t len, const unsigned char *sig, size_t sig_len) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  if (ctx == NULL) return AUTH_ERROR;
  bool ok = EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key) == 1 &&
            (pad == 0 || EVP_PKEY_CTX_set_rsa_padding(pctx, pad) == 1) &&
            EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1;
  EVP_MD_CTX_free(ctx); /* frees PCTX too */
  return ok ? AUTH_OK : AUTH_INVALID;
}

/* RS*: RSASSA-PKCS1-v1_5 (RFC 7518 §3.3); a signature of the wrong length simply fails to verify. */
static enum auth_status rsa_verify(const struct auth_keys *k, size_t alg, EVP_PKEY *key, const uint8_t *msg,
                                   size_t len, const ProtobufCBinaryData *sig) {
  return digest_verify(k->by_alg[alg].md, key, RSA_PKCS1_PADDING, msg, len, sig->data, sig->len);
}

/* ES*: the JWS signature is r || s, each exactly the curve's size (RFC 7518 §3.4): anything else is
 * refused before OpenSSL sees it; the pair is re-encoded as the DER ECDSA-Sig-Value EVP verifies. */
static enum auth_status ecdsa_verify(const struct auth_keys *k, size_t alg, EVP_PKEY *key, const uint8_t *msg,
                                     size_t len, const ProtobufCBinaryData *sig) {
  size_t half = algs[alg].half;
  if (sig->len != 2 * half) return AUTH_INVALID;
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig->data, (int)half, NULL), *s = BN_bin2bn(sig->data + half, (int)half, NULL);
  unsigned char *der = NULL;
  int der_len = -1;
  if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1) {
    r = s = NULL; /* owned by ES now */
    der_len = i2d_ECDSA_SIG(es, &der);
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  if (der_len <= 0) return AUTH_ERROR;
  enum auth_status st = digest_verify(k->by_alg[alg].md, key, 0, msg, len, der, (size_t)der_len);
  OPENSSL_free(der);
  return st;
}

static const verify_fn verifiers[] = {
    [ALG_HMAC] = hmac_verify, [ALG_RSA] = rsa_verify, [ALG_ECDSA] = ecdsa_verify};

static enum auth_status jws_signature(const struct auth_keys *k, const struct jws_header *h,
                                      const struct jws *j, const char **why) {
  enum auth_status st = AUTH_OK;
  EVP_PKEY *key = algs[h->alg].family == ALG_HMAC ? NULL : token_key(k, h, &st, why);
  if (algs[h->alg].family != ALG_HMAC && key == NULL) return st;
  ProtobufCBinaryData sig = {0};
  st = auth_base64_decode(j->sig, j->sig_len, true, &sig);
  if (st == AUTH_OK) {
    size_t signed_len = j->header_len + 1 + j->payload_len;
    st = verifiers[algs[h->alg].family](k, h->alg, key, (const uint8_t *)j->header, signed_len, &sig);
    free(sig.data);
  }
  EVP_PKEY_free(key);
  if (st != AUTH_OK) *why = st == AUTH_ERROR ? "signature check failed (internal)" : "bad signature";
  return st;
}

/* `aud` (a string or an array of strings) must name AUDIENCE, `iss` must be ISSUER, when those are
 * configured; a token without the claim does not match. */
static bool audience_matches(const char *audience, json_t *aud) {
  size_t i;
  json_t *e;
  if (json_is_string(aud)) return strcmp(json_string_value(aud), audience) == 0;
  json_array_foreach(aud, i, e) {
    if (json_is_string(e) && strcmp(json_string_value(e), audience) == 0) return true;
  }
  return false; /* absent, or an array without it, or not a string at all */
}

static enum auth_status check_audience_issuer(const struct auth_keys *k, json_t *payload, const char **why) {
  const char *iss = json_string_value(json_object_get(payload, "iss"));
  if (k->audience != NULL && !audience_matches(k->audience, json_object_get(payload, "aud"))) {
    *why = "aud does not name token_audience";
    return AUTH_INVALID;
  }
  if (k->issuer != NULL && (iss == NULL || strcmp(iss, k->issuer) != 0)) {
    *why = "iss is not token_issuer";
    return AUTH_INVALID;
  }
  return AUTH_OK;
}

/* Everything up to and including the signature; on AUTH_OK *payload is the claims object (caller
 * decrefs). */
static enum auth_status verify_token(const struct auth_keys *k, const char *token, json_t **payload,
                                     const char **why) {
  struct jws j;
  struct jws_header h;
  enum auth_status st;
  if (k == NULL || token == NULL || !jws_split(token, &j)) {
    *why = "malformed token";
    return AUTH_INVALID;
  }
  if ((st = header_alg(k, &j, &h, why)) != AUTH_OK || (st = jws_signature(k, &h, &j, why)) != AUTH_OK) {
    ERR_clear_error();
    return st;
  }
  st = segment_object(j.payload, j.payload_len, payload);
  if (st != AUTH_OK) {
    *why = "malformed payload";
    return st;
  }
  st = check_audience_issuer(k, *payload, why);
  if (st != AUTH_OK) {
    json_decref(*payload);
    *payload = NULL;
  }
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
    auth_say(why, whylen, "%s", reason);
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
