/* uni: the unidirectional transports' connect (issue 13 §2): clients without an SDK (curl, a browser's
 * EventSource) send one ConnectRequest JSON object (token, data, name, version, subs) instead of a
 * command stream, and then only receive (codec_uni.h gives the shapes). uni_http_stream and uni_sse
 * are streams (stream.c's machinery, their handlers here); uni_websocket is ws.c's connection, which
 * calls uni_connect_text with its first message. A uni transport's session never waits for a pong, and a
 * failed connect closes it with a disconnect (codes_uni_disconnect) instead of an error reply.
 *
 * Threads: whatever thread the transport runs the connect on (an MHD thread, the WebSocket loop). */
#ifndef UNI_H
#define UNI_H

#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"

struct session;

/* Decodes TEXT[0..LEN) as a ConnectRequest JSON object into a new message *out (the caller frees it
 * with protobuf_c_message_free_unpacked). Returns 0, or -1 when it is not one (nothing stored). */
int uni_parse_connect(const char *text, size_t len, Protocol__ConnectRequest **out);

/* Runs REQ (the caller keeps it) as the connect of S, a connecting session of a uni transport: S is
 * then connected, or closing with the disconnect its client gets. */
void uni_connect(struct session *s, const Protocol__ConnectRequest *req);

/* Runs JSON[0..LEN), a ConnectRequest object, as the connect of S (a connecting session of a uni
 * transport): S is then connected, or closing with the disconnect its client gets. Returns 0, or -1
 * when the text is not a ConnectRequest object (S untouched: the caller answers or closes). */
int uni_connect_text(struct session *s, const uint8_t *json, size_t len);

#endif
