/* readmodel_sqlite — the embedded read-model backend: one SQLite file
 * (schemas/readmodels.sql) in WAL mode, each batch one transaction with the
 * checkpoint, so a crash never leaves a half-applied batch behind. */
#include "readmodel_store.h"

#include <czmq.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "readmodel_schema.h"

#define S_CHECKPOINT_NAME "projector"

enum {
    S_CHECKPOINT_GET, S_CHECKPOINT_PUT,
    S_CASE_GET, S_CASE_PUT,
    S_COMPANY_PUT, S_PERSON_PUT, S_BO_PUT,
    S_DOC_GET, S_DOC_PUT,
    S_EVENT_PUT, S_ERROR_PUT,
    S_CASE_COMPANIES, S_CASE_PERSONS, S_CASE_BOS, S_CASE_DOCS,
    S_STMT_COUNT
};

static const char *s_sql [S_STMT_COUNT] = {
    [S_CHECKPOINT_GET] = "SELECT position FROM checkpoint WHERE name = '" S_CHECKPOINT_NAME "'",
    [S_CHECKPOINT_PUT] = "INSERT INTO checkpoint (name, position) VALUES ('" S_CHECKPOINT_NAME "', ?1) "
                         "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    [S_CASE_GET]       = "SELECT seq, updated_position, summary_json, client_id, traitement_type, status "
                         "FROM cases WHERE id = ?1",
    [S_CASE_PUT]       = "INSERT INTO cases (id, seq, client_id, traitement_type, status, updated_position, "
                         "summary_json, full_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                         "ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, "
                         "traitement_type = excluded.traitement_type, status = excluded.status, "
                         "updated_position = excluded.updated_position, summary_json = excluded.summary_json, "
                         "full_json = excluded.full_json WHERE excluded.updated_position >= cases.updated_position",
    [S_COMPANY_PUT]    = "INSERT INTO companies (id, case_id, seq, updated_position, json) VALUES (?1, ?2, ?3, ?4, ?5) "
                         "ON CONFLICT (id) DO UPDATE SET case_id = excluded.case_id, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > companies.updated_position",
    [S_PERSON_PUT]     = "INSERT INTO persons (id, case_id, company_id, seq, updated_position, json) "
                         "VALUES (?1, ?2, ?6, ?3, ?4, ?5) "
                         "ON CONFLICT (id) DO UPDATE SET case_id = excluded.case_id, company_id = excluded.company_id, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > persons.updated_position",
    [S_BO_PUT]         = "INSERT INTO beneficial_owners (id, company_id, case_id, seq, updated_position, json) "
                         "VALUES (?1, ?6, ?2, ?3, ?4, ?5) "
                         "ON CONFLICT (id) DO UPDATE SET company_id = excluded.company_id, case_id = excluded.case_id, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > beneficial_owners.updated_position",
    [S_DOC_GET]        = "SELECT seq, updated_position, json, case_id, status FROM documents WHERE id = ?1",
    [S_DOC_PUT]        = "INSERT INTO documents (id, case_id, seq, status, updated_position, json) "
                         "VALUES (?1, ?2, ?3, ?7, ?4, ?5) "
                         "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > documents.updated_position",
    [S_EVENT_PUT]      = "INSERT INTO case_events (case_id, version, position, json) VALUES (?1, ?2, ?3, ?4) "
                         "ON CONFLICT (case_id, version) DO NOTHING",
    [S_ERROR_PUT]      = "INSERT INTO projector_errors (position, event_id, error) VALUES (?1, ?2, ?3) "
                         "ON CONFLICT (position) DO NOTHING",
    /* Children of one case, each in seq order. Column order: id, company_id, status,
     * seq, updated_position, json (NULL where a table has no such column). */
    [S_CASE_COMPANIES] = "SELECT id, NULL, NULL, seq, updated_position, json FROM companies "
                         "WHERE case_id = ?1 ORDER BY seq",
    [S_CASE_PERSONS]   = "SELECT id, company_id, NULL, seq, updated_position, json FROM persons "
                         "WHERE case_id = ?1 ORDER BY seq",
    /* through companies: beneficial_owners is indexed by company, not by case */
    [S_CASE_BOS]       = "SELECT b.id, b.company_id, NULL, b.seq, b.updated_position, b.json "
                         "FROM companies c JOIN beneficial_owners b ON b.company_id = c.id "
                         "WHERE c.case_id = ?1 AND b.case_id = ?1 ORDER BY b.seq",
    [S_CASE_DOCS]      = "SELECT id, NULL, status, seq, updated_position, json FROM documents "
                         "WHERE case_id = ?1 ORDER BY seq",
};

typedef struct {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt [S_STMT_COUNT];
    int in_tx;
} s_self_t;

static int
s_exec (s_self_t *self, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec (self->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        log_error (NULL, NULL, "projection: %s: %s", self->path, err ? err : sqlite3_errmsg (self->db));
        sqlite3_free (err);
        return -1;
    }
    return 0;
}

/* Steps a write statement to completion and resets it. 0 ok, -1 failed (logged). */
static int
s_step_done (s_self_t *self, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    if (rc != SQLITE_DONE) {
        log_error (NULL, NULL, "projection: write failed: %s", sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

static void
s_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
    if (text)
        sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (stmt, index);
}

static void
s_close (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (!self)
        return;
    if (self->in_tx) {
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        self->in_tx = 0;
    }
    for (int i = 0; i < S_STMT_COUNT; i++)
        sqlite3_finalize (self->stmt [i]);
    if (self->db)
        sqlite3_close (self->db);
    free (self->path);
    free (self);
}

static void *
s_open (const char *location, config_t *config)
{
    (void) config;
    if (!location)
        return NULL;
    s_self_t *self = calloc (1, sizeof (s_self_t));
    if (!self)
        return NULL;
    self->path = strdup (location);
    if (!self->path)
        goto fail;
    if (sqlite3_open_v2 (location, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "projection: cannot open %s: %s", location,
                   self->db ? sqlite3_errmsg (self->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout (self->db, 5000);
    /* synchronous=NORMAL in WAL never corrupts, and the checkpoint commits with the
     * rows: a power cut can only lose a tail that is then projected again. */
    if (s_exec (self, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                      "PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;")
    ||  s_exec (self, readmodel_schema_sql)
    ||  s_exec (self, readmodel_schema_errors_sql))
        goto fail;
    for (int i = 0; i < S_STMT_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, s_sql [i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt [i], NULL) != SQLITE_OK) {
            log_error (NULL, NULL, "projection: prepare failed: %s", sqlite3_errmsg (self->db));
            goto fail;
        }
    return self;
fail:
    s_close (self);
    return NULL;
}

static int
s_load (void *impl, int64_t *position)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_CHECKPOINT_GET];
    int rc = sqlite3_step (st);
    *position = rc == SQLITE_ROW ? sqlite3_column_int64 (st, 0) : 0;
    sqlite3_reset (st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int
s_is_readmodel (const char *path, config_t *config)
{
    (void) config;
    if (access (path, F_OK) != 0)
        return 1;
    sqlite3 *db = NULL;
    int ours = 0;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2 (db, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                "AND name NOT LIKE 'sqlite_%'", -1, &st, NULL) == SQLITE_OK) {
            static const char *known [] = { "checkpoint", "cases", "companies", "persons", "beneficial_owners",
                                            "documents", "case_events", "projector_errors" };
            int rc;
            ours = 1;
            while (ours && (rc = sqlite3_step (st)) == SQLITE_ROW) {
                const char *name = (const char *) sqlite3_column_text (st, 0);
                ours = 0;
                for (size_t i = 0; i < sizeof known / sizeof known [0] && !ours; i++)
                    ours = name && strcmp (name, known [i]) == 0;
            }
            if (ours && rc != SQLITE_DONE)
                ours = 0;              /* not a database at all, or unreadable */
        }
        sqlite3_finalize (st);
    }
    sqlite3_close (db);
    return ours;
}

/* ---- transactions ------------------------------------------------------------ */

static int
s_begin (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (self->in_tx || s_exec (self, "BEGIN IMMEDIATE"))
        return -1;
    self->in_tx = 1;
    return 0;
}

static int
s_commit (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (!self->in_tx || s_exec (self, "COMMIT"))
        return -1;
    self->in_tx = 0;
    return 0;
}

static void
s_rollback (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (self->in_tx) {
        char *err = NULL;
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, &err);
        sqlite3_free (err);
        self->in_tx = 0;
    }
}

static int
s_clear (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (!self->in_tx)
        return -1;
    /* Every table, whatever its name: a rebuild starts from nothing. Inside the
     * transaction, so readers keep the old rows until commit. */
    zlist_t *names = zlist_new ();
    if (!names)
        return -1;
    zlist_autofree (names);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (self->db, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                 "AND name NOT LIKE 'sqlite_%'", -1, &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW)
        zlist_append (names, (void *) sqlite3_column_text (st, 0));
    sqlite3_finalize (st);
    for (char *name = (char *) zlist_first (names); name && rc == SQLITE_OK; name = (char *) zlist_next (names)) {
        char *sql = sqlite3_mprintf ("DROP TABLE \"%w\"", name);
        rc = sql && s_exec (self, sql) == 0 ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_free (sql);
    }
    zlist_destroy (&names);
    if (rc != SQLITE_OK || s_exec (self, readmodel_schema_sql) || s_exec (self, readmodel_schema_errors_sql))
        return -1;
    return 0;
}

/* ---- reads ---------------------------------------------------------------------- */

static int
s_cases_get (void *impl, const char *const *ids, size_t count, rm_case_fn *fn, void *arg)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_CASE_GET];
    for (size_t i = 0; i < count; i++) {
        sqlite3_bind_text (st, 1, ids [i], -1, SQLITE_STATIC);
        int rc = sqlite3_step (st), stop = 0;
        if (rc == SQLITE_ROW) {
            rm_case_row_t row = {
                .id = ids [i],
                .seq = sqlite3_column_int64 (st, 0),
                .updated_position = sqlite3_column_int64 (st, 1),
                .summary_json = (const char *) sqlite3_column_text (st, 2),
                .summary_size = (size_t) sqlite3_column_bytes (st, 2),
                .client_id = (const char *) sqlite3_column_text (st, 3),
                .traitement_type = (const char *) sqlite3_column_text (st, 4),
                .status = (const char *) sqlite3_column_text (st, 5),
            };
            stop = fn (arg, &row);
        }
        sqlite3_reset (st);
        sqlite3_clear_bindings (st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            log_error (NULL, ids [i], "projection: read failed: %s", sqlite3_errmsg (self->db));
            return -1;
        }
        if (stop)
            return -1;
    }
    return 0;
}

static int
s_documents_get (void *impl, const char *const *ids, size_t count, rm_row_fn *fn, void *arg)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_DOC_GET];
    for (size_t i = 0; i < count; i++) {
        sqlite3_bind_text (st, 1, ids [i], -1, SQLITE_STATIC);
        int rc = sqlite3_step (st), stop = 0;
        if (rc == SQLITE_ROW) {
            rm_row_t row = {
                .kind = RM_DOCUMENT,
                .id = ids [i],
                .seq = sqlite3_column_int64 (st, 0),
                .updated_position = sqlite3_column_int64 (st, 1),
                .json = (const char *) sqlite3_column_text (st, 2),
                .json_size = (size_t) sqlite3_column_bytes (st, 2),
                .case_id = (const char *) sqlite3_column_text (st, 3),
                .status = (const char *) sqlite3_column_text (st, 4),
            };
            stop = fn (arg, &row);
        }
        sqlite3_reset (st);
        sqlite3_clear_bindings (st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            log_error (NULL, NULL, "projection: read failed: %s", sqlite3_errmsg (self->db));
            return -1;
        }
        if (stop)
            return -1;
    }
    return 0;
}

static int
s_children_get (void *impl, const char *const *case_ids, const int *fresh, size_t count, rm_row_fn *fn, void *arg)
{
    s_self_t *self = (s_self_t *) impl;
    (void) fresh;       /* reads inside the transaction are cheap and see every write */
    static const struct {
        int stmt;
        rm_kind_t kind;
    } queries [] = {
        { S_CASE_COMPANIES, RM_COMPANY }, { S_CASE_PERSONS, RM_PERSON },
        { S_CASE_BOS, RM_BENEFICIAL_OWNER }, { S_CASE_DOCS, RM_DOCUMENT },
    };
    for (size_t i = 0; i < count; i++)
        for (size_t q = 0; q < sizeof queries / sizeof queries [0]; q++) {
            sqlite3_stmt *st = self->stmt [queries [q].stmt];
            sqlite3_bind_text (st, 1, case_ids [i], -1, SQLITE_STATIC);
            int rc, stop = 0;
            while (!stop && (rc = sqlite3_step (st)) == SQLITE_ROW) {
                rm_row_t row = {
                    .kind = queries [q].kind,
                    .id = (const char *) sqlite3_column_text (st, 0),
                    .case_id = case_ids [i],
                    .company_id = (const char *) sqlite3_column_text (st, 1),
                    .status = (const char *) sqlite3_column_text (st, 2),
                    .seq = sqlite3_column_int64 (st, 3),
                    .updated_position = sqlite3_column_int64 (st, 4),
                    .json = (const char *) sqlite3_column_text (st, 5),
                    .json_size = (size_t) sqlite3_column_bytes (st, 5),
                };
                stop = fn (arg, &row);
            }
            sqlite3_reset (st);
            sqlite3_clear_bindings (st);
            if (stop)
                return -1;
            if (rc != SQLITE_DONE) {
                log_error (NULL, case_ids [i], "projection: read failed: %s", sqlite3_errmsg (self->db));
                return -1;
            }
        }
    return 0;
}

/* ---- writes --------------------------------------------------------------------- */

static int
s_put_row (void *impl, const rm_row_t *row)
{
    s_self_t *self = (s_self_t *) impl;
    static const int which [RM_KIND_COUNT] = {
        [RM_COMPANY] = S_COMPANY_PUT, [RM_PERSON] = S_PERSON_PUT,
        [RM_BENEFICIAL_OWNER] = S_BO_PUT, [RM_DOCUMENT] = S_DOC_PUT,
    };
    if ((unsigned) row->kind >= RM_KIND_COUNT)
        return -1;
    sqlite3_stmt *st = self->stmt [which [row->kind]];
    sqlite3_bind_text (st, 1, row->id, -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 2, row->case_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 3, row->seq);
    sqlite3_bind_int64 (st, 4, row->updated_position);
    sqlite3_bind_text (st, 5, row->json, (int) row->json_size, SQLITE_STATIC);
    if (row->kind == RM_PERSON || row->kind == RM_BENEFICIAL_OWNER)
        s_bind_text (st, 6, row->company_id);
    if (row->kind == RM_DOCUMENT)
        sqlite3_bind_text (st, 7, row->status ? row->status : "", -1, SQLITE_STATIC);
    return s_step_done (self, st);
}

static int
s_put_case (void *impl, const rm_case_row_t *row)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_CASE_PUT];
    sqlite3_bind_text (st, 1, row->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 2, row->seq);
    sqlite3_bind_text (st, 3, row->client_id ? row->client_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 4, row->traitement_type ? row->traitement_type : "", -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 5, row->status ? row->status : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 6, row->updated_position);
    sqlite3_bind_text (st, 7, row->summary_json, (int) row->summary_size, SQLITE_STATIC);
    sqlite3_bind_text (st, 8, row->full_json, (int) row->full_size, SQLITE_STATIC);
    return s_step_done (self, st);
}

static int
s_put_event (void *impl, const rm_event_row_t *row)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_EVENT_PUT];
    sqlite3_bind_text (st, 1, row->case_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 2, row->version);
    sqlite3_bind_int64 (st, 3, row->position);
    sqlite3_bind_text (st, 4, row->json, (int) row->json_size, SQLITE_STATIC);
    return s_step_done (self, st);
}

static int
s_put_error (void *impl, int64_t position, const char *event_id, const char *error)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_ERROR_PUT];
    sqlite3_bind_int64 (st, 1, position);
    sqlite3_bind_text (st, 2, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 3, error, -1, SQLITE_STATIC);
    return s_step_done (self, st);
}

static int
s_sync (void *impl)
{
    (void) impl;        /* one connection, one transaction: reads already see the writes */
    return 0;
}

static int
s_set_checkpoint (void *impl, int64_t position)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_CHECKPOINT_PUT];
    sqlite3_bind_int64 (st, 1, position);
    return s_step_done (self, st);
}

const readmodel_store_ops_t readmodel_sqlite_ops = {
    .name = "sqlite",
    .transactional = 1,
    .open = s_open,
    .close = s_close,
    .load = s_load,
    .is_readmodel = s_is_readmodel,
    .begin = s_begin,
    .clear = s_clear,
    .commit = s_commit,
    .rollback = s_rollback,
    .cases_get = s_cases_get,
    .documents_get = s_documents_get,
    .children_get = s_children_get,
    .put_row = s_put_row,
    .put_case = s_put_case,
    .put_event = s_put_event,
    .put_error = s_put_error,
    .sync = s_sync,
    .set_checkpoint = s_set_checkpoint,
};
