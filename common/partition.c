/* partition — see partition.h. The hash is fixed forever: changing it would move
 * cases between partitions whose checkpoints already claim them. */
#include "partition.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t
partition_hash (const char *stream)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *) stream; p && *p; p++)
        h = (h ^ *p) * 16777619u;
    /* FNV-1a's low bit is the parity of the bytes' low bits: modulo 2 or 4 it would
     * split ids of one shape badly. MurmurHash3's finaliser mixes every bit down. */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

int
partition_of (const char *stream, int count)
{
    if (count <= 1)
        return 0;
    return (int) (partition_hash (stream) % (uint32_t) count);
}

int
partition_checkpoint_name (int index, int count, char *out, size_t size)
{
    int n = count <= 1 ? snprintf (out, size, "projector")
                       : snprintf (out, size, "projector/%d-of-%d", index, count);
    return n < 0 || (size_t) n >= size ? -1 : 0;
}

/* text as a whole number in [min, max]; 0 ok, -1 not one. */
static int
s_number (const char *text, long min, long max, long *out)
{
    if (!text || !*text)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol (text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int
partition_from_config (config_t *config, int *index, int *count, char *err, size_t err_size)
{
    const char *n_text = config ? config_get (config, "projector_partitions", NULL) : getenv ("DOSSIER_PROJECTOR_PARTITIONS");
    const char *i_text = config ? config_get (config, "projector_partition", NULL) : getenv ("DOSSIER_PROJECTOR_PARTITION");
    const char *n_from = "projector_partitions", *i_from = "projector_partition";
    int i_is_instance = 0;              /* the index is DOSSIER_INSTANCE's */
    if (!n_text || !*n_text) {
        n_text = config ? config_get (config, "instances", NULL) : getenv ("DOSSIER_INSTANCES");
        n_from = "DOSSIER_INSTANCES";
    }
    if (!i_text || !*i_text) {
        i_text = config ? config_get (config, "instance", NULL) : getenv ("DOSSIER_INSTANCE");
        i_from = "DOSSIER_INSTANCE";
        i_is_instance = 1;
    }
    long n = 1, i = 0;
    int is_auto = !i_is_instance && strcmp (i_text, "auto") == 0;
    if (n_text && *n_text && s_number (n_text, 1, PARTITION_MAX, &n)) {
        snprintf (err, err_size, "%s must be a number from 1 to %d, not \"%.40s\"", n_from, PARTITION_MAX, n_text);
        return -1;
    }
    if (is_auto)
        i = PARTITION_AUTO;
    else
    if (i_text && *i_text && s_number (i_text, 0, PARTITION_MAX, &i)) {
        /* a DOSSIER_INSTANCE that is a host name (containers) names no partition */
        if (i_is_instance && n == 1)
            i = 0;
        else {
            snprintf (err, err_size, "%s must be a number from 0 to %d, not \"%.40s\"", i_from, PARTITION_MAX - 1, i_text);
            return -1;
        }
    }
    if (!is_auto && i >= n) {
        snprintf (err, err_size, "partition %ld does not exist: %s is %ld (partitions are 0 to %ld)",
                  i, n_from, n, n - 1);
        return -1;
    }
    *index = (int) i;
    *count = (int) n;
    return 0;
}
