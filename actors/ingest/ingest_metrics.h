/* ingest_metrics — ingest's Prometheus series: records in by source, their
 * results by outcome (accepted, rejected, failed) and error class, Kafka dead
 * letters confirmed and records retried, commands in flight, and the consumer
 * group's lag per partition. Used from ingest's one thread (librdkafka's
 * statistics callback is served there too); no-ops without a process registry. */
#ifndef DOSSIER_INGEST_METRICS_H
#define DOSSIER_INGEST_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* A new record from source (INGEST_SOURCE_*): a CLI line, a Kafka record
 * consumed for the first time (a retry or a re-fetch is not counted again). */
void ingest_metrics_record (int source);

/* An answer to one submission of a record: status 2xx accepted, 4xx rejected,
 * else failed; error its error code (class = the part before the first '.'),
 * ignored when accepted. A Kafka record retried after a failure is answered once
 * per attempt. */
void ingest_metrics_result (int source, int status, const char *error);

void ingest_metrics_dead_letter (void);
void ingest_metrics_kafka_retry (void);
void ingest_metrics_in_flight (size_t commands);

/* The Kafka source's adaptive in-flight limit (ingest_window), in commands. */
void ingest_metrics_kafka_window (size_t commands);

/* The consumer lag of one partition of topic, in records. */
void ingest_metrics_kafka_lag (const char *topic, int32_t partition, int64_t lag);

#endif
