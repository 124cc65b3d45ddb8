/* test_projection_mongo — projection.c on the MongoDB backend (readmodel_mongo.c)
 * against a private FerretDB: the rows are byte for byte those of the SQLite backend;
 * a crash between rows and checkpoint (or between children and cases) replays to
 * the same rows; poison events; rebuild into another database and in place; the
 * indexes; is-this-ours checks; and the database going away and coming back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "readmodel_indexes.h"
#include "../../actors/projector/projection.h"
#include "test_projection_helpers.h"
#include "test_projection_ferretdb.h"

static t_ferret_t s_ferret;
static mongoc_client_t *s_client;       /* the test's own view of the server */
static config_t *s_config;

static int
s_group_setup (void **state)
{
    (void) state;
    return t_ferret_group_up (&s_ferret, &s_client, &s_config);
}

static int
s_group_teardown (void **state)
{
    (void) state;
    t_ferret_group_down (&s_ferret, &s_client, &s_config);
    return 0;
}

/* A log with every kind of event, two cases, document changes and poison. */
static void
s_full_log (t_log_t *log)
{
    t_kyc_case (log);
    t_kyb_case (log);
    t_kyc_documents (log);
    t_add (log, T_KYB, "DocumentStatusChanged", "{\"document_id\":\"D3\",\"from\":\"AWAITING_UPLOAD\","
           "\"to\":\"UPLOADED\",\"reason\":null,\"changed_at\":\"2026-01-05T00:00:00.000Z\"}");
    t_add (log, T_KYB, "PersonLinked", "{broken");
    t_add (log, "33333333-3333-5333-8333-333333333333", "PersonLinked", "{\"person_id\":\"PX\",\"person\":{}}");
    t_add (log, T_KYB, "CompanyProfileCreated", "{\"company_id\":\"C1\",\"registered_name\":\"Nordlicht AG\"}");
    t_add (log, T_KYB, "NotificationRequired", "{\"notification_id\":\"N2\",\"case_id\":\"" T_KYB "\"}");
}

static projection_t *
s_mongo (const char *db)
{
    projection_t *p = projection_new_with (&readmodel_mongo_ops, db, s_config);
    assert_non_null (p);
    assert_true (projection_loaded (p));
    return p;
}

static void
s_drop (const char *db)
{
    mongoc_database_t *d = mongoc_client_get_database (s_client, db);
    bson_error_t error;
    if (!mongoc_database_drop (d, &error))
        fail_msg ("drop %s: %s", db, error.message);
    mongoc_database_destroy (d);
}

/* What the SQLite backend makes of log, applied in one batch. Caller frees. */
static char *
s_sqlite_dump (t_log_t *log)
{
    t_tmp_t tmp;
    t_tmp_new (&tmp, "readmodels.db");
    projection_t *p = projection_new (tmp.path);
    assert_int_equal (projection_apply (p, log->events, log->count), 0);
    projection_destroy (&p);
    char *dump = t_dump (tmp.path);
    t_tmp_destroy (&tmp);
    return dump;
}

static void
s_assert_same (const char *expected, const char *got, const char *what)
{
    if (strcmp (expected, got) == 0)
        return;
    size_t i = 0;
    while (expected [i] && expected [i] == got [i])
        i++;
    size_t from = i > 80 ? i - 80 : 0;
    fail_msg ("%s: differs at byte %zu\nexpected ...%.200s\ngot      ...%.200s", what, i, expected + from, got + from);
}

static void
s_set_checkpoint (const char *db, int64_t position)
{
    mongoc_collection_t *coll = mongoc_client_get_collection (s_client, db, RM_COLL_CHECKPOINTS);
    bson_t *selector = BCON_NEW ("_id", BCON_UTF8 ("projector"));
    bson_t *update = BCON_NEW ("$set", "{", "position", BCON_INT64 (position), "}");
    bson_error_t error;
    if (!mongoc_collection_update_one (coll, selector, update, NULL, NULL, &error))
        fail_msg ("checkpoint: %s", error.message);
    bson_destroy (selector);
    bson_destroy (update);
    mongoc_collection_destroy (coll);
}

static void
test_rows_equal_sqlite_rows (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_full_log (&log);
    char *expected = s_sqlite_dump (&log);

    /* one batch */
    projection_t *p = s_mongo ("t_equal_one");
    assert_int_equal (projection_checkpoint (p), 0);
    assert_string_equal (projection_backend (p), "mongodb");
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    assert_int_equal (projection_checkpoint (p), (int64_t) log.count);
    char *got = t_mongo_dump (s_client, "t_equal_one");
    s_assert_same (expected, got, "one batch");
    free (got);
    projection_stats_t st;
    projection_stats (p, &st);
    assert_int_equal (st.poison, 2);
    projection_destroy (&p);

    /* one event per batch */
    p = s_mongo ("t_equal_each");
    for (size_t i = 0; i < log.count; i++)
        assert_int_equal (projection_apply (p, log.events + i, 1), 0);
    got = t_mongo_dump (s_client, "t_equal_each");
    s_assert_same (expected, got, "event by event");
    free (got);
    /* the checkpoint survives a reopen, and a replay changes nothing */
    projection_destroy (&p);
    p = s_mongo ("t_equal_each");
    assert_int_equal (projection_checkpoint (p), (int64_t) log.count);
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    projection_stats (p, &st);
    assert_int_equal (st.skipped, log.count);
    got = t_mongo_dump (s_client, "t_equal_each");
    s_assert_same (expected, got, "after a replay");
    free (got);
    projection_destroy (&p);
    free (expected);
    s_drop ("t_equal_one");
    s_drop ("t_equal_each");
}

/* Replays from any earlier checkpoint over rows that already hold later events (what
 * a crash between the rows and the checkpoint leaves) end with the same rows. */
static void
test_replay_over_newer_rows (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_full_log (&log);
    char *expected = s_sqlite_dump (&log);
    projection_t *p = s_mongo ("t_replay");
    assert_int_equal (projection_apply (p, log.events, log.count), 0);
    projection_destroy (&p);
    size_t cuts [] = { 1, 3, 7 };
    for (int64_t k = 0; k < (int64_t) log.count; k += 4)
        for (size_t c = 0; c < sizeof cuts / sizeof cuts [0]; c++) {
            s_set_checkpoint ("t_replay", k);
            p = s_mongo ("t_replay");
            assert_int_equal (projection_checkpoint (p), k);
            for (size_t i = (size_t) k; i < log.count; i += cuts [c]) {
                size_t n = log.count - i < cuts [c] ? log.count - i : cuts [c];
                assert_int_equal (projection_apply (p, log.events + i, n), 0);
            }
            assert_int_equal (projection_checkpoint (p), (int64_t) log.count);
            projection_destroy (&p);
            char *got = t_mongo_dump (s_client, "t_replay");
            char what [64];
            snprintf (what, sizeof what, "replay from %lld in batches of %zu", (long long) k, cuts [c]);
            s_assert_same (expected, got, what);
            free (got);
        }
    free (expected);
    s_drop ("t_replay");
}

/* A backend that fails on purpose: after the children are written (before the cases
 * are), or after everything but the checkpoint. */
static readmodel_store_ops_t s_faulty;
static int s_fail_sync, s_fail_checkpoint;

static int
s_faulty_sync (void *impl)
{
    int rc = readmodel_mongo_ops.sync (impl);
    return s_fail_sync ? -1 : rc;
}

static int
s_faulty_checkpoint (void *impl, const char *const *names, size_t count, int64_t position)
{
    return s_fail_checkpoint ? -1 : readmodel_mongo_ops.set_checkpoint (impl, names, count, position);
}

static void
test_crash_mid_batch_replays_to_same_rows (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_full_log (&log);
    char *expected = s_sqlite_dump (&log);
    s_faulty = readmodel_mongo_ops;
    s_faulty.sync = s_faulty_sync;
    s_faulty.set_checkpoint = s_faulty_checkpoint;
    /* every cut of the log, both failures, the replay in one batch or event by event */
    for (int mode = 0; mode < 2; mode++)
        for (size_t s = 0; s < log.count; s++) {
            size_t k = s;
            projection_t *p = projection_new_with (&s_faulty, "t_crash", s_config);
            assert_non_null (p);
            s_fail_sync = s_fail_checkpoint = 0;
            if (k)
                assert_int_equal (projection_apply (p, log.events, k), 0);
            /* the rest fails half-way: documents and children written, cases (mode 0) or
             * only the checkpoint (mode 1) not */
            s_fail_sync = mode == 0;
            s_fail_checkpoint = mode == 1;
            assert_int_equal (projection_apply (p, log.events + k, log.count - k), -1);
            assert_int_equal (projection_checkpoint (p), (int64_t) k);
            projection_destroy (&p);
            /* restart: the same batch again, then event by event from a reopened store */
            s_fail_sync = s_fail_checkpoint = 0;
            p = projection_new_with (&s_faulty, "t_crash", s_config);
            assert_int_equal (projection_checkpoint (p), (int64_t) k);
            if ((s + (size_t) mode) % 2)
                assert_int_equal (projection_apply (p, log.events + k, log.count - k), 0);
            else
                for (size_t i = k; i < log.count; i++)
                    assert_int_equal (projection_apply (p, log.events + i, 1), 0);
            projection_destroy (&p);
            char *got = t_mongo_dump (s_client, "t_crash");
            char what [64];
            snprintf (what, sizeof what, "crash (mode %d) after %zu events", mode, k);
            s_assert_same (expected, got, what);
            free (got);
            s_drop ("t_crash");
        }
    free (expected);
}

static void
test_rebuild_into_target_and_in_place (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_full_log (&log);
    projection_t *live = s_mongo ("t_live");
    for (size_t i = 0; i < log.count; i += 5)
        assert_int_equal (projection_apply (live, log.events + i, log.count - i < 5 ? log.count - i : 5), 0);
    char *expected = t_mongo_dump (s_client, "t_live");

    /* a target with stale rows is cleared first */
    projection_t *target = s_mongo ("t_target");
    assert_int_equal (projection_apply (target, log.events + 3, 1), 0);
    assert_int_equal (projection_begin (target), 0);
    assert_int_equal (projection_clear (target), 0);
    assert_int_equal (projection_checkpoint (target), 0);
    for (size_t i = 0; i < log.count; i += 4)
        assert_int_equal (projection_apply_in_tx (target, log.events + i, log.count - i < 4 ? log.count - i : 4), 0);
    assert_int_equal (projection_commit (target), 0);
    assert_int_equal (projection_checkpoint (target), (int64_t) log.count);
    char *got = t_mongo_dump (s_client, "t_target");
    s_assert_same (expected, got, "rebuilt target");
    free (got);
    projection_destroy (&target);

    /* in place, with a collection of someone else's beside ours: it stays */
    mongoc_collection_t *other = mongoc_client_get_collection (s_client, "t_live", "events");
    bson_t *doc = BCON_NEW ("_id", BCON_INT64 (1));
    bson_error_t error;
    assert_true (mongoc_collection_insert_one (other, doc, NULL, NULL, &error));
    bson_destroy (doc);
    assert_int_equal (projection_begin (live), 0);
    assert_int_equal (projection_clear (live), 0);
    assert_int_equal (projection_apply_in_tx (live, log.events, log.count), 0);
    assert_int_equal (projection_commit (live), 0);
    got = t_mongo_dump (s_client, "t_live");
    s_assert_same (expected, got, "rebuilt in place");
    free (got);
    bson_t empty = BSON_INITIALIZER;
    assert_int_equal (mongoc_collection_count_documents (other, &empty, NULL, NULL, NULL, &error), 1);
    mongoc_collection_destroy (other);

    /* a failed rebuild leaves a consistent prefix: the checkpoint says how far */
    assert_int_equal (projection_begin (live), 0);
    assert_int_equal (projection_clear (live), 0);
    assert_int_equal (projection_apply_in_tx (live, log.events, 6), 0);
    projection_rollback (live);
    assert_int_equal (projection_checkpoint (live), 6);
    assert_int_equal (projection_apply (live, log.events, log.count), 0);
    got = t_mongo_dump (s_client, "t_live");
    s_assert_same (expected, got, "completed after a failed rebuild");
    free (got);
    projection_destroy (&live);
    free (expected);
    s_drop ("t_live");
    s_drop ("t_target");
}

/* Index names and uniqueness of one collection, as "name:unique," text. */
static void
s_indexes (const char *db, const char *collection, char *out, size_t size)
{
    mongoc_collection_t *coll = mongoc_client_get_collection (s_client, db, collection);
    mongoc_cursor_t *cursor = mongoc_collection_find_indexes_with_opts (coll, NULL);
    const bson_t *doc;
    out [0] = 0;
    zlist_t *names = zlist_new ();
    zlist_autofree (names);
    while (mongoc_cursor_next (cursor, &doc)) {
        bson_iter_t it;
        const char *name = bson_iter_init_find (&it, doc, "name") ? bson_iter_utf8 (&it, NULL) : "?";
        int unique = bson_iter_init_find (&it, doc, "unique") && bson_iter_as_bool (&it);
        char entry [128];
        snprintf (entry, sizeof entry, "%s%s", name, unique ? "(unique)" : "");
        zlist_append (names, entry);
    }
    zlist_sort (names, (zlist_compare_fn *) strcmp);
    for (char *n = (char *) zlist_first (names); n; n = (char *) zlist_next (names)) {
        strncat (out, n, size - strlen (out) - 2);
        strncat (out, ",", size - strlen (out) - 1);
    }
    zlist_destroy (&names);
    mongoc_cursor_destroy (cursor);
    mongoc_collection_destroy (coll);
}

static void
test_indexes_and_migrate (void **state)
{
    (void) state;
    projection_t *p = s_mongo ("t_indexes");
    projection_destroy (&p);
    char text [512];
    s_indexes ("t_indexes", RM_COLL_CASES, text, sizeof text);
    assert_string_equal (text, "_id_,cases_by_client,cases_by_seq(unique),cases_by_status,cases_by_type,");
    s_indexes ("t_indexes", RM_COLL_BOS, text, sizeof text);
    assert_string_equal (text, "_id_,bos_by_company,");
    s_indexes ("t_indexes", RM_COLL_EVENTS, text, sizeof text);
    assert_string_equal (text, "_id_,case_events_by_version(unique),");
    s_indexes ("t_indexes", RM_COLL_DOCUMENTS, text, sizeof text);
    assert_string_equal (text, "_id_,documents_by_case,");
    s_indexes ("t_indexes", RM_COLL_PERSONS, text, sizeof text);
    assert_string_equal (text, "_id_,persons_by_case,");
    s_indexes ("t_indexes", RM_COLL_COMPANIES, text, sizeof text);
    assert_string_equal (text, "_id_,companies_by_case,");

    /* dossier migrate: idempotent, on the configured database */
    setenv ("DOSSIER_MONGODB_DATABASE", "t_indexes", 1);
    assert_int_equal (readmodel_mongo_migrate (s_config), 0);
    assert_int_equal (readmodel_mongo_migrate (s_config), 0);
    s_indexes ("t_indexes", RM_COLL_CASES, text, sizeof text);
    assert_string_equal (text, "_id_,cases_by_client,cases_by_seq(unique),cases_by_status,cases_by_type,");
    setenv ("DOSSIER_MONGODB_DATABASE", "not/a/name", 1);
    assert_int_equal (readmodel_mongo_migrate (s_config), -1);
    unsetenv ("DOSSIER_MONGODB_DATABASE");
    s_drop ("t_indexes");
}

static void
test_is_readmodel_and_bad_config (void **state)
{
    (void) state;
    assert_int_equal (readmodel_mongo_ops.is_readmodel ("t_nothing_here", s_config), 1);
    projection_t *p = s_mongo ("t_ours");
    projection_destroy (&p);
    assert_int_equal (readmodel_mongo_ops.is_readmodel ("t_ours", s_config), 1);
    mongoc_collection_t *coll = mongoc_client_get_collection (s_client, "t_ours", "events");
    bson_t *doc = BCON_NEW ("x", BCON_INT32 (1));
    assert_true (mongoc_collection_insert_one (coll, doc, NULL, NULL, NULL));
    bson_destroy (doc);
    mongoc_collection_destroy (coll);
    assert_int_equal (readmodel_mongo_ops.is_readmodel ("t_ours", s_config), 0);
    assert_int_equal (readmodel_mongo_ops.is_readmodel ("../etc", s_config), -1);
    assert_int_equal (readmodel_mongo_ops.is_readmodel ("", s_config), -1);
    s_drop ("t_ours");

    /* names that are not database names, and settings that make no sense */
    assert_null (projection_new_with (&readmodel_mongo_ops, "/abs/path.db", s_config));
    assert_null (projection_new_with (&readmodel_mongo_ops, "a.b", s_config));
    setenv ("DOSSIER_MONGODB_WRITE_CONCERN", "most", 1);
    assert_null (projection_new_with (&readmodel_mongo_ops, "t_bad", s_config));
    setenv ("DOSSIER_MONGODB_WRITE_CONCERN", "1", 1);
    setenv ("DOSSIER_MONGODB_JOURNAL", "perhaps", 1);
    assert_null (projection_new_with (&readmodel_mongo_ops, "t_bad", s_config));
    setenv ("DOSSIER_MONGODB_JOURNAL", "false", 1);
    p = s_mongo ("t_w1");                /* w:1, no journal: accepted */
    projection_destroy (&p);
    unsetenv ("DOSSIER_MONGODB_WRITE_CONCERN");
    unsetenv ("DOSSIER_MONGODB_JOURNAL");
    setenv ("DOSSIER_MONGODB_URI", "http://not-mongo", 1);
    assert_null (projection_new_with (&readmodel_mongo_ops, "t_bad", s_config));
    setenv ("DOSSIER_MONGODB_URI", s_ferret.uri, 1);
    assert_int_equal (readmodel_store_lookup ("mongodb") == &readmodel_mongo_ops, 1);
    assert_int_equal (readmodel_store_lookup ("sqlite") == &readmodel_sqlite_ops, 1);
    assert_int_equal (readmodel_store_lookup (NULL) == &readmodel_sqlite_ops, 1);
    assert_null (readmodel_store_lookup ("oracle"));
    s_drop ("t_w1");
}

/* The database goes away for a while: writes fail fast, nothing is lost, and the
 * same projection carries on when it is back; one opened while it is down loads
 * later. */
static void
test_database_down_and_back (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_full_log (&log);
    char *expected = s_sqlite_dump (&log);
    projection_t *p = s_mongo ("t_outage");
    assert_int_equal (projection_apply (p, log.events, 8), 0);

    t_ferret_stop (&s_ferret);
    int64_t t0 = t_ferret_now_ms ();
    assert_int_equal (projection_apply (p, log.events + 8, 6), -1);
    int64_t took = t_ferret_now_ms () - t0;
    if (took > 3000)
        fail_msg ("a write to a database that is down took %lld ms", (long long) took);
    assert_int_equal (projection_checkpoint (p), 8);
    projection_t *late = projection_new_with (&readmodel_mongo_ops, "t_outage", s_config);
    assert_non_null (late);
    assert_false (projection_loaded (late));
    assert_int_equal (projection_apply (late, log.events, 1), -1);
    assert_int_equal (projection_load (late), -1);

    t_ferret_restart (&s_ferret);
    /* the driver waits a few seconds before it tries a failed server again */
    int64_t deadline = t_ferret_now_ms () + 20000;
    while (projection_apply (p, log.events + 8, log.count - 8) != 0) {
        assert_true (t_ferret_now_ms () < deadline);
        usleep (100000);
    }
    assert_int_equal (projection_checkpoint (p), (int64_t) log.count);
    char *got = t_mongo_dump (s_client, "t_outage");
    s_assert_same (expected, got, "after the outage");
    free (got);
    while (projection_load (late) != 0) {
        assert_true (t_ferret_now_ms () < deadline);
        usleep (100000);
    }
    assert_true (projection_loaded (late));
    assert_int_equal (projection_checkpoint (late), (int64_t) log.count);
    projection_destroy (&late);
    projection_destroy (&p);
    free (expected);
    s_drop ("t_outage");
}

int
main (void)
{
    log_init ("test", getenv ("T_LOG") ? getenv ("T_LOG") : "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_rows_equal_sqlite_rows),
        cmocka_unit_test (test_replay_over_newer_rows),
        cmocka_unit_test (test_crash_mid_batch_replays_to_same_rows),
        cmocka_unit_test (test_rebuild_into_target_and_in_place),
        cmocka_unit_test (test_indexes_and_migrate),
        cmocka_unit_test (test_is_readmodel_and_bad_config),
        cmocka_unit_test (test_database_down_and_back),
    };
    int rc = cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
    zsys_shutdown ();
    return rc;
}
