/* main: streamd's entry point: command-line options, configuration, the start order (timers, hub,
 * broker, registry, then HTTP), the signal loop, and the stop order: stop accepting, Disconnect 3001 to
 * every session, wait for every stream to end, and only then stop libmicrohttpd (stopping it with
 * suspended connections would abort the process). Signals are blocked in every thread and taken
 * synchronously here with sigwait(), so no handler ever runs in async-signal context. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "admin.h"
#include "broker.h"
#include "codes.h"
#include "config.h"
#include "hangup.h"
#include "heap_trim.h"
#include "api.h"
#include "handlers.h"
#include "http.h"
#include "hub.h"
#include "jwks.h"
#include "log.h"
#include "loops.h"
#include "protocol.h"
#include "registry.h"
#include "sd_version.h"
#include "server.h"
#include "timer.h"
#include "proxy_calls.h"
#include "workers.h"
#include "ws.h"

#define SHUTDOWN_GRACE_MS 10000

struct options {
  const char *config_path;
  bool test_config;
  long port; /* -1 = from the config */
  const char *log_level;
};

static void usage(FILE *out) {
  fprintf(out,
          "Usage: streamd [OPTIONS]\n"
          "Real-time messaging server speaking Centrifugo's client protocol over HTTP streaming.\n\n"
          "  -c, --config FILE      configuration file (default /etc/streamd/streamd.conf)\n"
          "  -t, --test-config      check the configuration and exit\n"
          "  -p, --port N           listen on port N (0 = any free port), overriding the config\n"
          "  -l, --log-level LEVEL  debug, info, warn or error\n"
          "  -V, --version          print the version and exit\n"
          "  -h, --help             print this help and exit\n");
}

/* Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, struct options *o) {
  static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                           {"test-config", no_argument, NULL, 't'},
                                           {"port", required_argument, NULL, 'p'},
                                           {"log-level", required_argument, NULL, 'l'},
                                           {"version", no_argument, NULL, 'V'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "c:tp:l:Vh", longopts, NULL)) != -1) {
    switch (c) {
      case 'c':
        o->config_path = optarg;
        break;
      case 't':
        o->test_config = true;
        break;
      case 'p':
        o->port = strtol(optarg, &end, 10);
        if (*optarg == '\0' || *end != '\0' || o->port < 0 || o->port > 65535) {
          fprintf(stderr, "streamd: invalid port '%s'\n", optarg);
          return 1;
        }
        break;
      case 'l':
        o->log_level = optarg;
        break;
      case 'V':
        printf("streamd %s\n", SD_VERSION);
        return 0;
      case 'h':
        usage(stdout);
        return 0;
      default:
        usage(stderr);
        return 1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "streamd: unexpected argument '%s'\n", argv[optind]);
    return 1;
  }
  return -1;
}

/* Loads the configuration and applies the command-line overrides. Returns 0 or -1 (message printed). */
static int load_config(const struct options *o, struct config *cfg) {
  char err[512];
  enum log_level level;
  if (config_load(cfg, o->config_path, err, sizeof err) != 0) {
    fprintf(stderr, "streamd: %s\n", err);
    return -1;
  }
  if (o->port >= 0) cfg->port = o->port;
  const char *lvl = o->log_level ? o->log_level : cfg->log_level;
  if (log_level_parse(lvl, &level) != 0) {
    fprintf(stderr, "streamd: invalid log level '%s' (debug, info, warn, error)\n", lvl);
    config_cleanup(cfg);
    return -1;
  }
  log_set_level(level);
  return 0;
}

static void raise_file_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Worker threads for what may wait (Redis calls and surveys of the server API and of client commands,
 * proxy answers, commands that waited for JWKS keys): several, so that one slow survey does not hold
 * the others up. */
#define WORKERS 4

/* The load heap_trim watches: connected sessions. */
static size_t sessions_now(void *registry) { return registry_count(registry); }

static int server_init(struct server *srv, struct config *cfg) {
  char err[256];
  if (server_config_attach_keys(cfg, err, sizeof err) != 0) {
    log_error("%s", err);
    return -1;
  }
  server_config_init(srv, cfg);
  srv->started_ms = timer_now_ms();
  if (id_new_uuid(srv->node_id) != 0) return -1;
  srv->timers = timer_wheel_new(50, 1024, timer_now_ms());
  srv->registry = registry_new();
  srv->loops = loops_new(loops_usable_cores());
  if (srv->loops == NULL) return -1;
  srv->hub = hub_new(srv);
  srv->session_hooks = &protocol_session_hooks;
  srv->broker = broker_new(srv, cfg, &(struct broker_local){admin_node_api, emulation_run_local});
  if (srv->broker && srv->hub) broker_watch_hub(srv->broker, srv->hub);
  /* for whatever waits: Redis calls, proxy answers, commands that waited for JWKS keys */
  if ((srv->workers = workers_new(WORKERS)) == NULL) return -1;
  if (proxy_calls_start(srv) != 0) return -1;
  jwks_fetch_use(srv->http_client); /* JWKS documents come through the proxies' client */
  srv->hangup = hangup_start();
  srv->ws = ws_start(srv);
  if (!srv->timers || !srv->registry || !srv->hub || !srv->broker || !srv->hangup || !srv->ws) return -1;
  srv->heap_trim = heap_trim_start(srv->timers, sessions_now, srv->registry); /* NULL: no trims, no harm */
  return timer_wheel_start(srv->timers);
}

static void server_cleanup(struct server *srv) {
  ws_stop(srv->ws); /* only when http never started: run() stops it before http_stop */
  jwks_fetch_use(NULL); /* before the client goes: no JWKS fetch may start on it */
  proxy_calls_stop(srv); /* its last answers are handled on the workers, with timers still running */
  hangup_stop(srv->hangup);
  if (srv->timers) timer_wheel_stop(srv->timers);
  heap_trim_stop(srv->heap_trim); /* after the wheel stopped: its tick cannot be running */
  workers_free(srv->workers); /* their API calls use the broker */
  if (srv->broker) srv->broker->ops->free(srv->broker); /* first: its threads deliver into the hub */
  loops_free(srv->loops); /* runs the deliveries still queued, then the hub can go */
  hub_free(srv->hub);
  registry_free(srv->registry);
  timer_wheel_free(srv->timers);
  if (srv->boot_cfg) server_config_cleanup(srv);
}

/* The stop order. New streams are refused first, atomically with the registry (registry_close: a
 * stream handler that registers after this gets 503, one that registered before is waited for), so no
 * stream can be suspended once the registry was seen empty: MHD_stop_daemon aborts the process on a
 * suspended connection. Then the listener stops accepting (its socket stays open until MHD_stop_daemon
 * returns, as MHD requires with internal threads), every session is closed with 3001 and waited for. */
static void shutdown_streams(struct server *srv, struct http *http) {
  atomic_store(&srv->shutting_down, true);
  registry_close(srv->registry);
  http_quiesce(http);
  uint64_t deadline = timer_now_ms() + SHUTDOWN_GRACE_MS;
  size_t left = registry_count(srv->registry);
  log_info("shutting down: disconnecting %zu sessions", left);
  while (left > 0 && timer_now_ms() < deadline) {
    registry_close_all(srv->registry, DISCONNECT_SHUTDOWN);
    left = registry_wait_empty(srv->registry, 100);
  }
  if (left > 0) {
    log_warn("%zu sessions did not end within %d ms", left, SHUTDOWN_GRACE_MS);
    stream_abandon_writers(srv); /* streams whose clients take nothing: ended now */
    left = registry_wait_empty(srv->registry, 2000);
    if (left > 0) log_warn("%zu sessions still there", left);
  }
  /* a routed /emulation POST is suspended until its node answers (or its 10 s deadline): MHD must not
   * stop with one suspended either */
  while (atomic_load(&srv->routed_posts) > 0 && timer_now_ms() < deadline + SHUTDOWN_GRACE_MS) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  ws_stop(srv->ws); /* ends any WebSocket left while the daemon still owns the upgrade handles */
  srv->ws = NULL;
}

static int run(const struct options *o, struct server *srv) {
  char err[256];
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  struct http *http = http_start(srv, err, sizeof err);
  if (http == NULL) {
    log_error("%s", err);
    return 1;
  }
  struct admin *admin = admin_start(srv, err, sizeof err);
  if (admin == NULL) {
    log_error("%s", err);
    shutdown_streams(srv, http);
    http_stop(http);
    return 1;
  }
  server_config_warn(srv->boot_cfg);
  log_info("streamd %s node %s listening on %s:%u", SD_VERSION, srv->node_id, http_address(http),
           http_port(http));
  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      server_config_reload(srv, o->config_path, o->port, o->log_level);
      continue;
    }
    log_info("received %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    break;
  }
  admin_stop(admin);
  shutdown_streams(srv, http);
  http_stop(http);
  log_info("stopped");
  return 0;
}

int main(int argc, char **argv) {
  struct options o = {.port = -1};
  int rc = parse_options(argc, argv, &o);
  if (rc >= 0) return rc;
  struct config cfg;
  if (load_config(&o, &cfg) != 0) return 1;
  if (o.test_config) {
    printf("configuration ok\n");
    config_cleanup(&cfg);
    jwks_wait_stopped(JWKS_EXIT_WAIT_MS);
    return 0;
  }
  /* Block the signals we wait for (and SIGPIPE) before any thread starts, so every thread inherits it. */
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  sigaddset(&block, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, NULL);
  raise_file_limit();
  struct server srv = {0};
  rc = 1;
  if (server_init(&srv, &cfg) != 0)
    log_error("cannot initialise the server (out of memory or no random source)");
  else
    rc = run(&o, &srv);
  server_cleanup(&srv);
  config_cleanup(&cfg);
  jwks_wait_stopped(JWKS_EXIT_WAIT_MS); /* the JWKS threads end on their own; let them finish freeing */
  return rc;
}
