/* sd_text: what counts as text in a name a client chose. UTF-8 decoding by RFC 3629 §4's table of
 * well-formed sequences (no overlong forms, no surrogates, nothing past U+10FFFF) and the control
 * characters (C0, DEL, C1) that must never reach JSON output, a log line or a terminal raw. Shared by
 * streamd's channel name check and streamctl's escaping. Pure functions; any thread. */
#ifndef SD_TEXT_H
#define SD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Decodes the UTF-8 sequence at S (NUL-terminated: a NUL ends any sequence). Returns its code point
 * and stores its length in *LEN, or returns -1 (with *LEN = 1) when S does not start a well-formed
 * sequence. */
long sd_text_decode(const char *s, size_t *len);

/* Is CP a control character: U+0000..U+001F, U+007F or U+0080..U+009F? */
bool sd_text_is_control(long cp);

/* Is TEXT well-formed UTF-8 without control characters? */
bool sd_text_valid(const char *text);

#endif
