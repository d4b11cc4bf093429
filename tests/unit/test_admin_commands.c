/* Unit tests for the admin command table (shared/sd_admin.c): the table's own consistency, the command
 * line parser streamctl uses (sd_admin_parse_argv, sd_admin_split_line), the request validation the
 * server applies (sd_admin_validate), and the server's dispatch (admin_execute) against a real hub,
 * registry and memory broker with sessions that have no transport (their queues are drained here). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "admin.h"
#include "broker.h"
#include "codec.h"
#include "config.h"
#include "hub.h"
#include "registry.h"
#include "sd_admin.h"
#include "server.h"
#include "session.h"
#include "timer.h"

/* --- the table --- */

static void test_table_is_complete_and_consistent(void **state) {
  (void)state;
  size_t n;
  const struct sd_admin_command *all = sd_admin_commands(&n);
  assert_int_equal(n, SD_ADMIN_CMD_COUNT);
  for (size_t i = 0; i < n; i++) {
    const struct sd_admin_command *c = &all[i];
    assert_int_equal(c->id, i);
    assert_ptr_equal(sd_admin_get(c->id), c);
    assert_ptr_equal(sd_admin_find(c->name), c);
    assert_true(c->summary && c->summary[0] && c->description && strlen(c->description) > strlen(c->summary));
    for (size_t j = 0; j < i; j++) assert_string_not_equal(all[j].name, c->name);
    bool optional_seen = false;
    for (size_t k = 0; k < c->n_args + c->n_opts; k++) {
      const struct sd_admin_arg *a = k < c->n_args ? &c->args[k] : &c->opts[k - c->n_args];
      assert_true(a->key[0] && a->meta[0] && a->help && a->help[0]);
      if (a->type == SD_ADMIN_INT) assert_true(a->min < a->max);
      if (k < c->n_args) {
        assert_false(optional_seen && a->required); /* optional positionals come last */
        optional_seen |= !a->required;
      }
      for (size_t m = 0; m < k; m++) {
        const struct sd_admin_arg *b = m < c->n_args ? &c->args[m] : &c->opts[m - c->n_args];
        assert_string_not_equal(a->key, b->key);
      }
    }
  }
  assert_null(sd_admin_find("nope"));
  assert_null(sd_admin_find(NULL));
  /* The commands INTERFACE.md names, each exactly once. */
  static const char *const names[] = {"info",        "sessions", "session", "channels",
                                      "channel",     "publish",  "message", "disconnect",
                                      "unsubscribe", "watch",    "trace",   "top",
                                      "reload",      "help"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_non_null(sd_admin_find(names[i]));
  assert_true(sd_admin_find("watch")->streaming);
  assert_true(sd_admin_find("trace")->streaming);
  assert_false(sd_admin_find("top")->streaming);
  assert_true(sd_admin_find("help")->local);
}

static void test_usage_strings(void **state) {
  (void)state;
  char buf[256];
  assert_string_equal(sd_admin_usage(sd_admin_find("disconnect"), buf, sizeof buf),
                      "disconnect ID [--code N] [--reason TEXT]");
  assert_string_equal(sd_admin_usage(sd_admin_find("channels"), buf, sizeof buf), "channels [PATTERN]");
  assert_string_equal(sd_admin_usage(sd_admin_find("publish"), buf, sizeof buf), "publish CHANNEL DATA");
  assert_string_equal(sd_admin_usage(sd_admin_find("sessions"), buf, sizeof buf),
                      "sessions [--channel CHANNEL] [--user USER] [--transport TRANSPORT]");
  assert_string_equal(sd_admin_usage(sd_admin_find("info"), buf, 5), "info");
}

/* --- parsing command lines --- */

/* Parses the words of LINE; returns the status and stores the request's compact JSON (or "") in OUT. */
static int parse(const char *line, char *out, size_t outlen, char *err, size_t errlen) {
  int argc;
  char **argv;
  json_t *req = NULL;
  assert_int_equal(sd_admin_split_line(line, &argc, &argv), 0);
  int rc = sd_admin_parse_argv(argc, argv, &req, err, errlen);
  sd_admin_free_argv(argv);
  out[0] = '\0';
  if (rc == 0) {
    char *text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(out, outlen, "%s", text);
    free(text);
    /* Whatever the CLI builds, the server accepts. */
    const struct sd_admin_command *cmd;
    assert_int_equal(sd_admin_validate(req, &cmd, err, errlen), 0);
  }
  json_decref(req);
  return rc;
}

static void expect_ok(const char *line, const char *json) {
  char out[512], err[256];
  int rc = parse(line, out, sizeof out, err, sizeof err);
  if (rc != 0) fail_msg("'%s': %s", line, err);
  assert_string_equal(out, json);
}

static void expect_error(const char *line, int code, const char *needle) {
  char out[512], err[256] = "";
  assert_int_equal(parse(line, out, sizeof out, err, sizeof err), -code);
  if (strstr(err, needle) == NULL) fail_msg("'%s': message '%s' lacks '%s'", line, err, needle);
}

static void test_parse_builds_requests(void **state) {
  (void)state;
  expect_ok("info", "{\"args\":{},\"cmd\":\"info\"}");
  expect_ok("sessions --channel news --user=alice",
            "{\"args\":{\"channel\":\"news\",\"user\":\"alice\"},\"cmd\":\"sessions\"}");
  expect_ok("sessions --user ''", "{\"args\":{\"user\":\"\"},\"cmd\":\"sessions\"}");
  expect_ok("session abc", "{\"args\":{\"id\":\"abc\"},\"cmd\":\"session\"}");
  expect_ok("channels 'chat:*'", "{\"args\":{\"pattern\":\"chat:*\"},\"cmd\":\"channels\"}");
  expect_ok("publish news '{\"text\": \"hi there\"}'",
            "{\"args\":{\"channel\":\"news\",\"data\":{\"text\":\"hi there\"}},\"cmd\":\"publish\"}");
  expect_ok("message abc 42", "{\"args\":{\"data\":42,\"id\":\"abc\"},\"cmd\":\"message\"}");
  expect_ok("message abc '\"text\"'", "{\"args\":{\"data\":\"text\",\"id\":\"abc\"},\"cmd\":\"message\"}");
  expect_ok("unsubscribe abc news",
            "{\"args\":{\"channel\":\"news\",\"id\":\"abc\"},\"cmd\":\"unsubscribe\"}");
  expect_ok("publish -- --odd 1", "{\"args\":{\"channel\":\"--odd\",\"data\":1},\"cmd\":\"publish\"}");
  expect_ok("help", "{\"args\":{},\"cmd\":\"help\"}");
  expect_ok("help watch", "{\"args\":{\"command\":\"watch\"},\"cmd\":\"help\"}");
}

static void test_parse_code_option(void **state) {
  (void)state;
  expect_ok("disconnect abc", "{\"args\":{\"id\":\"abc\"},\"cmd\":\"disconnect\"}");
  expect_ok("disconnect abc --code 4000 --reason 'go away'",
            "{\"args\":{\"code\":4000,\"id\":\"abc\",\"reason\":\"go away\"},\"cmd\":\"disconnect\"}");
  expect_ok("disconnect --code=3503 abc", "{\"args\":{\"code\":3503,\"id\":\"abc\"},\"cmd\":\"disconnect\"}");
  expect_error("disconnect abc --code x", SD_ADMIN_EUSAGE, "from 3000 to 4999");
  expect_error("disconnect abc --code 4000x", SD_ADMIN_EUSAGE, "N must be a number");
  expect_error("disconnect abc --code 2999", SD_ADMIN_EUSAGE, "from 3000 to 4999");
  expect_error("disconnect abc --code 5000", SD_ADMIN_EUSAGE, "from 3000 to 4999");
  expect_error("disconnect abc --code 99999999999999999999", SD_ADMIN_EUSAGE, "from 3000 to 4999");
  expect_error("disconnect abc --code", SD_ADMIN_EUSAGE, "needs a value");
  expect_error("disconnect abc --code 4000 --code 4001", SD_ADMIN_EUSAGE, "given twice");
}

static void test_parse_rejects_bad_command_lines(void **state) {
  (void)state;
  expect_error("frobnicate", SD_ADMIN_EUNKNOWN, "unknown command 'frobnicate'");
  expect_error("session", SD_ADMIN_EUSAGE, "missing ID (usage: session ID)");
  expect_error("publish news", SD_ADMIN_EUSAGE, "missing DATA");
  expect_error("info extra", SD_ADMIN_EUSAGE, "too many arguments");
  expect_error("sessions --color red", SD_ADMIN_EUSAGE, "unknown option --color");
  expect_error("session --code 4000 abc", SD_ADMIN_EUSAGE, "unknown option --code");
  expect_error("publish news 'not json'", SD_ADMIN_EUSAGE, "DATA is not valid JSON");
  expect_error("publish news null", SD_ADMIN_EUSAGE, "DATA is not valid JSON");
  expect_error("session ''", SD_ADMIN_EUSAGE, "ID must not be empty");
  char err[64];
  json_t *req = NULL;
  assert_int_equal(sd_admin_parse_argv(0, NULL, &req, err, sizeof err), -SD_ADMIN_EUSAGE);
}

static void test_split_line(void **state) {
  (void)state;
  int argc;
  char **argv;
  assert_int_equal(
      sd_admin_split_line("  publish  news '{\"a\": 1}' \"x \\\"y\\\"\" a\\ b '' \n", &argc, &argv), 0);
  assert_int_equal(argc, 6);
  assert_string_equal(argv[0], "publish");
  assert_string_equal(argv[1], "news");
  assert_string_equal(argv[2], "{\"a\": 1}");
  assert_string_equal(argv[3], "x \"y\"");
  assert_string_equal(argv[4], "a b");
  assert_string_equal(argv[5], "");
  assert_null(argv[6]);
  sd_admin_free_argv(argv);
  assert_int_equal(sd_admin_split_line("   ", &argc, &argv), 0);
  assert_int_equal(argc, 0);
  sd_admin_free_argv(argv);
  assert_int_equal(sd_admin_split_line("publish news '{", &argc, &argv), -SD_ADMIN_EUSAGE);
  assert_null(argv);
}

/* JSON as people type it in the shell: from a word that starts with { or [ the rest of the line is one
 * argument, its quotes, backslashes and blanks untouched (only trailing blanks go). */
static void test_split_line_takes_json_as_typed(void **state) {
  (void)state;
  int argc;
  char **argv;
  assert_int_equal(sd_admin_split_line("publish news {\"a\":1}\n", &argc, &argv), 0);
  assert_int_equal(argc, 3);
  assert_string_equal(argv[2], "{\"a\":1}");
  sd_admin_free_argv(argv);

  const char *data = "{\"text\": \"it's a \\\"quote\\\"\", \"list\": [1, 2]}";
  char line[256];
  snprintf(line, sizeof line, "  message  'client 1'  %s \t \r\n", data);
  assert_int_equal(sd_admin_split_line(line, &argc, &argv), 0);
  assert_int_equal(argc, 3);
  assert_string_equal(argv[1], "client 1");
  assert_string_equal(argv[2], data);
  sd_admin_free_argv(argv);

  assert_int_equal(sd_admin_split_line("publish news [1, \"two\", {\"x\": null}]", &argc, &argv), 0);
  assert_int_equal(argc, 3);
  assert_string_equal(argv[2], "[1, \"two\", {\"x\": null}]");
  sd_admin_free_argv(argv);

  /* an unbalanced quote inside the JSON is the JSON parser's to report, not the splitter's */
  assert_int_equal(sd_admin_split_line("publish news {\"a", &argc, &argv), 0);
  assert_string_equal(argv[2], "{\"a");
  sd_admin_free_argv(argv);

  json_t *req = NULL;
  char err[256] = "";
  assert_int_equal(sd_admin_split_line("publish news {\"a\": [1, 2]}", &argc, &argv), 0);
  assert_int_equal(sd_admin_parse_argv(argc, argv, &req, err, sizeof err), 0);
  sd_admin_free_argv(argv);
  json_t *want =
      json_loads("{\"cmd\":\"publish\",\"args\":{\"channel\":\"news\",\"data\":{\"a\":[1,2]}}}", 0, NULL);
  assert_true(json_equal(req, want));
  json_decref(want);
  json_decref(req);
}

/* --- server-side validation --- */

static void expect_invalid(const char *json, int code, const char *needle) {
  char err[256] = "";
  const struct sd_admin_command *cmd = NULL;
  json_t *req = json_loads(json, JSON_DECODE_ANY, NULL);
  assert_non_null(req);
  assert_int_equal(sd_admin_validate(req, &cmd, err, sizeof err), -code);
  if (strstr(err, needle) == NULL) fail_msg("%s: message '%s' lacks '%s'", json, err, needle);
  json_decref(req);
}

static void test_validate_requests(void **state) {
  (void)state;
  char err[256];
  const struct sd_admin_command *cmd = NULL;
  json_t *req = json_loads("{\"cmd\":\"disconnect\",\"args\":{\"id\":\"x\",\"code\":4000}}", 0, NULL);
  assert_int_equal(sd_admin_validate(req, &cmd, err, sizeof err), 0);
  assert_int_equal(cmd->id, SD_ADMIN_DISCONNECT);
  json_decref(req);
  req = json_loads("{\"cmd\":\"info\"}", 0, NULL); /* "args" may be left out */
  assert_int_equal(sd_admin_validate(req, &cmd, err, sizeof err), 0);
  json_decref(req);

  expect_invalid("[1,2]", SD_ADMIN_EUSAGE, "must be a JSON object");
  expect_invalid("{}", SD_ADMIN_EUSAGE, "needs a \"cmd\"");
  expect_invalid("{\"cmd\":5}", SD_ADMIN_EUSAGE, "needs a \"cmd\"");
  expect_invalid("{\"cmd\":\"nope\"}", SD_ADMIN_EUNKNOWN, "unknown command 'nope'");
  expect_invalid("{\"cmd\":\"info\",\"extra\":1}", SD_ADMIN_EUSAGE, "unknown request key \"extra\"");
  expect_invalid("{\"cmd\":\"info\",\"args\":[]}", SD_ADMIN_EUSAGE, "\"args\" must be an object");
  expect_invalid("{\"cmd\":\"info\",\"args\":{\"x\":1}}", SD_ADMIN_EUSAGE, "unknown argument \"x\"");
  expect_invalid("{\"cmd\":\"session\",\"args\":{}}", SD_ADMIN_EUSAGE, "needs \"id\"");
  expect_invalid("{\"cmd\":\"session\",\"args\":{\"id\":5}}", SD_ADMIN_EUSAGE, "\"id\" must be a string");
  expect_invalid("{\"cmd\":\"session\",\"args\":{\"id\":\"\"}}", SD_ADMIN_EUSAGE, "must not be empty");
  expect_invalid("{\"cmd\":\"disconnect\",\"args\":{\"id\":\"x\",\"code\":\"4000\"}}", SD_ADMIN_EUSAGE,
                 "\"code\" must be an integer");
  expect_invalid("{\"cmd\":\"disconnect\",\"args\":{\"id\":\"x\",\"code\":12}}", SD_ADMIN_EUSAGE,
                 "from 3000");
  expect_invalid("{\"cmd\":\"publish\",\"args\":{\"channel\":\"c\",\"data\":null}}", SD_ADMIN_EUSAGE,
                 "\"data\" must not be null");
}

/* --- the server's dispatch --- */

#include "server_fixture.h"

/* Runs the command line LINE through the CLI parser, the validator and admin_execute. Returns the
 * response (caller frees). */
static json_t *run(struct fixture *fx, const char *line) {
  int argc;
  char **argv, err[256];
  json_t *req = NULL;
  const struct sd_admin_command *cmd;
  assert_int_equal(sd_admin_split_line(line, &argc, &argv), 0);
  assert_int_equal(sd_admin_parse_argv(argc, argv, &req, err, sizeof err), 0);
  sd_admin_free_argv(argv);
  assert_int_equal(sd_admin_validate(req, &cmd, err, sizeof err), 0);
  json_t *resp = admin_execute(&fx->srv, cmd, json_object_get(req, "args"));
  json_decref(req);
  assert_non_null(resp);
  return resp;
}

static json_t *result_of(json_t *resp) {
  json_t *r = json_object_get(resp, "result");
  if (r == NULL) fail_msg("error response: %s", json_string_value(json_object_get(resp, "error")));
  return r;
}

static void expect_server_error(struct fixture *fx, const char *line, const char *needle) {
  json_t *resp = run(fx, line);
  const char *msg = json_string_value(json_object_get(resp, "error"));
  if (msg == NULL || strstr(msg, needle) == NULL) fail_msg("%s: error '%s' lacks '%s'", line, msg, needle);
  json_decref(resp);
}

static struct session *registered_session(struct fixture *fx) {
  struct session *s = session_new(&fx->srv, codec_get(CODEC_JSON), "127.0.0.1");
  assert_non_null(s);
  assert_int_equal(registry_add(fx->srv.registry, s), 0);
  session_set_connected(s);
  return s;
}

/* Everything queued for S, NUL-terminated (caller frees). */
static char *drain_all(struct session *s) {
  size_t cap = 1 << 16, len = 0, n;
  char *buf = malloc(cap + 1);
  bool eof = false;
  while ((n = session_drain(s, (uint8_t *)buf + len, cap - len, &eof)) > 0) len += n;
  buf[len] = '\0';
  return buf;
}

static void test_execute_info_and_help(void **state) {
  struct fixture *fx = *state;
  json_t *resp = run(fx, "info");
  json_t *r = result_of(resp);
  assert_string_equal(json_string_value(json_object_get(r, "uid")), fx->srv.node_id);
  assert_int_equal(json_integer_value(json_object_get(r, "num_clients")), 0);
  assert_non_null(json_object_get(r, "messages_in"));
  json_decref(resp);

  resp = run(fx, "help");
  assert_int_equal(json_array_size(json_object_get(result_of(resp), "commands")), SD_ADMIN_CMD_COUNT);
  json_decref(resp);
  resp = run(fx, "help disconnect");
  assert_string_equal(json_string_value(json_object_get(result_of(resp), "usage")),
                      "disconnect ID [--code N] [--reason TEXT]");
  json_decref(resp);
  expect_server_error(fx, "help nope", "unknown command");
  expect_server_error(fx, "watch news", "streams"); /* served by admin.c, not the handler table */
}

static void test_execute_sessions(void **state) {
  struct fixture *fx = *state;
  struct session *s = registered_session(fx);
  json_t *resp = run(fx, "sessions");
  json_t *rows = json_object_get(result_of(resp), "sessions");
  assert_int_equal(json_array_size(rows), 1);
  json_t *row = json_array_get(rows, 0);
  assert_string_equal(json_string_value(json_object_get(row, "client")), s->client_id);
  assert_string_equal(json_string_value(json_object_get(row, "session")), s->session_id);
  assert_string_equal(json_string_value(json_object_get(row, "protocol")), "json");
  assert_string_equal(json_string_value(json_object_get(row, "remote")), "127.0.0.1");
  json_decref(resp);

  resp = run(fx, "sessions --user someone");
  assert_int_equal(json_array_size(json_object_get(result_of(resp), "sessions")), 0);
  json_decref(resp);
  resp = run(fx, "sessions --user '' --channel news");
  assert_int_equal(json_array_size(json_object_get(result_of(resp), "sessions")), 0);
  json_decref(resp);

  char line[128];
  const char *ids[] = {s->client_id, s->session_id};
  for (int i = 0; i < 2; i++) {
    snprintf(line, sizeof line, "session %s", ids[i]);
    resp = run(fx, line);
    json_t *r = result_of(resp);
    assert_string_equal(json_string_value(json_object_get(r, "client")), s->client_id);
    assert_string_equal(json_string_value(json_object_get(r, "state")), "connected");
    assert_int_equal(json_array_size(json_object_get(r, "channels")), 0);
    json_decref(resp);
  }
  expect_server_error(fx, "session nobody", "no such session");
  session_close(s, 3000);
  session_detach(s);
}

static void test_execute_actions(void **state) {
  struct fixture *fx = *state;
  struct session *s = registered_session(fx);
  char line[160];
  snprintf(line, sizeof line, "message %s '{\"a\":1}'", s->client_id);
  json_t *resp = run(fx, line);
  assert_int_equal(json_object_size(result_of(resp)), 0);
  json_decref(resp);
  char *out = drain_all(s);
  assert_non_null(strstr(out, "\"message\":{\"data\":{\"a\":1}}"));
  free(out);

  snprintf(line, sizeof line, "unsubscribe %s news", s->session_id);
  expect_server_error(fx, line, "not subscribed");
  expect_server_error(fx, "message nobody 1", "no such session");
  expect_server_error(fx, "disconnect nobody", "no such session");

  snprintf(line, sizeof line, "disconnect %s --code 4000 --reason bye", s->client_id);
  resp = run(fx, line);
  assert_int_equal(json_integer_value(json_object_get(result_of(resp), "code")), 4000);
  json_decref(resp);
  assert_int_equal(session_state(s), SESSION_CLOSING);
  out = drain_all(s);
  assert_non_null(strstr(out, "4000"));
  assert_non_null(strstr(out, "bye"));
  free(out);
  session_detach(s);
}

static void test_execute_channels_and_publish(void **state) {
  struct fixture *fx = *state;
  json_t *resp = run(fx, "publish news '{\"text\":\"hi\"}'");
  assert_int_equal(json_object_size(result_of(resp)), 0); /* no history: no offset */
  json_decref(resp);
  expect_server_error(fx, "publish nons:x 1", "unknown channel");
  expect_server_error(fx, "channel nons:x", "unknown channel");

  resp = run(fx, "channels");
  assert_int_equal(json_array_size(json_object_get(result_of(resp), "channels")), 0);
  json_decref(resp);
  resp = run(fx, "channel news");
  json_t *r = result_of(resp);
  assert_int_equal(json_integer_value(json_object_get(r, "subscribers")), 0);
  assert_string_equal(json_string_value(json_object_get(r, "namespace")), "");
  assert_int_equal(json_array_size(json_object_get(r, "clients")), 0);
  json_decref(resp);
}

/* `top`: this node's cumulative numbers, with the channels' publication counts from the hub. */
static void test_execute_top(void **state) {
  struct fixture *fx = *state;
  struct session *s = registered_session(fx);
  static const char subscribe[] = "{\"subscribe\":{\"channel\":\"news\"},\"id\":1}";
  session_feed(s, (const uint8_t *)subscribe, sizeof subscribe - 1);
  for (int i = 0; i < 3; i++) json_decref(run(fx, "publish news 1"));
  json_decref(run(fx, "publish other 1")); /* no local subscriber: no channel row */
  json_t *resp = run(fx, "top --interval 2s --channels 5");
  json_t *nodes = json_object_get(result_of(resp), "nodes");
  assert_int_equal(json_array_size(nodes), 1); /* the memory engine: this node only */
  json_t *n = json_array_get(nodes, 0);
  assert_string_equal(json_string_value(json_object_get(n, "uid")), fx->srv.node_id);
  /* no transport attached in this test: counted under "none" */
  json_t *by_transport = json_object_get(n, "sessions");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(by_transport, "none"), "json")), 1);
  assert_int_equal(json_integer_value(json_object_get(n, "publications")), 4);
  assert_true(json_integer_value(json_object_get(n, "messages_in")) >= 1);
  assert_non_null(json_object_get(json_object_get(n, "emulation"), "204"));
  assert_non_null(json_object_get(json_object_get(n, "disconnects"), "3000"));
  json_t *channels = json_object_get(n, "channels");
  assert_int_equal(json_array_size(channels), 1);
  json_t *row = json_array_get(channels, 0);
  assert_string_equal(json_string_value(json_object_get(row, "channel")), "news");
  assert_int_equal(json_integer_value(json_object_get(row, "subscribers")), 1);
  assert_int_equal(json_integer_value(json_object_get(row, "publications")), 3);
  json_decref(resp);
  free(drain_all(s));
  session_detach(s);
}

/* The value of KEY in `channel NAME`'s answer (-1 when absent). */
static json_int_t channel_field(struct fixture *fx, const char *name, const char *key) {
  char line[128];
  snprintf(line, sizeof line, "channel %s", name);
  json_t *resp = run(fx, line);
  json_t *v = json_object_get(result_of(resp), key);
  json_int_t n = v ? json_integer_value(v) : -1;
  json_decref(resp);
  return n;
}

static json_int_t info_field(struct fixture *fx, const char *key) {
  json_t *resp = run(fx, "info");
  json_t *v = json_object_get(result_of(resp), key);
  json_int_t n = v ? json_integer_value(v) : -1;
  json_decref(resp);
  return n;
}

/* Issue 10, items 7 and 14: `channel` reports the kept history from the stream's count (no unpacking),
 * follows size and TTL retention, and neither it nor a read creates a stream (`info` counts them). */
static void test_execute_channel_history_counts(void **state) {
  struct fixture *fx = *state;
  fx->cfg.channel_defaults.history_size = 10;
  fx->cfg.channel_defaults.history_ttl_ms = 300;
  assert_int_equal(channel_field(fx, "news", "num_pubs"), 0);
  assert_int_equal(channel_field(fx, "news", "offset"), 0);
  assert_int_equal(info_field(fx, "history_streams"), 0); /* reading made no stream */
  for (int i = 0; i < 3; i++) json_decref(run(fx, "publish news 1"));
  assert_int_equal(channel_field(fx, "news", "num_pubs"), 3);
  assert_int_equal(channel_field(fx, "news", "offset"), 3);
  for (int i = 0; i < 9; i++) json_decref(run(fx, "publish news 1"));
  assert_int_equal(channel_field(fx, "news", "num_pubs"), 10); /* history_size */
  assert_int_equal(channel_field(fx, "news", "offset"), 12);
  assert_int_equal(info_field(fx, "history_streams"), 1);
  struct timespec nap = {0, 400 * 1000 * 1000}; /* past history_ttl */
  nanosleep(&nap, NULL);
  assert_int_equal(channel_field(fx, "news", "num_pubs"), 0);
  assert_int_equal(channel_field(fx, "news", "offset"), 12); /* the stream's position stays */
  assert_int_equal(info_field(fx, "history_streams"), 1);
}

static void test_execute_reload_signals_the_process(void **state) {
  struct fixture *fx = *state;
  sigset_t hup, pending;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  assert_int_equal(sigprocmask(SIG_BLOCK, &hup, NULL), 0); /* no other thread runs in this test */
  json_decref(run(fx, "reload"));
  assert_int_equal(sigpending(&pending), 0);
  assert_true(sigismember(&pending, SIGHUP));
  int sig = 0;
  assert_int_equal(sigwait(&hup, &sig), 0);
  assert_int_equal(sig, SIGHUP);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_is_complete_and_consistent),
      cmocka_unit_test(test_usage_strings),
      cmocka_unit_test(test_parse_builds_requests),
      cmocka_unit_test(test_parse_code_option),
      cmocka_unit_test(test_parse_rejects_bad_command_lines),
      cmocka_unit_test(test_split_line),
      cmocka_unit_test(test_split_line_takes_json_as_typed),
      cmocka_unit_test(test_validate_requests),
      cmocka_unit_test_setup_teardown(test_execute_info_and_help, setup, teardown),
      cmocka_unit_test_setup_teardown(test_execute_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_execute_actions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_execute_channels_and_publish, setup, teardown),
      cmocka_unit_test_setup_teardown(test_execute_top, setup, teardown),
      cmocka_unit_test_setup_teardown(test_execute_channel_history_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_execute_reload_signals_the_process, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
