/* ids: random identifiers. Client, session and node ids are UUIDv4 strings drawn from getrandom(2):
 * the session id is what lets an /emulation request act on a stream, so it must be unguessable. */
#ifndef IDS_H
#define IDS_H

#define ID_UUID_LEN 36

/* Writes a new random UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") and its NUL into OUT.
 * Returns 0, or -1 when the kernel's random source fails. Any thread. */
int id_new_uuid(char out[ID_UUID_LEN + 1]);

/* Returns a uniformly distributed random integer in [0, bound) (bound > 0), not for secrets. */
unsigned long id_random_below(unsigned long bound);

#endif
