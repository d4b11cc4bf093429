/* utf8: UTF-8 checks (see utf8.h), incremental over sd_utf8's table of lead bytes: a lead byte sets
 * how many continuation bytes follow and the range of the first of them. */
#include "utf8.h"

#include "sd_utf8.h"

int utf8_feed(struct utf8_check *u, const uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++) {
    uint8_t b = p[i];
    if (u->need > 0) {
      if (b < u->lo || b > u->hi) return -1;
      u->need--;
      u->lo = 0x80;
      u->hi = 0xBF;
      continue;
    }
    if (b < 0x80) continue; /* ASCII, the common case, without the table */
    const struct sd_utf8_lead *l = sd_utf8_lead(b);
    if (l == NULL) return -1;
    u->need = (uint8_t)(l->len - 1);
    u->lo = l->second_lo;
    u->hi = l->second_hi;
  }
  return 0;
}

bool utf8_complete(const struct utf8_check *u) { return u->need == 0; }

bool utf8_valid(const uint8_t *p, size_t len) {
  struct utf8_check u = UTF8_CHECK_INIT;
  return utf8_feed(&u, p, len) == 0 && utf8_complete(&u);
}

size_t utf8_cut(const uint8_t *p, size_t len, size_t max) {
  if (len <= max) return len;
  size_t n = max;
  while (n > 0 && (p[n] & 0xC0) == 0x80) n--; /* p[n] continues the code point before it */
  return n;
}
