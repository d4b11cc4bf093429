/* jwks_fetch: the one network call of the JWKS cache, a blocking GET with libcurl's easy interface on
 * the cache's own thread (never on an MHD or core-loop thread). Kept apart so that it can be swapped
 * for the server's shared libcurl multi client without touching the cache.
 *
 * Threads: any thread but an event loop's; each call has its own easy handle. curl_global_init runs
 * once (pthread_once) before the first handle. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

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

int jwks_fetch(const char *url, long timeout_ms, const atomic_int *stop, char **body, size_t *len, char *err,
               size_t errlen) {
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
