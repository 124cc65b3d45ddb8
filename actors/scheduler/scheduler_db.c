/* scheduler_db — SQLite, WAL, synchronous=FULL. Only the two deferral event types are
 * parsed and written; every other event only moves the checkpoint, in memory until
 * scheduler_db_sync or the next deferral event stores it. */
#include "scheduler_db.h"

#include "log.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _scheduler_db_t {
    sqlite3 *db;
    char *path;
    int64_t checkpoint;             /* applied up to here */
    int64_t stored;                 /* the checkpoint on disk (<= checkpoint) */
    sqlite3_stmt *insert, *remove, *put_checkpoint, *pending, *count;
};

static const char s_schema [] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS checkpoint (name TEXT PRIMARY KEY, position INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pending ("
    "    deferral_id TEXT PRIMARY KEY,"
    "    case_id     TEXT NOT NULL,"
    "    position    INTEGER NOT NULL UNIQUE,"
    "    traceparent TEXT"
    ");";

void
scheduler_db_close (scheduler_db_t **self_p)
{
    if (self_p && *self_p) {
        scheduler_db_t *self = *self_p;
        sqlite3_finalize (self->insert);
        sqlite3_finalize (self->remove);
        sqlite3_finalize (self->put_checkpoint);
        sqlite3_finalize (self->pending);
        sqlite3_finalize (self->count);
        if (self->db)
            sqlite3_close (self->db);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

scheduler_db_t *
scheduler_db_open (const char *path)
{
    scheduler_db_t *self = calloc (1, sizeof (scheduler_db_t));
    if (!self)
        return NULL;
    self->path = strdup (path ? path : "");
    if (!self->path
    ||  sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                         NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "scheduler: cannot open %s: %s", path ? path : "(null)",
                   self->db ? sqlite3_errmsg (self->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout (self->db, 5000);
    sqlite3_stmt *get = NULL;
    int rc = sqlite3_exec (self->db, s_schema, NULL, NULL, NULL);
    /* A database from before trace context: its pending rows read as without one. */
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2 (self->db, "SELECT 1 FROM pragma_table_info('pending') WHERE name = 'traceparent'",
                                 -1, &get, NULL);
        int has = rc == SQLITE_OK && sqlite3_step (get) == SQLITE_ROW;
        sqlite3_finalize (get);
        get = NULL;
        if (rc == SQLITE_OK && !has)
            rc = sqlite3_exec (self->db, "ALTER TABLE pending ADD COLUMN traceparent TEXT", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "INSERT OR IGNORE INTO pending (deferral_id, case_id, position, "
                                 "traceparent) VALUES (?1, ?2, ?3, ?4)", -1, &self->insert, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "DELETE FROM pending WHERE deferral_id = ?1", -1, &self->remove, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "INSERT INTO checkpoint (name, position) VALUES ('scheduler', ?1) "
                                 "ON CONFLICT (name) DO UPDATE SET position = excluded.position", -1,
                                 &self->put_checkpoint, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "SELECT deferral_id, case_id, position, traceparent FROM pending "
                                 "WHERE position > ?1 ORDER BY position LIMIT ?2", -1, &self->pending, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "SELECT count(*) FROM pending", -1, &self->count, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "SELECT position FROM checkpoint WHERE name = 'scheduler'", -1, &get, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step (get);
        self->checkpoint = self->stored = rc == SQLITE_ROW ? sqlite3_column_int64 (get, 0) : 0;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize (get);
    if (rc != SQLITE_OK) {
        log_error (NULL, NULL, "scheduler: %s: %s", path, sqlite3_errmsg (self->db));
        goto fail;
    }
    return self;
fail:
    scheduler_db_close (&self);
    return NULL;
}

int64_t
scheduler_db_checkpoint (scheduler_db_t *self)
{
    return self->checkpoint;
}

/* The deferral_id of an event's data, or -2 (logged) when it cannot be read. */
static int
s_deferral_id (const event_t *ev, char id [EVENT_ID_MAX])
{
    json_t *data = ev->data && ev->data_size ? json_loadb (ev->data, ev->data_size, 0, NULL) : NULL;
    const char *value = json_string_value (json_object_get (data, "deferral_id"));
    int rc = value && *value && strlen (value) < EVENT_ID_MAX ? 0 : -2;
    if (rc == 0)
        memcpy (id, value, strlen (value) + 1);
    else
        log_error (ev->correlation_id, ev->stream, "scheduler: %s at position %lld has no readable deferral_id: skipped",
                   ev->type, (long long) ev->position);
    json_decref (data);
    return rc;
}

static int
s_step (sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int
s_relevant (const event_t *ev)
{
    return strcmp (ev->type, "NotificationDecisionDeferred") == 0
        || strcmp (ev->type, "NotificationDecisionResolved") == 0;
}

int
scheduler_db_apply (scheduler_db_t *self, const event_t *events, size_t count, size_t *added)
{
    *added = 0;
    if (count == 0)
        return 0;
    /* Nearly every batch holds neither type: it changes no row, so it costs no
     * transaction (and no fsync). Replaying such events after a crash changes nothing
     * either, so the checkpoint may lag on disk; it never lags behind a deferral
     * event, whose batch commits it with the rows below. */
    size_t first = 0;
    while (first < count && !s_relevant (&events [first]))
        first++;
    if (first == count) {
        self->checkpoint = events [count - 1].position;
        return 0;
    }
    if (sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "scheduler: cannot begin a transaction: %s", sqlite3_errmsg (self->db));
        return -1;
    }
    int rc = 0;
    size_t n = 0;
    for (size_t i = first; i < count && rc == 0; i++) {
        const event_t *ev = &events [i];
        int deferred = strcmp (ev->type, "NotificationDecisionDeferred") == 0;
        int resolved = strcmp (ev->type, "NotificationDecisionResolved") == 0;
        char id [EVENT_ID_MAX];
        if ((!deferred && !resolved) || s_deferral_id (ev, id) != 0)
            continue;
        if (deferred) {
            sqlite3_bind_text (self->insert, 1, id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text (self->insert, 2, ev->stream, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64 (self->insert, 3, ev->position);
            if (ev->traceparent [0])
                sqlite3_bind_text (self->insert, 4, ev->traceparent, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null (self->insert, 4);
            rc = s_step (self->insert);
            n += rc == 0 && sqlite3_changes (self->db) > 0;
        }
        else {
            sqlite3_bind_text (self->remove, 1, id, -1, SQLITE_TRANSIENT);
            rc = s_step (self->remove);
        }
    }
    if (rc == 0) {
        sqlite3_bind_int64 (self->put_checkpoint, 1, events [count - 1].position);
        rc = s_step (self->put_checkpoint);
    }
    if (rc == 0 && sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = -1;
    if (rc != 0) {
        log_error (NULL, NULL, "scheduler: cannot record events %lld..%lld: %s", (long long) events [0].position,
                   (long long) events [count - 1].position, sqlite3_errmsg (self->db));
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    self->checkpoint = self->stored = events [count - 1].position;
    *added = n;
    return 0;
}

int
scheduler_db_sync (scheduler_db_t *self)
{
    if (self->stored == self->checkpoint)
        return 0;
    sqlite3_bind_int64 (self->put_checkpoint, 1, self->checkpoint);
    if (s_step (self->put_checkpoint) != 0) {
        log_error (NULL, NULL, "scheduler: cannot store checkpoint %lld: %s", (long long) self->checkpoint,
                   sqlite3_errmsg (self->db));
        return -1;
    }
    self->stored = self->checkpoint;
    return 0;
}

int
scheduler_db_dirty (scheduler_db_t *self)
{
    return self->stored != self->checkpoint;
}

size_t
scheduler_db_pending (scheduler_db_t *self, int64_t after, scheduler_item_t *items, size_t max)
{
    size_t n = 0;
    sqlite3_bind_int64 (self->pending, 1, after);
    sqlite3_bind_int64 (self->pending, 2, (sqlite3_int64) max);
    while (n < max && sqlite3_step (self->pending) == SQLITE_ROW) {
        const char *id = (const char *) sqlite3_column_text (self->pending, 0);
        const char *case_id = (const char *) sqlite3_column_text (self->pending, 1);
        if (!id || !case_id || strlen (id) >= EVENT_ID_MAX || strlen (case_id) >= EVENT_ID_MAX)
            continue;
        memcpy (items [n].deferral_id, id, strlen (id) + 1);
        memcpy (items [n].case_id, case_id, strlen (case_id) + 1);
        items [n].position = sqlite3_column_int64 (self->pending, 2);
        const char *tp = (const char *) sqlite3_column_text (self->pending, 3);
        snprintf (items [n].traceparent, sizeof items [n].traceparent, "%s",
                  tp && strlen (tp) < sizeof items [n].traceparent ? tp : "");
        n++;
    }
    sqlite3_reset (self->pending);
    return n;
}

size_t
scheduler_db_count (scheduler_db_t *self)
{
    size_t n = 0;
    if (sqlite3_step (self->count) == SQLITE_ROW)
        n = (size_t) sqlite3_column_int64 (self->count, 0);
    sqlite3_reset (self->count);
    return n;
}

int
scheduler_db_forget (scheduler_db_t *self, const char *deferral_id)
{
    sqlite3_bind_text (self->remove, 1, deferral_id, -1, SQLITE_TRANSIENT);
    return s_step (self->remove);
}
