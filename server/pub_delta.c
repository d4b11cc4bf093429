/* pub_delta: a publication's delta and its JSON string form (see pub_delta.h). */
#include "pub_delta.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fossil.h"
#include "utf8.h"

size_t pub_delta_make(const uint8_t *base, size_t base_len, const uint8_t *data, size_t len, uint8_t **out) {
  *out = NULL;
  if (len < 2) return 0; /* nothing shorter than one byte is worth sending */
  uint8_t *buf = malloc(len - 1);
  if (buf == NULL) return 0;
  bool text = utf8_valid(data, len);
  size_t n = fossil_delta_create(base, base_len, data, len, buf, len - 1, text);
  if (n == 0 || (text && !utf8_valid(buf, n))) {
    free(buf);
    return 0;
  }
  *out = buf;
  return n;
}

size_t pub_delta_json_string(const uint8_t *data, size_t len, uint8_t **out) {
  *out = NULL;
  if (!utf8_valid(data, len)) return 0;
  json_t *s = json_stringn((const char *)data, len);
  if (s == NULL) return 0;
  size_t n = json_dumpb(s, NULL, 0, JSON_ENCODE_ANY);
  uint8_t *buf = n ? malloc(n) : NULL;
  if (buf && json_dumpb(s, (char *)buf, n, JSON_ENCODE_ANY) == n) {
    *out = buf;
  } else {
    free(buf);
    n = 0;
  }
  json_decref(s);
  return n;
}
