/* channel: namespace resolution and the permission rules for channels (see channel.h). */
#include "channel.h"

#include <string.h>

const struct channel_options *channel_options_for(const struct config *cfg, const char *channel) {
  if (*channel == '$') channel++;
  const char *colon = strchr(channel, ':');
  if (colon == NULL) return &cfg->channel_defaults;
  const struct namespace_config *ns = config_find_namespace(cfg, channel, (size_t)(colon - channel));
  return ns ? &ns->options : NULL;
}

bool channel_is_private(const char *channel) { return channel[0] == '$'; }

bool channel_can_subscribe(const struct config *cfg, const struct channel_options *opts, const char *user) {
  if (cfg->client_insecure) return true;
  return opts->allow_subscribe_for_client && (user[0] != '\0' || opts->allow_subscribe_for_anonymous);
}

bool channel_can_publish(const struct config *cfg, const struct channel_options *opts, const char *user,
                         bool subscribed) {
  if (cfg->client_insecure) return true;
  bool identity_ok = user[0] != '\0' || opts->allow_publish_for_anonymous;
  if (opts->allow_publish_for_client && identity_ok) return true;
  return opts->allow_publish_for_subscriber && subscribed && identity_ok;
}
