/* test_config: config.c against what a user sees: defaults from INTERFACE.md, a full file with
 * namespaces, and one exact "FILE:LINE: key 'NAME': ..." message per kind of mistake. The last tests
 * hold etc/streamd.conf and the key table to each other: the shipped file loads, names every key
 * (commented, at its default) and no key that does not exist. Temp files come from mkstemp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define SHIPPED_CONF STREAMD_SOURCE_DIR "/etc/streamd.conf"

/* Writes TEXT to a new temp file; returns its path (caller frees and unlinks). */
static char *write_temp(const char *text) {
  char *path = strdup("/tmp/streamd-test-config-XXXXXX");
  assert_non_null(path);
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t len = strlen(text);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  close(fd);
  return path;
}

/* Loads TEXT and expects success; the caller cleans CFG up. */
static void load_ok(const char *text, struct config *cfg) {
  char err[512] = "";
  char *path = write_temp(text);
  int rc = config_load(cfg, path, err, sizeof err);
  if (rc != 0) print_error("unexpected error: %s\n", err);
  assert_int_equal(rc, 0);
  assert_string_equal(cfg->source_path, path);
  unlink(path);
  free(path);
}

/* Loads TEXT and expects exactly "TEMPFILE:LINE: MESSAGE". */
static void load_fails(const char *text, int line, const char *message) {
  char err[512] = "", want[1024];
  struct config cfg;
  char *path = write_temp(text);
  assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s:%d: %s", path, line, message);
  assert_string_equal(err, want);
  assert_null(cfg.address); /* cleaned up */
  assert_null(cfg.namespaces);
  unlink(path);
  free(path);
}

static void test_defaults(void **state) {
  (void)state;
  struct config cfg;
  char host[256] = "";
  assert_int_equal(config_defaults(&cfg), 0);
  gethostname(host, sizeof host);
  assert_null(cfg.source_path);
  assert_string_equal(cfg.address, "127.0.0.1");
  assert_int_equal(cfg.port, 8000);
  assert_string_equal(cfg.name, host);
  assert_false(cfg.http_stream);
  assert_string_equal(cfg.http_stream_handler_prefix, "/connection/http_stream");
  assert_int_equal(cfg.http_stream_max_request_body_size, 65536);
  assert_false(cfg.sse);
  assert_string_equal(cfg.sse_handler_prefix, "/connection/sse");
  assert_string_equal(cfg.emulation_handler_prefix, "/emulation");
  assert_int_equal(cfg.emulation_max_request_body_size, 65536);
  assert_false(cfg.websocket_disable);
  assert_string_equal(cfg.websocket_handler_prefix, "/connection/websocket");
  assert_int_equal(cfg.websocket_message_size_limit, 65536);
  assert_int_equal(cfg.allowed_origins_count, 0);
  assert_false(cfg.client_insecure);
  assert_string_equal(cfg.token_hmac_secret_key, "");
  assert_int_equal(cfg.ping_interval_ms, 25000);
  assert_int_equal(cfg.pong_timeout_ms, 8000);
  assert_int_equal(cfg.client_stale_close_delay_ms, 10000);
  assert_int_equal(cfg.client_expired_close_delay_ms, 25000);
  assert_int_equal(cfg.client_channel_limit, 128);
  assert_int_equal(cfg.client_user_connection_limit, 0);
  assert_int_equal(cfg.client_connection_limit, 0);
  assert_int_equal(cfg.client_queue_max_size, 1048576);
  assert_int_equal(cfg.client_history_max_publication_limit, 300);
  assert_int_equal(cfg.client_recovery_max_publication_limit, 300);
  assert_string_equal(cfg.api_key, "");
  assert_false(cfg.api_insecure);
  assert_string_equal(cfg.api_handler_prefix, "/api");
  assert_false(cfg.health);
  assert_false(cfg.prometheus);
  assert_string_equal(cfg.admin_socket, "");
  assert_string_equal(cfg.admin_socket_mode, "0660");
  assert_string_equal(cfg.engine, "memory");
  assert_int_equal(cfg.redis_address_count, 1);
  assert_string_equal(cfg.redis_address[0], "127.0.0.1:6379");
  assert_string_equal(cfg.redis_prefix, "streamd");
  assert_string_equal(cfg.log_level, "info");
  assert_false(cfg.channel_defaults.presence);
  assert_false(cfg.channel_defaults.allow_subscribe_for_client);
  assert_int_equal(cfg.channel_defaults.history_size, 0);
  assert_int_equal(cfg.channel_defaults.history_ttl_ms, 0);
  assert_string_equal(cfg.channel_defaults.channel_regex, "");
  assert_int_equal(cfg.namespaces_count, 0);
  assert_null(config_find_namespace(&cfg, "chat", 4));
  config_cleanup(&cfg);
  config_cleanup(&cfg); /* twice is harmless */
}

static void test_default_path(void **state) {
  (void)state;
  struct config cfg;
  char err[512] = "";
  if (access("/etc/streamd/streamd.conf", F_OK) == 0) skip();
  assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
  assert_null(cfg.source_path);
  assert_int_equal(cfg.port, 8000);
  config_cleanup(&cfg);
}

static const char full_file[] =
    "address = \"0.0.0.0\";\n"
    "port = 9000;\n"
    "name = \"node-1\";\n"
    "http_stream = true;\n"
    "http_stream_max_request_body_size = 1048576L;\n"
    "sse = true;\n"
    "emulation_handler_prefix = \"/emu\";\n"
    "allowed_origins = [ \"http://localhost:*\", \"https://*.example.com\" ];\n"
    "token_hmac_secret_key = \"secret\";\n"
    "ping_interval = \"1m30s\";\n"
    "pong_timeout = \"500ms\";\n"
    "client_expired_close_delay = \"0\";\n"
    "client_queue_max_size = 2048;\n"
    "api_key = \"k\";\n"
    "admin_socket = \"/run/streamd/admin.sock\";\n"
    "admin_socket_mode = \"600\";\n"
    "engine = \"redis\";\n"
    "log_level = \"debug\";\n"
    "allow_subscribe_for_client = true;\n"
    "channel_regex = \"^[a-z]+$\";\n"
    "namespaces = (\n"
    "  { name = \"chat\"; presence = true; join_leave = true; history_size = 100; history_ttl = \"300s\";\n"
    "    allow_subscribe_for_client = true; allow_publish_for_subscriber = true; force_recovery = true; },\n"
    "  { name = \"news.v2\"; allow_history_for_anonymous = true; }\n"
    ");\n";

static void test_full_file(void **state) {
  (void)state;
  struct config cfg;
  load_ok(full_file, &cfg);
  assert_string_equal(cfg.address, "0.0.0.0");
  assert_int_equal(cfg.port, 9000);
  assert_string_equal(cfg.name, "node-1");
  assert_true(cfg.http_stream);
  assert_int_equal(cfg.http_stream_max_request_body_size, 1048576);
  assert_true(cfg.sse);
  assert_string_equal(cfg.emulation_handler_prefix, "/emu");
  assert_int_equal(cfg.allowed_origins_count, 2);
  assert_string_equal(cfg.allowed_origins[0], "http://localhost:*");
  assert_string_equal(cfg.allowed_origins[1], "https://*.example.com");
  assert_string_equal(cfg.token_hmac_secret_key, "secret");
  assert_int_equal(cfg.ping_interval_ms, 90000);
  assert_int_equal(cfg.pong_timeout_ms, 500);
  assert_int_equal(cfg.client_expired_close_delay_ms, 0);
  assert_int_equal(cfg.client_queue_max_size, 2048);
  assert_string_equal(cfg.admin_socket_mode, "600");
  assert_string_equal(cfg.engine, "redis");
  assert_string_equal(cfg.log_level, "debug");
  assert_true(cfg.channel_defaults.allow_subscribe_for_client);
  assert_string_equal(cfg.channel_defaults.channel_regex, "^[a-z]+$");
  assert_int_equal(cfg.namespaces_count, 2);

  const struct namespace_config *chat = config_find_namespace(&cfg, "chat:room", 4);
  assert_non_null(chat);
  assert_string_equal(chat->name, "chat");
  assert_true(chat->options.presence);
  assert_true(chat->options.join_leave);
  assert_int_equal(chat->options.history_size, 100);
  assert_int_equal(chat->options.history_ttl_ms, 300000);
  assert_true(chat->options.force_recovery);
  assert_false(chat->options.allow_history_for_anonymous);
  assert_string_equal(chat->options.channel_regex, ""); /* namespaces do not inherit top-level options */

  const struct namespace_config *news = config_find_namespace(&cfg, "news.v2", 7);
  assert_non_null(news);
  assert_true(news->options.allow_history_for_anonymous);
  assert_false(news->options.allow_subscribe_for_client);
  assert_null(config_find_namespace(&cfg, "cha", 3));
  assert_null(config_find_namespace(&cfg, "chatroom", 8));
  config_cleanup(&cfg);
}

static void test_unknown_key(void **state) {
  (void)state;
  load_fails("port = 8000;\nhttp_streams = true;\n", 2, "key 'http_streams': unknown key");
  load_fails("namespaces = (\n  { name = \"chat\";\n    presense = true; }\n);\n", 3,
             "key 'presense': unknown key in namespace 'chat'");
  load_fails("namespaces = ( { name = \"chat\";\n port = 1; } );\n", 2,
             "key 'port': not a channel option, not allowed in namespace 'chat'");
  load_fails("server = { port = 1; };\n", 1, "key 'server': unknown key");
}

static void test_wrong_type(void **state) {
  (void)state;
  load_fails("port = \"8000\";\n", 1, "key 'port': expected an integer");
  load_fails("port = 8000.0;\n", 1, "key 'port': expected an integer");
  load_fails("http_stream = 1;\n", 1, "key 'http_stream': expected true or false");
  load_fails("http_stream = \"true\";\n", 1, "key 'http_stream': expected true or false");
  load_fails("address = 127;\n", 1, "key 'address': expected a string in double quotes");
  load_fails("ping_interval = 25;\n", 1, "key 'ping_interval': expected a string in double quotes");
  load_fails("allowed_origins = \"*\";\n", 1,
             "key 'allowed_origins': expected an array of strings like [ \"a\", \"b\" ]");
  load_fails("allowed_origins = [ 1, 2 ];\n", 1, "key 'allowed_origins': expected a string in double quotes");
  load_fails("namespaces = { name = \"chat\"; };\n", 1,
             "key 'namespaces': expected a list of groups like ( { name = \"chat\"; } )");
  load_fails("namespaces = ( \"chat\" );\n", 1, "key 'namespaces': element 1 is not a group { ... }");
  load_fails("presence = \"yes\";\n", 1, "key 'presence': expected true or false");
}

static void test_out_of_range(void **state) {
  (void)state;
  load_fails("port = 65536;\n", 1, "key 'port': 65536 is out of range 0..65535");
  load_fails("port = -1;\n", 1, "key 'port': -1 is out of range 0..65535");
  load_fails("port = 10000000000L;\n", 1, "key 'port': 10000000000 is out of range 0..65535");
  load_fails("client_queue_max_size = 100;\n", 1,
             "key 'client_queue_max_size': 100 is out of range 1024..1073741824");
  load_fails("sse_max_request_body_size = 0;\n", 1,
             "key 'sse_max_request_body_size': 0 is out of range 1..67108864");
  load_fails("ping_interval = \"500ms\";\n", 1, "key 'ping_interval': \"500ms\" is out of range 1s..24h0m");
  load_fails("namespaces = ( { name = \"chat\";\n history_size = -5; } );\n", 2,
             "key 'history_size': -5 is out of range 0..1000000");
}

/* Every number a config can hold is bounded so that the arithmetic done on it cannot overflow (issue
 * 10 item 13): integers stay below 2^31, so sums and products with a frame size or a count in int64 or
 * size_t are safe; durations stay below 2^31 seconds, so milliseconds * 1000 still fit an int64 and
 * seconds fit the connect reply's uint32 `ping`. One past each maximum is refused with the range, and a
 * duration beyond int64 milliseconds is refused rather than wrapped. */
static void test_number_bounds(void **state) {
  (void)state;
  size_t n, checked = 0;
  const struct config_key *keys = config_keys(&n);
  for (size_t i = 0; i < n; i++) {
    const struct config_key *k = &keys[i];
    if (k->type != CONFIG_INT && k->type != CONFIG_DURATION) continue;
    assert_true(k->min >= 0);
    assert_true(k->min <= k->max);
    if (k->type == CONFIG_INT && k->max > INT32_MAX) fail_msg("%s: max %lld", k->name, (long long)k->max);
    if (k->type == CONFIG_DURATION && k->max > INT32_MAX * INT64_C(1000))
      fail_msg("%s: max %lld ms", k->name, (long long)k->max);
    char text[128], err[512] = "";
    if (k->type == CONFIG_INT)
      snprintf(text, sizeof text, "%s = %lldL;\n", k->name, (long long)k->max + 1);
    else
      snprintf(text, sizeof text, "%s = \"%lldms\";\n", k->name, (long long)k->max + 1);
    struct config cfg;
    char *path = write_temp(text);
    assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
    if (strstr(err, "is out of range") == NULL) fail_msg("%s: %s", text, err);
    unlink(path);
    free(path);
    checked++;
  }
  assert_true(checked >= 15);
  load_fails("client_expired_close_delay = \"2562047788015216h\";\n", 1,
             "key 'client_expired_close_delay': \"2562047788015216h\" is not a duration (write e.g. \"25s\", "
             "\"500ms\", \"5m\")");
}

static void test_bad_duration(void **state) {
  (void)state;
  load_fails("pong_timeout = \"5x\";\n", 1,
             "key 'pong_timeout': \"5x\" is not a duration (write e.g. \"25s\", \"500ms\", \"5m\")");
  load_fails("pong_timeout = \"5\";\n", 1,
             "key 'pong_timeout': \"5\" is not a duration (write e.g. \"25s\", \"500ms\", \"5m\")");
  load_fails(
      "\n\nclient_stale_close_delay = \"\";\n", 3,
      "key 'client_stale_close_delay': \"\" is not a duration (write e.g. \"25s\", \"500ms\", \"5m\")");
}

static void test_pong_not_below_ping(void **state) {
  (void)state;
  load_fails("ping_interval = \"5s\";\n", 1,
             "key 'pong_timeout': must be less than ping_interval (8s >= 5s)");
  load_fails("ping_interval = \"10s\";\npong_timeout = \"10s\";\n", 2,
             "key 'pong_timeout': must be less than ping_interval (10s >= 10s)");
  struct config cfg;
  load_ok("ping_interval = \"10s\";\npong_timeout = \"9999ms\";\n", &cfg);
  config_cleanup(&cfg);
  load_ok("pong_timeout = \"0s\";\n", &cfg); /* 0s: clients need not answer pings */
  assert_int_equal(cfg.pong_timeout_ms, 0);
  config_cleanup(&cfg);
}

static void test_bad_strings(void **state) {
  (void)state;
  load_fails("log_level = \"verbose\";\n", 1,
             "key 'log_level': \"verbose\" is not one of debug, info, warn, error");
  load_fails("engine = \"mysql\";\n", 1, "key 'engine': \"mysql\" is not one of memory, redis");
  load_fails("api_handler_prefix = \"api\";\n", 1, "key 'api_handler_prefix': \"api\" must start with '/'");
  load_fails("sse_handler_prefix = \"\";\n", 1, "key 'sse_handler_prefix': \"\" must start with '/'");
  load_fails("admin_socket_mode = \"0999\";\n", 1,
             "key 'admin_socket_mode': \"0999\" is not an octal file mode like \"0660\"");
  load_fails("address = \"\";\n", 1, "key 'address': must not be empty");

  char err[512] = "";
  struct config cfg;
  char *path = write_temp("channel_regex = \"(\";\n");
  assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
  assert_non_null(strstr(err, ":1: key 'channel_regex': bad regular expression: "));
  unlink(path);
  free(path);
}

static void test_history_rules(void **state) {
  (void)state;
  load_fails("history_size = 10;\n", 1,
             "key 'history_size': needs history: set both history_size > 0 and "
             "history_ttl > 0s");
  load_fails(
      "namespaces = ( { name = \"chat\"; history_size = 10; history_ttl = \"0s\";\n"
      "  force_positioning = true; } );\n",
      1, "key 'history_size': needs history: set both history_size > 0 and history_ttl > 0s");
  load_fails("namespaces = ( { name = \"chat\";\n force_recovery = true; } );\n", 2,
             "key 'force_recovery': needs history: set both history_size > 0 and history_ttl > 0s");
}

static void test_delta_types(void **state) {
  (void)state;
  load_fails("namespaces = ( { name = \"doc\";\n allowed_delta_types = [ \"fossil\",\n \"zstd\" ]; } );\n", 3,
             "key 'allowed_delta_types': \"zstd\" is not a delta type (the one there is: \"fossil\")");
  load_fails("allowed_delta_types = \"fossil\";\n", 1,
             "key 'allowed_delta_types': expected an array of strings like [ \"a\", \"b\" ]");
  char err[512] = "";
  struct config cfg;
  char *path = write_temp("namespaces = ( { name = \"doc\"; allowed_delta_types = [ \"fossil\" ];\n"
                          "  delta_publish = true; } );\n");
  assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
  assert_int_equal(cfg.namespaces_count, 1);
  const struct channel_options *o = &cfg.namespaces[0].options;
  assert_int_equal(o->allowed_delta_types_count, 1);
  assert_string_equal(o->allowed_delta_types[0], "fossil");
  assert_true(o->delta_publish);
  assert_int_equal(cfg.channel_defaults.allowed_delta_types_count, 0);
  config_cleanup(&cfg);
  unlink(path);
  free(path);
}

static void test_map_options(void **state) {
  (void)state;
  load_fails("namespaces = ( { name = \"board\";\n subscription_type = \"tree\"; } );\n", 2,
             "key 'subscription_type': \"tree\" is not one of \"stream\", \"map\", \"map_clients\", \"map_users\"");
  load_fails("namespaces = ( { name = \"board\";\n subscription_type = \"map\"; } );\n", 2,
             "key 'map_mode': a map namespace needs map_mode: \"ephemeral\", \"recoverable\" or \"persistent\"");
  load_fails("namespaces = ( { name = \"board\"; subscription_type = \"map\";\n map_mode = \"recoverable\"; } );\n", 2,
             "key 'map_key_ttl': map_mode \"recoverable\" needs map_key_ttl > 0s");
  load_fails("namespaces = ( { name = \"board\"; subscription_type = \"map\"; map_mode = \"persistent\";\n"
             " map_key_ttl = \"10s\"; } );\n",
             2, "key 'map_key_ttl': persistent keys never expire: leave map_key_ttl unset");
  load_fails("namespaces = ( { name = \"board\"; subscription_type = \"map\"; map_mode = \"ephemeral\";\n"
             " map_key_ttl = \"10s\";\n map_stream_size = 10; } );\n",
             3, "key 'map_stream_size': an ephemeral map keeps no stream of changes: leave it unset");
  load_fails("namespaces = ( { name = \"board\"; subscription_type = \"map\"; map_mode = \"persistent\";\n"
             " map_min_page_size = 10;\n map_default_page_size = 5; } );\n",
             3, "key 'map_default_page_size': needs map_min_page_size <= map_default_page_size <= "
                "map_max_page_size (10, 5, 1000)");
  load_fails("namespaces = ( { name = \"board\"; subscription_type = \"map\"; map_mode = \"persistent\";\n"
             " map_client_key = \"session\"; } );\n",
             2, "key 'map_client_key': \"session\" is not one of \"\", \"client_id\", \"user_id\"");
  load_fails("namespaces = ( { name = \"room\";\n map_clients_presence_channel_prefix = \"clients:\"; } );\n", 2,
             "key 'map_clients_presence_channel_prefix': \"clients:\" must be \"<namespace>:\" of a namespace with "
             "subscription_type = \"map_clients\"");
  load_fails("namespaces = ( { name = \"users\"; subscription_type = \"map_users\";\n map_mode = \"persistent\"; } );\n",
             2, "key 'map_mode': a map_users namespace cannot be persistent");
  char err[512] = "";
  struct config cfg;
  char *path = write_temp("namespaces = ( { name = \"board\"; subscription_type = \"map\"; map_mode = \"recoverable\";\n"
                          "  map_key_ttl = \"60s\"; map_allow_publish_for_subscriber = true; } );\n");
  assert_int_equal(config_load(&cfg, path, err, sizeof err), 0);
  const struct channel_options *o = &cfg.namespaces[0].options;
  assert_string_equal(o->subscription_type, "map");
  assert_string_equal(o->map_mode, "recoverable");
  assert_int_equal(o->map_key_ttl_ms, 60000);
  assert_true(o->map_allow_publish_for_subscriber);
  assert_int_equal(o->map_default_page_size, 100);
  assert_string_equal(cfg.channel_defaults.subscription_type, "stream");
  config_cleanup(&cfg);
  unlink(path);
  free(path);
}

static void test_missing_file(void **state) {
  (void)state;
  char err[512] = "";
  struct config cfg;
  assert_int_equal(config_load(&cfg, "/nonexistent/streamd.conf", err, sizeof err), -1);
  assert_string_equal(err, "/nonexistent/streamd.conf: cannot open: No such file or directory");
  assert_null(cfg.address);
}

static void test_syntax_error(void **state) {
  (void)state;
  char err[512] = "", want[600];
  struct config cfg;
  char *path = write_temp("port = 8000;\n# comment\nhttp_stream = ;\n");
  assert_int_equal(config_load(&cfg, path, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s:3: ", path);
  assert_memory_equal(err, want, strlen(want));
  assert_true(strlen(err) > strlen(want)); /* libconfig's text follows */
  unlink(path);
  free(path);
}

static void test_namespace_names(void **state) {
  (void)state;
  load_fails("namespaces = (\n { name = \"chat\"; },\n { name = \"chat\"; }\n);\n", 3,
             "key 'name': duplicate namespace \"chat\"");
  load_fails("namespaces = ( { name = \"c\"; } );\n", 1, "key 'name': \"c\" must match ^[-a-zA-Z0-9_.]{2,}$");
  load_fails("namespaces = ( { name = \"chat room\"; } );\n", 1,
             "key 'name': \"chat room\" must match ^[-a-zA-Z0-9_.]{2,}$");
  load_fails("namespaces = ( { name = \"chat\"; },\n { presence = true; } );\n", 2,
             "key 'name': namespace 2 has no name");
  load_fails("namespaces = ( { name = 5; } );\n", 1, "key 'name': expected a string in double quotes");
}

static void test_key_table(void **state) {
  (void)state;
  size_t n, channel = 0;
  const struct config_key *keys = config_keys(&n);
  assert_true(n > 50);
  for (size_t i = 0; i < n; i++) {
    assert_non_null(keys[i].help);
    assert_non_null(keys[i].default_text);
    channel += keys[i].channel_option;
    for (size_t j = 0; j < i; j++) assert_string_not_equal(keys[i].name, keys[j].name);
  }
  assert_int_equal(channel, 50); /* INTERFACE.md lists 22 channel options, + history_meta_ttl,
                                  publication_data_format, proxy_subscribe/publish/sub_refresh,
                                  allowed_delta_types, delta_publish, subscription_type and the 20
                                  map_* options */
}

/* The value of KEY's default as a config file spells it. */
static void default_as_written(const struct config_key *key, char *buf, size_t len) {
  bool quoted = key->type == CONFIG_STRING || key->type == CONFIG_REGEX || key->type == CONFIG_DURATION;
  snprintf(buf, len, quoted ? "\"%s\"" : "%s", key->default_text);
}

static const struct config_key *find_key(const struct config_key *keys, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(keys[i].name, name) == 0) return &keys[i];
  return NULL;
}

static char *read_all(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  rewind(f);
  char *text = calloc(1, (size_t)len + 1);
  assert_non_null(text);
  assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  return text;
}

static void test_shipped_file_loads(void **state) {
  (void)state;
  struct config cfg;
  char err[512] = "";
  int rc = config_load(&cfg, SHIPPED_CONF, err, sizeof err);
  if (rc != 0) print_error("%s\n", err);
  assert_int_equal(rc, 0);
  assert_true(cfg.http_stream); /* what README's run command relies on */
  assert_true(cfg.client_insecure);
  assert_string_equal(cfg.api_key, ""); /* no usable secret is shipped: the package generates one */
  assert_string_equal(cfg.address, "127.0.0.1");
  assert_int_equal(cfg.port, 8000);
  assert_false(cfg.api_insecure);
  assert_false(cfg.sse);
  assert_int_equal(cfg.allowed_origins_count, 0);
  assert_int_equal(cfg.namespaces_count, 0);
  assert_int_equal(cfg.ping_interval_ms, 25000);
  config_cleanup(&cfg);
}

/* Every line starting with (maybe commented) `key =` names a key of the table; every key of the table
 * has a commented line at its exact default; and those lines, uncommented, load as a valid file. */
static void test_shipped_file_matches_table(void **state) {
  (void)state;
  size_t n;
  const struct config_key *keys = config_keys(&n);
  bool *at_default = calloc(n, sizeof *at_default);
  char *text = read_all(SHIPPED_CONF), *save = NULL;
  size_t cap = strlen(text) + 1, used = 0;
  char *active = calloc(1, cap);
  regex_t re;
  assert_int_equal(regcomp(&re, "^[ \t]*(#)?[ \t]*([a-z_]+)[ \t]*=[ \t]*(([^;]*);)?", REG_EXTENDED), 0);
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    regmatch_t m[5];
    if (regexec(&re, line, 5, m, 0) != 0) continue;
    char name[64] = "", value[256] = "", want[256];
    snprintf(name, sizeof name, "%.*s", (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
    snprintf(value, sizeof value, "%.*s", (int)(m[4].rm_eo - m[4].rm_so), line + m[4].rm_so);
    const struct config_key *key = find_key(keys, n, name);
    if (!key) print_error("etc/streamd.conf names unknown key '%s'\n", name);
    assert_non_null(key);
    default_as_written(key, want, sizeof want);
    bool commented = m[1].rm_so >= 0, first_column = line[0] == '#' && line[1] == ' ' && line[2] != ' ';
    if (commented && first_column && m[4].rm_so >= 0 && strcmp(value, want) == 0 && !at_default[key - keys]) {
      at_default[key - keys] = true;
      used += (size_t)snprintf(active + used, cap - used, "%s = %s;\n", name, value);
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (!at_default[i]) print_error("etc/streamd.conf lacks '# %s = <default>;'\n", keys[i].name);
    assert_true(at_default[i]);
  }
  struct config cfg;
  load_ok(active, &cfg); /* every default, written as a user would, passes the parser */
  config_cleanup(&cfg);
  regfree(&re);
  free(active);
  free(text);
  free(at_default);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),           cmocka_unit_test(test_default_path),
      cmocka_unit_test(test_full_file),          cmocka_unit_test(test_unknown_key),
      cmocka_unit_test(test_wrong_type),         cmocka_unit_test(test_out_of_range),
      cmocka_unit_test(test_bad_duration),       cmocka_unit_test(test_pong_not_below_ping),
      cmocka_unit_test(test_bad_strings),        cmocka_unit_test(test_history_rules),
      cmocka_unit_test(test_delta_types),        cmocka_unit_test(test_map_options),
      cmocka_unit_test(test_missing_file),       cmocka_unit_test(test_syntax_error),
      cmocka_unit_test(test_namespace_names),    cmocka_unit_test(test_key_table),
      cmocka_unit_test(test_shipped_file_loads), cmocka_unit_test(test_shipped_file_matches_table),
      cmocka_unit_test(test_number_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
