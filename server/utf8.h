/* utf8: UTF-8 validation as RFC 3629 defines it (no overlong forms, no surrogates U+D800..U+DFFF,
 * nothing past U+10FFFF), incremental so that a text arriving in pieces (a WebSocket message in
 * fragments) is checked piece by piece without being joined first, and cutting a text to a byte
 * limit without splitting a code point. Pure functions; any thread. */
#ifndef UTF8_H
#define UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The state between pieces. Zero-initialise it (UTF8_CHECK_INIT) before the first piece. */
struct utf8_check {
  uint8_t need;   /* continuation bytes still expected */
  uint8_t lo, hi; /* the range the next continuation byte must be in */
};
#define UTF8_CHECK_INIT \
  { 0, 0, 0 }

/* Checks P[0..LEN) as the next piece. Returns 0 while the text is valid so far, -1 at the first
 * invalid byte (the state is then meaningless). */
int utf8_feed(struct utf8_check *u, const uint8_t *p, size_t len);

/* Does the text fed so far end on a code point boundary (a complete text)? */
bool utf8_complete(const struct utf8_check *u);

/* Is P[0..LEN) valid UTF-8 on its own? */
bool utf8_valid(const uint8_t *p, size_t len);

/* The length of the longest prefix of the UTF-8 text P[0..LEN) that is at most MAX bytes and does not
 * end inside a code point. */
size_t utf8_cut(const uint8_t *p, size_t len, size_t max);

#endif
