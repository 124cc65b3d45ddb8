/* rules — the rules file (config/rules.json): which documents a case needs and which
 * notifications fire on which trigger. Loaded once, read-only after; a bad file is an
 * error with a message, never a crash. Inactive notification rules never match.
 * The same type holds one answer of the configuration service (one trigger's
 * notification rules, or one context's document rules: rules_parse_answer), and a
 * rules_source_t lets a decision ask for rules that live outside the process. */
#ifndef DOSSIER_RULES_H
#define DOSSIER_RULES_H

#include <stddef.h>

#define RULES_FILE_MAX  (1024 * 1024)
#define RULES_MAX       200     /* per list */

typedef enum {
    RULES_SUBJECT_PERSON = 0,
    RULES_SUBJECT_COMPANY,
    RULES_SUBJECT_BENEFICIAL_OWNER,
    RULES_SUBJECT_COUNT
} rules_subject_t;

/* Notification triggers (schemas/events.md). */
#define RULES_TRIGGER_CASE_CREATED           "CASE_CREATED"
#define RULES_TRIGGER_DOCUMENT_REJECTED      "DOCUMENT_REJECTED"
#define RULES_TRIGGER_ALL_DOCUMENTS_RECEIVED "ALL_DOCUMENTS_RECEIVED"
#define RULES_TRIGGER_CASE_APPROVED          "CASE_APPROVED"
#define RULES_TRIGGER_CASE_REJECTED          "CASE_REJECTED"

typedef struct {
    char rule_id [64];
    int subject;                /* rules_subject_t */
    char traitement_type [4];   /* "KYC", "KYB" or "" for both */
    int only_ubo;               /* beneficial_owner subject: only owners with is_ubo */
    char document_type [64];
} rules_document_t;

/* A list of rules and the version of the rule set it comes from (all borrowed). */
typedef struct {
    const char *version;
    const rules_document_t *rules;
    size_t count;
} rules_document_set_t;

typedef struct {
    char rule_id [64];
    char trigger [32];
    char traitement_type [4];   /* "" matches any */
    char case_type [65];        /* "" matches any */
    int is_active;
    char notification_type [32];
    char template_id [128];
    char language_code [16];
} rules_notification_t;

typedef struct {
    const char *version;
    const rules_notification_t *rules;
    size_t count;
} rules_notification_set_t;

/* What a lookup of rules depends on besides the trigger (borrowed, "" when unknown). */
typedef struct {
    const char *traitement_type;
    const char *case_type;
    const char *country;        /* KYB: country of incorporation; KYC: the applicant's */
} rules_context_t;

/* Rules that come from outside the process (the configuration service, through the
 * handler's cache). Each call answers from memory, never waits: 0 with *set filled
 * (borrowed until the decision returns), or -1 when those rules cannot be had now
 * (the decision is then deferred, or falls back: see case.h). */
typedef struct {
    int (*notifications) (void *arg, const char *trigger, const rules_context_t *context,
                          rules_notification_set_t *set);
    int (*documents) (void *arg, const rules_context_t *context, rules_document_set_t *set);
    void *arg;
} rules_source_t;

typedef struct _rules_t rules_t;

/* Parses a rules document. Returns NULL on a malformed document, with the reason in
 * error (error_size bytes; error may be NULL). Caller owns: rules_destroy. */
rules_t *rules_parse (const char *data, size_t size, char *error, size_t error_size);

/* Reads and parses the file at path (at most RULES_FILE_MAX bytes); NULL + reason on failure. */
rules_t *rules_load_file (const char *path, char *error, size_t error_size);

/* Parses one answer of the configuration service (schemas/config_service.openapi.yaml):
 * {"version": "...", "rules": [...]}. With trigger set, the rules are notification
 * rules for that trigger: a rule naming another trigger is left out; without, they are
 * document rules. Rules with "is_active": false are kept for notifications (they never
 * match) and left out for documents. The result holds only that list; NULL + reason
 * when the answer is malformed (one bad rule makes the whole answer bad: a partial
 * rule set would silently drop notifications). Caller owns. */
rules_t *rules_parse_answer (const char *data, size_t size, const char *trigger, char *error, size_t error_size);

/* A rule set without rules, with that version (an answer that nothing applies).
 * NULL if out of memory. Caller owns. */
rules_t *rules_new_empty (const char *version);

void rules_destroy (rules_t **self_p);

/* The "version" of the rules file (borrowed). */
const char *rules_version (const rules_t *self);

size_t rules_document_count (const rules_t *self);
const rules_document_t *rules_document_at (const rules_t *self, size_t index);  /* NULL past the end */
size_t rules_notification_count (const rules_t *self);
const rules_notification_t *rules_notification_at (const rules_t *self, size_t index);
/* Every rule of self as a set with self's version (empty for NULL). */
void rules_document_set (const rules_t *self, rules_document_set_t *set);
void rules_notification_set (const rules_t *self, rules_notification_set_t *set);

/* 1 if the document rule applies to a subject of that kind in a case of that
 * traitement type (is_ubo matters for only_ubo rules), else 0. */
int rules_document_matches (const rules_document_t *rule, int subject, const char *traitement_type, int is_ubo);

/* 1 if the notification rule is active and matches trigger, traitement type and case type. */
int rules_notification_matches (const rules_notification_t *rule, const char *trigger,
                                const char *traitement_type, const char *case_type);

/* "person", "company", "beneficial_owner"; NULL if out of range. */
const char *rules_subject_name (int subject);
/* The subject named name, or -1. */
int rules_subject_from_string (const char *name);
/* 1 if name is one of the five triggers. */
int rules_trigger_is_valid (const char *name);

#endif
