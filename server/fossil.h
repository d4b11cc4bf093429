/* fossil: the encoder of the fossil delta format, the one delta format Centrifugo's protocol negotiates
 * ("fossil", PROTOCOL.md). A delta is text: the target's length in base-64 digits ("0-9A-Z_a-z~", most
 * significant first) and a newline, then commands, each a base-64 count followed by '@' and a base-64
 * source offset and ',' (copy COUNT bytes of the source from OFFSET) or by ':' and COUNT literal bytes
 * (insert them), then the target's checksum in base-64 and ';'. The SDK applies it (fossil-delta). Only
 * the encoder lives here: the server never applies deltas. Pure functions over bytes; any thread. */
#ifndef FOSSIL_H
#define FOSSIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fossil checksum of P[0..LEN): four 32-bit sums over the bytes at each position modulo 4, folded
 * into one, the trailing 1-3 bytes added in the high positions. fossil_checksum("abcd", 4) is
 * 0x61626364. */
uint32_t fossil_checksum(const uint8_t *p, size_t len);

/* Writes into OUT (at most OUT_CAP bytes) a delta that turns SRC (SRC_LEN bytes) into TARGET
 * (TARGET_LEN bytes). Returns its length, or 0 when it does not fit in OUT_CAP or memory ran out (OUT is
 * then garbage). With UTF8_SAFE, every literal run starts and ends on a UTF-8 character boundary of
 * TARGET (no copy begins or ends at a continuation byte), so that a delta of valid UTF-8 is itself valid
 * UTF-8 and a JSON string can carry it. */
size_t fossil_delta_create(const uint8_t *src, size_t src_len, const uint8_t *target, size_t target_len, uint8_t *out,
                           size_t out_cap, bool utf8_safe);

#endif
