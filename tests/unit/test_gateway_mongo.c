/* test_gateway_mongo — the gateway's read-model queries on the MongoDB backend
 * (readmodel_reader_mongo.c) against a private FerretDB, with the rows of
 * test_gateway_reader.c written as the projector writes them: the same answers byte
 * for byte; /ready and reads while the database is down (fast 503s, never a long
 * block) and after it is back; configurations that cannot work. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <jansson.h>

#include "../../actors/gateway/readmodel_reader.h"
#include "config.h"
#include "log.h"
#include "readmodel_indexes.h"
#include "test_projection_ferretdb.h"

static t_ferret_t s_ferret;
static mongoc_client_t *s_client;
static config_t *s_config;

static void
s_insert (const char *collection, bson_t *doc)
{
    mongoc_collection_t *coll = mongoc_client_get_collection (s_client, "t_gateway", collection);
    bson_error_t error;
    if (!mongoc_collection_insert_one (coll, doc, NULL, NULL, &error))
        fail_msg ("insert into %s: %s", collection, error.message);
    bson_destroy (doc);
    mongoc_collection_destroy (coll);
}

static void
s_case (const char *id, int64_t seq, const char *client, const char *type, const char *status,
        const char *summary, const char *full)
{
    s_insert (RM_COLL_CASES, BCON_NEW ("_id", BCON_UTF8 (id), "seq", BCON_INT64 (seq), "client_id", BCON_UTF8 (client),
                                       "traitement_type", BCON_UTF8 (type), "status", BCON_UTF8 (status),
                                       "updated_position", BCON_INT64 (seq), "summary_json", BCON_UTF8 (summary),
                                       "full_json", BCON_UTF8 (full)));
}

static void
s_row (const char *collection, const char *id, const char *case_id, const char *company_id, int64_t seq,
       const char *json)
{
    bson_t *doc = BCON_NEW ("_id", BCON_UTF8 (id), "case_id", BCON_UTF8 (case_id), "seq", BCON_INT64 (seq),
                            "updated_position", BCON_INT64 (seq), "json", BCON_UTF8 (json));
    if (company_id)
        BSON_APPEND_UTF8 (doc, "company_id", company_id);
    s_insert (collection, doc);
}

/* The rows of test_gateway_reader.c, in the collections of schemas/readmodels.md. */
static void
s_fill (void)
{
    char err [256];
    assert_int_equal (readmodel_indexes_ensure (s_client, "t_gateway", err, sizeof err), 0);
    s_case ("c1", 1, "C1", "KYC", "OPEN", "{\"id\":\"c1\"}", "{\"id\":\"c1\",\"full\":true}");
    s_case ("c2", 5, "C2", "KYB", "IN_REVIEW", "{\"id\":\"c2\"}", "{\"id\":\"c2\",\"full\":true}");
    s_case ("c3", 7, "C1", "KYB", "OPEN", "{\"id\":\"c3\"}", "{\"id\":\"c3\",\"full\":true}");
    s_case ("c4", 9, "C3", "KYB", "OPEN", "{\"id\":\"c4\"}", "{\"id\":\"c4\",\"full\":true}");
    s_case ("we\"ird", 11, "C4", "KYC", "CLOSED", "{\"id\":\"w\"}", "{}");
    s_row (RM_COLL_COMPANIES, "co1", "c2", NULL, 6, "{\"id\":\"co1\"}");
    s_row (RM_COLL_COMPANIES, "co2", "c4", NULL, 10, "{\"id\":\"co2\"}");
    s_row (RM_COLL_PERSONS, "p1", "c1", NULL, 2, "{\"id\":\"p1\"}");
    s_row (RM_COLL_BOS, "b2", "c2", "co1", 8, "{\"id\":\"b2\"}");
    s_row (RM_COLL_BOS, "b1", "c2", "co1", 7, "{\"id\":\"b1\"}");
    s_row (RM_COLL_DOCUMENTS, "d2", "c1", NULL, 4, "{\"id\":\"d2\"}");
    s_row (RM_COLL_DOCUMENTS, "d1", "c1", NULL, 3, "{\"id\":\"d1\"}");
    s_insert (RM_COLL_EVENTS, BCON_NEW ("_id", BCON_UTF8 ("c1/2"), "case_id", BCON_UTF8 ("c1"), "version", BCON_INT64 (2),
                                        "position", BCON_INT64 (2), "json", BCON_UTF8 ("{\"version\":2}")));
    s_insert (RM_COLL_EVENTS, BCON_NEW ("_id", BCON_UTF8 ("c1/1"), "case_id", BCON_UTF8 ("c1"), "version", BCON_INT64 (1),
                                        "position", BCON_INT64 (1), "json", BCON_UTF8 ("{\"version\":1}")));
    /* a document whose case id could never be routed */
    s_row (RM_COLL_DOCUMENTS, "d_bad", "", NULL, 40, "{\"id\":\"d_bad\"}");
}

static int
s_group_setup (void **state)
{
    (void) state;
    t_ferret_new (&s_ferret);
    s_client = t_ferret_client (&s_ferret);
    unsetenv ("DOSSIER_CONFIG");
    setenv ("DOSSIER_STORE", "mongodb", 1);
    setenv ("DOSSIER_MONGODB_URI", s_ferret.uri, 1);
    setenv ("DOSSIER_MONGODB_DATABASE", "t_gateway", 1);
    s_config = config_load (NULL);
    s_fill ();
    return s_config ? 0 : -1;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    config_destroy (&s_config);
    mongoc_client_destroy (s_client);
    t_ferret_destroy (&s_ferret);
    readmodel_mongo_cleanup ();
    return 0;
}

static void
s_assert_body (gw_buf_t *buf, const char *expected)
{
    const char *text = gw_buf_cstr (buf);
    assert_non_null (text);
    assert_string_equal (text, expected);
}

static void
test_single_objects (void **state)
{
    (void) state;
    gw_reader_t *reader = gw_reader_new_config (s_config);
    assert_non_null (reader);
    assert_string_equal (gw_reader_backend (reader), "mongodb");
    assert_int_equal (gw_reader_ready (reader), 1);
    gw_buf_t out;
    gw_buf_init (&out);

    assert_int_equal (gw_reader_case (reader, "c2", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"c2\",\"full\":true}");
    assert_int_equal (gw_reader_company (reader, "co1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"co1\"}");
    assert_int_equal (gw_reader_person (reader, "p1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"p1\"}");
    assert_int_equal (gw_reader_document (reader, "d1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"d1\"}");

    assert_int_equal (gw_reader_case (reader, "nope", &out), GW_READER_NOT_FOUND);
    assert_int_equal (out.size, 0);
    assert_int_equal (gw_reader_company (reader, "c1", &out), GW_READER_NOT_FOUND);
    assert_int_equal (gw_reader_person (reader, "' OR 1=1 --", &out), GW_READER_NOT_FOUND);
    assert_int_equal (gw_reader_person (reader, "{\"$gt\":\"\"}", &out), GW_READER_NOT_FOUND);
    assert_int_equal (gw_reader_document (reader, "", &out), GW_READER_NOT_FOUND);

    assert_int_equal (gw_reader_case_exists (reader, "c3"), GW_READER_OK);
    assert_int_equal (gw_reader_case_exists (reader, "c9"), GW_READER_NOT_FOUND);
    char case_id [GW_ID_MAX];
    assert_int_equal (gw_reader_document_case (reader, "d2", case_id), GW_READER_OK);
    assert_string_equal (case_id, "c1");
    assert_int_equal (gw_reader_document_case (reader, "d9", case_id), GW_READER_NOT_FOUND);
    assert_int_equal (gw_reader_document_case (reader, "d_bad", case_id), GW_READER_UNAVAILABLE);
    assert_string_equal (case_id, "");

    for (int i = 0; i < 100; i++)
        assert_int_equal (gw_reader_case (reader, i % 2 ? "c1" : "zz", &out),
                          i % 2 ? GW_READER_OK : GW_READER_NOT_FOUND);
    gw_buf_free (&out);
    gw_reader_destroy (&reader);
    gw_reader_destroy (&reader);
    assert_null (reader);
}

static void
test_sub_lists (void **state)
{
    (void) state;
    gw_reader_t *reader = gw_reader_new_config (s_config);
    gw_buf_t out;
    gw_buf_init (&out);
    assert_int_equal (gw_reader_case_events (reader, "c1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"case_id\":\"c1\",\"events\":[{\"version\":1},{\"version\":2}]}");
    assert_int_equal (gw_reader_case_events (reader, "c2", &out), GW_READER_OK);
    s_assert_body (&out, "{\"case_id\":\"c2\",\"events\":[]}");
    assert_int_equal (gw_reader_case_events (reader, "we\"ird", &out), GW_READER_OK);
    s_assert_body (&out, "{\"case_id\":\"we\\\"ird\",\"events\":[]}");
    assert_int_equal (gw_reader_case_events (reader, "none", &out), GW_READER_NOT_FOUND);

    assert_int_equal (gw_reader_case_documents (reader, "c1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"items\":[{\"id\":\"d1\"},{\"id\":\"d2\"}]}");
    assert_int_equal (gw_reader_case_documents (reader, "c3", &out), GW_READER_OK);
    s_assert_body (&out, "{\"items\":[]}");
    assert_int_equal (gw_reader_case_documents (reader, "none", &out), GW_READER_NOT_FOUND);

    assert_int_equal (gw_reader_company_owners (reader, "co1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"items\":[{\"id\":\"b1\"},{\"id\":\"b2\"}]}");
    assert_int_equal (gw_reader_company_owners (reader, "co2", &out), GW_READER_OK);
    s_assert_body (&out, "{\"items\":[]}");
    assert_int_equal (gw_reader_company_owners (reader, "c2", &out), GW_READER_NOT_FOUND);
    gw_buf_free (&out);
    gw_reader_destroy (&reader);
}

static void
s_assert_list (gw_reader_t *reader, const char *qs, const char *expected)
{
    gw_cases_query_t query;
    char detail [160];
    assert_int_equal (gw_query_parse_cases (qs, strlen (qs), &query, detail, sizeof detail), 0);
    gw_buf_t out;
    gw_buf_init (&out);
    assert_int_equal (gw_reader_cases (reader, &query, &out), GW_READER_OK);
    const char *text = gw_buf_cstr (&out);
    json_t *parsed = json_loads (text, 0, NULL);
    if (!parsed)
        fail_msg ("list for \"%s\" is not JSON: %s", qs, text);
    json_decref (parsed);
    if (strcmp (text, expected) != 0)
        fail_msg ("list for \"%s\":\n got      %s\n expected %s", qs, text, expected);
    gw_buf_free (&out);
}

static void
test_case_list_filters_and_pages (void **state)
{
    (void) state;
    gw_reader_t *reader = gw_reader_new_config (s_config);
    s_assert_list (reader, "",
        "{\"items\":[{\"id\":\"c1\"},{\"id\":\"c2\"},{\"id\":\"c3\"},{\"id\":\"c4\"},{\"id\":\"w\"}],\"next_cursor\":null}");
    s_assert_list (reader, "client_id=C1",
        "{\"items\":[{\"id\":\"c1\"},{\"id\":\"c3\"}],\"next_cursor\":null}");
    s_assert_list (reader, "traitement_type=KYB",
        "{\"items\":[{\"id\":\"c2\"},{\"id\":\"c3\"},{\"id\":\"c4\"}],\"next_cursor\":null}");
    s_assert_list (reader, "status=OPEN&traitement_type=KYB",
        "{\"items\":[{\"id\":\"c3\"},{\"id\":\"c4\"}],\"next_cursor\":null}");
    s_assert_list (reader, "status=OPEN&traitement_type=KYB&client_id=C1",
        "{\"items\":[{\"id\":\"c3\"}],\"next_cursor\":null}");
    s_assert_list (reader, "status=APPROVED", "{\"items\":[],\"next_cursor\":null}");
    s_assert_list (reader, "client_id=nobody", "{\"items\":[],\"next_cursor\":null}");
    s_assert_list (reader, "client_id=%FF%FE", "{\"items\":[],\"next_cursor\":null}");
    s_assert_list (reader, "client_id=%7B%22%24gt%22%3A%22%22%7D", "{\"items\":[],\"next_cursor\":null}");

    char cursor_c2 [GW_CURSOR_MAX], cursor_c4 [GW_CURSOR_MAX], expected [256], qs [128];
    gw_cursor_encode (5, cursor_c2);
    gw_cursor_encode (9, cursor_c4);
    snprintf (expected, sizeof expected,
              "{\"items\":[{\"id\":\"c1\"},{\"id\":\"c2\"}],\"next_cursor\":\"%s\"}", cursor_c2);
    s_assert_list (reader, "limit=2", expected);
    snprintf (qs, sizeof qs, "limit=2&cursor=%s", cursor_c2);
    snprintf (expected, sizeof expected,
              "{\"items\":[{\"id\":\"c3\"},{\"id\":\"c4\"}],\"next_cursor\":\"%s\"}", cursor_c4);
    s_assert_list (reader, qs, expected);
    snprintf (qs, sizeof qs, "limit=2&cursor=%s", cursor_c4);
    s_assert_list (reader, qs, "{\"items\":[{\"id\":\"w\"}],\"next_cursor\":null}");
    s_assert_list (reader, "limit=5&traitement_type=KYB",
        "{\"items\":[{\"id\":\"c2\"},{\"id\":\"c3\"},{\"id\":\"c4\"}],\"next_cursor\":null}");
    gw_cursor_encode (1, cursor_c2);
    snprintf (qs, sizeof qs, "client_id=C1&cursor=%s", cursor_c2);
    s_assert_list (reader, qs, "{\"items\":[{\"id\":\"c3\"}],\"next_cursor\":null}");
    gw_reader_destroy (&reader);
}

/* Times one lookup in milliseconds, checking its outcome. */
static int64_t
s_timed_case (gw_reader_t *reader, const char *id, int expected)
{
    gw_buf_t out;
    gw_buf_init (&out);
    int64_t t0 = zclock_mono ();
    assert_int_equal (gw_reader_case (reader, id, &out), expected);
    int64_t took = zclock_mono () - t0;
    gw_buf_free (&out);
    return took;
}

static void
test_database_down_and_back (void **state)
{
    (void) state;
    gw_reader_t *reader = gw_reader_new_config (s_config);
    assert_int_equal (gw_reader_ready (reader), 1);
    assert_int_equal (s_timed_case (reader, "c1", GW_READER_OK) < 1000, 1);

    t_ferret_stop (&s_ferret);
    /* reads fail, fast; /ready notices within its one-second cache */
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        int64_t took = s_timed_case (reader, "c1", GW_READER_UNAVAILABLE);
        worst = took > worst ? took : worst;
    }
    if (worst > 1500)
        fail_msg ("a read against a database that is down took %lld ms", (long long) worst);
    int64_t deadline = zclock_mono () + 3000;
    while (gw_reader_ready (reader))
        assert_true (zclock_mono () < deadline);
    assert_string_equal (gw_reader_reason (reader), "read-model database not answering");
    gw_cases_query_t query;
    char detail [64];
    assert_int_equal (gw_query_parse_cases (NULL, 0, &query, detail, sizeof detail), 0);
    gw_buf_t out;
    gw_buf_init (&out);
    assert_int_equal (gw_reader_cases (reader, &query, &out), GW_READER_UNAVAILABLE);
    assert_int_equal (out.size, 0);
    assert_int_equal (gw_reader_case_events (reader, "c1", &out), GW_READER_UNAVAILABLE);
    char case_id [GW_ID_MAX];
    assert_int_equal (gw_reader_document_case (reader, "d1", case_id), GW_READER_UNAVAILABLE);

    /* back: ready and answering again by itself */
    t_ferret_restart (&s_ferret);
    deadline = zclock_mono () + 15000;
    while (!gw_reader_ready (reader)) {
        assert_true (zclock_mono () < deadline);
        usleep (50000);
    }
    assert_int_equal (gw_reader_case (reader, "c1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"c1\",\"full\":true}");
    gw_buf_free (&out);
    gw_reader_destroy (&reader);
}

static void
test_configurations_that_cannot_work (void **state)
{
    (void) state;
    setenv ("DOSSIER_MONGODB_DATABASE", "../x", 1);
    assert_null (gw_reader_new_config (s_config));
    setenv ("DOSSIER_MONGODB_DATABASE", "t_gateway", 1);
    setenv ("DOSSIER_MONGODB_URI", "postgres://nope", 1);
    assert_null (gw_reader_new_config (s_config));
    setenv ("DOSSIER_MONGODB_URI", s_ferret.uri, 1);
    setenv ("DOSSIER_STORE", "oracle", 1);
    assert_null (gw_reader_new_config (s_config));
    setenv ("DOSSIER_STORE", "mongodb", 1);

    /* an empty database is ready (the projector has not written anything yet) */
    setenv ("DOSSIER_MONGODB_DATABASE", "t_gateway_empty", 1);
    gw_reader_t *reader = gw_reader_new_config (s_config);
    assert_int_equal (gw_reader_ready (reader), 1);
    gw_buf_t out;
    gw_buf_init (&out);
    assert_int_equal (gw_reader_case (reader, "c1", &out), GW_READER_NOT_FOUND);
    gw_buf_free (&out);
    gw_reader_destroy (&reader);
    setenv ("DOSSIER_MONGODB_DATABASE", "t_gateway", 1);
}

int
main (void)
{
    log_init ("test", getenv ("T_LOG") ? getenv ("T_LOG") : "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_single_objects),
        cmocka_unit_test (test_sub_lists),
        cmocka_unit_test (test_case_list_filters_and_pages),
        cmocka_unit_test (test_configurations_that_cannot_work),
        cmocka_unit_test (test_database_down_and_back),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
