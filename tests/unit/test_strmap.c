/* Unit tests for strmap and its keyed hash (siphash.c): the SipHash-2-4 reference vectors, and hash
 * flooding (issue 10, item 6): keys that all land in one bucket under the old unseeded FNV-1a must
 * spread over the buckets now, so no chain grows long. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
#include "strmap.h"

/* The paper's and the reference implementation's vectors: key 00 01 .. 0f, message 00 01 .. (i-1) of
 * length i, for i in 0..63; each the little-endian 64-bit output. */
static const uint64_t reference_vectors[64] = {
    0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull, 0x0d6c8009d9a94f5aull, 0x85676696d7fb7e2dull,
    0xcf2794e0277187b7ull, 0x18765564cd99a68dull, 0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull,
    0x93f5f5799a932462ull, 0x9e0082df0ba9e4b0ull, 0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
    0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull, 0xf723ca908e7af2eeull, 0xa129ca6149be45e5ull,
    0x3f2acc7f57c29bdbull, 0x699ae9f52cbe4794ull, 0x4bc1b3f0968dd39cull, 0xbb6dc91da77961bdull,
    0xbed65cf21aa2ee98ull, 0xd0f2cbb02e3b67c7ull, 0x93536795e3a33e88ull, 0xa80c038ccd5ccec8ull,
    0xb8ad50c6f649af94ull, 0xbce192de8a85b8eaull, 0x17d835b85bbb15f3ull, 0x2f2e6163076bcfadull,
    0xde4daaaca71dc9a5ull, 0xa6a2506687956571ull, 0xad87a3535c49ef28ull, 0x32d892fad841c342ull,
    0x7127512f72f27cceull, 0xa7f32346f95978e3ull, 0x12e0b01abb051238ull, 0x15e034d40fa197aeull,
    0x314dffbe0815a3b4ull, 0x027990f029623981ull, 0xcadcd4e59ef40c4dull, 0x9abfd8766a33735cull,
    0x0e3ea96b5304a7d0ull, 0xad0c42d6fc585992ull, 0x187306c89bc215a9ull, 0xd4a60abcf3792b95ull,
    0xf935451de4f21df2ull, 0xa9538f0419755787ull, 0xdb9acddff56ca510ull, 0xd06c98cd5c0975ebull,
    0xe612a3cb9ecba951ull, 0xc766e62cfcadaf96ull, 0xee64435a9752fe72ull, 0xa192d576b245165aull,
    0x0a8787bf8ecb74b2ull, 0x81b3e73d20b49b6full, 0x7fa8220ba3b2eceaull, 0x245731c13ca42499ull,
    0xb78dbfaf3a8d83bdull, 0xea1ad565322a1a0bull, 0x60e61c23a3795013ull, 0x6606d7e446282b93ull,
    0x6ca4ecb15c5f91e1ull, 0x9f626da15c9625f3ull, 0xe51b38608ef25f57ull, 0x958a324ceb064572ull,
};

static void siphash_reference_vectors(void **state) {
  (void)state;
  uint8_t key[SIPHASH_KEY_LEN], msg[64];
  for (int i = 0; i < SIPHASH_KEY_LEN; i++) key[i] = (uint8_t)i;
  for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
  for (size_t len = 0; len < 64; len++) assert_int_equal(siphash_24(key, msg, len), reference_vectors[len]);
}

static void siphash_string_is_keyed_and_stable(void **state) {
  (void)state;
  uint8_t zero[SIPHASH_KEY_LEN] = {0};
  assert_int_equal(siphash_string("news"), siphash_string("news"));
  assert_int_not_equal(siphash_string("news"), siphash_24(zero, "news", 4)); /* a random key, not 0 */
  assert_int_not_equal(siphash_string("news"), siphash_string("newt"));
}

/* FNV-1a, the hash strmap used before: what an attacker could compute offline. */
static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

/* Finds N channel names whose FNV-1a agrees in the low BITS bits (one bucket of a map of up to 2^BITS
 * buckets) and stores them in OUT[i] (caller frees). */
static void fnv_collisions(char **out, size_t n, unsigned bits) {
  uint64_t mask = (1ULL << bits) - 1;
  char name[32];
  size_t found = 0;
  for (uint64_t i = 0; found < n; i++) {
    snprintf(name, sizeof name, "chat:%llx", (unsigned long long)i);
    if ((fnv1a(name) & mask) == 0) out[found++] = strdup(name);
  }
}

static void flooding_keys_spread(void **state) {
  (void)state;
  enum { N = 2048, BITS = 12 }; /* the map grows to 2048 buckets (11 bits): all N collide under FNV-1a */
  char **keys = calloc(N, sizeof *keys);
  fnv_collisions(keys, N, BITS);
  struct strmap *m = strmap_new();
  for (size_t i = 0; i < N; i++) assert_int_equal(strmap_put(m, keys[i], keys[i]), 0);
  assert_int_equal(strmap_count(m), N);
  for (size_t i = 0; i < N; i++) assert_ptr_equal(strmap_get(m, keys[i]), keys[i]);
  size_t longest = strmap_longest_chain(m);
  print_message("longest chain of %d FNV-1a-colliding keys: %zu\n", N, longest);
  /* a random hash puts n keys in n buckets with a longest chain of about ln n / ln ln n (~4 here) */
  assert_true(longest <= 12);
  for (size_t i = 0; i < N; i++) {
    assert_ptr_equal(strmap_remove(m, keys[i]), keys[i]);
    free(keys[i]);
  }
  assert_int_equal(strmap_count(m), 0);
  strmap_free(m);
  free(keys);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(siphash_reference_vectors),
      cmocka_unit_test(siphash_string_is_keyed_and_stable),
      cmocka_unit_test(flooding_keys_spread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
