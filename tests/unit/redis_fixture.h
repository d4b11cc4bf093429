/* A real redis-server for unit tests: started on a free loopback port with no persistence, stopped
 * (or paused, or restarted on the same port) on demand. Tests skip when redis-server is not installed.
 * Header-only: included by the tests that need it. */
#ifndef REDIS_FIXTURE_H
#define REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_SERVER_BIN "/usr/bin/redis-server"

struct redis_fixture {
  pid_t pid;
  int port;
  char password[64]; /* "" = none */
};

static inline bool redis_fixture_available(void) { return access(REDIS_SERVER_BIN, X_OK) == 0; }

static inline void redis_fixture_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A port the kernel just handed out and released: free unless something grabs it meanwhile. */
static inline int redis_fixture_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  close(fd);
  return ntohs(a.sin_port);
}

static inline bool redis_fixture_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* Starts redis-server on F->port (picked when 0). Returns 0 once it accepts connections, or -1. */
static inline int redis_fixture_start(struct redis_fixture *f) {
  if (f->port == 0) f->port = redis_fixture_free_port();
  char port[16];
  snprintf(port, sizeof port, "%d", f->port);
  f->pid = fork();
  if (f->pid < 0) return -1;
  if (f->pid == 0) {
    const char *argv[16] = {REDIS_SERVER_BIN, "--port", port, "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--loglevel", "warning", "--daemonize", "no"};
    int n = 13;
    if (f->password[0]) {
      argv[n++] = "--requirepass";
      argv[n++] = f->password;
    }
    argv[n] = NULL;
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
    }
    execv(REDIS_SERVER_BIN, (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < 500; i++) {
    if (redis_fixture_accepts(f->port)) return 0;
    redis_fixture_sleep_ms(10);
  }
  return -1;
}

/* Stops the server (SIGKILL: like a crash, nothing is flushed) and reaps it. */
static inline void redis_fixture_stop(struct redis_fixture *f) {
  if (f->pid <= 0) return;
  kill(f->pid, SIGKILL); /* also ends a stopped server, without letting it answer what it holds */
  waitpid(f->pid, NULL, 0);
  f->pid = 0;
}

/* The state letter of process PID (/proc/PID/stat: 'T' once stopped), or 0 when unreadable. */
static inline char redis_fixture_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  const char *paren = strrchr(buf, ')');
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Freezes (SIGSTOP) or thaws the server: connections stay open but nothing is answered. A freeze returns only once it took effect: the signal is
 * asynchronous, and a command sent meanwhile would still be answered (the test then sees a success). */
static inline void redis_fixture_pause(struct redis_fixture *f, bool paused) {
  if (f->pid <= 0) return;
  kill(f->pid, paused ? SIGSTOP : SIGCONT);
  for (int i = 0; paused && i < 1000 && redis_fixture_state(f->pid) != 'T'; i++) usleep(1000);
}

#endif
