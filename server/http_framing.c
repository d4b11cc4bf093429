/* http_framing: walks every request header once (see http_framing.h). The rules:
 *   - a header name or value holding CR or LF is refused (MHD ends lines at LF only, so a bare CR
 *     survives into the value); libmicrohttpd 0.9.75 itself ends a value at a NUL and counts only the
 *     bytes before it, so a NUL is invisible here (the check stands for versions that count it);
 *   - every Content-Length header must carry the same value (MHD itself refuses a "5, 7" list);
 *   - Transfer-Encoding appears at most once, is exactly "chunked" and never beside Content-Length. */
#include "http_framing.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

struct framing {
  const char *content_length; /* first Content-Length value seen */
  size_t content_length_len;
  unsigned transfer_encodings; /* Transfer-Encoding headers seen */
  const char *why;             /* first defect found, NULL while none */
};

static bool has_line_bytes(const char *s, size_t len) {
  if (s == NULL) return false;
  return memchr(s, '\0', len) || memchr(s, '\r', len) || memchr(s, '\n', len) || strlen(s) != len;
}

/* Is the value exactly the chunked coding, ignoring case and surrounding blanks? */
static bool is_chunked(const char *v, size_t len) {
  while (len && (*v == ' ' || *v == '\t')) v++, len--;
  while (len && (v[len - 1] == ' ' || v[len - 1] == '\t')) len--;
  return len == 7 && strncasecmp(v, "chunked", 7) == 0;
}

static enum MHD_Result check_one(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                 const char *value, size_t value_size) {
  (void)kind;
  struct framing *f = cls;
  if (has_line_bytes(key, key_size) || has_line_bytes(value, value_size)) {
    f->why = "header holds NUL, CR or LF";
    return MHD_NO;
  }
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    if (f->content_length == NULL) {
      f->content_length = value;
      f->content_length_len = value_size;
    } else if (value_size != f->content_length_len || memcmp(value, f->content_length, value_size) != 0) {
      f->why = "differing Content-Length headers";
      return MHD_NO;
    }
  } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
    f->transfer_encodings++;
    if (!is_chunked(value, value_size)) {
      f->why = "transfer coding other than chunked";
      return MHD_NO;
    }
  }
  return MHD_YES;
}

int http_framing_check(struct MHD_Connection *conn, const char **why) {
  struct framing f = {0};
  MHD_get_connection_values_n(conn, MHD_HEADER_KIND, check_one, &f);
  if (f.why == NULL && f.transfer_encodings > 1) f.why = "more than one Transfer-Encoding header";
  if (f.why == NULL && f.transfer_encodings && f.content_length)
    f.why = "both Content-Length and Transfer-Encoding";
  *why = f.why;
  return f.why ? -1 : 0;
}
