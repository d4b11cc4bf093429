/* Unit tests for channel: namespace resolution with channel_regex, which config.c compiles once per
 * namespace (and at top level) when the configuration is loaded. A name that matches gets its
 * namespace's options, one that does not gets none, the private prefix is not part of what is matched,
 * "" restricts nothing, and a configuration shared and dropped frees its compiled regexes (the ASan
 * build's leak check sees it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "channel.h"
#include "config.h"

/* Loads TEXT (a configuration file's content) into a new shared configuration. */
static struct config *load(const char *text) {
  char path[] = "/tmp/streamd-test-channel-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  struct config *cfg = malloc(sizeof *cfg);
  assert_non_null(cfg);
  char err[512] = "";
  int rc = config_load(cfg, path, err, sizeof err);
  unlink(path);
  if (rc != 0) fail_msg("config_load: %s", err);
  return config_share(cfg);
}

static const char *const CONFIG_TEXT =
    "channel_regex = \"^[a-z]+$\";\n"
    "namespaces = (\n"
    "  { name = \"room\"; channel_regex = \"^[0-9]{1,3}$\"; history_size = 3; history_ttl = \"1m\"; },\n"
    "  { name = \"any\"; }\n"
    ");\n";

static void test_namespace_regex_matches_the_rest_of_the_name(void **state) {
  (void)state;
  struct config *cfg = load(CONFIG_TEXT);
  const struct namespace_config *room = config_find_namespace(cfg, "room", 4);
  assert_non_null(room);
  assert_non_null(room->options.channel_regex_compiled); /* compiled at load */
  assert_string_equal(room->options.channel_regex, "^[0-9]{1,3}$");

  const struct channel_options *opts = channel_options_for(cfg, "room:42");
  assert_ptr_equal(opts, &room->options);
  assert_int_equal(opts->history_size, 3);
  assert_ptr_equal(channel_options_for(cfg, "$room:7"), &room->options); /* "$" is not matched */
  assert_null(channel_options_for(cfg, "room:1234"));
  assert_null(channel_options_for(cfg, "room:abc"));
  assert_null(channel_options_for(cfg, "room:"));
  assert_null(channel_options_for(cfg, "nowhere:1")); /* unknown namespace */
  config_unref(cfg);
}

static void test_top_level_regex_and_empty_regex(void **state) {
  (void)state;
  struct config *cfg = load(CONFIG_TEXT);
  assert_ptr_equal(channel_options_for(cfg, "news"), &cfg->channel_defaults);
  assert_null(channel_options_for(cfg, "News1"));
  const struct namespace_config *any = config_find_namespace(cfg, "any", 3);
  assert_non_null(any);
  assert_null(any->options.channel_regex_compiled); /* "" compiles to nothing and restricts nothing */
  assert_ptr_equal(channel_options_for(cfg, "any:Whatever goes 1"), &any->options);
  config_unref(cfg);

  struct config defaults;
  assert_int_equal(config_defaults(&defaults), 0);
  assert_null(defaults.channel_defaults.channel_regex_compiled);
  assert_ptr_equal(channel_options_for(&defaults, "Anything at all"), &defaults.channel_defaults);
  config_cleanup(&defaults);
}

/* A regex that libc refuses is a load error naming the namespace's key, not a channel that never
 * matches at run time. */
static void test_bad_regex_in_a_namespace_fails_the_load(void **state) {
  (void)state;
  char path[] = "/tmp/streamd-test-channel-XXXXXX";
  int fd = mkstemp(path);
  const char *text = "namespaces = (\n  { name = \"bad\";\n    channel_regex = \"[a-\"; }\n);\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  struct config cfg;
  char err[512] = "";
  assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
  unlink(path);
  assert_non_null(strstr(err, ":3: key 'channel_regex': bad regular expression: "));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_namespace_regex_matches_the_rest_of_the_name),
      cmocka_unit_test(test_top_level_regex_and_empty_regex),
      cmocka_unit_test(test_bad_regex_in_a_namespace_fails_the_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
