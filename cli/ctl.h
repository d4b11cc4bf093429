/* ctl: streamctl's internal interfaces: the connection to the admin socket (ctl_conn.c), running one
 * command and printing its answer (ctl_run.c, ctl_output.c), and the interactive and scripted shells
 * (ctl_shell.c). Commands, their arguments and their help all come from the shared table in
 * shared/sd_admin.h; nothing here lists commands of its own. streamctl is single-threaded. */
#ifndef CTL_H
#define CTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "sd_admin.h"

#define CTL_DEFAULT_SOCKET "/run/streamd/admin.sock"

/* Exit statuses (INTERFACE.md). */
enum ctl_status { CTL_OK = 0, CTL_ESERVER = 1, CTL_EUSAGE = 2, CTL_ECONNECT = 3 };

/* One connection to the admin socket with its read buffer. fd < 0 when closed. */
struct ctl_conn {
  int fd;
  char *buf;
  size_t len, cap;
  size_t consumed; /* bytes of the line handed out last, dropped by the next ctl_conn_recv */
};

/* What a run of streamctl shares between commands. */
struct ctl {
  const char *socket_path;
  bool json;            /* --json: print raw responses */
  struct ctl_conn conn; /* reused by every non-streaming command and by completion */
};

/* Set by the SIGINT handler while a streaming command runs. */
extern volatile sig_atomic_t ctl_interrupted;

/* --- ctl_conn.c --- */

/* Connects C to PATH. Returns 0, or -1 with a message naming PATH in ERR. */
int ctl_conn_open(struct ctl_conn *c, const char *path, char *err, size_t errlen);
void ctl_conn_close(struct ctl_conn *c);

/* Sends REQUEST (borrowed) as one line. Returns 0 or -1 (connection lost). */
int ctl_conn_send(struct ctl_conn *c, json_t *request);

/* Reads one response line: stores a new value in *value and the line (valid until the next call, without
 * its newline) in *line. Returns 0; -1 when the connection closed or failed; -2 when the line is not
 * JSON; 1 when ctl_interrupted was set while waiting. */
int ctl_conn_recv(struct ctl_conn *c, json_t **value, const char **line);

/* --- ctl_run.c --- */

/* Runs one command given as words (ARGV[0] is the command name) and prints its answer. Returns the
 * exit status for it. */
int ctl_run(struct ctl *ctl, int argc, char **argv);

/* Sends REQUEST (borrowed) on ctl's shared connection (connecting first when needed) and stores the
 * response in *response (new reference). Quiet: for completion. Returns 0 or -1. */
int ctl_query(struct ctl *ctl, json_t *request, json_t **response);

/* Prints an error response ({"error":...}, borrowed) on stderr. Returns CTL_ESERVER. */
int ctl_server_error(json_t *response);

/* While a streaming command reads from FD: Ctrl-C sets ctl_interrupted and shuts FD down (so a read in
 * progress returns). ctl_release_sigint puts the previous handler back. */
void ctl_catch_sigint(int fd);
void ctl_release_sigint(void);

/* A streaming command (watch, trace): opens its own connection, sends REQUEST (borrowed), and when the
 * acknowledgement's result has RESULT_KEY calls FOLLOW(CTL, CONN, that value, the acknowledgement's
 * line) for the rest, which returns the status; an error answer is printed (CTL_ESERVER), Ctrl-C before
 * the answer is CTL_OK, a lost connection CTL_ECONNECT. Ctrl-C is caught meanwhile. */
struct ctl_conn;
typedef int (*ctl_follow_fn)(struct ctl *ctl, struct ctl_conn *conn, json_t *result, const char *line);
int ctl_stream(struct ctl *ctl, json_t *request, const char *result_key, ctl_follow_fn follow);

/* Prints help: the command list (COMMAND NULL) or one command's. Returns CTL_OK or CTL_EUSAGE. */
int ctl_help(FILE *out, const char *command);

/* --- ctl_trace.c --- */

/* `trace ID`: its own connection; prints every line of the trace until the session ends (status 0),
 * Ctrl-C (0) or the server goes away (CTL_ESERVER). */
int ctl_trace(struct ctl *ctl, json_t *request);

/* Prints one trace line (borrowed) for humans. */
void ctl_print_trace_line(json_t *line, FILE *out);

/* --- ctl_top.c --- */

/* `top`: samples every node each --interval over its own connection and shows rates: full screen on a
 * terminal until q or Ctrl-C, otherwise one block per interval until Ctrl-C or SIGTERM. */
int ctl_top(struct ctl *ctl, json_t *request);

/* --- ctl_escape.c --- */

/* A copy of TEXT (borrowed, may be NULL) safe to print on a terminal: control characters and bytes
 * that are not UTF-8 escaped (\n, \xHH, \u00HH). Returns a malloc'd string the caller frees, or NULL
 * (TEXT NULL or out of memory). */
char *ctl_escape(const char *text);

/* Writes TEXT escaped as ctl_escape does to OUT. */
void ctl_put(const char *text, FILE *out);

/* --- ctl_output.c --- */

/* Prints RESULT (borrowed) of command CMD with ARGS (the request's arguments) for humans. */
void ctl_print(const struct sd_admin_command *cmd, json_t *args, json_t *result);

/* Prints one watch line (borrowed) for humans. */
void ctl_print_publication(json_t *line);

/* "512 B", "1.5 KiB", "3.2 MiB" into BUF. Returns BUF. */
char *ctl_format_bytes(unsigned long long bytes, char *buf, size_t len);

/* --- ctl_shell.c --- */

/* The interactive shell on readline (history in ~/.streamctl_history, Tab completion). Returns the
 * exit status. */
int ctl_shell(struct ctl *ctl);

/* Runs the commands read line by line from IN (blank lines and #-comments skipped). Returns the status
 * of the last command that failed, 0 when all succeeded; stops at once when the socket is unreachable. */
int ctl_script(struct ctl *ctl, FILE *in);

#endif
