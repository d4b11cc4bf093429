/* alloc_fail: an LD_PRELOAD shim that makes malloc, calloc and realloc fail (NULL, errno ENOMEM) at a
 * chosen rate, for tests/integration/alloc_fail.test.js: streamd under memory pressure may refuse work
 * but must not crash or corrupt another client's stream.
 *
 * Control (environment of the process):
 *   ALLOC_FAIL_PPM=N      failures per million allocations (default 0)
 *   ALLOC_FAIL_SEED=S     seed of the choice (default 1): allocation number K fails when a hash of
 *                         (S, K) falls under the rate, so one thread's run is repeatable
 *   ALLOC_FAIL_WARMUP=K   the first K allocations never fail (start-up; default 0)
 *   ALLOC_FAIL_CONTROL=F  a file holding the rate in ppm, polled every 100 ms: it overrides
 *                         ALLOC_FAIL_PPM while it exists, so a test can start at 0, raise the rate
 *                         once the server listens and set it back to 0 at the end. Each poll writes
 *                         "<failures injected> <allocations seen>\n" to F.count.
 *
 * Never failed: zero-size requests, realloc's frees, and allocations made by the dynamic loader
 * (caller inside ld.so: a failed TLS or link-map allocation there may be fatal, and that is not
 * streamd's code). free, posix_memalign and the rest are not wrapped: libc's own serve them, and
 * everything the wrappers return comes from libc's allocator (__libc_malloc and friends), so any free
 * is the right one. The shim itself never allocates (raw open/read/write on the control file).
 *
 * Threads: any; the counters are atomics, the poll is taken by one thread at a time (a try-lock).
 * Not for sanitizer builds: ASan replaces malloc itself and must come first. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);

enum { POLL_MS = 100 };

static uint64_t seed = 1, warmup;
static atomic_uint_fast64_t ppm, seen, failed, next_poll_ms;
static atomic_flag polling = ATOMIC_FLAG_INIT;
static char control[512], count_path[520];
static uintptr_t loader_lo, loader_hi; /* ld.so's text, [lo, hi) */

static uint64_t parse_u64(const char *s) {
  uint64_t v = 0;
  while (s && *s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s++ - '0');
  return v;
}

static size_t put_u64(char *p, uint64_t v) {
  char tmp[24];
  size_t n = 0, k = 0;
  do tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (n) p[k++] = tmp[--n];
  return k;
}

/* Finds ld.so's executable mapping in /proc/self/maps (lines "lo-hi perms off dev inode path"). */
static void find_loader(void) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  static char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    char *end = strchr(line, '\n');
    if (end) *end = '\0';
    if (strstr(line, "/ld-linux") && strstr(line, " r-xp ")) {
      loader_lo = (uintptr_t)strtoull(line, NULL, 16);
      loader_hi = (uintptr_t)strtoull(strchr(line, '-') + 1, NULL, 16);
    }
    if (end) *end = '\n';
  }
}

__attribute__((constructor)) static void init(void) {
  const char *s = getenv("ALLOC_FAIL_SEED");
  if (s) seed = parse_u64(s);
  warmup = parse_u64(getenv("ALLOC_FAIL_WARMUP"));
  atomic_store(&ppm, parse_u64(getenv("ALLOC_FAIL_PPM")));
  const char *c = getenv("ALLOC_FAIL_CONTROL");
  if (c && strlen(c) < sizeof control) {
    strcpy(control, c);
    strcpy(count_path, c);
    strcat(count_path, ".count");
  }
  find_loader();
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Re-reads the control file and writes the counts, at most every POLL_MS, one thread at a time. */
static void poll_control(void) {
  uint64_t now = now_ms();
  if (control[0] == '\0' || now < atomic_load_explicit(&next_poll_ms, memory_order_relaxed)) return;
  if (atomic_flag_test_and_set(&polling)) return;
  atomic_store(&next_poll_ms, now + POLL_MS);
  int saved = errno;
  int fd = open(control, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
      buf[n] = '\0';
      atomic_store(&ppm, parse_u64(buf));
    }
  }
  char out[64];
  size_t len = put_u64(out, atomic_load(&failed));
  out[len++] = ' ';
  len += put_u64(out + len, atomic_load(&seen));
  out[len++] = '\n';
  fd = open(count_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    (void)!write(fd, out, len);
    close(fd);
  }
  errno = saved;
  atomic_flag_clear(&polling);
}

static uint64_t mix(uint64_t x) { /* splitmix64's finalizer */
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Should this allocation, asked for from CALLER, fail? */
static int should_fail(size_t size, const void *caller) {
  uint64_t k = atomic_fetch_add_explicit(&seen, 1, memory_order_relaxed);
  poll_control();
  uint64_t rate = atomic_load_explicit(&ppm, memory_order_relaxed);
  if (rate == 0 || size == 0 || k < warmup) return 0;
  if ((uintptr_t)caller >= loader_lo && (uintptr_t)caller < loader_hi) return 0;
  if (mix(seed ^ mix(k)) % 1000000u >= rate) return 0;
  atomic_fetch_add_explicit(&failed, 1, memory_order_relaxed);
  errno = ENOMEM;
  return 1;
}

void *malloc(size_t size) {
  if (should_fail(size, __builtin_return_address(0))) return NULL;
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  if (should_fail(n * size, __builtin_return_address(0))) return NULL;
  return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size) {
  if (size != 0 && should_fail(size, __builtin_return_address(0))) return NULL;
  return __libc_realloc(ptr, size);
}
