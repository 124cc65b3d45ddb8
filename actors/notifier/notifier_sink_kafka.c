/* notifier_sink_kafka — notifications to Kafka with the idempotent producer. Each
 * accepted notification becomes a record owned here until a delivery report settles
 * it; failures are re-produced (transient ones without limit, counted ones up to
 * notify_max_attempts, then to the DLT, which is retried for ever). Delivery reports,
 * errors and librdkafka's logs are all served on the notifier's thread, woken through
 * a pipe (rd_kafka_queue_io_event_enable) that sits in the notifier's poll. */
#include "notifier_sink_kafka.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka_config.h"
#include "log.h"
#include "notifier_kafka_record.h"
#include "traceparent.h"
#include "notifier_tracker.h"

#define S_DEFAULT_TOPIC         "notification_events"
#define S_DEFAULT_MAX_ATTEMPTS  5
#define S_DEFAULT_MAX_IN_FLIGHT 10000
/* Events served per service() call, so a burst of reports cannot starve the loop;
 * what is left is served on the next turn (timeout() then says 0). */
#define S_POLL_CAP              20000
#define S_QUEUE_FULL_MS         50
/* While anything is outstanding, librdkafka is served at least this often even
 * without a wake-up: librdkafka 2.0's queue io-event can miss a wake-up (seen with
 * messages timing out while no broker was ever reached), and a missed one must
 * not leave reports unread. */
#define S_SERVE_MS              200

typedef struct s_record_t s_record_t;
struct s_record_t {
    s_record_t *prev, *next;    /* every live record, for destroy */
    s_record_t *retry_next;     /* in the retry list */
    int in_retry;
    int64_t position;
    int64_t time_us;
    const char *event_id;       /* the three strings live after the struct */
    const char *key;
    size_t key_size;
    char *value;
    size_t value_size;
    int attempts;               /* counted failures on the main topic */
    int dlt;                    /* going to the DLT */
    int dlt_attempts;
    int omit_value;
    int64_t produced_at;        /* zclock_mono () of the last produce */
    int64_t retry_at;
    char reason [64];           /* the error's name, for dossier-dlt-reason */
    char message [256];         /* its text, for kafka_dlt-exception-message */
    char traceparent [TRACEPARENT_LEN];     /* the notifier's span (child of the event's), "" none */
    char trace_id [33];                     /* on the log lines about it, "" none */
};

struct _notifier_kafka_t {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt, *dlt_rkt;
    char *topic, *dlt_topic;
    int max_attempts;
    size_t max_in_flight;
    notifier_tracker_t *tracker;
    s_record_t *records;        /* every live record */
    s_record_t *retry_head;
    int wake [2];               /* librdkafka writes to [1] when its queue gets work */
    int more;                   /* the last service () stopped at its cap */
    int fatal;
    int closing;
    int64_t last_ok;            /* zclock_mono () of the last successful delivery report */
    notifier_kafka_stats_t stats;
};

/* ---- records ----------------------------------------------------------------------- */

static s_record_t *
s_record_new (const notifier_item_t *item)
{
    size_t id_size = strlen (item->event_id) + 1;
    size_t key_size = item->case_id ? strlen (item->case_id) : 0;
    if (item->json_size > SIZE_MAX / 2 || id_size > 4096 || key_size > 4096)
        return NULL;
    s_record_t *rec = calloc (1, sizeof (s_record_t) + id_size + key_size + 1 + item->json_size + 1);
    if (!rec)
        return NULL;
    char *p = (char *) (rec + 1);
    memcpy (p, item->event_id, id_size);
    rec->event_id = p;
    p += id_size;
    if (key_size)
        memcpy (p, item->case_id, key_size);
    rec->key = key_size ? p : NULL;
    rec->key_size = key_size;
    p += key_size + 1;
    memcpy (p, item->json, item->json_size);
    rec->value = p;
    rec->value_size = item->json_size;
    rec->position = item->position;
    rec->time_us = item->time_us;
    /* A span of the event's trace, made once: every produce of this record (retries,
     * the dead-letter copy) carries the same one. An event without trace context (it
     * predates it) gets no header. */
    traceparent_t trace;
    if (item->traceparent && traceparent_parse (item->traceparent, strlen (item->traceparent), &trace) == 0) {
        traceparent_child (&trace, &trace);
        traceparent_format (&trace, rec->traceparent);
        memcpy (rec->trace_id, trace.trace_id, sizeof rec->trace_id);
    }
    return rec;
}

static void
s_link (notifier_kafka_t *self, s_record_t *rec)
{
    rec->next = self->records;
    if (self->records)
        self->records->prev = rec;
    self->records = rec;
    self->stats.outstanding++;
}

static void
s_unlink_free (notifier_kafka_t *self, s_record_t *rec)
{
    if (rec->prev)
        rec->prev->next = rec->next;
    else
        self->records = rec->next;
    if (rec->next)
        rec->next->prev = rec->prev;
    self->stats.outstanding--;
    free (rec);
}

static void
s_retry_later (notifier_kafka_t *self, s_record_t *rec, int delay_ms)
{
    rec->retry_at = zclock_mono () + delay_ms;
    if (!rec->in_retry) {
        rec->in_retry = 1;
        rec->retry_next = self->retry_head;
        self->retry_head = rec;
    }
}

static void
s_settle (notifier_kafka_t *self, s_record_t *rec)
{
    if (notifier_tracker_settle (self->tracker, rec->position) != 0)
        log_error (NULL, NULL, "notifier: kafka: position %lld settled twice or unknown", (long long) rec->position);
    s_unlink_free (self, rec);
}

/* ---- producing --------------------------------------------------------------------- */

static void s_failed (notifier_kafka_t *self, s_record_t *rec, rd_kafka_resp_err_t err, const char *text);

static void
s_produce (notifier_kafka_t *self, s_record_t *rec)
{
    rd_kafka_headers_t *hdrs = rec->dlt
        ? notifier_kafka_dlt_headers (rec->event_id, rec->key, rec->time_us, rec->traceparent, self->topic,
                                      rec->reason, rec->message, rec->attempts, rec->omit_value)
        : notifier_kafka_headers (rec->event_id, rec->key, rec->time_us, rec->traceparent);
    if (!hdrs) {
        s_retry_later (self, rec, S_QUEUE_FULL_MS);
        return;
    }
    rec->produced_at = zclock_mono ();
    int omit = rec->dlt && rec->omit_value;
    /* No copy and no free (msgflags 0): the record keeps the value until its
     * delivery report, and librdkafka reads it from there. */
    rd_kafka_resp_err_t err = rd_kafka_producev (self->rk,
        RD_KAFKA_V_RKT (rec->dlt ? self->dlt_rkt : self->rkt),
        RD_KAFKA_V_PARTITION (RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_MSGFLAGS (0),
        RD_KAFKA_V_KEY (rec->key, rec->key_size),
        RD_KAFKA_V_VALUE (omit ? NULL : rec->value, omit ? 0 : rec->value_size),
        RD_KAFKA_V_HEADERS (hdrs),
        RD_KAFKA_V_OPAQUE (rec),
        RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy (hdrs);        /* producev takes them only on success */
        s_failed (self, rec, err, rd_kafka_err2str (err));
        return;
    }
    self->stats.produced++;
}

/* A produce refused at once, or a failed delivery report: decide per the rule in
 * notifier_kafka_record.h and put the record back on the retry list. */
static void
s_failed (notifier_kafka_t *self, s_record_t *rec, rd_kafka_resp_err_t err, const char *text)
{
    self->stats.failures++;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        s_retry_later (self, rec, S_QUEUE_FULL_MS);
        return;
    }
    /* Reachable: something was delivered after this one was produced, so the
     * cluster works and this message is the problem. */
    int reachable = self->last_ok > rec->produced_at;
    int before = rec->dlt ? rec->dlt_attempts : rec->attempts;
    notifier_kafka_action_t action = rec->dlt
        ? notifier_kafka_decide_dlt (err, reachable, &rec->dlt_attempts, self->max_attempts, &rec->omit_value)
        : notifier_kafka_decide (err, reachable, &rec->attempts, self->max_attempts);
    int counted = (rec->dlt ? rec->dlt_attempts : rec->attempts) != before;
    if (counted)
        self->stats.counted++;
    log_set_trace (rec->trace_id);          /* the lines below are about this notification */
    if (rec->dlt && rec->omit_value && counted && rec->dlt_attempts == self->max_attempts)
        log_warn (NULL, rec->key, "notifier: kafka: %s refuses notification %s too; sending it without its value "
                  "(header dossier-value-omitted)", self->dlt_topic, rec->event_id);
    const char *name = rd_kafka_err2name (err);
    switch (action) {
        case NOTIFIER_KAFKA_FATAL:
            self->fatal = 1;
            s_retry_later (self, rec, 0);       /* kept (and freed) with the others */
            break;
        case NOTIFIER_KAFKA_DEAD_LETTER:
            rec->dlt = 1;
            snprintf (rec->reason, sizeof rec->reason, "%s", name ? name : "unknown");
            snprintf (rec->message, sizeof rec->message, "%s", text ? text : "");
            log_warn (NULL, rec->key, "notifier: kafka: notification %s (position %lld) failed %d times, "
                      "last %s (%s); sending it to %s", rec->event_id, (long long) rec->position, rec->attempts,
                      rec->reason, rec->message, self->dlt_topic);
            s_retry_later (self, rec, 0);
            break;
        default:
            if (counted)
                log_warn (NULL, rec->key, "notifier: kafka: %s of notification %s (position %lld) failed "
                          "(attempt %d): %s (%s); retrying", rec->dlt ? self->dlt_topic : self->topic,
                          rec->event_id, (long long) rec->position, rec->dlt ? rec->dlt_attempts : rec->attempts,
                          name ? name : "unknown", text ? text : "");
            else
                log_debug (NULL, rec->key, "notifier: kafka: notification %s: %s (%s); producing it again",
                           rec->event_id, name ? name : "unknown", text ? text : "");
            s_retry_later (self, rec, counted ? notifier_kafka_backoff_ms (rec->dlt ? rec->dlt_attempts
                                                                                    : rec->attempts) : 0);
            break;
    }
    log_set_trace (NULL);
}

/* ---- librdkafka callbacks (all on this thread, from rd_kafka_poll) ------------------ */

static void
s_on_delivery (rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void) rk;
    notifier_kafka_t *self = (notifier_kafka_t *) opaque;
    s_record_t *rec = (s_record_t *) msg->_private;
    if (!self || !rec || self->closing)
        return;                 /* purged at destroy: the records are freed there */
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        self->last_ok = zclock_mono ();
        if (rec->dlt)
            self->stats.dead_lettered++;
        else
            self->stats.delivered++;
        s_settle (self, rec);
        return;
    }
    /* Not rd_kafka_message_errstr (): for a delivery report it returns the payload. */
    s_failed (self, rec, msg->err, rd_kafka_err2str (msg->err));
}

static void
s_on_error (rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    notifier_kafka_t *self = (notifier_kafka_t *) opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why [512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error (rk, why, sizeof why);
        log_error (NULL, NULL, "notifier: kafka: fatal producer error %s: %s; restarting",
                   rd_kafka_err2name (orig), why);
        if (self)
            self->fatal = 1;
        return;
    }
    /* Brokers going away and coming back are expected: warn, the messages wait. */
    log_warn (NULL, NULL, "notifier: kafka: %s: %s", rd_kafka_err2name ((rd_kafka_resp_err_t) err),
              reason ? reason : "");
}

static void
s_on_log (const rd_kafka_t *rk, int level, const char *facility, const char *text)
{
    (void) rk;
    /* syslog levels: 0..4 emerg..warning, 5..6 notice/info, 7 debug. Errors that
     * matter also come through s_on_error, so nothing here is above warn, and the
     * connection failures (facility FAIL) that s_on_error repeats are debug. */
    int ours = level <= 4 ? LOG_LEVEL_WARN : level <= 6 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
    if (facility && strcmp (facility, "FAIL") == 0)
        ours = LOG_LEVEL_DEBUG;
    log_emit (ours, NULL, NULL, "notifier: librdkafka %s: %s", facility ? facility : "", text ? text : "");
}

/* ---- life cycle -------------------------------------------------------------------- */

void
notifier_kafka_destroy (notifier_kafka_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    notifier_kafka_t *self = *self_p;
    self->closing = 1;
    if (self->rk) {
        /* Unsettled messages are dropped here, not lost: the checkpoint is below them. */
        rd_kafka_purge (self->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll (self->rk, 0);
        if (self->rkt)
            rd_kafka_topic_destroy (self->rkt);
        if (self->dlt_rkt)
            rd_kafka_topic_destroy (self->dlt_rkt);
        rd_kafka_destroy (self->rk);
    }
    while (self->records)
        s_unlink_free (self, self->records);
    notifier_tracker_destroy (&self->tracker);
    if (self->wake [0] >= 0)
        close (self->wake [0]);
    if (self->wake [1] >= 0)
        close (self->wake [1]);
    free (self->topic);
    free (self->dlt_topic);
    free (self);
    *self_p = NULL;
}

static int
s_conf_set (rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char why [256];
    if (rd_kafka_conf_set (conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        log_error (NULL, NULL, "notifier: kafka property %s: %s", name, why);
        return -1;
    }
    return 0;
}

notifier_kafka_t *
notifier_kafka_new (config_t *config)
{
    notifier_kafka_t *self = calloc (1, sizeof (notifier_kafka_t));
    if (!self)
        return NULL;
    self->wake [0] = self->wake [1] = -1;
    rd_kafka_conf_t *conf = NULL;
    const char *topic = config_get (config, "notify_topic", S_DEFAULT_TOPIC);
    const char *dlt = config_get (config, "notify_dlt_topic", NULL);
    self->topic = strdup (topic);
    if (dlt)
        self->dlt_topic = strdup (dlt);
    else
    if (self->topic && (self->dlt_topic = malloc (strlen (topic) + 5)))
        sprintf (self->dlt_topic, "%s.DLT", topic);
    if (!self->topic || !self->dlt_topic)
        goto fail;
    if (!notifier_kafka_topic_valid (self->topic) || !notifier_kafka_topic_valid (self->dlt_topic)
    ||  strcmp (self->topic, self->dlt_topic) == 0) {
        log_error (NULL, NULL, "notifier: kafka: illegal topic names '%s' / '%s' (1..249 of [A-Za-z0-9._-], distinct)",
                   self->topic, self->dlt_topic);
        goto fail;
    }
    long attempts = config_get_long (config, "notify_max_attempts", S_DEFAULT_MAX_ATTEMPTS);
    self->max_attempts = attempts < 1 ? 1 : attempts > 1000 ? 1000 : (int) attempts;
    long in_flight = config_get_long (config, "notify_max_in_flight", S_DEFAULT_MAX_IN_FLIGHT);
    self->max_in_flight = in_flight < 1 ? 1 : in_flight > 1000000 ? 1000000 : (size_t) in_flight;
    self->tracker = notifier_tracker_new ();
    if (!self->tracker)
        goto fail;
    if (pipe2 (self->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_error (NULL, NULL, "notifier: kafka: pipe: %s", strerror (errno));
        goto fail;
    }

    conf = rd_kafka_conf_new ();
    char err [512];
    if (s_conf_set (conf, "client.id", "dossier-notifier")
    ||  s_conf_set (conf, "message.timeout.ms", "30000")
    ||  s_conf_set (conf, "reconnect.backoff.max.ms", "1000")
    ||  s_conf_set (conf, "partitioner", "murmur2_random"))
        goto fail;
    if (kafka_config_apply (config, conf, err, sizeof err)) {
        log_error (NULL, NULL, "notifier: %s", err);
        goto fail;
    }
    /* The producer's contract, whatever the configuration says. */
    if (s_conf_set (conf, "enable.idempotence", "true")
    ||  s_conf_set (conf, "acks", "all")
    ||  s_conf_set (conf, "log.queue", "true"))
        goto fail;
    rd_kafka_conf_set_opaque (conf, self);
    rd_kafka_conf_set_dr_msg_cb (conf, s_on_delivery);
    rd_kafka_conf_set_error_cb (conf, s_on_error);
    rd_kafka_conf_set_log_cb (conf, s_on_log);
    self->rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!self->rk) {
        log_error (NULL, NULL, "notifier: kafka: cannot create the producer: %s", err);
        goto fail;
    }
    conf = NULL;                /* the producer owns it now */
    rd_kafka_set_log_queue (self->rk, NULL);
    rd_kafka_queue_t *main_queue = rd_kafka_queue_get_main (self->rk);
    rd_kafka_queue_io_event_enable (main_queue, self->wake [1], "k", 1);
    rd_kafka_queue_destroy (main_queue);
    /* What was queued before the wake-up was set (start-up logs) would never
     * trigger it: serve it now. */
    rd_kafka_poll (self->rk, 0);
    self->rkt = rd_kafka_topic_new (self->rk, self->topic, NULL);
    self->dlt_rkt = rd_kafka_topic_new (self->rk, self->dlt_topic, NULL);
    if (!self->rkt || !self->dlt_rkt) {
        log_error (NULL, NULL, "notifier: kafka: cannot use topics %s / %s: %s", self->topic, self->dlt_topic,
                   rd_kafka_err2str (rd_kafka_last_error ()));
        goto fail;
    }
    return self;
fail:
    if (conf)
        rd_kafka_conf_destroy (conf);
    notifier_kafka_destroy (&self);
    return NULL;
}

/* ---- the sink operations ----------------------------------------------------------- */

int
notifier_kafka_ready (notifier_kafka_t *self, size_t count)
{
    if (self->fatal)
        return 0;
    /* An idle sink takes any batch (a batch is bounded by the store's page), else a
     * batch larger than the limit would never go. */
    return self->stats.outstanding == 0 || self->stats.outstanding + count <= self->max_in_flight;
}

int
notifier_kafka_deliver (notifier_kafka_t *self, const notifier_item_t *items, size_t count)
{
    if (self->fatal)
        return -1;
    if (notifier_tracker_reserve (self->tracker, count))
        return -1;
    s_record_t **recs = calloc (count ? count : 1, sizeof (s_record_t *));
    if (!recs)
        return -1;
    /* Everything is allocated before anything is taken: -1 keeps nothing. */
    for (size_t i = 0; i < count; i++) {
        if (!items [i].event_id || !items [i].json)
            continue;
        recs [i] = s_record_new (&items [i]);
        if (!recs [i]) {
            for (size_t j = 0; j < i; j++)
                free (recs [j]);
            free (recs);
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (!recs [i])
            continue;
        if (notifier_tracker_add (self->tracker, recs [i]->position) != 0) {
            /* at or below a position already taken: it is in flight or settled */
            log_debug (NULL, NULL, "notifier: kafka: position %lld already taken", (long long) recs [i]->position);
            free (recs [i]);
            continue;
        }
        s_link (self, recs [i]);
        s_produce (self, recs [i]);
    }
    free (recs);
    return 0;
}

int64_t
notifier_kafka_settled (notifier_kafka_t *self)
{
    return notifier_tracker_settled (self->tracker);
}

int
notifier_kafka_fd (notifier_kafka_t *self)
{
    return self->wake [0];
}

int
notifier_kafka_timeout (notifier_kafka_t *self)
{
    if (self->more || self->fatal)
        return 0;
    int64_t now = zclock_mono (), due = -1;
    for (s_record_t *rec = self->retry_head; rec; rec = rec->retry_next)
        if (due < 0 || rec->retry_at < due)
            due = rec->retry_at;
    if (self->stats.outstanding > 0 && (due < 0 || due > now + S_SERVE_MS))
        due = now + S_SERVE_MS;
    if (due < 0)
        return -1;
    return due <= now ? 0 : due - now > 60000 ? 60000 : (int) (due - now);
}

int
notifier_kafka_service (notifier_kafka_t *self)
{
    char drain [256];
    while (read (self->wake [0], drain, sizeof drain) > 0)
        ;
    int served = 0;
    while (served < S_POLL_CAP) {
        int n = rd_kafka_poll (self->rk, 0);
        if (n <= 0)
            break;
        served += n;
    }
    self->more = served >= S_POLL_CAP;
    /* Produce the retries that are due. The list is taken whole first: a produce
     * refused at once puts its record back on it. */
    int64_t now = zclock_mono ();
    s_record_t *list = self->retry_head;
    self->retry_head = NULL;
    while (list && !self->fatal) {
        s_record_t *rec = list;
        list = rec->retry_next;
        rec->in_retry = 0;
        if (rec->retry_at <= now)
            s_produce (self, rec);
        else {
            rec->in_retry = 1;
            rec->retry_next = self->retry_head;
            self->retry_head = rec;
        }
    }
    while (list) {              /* fatal: keep the rest as they are */
        s_record_t *rec = list;
        list = rec->retry_next;
        rec->retry_next = self->retry_head;
        self->retry_head = rec;
    }
    return self->fatal ? -1 : 0;
}

int
notifier_kafka_flush (notifier_kafka_t *self, int timeout_ms)
{
    int64_t deadline = zclock_mono () + (timeout_ms > 0 ? timeout_ms : 0);
    while (self->stats.outstanding > 0 && !self->fatal) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        if (notifier_kafka_service (self))
            break;
        int wait = notifier_kafka_timeout (self);
        if (wait < 0 || wait > left)
            wait = (int) (left < 100 ? left : 100);
        /* waits for the next delivery report (or the next retry) */
        rd_kafka_poll (self->rk, wait);
    }
    notifier_kafka_service (self);
    return self->stats.outstanding == 0 ? 0 : -1;
}

void
notifier_kafka_stats (notifier_kafka_t *self, notifier_kafka_stats_t *stats)
{
    *stats = self->stats;
}

const char *
notifier_kafka_topic (notifier_kafka_t *self)
{
    return self->topic;
}

const char *
notifier_kafka_dlt_topic (notifier_kafka_t *self)
{
    return self->dlt_topic;
}

/* ---- the sink table ---------------------------------------------------------------- */

static int s_ready (void *state, size_t count) { return notifier_kafka_ready ((notifier_kafka_t *) state, count); }
static int64_t s_settled (void *state) { return notifier_kafka_settled ((notifier_kafka_t *) state); }
static int s_fd (void *state) { return notifier_kafka_fd ((notifier_kafka_t *) state); }
static int s_timeout (void *state) { return notifier_kafka_timeout ((notifier_kafka_t *) state); }
static int s_service (void *state) { return notifier_kafka_service ((notifier_kafka_t *) state); }
static int s_flush (void *state, int ms) { return notifier_kafka_flush ((notifier_kafka_t *) state, ms); }

static int
s_deliver (void *state, const notifier_item_t *items, size_t count)
{
    return notifier_kafka_deliver ((notifier_kafka_t *) state, items, count);
}

static void
s_destroy (void **state_p)
{
    if (state_p && *state_p) {
        notifier_kafka_t *self = (notifier_kafka_t *) *state_p;
        notifier_kafka_destroy (&self);
        *state_p = NULL;
    }
}

static const notifier_sink_ops_t s_kafka_ops = {
    .name = "kafka",
    .deliver = s_deliver,
    .destroy = s_destroy,
    .ready = s_ready,
    .settled = s_settled,
    .fd = s_fd,
    .timeout = s_timeout,
    .service = s_service,
    .flush = s_flush,
};

notifier_sink_t *
notifier_sink_kafka_new (config_t *config)
{
    notifier_kafka_t *self = notifier_kafka_new (config);
    if (!self)
        return NULL;
    return notifier_sink_new (&s_kafka_ops, self);
}
