/* ctl_escape: makes text a client chose safe to print on a terminal. Names, versions, user ids,
 * channels and publication data come from clients; printed raw, an ESC or a C1 CSI (U+009B) would let
 * them move the cursor, clear the screen, set the window title or worse. Control characters become
 * \n, \r, \t or \xHH (C0, DEL) and \u00HH (C1), bytes that are not well-formed UTF-8 become \xHH; every
 * other character (other scripts, emoji) is printed as it is. --json output never goes through here:
 * jansson already writes it as valid JSON. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "sd_text.h"

/* The escape of a C0 character with a short form, or NULL. */
static const char *short_escape(long cp) {
  switch (cp) {
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    default:
      return NULL;
  }
}

/* Appends the printable form of the character at P (LEN bytes, code point CP or -1) to OUT. */
static size_t escape_one(const char *p, size_t len, long cp, char *out) {
  const char *sh = short_escape(cp);
  if (sh) return (size_t)sprintf(out, "%s", sh);
  if (cp < 0 || cp < 0x20 || cp == 0x7F) return (size_t)sprintf(out, "\\x%02x", (unsigned char)p[0]);
  if (sd_text_is_control(cp)) return (size_t)sprintf(out, "\\u%04lx", cp);
  memcpy(out, p, len);
  return len;
}

char *ctl_escape(const char *text) {
  if (text == NULL) return NULL;
  char *out = malloc(strlen(text) * 6 + 1); /* \u00HH is the longest form: 6 bytes for 2 */
  if (out == NULL) return NULL;
  size_t n = 0, len;
  for (const char *p = text; *p; p += len) {
    long cp = sd_text_decode(p, &len);
    n += escape_one(p, len, cp, out + n);
  }
  out[n] = '\0';
  return out;
}

void ctl_put(const char *text, FILE *out) {
  char *safe = ctl_escape(text);
  fputs(safe ? safe : "?", out);
  free(safe);
}
