/* auth_claims: the claims half of JWT verification (auth.c checks the signature first). Each token
 * kind is a list of claim rules {name, parser, destination}; a parser type-checks one JSON value and
 * stores it, so a new claim is one table row, not another branch. Absent and null claims are skipped
 * (Go's encoding/json, which Centrifugo uses, leaves a field untouched for null); unknown claims are
 * ignored; a claim of the wrong type makes the whole token AUTH_INVALID.
 *
 * Invariants: the time checks (exp, nbf) run only after every claim parsed, so a token is never
 * EXPIRED and malformed at once; on any status but AUTH_OK the caller's struct is zeroed again, with
 * nothing left allocated. No state: any thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "codec_json.h"

struct claim_time {
  int64_t value;
  bool set;
};

/* The registered claims both token kinds share (and Centrifugo's `expire_at`). */
struct std_claims {
  char *sub;
  struct claim_time exp, nbf, iat, expire_at;
};

/* Type-checks VALUE (never NULL or null) and stores it at DST. Returns AUTH_OK, AUTH_INVALID (wrong
 * type or content) or AUTH_ERROR (out of memory). DST may already hold a value: replace it. */
typedef enum auth_status (*claim_fn)(json_t *value, void *dst);

struct claim_rule {
  const char *name;
  claim_fn parse;
  size_t offset;      /* of the destination inside the struct the rules fill */
  const char *reject; /* the reason when PARSE says AUTH_INVALID; NULL: "bad claim <name>" */
};

#define N_RULES(rules) (sizeof(rules) / sizeof((rules)[0]))

/* Runs RULES over OBJ into the struct at BASE; stops at the first failure and says which claim. */
static enum auth_status run_rules(json_t *obj, const struct claim_rule *rules, size_t n, void *base,
                                  const struct claim_rule **failed) {
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_object_get(obj, rules[i].name);
    if (v == NULL || json_is_null(v)) continue;
    enum auth_status st = rules[i].parse(v, (char *)base + rules[i].offset);
    if (st != AUTH_OK) {
      *failed = &rules[i];
      return st;
    }
  }
  return AUTH_OK;
}

static enum auth_status apply(json_t *payload, const struct claim_rule *rules, size_t n, void *base,
                              char *why, size_t whylen) {
  const struct claim_rule *failed = NULL;
  enum auth_status st = run_rules(payload, rules, n, base, &failed);
  if (st == AUTH_INVALID && failed->reject != NULL)
    auth_say(why, whylen, "%s", failed->reject);
  else if (st == AUTH_INVALID)
    auth_say(why, whylen, "bad claim \"%s\"", failed->name);
  else if (st == AUTH_ERROR)
    auth_say(why, whylen, "out of memory");
  return st;
}

/* ================================ parsers ================================ */

static enum auth_status claim_string(json_t *v, void *dst) {
  char **s = dst;
  if (!json_is_string(v)) return AUTH_INVALID;
  char *copy = strdup(json_string_value(v)); /* jansson refuses \u0000, so no embedded NULs */
  if (copy == NULL) return AUTH_ERROR;
  free(*s);
  *s = copy;
  return AUTH_OK;
}

/* jti, iss: type-checked here; auth.c holds iss to token_issuer when that is set. */
static enum auth_status claim_is_string(json_t *v, void *dst) {
  (void)dst;
  return json_is_string(v) ? AUTH_OK : AUTH_INVALID;
}

/* aud: a string or an array of strings (RFC 7519 §4.1.3); auth.c matches it to token_audience. */
static enum auth_status claim_audience(json_t *v, void *dst) {
  size_t i;
  json_t *e;
  if (json_is_string(v)) return claim_is_string(v, dst);
  if (!json_is_array(v)) return AUTH_INVALID;
  json_array_foreach(v, i, e) {
    if (!json_is_string(e)) return AUTH_INVALID;
  }
  return AUTH_OK;
}

/* A NumericDate: an integer, or a real whose integer part is taken (RFC 7519 §2 allows fractions). */
static enum auth_status claim_time(json_t *v, void *dst) {
  struct claim_time *t = dst;
  if (json_is_integer(v)) {
    t->value = json_integer_value(v);
  } else if (json_is_real(v) && json_real_value(v) >= -9223372036854775808.0 &&
             json_real_value(v) < 9223372036854775808.0) {
    t->value = (int64_t)json_real_value(v); /* truncates toward zero */
  } else {
    return AUTH_INVALID;
  }
  t->set = true;
  return AUTH_OK;
}

/* info, data: any JSON value, kept as its compact text (the protocol's `bytes` fields are raw JSON). */
static enum auth_status claim_raw_json(json_t *v, void *dst) {
  ProtobufCBinaryData *b = dst, raw = {0};
  if (codec_json_raw_from_value(v, &raw) != 0) return AUTH_ERROR;
  free(b->data);
  *b = raw;
  return AUTH_OK;
}

/* b64info, b64data: standard base64 (Go's StdEncoding). An empty string leaves its JSON twin alone, as
 * in Centrifugo; rules list the b64 claim after its twin so that a non-empty one wins. */
static enum auth_status claim_base64(json_t *v, void *dst) {
  ProtobufCBinaryData *b = dst, raw = {0};
  if (!json_is_string(v)) return AUTH_INVALID;
  if (json_string_length(v) == 0) return AUTH_OK;
  enum auth_status st = auth_base64_decode(json_string_value(v), json_string_length(v), false, &raw);
  if (st != AUTH_OK) return st;
  free(b->data);
  *b = raw;
  return AUTH_OK;
}

/* One override, `{"value": bool}`. `{}` means false (Go's BoolValue with omitempty), as in Centrifugo. */
static enum auth_status claim_override_value(json_t *v, void *dst) {
  enum auth_override *o = dst;
  json_t *value = json_object_get(v, "value");
  if (!json_is_object(v) || (value != NULL && !json_is_null(value) && !json_is_boolean(value)))
    return AUTH_INVALID;
  *o = json_is_true(value) ? AUTH_OVERRIDE_TRUE : AUTH_OVERRIDE_FALSE;
  return AUTH_OK;
}

static const struct claim_rule override_rules[] = {
    {"presence", claim_override_value, offsetof(struct auth_overrides, presence), NULL},
    {"join_leave", claim_override_value, offsetof(struct auth_overrides, join_leave), NULL},
    {"force_push_join_leave", claim_override_value, offsetof(struct auth_overrides, force_push_join_leave),
     NULL},
    {"force_recovery", claim_override_value, offsetof(struct auth_overrides, force_recovery), NULL},
    {"force_positioning", claim_override_value, offsetof(struct auth_overrides, force_positioning), NULL},
};

static enum auth_status claim_overrides(json_t *v, void *dst) {
  const struct claim_rule *failed;
  if (!json_is_object(v)) return AUTH_INVALID;
  return run_rules(v, override_rules, N_RULES(override_rules), dst, &failed);
}

/* The options of one subscription: a `subs` entry, or the top level of a subscription token. */
static const struct claim_rule option_rules[] = {
    {"info", claim_raw_json, offsetof(struct auth_sub_options, info), NULL},
    {"b64info", claim_base64, offsetof(struct auth_sub_options, info), NULL},
    {"data", claim_raw_json, offsetof(struct auth_sub_options, data), NULL},
    {"b64data", claim_base64, offsetof(struct auth_sub_options, data), NULL},
    {"override", claim_overrides, offsetof(struct auth_sub_options, override), NULL},
};

/* channels (DST is the connection claims): an array of strings. */
static enum auth_status claim_channels(json_t *v, void *dst) {
  struct auth_connection_claims *c = dst;
  size_t i;
  json_t *e;
  if (!json_is_array(v)) return AUTH_INVALID;
  if ((c->channels = calloc(json_array_size(v) + 1, sizeof *c->channels)) == NULL) return AUTH_ERROR;
  json_array_foreach(v, i, e) {
    if (!json_is_string(e)) return AUTH_INVALID;
    if ((c->channels[i] = strdup(json_string_value(e))) == NULL) return AUTH_ERROR;
    c->n_channels = i + 1; /* counted as filled, so a failure half-way cleans up exactly */
  }
  return AUTH_OK;
}

/* subs (DST is the connection claims): an object channel → options (null = no options). */
static enum auth_status claim_subs(json_t *v, void *dst) {
  struct auth_connection_claims *c = dst;
  const struct claim_rule *failed;
  const char *channel;
  json_t *opts;
  if (!json_is_object(v)) return AUTH_INVALID;
  if ((c->subs = calloc(json_object_size(v) + 1, sizeof *c->subs)) == NULL) return AUTH_ERROR;
  json_object_foreach(v, channel, opts) {
    struct auth_sub_claim *s = &c->subs[c->n_subs++];
    if ((s->channel = strdup(channel)) == NULL) return AUTH_ERROR;
    if (json_is_null(opts)) continue;
    if (!json_is_object(opts)) return AUTH_INVALID;
    enum auth_status st = run_rules(opts, option_rules, N_RULES(option_rules), &s->opts, &failed);
    if (st != AUTH_OK) return st;
  }
  return AUTH_OK;
}

/* A non-empty `channel` marks a subscription token, which must not pass for a connection token.
 * Centrifugo lets "" through, and so do we. */
static enum auth_status claim_no_channel(json_t *v, void *dst) {
  (void)dst;
  return json_is_string(v) && json_string_length(v) == 0 ? AUTH_OK : AUTH_INVALID;
}

/* ================================ token kinds ================================ */

static const struct claim_rule std_rules[] = {
    {"sub", claim_string, offsetof(struct std_claims, sub), NULL},
    {"exp", claim_time, offsetof(struct std_claims, exp), NULL},
    {"nbf", claim_time, offsetof(struct std_claims, nbf), NULL},
    {"iat", claim_time, offsetof(struct std_claims, iat), NULL},
    {"expire_at", claim_time, offsetof(struct std_claims, expire_at), NULL},
    {"jti", claim_is_string, 0, NULL},
    {"iss", claim_is_string, 0, NULL},
    {"aud", claim_audience, 0, NULL},
};

static const struct claim_rule connection_rules[] = {
    {"channel", claim_no_channel, 0, "a connection token must not have a channel claim"},
    {"info", claim_raw_json, offsetof(struct auth_connection_claims, info), NULL},
    {"b64info", claim_base64, offsetof(struct auth_connection_claims, info), NULL},
    {"channels", claim_channels, 0, NULL},
    {"subs", claim_subs, 0, NULL},
};

static const struct claim_rule subscription_rules[] = {
    {"channel", claim_string, offsetof(struct auth_subscription_claims, channel), NULL},
    {"client", claim_string, offsetof(struct auth_subscription_claims, client), NULL},
};

/* Moves `sub` into *user, "" when absent. */
static enum auth_status take_user(struct std_claims *s, char **user) {
  *user = s->sub != NULL ? s->sub : strdup("");
  s->sub = NULL;
  return *user != NULL ? AUTH_OK : AUTH_ERROR;
}

static enum auth_status check_times(const struct std_claims *s, int64_t now, char *why, size_t whylen) {
  if (s->exp.set && s->exp.value <= now) {
    auth_say(why, whylen, "token expired");
    return AUTH_EXPIRED;
  }
  if (s->nbf.set && s->nbf.value > now) {
    auth_say(why, whylen, "token not valid yet (nbf)");
    return AUTH_EXPIRED;
  }
  return AUTH_OK;
}

enum auth_status auth_connection_claims_parse(json_t *payload, int64_t now_unix,
                                              struct auth_connection_claims *out, char *why, size_t whylen) {
  struct std_claims std = {0};
  memset(out, 0, sizeof *out);
  enum auth_status st = apply(payload, std_rules, N_RULES(std_rules), &std, why, whylen);
  if (st == AUTH_OK) st = apply(payload, connection_rules, N_RULES(connection_rules), out, why, whylen);
  if (st == AUTH_OK) st = take_user(&std, &out->user);
  if (st == AUTH_OK) st = check_times(&std, now_unix, why, whylen);
  out->exp = std.exp.set ? std.exp.value : 0;
  out->expire_at = std.expire_at.value;
  out->has_expire_at = std.expire_at.set;
  if (st == AUTH_ERROR) auth_say(why, whylen, "out of memory");
  if (st != AUTH_OK) auth_connection_claims_cleanup(out);
  free(std.sub);
  return st;
}

enum auth_status auth_subscription_claims_parse(json_t *payload, int64_t now_unix,
                                                struct auth_subscription_claims *out, char *why,
                                                size_t whylen) {
  struct std_claims std = {0};
  memset(out, 0, sizeof *out);
  enum auth_status st = apply(payload, std_rules, N_RULES(std_rules), &std, why, whylen);
  if (st == AUTH_OK) st = apply(payload, subscription_rules, N_RULES(subscription_rules), out, why, whylen);
  if (st == AUTH_OK) st = apply(payload, option_rules, N_RULES(option_rules), &out->opts, why, whylen);
  if (st == AUTH_OK && (out->channel == NULL || out->channel[0] == '\0')) {
    auth_say(why, whylen, "a subscription token needs a channel claim");
    st = AUTH_INVALID;
  }
  if (st == AUTH_OK) st = take_user(&std, &out->user);
  if (st == AUTH_OK && out->client == NULL && (out->client = strdup("")) == NULL) st = AUTH_ERROR;
  if (st == AUTH_OK) st = check_times(&std, now_unix, why, whylen);
  out->exp = std.exp.set ? std.exp.value : 0;
  out->expire_at = std.expire_at.value;
  out->has_expire_at = std.expire_at.set;
  if (st == AUTH_ERROR) auth_say(why, whylen, "out of memory");
  if (st != AUTH_OK) auth_subscription_claims_cleanup(out);
  free(std.sub);
  return st;
}

/* Centrifugo: a present `expire_at` decides (<= 0: never), else `exp`, else never. */
static int64_t expiry(int64_t exp, bool has_expire_at, int64_t expire_at) {
  if (has_expire_at) return expire_at > 0 ? expire_at : 0;
  return exp > 0 ? exp : 0;
}

int64_t auth_connection_expires_at(const struct auth_connection_claims *c) {
  return expiry(c->exp, c->has_expire_at, c->expire_at);
}

int64_t auth_subscription_expires_at(const struct auth_subscription_claims *c) {
  return expiry(c->exp, c->has_expire_at, c->expire_at);
}

static void options_cleanup(struct auth_sub_options *o) {
  free(o->info.data);
  free(o->data.data);
}

void auth_connection_claims_cleanup(struct auth_connection_claims *c) {
  free(c->user);
  free(c->info.data);
  for (size_t i = 0; i < c->n_channels; i++) free(c->channels[i]);
  free(c->channels);
  for (size_t i = 0; i < c->n_subs; i++) {
    free(c->subs[i].channel);
    options_cleanup(&c->subs[i].opts);
  }
  free(c->subs);
  memset(c, 0, sizeof *c);
}

void auth_subscription_claims_cleanup(struct auth_subscription_claims *c) {
  free(c->user);
  free(c->channel);
  free(c->client);
  options_cleanup(&c->opts);
  memset(c, 0, sizeof *c);
}
