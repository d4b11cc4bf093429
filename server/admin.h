/* admin: the admin API on a Unix stream socket (INTERFACE.md "Admin socket and streamctl"), spoken by
 * streamctl. Newline-delimited JSON: one request object per line, one response object per line; `watch`
 * answers with a stream of lines until the client leaves, `trace` until its session ends. Requests are
 * validated against the shared command table (shared/sd_admin.h) and dispatched through a handler table
 * indexed by its enum.
 *
 * Threads: one admin thread (epoll) accepts and serves every admin client; commands run on it and use
 * only the thread-safe server APIs (registry, hub, broker, session close/unsubscribe/message). The hub
 * observer that feeds `watch` runs on publishing threads and only appends to watcher buffers under the
 * admin lock; the trace recorder (trace.h) only wakes the admin thread. `top` samples come from
 * admin_top.c, on the admin thread for this node and on the broker's threads for a surveying node.
 * admin_start and admin_stop are called from main's thread. */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "client.pb-c.h"
#include "sd_admin.h"

struct server;
struct admin;

/* Starts the admin socket at srv->cfg->admin_socket with mode cfg->admin_socket_mode and its thread.
 * Refuses (NULL, message in ERR) when the path exists and is not a socket, when another process listens
 * there, or when the socket cannot be created; a stale socket (nobody listening) is replaced. When
 * admin_socket is "" returns a handle that does nothing. The caller owns the handle (admin_stop). */
struct admin *admin_start(struct server *srv, char *err, size_t errlen);

/* Disconnects every admin client, stops and joins the thread, removes the socket file (if it is still
 * ours) and frees ADMIN. NULL is allowed. */
void admin_stop(struct admin *admin);

/* --- Between admin.c and admin_commands.c --- */

/* Runs the validated request CMD with ARGS (borrowed; may be NULL) and returns a new response object
 * for the caller: {"result":...} or {"error":"..."}. Not for streaming commands (watch), which admin.c
 * serves itself. Admin thread (or a test's thread). */
json_t *admin_execute(struct server *srv, const struct sd_admin_command *cmd, json_t *args);

/* {"channel":CH,"publication":PUB} for a watcher, as a new object, or NULL when PUB is not encodable.
 * CHANNEL and PUB are borrowed. Any thread. */
json_t *admin_publication_line(const char *channel, const Protocol__Publication *pub);

/* The counters `info` shows (messages, bytes, publications, connections, queue drops; cumulative), added
 * to O by name. Any thread. */
void admin_add_counters(struct server *srv, json_t *o);

/* --- `trace` (admin_trace.c) --- */

struct session;
struct trace_info;
struct trace_event;

/* Calls EMIT(ARG, line) with each JSON line (a new object the callee owns) that the recorded event EV of
 * a trace of INFO makes: none, one, or one per command for bytes fed in. DROPPED is the trace's total
 * of dropped events, which the end line reports. Returns true when EV was the end (its line is the
 * trace's last). */
bool admin_trace_lines(const struct trace_info *info, const struct trace_event *ev, uint64_t dropped,
                       void (*emit)(void *arg, json_t *line), void *arg);

/* {"type":"dropped","count":COUNT}, a new object. */
json_t *admin_trace_dropped_line(uint64_t count);

/* The acknowledgement of a trace of S (borrowed) started with INFO: {"result":{"tracing":{client,
 * session, transport, protocol, limits}}}, a new object (NULL when out of memory). */
json_t *admin_trace_ack(struct session *s, const struct trace_info *info);

/* --- `top` (admin_top.c) --- */

/* The server API method name under which a node answers another node's `top` survey. */
#define ADMIN_TOP_METHOD "streamctl_top"

/* The most channels one node reports to `top` (those with the most publications). */
#define ADMIN_TOP_CHANNELS 1000

/* This node's `top` sample, a new object: uid, name, uptime_ms, sessions by transport and protocol,
 * the counters of admin_add_counters, emulation responses by status and disconnects by code (all
 * cumulative), and channels [{channel, subscribers, publications}]. NULL when out of memory. Any
 * thread. */
json_t *admin_top_node(struct server *srv);

/* What start-up hands the broker as the local server API (struct broker_local.api): answers a survey
 * for ADMIN_TOP_METHOD with admin_top_node, and runs every other method with api_run_local (same
 * contract). */
int admin_node_api(struct server *srv, const char *method, const char *params, size_t len, char **answer,
                   size_t *answer_len);

#endif
