/* codes: the protocol's error codes (reply errors) and disconnect codes, each with its message, as
 * tables (PROTOCOL.md §4.5, §4.6). Handlers name codes by these enums; the text comes from here only. */
#ifndef CODES_H
#define CODES_H

#include <stdbool.h>
#include <stdint.h>

enum error_code {
  ERROR_INTERNAL = 100,
  ERROR_UNAUTHORIZED = 101,
  ERROR_UNKNOWN_CHANNEL = 102,
  ERROR_PERMISSION_DENIED = 103,
  ERROR_METHOD_NOT_FOUND = 104,
  ERROR_ALREADY_SUBSCRIBED = 105,
  ERROR_LIMIT_EXCEEDED = 106,
  ERROR_BAD_REQUEST = 107,
  ERROR_NOT_AVAILABLE = 108,
  ERROR_TOKEN_EXPIRED = 109,
  ERROR_EXPIRED = 110,
  ERROR_TOO_MANY_REQUESTS = 111,
  ERROR_UNRECOVERABLE_POSITION = 112,
};

enum disconnect_code {
  DISCONNECT_CONNECTION_CLOSED = 3000, /* internal: the client went away; never sent */
  DISCONNECT_SHUTDOWN = 3001,
  DISCONNECT_SERVER_ERROR = 3004,
  DISCONNECT_EXPIRED = 3005,
  DISCONNECT_SLOW = 3008,
  DISCONNECT_WRITE_ERROR = 3009,
  DISCONNECT_INSUFFICIENT_STATE = 3010, /* a positioned subscription lost publications: reconnect, recover */
  DISCONNECT_NO_PONG = 3012,
  DISCONNECT_INVALID_TOKEN = 3500,
  DISCONNECT_BAD_REQUEST = 3501,
  DISCONNECT_STALE = 3502,
  DISCONNECT_FORCE = 3503,
  DISCONNECT_CONNECTION_LIMIT = 3504,
  DISCONNECT_CHANNEL_LIMIT = 3505,
  DISCONNECT_INAPPROPRIATE_PROTOCOL = 3506,
  DISCONNECT_PERMISSION_DENIED = 3507,
  DISCONNECT_NOT_AVAILABLE = 3508,
};

enum unsubscribe_code {
  UNSUBSCRIBE_SERVER = 2000,             /* terminal: the SDK does not resubscribe */
  UNSUBSCRIBE_INSUFFICIENT_STATE = 2500, /* the SDK resubscribes */
  UNSUBSCRIBE_EXPIRED = 2501,
  UNSUBSCRIBE_STATE_INVALIDATED = 2502,
};

/* Message of a reply error code ("permission denied"), or "unknown error". */
const char *codes_error_message(uint32_t code);

/* True when the SDK should retry after this reply error. */
bool codes_error_temporary(uint32_t code);

/* The disconnect a unidirectional client gets instead of the connect error CODE (it reads no replies):
 * expired ⇒ 3005, permission denied ⇒ 3507, anything else ⇒ 3004, as Centrifugo. */
uint32_t codes_uni_disconnect(uint32_t code);

/* Reason text of a disconnect code ("shutdown", "no pong"), or "disconnect" for unknown codes. */
const char *codes_disconnect_reason(uint32_t code);

#endif
