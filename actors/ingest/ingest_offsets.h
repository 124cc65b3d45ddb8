/* ingest_offsets — per-partition bookkeeping of the Kafka records ingest holds:
 * which offsets are in flight and the commit point, the offset after the longest
 * acknowledged prefix, which is the only offset that may be stored. Pure: no
 * librdkafka, no clock, so the at-least-once rule can be tested on its own. */
#ifndef DOSSIER_INGEST_OFFSETS_H
#define DOSSIER_INGEST_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct _ingest_offsets_t ingest_offsets_t;

/* NULL on allocation failure. */
ingest_offsets_t *ingest_offsets_new (void);
void ingest_offsets_destroy (ingest_offsets_t **self_p);

/* Starts tracking a record consumed from partition. Offsets of one partition must
 * come in increasing order (gaps are fine: compaction, transaction markers).
 * Returns 0 tracked; 1 when offset is not after the last one tracked on that
 * partition (a re-fetch of a record already held or acknowledged: drop it);
 * -1 out of memory. */
int ingest_offsets_track (ingest_offsets_t *self, int32_t partition, int64_t offset);

/* Marks a tracked record acknowledged (its command is in the log, or its dead
 * letter is in the DLT). Returns 1 when the partition's commit point moved, 0 when
 * an earlier record is still in flight, -2 when the offset is not in flight there
 * (revoked partition, acknowledged twice, never tracked). */
int ingest_offsets_ack (ingest_offsets_t *self, int32_t partition, int64_t offset);

/* The commit point of partition: last acknowledged offset of the acknowledged
 * prefix + 1; -1 when nothing was acknowledged since tracking began. */
int64_t ingest_offsets_commit_point (ingest_offsets_t *self, int32_t partition);

/* Copies up to max (partition, commit point) pairs whose commit point moved since
 * the last call and clears their mark; returns how many were copied. Pairs that
 * did not fit stay marked for the next call. */
size_t ingest_offsets_dirty (ingest_offsets_t *self, int32_t *partitions, int64_t *offsets, size_t max);

/* Forgets a partition (revoked, or lost): its in-flight records and commit point. */
void ingest_offsets_drop (ingest_offsets_t *self, int32_t partition);

/* Records tracked and not yet acknowledged, over all partitions / on one. */
size_t ingest_offsets_in_flight (ingest_offsets_t *self);
size_t ingest_offsets_partition_in_flight (ingest_offsets_t *self, int32_t partition);

#endif
