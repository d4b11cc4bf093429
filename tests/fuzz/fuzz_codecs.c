/* libFuzzer harness for everything that parses bytes from clients: the JSON and protobuf command
 * streams (next_command until exhausted or an error), both /emulation envelopes, and, for every command
 * that decodes, a re-encode as a reply-shaped message through both codecs (what handlers do with decoded
 * data). The first input byte picks the target, unless FUZZ_TARGET names one (json_cmds, pb_cmds,
 * json_emulation, pb_emulation, ws_frames): then every input goes to that decoder (its first byte is still skipped,
 * so seeds work either way) and a run's time and executions belong to one decoder. Any crash, leak,
 * sanitizer report or hang is a bug: bad input must only ever produce an error code. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_json.h"
#include "ws_input.h"

enum { MAX_COMMAND = 65536 };

/* Re-encodes a decoded command's publish data as a publication push with both codecs. */
static void reencode(const Protocol__Command *cmd) {
  if (cmd->publish == NULL) return;
  Protocol__Publication pub = PROTOCOL__PUBLICATION__INIT;
  Protocol__Push push = PROTOCOL__PUSH__INIT;
  Protocol__Reply reply = PROTOCOL__REPLY__INIT;
  pub.data = cmd->publish->data;
  push.channel = cmd->publish->channel;
  push.pub = &pub;
  reply.push = &push;
  for (int k = 0; k < CODEC_COUNT; k++) {
    struct frame *f = NULL;
    if (codec_get((enum codec_kind)k)->encode_reply(&reply, &f) == 0) frame_unref(f);
  }
}

static void commands(enum codec_kind kind, const uint8_t *data, size_t size) {
  if (size == 0) return; /* as session_feed: DATA may be NULL */
  const uint8_t *pos = data, *end = data + size;
  for (int i = 0; i < 1000; i++) {
    Protocol__Command *cmd = NULL;
    if (codec_get(kind)->next_command(&pos, end, MAX_COMMAND, &cmd) != 0) return;
    reencode(cmd);
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
  }
}

static void emulation(enum codec_kind kind, const uint8_t *data, size_t size) {
  Protocol__EmulationRequest *er = NULL;
  if (codec_get(kind)->decode_emulation(data, size, &er) != 0) return;
  commands(kind, er->data.data, er->data.len);
  protobuf_c_message_free_unpacked(&er->base, NULL);
}

/* WebSocket input as the loop reads it: pieces of up to 4 KiB (the first byte's high bits pick a
 * smaller piece size, so frames split at every kind of boundary), every complete frame parsed. */
static void noop_message(void *ctx, const uint8_t *d, size_t n) { (void)ctx, (void)d, (void)n; }
static void noop_close(void *ctx, uint32_t code) { (void)ctx, (void)code; }
static void noop_fail(void *ctx, uint32_t code, const char *why) { (void)ctx, (void)code, (void)why; }

static void ws_frames(uint8_t shape, const uint8_t *data, size_t size) {
  static const struct ws_input_ops ops = {noop_message, noop_message, noop_close, noop_fail};
  struct ws_input in;
  if (ws_input_init(&in, MAX_COMMAND, NULL, 0) != 0) return;
  size_t piece = (size_t)1 << ((shape >> 4) % 13); /* 1 B .. 4 KiB */
  for (size_t off = 0; off < size && !in.stopped;) {
    size_t avail = 0;
    uint8_t *at = ws_input_space(&in, piece, &avail);
    if (at == NULL) break;
    size_t n = size - off < piece ? size - off : piece;
    if (n > avail) n = avail;
    memcpy(at, data + off, n);
    ws_input_commit(&in, n);
    ws_input_parse(&in, &ops, NULL);
    off += n;
  }
  ws_input_cleanup(&in);
}

/* The targets, by the value of the selector byte (data[0] % TARGET_COUNT) and by FUZZ_TARGET name. */
enum { TARGET_COUNT = 5 };
static const char *const target_names[TARGET_COUNT] = {"json_cmds", "pb_cmds", "json_emulation",
                                                       "pb_emulation", "ws_frames"};
static int forced_target = -1; /* from FUZZ_TARGET */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *name = getenv("FUZZ_TARGET");
  if (name == NULL || name[0] == '\0') return 0;
  for (int i = 0; i < TARGET_COUNT; i++)
    if (strcmp(name, target_names[i]) == 0) forced_target = i;
  if (forced_target < 0) abort(); /* a typo must not fuzz the wrong thing silently */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  switch (forced_target >= 0 ? forced_target : data[0] % TARGET_COUNT) {
    case 0:
      commands(CODEC_JSON, data + 1, size - 1);
      break;
    case 1:
      commands(CODEC_PROTOBUF, data + 1, size - 1);
      break;
    case 2:
      emulation(CODEC_JSON, data + 1, size - 1);
      break;
    case 3:
      emulation(CODEC_PROTOBUF, data + 1, size - 1);
      break;
    default:
      ws_frames(data[0], data + 1, size - 1);
      break;
  }
  return 0;
}
