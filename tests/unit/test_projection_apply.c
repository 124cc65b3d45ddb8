/* test_projection_apply — projection.c on a temporary database with hand-built
 * events: every table filled, document and case status changes, idempotent
 * re-application, poison events, and "any batching == one replay" byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>

#include "log.h"
#include "../../actors/projector/projection.h"
#include "test_projection_helpers.h"

/* One value from the database as a malloc'd string (NULL when no row). */
static char *
s_query (const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &st, NULL), SQLITE_OK);
    char *out = NULL;
    if (sqlite3_step (st) == SQLITE_ROW && sqlite3_column_text (st, 0))
        out = strdup ((const char *) sqlite3_column_text (st, 0));
    sqlite3_finalize (st);
    sqlite3_close (db);
    return out;
}

static json_t *
s_query_json (const char *path, const char *sql)
{
    char *text = s_query (path, sql);
    assert_non_null (text);
    json_error_t err;
    json_t *j = json_loads (text, 0, &err);
    if (!j)
        fail_msg ("bad JSON from '%s': %s: %s", sql, err.text, text);
    free (text);
    return j;
}

static long
s_count (const char *path, const char *sql)
{
    char *text = s_query (path, sql);
    long n = text ? atol (text) : -1;
    free (text);
    return n;
}

/* A file of the older layout (audit trail keyed by case id) is dropped at open and
 * built again from the log: its checkpoint is gone, the events are projected anew,
 * and the audit trail is keyed by the case's seq. */
static void
test_older_layout_is_rebuilt (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (tmp.path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db,
        "CREATE TABLE checkpoint (name TEXT PRIMARY KEY, position INTEGER NOT NULL);"
        "INSERT INTO checkpoint VALUES ('projector', 42);"
        "CREATE TABLE cases (id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, client_id TEXT NOT NULL,"
        " traitement_type TEXT NOT NULL, status TEXT NOT NULL, updated_position INTEGER NOT NULL,"
        " summary_json TEXT NOT NULL, full_json TEXT NOT NULL);"
        "INSERT INTO cases VALUES ('old', 1, 'C', 'KYC', 'OPEN', 1, '{}', '{}');"
        "CREATE TABLE case_events (case_id TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,"
        " json TEXT NOT NULL, PRIMARY KEY (case_id, version));"
        "INSERT INTO case_events VALUES ('old', 1, 1, '{}');", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);

    projection_t *p = projection_new (tmp.path);
    assert_non_null (p);
    assert_int_equal (projection_checkpoint (p), 0);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM cases"), 0);
    t_log_t log = { 0 };
    t_kyc_case (&log);
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM case_events e JOIN cases c ON e.case_seq = c.seq "
                                         "AND e.case_id = c.id"), 6);
    projection_destroy (&p);
    /* opened again, the new layout stays as it is */
    p = projection_new (tmp.path);
    assert_non_null (p);
    assert_int_equal (projection_checkpoint (p), 6);
    projection_destroy (&p);
    t_tmp_destroy (&tmp);
}

static void
test_kyc_case_fills_every_table (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    assert_non_null (p);
    assert_int_equal (projection_checkpoint (p), 0);
    t_log_t log = { 0 };
    t_kyc_case (&log);
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    assert_int_equal (projection_checkpoint (p), 6);

    assert_int_equal (s_count (tmp.path, "SELECT position FROM checkpoint WHERE name = 'projector'"), 6);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM cases"), 1);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM persons"), 1);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM documents"), 2);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM case_events"), 6);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM companies"), 0);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM projector_errors"), 0);
    char *status = s_query (tmp.path, "SELECT status || '/' || traitement_type || '/' || client_id || '/' || seq "
                                      "|| '/' || updated_position FROM cases");
    assert_string_equal (status, "AWAITING_DOCUMENTS/KYC/CLI-1/1/5");
    free (status);

    /* summary: exactly the documented fields, in order */
    char *summary = s_query (tmp.path, "SELECT summary_json FROM cases");
    assert_string_equal (summary,
        "{\"case_id\":\"" T_KYC "\",\"client_id\":\"CLI-1\",\"case_type\":\"STANDARD\",\"case_version\":1,"
        "\"traitement_type\":\"KYC\",\"status\":\"AWAITING_DOCUMENTS\",\"created_at\":\"2026-01-01T09:59:59.990Z\","
        "\"updated_at\":\"2026-01-01T09:59:59.990Z\",\"document_counts\":{\"AWAITING_UPLOAD\":2,\"UPLOADED\":0,"
        "\"VERIFIED\":0,\"REJECTED\":0}}");
    free (summary);

    json_t *full = s_query_json (tmp.path, "SELECT full_json FROM cases");
    assert_string_equal (json_string_value (json_object_get (full, "status")), "AWAITING_DOCUMENTS");
    assert_true (json_is_null (json_object_get (full, "company")));
    assert_int_equal (json_array_size (json_object_get (full, "persons")), 1);
    assert_int_equal (json_array_size (json_object_get (full, "beneficial_owners")), 0);
    json_t *docs = json_object_get (full, "documents");
    assert_int_equal (json_array_size (docs), 2);
    assert_string_equal (json_string_value (json_object_get (json_array_get (docs, 0), "document_type")),
                         "IDENTITY_DOCUMENT");
    json_decref (full);

    char *person = s_query (tmp.path, "SELECT json FROM persons WHERE id = 'P1'");
    assert_string_equal (person,
        "{\"person_id\":\"P1\",\"case_id\":\"" T_KYC "\",\"company_id\":null,\"role\":\"APPLICANT\","
        "\"firstname\":\"Camille\",\"lastname\":\"Durand\",\"birthdate\":\"1988-04-17\","
        "\"email\":\"c@example.org\",\"nationality\":\"FR\"}");
    free (person);
    char *doc = s_query (tmp.path, "SELECT json FROM documents WHERE id = 'D1'");
    assert_string_equal (doc,
        "{\"document_id\":\"D1\",\"case_id\":\"" T_KYC "\",\"document_type\":\"IDENTITY_DOCUMENT\","
        "\"subject_type\":\"person\",\"subject_id\":\"P1\",\"rule_id\":\"DOC-KYC-ID\",\"status\":\"AWAITING_UPLOAD\","
        "\"history\":[],\"created_at\":\"2026-01-01T10:00:00.003Z\",\"updated_at\":\"2026-01-01T10:00:00.003Z\"}");
    free (doc);
    char *audit = s_query (tmp.path, "SELECT json FROM case_events WHERE version = 1");
    assert_string_equal (audit,
        "{\"position\":1,\"version\":1,\"event_id\":\"ev-1\",\"type\":\"CaseCreated\","
        "\"timestamp\":\"2026-01-01T10:00:00.000Z\",\"command_id\":\"cmd-" T_KYC "\",\"data\":{\"case_id\":\"" T_KYC
        "\",\"client_id\":\"CLI-1\",\"case_type\":\"STANDARD\",\"case_version\":1,\"traitement_type\":\"KYC\","
        "\"status\":\"OPEN\",\"created_at\":\"2026-01-01T09:59:59.990Z\"}}");
    free (audit);
    /* NotificationRequired only reaches the audit trail */
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM case_events WHERE json LIKE '%NotificationRequired%'"), 1);
    projection_destroy (&p);
    assert_null (p);
    t_tmp_destroy (&tmp);
}

static void
test_document_status_changes (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    t_log_t log = { 0 };
    t_kyc_case (&log);
    t_kyc_documents (&log);
    assert_int_equal (projection_apply (p, log.events, 9), 0);   /* both uploaded, in review */
    json_t *summary = s_query_json (tmp.path, "SELECT summary_json FROM cases");
    assert_string_equal (json_string_value (json_object_get (summary, "status")), "IN_REVIEW");
    assert_string_equal (json_string_value (json_object_get (summary, "updated_at")), "2026-01-02T10:00:01.000Z");
    json_t *counts = json_object_get (summary, "document_counts");
    assert_int_equal (json_integer_value (json_object_get (counts, "UPLOADED")), 2);
    assert_int_equal (json_integer_value (json_object_get (counts, "AWAITING_UPLOAD")), 0);
    json_decref (summary);
    char *status = s_query (tmp.path, "SELECT status FROM cases");
    assert_string_equal (status, "IN_REVIEW");
    free (status);

    assert_int_equal (projection_apply (p, log.events + 9, 3), 0);   /* D1 rejected, back to upload */
    json_t *d1 = s_query_json (tmp.path, "SELECT json FROM documents WHERE id = 'D1'");
    assert_string_equal (json_string_value (json_object_get (d1, "status")), "AWAITING_UPLOAD");
    assert_string_equal (json_string_value (json_object_get (d1, "updated_at")), "2026-01-03T10:00:00.000Z");
    json_t *history = json_object_get (d1, "history");
    assert_int_equal (json_array_size (history), 3);
    json_t *h1 = json_array_get (history, 1);
    assert_string_equal (json_string_value (json_object_get (h1, "from")), "UPLOADED");
    assert_string_equal (json_string_value (json_object_get (h1, "to")), "REJECTED");
    assert_string_equal (json_string_value (json_object_get (h1, "reason")), "blurred scan");
    assert_string_equal (json_string_value (json_object_get (h1, "at")), "2026-01-03T10:00:00.000Z");
    json_decref (d1);
    char *d1_status = s_query (tmp.path, "SELECT status || '/' || updated_position || '/' || seq FROM documents WHERE id = 'D1'");
    assert_string_equal (d1_status, "AWAITING_UPLOAD/11/3");
    free (d1_status);

    json_t *full = s_query_json (tmp.path, "SELECT full_json FROM cases");
    assert_string_equal (json_string_value (json_object_get (full, "status")), "AWAITING_DOCUMENTS");
    counts = json_object_get (full, "document_counts");
    assert_int_equal (json_integer_value (json_object_get (counts, "UPLOADED")), 1);
    assert_int_equal (json_integer_value (json_object_get (counts, "AWAITING_UPLOAD")), 1);
    json_t *docs = json_object_get (full, "documents");
    assert_string_equal (json_string_value (json_object_get (json_array_get (docs, 0), "status")), "AWAITING_UPLOAD");
    assert_string_equal (json_string_value (json_object_get (json_array_get (docs, 1), "status")), "UPLOADED");
    json_decref (full);
    assert_int_equal (s_count (tmp.path, "SELECT updated_position FROM cases"), 12);
    projection_destroy (&p);
    t_tmp_destroy (&tmp);
}

static void
test_reapplying_changes_nothing (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    t_log_t log = { 0 };
    t_kyc_case (&log);
    t_kyc_documents (&log);
    assert_int_equal (projection_apply (p, log.events, 8), 0);
    char *before = t_dump (tmp.path);
    assert_int_equal (projection_apply (p, log.events, 8), 0);
    assert_int_equal (projection_apply (p, log.events + 3, 5), 0);
    char *after = t_dump (tmp.path);
    assert_string_equal (before, after);
    projection_stats_t st;
    projection_stats (p, &st);
    assert_int_equal (st.applied, 8);
    assert_int_equal (st.skipped, 13);
    free (after);

    /* an overlapping batch applies only its new tail */
    assert_int_equal (projection_apply (p, log.events + 5, 7), 0);
    assert_int_equal (projection_checkpoint (p), 12);
    projection_destroy (&p);

    /* and the checkpoint survives a reopen */
    p = projection_new (tmp.path);
    assert_int_equal (projection_checkpoint (p), 12);
    after = t_dump (tmp.path);
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    char *again = t_dump (tmp.path);
    assert_string_equal (after, again);
    free (again);
    free (after);
    free (before);
    projection_destroy (&p);
    t_tmp_destroy (&tmp);
}

static void
test_kyb_case_read_models (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    t_log_t log = { 0 };
    t_kyb_case (&log);
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    char *company = s_query (tmp.path, "SELECT json FROM companies WHERE id = 'C1'");
    assert_string_equal (company,
        "{\"company_id\":\"C1\",\"case_id\":\"" T_KYB "\",\"registered_name\":\"Nordlicht Logistik GmbH\","
        "\"trading_name\":\"Nordlicht\",\"registration_number\":\"HRB 123456\",\"registration_date\":\"2011-09-01\","
        "\"country_of_incorporation\":\"DE\",\"registered_address\":{\"street\":\"Hafenstrasse 8\",\"city\":\"Hamburg\","
        "\"postal_code\":\"20457\",\"country\":\"DE\"},\"business_type\":\"LIMITED_COMPANY\",\"industry_sector\":\"Logistics\"}");
    free (company);
    char *bo = s_query (tmp.path, "SELECT json FROM beneficial_owners WHERE id = 'B1'");
    assert_string_equal (bo,
        "{\"beneficial_owner_id\":\"B1\",\"company_id\":\"C1\",\"case_id\":\"" T_KYB "\",\"person_id\":\"P2\","
        "\"ownership_percentage\":60,\"types_of_control\":[\"SHARES\",\"VOTING_RIGHTS\"],\"is_ubo\":true,"
        "\"person\":{\"firstname\":\"Jonas\"}}");
    free (bo);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM persons WHERE company_id = 'C1'"), 2);
    json_t *full = s_query_json (tmp.path, "SELECT full_json FROM cases");
    assert_string_equal (json_string_value (json_object_get (json_object_get (full, "company"), "company_id")), "C1");
    assert_int_equal (json_array_size (json_object_get (full, "persons")), 2);
    json_t *bos = json_object_get (full, "beneficial_owners");
    assert_int_equal (json_array_size (bos), 2);
    assert_true (json_real_value (json_object_get (json_array_get (bos, 1), "ownership_percentage")) == 12.5);
    assert_string_equal (json_string_value (json_object_get (json_array_get (json_object_get (full, "persons"), 1),
                         "lastname")), "H\xc3\xb6" "ffmann");
    assert_int_equal (json_array_size (json_object_get (full, "documents")), 1);
    json_decref (full);
    projection_destroy (&p);
    t_tmp_destroy (&tmp);
}

static void
test_poison_events_are_recorded_and_skipped (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    t_log_t log = { 0 };
    t_kyc_case (&log);
    t_add (&log, T_KYC, "PersonLinked", "{not json");                                     /* 7 */
    t_add (&log, T_KYC, "DocumentStatusChanged", "{\"document_id\":\"nope\",\"to\":\"UPLOADED\"}");   /* 8 */
    t_add (&log, T_KYC, "CaseStatusChanged", "[1,2]");                                    /* 9 */
    t_add (&log, "33333333-3333-5333-8333-333333333333", "PersonLinked",
           "{\"person_id\":\"PX\",\"person\":{}}");                                        /* 10: unknown case */
    t_add (&log, T_KYC, "CaseCreated", "{\"client_id\":\"again\",\"traitement_type\":\"KYC\"}");  /* 11: exists */
    t_add (&log, T_KYC, "SomethingNew", "{\"x\":1}");                                     /* 12: audit only */
    t_add (&log, T_KYC, "DocumentStatusChanged", "{\"document_id\":\"D1\",\"to\":\"UPLOADED\","
           "\"from\":\"AWAITING_UPLOAD\",\"changed_at\":\"2026-02-01T00:00:00.000Z\"}");  /* 13: fine */
    log.events [7].data_size = 0;                                                         /* 8 now empty */
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    assert_int_equal (projection_checkpoint (p), 13);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM projector_errors"), 5);
    char *err = s_query (tmp.path, "SELECT event_id || ': ' || error FROM projector_errors WHERE position = 7");
    assert_non_null (strstr (err, "ev-7: payload is not a JSON object"));
    free (err);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM projector_errors WHERE position IN (7,8,9,10,11)"), 5);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM case_events"), 8);
    char *doc = s_query (tmp.path, "SELECT status FROM documents WHERE id = 'D1'");
    assert_string_equal (doc, "UPLOADED");
    free (doc);
    projection_stats_t st;
    projection_stats (p, &st);
    assert_int_equal (st.poison, 5);
    projection_destroy (&p);
    t_tmp_destroy (&tmp);
}

/* The heart of it: however the log is cut into batches, and whether it is applied
 * live or rebuilt from zero in one transaction, the rows are byte-identical. */
/* The audit trail shows an event's traceparent when it has one, and only then. */
static void
test_audit_row_traceparent (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    assert_non_null (p);
    t_log_t log = { 0 };
    t_kyc_case (&log);
    snprintf (log.events [1].traceparent, sizeof log.events [1].traceparent,
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    char *audit = s_query (tmp.path, "SELECT json FROM case_events WHERE version = 2");
    assert_non_null (strstr (audit, "\"command_id\":\"cmd-" T_KYC "\",\"traceparent\":"
                                    "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\",\"data\":{"));
    free (audit);
    assert_int_equal (s_count (tmp.path, "SELECT count(*) FROM case_events WHERE json LIKE '%traceparent%'"), 1);
    projection_destroy (&p);
    t_tmp_destroy (&tmp);
}

static void
test_replay_gives_identical_rows (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    t_kyc_case (&log);
    t_kyb_case (&log);
    t_kyc_documents (&log);
    t_add (&log, T_KYB, "DocumentStatusChanged", "{\"document_id\":\"D3\",\"from\":\"AWAITING_UPLOAD\","
           "\"to\":\"UPLOADED\",\"reason\":null,\"changed_at\":\"2026-01-05T00:00:00.000Z\"}");
    t_add (&log, T_KYB, "NotificationRequired", "{\"notification_id\":\"N2\",\"case_id\":\"" T_KYB "\"}");
    /* some events with trace context, some without (as in a log from before it) */
    for (size_t i = 0; i < log.count; i += 2)
        snprintf (log.events [i].traceparent, sizeof log.events [i].traceparent,
                  "00-4bf92f3577b34da6a3ce929d0e0e4736-%016zx-01", i + 1);

    t_tmp_t a, b, c;
    t_tmp_new (&a, "one_by_one.db");
    t_tmp_new (&b, "all_at_once.db");
    t_tmp_new (&c, "rebuilt.db");
    projection_t *pa = projection_new (a.path);
    for (size_t i = 0; i < log.count; i++)
        assert_int_equal (projection_apply (pa, log.events + i, 1), 0);
    projection_t *pb = projection_new (b.path);
    assert_int_equal (projection_apply (pb, log.events, log.count), 0);

    /* the rebuild path: something stale in the db first, then clear + pages in one tx */
    projection_t *pc = projection_new (c.path);
    assert_int_equal (projection_apply (pc, log.events + 3, 1), 0);
    assert_int_equal (projection_begin (pc), 0);
    assert_int_equal (projection_clear (pc), 0);
    for (size_t i = 0; i < log.count; i += 4)
        assert_int_equal (projection_apply_in_tx (pc, log.events + i, log.count - i < 4 ? log.count - i : 4), 0);
    assert_int_equal (projection_commit (pc), 0);
    assert_int_equal (projection_checkpoint (pc), (int64_t) log.count);

    char *da = t_dump (a.path), *db = t_dump (b.path), *dc = t_dump (c.path);
    assert_string_equal (da, db);
    assert_string_equal (da, dc);
    free (da);
    free (db);
    free (dc);
    projection_destroy (&pa);
    projection_destroy (&pb);
    projection_destroy (&pc);
    t_tmp_destroy (&a);
    t_tmp_destroy (&b);
    t_tmp_destroy (&c);
}

/* Rows are assembled from the payloads' own bytes; payloads that jansson would write
 * otherwise (spaces, escapes, reals, duplicate keys) give exactly the rows a parse and
 * a dump give: these expected texts are what the jansson-tree projector wrote. */
static void
test_odd_payloads_as_jansson_writes_them (void **state)
{
    (void) state;
    static const char *expected [][2] = {
        { "SELECT json FROM companies", "{\"company_id\":\"C1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"registered_name\":\"B\\tC\",\"capital\":100.0,\"zero\":0,\"tenth\":0.10000000000000001,\"tiny\":9.9999999999999995e-8,\"big\":123456789012345678,\"path\":\"/x\\u001F\\u001F\",\"list\":[1,2.5,{\"k\":true}],\"utf8\":\"\xc3""\xa9""\xe2""\x82""\xac""\xf0""\x9f""\x98""\x80""\",\"pair\":\"\xf0""\x9f""\x98""\x80""\"}" },
        { "SELECT json FROM persons", "{\"person_id\":\"P1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"company_id\":\"C1\",\"role\":\"DIRECTOR\",\"firstname\":\"Jo\",\"lastname\":\"L\xc3""\xb6""w\",\"birthdate\":null,\"email\":\"dup\",\"n\":[],\"o\":{}}" },
        { "SELECT json FROM beneficial_owners", "{\"beneficial_owner_id\":\"B1\",\"company_id\":\"C1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"person_id\":\"P1\",\"ownership_percentage\":33.329999999999998,\"types_of_control\":[\"SHARES\"],\"is_ubo\":true,\"person\":{\"firstname\":\"Jo\",\"x\":1500.0}}" },
        { "SELECT json FROM documents", "{\"document_id\":\"D1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"document_type\":\"COI\",\"subject_type\":\"company\",\"subject_id\":\"C1\",\"rule_id\":null,\"status\":\"odd \\\"one\\\"\",\"history\":[{\"from\":\"AWAITING_UPLOAD\",\"to\":\"UPLOADED\",\"reason\":2.5,\"at\":\"2026-01-02T00:00:00.000Z\"},{\"from\":\"UPLOADED\",\"to\":\"odd \\\"one\\\"\",\"reason\":{\"a\":[1,{}]},\"at\":\"2026-01-03T00:00:00.000Z\"}],\"created_at\":\"2026-01-01T10:00:00.006Z\",\"updated_at\":\"2026-01-03T00:00:00.000Z\"}" },
        { "SELECT summary_json FROM cases", "{\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"client_id\":\"C\xc3""\xa9""/1\",\"case_type\":\"STANDARD\",\"case_version\":1.0,\"traitement_type\":\"KYB\",\"status\":\"AWAITING_DOCUMENTS\",\"created_at\":\"2026-01-01T00:00:00.000Z\",\"updated_at\":\"2026-01-01T10:00:00.010Z\",\"document_counts\":{\"AWAITING_UPLOAD\":0,\"UPLOADED\":0,\"VERIFIED\":0,\"REJECTED\":0,\"odd \\\"one\\\"\":1}}" },
        { "SELECT full_json FROM cases", "{\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"client_id\":\"C\xc3""\xa9""/1\",\"case_type\":\"STANDARD\",\"case_version\":1.0,\"traitement_type\":\"KYB\",\"status\":\"AWAITING_DOCUMENTS\",\"created_at\":\"2026-01-01T00:00:00.000Z\",\"updated_at\":\"2026-01-01T10:00:00.010Z\",\"document_counts\":{\"AWAITING_UPLOAD\":0,\"UPLOADED\":0,\"VERIFIED\":0,\"REJECTED\":0,\"odd \\\"one\\\"\":1},\"persons\":[{\"person_id\":\"P1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"company_id\":\"C1\",\"role\":\"DIRECTOR\",\"firstname\":\"Jo\",\"lastname\":\"L\xc3""\xb6""w\",\"birthdate\":null,\"email\":\"dup\",\"n\":[],\"o\":{}}],\"company\":{\"company_id\":\"C1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"registered_name\":\"B\\tC\",\"capital\":100.0,\"zero\":0,\"tenth\":0.10000000000000001,\"tiny\":9.9999999999999995e-8,\"big\":123456789012345678,\"path\":\"/x\\u001F\\u001F\",\"list\":[1,2.5,{\"k\":true}],\"utf8\":\"\xc3""\xa9""\xe2""\x82""\xac""\xf0""\x9f""\x98""\x80""\",\"pair\":\"\xf0""\x9f""\x98""\x80""\"},\"beneficial_owners\":[{\"beneficial_owner_id\":\"B1\",\"company_id\":\"C1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"person_id\":\"P1\",\"ownership_percentage\":33.329999999999998,\"types_of_control\":[\"SHARES\"],\"is_ubo\":true,\"person\":{\"firstname\":\"Jo\",\"x\":1500.0}}],\"documents\":[{\"document_id\":\"D1\",\"case_id\":\"22222222-2222-5222-8222-222222222222\",\"document_type\":\"COI\",\"subject_type\":\"company\",\"subject_id\":\"C1\",\"rule_id\":null,\"status\":\"odd \\\"one\\\"\",\"history\":[{\"from\":\"AWAITING_UPLOAD\",\"to\":\"UPLOADED\",\"reason\":2.5,\"at\":\"2026-01-02T00:00:00.000Z\"},{\"from\":\"UPLOADED\",\"to\":\"odd \\\"one\\\"\",\"reason\":{\"a\":[1,{}]},\"at\":\"2026-01-03T00:00:00.000Z\"}],\"created_at\":\"2026-01-01T10:00:00.006Z\",\"updated_at\":\"2026-01-03T00:00:00.000Z\"}]}" },
    };
    t_log_t log = { 0 };
    t_odd_log (&log);
    for (int split = 0; split < 2; split++) {
        t_tmp_t tmp;
        t_tmp_new (&tmp, "readmodels.db");
        projection_t *p = projection_new (tmp.path);
        if (split)
            for (size_t i = 0; i < log.count; i++)
                assert_int_equal (projection_apply (p, log.events + i, 1), 0);
        else
            assert_int_equal (projection_apply (p, log.events, log.count), 0);
        for (size_t i = 0; i < sizeof expected / sizeof expected [0]; i++) {
            char *row = s_query (tmp.path, expected [i][0]);
            assert_non_null (row);
            assert_string_equal (row, expected [i][1]);
            free (row);
        }
        char *error = s_query (tmp.path, "SELECT error FROM projector_errors");
        assert_string_equal (error, "payload is not a JSON object: real number overflow near '1e400'");
        free (error);
        projection_destroy (&p);
        t_tmp_destroy (&tmp);
    }
}

/* A child row put again (a person linked to another case, a requirement determined
 * again) keeps its first seq and moves as the store says: the rows a batch keeps in
 * memory for the cases it creates equal what the store holds, however the log is
 * cut into batches. */
static void
test_rows_put_twice (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    t_kyc_case (&log);                                                          /* 1-6 */
    t_kyb_case (&log);                                                          /* 7-13 */
    const char *third = "33333333-3333-5333-8333-333333333333";
    t_add (&log, third, "CaseCreated", "{\"client_id\":\"CLI-3\",\"traitement_type\":\"KYB\"}");
    t_add (&log, third, "PersonLinked", "{\"person_id\":\"P9\",\"person\":{\"firstname\":\"Nine\"}}");
    /* the KYC case's person, and the KYB case's company and owner, put for the new case */
    t_add (&log, third, "PersonLinked", "{\"person_id\":\"P1\",\"company_id\":\"C1\",\"person\":{\"firstname\":\"Moved\"}}");
    t_add (&log, third, "CompanyProfileCreated", "{\"company_id\":\"C1\",\"registered_name\":\"Moved\"}");
    t_add (&log, third, "BeneficialOwnerAdded", "{\"beneficial_owner_id\":\"B1\",\"company_id\":\"C1\"}");
    /* a requirement of the KYB case determined again from the new case: it stays where it was */
    t_add (&log, third, "DocumentRequirementDetermined", "{\"document_id\":\"D3\",\"status\":\"AWAITING_UPLOAD\"}");
    /* a person linked twice to one new case */
    const char *fourth = "44444444-4444-5444-8444-444444444444";
    t_add (&log, fourth, "CaseCreated", "{\"client_id\":\"CLI-4\",\"traitement_type\":\"KYC\"}");
    t_add (&log, fourth, "PersonLinked", "{\"person_id\":\"P8\",\"person\":{\"firstname\":\"Eight\"}}");
    t_add (&log, fourth, "PersonLinked", "{\"person_id\":\"P7\",\"person\":{\"firstname\":\"Seven\"}}");
    t_add (&log, fourth, "PersonLinked", "{\"person_id\":\"P8\",\"person\":{\"firstname\":\"Again\"}}");
    /* the first two cases are written again after the move */
    t_add (&log, T_KYC, "CaseStatusChanged", "{\"to\":\"IN_REVIEW\"}");
    t_add (&log, T_KYB, "CaseStatusChanged", "{\"to\":\"IN_REVIEW\"}");
    static const size_t cuts [] = { 1, 2, 3, 5, 13, 15, 100 };
    char *reference = NULL;
    for (size_t k = 0; k < sizeof cuts / sizeof cuts [0]; k++) {
        t_tmp_t tmp;
        t_tmp_new (&tmp, "readmodels.db");
        projection_t *p = projection_new (tmp.path);
        for (size_t i = 0; i < log.count; i += cuts [k])
            assert_int_equal (projection_apply (p, log.events + i, log.count - i < cuts [k] ? log.count - i : cuts [k]), 0);
        char *dump = t_dump (tmp.path);
        if (!reference)
            reference = dump;               /* one event per batch: every case read back from the store */
        else {
            assert_string_equal (dump, reference);
            free (dump);
        }
        projection_destroy (&p);
        t_tmp_destroy (&tmp);
    }
    assert_non_null (strstr (reference, "\"firstname\":\"Again\""));
    free (reference);
}

static void
test_rollback_keeps_old_rows (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    t_log_t log = { 0 };
    t_kyc_case (&log);
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    char *before = t_dump (tmp.path);
    assert_int_equal (projection_begin (p), 0);
    assert_int_equal (projection_begin (p), -1);         /* one transaction at a time */
    assert_int_equal (projection_clear (p), 0);
    assert_int_equal (projection_apply_in_tx (p, log.events, 2), 0);
    projection_rollback (p);
    assert_int_equal (projection_checkpoint (p), 6);
    char *after = t_dump (tmp.path);
    assert_string_equal (before, after);
    assert_int_equal (projection_apply_in_tx (p, log.events, 1), -1);   /* not in a transaction */
    assert_int_equal (projection_commit (p), -1);
    free (before);
    free (after);
    projection_destroy (&p);
    projection_destroy (&p);
    assert_null (projection_new ("/nonexistent-dir/x/readmodels.db"));
    t_tmp_destroy (&tmp);
}

static void
test_readmodel_file_check (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    assert_int_equal (projection_is_readmodel_file (tmp.path), 1);          /* absent */
    projection_t *p = projection_new (tmp.path);
    projection_destroy (&p);
    assert_int_equal (projection_is_readmodel_file (tmp.path), 1);          /* ours */
    char other [160];
    snprintf (other, sizeof other, "%s/events.db", tmp.dir);
    sqlite3 *db;
    assert_int_equal (sqlite3_open (other, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, "CREATE TABLE events (x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    assert_int_equal (projection_is_readmodel_file (other), 0);             /* somebody else's */
    snprintf (other, sizeof other, "%s/garbage.db", tmp.dir);
    FILE *f = fopen (other, "wb");
    fputs ("this is not a database, not at all, it is a text file of some length", f);
    fclose (f);
    assert_int_equal (projection_is_readmodel_file (other), 0);
    t_tmp_destroy (&tmp);
}

int
main (void)
{
    log_init ("test", "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_kyc_case_fills_every_table),
        cmocka_unit_test (test_document_status_changes),
        cmocka_unit_test (test_reapplying_changes_nothing),
        cmocka_unit_test (test_kyb_case_read_models),
        cmocka_unit_test (test_poison_events_are_recorded_and_skipped),
        cmocka_unit_test (test_audit_row_traceparent),
        cmocka_unit_test (test_replay_gives_identical_rows),
        cmocka_unit_test (test_odd_payloads_as_jansson_writes_them),
        cmocka_unit_test (test_rows_put_twice),
        cmocka_unit_test (test_rollback_keeps_old_rows),
        cmocka_unit_test (test_readmodel_file_check),
        cmocka_unit_test (test_older_layout_is_rebuilt),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
