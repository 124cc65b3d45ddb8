/* handler_command — parsing, deciding and encoding for one command, with no socket
 * and no clock of its own, so the handler's logic is unit-testable end to end. */
#include "handler_command.h"
#include "case_command.h"
#include "command_id.h"
#include "ids.h"
#include "record.h"
#include "store_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct _handler_command_t {
    int kind;
    char type [ENVELOPE_TYPE_MAX];
    char id [ENVELOPE_ID_MAX];
    char correlation_id [ENVELOPE_ID_MAX];
    char case_id [ENVELOPE_ID_MAX];
    char fingerprint [41];
    record_t *record;           /* create */
    case_command_t body;        /* the others */
};

static const struct {
    const char *type;
    int kind;
} s_kinds [] = {
    { "cmd.create_case", HANDLER_CMD_CREATE },
    { "cmd.update_document_status", HANDLER_CMD_DOCUMENT },
    { "cmd.decide_case", HANDLER_CMD_DECIDE },
    { "cmd.close_case", HANDLER_CMD_CLOSE },
    { "cmd.resolve_notifications", HANDLER_CMD_RESOLVE },
};

void
handler_command_time (int64_t us, char out [HANDLER_TIME_MAX])
{
    if (us < 0)
        us = 0;
    time_t seconds = (time_t) (us / 1000000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    char date [24];
    if (strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf (date, sizeof date, "1970-01-01T00:00:00");
    snprintf (out, HANDLER_TIME_MAX, "%s.%03dZ", date, (int) ((us % 1000000) / 1000));
}

/* snprintf (dst, size, "%s", src) without printf: ids and types, many per command. */
static void
s_copy (char *dst, size_t size, const char *src)
{
    size_t n = strnlen (src, size - 1);
    memcpy (dst, src, n);
    dst [n] = 0;
}

static void
s_copy_error (handler_error_t *err, const case_error_t *from)
{
    memset (err, 0, sizeof (*err));
    err->status = from->status;
    snprintf (err->error, sizeof err->error, "%s", from->error);
    snprintf (err->field, sizeof err->field, "%s", from->field);
    snprintf (err->detail, sizeof err->detail, "%s", from->detail);
}

/* The parts of a create: case id from the command id, then the record. */
static int
s_parse_create (handler_command_t *self, const envelope_t *env, const char *now, handler_error_t *err)
{
    char case_id [IDS_UUID_LEN];
    command_id_case_id (self->id, case_id);
    if (env->key [0] && strcasecmp (env->key, case_id) != 0)
        return handler_error_set (err, 400, "bad_request",
                                  "the key is not the case id of this command id (expected %s)", case_id);
    s_copy (self->case_id, sizeof self->case_id, case_id);
    ids_sha1_hex (env->body ? env->body : "", env->body ? env->body_size : 0, self->fingerprint);
    record_error_t rerr;
    int rc = record_parse (env->body, env->body_size, now, &self->record, &rerr);
    if (rc == -2) {
        handler_error_set (err, 422, rerr.error, "%s", rerr.detail);
        snprintf (err->field, sizeof err->field, "%s", rerr.field);
        return -2;
    }
    if (rc != 0) {
        handler_error_set (err, 500, "internal", "out of memory while reading the record");
        return -1;
    }
    return 0;
}

static int
s_parse_other (handler_command_t *self, const envelope_t *env, handler_error_t *err)
{
    if (!env->key [0])
        return handler_error_set (err, 400, "bad_request", "%s needs the case id as its key", self->type);
    if (!ids_is_uuid (env->key))
        return handler_error_set (err, 404, "not_found", "no such case (a case id is a UUID)");
    snprintf (self->case_id, sizeof self->case_id, "%s", env->key);
    /* A key reused for another command type or another case is a different payload. */
    size_t size = strlen (self->type) + 1 + strlen (self->case_id) + 1 + env->body_size;
    char *material = malloc (size + 1);
    if (!material) {
        handler_error_set (err, 500, "internal", "out of memory");
        return -1;
    }
    int n = snprintf (material, size + 1, "%s\n%s\n", self->type, self->case_id);
    if (env->body_size)
        memcpy (material + n, env->body, env->body_size);
    ids_sha1_hex (material, size, self->fingerprint);
    free (material);

    case_error_t cerr;
    int rc;
    if (self->kind == HANDLER_CMD_DOCUMENT)
        rc = case_command_parse_document_status (env->body, env->body_size, &self->body, &cerr);
    else
    if (self->kind == HANDLER_CMD_DECIDE)
        rc = case_command_parse_decision (env->body, env->body_size, &self->body, &cerr);
    else
    if (self->kind == HANDLER_CMD_RESOLVE)
        rc = case_command_parse_resolve (env->body, env->body_size, &self->body, &cerr);
    else
        rc = case_command_parse_close (env->body, env->body_size, &self->body, &cerr);
    if (rc) {
        s_copy_error (err, &cerr);
        return -2;
    }
    return 0;
}

int
handler_command_new (const envelope_t *env, const char *now, handler_command_t **self_p, handler_error_t *err)
{
    memset (err, 0, sizeof (*err));
    *self_p = NULL;
    int kind = -1;
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds [0]; i++)
        if (strcmp (env->type, s_kinds [i].type) == 0)
            kind = s_kinds [i].kind;
    if (kind < 0)
        return handler_error_set (err, 400, "bad_request", "unknown command type");
    if (!env->id [0])
        return handler_error_set (err, 400, "bad_request", "a command needs an id (the envelope id)");
    handler_command_t *self = calloc (1, sizeof (handler_command_t));
    if (!self) {
        handler_error_set (err, 500, "internal", "out of memory");
        return -1;
    }
    self->kind = kind;
    s_copy (self->type, sizeof self->type, env->type);
    s_copy (self->id, sizeof self->id, env->id);
    s_copy (self->correlation_id, sizeof self->correlation_id, env->correlation_id [0] ? env->correlation_id : env->id);
    int rc = kind == HANDLER_CMD_CREATE ? s_parse_create (self, env, now, err) : s_parse_other (self, env, err);
    if (rc) {
        handler_command_destroy (&self);
        return rc;
    }
    *self_p = self;
    return 0;
}

void
handler_command_destroy (handler_command_t **self_p)
{
    if (self_p && *self_p) {
        record_destroy (&(*self_p)->record);
        free (*self_p);
        *self_p = NULL;
    }
}

int handler_command_kind (const handler_command_t *self) { return self->kind; }
const char *handler_command_type (const handler_command_t *self) { return self->type; }
const char *handler_command_id (const handler_command_t *self) { return self->id; }
const char *handler_command_correlation_id (const handler_command_t *self) { return self->correlation_id; }
const char *handler_command_case_id (const handler_command_t *self) { return self->case_id; }
const char *handler_command_fingerprint (const handler_command_t *self) { return self->fingerprint; }

const char *
handler_command_document_id (const handler_command_t *self)
{
    return self->kind == HANDLER_CMD_DOCUMENT ? self->body.document_id : NULL;
}

const char *
handler_command_deferral_id (const handler_command_t *self)
{
    return self->kind == HANDLER_CMD_RESOLVE ? self->body.deferral_id : NULL;
}

int
handler_command_decide (const handler_command_t *self, const case_t *state, const rules_t *rules,
                        const char *now, case_events_t **events_p, handler_error_t *err)
{
    return handler_command_decide_with (self, state, rules, NULL, now, events_p, err);
}

int
handler_command_decide_with (const handler_command_t *self, const case_t *state, const rules_t *rules,
                             const rules_source_t *source, const char *now, case_events_t **events_p,
                             handler_error_t *err)
{
    case_context_t ctx = { .command_id = self->id, .now = now, .rules = rules, .source = source };
    case_error_t cerr;
    int rc;
    const char *reason = self->body.reason [0] ? self->body.reason : NULL;
    switch (self->kind) {
        case HANDLER_CMD_CREATE:
            rc = case_decide_create (self->record, self->case_id, &ctx, events_p, &cerr);
            break;
        case HANDLER_CMD_DOCUMENT:
            rc = case_decide_document_status (state, self->body.document_id, self->body.status, reason,
                                              &ctx, events_p, &cerr);
            break;
        case HANDLER_CMD_DECIDE:
            rc = case_decide_decision (state, self->body.decision, reason, &ctx, events_p, &cerr);
            break;
        case HANDLER_CMD_RESOLVE:
            rc = case_decide_resolve (state, self->body.deferral_id, &ctx, events_p, &cerr);
            break;
        default:
            rc = case_decide_close (state, reason, &ctx, events_p, &cerr);
            break;
    }
    if (rc)
        s_copy_error (err, &cerr);
    return rc;
}

char *
handler_command_result (const handler_command_t *self, const case_t *after, size_t events,
                        int64_t position, int duplicate)
{
    const char *status = case_state_name (case_get_status (after));
    const char *document_id = NULL, *document_status = NULL;
    if (self->kind == HANDLER_CMD_DOCUMENT) {
        document_id = self->body.document_id;
        const case_document_t *doc = case_document_find (after, document_id);
        document_status = doc ? document_state_name (doc->status) : "";
    }
    return handler_reply_ok (self->case_id, status ? status : "", events, position, duplicate,
                             document_id, document_status);
}

int
handler_command_append_body (const handler_command_t *self, int64_t expected_version,
                             const case_events_t *events, const char *result, char **body, size_t *size)
{
    *body = NULL;
    *size = 0;
    size_t count = case_events_count (events);
    if (count == 0 || count > STORE_APPEND_MAX_EVENTS)
        return -1;
    store_append_t req;
    memset (&req, 0, sizeof req);
    s_copy (req.stream, sizeof req.stream, self->case_id);
    req.expected_version = expected_version;
    s_copy (req.command_id, sizeof req.command_id, self->id);
    s_copy (req.fingerprint, sizeof req.fingerprint, self->fingerprint);
    req.result = result;
    req.result_size = result ? strlen (result) : 0;
    req.events = calloc (count, sizeof (store_new_event_t));
    if (!req.events)
        return -1;
    req.count = count;
    for (size_t i = 0; i < count; i++) {
        const case_event_t *e = case_events_at (events, i);
        s_copy (req.events [i].id, sizeof req.events [i].id, e->id);
        s_copy (req.events [i].type, sizeof req.events [i].type, e->type);
        req.events [i].data = e->data;
        req.events [i].data_size = e->size;
    }
    int rc = store_append_encode (&req, body, size);
    free (req.events);
    return rc;
}
