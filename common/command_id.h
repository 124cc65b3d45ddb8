/* command_id — how a command gets its id when the sender gave none, and how a
 * new case's id follows from its command id. Gateway, ingest and handler must
 * agree on these, so they live here and nowhere else. */
#ifndef DOSSIER_COMMAND_ID_H
#define DOSSIER_COMMAND_ID_H

#include <jansson.h>
#include <stddef.h>

#define COMMAND_ID_MAX 128

/* "rec:" + SHA-1 hex of client_id \0 case_type \0 case_version, taken from the
 * parsed client record; when those are missing or not scalars, "raw:" + SHA-1 of the
 * raw bytes (the handler will reject such a record, but it still needs an id). */
void command_id_from_record (const json_t *record, const char *raw, size_t raw_size, char out[COMMAND_ID_MAX]);
/* The same from the three members of a record that is an object (each may be NULL:
 * absent), so that a reader that did not build the whole record gets the same id. */
void command_id_from_members (const json_t *client_id, const json_t *case_type, const json_t *case_version,
                              const char *raw, size_t raw_size, char out[COMMAND_ID_MAX]);

/* "http:" + the Idempotency-Key header value (an RFC 8941 sf-string: the quotes are
 * optional here). Returns 0 ok, -2 if the key is empty, over 100 characters or has
 * characters outside printable ASCII. */
int command_id_from_idempotency_key (const char *value, size_t size, char out[COMMAND_ID_MAX]);

/* The case id of the case a create-case command opens: UUIDv5 of the command id. */
void command_id_case_id (const char *command_id, char out[37]);

#endif
