/* ingest_dlt — poison classification, dead-letter headers and the DLT producer (see
 * ingest_dlt.h). Every queued dead letter is a job on a list until its delivery
 * report: that list is what lets a fatal producer error, or shutdown, account for
 * every letter instead of leaving one unreported and its partition stuck. */
#include "ingest_dlt.h"

#include "kafka_config.h"
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_REBUILD_INTERVAL_MS 1000      /* at most one new producer a second after fatal errors */

typedef struct _s_job_t s_job_t;
struct _s_job_t {
    uint64_t tag;
    int32_t partition;                  /* the original partition; read by the partitioner */
    s_job_t *prev, *next;
};

struct _ingest_dlt_t {
    config_t *config;                   /* borrowed: kept to build a new producer */
    char *topic;
    int io_fd;
    ingest_dlt_report_fn *report;
    void *arg;
    rd_kafka_t *rk;                     /* NULL while a rebuild is due */
    rd_kafka_topic_t *rkt;
    rd_kafka_queue_t *main_q;
    s_job_t *jobs;                      /* queued, not yet reported */
    size_t in_flight;
    int fatal;                          /* the idempotent producer hit a fatal error */
    int quiet;                          /* shutting down: reports go nowhere */
    int64_t rebuild_after_ms;
};

static void
s_copy (char *dst, size_t size, const char *src)
{
    snprintf (dst, size, "%s", src ? src : "");
}

int
ingest_dlt_classify (const char *result, ingest_outcome_t *out)
{
    memset (out, 0, sizeof *out);
    out->outcome = INGEST_OUTCOME_RETRY;
    out->status = 503;
    s_copy (out->error, sizeof out->error, "unavailable");
    json_t *root = result ? json_loads (result, 0, NULL) : NULL;
    if (!json_is_object (root)) {
        s_copy (out->detail, sizeof out->detail, "unreadable ingest result");
        json_decref (root);
        return -2;
    }
    if (json_is_true (json_object_get (root, "ok"))) {
        out->outcome = INGEST_OUTCOME_ACK;
        out->status = 0;
        out->error [0] = 0;
        out->duplicate = json_is_true (json_object_get (root, "duplicate"));
        json_decref (root);
        return 0;
    }
    json_t *status = json_object_get (root, "status");
    const char *error = json_string_value (json_object_get (root, "error"));
    const char *detail = json_string_value (json_object_get (root, "detail"));
    out->status = json_is_integer (status) ? (int) json_integer_value (status) : 503;
    if (error && *error)
        s_copy (out->error, sizeof out->error, error);
    s_copy (out->detail, sizeof out->detail, detail);
    /* 4xx means the record itself is wrong and will be wrong next time too, except
     * a timeout, a rate limit, and optimistic-concurrency exhaustion (the case was
     * busy, not the record bad). */
    if (out->status >= 400 && out->status < 500 && out->status != 408 && out->status != 429
    &&  strcmp (out->error, "conflict.concurrency") != 0)
        out->outcome = INGEST_OUTCOME_DLT;
    json_decref (root);
    return 0;
}

static int
s_add (rd_kafka_headers_t *headers, const char *name, const char *value)
{
    return rd_kafka_header_add (headers, name, -1, value, (ssize_t) strlen (value))
           == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

static const char *
s_timestamp_type (int type)
{
    return type == RD_KAFKA_TIMESTAMP_CREATE_TIME ? "CreateTime"
         : type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "LogAppendTime" : "NoTimestampType";
}

rd_kafka_headers_t *
ingest_dlt_headers_new (const rd_kafka_headers_t *original, const ingest_dlt_origin_t *origin,
                        const ingest_outcome_t *why, int value_omitted)
{
    rd_kafka_headers_t *headers = rd_kafka_headers_new (16);
    if (!headers)
        return NULL;
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; original && rd_kafka_header_get_all (original, i, &name, &value, &size)
                                   == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        /* A letter replayed into the topic and refused again gets fresh reasons,
         * not two sets a reader would have to choose between. */
        if (strncmp (name, "kafka_dlt-", 10) == 0)
            continue;
        if (rd_kafka_header_add (headers, name, -1, value, (ssize_t) size) != RD_KAFKA_RESP_ERR_NO_ERROR)
            goto fail;
    }
    char partition [16], offset [24], timestamp [24], status [16];
    snprintf (partition, sizeof partition, "%d", (int) origin->partition);
    snprintf (offset, sizeof offset, "%lld", (long long) origin->offset);
    snprintf (timestamp, sizeof timestamp, "%lld", (long long) origin->timestamp);
    snprintf (status, sizeof status, "%d", why->status);
    const char *message = why->detail [0] ? why->detail : why->error;
    if (s_add (headers, "kafka_dlt-exception-message", message)
    ||  s_add (headers, "kafka_dlt-exception-fqcn", why->error)
    ||  s_add (headers, "kafka_dlt-original-topic", origin->topic ? origin->topic : "")
    ||  s_add (headers, "kafka_dlt-original-partition", partition)
    ||  s_add (headers, "kafka_dlt-original-offset", offset)
    ||  s_add (headers, "kafka_dlt-original-timestamp", timestamp)
    ||  s_add (headers, "kafka_dlt-original-timestamp-type", s_timestamp_type (origin->timestamp_type))
    ||  s_add (headers, "kafka_dlt-original-consumer-group", origin->group ? origin->group : "")
    ||  s_add (headers, "dossier-error-status", status))
        goto fail;
    if (origin->command_id && *origin->command_id
    &&  s_add (headers, "dossier-command-id", origin->command_id))
        goto fail;
    if (value_omitted
    &&  s_add (headers, "dossier-value-omitted", "the record is too large for the dead-letter topic; "
                                                 "read it at the original offset"))
        goto fail;
    return headers;
fail:
    rd_kafka_headers_destroy (headers);
    return NULL;
}

/* -------------------------------------------------------------------------- */
/* The producer                                                               */

static void
s_log_cb (const rd_kafka_t *rk, int level, const char *facility, const char *text)
{
    (void) rk;
    /* librdkafka's errors here are mostly a broker going away, which it survives
     * by itself (retries, reconnects): a warning, not an error of ours. Its
     * notices and info lines are chatter. */
    int ours = level <= 4 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;
    log_emit (ours, NULL, NULL, "kafka dlt producer: %s: %s", facility, text);
}

static void
s_error_cb (rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void) rk;
    ingest_dlt_t *self = (ingest_dlt_t *) opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        self->fatal = 1;
        log_error (NULL, NULL, "kafka dlt producer: fatal error: %s", reason);
    }
    else
        log_emit (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, NULL, NULL,
                  "kafka dlt producer: %s: %s", rd_kafka_err2name ((rd_kafka_resp_err_t) err), reason);
}

static void
s_job_unlink (ingest_dlt_t *self, s_job_t *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        self->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    self->in_flight--;
}

static void
s_dr_cb (rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque)
{
    (void) rk;
    ingest_dlt_t *self = (ingest_dlt_t *) opaque;
    s_job_t *job = (s_job_t *) message->_private;
    if (!job)
        return;
    s_job_unlink (self, job);
    uint64_t tag = job->tag;
    free (job);
    if (!self->quiet)
        self->report (self->arg, tag, message->err);
}

/* The original partition modulo the DLT's partition count: librdkafka calls this
 * only once it knows the count, so a DLT with fewer partitions still works. */
static int32_t
s_partitioner (const rd_kafka_topic_t *rkt, const void *key, size_t key_size,
               int32_t partition_count, void *topic_opaque, void *message_opaque)
{
    (void) rkt; (void) key; (void) key_size; (void) topic_opaque;
    const s_job_t *job = (const s_job_t *) message_opaque;
    if (!job || partition_count <= 0)
        return RD_KAFKA_PARTITION_UA;
    return job->partition % partition_count;
}

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
s_client_destroy (ingest_dlt_t *self)
{
    if (self->main_q) {
        rd_kafka_queue_io_event_enable (self->main_q, -1, NULL, 0);
        rd_kafka_queue_destroy (self->main_q);
        self->main_q = NULL;
    }
    if (self->rkt) {
        rd_kafka_topic_destroy (self->rkt);
        self->rkt = NULL;
    }
    if (self->rk) {
        rd_kafka_destroy (self->rk);
        self->rk = NULL;
    }
}

static int
s_client_new (ingest_dlt_t *self, char *err, size_t err_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    rd_kafka_topic_conf_t *topic_conf = NULL;
    if (!conf) {
        snprintf (err, err_size, "out of memory");
        return -1;
    }
    const char *instance = getenv ("DOSSIER_INSTANCE");
    char client_id [64];
    snprintf (client_id, sizeof client_id, "dossier-ingest-dlt-%d", instance ? atoi (instance) : 0);
    /* Our defaults first, the operator's properties over them, then what the
     * dead-letter guarantee depends on, which nobody may switch off. A delivery
     * that times out is produced again by the caller, so a bounded timeout only
     * makes an outage visible sooner. */
    if (s_conf_set (conf, "client.id", client_id, err, err_size)
    ||  s_conf_set (conf, "message.timeout.ms", "60000", err, err_size)
    ||  kafka_config_apply (self->config, conf, err, err_size)
    ||  s_conf_set (conf, "enable.idempotence", "true", err, err_size)
    ||  s_conf_set (conf, "acks", "all", err, err_size))
        goto fail;
    rd_kafka_conf_set_opaque (conf, self);
    rd_kafka_conf_set_log_cb (conf, s_log_cb);
    rd_kafka_conf_set_error_cb (conf, s_error_cb);
    rd_kafka_conf_set_dr_msg_cb (conf, s_dr_cb);
    char why [256];
    self->rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!self->rk) {
        snprintf (err, err_size, "cannot create the dead-letter producer: %s", why);
        goto fail;
    }
    conf = NULL;                        /* the handle owns it now */
    topic_conf = rd_kafka_topic_conf_new ();
    if (!topic_conf) {
        snprintf (err, err_size, "out of memory");
        goto fail;
    }
    rd_kafka_topic_conf_set_partitioner_cb (topic_conf, s_partitioner);
    self->rkt = rd_kafka_topic_new (self->rk, self->topic, topic_conf);
    if (!self->rkt) {
        snprintf (err, err_size, "cannot use topic %s: %s", self->topic,
                  rd_kafka_err2str (rd_kafka_last_error ()));
        goto fail;
    }
    topic_conf = NULL;
    self->main_q = rd_kafka_queue_get_main (self->rk);
    if (self->io_fd >= 0 && self->main_q)
        rd_kafka_queue_io_event_enable (self->main_q, self->io_fd, "d", 1);
    self->fatal = 0;
    return 0;
fail:
    if (topic_conf)
        rd_kafka_topic_conf_destroy (topic_conf);
    if (conf)
        rd_kafka_conf_destroy (conf);
    s_client_destroy (self);
    return -1;
}

ingest_dlt_t *
ingest_dlt_new (config_t *config, const char *dlt_topic, int io_fd,
                ingest_dlt_report_fn *report, void *arg, char *err, size_t err_size)
{
    ingest_dlt_t *self = (ingest_dlt_t *) calloc (1, sizeof (ingest_dlt_t));
    if (!self || !(self->topic = strdup (dlt_topic))) {
        snprintf (err, err_size, "out of memory");
        free (self);
        return NULL;
    }
    self->config = config;
    self->io_fd = io_fd;
    self->report = report;
    self->arg = arg;
    if (s_client_new (self, err, err_size) != 0) {
        free (self->topic);
        free (self);
        return NULL;
    }
    return self;
}

/* Ends the current producer: what it still holds is reported as failed when
 * report_rest, so the owner sends it again through the next one. */
static void
s_client_end (ingest_dlt_t *self, int report_rest)
{
    if (self->rk) {
        rd_kafka_purge (self->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll (self->rk, 0);    /* purged letters report here */
    }
    s_client_destroy (self);
    while (self->jobs) {
        s_job_t *job = self->jobs;
        s_job_unlink (self, job);
        uint64_t tag = job->tag;
        free (job);
        if (report_rest)
            self->report (self->arg, tag, RD_KAFKA_RESP_ERR__DESTROY);
    }
}

void
ingest_dlt_destroy (ingest_dlt_t **self_p, int timeout_ms)
{
    if (self_p && *self_p) {
        ingest_dlt_t *self = *self_p;
        if (self->rk && self->in_flight && !self->fatal)
            rd_kafka_flush (self->rk, timeout_ms);
        if (self->in_flight)
            log_warn (NULL, NULL, "kafka: %zu dead letters unconfirmed at shutdown; their records will be consumed again",
                      self->in_flight);
        self->quiet = 1;
        s_client_end (self, 0);
        free (self->topic);
        free (self);
        *self_p = NULL;
    }
}

int
ingest_dlt_produce (ingest_dlt_t *self, uint64_t tag, int32_t partition,
                    const void *key, size_t key_size, const void *value, size_t value_size,
                    rd_kafka_headers_t **headers_p, rd_kafka_resp_err_t *err)
{
    if (!self->rk || self->fatal) {
        *err = RD_KAFKA_RESP_ERR__FATAL;
        return -1;
    }
    s_job_t *job = (s_job_t *) calloc (1, sizeof (s_job_t));
    if (!job) {
        *err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
        return -1;
    }
    job->tag = tag;
    job->partition = partition;
    rd_kafka_headers_t *headers = headers_p ? *headers_p : NULL;
    rd_kafka_resp_err_t rc = rd_kafka_producev (self->rk,
        RD_KAFKA_V_RKT (self->rkt),
        RD_KAFKA_V_PARTITION (RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY (key, key ? key_size : 0),
        RD_KAFKA_V_VALUE ((void *) value, value ? value_size : 0),
        RD_KAFKA_V_HEADERS (headers),
        RD_KAFKA_V_OPAQUE (job),
        RD_KAFKA_V_END);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free (job);
        *err = rc;
        return -1;
    }
    if (headers_p)
        *headers_p = NULL;
    job->next = self->jobs;
    if (self->jobs)
        self->jobs->prev = job;
    self->jobs = job;
    self->in_flight++;
    *err = RD_KAFKA_RESP_ERR_NO_ERROR;
    return 0;
}

int
ingest_dlt_poll (ingest_dlt_t *self)
{
    int served = self->rk ? rd_kafka_poll (self->rk, 0) : 0;
    if (self->fatal && self->rk) {
        char why [256];
        rd_kafka_fatal_error (self->rk, why, sizeof why);
        log_error (NULL, NULL, "kafka: dead-letter producer failed for good (%s); starting a new one", why);
        s_client_end (self, 1);
        self->rebuild_after_ms = 0;
    }
    if (!self->rk && zclock_mono () >= self->rebuild_after_ms) {
        char err [512];
        if (s_client_new (self, err, sizeof err) != 0) {
            log_error (NULL, NULL, "kafka: %s", err);
            self->rebuild_after_ms = zclock_mono () + S_REBUILD_INTERVAL_MS;
        }
    }
    return served;
}

size_t
ingest_dlt_in_flight (ingest_dlt_t *self)
{
    return self->in_flight;
}
