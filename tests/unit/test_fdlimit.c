/* Unit tests for fdlimit.c: a pending loopback connection refused with the reserve descriptor gets the
 * reply and then end of file, also when the process really is out of descriptors (RLIMIT_NOFILE
 * lowered to what is open: accept() fails with EMFILE, the reserve still refuses); nothing pending is
 * 0; which errno values count as running out. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdlimit.h"

static const char reply[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

static int listener(struct sockaddr_in *sa) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  socklen_t len = sizeof *sa;
  *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof *sa), 0);
  assert_int_equal(listen(fd, 8), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
  return fd;
}

static int client(const struct sockaddr_in *sa) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(connect(fd, (const struct sockaddr *)sa, sizeof *sa), 0);
  static const char req[] = "GET / HTTP/1.1\r\n\r\n";
  assert_int_equal(send(fd, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
  return fd;
}

/* Reads until end of file: the client must get REPLY whole, then the close. */
static void expect_refusal(int fd) {
  char buf[256];
  size_t got = 0;
  ssize_t n;
  while ((n = recv(fd, buf + got, sizeof buf - got, 0)) > 0) got += (size_t)n;
  assert_int_equal(n, 0);
  assert_int_equal(got, sizeof reply - 1);
  assert_memory_equal(buf, reply, got);
}

static void test_refuses_pending(void **state) {
  (void)state;
  struct sockaddr_in sa;
  int lfd = listener(&sa);
  fdlimit_init();
  assert_int_equal(fdlimit_refuse(lfd, reply, sizeof reply - 1), 0); /* nothing pending */
  int c = client(&sa);
  usleep(20000); /* the request is in */
  assert_int_equal(fdlimit_refuse(lfd, reply, sizeof reply - 1), 1);
  expect_refusal(c);
  assert_int_equal(fdlimit_refuse(lfd, reply, sizeof reply - 1), 0);
  close(c);
  close(lfd);
}

static void test_refuses_at_the_limit(void **state) {
  (void)state;
  struct sockaddr_in sa;
  int lfd = listener(&sa);
  fdlimit_init();
  int c = client(&sa);
  /* Every descriptor number below the limit is taken: the listen socket, the client, the reserve, ... */
  struct rlimit saved, low;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int probe = dup(0);
  assert_true(probe >= 0);
  close(probe);
  low = saved;
  low.rlim_cur = (rlim_t)probe;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
  int err = errno;
  assert_int_equal(fd, -1);
  assert_int_equal(err, EMFILE);
  assert_true(fdlimit_exhausted(err));
  assert_int_equal(fdlimit_refuse(lfd, reply, sizeof reply - 1), 1);
  assert_int_equal(fdlimit_refuse(lfd, reply, sizeof reply - 1), 0); /* and the reserve is back */
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
  expect_refusal(c);
  close(c);
  close(lfd);
}

static void test_exhausted(void **state) {
  (void)state;
  assert_true(fdlimit_exhausted(EMFILE));
  assert_true(fdlimit_exhausted(ENFILE));
  assert_true(fdlimit_exhausted(ENOBUFS));
  assert_true(fdlimit_exhausted(ENOMEM));
  assert_false(fdlimit_exhausted(ECONNABORTED));
  assert_false(fdlimit_exhausted(EAGAIN));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refuses_pending),
      cmocka_unit_test(test_refuses_at_the_limit),
      cmocka_unit_test(test_exhausted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
