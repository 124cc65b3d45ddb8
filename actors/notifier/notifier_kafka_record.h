/* notifier_kafka_record — what a notification looks like on Kafka (headers of the
 * main topic and of the dead-letter topic) and what to do when a delivery fails.
 * Pure functions: no producer needed, so the contract is unit-tested on its own. */
#ifndef DOSSIER_NOTIFIER_KAFKA_RECORD_H
#define DOSSIER_NOTIFIER_KAFKA_RECORD_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* CloudEvents Kafka protocol binding, binary mode (schemas/messages.md "Kafka output"). */
#define NOTIFIER_CE_SPECVERSION  "1.0"
#define NOTIFIER_CE_TYPE         "com.dossier.notification.required"
#define NOTIFIER_CE_SOURCE       "/dossier/notifier"
#define NOTIFIER_CONTENT_TYPE    "application/json"

/* RFC 3339 UTC with milliseconds ("2026-11-22T10:39:00.123Z"), the same form as the
 * payload's created_at. */
void notifier_kafka_time (int64_t us, char out [32]);

/* 1 if name is a legal Kafka topic name (1..249 of [A-Za-z0-9._-], not "." or ".."). */
int notifier_kafka_topic_valid (const char *name);

/* The headers of a notification on the main topic, in this order: id, ce_specversion,
 * ce_id (both = event_id), ce_type, ce_source, ce_time (from time_us), ce_subject (the
 * case id, omitted when NULL or empty), content-type, traceparent (W3C trace context,
 * which is also the CloudEvents Distributed Tracing extension's attribute: the
 * notifier's span, omitted when NULL or empty). Returns NULL when out of memory
 * or event_id is NULL. Caller owns (rd_kafka_headers_destroy, or producev takes them). */
rd_kafka_headers_t *notifier_kafka_headers (const char *event_id, const char *case_id, int64_t time_us,
                                            const char *traceparent);

/* The headers of its dead-letter copy: the main topic's, then
 * kafka_dlt-original-topic, dossier-dlt-reason (the error's name, e.g.
 * MSG_SIZE_TOO_LARGE or _MSG_TIMED_OUT), dossier-dlt-attempts (decimal), the
 * Spring-named kafka_dlt-exception-fqcn (the error's name again, where Spring puts a
 * class) and kafka_dlt-exception-message (the error text), and when value_omitted
 * dossier-value-omitted = "true" (the DLT refused the value too; the event is still
 * in the log under its id). Names as in schemas/kafka_dlt_headers.md. Same ownership
 * as above. */
rd_kafka_headers_t *notifier_kafka_dlt_headers (const char *event_id, const char *case_id, int64_t time_us,
                                                const char *traceparent, const char *original_topic, const char *reason,
                                                const char *message, int attempts, int value_omitted);

/* How a delivery error counts. */
typedef enum {
    NOTIFIER_KAFKA_ERR_NONE = 0,
    NOTIFIER_KAFKA_ERR_TIMEOUT,     /* the message timed out (message.timeout.ms) */
    NOTIFIER_KAFKA_ERR_TRANSIENT,   /* the cluster or our link is unwell, or we purged: never counted */
    NOTIFIER_KAFKA_ERR_PERMANENT,   /* this message cannot go there (size, authorisation, unknown topic...) */
    NOTIFIER_KAFKA_ERR_FATAL        /* the producer instance is unusable (idempotence fatal error) */
} notifier_kafka_err_class_t;

notifier_kafka_err_class_t notifier_kafka_error_class (rd_kafka_resp_err_t err);

typedef enum {
    NOTIFIER_KAFKA_DELIVERED = 0,   /* settled */
    NOTIFIER_KAFKA_RETRY,           /* produce again to the same topic */
    NOTIFIER_KAFKA_DEAD_LETTER,     /* produce to the DLT from now on */
    NOTIFIER_KAFKA_FATAL            /* stop the process; the checkpoint keeps the message */
} notifier_kafka_action_t;

/* The dead-letter rule for a delivery report (or a refused produce) on the main
 * topic. A permanent error always counts as a failed attempt; a timeout counts only
 * when reachable (another message was delivered after this one was produced: the
 * cluster works, this message does not get through); transient errors never count.
 * *attempts is the count so far and is incremented when the failure counts; once it
 * reaches max_attempts (< 1 is taken as 1) the answer is DEAD_LETTER, else RETRY. */
notifier_kafka_action_t notifier_kafka_decide (rd_kafka_resp_err_t err, int reachable, int *attempts,
                                               int max_attempts);

/* The same for the dead-letter copy, which is never given up: RETRY forever, with
 * *attempts counted as above; when it reaches max_attempts on permanent errors
 * *omit_value is set to 1 (the copy then goes without its value, e.g. a value too
 * large for the DLT as well). */
notifier_kafka_action_t notifier_kafka_decide_dlt (rd_kafka_resp_err_t err, int reachable, int *attempts,
                                                   int max_attempts, int *omit_value);

/* Milliseconds to wait before producing again after `attempts` counted failures:
 * 0 for none (transient: librdkafka already waited), else 100 ms doubling, at most 5 s. */
int notifier_kafka_backoff_ms (int attempts);

#endif
