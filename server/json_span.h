/* json_span: a strict JSON scanner over raw text (RFC 8259) that finds where values begin and end
 * without building them and without allocating, so that embedded application JSON (`bytes` fields,
 * PROTOCOL.md §4.2) can be kept byte for byte: numbers of any length and spelling, whitespace, escapes.
 *
 * Strictness: the full RFC 8259 grammar (objects, arrays, strings, numbers, true/false/null, JSON
 * whitespace), strings must be valid UTF-8 (no overlong forms, no surrogate code points) without raw
 * control characters, and \u escapes must pair their surrogates — what jansson accepts with
 * JSON_ALLOW_NUL, except that numbers are never limited in size. Containers nest at most
 * JSON_SPAN_MAX_DEPTH deep. Texts are (pointer, length), never NUL-terminated; offsets are relative to
 * the pointer given. Pure functions: any thread. */
#ifndef JSON_SPAN_H
#define JSON_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_SPAN_MAX_DEPTH 512

/* The contents of a JSON string token, between its quotes, still escaped. */
struct json_span_str {
  const char *p;
  size_t len;
  bool escaped; /* contains at least one backslash escape */
};

/* A cursor over the members of an object or the elements of an array (see json_span_iter_next). */
struct json_span_iter {
  const char *text;
  size_t len;
  size_t pos;   /* the caller moves it past each value; past the closing bracket at the end */
  char close;   /* '}' or ']' */
  bool started; /* a member or element was returned already */
};

/* Returns the first position at or after POS that is not JSON whitespace (LEN when none). */
size_t json_span_skip_ws(const char *text, size_t len, size_t pos);

/* Validates the one JSON value that starts exactly at text[0] (no leading whitespace) and stores the
 * offset just past it in *end; what follows is not looked at. Returns 0, or -1 when no valid value
 * starts there (syntax, UTF-8, or nesting deeper than JSON_SPAN_MAX_DEPTH). */
int json_span_value(const char *text, size_t len, size_t *end);

/* Validates that TEXT is exactly one JSON value, with optional whitespace around it; stores the value's
 * [*start, *end) offsets. Returns 0 or -1. */
int json_span_document(const char *text, size_t len, size_t *start, size_t *end);

/* Scans the string token that starts at text[0] (which must be '"'): stores its contents in *out and
 * the offset just past the closing quote in *end. Returns 0 or -1. */
int json_span_string(const char *text, size_t len, struct json_span_str *out, size_t *end);

/* Reads a number token (as validated by json_span_value) as an integer: stores its sign and magnitude.
 * Returns 0, or -1 when it has a fraction or an exponent (1.0 and 1e2 are not integers, as in jansson)
 * or its magnitude does not fit in 64 bits. */
int json_span_integer(const char *num, size_t len, bool *negative, uint64_t *magnitude);

/* Decodes the escapes of S (contents validated by json_span_string) into DST as UTF-8 and returns the
 * number of bytes written, never more than S->len (so DST needs S->len bytes). "\u0000" becomes a NUL
 * byte: callers that need C strings check for it. */
size_t json_span_unescape(const struct json_span_str *s, char *dst);

/* True when the string S, once unescaped, equals the C string KEY. */
bool json_span_str_equals(const struct json_span_str *s, const char *key);

/* Copies the valid JSON text SRC into DST (LEN bytes available) without its raw '\n' and '\r' bytes and
 * returns the number of bytes written. Valid JSON has raw line breaks only as whitespace between tokens
 * (strings cannot hold them), so dropping them never changes the value. */
size_t json_span_copy_stripped(char *dst, const char *src, size_t len);

/* Starts iterating the object or array at text[0] ('{' or '['). Returns 0, or -1 for anything else. */
int json_span_iter_begin(struct json_span_iter *it, const char *text, size_t len);

/* Moves to the next member or element. Returns 1 with it->pos at the first byte of its value (and, for
 * objects, the member's key in *key; KEY may be NULL for arrays); 0 at the end of the container, it->pos
 * then just past the closing bracket; -1 on a syntax error. After a 1 the caller must consume the value
 * and set it->pos just past it (json_span_value tells where) before calling again. */
int json_span_iter_next(struct json_span_iter *it, struct json_span_str *key);

/* Finds member KEY of the object that starts at obj[0] (keys compared after unescaping; when a key
 * occurs more than once the last one wins, as in jansson) and stores its value's span in
 * *vstart / *vlen. The whole object is validated. Returns 0 when found, 1 when absent, -1 when OBJ is
 * not a valid object. */
int json_span_member(const char *obj, size_t len, const char *key, const char **vstart, size_t *vlen);

#endif
