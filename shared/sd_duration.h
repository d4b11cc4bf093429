/* sd_duration: durations as users write them ("25s", "500ms", "5m", "1h30m") and as we print them.
 * Shared by streamd's config parser and streamctl's output. Values are whole milliseconds. */
#ifndef SD_DURATION_H
#define SD_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parses TEXT (one or more <number><unit> groups; units ms, s, m, h; "0" alone is accepted) into
 * *out_ms. Returns 0, or -1 when TEXT is empty, has an unknown unit, a missing unit, or overflows.
 * Thread-safe; TEXT is borrowed. */
int sd_duration_parse(const char *text, int64_t *out_ms);

/* Writes MS as a short human string ("25s", "1m5s", "350ms", "2h3m") into BUF of LEN bytes
 * (always NUL-terminated). Returns BUF. Thread-safe. */
char *sd_duration_format(int64_t ms, char *buf, size_t len);

#endif
