/* codes: lookup tables for error and disconnect texts (see codes.h). */
#include "codes.h"

#include <stddef.h>

struct error_def {
  uint32_t code;
  const char *message;
  bool temporary;
};

static const struct error_def errors[] = {
    {ERROR_INTERNAL, "internal server error", true},
    {ERROR_UNAUTHORIZED, "unauthorized", false},
    {ERROR_UNKNOWN_CHANNEL, "unknown channel", false},
    {ERROR_PERMISSION_DENIED, "permission denied", false},
    {ERROR_METHOD_NOT_FOUND, "method not found", false},
    {ERROR_ALREADY_SUBSCRIBED, "already subscribed", false},
    {ERROR_LIMIT_EXCEEDED, "limit exceeded", false},
    {ERROR_BAD_REQUEST, "bad request", false},
    {ERROR_NOT_AVAILABLE, "not available", false},
    {ERROR_TOKEN_EXPIRED, "token expired", false},
    {ERROR_EXPIRED, "expired", false},
    {ERROR_TOO_MANY_REQUESTS, "too many requests", true},
    {ERROR_UNRECOVERABLE_POSITION, "unrecoverable position", false},
};

struct disconnect_def {
  uint32_t code;
  const char *reason;
};

static const struct disconnect_def disconnects[] = {
    {DISCONNECT_CONNECTION_CLOSED, "connection closed"},
    {DISCONNECT_SHUTDOWN, "shutdown"},
    {DISCONNECT_SERVER_ERROR, "internal server error"},
    {DISCONNECT_EXPIRED, "connection expired"},
    {DISCONNECT_SLOW, "slow"},
    {DISCONNECT_WRITE_ERROR, "write error"},
    {DISCONNECT_INSUFFICIENT_STATE, "insufficient state"},
    {DISCONNECT_NO_PONG, "no pong"},
    {DISCONNECT_INVALID_TOKEN, "invalid token"},
    {DISCONNECT_BAD_REQUEST, "bad request"},
    {DISCONNECT_STALE, "stale"},
    {DISCONNECT_FORCE, "force disconnect"},
    {DISCONNECT_CONNECTION_LIMIT, "connection limit"},
    {DISCONNECT_CHANNEL_LIMIT, "channel limit"},
    {DISCONNECT_INAPPROPRIATE_PROTOCOL, "inappropriate protocol"},
    {DISCONNECT_PERMISSION_DENIED, "permission denied"},
    {DISCONNECT_NOT_AVAILABLE, "not available"},
};

static const struct error_def *find_error(uint32_t code) {
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
    if (errors[i].code == code) return &errors[i];
  return NULL;
}

const char *codes_error_message(uint32_t code) {
  const struct error_def *e = find_error(code);
  return e ? e->message : "unknown error";
}

bool codes_error_temporary(uint32_t code) {
  const struct error_def *e = find_error(code);
  return e ? e->temporary : false;
}

const char *codes_disconnect_reason(uint32_t code) {
  for (size_t i = 0; i < sizeof disconnects / sizeof disconnects[0]; i++)
    if (disconnects[i].code == code) return disconnects[i].reason;
  return "disconnect";
}

/* Connect errors a unidirectional client learns as a disconnect of their own (Centrifugo's mapping);
 * any other error is a server error to it. */
static const struct {
  uint32_t error, disconnect;
} uni_disconnects[] = {
    {ERROR_EXPIRED, DISCONNECT_EXPIRED},
    {ERROR_TOKEN_EXPIRED, DISCONNECT_EXPIRED},
    {ERROR_PERMISSION_DENIED, DISCONNECT_PERMISSION_DENIED},
};

uint32_t codes_uni_disconnect(uint32_t code) {
  for (size_t i = 0; i < sizeof uni_disconnects / sizeof uni_disconnects[0]; i++)
    if (uni_disconnects[i].error == code) return uni_disconnects[i].disconnect;
  return DISCONNECT_SERVER_ERROR;
}
