/* ctl_shell: streamctl without a command. On a terminal: a readline shell with line editing, history
 * kept in ~/.streamctl_history across runs, and Tab completion of command names and options (from the
 * shared table) and of session ids and channel names (asked from the server when Tab is pressed, so
 * they are current). Otherwise: commands read line by line, for scripts. Lines are split into words
 * like a shell would (quotes, backslashes) before the shared table parses them, except that a word
 * starting with { or [ is the rest of the line as typed: JSON needs no quoting (sd_admin_split_line). */
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "ctl.h"
#include "sd_text.h"
#include "sd_version.h"

#define HISTORY_MAX 1000

/* The run of streamctl completion asks the server through (readline's callbacks take no context). */
static struct ctl *completing;

/* Runs one input line. Returns the command's status, or -1 when the line asks to leave the shell. */
static int run_line(struct ctl *ctl, const char *line) {
  int argc, rc;
  char **argv;
  if (sd_admin_split_line(line, &argc, &argv) != 0) {
    fprintf(stderr, "streamctl: unterminated quote\n");
    return CTL_EUSAGE;
  }
  if (argc == 0 || argv[0][0] == '#')
    rc = CTL_OK;
  else if (strcmp(argv[0], "quit") == 0 || strcmp(argv[0], "exit") == 0)
    rc = -1;
  else
    rc = ctl_run(ctl, argc, argv);
  sd_admin_free_argv(argv);
  return rc;
}

int ctl_script(struct ctl *ctl, FILE *in) {
  char *line = NULL;
  size_t cap = 0;
  int status = CTL_OK;
  while (getline(&line, &cap, in) >= 0) {
    int rc = run_line(ctl, line);
    if (rc < 0) break;
    if (rc != CTL_OK) status = rc;
    if (rc == CTL_ECONNECT) break; /* every later command would fail the same way */
  }
  free(line);
  return status;
}

/* --- completion --- */

static char **candidates; /* NULL-terminated, for the generator below */

/* Adds WORD unless it holds control characters or invalid UTF-8 (a client-chosen name must not reach
 * the terminal raw through readline's list of matches). */
static void candidates_add(size_t *n, const char *word) {
  char **nc = word && sd_text_valid(word) ? realloc(candidates, (*n + 2) * sizeof *nc) : NULL;
  if (nc == NULL) return;
  candidates = nc;
  candidates[(*n)++] = strdup(word);
  candidates[*n] = NULL;
}

/* Adds KEY of every object in RESPONSE.result.LIST. */
static void add_from_server(size_t *n, const char *cmd, const char *list, const char *key, const char *key2) {
  json_t *response = NULL, *request = json_pack("{ss}", "cmd", cmd);
  if (request && completing && ctl_query(completing, request, &response) == 0) {
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(json_object_get(response, "result"), list), i, row) {
      candidates_add(n, json_string_value(json_object_get(row, key)));
      if (key2) candidates_add(n, json_string_value(json_object_get(row, key2)));
    }
  }
  json_decref(request);
  json_decref(response);
}

static void fill_candidates(enum sd_admin_complete kind, const struct sd_admin_command *cmd, bool options) {
  size_t n = 0, count;
  const struct sd_admin_command *all = sd_admin_commands(&count);
  char word[80];
  if (options) {
    for (size_t i = 0; cmd && i < cmd->n_opts; i++) {
      snprintf(word, sizeof word, "--%s", cmd->opts[i].key);
      candidates_add(&n, word);
    }
  } else if (kind == SD_ADMIN_COMPLETE_COMMAND) {
    for (size_t i = 0; i < count; i++) candidates_add(&n, all[i].name);
  } else if (kind == SD_ADMIN_COMPLETE_SESSION) {
    add_from_server(&n, "sessions", "sessions", "client", "session");
  } else if (kind == SD_ADMIN_COMPLETE_CHANNEL) {
    add_from_server(&n, "channels", "channels", "channel", NULL);
  }
}

/* What the word being completed is, given the complete words ARGV[0..ARGC) before it. */
static enum sd_admin_complete kind_at(const struct sd_admin_command *cmd, int argc, char **argv) {
  size_t pos = 0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--", 2) != 0) {
      pos++;
      continue;
    }
    const struct sd_admin_arg *o = sd_admin_find_option(cmd, argv[i] + 2);
    if (o && strchr(argv[i], '=') == NULL) {
      if (i + 1 == argc) return o->complete; /* the word is this option's value */
      i++;
    }
  }
  return pos < cmd->n_args ? cmd->args[pos].complete : SD_ADMIN_COMPLETE_NONE;
}

static char *generate(const char *text, int state) {
  static size_t next, len;
  if (state == 0) next = 0, len = strlen(text);
  while (candidates && candidates[next]) {
    const char *c = candidates[next++];
    if (strncmp(c, text, len) == 0) return strdup(c);
  }
  return NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  sd_admin_free_argv(candidates);
  candidates = NULL;
  char *before = strndup(rl_line_buffer, (size_t)start);
  int argc = 0;
  char **argv = NULL;
  if (before && sd_admin_split_line(before, &argc, &argv) == 0) {
    const struct sd_admin_command *cmd = argc > 0 ? sd_admin_find(argv[0]) : NULL;
    if (argc == 0)
      fill_candidates(SD_ADMIN_COMPLETE_COMMAND, NULL, false);
    else if (cmd && strncmp(text, "--", 2) == 0)
      fill_candidates(SD_ADMIN_COMPLETE_NONE, cmd, true);
    else if (cmd)
      fill_candidates(kind_at(cmd, argc, argv), cmd, false);
  }
  sd_admin_free_argv(argv);
  free(before);
  return rl_completion_matches(text, generate);
}

/* --- the interactive shell --- */

/* ~/.streamctl_history (malloc'd), or NULL without a home directory. */
static char *history_path(void) {
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == '\0') return NULL;
  size_t len = strlen(home) + sizeof "/.streamctl_history";
  char *path = malloc(len);
  if (path) snprintf(path, len, "%s/.streamctl_history", home);
  return path;
}

int ctl_shell(struct ctl *ctl) {
  char *hist = history_path();
  int status = CTL_OK;
  completing = ctl;
  rl_readline_name = "streamctl";
  rl_attempted_completion_function = complete;
  rl_completer_word_break_characters = " \t";
  using_history();
  stifle_history(HISTORY_MAX);
  if (hist && read_history(hist) != 0) write_history(hist); /* creates the file on first use */
  printf("streamctl %s on %s. 'help' lists commands, Tab completes, Ctrl-D quits.\n", SD_VERSION,
         ctl->socket_path);
  char *line;
  while ((line = readline("streamctl> ")) != NULL) {
    if (line[strspn(line, " \t")] != '\0') {
      add_history(line);
      if (hist) append_history(1, hist);
    }
    int rc = run_line(ctl, line);
    free(line);
    if (rc < 0) break;
    status = rc;
  }
  if (line == NULL) putchar('\n');
  if (hist) history_truncate_file(hist, HISTORY_MAX);
  sd_admin_free_argv(candidates);
  candidates = NULL;
  completing = NULL;
  free(hist);
  return status;
}
