/* notifier_sink_kafka — the Kafka producer behind the notifier's sink table: keeps
 * many notifications in flight, settles each only on a successful delivery report
 * (of the main topic, or of the dead-letter topic after notify_max_attempts failures)
 * and tells the notifier the highest position below which everything is settled. */
#ifndef DOSSIER_NOTIFIER_SINK_KAFKA_H
#define DOSSIER_NOTIFIER_SINK_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "notifier_sink.h"

typedef struct _notifier_kafka_t notifier_kafka_t;

/* Settings, all from config (file key, or environment DOSSIER_<KEY>):
 *   kafka_brokers + section kafka + DOSSIER_KAFKA_PROPERTY_* (common/kafka_config.h);
 *   notify_topic          default notification_events
 *   notify_dlt_topic      default <notify_topic>.DLT
 *   notify_max_attempts   default 5 (failed attempts before the DLT)
 *   notify_max_in_flight  default 10000 (notifications accepted and not yet settled;
 *                         beyond it ready() pushes back, which bounds memory)
 * Producer defaults (a property set in the config wins): client.id dossier-notifier,
 * message.timeout.ms 30000, reconnect.backoff.max.ms 1000 (resume within a second of
 * the broker's return), partitioner murmur2_random (the Java client's, so a key lands
 * on the same partition whichever client wrote it). Always set, whatever the
 * config says: enable.idempotence=true, acks=all, log.queue=true (librdkafka logs
 * are served on this thread and written as JSON lines).
 * Returns NULL when librdkafka refuses the configuration or a topic name is illegal
 * (logged). Caller owns. */
notifier_kafka_t *notifier_kafka_new (config_t *config);

/* Purges whatever is still outstanding (it is re-sent after a restart: the
 * checkpoint never passed it) and frees everything. Accepts NULL; nulls *self_p. */
void notifier_kafka_destroy (notifier_kafka_t **self_p);

/* The sink operations (notifier_sink.h has the contract of each). deliver() copies
 * the items it takes; items whose position is not above every position taken before
 * are skipped as already taken. */
int notifier_kafka_ready (notifier_kafka_t *self, size_t count);
int notifier_kafka_deliver (notifier_kafka_t *self, const notifier_item_t *items, size_t count);
int64_t notifier_kafka_settled (notifier_kafka_t *self);
int notifier_kafka_fd (notifier_kafka_t *self);
int notifier_kafka_timeout (notifier_kafka_t *self);
int notifier_kafka_service (notifier_kafka_t *self);
int notifier_kafka_flush (notifier_kafka_t *self, int timeout_ms);

typedef struct {
    uint64_t produced;          /* produce calls librdkafka accepted (first sends and retries) */
    uint64_t delivered;         /* settled by a delivery report of the main topic */
    uint64_t dead_lettered;     /* settled by a delivery report of the DLT */
    uint64_t failures;          /* failed delivery reports or refused produces, any kind */
    uint64_t counted;           /* of those, the ones that counted as attempts */
    size_t outstanding;         /* accepted and not yet settled */
} notifier_kafka_stats_t;
void notifier_kafka_stats (notifier_kafka_t *self, notifier_kafka_stats_t *stats);

/* The topics in use (borrowed). */
const char *notifier_kafka_topic (notifier_kafka_t *self);
const char *notifier_kafka_dlt_topic (notifier_kafka_t *self);

#endif
