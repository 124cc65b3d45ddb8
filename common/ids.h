/* ids — identifiers: random UUIDs for messages, name-based UUIDv5 for everything
 * that must come out the same when a command is retried (case, event, entity ids). */
#ifndef DOSSIER_IDS_H
#define DOSSIER_IDS_H

#include <stddef.h>

#define IDS_UUID_LEN 37   /* 36 characters and the terminating NUL */

/* Writes a random (v4) UUID, lowercase canonical form. */
void ids_uuid4 (char out[IDS_UUID_LEN]);

/* Writes the UUIDv5 (SHA-1, RFC 9562) of name in Dossier's namespace. */
void ids_uuid5 (const char *name, char out[IDS_UUID_LEN]);

/* Like ids_uuid5 for the name "<prefix>/<index>". */
void ids_uuid5_indexed (const char *prefix, int index, char out[IDS_UUID_LEN]);

/* Lowercase hex SHA-1 of data into out (41 bytes). */
void ids_sha1_hex (const void *data, size_t size, char out[41]);

/* 1 if s is a canonical lowercase or uppercase UUID, else 0. */
int ids_is_uuid (const char *s);

#endif
