/* json_raw: raw JSON values inside jansson trees (see json_raw.h). Loading walks the text once with the
 * json_span scanner, building jansson values bottom-up; only number texts that are not plain 64-bit
 * integers go through jansson's own parser. Dumping lets jansson serialize the tree, then replaces each
 * dumped raw string ("\u0000…", which jansson escaped) by its unescaped text. */
#include <stdlib.h>
#include <string.h>

#include "json_raw.h"
#include "json_span.h"

/* What a raw value's string looks like once jansson dumped it: a string opening with an escaped NUL. */
#define DUMPED_MARK "\"\\u0000"

json_t *json_raw_new(const char *text, size_t len) {
  size_t start, end;
  if (json_span_document(text, len, &start, &end) != 0) return NULL;
  char *buf = malloc(end - start + 1);
  if (buf == NULL) return NULL;
  buf[0] = '\0';
  size_t n = json_span_copy_stripped(buf + 1, text + start, end - start);
  json_t *v = json_stringn_nocheck(buf, n + 1); /* json_span checked the UTF-8 */
  free(buf);
  return v;
}

bool json_raw_text(const json_t *v, const char **text, size_t *len) {
  if (!json_is_string(v) || json_string_length(v) == 0 || json_string_value(v)[0] != '\0') return false;
  *text = json_string_value(v) + 1;
  *len = json_string_length(v) - 1;
  return true;
}

/* ---- loading ---- */

struct loader {
  const char *const *raw_keys;
  unsigned flags;
};

static json_t *load_value(const struct loader *l, const char *v, size_t avail, size_t *used, int depth);

static bool is_raw_key(const struct loader *l, const char *key, size_t len) {
  for (const char *const *k = l->raw_keys; k && *k; k++)
    if (strlen(*k) == len && memcmp(*k, key, len) == 0) return true;
  return false;
}

/* The unescaped text of S in a new buffer (NUL-terminated, length in *len), or NULL (out of memory, or
 * a NUL inside when NUL is not allowed). */
static char *unescaped(const struct json_span_str *s, bool allow_nul, size_t *len) {
  char *buf = malloc(s->len + 1);
  if (buf == NULL) return NULL;
  *len = json_span_unescape(s, buf);
  buf[*len] = '\0';
  if (!allow_nul && memchr(buf, '\0', *len) != NULL) {
    free(buf);
    return NULL;
  }
  return buf;
}

static json_t *load_string(const struct loader *l, const char *v, size_t avail, size_t *used) {
  struct json_span_str s;
  size_t n;
  if (json_span_string(v, avail, &s, used) != 0) return NULL;
  if (!s.escaped) return json_stringn_nocheck(s.p, s.len); /* UTF-8 checked, no NUL possible */
  char *text = unescaped(&s, l->flags & JSON_RAW_ALLOW_NUL, &n);
  json_t *str = text ? json_stringn_nocheck(text, n) : NULL;
  free(text);
  return str;
}

static json_t *load_number(const struct loader *l, const char *v, size_t avail, size_t *used) {
  bool negative;
  uint64_t m;
  if (json_span_value(v, avail, used) != 0) return NULL;
  if (json_span_integer(v, *used, &negative, &m) == 0 &&
      m <= (negative ? (uint64_t)INT64_MAX + 1 : INT64_MAX))
    return json_integer(negative ? (json_int_t)(0 - m) : (json_int_t)m);
  size_t flags = JSON_DECODE_ANY | (l->flags & JSON_RAW_INT_AS_REAL ? JSON_DECODE_INT_AS_REAL : 0);
  return json_loadb(v, *used, flags, NULL); /* a real (NULL beyond a double's range) */
}

/* Sets member KEY of OBJ to the value at V (raw when KEY is a raw key and the value is not null). */
static int load_member(const struct loader *l, json_t *obj, const struct json_span_str *key, const char *v,
                       size_t avail, size_t *used, int depth) {
  size_t klen;
  char *k = unescaped(key, false, &klen); /* jansson keys cannot hold NUL either */
  json_t *value = NULL;
  if (k != NULL && is_raw_key(l, k, klen) && v[0] != 'n')
    value = json_span_value(v, avail, used) == 0 ? json_raw_new(v, *used) : NULL;
  else if (k != NULL)
    value = load_value(l, v, avail, used, depth + 1);
  /* setn_new takes VALUE's reference even when it fails */
  int rc = value != NULL && json_object_setn_new_nocheck(obj, k, klen, value) == 0 ? 0 : -1;
  free(k);
  return rc;
}

static json_t *load_container(const struct loader *l, const char *v, size_t avail, size_t *used, int depth) {
  struct json_span_iter it;
  struct json_span_str key;
  if (depth >= JSON_SPAN_MAX_DEPTH || json_span_iter_begin(&it, v, avail) != 0) return NULL;
  bool object = it.close == '}';
  json_t *c = object ? json_object() : json_array();
  int more, rc = c ? 0 : -1;
  while (rc == 0 && (more = json_span_iter_next(&it, object ? &key : NULL)) == 1) {
    size_t n = 0;
    if (object) {
      rc = load_member(l, c, &key, v + it.pos, avail - it.pos, &n, depth);
    } else {
      json_t *e = load_value(l, v + it.pos, avail - it.pos, &n, depth + 1);
      rc = e != NULL && json_array_append_new(c, e) == 0 ? 0 : -1;
    }
    it.pos += n;
  }
  if (rc != 0 || more != 0) {
    json_decref(c);
    return NULL;
  }
  *used = it.pos;
  return c;
}

static json_t *load_value(const struct loader *l, const char *v, size_t avail, size_t *used, int depth) {
  switch (v[0]) {
    case '{':
    case '[':
      return load_container(l, v, avail, used, depth);
    case '"':
      return load_string(l, v, avail, used);
    case 't':
    case 'f':
    case 'n':
      if (json_span_value(v, avail, used) != 0) return NULL;
      return v[0] == 't' ? json_true() : v[0] == 'f' ? json_false() : json_null();
    default:
      return load_number(l, v, avail, used);
  }
}

json_t *json_raw_loadb(const char *text, size_t len, const char *const *raw_keys, unsigned flags) {
  struct loader l = {raw_keys, flags};
  size_t start = json_span_skip_ws(text, len, 0), used;
  if (start >= len) return NULL;
  json_t *v = load_value(&l, text + start, len - start, &used, 0);
  if (v != NULL && json_span_skip_ws(text, len, start + used) != len) { /* trailing garbage */
    json_decref(v);
    v = NULL;
  }
  return v;
}

/* ---- dumping ---- */

/* The offset of the next dumped raw string in TEXT at or after FROM, or LEN. */
static size_t find_mark(const char *text, size_t len, size_t from) {
  size_t mark = strlen(DUMPED_MARK);
  for (const char *q; from < len && (q = memchr(text + from, '"', len - from)) != NULL; from++) {
    from = (size_t)(q - text);
    if (len - from >= mark && memcmp(q, DUMPED_MARK, mark) == 0) return from;
  }
  return len;
}

/* Copies DUMPED (LEN bytes) into OUT replacing each dumped raw string by its text; returns the bytes
 * written, or (size_t)-1 when a marked string is not a raw value after all (the rule was broken). */
static size_t splice(const char *dumped, size_t len, char *out) {
  size_t i = 0, n = 0;
  for (;;) {
    size_t at = find_mark(dumped, len, i), end, start, stop;
    memcpy(out + n, dumped + i, at - i);
    n += at - i;
    if (at == len) return n;
    struct json_span_str s;
    if (json_span_string(dumped + at, len - at, &s, &end) != 0) return (size_t)-1;
    size_t raw = json_span_unescape(&s, out + n); /* NUL + the text */
    if (json_span_document(out + n + 1, raw - 1, &start, &stop) != 0) return (size_t)-1;
    memmove(out + n, out + n + 1, raw - 1);
    n += raw - 1;
    i = at + end;
  }
}

char *json_raw_dumpb(const json_t *v, size_t flags, size_t *len) {
  char *dumped = json_dumps(v, flags);
  if (dumped == NULL) return NULL;
  size_t dlen = strlen(dumped);
  if (find_mark(dumped, dlen, 0) == dlen) {
    *len = dlen;
    return dumped;
  }
  char *out = malloc(dlen + 1); /* unescaping only shrinks */
  size_t n = out ? splice(dumped, dlen, out) : (size_t)-1;
  free(dumped);
  if (n == (size_t)-1) {
    free(out);
    return NULL;
  }
  out[n] = '\0';
  *len = n;
  return out;
}
