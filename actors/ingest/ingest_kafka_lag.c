/* ingest_kafka_lag — the statistics JSON, topics.<topic>.partitions.<id>, read
 * with jansson (see ingest_kafka_lag.h). */
#include "ingest_kafka_lag.h"

#include <jansson.h>
#include <stdlib.h>

int
ingest_kafka_lag_parse (const char *json, size_t size, const char *topic, ingest_kafka_lag_fn *fn, void *arg)
{
    json_t *root = json_loadb (json, size, 0, NULL);
    if (!json_is_object (root)) {
        json_decref (root);
        return -1;
    }
    json_t *partitions = json_object_get (json_object_get (json_object_get (root, "topics"), topic), "partitions");
    int reported = 0;
    const char *key;
    json_t *partition;
    json_object_foreach (partitions, key, partition) {
        char *end = NULL;
        long id = strtol (key, &end, 10);
        /* -1 is librdkafka's unassigned pseudo-partition */
        if (!end || *end || id < 0 || id > INT32_MAX || !json_is_true (json_object_get (partition, "desired")))
            continue;
        json_t *lag = json_object_get (partition, "consumer_lag");
        if (!json_is_integer (lag) || json_integer_value (lag) < 0)
            lag = json_object_get (partition, "consumer_lag_stored");
        if (!json_is_integer (lag) || json_integer_value (lag) < 0)
            continue;
        fn (topic, (int32_t) id, (int64_t) json_integer_value (lag), arg);
        reported++;
    }
    json_decref (root);
    return reported;
}
