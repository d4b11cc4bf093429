/* sd_admin: the admin command table and the code that reads it (see sd_admin.h). The table is the
 * only place a command, an argument or an option is named; parsing a command line, validating a
 * request on the server and printing usage all walk it, so none of them has a list of its own.
 * Invariants: table order equals enum sd_admin_cmd order (sd_admin_get relies on it, and a unit test
 * checks it); within one command every argument and option key is unique. */
#include "sd_admin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ARGS(a) a, COUNT(a)
#define NONE NULL, 0

static const struct sd_admin_arg id_arg[] = {
    {"id", "ID", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_SESSION, true, 0, 0, "client id or session id"},
};
static const struct sd_admin_arg sessions_opts[] = {
    {"channel", "CHANNEL", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_CHANNEL, false, 0, 0,
     "only sessions subscribed to CHANNEL"},
    {"user", "USER", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_NONE, false, 0, 0,
     "only sessions of USER (\"\" = anonymous)"},
    {"transport", "TRANSPORT", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_NONE, false, 0, 0,
     "only sessions on TRANSPORT (http_stream, sse, websocket)"},
};
static const struct sd_admin_arg channels_args[] = {
    {"pattern", "PATTERN", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_NONE, false, 0, 0,
     "shell glob the channel name must match (\"chat:*\")"},
};
static const struct sd_admin_arg channel_args[] = {
    {"name", "NAME", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_CHANNEL, true, 0, 0, "channel name"},
};
static const struct sd_admin_arg publish_args[] = {
    {"channel", "CHANNEL", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_CHANNEL, true, 0, 0, "channel to publish to"},
    {"data", "DATA", SD_ADMIN_JSON, SD_ADMIN_COMPLETE_NONE, true, 0, 0, "publication data, JSON text"},
};
static const struct sd_admin_arg message_args[] = {
    {"id", "ID", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_SESSION, true, 0, 0, "client id or session id"},
    {"data", "DATA", SD_ADMIN_JSON, SD_ADMIN_COMPLETE_NONE, true, 0, 0, "message data, JSON text"},
};
static const struct sd_admin_arg disconnect_opts[] = {
    {"code", "N", SD_ADMIN_INT, SD_ADMIN_COMPLETE_NONE, false, 3000, 4999,
     "disconnect code, 3000-4999 (default 3503 force disconnect)"},
    {"reason", "TEXT", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_NONE, false, 0, 0,
     "reason sent with the code (default: the code's standard reason)"},
};
static const struct sd_admin_arg unsubscribe_args[] = {
    {"id", "ID", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_SESSION, true, 0, 0, "client id or session id"},
    {"channel", "CHANNEL", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_CHANNEL, true, 0, 0, "channel to remove"},
};
static const struct sd_admin_arg watch_args[] = {
    {"channel", "CHANNEL", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_CHANNEL, true, 0, 0, "channel to watch"},
};
static const struct sd_admin_arg top_opts[] = {
    {"interval", "DURATION", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_NONE, false, 0, 0,
     "time between refreshes (default 1s; 100ms to 1h)"},
    {"channels", "N", SD_ADMIN_INT, SD_ADMIN_COMPLETE_NONE, false, 1, 100,
     "how many of the busiest channels to show (default 10)"},
};
static const struct sd_admin_arg help_args[] = {
    {"command", "COMMAND", SD_ADMIN_STRING, SD_ADMIN_COMPLETE_COMMAND, false, 0, 0, "command to explain"},
};

static const struct sd_admin_command commands[] = {
    {SD_ADMIN_INFO, "info", NONE, NONE, false, false, "show the node: id, name, version, uptime and counts",
     "Shows this node's id and name, the version, the uptime, the engine and the counts of sessions, "
     "distinct users, channels, subscriptions, messages and bytes in and out, publications, connections "
     "and queue drops, like the server API's info."},
    {SD_ADMIN_SESSIONS, "sessions", NONE, ARGS(sessions_opts), false, false, "list sessions, one row each",
     "Lists every session of this node: client id, session id, user, transport, protocol, remote address, "
     "how long it has been connected, its number of subscriptions and its queued bytes. The options keep "
     "only the sessions that match all of them."},
    {SD_ADMIN_SESSION, "session", ARGS(id_arg), NONE, false, false, "show one session in full",
     "Shows one session (ID is its client id or its session id): everything `sessions` shows, plus the "
     "client's name and version, its state, its channels, messages and bytes in and out, and when the "
     "last ping was sent and the last pong received."},
    {SD_ADMIN_CHANNELS, "channels", ARGS(channels_args), NONE, false, false,
     "list channels with local subscribers",
     "Lists the channels that have subscribers on this node: subscriber count, publications kept in "
     "history and the last offset, history and presence settings. PATTERN is a shell glob (quote it "
     "from the shell) that names must match."},
    {SD_ADMIN_CHANNEL, "channel", ARGS(channel_args), NONE, false, false, "show one channel",
     "Shows one channel: its namespace, its subscribers on this node (client id and user of each), its "
     "presence (with the number of clients and users present) and its history (settings, publications "
     "kept, last offset and epoch)."},
    {SD_ADMIN_PUBLISH, "publish", ARGS(publish_args), NONE, false, false, "publish DATA to CHANNEL",
     "Publishes DATA, which must be JSON text (quote it from the shell: '{\"text\":\"hi\"}'), to CHANNEL "
     "exactly as the server API's publish does, and prints the publication's offset and epoch when the "
     "channel keeps history."},
    {SD_ADMIN_MESSAGE, "message", ARGS(message_args), NONE, false, false,
     "send a message push to one session",
     "Sends DATA (JSON text) to one session as an asynchronous message push: the client SDK emits it as a "
     "`message` event."},
    {SD_ADMIN_DISCONNECT, "disconnect", ARGS(id_arg), ARGS(disconnect_opts), false, false,
     "disconnect one session",
     "Disconnects one session with a Disconnect push carrying the code (default 3503, force disconnect, "
     "after which SDKs do not reconnect) and the reason, then ends its stream."},
    {SD_ADMIN_UNSUBSCRIBE, "unsubscribe", ARGS(unsubscribe_args), NONE, false, false,
     "unsubscribe one session from a channel",
     "Removes one session's subscription to CHANNEL and sends it an unsubscribe push with code 2000 "
     "(server unsubscribe): the SDK does not resubscribe."},
    {SD_ADMIN_WATCH, "watch", ARGS(watch_args), NONE, true, false,
     "print publications on CHANNEL as they happen",
     "Prints every publication on CHANNEL delivered on this node (from clients, the server API or "
     "`publish`) until interrupted with Ctrl-C. A watcher that reads too slowly is disconnected."},
    {SD_ADMIN_TRACE, "trace", ARGS(id_arg), NONE, true, false,
     "print every frame to and from one session as it happens",
     "Prints every frame to and from one session of this node (ID is its client id or its session id) "
     "as it happens: time, direction, transport, size and the frame decoded (protobuf shown as its JSON "
     "form), the emulation POSTs that carried its commands and their HTTP status, pings and pongs, and "
     "at the end the disconnect code. Ends when the session ends, or with Ctrl-C. The session never waits "
     "for a trace: the server keeps a bounded queue of events for a trace that cannot keep up and drops "
     "the rest, saying how many. A node runs a few traces at once (the limits are in streamctl(1))."},
    {SD_ADMIN_TOP, "top", NONE, ARGS(top_opts), false, false,
     "live view of every node: sessions, traffic, busiest channels",
     "Shows, refreshed every DURATION, for this node and every other node of the Redis engine: sessions "
     "by transport and protocol, messages and bytes in and out per second, emulation requests per second "
     "by HTTP status, queue drops and disconnects by code in the interval, and the N channels with the "
     "most publications per second, with their subscribers. Full screen on a terminal (q or Ctrl-C "
     "quits); otherwise one block of lines per interval."},
    {SD_ADMIN_RELOAD, "reload", NONE, NONE, false, false, "reload the configuration (as SIGHUP)",
     "Makes the server reload its configuration file, exactly as SIGHUP does; connections stay up."},
    {SD_ADMIN_HELP, "help", ARGS(help_args), NONE, false, true, "list commands, or explain one",
     "Without COMMAND lists every command with a one-line summary; with COMMAND shows its usage, "
     "what it does and its arguments and options."},
};

_Static_assert(COUNT(commands) == SD_ADMIN_CMD_COUNT, "one table row per enum sd_admin_cmd");

const struct sd_admin_command *sd_admin_commands(size_t *count) {
  *count = COUNT(commands);
  return commands;
}

const struct sd_admin_command *sd_admin_find(const char *name) {
  for (size_t i = 0; name && i < COUNT(commands); i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

const struct sd_admin_command *sd_admin_get(enum sd_admin_cmd id) {
  return (size_t)id < COUNT(commands) ? &commands[id] : NULL;
}

const struct sd_admin_arg *sd_admin_find_option(const struct sd_admin_command *cmd, const char *name) {
  for (size_t i = 0; i < cmd->n_opts; i++)
    if (strcmp(cmd->opts[i].key, name) == 0) return &cmd->opts[i];
  return NULL;
}

/* Any argument or option of CMD whose request key is KEY; *is_option says which. */
static const struct sd_admin_arg *find_key(const struct sd_admin_command *cmd, const char *key,
                                           bool *is_option) {
  *is_option = false;
  for (size_t i = 0; i < cmd->n_args; i++)
    if (strcmp(cmd->args[i].key, key) == 0) return &cmd->args[i];
  *is_option = true;
  return sd_admin_find_option(cmd, key);
}

char *sd_admin_usage(const struct sd_admin_command *cmd, char *buf, size_t len) {
  if (len == 0) return buf;
  size_t n = (size_t)snprintf(buf, len, "%s", cmd->name);
  for (size_t i = 0; i < cmd->n_args && n < len; i++) {
    const struct sd_admin_arg *a = &cmd->args[i];
    n += (size_t)snprintf(buf + n, len - n, a->required ? " %s" : " [%s]", a->meta);
  }
  for (size_t i = 0; i < cmd->n_opts && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, " [--%s %s]", cmd->opts[i].key, cmd->opts[i].meta);
  return buf;
}

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int code, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (errlen) vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -code;
}

/* Converts the command-line TEXT of argument A into a JSON value. Returns NULL with ERR set. */
static json_t *value_from_text(const struct sd_admin_arg *a, bool is_option, const char *text, char *err,
                               size_t errlen) {
  if (a->type == SD_ADMIN_JSON) {
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (v != NULL && !json_is_null(v)) return v;
    fail(SD_ADMIN_EUSAGE, err, errlen, "%s is not valid JSON: %s", a->meta, v ? "null" : jerr.text);
    json_decref(v);
    return NULL;
  }
  if (a->type == SD_ADMIN_INT) {
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || n < a->min || n > a->max) {
      fail(SD_ADMIN_EUSAGE, err, errlen, "%s must be a number from %lld to %lld, not '%s'", a->meta,
           (long long)a->min, (long long)a->max, text);
      return NULL;
    }
    return json_integer(n);
  }
  if (*text == '\0' && !is_option) {
    fail(SD_ADMIN_EUSAGE, err, errlen, "%s must not be empty", a->meta);
    return NULL;
  }
  return json_string(text);
}

/* Handles "--name[=value]" at ARGV[*i]. Returns 0 or a negative error with ERR set. */
static int take_option(const struct sd_admin_command *cmd, json_t *args, int argc, char *const *argv, int *i,
                       char *err, size_t errlen) {
  char name[64];
  const char *word = argv[*i] + 2, *eq = strchr(word, '=');
  size_t nl = eq ? (size_t)(eq - word) : strlen(word);
  if (nl >= sizeof name) nl = sizeof name - 1;
  memcpy(name, word, nl);
  name[nl] = '\0';
  const struct sd_admin_arg *o = sd_admin_find_option(cmd, name);
  if (o == NULL) return fail(SD_ADMIN_EUSAGE, err, errlen, "unknown option --%s for '%s'", name, cmd->name);
  if (json_object_get(args, o->key))
    return fail(SD_ADMIN_EUSAGE, err, errlen, "option --%s given twice", name);
  const char *text = eq ? eq + 1 : NULL;
  if (text == NULL && *i + 1 >= argc)
    return fail(SD_ADMIN_EUSAGE, err, errlen, "option --%s needs a value (%s)", name, o->meta);
  if (text == NULL) text = argv[++*i];
  json_t *v = value_from_text(o, true, text, err, errlen);
  if (v == NULL) return -SD_ADMIN_EUSAGE;
  json_object_set_new(args, o->key, v);
  return 0;
}

/* Fills ARGS from ARGV[1..ARGC). Returns 0 or a negative error with ERR set. */
static int fill_args(const struct sd_admin_command *cmd, json_t *args, int argc, char *const *argv, char *err,
                     size_t errlen) {
  char usage[256];
  size_t pos = 0;
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!options_done && strcmp(a, "--") == 0) {
      options_done = true;
    } else if (!options_done && strncmp(a, "--", 2) == 0) {
      int rc = take_option(cmd, args, argc, argv, &i, err, errlen);
      if (rc != 0) return rc;
    } else if (pos >= cmd->n_args) {
      return fail(SD_ADMIN_EUSAGE, err, errlen, "too many arguments (usage: %s)",
                  sd_admin_usage(cmd, usage, sizeof usage));
    } else {
      json_t *v = value_from_text(&cmd->args[pos], false, a, err, errlen);
      if (v == NULL) return -SD_ADMIN_EUSAGE;
      json_object_set_new(args, cmd->args[pos++].key, v);
    }
  }
  if (pos < cmd->n_args && cmd->args[pos].required)
    return fail(SD_ADMIN_EUSAGE, err, errlen, "missing %s (usage: %s)", cmd->args[pos].meta,
                sd_admin_usage(cmd, usage, sizeof usage));
  return 0;
}

int sd_admin_parse_argv(int argc, char *const *argv, json_t **request, char *err, size_t errlen) {
  if (argc < 1 || argv[0] == NULL) return fail(SD_ADMIN_EUSAGE, err, errlen, "no command given");
  const struct sd_admin_command *cmd = sd_admin_find(argv[0]);
  if (cmd == NULL) return fail(SD_ADMIN_EUNKNOWN, err, errlen, "unknown command '%s' (try 'help')", argv[0]);
  json_t *args = json_object();
  if (args == NULL) return fail(SD_ADMIN_ENOMEM, err, errlen, "out of memory");
  int rc = fill_args(cmd, args, argc, argv, err, errlen);
  if (rc == 0) {
    *request = json_pack("{ssso}", "cmd", cmd->name, "args", args);
    if (*request == NULL) rc = fail(SD_ADMIN_ENOMEM, err, errlen, "out of memory");
  } else {
    json_decref(args);
  }
  return rc;
}

/* Checks one request value against A. Returns 0 or a negative error with ERR set. */
static int check_value(const struct sd_admin_arg *a, bool is_option, json_t *v, char *err, size_t errlen) {
  switch (a->type) {
    case SD_ADMIN_STRING:
      if (!json_is_string(v)) return fail(SD_ADMIN_EUSAGE, err, errlen, "\"%s\" must be a string", a->key);
      if (!is_option && json_string_length(v) == 0)
        return fail(SD_ADMIN_EUSAGE, err, errlen, "\"%s\" must not be empty", a->key);
      return 0;
    case SD_ADMIN_JSON:
      if (json_is_null(v)) return fail(SD_ADMIN_EUSAGE, err, errlen, "\"%s\" must not be null", a->key);
      return 0;
    case SD_ADMIN_INT:
      if (!json_is_integer(v) || json_integer_value(v) < a->min || json_integer_value(v) > a->max)
        return fail(SD_ADMIN_EUSAGE, err, errlen, "\"%s\" must be an integer from %lld to %lld", a->key,
                    (long long)a->min, (long long)a->max);
      return 0;
  }
  return fail(SD_ADMIN_EUSAGE, err, errlen, "\"%s\" has an unknown type", a->key);
}

/* Checks the keys of REQUEST's top level: only "cmd" and "args". */
static int check_top(json_t *request, char *err, size_t errlen) {
  const char *key;
  json_t *v;
  if (!json_is_object(request)) return fail(SD_ADMIN_EUSAGE, err, errlen, "request must be a JSON object");
  json_object_foreach(request, key, v) {
    if (strcmp(key, "cmd") != 0 && strcmp(key, "args") != 0)
      return fail(SD_ADMIN_EUSAGE, err, errlen, "unknown request key \"%s\"", key);
  }
  if (!json_is_string(json_object_get(request, "cmd")))
    return fail(SD_ADMIN_EUSAGE, err, errlen, "request needs a \"cmd\" string");
  json_t *args = json_object_get(request, "args");
  if (args && !json_is_object(args)) return fail(SD_ADMIN_EUSAGE, err, errlen, "\"args\" must be an object");
  return 0;
}

int sd_admin_validate(json_t *request, const struct sd_admin_command **cmdp, char *err, size_t errlen) {
  int rc = check_top(request, err, errlen);
  if (rc != 0) return rc;
  const char *name = json_string_value(json_object_get(request, "cmd"));
  const struct sd_admin_command *cmd = sd_admin_find(name);
  if (cmd == NULL) return fail(SD_ADMIN_EUNKNOWN, err, errlen, "unknown command '%s'", name);
  json_t *args = json_object_get(request, "args");
  const char *key;
  json_t *v;
  json_object_foreach(args, key, v) {
    bool is_option;
    const struct sd_admin_arg *a = find_key(cmd, key, &is_option);
    if (a == NULL)
      return fail(SD_ADMIN_EUSAGE, err, errlen, "unknown argument \"%s\" for '%s'", key, cmd->name);
    if ((rc = check_value(a, is_option, v, err, errlen)) != 0) return rc;
  }
  for (size_t i = 0; i < cmd->n_args; i++)
    if (cmd->args[i].required && json_object_get(args, cmd->args[i].key) == NULL)
      return fail(SD_ADMIN_EUSAGE, err, errlen, "'%s' needs \"%s\" (%s)", cmd->name, cmd->args[i].key,
                  cmd->args[i].meta);
  *cmdp = cmd;
  return 0;
}

/* A word being built by sd_admin_split_line. */
struct word {
  char *buf;
  size_t len, cap;
};

/* Appends C to W (growing it). Returns 0 or -1. */
static int word_put(struct word *w, char c) {
  if (w->len + 1 >= w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 32;
    char *nb = realloc(w->buf, cap);
    if (nb == NULL) return -1;
    w->buf = nb;
    w->cap = cap;
  }
  w->buf[w->len++] = c;
  w->buf[w->len] = '\0';
  return 0;
}

/* Appends the finished word W to the argv being built. Returns 0 or -1. */
static int argv_push(char ***argv, int *argc, struct word *w) {
  char **nv = realloc(*argv, sizeof(char *) * (size_t)(*argc + 2));
  if (nv == NULL) return -1;
  *argv = nv;
  nv[(*argc)++] = w->buf ? w->buf : strdup("");
  nv[*argc] = NULL;
  w->buf = NULL;
  w->len = w->cap = 0;
  return nv[*argc - 1] ? 0 : -1;
}

/* Reads one word starting at *P (not a blank) into W, advancing *P past it. Returns 0, -SD_ADMIN_EUSAGE
 * for an unterminated quote or -SD_ADMIN_ENOMEM. */
static int read_word(const char **p, struct word *w) {
  const char *s = *p;
  char quote = 0;
  for (; *s && (quote || (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')); s++) {
    char c = *s;
    if (quote == 0 && (c == '\'' || c == '"')) {
      quote = c;
      if (word_put(w, 'x') != 0) return -SD_ADMIN_ENOMEM; /* makes '' a word; undone below */
      w->buf[--w->len] = '\0';
      continue;
    }
    if (quote && c == quote) {
      quote = 0;
      continue;
    }
    if (c == '\\' && quote != '\'' && s[1] && (quote == 0 || s[1] == '"' || s[1] == '\\')) c = *++s;
    if (word_put(w, c) != 0) return -SD_ADMIN_ENOMEM;
  }
  *p = s;
  return quote ? -SD_ADMIN_EUSAGE : 0;
}

/* Reads the rest of the line from *P into W as it is, but for trailing blanks: JSON as people type it,
 * whose quotes and backslashes must reach the parser untouched. Returns 0 or -SD_ADMIN_ENOMEM. */
static int read_rest(const char **p, struct word *w) {
  size_t n = strlen(*p);
  while (n > 0 && strchr(" \t\n\r", (*p)[n - 1])) n--;
  for (size_t i = 0; i < n; i++)
    if (word_put(w, (*p)[i]) != 0) return -SD_ADMIN_ENOMEM;
  *p += strlen(*p);
  return 0;
}

int sd_admin_split_line(const char *line, int *argc, char ***argv) {
  *argc = 0;
  *argv = calloc(1, sizeof(char *));
  if (*argv == NULL) return -SD_ADMIN_ENOMEM;
  const char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p == '\0') return 0;
    struct word w = {0};
    int rc = *p == '{' || *p == '[' ? read_rest(&p, &w) : read_word(&p, &w);
    if (rc == 0 && argv_push(argv, argc, &w) != 0) rc = -SD_ADMIN_ENOMEM;
    if (rc != 0) {
      free(w.buf);
      sd_admin_free_argv(*argv);
      *argv = NULL;
      *argc = 0;
      return rc;
    }
  }
}

void sd_admin_free_argv(char **argv) {
  for (size_t i = 0; argv && argv[i]; i++) free(argv[i]);
  free(argv);
}
