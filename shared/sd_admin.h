/* sd_admin: the admin API's one command table and the request helpers both sides use. streamd's admin
 * socket dispatches on it and validates every request against it (sd_admin_validate); streamctl builds
 * its help, its argument checking (sd_admin_parse_argv) and its Tab completion from it. So the server
 * and the CLI cannot disagree about which commands exist or what they take.
 *
 * Wire format (newline-delimited JSON, one object per line):
 *   request   {"cmd":"disconnect","args":{"id":"...","code":4000,"reason":"bye"}}
 *   response  {"result":{...}}  or  {"error":"message"}
 *   watch     {"result":{"watching":"CH"}} then one {"channel":"CH","publication":{...}} per publication
 *   trace     {"result":{"tracing":{...}}} then one line per frame or event, {"type":"end",...} last
 *   top       {"result":{"nodes":[...]}}: cumulative counters per node; streamctl repeats it per interval
 * Argument keys are the lower-case names of the table's arguments and options; "args" may be omitted
 * when empty. Everything here is pure: no state, thread-safe, no server types. */
#ifndef SD_ADMIN_H
#define SD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Largest request line the server accepts (without the newline). */
#define SD_ADMIN_MAX_REQUEST 65536

/* Every command, in table order; the server's handler table is indexed by these. */
enum sd_admin_cmd {
  SD_ADMIN_INFO,
  SD_ADMIN_SESSIONS,
  SD_ADMIN_SESSION,
  SD_ADMIN_CHANNELS,
  SD_ADMIN_CHANNEL,
  SD_ADMIN_PUBLISH,
  SD_ADMIN_MESSAGE,
  SD_ADMIN_DISCONNECT,
  SD_ADMIN_UNSUBSCRIBE,
  SD_ADMIN_WATCH,
  SD_ADMIN_TRACE,
  SD_ADMIN_TOP,
  SD_ADMIN_RELOAD,
  SD_ADMIN_HELP,
  SD_ADMIN_CMD_COUNT
};

/* What a value is on the command line and in the request. */
enum sd_admin_type {
  SD_ADMIN_STRING, /* non-empty JSON string */
  SD_ADMIN_JSON,   /* any JSON value but null; on the command line, JSON text */
  SD_ADMIN_INT,    /* JSON integer within [min, max]; on the command line, decimal */
};

/* What Tab completes a value with. */
enum sd_admin_complete {
  SD_ADMIN_COMPLETE_NONE,
  SD_ADMIN_COMPLETE_SESSION, /* client ids and session ids, asked from the server */
  SD_ADMIN_COMPLETE_CHANNEL, /* channel names, asked from the server */
  SD_ADMIN_COMPLETE_COMMAND, /* command names, from this table */
};

/* A positional argument (META is how usage shows it) or an option (--KEY META). */
struct sd_admin_arg {
  const char *key;  /* key in the request's "args"; also the option's long name */
  const char *meta; /* "ID", "CHANNEL", "N" */
  enum sd_admin_type type;
  enum sd_admin_complete complete;
  bool required;    /* positional arguments only; optional ones come last */
  int64_t min, max; /* SD_ADMIN_INT only */
  const char *help;
};

struct sd_admin_command {
  enum sd_admin_cmd id;
  const char *name;
  const struct sd_admin_arg *args; /* positional, in order */
  size_t n_args;
  const struct sd_admin_arg *opts;
  size_t n_opts;
  bool streaming;          /* answers with a stream of lines until the client leaves (watch, trace) */
  bool local;              /* streamctl answers it itself, without the server (help) */
  const char *summary;     /* one line */
  const char *description; /* a paragraph, for `help COMMAND` */
};

enum sd_admin_error {
  SD_ADMIN_OK = 0,
  SD_ADMIN_EUNKNOWN = 1, /* no such command */
  SD_ADMIN_EUSAGE = 2,   /* missing, extra or malformed argument, unknown option */
  SD_ADMIN_ENOMEM = 3,
};

/* The table (static storage, never freed) and its length. */
const struct sd_admin_command *sd_admin_commands(size_t *count);

/* The command named NAME, or NULL. */
const struct sd_admin_command *sd_admin_find(const char *name);

/* The command with id ID (ID < SD_ADMIN_CMD_COUNT). */
const struct sd_admin_command *sd_admin_get(enum sd_admin_cmd id);

/* The option --NAME of CMD (NAME without the dashes), or NULL. */
const struct sd_admin_arg *sd_admin_find_option(const struct sd_admin_command *cmd, const char *name);

/* Writes CMD's synopsis ("disconnect ID [--code N] [--reason TEXT]") into BUF (always terminated).
 * Returns BUF. */
char *sd_admin_usage(const struct sd_admin_command *cmd, char *buf, size_t len);

/* Builds a request object from ARGV[0..ARGC) (ARGV[0] is the command name; options may come anywhere
 * after it, as "--key value" or "--key=value"; "--" ends options). On success stores a new object in
 * *request (the caller owns it) and returns 0; otherwise returns -SD_ADMIN_EUNKNOWN or -SD_ADMIN_EUSAGE
 * with a message in ERR. */
int sd_admin_parse_argv(int argc, char *const *argv, json_t **request, char *err, size_t errlen);

/* Checks REQUEST (borrowed) against the table: an object with a known "cmd", an optional "args" object
 * whose keys are that command's arguments with the right types, every required argument present.
 * Stores the command in *cmd. Returns 0, or -SD_ADMIN_EUNKNOWN / -SD_ADMIN_EUSAGE with a message in ERR. */
int sd_admin_validate(json_t *request, const struct sd_admin_command **cmd, char *err, size_t errlen);

/* Splits LINE into words the way a shell would for plain commands: blanks separate words, '...' and
 * "..." quote (backslash escapes \" and \\ inside double quotes), a backslash outside quotes escapes
 * the next character. A word that starts with '{' or '[' is the rest of the line as it is (trailing
 * blanks dropped), so JSON needs no shell quoting: publish news {"a": 1}. Stores a NULL-terminated
 * array of malloc'd words in *argv (free with sd_admin_free_argv) and their number in *argc. Returns 0,
 * -SD_ADMIN_EUSAGE (unterminated quote) or -SD_ADMIN_ENOMEM. */
int sd_admin_split_line(const char *line, int *argc, char ***argv);

void sd_admin_free_argv(char **argv);

#endif
