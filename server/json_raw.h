/* json_raw: raw JSON text carried inside jansson trees, for the places that build or read JSON with
 * jansson but must pass embedded application JSON through verbatim (the server API's `data` and
 * `info`, publications in its answers). jansson has no raw value type, so a raw value is a jansson
 * string holding a NUL byte followed by the JSON text; json_raw_dumpb writes such strings' text in
 * place, json_raw_loadb parses text into a tree keeping chosen members raw.
 *
 * The rule that keeps this sound: no other string in a tree given to json_raw_dumpb starts with a NUL
 * byte. C strings never hold one, and json_raw_loadb rejects "\u0000" in strings unless asked for
 * JSON_RAW_ALLOW_NUL (whose trees must then not be dumped with json_raw_dumpb). Raw texts are validated
 * by json_span and hold no raw '\n' or '\r'. Pure functions: any thread. */
#ifndef JSON_RAW_H
#define JSON_RAW_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* json_raw_loadb flags */
#define JSON_RAW_INT_AS_REAL 0x1 /* integers beyond int64 become the nearest real (else: an error) */
#define JSON_RAW_ALLOW_NUL 0x2   /* "\u0000" is allowed inside strings (see the rule above) */

/* Returns a new raw value (caller owns the reference) standing for the JSON value in TEXT (surrounding
 * whitespace and raw line breaks are dropped), or NULL when TEXT is not exactly one JSON value or memory
 * runs out. */
json_t *json_raw_new(const char *text, size_t len);

/* When V is a raw value, stores its JSON text (borrowed from V, not NUL-terminated) and returns true. */
bool json_raw_text(const json_t *v, const char **text, size_t *len);

/* Parses TEXT (one JSON value, whitespace around it allowed) into a new jansson tree (caller owns the
 * reference). Object members whose key is in the NULL-terminated list RAW_KEYS (may be NULL) become raw
 * values, at any depth, unless they are null; everything else is parsed as jansson would (integers that
 * fit int64 are integers, other numbers reals; FLAGS above). Returns NULL when the text is not valid JSON,
 * nests deeper than JSON_SPAN_MAX_DEPTH, holds a number jansson cannot represent, or memory runs out. */
json_t *json_raw_loadb(const char *text, size_t len, const char *const *raw_keys, unsigned flags);

/* Serializes V like json_dumps(V, FLAGS), writing the text of each raw value in its place. Returns a new
 * NUL-terminated string (caller frees) and its length in *len, or NULL on failure. */
char *json_raw_dumpb(const json_t *v, size_t flags, size_t *len);

#endif
