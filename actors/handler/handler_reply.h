/* handler_reply — the JSON bodies of reply.ok and reply.error (schemas/messages.md),
 * and the rewrite of a remembered result into the answer to a duplicate command. */
#ifndef DOSSIER_HANDLER_REPLY_H
#define DOSSIER_HANDLER_REPLY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int status;             /* 400, 404, 409, 422, 500, 503 */
    char error[64];         /* error class */
    char field[128];        /* offending field, or "" */
    char detail[256];
} handler_error_t;

/* Fills err and returns -2 (so callers can `return handler_error_set (...)`). */
int handler_error_set (handler_error_t *err, int status, const char *error, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* {"case_id","status","events","position","duplicate"[,"document_id","document_status"]}.
 * document_id NULL leaves both document keys out. Returns a malloc'd string (caller
 * frees) or NULL. */
char *handler_reply_ok (const char *case_id, const char *status, size_t events, int64_t position,
                        int duplicate, const char *document_id, const char *document_status);

/* {"status","error","detail"[,"field"]}; never NULL for a valid err unless out of memory.
 * Caller frees. */
char *handler_reply_error (const handler_error_t *err);

/* The remembered result with "duplicate": true, or NULL if result is not a JSON
 * object (or out of memory). Caller frees. */
char *handler_reply_duplicate (const char *result, size_t size);

#endif
