/* ingest_kafka_lag — reads the consumer lag of each partition this consumer owns
 * out of librdkafka's statistics JSON (statistics.interval.ms): no request to the
 * brokers of our own; librdkafka already knows each partition's high watermark
 * from its fetches and the group's committed offset. Pure: testable on a sample. */
#ifndef DOSSIER_INGEST_KAFKA_LAG_H
#define DOSSIER_INGEST_KAFKA_LAG_H

#include <stddef.h>
#include <stdint.h>

typedef void (ingest_kafka_lag_fn) (const char *topic, int32_t partition, int64_t lag, void *arg);

/* Calls fn for each partition of topic that this consumer owns ("desired") and
 * whose lag is known: consumer_lag (high watermark − committed offset), else
 * consumer_lag_stored (− the offset stored for the next commit). Returns how many
 * partitions were reported, -1 when json is not a statistics object. */
int ingest_kafka_lag_parse (const char *json, size_t size, const char *topic, ingest_kafka_lag_fn *fn, void *arg);

#endif
