/* http_host: matches a Host header against allowed_hosts (see http_host.h). The header is reduced to
 * its name first: the port after the last ':' outside brackets goes, and so does one trailing dot
 * ("localhost." names the same host). IPv6 literals keep their brackets, as in the header: "[::1]". */
#define _GNU_SOURCE /* FNM_CASEFOLD */
#include "http_host.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The names allowed when allowed_hosts is empty, besides the listen address. */
static const char *const loopback_names[] = {"localhost", "127.0.0.1", "[::1]"};

/* Copies HOST without its port and trailing dot into NAME. Returns -1 when it does not fit or is not a
 * plausible host (empty, or an unbracketed IPv6 address). */
static int host_name(const char *host, char *name, size_t size) {
  size_t n = strlen(host);
  const char *close = strrchr(host, ']');
  const char *colon = strrchr(host, ':');
  if (host[0] == '[') {
    if (close == NULL) return -1;
    n = (size_t)(close - host) + 1;
    if (close[1] != '\0' && close[1] != ':') return -1;
  } else if (colon) {
    if (strchr(host, ':') != colon) return -1;
    n = (size_t)(colon - host);
  }
  if (n > 0 && host[n - 1] == '.') n--;
  if (n == 0 || n >= size) return -1;
  memcpy(name, host, n);
  name[n] = '\0';
  return 0;
}

/* Is NAME the listen address of CFG (an IPv6 one written in brackets)? A wildcard address is no name. */
static bool is_listen_address(const struct config *cfg, const char *name) {
  const char *a = cfg->address;
  if (strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0) return false;
  if (strchr(a, ':') == NULL) return strcasecmp(a, name) == 0;
  size_t n = strlen(a);
  return name[0] == '[' && strlen(name) == n + 2 && strncasecmp(name + 1, a, n) == 0;
}

bool http_host_allowed(const struct config *cfg, const char *host) {
  char name[256];
  if (host == NULL) return true;
  if (host_name(host, name, sizeof name) != 0) return false;
  if (cfg->allowed_hosts_count == 0) {
    for (size_t i = 0; i < sizeof loopback_names / sizeof loopback_names[0]; i++)
      if (strcasecmp(name, loopback_names[i]) == 0) return true;
    return is_listen_address(cfg, name);
  }
  for (size_t i = 0; i < cfg->allowed_hosts_count; i++)
    if (fnmatch(cfg->allowed_hosts[i], name, FNM_CASEFOLD) == 0) return true;
  return false;
}
