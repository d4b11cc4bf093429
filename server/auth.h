/* auth: JWT verification for connection and subscription tokens (PROTOCOL.md §5.3), on OpenSSL 3 EVP
 * and jansson. A token is accepted only when its header names an algorithm whose key is configured
 * (HS256/384/512 with token_hmac_secret_key, RS256/384/512 with token_rsa_public_key, ES256/384/512
 * with token_ecdsa_public_key on that alg's curve, or RS and ES keys by `kid` from
 * token_jwks_public_endpoint, which then replaces the two PEM keys) and its signature verifies; only
 * then are the claims decoded, type-checked and the times compared. The order of the outcomes is
 * fixed: malformed or unverifiable ⇒ AUTH_INVALID, before anything about the claims is believed; then
 * `aud`/`iss` not matching token_audience/token_issuer ⇒ AUTH_INVALID; then bad claim types ⇒
 * AUTH_INVALID; then exp/nbf ⇒ AUTH_EXPIRED.
 *
 * Threads: a struct auth_keys is immutable after auth_keys_new, so any number of threads may verify
 * with the same keys at once; this module takes no locks and keeps no global state (OpenSSL may take
 * its own internal read locks). Claim structs belong to the caller. */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/types.h>
#include <protobuf-c/protobuf-c.h>

/* What a verification concluded. The protocol layer maps these (§5.3): connect/refresh: INVALID ⇒
 * Disconnect 3500, EXPIRED ⇒ error 109; subscribe/sub_refresh: INVALID ⇒ error 103, EXPIRED ⇒ 109;
 * ERROR (out of memory, an OpenSSL failure that is not about the token) ⇒ internal error 100.
 * NEED_KEYS: the token names a `kid` the JWKS cache does not hold (yet): the caller asks for a refresh
 * (auth_keys_refresh) and verifies again once it is done; a second NEED_KEYS means INVALID. */
enum auth_status {
  AUTH_OK = 0,
  AUTH_EXPIRED = 1,   /* valid signature, but exp <= now or nbf > now */
  AUTH_INVALID = 2,   /* malformed, unsupported or unconfigured alg, bad signature, bad claims */
  AUTH_ERROR = 3,     /* not the token's fault */
  AUTH_NEED_KEYS = 4, /* unknown kid with a JWKS endpoint: verify again after a refresh */
};

/* A subscription option override from a token (`override: {presence: {value: bool}}`): UNSET when the
 * claim is absent or null, so the channel's namespace option applies. */
enum auth_override { AUTH_OVERRIDE_UNSET = 0, AUTH_OVERRIDE_FALSE, AUTH_OVERRIDE_TRUE };

struct auth_overrides {
  enum auth_override presence;
  enum auth_override join_leave;
  enum auth_override force_push_join_leave;
  enum auth_override force_recovery;
  enum auth_override force_positioning;
};

/* Options for one subscription: from a `subs` entry of a connection token, or from the top level of a
 * subscription token. INFO is `info` as compact raw JSON or the bytes of `b64info` (b64info wins when
 * both are given, as in Centrifugo); DATA likewise from `data`/`b64data`. len 0 = not given. */
struct auth_sub_options {
  ProtobufCBinaryData info;
  ProtobufCBinaryData data;
  struct auth_overrides override;
};

/* One entry of a connection token's `subs` map. */
struct auth_sub_claim {
  char *channel;
  struct auth_sub_options opts;
};

/* The claims of a verified connection token. All strings and buffers are malloc'd and owned by the
 * struct; release them with auth_connection_claims_cleanup. */
struct auth_connection_claims {
  char *user;        /* `sub`; "" = anonymous. Never NULL after AUTH_OK */
  int64_t exp;       /* `exp` (integer part), 0 when absent */
  int64_t expire_at; /* `expire_at` when has_expire_at; 0 there means "never expires" */
  bool has_expire_at;
  ProtobufCBinaryData info; /* `info` raw JSON / `b64info` bytes: ClientInfo.conn_info */
  char **channels;          /* `channels`: server-side subscriptions, in token order */
  size_t n_channels;
  struct auth_sub_claim *subs; /* `subs`: server-side subscriptions with options, in token order */
  size_t n_subs;
};

/* The claims of a verified subscription token; release with auth_subscription_claims_cleanup. */
struct auth_subscription_claims {
  char *user;    /* `sub`; "" = anonymous. Never NULL after AUTH_OK */
  char *channel; /* `channel`; never NULL or "" after AUTH_OK */
  char *client;  /* `client`; "" when absent (then any client of USER may use the token) */
  int64_t exp;
  int64_t expire_at;
  bool has_expire_at;
  struct auth_sub_options opts; /* info, data and overrides */
};

struct auth_keys;
struct jwks;

/* Everything the keys are built from; NULL or "" strings are "not configured". AUDIENCE and ISSUER,
 * when set, must be named by a token's `aud` (the string, or one element of the array) and be its
 * `iss`. JWKS (jwks_new), when given, is taken over by the keys (freed with them, even when
 * auth_keys_new_with fails) and replaces RSA_PUBLIC_PEM and ECDSA_PUBLIC_PEM. */
struct auth_settings {
  const char *hmac_secret;
  const char *rsa_public_pem;
  const char *ecdsa_public_pem; /* "BEGIN PUBLIC KEY" of a P-256, P-384 or P-521 key */
  const char *audience;
  const char *issuer;
  struct jwks *jwks;
};

/* Prepares the verification keys from SET. Returns a new struct the caller owns (auth_keys_free), or
 * NULL with a message in ERR naming the configuration key at fault (bad PEM, a key of the wrong type
 * or curve, out of memory). Strings are copied. Any thread. */
struct auth_keys *auth_keys_new_with(const struct auth_settings *set, char *err, size_t errlen);

/* Prepares the verification keys. HMAC_SECRET and RSA_PUBLIC_PEM may each be NULL or "" (that family
 * not configured; with neither, every token is AUTH_INVALID). RSA_PUBLIC_PEM is PEM text holding an
 * RSA key as "BEGIN PUBLIC KEY" (SubjectPublicKeyInfo) or "BEGIN RSA PUBLIC KEY" (PKCS#1). Returns a
 * new struct the caller owns (auth_keys_free), or NULL with a message in ERR (bad or non-RSA PEM, out
 * of memory). The secret is copied into OpenSSL contexts; the arguments stay the caller's. Any thread. */
struct auth_keys *auth_keys_new(const char *hmac_secret, const char *rsa_public_pem, char *err,
                                size_t errlen);

/* Frees KEYS (NULL is fine). No verification may be running with them. Never waits for the network
 * (a JWKS fetch in flight is abandoned by its thread). */
void auth_keys_free(struct auth_keys *keys);

/* Asks KEYS' JWKS cache to fetch the set again (at once, or as soon as its rate limit allows) and to
 * call DONE(ARG) once, on the JWKS thread, when that fetch has ended (fetched or failed) or when the
 * keys are freed first. Returns 0, or -1 (DONE not called) without a JWKS endpoint or with too many
 * callers waiting already. Any thread; never blocks on the network. */
int auth_keys_refresh(const struct auth_keys *keys, void (*done)(void *arg), void *arg);

/* True when KEY is an EC key on the curve of the ES algorithm named ALG ("ES256": P-256, ...). */
bool auth_curve_fits(EVP_PKEY *key, const char *alg);

/* True when at least one algorithm family has a key, i.e. a token could ever verify. */
bool auth_keys_configured(const struct auth_keys *keys);

/* Verifies the compact JWT TOKEN (NUL-terminated) against KEYS at time NOW_UNIX (seconds). On AUTH_OK
 * fills *OUT, which the caller then owns (auth_connection_claims_cleanup); on any other status *OUT is
 * left zeroed. A connection token must not carry a non-empty `channel` claim (that is a subscription
 * token). WHY (may be NULL) receives a short reason for logs; it never contains key material.
 * Thread-safe: many threads may call this with the same KEYS. */
enum auth_status auth_verify_connection(const struct auth_keys *keys, const char *token, int64_t now_unix,
                                        struct auth_connection_claims *out, char *why, size_t whylen);

/* The same for a subscription token: `channel` is required (missing or "" ⇒ AUTH_INVALID). Whether
 * `sub`, `channel` and `client` match the connection is the caller's check. */
enum auth_status auth_verify_subscription(const struct auth_keys *keys, const char *token, int64_t now_unix,
                                          struct auth_subscription_claims *out, char *why, size_t whylen);

/* When the connection (or subscription) expires, in unix seconds, 0 = never: `expire_at` when the
 * claim is present (0 there = never, even with `exp`), else `exp`, else never. */
int64_t auth_connection_expires_at(const struct auth_connection_claims *claims);
int64_t auth_subscription_expires_at(const struct auth_subscription_claims *claims);

/* Free everything the claims own and zero them. Safe on a zeroed struct and twice in a row. */
void auth_connection_claims_cleanup(struct auth_connection_claims *claims);
void auth_subscription_claims_cleanup(struct auth_subscription_claims *claims);

/* ---- building blocks, shared by auth.c and auth_claims.c and exercised by the unit tests ---- */

/* Decodes LEN characters of base64 at IN into OUT (malloc'd, caller frees out->data; non-NULL even
 * for zero bytes). URL: base64url without padding (JWT segments, RFC 7515 §2); otherwise standard
 * base64 with padding (b64info, b64data). Returns AUTH_OK, AUTH_INVALID (bad alphabet or length) or
 * AUTH_ERROR (out of memory). */
enum auth_status auth_base64_decode(const char *in, size_t len, bool url, ProtobufCBinaryData *out);

/* Decodes the claims of an already verified token from PAYLOAD (a JSON object, borrowed) and applies
 * the time checks at NOW_UNIX. Same outcomes and ownership as the auth_verify_* functions. */
enum auth_status auth_connection_claims_parse(json_t *payload, int64_t now_unix,
                                              struct auth_connection_claims *out, char *why, size_t whylen);
enum auth_status auth_subscription_claims_parse(json_t *payload, int64_t now_unix,
                                                struct auth_subscription_claims *out, char *why,
                                                size_t whylen);

/* Formats an explanation into BUF (LEN bytes; nothing when BUF is NULL or LEN 0): how the token
 * modules fill their WHY buffers. */
void auth_say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
