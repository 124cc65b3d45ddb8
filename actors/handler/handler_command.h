/* handler_command — the socket-free part of handling one command: from the cmd.*
 * envelope to a parsed command (case id, fingerprint, validated body), from a folded
 * case to new events, and from the state after them to the store.append body and the
 * reply. The actor (handler.c) only moves these between sockets. */
#ifndef DOSSIER_HANDLER_COMMAND_H
#define DOSSIER_HANDLER_COMMAND_H

#include "case.h"
#include "envelope.h"
#include "handler_reply.h"
#include "rules.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HANDLER_CMD_CREATE = 0,         /* cmd.create_case */
    HANDLER_CMD_DOCUMENT,           /* cmd.update_document_status */
    HANDLER_CMD_DECIDE,             /* cmd.decide_case */
    HANDLER_CMD_CLOSE,              /* cmd.close_case */
    HANDLER_CMD_RESOLVE             /* cmd.resolve_notifications: make a deferred notification decision */
} handler_cmd_kind_t;

#define HANDLER_TIME_MAX 32

typedef struct _handler_command_t handler_command_t;

/* Parses a command envelope. now is the handling time (RFC 3339): its date bounds the
 * record's dates. The case id of a create is command_id_case_id (command id); a key
 * given with it must be that id (else 400). Other commands need the case id as key.
 * Returns 0 and *self_p (caller owns), -2 refused (err: 400 bad_request, 404 not_found,
 * 422 validation.*), -1 out of memory (err: 500). */
int handler_command_new (const envelope_t *env, const char *now, handler_command_t **self_p,
                         handler_error_t *err);
void handler_command_destroy (handler_command_t **self_p);

int handler_command_kind (const handler_command_t *self);
const char *handler_command_type (const handler_command_t *self);
const char *handler_command_id (const handler_command_t *self);
const char *handler_command_correlation_id (const handler_command_t *self);
const char *handler_command_case_id (const handler_command_t *self);
/* The document an update_document_status is about; NULL for the other commands. */
const char *handler_command_document_id (const handler_command_t *self);
/* The deferral a resolve_notifications is about; NULL for the other commands. */
const char *handler_command_deferral_id (const handler_command_t *self);
/* SHA-1 hex of the body (create) or of type, key and body (others): the store keeps it
 * with the command id to tell a retry from a reuse of the same id. */
const char *handler_command_fingerprint (const handler_command_t *self);

/* Decides against state (the folded case; ignored for a create). Returns 0 and
 * *events_p (caller owns), -2 refused (err), -1 out of memory. */
int handler_command_decide (const handler_command_t *self, const case_t *state, const rules_t *rules,
                            const char *now, case_events_t **events_p, handler_error_t *err);
/* The same with rules from a source as well (case_context_t.source; may be NULL). */
int handler_command_decide_with (const handler_command_t *self, const case_t *state, const rules_t *rules,
                                 const rules_source_t *source, const char *now, case_events_t **events_p,
                                 handler_error_t *err);

/* The reply.ok body for the state after the command (caller frees; NULL: no memory). */
char *handler_command_result (const handler_command_t *self, const case_t *after, size_t events,
                              int64_t position, int duplicate);

/* The store.append body: stream = case id, expected_version, command id, fingerprint,
 * result (the reply to remember for duplicates) and the events. Returns 0 and *body
 * (caller frees), -1. */
int handler_command_append_body (const handler_command_t *self, int64_t expected_version,
                                 const case_events_t *events, const char *result,
                                 char **body, size_t *size);

/* Formats a time (µs since the epoch) as RFC 3339 UTC with milliseconds. */
void handler_command_time (int64_t us, char out [HANDLER_TIME_MAX]);

#endif
