/* readmodel_reader_mongo — keyed lookups on the MongoDB read models
 * (schemas/readmodels.md) through one single-threaded client owned by the loop
 * thread. Each answer is the stored JSON string, appended as it is. A database that
 * is down must never hold the event loop: a probe thread with a client of its own
 * pings it twice a second, /ready reads the probe's verdict, and once a read or a
 * ping has failed, reads answer "unavailable" at once until a later ping succeeds.
 * So an outage costs the loop one read's timeout at most, not one per second. */
#include "readmodel_reader_backend.h"
#include "readmodel_indexes.h"
#include "log.h"

#include <czmq.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_PROBE_MS          500     /* the probe pings this often */
#define S_SOCKET_TIMEOUT_MS 2000    /* a database that accepts but never answers */

enum { S_CASES, S_COMPANIES, S_PERSONS, S_BOS, S_DOCUMENTS, S_EVENTS, S_COLL_COUNT };

static const char *s_coll_names [S_COLL_COUNT] = {
    [S_CASES] = RM_COLL_CASES, [S_COMPANIES] = RM_COLL_COMPANIES, [S_PERSONS] = RM_COLL_PERSONS,
    [S_BOS] = RM_COLL_BOS, [S_DOCUMENTS] = RM_COLL_DOCUMENTS, [S_EVENTS] = RM_COLL_EVENTS,
};

typedef struct {
    mongoc_client_t *client;        /* the loop thread's */
    config_t *config;               /* to make that client again (the gateway's, outlives us) */
    int client_failed;              /* the loop's client could not reach the database */
    char *db_name;
    mongoc_collection_t *coll [S_COLL_COUNT];
    /* zclock_mono of the last success and of the last failure to reach the database,
     * by the probe or a read; up when the last success is the later. 0 = never. */
    atomic_llong up_at;
    atomic_llong down_at;
    atomic_int logged_up;           /* the state last logged: -1 none yet, 0 down, 1 up */
    /* the probe thread and its own client */
    mongoc_client_t *probe_client;
    pthread_t probe;
    int probe_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;                   /* under lock */
} s_self_t;

/* Records the outcome of talking to the database (either thread); logs each change
 * once. */
static void
s_mark (s_self_t *self, int up, const bson_error_t *error)
{
    long long now = (long long) zclock_mono ();
    atomic_store (up ? &self->up_at : &self->down_at, now);
    int before = atomic_exchange (&self->logged_up, up);
    if (before == up)
        return;
    if (up)
        log_info (NULL, NULL, "read models: mongodb %s answers%s", self->db_name, before == 0 ? " again" : "");
    else
        log_warn (NULL, NULL, "read models: mongodb %s not answering: %s", self->db_name,
                  error ? error->message : "?");
}

/* 1 up, 0 down, -1 not known yet (nothing tried). */
static int
s_state (s_self_t *self)
{
    long long up = atomic_load (&self->up_at), down = atomic_load (&self->down_at);
    if (!up && !down)
        return -1;
    return up > down;
}

static void *
s_probe_run (void *arg)
{
    s_self_t *self = (s_self_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stopping) {
        pthread_mutex_unlock (&self->lock);
        bson_t cmd = BSON_INITIALIZER, reply;
        BSON_APPEND_INT32 (&cmd, "ping", 1);
        bson_error_t error;
        int up = mongoc_client_command_simple (self->probe_client, self->db_name, &cmd, NULL, &reply, &error) ? 1 : 0;
        bson_destroy (&reply);
        bson_destroy (&cmd);
        s_mark (self, up, &error);
        pthread_mutex_lock (&self->lock);
        if (self->stopping)
            break;
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_nsec += (long) S_PROBE_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait (&self->wake, &self->lock, &until);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

static void
s_destroy (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (!self)
        return;
    if (self->probe_started) {
        pthread_mutex_lock (&self->lock);
        self->stopping = 1;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->probe, NULL);
    }
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
    for (int i = 0; i < S_COLL_COUNT; i++)
        mongoc_collection_destroy (self->coll [i]);
    mongoc_client_destroy (self->client);
    mongoc_client_destroy (self->probe_client);
    free (self->db_name);
    free (self);
}

void *
gw_reader_mongo_new (config_t *config)
{
    const char *db_name = readmodel_mongo_database (config);
    if (!readmodel_mongo_valid_database (db_name)) {
        log_error (NULL, NULL, "read models: mongodb_database \"%.80s\" is not a usable database name", db_name);
        return NULL;
    }
    s_self_t *self = calloc (1, sizeof (s_self_t));
    if (!self)
        return NULL;
    atomic_init (&self->up_at, 0);
    atomic_init (&self->down_at, 0);
    atomic_init (&self->logged_up, -1);
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    char err [300] = "out of memory";
    self->db_name = strdup (db_name);
    self->config = config;
    self->client = readmodel_mongo_client_new (config, S_SOCKET_TIMEOUT_MS, err, sizeof err);
    if (self->client)
        self->probe_client = readmodel_mongo_client_new (config, S_SOCKET_TIMEOUT_MS, err, sizeof err);
    if (!self->db_name || !self->client || !self->probe_client) {
        log_error (NULL, NULL, "read models: %s", err);
        s_destroy (self);
        return NULL;
    }
    for (int i = 0; i < S_COLL_COUNT; i++)
        if (!(self->coll [i] = mongoc_client_get_collection (self->client, db_name, s_coll_names [i]))) {
            s_destroy (self);
            return NULL;
        }
    /* The probe must not take SIGINT/SIGTERM: they belong to the loop thread. */
    sigset_t block, saved;
    sigemptyset (&block);
    sigaddset (&block, SIGINT);
    sigaddset (&block, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &block, &saved);
    self->probe_started = pthread_create (&self->probe, NULL, s_probe_run, self) == 0;
    pthread_sigmask (SIG_SETMASK, &saved, NULL);
    if (!self->probe_started) {
        log_error (NULL, NULL, "read models: cannot start the mongodb probe thread");
        s_destroy (self);
        return NULL;
    }
    return self;
}

/* A single-threaded libmongoc client does not try a server again for 5 s after it
 * failed to reach it (cooldownMS of the server-selection rules), so once the probe
 * sees the database back, the loop's client would keep failing for up to 5 s more.
 * A new client has no such memory; this happens once per outage. 0 ok, -1 not now. */
static int
s_renew_client (s_self_t *self)
{
    char err [300] = "out of memory";
    mongoc_client_t *client = readmodel_mongo_client_new (self->config, S_SOCKET_TIMEOUT_MS, err, sizeof err);
    mongoc_collection_t *coll [S_COLL_COUNT] = { NULL };
    int i = 0;
    for (; client && i < S_COLL_COUNT; i++)
        if (!(coll [i] = mongoc_client_get_collection (client, self->db_name, s_coll_names [i])))
            break;
    if (!client || i < S_COLL_COUNT) {
        log_warn (NULL, NULL, "read models: cannot make a new mongodb client: %s", err);
        while (i-- > 0)
            mongoc_collection_destroy (coll [i]);
        mongoc_client_destroy (client);
        return -1;
    }
    for (i = 0; i < S_COLL_COUNT; i++) {
        mongoc_collection_destroy (self->coll [i]);
        self->coll [i] = coll [i];
    }
    mongoc_client_destroy (self->client);
    self->client = client;
    self->client_failed = 0;
    return 0;
}

/* 0 when a read may be tried now, -1 while the database is known to be down. */
static int
s_may_try (s_self_t *self)
{
    int state = s_state (self);
    if (state == 0)
        return -1;
    if (state == 1 && self->client_failed)
        return s_renew_client (self);
    return 0;
}

static int
s_ready (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    /* Nothing known yet (just started, the probe's first ping still out): ask once
     * here, so that "ready" right after start means what it says. Afterwards it is
     * the probe's verdict, and /ready never waits on the network. */
    if (s_state (self) == -1) {
        bson_t cmd = BSON_INITIALIZER, reply;
        BSON_APPEND_INT32 (&cmd, "ping", 1);
        bson_error_t error;
        int up = mongoc_client_command_simple (self->client, self->db_name, &cmd, NULL, &reply, &error) ? 1 : 0;
        bson_destroy (&reply);
        bson_destroy (&cmd);
        if (!up)
            self->client_failed = 1;
        s_mark (self, up, &error);
    }
    return s_state (self) == 1;
}

static const char *
s_reason (void *impl)
{
    (void) impl;
    return "read-model database not answering";
}

/* A failed read: the database is down when the driver could not reach it (not when
 * it answered with an error). */
static void
s_read_failed (s_self_t *self, const bson_error_t *error)
{
    if (error->domain == MONGOC_ERROR_SERVER || error->domain == MONGOC_ERROR_QUERY)
        log_warn (NULL, NULL, "read models: mongodb query failed: %s", error->message);
    else {
        self->client_failed = 1;
        s_mark (self, 0, error);
    }
}

typedef struct {
    gw_buf_t *out;
    const char *field;              /* the JSON string to append */
    int64_t *last_seq;
    int count;
    int limit;                      /* stop after this many, then say *more (cases) */
    int *more;
} s_append_t;

/* Appends doc's JSON field; "null" when a row has none (as SQLite answers a NULL). */
static void
s_append_field (gw_buf_t *out, const bson_t *doc, const char *field)
{
    bson_iter_t it;
    if (bson_iter_init_find (&it, doc, field) && BSON_ITER_HOLDS_UTF8 (&it)) {
        uint32_t len;
        const char *text = bson_iter_utf8 (&it, &len);
        gw_buf_append (out, text, len);
    }
    else
        gw_buf_append_str (out, "null");
}

/* Runs find on collection i; returns GW_READER_OK with *found = rows seen, or
 * GW_READER_UNAVAILABLE. Each document goes to a (s_append_t) unless a is NULL. */
static int
s_find (s_self_t *self, int i, const bson_t *filter, const bson_t *opts, s_append_t *a, int *found,
        char case_id [GW_ID_MAX])
{
    if (s_may_try (self))
        return GW_READER_UNAVAILABLE;
    int attempt = 0;
again:;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (self->coll [i], filter, opts, NULL);
    if (!cursor)
        return GW_READER_UNAVAILABLE;
    const bson_t *doc;
    int n = 0, result = GW_READER_OK;
    while (mongoc_cursor_next (cursor, &doc)) {
        n++;
        if (case_id) {
            bson_iter_t it;
            uint32_t len = 0;
            const char *text = bson_iter_init_find (&it, doc, "case_id") && BSON_ITER_HOLDS_UTF8 (&it)
                             ? bson_iter_utf8 (&it, &len) : NULL;
            if (text && len > 0 && len < GW_ID_MAX && !memchr (text, 0, len)) {
                memcpy (case_id, text, len);
                case_id [len] = 0;
            }
            else
                /* A row we could never route a command for; treat it as a broken model. */
                result = GW_READER_UNAVAILABLE;
            break;
        }
        if (!a)
            continue;
        if (a->limit && a->count == a->limit) {
            *a->more = 1;
            break;
        }
        if (a->count++)
            gw_buf_append (a->out, ",", 1);
        s_append_field (a->out, doc, a->field);
        if (a->last_seq) {
            bson_iter_t it;
            if (bson_iter_init_find (&it, doc, "seq") && BSON_ITER_HOLDS_NUMBER (&it))
                *a->last_seq = bson_iter_as_int64 (&it);
        }
    }
    bson_error_t error;
    if (mongoc_cursor_error (cursor, &error)) {
        /* After the server restarted, the first use of a pooled socket fails although the
         * server is back (the driver notices only then). Like the retryable-reads rule of
         * the MongoDB drivers: one more try on a network error, if nothing was read yet. */
        if (attempt++ == 0 && n == 0
        &&  error.domain != MONGOC_ERROR_SERVER && error.domain != MONGOC_ERROR_QUERY) {
            mongoc_cursor_destroy (cursor);
            goto again;
        }
        s_read_failed (self, &error);
        result = GW_READER_UNAVAILABLE;
    }
    else
    if (s_state (self) != 1)
        s_mark (self, 1, NULL);
    mongoc_cursor_destroy (cursor);
    if (found)
        *found = n;
    if (result == GW_READER_OK && a && a->out->failed)
        result = GW_READER_UNAVAILABLE;
    return result;
}

/* {projection: {field: 1}, [sort: {sort_key: 1},] [limit: limit]} */
static void
s_opts (bson_t *opts, const char *field, const char *field2, const char *sort_key, int64_t limit)
{
    bson_t projection, sort;
    bson_init (opts);
    BSON_APPEND_DOCUMENT_BEGIN (opts, "projection", &projection);
    BSON_APPEND_INT32 (&projection, field, 1);
    if (field2)
        BSON_APPEND_INT32 (&projection, field2, 1);
    bson_append_document_end (opts, &projection);
    if (sort_key) {
        BSON_APPEND_DOCUMENT_BEGIN (opts, "sort", &sort);
        BSON_APPEND_INT32 (&sort, sort_key, 1);
        bson_append_document_end (opts, &sort);
    }
    if (limit > 0)
        BSON_APPEND_INT64 (opts, "limit", limit);
}

/* The collection holding each kind of keyed object. */
static int
s_object_coll (gw_rm_object_t which)
{
    switch (which) {
        case GW_RM_COMPANY:  return S_COMPANIES;
        case GW_RM_PERSON:   return S_PERSONS;
        case GW_RM_DOCUMENT: return S_DOCUMENTS;
        default:             return S_CASES;
    }
}

static int
s_object (void *impl, gw_rm_object_t which, const char *id, gw_buf_t *out)
{
    s_self_t *self = (s_self_t *) impl;
    const char *field = which == GW_RM_CASE ? "full_json" : "json";
    bson_t filter = BSON_INITIALIZER, opts;
    BSON_APPEND_UTF8 (&filter, "_id", id);
    s_opts (&opts, field, NULL, NULL, 1);
    s_append_t a = { .out = out, .field = field };
    int found = 0;
    int rc = s_find (self, s_object_coll (which), &filter, &opts, &a, &found, NULL);
    bson_destroy (&filter);
    bson_destroy (&opts);
    return rc == GW_READER_OK && !found ? GW_READER_NOT_FOUND : rc;
}

static int
s_exists (void *impl, gw_rm_object_t which, const char *id)
{
    s_self_t *self = (s_self_t *) impl;
    bson_t filter = BSON_INITIALIZER, opts;
    BSON_APPEND_UTF8 (&filter, "_id", id);
    s_opts (&opts, "_id", NULL, NULL, 1);
    int found = 0;
    int rc = s_find (self, s_object_coll (which), &filter, &opts, NULL, &found, NULL);
    bson_destroy (&filter);
    bson_destroy (&opts);
    return rc == GW_READER_OK && !found ? GW_READER_NOT_FOUND : rc;
}

static int
s_document_case (void *impl, const char *document_id, char case_id [GW_ID_MAX])
{
    s_self_t *self = (s_self_t *) impl;
    bson_t filter = BSON_INITIALIZER, opts;
    BSON_APPEND_UTF8 (&filter, "_id", document_id);
    s_opts (&opts, "case_id", NULL, NULL, 1);
    int found = 0;
    int rc = s_find (self, S_DOCUMENTS, &filter, &opts, NULL, &found, case_id);
    bson_destroy (&filter);
    bson_destroy (&opts);
    return rc == GW_READER_OK && !found ? GW_READER_NOT_FOUND : rc;
}

static int
s_rows (void *impl, gw_rm_list_t which, const char *id, gw_buf_t *out)
{
    s_self_t *self = (s_self_t *) impl;
    int coll = which == GW_RM_CASE_EVENTS ? S_EVENTS : which == GW_RM_CASE_DOCUMENTS ? S_DOCUMENTS : S_BOS;
    bson_t filter = BSON_INITIALIZER, opts;
    BSON_APPEND_UTF8 (&filter, which == GW_RM_COMPANY_OWNERS ? "company_id" : "case_id", id);
    s_opts (&opts, "json", NULL, which == GW_RM_CASE_EVENTS ? "version" : "seq", 0);
    s_append_t a = { .out = out, .field = "json" };
    int rc = s_find (self, coll, &filter, &opts, &a, NULL, NULL);
    bson_destroy (&filter);
    bson_destroy (&opts);
    return rc;
}

static int
s_cases (void *impl, const gw_cases_query_t *query, int limit, gw_buf_t *out, int64_t *last_seq, int *more)
{
    s_self_t *self = (s_self_t *) impl;
    /* Stored strings are UTF-8: a filter that is not matches nothing (and must not
     * reach the server, which may refuse it as a malformed request). */
    if (!bson_utf8_validate (query->client_id, strlen (query->client_id), false))
        return GW_READER_OK;
    bson_t filter = BSON_INITIALIZER, gt, opts;
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "seq", &gt);
    BSON_APPEND_INT64 (&gt, "$gt", query->after_seq);
    bson_append_document_end (&filter, &gt);
    if (query->client_id [0])
        BSON_APPEND_UTF8 (&filter, "client_id", query->client_id);
    if (query->traitement_type [0])
        BSON_APPEND_UTF8 (&filter, "traitement_type", query->traitement_type);
    if (query->status [0])
        BSON_APPEND_UTF8 (&filter, "status", query->status);
    /* One row more than asked tells whether another page exists. */
    s_opts (&opts, "summary_json", "seq", "seq", limit + 1);
    s_append_t a = { .out = out, .field = "summary_json", .last_seq = last_seq, .limit = limit, .more = more };
    int rc = s_find (self, S_CASES, &filter, &opts, &a, NULL, NULL);
    bson_destroy (&filter);
    bson_destroy (&opts);
    return rc;
}

const gw_reader_ops_t gw_reader_mongo_ops = {
    .name = "mongodb",
    .destroy = s_destroy,
    .ready = s_ready,
    .reason = s_reason,
    .object = s_object,
    .exists = s_exists,
    .document_case = s_document_case,
    .rows = s_rows,
    .cases = s_cases,
};
