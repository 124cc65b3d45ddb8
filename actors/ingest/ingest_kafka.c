/* ingest_kafka — the Kafka source (see ingest_kafka.h). Each consumed record is
 * held (its librdkafka message kept) under a ticket until it is acknowledged; the
 * offset tracker turns acknowledgments into the offset that may be stored. A
 * partition is paused while one of its records waits for a retry, all of them
 * while too many records are held; librdkafka resumes a paused partition right
 * after the last record it handed out, so nothing is skipped and nothing doubled.
 * While commands fail, retries go one at a time (a probe): an outage costs one
 * command per backoff, not one per held record, and the first success releases
 * every waiting record at once. Records are consumed ahead into a ready queue
 * (held, offsets tracked) but submitted only while fewer commands are in flight
 * than ingest_window allows, so a slow store gets what it can absorb rather than
 * every held record at once (which it would answer `expired` after the handlers
 * gave up on them). */
#include "ingest_kafka.h"
#include "ingest_dlt.h"
#include "ingest_kafka_lag.h"
#include "ingest_metrics.h"
#include "ingest_offsets.h"
#include "ingest_window.h"

#include "command_id.h"
#include "kafka_config.h"
#include "log.h"
#include "traceparent.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_STATS_INTERVAL_MS   10000
#define S_SHUTDOWN_FLUSH_MS   500       /* dead letters still in flight at shutdown */
#define S_CLOSE_MS            2500      /* leaving the group at shutdown, commit included: the
                                           supervisor's grace period is for every process */
#define S_COMMIT_MS           2000      /* the synchronous commit on revoke, at most */
#define S_TOPIC_WARN_EVERY_MS 30000     /* "unknown topic" is repeated by librdkafka */
#define S_DIRTY_BATCH         64
#define S_CONSUME_BATCH       64        /* records moved to the ready queue per call, at most */

enum {
    S_READY = 1,                        /* consumed, waiting for room in the window */
    S_SUBMITTED,                        /* its command is with the server */
    S_ANSWERED,                         /* its outcome is being handled */
    S_RETRY_WAIT,                       /* transient failure: waiting to be submitted again */
    S_DLT_PENDING,                      /* dead letter produced, delivery not yet reported */
    S_DLT_WAIT                          /* dead letter failed: waiting to be produced again */
};

typedef struct {
    uint64_t ticket;                    /* also the hash key (the table points at it) */
    rd_kafka_message_t *message;        /* owned */
    int state;                          /* S_* */
    int attempts;                       /* transient failures so far */
    int retrying;                       /* counted in its partition's retrying */
    int value_omitted;                  /* the DLT refused the full record: send it without */
    int probe;                          /* a retry submitted: counted in self->probes */
    int64_t due_ms;
    int64_t submitted_ms;               /* when its command last went to the server */
    void *retry_handle;                 /* in self->retries while waiting */
    void *ready_handle;                 /* in self->ready while S_READY */
    ingest_outcome_t *why;              /* owned, once it is poison */
    char command_id [COMMAND_ID_MAX];   /* for logs, once known */
    char traceparent [TRACEPARENT_LEN]; /* ingest's span of it, from the first s_fill on */
} s_record_t;

typedef struct {
    int32_t partition;
    size_t retrying;                    /* records of it waiting for, or in, a retry */
    int paused;
    int paused_for_retry;               /* logged at info; backpressure pauses are routine */
} s_part_t;

struct _ingest_kafka_t {
    config_t *config;                   /* borrowed */
    char *topic;
    char *dlt_topic;
    char *group;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;            /* the consumer queue (main queue forwarded to it) */
    ingest_dlt_t *dlt;
    ingest_offsets_t *offsets;
    zhashx_t *records;                  /* ticket → s_record_t, owned */
    zlistx_t *retries;                  /* S_RETRY_WAIT records by due time; borrowed */
    zlistx_t *dlt_retries;              /* S_DLT_WAIT records by due time; borrowed */
    zlistx_t *ready;                    /* S_READY records in consumption order; borrowed */
    size_t submitted;                   /* records in S_SUBMITTED: the commands in flight */
    ingest_window_t window;             /* how many may be */
    s_part_t *parts;                    /* the current assignment */
    size_t parts_size, parts_cap;
    int fds [2];                        /* librdkafka writes to [1] when it has work; we poll [0] */
    uint64_t next_ticket;
    size_t max_in_flight;
    int64_t backoff_ms, backoff_max_ms;
    int backpressure;                   /* every partition paused: too many records held */
    int more;                           /* the last ingest_kafka_next may have left records */
    int failing;                        /* the last command outcome was a transient failure */
    size_t probes;                      /* retried records submitted and not yet answered */
    int64_t stats_at_ms;
    int64_t topic_warned_ms;
    int64_t close_deadline_ms;          /* while leaving the group at shutdown, else 0 */
    struct {
        uint64_t received, ok, duplicate, dlt, retried, refetched;
    } stats;
};

static void s_dlt_send (ingest_kafka_t *self, s_record_t *record);

/* -------------------------------------------------------------------------- */
/* Records                                                                    */

static size_t
s_ticket_hash (const void *key)
{
    uint64_t x = *(const uint64_t *) key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t) x;
}

static int
s_ticket_compare (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static int
s_due_compare (const void *a, const void *b)
{
    int64_t x = ((const s_record_t *) a)->due_ms, y = ((const s_record_t *) b)->due_ms;
    return x < y ? -1 : x > y ? 1 : 0;
}

static void
s_record_free (void **item_p)
{
    if (item_p && *item_p) {
        s_record_t *record = (s_record_t *) *item_p;
        rd_kafka_message_destroy (record->message);
        free (record->why);
        free (record);
        *item_p = NULL;
    }
}

static s_part_t *
s_part (ingest_kafka_t *self, int32_t partition)
{
    for (size_t i = 0; i < self->parts_size; i++)
        if (self->parts [i].partition == partition)
            return &self->parts [i];
    return NULL;
}

/* Frees a record and everything pointing at it. */
static zlistx_t *
s_retry_list (ingest_kafka_t *self, s_record_t *record)
{
    return record->state == S_DLT_WAIT ? self->dlt_retries : self->retries;
}

static void
s_record_remove (ingest_kafka_t *self, s_record_t *record)
{
    if (record->ready_handle) {
        zlistx_delete (self->ready, record->ready_handle);
        record->ready_handle = NULL;
    }
    if (record->state == S_SUBMITTED && self->submitted)
        self->submitted--;
    if (record->retry_handle) {
        zlistx_delete (s_retry_list (self, record), record->retry_handle);
        record->retry_handle = NULL;
    }
    if (record->probe && self->probes)
        self->probes--;
    if (record->retrying) {
        s_part_t *part = s_part (self, record->message->partition);
        if (part && part->retrying)
            part->retrying--;
    }
    uint64_t ticket = record->ticket;
    zhashx_delete (self->records, &ticket);
}

/* The record is in the log or in the DLT: its offset may be stored once every
 * record before it is too. */
static void
s_acknowledge (ingest_kafka_t *self, s_record_t *record)
{
    if (ingest_offsets_ack (self->offsets, record->message->partition, record->message->offset) == -2)
        log_warn (record->command_id, NULL, "kafka: %s/%d@%lld acknowledged but not tracked",
                  self->topic, (int) record->message->partition, (long long) record->message->offset);
    s_record_remove (self, record);
}

static int64_t
s_backoff (ingest_kafka_t *self, int attempts)
{
    int64_t delay = self->backoff_ms;
    for (int i = 1; i < attempts && delay < self->backoff_max_ms; i++)
        delay *= 2;
    return delay < self->backoff_max_ms ? delay : self->backoff_max_ms;
}

/* A transient failure: the record waits (its partition paused) and goes again. */
static void
s_schedule (ingest_kafka_t *self, s_record_t *record, int state)
{
    record->state = state;
    record->attempts++;
    if (!record->retrying) {
        record->retrying = 1;
        s_part_t *part = s_part (self, record->message->partition);
        if (part)
            part->retrying++;
    }
    record->due_ms = zclock_mono () + s_backoff (self, record->attempts);
    record->retry_handle = zlistx_insert (s_retry_list (self, record), record, false);
    if (!record->retry_handle)
        log_error (record->command_id, NULL, "kafka: out of memory scheduling a retry of %s/%d@%lld; "
                   "it will be consumed again after a restart", self->topic,
                   (int) record->message->partition, (long long) record->message->offset);
}

/* -------------------------------------------------------------------------- */
/* Offsets, pauses, partitions                                                */

/* Hands librdkafka the commit points that moved; auto-commit (or the commit on
 * revoke) sends them to the group coordinator. */
static void
s_store_offsets (ingest_kafka_t *self)
{
    int32_t partitions [S_DIRTY_BATCH];
    int64_t offsets [S_DIRTY_BATCH];
    size_t n;
    do {
        n = ingest_offsets_dirty (self->offsets, partitions, offsets, S_DIRTY_BATCH);
        if (n == 0)
            break;
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new ((int) n);
        if (!list) {
            log_error (NULL, NULL, "kafka: out of memory storing offsets; they are stored on the next acknowledgment");
            return;
        }
        for (size_t i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add (list, self->topic, partitions [i])->offset = offsets [i];
        rd_kafka_offsets_store (self->rk, list);
        for (int i = 0; i < list->cnt; i++)
            if (list->elems [i].err)
                log_debug (NULL, NULL, "kafka: offset %lld of %s/%d not stored: %s",
                           (long long) list->elems [i].offset, self->topic, (int) list->elems [i].partition,
                           rd_kafka_err2str (list->elems [i].err));
        rd_kafka_topic_partition_list_destroy (list);
    } while (n == S_DIRTY_BATCH);
}

static void
s_pause_or_resume (ingest_kafka_t *self, rd_kafka_topic_partition_list_t *list, int pause)
{
    if (!list)
        return;
    rd_kafka_resp_err_t rc = pause ? rd_kafka_pause_partitions (self->rk, list)
                                   : rd_kafka_resume_partitions (self->rk, list);
    if (rc)
        log_warn (NULL, NULL, "kafka: cannot %s partitions: %s", pause ? "pause" : "resume", rd_kafka_err2str (rc));
    rd_kafka_topic_partition_list_destroy (list);
}

/* Brings each partition's pause in line with what it should be: paused while a
 * record of it waits for a retry, and all of them while too many records are held
 * (resumed at half, so it does not flap). */
static void
s_apply_pauses (ingest_kafka_t *self)
{
    size_t held = zhashx_size (self->records);
    if (!self->backpressure && held >= self->max_in_flight) {
        self->backpressure = 1;
        log_debug (NULL, NULL, "kafka: %zu records held; consumption paused", held);
    }
    else
    if (self->backpressure && held <= self->max_in_flight / 2) {
        self->backpressure = 0;
        log_debug (NULL, NULL, "kafka: %zu records held; consumption resumed", held);
    }
    rd_kafka_topic_partition_list_t *pause = NULL, *resume = NULL;
    for (size_t i = 0; i < self->parts_size; i++) {
        s_part_t *part = &self->parts [i];
        int want = self->backpressure || part->retrying > 0;
        if (want == part->paused)
            continue;
        rd_kafka_topic_partition_list_t **list = want ? &pause : &resume;
        if (!*list)
            *list = rd_kafka_topic_partition_list_new ((int) self->parts_size);
        if (!*list)
            continue;                   /* out of memory: try again next turn */
        rd_kafka_topic_partition_list_add (*list, self->topic, part->partition);
        part->paused = want;
        if (want && part->retrying > 0) {
            part->paused_for_retry = 1;
            log_info (NULL, NULL, "kafka: partition %s/%d paused: a record waits for a retry",
                      self->topic, (int) part->partition);
        }
        else
        if (!want && part->paused_for_retry) {
            part->paused_for_retry = 0;
            log_info (NULL, NULL, "kafka: partition %s/%d resumed", self->topic, (int) part->partition);
        }
    }
    s_pause_or_resume (self, pause, 1);
    s_pause_or_resume (self, resume, 0);
}

/* Drops every record of a partition no longer ours: the next owner consumes them
 * again from the committed offset (safe: their command ids are deterministic). */
static void
s_drop_partition (ingest_kafka_t *self, int32_t partition)
{
    size_t size = zhashx_size (self->records), n = 0;
    uint64_t *tickets = size ? (uint64_t *) malloc (size * sizeof (uint64_t)) : NULL;
    if (tickets) {
        for (s_record_t *record = (s_record_t *) zhashx_first (self->records); record;
             record = (s_record_t *) zhashx_next (self->records))
            if (record->message->partition == partition)
                tickets [n++] = record->ticket;
        for (size_t i = 0; i < n; i++) {
            s_record_t *record = (s_record_t *) zhashx_lookup (self->records, &tickets [i]);
            if (record)
                s_record_remove (self, record);
        }
        free (tickets);
    }
    else
    while (size) {                      /* out of memory (or nothing held): one at a time */
        s_record_t *record = (s_record_t *) zhashx_first (self->records);
        while (record && record->message->partition != partition)
            record = (s_record_t *) zhashx_next (self->records);
        if (!record)
            break;
        s_record_remove (self, record);
    }
    ingest_offsets_drop (self->offsets, partition);
    /* Its new owner reports its lag from now on. */
    ingest_metrics_kafka_lag (self->topic, partition, 0);
    for (size_t i = 0; i < self->parts_size; i++)
        if (self->parts [i].partition == partition) {
            /* librdkafka keeps an application pause on the partition object across
             * unassign and assign: a partition paused now would come back paused
             * and never be consumed again. Resume it before it goes. */
            if (self->parts [i].paused) {
                rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (1);
                if (list)
                    rd_kafka_topic_partition_list_add (list, self->topic, partition);
                s_pause_or_resume (self, list, 0);
            }
            self->parts [i] = self->parts [--self->parts_size];
            break;
        }
}

static void
s_add_partition (ingest_kafka_t *self, int32_t partition)
{
    /* Whatever an earlier ownership left is stale: the group's committed offset
     * decides where consumption starts again. */
    ingest_offsets_drop (self->offsets, partition);
    if (s_part (self, partition))
        return;
    if (self->parts_size == self->parts_cap) {
        size_t cap = self->parts_cap ? self->parts_cap * 2 : 16;
        s_part_t *parts = (s_part_t *) realloc (self->parts, cap * sizeof (s_part_t));
        if (!parts) {
            log_error (NULL, NULL, "kafka: out of memory tracking partition %d; it will not be paused", (int) partition);
            return;
        }
        self->parts = parts;
        self->parts_cap = cap;
    }
    s_part_t *part = &self->parts [self->parts_size++];
    memset (part, 0, sizeof *part);
    part->partition = partition;
}

static void
s_list_text (const rd_kafka_topic_partition_list_t *list, char *out, size_t size)
{
    size_t len = 0;
    out [0] = 0;
    for (int i = 0; i < list->cnt && len + 16 < size; i++)
        len += (size_t) snprintf (out + len, size - len, "%s%d", i ? "," : "", (int) list->elems [i].partition);
    if (list->cnt && len + 16 >= size)
        snprintf (out + len, size - len, ",...");
}

/* Commits what is stored and waits for the answer, so the next owner of a revoked
 * partition starts after it rather than at the last auto-commit. The wait is
 * bounded: a hung coordinator must not hold a rebalance, or shutdown, for a
 * request timeout; an unanswered commit only means some records are read again. */
static void
s_commit_now (ingest_kafka_t *self)
{
    s_store_offsets (self);
    int64_t wait = S_COMMIT_MS;
    if (self->close_deadline_ms) {
        int64_t left = self->close_deadline_ms - zclock_mono ();
        wait = left < wait ? (left > 100 ? left : 100) : wait;
    }
    rd_kafka_queue_t *queue = rd_kafka_queue_new (self->rk);
    if (!queue)
        return;
    rd_kafka_resp_err_t rc = rd_kafka_commit_queue (self->rk, NULL, queue, NULL, NULL);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_event_t *event = rd_kafka_queue_poll (queue, (int) wait);
        if (!event)
            rc = RD_KAFKA_RESP_ERR__TIMED_OUT;
        else {
            rc = rd_kafka_event_error (event);
            rd_kafka_event_destroy (event);
        }
    }
    if (rc && rc != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn (NULL, NULL, "kafka: commit on revoke: %s; the next owner re-reads from the last commit",
                  rd_kafka_err2str (rc));
    rd_kafka_queue_destroy (queue);
}

static void
s_rebalance_cb (rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
    ingest_kafka_t *self = (ingest_kafka_t *) opaque;
    int cooperative = strcmp (rd_kafka_rebalance_protocol (rk), "COOPERATIVE") == 0;
    char text [256];
    s_list_text (partitions, text, sizeof text);
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t rc = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info (NULL, NULL, "kafka: assigned %s partitions [%s] in group %s", self->topic, text, self->group);
        if (cooperative)
            error = rd_kafka_incremental_assign (rk, partitions);
        else
            rc = rd_kafka_assign (rk, partitions);
        for (int i = 0; i < partitions->cnt; i++)
            if (strcmp (partitions->elems [i].topic, self->topic) == 0)
                s_add_partition (self, partitions->elems [i].partition);
        s_apply_pauses (self);          /* under backpressure, new partitions start paused */
    }
    else
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int lost = rd_kafka_assignment_lost (rk);
        log_info (NULL, NULL, "kafka: %s %s partitions [%s]", lost ? "lost" : "revoked", self->topic, text);
        if (!lost)
            s_commit_now (self);
        for (int i = 0; i < partitions->cnt; i++)
            if (strcmp (partitions->elems [i].topic, self->topic) == 0)
                s_drop_partition (self, partitions->elems [i].partition);
        if (cooperative)
            error = rd_kafka_incremental_unassign (rk, partitions);
        else
            rc = rd_kafka_assign (rk, NULL);
    }
    else {
        log_error (NULL, NULL, "kafka: rebalance failed: %s", rd_kafka_err2str (err));
        while (self->parts_size)
            s_drop_partition (self, self->parts [0].partition);
        rc = rd_kafka_assign (rk, NULL);
    }
    if (error) {
        log_error (NULL, NULL, "kafka: (un)assign failed: %s", rd_kafka_error_string (error));
        rd_kafka_error_destroy (error);
    }
    if (rc)
        log_error (NULL, NULL, "kafka: (un)assign failed: %s", rd_kafka_err2str (rc));
}

/* -------------------------------------------------------------------------- */
/* librdkafka callbacks                                                       */

static void
s_log_cb (const rd_kafka_t *rk, int level, const char *facility, const char *text)
{
    (void) rk;
    /* librdkafka's errors here are mostly a broker going away, which it survives
     * by itself (retries, reconnects): a warning, not an error of ours. Its
     * notices and info lines are chatter. */
    int ours = level <= 4 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;
    log_emit (ours, NULL, NULL, "kafka consumer: %s: %s", facility, text);
}

static void
s_error_cb (rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void) rk; (void) opaque;
    /* Broker-down errors are transient: librdkafka reconnects by itself, and the
     * log callback has already told each connection failure. */
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        log_error (NULL, NULL, "kafka consumer: fatal error: %s", reason);
    else
        log_emit (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, NULL, NULL,
                  "kafka consumer: %s: %s", rd_kafka_err2name ((rd_kafka_resp_err_t) err), reason);
}

/* The DLT producer's delivery report for ticket. */
static void
s_dlt_report (void *arg, uint64_t ticket, rd_kafka_resp_err_t err)
{
    ingest_kafka_t *self = (ingest_kafka_t *) arg;
    s_record_t *record = (s_record_t *) zhashx_lookup (self->records, &ticket);
    if (!record || record->state != S_DLT_PENDING)
        return;                         /* its partition was revoked meanwhile */
    rd_kafka_message_t *message = record->message;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        self->stats.dlt++;
        ingest_metrics_dead_letter ();
        log_info (record->command_id [0] ? record->command_id : NULL, NULL,
                  "kafka: %s/%d@%lld dead-lettered to %s: %d %s", self->topic, (int) message->partition,
                  (long long) message->offset, self->dlt_topic, record->why->status, record->why->error);
        s_acknowledge (self, record);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && !record->value_omitted)
        record->value_omitted = 1;
    log_emit (record->attempts ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, record->command_id [0] ? record->command_id : NULL,
              NULL, "kafka: dead letter for %s/%d@%lld not written (%s); retrying", self->topic,
              (int) message->partition, (long long) message->offset, rd_kafka_err2name (err));
    s_schedule (self, record, S_DLT_WAIT);
}

/* -------------------------------------------------------------------------- */
/* Construction                                                               */

static int
s_conf_set (rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t err_size)
{
    char why [256];
    if (rd_kafka_conf_set (conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf (err, err_size, "kafka property %s: %s", name, why);
        return -1;
    }
    return 0;
}

static void
s_on_lag (const char *topic, int32_t partition, int64_t lag, void *arg)
{
    (void) arg;
    ingest_metrics_kafka_lag (topic, partition, lag);
}

/* librdkafka's statistics (statistics.interval.ms), served by the consumer poll in
 * our thread: the consumer lag per partition. Returns 0: librdkafka frees json. */
static int
s_stats_cb (rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    (void) rk;
    ingest_kafka_t *self = (ingest_kafka_t *) opaque;
    ingest_kafka_lag_parse (json, json_len, self->topic, s_on_lag, NULL);
    return 0;
}

static rd_kafka_t *
s_consumer_new (ingest_kafka_t *self, char *err, size_t err_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    if (!conf) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    const char *instance = getenv ("DOSSIER_INSTANCE");
    char client_id [64];
    snprintf (client_id, sizeof client_id, "dossier-ingest-%d", instance ? atoi (instance) : 0);
    /* Our defaults, then the operator's properties (SASL, SSL, tuning), then what
     * at-least-once depends on: offsets are stored by us, never by librdkafka. A
     * short metadata refresh makes a topic created after start-up show up soon; a
     * short session lets the group take a killed instance's partitions in seconds. */
    if (s_conf_set (conf, "client.id", client_id, err, err_size)
    ||  s_conf_set (conf, "auto.offset.reset", "earliest", err, err_size)
    ||  s_conf_set (conf, "enable.auto.commit", "true", err, err_size)
    ||  s_conf_set (conf, "auto.commit.interval.ms", "1000", err, err_size)
    ||  s_conf_set (conf, "topic.metadata.refresh.interval.ms", "10000", err, err_size)
    ||  s_conf_set (conf, "session.timeout.ms", "10000", err, err_size)
    ||  s_conf_set (conf, "statistics.interval.ms", "1000", err, err_size)
    ||  kafka_config_apply (self->config, conf, err, err_size)
    ||  s_conf_set (conf, "group.id", self->group, err, err_size)
    ||  s_conf_set (conf, "enable.auto.offset.store", "false", err, err_size)
    ||  s_conf_set (conf, "enable.partition.eof", "false", err, err_size)) {
        rd_kafka_conf_destroy (conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque (conf, self);
    rd_kafka_conf_set_log_cb (conf, s_log_cb);
    rd_kafka_conf_set_error_cb (conf, s_error_cb);
    rd_kafka_conf_set_rebalance_cb (conf, s_rebalance_cb);
    rd_kafka_conf_set_stats_cb (conf, s_stats_cb);
    char why [256];
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk) {
        snprintf (err, err_size, "cannot create the consumer: %s", why);
        rd_kafka_conf_destroy (conf);
    }
    return rk;
}

ingest_kafka_t *
ingest_kafka_new (config_t *config)
{
    ingest_kafka_t *self = (ingest_kafka_t *) calloc (1, sizeof (ingest_kafka_t));
    if (!self)
        return NULL;
    self->fds [0] = self->fds [1] = -1;
    self->config = config;
    char err [512] = "out of memory";
    const char *topic = config_get (config, "kafka_topic", "kyc_events");
    const char *group = config_get (config, "kafka_group", "dossier-ingest");
    long max_in_flight = config_get_long (config, "kafka_max_in_flight", 5000);
    self->max_in_flight = max_in_flight > 0 ? (size_t) max_in_flight : 5000;
    long window_min = config_get_long (config, "kafka_window_min", 4);
    long window_max = config_get_long (config, "kafka_window_max", 1000);
    long window_slack = config_get_long (config, "kafka_window_slack_ms", 500);
    if (window_max <= 0 || (size_t) window_max > self->max_in_flight)
        window_max = (long) self->max_in_flight;
    ingest_window_init (&self->window, window_min > 0 ? (size_t) window_min : 4, (size_t) window_max,
                        window_slack >= 0 ? window_slack : 500);
    long backoff = config_get_long (config, "kafka_retry_backoff_ms", 200);
    self->backoff_ms = backoff > 0 ? backoff : 200;
    long backoff_max = config_get_long (config, "kafka_retry_backoff_max_ms", 10000);
    self->backoff_max_ms = backoff_max >= self->backoff_ms ? backoff_max : self->backoff_ms;
    if (!*topic || !*group) {
        snprintf (err, sizeof err, "kafka_topic and kafka_group must not be empty");
        goto fail;
    }
    self->topic = strdup (topic);
    self->group = strdup (group);
    self->dlt_topic = (char *) malloc (strlen (topic) + 5);
    if (!self->topic || !self->group || !self->dlt_topic)
        goto fail;
    sprintf (self->dlt_topic, "%s.DLT", topic);
    self->offsets = ingest_offsets_new ();
    self->records = zhashx_new ();
    self->retries = zlistx_new ();
    self->dlt_retries = zlistx_new ();
    self->ready = zlistx_new ();
    if (!self->offsets || !self->records || !self->retries || !self->dlt_retries || !self->ready)
        goto fail;
    zhashx_set_key_hasher (self->records, s_ticket_hash);
    zhashx_set_key_comparator (self->records, s_ticket_compare);
    zhashx_set_key_duplicator (self->records, NULL);     /* the key lives in the record */
    zhashx_set_key_destructor (self->records, NULL);
    zhashx_set_destructor (self->records, s_record_free);
    zlistx_set_comparator (self->retries, s_due_compare);
    zlistx_set_comparator (self->dlt_retries, s_due_compare);
    if (pipe2 (self->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf (err, sizeof err, "pipe: %s", strerror (errno));
        goto fail;
    }
    self->rk = s_consumer_new (self, err, sizeof err);
    if (!self->rk)
        goto fail;
    rd_kafka_poll_set_consumer (self->rk);
    self->queue = rd_kafka_queue_get_consumer (self->rk);
    if (!self->queue)
        goto fail;
    /* librdkafka writes to the pipe when its queue turns non-empty: the actor's
     * zmq_poll wakes for Kafka as for any socket, no busy polling. */
    rd_kafka_queue_io_event_enable (self->queue, self->fds [1], "c", 1);
    self->dlt = ingest_dlt_new (config, self->dlt_topic, self->fds [1], s_dlt_report, self, err, sizeof err);
    if (!self->dlt)
        goto fail;
    rd_kafka_topic_partition_list_t *subscription = rd_kafka_topic_partition_list_new (1);
    if (!subscription)
        goto fail;
    rd_kafka_topic_partition_list_add (subscription, self->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rc = rd_kafka_subscribe (self->rk, subscription);
    rd_kafka_topic_partition_list_destroy (subscription);
    if (rc) {
        snprintf (err, sizeof err, "cannot subscribe to %s: %s", self->topic, rd_kafka_err2str (rc));
        goto fail;
    }
    self->stats_at_ms = zclock_mono () + S_STATS_INTERVAL_MS;
    self->more = 1;
    log_info (NULL, NULL, "kafka: consuming %s in group %s (dead letters to %s, at most %zu records held, "
              "%zu to %zu commands in flight)", self->topic, self->group, self->dlt_topic, self->max_in_flight,
              self->window.min, self->window.max);
    ingest_metrics_kafka_window (ingest_window_limit (&self->window));
    return self;
fail:
    log_error (NULL, NULL, "kafka: %s", err);
    ingest_kafka_destroy (&self);
    return NULL;
}

void
ingest_kafka_destroy (ingest_kafka_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_kafka_t *self = *self_p;
    /* Dead letters in flight may still be confirmed: their offsets then count. */
    ingest_dlt_destroy (&self->dlt, S_SHUTDOWN_FLUSH_MS);
    int closed = 0, abandon = 0;
    if (self->rk && self->queue) {
        s_store_offsets (self);
        /* Closing revokes the assignment through s_rebalance_cb, which commits what
         * is stored, and leaves the group so the others take over at once. With
         * the brokers unreachable that could block for a session timeout, so it
         * runs in the background while we serve its events up to a deadline. */
        self->close_deadline_ms = zclock_mono () + S_CLOSE_MS;
        rd_kafka_error_t *error = rd_kafka_consumer_close_queue (self->rk, self->queue);
        if (error) {
            log_warn (NULL, NULL, "kafka: leaving the group: %s", rd_kafka_error_string (error));
            rd_kafka_error_destroy (error);
        }
        else {
            while (!(closed = rd_kafka_consumer_closed (self->rk)) && zclock_mono () < self->close_deadline_ms) {
                rd_kafka_message_t *message = rd_kafka_consumer_poll (self->rk, 100);
                if (message)
                    rd_kafka_message_destroy (message);     /* too late: consumed again later */
            }
            if (!closed) {
                log_warn (NULL, NULL, "kafka: could not leave group %s within %d ms (brokers unreachable?); "
                          "uncommitted records will be consumed again", self->group, S_CLOSE_MS);
                abandon = 1;
            }
        }
    }
    /* Every message must be given back before the handle can go. */
    if (self->retries)
        zlistx_purge (self->retries);
    if (self->dlt_retries)
        zlistx_purge (self->dlt_retries);
    if (self->ready)
        zlistx_purge (self->ready);
    zhashx_destroy (&self->records);
    zlistx_destroy (&self->retries);
    zlistx_destroy (&self->dlt_retries);
    zlistx_destroy (&self->ready);
    if (self->queue) {
        rd_kafka_queue_io_event_enable (self->queue, -1, NULL, 0);
        rd_kafka_queue_destroy (self->queue);
    }
    if (self->rk) {
        log_info (NULL, NULL, "kafka: left group %s: %llu received, %llu new, %llu duplicate, %llu dead-lettered, %llu retried",
                  self->group, (unsigned long long) self->stats.received, (unsigned long long) self->stats.ok,
                  (unsigned long long) self->stats.duplicate, (unsigned long long) self->stats.dlt,
                  (unsigned long long) self->stats.retried);
        /* Destroying a consumer whose close did not finish waits for the group
         * coordinator it cannot reach (seconds, up to a session timeout), and only
         * happens when the process is stopping: then the handle is left to the
         * exit. Nothing of ours is reachable from it any more: its queue is not
         * served (no callbacks but logging), its wake-up fd is detached, and every
         * message it gave us is destroyed. */
        if (!abandon)
            rd_kafka_destroy_flags (self->rk, closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    ingest_offsets_destroy (&self->offsets);
    if (self->fds [0] >= 0)
        close (self->fds [0]);
    if (self->fds [1] >= 0)
        close (self->fds [1]);
    free (self->parts);
    free (self->topic);
    free (self->dlt_topic);
    free (self->group);
    free (self);
    *self_p = NULL;
}

/* -------------------------------------------------------------------------- */
/* The loop                                                                   */

int
ingest_kafka_fd (ingest_kafka_t *self)
{
    return self->fds [0];
}

void
ingest_kafka_service (ingest_kafka_t *self)
{
    char buffer [256];
    while (read (self->fds [0], buffer, sizeof buffer) > 0)
        ;
    ingest_dlt_poll (self->dlt);
    s_store_offsets (self);
    s_apply_pauses (self);
    int64_t now = zclock_mono ();
    if (now >= self->stats_at_ms) {
        self->stats_at_ms = now + S_STATS_INTERVAL_MS;
        log_debug (NULL, NULL, "kafka: %llu received, %llu new, %llu duplicate, %llu dead-lettered, %llu retried, "
                   "%llu re-fetched; %zu held (%zu ready, %zu in flight, window %zu), %zu dead letters in flight",
                   (unsigned long long) self->stats.received, (unsigned long long) self->stats.ok,
                   (unsigned long long) self->stats.duplicate, (unsigned long long) self->stats.dlt,
                   (unsigned long long) self->stats.retried, (unsigned long long) self->stats.refetched,
                   zhashx_size (self->records), zlistx_size (self->ready), self->submitted,
                   ingest_window_limit (&self->window), ingest_dlt_in_flight (self->dlt));
    }
}

static void
s_fill (ingest_kafka_t *self, s_record_t *record, ingest_kafka_record_t *out)
{
    rd_kafka_message_t *message = record->message;
    out->ticket = record->ticket;
    out->value = (const char *) message->payload;
    out->value_size = message->payload ? message->len : 0;
    out->idempotency_key = NULL;
    out->idempotency_key_size = 0;
    rd_kafka_headers_t *headers = NULL;
    int have_headers = rd_kafka_message_headers (message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR && headers;
    /* W3C trace context: the producer's `traceparent` header goes on with a span of
     * ingest's (a malformed one is ignored and a trace starts here), made once so a
     * retried record keeps its span. */
    if (!record->traceparent [0]) {
        const void *value = NULL;
        size_t size = 0;
        if (!have_headers
        ||  rd_kafka_header_get_last (headers, "traceparent", &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
            value = NULL;
        traceparent_hop ((const char *) value, size, record->traceparent);
    }
    out->traceparent = record->traceparent;
    if (have_headers) {
        static const char *names [] = { "idempotency-key", "Idempotency-Key", "id" };
        for (size_t i = 0; i < sizeof names / sizeof names [0]; i++) {
            const void *value = NULL;
            size_t size = 0;
            if (rd_kafka_header_get_last (headers, names [i], &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && value) {
                out->idempotency_key = (const char *) value;
                out->idempotency_key_size = size;
                break;
            }
        }
    }
    snprintf (out->request_id, sizeof out->request_id, "kafka:%.60s/%d@%lld", self->topic,
              (int) message->partition, (long long) message->offset);
}

/* Out of memory holding a record: seek back so it is consumed again later rather
 * than skipped. */
static void
s_rewind (ingest_kafka_t *self, int32_t partition, int64_t offset)
{
    log_error (NULL, NULL, "kafka: out of memory holding %s/%d@%lld; consuming it again",
               self->topic, (int) partition, (long long) offset);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (1);
    if (!list)
        return;
    rd_kafka_topic_partition_list_add (list, self->topic, partition)->offset = offset;
    rd_kafka_error_t *error = rd_kafka_seek_partitions (self->rk, list, 0);
    if (error)
        rd_kafka_error_destroy (error);
    rd_kafka_topic_partition_list_destroy (list);
}

static void
s_consumer_error (ingest_kafka_t *self, rd_kafka_message_t *message)
{
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    if (message->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
    ||  message->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        int64_t now = zclock_mono ();
        if (self->topic_warned_ms && now - self->topic_warned_ms < S_TOPIC_WARN_EVERY_MS)
            return;
        self->topic_warned_ms = now;
    }
    log_warn (NULL, NULL, "kafka: consumer: %s: %s", rd_kafka_err2name (message->err),
              rd_kafka_message_errstr (message));
}

/* Moves what the consumer has into the ready queue: until it holds a window's
 * worth (librdkafka's own fetch queue keeps the rest), a batch per call, and never
 * past kafka_max_in_flight held records (then every partition is paused). Polls at
 * least once per call, full window or not: the poll serves rebalances and
 * statistics, and a consumer not polled for max.poll.interval.ms leaves the group.
 * Returns 1 when it stopped with records perhaps left to fetch. */
static int
s_consume (ingest_kafka_t *self)
{
    size_t want = ingest_window_limit (&self->window);
    if (want < S_CONSUME_BATCH)
        want = S_CONSUME_BATCH;
    for (int polls = 0; ; polls++) {
        if (polls > 0 && zlistx_size (self->ready) >= want)
            return 0;                   /* enough ahead; the next call fetches more */
        if (polls >= S_CONSUME_BATCH)
            return 1;
        if (zhashx_size (self->records) >= self->max_in_flight) {
            if (!self->backpressure)
                s_apply_pauses (self);
            if (polls > 0)
                return 0;
        }
        rd_kafka_message_t *message = rd_kafka_consumer_poll (self->rk, 0);
        if (!message)
            return 0;
        if (message->err) {
            s_consumer_error (self, message);
            rd_kafka_message_destroy (message);
            continue;
        }
        int32_t partition = message->partition;
        int64_t offset = message->offset;
        s_record_t *record = (s_record_t *) calloc (1, sizeof (s_record_t));
        if (record) {
            record->ticket = ++self->next_ticket;
            record->message = message;
            record->state = S_READY;
        }
        if (!record || zhashx_insert (self->records, &record->ticket, record) != 0) {
            free (record);
            rd_kafka_message_destroy (message);
            s_rewind (self, partition, offset);
            return 0;
        }
        /* Queued before its offset is tracked: a tracked offset must always
         * belong to a record that will be answered. */
        record->ready_handle = zlistx_add_end (self->ready, record);
        if (!record->ready_handle) {
            s_record_remove (self, record);     /* destroys the message */
            s_rewind (self, partition, offset);
            return 0;
        }
        int rc = ingest_offsets_track (self->offsets, partition, offset);
        if (rc != 0) {
            s_record_remove (self, record);
            if (rc == 1) {
                self->stats.refetched++;        /* held already, or acknowledged */
                continue;
            }
            s_rewind (self, partition, offset);
            return 0;
        }
        self->stats.received++;
        ingest_metrics_record (INGEST_SOURCE_KAFKA);
    }
}

/* record's command goes to the server now: it takes a place in the window. */
static void
s_submit (ingest_kafka_t *self, s_record_t *record, int64_t now, ingest_kafka_record_t *out)
{
    record->state = S_SUBMITTED;
    record->submitted_ms = now;
    self->submitted++;
    s_fill (self, record, out);
    self->more = 1;
}

int
ingest_kafka_next (ingest_kafka_t *self, ingest_kafka_record_t *out)
{
    int64_t now = zclock_mono ();
    s_record_t *record;
    while ((record = (s_record_t *) zlistx_first (self->dlt_retries)) && record->due_ms <= now) {
        zlistx_delete (self->dlt_retries, record->retry_handle);
        record->retry_handle = NULL;
        s_dlt_send (self, record);      /* may schedule it again, later */
    }
    int left = s_consume (self);
    if (self->submitted >= ingest_window_limit (&self->window)) {
        self->more = 0;                 /* an answer frees a place, and wakes the loop */
        return 0;
    }
    record = (s_record_t *) zlistx_first (self->retries);
    if (record && record->due_ms <= now && (!self->failing || self->probes == 0)) {
        zlistx_delete (self->retries, record->retry_handle);
        record->retry_handle = NULL;
        record->probe = 1;
        self->probes++;
        self->stats.retried++;
        ingest_metrics_kafka_retry ();
        s_submit (self, record, now, out);
        return 1;
    }
    record = (s_record_t *) zlistx_first (self->ready);
    if (record) {
        zlistx_delete (self->ready, record->ready_handle);
        record->ready_handle = NULL;
        s_submit (self, record, now, out);
        return 1;
    }
    self->more = left;
    return 0;
}

/* Produces record's dead letter; on failure schedules another attempt. */
static void
s_dlt_send (ingest_kafka_t *self, s_record_t *record)
{
    rd_kafka_message_t *message = record->message;
    rd_kafka_timestamp_type_t type;
    int64_t timestamp = rd_kafka_message_timestamp (message, &type);
    ingest_dlt_origin_t origin = {
        .topic = self->topic, .partition = message->partition, .offset = message->offset,
        .timestamp = timestamp, .timestamp_type = (int) type, .group = self->group,
        .command_id = record->command_id
    };
    rd_kafka_headers_t *original = NULL;
    if (rd_kafka_message_headers (message, &original) != RD_KAFKA_RESP_ERR_NO_ERROR)
        original = NULL;
    rd_kafka_headers_t *headers = ingest_dlt_headers_new (original, &origin, record->why, record->value_omitted);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    if (headers
    &&  ingest_dlt_produce (self->dlt, record->ticket, message->partition, message->key, message->key_len,
                            record->value_omitted ? "" : (const char *) message->payload,
                            record->value_omitted ? 0 : message->len, &headers, &err) == 0) {
        record->state = S_DLT_PENDING;
        return;
    }
    if (headers)
        rd_kafka_headers_destroy (headers);
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && !record->value_omitted) {
        record->value_omitted = 1;
        s_dlt_send (self, record);
        return;
    }
    log_emit (record->attempts ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, record->command_id [0] ? record->command_id : NULL,
              NULL, "kafka: cannot queue the dead letter for %s/%d@%lld (%s); retrying", self->topic,
              (int) message->partition, (long long) message->offset, rd_kafka_err2name (err));
    s_schedule (self, record, S_DLT_WAIT);
}

/* Logs (debug) and exports the window's limit after it moved. */
static void
s_window_changed (ingest_kafka_t *self, const char *why)
{
    size_t limit = ingest_window_limit (&self->window);
    ingest_metrics_kafka_window (limit);
    log_debug (NULL, NULL, "kafka: window %zu commands (%zu in flight, baseline latency %.1f ms)%s%s", limit,
               self->submitted, ingest_window_baseline_ms (&self->window), why ? ": " : "", why ? why : "");
}

void
ingest_kafka_result (ingest_kafka_t *self, uint64_t ticket, const char *command_id, const char *result)
{
    s_record_t *record = (s_record_t *) zhashx_lookup (self->records, &ticket);
    if (!record || record->state != S_SUBMITTED) {
        log_debug (command_id && *command_id ? command_id : NULL, NULL,
                   "kafka: outcome for a record no longer held (its partition was revoked)");
        return;
    }
    if (command_id && *command_id)
        snprintf (record->command_id, sizeof record->command_id, "%s", command_id);
    int64_t now = zclock_mono ();
    size_t in_flight = self->submitted;
    self->submitted--;
    record->state = S_ANSWERED;
    if (record->probe) {
        record->probe = 0;
        self->probes--;
    }
    const char *corr = record->command_id [0] ? record->command_id : NULL;
    rd_kafka_message_t *message = record->message;
    ingest_outcome_t outcome;
    ingest_dlt_classify (result, &outcome);
    if (outcome.outcome == INGEST_OUTCOME_RETRY) {
        /* A 503 or a timeout: the store (or the path to it) took more than it could. */
        if (ingest_window_failure (&self->window, record->submitted_ms, now))
            s_window_changed (self, "a command failed for now");
        if (!self->failing) {
            self->failing = 1;
            log_warn (corr, NULL, "kafka: commands fail for now (%d %s: %s); records are retried one at a time, "
                      "their partitions paused", outcome.status, outcome.error, outcome.detail);
        }
        s_schedule (self, record, S_RETRY_WAIT);
        log_debug (corr, NULL, "kafka: %s/%d@%lld failed for now (%d %s); retry %d in %lld ms",
                   self->topic, (int) message->partition, (long long) message->offset, outcome.status,
                   outcome.error, record->attempts, (long long) (record->due_ms - zclock_mono ()));
        return;
    }
    if (self->failing) {
        /* An answer that is not a transient failure: the path to the log works
         * again, so every record waiting for a retry goes now. */
        self->failing = 0;
        int64_t now = zclock_mono ();
        for (s_record_t *waiting = (s_record_t *) zlistx_first (self->retries); waiting;
             waiting = (s_record_t *) zlistx_next (self->retries))
            waiting->due_ms = now;
        log_info (corr, NULL, "kafka: commands succeed again; %zu records retried now", zlistx_size (self->retries));
    }
    if (outcome.outcome == INGEST_OUTCOME_ACK) {
        /* Only answers from the store's side measure it: a rejection may come from
         * ingest or the handler alone, in no time. */
        size_t before = ingest_window_limit (&self->window);
        ingest_window_success (&self->window, record->submitted_ms, now, in_flight);
        if (ingest_window_limit (&self->window) != before)
            s_window_changed (self, NULL);
        if (outcome.duplicate)
            self->stats.duplicate++;
        else
            self->stats.ok++;
        if (record->attempts)
            log_debug (corr, NULL, "kafka: %s/%d@%lld in after %d retries", self->topic,
                       (int) message->partition, (long long) message->offset, record->attempts);
        s_acknowledge (self, record);
    }
    else {
        record->why = (ingest_outcome_t *) malloc (sizeof (ingest_outcome_t));
        if (!record->why) {
            /* Cannot keep the reason: try the whole record again later. */
            s_schedule (self, record, S_RETRY_WAIT);
            return;
        }
        *record->why = outcome;
        log_info (corr, NULL, "kafka: %s/%d@%lld is poison (%d %s): dead-lettering it", self->topic,
                  (int) message->partition, (long long) message->offset, outcome.status, outcome.error);
        s_dlt_send (self, record);
    }
}

int64_t
ingest_kafka_timeout (ingest_kafka_t *self)
{
    if (self->more)
        return 0;
    int64_t now = zclock_mono ();
    int64_t wait = self->stats_at_ms - now;
    s_record_t *first = (s_record_t *) zlistx_first (self->dlt_retries);
    if (first && first->due_ms - now < wait)
        wait = first->due_ms - now;
    first = (s_record_t *) zlistx_first (self->retries);
    if (first && (!self->failing || self->probes == 0) && first->due_ms - now < wait)
        wait = first->due_ms - now;
    return wait > 0 ? wait : 0;
}

size_t
ingest_kafka_in_flight (ingest_kafka_t *self)
{
    return zhashx_size (self->records);
}
