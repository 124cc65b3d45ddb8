/* store_sqlite — the SQLite backend of the event log (file <data_dir>/events.db,
 * WAL). Positions are assigned here, inside the write transaction, as head+1..,
 * so they stay gapless whatever fails; each append runs in its own SAVEPOINT.
 *
 * Event ids are unique, but not through an index over every event id: event ids
 * are random-looking UUIDs, so such an index has each append dirty one random page
 * per event, and at commit those pages dominated what the log wrote (more than the
 * events themselves, and growing with the log). An id the handler minted is
 * UUIDv5(command id "/" index); its command id is unique in `commands`, so those ids
 * are unique by construction. Only ids that are not derived that way (other
 * clients, tests) go into the small table `event_ids`, and are checked against
 * everything; a derived id is checked against that table only. Checking a foreign
 * id that has the derived form (a UUIDv5) against derived ids takes a scan of the
 * log: no handler sends such ids, a client that did would only be slow. A log
 * created before this keeps its UNIQUE index, which then checks as it always did. */
#include "store_backend.h"
#include "ids.h"
#include "log.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS events ("
    "  position INTEGER PRIMARY KEY,"
    "  stream TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  command_id TEXT,"
    "  correlation_id TEXT,"
    "  data BLOB,"
    "  traceparent TEXT,"
    "  UNIQUE (stream, version));"
    "CREATE TABLE IF NOT EXISTS commands ("
    "  command_id TEXT PRIMARY KEY,"
    "  stream TEXT,"
    "  fingerprint TEXT,"
    "  result BLOB,"
    "  first_position INTEGER,"
    "  last_position INTEGER);"
    "CREATE TABLE IF NOT EXISTS event_ids ("
    "  event_id TEXT PRIMARY KEY) WITHOUT ROWID;";

#define S_EVENT_COLUMNS "position, stream, version, event_id, type, ts, command_id, correlation_id, data, traceparent"

/* Statement slots; the SQL of each is in s_sql at the same index. */
enum {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
    S_HEAD, S_STREAM_VERSION, S_COMMAND_GET, S_EVENT_INSERT, S_COMMAND_INSERT,
    S_READ_ALL, S_READ_STREAM, S_FOREIGN_FIND, S_FOREIGN_INSERT, S_EVENT_ID_SCAN, S_COUNT
};

static const char *s_sql [S_COUNT] = {
    [S_BEGIN]          = "BEGIN IMMEDIATE",
    [S_COMMIT]         = "COMMIT",
    [S_ROLLBACK]       = "ROLLBACK",
    [S_SAVEPOINT]      = "SAVEPOINT append_one",
    [S_RELEASE]        = "RELEASE append_one",
    [S_ROLLBACK_TO]    = "ROLLBACK TO append_one",
    [S_HEAD]           = "SELECT COALESCE(MAX(position), 0) FROM events",
    [S_STREAM_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?1",
    [S_COMMAND_GET]    = "SELECT result, fingerprint FROM commands WHERE command_id = ?1",
    [S_EVENT_INSERT]   = "INSERT INTO events (" S_EVENT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_COMMAND_INSERT] = "INSERT INTO commands (command_id, stream, fingerprint, result, first_position, last_position)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_READ_ALL]       = "SELECT " S_EVENT_COLUMNS " FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2",
    [S_READ_STREAM]    = "SELECT " S_EVENT_COLUMNS " FROM events WHERE stream = ?1 AND version >= ?2"
                         " ORDER BY version LIMIT ?3",
    [S_FOREIGN_FIND]   = "SELECT 1 FROM event_ids WHERE event_id = ?1",
    [S_FOREIGN_INSERT] = "INSERT INTO event_ids (event_id) VALUES (?1)",
    /* No index on purpose (see the top): only ids of the derived form that no
     * handler minted come here. */
    [S_EVENT_ID_SCAN]  = "SELECT 1 FROM events WHERE event_id = ?1 LIMIT 1",
};

/* Checkpoints (copying the WAL into the database file, with its fsync) run on a
 * thread of their own with a connection of its own, so that an append never waits
 * behind one: inline, every few megabytes of log, a commit took the checkpoint's
 * tens of milliseconds, which is what the slowest acknowledgments were made of. */
#define S_CHECKPOINT_FRAMES  1000   /* WAL frames (pages) that wake the checkpointer */
#define S_CHECKPOINT_INLINE  16384  /* a WAL this long (64 MiB): the checkpointer is behind, do it inline */

typedef struct {
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int pending;                /* frames were committed since the last checkpoint */
    int stop;
    sqlite3 *db;                /* the checkpointer's own connection */
} s_checkpointer_t;

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *stmt [S_COUNT];
    s_checkpointer_t checkpointer;
    char *path;
    int unique_index;           /* a log from before event_ids: its index checks ids */
    int has_foreign;            /* event_ids may have rows (never wrongly 0) */
    char (*derived) [IDS_UUID_LEN];     /* scratch: STORE_APPEND_MAX_EVENTS derived ids */
} s_sqlite_t;

/* Runs a statement that returns no rows. Returns the sqlite result code. */
static int
s_step_done (s_sqlite_t *self, int which)
{
    sqlite3_stmt *stmt = self->stmt [which];
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* Runs a one-integer query (head, stream version). 0 ok, -1 failed. */
static int
s_query_int (s_sqlite_t *self, int which, const char *text, int64_t *out)
{
    sqlite3_stmt *stmt = self->stmt [which];
    if (text)
        sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_ROW ? 0 : -1;
}

static void s_close (void *impl);

static void *
s_checkpointer_run (void *arg)
{
    s_checkpointer_t *c = (s_checkpointer_t *) arg;
    pthread_mutex_lock (&c->lock);
    while (!c->stop) {
        while (!c->pending && !c->stop)
            pthread_cond_wait (&c->wake, &c->lock);
        if (c->stop)
            break;
        c->pending = 0;
        pthread_mutex_unlock (&c->lock);
        /* PASSIVE: copies what it can without waiting for the writer or readers;
         * the writer restarts the WAL from its start once all of it is copied. */
        int rc = sqlite3_wal_checkpoint_v2 (c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn (NULL, NULL, "background checkpoint failed: %s", sqlite3_errmsg (c->db));
        pthread_mutex_lock (&c->lock);
    }
    pthread_mutex_unlock (&c->lock);
    return NULL;
}

/* Called by SQLite after each commit on the writer's connection with the WAL's
 * length in frames: a long enough WAL wakes the checkpointer (a very long one,
 * when that thread cannot keep up, is checkpointed right here). */
static int
s_wal_hook (void *arg, sqlite3 *db, const char *name, int frames)
{
    s_checkpointer_t *c = (s_checkpointer_t *) arg;
    if (frames >= S_CHECKPOINT_INLINE)
        sqlite3_wal_checkpoint_v2 (db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    else
    if (frames >= S_CHECKPOINT_FRAMES) {
        pthread_mutex_lock (&c->lock);
        c->pending = 1;
        pthread_cond_signal (&c->wake);
        pthread_mutex_unlock (&c->lock);
    }
    return SQLITE_OK;
}

/* Starts the checkpointer on location; without it (no thread, no connection)
 * SQLite's own checkpoints after commits stay on. 0 ok, -1 not started. */
static int
s_checkpointer_start (s_sqlite_t *self, const char *location)
{
    s_checkpointer_t *c = &self->checkpointer;
    if (sqlite3_open_v2 (location, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close (c->db);
        c->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout (c->db, 5000);
    /* A connection opens the WAL only when it first reads the database: until
     * then (SQLite 3.40) sqlite3_wal_checkpoint_v2 on it returns SQLITE_OK and
     * copies nothing, so the thread woke on every commit for nothing and every
     * checkpoint was the inline one at S_CHECKPOINT_INLINE, inside a commit. */
    if (sqlite3_exec (c->db, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL, NULL) != SQLITE_OK) {
        log_warn (NULL, NULL, "background checkpointer: cannot read %s: %s", location, sqlite3_errmsg (c->db));
        sqlite3_close (c->db);
        c->db = NULL;
        return -1;
    }
    pthread_mutex_init (&c->lock, NULL);
    pthread_cond_init (&c->wake, NULL);
    if (pthread_create (&c->thread, NULL, s_checkpointer_run, c) != 0) {
        pthread_mutex_destroy (&c->lock);
        pthread_cond_destroy (&c->wake);
        sqlite3_close (c->db);
        c->db = NULL;
        return -1;
    }
    c->started = 1;
    /* Our hook replaces SQLite's automatic checkpoint on this connection. */
    sqlite3_wal_hook (self->db, s_wal_hook, c);
    return 0;
}

static void
s_checkpointer_stop (s_sqlite_t *self)
{
    s_checkpointer_t *c = &self->checkpointer;
    if (!c->started)
        return;
    sqlite3_wal_hook (self->db, NULL, NULL);
    pthread_mutex_lock (&c->lock);
    c->stop = 1;
    pthread_cond_signal (&c->wake);
    pthread_mutex_unlock (&c->lock);
    pthread_join (c->thread, NULL);
    pthread_mutex_destroy (&c->lock);
    pthread_cond_destroy (&c->wake);
    sqlite3_close (c->db);
    c->db = NULL;
    c->started = 0;
}

/* *flag = 1 when sql returns a row. 0 ok, -1 failed. */
static int
s_query_flag (s_sqlite_t *self, const char *sql, int *flag)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step (stmt);
    sqlite3_finalize (stmt);
    *flag = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* 1 when the one-text-parameter query `which` returns a row, 0 when not, -1 failed. */
static int
s_exists (s_sqlite_t *self, int which, const char *text)
{
    sqlite3_stmt *stmt = self->stmt [which];
    sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Fills self->derived with the ids the append's events would have if a handler
 * minted them. Returns how many events carry another id (0: all derived). */
static size_t
s_derive (s_sqlite_t *self, const store_append_t *req)
{
    size_t foreign = 0;
    for (size_t e = 0; e < req->count; e++) {
        ids_uuid5_indexed (req->command_id, (int) e, self->derived [e]);
        if (strcmp (req->events [e].id, self->derived [e]) != 0)
            foreign++;
    }
    return foreign;
}

/* 1 when id has the form of an id a handler mints (a lowercase UUID, version 5):
 * only such an id can equal a derived one. */
static int
s_looks_derived (const char *id)
{
    for (int i = 0; i < 36; i++) {
        char c = id [i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        }
        else
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return id [36] == 0 && id [14] == '5' && (id [19] == '8' || id [19] == '9' || id [19] == 'a' || id [19] == 'b');
}

/* Checks that every event id of the append is free (see the top of this file),
 * recording in event_ids those that are not derived; self->derived is filled.
 * Without such ids this only reads. Returns 0, -2 when an id is taken, -1 on a
 * database error. */
static int
s_claim_event_ids (s_sqlite_t *self, const store_append_t *req)
{
    for (size_t e = 0; e < req->count; e++) {
        const char *id = req->events [e].id;
        int taken = self->has_foreign ? s_exists (self, S_FOREIGN_FIND, id) : 0;
        if (taken)
            return taken < 0 ? -1 : -2;
        if (strcmp (id, self->derived [e]) == 0)
            continue;
        /* Not derived: it may equal any id stored so far, or a derived one of
         * this very append (not inserted yet). Only an id of the derived form can
         * equal a derived id, and only those need the scan of the log (ids of any
         * other form, as tests and tools use, cost one lookup). */
        if (s_looks_derived (id)) {
            for (size_t j = 0; j < req->count; j++)
                if (strcmp (id, self->derived [j]) == 0 && strcmp (req->events [j].id, self->derived [j]) == 0)
                    return -2;
            taken = s_exists (self, S_EVENT_ID_SCAN, id);
            if (taken)
                return taken < 0 ? -1 : -2;
        }
        self->has_foreign = 1;
        sqlite3_stmt *stmt = self->stmt [S_FOREIGN_INSERT];
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        int rc = s_step_done (self, S_FOREIGN_INSERT);
        if (rc != SQLITE_DONE)
            return (rc & 0xff) == SQLITE_CONSTRAINT ? -2 : -1;
    }
    return 0;
}

/* "full" unless the configured value is one SQLite knows: a typo must not
 * silently make appends less durable than the default. */
static const char *
s_synchronous (config_t *config)
{
    static const char *known [] = { "off", "normal", "full", "extra" };
    const char *value = config ? config_get (config, "sqlite_synchronous", "full") : "full";
    for (size_t i = 0; i < sizeof known / sizeof known [0]; i++)
        if (strcasecmp (value, known [i]) == 0)
            return known [i];
    log_warn (NULL, NULL, "sqlite_synchronous '%.32s' unknown, using full", value);
    return "full";
}

static void *
s_open (const char *location, config_t *config)
{
    s_sqlite_t *self = calloc (1, sizeof (s_sqlite_t));
    if (!self)
        return NULL;
    self->path = strdup (location);
    self->derived = malloc (STORE_APPEND_MAX_EVENTS * sizeof *self->derived);
    if (!self->path || !self->derived)
        goto fail;
    if (sqlite3_open_v2 (location, &self->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "cannot open %s: %s", location,
                   self->db ? sqlite3_errmsg (self->db) : "out of memory");
        goto fail;
    }
    /* Another process (an old store being replaced) may hold the write lock briefly. */
    sqlite3_busy_timeout (self->db, 5000);
    /* cache_spill off: a group commit dirties more pages than the default cache
     * holds; spilled mid-transaction they went to the WAL, were dirtied again and
     * went again at commit (the WAL got three times the bytes it needed). The cache
     * grows for the length of one transaction instead and is given back when the
     * store goes quiet (s_idle). */
    char pragmas [160];
    snprintf (pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_spill=OFF;",
              s_synchronous (config));
    char *err = NULL;
    if (sqlite3_exec (self->db, pragmas, NULL, NULL, &err) != SQLITE_OK
    ||  sqlite3_exec (self->db, s_schema, NULL, NULL, &err) != SQLITE_OK) {
        log_error (NULL, NULL, "cannot prepare %s: %s", location, err ? err : "?");
        sqlite3_free (err);
        goto fail;
    }
    /* journal_mode=WAL quietly keeps the old mode where WAL is impossible (e.g.
     * some network file systems): say so, appends are still correct, only slower. */
    sqlite3_stmt *mode = NULL;
    int mode_is_wal = 0;
    if (sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode", -1, &mode, NULL) == SQLITE_OK
    &&  sqlite3_step (mode) == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text (mode, 0);
        mode_is_wal = text && strcasecmp ((const char *) text, "wal") == 0;
        if (!mode_is_wal)
            log_warn (NULL, NULL, "%s: journal mode is %s, not wal", location, text ? (const char *) text : "?");
    }
    sqlite3_finalize (mode);
    /* A log from before trace context lacks the column: adding a nullable column
     * rewrites nothing (old rows read it as NULL, i.e. no traceparent). */
    int has_traceparent = 0;
    if (s_query_flag (self, "SELECT 1 FROM pragma_table_info('events') WHERE name = 'traceparent'", &has_traceparent)
    ||  (!has_traceparent
         && sqlite3_exec (self->db, "ALTER TABLE events ADD COLUMN traceparent TEXT", NULL, NULL, &err) != SQLITE_OK)) {
        log_error (NULL, NULL, "cannot add the traceparent column to %s: %s", location,
                   err ? err : sqlite3_errmsg (self->db));
        sqlite3_free (err);
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, s_sql [i], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->stmt [i], NULL) != SQLITE_OK) {
            log_error (NULL, NULL, "cannot prepare statement %d: %s", i, sqlite3_errmsg (self->db));
            goto fail;
        }
    /* Only a log in WAL mode has checkpoints to move off the writer. */
    if (!mode_is_wal || s_checkpointer_start (self, location) != 0)
        log_info (NULL, NULL, "%s: checkpoints stay with the writer", location);
    if (s_query_flag (self, "SELECT 1 FROM pragma_index_list('events') AS l, pragma_index_info(l.name) AS i"
                            " WHERE l.\"unique\" = 1 AND i.name = 'event_id'", &self->unique_index)
    ||  s_query_flag (self, "SELECT 1 FROM event_ids LIMIT 1", &self->has_foreign)) {
        log_error (NULL, NULL, "cannot inspect %s: %s", location, sqlite3_errmsg (self->db));
        goto fail;
    }
    return self;
fail:
    s_close (self);
    return NULL;
}

static void
s_close (void *impl)
{
    s_sqlite_t *self = (s_sqlite_t *) impl;
    if (!self)
        return;
    /* First the checkpointer, so that the writer's close (which checkpoints and
     * removes the WAL) is the last to touch the log. */
    s_checkpointer_stop (self);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize (self->stmt [i]);
    if (self->db && sqlite3_close (self->db) != SQLITE_OK)
        log_error (NULL, NULL, "closing %s: %s", self->path, sqlite3_errmsg (self->db));
    free (self->path);
    free (self->derived);
    free (self);
}

static int
s_head (void *impl, int64_t *head)
{
    return s_query_int ((s_sqlite_t *) impl, S_HEAD, NULL, head);
}

static void
s_set_error (store_outcome_t *outcome, const char *error, const char *detail)
{
    free (outcome->result);
    memset (outcome, 0, sizeof (*outcome));
    outcome->kind = STORE_OUTCOME_ERROR;
    snprintf (outcome->error, sizeof outcome->error, "%s", error);
    snprintf (outcome->detail, sizeof outcome->detail, "%s", detail);
}

/* Looks up a stored command. Returns 1 found (outcome filled as DUPLICATE),
 * 0 not found, -1 database error. */
static int
s_find_command (s_sqlite_t *self, const char *command_id, store_outcome_t *outcome)
{
    sqlite3_stmt *stmt = self->stmt [S_COMMAND_GET];
    sqlite3_bind_text (stmt, 1, command_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    int found = 0;
    if (rc == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob (stmt, 0);
        size_t size = (size_t) sqlite3_column_bytes (stmt, 0);
        const unsigned char *fingerprint = sqlite3_column_text (stmt, 1);
        /* +1: a stored empty result still gets a distinct non-NULL buffer. */
        outcome->result = malloc (size + 1);
        if (!outcome->result)
            found = -1;
        else {
            if (size && blob)
                memcpy (outcome->result, blob, size);
            outcome->result [size] = 0;
            outcome->result_size = size;
            snprintf (outcome->fingerprint, sizeof outcome->fingerprint, "%s",
                      fingerprint ? (const char *) fingerprint : "");
            outcome->kind = STORE_OUTCOME_DUPLICATE;
            found = 1;
        }
    }
    else
    if (rc != SQLITE_DONE)
        found = -1;
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return found;
}

/* Inserts one append's events and its command row at positions head+1...
 * Returns 0 ok, -2 refused by a constraint (an event id already used, which only
 * the UNIQUE index of an old log can say here), -1 any other database error. */
static int
s_insert_append (s_sqlite_t *self, const store_batch_item_t *item, int64_t head, int64_t version,
                 int64_t now_us)
{
    const store_append_t *req = item->req;
    sqlite3_stmt *stmt = self->stmt [S_EVENT_INSERT];
    const char *correlation_id = item->correlation_id ? item->correlation_id : "";
    for (size_t e = 0; e < req->count; e++) {
        const store_new_event_t *ev = &req->events [e];
        /* Every parameter is bound again each time: no need to clear them. */
        sqlite3_bind_int64 (stmt, 1, head + 1 + (int64_t) e);
        sqlite3_bind_text (stmt, 2, req->stream, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 3, version + 1 + (int64_t) e);
        sqlite3_bind_text (stmt, 4, ev->id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 5, ev->type, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 6, now_us);
        sqlite3_bind_text (stmt, 7, req->command_id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 8, correlation_id, -1, SQLITE_STATIC);
        sqlite3_bind_blob (stmt, 9, ev->data ? ev->data : "", (int) ev->data_size, SQLITE_STATIC);
        if (item->traceparent)
            sqlite3_bind_text (stmt, 10, item->traceparent, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null (stmt, 10);
        int rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE)
            return (rc & 0xff) == SQLITE_CONSTRAINT ? -2 : -1;
    }
    stmt = self->stmt [S_COMMAND_INSERT];
    sqlite3_bind_text (stmt, 1, req->command_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, req->stream, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, req->fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_blob (stmt, 4, req->result ? req->result : "", (int) req->result_size, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 5, head + 1);
    sqlite3_bind_int64 (stmt, 6, head + (int64_t) req->count);
    int rc = s_step_done (self, S_COMMAND_INSERT);
    if (rc != SQLITE_DONE)
        return (rc & 0xff) == SQLITE_CONSTRAINT ? -2 : -1;
    return 0;
}

/* Applies one append. Returns 0 when the outcome is decided (whatever it is), -1
 * when the database failed and the batch must be abandoned.
 *
 * Everything that can refuse an append is checked before its first write: the
 * command id, the version, the event ids. So an append whose ids are all derived
 * cannot fail half-way and needs no SAVEPOINT (whose statement journal copied
 * every page the append touched). Ids of their own are recorded as they are
 * checked, and an old log's UNIQUE index refuses on insert: those appends run
 * inside a savepoint, so that a refusal undoes that append and only that. */
static int
s_apply_one (s_sqlite_t *self, const store_batch_item_t *item, int64_t *head, int64_t now_us,
             store_outcome_t *outcome)
{
    const store_append_t *req = item->req;
    int found = s_find_command (self, req->command_id, outcome);
    if (found)
        return found < 0 ? -1 : 0;
    int64_t version = 0;
    if (s_query_int (self, S_STREAM_VERSION, req->stream, &version))
        return -1;
    if ((req->expected_version == 0 && version != 0)
    ||  (req->expected_version > 0 && version != req->expected_version)) {
        outcome->kind = STORE_OUTCOME_CONFLICT;
        outcome->current_version = version;
        return 0;
    }
    int guarded = self->unique_index || s_derive (self, req) > 0;
    if (guarded && s_step_done (self, S_SAVEPOINT) != SQLITE_DONE)
        return -1;
    int rc = self->unique_index ? 0 : s_claim_event_ids (self, req);
    if (rc == -2 && !guarded) {
        /* refused by reads alone: nothing was written */
        s_set_error (outcome, "invalid", "an event id of this append is already stored");
        return 0;
    }
    if (rc == 0)
        rc = s_insert_append (self, item, *head, version, now_us);
    if (rc == 0) {
        if (guarded && s_step_done (self, S_RELEASE) != SQLITE_DONE)
            return -1;
        outcome->kind = STORE_OUTCOME_APPENDED;
        outcome->first_position = *head + 1;
        outcome->last_position = *head + (int64_t) req->count;
        outcome->version = version + (int64_t) req->count;
        *head += (int64_t) req->count;
        return 0;
    }
    if (!guarded)
        return -1;              /* it may have half-written: only abandoning the batch undoes that */
    /* Undo whatever part of this append got in, and only that. */
    if (s_step_done (self, S_ROLLBACK_TO) != SQLITE_DONE
    ||  s_step_done (self, S_RELEASE) != SQLITE_DONE)
        return -1;
    if (rc == -2) {
        s_set_error (outcome, "invalid", "an event id of this append is already stored");
        return 0;
    }
    return -1;
}

static int
s_append_batch (void *impl, const store_batch_item_t *items, size_t count, int64_t now_us,
                store_outcome_t *outcomes)
{
    s_sqlite_t *self = (s_sqlite_t *) impl;
    int64_t head = 0;
    const char *failed = "begin";
    if (s_step_done (self, S_BEGIN) != SQLITE_DONE)
        goto fail;
    failed = "head";
    if (s_query_int (self, S_HEAD, NULL, &head))
        goto rollback;
    failed = "append";
    for (size_t i = 0; i < count; i++)
        if (items [i].req && s_apply_one (self, &items [i], &head, now_us, &outcomes [i]))
            goto rollback;
    failed = "commit";
    if (s_step_done (self, S_COMMIT) != SQLITE_DONE)
        goto rollback;
    return 0;

rollback:
    /* A failed COMMIT or an I/O error may already have ended the transaction. */
    if (!sqlite3_get_autocommit (self->db))
        s_step_done (self, S_ROLLBACK);
fail:
    log_error (NULL, NULL, "append batch of %zu failed at %s: %s", count, failed, sqlite3_errmsg (self->db));
    for (size_t i = 0; i < count; i++) {
        char detail [256];
        snprintf (detail, sizeof detail, "event log write failed (%s)", failed);
        if (items [i].req)
            s_set_error (&outcomes [i], "unavailable", detail);
    }
    return -1;
}

/* Copies a text column into a fixed field (NULL reads as empty, long values are cut,
 * as snprintf would). Catch-up reads copy five per event: no printf here. */
static void
s_column_copy (sqlite3_stmt *stmt, int column, char *field, size_t field_size)
{
    const unsigned char *text = sqlite3_column_text (stmt, column);
    size_t n = text ? (size_t) sqlite3_column_bytes (stmt, column) : 0;
    if (n > field_size - 1)
        n = field_size - 1;
    if (n)
        memcpy (field, text, n);
    field [n] = 0;              /* a NUL inside the text still ends the string */
}

/* Steps a prepared read and pushes rows into out, stopping at the body budget. */
static int
s_read_rows (s_sqlite_t *self, int which, store_events_t *out)
{
    sqlite3_stmt *stmt = self->stmt [which];
    int rc;
    int status = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        event_t ev;             /* every field is set below: no memset of its 600 bytes */
        ev.position = sqlite3_column_int64 (stmt, 0);
        s_column_copy (stmt, 1, ev.stream, sizeof ev.stream);
        ev.version = sqlite3_column_int64 (stmt, 2);
        s_column_copy (stmt, 3, ev.id, sizeof ev.id);
        s_column_copy (stmt, 4, ev.type, sizeof ev.type);
        ev.timestamp_us = sqlite3_column_int64 (stmt, 5);
        s_column_copy (stmt, 6, ev.command_id, sizeof ev.command_id);
        s_column_copy (stmt, 7, ev.correlation_id, sizeof ev.correlation_id);
        ev.data = (const char *) sqlite3_column_blob (stmt, 8);
        ev.data_size = (size_t) sqlite3_column_bytes (stmt, 8);
        /* NULL (no trace context, or a log from before it) reads as "". */
        s_column_copy (stmt, 9, ev.traceparent, sizeof ev.traceparent);
        /* Stop before the body would outgrow one message; the reader asks again. */
        if (out->count > 0
        &&  out->bytes + ev.data_size + STORE_BACKEND_EVENT_OVERHEAD > STORE_BACKEND_BODY_BUDGET)
            break;
        if (store_events_push (out, &ev)) {
            status = -1;
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error (NULL, NULL, "read failed: %s", sqlite3_errmsg (self->db));
        status = -1;
    }
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    if (status == 0 && s_head (self, &out->head))
        status = -1;
    if (status)
        store_events_reset (out);
    return status;
}

static int
s_read_stream (void *impl, const char *stream, int64_t from_version, size_t max, store_events_t *out)
{
    s_sqlite_t *self = (s_sqlite_t *) impl;
    sqlite3_stmt *stmt = self->stmt [S_READ_STREAM];
    sqlite3_bind_text (stmt, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, from_version);
    sqlite3_bind_int64 (stmt, 3, (int64_t) max);
    return s_read_rows (self, S_READ_STREAM, out);
}

static int
s_read_all (void *impl, int64_t from_position, size_t max, store_events_t *out)
{
    s_sqlite_t *self = (s_sqlite_t *) impl;
    sqlite3_stmt *stmt = self->stmt [S_READ_ALL];
    sqlite3_bind_int64 (stmt, 1, from_position);
    sqlite3_bind_int64 (stmt, 2, (int64_t) max);
    return s_read_rows (self, S_READ_ALL, out);
}

/* After a burst: the page cache may have grown past its size (cache_spill is off,
 * so a large transaction keeps its dirty pages in memory instead of writing them
 * to the WAL twice); give those pages back. */
static void
s_idle (void *impl)
{
    s_sqlite_t *self = (s_sqlite_t *) impl;
    sqlite3_db_release_memory (self->db);
}

const store_backend_ops_t store_sqlite_ops = {
    .name = "sqlite",
    .open = s_open,
    .close = s_close,
    .append_batch = s_append_batch,
    .read_stream = s_read_stream,
    .read_all = s_read_all,
    .head = s_head,
    .idle = s_idle,
};
