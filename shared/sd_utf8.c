/* sd_utf8: the table of lead bytes (see sd_utf8.h). */
#include "sd_utf8.h"

static const struct sd_utf8_lead leads[] = {
    {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF}, {0xE1, 0xEC, 3, 0x80, 0xBF},
    {0xED, 0xED, 3, 0x80, 0x9F}, {0xEE, 0xEF, 3, 0x80, 0xBF}, {0xF0, 0xF0, 4, 0x90, 0xBF},
    {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
};

const struct sd_utf8_lead *sd_utf8_lead(unsigned char b) {
  for (size_t i = 0; i < sizeof leads / sizeof leads[0]; i++)
    if (b >= leads[i].lo && b <= leads[i].hi) return &leads[i];
  return 0;
}

size_t sd_utf8_sequence(const unsigned char *s, size_t avail) {
  const struct sd_utf8_lead *l = sd_utf8_lead(s[0]);
  if (l == 0 || avail < l->len || s[1] < l->second_lo || s[1] > l->second_hi) return 0;
  for (size_t k = 2; k < l->len; k++)
    if ((s[k] & 0xC0) != 0x80) return 0;
  return l->len;
}
