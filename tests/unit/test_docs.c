/* test_docs: the documentation against the one table of configuration keys (config_keys()) and against
 * groff. man/streamd.conf.5 documents every key exactly once, as a `.TP` entry `.B key` followed by
 * "Type, default" and the default as a config file spells it; it documents no key that does not exist.
 * etc/streamd.conf, the file the package installs, loads. Every page in man/ renders with
 * `groff -man -ww -z` without a warning (skipped when groff is not installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define MAN_DIR STREAMD_SOURCE_DIR "/man"
#define CONF_PAGE MAN_DIR "/streamd.conf.5"
#define SHIPPED_CONF STREAMD_SOURCE_DIR "/etc/streamd.conf"
#define MAX_LINES 4096

/* The lines of PATH, in LINES (a copy of the file cut at each '\n'); returns how many. Caller frees
 * *BUF. */
static size_t read_lines(const char *path, char **buf, char **lines, size_t max) {
  FILE *f = fopen(path, "r");
  if (f == NULL) print_error("cannot open %s\n", path);
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long len = ftell(f);
  rewind(f);
  *buf = calloc(1, (size_t)len + 1);
  assert_non_null(*buf);
  assert_int_equal(fread(*buf, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  size_t n = 0;
  for (char *p = *buf; *p && n < max; n++) {
    lines[n] = p;
    char *nl = strchr(p, '\n');
    if (nl == NULL) {
      n++;
      break;
    }
    *nl = '\0';
    p = nl + 1;
  }
  return n;
}

/* How streamd.conf(5) names each type, in the words of the first line of an entry. */
static const char *type_word(enum config_type type) {
  switch (type) {
    case CONFIG_BOOL:
      return "Boolean";
    case CONFIG_INT:
      return "Integer";
    case CONFIG_STRING:
    case CONFIG_REGEX:
      return "String";
    case CONFIG_DURATION:
      return "Duration";
    case CONFIG_STRING_LIST:
      return "Array of strings";
    case CONFIG_STRINGS:
      return "String or array of strings";
    case CONFIG_NAMESPACES:
      return "List of groups";
  }
  return "?";
}

/* The default of KEY as a config file spells it: strings and durations in double quotes. */
static void default_as_written(const struct config_key *key, char *buf, size_t len) {
  bool quoted = key->type == CONFIG_STRING || key->type == CONFIG_REGEX || key->type == CONFIG_DURATION;
  snprintf(buf, len, quoted ? "\"%s\"" : "%s", key->default_text);
}

/* The first argument of a `.B` or `.BR` line with groff's escapes \(dq, \- and \e undone; "" when LINE
 * is another request. */
static void first_bold_arg(const char *line, char *out, size_t len) {
  size_t o = 0;
  if (strncmp(line, ".B ", 3) == 0)
    line += 3;
  else if (strncmp(line, ".BR ", 4) == 0)
    line += 4;
  else
    line = "";
  while (*line && *line != ' ' && o + 1 < len) {
    if (strncmp(line, "\\(dq", 4) == 0) {
      out[o++] = '"';
      line += 4;
    } else if (strncmp(line, "\\-", 2) == 0 || strncmp(line, "\\e", 2) == 0) {
      out[o++] = line[1] == '-' ? '-' : '\\';
      line += 2;
    } else {
      out[o++] = *line++;
    }
  }
  out[o] = '\0';
}

/* A `.TP` entry whose tag line is `.B name` with a key-like name (lower case and '_'): its name, else
 * NULL. */
static const char *entry_name(char **lines, size_t i) {
  if (i == 0 || strcmp(lines[i - 1], ".TP") != 0 || strncmp(lines[i], ".B ", 3) != 0) return NULL;
  const char *name = lines[i] + 3;
  if (*name == '\0' || strspn(name, "abcdefghijklmnopqrstuvwxyz_") != strlen(name)) return NULL;
  return name;
}

static void test_conf_page_names_every_key_once(void **state) {
  (void)state;
  size_t nkeys;
  const struct config_key *keys = config_keys(&nkeys);
  size_t *seen = calloc(nkeys, sizeof *seen);
  char *buf, **lines = calloc(MAX_LINES, sizeof *lines);
  assert_non_null(seen);
  assert_non_null(lines);
  size_t n = read_lines(CONF_PAGE, &buf, lines, MAX_LINES);
  int unknown = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = entry_name(lines, i);
    if (name == NULL) continue;
    size_t k = 0;
    while (k < nkeys && strcmp(keys[k].name, name) != 0) k++;
    if (k == nkeys) {
      print_error("man/streamd.conf.5:%zu documents '%s', which is not a configuration key\n", i + 1, name);
      unknown++;
    } else {
      seen[k]++;
    }
  }
  int missing = 0;
  for (size_t k = 0; k < nkeys; k++) {
    if (seen[k] != 1) {
      print_error("man/streamd.conf.5 documents '%s' %zu times (once expected)\n", keys[k].name, seen[k]);
      missing++;
    }
  }
  assert_int_equal(unknown, 0);
  assert_int_equal(missing, 0);
  free(lines);
  free(buf);
  free(seen);
}

/* Each entry: `.B key`, then "Type, default", then the default in bold, exactly as in the table. */
static void test_conf_page_types_and_defaults(void **state) {
  (void)state;
  size_t nkeys;
  const struct config_key *keys = config_keys(&nkeys);
  char *buf, **lines = calloc(MAX_LINES, sizeof *lines);
  assert_non_null(lines);
  size_t n = read_lines(CONF_PAGE, &buf, lines, MAX_LINES);
  int wrong = 0;
  for (size_t i = 0; i + 2 < n; i++) {
    const char *name = entry_name(lines, i);
    const struct config_key *key = NULL;
    for (size_t k = 0; name && k < nkeys; k++)
      if (strcmp(keys[k].name, name) == 0) key = &keys[k];
    if (key == NULL) continue; /* unknown names fail the test above */
    char want_type[64], want_default[256], got_default[256];
    snprintf(want_type, sizeof want_type, "%s, default", type_word(key->type));
    default_as_written(key, want_default, sizeof want_default);
    first_bold_arg(lines[i + 2], got_default, sizeof got_default);
    if (strcmp(lines[i + 1], want_type) != 0) {
      print_error("man/streamd.conf.5:%zu: '%s' should read \"%s\", not \"%s\"\n", i + 2, name, want_type,
                  lines[i + 1]);
      wrong++;
    }
    if (strcmp(got_default, want_default) != 0) {
      print_error("man/streamd.conf.5:%zu: default of '%s' should be %s, not %s\n", i + 3, name, want_default,
                  got_default);
      wrong++;
    }
  }
  assert_int_equal(wrong, 0);
  free(lines);
  free(buf);
}

static void test_shipped_conf_loads(void **state) {
  (void)state;
  struct config cfg;
  char err[512] = "";
  int rc = config_load(&cfg, SHIPPED_CONF, err, sizeof err);
  if (rc != 0) print_error("etc/streamd.conf: %s\n", err);
  assert_int_equal(rc, 0);
  config_cleanup(&cfg);
}

/* Runs `groff -man -ww -z PAGE`; returns its exit status and puts what it printed into OUT. */
static int groff_check(const char *page, char *out, size_t len) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "groff -man -ww -z '%s' 2>&1", page);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t got = fread(out, 1, len - 1, p);
  out[got] = '\0';
  return pclose(p);
}

static void test_man_pages_render_without_warnings(void **state) {
  (void)state;
  if (system("command -v groff >/dev/null 2>&1") != 0) {
    print_message("groff is not installed (apt-get install groff-base): skipped\n");
    skip();
  }
  DIR *dir = opendir(MAN_DIR);
  assert_non_null(dir);
  int pages = 0, bad = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    const char *dot = strrchr(e->d_name, '.');
    if (dot == NULL || strlen(dot) != 2 || strchr("158", dot[1]) == NULL) continue;
    char path[1024], out[4096];
    snprintf(path, sizeof path, "%s/%s", MAN_DIR, e->d_name);
    int rc = groff_check(path, out, sizeof out);
    pages++;
    if (rc != 0 || out[0] != '\0') {
      print_error("groff -man -ww -z man/%s (status %d):\n%s", e->d_name, rc, out);
      bad++;
    }
  }
  closedir(dir);
  assert_true(pages >= 3); /* streamd.8, streamd.conf.5, streamctl.1 */
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conf_page_names_every_key_once),
      cmocka_unit_test(test_conf_page_types_and_defaults),
      cmocka_unit_test(test_shipped_conf_loads),
      cmocka_unit_test(test_man_pages_render_without_warnings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
