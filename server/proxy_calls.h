/* proxy_calls: the client commands that ask the application's backend (Centrifugo's event proxies):
 * connect without a token, subscribe and publish in namespaces with proxy_subscribe / proxy_publish,
 * and rpc. Each starts an HTTP request on the server's http_client and returns
 * SESSION_COMMAND_PENDING; the answer is handled on a worker thread, which sends the reply (or closes
 * the session with the backend's disconnect) and then calls protocol_command_finish. A backend that
 * fails (timeout, not 200, not a valid answer, too many requests in flight) gets the client internal
 * error 100 (temporary), a warning naming the proxy and a count in streamd_proxy_errors_total.
 *
 * Threads: the proxy_calls_* entry points run where commands run; the rest runs on the HTTP client's
 * thread (only copying the answer and posting it) and on the workers. A pending command holds a session
 * reference until it is finished. */
#ifndef PROXY_CALLS_H
#define PROXY_CALLS_H

#include <stdbool.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "config.h"

struct session;
struct server;

/* Starts the HTTP client and the workers the proxies need when any proxy endpoint is configured.
 * Returns 0, or -1 when they cannot start. Main thread, before the HTTP daemon starts. */
int proxy_calls_start(struct server *srv);

/* Stops the HTTP client (requests in flight complete as failures, on the workers). Main thread, after
 * the HTTP daemon stopped and before the workers are freed. */
void proxy_calls_stop(struct server *srv);

/* The handlers' hooks: each returns SESSION_COMMAND_PENDING, or 0 when it answered at once. */
uint32_t proxy_calls_connect(struct session *s, const Protocol__Command *cmd);
uint32_t proxy_calls_rpc(struct session *s, const Protocol__Command *cmd);
uint32_t proxy_calls_subscribe(struct session *s, const Protocol__Command *cmd);
uint32_t proxy_calls_publish(struct session *s, const Protocol__Command *cmd);

/* From S's ping check (the timer thread): when the connect proxy's expire_at passed and a refresh proxy
 * is configured, asks it (one request at a time per session): `expired` => disconnect 3005, a new
 * `expire_at` extends the connection, a failure is retried at the next ping. */
void proxy_calls_refresh_check(struct session *s);

/* From S's ping check: asks the sub_refresh proxy about S's subscription to CHANNEL (copied), whose
 * proxy-given expiry passed: `expired` => unsubscribe 2501, a new `expire_at` extends it, a failure
 * is asked again at the next ping. */
void proxy_calls_sub_refresh(struct session *s, const char *channel);

/* Does a tokenless subscribe to CHANNEL with OPTS go to the subscribe proxy? (Not for user-limited
 * channels, as in Centrifugo.) */
bool proxy_calls_wants_subscribe(struct session *s, const struct channel_options *opts, const char *channel);

/* Does a publish in a channel with OPTS go to the publish proxy? */
bool proxy_calls_wants_publish(struct session *s, const struct channel_options *opts);

#endif
