/* test_server_config: the running configuration's lifetime across reloads (server_config.c). A reader
 * that took a reference keeps reading the channel options, strings and namespaces it found however
 * many reloads happen meanwhile (run under ASan: a freed configuration is a use-after-free report);
 * the last reference frees it (LeakSanitizer reports one that is never freed); readers racing reloads
 * on other threads never see a freed one. Reloads go through server_config_reload, as SIGHUP does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "config.h"
#include "log.h"
#include "server.h"

struct fx {
  struct config boot;
  struct server srv;
  char path[64];
};

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  fclose(f);
}

static void write_history_size(struct fx *fx, int size) {
  char text[512];
  snprintf(text, sizeof text,
           "namespaces = ( { name = \"chat\"; history_size = %d; history_ttl = \"60s\";"
           " channel_regex = \"^room[0-9]+$\"; } );\n",
           size);
  write_file(fx->path, text);
}

static int setup(void **state) {
  struct fx *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  assert_int_equal(config_defaults(&fx->boot), 0);
  server_config_init(&fx->srv, &fx->boot);
  strcpy(fx->path, "/tmp/streamd-test-reload-XXXXXX");
  int fd = mkstemp(fx->path);
  assert_true(fd >= 0);
  close(fd);
  log_set_level(LOG_LEVEL_ERROR);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  struct fx *fx = *state;
  server_config_cleanup(&fx->srv);
  config_cleanup(&fx->boot);
  unlink(fx->path);
  free(fx);
  return 0;
}

/* A handler holding channel options across two reloads still reads them; the running configuration
 * meanwhile has the new values, and the old one goes when the handler lets go (no leak at exit). */
static void test_reference_outlives_two_reloads(void **state) {
  struct fx *fx = *state;
  write_history_size(fx, 7);
  assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), 0);
  const struct config *held = server_config_get(&fx->srv);
  const struct channel_options *opts = channel_options_for(held, "chat:room1");
  assert_non_null(opts);
  const char *regex = opts->channel_regex;

  write_history_size(fx, 9);
  assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), 0);
  write_file(fx->path, "history_size = 0;\n");
  assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), 0);

  /* the old configuration, read through the reference (a use-after-free if it had been freed) */
  assert_int_equal(opts->history_size, 7);
  assert_string_equal(regex, "^room[0-9]+$");
  assert_string_equal(held->namespaces[0].name, "chat");
  assert_int_equal(atomic_load(&held->refs), 1); /* only ours: the server dropped its own */

  const struct config *now = server_config_get(&fx->srv);
  assert_null(channel_options_for(now, "chat:room1")); /* namespace gone in the running one */
  config_unref(now);
  config_unref(held); /* frees it: LeakSanitizer checks that it is not kept */
}

/* A reload that fails changes nothing: the reference taken before still equals the running one. */
static void test_failed_reload_keeps_running(void **state) {
  struct fx *fx = *state;
  write_history_size(fx, 3);
  assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), 0);
  const struct config *before = server_config_get(&fx->srv);
  write_file(fx->path, "history_size = \"not a number\";\n");
  assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), -1);
  const struct config *after = server_config_get(&fx->srv);
  assert_ptr_equal(before, after);
  config_unref(before);
  config_unref(after);
}

/* The boot configuration is never freed by a reload (main owns it) and is where restart-only keys
 * are read: a reload that changes the port keeps the running port. */
static void test_boot_config_stays(void **state) {
  struct fx *fx = *state;
  write_file(fx->path, "port = 1234;\n");
  assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), 0);
  const struct config *now = server_config_get(&fx->srv);
  assert_int_equal(now->port, fx->boot.port);
  assert_ptr_equal(fx->srv.boot_cfg, &fx->boot);
  config_unref(now);
}

struct reader {
  struct server *srv;
  atomic_bool *stop;
  long reads;
};

static void *read_loop(void *arg) {
  struct reader *r = arg;
  while (!atomic_load(r->stop)) {
    const struct config *cfg = server_config_get(r->srv);
    const struct channel_options *o = channel_options_for(cfg, "chat:room1");
    if (o && o->history_size < 1) abort(); /* every version written below has history_size >= 1 */
    config_unref(cfg);
    r->reads++;
  }
  return NULL;
}

/* Readers on other threads racing 200 reloads: never a freed configuration (ASan), never a leak. */
static void test_readers_race_reloads(void **state) {
  struct fx *fx = *state;
  atomic_bool stop = false;
  struct reader readers[3];
  pthread_t threads[3];
  write_history_size(fx, 1);
  assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), 0);
  for (int i = 0; i < 3; i++) {
    readers[i] = (struct reader){&fx->srv, &stop, 0};
    assert_int_equal(pthread_create(&threads[i], NULL, read_loop, &readers[i]), 0);
  }
  for (int i = 0; i < 200; i++) {
    write_history_size(fx, 1 + i % 5);
    assert_int_equal(server_config_reload(&fx->srv, fx->path, -1, "error"), 0);
  }
  atomic_store(&stop, true);
  for (int i = 0; i < 3; i++) {
    pthread_join(threads[i], NULL);
    assert_true(readers[i].reads > 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_reference_outlives_two_reloads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_reload_keeps_running, setup, teardown),
      cmocka_unit_test_setup_teardown(test_boot_config_stays, setup, teardown),
      cmocka_unit_test_setup_teardown(test_readers_race_reloads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
