/* ops: the operations endpoints. GET /health answers 200 {} while the process serves and its engine
 * reaches its storage (503 {} while the Redis engine cannot reach Redis). GET /metrics
 * renders the counters of struct server_stats and gauges computed at scrape time (sessions by transport
 * and protocol, subscriptions, channels) in the Prometheus text exposition format 0.0.4. */
#include <stdarg.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "codes.h"
#include "handlers.h"
#include "hub.h"
#include "registry.h"
#include "proxy.h"
#include "server.h"
#include "session.h"
#include "stats.h"
#include "timer.h"

enum MHD_Result health_handle(struct request *req) {
  struct broker *b = req->srv->broker;
  if (!b->ops->healthy(b)) /* the engine cannot reach Redis: take this node out of rotation */
    return http_respond(req, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", "{}", 2);
  return http_respond(req, MHD_HTTP_OK, "application/json", "{}", 2);
}

/* A growable text buffer for the exposition. */
struct text {
  char *buf;
  size_t len, cap;
  bool failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...) {
  for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) break;
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = (t->cap + (size_t)n) * 2;
    char *b = realloc(t->buf, cap);
    if (b == NULL) break;
    t->buf = b;
    t->cap = cap;
  }
  t->failed = true;
}

static void counter(struct text *t, const char *name, const char *help, uint64_t value) {
  put(t, "# HELP streamd_%s %s\n# TYPE streamd_%s counter\nstreamd_%s %llu\n", name, help, name, name,
      (unsigned long long)value);
}

static void gauge_header(struct text *t, const char *name, const char *help) {
  put(t, "# HELP streamd_%s %s\n# TYPE streamd_%s gauge\n", name, help, name);
}

#define LOAD(field) atomic_load_explicit(&srv->stats.field, memory_order_relaxed)

static void render_counters(struct text *t, struct server *srv) {
  counter(t, "messages_in_total", "Commands received from clients.", LOAD(messages_in));
  counter(t, "messages_out_total", "Frames queued to clients (replies, pushes, pings).", LOAD(messages_out));
  counter(t, "bytes_in_total", "Command bytes received from clients.", LOAD(bytes_in));
  counter(t, "bytes_out_total", "Frame bytes queued to clients.", LOAD(bytes_out));
  counter(t, "publications_total", "Publications accepted from clients, the API and the admin socket.",
          LOAD(publications));
  counter(t, "queue_drops_total", "Sessions closed because their queue exceeded client_queue_max_size.",
          LOAD(queue_drops));
  counter(t, "connections_total", "Sessions that completed connect.", LOAD(connections));
  put(t,
      "# HELP streamd_disconnects_total Sessions ended, by disconnect code (3000 = client went away).\n"
      "# TYPE streamd_disconnects_total counter\n");
  for (size_t i = 0; i < STATS_DISCONNECT_CODES; i++) {
    uint64_t v = LOAD(disconnects[i]);
    uint32_t code = stats_disconnect_code(i);
    if (v || code) put(t, "streamd_disconnects_total{code=\"%u\"} %llu\n", code, (unsigned long long)v);
  }
  put(t,
      "# HELP streamd_emulation_requests_total Emulation requests answered, by HTTP status.\n"
      "# TYPE streamd_emulation_requests_total counter\n");
  for (size_t i = 0; i < STATS_HTTP_STATUSES; i++) {
    char label[16] = "other";
    if (stats_emulation_status(i)) snprintf(label, sizeof label, "%u", stats_emulation_status(i));
    put(t, "streamd_emulation_requests_total{status=\"%s\"} %llu\n", label,
        (unsigned long long)LOAD(emulation[i]));
  }
}

/* The event proxies' numbers by proxy type: one row per metric, its value read from the slot. */
static double proxy_value(const struct proxy_stats *ps, int metric) {
  switch (metric) {
    case 0: return (double)atomic_load_explicit(&ps->requests, memory_order_relaxed);
    case 1: return (double)atomic_load_explicit(&ps->errors, memory_order_relaxed);
    case 2: return (double)atomic_load_explicit(&ps->micros, memory_order_relaxed) / 1e6;
    default: return (double)atomic_load_explicit(&ps->in_flight, memory_order_relaxed);
  }
}

static void render_proxies(struct text *t, struct server *srv) {
  static const struct {
    const char *name, *type, *help;
  } metrics[] = {
      {"proxy_requests_total", "counter", "Event proxy requests finished (answered or failed), by proxy."},
      {"proxy_errors_total", "counter", "Event proxy requests failed (timeout, network, not 200, bad answer)."},
      {"proxy_request_duration_seconds_sum", "counter", "Total time of event proxy requests, by proxy."},
      {"proxy_in_flight", "gauge", "Event proxy requests waiting for the backend, by proxy."},
  };
  for (int m = 0; m < (int)(sizeof metrics / sizeof metrics[0]); m++) {
    put(t, "# HELP streamd_%s %s\n# TYPE streamd_%s %s\n", metrics[m].name, metrics[m].help, metrics[m].name,
        metrics[m].type);
    for (int k = 0; k < PROXY_KIND_COUNT; k++)
      put(t, "streamd_%s{type=\"%s\"} %.15g\n", metrics[m].name, proxy_kind_name((enum proxy_kind)k),
          proxy_value(&srv->stats.proxy[k], m));
  }
}

/* Sessions by transport and protocol, and their subscriptions, from a registry snapshot. */
static void render_sessions(struct text *t, struct server *srv) {
  size_t max = registry_count(srv->registry) + 64, n;
  struct session **all = malloc(max * sizeof *all);
  if (all == NULL) return;
  n = registry_snapshot(srv->registry, all, max);
  size_t by_codec[CODEC_COUNT] = {0}, subs = 0;
  for (size_t i = 0; i < n; i++) {
    pthread_mutex_lock(&all[i]->lock);
    if (all[i]->state == SESSION_CONNECTED) by_codec[all[i]->codec->kind]++;
    subs += all[i]->sub_count;
    pthread_mutex_unlock(&all[i]->lock);
    session_unref(all[i]);
  }
  free(all);
  gauge_header(t, "connections", "Connected sessions, by transport and protocol.");
  static const char *const transport_of[CODEC_COUNT] = {[CODEC_JSON] = "http_stream",
                                                        [CODEC_PROTOBUF] = "http_stream",
                                                        [CODEC_SSE] = "sse",
                                                        [CODEC_WS_JSON] = "websocket",
                                                        [CODEC_WS_PROTOBUF] = "websocket",
                                                        [CODEC_UNI_HTTP_STREAM] = "uni_http_stream",
                                                        [CODEC_UNI_SSE] = "uni_sse",
                                                        [CODEC_UNI_WS] = "uni_websocket"};
  for (int k = 0; k < CODEC_COUNT; k++)
    put(t, "streamd_connections{transport=\"%s\",protocol=\"%s\"} %zu\n", transport_of[k],
        codec_get((enum codec_kind)k)->name, by_codec[k]);
  gauge_header(t, "subscriptions", "Channel subscriptions of connected sessions.");
  put(t, "streamd_subscriptions %zu\n", subs);
  gauge_header(t, "channels", "Channels with at least one subscriber on this node.");
  put(t, "streamd_channels %zu\n", hub_channel_count(srv->hub));
  gauge_header(t, "uptime_seconds", "Seconds since the server started.");
  put(t, "streamd_uptime_seconds %llu\n", (unsigned long long)((timer_now_ms() - srv->started_ms) / 1000));
}

/* The C heap as glibc's allocator sees it: what streamd holds, and what the allocator keeps free
 * (which RSS counts too). */
static void render_heap(struct text *t) {
  struct mallinfo2 mi = mallinfo2();
  gauge_header(t, "heap_in_use_bytes", "Bytes of the C heap in use (allocated and not freed).");
  put(t, "streamd_heap_in_use_bytes %zu\n", mi.uordblks + mi.hblkhd);
  gauge_header(t, "heap_free_bytes", "Bytes of the C heap free but kept by the allocator.");
  put(t, "streamd_heap_free_bytes %zu\n", mi.fordblks);
}

enum MHD_Result metrics_handle(struct request *req) {
  struct text t = {0};
  render_counters(&t, req->srv);
  render_sessions(&t, req->srv);
  render_proxies(&t, req->srv);
  render_heap(&t);
  enum MHD_Result ret =
      t.failed ? http_respond(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, 0)
               : http_respond(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", t.buf, t.len);
  free(t.buf);
  return ret;
}
