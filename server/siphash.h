/* siphash: the one keyed hash of every map and lock stripe indexed by client-chosen strings (channel
 * names, client, user and session ids). SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012) with a 128-bit key drawn from getrandom(2) once per process, so that nobody
 * outside the process can compute which keys collide: hash flooding a map costs an attacker as much
 * as guessing the key. OpenSSL 3's EVP_MAC "SIPHASH" computes the same function, but with an
 * allocation and several indirect calls per hash it costs many times this one, which a lookup cannot
 * afford. */
#ifndef SIPHASH_H
#define SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* SipHash-2-4 of DATA[0..LEN) under KEY, as the paper defines it (its reference vectors hold). Pure:
 * any thread. */
uint64_t siphash_24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len);

/* SipHash-2-4 of the NUL-terminated string S (without the NUL) under this process's random key, drawn
 * on the first call. Any thread. */
uint64_t siphash_string(const char *s);

#endif
