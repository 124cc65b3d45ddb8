/* test_gateway_reader — the gateway's read-model queries against a temporary
 * readmodels.db built from schemas/readmodels.sql (tests run from the repo root):
 * lazy opening, keyed lookups, lists, filters, pagination, unknown ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../actors/gateway/readmodel_reader.h"
#include "log.h"

typedef struct {
    char dir [256];
    char path [300];
} fixture_t;

static char *
s_read_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *text = malloc ((size_t) size + 1);
    if (text && fread (text, 1, (size_t) size, file) != (size_t) size) {
        free (text);
        text = NULL;
    }
    if (text)
        text [size] = 0;
    fclose (file);
    return text;
}

static void
s_exec (sqlite3 *db, const char *sql)
{
    char *error = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &error) != SQLITE_OK)
        fail_msg ("SQL failed: %s: %s", error, sql);
}

/* Creates the schema and a few rows, as the projector would. */
static void
s_create_db (const char *path)
{
    char *schema = s_read_file ("schemas/readmodels.sql");
    assert_non_null (schema);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    s_exec (db, "PRAGMA journal_mode=WAL");
    s_exec (db, schema);
    free (schema);
    s_exec (db,
        "INSERT INTO cases VALUES ('c1', 1, 'C1', 'KYC', 'OPEN', 1, '{\"id\":\"c1\"}', '{\"id\":\"c1\",\"full\":true}');"
        "INSERT INTO cases VALUES ('c2', 5, 'C2', 'KYB', 'IN_REVIEW', 9, '{\"id\":\"c2\"}', '{\"id\":\"c2\",\"full\":true}');"
        "INSERT INTO cases VALUES ('c3', 7, 'C1', 'KYB', 'OPEN', 7, '{\"id\":\"c3\"}', '{\"id\":\"c3\",\"full\":true}');"
        "INSERT INTO cases VALUES ('c4', 9, 'C3', 'KYB', 'OPEN', 9, '{\"id\":\"c4\"}', '{\"id\":\"c4\",\"full\":true}');"
        "INSERT INTO cases VALUES ('we\"ird', 11, 'C4', 'KYC', 'CLOSED', 11, '{\"id\":\"w\"}', '{}');"
        "INSERT INTO companies VALUES ('co1', 'c2', 6, 6, '{\"id\":\"co1\"}');"
        "INSERT INTO companies VALUES ('co2', 'c4', 10, 10, '{\"id\":\"co2\"}');"
        "INSERT INTO persons VALUES ('p1', 'c1', NULL, 2, 2, '{\"id\":\"p1\"}');"
        "INSERT INTO beneficial_owners VALUES ('b2', 'co1', 'c2', 8, 8, '{\"id\":\"b2\"}');"
        "INSERT INTO beneficial_owners VALUES ('b1', 'co1', 'c2', 7, 7, '{\"id\":\"b1\"}');"
        "INSERT INTO documents VALUES ('d2', 'c1', 4, 'AWAITING_UPLOAD', 4, '{\"id\":\"d2\"}');"
        "INSERT INTO documents VALUES ('d1', 'c1', 3, 'UPLOADED', 3, '{\"id\":\"d1\"}');"
        "INSERT INTO case_events VALUES (1, 2, 'c1', 2, '{\"version\":2}');"
        "INSERT INTO case_events VALUES (1, 1, 'c1', 1, '{\"version\":1}');");
    sqlite3_close (db);
}

static int
s_setup (void **state)
{
    fixture_t *fx = calloc (1, sizeof (fixture_t));
    snprintf (fx->dir, sizeof fx->dir, "/tmp/dossier-gw-reader-XXXXXX");
    if (!fx->dir [0] || !mkdtemp (fx->dir)) {
        free (fx);
        return -1;
    }
    snprintf (fx->path, sizeof fx->path, "%s/readmodels.db", fx->dir);
    *state = fx;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char file [320];
        snprintf (file, sizeof file, "%s%s", fx->path, suffixes [i]);
        unlink (file);
    }
    rmdir (fx->dir);
    free (fx);
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
test_missing_file_then_created (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    gw_reader_t *reader = gw_reader_new (fx->path);
    assert_non_null (reader);
    gw_buf_t out;
    gw_buf_init (&out);
    gw_cases_query_t query;
    char detail [64];
    assert_int_equal (gw_query_parse_cases (NULL, 0, &query, detail, sizeof detail), 0);

    assert_int_equal (gw_reader_ready (reader), 0);
    assert_int_equal (gw_reader_case (reader, "c1", &out), GW_READER_UNAVAILABLE);
    assert_int_equal (gw_reader_cases (reader, &query, &out), GW_READER_UNAVAILABLE);
    assert_int_equal (gw_reader_case_events (reader, "c1", &out), GW_READER_UNAVAILABLE);
    assert_int_equal (gw_reader_case_exists (reader, "c1"), GW_READER_UNAVAILABLE);
    char case_id [GW_ID_MAX];
    assert_int_equal (gw_reader_document_case (reader, "d1", case_id), GW_READER_UNAVAILABLE);

    /* A file without the tables yet (projector starting) is still unavailable. */
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (fx->path, &db), SQLITE_OK);
    s_exec (db, "PRAGMA journal_mode=WAL; CREATE TABLE unrelated (x)");
    sqlite3_close (db);
    assert_int_equal (gw_reader_ready (reader), 0);
    assert_int_equal (gw_reader_company (reader, "co1", &out), GW_READER_UNAVAILABLE);

    /* Once the projector has initialised it, the next request opens it. */
    s_create_db (fx->path);
    assert_int_equal (gw_reader_ready (reader), 1);
    assert_int_equal (gw_reader_case (reader, "c1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"c1\",\"full\":true}");

    gw_buf_free (&out);
    gw_reader_destroy (&reader);
    gw_reader_destroy (&reader);
    assert_null (reader);
}

static void
test_single_objects (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_create_db (fx->path);
    gw_reader_t *reader = gw_reader_new (fx->path);
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
    assert_int_equal (gw_reader_document (reader, "", &out), GW_READER_NOT_FOUND);

    assert_int_equal (gw_reader_case_exists (reader, "c3"), GW_READER_OK);
    assert_int_equal (gw_reader_case_exists (reader, "c9"), GW_READER_NOT_FOUND);
    char case_id [GW_ID_MAX];
    assert_int_equal (gw_reader_document_case (reader, "d2", case_id), GW_READER_OK);
    assert_string_equal (case_id, "c1");
    assert_int_equal (gw_reader_document_case (reader, "d9", case_id), GW_READER_NOT_FOUND);

    /* Statements are reused: the same query many times stays correct. */
    for (int i = 0; i < 100; i++)
        assert_int_equal (gw_reader_case (reader, i % 2 ? "c1" : "zz", &out),
                          i % 2 ? GW_READER_OK : GW_READER_NOT_FOUND);
    gw_buf_free (&out);
    gw_reader_destroy (&reader);
}

static void
test_sub_lists (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_create_db (fx->path);
    gw_reader_t *reader = gw_reader_new (fx->path);
    gw_buf_t out;
    gw_buf_init (&out);

    assert_int_equal (gw_reader_case_events (reader, "c1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"case_id\":\"c1\",\"events\":[{\"version\":1},{\"version\":2}]}");
    assert_int_equal (gw_reader_case_events (reader, "c2", &out), GW_READER_OK);
    s_assert_body (&out, "{\"case_id\":\"c2\",\"events\":[]}");
    /* an id needing escapes still yields valid JSON */
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

/* Lists cases with the query string qs and compares the whole body. */
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
    fixture_t *fx = (fixture_t *) *state;
    s_create_db (fx->path);
    gw_reader_t *reader = gw_reader_new (fx->path);

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

    /* Paging by 2 visits every case once, in seq order; the last page says null. */
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
    /* exactly one page's worth: no next page */
    s_assert_list (reader, "limit=5&traitement_type=KYB",
        "{\"items\":[{\"id\":\"c2\"},{\"id\":\"c3\"},{\"id\":\"c4\"}],\"next_cursor\":null}");
    /* a filter and a cursor together */
    gw_cursor_encode (1, cursor_c2);
    snprintf (qs, sizeof qs, "client_id=C1&cursor=%s", cursor_c2);
    s_assert_list (reader, qs, "{\"items\":[{\"id\":\"c3\"}],\"next_cursor\":null}");
    gw_reader_destroy (&reader);
}

static void
test_reader_survives_deleted_file (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    s_create_db (fx->path);
    gw_reader_t *reader = gw_reader_new (fx->path);
    gw_buf_t out;
    gw_buf_init (&out);
    assert_int_equal (gw_reader_case (reader, "c1", &out), GW_READER_OK);
    /* Deleting the file under an open connection must not crash anything; the
     * open connection still reads its snapshot until the periodic check. */
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char file [320];
        snprintf (file, sizeof file, "%s%s", fx->path, suffixes [i]);
        unlink (file);
    }
    int rc = gw_reader_case (reader, "c1", &out);
    assert_true (rc == GW_READER_OK || rc == GW_READER_UNAVAILABLE);
    gw_buf_free (&out);
    gw_reader_destroy (&reader);
}

/* A snapshot: every query until release sees the same data; its generation moves
 * exactly when the data changed (or the file was opened anew). */
static void
test_snapshot_generations (void **state)
{
    fixture_t *fx = (fixture_t *) *state;
    gw_reader_t *reader = gw_reader_new (fx->path);
    assert_int_equal (gw_reader_snapshot (reader), 0);        /* no file yet */
    gw_reader_release (reader);
    s_create_db (fx->path);
    uint64_t first = gw_reader_snapshot (reader);
    assert_true (first > 0);
    assert_int_equal (gw_reader_snapshot (reader), first);    /* still the same one */
    gw_buf_t out;
    gw_buf_init (&out);
    assert_int_equal (gw_reader_person (reader, "p1", &out), GW_READER_OK);

    /* A write by another connection while the snapshot is open is not seen... */
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (fx->path, &db), SQLITE_OK);
    s_exec (db, "UPDATE persons SET json = '{\"id\":\"p1\",\"v\":2}' WHERE id = 'p1'");
    assert_int_equal (gw_reader_person (reader, "p1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"p1\"}");
    assert_int_equal (gw_reader_snapshot (reader), first);
    gw_reader_release (reader);

    /* ...and the next snapshot sees it, under a new generation. */
    uint64_t second = gw_reader_snapshot (reader);
    assert_true (second > first);
    assert_int_equal (gw_reader_person (reader, "p1", &out), GW_READER_OK);
    s_assert_body (&out, "{\"id\":\"p1\",\"v\":2}");
    gw_reader_release (reader);

    /* No change, same generation; release twice is harmless. */
    assert_int_equal (gw_reader_snapshot (reader), second);
    gw_reader_release (reader);
    gw_reader_release (reader);

    /* The projector can checkpoint the WAL while no snapshot is open. */
    int log_frames = -1, checkpointed = -1;
    assert_int_equal (sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames, &checkpointed),
                      SQLITE_OK);
    sqlite3_close (db);

    /* Queries outside any snapshot still work, each on its own. */
    assert_int_equal (gw_reader_case_exists (reader, "c2"), GW_READER_OK);
    gw_buf_free (&out);
    gw_reader_destroy (&reader);
}

int
main (void)
{
    log_init ("test", "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_missing_file_then_created, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_single_objects, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sub_lists, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_case_list_filters_and_pages, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reader_survives_deleted_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_snapshot_generations, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
