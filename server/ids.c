/* ids: UUIDv4 text from the kernel's CSPRNG, and a cheap non-secret random number for jitter. */
#include "ids.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>

int id_new_uuid(char out[ID_UUID_LEN + 1]) {
  uint8_t b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return -1;
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  snprintf(out, ID_UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return 0;
}

unsigned long id_random_below(unsigned long bound) {
  unsigned long r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) r = (unsigned long)(uintptr_t)&r;
  return bound ? r % bound : 0;
}
