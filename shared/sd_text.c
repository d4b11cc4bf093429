/* sd_text: decoding on sd_utf8's table, and the control character rule (see sd_text.h). */
#include "sd_text.h"

#include <stddef.h>

#include "sd_utf8.h"

long sd_text_decode(const char *text, size_t *len) {
  const unsigned char *s = (const unsigned char *)text;
  *len = 1;
  if (s[0] < 0x80) return s[0];
  const struct sd_utf8_lead *l = sd_utf8_lead(s[0]);
  if (l == NULL || s[1] < l->second_lo || s[1] > l->second_hi) return -1;
  long cp = s[0] & (0x7F >> l->len);
  for (size_t k = 1; k < l->len; k++) {
    if ((s[k] & 0xC0) != 0x80) return -1; /* also stops at the terminating NUL */
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  *len = l->len;
  return cp;
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
