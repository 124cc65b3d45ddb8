/* readmodel_sqlite — the embedded read-model backend: one SQLite file
 * (schemas/readmodels.sql) in WAL mode, each batch one transaction with the
 * checkpoint, so a crash never leaves a half-applied batch behind. A rebuild target
 * is built beside its place, without a WAL, and renamed into place when complete. */
#include "readmodel_store.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "readmodel_schema.h"
#include "sqlite_checkpointer.h"

/* How long a write waits for the file's lock (another projector partition, a
 * rebuild in place) before the batch counts as failed and is retried, and how often
 * it tries meanwhile: often, so that a writer that commits and soon begins again
 * does not starve the other (SQLite's own handler backs off to 100 ms). */
#define S_BUSY_TIMEOUT_MS 10000
#define S_BUSY_POLL_US    2000

/* The leases of projector partitions (projector_partition = auto), in the read-model
 * file beside the checkpoints. */
#define S_LEASE_TABLE "projector_leases"

/* Audit-trail rows are inserted this many to a statement: the cost of running a
 * statement is paid once for all of them. */
#define S_EVENTS_PER_INSERT 32

/* The page cache: large while a catch-up or a rebuild writes page after page,
 * small once the projector follows the live feed (steady-state memory). Busy, it
 * holds the hot pages of the indexes keyed by random ids; a miss is a read from the
 * OS's cache (and a spilled page a write to it), a few microseconds each, so less
 * cache is more CPU. Measured, CPU of the projector (means of 2-3 runs): rebuilding
 * 320,000 events 3.90 s with 64 MB, 4.09 with 32, 4.34 with 16, 4.54 with 8;
 * catching up 320,000 events 18.1 us/event with 64 MB, 18.3 with 32, 20.9 with 8.
 * 32 MB keeps the speed for half the memory; the process peaks near 60 MB busy and
 * is back near 20 once idle. */
#define S_CACHE_BUSY "PRAGMA cache_size = -32768"
#define S_CACHE_IDLE "PRAGMA cache_size = -8192"

enum {
    S_CHECKPOINT_GET, S_CHECKPOINT_PUT,
    S_CASE_GET, S_CASE_PUT,
    S_COMPANY_INS, S_COMPANY_UPD, S_PERSON_INS, S_PERSON_UPD, S_BO_INS, S_BO_UPD,
    S_DOC_GET, S_DOC_INS, S_DOC_UPD,
    S_EVENT_PUT, S_EVENT_PUT_MANY, S_ERROR_PUT,
    S_CASE_COMPANIES, S_CASE_PERSONS, S_CASE_BOS, S_CASE_DOCS,
    S_STMT_COUNT
};

/* Child rows: an insert that does nothing when the id is stored, then, only then,
 * the update guarded by updated_position (the same rows an upsert would give, and
 * the caller learns whether the row was new). Parameters of both: ?1 id, ?2 case_id,
 * ?3 seq, ?4 updated_position, ?5 json, ?6 company_id, ?7 status. */
static const char *s_sql [S_STMT_COUNT] = {
    /* every row: one per partition (readmodel_store.h, load) */
    [S_CHECKPOINT_GET] = "SELECT name, position FROM checkpoint",
    [S_CHECKPOINT_PUT] = "INSERT INTO checkpoint (name, position) VALUES (?1, ?2) "
                         "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    [S_CASE_GET]       = "SELECT seq, updated_position, summary_json, client_id, traitement_type, status "
                         "FROM cases WHERE id = ?1",
    [S_CASE_PUT]       = "INSERT INTO cases (id, seq, client_id, traitement_type, status, updated_position, "
                         "summary_json, full_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                         "ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, "
                         "traitement_type = excluded.traitement_type, status = excluded.status, "
                         "updated_position = excluded.updated_position, summary_json = excluded.summary_json, "
                         "full_json = excluded.full_json WHERE excluded.updated_position >= cases.updated_position",
    [S_COMPANY_INS]    = "INSERT INTO companies (id, case_id, seq, updated_position, json) VALUES (?1, ?2, ?3, ?4, ?5) "
                         "ON CONFLICT (id) DO NOTHING",
    [S_COMPANY_UPD]    = "UPDATE companies SET case_id = ?2, updated_position = ?4, json = ?5 "
                         "WHERE id = ?1 AND updated_position < ?4",
    [S_PERSON_INS]     = "INSERT INTO persons (id, case_id, company_id, seq, updated_position, json) "
                         "VALUES (?1, ?2, ?6, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
    [S_PERSON_UPD]     = "UPDATE persons SET case_id = ?2, company_id = ?6, updated_position = ?4, json = ?5 "
                         "WHERE id = ?1 AND updated_position < ?4",
    [S_BO_INS]         = "INSERT INTO beneficial_owners (id, company_id, case_id, seq, updated_position, json) "
                         "VALUES (?1, ?6, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
    [S_BO_UPD]         = "UPDATE beneficial_owners SET company_id = ?6, case_id = ?2, updated_position = ?4, json = ?5 "
                         "WHERE id = ?1 AND updated_position < ?4",
    [S_DOC_GET]        = "SELECT seq, updated_position, json, case_id, status FROM documents WHERE id = ?1",
    [S_DOC_INS]        = "INSERT INTO documents (id, case_id, seq, status, updated_position, json) "
                         "VALUES (?1, ?2, ?3, ?7, ?4, ?5) ON CONFLICT (id) DO NOTHING",
    [S_DOC_UPD]        = "UPDATE documents SET status = ?7, updated_position = ?4, json = ?5 "
                         "WHERE id = ?1 AND updated_position < ?4",
    [S_EVENT_PUT]      = "INSERT INTO case_events (case_seq, version, case_id, position, json) "
                         "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (case_seq, version) DO NOTHING",
    [S_EVENT_PUT_MANY] = NULL,          /* built at open: S_EVENTS_PER_INSERT rows */
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

/* An audit-trail row waiting for its statement; text holds case_id then json. */
typedef struct {
    int64_t case_seq, version, position;
    size_t at, case_id_len, json_len;
} s_pending_t;

/* Live, checkpoints (the WAL copied into the file, with its fsync) run beside the
 * projector (common/sqlite_checkpointer.h): inline, each one stopped the applying
 * of events for the copy of a few megabytes, the slowest projections of all. */
#define S_CHECKPOINT_FRAMES  1000   /* WAL frames (pages) that wake the checkpointer */
#define S_CHECKPOINT_INLINE  16384  /* a WAL this long (64 MiB): it is behind, checkpoint inline */

typedef struct {
    sqlite3 *db;
    sqlite_checkpointer_t *checkpointer;    /* live on a WAL file; NULL otherwise */
    char *path;                 /* the file open (a rebuild target's partial file) */
    char *target;               /* a rebuild target: where path goes once complete */
    int complete;               /* the target's rebuild committed */
    sqlite3_stmt *stmt [S_STMT_COUNT];
    int in_tx;
    s_pending_t pending [S_EVENTS_PER_INSERT];
    size_t pending_count;
    char *text;                 /* the pending rows' strings */
    size_t text_size, text_cap;
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

/* *flag = 1 when sql returns a row. 0 ok, -1 failed (logged). */
static int
s_query_flag (s_self_t *self, const char *sql, int *flag)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (st);
    *flag = rc == SQLITE_ROW;
    sqlite3_finalize (st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error (NULL, NULL, "projection: %s: %s", self->path, sqlite3_errmsg (self->db));
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

/* fsync of a file (directory: 1) by name; 0 ok, -1 failed. */
static int
s_sync_path (const char *path, int directory)
{
    int fd = open (path, directory ? O_RDONLY | O_DIRECTORY : O_RDWR);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}

/* Binds one audit-trail row at parameters base+1..base+5 (the column order of
 * S_EVENT_PUT). */
static void
s_bind_event (sqlite3_stmt *st, int base, const char *text, const s_pending_t *e)
{
    sqlite3_bind_int64 (st, base + 1, e->case_seq);
    sqlite3_bind_int64 (st, base + 2, e->version);
    sqlite3_bind_text (st, base + 3, text + e->at, (int) e->case_id_len, SQLITE_STATIC);
    sqlite3_bind_int64 (st, base + 4, e->position);
    sqlite3_bind_text (st, base + 5, text + e->at + e->case_id_len, (int) e->json_len, SQLITE_STATIC);
}

/* Writes the audit-trail rows waiting for their statement: full groups with the
 * many-row statement, the rest one by one. 0 ok, -1 failed (logged). */
static int
s_flush_events (s_self_t *self)
{
    size_t n = self->pending_count;
    int rc = 0;
    if (n == S_EVENTS_PER_INSERT) {
        sqlite3_stmt *st = self->stmt [S_EVENT_PUT_MANY];
        for (size_t i = 0; i < n; i++) {
            s_pending_t *e = &self->pending [i];
            s_bind_event (st, (int) i * 5, self->text, e);
        }
        rc = s_step_done (self, st);
    }
    else
        for (size_t i = 0; i < n && rc == 0; i++) {
            s_pending_t *e = &self->pending [i];
            sqlite3_stmt *st = self->stmt [S_EVENT_PUT];
            s_bind_event (st, 0, self->text, e);
            rc = s_step_done (self, st);
        }
    self->pending_count = 0;
    self->text_size = 0;
    return rc;
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
    sqlite_checkpointer_destroy (&self->checkpointer);
    for (int i = 0; i < S_STMT_COUNT; i++)
        sqlite3_finalize (self->stmt [i]);
    if (self->db)
        sqlite3_close (self->db);
    if (self->target) {
        /* A complete rebuild reaches the disk (once, now: it was written without
         * waiting) and takes the target's place, with none of the old file's WAL
         * left beside it; an incomplete one is thrown away. */
        if (self->complete && s_sync_path (self->path, 0) != 0) {
            log_error (NULL, NULL, "projection: cannot sync %s: %s", self->path, strerror (errno));
            self->complete = 0;
        }
        if (self->complete) {
            char side [PATH_MAX];
            static const char *suffixes [] = { "-wal", "-shm", "-journal" };
            for (size_t i = 0; i < sizeof suffixes / sizeof suffixes [0]; i++)
                if (snprintf (side, sizeof side, "%s%s", self->target, suffixes [i]) < (int) sizeof side)
                    unlink (side);
            if (rename (self->path, self->target) != 0) {
                log_error (NULL, NULL, "projection: cannot move %s to %s: %s", self->path, self->target,
                           strerror (errno));
                unlink (self->path);
            }
            else {
                char dir [PATH_MAX];
                snprintf (dir, sizeof dir, "%s", self->target);
                s_sync_path (dirname (dir), 1);
            }
        }
        else
            unlink (self->path);
    }
    free (self->text);
    free (self->target);
    free (self->path);
    free (self);
}

/* The many-row insert of the audit trail. */
static char *
s_events_many_sql (void)
{
    const char *head = "INSERT INTO case_events (case_seq, version, case_id, position, json) VALUES ";
    const char *tail = " ON CONFLICT (case_seq, version) DO NOTHING";
    size_t size = strlen (head) + strlen (tail) + S_EVENTS_PER_INSERT * 14 + 1;
    char *sql = malloc (size);
    if (!sql)
        return NULL;
    size_t n = (size_t) snprintf (sql, size, "%s", head);
    for (int i = 0; i < S_EVENTS_PER_INSERT; i++)
        n += (size_t) snprintf (sql + n, size - n, "%s(?,?,?,?,?)", i ? "," : "");
    snprintf (sql + n, size - n, "%s", tail);
    return sql;
}

/* Busy handler: polls every S_BUSY_POLL_US up to S_BUSY_TIMEOUT_MS. */
static int
s_on_busy (void *arg, int count)
{
    (void) arg;
    if ((int64_t) count * S_BUSY_POLL_US >= (int64_t) S_BUSY_TIMEOUT_MS * 1000)
        return 0;
    usleep (S_BUSY_POLL_US);
    return 1;
}

/* Read models of an older layout (the audit trail keyed by case id) cannot be
 * altered in place: they are dropped, checkpoints included, so the projector builds
 * them again from the log. In one transaction, checked again inside it, since the
 * partitions of a scaled projector open the file side by side. 0 ok, -1 failed. */
static int
s_drop_old_layout (s_self_t *self)
{
    static const char *old_layout =
        "SELECT 1 FROM pragma_table_info('case_events') WHERE name = 'case_id' "
        "AND NOT EXISTS (SELECT 1 FROM pragma_table_info('case_events') WHERE name = 'case_seq')";
    int old = 0;
    if (s_query_flag (self, old_layout, &old) || !old)
        return old ? -1 : 0;
    if (s_exec (self, "BEGIN IMMEDIATE"))
        return -1;
    if (s_query_flag (self, old_layout, &old) == 0 && old) {
        log_warn (NULL, NULL, "projection: %s has read models of an older layout: "
                  "dropping them to build them again from the log", self->path);
        if (s_exec (self, "DROP TABLE IF EXISTS case_events; DROP TABLE IF EXISTS documents; "
                          "DROP TABLE IF EXISTS beneficial_owners; DROP TABLE IF EXISTS persons; "
                          "DROP TABLE IF EXISTS companies; DROP TABLE IF EXISTS cases; "
                          "DROP TABLE IF EXISTS projector_errors; DROP TABLE IF EXISTS checkpoint;")) {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return s_exec (self, "COMMIT");
}

/* 1 when db's journal is a WAL (not so for an in-memory database). */
static int
s_is_wal (sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    int wal = 0;
    if (sqlite3_prepare_v2 (db, "PRAGMA journal_mode", -1, &stmt, NULL) == SQLITE_OK
    &&  sqlite3_step (stmt) == SQLITE_ROW) {
        const char *mode = (const char *) sqlite3_column_text (stmt, 0);
        wal = mode && strcmp (mode, "wal") == 0;
    }
    sqlite3_finalize (stmt);
    return wal;
}

/* Opens path. bulk: a rebuild target nobody reads before it is complete, so a
 * crash may leave it broken (it is thrown away): the journal stays in memory, no
 * write waits for the disk until the final commit, and no other connection may
 * open it meanwhile. */
static s_self_t *
s_open_file (const char *path, int bulk)
{
    s_self_t *self = calloc (1, sizeof (s_self_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    if (!self->path)
        goto fail;
    if (sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "projection: cannot open %s: %s", path,
                   self->db ? sqlite3_errmsg (self->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_handler (self->db, s_on_busy, NULL);
    /* Row records of a batch are bigger than the default lookaside slots. */
    sqlite3_db_config (self->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 2048, 64);
    /* Live: synchronous=NORMAL in WAL never corrupts, and the checkpoint commits
     * with the rows: a power cut can only lose a tail that is then projected again.
     * Bulk: the journal in memory still lets a failed rebuild roll back (a new file
     * has nothing to save in it), no write waits for the disk (the file is synced
     * once, complete, before it is renamed into place), and the lock is held from
     * the start so that nobody reads it half built. */
    const char *pragmas = bulk ? "PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; "
                                 "PRAGMA locking_mode = EXCLUSIVE; " S_CACHE_BUSY "; "
                                 "PRAGMA temp_store = MEMORY;"
                               : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                                 S_CACHE_IDLE "; PRAGMA temp_store = MEMORY; "
                                 /* a catch-up's or a rebuild's big WAL does not stay on disk */
                                 "PRAGMA journal_size_limit = 67108864;";
    if (s_exec (self, pragmas)
    ||  (!bulk && s_drop_old_layout (self))
    ||  s_exec (self, readmodel_schema_sql)
    ||  s_exec (self, readmodel_schema_errors_sql))
        goto fail;
    for (int i = 0; i < S_STMT_COUNT; i++) {
        char *built = i == S_EVENT_PUT_MANY ? s_events_many_sql () : NULL;
        const char *sql = i == S_EVENT_PUT_MANY ? built : s_sql [i];
        int rc = sql ? sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &self->stmt [i], NULL)
                     : SQLITE_NOMEM;
        free (built);
        if (rc != SQLITE_OK) {
            log_error (NULL, NULL, "projection: prepare failed: %s", sqlite3_errmsg (self->db));
            goto fail;
        }
    }
    if (!bulk && s_is_wal (self->db)) {
        self->checkpointer = sqlite_checkpointer_new (self->db, path, S_CHECKPOINT_FRAMES, S_CHECKPOINT_INLINE);
        if (!self->checkpointer)
            log_info (NULL, NULL, "projection: checkpoints of %s stay with the projector", path);
    }
    return self;
fail:
    s_close (self);
    return NULL;
}

static void *
s_open (const char *location, config_t *config)
{
    (void) config;
    return location ? s_open_file (location, 0) : NULL;
}

/* A rebuild target is built in "<target>.partial" (one a crash left behind is
 * ours to remove) and renamed over the target when complete (s_close). */
static void *
s_open_rebuild (const char *location, config_t *config)
{
    (void) config;
    if (!location)
        return NULL;
    char partial [PATH_MAX];
    if (snprintf (partial, sizeof partial, "%s.partial", location) >= (int) sizeof partial)
        return NULL;
    unlink (partial);
    s_self_t *self = s_open_file (partial, 1);
    if (self && !(self->target = strdup (location))) {
        s_close (self);
        return NULL;
    }
    if (!self)
        unlink (partial);
    return self;
}

static int
s_checkpoint_get (void *impl, const char *name, int64_t *position)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_CHECKPOINT_GET];
    int64_t own = -1, least = -1;
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        const char *row = (const char *) sqlite3_column_text (st, 0);
        int64_t at = sqlite3_column_int64 (st, 1);
        if (row && strcmp (row, name) == 0)
            own = at;
        if (least < 0 || at < least)
            least = at;
    }
    sqlite3_reset (st);
    *position = own >= 0 ? own : least >= 0 ? least : 0;
    return rc != SQLITE_DONE ? -1 : own >= 0 ? 0 : 1;
}

static int
s_checkpoints (void *impl, rm_checkpoint_fn *fn, void *arg)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *st = self->stmt [S_CHECKPOINT_GET];
    int rc, stopped = 0;
    while (!stopped && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        const char *name = (const char *) sqlite3_column_text (st, 0);
        stopped = name && fn (arg, name, sqlite3_column_int64 (st, 1)) != 0;
    }
    sqlite3_reset (st);
    return stopped || rc != SQLITE_DONE ? -1 : 0;
}

static int
s_load (void *impl, const char *checkpoint, int64_t *position)
{
    return s_checkpoint_get (impl, checkpoint, position) < 0 ? -1 : 0;
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
                                            "documents", "case_events", "projector_errors", S_LEASE_TABLE };
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
    if (!self->in_tx || s_flush_events (self))
        return -1;
    if (s_exec (self, "COMMIT"))
        return -1;
    self->in_tx = 0;
    if (self->target)
        self->complete = 1;
    return 0;
}

static void
s_rollback (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    self->pending_count = 0;
    self->text_size = 0;
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
    self->pending_count = 0;            /* gone with the tables */
    self->text_size = 0;
    /* Every table, whatever its name: a rebuild starts from nothing. Inside the
     * transaction, so readers keep the old rows until commit. */
    zlist_t *names = zlist_new ();
    if (!names)
        return -1;
    zlist_autofree (names);
    sqlite3_stmt *st = NULL;
    /* (but the leases of projector partitions: who projects is not a read model) */
    int rc = sqlite3_prepare_v2 (self->db, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                 "AND name NOT LIKE 'sqlite_%' AND name <> '" S_LEASE_TABLE "'", -1, &st, NULL);
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
        [RM_COMPANY] = S_COMPANY_INS, [RM_PERSON] = S_PERSON_INS,
        [RM_BENEFICIAL_OWNER] = S_BO_INS, [RM_DOCUMENT] = S_DOC_INS,
    };
    if ((unsigned) row->kind >= RM_KIND_COUNT)
        return -1;
    /* the insert, then (the id was stored) the guarded update: each right after the other */
    for (int update = 0; update < 2; update++) {
        sqlite3_stmt *st = self->stmt [which [row->kind] + update];
        sqlite3_bind_text (st, 1, row->id, -1, SQLITE_STATIC);
        sqlite3_bind_text (st, 2, row->case_id, -1, SQLITE_STATIC);
        if (!update)
            sqlite3_bind_int64 (st, 3, row->seq);
        sqlite3_bind_int64 (st, 4, row->updated_position);
        sqlite3_bind_text (st, 5, row->json, (int) row->json_size, SQLITE_STATIC);
        if (row->kind == RM_PERSON || row->kind == RM_BENEFICIAL_OWNER)
            s_bind_text (st, 6, row->company_id);
        if (row->kind == RM_DOCUMENT)
            sqlite3_bind_text (st, 7, row->status ? row->status : "", -1, SQLITE_STATIC);
        if (s_step_done (self, st))
            return -1;
        if (!update && sqlite3_changes (self->db) > 0)
            return 0;                   /* new */
    }
    return 1;
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

/* Queued: written with the next S_EVENTS_PER_INSERT - 1 of them, or at the next
 * sync, checkpoint or commit. (The projector never reads the audit trail back.) */
static int
s_put_event (void *impl, const rm_event_row_t *row)
{
    s_self_t *self = (s_self_t *) impl;
    size_t case_id_len = strlen (row->case_id);
    size_t need = self->text_size + case_id_len + row->json_size;
    if (need > self->text_cap) {
        size_t cap = self->text_cap ? self->text_cap : 32768;
        while (cap < need)
            cap *= 2;
        char *text = realloc (self->text, cap);
        if (!text)
            return -1;
        self->text = text;
        self->text_cap = cap;
    }
    s_pending_t *e = &self->pending [self->pending_count++];
    e->case_seq = row->case_seq;
    e->version = row->version;
    e->position = row->position;
    e->at = self->text_size;
    e->case_id_len = case_id_len;
    e->json_len = row->json_size;
    memcpy (self->text + self->text_size, row->case_id, case_id_len);
    memcpy (self->text + self->text_size + case_id_len, row->json, row->json_size);
    self->text_size = need;
    return self->pending_count == S_EVENTS_PER_INSERT ? s_flush_events (self) : 0;
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

static void
s_set_busy (void *impl, int busy)
{
    s_self_t *self = (s_self_t *) impl;
    if (self->target)
        return;                         /* a rebuild target is always busy */
    sqlite3_exec (self->db, busy ? S_CACHE_BUSY : S_CACHE_IDLE, NULL, NULL, NULL);
    if (!busy)
        sqlite3_db_release_memory (self->db);
}

static int
s_sync (void *impl)
{
    /* one connection, one transaction: reads already see the writes */
    return s_flush_events ((s_self_t *) impl);
}

static int
s_set_checkpoint (void *impl, const char *const *names, size_t count, int64_t position)
{
    s_self_t *self = (s_self_t *) impl;
    if (s_flush_events (self))
        return -1;
    sqlite3_stmt *st = self->stmt [S_CHECKPOINT_PUT];
    for (size_t i = 0; i < count; i++) {
        sqlite3_bind_text (st, 1, names [i], -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 2, position);
        if (s_step_done (self, st))
            return -1;
    }
    return 0;
}

/* ---- leases of projector partitions ------------------------------------------- */

/* Made on the first claim only: read models of fixed partitions never have it, and
 * clear keeps it (s_clear) so that a rebuild in place does not free every lease. */
static const char s_lease_ddl [] =
    "CREATE TABLE IF NOT EXISTS " S_LEASE_TABLE " (\n"
    "    partition_count INTEGER NOT NULL,\n"
    "    partition_index INTEGER NOT NULL,\n"
    "    owner      TEXT NOT NULL,\n"
    "    expires_at INTEGER NOT NULL,   -- wall-clock ms\n"
    "    PRIMARY KEY (partition_count, partition_index)\n"
    ");\n";

/* Prepares sql on self's connection (not cached: a lease is touched every few
 * seconds). NULL on failure (logged). */
static sqlite3_stmt *
s_lease_stmt (s_self_t *self, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "projection: %s: %s", self->path, sqlite3_errmsg (self->db));
        sqlite3_finalize (st);
        return NULL;
    }
    return st;
}

static int
s_lease_claim (void *impl, int count, const char *owner, int64_t now_ms, int64_t ttl_ms, int *index)
{
    s_self_t *self = (s_self_t *) impl;
    if (self->in_tx || count < 1)
        return -1;
    char *held = calloc ((size_t) count, 1);       /* 1 someone else's, 2 ours */
    if (!held)
        return -1;
    /* The write lock from the start: nobody claims between our read and our write. */
    int rc = s_exec (self, "BEGIN IMMEDIATE");
    if (rc == 0) {
        rc = s_exec (self, s_lease_ddl);
        sqlite3_stmt *st = rc ? NULL
                         : s_lease_stmt (self, "SELECT partition_index, owner, expires_at FROM " S_LEASE_TABLE
                                               " WHERE partition_count = ?1");
        if (!st)
            rc = -1;
        else {
            sqlite3_bind_int (st, 1, count);
            int step;
            while ((step = sqlite3_step (st)) == SQLITE_ROW) {
                int i = sqlite3_column_int (st, 0);
                const char *who = (const char *) sqlite3_column_text (st, 1);
                if (i < 0 || i >= count)
                    continue;
                if (who && strcmp (who, owner) == 0)
                    held [i] = 2;
                else
                if (sqlite3_column_int64 (st, 2) >= now_ms)
                    held [i] = 1;
            }
            if (step != SQLITE_DONE)
                rc = -1;
            sqlite3_finalize (st);
        }
        int pick = -1;
        for (int i = 0; rc == 0 && i < count && pick < 0; i++)
            if (held [i] == 2)
                pick = i;
        for (int i = 0; rc == 0 && i < count && pick < 0; i++)
            if (held [i] == 0)
                pick = i;
        if (rc == 0 && pick >= 0) {
            st = s_lease_stmt (self, "INSERT INTO " S_LEASE_TABLE " (partition_count, partition_index, owner, expires_at) "
                                     "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (partition_count, partition_index) DO UPDATE "
                                     "SET owner = excluded.owner, expires_at = excluded.expires_at");
            if (st) {
                sqlite3_bind_int (st, 1, count);
                sqlite3_bind_int (st, 2, pick);
                sqlite3_bind_text (st, 3, owner, -1, SQLITE_STATIC);
                sqlite3_bind_int64 (st, 4, now_ms + ttl_ms);
            }
            rc = st && sqlite3_step (st) == SQLITE_DONE ? 0 : -1;
            if (rc)
                log_error (NULL, NULL, "projection: %s: claiming a lease: %s", self->path, sqlite3_errmsg (self->db));
            sqlite3_finalize (st);
        }
        if (rc == 0 && s_exec (self, "COMMIT") == 0) {
            if (pick >= 0)
                *index = pick;
            rc = pick >= 0 ? 0 : 1;
        }
        else {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
            rc = -1;
        }
    }
    free (held);
    return rc;
}

/* UPDATE of our lease's expiry to expires_at; 0 done, 1 not ours, -2 the file stayed
 * locked by another writer, -1 failed. One statement: atomic by itself, or part of
 * the transaction that is open. */
static int
s_lease_update (s_self_t *self, int count, int index, const char *owner, int64_t expires_at)
{
    sqlite3_stmt *st = s_lease_stmt (self, "UPDATE " S_LEASE_TABLE " SET expires_at = ?4 "
                                           "WHERE partition_count = ?1 AND partition_index = ?2 AND owner = ?3");
    if (!st)
        return -1;
    sqlite3_bind_int (st, 1, count);
    sqlite3_bind_int (st, 2, index);
    sqlite3_bind_text (st, 3, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 4, expires_at);
    int step = sqlite3_step (st);
    int rc = step == SQLITE_DONE ? (sqlite3_changes (self->db) == 1 ? 0 : 1)
           : step == SQLITE_BUSY ? -2 : -1;
    if (rc == -1)
        log_warn (NULL, NULL, "projection: %s: renewing a lease: %s", self->path, sqlite3_errmsg (self->db));
    sqlite3_finalize (st);
    return rc;
}

static int
s_lease_renew (void *impl, int count, int index, const char *owner, int64_t now_ms, int64_t ttl_ms)
{
    return s_lease_update ((s_self_t *) impl, count, index, owner, now_ms + ttl_ms);
}

static int
s_lease_release (void *impl, int count, int index, const char *owner)
{
    s_self_t *self = (s_self_t *) impl;
    if (self->in_tx)
        return -1;
    return s_lease_update (self, count, index, owner, 0) < 0 ? -1 : 0;
}

const readmodel_store_ops_t readmodel_sqlite_ops = {
    .name = "sqlite",
    .transactional = 1,
    .open = s_open,
    .open_rebuild = s_open_rebuild,
    .close = s_close,
    .load = s_load,
    .checkpoint_get = s_checkpoint_get,
    .checkpoints = s_checkpoints,
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
    .set_busy = s_set_busy,
    .sync = s_sync,
    .set_checkpoint = s_set_checkpoint,
    .lease_claim = s_lease_claim,
    .lease_renew = s_lease_renew,
    .lease_release = s_lease_release,
};
