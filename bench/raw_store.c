/* raw_store — the storage limit of `make bench`: copies the event log that an
 * ingestion run wrote into a fresh database of the same schema, in batches, and
 * times only the writes. Dossier's ingestion rate is reported as a ratio to this.
 *
 *   raw_store sqlite SRC.db DST.db [--batch N] [--synchronous full] [--pragma name=value]...
 *   raw_store mongodb URI SRC_DB DST_DB [--batch N] [--w majority] [--journal true]
 *
 * SQLite: the schema (tables and indexes) is copied from SRC's sqlite_master, the
 * destination gets the store's PRAGMAs (WAL + synchronous), each transaction holds
 * about N events (whole appends: a batch never splits one command's events) plus
 * the `commands` rows of those appends. MongoDB: the unique indexes of `events`,
 * `streams` and `commands` are copied, each batch is one ordered insert_many of the
 * append documents (about N events) followed by their `streams` and `commands`
 * entries, with the store's write concern. Reading the source is not timed.
 * Prints one JSON object on stdout. Exit 0 ok, 1 failure, 2 usage. */
#include <czmq.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define S_COLUMNS_MAX 64

typedef struct {
    const char *batch_arg;
    long batch;
    const char *synchronous;
    const char *w;
    const char *journal;
    const char *pragmas [8];    /* extra "name=value" PRAGMAs for the destination */
    int n_pragmas;
} s_options_t;

/* What one run wrote, and how long the writes took. */
typedef struct {
    int64_t events;             /* event rows (sqlite) or events inside documents (mongodb) */
    int64_t appends;            /* commands: one per append */
    int64_t rows;               /* every row / document written */
    int64_t bytes;              /* payload bytes of the event data */
    int64_t batches;
    double seconds;             /* sum of the timed writes (wall clock) */
    double cpu_seconds;         /* this process's user + system time in them */
} s_totals_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* User + system time of this process so far: on a shared machine the wall clock
 * also counts other people's work, this does not. */
static double
s_cpu (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
         + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static void
s_print (const char *backend, const s_options_t *opt, const s_totals_t *t, const char *durability)
{
    double s = t->seconds > 0 ? t->seconds : 1e-9;
    printf ("{\"backend\":\"%s\",\"batch_events\":%ld,\"durability\":\"%s\",\"events\":%" PRId64
            ",\"appends\":%" PRId64 ",\"rows\":%" PRId64 ",\"data_bytes\":%" PRId64 ",\"batches\":%" PRId64
            ",\"seconds\":%.6f,\"cpu_seconds\":%.6f,\"events_per_s\":%.1f,\"appends_per_s\":%.1f}\n",
            backend, opt->batch, durability, t->events, t->appends, t->rows, t->bytes, t->batches,
            t->seconds, t->cpu_seconds, (double) t->events / s, (double) t->appends / s);
}

/* ------------------------------------------------------------------ SQLite */

/* One source table as the copy sees it: its insert statement on the destination. */
typedef struct {
    char name [64];
    int columns;
    sqlite3_stmt *insert;       /* on the destination */
} s_table_t;

/* Rows read from the source and not yet written: values duplicated out of the
 * source statement (sqlite3_value_dup), so reading and writing stay apart. */
typedef struct {
    s_table_t *table;
    sqlite3_value **values;     /* rows * table->columns */
    size_t rows, cap;
} s_rows_t;

static void
s_rows_clear (s_rows_t *self)
{
    size_t n = self->rows * (size_t) (self->table ? self->table->columns : 0);
    for (size_t i = 0; i < n; i++)
        sqlite3_value_free (self->values [i]);
    self->rows = 0;
}

static void
s_rows_destroy (s_rows_t *self)
{
    s_rows_clear (self);
    free (self->values);
    self->values = NULL;
    self->cap = 0;
}

/* Appends the current row of stmt (same column count as the table). 0 ok, -1 OOM. */
static int
s_rows_push (s_rows_t *self, sqlite3_stmt *stmt)
{
    int columns = self->table->columns;
    if (self->rows == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        sqlite3_value **values = realloc (self->values, cap * (size_t) columns * sizeof (sqlite3_value *));
        if (!values)
            return -1;
        self->values = values;
        self->cap = cap;
    }
    sqlite3_value **row = self->values + self->rows * (size_t) columns;
    for (int c = 0; c < columns; c++) {
        row [c] = sqlite3_value_dup (sqlite3_column_value (stmt, c));
        if (!row [c]) {
            for (int k = 0; k < c; k++)
                sqlite3_value_free (row [k]);
            return -1;
        }
    }
    self->rows++;
    return 0;
}

/* Writes the buffered rows with the table's insert statement. 0 ok, -1 failed. */
static int
s_rows_write (s_rows_t *self, sqlite3 *dst)
{
    sqlite3_stmt *insert = self->table->insert;
    int columns = self->table->columns;
    for (size_t r = 0; r < self->rows; r++) {
        sqlite3_value **row = self->values + r * (size_t) columns;
        for (int c = 0; c < columns; c++)
            sqlite3_bind_value (insert, c + 1, row [c]);
        int rc = sqlite3_step (insert);
        sqlite3_reset (insert);
        if (rc != SQLITE_DONE) {
            fprintf (stderr, "raw_store: insert into %s: %s\n", self->table->name, sqlite3_errmsg (dst));
            return -1;
        }
    }
    return 0;
}

static int
s_exec (sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf (stderr, "raw_store: %s: %s\n", sql, err ? err : sqlite3_errmsg (db));
        sqlite3_free (err);
        return -1;
    }
    return 0;
}

/* Index of column name in the source table, or -1. */
static int
s_column_index (sqlite3 *db, const char *table, const char *name)
{
    char sql [160];
    snprintf (sql, sizeof sql, "SELECT * FROM \"%s\" LIMIT 0", table);
    sqlite3_stmt *stmt = NULL;
    int found = -1;
    if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) == SQLITE_OK)
        for (int c = 0; c < sqlite3_column_count (stmt); c++)
            if (strcmp (sqlite3_column_name (stmt, c), name) == 0)
                found = c;
    sqlite3_finalize (stmt);
    return found;
}

/* Copies the schema and prepares an insert per table. Returns the number of
 * tables (filled in tables[]), -1 on failure. */
static int
s_copy_schema (sqlite3 *src, sqlite3 *dst, s_table_t *tables, int max)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (src, "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
                            " AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC, rowid", -1,
                            &stmt, NULL) != SQLITE_OK) {
        fprintf (stderr, "raw_store: cannot read the schema: %s\n", sqlite3_errmsg (src));
        return -1;
    }
    int n = 0, status = 0;
    while (sqlite3_step (stmt) == SQLITE_ROW) {
        const char *type = (const char *) sqlite3_column_text (stmt, 0);
        const char *name = (const char *) sqlite3_column_text (stmt, 1);
        const char *sql = (const char *) sqlite3_column_text (stmt, 2);
        if (!type || !name || !sql || s_exec (dst, sql)) {
            status = -1;
            break;
        }
        if (strcmp (type, "table") != 0)
            continue;
        if (n == max || strlen (name) >= sizeof tables [n].name) {
            fprintf (stderr, "raw_store: too many tables or a long table name\n");
            status = -1;
            break;
        }
        s_table_t *t = &tables [n];
        memset (t, 0, sizeof *t);
        snprintf (t->name, sizeof t->name, "%s", name);
        char probe [160];
        snprintf (probe, sizeof probe, "SELECT * FROM \"%s\" LIMIT 0", name);
        sqlite3_stmt *cols = NULL;
        if (sqlite3_prepare_v2 (src, probe, -1, &cols, NULL) != SQLITE_OK) {
            status = -1;
            break;
        }
        t->columns = sqlite3_column_count (cols);
        sqlite3_finalize (cols);
        if (t->columns < 1 || t->columns > S_COLUMNS_MAX) {
            status = -1;
            break;
        }
        char sql_insert [512];
        int len = snprintf (sql_insert, sizeof sql_insert, "INSERT INTO \"%s\" VALUES (?", name);
        for (int c = 1; c < t->columns; c++)
            len += snprintf (sql_insert + len, sizeof sql_insert - (size_t) len, ",?");
        snprintf (sql_insert + len, sizeof sql_insert - (size_t) len, ")");
        if (sqlite3_prepare_v3 (dst, sql_insert, -1, SQLITE_PREPARE_PERSISTENT, &t->insert, NULL) != SQLITE_OK) {
            fprintf (stderr, "raw_store: %s: %s\n", sql_insert, sqlite3_errmsg (dst));
            status = -1;
            break;
        }
        n++;
    }
    sqlite3_finalize (stmt);
    if (status) {
        for (int i = 0; i < n; i++)
            sqlite3_finalize (tables [i].insert);
        return -1;
    }
    return n;
}

/* One timed transaction writing every buffer. 0 ok, -1 failed. */
static int
s_timed_commit (sqlite3 *dst, s_rows_t *bufs, int n, s_totals_t *t)
{
    double t0 = s_now (), c0 = s_cpu ();
    if (s_exec (dst, "BEGIN IMMEDIATE"))
        return -1;
    for (int i = 0; i < n; i++)
        if (s_rows_write (&bufs [i], dst)) {
            s_exec (dst, "ROLLBACK");
            return -1;
        }
    if (s_exec (dst, "COMMIT"))
        return -1;
    t->seconds += s_now () - t0;
    t->cpu_seconds += s_cpu () - c0;
    t->batches++;
    for (int i = 0; i < n; i++)
        t->rows += (int64_t) bufs [i].rows;
    return 0;
}

/* The log: events by position in batches of about opt->batch events, cut only
 * between commands, each with the `commands` rows of its appends. */
static int
s_copy_log (sqlite3 *src, sqlite3 *dst, s_table_t *events, s_table_t *commands, const s_options_t *opt,
            s_totals_t *t)
{
    int c_command = s_column_index (src, "events", "command_id");
    int c_data = s_column_index (src, "events", "data");
    int k_command = commands ? s_column_index (src, "commands", "command_id") : -1;
    if (k_command < 0)
        commands = NULL;
    sqlite3_stmt *read = NULL, *lookup = NULL;
    s_rows_t bufs [2] = { { .table = events }, { .table = commands } };
    int status = -1;
    if (sqlite3_prepare_v2 (src, "SELECT * FROM events ORDER BY rowid", -1, &read, NULL) != SQLITE_OK)
        goto done;
    if (commands
    &&  sqlite3_prepare_v2 (src, "SELECT * FROM commands WHERE command_id = ?1", -1, &lookup, NULL) != SQLITE_OK)
        goto done;
    char last_command [256] = "";
    int rc;
    while ((rc = sqlite3_step (read)) == SQLITE_ROW) {
        const char *command = c_command >= 0 ? (const char *) sqlite3_column_text (read, c_command) : NULL;
        bool new_command = !command || strcmp (command, last_command) != 0;
        /* Cut only where a new command starts, so an append is never split. */
        if (new_command && (long) bufs [0].rows >= opt->batch) {
            if (s_timed_commit (dst, bufs, commands ? 2 : 1, t))
                goto done;
            s_rows_clear (&bufs [0]);
            s_rows_clear (&bufs [1]);
        }
        if (s_rows_push (&bufs [0], read))
            goto done;
        t->events++;
        if (c_data >= 0)
            t->bytes += sqlite3_column_bytes (read, c_data);
        if (new_command && command) {
            snprintf (last_command, sizeof last_command, "%s", command);
            t->appends++;
            if (lookup) {
                sqlite3_bind_text (lookup, 1, command, -1, SQLITE_TRANSIENT);
                if (sqlite3_step (lookup) == SQLITE_ROW && s_rows_push (&bufs [1], lookup))
                    goto done;
                sqlite3_reset (lookup);
            }
        }
    }
    if (rc != SQLITE_DONE) {
        fprintf (stderr, "raw_store: reading events: %s\n", sqlite3_errmsg (src));
        goto done;
    }
    if (bufs [0].rows && s_timed_commit (dst, bufs, commands ? 2 : 1, t))
        goto done;
    status = 0;
done:
    s_rows_destroy (&bufs [0]);
    s_rows_destroy (&bufs [1]);
    sqlite3_finalize (read);
    sqlite3_finalize (lookup);
    return status;
}

/* Any other table, in batches of opt->batch rows (timed the same way). */
static int
s_copy_table (sqlite3 *src, sqlite3 *dst, s_table_t *table, const s_options_t *opt, s_totals_t *t)
{
    char sql [160];
    snprintf (sql, sizeof sql, "SELECT * FROM \"%.63s\"", table->name);
    sqlite3_stmt *read = NULL;
    s_rows_t buf = { .table = table };
    int status = -1, rc;
    if (sqlite3_prepare_v2 (src, sql, -1, &read, NULL) != SQLITE_OK)
        goto done;
    while ((rc = sqlite3_step (read)) == SQLITE_ROW) {
        if (s_rows_push (&buf, read))
            goto done;
        if ((long) buf.rows >= opt->batch) {
            if (s_timed_commit (dst, &buf, 1, t))
                goto done;
            s_rows_clear (&buf);
        }
    }
    if (rc == SQLITE_DONE && (buf.rows == 0 || s_timed_commit (dst, &buf, 1, t) == 0))
        status = 0;
done:
    s_rows_destroy (&buf);
    sqlite3_finalize (read);
    return status;
}

static int
s_sqlite_run (const char *src_path, const char *dst_path, const s_options_t *opt)
{
    sqlite3 *src = NULL, *dst = NULL;
    s_table_t tables [16];
    int n_tables = 0, status = 1;
    if (access (dst_path, F_OK) == 0) {
        fprintf (stderr, "raw_store: %s exists: give a fresh path\n", dst_path);
        return 1;
    }
    char uri [4200];
    snprintf (uri, sizeof uri, "file:%s?mode=ro", src_path);
    if (sqlite3_open_v2 (uri, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK
    ||  sqlite3_open_v2 (dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        fprintf (stderr, "raw_store: cannot open %s or %s\n", src_path, dst_path);
        goto done;
    }
    sqlite3_busy_timeout (src, 5000);
    char pragmas [128];
    snprintf (pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", opt->synchronous);
    if (s_exec (dst, pragmas))
        goto done;
    /* Whatever else the store sets on its connection (page cache, mmap...): pass the
     * same here, or the limit is not the store's. */
    for (int i = 0; i < opt->n_pragmas; i++) {
        char sql [160];
        snprintf (sql, sizeof sql, "PRAGMA %.140s", opt->pragmas [i]);
        if (s_exec (dst, sql))
            goto done;
    }
    n_tables = s_copy_schema (src, dst, tables, (int) (sizeof tables / sizeof tables [0]));
    if (n_tables < 0) {
        n_tables = 0;
        goto done;
    }
    s_table_t *events = NULL, *commands = NULL;
    for (int i = 0; i < n_tables; i++) {
        if (strcmp (tables [i].name, "events") == 0)
            events = &tables [i];
        if (strcmp (tables [i].name, "commands") == 0)
            commands = &tables [i];
    }
    if (!events) {
        fprintf (stderr, "raw_store: %s has no events table\n", src_path);
        goto done;
    }
    s_totals_t t = { 0 };
    if (s_copy_log (src, dst, events, commands, opt, &t))
        goto done;
    for (int i = 0; i < n_tables; i++)
        if (&tables [i] != events && &tables [i] != commands
        &&  s_copy_table (src, dst, &tables [i], opt, &t))
            goto done;
    char durability [512];
    int len = snprintf (durability, sizeof durability, "wal+synchronous=%s", opt->synchronous);
    for (int i = 0; i < opt->n_pragmas && len > 0 && (size_t) len < sizeof durability; i++)
        len += snprintf (durability + len, sizeof durability - (size_t) len, "+%.60s", opt->pragmas [i]);
    s_print ("sqlite", opt, &t, durability);
    status = 0;
done:
    for (int i = 0; i < n_tables; i++)
        sqlite3_finalize (tables [i].insert);
    sqlite3_close (src);
    sqlite3_close (dst);
    return status;
}

/* ----------------------------------------------------------------- MongoDB */

/* The derived index documents (streams, commands) of one append, by command id. */
typedef struct {
    bson_t *stream;
    bson_t *command;
} s_index_docs_t;

static void
s_index_docs_free (void **item_p)
{
    s_index_docs_t *self = (s_index_docs_t *) *item_p;
    if (self) {
        if (self->stream)
            bson_destroy (self->stream);
        if (self->command)
            bson_destroy (self->command);
        free (self);
    }
    *item_p = NULL;
}

/* Copies the secondary indexes of one collection (same keys, names, options). */
static int
s_copy_indexes (mongoc_collection_t *src, mongoc_database_t *dst_db, const char *name)
{
    mongoc_cursor_t *cursor = mongoc_collection_find_indexes_with_opts (src, NULL);
    const bson_t *doc;
    bson_error_t error;
    int status = 0;
    while (status == 0 && mongoc_cursor_next (cursor, &doc)) {
        bson_iter_t iter;
        if (bson_iter_init_find (&iter, doc, "name") && BSON_ITER_HOLDS_UTF8 (&iter)
        &&  strcmp (bson_iter_utf8 (&iter, NULL), "_id_") == 0)
            continue;
        /* The index as listed, minus what createIndexes refuses (v, ns). */
        bson_t index = BSON_INITIALIZER;
        bson_iter_init (&iter, doc);
        while (bson_iter_next (&iter)) {
            const char *key = bson_iter_key (&iter);
            if (strcmp (key, "v") != 0 && strcmp (key, "ns") != 0)
                bson_append_iter (&index, key, -1, &iter);
        }
        /* One index per command: the FerretDB test server fails a repeated
         * multi-index createIndexes (as the store notes). */
        bson_t cmd = BSON_INITIALIZER, list, reply;
        BSON_APPEND_UTF8 (&cmd, "createIndexes", name);
        BSON_APPEND_ARRAY_BEGIN (&cmd, "indexes", &list);
        BSON_APPEND_DOCUMENT (&list, "0", &index);
        bson_append_array_end (&cmd, &list);
        if (!mongoc_database_write_command_with_opts (dst_db, &cmd, NULL, &reply, &error)) {
            fprintf (stderr, "raw_store: createIndexes on %s: %s\n", name, error.message);
            status = -1;
        }
        bson_destroy (&reply);
        bson_destroy (&cmd);
        bson_destroy (&index);
    }
    if (mongoc_cursor_error (cursor, &error)) {
        fprintf (stderr, "raw_store: listIndexes on %s: %s\n", name, error.message);
        status = -1;
    }
    mongoc_cursor_destroy (cursor);
    return status;
}

/* Loads streams (by its `cmd`) and commands (by _id) into by_command. */
static int
s_load_index_docs (mongoc_collection_t *coll, const char *key, bool is_stream, zhashx_t *by_command)
{
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (coll, &filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t error;
    while (mongoc_cursor_next (cursor, &doc)) {
        bson_iter_t iter;
        if (!bson_iter_init_find (&iter, doc, key) || !BSON_ITER_HOLDS_UTF8 (&iter))
            continue;
        const char *command = bson_iter_utf8 (&iter, NULL);
        s_index_docs_t *docs = (s_index_docs_t *) zhashx_lookup (by_command, command);
        if (!docs) {
            docs = calloc (1, sizeof *docs);
            if (!docs)
                break;
            zhashx_insert (by_command, command, docs);
        }
        bson_t **slot = is_stream ? &docs->stream : &docs->command;
        if (!*slot)
            *slot = bson_copy (doc);
    }
    int status = mongoc_cursor_error (cursor, &error) ? -1 : 0;
    if (status)
        fprintf (stderr, "raw_store: reading %s: %s\n", mongoc_collection_get_name (coll), error.message);
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    return status;
}

/* Inserts docs[0..n) into coll as one ordered insert_many. 0 ok, -1 failed. */
static int
s_insert_many (mongoc_collection_t *coll, const bson_t **docs, size_t n, const mongoc_write_concern_t *wc)
{
    if (n == 0)
        return 0;
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t error;
    mongoc_write_concern_append ((mongoc_write_concern_t *) wc, &opts);
    bool ok = mongoc_collection_insert_many (coll, docs, n, &opts, &reply, &error);
    if (!ok)
        fprintf (stderr, "raw_store: insert_many into %s: %s\n", mongoc_collection_get_name (coll), error.message);
    bson_destroy (&reply);
    bson_destroy (&opts);
    return ok ? 0 : -1;
}

/* Number of elements of the array `events` of doc. */
static int64_t
s_event_count (const bson_t *doc, int64_t *bytes)
{
    bson_iter_t iter, child;
    int64_t n = 0;
    if (bson_iter_init_find (&iter, doc, "events") && BSON_ITER_HOLDS_ARRAY (&iter)
    &&  bson_iter_recurse (&iter, &child))
        while (bson_iter_next (&child)) {
            n++;
            bson_iter_t data;
            if (BSON_ITER_HOLDS_DOCUMENT (&child) && bson_iter_recurse (&child, &data)
            &&  bson_iter_find (&data, "data") && BSON_ITER_HOLDS_BINARY (&data)) {
                uint32_t len = 0;
                const uint8_t *bin = NULL;
                bson_iter_binary (&data, NULL, &len, &bin);
                *bytes += len;
            }
        }
    return n;
}

typedef struct {
    bson_t **events;
    const bson_t **streams;
    const bson_t **commands;
    size_t n_events, n_streams, n_commands, cap;
    int64_t event_count;
} s_mongo_batch_t;

static void
s_mongo_batch_clear (s_mongo_batch_t *b)
{
    for (size_t i = 0; i < b->n_events; i++)
        bson_destroy (b->events [i]);
    b->n_events = b->n_streams = b->n_commands = 0;
    b->event_count = 0;
}

static int
s_mongo_flush (s_mongo_batch_t *b, mongoc_collection_t *events, mongoc_collection_t *streams,
               mongoc_collection_t *commands, const mongoc_write_concern_t *wc, s_totals_t *t)
{
    double t0 = s_now (), c0 = s_cpu ();
    /* The store's order: the append documents, then their index entries. */
    if (s_insert_many (events, (const bson_t **) b->events, b->n_events, wc)
    ||  s_insert_many (streams, b->streams, b->n_streams, wc)
    ||  s_insert_many (commands, b->commands, b->n_commands, wc))
        return -1;
    t->seconds += s_now () - t0;
    t->cpu_seconds += s_cpu () - c0;
    t->batches++;
    t->rows += (int64_t) (b->n_events + b->n_streams + b->n_commands);
    s_mongo_batch_clear (b);
    return 0;
}

static int
s_mongo_run (const char *uri_text, const char *src_name, const char *dst_name, const s_options_t *opt)
{
    int status = 1;
    bson_error_t error;
    mongoc_init ();
    mongoc_client_t *client = NULL;
    mongoc_uri_t *uri = mongoc_uri_new_with_error (uri_text, &error);
    zhashx_t *by_command = zhashx_new ();
    mongoc_write_concern_t *wc = mongoc_write_concern_new ();
    mongoc_database_t *dst_db = NULL;
    mongoc_collection_t *src [3] = { NULL }, *dst [3] = { NULL };
    const char *names [3] = { "events", "streams", "commands" };
    s_mongo_batch_t batch = { 0 };
    if (!uri || !by_command || !wc) {
        fprintf (stderr, "raw_store: bad URI or out of memory\n");
        goto done;
    }
    zhashx_set_destructor (by_command, s_index_docs_free);
    client = mongoc_client_new_from_uri_with_error (uri, &error);
    if (!client) {
        fprintf (stderr, "raw_store: %s\n", error.message);
        goto done;
    }
    mongoc_client_set_error_api (client, MONGOC_ERROR_API_VERSION_2);
    char *end = NULL;
    long w = strtol (opt->w, &end, 10);
    if (strcasecmp (opt->w, "majority") == 0)
        mongoc_write_concern_set_w (wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
    else
    if (end && *end == 0 && w >= 1 && w <= 50)
        mongoc_write_concern_set_w (wc, (int32_t) w);
    else {
        fprintf (stderr, "raw_store: --w must be majority or 1..50\n");
        goto done;
    }
    bool journal = !(strcasecmp (opt->journal, "false") == 0 || strcmp (opt->journal, "0") == 0
                     || strcasecmp (opt->journal, "no") == 0);
    mongoc_write_concern_set_journal (wc, journal);
    mongoc_write_concern_set_wtimeout_int64 (wc, 10000);
    dst_db = mongoc_client_get_database (client, dst_name);
    /* A leftover of an earlier run goes; a database that is not there is fine too. */
    (void) mongoc_database_drop_with_opts (dst_db, NULL, &error);
    for (int i = 0; i < 3; i++) {
        src [i] = mongoc_client_get_collection (client, src_name, names [i]);
        dst [i] = mongoc_client_get_collection (client, dst_name, names [i]);
        if (s_copy_indexes (src [i], dst_db, names [i]))
            goto done;
    }
    if (s_load_index_docs (src [1], "cmd", true, by_command)
    ||  s_load_index_docs (src [2], "_id", false, by_command))
        goto done;

    bson_t filter = BSON_INITIALIZER, find_opts = BSON_INITIALIZER, sort;
    BSON_APPEND_DOCUMENT_BEGIN (&find_opts, "sort", &sort);
    BSON_APPEND_INT32 (&sort, "first_position", 1);
    bson_append_document_end (&find_opts, &sort);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (src [0], &filter, &find_opts, NULL);
    bson_destroy (&filter);
    bson_destroy (&find_opts);
    s_totals_t t = { 0 };
    const bson_t *doc;
    int failed = 0;
    while (!failed && mongoc_cursor_next (cursor, &doc)) {
        if (batch.n_events == batch.cap) {
            size_t cap = batch.cap ? batch.cap * 2 : 256;
            bson_t **e = realloc (batch.events, cap * sizeof *e);
            const bson_t **s = realloc (batch.streams, cap * sizeof *s);
            const bson_t **c = realloc (batch.commands, cap * sizeof *c);
            if (e) batch.events = e;
            if (s) batch.streams = s;
            if (c) batch.commands = c;
            if (!e || !s || !c) {
                failed = 1;
                break;
            }
            batch.cap = cap;
        }
        int64_t n = s_event_count (doc, &t.bytes);
        batch.events [batch.n_events++] = bson_copy (doc);
        batch.event_count += n;
        t.events += n;
        t.appends++;
        bson_iter_t iter;
        if (bson_iter_init_find (&iter, doc, "_id") && BSON_ITER_HOLDS_UTF8 (&iter)) {
            s_index_docs_t *docs = (s_index_docs_t *) zhashx_lookup (by_command, bson_iter_utf8 (&iter, NULL));
            if (docs && docs->stream)
                batch.streams [batch.n_streams++] = docs->stream;
            if (docs && docs->command)
                batch.commands [batch.n_commands++] = docs->command;
        }
        if (batch.event_count >= opt->batch && s_mongo_flush (&batch, dst [0], dst [1], dst [2], wc, &t))
            failed = 1;
    }
    if (!failed && mongoc_cursor_error (cursor, &error)) {
        fprintf (stderr, "raw_store: reading events: %s\n", error.message);
        failed = 1;
    }
    mongoc_cursor_destroy (cursor);
    if (!failed && batch.n_events && s_mongo_flush (&batch, dst [0], dst [1], dst [2], wc, &t))
        failed = 1;
    if (failed)
        goto done;
    char durability [64];
    snprintf (durability, sizeof durability, "w=%s,j=%s", opt->w, journal ? "true" : "false");
    s_print ("mongodb", opt, &t, durability);
    status = 0;
done:
    s_mongo_batch_clear (&batch);
    free (batch.events);
    free (batch.streams);
    free (batch.commands);
    for (int i = 0; i < 3; i++) {
        if (src [i])
            mongoc_collection_destroy (src [i]);
        if (dst [i])
            mongoc_collection_destroy (dst [i]);
    }
    if (dst_db)
        mongoc_database_destroy (dst_db);
    zhashx_destroy (&by_command);
    if (wc)
        mongoc_write_concern_destroy (wc);
    if (client)
        mongoc_client_destroy (client);
    if (uri)
        mongoc_uri_destroy (uri);
    mongoc_cleanup ();
    return status;
}

/* ------------------------------------------------------------------- main */

static int
s_usage (void)
{
    fprintf (stderr,
             "usage: raw_store sqlite SRC.db DST.db [--batch N] [--synchronous full] [--pragma name=value]...\n"
             "       raw_store mongodb URI SRC_DB DST_DB [--batch N] [--w majority] [--journal true]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    s_options_t opt = { .batch = 1000, .synchronous = "full", .w = "majority", .journal = "true" };
    const char *positional [4];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char **value = NULL;
        if (strcmp (argv [i], "--batch") == 0)
            value = &opt.batch_arg;
        else
        if (strcmp (argv [i], "--pragma") == 0) {
            /* name=value: letters, digits, '_', '=', '-' only (it goes into SQL text) */
            if (i + 1 >= argc || opt.n_pragmas == 8
            ||  strspn (argv [i + 1], "abcdefghijklmnopqrstuvwxyz_0123456789=-") != strlen (argv [i + 1]))
                return s_usage ();
            opt.pragmas [opt.n_pragmas++] = argv [++i];
            continue;
        }
        else
        if (strcmp (argv [i], "--synchronous") == 0)
            value = &opt.synchronous;
        else
        if (strcmp (argv [i], "--w") == 0)
            value = &opt.w;
        else
        if (strcmp (argv [i], "--journal") == 0)
            value = &opt.journal;
        if (value) {
            if (i + 1 >= argc)
                return s_usage ();
            *value = argv [++i];
        }
        else
        if (argv [i][0] == '-' || n == 4)
            return s_usage ();
        else
            positional [n++] = argv [i];
    }
    if (opt.batch_arg) {
        char *end = NULL;
        opt.batch = strtol (opt.batch_arg, &end, 10);
        if (!end || *end || opt.batch < 1 || opt.batch > 1000000)
            return s_usage ();
    }
    static const char *known [] = { "off", "normal", "full", "extra" };
    bool sync_ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known [0]; i++)
        sync_ok |= strcasecmp (opt.synchronous, known [i]) == 0;
    if (!sync_ok)
        return s_usage ();
    if (n == 3 && strcmp (positional [0], "sqlite") == 0)
        return s_sqlite_run (positional [1], positional [2], &opt);
    if (n == 4 && strcmp (positional [0], "mongodb") == 0)
        return s_mongo_run (positional [1], positional [2], positional [3], &opt);
    return s_usage ();
}
