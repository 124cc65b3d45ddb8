/* rules — parser and matchers for the rules file. Every rule is checked when the file
 * is loaded (types, enums, lengths, unique ids), so matching later cannot fail and
 * a typo in the file stops the handler at start-up instead of silently never firing. */
#include "rules.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _rules_t {
    char version [65];
    rules_document_t *documents;
    size_t document_count;
    rules_notification_t *notifications;
    size_t notification_count;
};

static const char *s_subjects [RULES_SUBJECT_COUNT] = { "person", "company", "beneficial_owner" };
static const char *s_triggers [] = {
    RULES_TRIGGER_CASE_CREATED, RULES_TRIGGER_DOCUMENT_REJECTED, RULES_TRIGGER_ALL_DOCUMENTS_RECEIVED,
    RULES_TRIGGER_CASE_APPROVED, RULES_TRIGGER_CASE_REJECTED
};

const char *
rules_subject_name (int subject)
{
    return subject >= 0 && subject < RULES_SUBJECT_COUNT ? s_subjects [subject] : NULL;
}

int
rules_subject_from_string (const char *name)
{
    for (int i = 0; name && i < RULES_SUBJECT_COUNT; i++)
        if (strcmp (name, s_subjects [i]) == 0)
            return i;
    return -1;
}

int
rules_trigger_is_valid (const char *name)
{
    for (size_t i = 0; name && i < sizeof s_triggers / sizeof s_triggers [0]; i++)
        if (strcmp (name, s_triggers [i]) == 0)
            return 1;
    return 0;
}

static void
s_error (char *error, size_t size, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
s_error (char *error, size_t size, const char *fmt, ...)
{
    if (!error || size == 0)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (error, size, fmt, args);
    va_end (args);
}

/* Copies member name of obj (a non-empty string shorter than size) into field.
 * Absent or null is fine when optional (field left ""). Returns 0 or -2. */
static int
s_copy (const json_t *obj, const char *name, int required, char *field, size_t size,
        const char *where, char *error, size_t error_size)
{
    const json_t *value = json_object_get (obj, name);
    if (!value || json_is_null (value)) {
        if (!required)
            return 0;
        s_error (error, error_size, "%s: \"%s\" is required", where, name);
        return -2;
    }
    const char *s = json_string_value (value);
    if (!s || !*s || strlen (s) >= size) {
        s_error (error, error_size, "%s: \"%s\" must be a non-empty string of at most %zu bytes",
                 where, name, size - 1);
        return -2;
    }
    memcpy (field, s, strlen (s) + 1);
    return 0;
}

static int
s_traitement (const char *value)
{
    return !*value || strcmp (value, "KYC") == 0 || strcmp (value, "KYB") == 0;
}

/* Returns 0, 1 (an inactive rule: leave it out) or -2. */
static int
s_parse_document (const json_t *item, const char *where, rules_document_t *rule, char *error, size_t size)
{
    char subject [32] = "";
    if (!json_is_object (item)) {
        s_error (error, size, "%s: must be an object", where);
        return -2;
    }
    if (s_copy (item, "rule_id", 1, rule->rule_id, sizeof rule->rule_id, where, error, size)
    ||  s_copy (item, "subject", 1, subject, sizeof subject, where, error, size)
    ||  s_copy (item, "traitement_type", 0, rule->traitement_type, sizeof rule->traitement_type, where, error, size)
    ||  s_copy (item, "document_type", 1, rule->document_type, sizeof rule->document_type, where, error, size))
        return -2;
    rule->subject = rules_subject_from_string (subject);
    if (rule->subject < 0) {
        s_error (error, size, "%s: subject must be person, company or beneficial_owner", where);
        return -2;
    }
    if (!s_traitement (rule->traitement_type)) {
        s_error (error, size, "%s: traitement_type must be KYC or KYB", where);
        return -2;
    }
    const json_t *only_ubo = json_object_get (item, "only_ubo");
    if (only_ubo && !json_is_null (only_ubo)) {
        if (!json_is_boolean (only_ubo)) {
            s_error (error, size, "%s: only_ubo must be true or false", where);
            return -2;
        }
        rule->only_ubo = json_is_true (only_ubo);
    }
    /* Optional: the configuration service may send rules switched off (left out). */
    const json_t *active = json_object_get (item, "is_active");
    if (active && !json_is_null (active)) {
        if (!json_is_boolean (active)) {
            s_error (error, size, "%s: is_active must be true or false", where);
            return -2;
        }
        if (!json_is_true (active))
            return 1;
    }
    return 0;
}

/* answer_trigger: the trigger a service answer is for (the rule's own is optional and
 * must be the same, else 1: leave the rule out); NULL for the rules file. Returns 0, 1 or -2. */
static int
s_parse_notification (const json_t *item, const char *where, rules_notification_t *rule,
                      const char *answer_trigger, char *error, size_t size)
{
    if (!json_is_object (item)) {
        s_error (error, size, "%s: must be an object", where);
        return -2;
    }
    if (s_copy (item, "rule_id", 1, rule->rule_id, sizeof rule->rule_id, where, error, size)
    ||  s_copy (item, "trigger", !answer_trigger, rule->trigger, sizeof rule->trigger, where, error, size)
    ||  s_copy (item, "traitement_type", 0, rule->traitement_type, sizeof rule->traitement_type, where, error, size)
    ||  s_copy (item, "case_type", 0, rule->case_type, sizeof rule->case_type, where, error, size)
    ||  s_copy (item, "notification_type", 1, rule->notification_type, sizeof rule->notification_type, where, error, size)
    ||  s_copy (item, "template_id", 1, rule->template_id, sizeof rule->template_id, where, error, size)
    ||  s_copy (item, "language_code", 1, rule->language_code, sizeof rule->language_code, where, error, size))
        return -2;
    int skip = 0;
    if (answer_trigger) {
        /* The service answered for one trigger: a rule for another never fires here. */
        skip = rule->trigger [0] && strcmp (rule->trigger, answer_trigger) != 0;
        snprintf (rule->trigger, sizeof rule->trigger, "%s", answer_trigger);
    }
    else
    if (!rules_trigger_is_valid (rule->trigger)) {
        s_error (error, size, "%s: unknown trigger", where);
        return -2;
    }
    if (!s_traitement (rule->traitement_type)) {
        s_error (error, size, "%s: traitement_type must be KYC or KYB", where);
        return -2;
    }
    const json_t *active = json_object_get (item, "is_active");
    if (!json_is_boolean (active)) {
        s_error (error, size, "%s: is_active must be true or false", where);
        return -2;
    }
    rule->is_active = json_is_true (active);
    return skip;
}

/* Gets the array member name of root (at most RULES_MAX entries); -2 otherwise. */
static const json_t *
s_list (const json_t *root, const char *name, char *error, size_t size)
{
    const json_t *list = json_object_get (root, name);
    if (!json_is_array (list)) {
        s_error (error, size, "\"%s\" must be an array", name);
        return NULL;
    }
    if (json_array_size (list) > RULES_MAX) {
        s_error (error, size, "\"%s\" has more than %d rules", name, RULES_MAX);
        return NULL;
    }
    return list;
}

/* Parses item into the next free slot of self->documents (allocated for every item)
 * and keeps it unless it is inactive. Returns 0 or -2. */
static int
s_add_document (rules_t *self, const json_t *item, const char *where, char *error, size_t size)
{
    rules_document_t *rule = &self->documents [self->document_count];
    memset (rule, 0, sizeof (*rule));
    int rc = s_parse_document (item, where, rule, error, size);
    if (rc < 0)
        return -2;
    for (size_t j = 0; j < self->document_count; j++)
        if (strcmp (self->documents [j].rule_id, rule->rule_id) == 0) {
            s_error (error, size, "%s: rule_id is used twice", where);
            return -2;
        }
    if (rc == 0)
        self->document_count++;
    return 0;
}

static int
s_add_notification (rules_t *self, const json_t *item, const char *where, const char *answer_trigger,
                    char *error, size_t size)
{
    rules_notification_t *rule = &self->notifications [self->notification_count];
    memset (rule, 0, sizeof (*rule));
    int rc = s_parse_notification (item, where, rule, answer_trigger, error, size);
    if (rc < 0)
        return -2;
    for (size_t j = 0; j < self->notification_count; j++)
        if (strcmp (self->notifications [j].rule_id, rule->rule_id) == 0) {
            s_error (error, size, "%s: rule_id is used twice", where);
            return -2;
        }
    if (rc == 0)
        self->notification_count++;
    return 0;
}

static int
s_parse (rules_t *self, const json_t *root, char *error, size_t size)
{
    if (!json_is_object (root)) {
        s_error (error, size, "the rules file must be a JSON object");
        return -2;
    }
    if (s_copy (root, "version", 1, self->version, sizeof self->version, "rules", error, size))
        return -2;
    const json_t *documents = s_list (root, "documents", error, size);
    const json_t *notifications = documents ? s_list (root, "notifications", error, size) : NULL;
    if (!documents || !notifications)
        return -2;
    size_t n = json_array_size (documents), m = json_array_size (notifications);
    self->documents = calloc (n ? n : 1, sizeof (rules_document_t));
    self->notifications = calloc (m ? m : 1, sizeof (rules_notification_t));
    if (!self->documents || !self->notifications) {
        s_error (error, size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char where [48];
        snprintf (where, sizeof where, "documents[%zu]", i);
        if (s_add_document (self, json_array_get (documents, i), where, error, size))
            return -2;
    }
    for (size_t i = 0; i < m; i++) {
        char where [48];
        snprintf (where, sizeof where, "notifications[%zu]", i);
        if (s_add_notification (self, json_array_get (notifications, i), where, NULL, error, size))
            return -2;
    }
    return 0;
}

rules_t *
rules_parse (const char *data, size_t size, char *error, size_t error_size)
{
    s_error (error, error_size, "%s", "");
    if (!data || size == 0 || size > RULES_FILE_MAX) {
        s_error (error, error_size, "the rules document is empty or larger than %d bytes", RULES_FILE_MAX);
        return NULL;
    }
    json_error_t jerror;
    json_t *root = json_loadb (data, size, JSON_REJECT_DUPLICATES, &jerror);
    if (!root) {
        s_error (error, error_size, "invalid JSON at line %d: %s", jerror.line, jerror.text);
        return NULL;
    }
    rules_t *self = calloc (1, sizeof (rules_t));
    if (!self || s_parse (self, root, error, error_size) != 0)
        rules_destroy (&self);
    json_decref (root);
    return self;
}

/* {"version": "...", "rules": [...]}: one list, notification rules when trigger is set. */
static int
s_parse_answer (rules_t *self, const json_t *root, const char *trigger, char *error, size_t size)
{
    if (!json_is_object (root)) {
        s_error (error, size, "the answer must be a JSON object");
        return -2;
    }
    if (s_copy (root, "version", 1, self->version, sizeof self->version, "answer", error, size))
        return -2;
    const json_t *list = s_list (root, "rules", error, size);
    if (!list)
        return -2;
    size_t n = json_array_size (list);
    self->documents = calloc (trigger || !n ? 1 : n, sizeof (rules_document_t));
    self->notifications = calloc (!trigger || !n ? 1 : n, sizeof (rules_notification_t));
    if (!self->documents || !self->notifications) {
        s_error (error, size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char where [48];
        snprintf (where, sizeof where, "rules[%zu]", i);
        int rc = trigger ? s_add_notification (self, json_array_get (list, i), where, trigger, error, size)
                         : s_add_document (self, json_array_get (list, i), where, error, size);
        if (rc)
            return -2;
    }
    return 0;
}

rules_t *
rules_parse_answer (const char *data, size_t size, const char *trigger, char *error, size_t error_size)
{
    s_error (error, error_size, "%s", "");
    if (!data || size == 0 || size > RULES_FILE_MAX) {
        s_error (error, error_size, "the answer is empty or larger than %d bytes", RULES_FILE_MAX);
        return NULL;
    }
    if (trigger && !rules_trigger_is_valid (trigger)) {
        s_error (error, error_size, "unknown trigger");
        return NULL;
    }
    json_error_t jerror;
    json_t *root = json_loadb (data, size, JSON_REJECT_DUPLICATES, &jerror);
    if (!root) {
        s_error (error, error_size, "invalid JSON at line %d: %s", jerror.line, jerror.text);
        return NULL;
    }
    rules_t *self = calloc (1, sizeof (rules_t));
    if (!self || s_parse_answer (self, root, trigger, error, error_size) != 0)
        rules_destroy (&self);
    json_decref (root);
    return self;
}

rules_t *
rules_new_empty (const char *version)
{
    rules_t *self = calloc (1, sizeof (rules_t));
    if (self)
        snprintf (self->version, sizeof self->version, "%s", version ? version : "");
    return self;
}

rules_t *
rules_load_file (const char *path, char *error, size_t error_size)
{
    FILE *file = path ? fopen (path, "rb") : NULL;
    if (!file) {
        s_error (error, error_size, "cannot open rules file %s", path ? path : "(null)");
        return NULL;
    }
    char *data = malloc (RULES_FILE_MAX + 1);
    size_t size = data ? fread (data, 1, RULES_FILE_MAX + 1, file) : 0;
    int failed = ferror (file);
    fclose (file);
    rules_t *self = NULL;
    if (!data)
        s_error (error, error_size, "out of memory");
    else
    if (failed)
        s_error (error, error_size, "cannot read rules file %s", path);
    else
    if (size > RULES_FILE_MAX)
        s_error (error, error_size, "rules file %s is larger than %d bytes", path, RULES_FILE_MAX);
    else
        self = rules_parse (data, size, error, error_size);
    free (data);
    return self;
}

void
rules_destroy (rules_t **self_p)
{
    if (self_p && *self_p) {
        rules_t *self = *self_p;
        free (self->documents);
        free (self->notifications);
        free (self);
        *self_p = NULL;
    }
}

const char *
rules_version (const rules_t *self)
{
    return self ? self->version : "";
}

size_t
rules_document_count (const rules_t *self)
{
    return self ? self->document_count : 0;
}

const rules_document_t *
rules_document_at (const rules_t *self, size_t index)
{
    return self && index < self->document_count ? &self->documents [index] : NULL;
}

size_t
rules_notification_count (const rules_t *self)
{
    return self ? self->notification_count : 0;
}

const rules_notification_t *
rules_notification_at (const rules_t *self, size_t index)
{
    return self && index < self->notification_count ? &self->notifications [index] : NULL;
}

void
rules_document_set (const rules_t *self, rules_document_set_t *set)
{
    set->version = rules_version (self);
    set->rules = self ? self->documents : NULL;
    set->count = rules_document_count (self);
}

void
rules_notification_set (const rules_t *self, rules_notification_set_t *set)
{
    set->version = rules_version (self);
    set->rules = self ? self->notifications : NULL;
    set->count = rules_notification_count (self);
}

int
rules_document_matches (const rules_document_t *rule, int subject, const char *traitement_type, int is_ubo)
{
    if (!rule || rule->subject != subject)
        return 0;
    if (rule->traitement_type [0] && (!traitement_type || strcmp (rule->traitement_type, traitement_type) != 0))
        return 0;
    if (rule->only_ubo && !is_ubo)
        return 0;
    return 1;
}

int
rules_notification_matches (const rules_notification_t *rule, const char *trigger,
                            const char *traitement_type, const char *case_type)
{
    if (!rule || !rule->is_active || !trigger || strcmp (rule->trigger, trigger) != 0)
        return 0;
    if (rule->traitement_type [0] && (!traitement_type || strcmp (rule->traitement_type, traitement_type) != 0))
        return 0;
    if (rule->case_type [0] && (!case_type || strcmp (rule->case_type, case_type) != 0))
        return 0;
    return 1;
}
