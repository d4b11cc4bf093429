/* channel: namespace resolution and the permission rules for channels (see channel.h). The three
 * "allow_X_for_subscriber / _for_client / _for_anonymous" families share one rule, written once. */
#include "channel.h"

#include "codec_json.h"

#include <regex.h>
#include <string.h>

#include "sd_text.h"

bool channel_name_valid(const char *channel) { return sd_text_valid(channel); }

const struct channel_options *channel_options_for(const struct config *cfg, const char *channel) {
  if (*channel == '$') channel++;
  const char *colon = strchr(channel, ':');
  const struct channel_options *opts = &cfg->channel_defaults;
  const char *rest = channel;
  if (colon) {
    const struct namespace_config *ns = config_find_namespace(cfg, channel, (size_t)(colon - channel));
    if (ns == NULL) return NULL;
    opts = &ns->options;
    rest = colon + 1;
  }
  /* compiled with its configuration (config.c), which the caller's reference keeps alive */
  if (opts->channel_regex_compiled && regexec(opts->channel_regex_compiled, rest, 0, NULL, 0) != 0)
    return NULL;
  return opts;
}

bool channel_is_private(const char *channel) { return channel[0] == '$'; }

bool channel_user_allowed(const struct channel_options *opts, const char *channel, const char *user) {
  const char *hash = strchr(channel, '#');
  if (!opts->allow_user_limited_channels || hash == NULL || user[0] == '\0') return false;
  size_t ulen = strlen(user);
  for (const char *p = hash + 1; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == ulen && strncmp(p, user, len) == 0) return true;
    if (comma == NULL) break;
    p = comma + 1;
  }
  return false;
}

/* The shared rule: insecure, or for_client (anonymous needs for_anonymous), or for_subscriber when
 * subscribed (anonymous needs for_anonymous). */
static bool allowed(const struct config *cfg, bool for_subscriber, bool for_client, bool for_anonymous,
                    const char *user, bool subscribed) {
  if (cfg->client_insecure) return true;
  bool identity_ok = user[0] != '\0' || for_anonymous;
  return identity_ok && (for_client || (for_subscriber && subscribed));
}

bool channel_can_subscribe(const struct config *cfg, const struct channel_options *opts, const char *channel,
                           const char *user) {
  if (channel_user_allowed(opts, channel, user)) return true;
  return allowed(cfg, false, opts->allow_subscribe_for_client, opts->allow_subscribe_for_anonymous, user,
                 false);
}

bool channel_can_publish(const struct config *cfg, const struct channel_options *opts, const char *user,
                         bool subscribed) {
  return allowed(cfg, opts->allow_publish_for_subscriber, opts->allow_publish_for_client,
                 opts->allow_publish_for_anonymous, user, subscribed);
}

bool channel_can_map_write(const struct config *cfg, const struct channel_options *opts, const char *user,
                           bool subscribed, bool removing) {
  if (removing)
    return allowed(cfg, opts->map_allow_remove_for_subscriber, opts->map_allow_remove_for_client,
                   opts->map_allow_remove_for_anonymous, user, subscribed);
  return allowed(cfg, opts->map_allow_publish_for_subscriber, opts->map_allow_publish_for_client,
                 opts->map_allow_publish_for_anonymous, user, subscribed);
}

bool channel_can_presence(const struct config *cfg, const struct channel_options *opts, const char *user,
                          bool subscribed) {
  return allowed(cfg, opts->allow_presence_for_subscriber, opts->allow_presence_for_client,
                 opts->allow_presence_for_anonymous, user, subscribed);
}

bool channel_can_history(const struct config *cfg, const struct channel_options *opts, const char *user,
                         bool subscribed) {
  return allowed(cfg, opts->allow_history_for_subscriber, opts->allow_history_for_client,
                 opts->allow_history_for_anonymous, user, subscribed);
}

bool channel_has_history(const struct channel_options *opts) {
  return opts->history_size > 0 && opts->history_ttl_ms > 0;
}

bool channel_data_allowed(const struct channel_options *opts, const uint8_t *data, size_t len) {
  return strcmp(opts->publication_data_format, "binary") == 0 || codec_json_embeddable(data, len);
}

bool channel_delta_allowed(const struct channel_options *opts, const char *type) {
  for (size_t i = 0; i < opts->allowed_delta_types_count; i++)
    if (strcmp(opts->allowed_delta_types[i], type) == 0) return true;
  return false;
}
