/* test_projection_schema — the DDL compiled into the projector is byte for byte
 * schemas/readmodels.sql (one source of truth), and both DDL strings run cleanly
 * twice on a fresh SQLite database (IF NOT EXISTS everywhere). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../actors/projector/readmodel_schema.h"

/* Reads the contract file: from the repository root (where `make unit` runs the
 * tests) or next to this source file. Caller frees. */
static char *
s_read_contract (void)
{
    char here [512];
    snprintf (here, sizeof here, "%s", __FILE__);
    char alt [600];
    snprintf (alt, sizeof alt, "%s/../../schemas/readmodels.sql", dirname (here));
    /* the binary lives in build/tests or build-san/tests: the repository is two levels up */
    char exe [512] = "";
    ssize_t n_exe = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    exe [n_exe > 0 ? n_exe : 0] = 0;
    char by_exe [600];
    snprintf (by_exe, sizeof by_exe, "%s/../../schemas/readmodels.sql", dirname (exe));
    const char *paths [] = { "schemas/readmodels.sql", alt, by_exe };
    for (size_t i = 0; i < sizeof paths / sizeof paths [0]; i++) {
        FILE *f = fopen (paths [i], "rb");
        if (!f)
            continue;
        char *text = calloc (1, 1 << 20);
        size_t n = fread (text, 1, (1 << 20) - 1, f);
        fclose (f);
        text [n] = 0;
        return text;
    }
    fail_msg ("schemas/readmodels.sql not found (run from the repository root)");
    return NULL;
}

static void
test_ddl_matches_contract_file (void **state)
{
    (void) state;
    char *contract = s_read_contract ();
    if (strcmp (contract, readmodel_schema_sql) != 0) {
        size_t i = 0;
        while (contract [i] && contract [i] == readmodel_schema_sql [i])
            i++;
        fail_msg ("actors/projector/readmodel_schema.c drifted from schemas/readmodels.sql at byte %zu:\n"
                  "file: ...%.60s\ncode: ...%.60s", i, contract + i, readmodel_schema_sql + i);
    }
    /* the projector's own table is not in the contract file */
    assert_null (strstr (contract, "projector_errors"));
    free (contract);
}

static void
test_ddl_runs_twice (void **state)
{
    (void) state;
    sqlite3 *db;
    assert_int_equal (sqlite3_open (":memory:", &db), SQLITE_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal (sqlite3_exec (db, readmodel_schema_sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal (sqlite3_exec (db, readmodel_schema_errors_sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_stmt *st;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", -1, &st, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (st), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (st, 0), 8);
    sqlite3_finalize (st);
    sqlite3_close (db);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_ddl_matches_contract_file),
        cmocka_unit_test (test_ddl_runs_twice),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
