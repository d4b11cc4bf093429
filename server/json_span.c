/* json_span: the strict JSON scanner (see json_span.h). json_span_value walks one value iteratively,
 * keeping one bit per open container (object or array) on the stack, so nesting costs no recursion;
 * strings are checked with the RFC 3629 table of well-formed UTF-8 sequences; the iterator lets a
 * caller decode a container's members with its own code and skip the rest, in one pass over the text.
 * Nothing here allocates or keeps state. */
#include <string.h>

#include "json_span.h"

#include "sd_utf8.h"

#define NONE SIZE_MAX /* "no position": a syntax error */

/* The character each one-letter escape stands for (0: not an escape letter; 'u' is handled apart). */
static const char simple_escapes[128] = {
    ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
};

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

size_t json_span_skip_ws(const char *text, size_t len, size_t pos) {
  while (pos < len && is_ws((unsigned char)text[pos])) pos++;
  return pos;
}

/* ---- strings ---- */

/* The value of the hex digit C, or 16 when C is not one. */
static uint32_t hex_value(unsigned char c) {
  unsigned char lower = (unsigned char)(c | 0x20);
  if (is_digit(c)) return (uint32_t)(c - '0');
  return lower >= 'a' && lower <= 'f' ? (uint32_t)(lower - 'a' + 10) : 16;
}

/* Reads the 4 hex digits at s[0..3] into *cp; false when there are fewer or they are not hex. */
static bool hex4(const unsigned char *s, size_t avail, uint32_t *cp) {
  if (avail < 4) return false;
  *cp = 0;
  for (int i = 0; i < 4; i++) {
    uint32_t d = hex_value(s[i]);
    if (d == 16) return false;
    *cp = *cp << 4 | d;
  }
  return true;
}

static bool is_high_surrogate(uint32_t cp) { return cp >= 0xD800 && cp <= 0xDBFF; }

static bool is_low_surrogate(uint32_t cp) { return cp >= 0xDC00 && cp <= 0xDFFF; }

/* Length of the valid escape at s[0] == '\\' (2, 6, or 12 for a surrogate pair), or 0. */
static size_t escape_length(const unsigned char *s, size_t avail) {
  if (avail < 2 || s[1] >= 128) return 0;
  if (simple_escapes[s[1]]) return 2;
  uint32_t cp, low;
  if (s[1] != 'u' || !hex4(s + 2, avail - 2, &cp) || is_low_surrogate(cp)) return 0;
  if (!is_high_surrogate(cp)) return 6;
  if (avail < 12 || s[6] != '\\' || s[7] != 'u' || !hex4(s + 8, avail - 8, &low) || !is_low_surrogate(low))
    return 0;
  return 12;
}

int json_span_string(const char *text, size_t len, struct json_span_str *out, size_t *end) {
  const unsigned char *s = (const unsigned char *)text;
  if (len == 0 || s[0] != '"') return -1;
  bool escaped = false;
  size_t i = 1;
  while (i < len) {
    unsigned char c = s[i];
    size_t n = 1;
    if (c == '"') {
      *out = (struct json_span_str){text + 1, i - 1, escaped};
      *end = i + 1;
      return 0;
    }
    if (c == '\\') {
      escaped = true;
      n = escape_length(s + i, len - i);
    } else if (c < 0x20) {
      n = 0; /* raw control characters must be escaped */
    } else if (c >= 0x80) {
      n = sd_utf8_sequence(s + i, len - i);
    }
    if (n == 0) return -1;
    i += n;
  }
  return -1;
}

/* Decodes the character at p[*i] of validated string contents into OUT (UTF-8); advances *i. */
static size_t decode_char(const char *p, size_t *i, char out[4]) {
  const unsigned char *s = (const unsigned char *)p + *i;
  if (s[0] != '\\') {
    out[0] = (char)s[0];
    (*i)++;
    return 1;
  }
  if (s[1] != 'u') {
    out[0] = simple_escapes[s[1]];
    *i += 2;
    return 1;
  }
  uint32_t cp, low;
  hex4(s + 2, 4, &cp);
  *i += 6;
  if (is_high_surrogate(cp)) { /* validated: a low surrogate escape follows */
    hex4(s + 8, 4, &low);
    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    *i += 6;
  }
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18);
  out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

size_t json_span_unescape(const struct json_span_str *s, char *dst) {
  if (!s->escaped) {
    memcpy(dst, s->p, s->len);
    return s->len;
  }
  size_t i = 0, n = 0;
  while (i < s->len) n += decode_char(s->p, &i, dst + n);
  return n;
}

bool json_span_str_equals(const struct json_span_str *s, const char *key) {
  size_t key_len = strlen(key);
  if (!s->escaped) return s->len == key_len && memcmp(s->p, key, key_len) == 0;
  size_t i = 0, n = 0;
  while (i < s->len) {
    char c[4];
    size_t k = decode_char(s->p, &i, c);
    if (k > key_len - n || memcmp(c, key + n, k) != 0) return false;
    n += k;
  }
  return n == key_len;
}

/* ---- scalars ---- */

/* End of the number at s[pos] by the JSON grammar (-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?), or NONE. */
static size_t number_end(const unsigned char *s, size_t len, size_t pos) {
  size_t i = pos + (s[pos] == '-');
  if (i >= len || !is_digit(s[i])) return NONE;
  if (s[i++] != '0')
    while (i < len && is_digit(s[i])) i++;
  if (i < len && s[i] == '.') {
    if (++i >= len || !is_digit(s[i])) return NONE;
    while (i < len && is_digit(s[i])) i++;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i += i + 1 < len && (s[i + 1] == '+' || s[i + 1] == '-') ? 2 : 1;
    if (i >= len || !is_digit(s[i])) return NONE;
    while (i < len && is_digit(s[i])) i++;
  }
  return i;
}

/* End of the literal WORD at text[pos], or NONE. */
static size_t literal_end(const char *text, size_t len, size_t pos, const char *word) {
  size_t n = strlen(word);
  return len - pos >= n && memcmp(text + pos, word, n) == 0 ? pos + n : NONE;
}

/* End of the string, number or literal at text[pos] (pos < len), or NONE. */
static size_t scalar_end(const char *text, size_t len, size_t pos) {
  const unsigned char *s = (const unsigned char *)text;
  struct json_span_str str;
  size_t end;
  switch (s[pos]) {
    case '"':
      return json_span_string(text + pos, len - pos, &str, &end) == 0 ? pos + end : NONE;
    case 't':
      return literal_end(text, len, pos, "true");
    case 'f':
      return literal_end(text, len, pos, "false");
    case 'n':
      return literal_end(text, len, pos, "null");
    default:
      return s[pos] == '-' || is_digit(s[pos]) ? number_end(s, len, pos) : NONE;
  }
}

int json_span_integer(const char *num, size_t len, bool *negative, uint64_t *magnitude) {
  size_t i = len > 0 && num[0] == '-';
  uint64_t m = 0;
  *negative = i == 1;
  for (; i < len; i++) {
    if (!is_digit((unsigned char)num[i])) return -1; /* '.', 'e' or 'E': not an integer */
    unsigned d = (unsigned)(num[i] - '0');
    if (m > (UINT64_MAX - d) / 10) return -1;
    m = m * 10 + d;
  }
  *magnitude = m;
  return 0;
}

/* ---- values ---- */

/* Given the key of a member at text[pos], returns where its value starts (after the ':'), or NONE. */
static size_t member_value(const char *text, size_t len, size_t pos, struct json_span_str *key) {
  struct json_span_str k;
  size_t end;
  if (pos >= len || json_span_string(text + pos, len - pos, key ? key : &k, &end) != 0) return NONE;
  pos = json_span_skip_ws(text, len, pos + end);
  if (pos >= len || text[pos] != ':') return NONE;
  pos = json_span_skip_ws(text, len, pos + 1);
  return pos < len ? pos : NONE;
}

/* The open containers of json_span_value: one bit per depth, set for an object. */
struct nesting {
  size_t depth;
  uint8_t objects[JSON_SPAN_MAX_DEPTH / 8];
};

static bool top_is_object(const struct nesting *n) {
  return n->objects[(n->depth - 1) / 8] >> (n->depth - 1) % 8 & 1;
}

static bool push(struct nesting *n, bool object) {
  if (n->depth == JSON_SPAN_MAX_DEPTH) return false;
  uint8_t bit = (uint8_t)(1u << n->depth % 8);
  n->objects[n->depth / 8] =
      (uint8_t)(object ? n->objects[n->depth / 8] | bit : n->objects[n->depth / 8] & ~bit);
  n->depth++;
  return true;
}

/* A value starts at text[pos]: scans it when it is a scalar, opens it when it is a container. Returns
 * where scanning goes on (NONE on error); *ended tells whether a whole value ended there. */
static size_t value_start(const char *text, size_t len, size_t pos, struct nesting *n, bool *ended) {
  if (pos >= len) return NONE;
  char c = text[pos];
  *ended = true;
  if (c != '{' && c != '[') return scalar_end(text, len, pos);
  if (!push(n, c == '{')) return NONE;
  pos = json_span_skip_ws(text, len, pos + 1);
  if (pos < len && text[pos] == (c == '{' ? '}' : ']')) { /* empty */
    n->depth--;
    return pos + 1;
  }
  *ended = false;
  return c == '{' ? member_value(text, len, pos, NULL) : pos;
}

/* A value inside the innermost container ended before text[pos]: returns where the next value starts
 * (*ended false), or just past the container's closing bracket (*ended true: it ended too). */
static size_t value_next(const char *text, size_t len, size_t pos, struct nesting *n, bool *ended) {
  bool object = top_is_object(n);
  pos = json_span_skip_ws(text, len, pos);
  if (pos < len && text[pos] == ',') {
    *ended = false;
    pos = json_span_skip_ws(text, len, pos + 1);
    return object ? member_value(text, len, pos, NULL) : pos;
  }
  if (pos >= len || text[pos] != (object ? '}' : ']')) return NONE;
  n->depth--;
  return pos + 1;
}

int json_span_value(const char *text, size_t len, size_t *end) {
  struct nesting n;
  size_t pos = 0;
  bool ended = false; /* false: a value starts at pos; true: one ended just before pos */
  n.depth = 0;
  while (pos != NONE) {
    if (!ended) {
      pos = value_start(text, len, pos, &n, &ended);
    } else if (n.depth == 0) {
      *end = pos;
      return 0;
    } else {
      pos = value_next(text, len, pos, &n, &ended);
    }
  }
  return -1;
}

int json_span_document(const char *text, size_t len, size_t *start, size_t *end) {
  size_t s = json_span_skip_ws(text, len, 0), n;
  if (s >= len || json_span_value(text + s, len - s, &n) != 0) return -1;
  if (json_span_skip_ws(text, len, s + n) != len) return -1;
  *start = s;
  *end = s + n;
  return 0;
}

size_t json_span_copy_stripped(char *dst, const char *src, size_t len) {
  if (memchr(src, '\n', len) == NULL && memchr(src, '\r', len) == NULL) {
    memcpy(dst, src, len);
    return len;
  }
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (src[i] != '\n' && src[i] != '\r') dst[n++] = src[i];
  return n;
}

/* ---- containers ---- */

int json_span_iter_begin(struct json_span_iter *it, const char *text, size_t len) {
  if (len == 0 || (text[0] != '{' && text[0] != '[')) return -1;
  *it = (struct json_span_iter){text, len, 1, text[0] == '{' ? '}' : ']', false};
  return 0;
}

int json_span_iter_next(struct json_span_iter *it, struct json_span_str *key) {
  size_t pos = json_span_skip_ws(it->text, it->len, it->pos);
  if (pos >= it->len) return -1;
  if (it->text[pos] == it->close) {
    it->pos = pos + 1;
    return 0;
  }
  if (it->started) {
    if (it->text[pos] != ',') return -1;
    pos = json_span_skip_ws(it->text, it->len, pos + 1);
  }
  it->started = true;
  if (it->close == '}') pos = member_value(it->text, it->len, pos, key);
  if (pos == NONE || pos >= it->len) return -1;
  it->pos = pos;
  return 1;
}

int json_span_member(const char *obj, size_t len, const char *key, const char **vstart, size_t *vlen) {
  struct json_span_iter it;
  struct json_span_str k;
  int rc, found = 1;
  if (json_span_iter_begin(&it, obj, len) != 0 || it.close != '}') return -1;
  while ((rc = json_span_iter_next(&it, &k)) == 1) {
    size_t n;
    if (json_span_value(obj + it.pos, len - it.pos, &n) != 0) return -1;
    if (json_span_str_equals(&k, key)) {
      *vstart = obj + it.pos;
      *vlen = n;
      found = 0;
    }
    it.pos += n;
  }
  return rc < 0 ? -1 : found;
}
