/* http_client: libcurl multi interface on one thread (see http_client.h). Requests handed over by
 * http_client_send wait in INCOMING (under the lock) until the thread adds them to the multi handle;
 * curl_multi_wakeup interrupts the thread's poll for that. Only the thread touches the multi handle, the
 * easy handles and ACTIVE. IN_FLIGHT counts requests from the send that admitted them to their
 * completion, so the bound covers queued and running ones alike. Invariant: every admitted job ends in
 * exactly one call of its DONE, then its memory is freed on the thread. */
#include "http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
  struct job *next;
  CURL *easy;
  struct curl_slist *headers;
  char *body;
  char *resp;
  size_t resp_len, resp_cap, max_body;
  bool too_large;
  http_client_done_fn done;
  void *arg;
  struct timespec started;
  char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
  CURLM *multi;
  pthread_t thread;
  pthread_mutex_t lock;
  struct job *incoming; /* guarded by lock; oldest first */
  struct job **incoming_tail;
  bool stopping;      /* guarded by lock */
  struct job *active; /* the thread's only */
  atomic_uint in_flight;
  unsigned max_in_flight;
  size_t max_body;
};

static const char *const error_names[] = {
    [HTTP_CLIENT_OK] = "ok",
    [HTTP_CLIENT_EBUSY] = "too many requests in flight",
    [HTTP_CLIENT_ETIMEOUT] = "timeout",
    [HTTP_CLIENT_ENETWORK] = "network error",
    [HTTP_CLIENT_ETOOLARGE] = "answer too large",
    [HTTP_CLIENT_ESTOPPED] = "stopped",
    [HTTP_CLIENT_ENOMEM] = "out of memory",
};

const char *http_client_strerror(enum http_client_error e) {
  return (unsigned)e < sizeof error_names / sizeof error_names[0] ? error_names[e] : "unknown";
}

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
  struct job *j = userp;
  size_t len = size * n;
  if (j->resp_len + len > j->max_body) {
    j->too_large = true;
    return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
  }
  if (j->resp_len + len > j->resp_cap) {
    size_t cap = (j->resp_len + len) * 2;
    char *b = realloc(j->resp, cap);
    if (b == NULL) return 0;
    j->resp = b;
    j->resp_cap = cap;
  }
  memcpy(j->resp + j->resp_len, data, len);
  j->resp_len += len;
  return len;
}

static void job_free(struct job *j) {
  if (j->easy) curl_easy_cleanup(j->easy);
  curl_slist_free_all(j->headers);
  free(j->body);
  free(j->resp);
  free(j);
}

static double since(const struct timespec *t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Calls J's completion and frees it; on the thread, J already out of the multi handle and ACTIVE. */
static void complete(struct http_client *c, struct job *j, enum http_client_error err) {
  struct http_client_response r = {.error = err,
                                   .why = err ? (j->errbuf[0] ? j->errbuf : http_client_strerror(err)) : ""};
  if (err == HTTP_CLIENT_OK) {
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &r.status);
    r.body = j->resp;
    r.body_len = j->resp_len;
  }
  r.seconds = since(&j->started);
  j->done(j->arg, &r);
  atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
  job_free(j);
}

static enum http_client_error map_result(const struct job *j, CURLcode rc) {
  if (rc == CURLE_OK) return HTTP_CLIENT_OK;
  if (j->too_large) return HTTP_CLIENT_ETOOLARGE;
  if (rc == CURLE_OPERATION_TIMEDOUT) return HTTP_CLIENT_ETIMEOUT;
  if (rc == CURLE_OUT_OF_MEMORY) return HTTP_CLIENT_ENOMEM;
  return HTTP_CLIENT_ENETWORK;
}

static void unlink_active(struct http_client *c, struct job *j) {
  for (struct job **p = &c->active; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      return;
    }
}

static void reap(struct http_client *c) {
  int left;
  CURLMsg *m;
  while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    struct job *j = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
    CURLcode rc = m->data.result;
    curl_multi_remove_handle(c->multi, m->easy_handle);
    unlink_active(c, j);
    complete(c, j, map_result(j, rc));
  }
}

static void *run(void *arg) {
  struct http_client *c = arg;
  for (;;) {
    pthread_mutex_lock(&c->lock);
    struct job *in = c->incoming;
    c->incoming = NULL;
    c->incoming_tail = &c->incoming;
    bool stopping = c->stopping;
    pthread_mutex_unlock(&c->lock);
    while (in) {
      struct job *j = in;
      in = in->next;
      if (stopping || curl_multi_add_handle(c->multi, j->easy) != CURLM_OK) {
        complete(c, j, stopping ? HTTP_CLIENT_ESTOPPED : HTTP_CLIENT_ENOMEM);
        continue;
      }
      j->next = c->active;
      c->active = j;
    }
    if (stopping) break;
    int running = 0;
    curl_multi_perform(c->multi, &running);
    reap(c);
    curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
  }
  while (c->active) {
    struct job *j = c->active;
    c->active = j->next;
    curl_multi_remove_handle(c->multi, j->easy);
    complete(c, j, HTTP_CLIENT_ESTOPPED);
  }
  return NULL;
}

struct http_client *http_client_new(unsigned max_in_flight, size_t max_body) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
  struct http_client *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->max_in_flight = max_in_flight ? max_in_flight : 1;
  c->max_body = max_body;
  pthread_mutex_init(&c->lock, NULL);
  c->incoming_tail = &c->incoming;
  c->multi = curl_multi_init();
  if (c->multi == NULL) goto fail;
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->max_in_flight); /* the keep-alive cache */
  if (pthread_create(&c->thread, NULL, run, c) != 0) goto fail;
  return c;
fail:
  if (c->multi) curl_multi_cleanup(c->multi);
  pthread_mutex_destroy(&c->lock);
  free(c);
  return NULL;
}

/* An easy handle for REQ, or NULL. */
static struct job *job_new(const struct http_client *c, const struct http_client_request *req) {
  struct job *j = calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->max_body = c->max_body;
  j->easy = curl_easy_init();
  if (j->easy == NULL || (req->body_len && (j->body = malloc(req->body_len)) == NULL)) goto fail;
  if (req->body_len) memcpy(j->body, req->body, req->body_len);
  struct curl_slist *h = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
  for (size_t i = 0; h && i < req->n_headers; i++) h = curl_slist_append(h, req->headers[i]);
  if ((j->headers = h) == NULL) goto fail;
  CURL *e = j->easy;
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 1000L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)j);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
  if (strcmp(req->method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body ? j->body : "");
    if (strcmp(req->method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
  }
  return j;
fail:
  job_free(j);
  return NULL;
}

int http_client_send(struct http_client *c, const struct http_client_request *req, http_client_done_fn done,
                     void *arg) {
  unsigned n = atomic_fetch_add_explicit(&c->in_flight, 1, memory_order_relaxed);
  if (n >= c->max_in_flight) {
    atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
    return -HTTP_CLIENT_EBUSY;
  }
  struct job *j = job_new(c, req);
  if (j == NULL) {
    atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
    return -HTTP_CLIENT_ENOMEM;
  }
  j->done = done;
  j->arg = arg;
  clock_gettime(CLOCK_MONOTONIC, &j->started);
  pthread_mutex_lock(&c->lock);
  bool stopping = c->stopping;
  if (!stopping) { /* appended: requests start in the order they were sent */
    *c->incoming_tail = j;
    c->incoming_tail = &j->next;
  }
  pthread_mutex_unlock(&c->lock);
  if (stopping) {
    job_free(j);
    atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_relaxed);
    return -HTTP_CLIENT_ESTOPPED;
  }
  curl_multi_wakeup(c->multi);
  return 0;
}

unsigned http_client_in_flight(struct http_client *c) {
  return atomic_load_explicit(&c->in_flight, memory_order_relaxed);
}

void http_client_free(struct http_client *c) {
  if (c == NULL) return;
  pthread_mutex_lock(&c->lock);
  c->stopping = true;
  pthread_mutex_unlock(&c->lock);
  curl_multi_wakeup(c->multi);
  pthread_join(c->thread, NULL);
  curl_multi_cleanup(c->multi);
  pthread_mutex_destroy(&c->lock);
  free(c);
}
