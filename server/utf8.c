/* utf8: UTF-8 checks (see utf8.h). One table row per kind of lead byte says how many continuation
 * bytes follow and the range of the first of them (the second and third are always 0x80..0xBF):
 * the narrowed first ranges are what exclude overlong forms, surrogates and code points past U+10FFFF
 * (RFC 3629 §4). */
#include "utf8.h"

struct lead {
  uint8_t first, last; /* lead bytes of this row */
  uint8_t need;        /* continuation bytes */
  uint8_t lo, hi;      /* range of the first continuation byte */
};

static const struct lead leads[] = {
    {0x00, 0x7F, 0, 0, 0},       {0xC2, 0xDF, 1, 0x80, 0xBF}, {0xE0, 0xE0, 2, 0xA0, 0xBF},
    {0xE1, 0xEC, 2, 0x80, 0xBF}, {0xED, 0xED, 2, 0x80, 0x9F}, {0xEE, 0xEF, 2, 0x80, 0xBF},
    {0xF0, 0xF0, 3, 0x90, 0xBF}, {0xF1, 0xF3, 3, 0x80, 0xBF}, {0xF4, 0xF4, 3, 0x80, 0x8F},
};

static const struct lead *lead_of(uint8_t b) {
  for (size_t i = 0; i < sizeof leads / sizeof leads[0]; i++)
    if (b >= leads[i].first && b <= leads[i].last) return &leads[i];
  return NULL; /* 0x80..0xC1, 0xF5..0xFF never start a code point */
}

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
    const struct lead *l = lead_of(b);
    if (l == NULL) return -1;
    u->need = l->need;
    u->lo = l->lo;
    u->hi = l->hi;
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
