/* case_command — the JSON bodies of the commands that act on an existing case
 * (schemas/messages.md): cmd.update_document_status, cmd.decide_case, cmd.close_case,
 * cmd.resolve_notifications.
 * Parsing is pure and strict about types; the decisions themselves live in case.c. */
#ifndef DOSSIER_CASE_COMMAND_H
#define DOSSIER_CASE_COMMAND_H

#include "case.h"

#include <stddef.h>

#define CASE_COMMAND_BODY_MAX (64 * 1024)

typedef struct {
    char document_id [CASE_ID_MAX];     /* update_document_status */
    char status [32];                   /* update_document_status, upper-cased: UPLOADED | VERIFIED | REJECTED */
    char decision [16];                 /* decide_case, upper-cased: APPROVE | REJECT */
    char reason [CASE_REASON_MAX * 4 + 1];   /* optional everywhere; "" when absent */
    char deferral_id [CASE_ID_MAX];     /* resolve_notifications */
} case_command_t;

/* Each returns 0 with cmd filled, or -2 with err filled (422 validation.<field>). */
int case_command_parse_document_status (const char *body, size_t size, case_command_t *cmd, case_error_t *err);
int case_command_parse_decision (const char *body, size_t size, case_command_t *cmd, case_error_t *err);
/* The body of close_case is optional: empty, {} or {"reason": "..."}. */
int case_command_parse_close (const char *body, size_t size, case_command_t *cmd, case_error_t *err);
/* cmd.resolve_notifications: {"deferral_id": "..."}. */
int case_command_parse_resolve (const char *body, size_t size, case_command_t *cmd, case_error_t *err);

#endif
