/* test_scheduler_db — the scheduler's pending deferrals keep the trace context of the
 * event that deferred them, and a database from before trace context is upgraded on
 * open (its rows read as without one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../actors/scheduler/scheduler_db.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void
s_deferred (event_t *ev, int64_t position, const char *case_id, const char *data, const char *tp)
{
    memset (ev, 0, sizeof *ev);
    ev->position = position;
    ev->version = 1;
    snprintf (ev->stream, sizeof ev->stream, "%s", case_id);
    snprintf (ev->type, sizeof ev->type, "NotificationDecisionDeferred");
    snprintf (ev->traceparent, sizeof ev->traceparent, "%s", tp);
    ev->data = data;
    ev->data_size = strlen (data);
}

static void
test_pending_keeps_the_trace (void **state)
{
    (void) state;
    char dir [] = "/tmp/dossier-sched-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path [64];
    snprintf (path, sizeof path, "%s/scheduler.db", dir);
    /* a database as the scheduler wrote it before trace context, one deferral pending */
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db,
        "CREATE TABLE checkpoint (name TEXT PRIMARY KEY, position INTEGER NOT NULL);"
        "CREATE TABLE pending (deferral_id TEXT PRIMARY KEY, case_id TEXT NOT NULL,"
        " position INTEGER NOT NULL UNIQUE);"
        "INSERT INTO pending VALUES ('d-old', 'case-old', 3);"
        "INSERT INTO checkpoint VALUES ('scheduler', 3);", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);

    scheduler_db_t *sdb = scheduler_db_open (path);
    assert_non_null (sdb);
    assert_int_equal (scheduler_db_checkpoint (sdb), 3);
    event_t events [2];
    s_deferred (&events [0], 4, "case-a", "{\"deferral_id\":\"d-a\"}", S_TP);
    s_deferred (&events [1], 5, "case-b", "{\"deferral_id\":\"d-b\"}", "");
    size_t added = 0;
    assert_int_equal (scheduler_db_apply (sdb, events, 2, &added), 0);
    assert_int_equal (added, 2);
    for (int round = 0; round < 2; round++) {
        scheduler_item_t items [4];
        assert_int_equal (scheduler_db_pending (sdb, 0, items, 4), 3);
        assert_string_equal (items [0].deferral_id, "d-old");
        assert_string_equal (items [0].traceparent, "");
        assert_string_equal (items [1].deferral_id, "d-a");
        assert_string_equal (items [1].traceparent, S_TP);
        assert_string_equal (items [2].traceparent, "");
        /* and after reopening (the column is there now) */
        scheduler_db_close (&sdb);
        sdb = scheduler_db_open (path);
        assert_non_null (sdb);
    }
    scheduler_db_close (&sdb);
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char file [80];
        snprintf (file, sizeof file, "%s%s", path, suffixes [i]);
        unlink (file);
    }
    assert_int_equal (rmdir (dir), 0);
}

/* Events of other types move the checkpoint in memory only; a deferral's batch, or
 * scheduler_db_sync, stores it. */
static void
test_checkpoint_lazy_past_other_events (void **state)
{
    (void) state;
    char dir [] = "/tmp/dossier-sched-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path [64];
    snprintf (path, sizeof path, "%s/scheduler.db", dir);
    scheduler_db_t *sdb = scheduler_db_open (path);
    assert_non_null (sdb);
    event_t events [3];
    for (int i = 0; i < 3; i++) {
        s_deferred (&events [i], i + 1, "case-a", "{}", "");
        snprintf (events [i].type, sizeof events [i].type, "CaseOpened");
    }
    size_t added = 9;
    assert_int_equal (scheduler_db_apply (sdb, events, 3, &added), 0);
    assert_int_equal (added, 0);
    assert_int_equal (scheduler_db_checkpoint (sdb), 3);
    assert_int_equal (scheduler_db_dirty (sdb), 1);
    scheduler_db_close (&sdb);
    sdb = scheduler_db_open (path);                 /* a crash: re-read from 1 */
    assert_int_equal (scheduler_db_checkpoint (sdb), 0);
    assert_int_equal (scheduler_db_dirty (sdb), 0);
    assert_int_equal (scheduler_db_apply (sdb, events, 3, &added), 0);
    assert_int_equal (scheduler_db_sync (sdb), 0);
    assert_int_equal (scheduler_db_dirty (sdb), 0);
    scheduler_db_close (&sdb);
    sdb = scheduler_db_open (path);
    assert_int_equal (scheduler_db_checkpoint (sdb), 3);
    /* more of them, then a deferral in the middle of a batch: stored with its row */
    s_deferred (&events [0], 4, "case-a", "{}", "");
    snprintf (events [0].type, sizeof events [0].type, "CaseOpened");
    assert_int_equal (scheduler_db_apply (sdb, events, 1, &added), 0);
    s_deferred (&events [0], 5, "case-a", "{}", "");
    snprintf (events [0].type, sizeof events [0].type, "CaseOpened");
    s_deferred (&events [1], 6, "case-b", "{\"deferral_id\":\"d-b\"}", "");
    s_deferred (&events [2], 7, "case-b", "{}", "");
    snprintf (events [2].type, sizeof events [2].type, "DocumentsRequested");
    assert_int_equal (scheduler_db_apply (sdb, events, 3, &added), 0);
    assert_int_equal (added, 1);
    assert_int_equal (scheduler_db_dirty (sdb), 0);
    scheduler_db_close (&sdb);
    sdb = scheduler_db_open (path);
    assert_int_equal (scheduler_db_checkpoint (sdb), 7);
    assert_int_equal (scheduler_db_count (sdb), 1);
    scheduler_db_close (&sdb);
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < 3; i++) {
        char file [80];
        snprintf (file, sizeof file, "%s%s", path, suffixes [i]);
        unlink (file);
    }
    assert_int_equal (rmdir (dir), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_pending_keeps_the_trace),
        cmocka_unit_test (test_checkpoint_lazy_past_other_events),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
