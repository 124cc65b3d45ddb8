/* ingest_kafka — the Kafka source of the ingest actor: a consumer-group member on
 * the records topic that hands each record to the server as a command, stores an
 * offset only once every record before it is acknowledged (in the log, or in the
 * dead-letter topic), retries transient failures with the partition paused, and
 * dead-letters poison through ingest_dlt. Contract: schemas/messages.md "Kafka input". */
#ifndef DOSSIER_INGEST_KAFKA_H
#define DOSSIER_INGEST_KAFKA_H

#include "config.h"
#include "envelope.h"

#include <stddef.h>
#include <stdint.h>

/* The waiter source of records from Kafka, beside INGEST_SOURCE_CLI (ingest_pending.h). */
enum { INGEST_SOURCE_KAFKA = 2 };

typedef struct _ingest_kafka_t ingest_kafka_t;

/* One record to turn into a command. Pointers borrow from the source and stay valid
 * until ingest_kafka_result is called for the ticket (or the source is destroyed). */
typedef struct {
    uint64_t ticket;                    /* give it back with the outcome */
    const char *value;                  /* the raw record; NULL for a null value */
    size_t value_size;
    const char *idempotency_key;        /* header idempotency-key (or id); NULL if none */
    size_t idempotency_key_size;
    const char *traceparent;            /* ingest's span of the record: a child of its
                                           `traceparent` header, else of a new trace; the
                                           same for every retry of the record */
    char request_id [ENVELOPE_ID_MAX];  /* "kafka:<topic>/<partition>@<offset>", for logs */
} ingest_kafka_record_t;

/* Joins consumer group kafka_group (default dossier-ingest) on topic kafka_topic
 * (default kyc_events) at kafka_brokers, with every librdkafka property passed
 * through (kafka_config_apply), and starts the dead-letter producer for
 * "<topic>.DLT". Settings (section dossier): kafka_max_in_flight (records held at
 * once, default 5000), kafka_window_min / kafka_window_max / kafka_window_slack_ms
 * (the adaptive bound on commands in flight, ingest_window.h: 4, 1000, 500),
 * kafka_retry_backoff_ms (default 200) and
 * kafka_retry_backoff_max_ms (default 10000). Connecting is asynchronous: an
 * unreachable broker is not an error here. Returns NULL (logged) when librdkafka
 * refuses the configuration. config is borrowed and must outlive the source. */
ingest_kafka_t *ingest_kafka_new (config_t *config);

/* Serves the last delivery reports, stores the acknowledged offsets, leaves the
 * group (committing what is stored) and frees everything. Records still in flight
 * are not acknowledged: the group consumes them again (safe: idempotent). */
void ingest_kafka_destroy (ingest_kafka_t **self_p);

/* A file descriptor that becomes readable when librdkafka has something to serve;
 * poll it beside the sockets and call ingest_kafka_service when it fires. */
int ingest_kafka_fd (ingest_kafka_t *self);

/* Serves librdkafka without blocking: drains the fd, handles dead-letter delivery
 * reports, stores acknowledged offsets, pauses or resumes partitions, logs the
 * counters every 10 s (debug). Call it every loop turn. */
void ingest_kafka_service (ingest_kafka_t *self);

/* The next record to submit: a record whose retry is due, else a newly consumed
 * one (rebalances are handled inside). Returns 1 with *record filled, 0 when there
 * is nothing now. Exactly one ingest_kafka_result must follow each 1. */
int ingest_kafka_next (ingest_kafka_t *self, ingest_kafka_record_t *record);

/* The outcome of ticket's command: result is an ingest.result body (borrowed);
 * command_id may be NULL or empty when the record was rejected before it had one.
 * Acknowledges, schedules a retry, or dead-letters. Unknown tickets (a revoked
 * partition) are ignored. */
void ingest_kafka_result (ingest_kafka_t *self, uint64_t ticket, const char *command_id, const char *result);

/* Milliseconds until ingest_kafka_service / ingest_kafka_next have work (0: now). */
int64_t ingest_kafka_timeout (ingest_kafka_t *self);

/* Records held (ready to submit, submitted, waiting for a retry, or being dead-lettered). */
size_t ingest_kafka_in_flight (ingest_kafka_t *self);

#endif
