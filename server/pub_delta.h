/* pub_delta: the two transformations of a publication's data that delta compression needs (Centrifugo's
 * delta compression, PROTOCOL.md): the fossil delta of this publication's data against the previous
 * one's, and, for JSON subscribers that negotiated delta, the data as a JSON string holding the JSON
 * text (the form in which the SDK keeps its delta base and applies deltas). Pure functions over bytes
 * (fossil.c does the encoding): any thread. */
#ifndef PUB_DELTA_H
#define PUB_DELTA_H

#include <stddef.h>
#include <stdint.h>

/* Makes the fossil delta turning BASE (BASE_LEN bytes) into DATA (LEN bytes), malloc'd into *OUT.
 * Returns its length, or 0 (nothing allocated) when no delta smaller than DATA exists, when out of
 * memory, or when DATA is UTF-8 text and no delta could keep it so (a delta of UTF-8 data is itself
 * UTF-8, so that JSON can carry it as a string). */
size_t pub_delta_make(const uint8_t *base, size_t base_len, const uint8_t *data, size_t len, uint8_t **out);

/* Writes the LEN bytes at DATA as one JSON string literal (quotes included, escaped by jansson),
 * malloc'd into *OUT. Returns its length, or 0 when DATA is not valid UTF-8 or out of memory. */
size_t pub_delta_json_string(const uint8_t *data, size_t len, uint8_t **out);

#endif
