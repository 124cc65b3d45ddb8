/* heap_trim — malloc_trim once a loop has been quiet for a moment after work
 * (heap_trim.h says why). One trim per burst: it walks every arena, so it is
 * not done per message. */
#include "heap_trim.h"

#include <malloc.h>

void
heap_trim_init (heap_trim_t *self, int quiet_ms)
{
    self->due = -1;
    self->quiet_ms = quiet_ms > 0 ? quiet_ms : HEAP_TRIM_QUIET_MS;
}

void
heap_trim_busy (heap_trim_t *self, int64_t now)
{
    self->due = now + self->quiet_ms;
}

int
heap_trim_tick (heap_trim_t *self, int64_t now)
{
    if (self->due < 0)
        return -1;
    if (now < self->due)
        return (int) (self->due - now);
    malloc_trim (0);
    self->due = -1;
    return -1;
}
