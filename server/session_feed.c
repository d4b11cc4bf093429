/* session_feed: a session's commands, decoded and run one at a time in the order the client sent them.
 * Most commands finish inside the dispatch hook. One that waits (on the Redis engine a subscribe, a
 * presence or history call runs on a worker; a proxied command waits for the application's backend)
 * returns SESSION_COMMAND_PENDING, and everything after it, the rest of its own input included, is held
 * back until session_command_done: so a publish sent after a subscribe never overtakes it, and a
 * client sees its replies in order whatever thread served each command.
 *
 * Held input is a FIFO of copies (struct held_input), interleaved with after-commands calls (an
 * emulation POST's 204, which follows the replies of the commands it carried). Exactly one thread runs
 * a session's commands at a time: `feeding` (under the session lock) says one does; a thread that finds
 * it set appends to the FIFO and leaves; the feeding thread drains the FIFO before clearing it, and a
 * pending command hands the drain over to whoever calls session_command_done.
 *
 * Threads: any (emulation on the stream's loop, the WebSocket thread, workers, Redis control lanes).
 * Locks: the session lock guards feeding and the FIFO; no hook is called with it held. */
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "stats.h"
#include "trace.h"

/* Held input: bytes still to decode (LEN from POS), or a call to make when the commands before it
 * have finished (AFTER set). */
struct held_input {
  struct held_input *next;
  void (*after)(void *arg);
  void *arg;
  size_t len, pos;
  uint8_t data[];
};

/* Appends (or, with FRONT, prepends) an item to S's FIFO. Caller holds s->lock. */
static void hold(struct session *s, struct held_input *h, bool front) {
  if (front) {
    h->next = s->held;
    s->held = h;
    if (s->held_tail == NULL) s->held_tail = h;
    return;
  }
  h->next = NULL;
  if (s->held_tail)
    s->held_tail->next = h;
  else
    s->held = h;
  s->held_tail = h;
}

/* A copy of DATA[0..LEN) to hold, or NULL when out of memory. */
static struct held_input *held_copy(const uint8_t *data, size_t len) {
  struct held_input *h = malloc(sizeof *h + len);
  if (h == NULL) return NULL;
  *h = (struct held_input){0};
  h->len = len;
  memcpy(h->data, data, len);
  return h;
}

/* Holds the undecoded rest [POS, END) at the front of the FIFO (it came before anything held). False
 * when it cannot be kept (out of memory: the session is closed, as a lost command would be silent). */
static bool hold_rest(struct session *s, const uint8_t *pos, const uint8_t *end) {
  if (pos == end) return true;
  struct held_input *h = held_copy(pos, (size_t)(end - pos));
  if (h == NULL) {
    session_close(s, DISCONNECT_SERVER_ERROR);
    return false;
  }
  pthread_mutex_lock(&s->lock);
  hold(s, h, true);
  pthread_mutex_unlock(&s->lock);
  return true;
}

/* Runs the commands of [*POS, END) until one is pending. Returns true when all ran (or the session is
 * closing: the rest is dropped), false when one is pending (the rest is held). */
static bool run(struct session *s, const uint8_t *pos, const uint8_t *end) {
  size_t max_command = (size_t)s->srv->boot_cfg->http_stream_max_request_body_size;
  while (pos < end) {
    if (session_state(s) >= SESSION_CLOSING) return true;
    Protocol__Command *cmd = NULL;
    int rc = s->codec->next_command(&pos, end, max_command, &cmd);
    if (rc == 1) return true;
    if (rc < 0) {
      log_info("client %s: undecodable command (%s)", s->client_id, codec_strerror(rc));
      session_close(s, rc == -CODEC_ENOMEM ? DISCONNECT_SERVER_ERROR : DISCONNECT_BAD_REQUEST);
      return true;
    }
    pthread_mutex_lock(&s->lock);
    s->messages_in++;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add_explicit(&s->srv->stats.messages_in, 1, memory_order_relaxed);
    uint32_t code = s->srv->session_hooks ? s->srv->session_hooks->dispatch(s, cmd) : DISCONNECT_SERVER_ERROR;
    if (code == SESSION_COMMAND_PENDING) { /* the hook owns CMD now */
      hold_rest(s, pos, end);
      return false;
    }
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
    if (code != 0) {
      session_close(s, code);
      return true;
    }
  }
  return true;
}

/* Runs what S holds until the FIFO is empty (feeding then ends: true) or a command is pending again
 * (false). Called by the thread that is feeding S. */
static bool drain(struct session *s) {
  for (;;) {
    pthread_mutex_lock(&s->lock);
    struct held_input *h = s->held;
    if (h == NULL) {
      s->feeding = false;
      pthread_mutex_unlock(&s->lock);
      return true;
    }
    if (h->after && s->ops_in_flight > 0) { /* its replies are not all queued yet: session_op_end resumes */
      s->after_waits_ops = true;
      pthread_mutex_unlock(&s->lock);
      return false;
    }
    s->held = h->next;
    if (s->held == NULL) s->held_tail = NULL;
    pthread_mutex_unlock(&s->lock);
    if (h->after) {
      h->after(h->arg);
      free(h);
      continue;
    }
    bool done = run(s, h->data + h->pos, h->data + h->len);
    free(h);
    if (!done) return false;
  }
}

bool session_feed(struct session *s, const uint8_t *data, size_t len) {
  if (len == 0) return true; /* no commands (and DATA may be NULL: no pointer arithmetic on it) */
  if (trace_on()) trace_in(s, data, len);
  atomic_fetch_add_explicit(&s->srv->stats.bytes_in, len, memory_order_relaxed);
  pthread_mutex_lock(&s->lock);
  s->bytes_in += len;
  if (s->feeding) { /* another command of S runs: this waits its turn */
    struct held_input *h = held_copy(data, len);
    if (h) hold(s, h, false);
    pthread_mutex_unlock(&s->lock);
    if (h == NULL) session_close(s, DISCONNECT_SERVER_ERROR);
    return false;
  }
  s->feeding = true;
  pthread_mutex_unlock(&s->lock);
  if (!run(s, data, data + len) || !drain(s)) return false;
  pthread_mutex_lock(&s->lock);
  bool replied = s->ops_in_flight == 0;
  pthread_mutex_unlock(&s->lock);
  return replied;
}

void session_command_done(struct session *s, uint32_t code) {
  if (code != 0) session_close(s, code);
  drain(s);
}

bool session_after_commands(struct session *s, void (*fn)(void *arg), void *arg) {
  pthread_mutex_lock(&s->lock);
  if (!s->feeding && s->ops_in_flight == 0) {
    pthread_mutex_unlock(&s->lock);
    return false;
  }
  bool idle = !s->feeding; /* only replies are awaited: this call becomes the pending work */
  if (idle) {
    s->feeding = true;
    s->after_waits_ops = true;
  }
  struct held_input *h = calloc(1, sizeof *h);
  if (h) {
    h->after = fn;
    h->arg = arg;
    hold(s, h, false);
  }
  pthread_mutex_unlock(&s->lock);
  if (h == NULL) fn(arg); /* out of memory: answer now rather than never */
  return true;
}

void session_op_begin(struct session *s) {
  pthread_mutex_lock(&s->lock);
  s->ops_in_flight++;
  pthread_mutex_unlock(&s->lock);
}

bool session_op_end(struct session *s) {
  pthread_mutex_lock(&s->lock);
  bool resume = --s->ops_in_flight == 0 && s->after_waits_ops;
  if (resume) s->after_waits_ops = false;
  pthread_mutex_unlock(&s->lock);
  return resume;
}

void session_feed_release(struct session *s) {
  while (s->held) {
    struct held_input *h = s->held;
    s->held = h->next;
    if (h->after) h->after(h->arg); /* nobody waits forever on a session that is gone */
    free(h);
  }
  s->held_tail = NULL;
}
