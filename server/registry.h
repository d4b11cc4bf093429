/* registry: every connected session of this node by session id (how /emulation finds the stream it
 * talks to), with a count that shutdown waits on. Any thread; one mutex inside. */
#ifndef REGISTRY_H
#define REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct registry;
struct session;

struct registry *registry_new(void);
void registry_free(struct registry *r);

/* Adds S (takes no reference: the session removes itself in session_detach). Returns 0, -1 (out of
 * memory) or REGISTRY_CLOSED once registry_close was called. */
#define REGISTRY_CLOSED (-2)
int registry_add(struct registry *r, struct session *s);

/* Refuses every later registry_add (shutdown): decided under the registry's lock, so a session is
 * either in the registry when this returns (and registry_wait_empty waits for it) or never gets in. */
void registry_close(struct registry *r);

/* Removes S if present. Wakes registry_wait_empty callers when the last one leaves. */
void registry_remove(struct registry *r, struct session *s);

/* Returns the session with SESSION_ID with a new reference for the caller, or NULL. */
struct session *registry_find(struct registry *r, const char *session_id);

/* Number of sessions. */
size_t registry_count(struct registry *r);

/* Returns new references to every session (at most MAX) in OUT; the caller unrefs each. Returns the
 * number stored. Use it to inspect sessions without holding the registry lock. */
size_t registry_snapshot(struct registry *r, struct session **out, size_t max);

/* Returns the session whose client id or session id is ID, with a new reference, or NULL. O(n) for
 * client ids. */
struct session *registry_find_any(struct registry *r, const char *id);

/* What `info` reports about this node's sessions. */
struct registry_counts {
  size_t sessions;      /* connected or connecting */
  size_t users;         /* distinct user ids (anonymous counts as one) */
  size_t subscriptions; /* channel subscriptions of all sessions */
};

/* Counts the sessions, distinct users and subscriptions in one O(n) pass. Returns 0 or -1 (no memory). */
int registry_counts(struct registry *r, struct registry_counts *out);

/* Number of sessions of USER (connected or connecting). O(n). */
size_t registry_user_count(struct registry *r, const char *user);

/* Calls session_close(s, CODE) for every session. */
void registry_close_all(struct registry *r, uint32_t code);

/* Waits until the registry is empty or TIMEOUT_MS passed. Returns the number left. */
size_t registry_wait_empty(struct registry *r, uint64_t timeout_ms);

#endif
