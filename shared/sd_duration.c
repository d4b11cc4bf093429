/* sd_duration: parsing and printing of durations. A duration is a sequence of <digits><unit> groups
 * (Go-style, which Centrifugo users know: "1h30m", "25s", "500ms"); the result is exact milliseconds,
 * and every overflow is an error rather than a wrap. */
#include "sd_duration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

struct unit {
  const char *suffix;
  int64_t ms;
};

/* Longest suffix first, so that "ms" is not read as "m" followed by garbage. */
static const struct unit units[] = {
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
};

int sd_duration_parse(const char *text, int64_t *out_ms) {
  if (text == NULL || *text == '\0') return -1;
  if (strcmp(text, "0") == 0) {
    *out_ms = 0;
    return 0;
  }
  int64_t total = 0;
  const char *p = text;
  while (*p) {
    if (!isdigit((unsigned char)*p)) return -1;
    int64_t n = 0;
    while (isdigit((unsigned char)*p)) {
      if (n > (INT64_MAX - 9) / 10) return -1;
      n = n * 10 + (*p++ - '0');
    }
    const struct unit *u = NULL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      size_t sl = strlen(units[i].suffix);
      if (strncmp(p, units[i].suffix, sl) == 0 && !isalpha((unsigned char)p[sl])) {
        u = &units[i];
        p += sl;
        break;
      }
    }
    if (u == NULL) return -1;
    if (n > (INT64_MAX - total) / u->ms) return -1;
    total += n * u->ms;
  }
  *out_ms = total;
  return 0;
}

char *sd_duration_format(int64_t ms, char *buf, size_t len) {
  if (len == 0) return buf;
  if (ms < 1000) {
    snprintf(buf, len, "%lldms", (long long)ms);
    return buf;
  }
  int64_t s = ms / 1000, h = s / 3600, m = (s % 3600) / 60;
  s %= 60;
  if (h > 0)
    snprintf(buf, len, "%lldh%lldm", (long long)h, (long long)m);
  else if (m > 0)
    snprintf(buf, len, "%lldm%llds", (long long)m, (long long)s);
  else
    snprintf(buf, len, "%llds", (long long)s);
  return buf;
}
