/* admin_top: what `streamctl top` shows of one node, as cumulative numbers (streamctl turns them into
 * rates between two samples): sessions by transport and protocol, the traffic counters of `info`,
 * emulation responses by HTTP status, disconnects by code, and the channels with local subscribers
 * with their publication counts (the hub's). With the Redis engine, `top` surveys the other nodes for
 * theirs through the server API's survey machinery: ADMIN_TOP_METHOD is answered by admin_node_api,
 * which start-up gives the broker in front of api_run_local. Nothing here keeps state; any thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "api.h"
#include "hub.h"
#include "registry.h"
#include "server.h"
#include "session.h"
#include "stats.h"
#include "timer.h"

/* Sessions by transport, then protocol: {"http_stream":{"json":2}}, from a registry snapshot. */
static json_t *sessions_by_transport(struct server *srv) {
  size_t max = registry_count(srv->registry) + 64;
  struct session **all = malloc(max * sizeof *all);
  json_t *by = json_object();
  if (all == NULL) return by;
  size_t n = registry_snapshot(srv->registry, all, max);
  for (size_t i = 0; i < n; i++) {
    struct session *s = all[i];
    pthread_mutex_lock(&s->lock);
    const char *transport = s->transport ? s->transport->name : "none";
    json_t *row = json_object_get(by, transport);
    if (row == NULL) json_object_set_new(by, transport, row = json_object());
    json_int_t have = json_integer_value(json_object_get(row, s->codec->name));
    json_object_set_new(row, s->codec->name, json_integer(have + 1));
    pthread_mutex_unlock(&s->lock);
    session_unref(s);
  }
  free(all);
  return by;
}

/* {"204": n, ..., "other": n} and {"3000": n, ..., "other": n} from the stats slots. */
static json_t *by_slot(const atomic_uint_fast64_t *slots, size_t n, unsigned (*key)(size_t)) {
  json_t *o = json_object();
  for (size_t i = 0; i < n; i++) {
    char name[16] = "other";
    if (key(i)) snprintf(name, sizeof name, "%u", key(i));
    json_object_set_new(o, name,
                        json_integer((json_int_t)atomic_load_explicit(&slots[i], memory_order_relaxed)));
  }
  return o;
}

static unsigned disconnect_key(size_t i) { return stats_disconnect_code(i); }
static unsigned emulation_key(size_t i) { return stats_emulation_status(i); }

struct channel_row {
  const char *name;
  size_t subscribers;
  uint64_t publications;
};

struct channel_rows {
  struct channel_row *v;
  size_t n, cap;
  json_t *names; /* owns copies of the names */
};

/* Runs under the hub's read lock: copies only. */
static void add_channel(const char *channel, size_t subscribers, uint64_t publications, void *arg) {
  struct channel_rows *r = arg;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    struct channel_row *nv = realloc(r->v, cap * sizeof *nv);
    if (nv == NULL) return;
    r->v = nv;
    r->cap = cap;
  }
  json_t *copy = json_string(channel);
  if (copy == NULL || json_array_append_new(r->names, copy) != 0) return;
  r->v[r->n++] = (struct channel_row){json_string_value(copy), subscribers, publications};
}

static int busiest_first(const void *a, const void *b) {
  const struct channel_row *x = a, *y = b;
  if (x->publications != y->publications) return x->publications > y->publications ? -1 : 1;
  if (x->subscribers != y->subscribers) return x->subscribers > y->subscribers ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* The channels with local subscribers, the most publications first, at most ADMIN_TOP_CHANNELS. */
static json_t *channels(struct server *srv) {
  struct channel_rows r = {NULL, 0, 0, json_array()};
  json_t *rows = json_array();
  hub_foreach_channel_stats(srv->hub, add_channel, &r);
  if (r.n) qsort(r.v, r.n, sizeof *r.v, busiest_first);
  for (size_t i = 0; i < r.n && i < ADMIN_TOP_CHANNELS; i++)
    json_array_append_new(
        rows, json_pack("{sssIsI}", "channel", r.v[i].name, "subscribers", (json_int_t)r.v[i].subscribers,
                        "publications", (json_int_t)r.v[i].publications));
  free(r.v);
  json_decref(r.names);
  return rows;
}

json_t *admin_top_node(struct server *srv) {
  const struct server_stats *st = &srv->stats;
  json_t *o =
      json_pack("{ss ss? sI so so so}", "uid", srv->node_id, "name", srv->boot_cfg->name, "uptime_ms",
                (json_int_t)(timer_now_ms() - srv->started_ms), "sessions", sessions_by_transport(srv),
                "emulation", by_slot(st->emulation, STATS_HTTP_STATUSES, emulation_key), "disconnects",
                by_slot(st->disconnects, STATS_DISCONNECT_CODES, disconnect_key));
  if (o == NULL) return NULL;
  admin_add_counters(srv, o);
  json_object_set_new(o, "channels", channels(srv));
  return o;
}

int admin_node_api(struct server *srv, const char *method, const char *params, size_t len, char **answer,
                   size_t *answer_len) {
  if (strcmp(method, ADMIN_TOP_METHOD) != 0)
    return api_run_local(srv, method, params, len, answer, answer_len);
  if (answer == NULL) return 0; /* only a survey asks for it */
  json_t *node = admin_top_node(srv);
  *answer = node ? json_dumps(node, JSON_COMPACT) : NULL;
  json_decref(node);
  if (*answer == NULL) return API_ERROR_INTERNAL;
  *answer_len = strlen(*answer);
  return 0;
}
