/* notifier — the log is the outbox. Per batch: write the lines to the file, publish,
 * hand the batch to Kafka when it is configured, and store the checkpoint only up to
 * what every sink settled (the file: fsynced, once per 50 ms; Kafka: successful
 * delivery reports). A crash re-sends what was not settled (at least once, never
 * lost); every line and message carries the event id ("id"), so consumers drop the
 * duplicates. */
#include "notifier.h"
#include "health.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "heap_trim.h"
#include "kafka_config.h"
#include "log.h"
#include "metrics_export.h"
#include "metrics_memo.h"
#include "notifier_payload.h"
#include "notifier_sink.h"
#include "ready.h"
#include "subscription.h"
#include "traceparent.h"

#define S_CHECKPOINT_NAME  "notifier"
/* A batch without notifications moves the checkpoint in memory only; it is stored
 * this long after (or with the next notification, or at stop). Losing it re-reads
 * events that send nothing, so there is no reason to pay an fsync per batch. */
#define S_LAZY_CHECKPOINT_MS 1000
#define S_MAX_SINKS 4
/* The live feed is read at most this often once emptied: a notification may leave
 * up to this much later, and the notifier wakes and writes once per period rather
 * than once per append batch of the store. */
#define S_LINGER_MS 20
/* At stop, how long Kafka may take to confirm what is in flight (notify_flush_ms);
 * it is spent inside the supervisor's grace period, one budget for every process. */
#define S_DEFAULT_FLUSH_MS 2000

/* The series updated on every loop turn, found without the registry's formatting,
 * hash and lock (the notifier loop is one thread). */
static metrics_memo_t s_m_notifications = METRICS_MEMO_COUNTER ("dossier_notifier_notifications_total",
    "Notifications handed to every sink.", NULL);
static metrics_memo_t s_m_unconfirmed = METRICS_MEMO_GAUGE ("dossier_notifier_unconfirmed_positions",
    "Log positions handed to the sinks and not yet confirmed delivered.", NULL);
static metrics_memo_t s_m_checkpoint = METRICS_MEMO_GAUGE ("dossier_notifier_checkpoint_position",
    "The notifier's stored checkpoint (log position).", NULL);
static metrics_memo_t s_m_backlog = METRICS_MEMO_GAUGE ("dossier_notifier_backlog_events",
    "Log head minus the notifier's checkpoint.", NULL);

typedef struct {
    config_t *config;
    zsock_t *pipe;
    char *db_path, *notify_file, *store_ep, *pub_ep, *notify_ep;
    sqlite3 *db;
    sqlite3_stmt *put;
    notifier_sink_t *sinks [S_MAX_SINKS];
    size_t n_sinks;
    subscription_t *sub;
    int64_t stored;             /* checkpoint on disk */
    int64_t handed;             /* every event up to here was given to the sinks */
    int64_t notified;           /* position of the last notification handed over */
    int64_t done;               /* every event up to here is settled by every sink */
    int64_t dirty_at;           /* when done got ahead of stored */
    uint64_t sent;
    int kafka;                  /* the Kafka sink is on */
    heap_trim_t trim;           /* a burst's memory goes back once the feed is quiet */
    int stopping;
    int broken;                 /* a sink failed for good: stop, the supervisor restarts us */
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
    self->done = self->handed = self->notified = self->stored;
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

/* Moves done to the highest position every sink settled: what was handed over, less
 * whatever an asynchronous sink (Kafka) still owes. */
static void
s_update_done (self_t *self)
{
    int64_t done = self->handed;
    for (size_t s = 0; s < self->n_sinks; s++) {
        int64_t settled = notifier_sink_settled (self->sinks [s]);
        if (settled < done)
            done = settled;
    }
    if (done > self->done) {
        if (self->done == self->stored)
            self->dirty_at = zclock_mono ();
        self->done = done;
    }
}

static int
s_on_events (const event_t *events, size_t count, void *arg)
{
    self_t *self = (self_t *) arg;
    heap_trim_busy (&self->trim, zclock_mono ());
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
        char trace_id [33];
        log_set_trace (traceparent_trace_id (ev->traceparent, trace_id));    /* lines about this event */
        if (!texts [n]) {
            /* a poison event is skipped for good: retrying cannot fix its payload */
            log_error (ev->correlation_id, ev->stream, "notifier: event at position %lld (id %s) skipped: %s",
                       (long long) ev->position, ev->id, err);
            log_set_trace (NULL);
            continue;
        }
        log_debug (ev->correlation_id, ev->stream, "notifier: notification %s (position %lld) to the sinks",
                   ev->id, (long long) ev->position);
        log_set_trace (NULL);
        items [n] = (notifier_item_t) { .topic = topics [n], .json = texts [n], .json_size = size,
                                        .event_id = ev->id, .position = ev->position,
                                        .case_id = ev->stream, .time_us = ev->timestamp_us,
                                        .traceparent = ev->traceparent };
        n++;
    }
    /* Ask every sink before any writes: a full sink (Kafka with too much in flight)
     * refuses the batch before the file took it, so backpressure writes no line twice. */
    for (size_t s = 0; s < self->n_sinks && rc == 0 && n > 0; s++)
        if (!notifier_sink_ready (self->sinks [s], n)) {
            log_debug (NULL, NULL, "notifier: sink %s is full; the batch at %lld waits",
                       notifier_sink_name (self->sinks [s]), (long long) events [0].position);
            rc = -1;
        }
    for (size_t s = 0; s < self->n_sinks && rc == 0 && n > 0; s++)
        if (notifier_sink_deliver (self->sinks [s], items, n) != 0) {
            log_warn (NULL, NULL, "notifier: sink %s refused the batch at %lld; will retry",
                      notifier_sink_name (self->sinks [s]), (long long) events [0].position);
            char labels [96];
            snprintf (labels, sizeof labels, "sink=\"%s\"", notifier_sink_name (self->sinks [s]));
            metric_add (metrics_counter (metrics_process (), "dossier_notifier_refused_batches_total",
                                         "Batches a sink refused (retried later).", labels), 1);
            rc = -1;
        }
    if (rc == 0) {
        self->handed = events [count - 1].position;
        if (n > 0) {
            self->sent += n;
            metric_add (metrics_memo_get (&s_m_notifications, metrics_process (), NULL), (double) n);
            self->notified = items [n - 1].position;
        }
        s_update_done (self);
    }
    for (size_t i = 0; i < n; i++)
        free (texts [i]);
    free (texts);
    free (topics);
    free (items);
    return rc;
}

/* Stores the checkpoint at once when it passes a notification (a crash would send it
 * again), lazily when it passes only events that send nothing. A failed store is
 * tried again on a later turn; meanwhile a crash only re-sends. */
static void
s_tick (self_t *self)
{
    s_update_done (self);
    /* Backlog: handed to the sinks but not yet confirmed by all of them (Kafka's
     * delivery reports), in log positions. */
    metric_set (metrics_memo_get (&s_m_unconfirmed, metrics_process (), NULL), (double) (self->handed - self->done));
    metric_set (metrics_memo_get (&s_m_checkpoint, metrics_process (), NULL), (double) self->stored);
    /* Backlog: events in the log the notifier has not passed yet (head − checkpoint). */
    int64_t head = self->sub ? subscription_head (self->sub) : 0;
    metric_set (metrics_memo_get (&s_m_backlog, metrics_process (), NULL),
                (double) (head > self->stored ? head - self->stored : 0));
    if (self->done == self->stored)
        return;
    if (self->notified > self->stored || zclock_mono () - self->dirty_at >= S_LAZY_CHECKPOINT_MS)
        s_store_checkpoint (self);
}

/* Serves every sink's pending work (delivery reports, retries). */
static void
s_service_sinks (self_t *self)
{
    for (size_t s = 0; s < self->n_sinks; s++)
        if (notifier_sink_service (self->sinks [s]) != 0 && !self->broken) {
            log_error (NULL, NULL, "notifier: sink %s failed for good; stopping (to be restarted)",
                       notifier_sink_name (self->sinks [s]));
            self->broken = 1;
        }
}

/* The poll timeout: the subscription's timers, the lazy checkpoint, the sinks' retries. */
static int
s_timeout (self_t *self)
{
    int timeout = subscription_timeout (self->sub);
    if (self->done != self->stored && timeout > S_LAZY_CHECKPOINT_MS)
        timeout = S_LAZY_CHECKPOINT_MS;
    for (size_t s = 0; s < self->n_sinks; s++) {
        int t = notifier_sink_timeout (self->sinks [s]);
        if (t >= 0 && t < timeout)
            timeout = t;
    }
    int trim = heap_trim_tick (&self->trim, zclock_mono ());
    if (trim >= 0 && trim < timeout)
        timeout = trim;
    return timeout;
}

/* ---- life cycle --------------------------------------------------------------------- */

static void
s_self_destroy (self_t **self_p)
{
    if (self_p && *self_p) {
        self_t *self = *self_p;
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
    heap_trim_init (&self->trim, HEAP_TRIM_QUIET_MS);
    self->db_path = config_data_path (config, "notifier.db");
    const char *file = config_get (config, "notify_file", NULL);
    self->notify_file = file ? strdup (file) : config_data_path (config, "notifications.jsonl");
    self->store_ep = endpoints_get (config, "store");
    self->pub_ep = endpoints_get (config, "store_pub");
    self->notify_ep = endpoints_get_bind (config, "notify_pub");     /* we bind it */
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
    /* Kafka when configured, beside the others: the file stays the local record. */
    if (kafka_config_enabled (config)) {
        self->sinks [self->n_sinks] = notifier_sink_kafka_new (config);
        if (!self->sinks [self->n_sinks++])
            goto fail;
        self->kafka = 1;
    }
    self->sub = subscription_new (self->store_ep, self->pub_ep, self->stored + 1);
    if (!self->sub)
        goto fail;
    subscription_set_linger (self->sub, S_LINGER_MS);
    return self;
fail:
    s_self_destroy (&self);
    return NULL;
}

/* One turn of the loop: waits on the actor pipe, the subscription's two sockets and
 * the sinks' file descriptors (Kafka's wake-up pipe), then handles what is ready. */
static void
s_poll_once (self_t *self)
{
    zmq_pollitem_t items [3 + S_MAX_SINKS];
    int n = 0, pipe_at = -1;
    if (self->pipe) {
        pipe_at = n;
        items [n++] = (zmq_pollitem_t) { zsock_resolve (self->pipe), 0, ZMQ_POLLIN, 0 };
    }
    int store_at = n;
    items [n++] = (zmq_pollitem_t) { zsock_resolve (subscription_store_sock (self->sub)), 0, ZMQ_POLLIN, 0 };
    int pub_at = -1;
    if (subscription_live_due (self->sub)) {
        pub_at = n;
        items [n++] = (zmq_pollitem_t) { zsock_resolve (subscription_pub_sock (self->sub)), 0, ZMQ_POLLIN, 0 };
    }
    for (size_t s = 0; s < self->n_sinks; s++) {
        int fd = notifier_sink_fd (self->sinks [s]);
        if (fd >= 0)
            items [n++] = (zmq_pollitem_t) { NULL, fd, ZMQ_POLLIN, 0 };
    }
    if (zmq_poll (items, n, s_timeout (self)) < 0) {
        if (zmq_errno () == ETERM)
            self->stopping = 1;
        return;                 /* EINTR: the loop looks at zsys_interrupted */
    }
    if (pipe_at >= 0 && (items [pipe_at].revents & ZMQ_POLLIN)) {
        char *command = zstr_recv (self->pipe);
        if (!command || strcmp (command, "$TERM") == 0)
            self->stopping = 1;
        zstr_free (&command);
    }
    if (items [store_at].revents & ZMQ_POLLIN)
        subscription_handle (self->sub, subscription_store_sock (self->sub), s_on_events, self);
    if (pub_at >= 0 && (items [pub_at].revents & ZMQ_POLLIN))
        subscription_handle (self->sub, subscription_pub_sock (self->sub), s_on_events, self);
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
    log_info (NULL, NULL, "notifier: ready at position %lld, writing %s%s%s", (long long) self->stored,
              self->notify_file, self->kafka ? " and Kafka topic " : "",
              self->kafka ? config_get (config, "notify_topic", "notification_events") : "");
    ready_signal ();
    if (pipe)
        zsock_signal (pipe, 0);
    while (!self->stopping && !self->broken && !zsys_interrupted) {
        health_beat ();
        s_poll_once (self);
        s_service_sinks (self);
        subscription_tick (self->sub);
        s_tick (self);
    }
    /* A bounded wait for what Kafka has in flight; what it cannot confirm stays above
     * the checkpoint and is sent again after the restart. */
    long flush_ms = config_get_long (config, "notify_flush_ms", S_DEFAULT_FLUSH_MS);
    flush_ms = flush_ms < 0 ? 0 : flush_ms > 60000 ? 60000 : flush_ms;
    for (size_t s = 0; s < self->n_sinks && !self->broken; s++)
        if (notifier_sink_flush (self->sinks [s], (int) flush_ms) != 0)
            log_warn (NULL, NULL, "notifier: sink %s did not confirm everything within %ld ms; the rest is "
                      "sent again after a restart", notifier_sink_name (self->sinks [s]), flush_ms);
    s_update_done (self);
    s_store_checkpoint (self);
    int rc = self->broken ? -1 : 0;
    log_info (NULL, NULL, "notifier: stopping at position %lld after %llu notifications",
              (long long) self->stored, (unsigned long long) self->sent);
    s_self_destroy (&self);
    return rc;
}

void
notifier_actor (zsock_t *pipe, void *args)
{
    notifier_run ((config_t *) args, pipe);
}
