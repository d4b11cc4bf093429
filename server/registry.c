/* registry: the session-id index of live sessions (see registry.h). A condition variable lets
 * shutdown wait for every stream to end before the HTTP daemon is stopped. */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"
#include "strmap.h"

struct registry {
  pthread_mutex_t lock;
  pthread_cond_t emptied;
  struct strmap *by_session;
  bool closed; /* registry_close: no more sessions */
};

struct registry *registry_new(void) {
  struct registry *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->by_session = strmap_new();
  if (r->by_session == NULL) {
    free(r);
    return NULL;
  }
  pthread_mutex_init(&r->lock, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&r->emptied, &attr);
  pthread_condattr_destroy(&attr);
  return r;
}

void registry_free(struct registry *r) {
  if (r == NULL) return;
  strmap_free(r->by_session);
  pthread_cond_destroy(&r->emptied);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

int registry_add(struct registry *r, struct session *s) {
  pthread_mutex_lock(&r->lock);
  int rc = r->closed ? REGISTRY_CLOSED : strmap_put(r->by_session, s->session_id, s) == 0 ? 0 : -1;
  pthread_mutex_unlock(&r->lock);
  return rc;
}

void registry_close(struct registry *r) {
  pthread_mutex_lock(&r->lock);
  r->closed = true;
  pthread_mutex_unlock(&r->lock);
}

void registry_remove(struct registry *r, struct session *s) {
  pthread_mutex_lock(&r->lock);
  if (strmap_get(r->by_session, s->session_id) == s) strmap_remove(r->by_session, s->session_id);
  if (strmap_count(r->by_session) == 0) pthread_cond_broadcast(&r->emptied);
  pthread_mutex_unlock(&r->lock);
}

struct session *registry_find(struct registry *r, const char *session_id) {
  pthread_mutex_lock(&r->lock);
  struct session *s = strmap_get(r->by_session, session_id);
  if (s) session_ref(s);
  pthread_mutex_unlock(&r->lock);
  return s;
}

size_t registry_count(struct registry *r) {
  pthread_mutex_lock(&r->lock);
  size_t n = strmap_count(r->by_session);
  pthread_mutex_unlock(&r->lock);
  return n;
}

struct snapshot {
  struct session **out;
  size_t max, n;
  const char *client_id; /* registry_find_any: stop at this client id */
};

static void snapshot_one(const char *key, void *value, void *arg) {
  (void)key;
  struct snapshot *snap = arg;
  struct session *s = value;
  if (snap->n >= snap->max) return;
  if (snap->client_id && strcmp(s->client_id, snap->client_id) != 0) return;
  snap->out[snap->n++] = session_ref(s);
}

size_t registry_snapshot(struct registry *r, struct session **out, size_t max) {
  struct snapshot snap = {.out = out, .max = max};
  pthread_mutex_lock(&r->lock);
  strmap_foreach(r->by_session, snapshot_one, &snap);
  pthread_mutex_unlock(&r->lock);
  return snap.n;
}

struct session *registry_find_any(struct registry *r, const char *id) {
  struct session *s = registry_find(r, id);
  if (s) return s;
  struct snapshot snap = {.out = &s, .max = 1, .client_id = id};
  pthread_mutex_lock(&r->lock);
  strmap_foreach(r->by_session, snapshot_one, &snap);
  pthread_mutex_unlock(&r->lock);
  return snap.n ? s : NULL;
}

struct user_count {
  const char *user;
  size_t n;
};

static void count_user(const char *key, void *value, void *arg) {
  (void)key;
  struct user_count *uc = arg;
  struct session *s = value;
  pthread_mutex_lock(&s->lock);
  if (strcmp(s->user, uc->user) == 0) uc->n++;
  pthread_mutex_unlock(&s->lock);
}

size_t registry_user_count(struct registry *r, const char *user) {
  struct user_count uc = {user, 0};
  pthread_mutex_lock(&r->lock);
  strmap_foreach(r->by_session, count_user, &uc);
  pthread_mutex_unlock(&r->lock);
  return uc.n;
}

struct counting {
  struct registry_counts *out;
  struct strmap *users;
  int failed;
};

static void count_one(const char *key, void *value, void *arg) {
  (void)key;
  struct counting *c = arg;
  struct session *s = value;
  pthread_mutex_lock(&s->lock);
  c->out->sessions++;
  c->out->subscriptions += s->sub_count;
  if (strmap_get(c->users, s->user) == NULL && strmap_put(c->users, s->user, c) != 0) c->failed = 1;
  pthread_mutex_unlock(&s->lock);
}

int registry_counts(struct registry *r, struct registry_counts *out) {
  struct counting c = {out, strmap_new(), 0};
  *out = (struct registry_counts){0};
  if (c.users == NULL) return -1;
  pthread_mutex_lock(&r->lock);
  strmap_foreach(r->by_session, count_one, &c);
  pthread_mutex_unlock(&r->lock);
  out->users = strmap_count(c.users);
  strmap_free(c.users);
  return c.failed ? -1 : 0;
}

static void close_one(const char *key, void *value, void *arg) {
  (void)key;
  session_close(value, *(uint32_t *)arg);
}

void registry_close_all(struct registry *r, uint32_t code) {
  pthread_mutex_lock(&r->lock);
  strmap_foreach(r->by_session, close_one, &code);
  pthread_mutex_unlock(&r->lock);
}

size_t registry_wait_empty(struct registry *r, uint64_t timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += (time_t)(timeout_ms / 1000);
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&r->lock);
  while (strmap_count(r->by_session) > 0)
    if (pthread_cond_timedwait(&r->emptied, &r->lock, &deadline) == ETIMEDOUT) break;
  size_t left = strmap_count(r->by_session);
  pthread_mutex_unlock(&r->lock);
  return left;
}
