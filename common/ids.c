/* ids — UUIDs: random (v4) from a per-thread generator seeded by the kernel, and
 * name-based (v5, SHA-1) so that retried commands name the same case, entities and
 * events. Every command mints a dozen of these, so none of them allocates, makes a
 * system call or goes through printf. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "ids.h"

#include <openssl/sha.h>

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Dossier's UUIDv5 namespace (a fixed random UUID). */
static const unsigned char s_namespace [16] = {
    0x6f, 0x1c, 0x3e, 0x52, 0x8a, 0x07, 0x4b, 0x1d, 0x9e, 0x55, 0x21, 0xc4, 0x70, 0xd3, 0x0b, 0x9a
};

static const char s_hex [] = "0123456789abcdef";

static void
s_format (const unsigned char *b, char out [IDS_UUID_LEN])
{
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = s_hex [b [i] >> 4];
        *o++ = s_hex [b [i] & 15];
    }
    *o = 0;
}

/* --------------------------------------------------------------------------
 * SHA-1: OpenSSL's one-block-at-a-time interface. It is marked deprecated in favour
 * of EVP, whose context allocation and algorithm lookup cost more than hashing the
 * short names of ids; the implementation behind it is the same (SHA-NI where the
 * processor has it). */

typedef SHA_CTX s_sha1_t;

static void
s_sha1_init (s_sha1_t *s)
{
    SHA1_Init (s);
}

static void
s_sha1_update (s_sha1_t *s, const void *data, size_t size)
{
    SHA1_Update (s, data, size);
}

static void
s_sha1_final (s_sha1_t *s, unsigned char digest [20])
{
    SHA1_Final (digest, s);
}

/* --------------------------------------------------------------------------
 * Random UUIDs: xoshiro256** per thread. Message ids need to be unique, not secret;
 * the seed comes from the kernel and is drawn again in a forked child (a copy of the
 * parent's state would repeat the parent's ids): an atfork handler bumps a generation
 * that every thread compares with the one it seeded at. */

static _Thread_local uint64_t s_rng [4];
static _Thread_local unsigned s_rng_generation;     /* 0: not seeded in this thread */
static atomic_uint s_fork_generation = 1;
static pthread_once_t s_atfork_once = PTHREAD_ONCE_INIT;

static void
s_on_fork_child (void)
{
    atomic_fetch_add (&s_fork_generation, 1);
}

static void
s_atfork_register (void)
{
    pthread_atfork (NULL, NULL, s_on_fork_child);
}

static uint64_t
s_splitmix (uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
s_rng_seed (void)
{
    uint64_t seed [4] = { 0, 0, 0, 0 };
    if (getrandom (seed, sizeof seed, GRND_NONBLOCK) != (ssize_t) sizeof seed) {
        /* no entropy yet (early boot): time, pid and an address are unique enough */
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        seed [0] ^= (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
        seed [1] ^= (uint64_t) getpid ();
        seed [2] ^= (uint64_t) (uintptr_t) &s_rng;
    }
    uint64_t x = seed [0] ^ seed [1] ^ seed [2] ^ seed [3];
    for (int i = 0; i < 4; i++)
        s_rng [i] = seed [i] ^ s_splitmix (&x);
    if (!(s_rng [0] | s_rng [1] | s_rng [2] | s_rng [3]))
        s_rng [0] = 1;                  /* the one state xoshiro cannot leave */
}

static uint64_t
s_rng_next (void)
{
    uint64_t *s = s_rng;
    uint64_t x = s [1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s [1] << 17;
    s [2] ^= s [0];
    s [3] ^= s [1];
    s [1] ^= s [2];
    s [0] ^= s [3];
    s [2] ^= t;
    s [3] = (s [3] << 45) | (s [3] >> 19);
    return result;
}

void
ids_uuid4 (char out [IDS_UUID_LEN])
{
    unsigned generation = atomic_load_explicit (&s_fork_generation, memory_order_relaxed);
    if (s_rng_generation != generation) {
        pthread_once (&s_atfork_once, s_atfork_register);
        s_rng_seed ();
        s_rng_generation = atomic_load (&s_fork_generation);
    }
    unsigned char b [16];
    uint64_t r0 = s_rng_next (), r1 = s_rng_next ();
    memcpy (b, &r0, 8);
    memcpy (b + 8, &r1, 8);
    b [6] = (unsigned char) ((b [6] & 0x0f) | 0x40);
    b [8] = (unsigned char) ((b [8] & 0x3f) | 0x80);
    s_format (b, out);
}

/* --------------------------------------------------------------------------
 * Name-based UUIDs */

static void
s_uuid5_finish (s_sha1_t *sha, char out [IDS_UUID_LEN])
{
    unsigned char b [20];
    s_sha1_final (sha, b);
    b [6] = (unsigned char) ((b [6] & 0x0f) | 0x50);
    b [8] = (unsigned char) ((b [8] & 0x3f) | 0x80);
    s_format (b, out);
}

void
ids_uuid5 (const char *name, char out [IDS_UUID_LEN])
{
    s_sha1_t sha;
    s_sha1_init (&sha);
    s_sha1_update (&sha, s_namespace, sizeof s_namespace);
    s_sha1_update (&sha, name, strlen (name));
    s_uuid5_finish (&sha, out);
}

void
ids_uuid5_indexed (const char *prefix, int index, char out [IDS_UUID_LEN])
{
    /* The name is "<prefix>/<index>", as it always was (ids must not change). The
     * old code built it in a 512-byte buffer: a longer prefix was cut there, and
     * still is, so that an id minted before and after this change is the same. */
    char digits [16];
    char *d = digits + sizeof digits;
    unsigned int u = index < 0 ? 0U - (unsigned int) index : (unsigned int) index;
    do {
        *--d = (char) ('0' + u % 10);
        u /= 10;
    } while (u);
    if (index < 0)
        *--d = '-';
    *--d = '/';
    int n = (int) (digits + sizeof digits - d);
    memmove (digits, d, (size_t) n);
    size_t prefix_len = strlen (prefix);
    size_t room = 511;                  /* the old buffer's capacity without the NUL */
    s_sha1_t sha;
    s_sha1_init (&sha);
    s_sha1_update (&sha, s_namespace, sizeof s_namespace);
    if (prefix_len >= room)
        s_sha1_update (&sha, prefix, room);
    else {
        s_sha1_update (&sha, prefix, prefix_len);
        size_t tail = (size_t) n < room - prefix_len ? (size_t) n : room - prefix_len;
        s_sha1_update (&sha, digits, tail);
    }
    s_uuid5_finish (&sha, out);
}

void
ids_sha1_hex (const void *data, size_t size, char out [41])
{
    s_sha1_t sha;
    s_sha1_init (&sha);
    s_sha1_update (&sha, data, size);
    unsigned char d [20];
    s_sha1_final (&sha, d);
    for (int i = 0; i < 20; i++) {
        out [2 * i] = s_hex [d [i] >> 4];
        out [2 * i + 1] = s_hex [d [i] & 15];
    }
    out [40] = 0;
}

int
ids_is_uuid (const char *s)
{
    if (!s || strlen (s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s [i] != '-')
                return 0;
        }
        else
        if (!isxdigit ((unsigned char) s [i]))
            return 0;
    }
    return 1;
}
