/* ingest_record — the pure half of ingest: a raw client record in, a create-case
 * command (command id, case id) or an immediate rejection out; and a handler's
 * reply turned into the ingest.result body. No sockets and no clocks, so every
 * source (the CLI socket now, Kafka later) shares it and tests can drive it. */
#ifndef DOSSIER_INGEST_RECORD_H
#define DOSSIER_INGEST_RECORD_H

#include "command_id.h"

#include <stddef.h>

#define INGEST_RECORD_DETAIL_MAX 256

typedef struct {
    char command_id [COMMAND_ID_MAX];   /* when accepted: "rec:..." or "raw:..." */
    char case_id [37];                  /* when accepted: UUIDv5 of the command id */
    int status;                         /* when rejected: 400, 413 or 422 */
    char error [64];                    /* when rejected: error class */
    char detail [INGEST_RECORD_DETAIL_MAX];     /* when rejected: printable ASCII only */
} ingest_record_t;

/* Parses one record (raw bytes, need not be NUL-terminated). max_size 0 means no limit.
 * Returns 0 when it becomes a command (command_id, case_id set); -2 when it is rejected
 * at once: 413 too_large, 400 malformed_json (invalid JSON or UTF-8, duplicate keys),
 * 422 validation.record (valid JSON but not an object). */
int ingest_record_parse (const char *raw, size_t size, size_t max_size, ingest_record_t *out);

/* The line number in an ingest.record id "line:<n>" (n >= 0). Returns 0, or -2. */
int ingest_record_line_from_id (const char *id, long *line);

/* ingest.result bodies (schemas/messages.md, "Ingest socket"). Each returns a
 * malloc'd JSON string (caller frees), NULL on allocation failure. */
char *ingest_record_result_ok (long line, const char *case_id, int duplicate);
char *ingest_record_result_error (long line, int status, const char *error, const char *detail);

/* The ingest.result body for a broker reply of type reply.ok or reply.error with its
 * JSON body. reply.ok gives ok (case id from the reply, else fallback_case_id);
 * reply.error with a 4xx status passes status, error and detail through; anything
 * else (5xx, garbled JSON, another type) becomes 503 "unavailable" so the sender
 * retries. Caller frees; NULL on allocation failure. */
char *ingest_record_result_from_reply (long line, const char *type, const char *body,
                                       size_t size, const char *fallback_case_id);

#endif
