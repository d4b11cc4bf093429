/* heap_trim: gives the C heap's free memory back to the system once a load peak has passed. glibc's
 * allocator keeps the pages it freed resident (a node that served a few thousand connections keeps
 * their memory as free space of its arena, and its RSS stays at the peak); malloc_trim returns them.
 * Every few seconds the load (the caller's measure: connected sessions) is compared with its peak since
 * the last trim, and when it fell to half of a peak that mattered, the heap is trimmed once. A steady
 * load never trims, so the cost (a walk of the free chunks, a few milliseconds for tens of megabytes)
 * is paid once per spike. Threads: its tick runs on the timer wheel's thread. */
#ifndef HEAP_TRIM_H
#define HEAP_TRIM_H

#include <stddef.h>

struct timer_wheel;
struct heap_trim;

/* Starts watching LOAD(ARG) on W. Returns NULL when out of memory (then nothing is trimmed). */
struct heap_trim *heap_trim_start(struct timer_wheel *w, size_t (*load)(void *arg), void *arg);

/* Stops the watch and frees T (NULL allowed); before W stops. */
void heap_trim_stop(struct heap_trim *t);

/* The decision, for tests: with LOAD now and PEAK the highest since the last trim, trim? */
int heap_trim_due(size_t load, size_t peak);

#endif
