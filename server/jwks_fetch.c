/* jwks_fetch: the one network call of the JWKS cache, a blocking GET on the cache's own thread (never
 * on an MHD or core-loop thread). Once the server's shared HTTP client runs (http_client.h, the event
 * proxies' libcurl multi client; jwks_fetch_use) the GET goes through it and the cache's thread waits
 * for its answer; before that, and in the unit tests, through a libcurl easy handle of its own.
 *
 * Threads: any thread but an event loop's. curl_global_init runs once (pthread_once) before the first
 * easy handle. The shared client's pointer is read under a read lock held only while sending, so
 * jwks_fetch_use(NULL) (write lock) guarantees no send starts on a client about to be freed; a send
 * already made gets its completion, since the client completes every request, also when freed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_client.h"
#include "jwks.h"
#include "sd_version.h"

struct body {
  char *data;
  size_t len;
  bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
  struct body *b = userdata;
  size_t n = size * nmemb;
  if (b->len + n > JWKS_MAX_DOCUMENT) {
    b->too_big = true;
    return 0; /* aborts the transfer */
  }
  char *grown = realloc(b->data, b->len + n + 1);
  if (grown == NULL) return 0;
  memcpy(grown + b->len, ptr, n);
  b->data = grown;
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  return atomic_load((const atomic_int *)clientp) ? 1 : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static pthread_rwlock_t shared_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct http_client *shared_client;

void jwks_fetch_use(struct http_client *c) {
  pthread_rwlock_wrlock(&shared_lock);
  shared_client = c;
  pthread_rwlock_unlock(&shared_lock);
}

/* A GET through the shared client: the answer, copied on the client's thread for the waiting one. */
struct shared_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  enum http_client_error error;
  long status;
  char *body;
  size_t len;
  char why[160];
};

static void shared_done(void *arg, const struct http_client_response *r) {
  struct shared_wait *w = arg;
  pthread_mutex_lock(&w->lock);
  w->error = r->error;
  w->status = r->status;
  if (r->error == HTTP_CLIENT_OK && (w->body = malloc(r->body_len + 1)) != NULL) {
    if (r->body_len) memcpy(w->body, r->body, r->body_len);
    w->body[r->body_len] = '\0';
    w->len = r->body_len;
  }
  snprintf(w->why, sizeof w->why, "%s", r->why ? r->why : "");
  w->done = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

/* Returns 0 or -1 as jwks_fetch, or 1 when no shared client is set (nothing sent). */
static int fetch_shared(const char *url, long timeout_ms, char **body, size_t *len, char *err, size_t errlen) {
  static const char *const headers[] = {"User-Agent: streamd/" SD_VERSION, "Accept: application/json"};
  struct shared_wait w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  struct http_client_request req = {.method = "GET", .url = url, .headers = headers, .n_headers = 2,
                                    .timeout_ms = timeout_ms};
  pthread_rwlock_rdlock(&shared_lock);
  int rc = shared_client ? http_client_send(shared_client, &req, shared_done, &w) : 1;
  pthread_rwlock_unlock(&shared_lock);
  if (rc == 1) return 1;
  if (rc != 0) {
    snprintf(err, errlen, "fetch failed: %s", http_client_strerror((enum http_client_error) - rc));
    return -1;
  }
  pthread_mutex_lock(&w.lock);
  while (!w.done) pthread_cond_wait(&w.cond, &w.lock); /* the client answers within TIMEOUT_MS */
  pthread_mutex_unlock(&w.lock);
  if (w.error == HTTP_CLIENT_OK && w.status >= 200 && w.status < 300 && w.body && w.len <= JWKS_MAX_DOCUMENT) {
    *body = w.body;
    *len = w.len;
    return 0;
  }
  if (w.error != HTTP_CLIENT_OK)
    snprintf(err, errlen, "fetch failed: %s%s%s", http_client_strerror(w.error), w.why[0] ? ": " : "", w.why);
  else if (w.body == NULL)
    snprintf(err, errlen, "out of memory");
  else if (w.len > JWKS_MAX_DOCUMENT)
    snprintf(err, errlen, "document larger than %d bytes", JWKS_MAX_DOCUMENT);
  else
    snprintf(err, errlen, "HTTP status %ld", w.status);
  free(w.body);
  return -1;
}

int jwks_fetch(const char *url, long timeout_ms, const atomic_int *stop, char **body, size_t *len, char *err,
               size_t errlen) {
  int shared = fetch_shared(url, timeout_ms, body, len, err, errlen);
  if (shared != 1) return shared;
  pthread_once(&curl_once, curl_init);
  struct body b = {0};
  CURL *c = curl_easy_init();
  if (c == NULL) {
    snprintf(err, errlen, "cannot create a libcurl handle");
    return -1;
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "streamd/" SD_VERSION);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)stop);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  if (rc == CURLE_OK && status >= 200 && status < 300) {
    *body = b.data != NULL ? b.data : strdup("");
    *len = b.len;
    return *body != NULL ? 0 : -1;
  }
  if (b.too_big)
    snprintf(err, errlen, "document larger than %d bytes", JWKS_MAX_DOCUMENT);
  else if (rc != CURLE_OK)
    snprintf(err, errlen, "fetch failed: %s", curl_easy_strerror(rc));
  else
    snprintf(err, errlen, "HTTP status %ld", status);
  free(b.data);
  return -1;
}
