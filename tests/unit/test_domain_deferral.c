/* test_domain_deferral — the Case aggregate with rules from a source (the configuration
 * service, through a fake here): notification rules that cannot be had defer the
 * decision (NotificationDecisionDeferred, never a silent skip), document rules fall
 * back to the local file and say so, and case_decide_resolve makes a deferred decision
 * once with the rules of that time (NotificationRequired with provenance, then
 * NotificationDecisionResolved); a second resolution is refused, one without rules is
 * 503. Folding the events gives the state the decisions worked on. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case.h"
#include "case_command.h"
#include "ids.h"
#include "test_domain_fixtures.h"

/* ---- a fake rules source: answers from rules_t objects, or "not now" */

typedef struct {
    rules_t *notifications [8];     /* per trigger, by index in s_triggers; NULL = unavailable */
    rules_t *documents;             /* NULL = unavailable */
    int lookups;
    char last_country [8];
    char last_traitement [8];
} s_fake_t;

static const char *s_triggers [] = {
    "CASE_CREATED", "DOCUMENT_REJECTED", "ALL_DOCUMENTS_RECEIVED", "CASE_APPROVED", "CASE_REJECTED"
};

static int
s_trigger_index (const char *trigger)
{
    for (int i = 0; i < 5; i++)
        if (strcmp (trigger, s_triggers [i]) == 0)
            return i;
    return -1;
}

static int
s_fake_notifications (void *arg, const char *trigger, const rules_context_t *context, rules_notification_set_t *set)
{
    s_fake_t *fake = arg;
    fake->lookups++;
    snprintf (fake->last_country, sizeof fake->last_country, "%s", context->country);
    snprintf (fake->last_traitement, sizeof fake->last_traitement, "%s", context->traitement_type);
    int i = s_trigger_index (trigger);
    if (i < 0 || !fake->notifications [i])
        return -1;
    rules_notification_set (fake->notifications [i], set);
    return 0;
}

static int
s_fake_documents (void *arg, const rules_context_t *context, rules_document_set_t *set)
{
    s_fake_t *fake = arg;
    (void) context;
    if (!fake->documents)
        return -1;
    rules_document_set (fake->documents, set);
    return 0;
}

static rules_t *
s_answer (const char *json, const char *trigger)
{
    char error [256];
    rules_t *rules = rules_parse_answer (json, strlen (json), trigger, error, sizeof error);
    if (!rules)
        fail_msg ("answer refused: %s", error);
    return rules;
}

/* ---- the world */

typedef struct {
    rules_t *local;
    s_fake_t fake;
    rules_source_t source;
    case_t *state;
    int commands;
    char command_id [64];
    case_context_t ctx;
    char case_id [IDS_UUID_LEN];
} s_world_t;

static int
s_setup (void **state)
{
    s_world_t *w = calloc (1, sizeof (s_world_t));
    w->local = rules_parse (fixture_rules, strlen (fixture_rules), NULL, 0);
    assert_non_null (w->local);
    w->state = case_new ();
    w->source = (rules_source_t) { s_fake_notifications, s_fake_documents, &w->fake };
    ids_uuid5 ("deferral-case", w->case_id);
    *state = w;
    return 0;
}

static int
s_teardown (void **state)
{
    s_world_t *w = *state;
    for (int i = 0; i < 8; i++)
        rules_destroy (&w->fake.notifications [i]);
    rules_destroy (&w->fake.documents);
    rules_destroy (&w->local);
    case_destroy (&w->state);
    free (w);
    return 0;
}

static const case_context_t *
s_ctx (s_world_t *w)
{
    snprintf (w->command_id, sizeof w->command_id, "cmd-%d", ++w->commands);
    w->ctx = (case_context_t) { .command_id = w->command_id, .now = FIXTURE_NOW, .rules = w->local,
                                .source = &w->source };
    return &w->ctx;
}

static void
s_types (const case_events_t *events, char *out, size_t size)
{
    out [0] = 0;
    for (size_t i = 0; i < case_events_count (events); i++) {
        if (i)
            strncat (out, ",", size - strlen (out) - 1);
        strncat (out, case_events_at (events, i)->type, size - strlen (out) - 1);
    }
}

static void
s_expect_types (const case_events_t *events, const char *expected)
{
    char types [2048];
    s_types (events, types, sizeof types);
    assert_string_equal (types, expected);
}

static json_t *
s_data (const case_events_t *events, size_t index)
{
    const case_event_t *event = case_events_at (events, index);
    assert_non_null (event);
    json_t *data = json_loadb (event->data, event->size, 0, NULL);
    assert_non_null (data);
    return data;
}

static const char *
s_str (json_t *obj, const char *key)
{
    return json_string_value (json_object_get (obj, key));
}

/* Folds events into the world (what follows a successful append), checking that the
 * fold gives the state the decision itself ended in. */
static void
s_commit (s_world_t *w, case_events_t **events_p)
{
    for (size_t i = 0; i < case_events_count (*events_p); i++) {
        const case_event_t *e = case_events_at (*events_p, i);
        assert_int_equal (case_apply (w->state, e->type, e->data, e->size), 0);
    }
    const case_t *after = case_events_after (*events_p);
    assert_int_equal (case_get_version (w->state), case_get_version (after));
    assert_int_equal (case_deferral_count (w->state), case_deferral_count (after));
    assert_int_equal (case_deferrals_pending (w->state), case_deferrals_pending (after));
    assert_int_equal (case_notification_count (w->state), case_notification_count (after));
    assert_string_equal (case_get_country (w->state), case_get_country (after));
    case_events_destroy (events_p);
}

static void
s_create (s_world_t *w, const char *text, case_events_t **events_p)
{
    record_t *record = NULL;
    record_error_t rerr;
    assert_int_equal (record_parse (text, strlen (text), FIXTURE_TODAY, &record, &rerr), 0);
    case_error_t err;
    int rc = case_decide_create (record, w->case_id, s_ctx (w), events_p, &err);
    record_destroy (&record);
    if (rc)
        fail_msg ("create refused: %d %s %s", err.status, err.error, err.detail);
}

static const char s_created_v9 [] =
    "{\"version\": \"svc-9\", \"rules\": ["
    " {\"rule_id\": \"R-MAIL\", \"is_active\": true, \"notification_type\": \"EMAIL\","
    "  \"template_id\": \"opened\", \"language_code\": \"fr\"},"
    " {\"rule_id\": \"R-OFF\", \"is_active\": false, \"notification_type\": \"SMS\","
    "  \"template_id\": \"opened_sms\", \"language_code\": \"fr\"}]}";

/* ---- tests */

static void
test_unavailable_rules_defer_the_decision (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    s_create (w, fixture_kyc, &events);
    /* documents from the local file (the service had none), the decision deferred */
    s_expect_types (events, "CaseCreated,PersonLinked,DocumentRequirementDetermined,DocumentRequirementDetermined,"
                            "CaseStatusChanged,NotificationDecisionDeferred");
    json_t *doc = s_data (events, 2);
    assert_string_equal (s_str (doc, "rules_origin"), "rules_file");
    assert_string_equal (s_str (doc, "rules_version"), "2026-11-22.1");
    json_decref (doc);
    json_t *d = s_data (events, 5);
    assert_string_equal (s_str (d, "trigger"), "CASE_CREATED");
    assert_string_equal (s_str (d, "case_id"), w->case_id);
    assert_string_equal (s_str (d, "reason"), "notification rules unavailable");
    assert_string_equal (s_str (d, "deferred_at"), FIXTURE_NOW);
    json_t *context = json_object_get (d, "context_data");
    assert_string_equal (s_str (context, "case_id"), w->case_id);
    assert_int_equal (json_array_size (json_object_get (context, "required_documents")), 2);
    /* the deferral id is derived: the same command gives the same id */
    char expected [IDS_UUID_LEN];
    char prefix [128];
    snprintf (prefix, sizeof prefix, "%s/deferral", w->case_id);
    ids_uuid5_indexed (prefix, 0, expected);
    assert_string_equal (s_str (d, "deferral_id"), expected);
    json_decref (d);
    /* the lookup was made with the case's context: KYC, the applicant's country */
    assert_string_equal (w->fake.last_traitement, "KYC");
    assert_string_equal (w->fake.last_country, "FR");
    s_commit (w, &events);
    assert_int_equal (case_deferrals_pending (w->state), 1);
    assert_int_equal (case_notification_count (w->state), 0);
    assert_string_equal (case_deferral_at (w->state, 0)->trigger, "CASE_CREATED");
}

static void
test_service_rules_are_used_with_their_version (void **state)
{
    s_world_t *w = *state;
    w->fake.notifications [0] = s_answer (s_created_v9, "CASE_CREATED");
    w->fake.documents = s_answer ("{\"version\": \"docs-3\", \"rules\": ["
        "{\"rule_id\": \"D-ID\", \"subject\": \"person\", \"document_type\": \"IDENTITY_DOCUMENT\"},"
        "{\"rule_id\": \"D-OFF\", \"subject\": \"person\", \"document_type\": \"PAYSLIP\", \"is_active\": false}]}", NULL);
    case_events_t *events = NULL;
    s_create (w, fixture_kyc, &events);
    s_expect_types (events, "CaseCreated,PersonLinked,DocumentRequirementDetermined,CaseStatusChanged,NotificationRequired");
    json_t *doc = s_data (events, 2);
    assert_string_equal (s_str (doc, "rule_id"), "D-ID");
    assert_string_equal (s_str (doc, "rules_version"), "docs-3");
    assert_string_equal (s_str (doc, "rules_origin"), "config_service");
    json_decref (doc);
    json_t *n = s_data (events, 4);
    assert_string_equal (s_str (n, "rule_id"), "R-MAIL");           /* the inactive one never fires */
    assert_string_equal (s_str (n, "rules_version"), "svc-9");
    assert_string_equal (s_str (n, "template_id"), "opened");
    assert_string_equal (s_str (n, "language_code"), "fr");
    assert_null (json_object_get (n, "deferral_id"));
    json_t *recipient = json_object_get (n, "recipient_details");
    assert_non_null (s_str (recipient, "person_id"));
    assert_null (json_object_get (recipient, "email"));
    json_decref (n);
    s_commit (w, &events);
}

static void
test_kyb_context_country_and_client_name (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    /* the embedded default: no source; KYB context_data names the company */
    record_t *record = NULL;
    record_error_t rerr;
    assert_int_equal (record_parse (fixture_kyb, strlen (fixture_kyb), FIXTURE_TODAY, &record, &rerr), 0);
    case_context_t ctx = { .command_id = "cmd-kyb", .now = FIXTURE_NOW, .rules = w->local };
    case_error_t err;
    assert_int_equal (case_decide_create (record, w->case_id, &ctx, &events, &err), 0);
    json_t *n = s_data (events, case_events_count (events) - 1);
    assert_string_equal (s_str (n, "trigger"), "CASE_CREATED");
    assert_string_equal (s_str (json_object_get (n, "context_data"), "client_name"), "Nordlicht Logistik GmbH");
    json_decref (n);
    /* without a source, requirements say nothing about origins: events as they always were */
    json_t *doc = s_data (events, 7);
    assert_null (json_object_get (doc, "rules_origin"));
    json_decref (doc);
    assert_string_equal (case_get_country (case_events_after (events)), "DE");
    case_events_destroy (&events);
    /* with a source, the lookups use the country of incorporation */
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &events, &err), 0);
    assert_string_equal (w->fake.last_country, "DE");
    assert_string_equal (w->fake.last_traitement, "KYB");
    record_destroy (&record);
    case_events_destroy (&events);
}

static void
test_resolve_once (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    case_error_t err;
    s_create (w, fixture_kyc, &events);
    s_commit (w, &events);
    const char *deferral = case_deferral_at (w->state, 0)->id;
    char deferral_id [CASE_ID_MAX];
    snprintf (deferral_id, sizeof deferral_id, "%s", deferral);

    /* rules still unavailable: 503, nothing to append */
    assert_int_equal (case_decide_resolve (w->state, deferral_id, s_ctx (w), &events, &err), -2);
    assert_null (events);
    assert_int_equal (err.status, 503);
    assert_string_equal (err.error, "unavailable");

    /* rules back: the decision is made with the rules of now */
    w->fake.notifications [0] = s_answer (s_created_v9, "CASE_CREATED");
    assert_int_equal (case_decide_resolve (w->state, deferral_id, s_ctx (w), &events, &err), 0);
    s_expect_types (events, "NotificationRequired,NotificationDecisionResolved");
    json_t *n = s_data (events, 0);
    assert_string_equal (s_str (n, "rule_id"), "R-MAIL");
    assert_string_equal (s_str (n, "rules_version"), "svc-9");
    assert_string_equal (s_str (n, "deferral_id"), deferral_id);
    assert_string_equal (s_str (n, "trigger"), "CASE_CREATED");
    /* the context of the moment the decision was due */
    assert_int_equal (json_array_size (json_object_get (json_object_get (n, "context_data"), "required_documents")), 2);
    json_t *r = s_data (events, 1);
    assert_string_equal (s_str (r, "deferral_id"), deferral_id);
    assert_string_equal (s_str (r, "rules_version"), "svc-9");
    assert_int_equal (json_array_size (json_object_get (r, "notification_ids")), 1);
    assert_string_equal (json_string_value (json_array_get (json_object_get (r, "notification_ids"), 0)),
                         s_str (n, "notification_id"));
    json_decref (n);
    json_decref (r);
    s_commit (w, &events);
    assert_int_equal (case_deferrals_pending (w->state), 0);
    assert_true (case_deferral_find (w->state, deferral_id)->resolved);

    /* made once: a second resolution is refused, whatever its command id */
    assert_int_equal (case_decide_resolve (w->state, deferral_id, s_ctx (w), &events, &err), -2);
    assert_null (events);
    assert_int_equal (err.status, 409);
    assert_string_equal (err.error, "conflict.state");
    /* unknown deferral, unknown case */
    assert_int_equal (case_decide_resolve (w->state, "nope", s_ctx (w), &events, &err), -2);
    assert_int_equal (err.status, 404);
    case_t *empty = case_new ();
    assert_int_equal (case_decide_resolve (empty, deferral_id, s_ctx (w), &events, &err), -2);
    assert_int_equal (err.status, 404);
    case_destroy (&empty);
}

static void
test_resolve_with_no_matching_rule_is_still_a_decision (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    case_error_t err;
    s_create (w, fixture_kyc, &events);
    s_commit (w, &events);
    char deferral_id [CASE_ID_MAX];
    snprintf (deferral_id, sizeof deferral_id, "%s", case_deferral_at (w->state, 0)->id);
    /* the rules now say: nobody (every rule inactive) */
    w->fake.notifications [0] = s_answer ("{\"version\": \"svc-10\", \"rules\": [{\"rule_id\": \"R\", "
        "\"is_active\": false, \"notification_type\": \"EMAIL\", \"template_id\": \"t\", \"language_code\": \"en\"}]}",
        "CASE_CREATED");
    assert_int_equal (case_decide_resolve (w->state, deferral_id, s_ctx (w), &events, &err), 0);
    s_expect_types (events, "NotificationDecisionResolved");
    json_t *r = s_data (events, 0);
    assert_int_equal (json_array_size (json_object_get (r, "notification_ids")), 0);
    assert_string_equal (s_str (r, "rules_version"), "svc-10");
    json_decref (r);
    s_commit (w, &events);
    assert_int_equal (case_deferrals_pending (w->state), 0);
}

static void
test_later_triggers_defer_too (void **state)
{
    s_world_t *w = *state;
    w->fake.notifications [0] = s_answer (s_created_v9, "CASE_CREATED");
    case_events_t *events = NULL;
    case_error_t err;
    s_create (w, fixture_kyc, &events);
    s_commit (w, &events);
    /* upload both documents: ALL_DOCUMENTS_RECEIVED has no rules now: deferred */
    for (size_t i = 0; i < 2; i++) {
        const case_document_t *doc = case_document_at (w->state, i);
        assert_int_equal (case_decide_document_status (w->state, doc->id, "UPLOADED", NULL, s_ctx (w), &events, &err), 0);
        if (i == 1)
            s_expect_types (events, "DocumentStatusChanged,CaseStatusChanged,NotificationDecisionDeferred");
        s_commit (w, &events);
    }
    /* reject one: DOCUMENT_REJECTED deferred as well, with its own id */
    const case_document_t *doc = case_document_at (w->state, 0);
    assert_int_equal (case_decide_document_status (w->state, doc->id, "REJECTED", "blurred", s_ctx (w), &events, &err), 0);
    s_expect_types (events, "DocumentStatusChanged,DocumentStatusChanged,CaseStatusChanged,NotificationDecisionDeferred");
    json_t *d = s_data (events, 3);
    assert_string_equal (s_str (d, "trigger"), "DOCUMENT_REJECTED");
    assert_string_equal (s_str (json_object_get (d, "context_data"), "reason"), "blurred");
    json_decref (d);
    s_commit (w, &events);
    assert_int_equal (case_deferrals_pending (w->state), 2);
    assert_string_not_equal (case_deferral_at (w->state, 0)->id, case_deferral_at (w->state, 1)->id);
    /* a copy carries its deferrals with it */
    case_t *copy = case_dup (w->state);
    assert_non_null (copy);
    assert_int_equal (case_deferrals_pending (copy), 2);
    case_destroy (&copy);
}

static void
test_resolved_event_for_an_unknown_deferral_is_malformed (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    s_create (w, fixture_kyc, &events);
    s_commit (w, &events);
    const char *bad = "{\"deferral_id\": \"missing\"}";
    assert_int_equal (case_apply (w->state, "NotificationDecisionResolved", bad, strlen (bad)), -2);
    assert_int_equal (case_apply (w->state, "NotificationDecisionDeferred", "{}", 2), -2);
    assert_int_equal (case_apply (w->state, "NotificationDecisionDeferred", "[1", 2), -2);
    /* a second Deferred with the same id is not a new deferral */
    char dup [256];
    snprintf (dup, sizeof dup, "{\"deferral_id\": \"%s\", \"trigger\": \"CASE_CREATED\"}",
              case_deferral_at (w->state, 0)->id);
    assert_int_equal (case_apply (w->state, "NotificationDecisionDeferred", dup, strlen (dup)), -2);
    assert_int_equal (case_deferral_count (w->state), 1);
}

static void
test_resolve_command_body (void **state)
{
    (void) state;
    case_command_t cmd;
    case_error_t err;
    const char *ok = "{\"deferral_id\": \"abc\"}";
    assert_int_equal (case_command_parse_resolve (ok, strlen (ok), &cmd, &err), 0);
    assert_string_equal (cmd.deferral_id, "abc");
    assert_int_equal (case_command_parse_resolve ("{}", 2, &cmd, &err), -2);
    assert_int_equal (err.status, 422);
    assert_int_equal (case_command_parse_resolve ("", 0, &cmd, &err), -2);
    assert_int_equal (case_command_parse_resolve ("{\"deferral_id\": 5}", 18, &cmd, &err), -2);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_unavailable_rules_defer_the_decision, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_service_rules_are_used_with_their_version, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_kyb_context_country_and_client_name, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_resolve_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_resolve_with_no_matching_rule_is_still_a_decision, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_later_triggers_defer_too, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_resolved_event_for_an_unknown_deferral_is_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_resolve_command_body, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
