/* ctl_run: one command from words to exit status: the shared table checks the words and builds the
 * request (usage errors never reach the server), local commands (help) are answered here, `watch` gets
 * a connection of its own that streams until Ctrl-C, `trace` and `top` have runners of their own
 * (ctl_trace.c, ctl_top.c), everything else goes over the shared connection, which is opened on first
 * use and reopened once if the server dropped it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ctl.h"

volatile sig_atomic_t ctl_interrupted;

/* The socket a streaming command reads from, or -1. Ctrl-C shuts it down, so that a read the signal
 * did not interrupt (it came just before the read began) still returns at once. */
static volatile sig_atomic_t watch_fd = -1;
static struct sigaction old_sigint;

static void on_sigint(int sig) {
  (void)sig;
  ctl_interrupted = 1;
  if (watch_fd >= 0) shutdown(watch_fd, SHUT_RDWR); /* async-signal-safe */
}

void ctl_catch_sigint(int fd) {
  struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: a read returns EINTR */
  sigemptyset(&sa.sa_mask);
  ctl_interrupted = 0;
  watch_fd = fd;
  sigaction(SIGINT, &sa, &old_sigint);
}

void ctl_release_sigint(void) {
  sigaction(SIGINT, &old_sigint, NULL);
  watch_fd = -1;
}

/* Makes sure ctl->conn is open. Returns 0, or -1 after printing why (unless QUIET). */
static int ensure_connected(struct ctl *ctl, bool quiet) {
  char err[512];
  if (ctl->conn.fd >= 0) return 0;
  if (ctl_conn_open(&ctl->conn, ctl->socket_path, err, sizeof err) == 0) return 0;
  if (!quiet) fprintf(stderr, "streamctl: %s\n", err);
  return -1;
}

/* Sends REQUEST and reads one response on the shared connection, reconnecting once when the server
 * closed an idle connection. Returns 0, or CTL_ECONNECT / CTL_ESERVER after printing (unless QUIET). */
static int exchange(struct ctl *ctl, json_t *request, json_t **response, const char **line, bool quiet) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (ensure_connected(ctl, quiet) != 0) return CTL_ECONNECT;
    int rc = ctl_conn_send(&ctl->conn, request);
    if (rc == 0) rc = ctl_conn_recv(&ctl->conn, response, line);
    if (rc == 0) return 0;
    if (rc == -2) {
      if (!quiet) fprintf(stderr, "streamctl: the server sent a malformed response\n");
      return CTL_ESERVER;
    }
    ctl_conn_close(&ctl->conn);
  }
  if (!quiet) fprintf(stderr, "streamctl: lost the connection to %s\n", ctl->socket_path);
  return CTL_ECONNECT;
}

int ctl_query(struct ctl *ctl, json_t *request, json_t **response) {
  const char *line;
  return exchange(ctl, request, response, &line, true) == 0 ? 0 : -1;
}

int ctl_server_error(json_t *response) {
  const char *msg = json_string_value(json_object_get(response, "error"));
  fputs("streamctl: error: ", stderr);
  ctl_put(msg ? msg : "unexpected response", stderr);
  fputc('\n', stderr);
  return CTL_ESERVER;
}

/* Prints watch lines from C until interrupted or the server ends the stream. */
static int watch_loop(struct ctl *ctl, struct ctl_conn *c) {
  for (;;) {
    json_t *value;
    const char *line;
    int rc = ctl_conn_recv(c, &value, &line);
    if (rc == 1) return CTL_OK;
    if (rc == -1) {
      fprintf(stderr, "streamctl: the server ended the watch\n");
      return CTL_ESERVER;
    }
    if (rc == 0 && json_object_get(value, "error"))
      rc = ctl_server_error(value);
    else if (ctl->json)
      printf("%s\n", line);
    else if (rc == 0)
      ctl_print_publication(value);
    json_decref(value);
    fflush(stdout);
    if (rc != 0) return CTL_ESERVER;
  }
}

int ctl_stream(struct ctl *ctl, json_t *request, const char *result_key, ctl_follow_fn follow) {
  char err[512];
  struct ctl_conn c = {.fd = -1};
  if (ctl_conn_open(&c, ctl->socket_path, err, sizeof err) != 0) {
    fprintf(stderr, "streamctl: %s\n", err);
    return CTL_ECONNECT;
  }
  ctl_catch_sigint(c.fd);
  json_t *ack = NULL;
  const char *line;
  int rc = ctl_conn_send(&c, request) == 0 ? ctl_conn_recv(&c, &ack, &line) : -1;
  json_t *what = json_object_get(json_object_get(ack, "result"), result_key);
  if (rc == 0 && what == NULL) {
    rc = ctl_server_error(ack);
  } else if (rc == 0) {
    rc = follow(ctl, &c, what, line);
  } else if (rc == 1) {
    rc = CTL_OK; /* interrupted before the server answered */
  } else {
    fprintf(stderr, "streamctl: lost the connection to %s\n", ctl->socket_path);
    rc = CTL_ECONNECT;
  }
  json_decref(ack);
  ctl_release_sigint();
  ctl_conn_close(&c);
  return rc;
}

static int follow_watch(struct ctl *ctl, struct ctl_conn *c, json_t *watching, const char *line) {
  (void)line;
  fprintf(stderr, "watching %s (Ctrl-C to stop)\n", json_string_value(watching));
  return watch_loop(ctl, c);
}

/* `watch`: its own connection, an acknowledgement, then one line per publication until Ctrl-C. */
static int run_watch(struct ctl *ctl, json_t *request) {
  return ctl_stream(ctl, request, "watching", follow_watch);
}

/* The commands that run otherwise than one request and one answer. */
typedef int (*runner_fn)(struct ctl *ctl, json_t *request);
static const runner_fn runners[SD_ADMIN_CMD_COUNT] = {
    [SD_ADMIN_WATCH] = run_watch,
    [SD_ADMIN_TRACE] = ctl_trace,
    [SD_ADMIN_TOP] = ctl_top,
};

/* Sends REQUEST for CMD and prints the answer. */
static int run_remote(struct ctl *ctl, const struct sd_admin_command *cmd, json_t *request) {
  json_t *response = NULL;
  const char *line;
  int rc = exchange(ctl, request, &response, &line, false);
  if (rc != 0) return rc;
  json_t *result = json_object_get(response, "result");
  if (ctl->json) printf("%s\n", line);
  if (result == NULL)
    rc = ctl->json ? CTL_ESERVER : ctl_server_error(response);
  else if (!ctl->json)
    ctl_print(cmd, json_object_get(request, "args"), result);
  json_decref(response);
  fflush(stdout);
  return rc;
}

int ctl_run(struct ctl *ctl, int argc, char **argv) {
  char err[512];
  json_t *request = NULL;
  if (sd_admin_parse_argv(argc, argv, &request, err, sizeof err) != 0) {
    fprintf(stderr, "streamctl: %s\n", err);
    return CTL_EUSAGE;
  }
  const struct sd_admin_command *cmd = sd_admin_find(argv[0]);
  int rc;
  if (cmd->local)
    rc = ctl_help(stdout, json_string_value(json_object_get(json_object_get(request, "args"), "command")));
  else if (runners[cmd->id])
    rc = runners[cmd->id](ctl, request);
  else
    rc = run_remote(ctl, cmd, request);
  json_decref(request);
  return rc;
}

/* Prints TEXT wrapped at 76 columns, each line indented by INDENT spaces. */
static void print_wrapped(FILE *out, const char *text, int indent) {
  int col = 0;
  while (*text) {
    size_t w = strcspn(text, " ");
    if (col > 0 && col + 1 + (int)w > 76) {
      fputc('\n', out);
      col = 0;
    }
    col += fprintf(out, col == 0 ? "%*s%.*s" : " %*s%.*s", col == 0 ? indent : 0, "", (int)w, text);
    text += w;
    text += strspn(text, " ");
  }
  fputc('\n', out);
}

static void help_command(FILE *out, const struct sd_admin_command *c) {
  char usage[256];
  fprintf(out, "Usage: streamctl %s\n\n", sd_admin_usage(c, usage, sizeof usage));
  print_wrapped(out, c->description, 2);
  for (size_t i = 0; i < c->n_args + c->n_opts; i++) {
    const struct sd_admin_arg *a = i < c->n_args ? &c->args[i] : &c->opts[i - c->n_args];
    if (i == 0 || i == c->n_args) fprintf(out, "\n%s:\n", i < c->n_args ? "Arguments" : "Options");
    char name[64];
    snprintf(name, sizeof name, i < c->n_args ? "%s" : "--%s %s", i < c->n_args ? a->meta : a->key, a->meta);
    fprintf(out, "  %-22s %s\n", name, a->help);
  }
}

int ctl_help(FILE *out, const char *command) {
  if (command) {
    const struct sd_admin_command *c = sd_admin_find(command);
    if (c == NULL) {
      fprintf(stderr, "streamctl: unknown command '%s' (try 'help')\n", command);
      return CTL_EUSAGE;
    }
    help_command(out, c);
    return CTL_OK;
  }
  size_t n;
  char usage[256];
  const struct sd_admin_command *all = sd_admin_commands(&n);
  fprintf(out,
          "Usage: streamctl [-s, --socket PATH] [--json] [COMMAND [ARGS]]\n"
          "Inspect and control a running streamd through its admin socket.\n\nCommands:\n");
  for (size_t i = 0; i < n; i++) {
    /* A synopsis too long for the column gets a line of its own. */
    int w = fprintf(out, "  %s", sd_admin_usage(&all[i], usage, sizeof usage));
    if (w > 32)
      fprintf(out, "\n%35s", "");
    else
      fprintf(out, "%*s", 35 - w, "");
    fprintf(out, "%s\n", all[i].summary);
  }
  fprintf(out,
          "\nOptions:\n"
          "  -s, --socket PATH  admin socket (default $STREAMCTL_SOCKET, then " CTL_DEFAULT_SOCKET
          ")\n"
          "      --json         print the server's JSON responses as they are\n"
          "  -h, --help         print this help\n"
          "  -V, --version      print the version\n\n"
          "Without COMMAND: an interactive shell on a terminal, else commands read line by line.\n"
          "There, an argument that starts with { or [ is the rest of the line as typed, so JSON\n"
          "needs no quotes: publish news {\"text\": \"hi\"}\n"
          "'help COMMAND' explains one command. Exit status: 0 ok, 1 server error, 2 usage error,\n"
          "3 cannot reach the socket.\n");
  return CTL_OK;
}
