/* partition — which projector partition owns an event: a stable hash of the event's
 * stream id (= the case id) modulo the number of partitions, the same function in
 * every process and every release (FNV-1a 32 over the id's bytes, then MurmurHash3's
 * fmix32 finaliser). Also the
 * partition settings of a projector and the name of its checkpoint row. */
#ifndef DOSSIER_PARTITION_H
#define DOSSIER_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Largest number of partitions accepted (the checkpoint names stay short). */
#define PARTITION_MAX 1024
/* The index partition_from_config gives for projector_partition = "auto": none yet,
 * the projector claims one by lease (actors/projector/projector_lease.h). */
#define PARTITION_AUTO (-1)
/* Room for a checkpoint name "projector/<i>-of-<n>" and its NUL. */
#define PARTITION_NAME_MAX 32

/* FNV-1a (32 bits: offset basis 2166136261, prime 16777619) of stream's bytes, then
 * fmix32 (h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13; h *= 0xc2b2ae35; h ^= h >> 16). */
uint32_t partition_hash (const char *stream);

/* The partition (0..count-1) that owns stream; 0 when count <= 1. */
int partition_of (const char *stream, int count);

/* The checkpoint row of partition index of count: "projector" when count is 1 (the
 * name before partitions existed, so existing read models stay valid), else
 * "projector/<index>-of-<count>". Writes at most size bytes; 0 ok, -1 too small. */
int partition_checkpoint_name (int index, int count, char *out, size_t size);

/* A projector's partition from config: count = projector_partitions, default
 * $DOSSIER_INSTANCES (set by the supervisor: how many of this process it runs), else 1;
 * index = projector_partition, default $DOSSIER_INSTANCE, else 0; "auto" gives
 * PARTITION_AUTO (claimed later by lease). config may be NULL (environment only). Returns 0, or -1 with a reason in err (not a number, count out
 * of 1..PARTITION_MAX, index not below count). */
int partition_from_config (config_t *config, int *index, int *count, char *err, size_t err_size);

#endif
