/* redis_addr: the address forms `redis_address` accepts (see redis_conn.h): "host", "host:port",
 * "[v6]:port" and "redis://[user:password@]host[:port][/db]". Pure parsing: no I/O, any thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_conn.h"

#define REDIS_DEFAULT_PORT 6379
#define URL_SCHEME "redis://"

static int fail(char *err, size_t errlen, const char *text, const char *why) {
  snprintf(err, errlen, "redis address \"%s\": %s", text, why);
  return -1;
}

/* Copies [S, S+LEN) into DST of DSTLEN bytes. Returns 0, or -1 when it does not fit. */
static int copy_part(char *dst, size_t dstlen, const char *s, size_t len) {
  if (len >= dstlen) return -1;
  memcpy(dst, s, len);
  dst[len] = '\0';
  return 0;
}

/* Parses a decimal number in [MIN, MAX] from [S, END). */
static int parse_number(const char *s, const char *end, long min, long max, long *out) {
  if (s == end || end - s > 10) return -1;
  long v = 0;
  for (const char *p = s; p < end; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  if (v < min || v > max) return -1;
  *out = v;
  return 0;
}

/* "host", "host:port" or "[v6]:port" in [S, END). */
static int parse_hostport(const char *text, const char *s, const char *end, struct redis_addr *out, char *err,
                          size_t errlen) {
  const char *host = s, *host_end, *port = NULL;
  if (s < end && *s == '[') {
    const char *close = memchr(s, ']', (size_t)(end - s));
    if (close == NULL) return fail(err, errlen, text, "missing ']'");
    host = s + 1;
    host_end = close;
    if (close + 1 < end) {
      if (close[1] != ':') return fail(err, errlen, text, "expected ':' after ']'");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(s, ':', (size_t)(end - s));
    host_end = colon ? colon : end;
    if (colon) port = colon + 1;
  }
  if (host == host_end) return fail(err, errlen, text, "empty host");
  if (copy_part(out->host, sizeof out->host, host, (size_t)(host_end - host)) != 0)
    return fail(err, errlen, text, "host name too long");
  long p = REDIS_DEFAULT_PORT;
  if (port && parse_number(port, end, 1, 65535, &p) != 0)
    return fail(err, errlen, text, "port must be a number from 1 to 65535");
  out->port = (int)p;
  return 0;
}

int redis_addr_parse(const char *text, struct redis_addr *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  const char *s = text, *end = text + strlen(text);
  if (strncmp(s, URL_SCHEME, strlen(URL_SCHEME)) != 0) return parse_hostport(text, s, end, out, err, errlen);
  s += strlen(URL_SCHEME);
  const char *slash = memchr(s, '/', (size_t)(end - s));
  const char *auth_end = slash ? slash : end;
  const char *at = NULL;
  for (const char *p = s; p < auth_end; p++) /* the last '@' ends the credentials */
    if (*p == '@') at = p;
  if (at) {
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *user_end = colon ? colon : at;
    if (copy_part(out->user, sizeof out->user, s, (size_t)(user_end - s)) != 0)
      return fail(err, errlen, text, "user name too long");
    if (colon && copy_part(out->password, sizeof out->password, colon + 1, (size_t)(at - colon - 1)) != 0)
      return fail(err, errlen, text, "password too long");
    if (colon == NULL) { /* redis://password@host: the password alone, as redis-cli reads it */
      memcpy(out->password, out->user, sizeof out->password < sizeof out->user ? sizeof out->password
                                                                                 : sizeof out->user);
      out->user[0] = '\0';
    }
    s = at + 1;
  }
  if (parse_hostport(text, s, auth_end, out, err, errlen) != 0) return -1;
  if (slash && slash + 1 < end) {
    long db;
    if (parse_number(slash + 1, end, 0, 1 << 20, &db) != 0)
      return fail(err, errlen, text, "database must be a number");
    out->db = (int)db;
  }
  return 0;
}
