/* notifier_kafka_record — headers and the dead-letter rule (see the header). Header
 * values come from the event only, so a notification re-sent after a crash carries
 * the same id and CloudEvents attributes and consumers can drop it; traceparent is
 * the one exception (a span of the notifier's: a re-send is another span of the
 * same trace). */
#include "notifier_kafka_record.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void
notifier_kafka_time (int64_t us, char out [32])
{
    int64_t sec = us / 1000000, rem = us % 1000000;
    if (rem < 0) {
        rem += 1000000;
        sec--;
    }
    time_t t = (time_t) sec;
    struct tm tm;
    if (!gmtime_r (&t, &tm))
        memset (&tm, 0, sizeof tm);
    /* The modulos only bound the widths for the compiler; real dates are in range. */
    snprintf (out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned) (tm.tm_year + 1900) % 10000u,
              (unsigned) (tm.tm_mon + 1) % 100u, (unsigned) tm.tm_mday % 100u, (unsigned) tm.tm_hour % 100u,
              (unsigned) tm.tm_min % 100u, (unsigned) tm.tm_sec % 100u, (unsigned) (rem / 1000) % 1000u);
}

int
notifier_kafka_topic_valid (const char *name)
{
    if (!name)
        return 0;
    size_t len = strlen (name);
    if (len == 0 || len > 249 || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int
s_add (rd_kafka_headers_t *hdrs, const char *name, const char *value)
{
    return rd_kafka_header_add (hdrs, name, -1, value, -1) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* Adds the main topic's headers to hdrs. 0 ok, -1 failed. */
static int
s_add_common (rd_kafka_headers_t *hdrs, const char *event_id, const char *case_id, int64_t time_us,
              const char *traceparent)
{
    char at [32];
    notifier_kafka_time (time_us, at);
    int rc = s_add (hdrs, "id", event_id)
          || s_add (hdrs, "ce_specversion", NOTIFIER_CE_SPECVERSION)
          || s_add (hdrs, "ce_id", event_id)
          || s_add (hdrs, "ce_type", NOTIFIER_CE_TYPE)
          || s_add (hdrs, "ce_source", NOTIFIER_CE_SOURCE)
          || s_add (hdrs, "ce_time", at);
    if (rc == 0 && case_id && *case_id)
        rc = s_add (hdrs, "ce_subject", case_id);
    if (rc == 0)
        rc = s_add (hdrs, "content-type", NOTIFIER_CONTENT_TYPE);
    if (rc == 0 && traceparent && *traceparent)
        rc = s_add (hdrs, "traceparent", traceparent);
    return rc ? -1 : 0;
}

rd_kafka_headers_t *
notifier_kafka_headers (const char *event_id, const char *case_id, int64_t time_us,
                        const char *traceparent)
{
    if (!event_id)
        return NULL;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new (9);
    if (hdrs && s_add_common (hdrs, event_id, case_id, time_us, traceparent)) {
        rd_kafka_headers_destroy (hdrs);
        hdrs = NULL;
    }
    return hdrs;
}

rd_kafka_headers_t *
notifier_kafka_dlt_headers (const char *event_id, const char *case_id, int64_t time_us,
                            const char *traceparent, const char *original_topic, const char *reason, const char *message,
                            int attempts, int value_omitted)
{
    if (!event_id)
        return NULL;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new (15);
    if (!hdrs)
        return NULL;
    char count [16];
    snprintf (count, sizeof count, "%d", attempts);
    int rc = s_add_common (hdrs, event_id, case_id, time_us, traceparent)
          || s_add (hdrs, "kafka_dlt-original-topic", original_topic ? original_topic : "")
          || s_add (hdrs, "dossier-dlt-reason", reason ? reason : "")
          || s_add (hdrs, "dossier-dlt-attempts", count)
          || s_add (hdrs, "kafka_dlt-exception-fqcn", reason ? reason : "")
          || s_add (hdrs, "kafka_dlt-exception-message", message ? message : "");
    if (rc == 0 && value_omitted)
        rc = s_add (hdrs, "dossier-value-omitted", "true");
    if (rc) {
        rd_kafka_headers_destroy (hdrs);
        return NULL;
    }
    return hdrs;
}

notifier_kafka_err_class_t
notifier_kafka_error_class (rd_kafka_resp_err_t err)
{
    switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            return NOTIFIER_KAFKA_ERR_NONE;
        case RD_KAFKA_RESP_ERR__FATAL:
            return NOTIFIER_KAFKA_ERR_FATAL;
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
            return NOTIFIER_KAFKA_ERR_TIMEOUT;
        /* The link or the cluster, not the message: librdkafka normally retries
         * these itself until message.timeout.ms, so they rarely reach us at all. */
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
        case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        case RD_KAFKA_RESP_ERR__DESTROY:
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR__RESOLVE:
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        case RD_KAFKA_RESP_ERR__RETRY:
        case RD_KAFKA_RESP_ERR__NODE_UPDATE:
        case RD_KAFKA_RESP_ERR__WAIT_COORD:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
        case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
        case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
        case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
        case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
        case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
            return NOTIFIER_KAFKA_ERR_TRANSIENT;
        default:
            /* Everything else is about this message or its topic (too large,
             * authorisation, unknown or invalid topic, invalid record...):
             * retrying the same bytes cannot help beyond a few attempts. */
            return NOTIFIER_KAFKA_ERR_PERMANENT;
    }
}

/* 1 when this failure counts as an attempt. */
static int
s_counts (notifier_kafka_err_class_t cls, int reachable)
{
    return cls == NOTIFIER_KAFKA_ERR_PERMANENT || (cls == NOTIFIER_KAFKA_ERR_TIMEOUT && reachable);
}

notifier_kafka_action_t
notifier_kafka_decide (rd_kafka_resp_err_t err, int reachable, int *attempts, int max_attempts)
{
    notifier_kafka_err_class_t cls = notifier_kafka_error_class (err);
    if (cls == NOTIFIER_KAFKA_ERR_NONE)
        return NOTIFIER_KAFKA_DELIVERED;
    if (cls == NOTIFIER_KAFKA_ERR_FATAL)
        return NOTIFIER_KAFKA_FATAL;
    if (!s_counts (cls, reachable))
        return NOTIFIER_KAFKA_RETRY;
    if (*attempts < 1000000)
        (*attempts)++;
    return *attempts >= (max_attempts < 1 ? 1 : max_attempts) ? NOTIFIER_KAFKA_DEAD_LETTER : NOTIFIER_KAFKA_RETRY;
}

notifier_kafka_action_t
notifier_kafka_decide_dlt (rd_kafka_resp_err_t err, int reachable, int *attempts, int max_attempts,
                           int *omit_value)
{
    notifier_kafka_err_class_t cls = notifier_kafka_error_class (err);
    if (cls == NOTIFIER_KAFKA_ERR_NONE)
        return NOTIFIER_KAFKA_DELIVERED;
    if (cls == NOTIFIER_KAFKA_ERR_FATAL)
        return NOTIFIER_KAFKA_FATAL;
    if (s_counts (cls, reachable)) {
        if (*attempts < 1000000)
            (*attempts)++;
        if (cls == NOTIFIER_KAFKA_ERR_PERMANENT && *attempts >= (max_attempts < 1 ? 1 : max_attempts))
            *omit_value = 1;
    }
    return NOTIFIER_KAFKA_RETRY;
}

int
notifier_kafka_backoff_ms (int attempts)
{
    if (attempts <= 0)
        return 0;
    int ms = 100;
    for (int i = 1; i < attempts && ms < 5000; i++)
        ms *= 2;
    return ms < 5000 ? ms : 5000;
}
