/* registry: the session-id index of live sessions (see registry.h). Each index entry carries the user id
 * its session claimed at connect, so leaving drops exactly the claim that was counted, whatever happens
 * to the session's own fields meanwhile. Per-user counts live in a second map (user id ⇒ number of
 * sessions, stored in the value pointer itself: never 0, so never NULL; a user whose count falls to 0
 * is removed). A condition variable lets shutdown wait for every stream to end before the HTTP daemon is
 * stopped. */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"
#include "strmap.h"

/* The value of by_session. */
struct entry {
  struct session *s; /* borrowed: the session removes itself in session_detach */
  char *user;        /* the claimed user id (owned), NULL until registry_claim_user counted one */
};

struct registry {
  pthread_mutex_t lock;
  pthread_cond_t emptied;
  struct strmap *by_session; /* session id ⇒ struct entry */
  struct strmap *by_user;    /* user id ⇒ its number of claims, as (void *)(uintptr_t)n with n > 0 */
  bool closed;               /* registry_close: no more sessions */
};

struct registry *registry_new(void) {
  struct registry *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->by_session = strmap_new();
  r->by_user = strmap_new();
  if (r->by_session == NULL || r->by_user == NULL) {
    strmap_free(r->by_session);
    strmap_free(r->by_user);
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

static void free_entry(const char *key, void *value, void *arg) {
  (void)key;
  (void)arg;
  struct entry *e = value;
  free(e->user);
  free(e);
}

void registry_free(struct registry *r) {
  if (r == NULL) return;
  strmap_foreach(r->by_session, free_entry, NULL);
  strmap_free(r->by_session);
  strmap_free(r->by_user);
  pthread_cond_destroy(&r->emptied);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

int registry_add(struct registry *r, struct session *s) {
  struct entry *e = calloc(1, sizeof *e);
  if (e == NULL) return -1;
  e->s = s;
  pthread_mutex_lock(&r->lock);
  int rc = r->closed                                          ? REGISTRY_CLOSED
           : strmap_get(r->by_session, s->session_id) != NULL ? -1 /* added twice: keep the first */
           : strmap_put(r->by_session, s->session_id, e) == 0 ? 0
                                                              : -1;
  pthread_mutex_unlock(&r->lock);
  if (rc != 0) free(e);
  return rc;
}

void registry_close(struct registry *r) {
  pthread_mutex_lock(&r->lock);
  r->closed = true;
  pthread_mutex_unlock(&r->lock);
}

static size_t claims_of(struct registry *r, const char *user) {
  return (size_t)(uintptr_t)strmap_get(r->by_user, user);
}

/* Stores N claims for USER (none: forgets USER). Returns 0 or -1 (out of memory). */
static int set_claims(struct registry *r, const char *user, size_t n) {
  if (n > 0) return strmap_put(r->by_user, user, (void *)(uintptr_t)n);
  strmap_remove(r->by_user, user);
  return 0;
}

int registry_claim_user(struct registry *r, struct session *s, const char *user, size_t limit) {
  if (user[0] == '\0') return 0;
  char *copy = strdup(user);
  if (copy == NULL) return -1;
  pthread_mutex_lock(&r->lock);
  struct entry *e = strmap_get(r->by_session, s->session_id);
  size_t n = claims_of(r, user);
  int rc = 0;
  if (e == NULL || e->s != s || e->user != NULL)
    rc = REGISTRY_ABSENT;
  else if (limit > 0 && n >= limit)
    rc = REGISTRY_LIMIT;
  else if (set_claims(r, user, n + 1) != 0)
    rc = -1;
  if (rc == 0) {
    e->user = copy;
    copy = NULL;
  }
  pthread_mutex_unlock(&r->lock);
  free(copy);
  return rc;
}

size_t registry_user_count(struct registry *r, const char *user) {
  pthread_mutex_lock(&r->lock);
  size_t n = claims_of(r, user);
  pthread_mutex_unlock(&r->lock);
  return n;
}

void registry_remove(struct registry *r, struct session *s) {
  struct entry *gone = NULL;
  pthread_mutex_lock(&r->lock);
  struct entry *e = strmap_get(r->by_session, s->session_id);
  if (e && e->s == s) {
    gone = strmap_remove(r->by_session, s->session_id);
    /* lowering a count never allocates: set_claims cannot fail here */
    if (e->user) set_claims(r, e->user, claims_of(r, e->user) - 1);
  }
  if (strmap_count(r->by_session) == 0) pthread_cond_broadcast(&r->emptied);
  pthread_mutex_unlock(&r->lock);
  if (gone) free_entry(NULL, gone, NULL);
}

struct session *registry_find(struct registry *r, const char *session_id) {
  pthread_mutex_lock(&r->lock);
  struct entry *e = strmap_get(r->by_session, session_id);
  struct session *s = e ? session_ref(e->s) : NULL;
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
  struct session *s = ((struct entry *)value)->s;
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

static void count_subscriptions(const char *key, void *value, void *arg) {
  (void)key;
  struct session *s = ((struct entry *)value)->s;
  pthread_mutex_lock(&s->lock);
  *(size_t *)arg += s->sub_count;
  pthread_mutex_unlock(&s->lock);
}

int registry_counts(struct registry *r, struct registry_counts *out) {
  *out = (struct registry_counts){0};
  pthread_mutex_lock(&r->lock);
  out->sessions = strmap_count(r->by_session);
  out->users = strmap_count(r->by_user);
  strmap_foreach(r->by_session, count_subscriptions, &out->subscriptions);
  pthread_mutex_unlock(&r->lock);
  return 0;
}

/* The sessions registry_close_all closes: taken (with references) under the lock, closed after it. */
struct close_list {
  struct session **v;
  size_t n, cap;
};

static void collect_one(const char *key, void *value, void *arg) {
  (void)key;
  struct close_list *l = arg;
  if (l->n < l->cap) l->v[l->n++] = session_ref(((struct entry *)value)->s);
}

void registry_close_all(struct registry *r, uint32_t code) {
  /* closing wakes transports, whose locks come before the registry's elsewhere (a WebSocket upgrade
   * registers its session holding the WebSocket lock): never close under the registry lock */
  for (;;) {
    pthread_mutex_lock(&r->lock);
    size_t count = strmap_count(r->by_session);
    pthread_mutex_unlock(&r->lock);
    struct close_list l = {calloc(count + 16, sizeof *l.v), 0, count + 16};
    if (l.v == NULL) return; /* out of memory: the shutdown's grace ends them */
    pthread_mutex_lock(&r->lock);
    bool all = strmap_count(r->by_session) <= l.cap;
    strmap_foreach(r->by_session, collect_one, &l);
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < l.n; i++) {
      session_close(l.v[i], code);
      session_unref(l.v[i]);
    }
    free(l.v);
    if (all) return;
  }
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
