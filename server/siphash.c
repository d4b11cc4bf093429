/* siphash: SipHash-2-4 written from the paper's definition (see siphash.h): four 64-bit words of state
 * initialised from the key, two SipRounds per 8-byte little-endian message word, a last word holding
 * the remaining bytes and the length mod 256 in its top byte, then 0xff into v2 and four SipRounds.
 * The process key is drawn once (pthread_once) and never changes, so hashes stored in maps stay valid. */
#include "siphash.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/rand.h>

#include "log.h"

static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static uint64_t load_le64(const uint8_t *p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--) x = (x << 8) | p[i];
  return x;
}

static void sip_round(uint64_t v[4]) {
  v[0] += v[1];
  v[1] = rotl(v[1], 13) ^ v[0];
  v[0] = rotl(v[0], 32);
  v[2] += v[3];
  v[3] = rotl(v[3], 16) ^ v[2];
  v[0] += v[3];
  v[3] = rotl(v[3], 21) ^ v[0];
  v[2] += v[1];
  v[1] = rotl(v[1], 17) ^ v[2];
  v[2] = rotl(v[2], 32);
}

/* One message word M: c = 2 rounds. */
static void sip_compress(uint64_t v[4], uint64_t m) {
  v[3] ^= m;
  sip_round(v);
  sip_round(v);
  v[0] ^= m;
}

uint64_t siphash_24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
  uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
                   k1 ^ 0x7465646279746573ULL};
  size_t whole = len - len % 8;
  for (size_t i = 0; i < whole; i += 8) sip_compress(v, load_le64(p + i));
  uint64_t last = (uint64_t)(len & 0xff) << 56;
  for (size_t i = whole; i < len; i++) last |= (uint64_t)p[i] << (8 * (i - whole));
  sip_compress(v, last);
  v[2] ^= 0xff;
  for (int i = 0; i < 4; i++) sip_round(v); /* d = 4 rounds */
  return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static uint8_t process_key[SIPHASH_KEY_LEN];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* getrandom(2) first (it waits for the kernel's pool once at boot), OpenSSL's CSPRNG when the kernel
 * lacks it; a key that is merely hard to guess (clock and addresses) if both fail, with a warning. */
static void key_init(void) {
  if (getrandom(process_key, sizeof process_key, 0) == (ssize_t)sizeof process_key) return;
  if (RAND_bytes(process_key, sizeof process_key) == 1) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30), b = (uint64_t)(uintptr_t)&ts;
  memcpy(process_key, &a, 8);
  memcpy(process_key + 8, &b, 8);
  log_warn("no random source for the hash key: maps are less resistant to hash flooding");
}

uint64_t siphash_string(const char *s) {
  pthread_once(&key_once, key_init);
  return siphash_24(process_key, s, strlen(s));
}
