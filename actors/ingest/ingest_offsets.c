/* ingest_offsets — one ring of tracked records per partition, in consumption order
 * (so offsets ascend and an acknowledgment finds its slot by binary search); the
 * acknowledged prefix is popped and its last offset + 1 becomes the commit point.
 * A consumer holds few partitions, so they sit in a small array. */
#include "ingest_offsets.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t offset;
    int acked;
} s_slot_t;

typedef struct {
    int32_t partition;
    s_slot_t *ring;
    size_t cap;                         /* slots allocated (0 or a power of two) */
    size_t head;                        /* oldest tracked record */
    size_t count;                       /* records in the ring, acknowledged or not */
    size_t unacked;
    int64_t last_tracked;               /* -1: none yet */
    int64_t commit;                     /* -1: nothing acknowledged yet */
    int dirty;                          /* commit moved since the last ingest_offsets_dirty */
} s_partition_t;

struct _ingest_offsets_t {
    s_partition_t *parts;
    size_t size, cap;
    size_t unacked;
};

ingest_offsets_t *
ingest_offsets_new (void)
{
    return (ingest_offsets_t *) calloc (1, sizeof (ingest_offsets_t));
}

void
ingest_offsets_destroy (ingest_offsets_t **self_p)
{
    if (self_p && *self_p) {
        ingest_offsets_t *self = *self_p;
        for (size_t i = 0; i < self->size; i++)
            free (self->parts [i].ring);
        free (self->parts);
        free (self);
        *self_p = NULL;
    }
}

static s_partition_t *
s_find (ingest_offsets_t *self, int32_t partition)
{
    for (size_t i = 0; i < self->size; i++)
        if (self->parts [i].partition == partition)
            return &self->parts [i];
    return NULL;
}

static s_partition_t *
s_find_or_add (ingest_offsets_t *self, int32_t partition)
{
    s_partition_t *part = s_find (self, partition);
    if (part)
        return part;
    if (self->size == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 8;
        s_partition_t *parts = (s_partition_t *) realloc (self->parts, cap * sizeof (s_partition_t));
        if (!parts)
            return NULL;
        self->parts = parts;
        self->cap = cap;
    }
    part = &self->parts [self->size++];
    memset (part, 0, sizeof *part);
    part->partition = partition;
    part->last_tracked = -1;
    part->commit = -1;
    return part;
}

static s_slot_t *
s_slot (s_partition_t *part, size_t index)
{
    return &part->ring [(part->head + index) & (part->cap - 1)];
}

/* Doubles the ring, keeping the records in order from index 0. */
static int
s_grow (s_partition_t *part)
{
    size_t cap = part->cap ? part->cap * 2 : 64;
    s_slot_t *ring = (s_slot_t *) malloc (cap * sizeof (s_slot_t));
    if (!ring)
        return -1;
    for (size_t i = 0; i < part->count; i++)
        ring [i] = *s_slot (part, i);
    free (part->ring);
    part->ring = ring;
    part->cap = cap;
    part->head = 0;
    return 0;
}

int
ingest_offsets_track (ingest_offsets_t *self, int32_t partition, int64_t offset)
{
    s_partition_t *part = s_find_or_add (self, partition);
    if (!part)
        return -1;
    if (offset <= part->last_tracked || (part->commit >= 0 && offset < part->commit))
        return 1;
    if (part->count == part->cap && s_grow (part) != 0)
        return -1;
    s_slot_t *slot = s_slot (part, part->count++);
    slot->offset = offset;
    slot->acked = 0;
    part->last_tracked = offset;
    part->unacked++;
    self->unacked++;
    return 0;
}

int
ingest_offsets_ack (ingest_offsets_t *self, int32_t partition, int64_t offset)
{
    s_partition_t *part = s_find (self, partition);
    if (!part || part->count == 0)
        return -2;
    size_t low = 0, high = part->count;          /* offsets ascend along the ring */
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (s_slot (part, mid)->offset < offset)
            low = mid + 1;
        else
            high = mid;
    }
    if (low == part->count)
        return -2;
    s_slot_t *slot = s_slot (part, low);
    if (slot->offset != offset || slot->acked)
        return -2;
    slot->acked = 1;
    part->unacked--;
    self->unacked--;
    if (low != 0)
        return 0;
    while (part->count && part->ring [part->head].acked) {
        part->commit = part->ring [part->head].offset + 1;
        part->head = (part->head + 1) & (part->cap - 1);
        part->count--;
    }
    part->dirty = 1;
    return 1;
}

int64_t
ingest_offsets_commit_point (ingest_offsets_t *self, int32_t partition)
{
    s_partition_t *part = s_find (self, partition);
    return part ? part->commit : -1;
}

size_t
ingest_offsets_dirty (ingest_offsets_t *self, int32_t *partitions, int64_t *offsets, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < self->size && n < max; i++) {
        s_partition_t *part = &self->parts [i];
        if (part->dirty) {
            partitions [n] = part->partition;
            offsets [n] = part->commit;
            part->dirty = 0;
            n++;
        }
    }
    return n;
}

void
ingest_offsets_drop (ingest_offsets_t *self, int32_t partition)
{
    s_partition_t *part = s_find (self, partition);
    if (!part)
        return;
    self->unacked -= part->unacked;
    free (part->ring);
    *part = self->parts [--self->size];
}

size_t
ingest_offsets_in_flight (ingest_offsets_t *self)
{
    return self->unacked;
}

size_t
ingest_offsets_partition_in_flight (ingest_offsets_t *self, int32_t partition)
{
    s_partition_t *part = s_find (self, partition);
    return part ? part->unacked : 0;
}
