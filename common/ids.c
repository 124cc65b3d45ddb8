/* ids — UUIDs through czmq (zuuid for random, zdigest's SHA-1 for v5), so that
 * retried commands name the same case, entities and events. */
#include "ids.h"

#include <czmq.h>
#include <ctype.h>
#include <string.h>

/* Dossier's UUIDv5 namespace (a fixed random UUID). */
static const unsigned char s_namespace [16] = {
    0x6f, 0x1c, 0x3e, 0x52, 0x8a, 0x07, 0x4b, 0x1d, 0x9e, 0x55, 0x21, 0xc4, 0x70, 0xd3, 0x0b, 0x9a
};

static void
s_format (const unsigned char *b, char out[IDS_UUID_LEN])
{
    snprintf (out, IDS_UUID_LEN,
        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void
ids_uuid4 (char out[IDS_UUID_LEN])
{
    zuuid_t *uuid = zuuid_new ();
    if (uuid) {
        s_format (zuuid_data (uuid), out);
        zuuid_destroy (&uuid);
    }
    else
        snprintf (out, IDS_UUID_LEN, "00000000-0000-4000-8000-000000000000");
}

void
ids_uuid5 (const char *name, char out[IDS_UUID_LEN])
{
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, s_namespace, sizeof s_namespace);
    zdigest_update (digest, (const byte *) name, strlen (name));
    unsigned char b [16];
    memcpy (b, zdigest_data (digest), 16);
    zdigest_destroy (&digest);
    b [6] = (unsigned char) ((b [6] & 0x0f) | 0x50);
    b [8] = (unsigned char) ((b [8] & 0x3f) | 0x80);
    s_format (b, out);
}

void
ids_uuid5_indexed (const char *prefix, int index, char out[IDS_UUID_LEN])
{
    char name [512];
    snprintf (name, sizeof name, "%s/%d", prefix, index);
    ids_uuid5 (name, out);
}

void
ids_sha1_hex (const void *data, size_t size, char out[41])
{
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, (const byte *) data, size);
    const byte *d = zdigest_data (digest);
    for (int i = 0; i < 20; i++)
        snprintf (out + 2 * i, 3, "%02x", d [i]);
    zdigest_destroy (&digest);
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
