/* jwks: the public keys of a JSON Web Key Set endpoint (RFC 7517), for RS and ES tokens that name
 * their key by `kid` (token_jwks_public_endpoint). A document is parsed into OpenSSL keys (RSA from
 * `n`/`e`, EC from `crv`/`x`/`y`), kept by kid with their optional `alg`; keys whose `use` is not "sig",
 * of another `kty` or without a kid are skipped. A cache (struct jwks) owns one thread that fetches
 * the set at start, every JWKS_REFRESH_S seconds, and when a verifier meets an unknown kid
 * (jwks_refresh), at most once per JWKS_MIN_INTERVAL_MS; a failed fetch keeps the keys it had.
 *
 * Threads: jwks_key and jwks_refresh from any thread (a mutex guards the set; a key handed out is a
 * reference of the caller's, so a swap of the set never frees a key in use); jwks_new and jwks_free
 * from any thread, neither waits for the network: jwks_free tells the thread to stop (a transfer in
 * flight is aborted) and the thread frees the cache when it ends. The fetch is one function
 * (jwks_fetch) so it can move onto the server's shared HTTP client. */
#ifndef JWKS_H
#define JWKS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#define JWKS_KID_MAX 255          /* longest kid kept (longer: the key is skipped, the token invalid) */
#define JWKS_ALG_MAX 15           /* longest alg name kept */
#define JWKS_REFRESH_S 300        /* periodic refresh */
#define JWKS_MIN_INTERVAL_MS 1000 /* between two fetches, however many unknown kids arrive */
#define JWKS_FETCH_TIMEOUT_MS 3000
#define JWKS_MAX_DOCUMENT (1024 * 1024)
#define JWKS_MAX_WAITERS 4096
#define JWKS_EXIT_WAIT_MS 2000 /* jwks_wait_stopped at exit */

/* ---- a parsed set ---- */

struct jwks_set;

/* Parses the JWKS document DOC[0..LEN). Returns a new set (jwks_set_free), or NULL with ERR saying why
 * (not JSON, no `keys` array, out of memory). Keys that cannot be used are skipped; how many were is
 * stored in *SKIPPED (may be NULL) and the first reason in ERR. An empty set is not an error. */
struct jwks_set *jwks_parse(const char *doc, size_t len, size_t *skipped, char *err, size_t errlen);

/* How many keys SET holds. */
size_t jwks_set_count(const struct jwks_set *set);

/* The key of SET named KID as a new reference (EVP_PKEY_free it), with its `alg` copied to ALG
 * ("" when the JWK had none), or NULL when SET has no such kid. */
EVP_PKEY *jwks_set_key(const struct jwks_set *set, const char *kid, char alg[JWKS_ALG_MAX + 1]);

void jwks_set_free(struct jwks_set *set);

/* ---- the cache of one endpoint ---- */

struct jwks;

/* Starts a cache of the set at URL (http or https) and its thread, which fetches at once. Returns NULL
 * with ERR (not an http(s) URL, out of memory, no thread). */
struct jwks *jwks_new(const char *url, char *err, size_t errlen);

/* Stops J (NULL is fine) without waiting: callers still waiting in jwks_refresh get their DONE from
 * the ending thread. No jwks_key/jwks_refresh may run on J after this. */
void jwks_free(struct jwks *j);

/* Waits up to TIMEOUT_MS until the threads of every cache freed so far have ended (and freed their
 * cache): for the end of the process, so that nothing is left half freed behind it. Returns true when
 * none is left. Main thread, after the last jwks_free. */
bool jwks_wait_stopped(long timeout_ms);

/* The current key for KID, as jwks_set_key; NULL when unknown or nothing fetched yet. */
EVP_PKEY *jwks_key(struct jwks *j, const char *kid, char alg[JWKS_ALG_MAX + 1]);

/* Asks for a fetch as soon as the rate limit allows and calls DONE(ARG) once, on J's thread, when it
 * has ended (or J stops first). Returns 0, or -1 when JWKS_MAX_WAITERS are waiting already or out of
 * memory (DONE not called). */
int jwks_refresh(struct jwks *j, void (*done)(void *arg), void *arg);

/* Fetches URL with a GET within TIMEOUT_MS; *BODY (malloc'd, NUL-terminated, caller frees) and *LEN
 * on a 2xx answer of at most JWKS_MAX_DOCUMENT bytes. STOP, when it becomes non-zero, aborts the
 * transfer. Returns 0, or -1 with ERR naming the failure (DNS, connect, status, size). Blocks: only
 * for the cache's own thread. Goes through the server's shared HTTP client once jwks_fetch_use named
 * one (keep-alive, the same bound on requests in flight as the event proxies); before that (the first
 * fetch at start-up, unit tests) through a handle of its own. */
int jwks_fetch(const char *url, long timeout_ms, const atomic_int *stop, char **body, size_t *len, char *err,
               size_t errlen);

/* Makes jwks_fetch use C (http_client.h; NULL: its own handles again). Set at start-up once C runs,
 * and cleared before C is freed: a fetch in flight then still gets its answer (HTTP_CLIENT_ESTOPPED at
 * worst), and none starts on a freed client. Any thread. */
struct http_client;
void jwks_fetch_use(struct http_client *c);

#endif
