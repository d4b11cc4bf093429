/* registry: every connected session of this node by session id (how /emulation finds the stream it
 * talks to), with a count that shutdown waits on, and the number of sessions of each user id, kept as
 * sessions connect and leave (so the per-user connection limit and the `info` user count cost O(1), not
 * a walk over every session). Any thread; one mutex inside. Lock order: registry ⇒ session (the
 * counting walks take each session's lock under the registry's); never call in holding a session lock. */
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

/* Removes S if present, and its user's claim (registry_claim_user) with it. Wakes registry_wait_empty
 * callers when the last one leaves. */
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

/* registry_claim_user: USER already has LIMIT sessions here. */
#define REGISTRY_LIMIT (-3)
/* registry_claim_user: S is not in the registry (never added, or already removed), or has claimed. */
#define REGISTRY_ABSENT (-4)

/* Counts S (in the registry) as a session of USER (copied), when connect established who it is: in one
 * step under the registry's lock, so two connects of one user at the limit cannot both pass. Returns 0
 * (admitted and counted), REGISTRY_LIMIT when LIMIT > 0 and USER already has LIMIT sessions (nothing
 * counted), REGISTRY_ABSENT, or -1 (out of memory). The anonymous user "" is admitted and never counted:
 * it is no user id, and the limit is per user. At most one claim per session; registry_remove drops it. */
int registry_claim_user(struct registry *r, struct session *s, const char *user, size_t limit);

/* Number of sessions that claimed USER. O(1). */
size_t registry_user_count(struct registry *r, const char *user);

/* What `info` reports about this node's sessions. */
struct registry_counts {
  size_t sessions;      /* connected or connecting */
  size_t users;         /* distinct non-empty user ids of connected sessions (anonymous is no user) */
  size_t subscriptions; /* channel subscriptions of all sessions */
};

/* Counts the sessions, users and subscriptions (the subscriptions in one O(n) pass, the others O(1)).
 * Returns 0. */
int registry_counts(struct registry *r, struct registry_counts *out);

/* Calls session_close(s, CODE) for every session (after letting go of the registry lock). */
void registry_close_all(struct registry *r, uint32_t code);

/* Waits until the registry is empty or TIMEOUT_MS passed. Returns the number left. */
size_t registry_wait_empty(struct registry *r, uint64_t timeout_ms);

#endif
