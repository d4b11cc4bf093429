/* sd_text: the decoding table and the control character rule (see sd_text.h). */
#include "sd_text.h"

/* Lead byte ranges, sequence lengths and the range of the second byte (RFC 3629 §4): the narrowed
 * second-byte ranges are what excludes overlong forms, surrogates and code points past U+10FFFF. */
static const struct {
  unsigned char lo, hi, len, second_lo, second_hi;
} leads[] = {
    {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF}, {0xE1, 0xEC, 3, 0x80, 0xBF},
    {0xED, 0xED, 3, 0x80, 0x9F}, {0xEE, 0xEF, 3, 0x80, 0xBF}, {0xF0, 0xF0, 4, 0x90, 0xBF},
    {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
};

long sd_text_decode(const char *text, size_t *len) {
  const unsigned char *s = (const unsigned char *)text;
  *len = 1;
  if (s[0] < 0x80) return s[0];
  for (size_t i = 0; i < sizeof leads / sizeof leads[0]; i++) {
    if (s[0] < leads[i].lo || s[0] > leads[i].hi) continue;
    if (s[1] < leads[i].second_lo || s[1] > leads[i].second_hi) return -1;
    long cp = s[0] & (0x7F >> leads[i].len);
    for (size_t k = 1; k < leads[i].len; k++) {
      if ((s[k] & 0xC0) != 0x80) return -1; /* also stops at the terminating NUL */
      cp = (cp << 6) | (s[k] & 0x3F);
    }
    *len = leads[i].len;
    return cp;
  }
  return -1;
}

bool sd_text_is_control(long cp) { return (cp >= 0 && cp < 0x20) || (cp >= 0x7F && cp <= 0x9F); }

bool sd_text_valid(const char *text) {
  size_t len;
  for (const char *p = text; *p; p += len) {
    long cp = sd_text_decode(p, &len);
    if (cp < 0 || sd_text_is_control(cp)) return false;
  }
  return true;
}
