/* heap_trim — hands the memory a burst of work freed back to the system once a
 * loop has been quiet for a moment. glibc keeps freed blocks in its arenas (one per
 * thread that allocated: ZeroMQ's I/O thread has its own) and returns little of it
 * by itself, so a process that once buffered a burst stays that big for good. */
#ifndef DOSSIER_HEAP_TRIM_H
#define DOSSIER_HEAP_TRIM_H

#include <stdint.h>

/* How long a loop must have been quiet after work before its heap is trimmed. */
#define HEAP_TRIM_QUIET_MS 200

typedef struct {
    int64_t due;                /* monotonic ms when to trim; -1: nothing to give back */
    int quiet_ms;
} heap_trim_t;

/* Nothing to trim yet; trims quiet_ms after the last work. */
void heap_trim_init (heap_trim_t *self, int quiet_ms);

/* Work was done at now (monotonic ms): the trim waits for quiet_ms more. */
void heap_trim_busy (heap_trim_t *self, int64_t now);

/* Trims when due (malloc_trim: every arena). Returns the ms until it is due (for a
 * poll timeout), or -1 when nothing is pending. */
int heap_trim_tick (heap_trim_t *self, int64_t now);

#endif
