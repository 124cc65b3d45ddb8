/* test_ingest_lag — the consumer lag read out of librdkafka's statistics JSON:
 * only owned partitions of our topic, committed lag first, stored lag before the
 * first commit, nothing when neither is known. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../actors/ingest/ingest_kafka_lag.h"

#include <string.h>

typedef struct {
    int n;
    int32_t partitions [8];
    int64_t lags [8];
} s_seen_t;

static void
s_collect (const char *topic, int32_t partition, int64_t lag, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    assert_string_equal (topic, "kyc_events");
    assert_true (seen->n < 8);
    seen->partitions [seen->n] = partition;
    seen->lags [seen->n++] = lag;
}

/* The shape librdkafka 2.x writes (trimmed to what matters). */
static const char *s_stats =
    "{\"name\":\"dossier-ingest-0#consumer-1\",\"type\":\"consumer\",\"brokers\":{},"
    "\"topics\":{"
    "\"kyc_events\":{\"topic\":\"kyc_events\",\"partitions\":{"
    "\"0\":{\"partition\":0,\"desired\":true,\"hi_offset\":120,\"committed_offset\":100,"
    "\"consumer_lag\":20,\"consumer_lag_stored\":5},"
    "\"1\":{\"partition\":1,\"desired\":true,\"hi_offset\":50,\"committed_offset\":-1001,"
    "\"consumer_lag\":-1,\"consumer_lag_stored\":7},"
    "\"2\":{\"partition\":2,\"desired\":false,\"consumer_lag\":3,\"consumer_lag_stored\":3},"
    "\"3\":{\"partition\":3,\"desired\":true,\"consumer_lag\":-1,\"consumer_lag_stored\":-1},"
    "\"-1\":{\"partition\":-1,\"desired\":false,\"consumer_lag\":-1}}},"
    "\"kyc_events.DLT\":{\"partitions\":{\"0\":{\"desired\":true,\"consumer_lag\":99}}}}}";

static void
test_owned_partitions_of_our_topic (void **state)
{
    (void) state;
    s_seen_t seen = { 0 };
    assert_int_equal (ingest_kafka_lag_parse (s_stats, strlen (s_stats), "kyc_events", s_collect, &seen), 2);
    assert_int_equal (seen.n, 2);
    for (int i = 0; i < seen.n; i++) {
        if (seen.partitions [i] == 0)
            assert_int_equal (seen.lags [i], 20);       /* committed lag wins */
        else {
            assert_int_equal (seen.partitions [i], 1);
            assert_int_equal (seen.lags [i], 7);        /* nothing committed yet: the stored offset */
        }
    }
}

static void
test_bad_or_empty_statistics (void **state)
{
    (void) state;
    s_seen_t seen = { 0 };
    assert_int_equal (ingest_kafka_lag_parse ("not json", 8, "kyc_events", s_collect, &seen), -1);
    assert_int_equal (ingest_kafka_lag_parse ("[1]", 3, "kyc_events", s_collect, &seen), -1);
    assert_int_equal (ingest_kafka_lag_parse ("{}", 2, "kyc_events", s_collect, &seen), 0);
    const char *odd = "{\"topics\":{\"kyc_events\":{\"partitions\":{\"x\":{\"desired\":true,\"consumer_lag\":1},"
                      "\"4\":{\"desired\":true,\"consumer_lag\":\"5\"}}}}}";
    assert_int_equal (ingest_kafka_lag_parse (odd, strlen (odd), "kyc_events", s_collect, &seen), 0);
    assert_int_equal (seen.n, 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_owned_partitions_of_our_topic),
        cmocka_unit_test (test_bad_or_empty_statistics),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
