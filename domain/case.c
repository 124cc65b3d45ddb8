/* case — the Case aggregate. A decision works on a scratch copy of the state and folds
 * each event it emits into that copy with the same appliers that replay the log, so
 * what a decision sees next is exactly what a later replay will see ("fold(decide) ==
 * decide"), and a decision is allowed to chain (last upload → IN_REVIEW → notify). */
#include "case.h"
#include "json_scan.h"
#include "ids.h"
#include "json_text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 15 significant digits write 33.33 back as 33.33 rather than 33.329999999999998. */
#define S_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION (15))

/* A deferral as folded, with the context_data its notifications will carry. */
typedef struct {
    case_deferral_t pub;
    char *context;              /* JSON object text (owned) */
} s_deferral_t;

#define S_NAME_MAX (4 * 200 + 1)   /* a registered name: 200 characters of UTF-8 */

struct _case_t {
    char id [CASE_ID_MAX];
    char client_id [CASE_ID_MAX];
    char traitement_type [8];
    char case_type [CASE_ID_MAX];
    char company_id [CASE_ID_MAX];
    char recipient_id [CASE_ID_MAX];    /* who notifications are about: first APPLICANT, else first person */
    int recipient_is_applicant;
    char company_country [8];           /* rules are looked up by country: see case_get_country */
    char recipient_country [8];
    char client_name [S_NAME_MAX];      /* KYB: the registered name (not personal data) */
    int status;
    int64_t version;
    size_t person_count, owner_count, notification_count;
    case_document_t *documents;
    size_t document_count, document_cap;
    s_deferral_t *deferrals;
    size_t deferral_count, deferral_cap;
};

struct _case_events_t {
    case_event_t *items;
    size_t count, cap;
    case_t *after;              /* the decision's scratch state, handed over on success */
};

/* --------------------------------------------------------------------------
 * State */

case_t *
case_new (void)
{
    case_t *self = calloc (1, sizeof (case_t));
    if (self)
        self->status = CASE_STATE_INVALID;
    return self;
}

void
case_destroy (case_t **self_p)
{
    if (self_p && *self_p) {
        for (size_t i = 0; i < (*self_p)->deferral_count; i++)
            free ((*self_p)->deferrals [i].context);
        free ((*self_p)->deferrals);
        free ((*self_p)->documents);
        free (*self_p);
        *self_p = NULL;
    }
}

case_t *
case_dup (const case_t *self)
{
    if (!self)
        return NULL;
    case_t *copy = malloc (sizeof (case_t));
    if (!copy)
        return NULL;
    *copy = *self;
    copy->documents = NULL;
    copy->document_cap = 0;
    copy->deferrals = NULL;
    copy->deferral_count = copy->deferral_cap = 0;
    if (self->document_count) {
        copy->documents = malloc (self->document_count * sizeof (case_document_t));
        if (!copy->documents) {
            free (copy);
            return NULL;
        }
        memcpy (copy->documents, self->documents, self->document_count * sizeof (case_document_t));
        copy->document_cap = self->document_count;
    }
    if (self->deferral_count) {
        copy->deferrals = calloc (self->deferral_count, sizeof (s_deferral_t));
        if (!copy->deferrals) {
            case_destroy (&copy);
            return NULL;
        }
        copy->deferral_cap = self->deferral_count;
        for (size_t i = 0; i < self->deferral_count; i++) {
            copy->deferrals [i].pub = self->deferrals [i].pub;
            copy->deferrals [i].context = strdup (self->deferrals [i].context);
            copy->deferral_count++;
            if (!copy->deferrals [i].context) {
                case_destroy (&copy);
                return NULL;
            }
        }
    }
    return copy;
}

int case_exists (const case_t *self) { return self && self->id [0] && self->status != CASE_STATE_INVALID; }
const char *case_get_id (const case_t *self) { return self ? self->id : ""; }
const char *case_get_client_id (const case_t *self) { return self ? self->client_id : ""; }
const char *case_get_traitement_type (const case_t *self) { return self ? self->traitement_type : ""; }
const char *case_get_case_type (const case_t *self) { return self ? self->case_type : ""; }
const char *case_get_company_id (const case_t *self) { return self ? self->company_id : ""; }

const char *
case_get_country (const case_t *self)
{
    if (!self)
        return "";
    return strcmp (self->traitement_type, "KYB") == 0 ? self->company_country : self->recipient_country;
}
int case_get_status (const case_t *self) { return self ? self->status : CASE_STATE_INVALID; }
int64_t case_get_version (const case_t *self) { return self ? self->version : 0; }
size_t case_person_count (const case_t *self) { return self ? self->person_count : 0; }
size_t case_owner_count (const case_t *self) { return self ? self->owner_count : 0; }
size_t case_notification_count (const case_t *self) { return self ? self->notification_count : 0; }
size_t case_document_count (const case_t *self) { return self ? self->document_count : 0; }

const case_document_t *
case_document_at (const case_t *self, size_t index)
{
    return self && index < self->document_count ? &self->documents [index] : NULL;
}

const case_document_t *
case_document_find (const case_t *self, const char *document_id)
{
    for (size_t i = 0; self && document_id && i < self->document_count; i++)
        if (strcmp (self->documents [i].id, document_id) == 0)
            return &self->documents [i];
    return NULL;
}

size_t
case_documents_in_state (const case_t *self, int state)
{
    size_t n = 0;
    for (size_t i = 0; self && i < self->document_count; i++)
        if (self->documents [i].status == state)
            n++;
    return n;
}

size_t case_deferral_count (const case_t *self) { return self ? self->deferral_count : 0; }

const case_deferral_t *
case_deferral_at (const case_t *self, size_t index)
{
    return self && index < self->deferral_count ? &self->deferrals [index].pub : NULL;
}

const case_deferral_t *
case_deferral_find (const case_t *self, const char *deferral_id)
{
    for (size_t i = 0; self && deferral_id && i < self->deferral_count; i++)
        if (strcmp (self->deferrals [i].pub.id, deferral_id) == 0)
            return &self->deferrals [i].pub;
    return NULL;
}

size_t
case_deferrals_pending (const case_t *self)
{
    size_t n = 0;
    for (size_t i = 0; self && i < self->deferral_count; i++)
        if (!self->deferrals [i].pub.resolved)
            n++;
    return n;
}

/* --------------------------------------------------------------------------
 * Fold: one s_apply_<event> per event type */

/* Copies string member name into field; -2 if absent (when required), not a string or too long. */
static int
s_take (const json_t *data, const char *name, int required, char *field, size_t size)
{
    const json_t *value = json_object_get (data, name);
    if (!value || json_is_null (value))
        return required ? -2 : 0;
    const char *s = json_string_value (value);
    if (!s || strlen (s) >= size)
        return -2;
    memcpy (field, s, strlen (s) + 1);
    return 0;
}

static int
s_apply_created (case_t *self, const json_t *data)
{
    char status [32] = "OPEN";
    if (s_take (data, "case_id", 1, self->id, sizeof self->id)
    ||  s_take (data, "client_id", 1, self->client_id, sizeof self->client_id)
    ||  s_take (data, "traitement_type", 1, self->traitement_type, sizeof self->traitement_type)
    ||  s_take (data, "case_type", 1, self->case_type, sizeof self->case_type)
    ||  s_take (data, "status", 0, status, sizeof status))
        return -2;
    self->status = case_state_from_string (status);
    return self->status == CASE_STATE_INVALID ? -2 : 0;
}

static int
s_apply_company (case_t *self, const json_t *data)
{
    /* Country and name only steer rules and templates: an odd value is not worth
     * refusing a stored event for, so they are taken when they fit. */
    if (s_take (data, "country_of_incorporation", 0, self->company_country, sizeof self->company_country))
        self->company_country [0] = 0;
    if (s_take (data, "registered_name", 0, self->client_name, sizeof self->client_name))
        self->client_name [0] = 0;
    return s_take (data, "company_id", 1, self->company_id, sizeof self->company_id);
}

/* The applicant's country: of the address, else the nationality ("" when neither fits;
 * an encrypted person object, later, simply has neither). */
static void
s_person_country (const json_t *data, char country [8])
{
    const json_t *person = json_object_get (data, "person");
    country [0] = 0;
    if (s_take (json_object_get (person, "address"), "country", 0, country, 8) || !country [0])
        if (s_take (person, "nationality", 0, country, 8))
            country [0] = 0;
}

static int
s_apply_person (case_t *self, const json_t *data)
{
    char person_id [CASE_ID_MAX] = "", role [64] = "";
    if (s_take (data, "person_id", 1, person_id, sizeof person_id)
    ||  s_take (data, "role", 0, role, sizeof role))
        return -2;
    self->person_count++;
    int applicant = strcmp (role, "APPLICANT") == 0;
    if (!self->recipient_id [0] || (applicant && !self->recipient_is_applicant)) {
        memcpy (self->recipient_id, person_id, sizeof person_id);
        self->recipient_is_applicant = applicant;
        s_person_country (data, self->recipient_country);
    }
    return 0;
}

static int
s_apply_owner (case_t *self, const json_t *data)
{
    (void) data;
    self->owner_count++;
    return 0;
}

static int
s_apply_requirement (case_t *self, const json_t *data)
{
    case_document_t doc;
    memset (&doc, 0, sizeof doc);
    char status [32] = "AWAITING_UPLOAD";
    if (s_take (data, "document_id", 1, doc.id, sizeof doc.id)
    ||  s_take (data, "document_type", 1, doc.document_type, sizeof doc.document_type)
    ||  s_take (data, "subject_type", 0, doc.subject_type, sizeof doc.subject_type)
    ||  s_take (data, "subject_id", 0, doc.subject_id, sizeof doc.subject_id)
    ||  s_take (data, "rule_id", 0, doc.rule_id, sizeof doc.rule_id)
    ||  s_take (data, "status", 0, status, sizeof status))
        return -2;
    doc.status = document_state_from_string (status);
    if (doc.status == DOCUMENT_STATE_INVALID || case_document_find (self, doc.id))
        return -2;
    if (self->document_count == self->document_cap) {
        size_t cap = self->document_cap ? self->document_cap * 2 : 8;
        case_document_t *documents = realloc (self->documents, cap * sizeof (case_document_t));
        if (!documents)
            return -2;
        self->documents = documents;
        self->document_cap = cap;
    }
    self->documents [self->document_count++] = doc;
    return 0;
}

static int
s_apply_document_status (case_t *self, const json_t *data)
{
    char id [CASE_ID_MAX], to [32];
    if (s_take (data, "document_id", 1, id, sizeof id) || s_take (data, "to", 1, to, sizeof to))
        return -2;
    case_document_t *doc = (case_document_t *) case_document_find (self, id);
    int state = document_state_from_string (to);
    if (!doc || state == DOCUMENT_STATE_INVALID)
        return -2;
    /* The log is the truth: a stored transition is applied even if today's table
     * would refuse it (the table may have been stricter or looser when it was written). */
    doc->status = state;
    return 0;
}

static int
s_apply_case_status (case_t *self, const json_t *data)
{
    char to [32];
    if (s_take (data, "to", 1, to, sizeof to))
        return -2;
    int state = case_state_from_string (to);
    if (state == CASE_STATE_INVALID)
        return -2;
    self->status = state;
    return 0;
}

static int
s_apply_notification (case_t *self, const json_t *data)
{
    (void) data;
    self->notification_count++;
    return 0;
}

static int
s_apply_deferred (case_t *self, const json_t *data)
{
    s_deferral_t deferral;
    memset (&deferral, 0, sizeof deferral);
    if (s_take (data, "deferral_id", 1, deferral.pub.id, sizeof deferral.pub.id)
    ||  s_take (data, "trigger", 1, deferral.pub.trigger, sizeof deferral.pub.trigger)
    ||  case_deferral_find (self, deferral.pub.id))
        return -2;
    const json_t *context = json_object_get (data, "context_data");
    deferral.context = json_is_object (context) ? json_text_dump (context, S_JSON_FLAGS, NULL) : strdup ("{}");
    if (!deferral.context)
        return -2;
    if (self->deferral_count == self->deferral_cap) {
        size_t cap = self->deferral_cap ? self->deferral_cap * 2 : 4;
        s_deferral_t *deferrals = realloc (self->deferrals, cap * sizeof (s_deferral_t));
        if (!deferrals) {
            free (deferral.context);
            return -2;
        }
        self->deferrals = deferrals;
        self->deferral_cap = cap;
    }
    self->deferrals [self->deferral_count++] = deferral;
    return 0;
}

static int
s_apply_resolved (case_t *self, const json_t *data)
{
    char id [CASE_ID_MAX];
    if (s_take (data, "deferral_id", 1, id, sizeof id))
        return -2;
    case_deferral_t *deferral = (case_deferral_t *) case_deferral_find (self, id);
    if (!deferral)
        return -2;
    deferral->resolved = 1;
    return 0;
}

static const struct {
    const char *type;
    int (*apply) (case_t *self, const json_t *data);
} s_appliers [] = {
    { "CaseCreated", s_apply_created },
    { "CompanyProfileCreated", s_apply_company },
    { "PersonLinked", s_apply_person },
    { "BeneficialOwnerAdded", s_apply_owner },
    { "DocumentRequirementDetermined", s_apply_requirement },
    { "DocumentStatusChanged", s_apply_document_status },
    { "CaseStatusChanged", s_apply_case_status },
    { "NotificationRequired", s_apply_notification },
    { "NotificationDecisionDeferred", s_apply_deferred },
    { "NotificationDecisionResolved", s_apply_resolved },
};

/* The applier of type, or NULL for a type the aggregate does not fold. */
static int (*s_applier (const char *type)) (case_t *, const json_t *)
{
    for (size_t i = 0; type && i < sizeof s_appliers / sizeof s_appliers [0]; i++)
        if (strcmp (type, s_appliers [i].type) == 0)
            return s_appliers [i].apply;
    return NULL;
}

int
case_apply (case_t *self, const char *type, const char *json, size_t size)
{
    if (!self)
        return -2;
    self->version++;
    if (!type)
        return -2;
    int (*apply) (case_t *, const json_t *) = s_applier (type);
    if (!apply)
        return 0;
    json_t *data = json ? json_scan_loadb (json, size, 0, NULL) : NULL;
    int rc = json_is_object (data) ? apply (self, data) : -2;
    json_decref (data);
    return rc;
}

/* --------------------------------------------------------------------------
 * New events */

size_t
case_events_count (const case_events_t *self)
{
    return self ? self->count : 0;
}

const case_event_t *
case_events_at (const case_events_t *self, size_t index)
{
    return self && index < self->count ? &self->items [index] : NULL;
}

const case_t *
case_events_after (const case_events_t *self)
{
    return self ? self->after : NULL;
}

void
case_events_destroy (case_events_t **self_p)
{
    if (self_p && *self_p) {
        case_events_t *self = *self_p;
        for (size_t i = 0; i < self->count; i++)
            free (self->items [i].data);
        free (self->items);
        case_destroy (&self->after);
        free (self);
        *self_p = NULL;
    }
}

/* --------------------------------------------------------------------------
 * Decisions */

typedef struct {
    const case_context_t *ctx;
    case_t *state;              /* scratch: the input state with every emitted event applied */
    case_events_t *events;
    case_error_t *err;
} s_decision_t;

static int
s_refuse (case_error_t *err, int status, const char *error, const char *field, const char *fmt, ...)
    __attribute__ ((format (printf, 5, 6)));

static int
s_refuse (case_error_t *err, int status, const char *error, const char *field, const char *fmt, ...)
{
    err->status = status;
    snprintf (err->error, sizeof err->error, "%s", error);
    snprintf (err->field, sizeof err->field, "%s", field ? field : "");
    va_list args;
    va_start (args, fmt);
    vsnprintf (err->detail, sizeof err->detail, fmt, args);
    va_end (args);
    return -2;
}

static int
s_begin (s_decision_t *d, const case_t *from, const case_context_t *ctx, case_error_t *err)
{
    memset (d, 0, sizeof (*d));
    d->ctx = ctx;
    d->err = err;
    d->state = from ? case_dup (from) : case_new ();
    d->events = calloc (1, sizeof (case_events_t));
    return d->state && d->events ? 0 : -1;
}

/* Ends a decision: hands the events over on success, frees everything else. */
static int
s_finish (s_decision_t *d, int rc, case_events_t **events_p)
{
    if (rc == -1)
        s_refuse (d->err, 500, "internal", NULL, "out of memory or internal error while deciding");
    if (rc == 0) {
        d->events->after = d->state;
        d->state = NULL;
        *events_p = d->events;
    }
    else
        case_events_destroy (&d->events);
    case_destroy (&d->state);
    return rc;
}

/* Appends an event with data (stolen; NULL means a build failed) and folds it into the
 * scratch state. Returns 0, -2 (too many events) or -1. */
static int
s_emit (s_decision_t *d, const char *type, json_t *data)
{
    if (!data)
        return -1;
    case_events_t *events = d->events;
    if (events->count >= CASE_MAX_EVENTS) {
        json_decref (data);
        return s_refuse (d->err, 422, "validation.record", NULL,
                         "the record would need more than %d events", CASE_MAX_EVENTS);
    }
    /* Folded from the very object that is written out, through the appliers that
     * replay the log: the text is json_dumps of it, and parsing that text back would
     * give the applier the same members (it reads only strings), so fold(decide)
     * == decide holds without paying for a parse of every event we emit. */
    int (*apply) (case_t *, const json_t *) = s_applier (type);
    int folded = apply ? apply (d->state, data) : 0;
    d->state->version++;
    size_t size = 0;
    char *text = json_text_dump (data, S_JSON_FLAGS, &size);
    json_decref (data);
    if (!text)
        return -1;
    if (events->count == events->cap) {
        size_t cap = events->cap ? events->cap * 2 : 16;
        case_event_t *items = realloc (events->items, cap * sizeof (case_event_t));
        if (!items) {
            free (text);
            return -1;
        }
        events->items = items;
        events->cap = cap;
    }
    case_event_t *event = &events->items [events->count];
    memset (event, 0, sizeof (*event));
    ids_uuid5_indexed (d->ctx->command_id ? d->ctx->command_id : "", (int) events->count, event->id);
    size_t type_len = strnlen (type, sizeof event->type - 1);
    memcpy (event->type, type, type_len);
    event->type [type_len] = 0;
    event->data = text;
    event->size = size;
    events->count++;
    /* Our own events must fold; if one does not, the decision is a bug, not bad input. */
    return folded == 0 ? 0 : -1;
}

static const char *
s_now (const s_decision_t *d)
{
    return d->ctx->now ? d->ctx->now : "";
}

/* UUIDv5 of "<case_id>/<kind>/<index>", the prefix cut as it always was. A dozen
 * of these per case: built with memcpy, not printf. */
static void
s_entity_id (const char *case_id, const char *kind, size_t index, char out [IDS_UUID_LEN])
{
    char prefix [CASE_ID_MAX + 32];
    size_t room = sizeof prefix - 1;
    size_t n = strnlen (case_id, room);
    memcpy (prefix, case_id, n);
    if (n < room)
        prefix [n++] = '/';
    size_t k = strnlen (kind, room - n);
    memcpy (prefix + n, kind, k);
    prefix [n + k] = 0;
    ids_uuid5_indexed (prefix, (int) index, out);
}

static int
s_case_status (s_decision_t *d, int to, const char *reason)
{
    const char *from = case_state_name (d->state->status);
    return s_emit (d, "CaseStatusChanged", json_pack ("{s:s, s:s, s:s, s:s, s:s}",
        "case_id", d->state->id, "from", from ? from : "", "to", case_state_name (to),
        "reason", reason, "changed_at", s_now (d)));
}

static int
s_document_status (s_decision_t *d, const case_document_t *doc, int to, const char *reason)
{
    return s_emit (d, "DocumentStatusChanged", json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}",
        "case_id", d->state->id, "document_id", doc->id,
        "from", document_state_name (doc->status), "to", document_state_name (to),
        "reason", reason, "changed_at", s_now (d)));
}

static void
s_rules_context (const case_t *state, rules_context_t *context)
{
    context->traitement_type = state->traitement_type;
    context->case_type = state->case_type;
    context->country = case_get_country (state);
}

/* The notification rules for trigger: the source's when there is one (which may not
 * have them now: -1), else the local rules. */
static int
s_notification_rules (s_decision_t *d, const char *trigger, rules_notification_set_t *set)
{
    const case_context_t *ctx = d->ctx;
    if (!ctx->source || !ctx->source->notifications) {
        rules_notification_set (ctx->rules, set);
        return 0;
    }
    memset (set, 0, sizeof (*set));
    rules_context_t context;
    s_rules_context (d->state, &context);
    if (ctx->source->notifications (ctx->source->arg, trigger, &context, set) != 0)
        return -1;
    if (!set->version)
        set->version = "";
    return 0;
}

/* NotificationRequired for each active rule of set matching trigger, each with context
 * (borrowed) as its context_data. Recipient details carry ids only, never contact data.
 * A resolution passes its deferral_id (recorded in each) and ids (gets each
 * notification id); both NULL otherwise. */
static int
s_notifications (s_decision_t *d, const char *trigger, const rules_notification_set_t *set,
                 json_t *context, const char *deferral_id, json_t *ids)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < set->count; i++) {
        const rules_notification_t *rule = &set->rules [i];
        case_t *state = d->state;
        if (!rules_notification_matches (rule, trigger, state->traitement_type, state->case_type))
            continue;
        char notification_id [IDS_UUID_LEN];
        s_entity_id (state->id, "notification", state->notification_count, notification_id);
        json_t *recipient = json_pack ("{s:s, s:s}", "case_id", state->id, "client_id", state->client_id);
        if (recipient && state->recipient_id [0])
            json_object_set_new (recipient, "person_id", json_string (state->recipient_id));
        json_t *data = !recipient ? NULL : json_pack (
            "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:O}",
            "notification_id", notification_id, "case_id", state->id, "trigger", trigger,
            "rule_id", rule->rule_id, "rules_version", set->version,
            "notification_type", rule->notification_type, "template_id", rule->template_id,
            "language_code", rule->language_code, "recipient_details", recipient,
            "context_data", context);
        if (data && deferral_id && json_object_set_new (data, "deferral_id", json_string (deferral_id))) {
            json_decref (data);
            data = NULL;
        }
        if (data && ids && json_array_append_new (ids, json_string (notification_id))) {
            json_decref (data);
            data = NULL;
        }
        rc = s_emit (d, "NotificationRequired", data);
    }
    return rc;
}

/* The notification decision for trigger, with context (stolen) as context_data: made
 * now when the rules can be had, else recorded as NotificationDecisionDeferred (the
 * decision is never skipped; case_decide_resolve makes it later, once). */
static int
s_notify (s_decision_t *d, const char *trigger, json_t *context)
{
    if (!context)
        return -1;
    rules_notification_set_t set;
    int rc;
    if (s_notification_rules (d, trigger, &set) == 0)
        rc = s_notifications (d, trigger, &set, context, NULL, NULL);
    else {
        char deferral_id [IDS_UUID_LEN];
        s_entity_id (d->state->id, "deferral", d->state->deferral_count, deferral_id);
        rc = s_emit (d, "NotificationDecisionDeferred", json_pack ("{s:s, s:s, s:s, s:O, s:s, s:s}",
            "deferral_id", deferral_id, "case_id", d->state->id, "trigger", trigger,
            "context_data", context, "reason", "notification rules unavailable",
            "deferred_at", s_now (d)));
    }
    json_decref (context);
    return rc;
}

/* The common part of every context_data (a company's registered name is not personal
 * data; a person's name stays out: templates look it up by recipient person_id). */
static json_t *
s_context (const case_t *state)
{
    json_t *context = json_pack ("{s:s, s:s, s:s, s:s}", "case_id", state->id, "client_id", state->client_id,
                                 "traitement_type", state->traitement_type, "case_type", state->case_type);
    if (context && state->client_name [0]
    &&  json_object_set_new (context, "client_name", json_string (state->client_name))) {
        json_decref (context);
        return NULL;
    }
    return context;
}

static const char *
s_reason (const char *reason, const char *dflt)
{
    return reason && *reason ? reason : dflt;
}

/* ---- create */

static json_t *
s_address_json (const record_address_t *a)
{
    return json_pack ("{s:s?, s:s?, s:s?, s:s?}", "street", a->street, "city", a->city,
                      "postal_code", a->postal_code, "country", a->country);
}

/* The personal data of one person, grouped so that it can later be encrypted as a whole. */
static json_t *
s_person_json (const record_person_t *p)
{
    json_t *person = json_pack ("{s:s, s:s, s:s, s:s*, s:s*, s:s*}",
        "firstname", p->firstname, "lastname", p->lastname, "birthdate", p->birthdate,
        "email", p->email, "phone", p->phone, "nationality", p->nationality);
    if (person && p->has_address) {
        json_t *address = s_address_json (&p->address);
        if (!address || json_object_set_new (person, "address", address)) {
            json_decref (person);
            return NULL;
        }
    }
    return person;
}

static json_t *
s_owner_json (const char *case_id, const char *company_id, const char *owner_id,
              const char *person_id, const record_owner_t *o)
{
    json_t *controls = json_array ();
    for (size_t i = 0; controls && i < o->control_count; i++)
        json_array_append_new (controls, json_string (o->types_of_control [i]));
    json_t *percentage = o->ownership_is_integer
                       ? json_integer ((json_int_t) o->ownership_percentage)
                       : json_real (o->ownership_percentage);
    json_t *person = s_person_json (&o->person);
    if (!controls || !percentage || !person) {
        json_decref (controls);
        json_decref (percentage);
        json_decref (person);
        return NULL;
    }
    return json_pack ("{s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:o}",
        "case_id", case_id, "company_id", company_id, "beneficial_owner_id", owner_id,
        "person_id", person_id, "ownership_percentage", percentage, "types_of_control", controls,
        "is_ubo", o->is_ubo, "person", person);
}

/* Where the document rules of a create come from: the embedded default (origin NULL,
 * and the events stay as they always were), the configuration service, or, when the
 * service cannot answer, the local rules file. A case is never held up for lack of
 * document rules: the file is the last known good set, and the origin is recorded. */
typedef struct {
    rules_document_set_t set;
    const char *origin;         /* NULL, "config_service" or "rules_file" */
} s_document_rules_t;

static void
s_document_rules (s_decision_t *d, s_document_rules_t *out)
{
    const case_context_t *ctx = d->ctx;
    out->origin = NULL;
    if (ctx->source && ctx->source->documents) {
        rules_context_t context;
        s_rules_context (d->state, &context);
        memset (&out->set, 0, sizeof out->set);
        if (ctx->source->documents (ctx->source->arg, &context, &out->set) == 0) {
            if (!out->set.version)
                out->set.version = "";
            out->origin = "config_service";
            return;
        }
        out->origin = "rules_file";
    }
    rules_document_set (ctx->rules, &out->set);
}

static int
s_requirement (s_decision_t *d, size_t *index, const s_document_rules_t *from, const rules_document_t *rule,
               const char *subject_id)
{
    char document_id [IDS_UUID_LEN];
    s_entity_id (d->state->id, "document", (*index)++, document_id);
    json_t *data = json_pack (
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "case_id", d->state->id, "document_id", document_id,
        "document_type", rule->document_type, "subject_type", rules_subject_name (rule->subject),
        "subject_id", subject_id, "rule_id", rule->rule_id, "status", "AWAITING_UPLOAD");
    if (data && from->origin && json_object_update_new (data, json_pack ("{s:s, s:s}",
            "rules_version", from->set.version, "rules_origin", from->origin))) {
        json_decref (data);
        data = NULL;
    }
    return s_emit (d, "DocumentRequirementDetermined", data);
}

/* Every DocumentRequirementDetermined, rule by rule in rule-set order, subject by
 * subject in record order; adds each distinct document type to required. */
static int
s_requirements (s_decision_t *d, const record_t *record, const char *company_id, json_t *required)
{
    s_document_rules_t from;
    s_document_rules (d, &from);
    const char *case_id = d->state->id, *type = record->traitement_type;
    size_t index = 0;
    for (size_t r = 0; r < from.set.count; r++) {
        const rules_document_t *rule = &from.set.rules [r];
        size_t before = index;
        int rc = 0;
        char id [IDS_UUID_LEN];
        if (rule->subject == RULES_SUBJECT_COMPANY) {
            if (record->has_company && rules_document_matches (rule, RULES_SUBJECT_COMPANY, type, 0))
                rc = s_requirement (d, &index, &from, rule, company_id);
        }
        else
        if (rule->subject == RULES_SUBJECT_PERSON) {
            for (size_t i = 0; rc == 0 && i < record->person_count; i++)
                if (rules_document_matches (rule, RULES_SUBJECT_PERSON, type, 0)) {
                    s_entity_id (case_id, "person", i, id);
                    rc = s_requirement (d, &index, &from, rule, id);
                }
        }
        else
        if (rule->subject == RULES_SUBJECT_BENEFICIAL_OWNER) {
            for (size_t i = 0; rc == 0 && i < record->owner_count; i++)
                if (rules_document_matches (rule, RULES_SUBJECT_BENEFICIAL_OWNER, type, record->owners [i].is_ubo)) {
                    s_entity_id (case_id, "beneficial_owner", i, id);
                    rc = s_requirement (d, &index, &from, rule, id);
                }
        }
        if (rc)
            return rc;
        if (index > before) {
            int seen = 0;
            for (size_t j = 0; j < json_array_size (required); j++)
                if (strcmp (json_string_value (json_array_get (required, j)), rule->document_type) == 0)
                    seen = 1;
            if (!seen && json_array_append_new (required, json_string (rule->document_type)))
                return -1;
        }
    }
    return 0;
}

static int
s_create (s_decision_t *d, const record_t *record, const char *case_id)
{
    json_t *version = record->case_version_is_integer
                    ? json_integer ((json_int_t) record->case_version_integer)
                    : json_string (record->case_version_string ? record->case_version_string : "");
    int rc = s_emit (d, "CaseCreated", !version ? NULL : json_pack (
        "{s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "case_id", case_id, "client_id", record->client_id,
        "case_type", record->case_type, "case_version", version, "traitement_type", record->traitement_type,
        "status", "OPEN", "created_at", s_now (d)));
    if (rc)
        return rc;

    char company_id [IDS_UUID_LEN] = "";
    if (record->has_company) {
        const record_company_t *c = &record->company;
        s_entity_id (case_id, "company", 0, company_id);
        json_t *address = s_address_json (&c->registered_address);
        rc = s_emit (d, "CompanyProfileCreated", !address ? NULL : json_pack (
            "{s:s, s:s, s:s, s:s?, s:s, s:s, s:s, s:o, s:s?, s:s?}",
            "case_id", case_id, "company_id", company_id, "registered_name", c->registered_name,
            "trading_name", c->trading_name, "registration_number", c->registration_number,
            "registration_date", c->registration_date, "country_of_incorporation", c->country_of_incorporation,
            "registered_address", address, "business_type", c->business_type,
            "industry_sector", c->industry_sector));
        if (rc)
            return rc;
    }

    for (size_t i = 0; i < record->person_count; i++) {
        char person_id [IDS_UUID_LEN];
        s_entity_id (case_id, "person", i, person_id);
        json_t *person = s_person_json (&record->persons [i]);
        json_t *company = company_id [0] ? json_string (company_id) : json_null ();
        if (!person || !company) {
            json_decref (person);
            json_decref (company);
            return -1;
        }
        rc = s_emit (d, "PersonLinked", json_pack ("{s:s, s:s, s:o, s:s, s:o}",
            "case_id", case_id, "person_id", person_id, "company_id", company,
            "role", record->persons [i].role, "person", person));
        if (rc)
            return rc;
    }

    for (size_t i = 0; i < record->owner_count; i++) {
        char owner_id [IDS_UUID_LEN], person_id [IDS_UUID_LEN];
        s_entity_id (case_id, "beneficial_owner", i, owner_id);
        /* An owner is a person too; its person id continues after those of persons[]. */
        s_entity_id (case_id, "person", record->person_count + i, person_id);
        rc = s_emit (d, "BeneficialOwnerAdded",
                     s_owner_json (case_id, company_id, owner_id, person_id, &record->owners [i]));
        if (rc)
            return rc;
    }

    json_t *required = json_array ();
    if (!required)
        return -1;
    rc = s_requirements (d, record, company_id, required);
    if (rc == 0) {
        int awaiting = case_document_count (d->state) > 0;
        rc = s_case_status (d, awaiting ? CASE_STATE_AWAITING_DOCUMENTS : CASE_STATE_IN_REVIEW,
                            awaiting ? "documents required" : "no documents required");
    }
    if (rc == 0) {
        json_t *context = s_context (d->state);
        if (context && json_object_set (context, "required_documents", required)) {
            json_decref (context);
            context = NULL;
        }
        rc = s_notify (d, RULES_TRIGGER_CASE_CREATED, context);
    }
    json_decref (required);
    return rc;
}

int
case_decide_create (const record_t *record, const char *case_id, const case_context_t *ctx,
                    case_events_t **events_p, case_error_t *err)
{
    case_error_t scratch;
    if (!err)
        err = &scratch;
    memset (err, 0, sizeof (*err));
    *events_p = NULL;
    if (!record || !ctx || !case_id || !*case_id || strlen (case_id) >= CASE_ID_MAX)
        return s_refuse (err, 400, "bad_request", "case_id", "the case id must be 1 to %d characters",
                         CASE_ID_MAX - 1);
    s_decision_t d;
    int rc = s_begin (&d, NULL, ctx, err);
    if (rc == 0)
        rc = s_create (&d, record, case_id);
    return s_finish (&d, rc, events_p);
}

/* ---- document status */

static int
s_document (s_decision_t *d, const char *document_id, const char *status, const char *reason)
{
    case_t *state = d->state;
    int to = document_state_from_string (status);
    if (to != DOCUMENT_STATE_UPLOADED && to != DOCUMENT_STATE_VERIFIED && to != DOCUMENT_STATE_REJECTED)
        return s_refuse (d->err, 422, "validation.status", "status", "status must be UPLOADED, VERIFIED or REJECTED");
    const case_document_t *found = case_document_find (state, document_id);
    if (!found)
        return s_refuse (d->err, 404, "not_found", "document_id", "no such document in this case");
    if (state->status != CASE_STATE_AWAITING_DOCUMENTS && state->status != CASE_STATE_IN_REVIEW)
        return s_refuse (d->err, 409, "conflict.state", NULL,
                         "documents can change only while the case is AWAITING_DOCUMENTS or IN_REVIEW; it is %s",
                         case_state_name (state->status));
    if (!document_state_can_transition (found->status, to))
        return s_refuse (d->err, 409, "conflict.state", NULL, "document cannot move from %s to %s",
                         document_state_name (found->status), document_state_name (to));
    /* found points into the scratch state, which each emit changes: work on a copy. */
    case_document_t doc = *found;
    int rc = s_document_status (d, &doc, to, s_reason (reason, ""));
    if (rc)
        return rc;

    if (to == DOCUMENT_STATE_REJECTED) {
        doc.status = DOCUMENT_STATE_REJECTED;
        rc = s_document_status (d, &doc, DOCUMENT_STATE_AWAITING_UPLOAD, "rejected: a new upload is required");
        if (rc == 0 && state->status == CASE_STATE_IN_REVIEW)
            rc = s_case_status (d, CASE_STATE_AWAITING_DOCUMENTS, "document rejected");
        if (rc == 0) {
            json_t *context = s_context (state);
            if (context && json_object_update_new (context, json_pack ("{s:s, s:s, s:s}",
                    "document_id", doc.id, "document_type", doc.document_type,
                    "reason", s_reason (reason, "")))) {
                json_decref (context);
                context = NULL;
            }
            rc = s_notify (d, RULES_TRIGGER_DOCUMENT_REJECTED, context);
        }
        return rc;
    }
    if (to == DOCUMENT_STATE_UPLOADED && state->status == CASE_STATE_AWAITING_DOCUMENTS
    &&  case_documents_in_state (state, DOCUMENT_STATE_AWAITING_UPLOAD) == 0) {
        rc = s_case_status (d, CASE_STATE_IN_REVIEW, "all documents received");
        if (rc == 0) {
            json_t *context = s_context (state);
            if (context && json_object_set_new (context, "document_count",
                                                json_integer ((json_int_t) state->document_count))) {
                json_decref (context);
                context = NULL;
            }
            rc = s_notify (d, RULES_TRIGGER_ALL_DOCUMENTS_RECEIVED, context);
        }
    }
    return rc;
}

int
case_decide_document_status (const case_t *self, const char *document_id, const char *status,
                             const char *reason, const case_context_t *ctx,
                             case_events_t **events_p, case_error_t *err)
{
    case_error_t scratch;
    if (!err)
        err = &scratch;
    memset (err, 0, sizeof (*err));
    *events_p = NULL;
    if (!case_exists (self) || !ctx)
        return s_refuse (err, 404, "not_found", NULL, "no such case");
    s_decision_t d;
    int rc = s_begin (&d, self, ctx, err);
    if (rc == 0)
        rc = s_document (&d, document_id, status, reason);
    return s_finish (&d, rc, events_p);
}

/* ---- decision */

/* Writes "N document(s) not verified: TYPE (id), ..." into out, as many as fit. */
static void
s_unverified (const case_t *state, char *out, size_t size)
{
    size_t missing = state->document_count - case_documents_in_state (state, DOCUMENT_STATE_VERIFIED);
    size_t len = (size_t) snprintf (out, size, "cannot approve: %zu document(s) not verified:", missing);
    const char *sep = " ";
    for (size_t i = 0; i < state->document_count && len < size; i++) {
        const case_document_t *doc = &state->documents [i];
        if (doc->status == DOCUMENT_STATE_VERIFIED)
            continue;
        int n = snprintf (out + len, size - len, "%s%s %s (%s)", sep, doc->document_type,
                          document_state_name (doc->status), doc->id);
        if (n < 0 || (size_t) n >= size - len) {
            /* out of room: end with an ellipsis rather than a cut-off id */
            if (size > 4)
                memcpy (out + size - 4, "...", 4);
            return;
        }
        len += (size_t) n;
        sep = ", ";
    }
}

static int
s_decision (s_decision_t *d, const char *decision, const char *reason)
{
    case_t *state = d->state;
    int approve;
    if (decision && strcasecmp (decision, "APPROVE") == 0)
        approve = 1;
    else
    if (decision && strcasecmp (decision, "REJECT") == 0)
        approve = 0;
    else
        return s_refuse (d->err, 422, "validation.decision", "decision", "decision must be APPROVE or REJECT");
    int to = approve ? CASE_STATE_APPROVED : CASE_STATE_REJECTED;
    if (!case_state_can_transition (state->status, to))
        return s_refuse (d->err, 409, "conflict.state", NULL, "case cannot move from %s to %s",
                         case_state_name (state->status), case_state_name (to));
    if (approve && case_documents_in_state (state, DOCUMENT_STATE_VERIFIED) != state->document_count) {
        s_refuse (d->err, 409, "conflict.state", NULL, "%s", "");
        s_unverified (state, d->err->detail, sizeof d->err->detail);
        return -2;
    }
    int rc = s_case_status (d, to, s_reason (reason, approve ? "approved" : "rejected"));
    if (rc == 0) {
        json_t *context = s_context (state);
        if (context && json_object_set_new (context, "reason", json_string (s_reason (reason, "")))) {
            json_decref (context);
            context = NULL;
        }
        rc = s_notify (d, approve ? RULES_TRIGGER_CASE_APPROVED : RULES_TRIGGER_CASE_REJECTED, context);
    }
    return rc;
}

int
case_decide_decision (const case_t *self, const char *decision, const char *reason,
                      const case_context_t *ctx, case_events_t **events_p, case_error_t *err)
{
    case_error_t scratch;
    if (!err)
        err = &scratch;
    memset (err, 0, sizeof (*err));
    *events_p = NULL;
    if (!case_exists (self) || !ctx)
        return s_refuse (err, 404, "not_found", NULL, "no such case");
    s_decision_t d;
    int rc = s_begin (&d, self, ctx, err);
    if (rc == 0)
        rc = s_decision (&d, decision, reason);
    return s_finish (&d, rc, events_p);
}

/* ---- close */

int
case_decide_close (const case_t *self, const char *reason, const case_context_t *ctx,
                   case_events_t **events_p, case_error_t *err)
{
    case_error_t scratch;
    if (!err)
        err = &scratch;
    memset (err, 0, sizeof (*err));
    *events_p = NULL;
    if (!case_exists (self) || !ctx)
        return s_refuse (err, 404, "not_found", NULL, "no such case");
    if (!case_state_can_transition (self->status, CASE_STATE_CLOSED))
        return s_refuse (err, 409, "conflict.state", NULL, "case cannot move from %s to CLOSED",
                         case_state_name (self->status));
    s_decision_t d;
    int rc = s_begin (&d, self, ctx, err);
    if (rc == 0)
        rc = s_case_status (&d, CASE_STATE_CLOSED, s_reason (reason, "closed"));
    return s_finish (&d, rc, events_p);
}

/* ---- resolve a deferred notification decision */

static int
s_resolve (s_decision_t *d, const char *deferral_id)
{
    const case_deferral_t *found = case_deferral_find (d->state, deferral_id);
    if (!found)
        return s_refuse (d->err, 404, "not_found", "deferral_id", "no such notification decision in this case");
    if (found->resolved)
        return s_refuse (d->err, 409, "conflict.state", NULL, "this notification decision was already made");
    /* found points into the scratch state, which each emit changes: copy what is needed. */
    char id [CASE_ID_MAX], trigger [32];
    snprintf (id, sizeof id, "%s", found->id);
    snprintf (trigger, sizeof trigger, "%s", found->trigger);
    const char *text = ((const s_deferral_t *) found)->context;
    rules_notification_set_t set;
    if (s_notification_rules (d, trigger, &set) != 0)
        return s_refuse (d->err, 503, "unavailable", NULL, "the notification rules are still unavailable");
    json_t *context = json_loads (text, 0, NULL);
    json_t *ids = json_array ();
    int rc = context && ids ? s_notifications (d, trigger, &set, context, id, ids) : -1;
    if (rc == 0)
        rc = s_emit (d, "NotificationDecisionResolved", json_pack ("{s:s, s:s, s:s, s:s, s:O, s:s}",
            "deferral_id", id, "case_id", d->state->id, "trigger", trigger, "rules_version", set.version,
            "notification_ids", ids, "resolved_at", s_now (d)));
    json_decref (context);
    json_decref (ids);
    return rc;
}

int
case_decide_resolve (const case_t *self, const char *deferral_id, const case_context_t *ctx,
                     case_events_t **events_p, case_error_t *err)
{
    case_error_t scratch;
    if (!err)
        err = &scratch;
    memset (err, 0, sizeof (*err));
    *events_p = NULL;
    if (!case_exists (self) || !ctx)
        return s_refuse (err, 404, "not_found", NULL, "no such case");
    s_decision_t d;
    int rc = s_begin (&d, self, ctx, err);
    if (rc == 0)
        rc = s_resolve (&d, deferral_id);
    return s_finish (&d, rc, events_p);
}
