/* server_fixture: a struct server with the built-in configuration (insecure mode), an unstarted timing
 * wheel, a registry, a hub and the memory broker, for unit tests that drive server modules without the
 * HTTP layer. Include it in one test file; setup/teardown are cmocka group or test fixtures. */
#ifndef SERVER_FIXTURE_H
#define SERVER_FIXTURE_H

#include <stdlib.h>

#include "broker.h"
#include "config.h"
#include "hub.h"
#include "protocol.h"
#include "registry.h"
#include "server.h"
#include "timer.h"

struct fixture {
  struct config cfg;
  struct server srv;
};

static int setup(void **state) {
  struct fixture *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  assert_int_equal(config_defaults(&fx->cfg), 0);
  fx->cfg.client_insecure = true;
  server_config_init(&fx->srv, &fx->cfg); /* the boot configuration: not shared, never swapped */
  fx->srv.timers = timer_wheel_new(50, 64, 0);
  fx->srv.registry = registry_new();
  fx->srv.hub = hub_new(&fx->srv);
  fx->srv.session_hooks = &protocol_session_hooks;
  fx->srv.broker = broker_memory_new(&fx->srv);
  broker_watch_hub(fx->srv.broker, fx->srv.hub);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  struct fixture *fx = *state;
  hub_free(fx->srv.hub);
  fx->srv.broker->ops->free(fx->srv.broker);
  registry_free(fx->srv.registry);
  timer_wheel_free(fx->srv.timers);
  config_cleanup(&fx->cfg);
  free(fx);
  return 0;
}

#endif
