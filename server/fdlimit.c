/* fdlimit: refusing connections cleanly at the open-files limit (see fdlimit.h). The reserve is a
 * descriptor on /dev/null held for the moment when no other can be had; taking it is an atomic
 * exchange, so two listeners at the limit never close it twice; after a refusal the refused
 * connection's own descriptor, shut down, is the new reserve (no window in which another thread could
 * take the number), and after a failed attempt it is reopened at the next one. */
#define _GNU_SOURCE /* accept4 */
#include "fdlimit.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int reserve = -1;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void fdlimit_init(void) {
  if (atomic_load(&reserve) >= 0) return;
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  int none = -1;
  if (!atomic_compare_exchange_strong(&reserve, &none, fd)) close(fd);
}

bool fdlimit_exhausted(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

int fdlimit_refuse(int listen_fd, const char *reply, size_t len) {
  int spare = atomic_exchange(&reserve, -1);
  if (spare < 0) {
    fdlimit_init(); /* for the next time, if a descriptor came free */
    return -1;
  }
  close(spare);
  int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  int rc = fd >= 0 ? 1 : (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  if (fd >= 0) {
    char sink[4096]; /* unread input would turn the close into a reset, losing the reply */
    while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) continue;
    if (len > 0) (void)send(fd, reply, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* The refused connection's descriptor becomes the reserve: shut down (the client sees its end),
     * kept open. Closing it and opening /dev/null would leave a moment in which another thread's
     * accept (the other core loops share the listen socket) takes the number, and the reserve is lost
     * until descriptors free up. */
    shutdown(fd, SHUT_RDWR);
    int none = -1;
    if (!atomic_compare_exchange_strong(&reserve, &none, fd)) close(fd);
    return rc;
  }
  fdlimit_init();
  return rc;
}

/* Claims G's log slot: true at most once per FDLIMIT_LOG_INTERVAL_MS, whichever thread asks. */
static bool may_log(struct fdlimit_gate *g) {
  uint64_t now = now_ms(), last = atomic_load(&g->last_log_ms);
  if (last != 0 && now - last < FDLIMIT_LOG_INTERVAL_MS) return false;
  return atomic_compare_exchange_strong(&g->last_log_ms, &last, now);
}

void fdlimit_note(struct fdlimit_gate *g, int err, unsigned n) {
  atomic_fetch_add(&g->refused, n);
  atomic_store(&g->refusing, true);
  if (!may_log(g)) return;
  struct rlimit rl = {0};
  getrlimit(RLIMIT_NOFILE, &rl);
  log_warn(
      "%s: out of file descriptors (%s; open files limit %llu): refusing new connections, %llu refused "
      "since the last report",
      g->what, strerror(err), (unsigned long long)rl.rlim_cur,
      (unsigned long long)atomic_exchange(&g->refused, 0));
}

void fdlimit_accepted(struct fdlimit_gate *g) {
  if (!atomic_load_explicit(&g->refusing, memory_order_relaxed)) return;
  if (!may_log(g)) return; /* flapping at the limit: one line per interval, this one later */
  atomic_store(&g->refusing, false);
  log_info("%s: accepting new connections again (%llu more refused since the last report)", g->what,
           (unsigned long long)atomic_exchange(&g->refused, 0));
}
