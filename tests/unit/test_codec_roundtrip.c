/* Round trips of every message type of proto/client.proto through both codecs. Each message is filled
 * by walking its descriptor (every scalar non-zero, every string and bytes field set — bytes as a JSON
 * value so that the JSON codec can carry it —, sub-messages three levels deep, one element in every
 * repeated and map field), then: protobuf pack ⇒ unpack ⇒ pack gives the same bytes, and JSON encode ⇒
 * decode gives a message whose protobuf encoding is the original's. A field the JSON mapping forgot, a
 * wrong key or a type mismatch shows up as a difference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.pb-c.h"
#include "codec_json.h"

#define MAX_DEPTH 3

static const char raw_json[] = "{\"k\":[1,2.50,\"x\"]}";

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *desc, int depth);

/* Size of one element of field F's C type. */
static size_t element_size(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return 8;
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
    default:
      fail_msg("field %s: type %d not used by client.proto", f->name, (int)f->type);
      return 0;
  }
}

/* Sets one element at SLOT; false when a sub-message is past the depth limit. */
static bool fill_value(const ProtobufCFieldDescriptor *f, void *slot, int depth) {
  uint32_t v32 = 7 + f->id;
  uint64_t v64 = 1000 + f->id;
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
      *(char **)slot = strdup(f->name);
      return true;
    case PROTOBUF_C_TYPE_BYTES: {
      ProtobufCBinaryData *b = slot;
      b->len = sizeof raw_json - 1;
      b->data = malloc(b->len);
      memcpy(b->data, raw_json, b->len);
      return true;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
      if (depth >= MAX_DEPTH) return false;
      *(ProtobufCMessage **)slot = fill(f->descriptor, depth + 1);
      return true;
    case PROTOBUF_C_TYPE_BOOL:
      *(protobuf_c_boolean *)slot = 1;
      return true;
    default:
      if (element_size(f) == 4)
        memcpy(slot, &v32, 4);
      else
        memcpy(slot, &v64, 8);
      return true;
  }
}

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *desc, int depth) {
  ProtobufCMessage *msg = calloc(1, desc->sizeof_message);
  protobuf_c_message_init(desc, msg);
  for (unsigned i = 0; i < desc->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &desc->fields[i];
    void *slot = (char *)msg + f->offset;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
      fill_value(f, slot, depth);
      continue;
    }
    void *array = calloc(1, element_size(f));
    size_t n = fill_value(f, array, depth) ? 1 : 0;
    if (n == 0) {
      free(array);
      array = NULL;
    }
    *(size_t *)((char *)msg + f->quantifier_offset) = n;
    *(void **)slot = array;
  }
  return msg;
}

static ProtobufCBinaryData pack(const ProtobufCMessage *msg) {
  ProtobufCBinaryData b = {protobuf_c_message_get_packed_size(msg), NULL};
  b.data = malloc(b.len ? b.len : 1);
  assert_int_equal(protobuf_c_message_pack(msg, b.data), b.len);
  return b;
}

static void round_trip(const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *msg = fill(desc, 0);
  ProtobufCBinaryData wire = pack(msg);
  /* protobuf */
  ProtobufCMessage *back = protobuf_c_message_unpack(desc, NULL, wire.len, wire.data);
  assert_non_null(back);
  ProtobufCBinaryData again = pack(back);
  assert_int_equal(again.len, wire.len);
  assert_memory_equal(again.data, wire.data, wire.len);
  /* JSON */
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(codec_json_message_to_text(msg, &text, &len), 0);
  ProtobufCMessage *from_json = NULL;
  int rc = codec_json_message_from_text(desc, text, len, &from_json);
  if (rc != 0) fail_msg("%s: JSON did not decode (%d): %s", desc->name, rc, text);
  ProtobufCBinaryData via_json = pack(from_json);
  if (via_json.len != wire.len || memcmp(via_json.data, wire.data, wire.len) != 0)
    fail_msg("%s: JSON round trip changed the message: %s", desc->name, text);
  free(text);
  free(wire.data);
  free(again.data);
  free(via_json.data);
  protobuf_c_message_free_unpacked(msg, NULL);
  protobuf_c_message_free_unpacked(back, NULL);
  protobuf_c_message_free_unpacked(from_json, NULL);
}

/* Every message reachable from DESC's message fields, visited once. */
static void visit(const ProtobufCMessageDescriptor *desc, const ProtobufCMessageDescriptor **seen,
                  size_t *n) {
  for (size_t i = 0; i < *n; i++)
    if (seen[i] == desc) return;
  seen[(*n)++] = desc;
  for (unsigned i = 0; i < desc->n_fields; i++)
    if (desc->fields[i].type == PROTOBUF_C_TYPE_MESSAGE) visit(desc->fields[i].descriptor, seen, n);
}

static void test_every_message_type(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *seen[128];
  size_t n = 0;
  visit(&protocol__command__descriptor, seen, &n);
  visit(&protocol__reply__descriptor, seen, &n);
  visit(&protocol__emulation_request__descriptor, seen, &n);
  /* all 43 messages of client.proto and their 6 map entry types are reachable from these three */
  assert_int_equal(n, 49);
  for (size_t i = 0; i < n; i++) round_trip(seen[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_message_type)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
