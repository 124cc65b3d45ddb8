/* ingest_dlt — the dead-letter side of Kafka ingestion: which outcomes are poison
 * (and which are only transient), the headers a dead letter carries (Spring Kafka's
 * kafka_dlt-* names, values as text), and the idempotent producer that writes
 * <topic>.DLT and reports each delivery. Contract: schemas/kafka_dlt_headers.md. */
#ifndef DOSSIER_INGEST_DLT_H
#define DOSSIER_INGEST_DLT_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

enum {
    INGEST_OUTCOME_ACK = 1,             /* in the log (new or duplicate): store the offset */
    INGEST_OUTCOME_DLT,                 /* can never succeed: dead-letter, then store */
    INGEST_OUTCOME_RETRY                /* transient: pause, back off, send again */
};

typedef struct {
    int outcome;                        /* INGEST_OUTCOME_* */
    int duplicate;                      /* ACK: the command was already in the log */
    int status;                         /* DLT, RETRY: the HTTP-like status (400, 422, 503 ...) */
    char error [64];                    /* DLT, RETRY: the error class, e.g. validation.persons */
    char detail [256];                  /* DLT, RETRY: human text */
} ingest_outcome_t;

/* Classifies an ingest.result body (ingest_record_result_*): ok → ACK; a 4xx status
 * → DLT, except 408, 429 and conflict.concurrency, which a retry can cure → RETRY;
 * anything else (503, 500, timeouts) → RETRY. Returns 0; -2 when result is not a
 * readable result (classified RETRY: never dead-letter on our own failure). */
int ingest_dlt_classify (const char *result, ingest_outcome_t *out);

/* Where a dead letter came from. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp;                  /* ms since the epoch; -1 when the broker gave none */
    int timestamp_type;                 /* rd_kafka_timestamp_type_t */
    const char *group;                  /* the consumer group */
    const char *command_id;             /* may be NULL or empty (rejected before it had one) */
} ingest_dlt_origin_t;

/* The headers of a dead letter: the original headers (may be NULL) except any
 * kafka_dlt-* ones from an earlier trip, then kafka_dlt-exception-message,
 * -exception-fqcn (the error class), -original-topic, -original-partition,
 * -original-offset, -original-timestamp, -original-timestamp-type,
 * -original-consumer-group, and dossier-error-status / dossier-command-id /
 * dossier-value-omitted (when value_omitted). Numbers are decimal text.
 * Caller owns the result (rd_kafka_headers_destroy, or hand it to ingest_dlt_produce);
 * NULL on allocation failure. */
rd_kafka_headers_t *ingest_dlt_headers_new (const rd_kafka_headers_t *original,
                                            const ingest_dlt_origin_t *origin,
                                            const ingest_outcome_t *why, int value_omitted);

typedef struct _ingest_dlt_t ingest_dlt_t;

/* A delivery outcome: err is RD_KAFKA_RESP_ERR_NO_ERROR once the dead letter is
 * acknowledged by the brokers (acks=all), else why it is not (retry it). */
typedef void (ingest_dlt_report_fn) (void *arg, uint64_t tag, rd_kafka_resp_err_t err);

/* An idempotent producer for dlt_topic, configured like every Kafka client
 * (kafka_config_apply: brokers and pass-through properties), enable.idempotence
 * forced on. Each dead letter goes to the original partition modulo the DLT's
 * partition count, learnt from metadata before the record is partitioned. When
 * io_fd >= 0 librdkafka writes a byte to it whenever delivery reports wait
 * (non-blocking fd). report is called from ingest_dlt_poll/flush only.
 * NULL (err filled) when librdkafka refuses the configuration. */
ingest_dlt_t *ingest_dlt_new (config_t *config, const char *dlt_topic, int io_fd,
                              ingest_dlt_report_fn *report, void *arg, char *err, size_t err_size);

/* Waits up to timeout_ms for the dead letters in flight (serving their reports),
 * then drops what is left without reporting it, and frees everything. */
void ingest_dlt_destroy (ingest_dlt_t **self_p, int timeout_ms);

/* Queues a dead letter for partition (key and value copied; may be NULL). Takes
 * *headers_p on success (nulls it); on failure the caller still owns it. tag comes
 * back in the report. Returns 0 queued (exactly one report will follow), -1 not
 * queued: err says why (queue full, message too large, producer failed). */
int ingest_dlt_produce (ingest_dlt_t *self, uint64_t tag, int32_t partition,
                        const void *key, size_t key_size, const void *value, size_t value_size,
                        rd_kafka_headers_t **headers_p, rd_kafka_resp_err_t *err);

/* Serves delivery reports without blocking; returns how many. After a fatal error
 * of the idempotent producer it reports every dead letter in flight as failed and
 * builds a new producer, so nothing waits forever. */
int ingest_dlt_poll (ingest_dlt_t *self);

/* Dead letters queued and not yet reported. */
size_t ingest_dlt_in_flight (ingest_dlt_t *self);

#endif
