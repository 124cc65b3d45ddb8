/* test_domain_case — the Case aggregate: create (KYC, KYB) with the exact events and
 * payloads, the document cycle (upload all → IN_REVIEW, reject → re-upload), decisions
 * and closing, each refusal with its HTTP status and class, deterministic ids, and
 * fold(events) giving the state the decisions worked on. Also the command bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case.h"
#include "case_command.h"
#include "ids.h"
#include "test_domain_fixtures.h"

/* ---- helpers */

typedef struct {
    rules_t *rules;
    case_t *state;          /* folded from every event appended so far */
    int commands;
    char command_id [64];
    case_context_t ctx;
    char case_id [IDS_UUID_LEN];
} s_world_t;

static int
s_setup (void **state)
{
    s_world_t *w = calloc (1, sizeof (s_world_t));
    w->rules = rules_parse (fixture_rules, strlen (fixture_rules), NULL, 0);
    w->state = case_new ();
    assert_non_null (w->rules);
    ids_uuid5 ("test-case", w->case_id);
    *state = w;
    return 0;
}

static int
s_teardown (void **state)
{
    s_world_t *w = *state;
    rules_destroy (&w->rules);
    case_destroy (&w->state);
    free (w);
    return 0;
}

/* A fresh context for the next command. */
static const case_context_t *
s_ctx (s_world_t *w)
{
    snprintf (w->command_id, sizeof w->command_id, "cmd-%d", ++w->commands);
    w->ctx.command_id = w->command_id;
    w->ctx.now = FIXTURE_NOW;
    w->ctx.rules = w->rules;
    return &w->ctx;
}

static record_t *
s_record (const char *text)
{
    record_t *record = NULL;
    record_error_t err;
    if (record_parse (text, strlen (text), FIXTURE_TODAY, &record, &err))
        fail_msg ("record refused: %s %s", err.error, err.detail);
    return record;
}

/* "A,B,B" for the event types of events. */
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
s_str (json_t *obj, const char *path)
{
    char buf [128];
    snprintf (buf, sizeof buf, "%s", path);
    char *save = NULL;
    json_t *node = obj;
    for (char *part = strtok_r (buf, ".", &save); part && node; part = strtok_r (NULL, ".", &save))
        node = json_object_get (node, part);
    return json_string_value (node);
}

static void
s_fold (case_t *state, const case_events_t *events)
{
    for (size_t i = 0; i < case_events_count (events); i++) {
        const case_event_t *e = case_events_at (events, i);
        assert_int_equal (case_apply (state, e->type, e->data, e->size), 0);
    }
}

/* Two states are the same as far as any decision can tell. */
static void
s_expect_same (const case_t *a, const case_t *b)
{
    assert_string_equal (case_get_id (a), case_get_id (b));
    assert_string_equal (case_get_client_id (a), case_get_client_id (b));
    assert_string_equal (case_get_traitement_type (a), case_get_traitement_type (b));
    assert_string_equal (case_get_case_type (a), case_get_case_type (b));
    assert_string_equal (case_get_company_id (a), case_get_company_id (b));
    assert_int_equal (case_get_status (a), case_get_status (b));
    assert_int_equal (case_get_version (a), case_get_version (b));
    assert_int_equal (case_person_count (a), case_person_count (b));
    assert_int_equal (case_owner_count (a), case_owner_count (b));
    assert_int_equal (case_notification_count (a), case_notification_count (b));
    assert_int_equal (case_document_count (a), case_document_count (b));
    for (size_t i = 0; i < case_document_count (a); i++)
        assert_memory_equal (case_document_at (a, i), case_document_at (b, i), sizeof (case_document_t));
}

/* Appends events to the world's state (what the handler does after the store said yes). */
static void
s_commit (s_world_t *w, case_events_t **events_p)
{
    s_fold (w->state, *events_p);
    case_events_destroy (events_p);
}

static void
s_create (s_world_t *w, const char *text)
{
    record_t *record = s_record (text);
    case_events_t *events = NULL;
    case_error_t err;
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &events, &err), 0);
    record_destroy (&record);
    s_commit (w, &events);
}

static void
s_set_document (s_world_t *w, size_t index, const char *status, const char *expected_types)
{
    case_events_t *events = NULL;
    case_error_t err;
    const case_document_t *doc = case_document_at (w->state, index);
    assert_non_null (doc);
    int rc = case_decide_document_status (w->state, doc->id, status, "because", s_ctx (w), &events, &err);
    if (rc)
        fail_msg ("document %zu → %s refused: %d %s %s", index, status, err.status, err.error, err.detail);
    if (expected_types)
        s_expect_types (events, expected_types);
    s_commit (w, &events);
}

static void
s_expect_refused (int rc, const case_events_t *events, const case_error_t *err, int status, const char *error)
{
    assert_int_equal (rc, -2);
    assert_null (events);
    assert_int_equal (err->status, status);
    assert_string_equal (err->error, error);
    assert_true (strlen (err->detail) > 0);
}

/* ---- create */

static void
test_create_kyc (void **state)
{
    s_world_t *w = *state;
    record_t *record = s_record (fixture_kyc);
    case_events_t *events = NULL;
    case_error_t err;
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &events, &err), 0);
    s_expect_types (events, "CaseCreated,PersonLinked,DocumentRequirementDetermined,DocumentRequirementDetermined,"
                            "CaseStatusChanged,NotificationRequired");
    /* event ids: UUIDv5 of "<command id>/<index>" */
    for (size_t i = 0; i < case_events_count (events); i++) {
        char id [IDS_UUID_LEN];
        ids_uuid5_indexed ("cmd-1", (int) i, id);
        assert_string_equal (case_events_at (events, i)->id, id);
    }
    json_t *d = s_data (events, 0);
    assert_string_equal (s_str (d, "case_id"), w->case_id);
    assert_string_equal (s_str (d, "client_id"), "CLI-2026-000101");
    assert_string_equal (s_str (d, "traitement_type"), "KYC");
    assert_string_equal (s_str (d, "case_type"), "STANDARD");
    assert_string_equal (s_str (d, "status"), "OPEN");
    assert_string_equal (s_str (d, "created_at"), FIXTURE_NOW);
    assert_int_equal (json_integer_value (json_object_get (d, "case_version")), 1);
    json_decref (d);

    d = s_data (events, 1);
    char person_id [IDS_UUID_LEN];
    char prefix [128];
    snprintf (prefix, sizeof prefix, "%s/person", w->case_id);
    ids_uuid5_indexed (prefix, 0, person_id);
    assert_string_equal (s_str (d, "person_id"), person_id);
    assert_true (json_is_null (json_object_get (d, "company_id")));
    assert_string_equal (s_str (d, "role"), "APPLICANT");
    assert_string_equal (s_str (d, "person.firstname"), "Camille");
    assert_string_equal (s_str (d, "person.birthdate"), "1988-04-17");
    assert_string_equal (s_str (d, "person.email"), "camille.durand@example.fr");
    assert_string_equal (s_str (d, "person.address.city"), "Lyon");
    /* personal data only inside "person" */
    assert_null (json_object_get (d, "firstname"));
    json_decref (d);

    d = s_data (events, 2);
    assert_string_equal (s_str (d, "document_type"), "IDENTITY_DOCUMENT");
    assert_string_equal (s_str (d, "subject_type"), "person");
    assert_string_equal (s_str (d, "subject_id"), person_id);
    assert_string_equal (s_str (d, "rule_id"), "DOC-KYC-ID");
    assert_string_equal (s_str (d, "status"), "AWAITING_UPLOAD");
    json_decref (d);
    d = s_data (events, 3);
    assert_string_equal (s_str (d, "document_type"), "PROOF_OF_ADDRESS");
    json_decref (d);

    d = s_data (events, 4);
    assert_string_equal (s_str (d, "from"), "OPEN");
    assert_string_equal (s_str (d, "to"), "AWAITING_DOCUMENTS");
    assert_string_equal (s_str (d, "changed_at"), FIXTURE_NOW);
    assert_non_null (s_str (d, "reason"));
    json_decref (d);

    d = s_data (events, 5);
    assert_string_equal (s_str (d, "trigger"), "CASE_CREATED");
    assert_string_equal (s_str (d, "rule_id"), "NTF-KYC-CREATED");
    assert_string_equal (s_str (d, "rules_version"), "2026-11-22.1");
    assert_string_equal (s_str (d, "notification_type"), "EMAIL");
    assert_string_equal (s_str (d, "template_id"), "kyc_case_opened");
    assert_string_equal (s_str (d, "language_code"), "en");
    assert_true (ids_is_uuid (s_str (d, "notification_id")));
    assert_string_equal (s_str (d, "recipient_details.case_id"), w->case_id);
    assert_string_equal (s_str (d, "recipient_details.client_id"), "CLI-2026-000101");
    assert_string_equal (s_str (d, "recipient_details.person_id"), person_id);
    assert_int_equal (json_object_size (json_object_get (d, "recipient_details")), 3);   /* ids only */
    assert_string_equal (s_str (d, "context_data.case_id"), w->case_id);
    assert_string_equal (s_str (d, "context_data.traitement_type"), "KYC");
    json_t *required = json_object_get (json_object_get (d, "context_data"), "required_documents");
    assert_int_equal (json_array_size (required), 2);
    assert_string_equal (json_string_value (json_array_get (required, 0)), "IDENTITY_DOCUMENT");
    assert_string_equal (json_string_value (json_array_get (required, 1)), "PROOF_OF_ADDRESS");
    char *flat = json_dumps (d, 0);
    assert_null (strstr (flat, "Camille"));
    assert_null (strstr (flat, "camille.durand"));
    free (flat);
    json_decref (d);

    /* the same command decided again gives byte-identical events */
    case_events_t *again = NULL;
    w->commands = 0;
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &again, &err), 0);
    assert_int_equal (case_events_count (again), case_events_count (events));
    for (size_t i = 0; i < case_events_count (events); i++) {
        assert_string_equal (case_events_at (again, i)->id, case_events_at (events, i)->id);
        assert_string_equal (case_events_at (again, i)->data, case_events_at (events, i)->data);
    }
    case_events_destroy (&again);

    /* fold */
    case_t *folded = case_new ();
    assert_false (case_exists (folded));
    assert_int_equal (case_get_status (folded), CASE_STATE_INVALID);
    s_fold (folded, events);
    assert_true (case_exists (folded));
    assert_string_equal (case_get_id (folded), w->case_id);
    assert_int_equal (case_get_status (folded), CASE_STATE_AWAITING_DOCUMENTS);
    assert_int_equal (case_get_version (folded), 6);
    assert_int_equal (case_person_count (folded), 1);
    assert_int_equal (case_document_count (folded), 2);
    assert_int_equal (case_documents_in_state (folded, DOCUMENT_STATE_AWAITING_UPLOAD), 2);
    assert_int_equal (case_notification_count (folded), 1);
    assert_string_equal (case_get_company_id (folded), "");
    assert_string_equal (case_document_at (folded, 1)->document_type, "PROOF_OF_ADDRESS");
    assert_string_equal (case_document_at (folded, 1)->rule_id, "DOC-KYC-POA");
    case_destroy (&folded);
    case_destroy (&folded);
    case_events_destroy (&events);
    case_events_destroy (&events);
    record_destroy (&record);
}

static void
test_create_kyb (void **state)
{
    s_world_t *w = *state;
    record_t *record = s_record (fixture_kyb);
    case_events_t *events = NULL;
    case_error_t err;
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &events, &err), 0);
    s_expect_types (events, "CaseCreated,CompanyProfileCreated,PersonLinked,PersonLinked,"
                            "BeneficialOwnerAdded,BeneficialOwnerAdded,BeneficialOwnerAdded,"
                            "DocumentRequirementDetermined,DocumentRequirementDetermined,DocumentRequirementDetermined,"
                            "DocumentRequirementDetermined,DocumentRequirementDetermined,"
                            "CaseStatusChanged,NotificationRequired");
    json_t *d = s_data (events, 1);
    const char *company_id = s_str (d, "company_id");
    assert_true (ids_is_uuid (company_id));
    assert_string_equal (s_str (d, "registered_name"), "Nordlicht Logistik GmbH");
    assert_string_equal (s_str (d, "trading_name"), "Nordlicht");
    assert_string_equal (s_str (d, "registration_number"), "HRB 123456");
    assert_string_equal (s_str (d, "registration_date"), "2011-09-01");
    assert_string_equal (s_str (d, "country_of_incorporation"), "DE");
    assert_string_equal (s_str (d, "registered_address.postal_code"), "20457");
    assert_string_equal (s_str (d, "business_type"), "LIMITED_COMPANY");
    assert_string_equal (s_str (d, "industry_sector"), "Freight transport and logistics");
    char company [IDS_UUID_LEN];
    snprintf (company, sizeof company, "%s", company_id);
    json_decref (d);

    for (size_t i = 2; i <= 3; i++) {
        d = s_data (events, i);
        assert_string_equal (s_str (d, "company_id"), company);
        assert_null (json_object_get (json_object_get (d, "person"), "phone"));   /* absent stays absent */
        json_decref (d);
    }
    d = s_data (events, 4);
    assert_string_equal (s_str (d, "company_id"), company);
    assert_true (ids_is_uuid (s_str (d, "beneficial_owner_id")));
    assert_true (ids_is_uuid (s_str (d, "person_id")));
    assert_true (json_is_integer (json_object_get (d, "ownership_percentage")));
    assert_int_equal (json_integer_value (json_object_get (d, "ownership_percentage")), 60);
    assert_int_equal (json_array_size (json_object_get (d, "types_of_control")), 2);
    assert_true (json_is_true (json_object_get (d, "is_ubo")));
    assert_string_equal (s_str (d, "person.lastname"), "Becker");
    assert_string_equal (s_str (d, "person.nationality"), "DE");
    char owner0 [IDS_UUID_LEN];
    snprintf (owner0, sizeof owner0, "%s", s_str (d, "beneficial_owner_id"));
    json_decref (d);
    d = s_data (events, 6);
    assert_true (json_is_false (json_object_get (d, "is_ubo")));
    json_decref (d);

    /* documents: the company's three, then an ID for each of the two UBOs */
    const char *types [] = { "CERTIFICATE_OF_INCORPORATION", "ARTICLES_OF_ASSOCIATION", "UBO_REGISTER_EXTRACT",
                             "IDENTITY_DOCUMENT", "IDENTITY_DOCUMENT" };
    const char *subjects [] = { "company", "company", "company", "beneficial_owner", "beneficial_owner" };
    for (size_t i = 0; i < 5; i++) {
        d = s_data (events, 7 + i);
        assert_string_equal (s_str (d, "document_type"), types [i]);
        assert_string_equal (s_str (d, "subject_type"), subjects [i]);
        if (i < 3)
            assert_string_equal (s_str (d, "subject_id"), company);
        if (i == 3)
            assert_string_equal (s_str (d, "subject_id"), owner0);
        json_decref (d);
    }
    d = s_data (events, 13);
    assert_string_equal (s_str (d, "rule_id"), "NTF-KYB-CREATED");
    /* the first person of a KYB record is whom notifications are about */
    assert_non_null (s_str (d, "recipient_details.person_id"));
    json_t *required = json_object_get (json_object_get (d, "context_data"), "required_documents");
    assert_int_equal (json_array_size (required), 4);       /* distinct types */
    json_decref (d);

    case_t *folded = case_new ();
    s_fold (folded, events);
    assert_int_equal (case_get_status (folded), CASE_STATE_AWAITING_DOCUMENTS);
    assert_string_equal (case_get_company_id (folded), company);
    assert_int_equal (case_person_count (folded), 2);
    assert_int_equal (case_owner_count (folded), 3);
    assert_int_equal (case_document_count (folded), 5);
    assert_int_equal (case_get_version (folded), 14);
    case_destroy (&folded);
    case_events_destroy (&events);
    record_destroy (&record);

    /* an ENHANCED KYB case fires the enhanced rule instead */
    json_t *j = json_loads (fixture_kyb, 0, NULL);
    json_object_set_new (j, "case_type", json_string ("ENHANCED"));
    char *text = json_dumps (j, 0);
    json_decref (j);
    record = s_record (text);
    free (text);
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &events, &err), 0);
    d = s_data (events, case_events_count (events) - 1);
    assert_string_equal (s_str (d, "rule_id"), "NTF-KYB-ENHANCED");
    json_decref (d);
    case_events_destroy (&events);
    record_destroy (&record);
}

static void
test_create_without_rules (void **state)
{
    s_world_t *w = *state;
    record_t *record = s_record (fixture_kyc);
    case_events_t *events = NULL;
    case_error_t err;
    case_context_t ctx = { .command_id = "cmd-x", .now = FIXTURE_NOW, .rules = NULL };
    assert_int_equal (case_decide_create (record, w->case_id, &ctx, &events, &err), 0);
    s_expect_types (events, "CaseCreated,PersonLinked,CaseStatusChanged");
    json_t *d = s_data (events, 2);
    assert_string_equal (s_str (d, "to"), "IN_REVIEW");
    json_decref (d);
    case_t *folded = case_new ();
    s_fold (folded, events);
    assert_int_equal (case_get_status (folded), CASE_STATE_IN_REVIEW);
    /* nothing to verify: it can be approved at once */
    case_events_destroy (&events);
    assert_int_equal (case_decide_decision (folded, "approve", NULL, &ctx, &events, &err), 0);
    s_expect_types (events, "CaseStatusChanged");
    case_events_destroy (&events);
    case_destroy (&folded);

    /* a bad case id is the caller's bug, refused without a crash */
    assert_int_equal (case_decide_create (record, "", &ctx, &events, &err), -2);
    assert_int_equal (err.status, 400);
    assert_int_equal (case_decide_create (NULL, w->case_id, &ctx, &events, &err), -2);
    record_destroy (&record);
}

/* More requirements than one append can carry: refused, not truncated. */
static void
test_create_too_many_events (void **state)
{
    (void) state;
    char rules_text [8192] = "{\"version\": \"big\", \"notifications\": [], \"documents\": [";
    for (int i = 0; i < 25; i++) {
        char rule [128];
        snprintf (rule, sizeof rule, "%s{\"rule_id\": \"R%d\", \"subject\": \"person\", \"document_type\": \"D%d\"}",
                  i ? "," : "", i, i);
        strcat (rules_text, rule);
    }
    strcat (rules_text, "]}");
    rules_t *rules = rules_parse (rules_text, strlen (rules_text), NULL, 0);
    assert_non_null (rules);
    json_t *j = json_loads (fixture_kyc, 0, NULL);
    json_t *persons = json_object_get (j, "persons");
    for (int i = 1; i < RECORD_MAX_PERSONS; i++)
        json_array_append (persons, json_array_get (persons, 0));
    char *text = json_dumps (j, 0);
    json_decref (j);
    record_t *record = s_record (text);
    free (text);
    case_context_t ctx = { .command_id = "cmd-big", .now = FIXTURE_NOW, .rules = rules };
    case_events_t *events = NULL;
    case_error_t err;
    s_expect_refused (case_decide_create (record, "case-big", &ctx, &events, &err), events, &err,
                      422, "validation.record");
    record_destroy (&record);
    rules_destroy (&rules);
}

/* ---- the document cycle */

static void
test_upload_all_moves_to_review (void **state)
{
    s_world_t *w = *state;
    s_create (w, fixture_kyc);
    assert_int_equal (case_get_status (w->state), CASE_STATE_AWAITING_DOCUMENTS);
    s_set_document (w, 0, "UPLOADED", "DocumentStatusChanged");
    assert_int_equal (case_get_status (w->state), CASE_STATE_AWAITING_DOCUMENTS);
    /* verifying one while the other is awaited is fine */
    s_set_document (w, 0, "VERIFIED", "DocumentStatusChanged");
    s_set_document (w, 1, "UPLOADED", "DocumentStatusChanged,CaseStatusChanged,NotificationRequired");
    assert_int_equal (case_get_status (w->state), CASE_STATE_IN_REVIEW);
    assert_int_equal (case_document_at (w->state, 1)->status, DOCUMENT_STATE_UPLOADED);
    assert_int_equal (case_notification_count (w->state), 2);
}

static void
test_document_refusals (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    case_error_t err;
    /* no case yet */
    s_expect_refused (case_decide_document_status (w->state, "x", "UPLOADED", NULL, s_ctx (w), &events, &err),
                      events, &err, 404, "not_found");
    s_create (w, fixture_kyc);
    const char *doc = case_document_at (w->state, 0)->id;
    /* unknown document */
    s_expect_refused (case_decide_document_status (w->state, "00000000-0000-4000-8000-000000000000", "UPLOADED",
                                                   NULL, s_ctx (w), &events, &err), events, &err, 404, "not_found");
    s_expect_refused (case_decide_document_status (w->state, NULL, "UPLOADED", NULL, s_ctx (w), &events, &err),
                      events, &err, 404, "not_found");
    /* illegal transitions name both ends */
    s_expect_refused (case_decide_document_status (w->state, doc, "VERIFIED", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    assert_non_null (strstr (err.detail, "AWAITING_UPLOAD"));
    assert_non_null (strstr (err.detail, "VERIFIED"));
    s_expect_refused (case_decide_document_status (w->state, doc, "REJECTED", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    /* statuses a client may not set */
    s_expect_refused (case_decide_document_status (w->state, doc, "AWAITING_UPLOAD", NULL, s_ctx (w), &events, &err),
                      events, &err, 422, "validation.status");
    s_expect_refused (case_decide_document_status (w->state, doc, "LOST", NULL, s_ctx (w), &events, &err),
                      events, &err, 422, "validation.status");
    s_expect_refused (case_decide_document_status (w->state, doc, NULL, NULL, s_ctx (w), &events, &err),
                      events, &err, 422, "validation.status");
    /* the same upload twice: the second is an illegal UPLOADED → UPLOADED */
    s_set_document (w, 0, "UPLOADED", NULL);
    s_expect_refused (case_decide_document_status (w->state, doc, "UPLOADED", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    /* once verified, final */
    s_set_document (w, 0, "VERIFIED", NULL);
    s_expect_refused (case_decide_document_status (w->state, doc, "REJECTED", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    /* after a decision, documents are frozen */
    assert_int_equal (case_decide_decision (w->state, "REJECT", "fraud", s_ctx (w), &events, &err), 0);
    s_commit (w, &events);
    s_expect_refused (case_decide_document_status (w->state, case_document_at (w->state, 1)->id, "UPLOADED", NULL,
                                                   s_ctx (w), &events, &err), events, &err, 409, "conflict.state");
    assert_non_null (strstr (err.detail, "REJECTED"));
}

static void
test_reject_and_reupload (void **state)
{
    s_world_t *w = *state;
    s_create (w, fixture_kyc);
    s_set_document (w, 0, "UPLOADED", NULL);
    s_set_document (w, 1, "UPLOADED", NULL);
    assert_int_equal (case_get_status (w->state), CASE_STATE_IN_REVIEW);

    case_events_t *events = NULL;
    case_error_t err;
    const case_document_t *doc = case_document_at (w->state, 0);
    char doc_id [CASE_ID_MAX];
    snprintf (doc_id, sizeof doc_id, "%s", doc->id);
    assert_int_equal (case_decide_document_status (w->state, doc_id, "REJECTED", "blurred scan", s_ctx (w),
                                                   &events, &err), 0);
    s_expect_types (events, "DocumentStatusChanged,DocumentStatusChanged,CaseStatusChanged,NotificationRequired");
    json_t *d = s_data (events, 0);
    assert_string_equal (s_str (d, "from"), "UPLOADED");
    assert_string_equal (s_str (d, "to"), "REJECTED");
    assert_string_equal (s_str (d, "reason"), "blurred scan");
    json_decref (d);
    d = s_data (events, 1);
    assert_string_equal (s_str (d, "from"), "REJECTED");
    assert_string_equal (s_str (d, "to"), "AWAITING_UPLOAD");
    json_decref (d);
    d = s_data (events, 2);
    assert_string_equal (s_str (d, "from"), "IN_REVIEW");
    assert_string_equal (s_str (d, "to"), "AWAITING_DOCUMENTS");
    json_decref (d);
    d = s_data (events, 3);
    assert_string_equal (s_str (d, "trigger"), "DOCUMENT_REJECTED");
    assert_string_equal (s_str (d, "rule_id"), "NTF-DOC-REJECTED");
    assert_string_equal (s_str (d, "context_data.document_id"), doc_id);
    assert_string_equal (s_str (d, "context_data.document_type"), "IDENTITY_DOCUMENT");
    assert_string_equal (s_str (d, "context_data.reason"), "blurred scan");
    json_decref (d);

    /* decide's own view equals a replay of the same events */
    case_t *replayed = case_dup (w->state);
    s_fold (replayed, events);
    s_expect_same (case_events_after (events), replayed);
    s_commit (w, &events);
    s_expect_same (w->state, replayed);
    case_destroy (&replayed);

    assert_int_equal (case_get_status (w->state), CASE_STATE_AWAITING_DOCUMENTS);
    assert_int_equal (case_document_find (w->state, doc_id)->status, DOCUMENT_STATE_AWAITING_UPLOAD);
    /* upload again: back to review */
    s_set_document (w, 0, "UPLOADED", "DocumentStatusChanged,CaseStatusChanged,NotificationRequired");
    assert_int_equal (case_get_status (w->state), CASE_STATE_IN_REVIEW);
}

/* A rejection while the case still awaits documents leaves the case where it is. */
static void
test_reject_while_awaiting (void **state)
{
    s_world_t *w = *state;
    s_create (w, fixture_kyc);
    s_set_document (w, 0, "UPLOADED", NULL);
    s_set_document (w, 0, "REJECTED", "DocumentStatusChanged,DocumentStatusChanged,NotificationRequired");
    assert_int_equal (case_get_status (w->state), CASE_STATE_AWAITING_DOCUMENTS);
    assert_int_equal (case_documents_in_state (w->state, DOCUMENT_STATE_AWAITING_UPLOAD), 2);
}

/* ---- decisions and closing */

static void
test_approve_needs_review_and_verification (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    case_error_t err;
    s_expect_refused (case_decide_decision (w->state, "APPROVE", NULL, s_ctx (w), &events, &err),
                      events, &err, 404, "not_found");
    s_create (w, fixture_kyb);
    /* before review */
    s_expect_refused (case_decide_decision (w->state, "APPROVE", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    assert_non_null (strstr (err.detail, "AWAITING_DOCUMENTS"));
    for (size_t i = 0; i < case_document_count (w->state); i++)
        s_set_document (w, i, "UPLOADED", NULL);
    assert_int_equal (case_get_status (w->state), CASE_STATE_IN_REVIEW);
    /* in review, but not verified: the reason names what is missing */
    s_expect_refused (case_decide_decision (w->state, "APPROVE", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    assert_non_null (strstr (err.detail, "5 document(s) not verified"));
    assert_non_null (strstr (err.detail, "CERTIFICATE_OF_INCORPORATION"));
    for (size_t i = 0; i + 1 < case_document_count (w->state); i++)
        s_set_document (w, i, "VERIFIED", NULL);
    s_expect_refused (case_decide_decision (w->state, "APPROVE", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    assert_non_null (strstr (err.detail, "1 document(s) not verified"));
    assert_non_null (strstr (err.detail, case_document_at (w->state, 4)->id));
    s_set_document (w, 4, "VERIFIED", NULL);

    assert_int_equal (case_decide_decision (w->state, "Approve", "all good", s_ctx (w), &events, &err), 0);
    s_expect_types (events, "CaseStatusChanged,NotificationRequired");   /* the inactive SMS rule stays silent */
    json_t *d = s_data (events, 0);
    assert_string_equal (s_str (d, "from"), "IN_REVIEW");
    assert_string_equal (s_str (d, "to"), "APPROVED");
    assert_string_equal (s_str (d, "reason"), "all good");
    json_decref (d);
    d = s_data (events, 1);
    assert_string_equal (s_str (d, "rule_id"), "NTF-APPROVED");
    assert_string_equal (s_str (d, "context_data.reason"), "all good");
    json_decref (d);
    s_commit (w, &events);
    assert_int_equal (case_get_status (w->state), CASE_STATE_APPROVED);

    /* no second decision */
    s_expect_refused (case_decide_decision (w->state, "REJECT", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
    /* close */
    assert_int_equal (case_decide_close (w->state, NULL, s_ctx (w), &events, &err), 0);
    s_expect_types (events, "CaseStatusChanged");
    d = s_data (events, 0);
    assert_string_equal (s_str (d, "to"), "CLOSED");
    json_decref (d);
    s_commit (w, &events);
    assert_int_equal (case_get_status (w->state), CASE_STATE_CLOSED);
    s_expect_refused (case_decide_close (w->state, NULL, s_ctx (w), &events, &err), events, &err, 409, "conflict.state");
    s_expect_refused (case_decide_decision (w->state, "REJECT", NULL, s_ctx (w), &events, &err),
                      events, &err, 409, "conflict.state");
}

static void
test_reject_and_close (void **state)
{
    s_world_t *w = *state;
    case_events_t *events = NULL;
    case_error_t err;
    s_expect_refused (case_decide_close (w->state, NULL, s_ctx (w), &events, &err), events, &err, 404, "not_found");
    s_create (w, fixture_kyc);
    s_expect_refused (case_decide_close (w->state, NULL, s_ctx (w), &events, &err), events, &err, 409, "conflict.state");
    s_expect_refused (case_decide_decision (w->state, "MAYBE", NULL, s_ctx (w), &events, &err),
                      events, &err, 422, "validation.decision");
    s_expect_refused (case_decide_decision (w->state, NULL, NULL, s_ctx (w), &events, &err),
                      events, &err, 422, "validation.decision");
    /* refused before review (e.g. a sanctions hit) */
    assert_int_equal (case_decide_decision (w->state, "reject", "sanctions hit", s_ctx (w), &events, &err), 0);
    s_expect_types (events, "CaseStatusChanged,NotificationRequired");
    json_t *d = s_data (events, 1);
    assert_string_equal (s_str (d, "rule_id"), "NTF-REJECTED");
    assert_string_equal (s_str (d, "trigger"), "CASE_REJECTED");
    json_decref (d);
    s_commit (w, &events);
    assert_int_equal (case_get_status (w->state), CASE_STATE_REJECTED);
    assert_int_equal (case_decide_close (w->state, "done", s_ctx (w), &events, &err), 0);
    s_commit (w, &events);
    assert_int_equal (case_get_status (w->state), CASE_STATE_CLOSED);
}

/* Notification ids stay unique over the life of a case. */
static void
test_notification_ids_unique (void **state)
{
    s_world_t *w = *state;
    char ids [16][IDS_UUID_LEN];
    size_t n = 0;
    record_t *record = s_record (fixture_kyc);
    case_events_t *events = NULL;
    case_error_t err;
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &events, &err), 0);
    record_destroy (&record);
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < case_events_count (events); i++)
            if (strcmp (case_events_at (events, i)->type, "NotificationRequired") == 0) {
                json_t *d = s_data (events, i);
                snprintf (ids [n++], IDS_UUID_LEN, "%s", s_str (d, "notification_id"));
                json_decref (d);
            }
        s_commit (w, &events);
        if (round == 0) {
            s_set_document (w, 0, "UPLOADED", NULL);
            assert_int_equal (case_decide_document_status (w->state, case_document_at (w->state, 1)->id,
                              "UPLOADED", NULL, s_ctx (w), &events, &err), 0);
        }
        else
        if (round == 1)
            assert_int_equal (case_decide_document_status (w->state, case_document_at (w->state, 1)->id,
                              "REJECTED", NULL, s_ctx (w), &events, &err), 0);
        else
        if (round == 2)
            assert_int_equal (case_decide_decision (w->state, "REJECT", NULL, s_ctx (w), &events, &err), 0);
        else
            break;
    }
    case_events_destroy (&events);
    assert_int_equal (n, 4);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal (ids [i], ids [j]);
}

/* ---- fold */

static void
test_fold_robustness (void **state)
{
    (void) state;
    case_t *c = case_new ();
    assert_int_equal (case_apply (c, "SomethingNew", "{}", 2), 0);
    assert_int_equal (case_get_version (c), 1);
    assert_int_equal (case_apply (c, "CaseCreated", "not json", 8), -2);
    assert_int_equal (case_apply (c, "CaseCreated", "[]", 2), -2);
    assert_int_equal (case_apply (c, "CaseCreated", "{\"case_id\": 5}", 14), -2);
    assert_int_equal (case_apply (c, "CaseCreated", NULL, 0), -2);
    assert_int_equal (case_apply (c, NULL, "{}", 2), -2);
    assert_int_equal (case_get_version (c), 6);
    const char *created = "{\"case_id\":\"c1\",\"client_id\":\"k\",\"traitement_type\":\"KYC\",\"case_type\":\"S\",\"status\":\"OPEN\"}";
    assert_int_equal (case_apply (c, "CaseCreated", created, strlen (created)), 0);
    assert_true (case_exists (c));
    /* a status change to an unknown state, a change of an unknown document */
    const char *bad_status = "{\"case_id\":\"c1\",\"from\":\"OPEN\",\"to\":\"LIMBO\"}";
    assert_int_equal (case_apply (c, "CaseStatusChanged", bad_status, strlen (bad_status)), -2);
    const char *bad_doc = "{\"case_id\":\"c1\",\"document_id\":\"nope\",\"from\":\"AWAITING_UPLOAD\",\"to\":\"UPLOADED\"}";
    assert_int_equal (case_apply (c, "DocumentStatusChanged", bad_doc, strlen (bad_doc)), -2);
    const char *doc = "{\"case_id\":\"c1\",\"document_id\":\"d1\",\"document_type\":\"ID\",\"status\":\"AWAITING_UPLOAD\"}";
    assert_int_equal (case_apply (c, "DocumentRequirementDetermined", doc, strlen (doc)), 0);
    assert_int_equal (case_apply (c, "DocumentRequirementDetermined", doc, strlen (doc)), -2);   /* twice */
    assert_int_equal (case_document_count (c), 1);
    assert_int_equal (case_apply (NULL, "CaseCreated", created, strlen (created)), -2);
    case_t *copy = case_dup (c);
    s_expect_same (c, copy);
    case_destroy (&copy);
    assert_null (case_dup (NULL));
    case_destroy (&c);
    case_destroy (NULL);
    /* getters are NULL-safe */
    assert_string_equal (case_get_id (NULL), "");
    assert_int_equal (case_document_count (NULL), 0);
    assert_null (case_document_find (NULL, "x"));
    assert_int_equal (case_events_count (NULL), 0);
    assert_null (case_events_at (NULL, 0));
    assert_null (case_events_after (NULL));
}

/* The whole life of a KYB case, replayed from its events, equals the state decisions saw. */
static void
test_fold_equals_decide (void **state)
{
    s_world_t *w = *state;
    case_t *replay = case_new ();
    record_t *record = s_record (fixture_kyb);
    case_events_t *events = NULL;
    case_error_t err;
    assert_int_equal (case_decide_create (record, w->case_id, s_ctx (w), &events, &err), 0);
    record_destroy (&record);
    s_fold (replay, events);
    s_expect_same (case_events_after (events), replay);
    s_commit (w, &events);
    for (size_t i = 0; i < case_document_count (w->state); i++) {
        const char *id = case_document_at (w->state, i)->id;
        const char *steps [] = { "UPLOADED", "REJECTED", "UPLOADED", "VERIFIED" };
        for (size_t s = 0; s < 4; s++) {
            if (s == 1 && i % 2)
                s = 3;      /* odd documents go straight to VERIFIED */
            assert_int_equal (case_decide_document_status (w->state, id, steps [s], NULL, s_ctx (w), &events, &err), 0);
            s_fold (replay, events);
            s_expect_same (case_events_after (events), replay);
            s_commit (w, &events);
            s_expect_same (w->state, replay);
        }
    }
    assert_int_equal (case_get_status (replay), CASE_STATE_IN_REVIEW);
    assert_int_equal (case_decide_decision (w->state, "APPROVE", NULL, s_ctx (w), &events, &err), 0);
    s_fold (replay, events);
    s_commit (w, &events);
    assert_int_equal (case_decide_close (w->state, NULL, s_ctx (w), &events, &err), 0);
    s_fold (replay, events);
    s_commit (w, &events);
    s_expect_same (w->state, replay);
    assert_int_equal (case_get_status (replay), CASE_STATE_CLOSED);
    case_destroy (&replay);
}

/* ---- command bodies */

static void
test_command_bodies (void **state)
{
    (void) state;
    case_command_t cmd;
    case_error_t err;
    const char *ok = "{\"document_id\": \"d1\", \"status\": \"uploaded\", \"reason\": \"scan\"}";
    assert_int_equal (case_command_parse_document_status (ok, strlen (ok), &cmd, &err), 0);
    assert_string_equal (cmd.document_id, "d1");
    assert_string_equal (cmd.status, "UPLOADED");
    assert_string_equal (cmd.reason, "scan");
    struct { const char *body; const char *error; } bad [] = {
        { "", "validation.body" },
        { "nope", "validation.body" },
        { "[]", "validation.body" },
        { "{\"status\": \"UPLOADED\"}", "validation.document_id" },
        { "{\"document_id\": 7, \"status\": \"UPLOADED\"}", "validation.document_id" },
        { "{\"document_id\": \"d1\"}", "validation.status" },
        { "{\"document_id\": \"d1\", \"status\": 5}", "validation.status" },
        { "{\"document_id\": \"d1\", \"status\": \"LOST\"}", "validation.status" },
        { "{\"document_id\": \"d1\", \"status\": \"AWAITING_UPLOAD\"}", "validation.status" },
        { "{\"document_id\": \"d1\", \"status\": \"UPLOADED\", \"reason\": 3}", "validation.reason" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        assert_int_equal (case_command_parse_document_status (bad [i].body, strlen (bad [i].body), &cmd, &err), -2);
        assert_int_equal (err.status, 422);
        assert_string_equal (err.error, bad [i].error);
    }
    char long_reason [700];
    memset (long_reason, 'r', sizeof long_reason);
    memcpy (long_reason, "{\"decision\": \"REJECT\", \"reason\": \"", 34);
    memcpy (long_reason + sizeof long_reason - 3, "\"}", 3);
    assert_int_equal (case_command_parse_decision (long_reason, strlen (long_reason), &cmd, &err), -2);
    assert_string_equal (err.error, "validation.reason");

    const char *decision = "{\"decision\": \"approve\"}";
    assert_int_equal (case_command_parse_decision (decision, strlen (decision), &cmd, &err), 0);
    assert_string_equal (cmd.decision, "APPROVE");
    assert_string_equal (cmd.reason, "");
    decision = "{\"decision\": \"MAYBE\"}";
    assert_int_equal (case_command_parse_decision (decision, strlen (decision), &cmd, &err), -2);
    assert_string_equal (err.error, "validation.decision");
    decision = "{\"reason\": \"x\"}";
    assert_int_equal (case_command_parse_decision (decision, strlen (decision), &cmd, &err), -2);
    assert_string_equal (err.error, "validation.decision");

    assert_int_equal (case_command_parse_close (NULL, 0, &cmd, &err), 0);
    assert_int_equal (case_command_parse_close ("{}", 2, &cmd, &err), 0);
    const char *close = "{\"reason\": \"done\", \"extra\": 1}";
    assert_int_equal (case_command_parse_close (close, strlen (close), &cmd, &err), 0);
    assert_string_equal (cmd.reason, "done");
    assert_int_equal (case_command_parse_close ("[1]", 3, &cmd, &err), -2);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_create_kyc, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_create_kyb, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_create_without_rules, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_create_too_many_events, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_upload_all_moves_to_review, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_document_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reject_and_reupload, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reject_while_awaiting, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_approve_needs_review_and_verification, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reject_and_close, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_notification_ids_unique, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fold_robustness, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fold_equals_decide, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_command_bodies, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
