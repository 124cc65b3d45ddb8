/* notifier — the log is the outbox. Per batch: write the lines and fsync the file,
 * publish, and only then store the checkpoint. A crash between the two re-sends at
 * most the last batch (at least once, never lost); every line and message carries
 * the event id ("id"), so consumers drop the duplicates. */
#include "notifier.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "log.h"
#include "notifier_payload.h"
#include "notifier_sink.h"
#include "ready.h"
#include "subscription.h"

#define S_CHECKPOINT_NAME  "notifier"
/* A batch without notifications moves the checkpoint in memory only; it is stored
 * this long after (or with the next notification, or at stop). Losing it re-reads
 * events that send nothing, so there is no reason to pay an fsync per batch. */
#define S_LAZY_CHECKPOINT_MS 1000
#define S_MAX_SINKS 4

typedef struct {
    config_t *config;
    zsock_t *pipe;
    char *db_path, *notify_file, *store_ep, *pub_ep, *notify_ep;
    sqlite3 *db;
    sqlite3_stmt *put;
    notifier_sink_t *sinks [S_MAX_SINKS];
    size_t n_sinks;
    subscription_t *sub;
    zpoller_t *poller;
    int64_t stored;             /* checkpoint on disk */
    int64_t done;               /* every event up to here is handled */
    int64_t dirty_at;           /* when done got ahead of stored */
    uint64_t sent;
    int stopping;
} self_t;

/* ---- checkpoint ------------------------------------------------------------------ */

static int
s_open_db (self_t *self)
{
    if (sqlite3_open_v2 (self->db_path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                         NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "notifier: cannot open %s: %s", self->db_path,
                   self->db ? sqlite3_errmsg (self->db) : "out of memory");
        return -1;
    }
    sqlite3_busy_timeout (self->db, 5000);
    sqlite3_stmt *get = NULL;
    int rc = sqlite3_exec (self->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                           "CREATE TABLE IF NOT EXISTS checkpoint (name TEXT PRIMARY KEY, position INTEGER NOT NULL);",
                           NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "INSERT INTO checkpoint (name, position) VALUES ('" S_CHECKPOINT_NAME "', ?1) "
                                 "ON CONFLICT (name) DO UPDATE SET position = excluded.position", -1, &self->put, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (self->db, "SELECT position FROM checkpoint WHERE name = '" S_CHECKPOINT_NAME "'",
                                 -1, &get, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step (get);
        self->stored = rc == SQLITE_ROW ? sqlite3_column_int64 (get, 0) : 0;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize (get);
    if (rc != SQLITE_OK) {
        log_error (NULL, NULL, "notifier: %s: %s", self->db_path, sqlite3_errmsg (self->db));
        return -1;
    }
    self->done = self->stored;
    return 0;
}

static int
s_store_checkpoint (self_t *self)
{
    if (self->done == self->stored)
        return 0;
    sqlite3_bind_int64 (self->put, 1, self->done);
    int rc = sqlite3_step (self->put);
    sqlite3_reset (self->put);
    if (rc != SQLITE_DONE) {
        log_error (NULL, NULL, "notifier: cannot store checkpoint %lld: %s", (long long) self->done,
                   sqlite3_errmsg (self->db));
        return -1;
    }
    self->stored = self->done;
    return 0;
}

/* ---- the subscription ------------------------------------------------------------ */

static int
s_on_events (const event_t *events, size_t count, void *arg)
{
    self_t *self = (self_t *) arg;
    notifier_item_t *items = calloc (count, sizeof (notifier_item_t));
    char **texts = calloc (count, sizeof (char *));
    char (*topics) [NOTIFIER_TOPIC_MAX] = calloc (count, NOTIFIER_TOPIC_MAX);
    int rc = items && texts && topics ? 0 : -1;
    size_t n = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const event_t *ev = &events [i];
        if (strcmp (ev->type, "NotificationRequired") != 0)
            continue;
        char err [256];
        size_t size;
        texts [n] = notifier_payload_build (ev, &size, topics [n], err, sizeof err);
        if (!texts [n]) {
            /* a poison event is skipped for good: retrying cannot fix its payload */
            log_error (ev->correlation_id, ev->stream, "notifier: event at position %lld (id %s) skipped: %s",
                       (long long) ev->position, ev->id, err);
            continue;
        }
        items [n] = (notifier_item_t) { .topic = topics [n], .json = texts [n], .json_size = size,
                                        .event_id = ev->id, .position = ev->position };
        n++;
    }
    for (size_t s = 0; s < self->n_sinks && rc == 0 && n > 0; s++)
        if (notifier_sink_deliver (self->sinks [s], items, n) != 0) {
            log_warn (NULL, NULL, "notifier: sink %s refused the batch at %lld; will retry",
                      notifier_sink_name (self->sinks [s]), (long long) events [0].position);
            rc = -1;
        }
    if (rc == 0) {
        if (self->done == self->stored)
            self->dirty_at = zclock_mono ();
        self->done = events [count - 1].position;
        if (n > 0) {
            self->sent += n;
            /* Stored after the sinks: a failure here re-sends the batch (duplicates
             * the consumers drop by id), never loses it. */
            rc = s_store_checkpoint (self);
            if (rc)
                self->done = self->stored;
        }
    }
    for (size_t i = 0; i < n; i++)
        free (texts [i]);
    free (texts);
    free (topics);
    free (items);
    return rc;
}

static void
s_tick (self_t *self)
{
    if (self->done != self->stored && zclock_mono () - self->dirty_at >= S_LAZY_CHECKPOINT_MS)
        s_store_checkpoint (self);
}

/* ---- life cycle --------------------------------------------------------------------- */

static void
s_self_destroy (self_t **self_p)
{
    if (self_p && *self_p) {
        self_t *self = *self_p;
        zpoller_destroy (&self->poller);
        subscription_destroy (&self->sub);
        for (size_t i = 0; i < self->n_sinks; i++)
            notifier_sink_destroy (&self->sinks [i]);
        sqlite3_finalize (self->put);
        if (self->db)
            sqlite3_close (self->db);
        free (self->db_path);
        free (self->notify_file);
        free (self->store_ep);
        free (self->pub_ep);
        free (self->notify_ep);
        free (self);
        *self_p = NULL;
    }
}

static self_t *
s_self_new (config_t *config, zsock_t *pipe)
{
    self_t *self = calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    self->config = config;
    self->pipe = pipe;
    self->db_path = config_data_path (config, "notifier.db");
    const char *file = config_get (config, "notify_file", NULL);
    self->notify_file = file ? strdup (file) : config_data_path (config, "notifications.jsonl");
    self->store_ep = endpoints_get (config, "store");
    self->pub_ep = endpoints_get (config, "store_pub");
    self->notify_ep = endpoints_get (config, "notify_pub");
    if (!self->db_path || !self->notify_file || !self->store_ep || !self->pub_ep || !self->notify_ep) {
        log_error (NULL, NULL, "notifier: no usable endpoints or paths (ipc path too long?)");
        goto fail;
    }
    if (s_open_db (self))
        goto fail;
    /* Order matters: the file (the durable record) first, then the live feed. */
    self->sinks [self->n_sinks] = notifier_sink_jsonl_new (self->notify_file);
    if (!self->sinks [self->n_sinks++])
        goto fail;
    self->sinks [self->n_sinks] = notifier_sink_zmq_new (self->notify_ep);
    if (!self->sinks [self->n_sinks++])
        goto fail;
    self->sub = subscription_new (self->store_ep, self->pub_ep, self->stored + 1);
    if (!self->sub)
        goto fail;
    self->poller = zpoller_new (subscription_store_sock (self->sub), subscription_pub_sock (self->sub), NULL);
    if (!self->poller)
        goto fail;
    if (pipe)
        zpoller_add (self->poller, pipe);
    return self;
fail:
    s_self_destroy (&self);
    return NULL;
}

int
notifier_run (config_t *config, zsock_t *pipe)
{
    self_t *self = s_self_new (config, pipe);
    if (!self) {
        if (pipe)
            zsock_signal (pipe, 1);
        return -1;
    }
    log_info (NULL, NULL, "notifier: ready at position %lld, writing %s", (long long) self->stored, self->notify_file);
    ready_signal ();
    if (pipe)
        zsock_signal (pipe, 0);
    while (!self->stopping && !zsys_interrupted) {
        int timeout = subscription_timeout (self->sub);
        if (self->done != self->stored && timeout > S_LAZY_CHECKPOINT_MS)
            timeout = S_LAZY_CHECKPOINT_MS;
        void *which = zpoller_wait (self->poller, timeout);
        if (!which && zpoller_terminated (self->poller))
            break;
        if (which && which == pipe) {
            char *command = zstr_recv (pipe);
            if (!command || strcmp (command, "$TERM") == 0)
                self->stopping = 1;
            zstr_free (&command);
        }
        else
        if (which)
            subscription_handle (self->sub, which, s_on_events, self);
        subscription_tick (self->sub);
        s_tick (self);
    }
    s_store_checkpoint (self);
    log_info (NULL, NULL, "notifier: stopping at position %lld after %llu notifications",
              (long long) self->stored, (unsigned long long) self->sent);
    s_self_destroy (&self);
    return 0;
}

void
notifier_actor (zsock_t *pipe, void *args)
{
    notifier_run ((config_t *) args, pipe);
}
