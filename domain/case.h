/* case — the Case aggregate: its state folded from stored events (case_apply) and the
 * decisions that turn a command into new events or a refusal. Pure: no I/O, no clock
 * (the time comes in the context), ids derived with UUIDv5 so that a retried command
 * produces exactly the same events. Event payloads follow schemas/events.md.
 * A notification decision whose rules cannot be had is not skipped: it is recorded
 * (NotificationDecisionDeferred) and made later, once, by case_decide_resolve. */
#ifndef DOSSIER_CASE_H
#define DOSSIER_CASE_H

#include "case_state.h"
#include "document_state.h"
#include "record.h"
#include "rules.h"

#include <stddef.h>
#include <stdint.h>

#define CASE_ID_MAX      128
#define CASE_MAX_EVENTS  1000   /* one command's events; the store takes at most this many per append */
#define CASE_REASON_MAX  500    /* characters of a command's reason */

typedef struct {
    int status;             /* HTTP status: 400, 404, 409, 422, 503 (rules unavailable; 500: out of memory) */
    char error[64];         /* "not_found", "conflict.state", "validation.<field>", ... */
    char field[128];        /* the offending field for validation errors, else "" */
    char detail[256];       /* human text, without personal data */
} case_error_t;

/* What a decision needs besides state and command. All borrowed. */
typedef struct {
    const char *command_id;     /* event ids are UUIDv5 of "<command_id>/<index>" */
    const char *now;            /* RFC 3339 UTC with milliseconds, e.g. 2026-11-22T10:00:00.000Z */
    const rules_t *rules;       /* NULL: no documents required, no notifications */
    /* NULL: every rule comes from rules (the embedded default). Else notification rules
     * come only from the source (when it has none for a trigger now, the decision is
     * deferred), and document rules from the source, or from rules when it has none
     * (recorded in each requirement: "rules_origin"). */
    const rules_source_t *source;
} case_context_t;

/* One document requirement of a case, as folded from its events. */
typedef struct {
    char id [CASE_ID_MAX];
    char document_type [64];
    char subject_type [24];     /* person | company | beneficial_owner */
    char subject_id [CASE_ID_MAX];
    char rule_id [64];
    int status;                 /* document_state_t */
} case_document_t;

/* A notification decision recorded as deferred (NotificationDecisionDeferred), and
 * whether a NotificationDecisionResolved has made it since. */
typedef struct {
    char id [CASE_ID_MAX];
    char trigger [32];
    int resolved;
} case_deferral_t;

/* One new event: its id, type and JSON data (owned by the list). */
typedef struct {
    char id [CASE_ID_MAX];
    char type [64];
    char *data;
    size_t size;
} case_event_t;

typedef struct _case_t case_t;
typedef struct _case_events_t case_events_t;

/* An empty case (version 0, no status). NULL if out of memory. Caller owns. */
case_t *case_new (void);
void case_destroy (case_t **self_p);
/* A deep copy, or NULL if out of memory. Caller owns. */
case_t *case_dup (const case_t *self);

/* Folds one stored event into the state. Every call counts as one stream version,
 * whatever the type. Returns 0 ok (unknown types are skipped: forward compatible),
 * -2 if the data of a known type is malformed (the version still advances). */
int case_apply (case_t *self, const char *type, const char *json, size_t size);

/* Getters: strings are borrowed ("" before CaseCreated). */
int case_exists (const case_t *self);               /* 1 once CaseCreated was applied */
const char *case_get_id (const case_t *self);
const char *case_get_client_id (const case_t *self);
const char *case_get_traitement_type (const case_t *self);
const char *case_get_case_type (const case_t *self);
const char *case_get_company_id (const case_t *self);
/* What rules are looked up with: KYB the country of incorporation, KYC the applicant's
 * (address, else nationality); "" when unknown. */
const char *case_get_country (const case_t *self);
int case_get_status (const case_t *self);           /* case_state_t, CASE_STATE_INVALID before creation */
int64_t case_get_version (const case_t *self);      /* events applied */
size_t case_person_count (const case_t *self);
size_t case_owner_count (const case_t *self);
size_t case_notification_count (const case_t *self);
size_t case_document_count (const case_t *self);
const case_document_t *case_document_at (const case_t *self, size_t index);   /* NULL past the end */
const case_document_t *case_document_find (const case_t *self, const char *document_id);
/* Documents currently in the given document state. */
size_t case_documents_in_state (const case_t *self, int state);
size_t case_deferral_count (const case_t *self);
const case_deferral_t *case_deferral_at (const case_t *self, size_t index);   /* NULL past the end */
const case_deferral_t *case_deferral_find (const case_t *self, const char *deferral_id);
/* Deferred notification decisions not resolved yet. */
size_t case_deferrals_pending (const case_t *self);

/* The new events of a decision. */
size_t case_events_count (const case_events_t *self);
const case_event_t *case_events_at (const case_events_t *self, size_t index);   /* NULL past the end */
/* The state the decision ended in: its input with every new event folded in, exactly
 * what a replay gives after appending them (borrowed, lives as long as the list). */
const case_t *case_events_after (const case_events_t *self);
void case_events_destroy (case_events_t **self_p);

/* Decisions. Each returns 0 and *events_p (caller owns: case_events_destroy), or -2
 * with err filled (the command is refused, nothing to append), or -1 out of memory
 * (err filled with status 500). None of them modifies the state. */

/* Opens case case_id from a validated record: CaseCreated, CompanyProfileCreated (KYB),
 * PersonLinked, BeneficialOwnerAdded, DocumentRequirementDetermined (from the document
 * rules), CaseStatusChanged OPEN → AWAITING_DOCUMENTS (IN_REVIEW when nothing is
 * required) and NotificationRequired for each active CASE_CREATED rule. */
int case_decide_create (const record_t *record, const char *case_id, const case_context_t *ctx,
                        case_events_t **events_p, case_error_t *err);

/* Moves a document to status ("UPLOADED", "VERIFIED", "REJECTED"); reason may be NULL.
 * Refuses: 404 not_found (no case, no document), 409 conflict.state (illegal move, or
 * the case is not AWAITING_DOCUMENTS / IN_REVIEW), 422 validation.status. */
int case_decide_document_status (const case_t *self, const char *document_id, const char *status,
                                 const char *reason, const case_context_t *ctx,
                                 case_events_t **events_p, case_error_t *err);

/* APPROVE or REJECT (any case); reason may be NULL. APPROVE needs IN_REVIEW and every
 * document VERIFIED; REJECT is allowed from OPEN, AWAITING_DOCUMENTS and IN_REVIEW. */
int case_decide_decision (const case_t *self, const char *decision, const char *reason,
                          const case_context_t *ctx, case_events_t **events_p, case_error_t *err);

/* APPROVED | REJECTED → CLOSED; reason may be NULL. */
int case_decide_close (const case_t *self, const char *reason, const case_context_t *ctx,
                       case_events_t **events_p, case_error_t *err);

/* Makes a deferred notification decision with the rules that apply now (whatever the
 * case's status): NotificationRequired for each matching active rule (with the
 * deferral's context_data and "deferral_id"), then NotificationDecisionResolved.
 * Refuses: 404 not_found (no case, no such deferral), 409 conflict.state (already
 * resolved: a decision is made once), 503 unavailable (the rules still cannot be had). */
int case_decide_resolve (const case_t *self, const char *deferral_id, const case_context_t *ctx,
                         case_events_t **events_p, case_error_t *err);

#endif
