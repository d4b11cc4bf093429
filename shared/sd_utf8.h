/* sd_utf8: the one table of well-formed UTF-8 sequences (RFC 3629 §4) that every UTF-8 check in both
 * programs is built on: the JSON scanner, the channel name rule and streamctl's escaping (sd_text),
 * and the WebSocket text checks (server/utf8.c). Pure functions; any thread. */
#ifndef SD_UTF8_H
#define SD_UTF8_H

#include <stddef.h>

/* A kind of lead byte (LO..HI): the sequence's length and the range its second byte must be in (later
 * bytes are always 0x80..0xBF). The narrowed second ranges exclude overlong forms, surrogates and code
 * points past U+10FFFF. */
struct sd_utf8_lead {
  unsigned char lo, hi, len, second_lo, second_hi;
};

/* The row of lead byte B (>= 0x80), or NULL when B never starts a sequence (0x80..0xC1, 0xF5..0xFF). */
const struct sd_utf8_lead *sd_utf8_lead(unsigned char b);

/* The length of the well-formed sequence at S (S[0] >= 0x80; AVAIL bytes readable), or 0. */
size_t sd_utf8_sequence(const unsigned char *s, size_t avail);

#endif
