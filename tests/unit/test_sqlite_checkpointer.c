/* test_sqlite_checkpointer — the WAL of a writer with a checkpointer is copied into
 * the database file by the thread (the writer's commits never do it), an in-memory
 * database gets none, and destroy gives the writer its own checkpoints back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlite_checkpointer.h"

static char s_dir [64];
static char s_path [128];

static int
s_setup (void **state)
{
    (void) state;
    snprintf (s_dir, sizeof s_dir, "/tmp/dos-ckpt-XXXXXX");
    assert_non_null (mkdtemp (s_dir));
    snprintf (s_path, sizeof s_path, "%s/t.db", s_dir);
    return 0;
}

static int
s_teardown (void **state)
{
    (void) state;
    char path [160];
    const char *suffix [] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf (path, sizeof path, "%s%s", s_path, suffix [i]);
        unlink (path);
    }
    rmdir (s_dir);
    return 0;
}

static long
s_file_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (long) st.st_size : -1;
}

/* The test's database in WAL mode with its one table, after the extra pragmas. */
static sqlite3 *
s_open_wal (const char *pragmas)
{
    sqlite3 *db = NULL;
    char sql [256];
    snprintf (sql, sizeof sql, "PRAGMA journal_mode = WAL; %s CREATE TABLE t (v BLOB);", pragmas);
    assert_int_equal (sqlite3_open (s_path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

/* Commits `rows` rows of ~1 KiB, one transaction each. */
static void
s_write (sqlite3 *db, int rows)
{
    for (int i = 0; i < rows; i++)
        assert_int_equal (sqlite3_exec (db, "INSERT INTO t (v) VALUES (randomblob(1000))", NULL, NULL, NULL),
                          SQLITE_OK);
}

static void
test_the_thread_checkpoints (void **state)
{
    (void) state;
    sqlite3 *db = s_open_wal ("");
    /* the writer itself never checkpoints below 1,000,000 frames: only the thread does */
    sqlite_checkpointer_t *c = sqlite_checkpointer_new (db, s_path, 20, 1000000);
    assert_non_null (c);
    long before = s_file_size (s_path);
    s_write (db, 100);                  /* ~100 pages: past the 20 that wake the thread */
    long after = before;
    for (int i = 0; i < 200 && after < before + 50 * 1024; i++) {
        usleep (10000);
        after = s_file_size (s_path);
    }
    assert_true (after >= before + 50 * 1024);
    sqlite_checkpointer_destroy (&c);
    assert_null (c);
    sqlite_checkpointer_destroy (&c);   /* NULL is fine */
    sqlite3_close (db);
}

static void
test_without_thread_nothing_moves (void **state)
{
    (void) state;
    sqlite3 *db = s_open_wal ("PRAGMA wal_autocheckpoint = 0;");
    long before = s_file_size (s_path);
    s_write (db, 100);
    usleep (200000);
    /* the control: with no checkpoint at all the pages stay in the WAL */
    assert_true (s_file_size (s_path) < before + 50 * 1024);
    assert_true (s_file_size ("") == -1);
    sqlite3_close (db);
}

static void
test_destroy_gives_checkpoints_back (void **state)
{
    (void) state;
    sqlite3 *db = s_open_wal ("");
    sqlite_checkpointer_t *c = sqlite_checkpointer_new (db, s_path, 1000000, 1000000);
    assert_non_null (c);
    sqlite_checkpointer_destroy (&c);
    long before = s_file_size (s_path);
    s_write (db, 1100);                 /* past SQLite's own 1,000 frames: the commit checkpoints */
    assert_true (s_file_size (s_path) >= before + 500 * 1024);
    sqlite3_close (db);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_the_thread_checkpoints, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_without_thread_nothing_moves, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_destroy_gives_checkpoints_back, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
