/* test_ingest_dlt — the pure half of dead-lettering: which ingest results are
 * poison, which are only transient (never dead-lettered), and the headers a dead
 * letter carries (Spring Kafka's names, decimal text, original headers kept). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../actors/ingest/ingest_dlt.h"
#include "../../actors/ingest/ingest_record.h"

static void
s_classify (const char *result, int outcome, int status, const char *error)
{
    ingest_outcome_t out;
    ingest_dlt_classify (result, &out);
    if (out.outcome != outcome)
        fail_msg ("%s: outcome %d, expected %d", result ? result : "(null)", out.outcome, outcome);
    assert_int_equal (out.status, status);
    assert_string_equal (out.error, error);
}

static void
test_classify (void **state)
{
    (void) state;
    s_classify ("{\"line\":1,\"ok\":true,\"case_id\":\"c\",\"duplicate\":false}", INGEST_OUTCOME_ACK, 0, "");
    ingest_outcome_t out;
    assert_int_equal (ingest_dlt_classify ("{\"ok\":true,\"duplicate\":true}", &out), 0);
    assert_int_equal (out.outcome, INGEST_OUTCOME_ACK);
    assert_true (out.duplicate);

    /* poison: the record is wrong and will be wrong next time */
    s_classify ("{\"ok\":false,\"status\":422,\"error\":\"validation.ownership_percentage\",\"detail\":\"over 100\"}",
                INGEST_OUTCOME_DLT, 422, "validation.ownership_percentage");
    s_classify ("{\"ok\":false,\"status\":400,\"error\":\"malformed_json\",\"detail\":\"x\"}",
                INGEST_OUTCOME_DLT, 400, "malformed_json");
    s_classify ("{\"ok\":false,\"status\":409,\"error\":\"conflict.exists\",\"detail\":\"x\"}",
                INGEST_OUTCOME_DLT, 409, "conflict.exists");
    s_classify ("{\"ok\":false,\"status\":422,\"error\":\"idempotency.mismatch\",\"detail\":\"x\"}",
                INGEST_OUTCOME_DLT, 422, "idempotency.mismatch");
    s_classify ("{\"ok\":false,\"status\":413,\"error\":\"too_large\",\"detail\":\"x\"}",
                INGEST_OUTCOME_DLT, 413, "too_large");

    /* transient: a retry can succeed, so never a dead letter */
    s_classify ("{\"ok\":false,\"status\":503,\"error\":\"unavailable\",\"detail\":\"store down\"}",
                INGEST_OUTCOME_RETRY, 503, "unavailable");
    s_classify ("{\"ok\":false,\"status\":500,\"error\":\"internal\",\"detail\":\"oom\"}",
                INGEST_OUTCOME_RETRY, 500, "internal");
    s_classify ("{\"ok\":false,\"status\":409,\"error\":\"conflict.concurrency\",\"detail\":\"busy\"}",
                INGEST_OUTCOME_RETRY, 409, "conflict.concurrency");
    s_classify ("{\"ok\":false,\"status\":408,\"error\":\"timeout\"}", INGEST_OUTCOME_RETRY, 408, "timeout");
    s_classify ("{\"ok\":false,\"status\":429,\"error\":\"slow_down\"}", INGEST_OUTCOME_RETRY, 429, "slow_down");
    s_classify ("{\"ok\":false}", INGEST_OUTCOME_RETRY, 503, "unavailable");    /* no status: not ours to judge */

    /* unreadable results are our own failure: retried, never dead-lettered */
    assert_int_equal (ingest_dlt_classify (NULL, &out), -2);
    assert_int_equal (out.outcome, INGEST_OUTCOME_RETRY);
    assert_int_equal (ingest_dlt_classify ("not json", &out), -2);
    assert_int_equal (out.outcome, INGEST_OUTCOME_RETRY);
    assert_int_equal (ingest_dlt_classify ("[1]", &out), -2);
    assert_int_equal (out.outcome, INGEST_OUTCOME_RETRY);
}

/* The results ingest_record builds for rejections and replies classify as intended. */
static void
test_classify_real_results (void **state)
{
    (void) state;
    ingest_record_t record;
    assert_int_equal (ingest_record_parse ("{oops", 5, 0, &record), -2);
    char *result = ingest_record_result_error (7, record.status, record.error, record.detail);
    s_classify (result, INGEST_OUTCOME_DLT, 400, "malformed_json");
    free (result);
    const char *reply = "{\"status\":422,\"error\":\"validation.persons\",\"detail\":\"required\"}";
    result = ingest_record_result_from_reply (7, "reply.error", reply, strlen (reply), "case");
    s_classify (result, INGEST_OUTCOME_DLT, 422, "validation.persons");
    free (result);
    reply = "{\"status\":503,\"error\":\"unavailable\",\"detail\":\"x\"}";
    result = ingest_record_result_from_reply (7, "reply.error", reply, strlen (reply), "case");
    s_classify (result, INGEST_OUTCOME_RETRY, 503, "unavailable");
    free (result);
    result = ingest_record_result_from_reply (7, "reply.error", "garbage", 7, "case");
    s_classify (result, INGEST_OUTCOME_RETRY, 503, "unavailable");
    free (result);
    reply = "{\"case_id\":\"c\",\"duplicate\":true}";
    result = ingest_record_result_from_reply (7, "reply.ok", reply, strlen (reply), "case");
    s_classify (result, INGEST_OUTCOME_ACK, 0, "");
    free (result);
}

/* The value of the last header called name, as a string (static buffer). */
static const char *
s_header (rd_kafka_headers_t *headers, const char *name)
{
    static char text [512];
    const void *value;
    size_t size;
    if (rd_kafka_header_get_last (headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    snprintf (text, sizeof text, "%.*s", (int) size, value ? (const char *) value : "");
    return text;
}

static size_t
s_count (rd_kafka_headers_t *headers, const char *name)
{
    size_t n = 0;
    const void *value;
    size_t size;
    while (rd_kafka_header_get (headers, n, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR)
        n++;
    return n;
}

static void
test_headers (void **state)
{
    (void) state;
    rd_kafka_headers_t *original = rd_kafka_headers_new (4);
    rd_kafka_header_add (original, "idempotency-key", -1, "onb-4711", 8);
    rd_kafka_header_add (original, "trace", -1, "\x00\x01\x02", 3);          /* binary survives */
    rd_kafka_header_add (original, "kafka_dlt-exception-fqcn", -1, "old", 3);  /* an earlier trip */
    ingest_dlt_origin_t origin = {
        .topic = "kyc_events", .partition = 3, .offset = 9876543210LL, .timestamp = 1700000000123LL,
        .timestamp_type = RD_KAFKA_TIMESTAMP_CREATE_TIME, .group = "dossier-ingest",
        .command_id = "rec:abc"
    };
    ingest_outcome_t why = { .outcome = INGEST_OUTCOME_DLT, .status = 422 };
    strcpy (why.error, "validation.ownership_percentage");
    strcpy (why.detail, "beneficial owners hold more than 100%");
    rd_kafka_headers_t *headers = ingest_dlt_headers_new (original, &origin, &why, 0);
    assert_non_null (headers);

    assert_string_equal (s_header (headers, "kafka_dlt-exception-message"), "beneficial owners hold more than 100%");
    assert_string_equal (s_header (headers, "kafka_dlt-exception-fqcn"), "validation.ownership_percentage");
    assert_int_equal (s_count (headers, "kafka_dlt-exception-fqcn"), 1);      /* the old one is not kept */
    assert_string_equal (s_header (headers, "kafka_dlt-original-topic"), "kyc_events");
    assert_string_equal (s_header (headers, "kafka_dlt-original-partition"), "3");
    assert_string_equal (s_header (headers, "kafka_dlt-original-offset"), "9876543210");
    assert_string_equal (s_header (headers, "kafka_dlt-original-timestamp"), "1700000000123");
    assert_string_equal (s_header (headers, "kafka_dlt-original-timestamp-type"), "CreateTime");
    assert_string_equal (s_header (headers, "kafka_dlt-original-consumer-group"), "dossier-ingest");
    assert_string_equal (s_header (headers, "dossier-error-status"), "422");
    assert_string_equal (s_header (headers, "dossier-command-id"), "rec:abc");
    assert_null (s_header (headers, "dossier-value-omitted"));
    assert_string_equal (s_header (headers, "idempotency-key"), "onb-4711");
    const void *value;
    size_t size;
    assert_int_equal (rd_kafka_header_get_last (headers, "trace", &value, &size), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal (size, 3);
    assert_memory_equal (value, "\x00\x01\x02", 3);
    rd_kafka_headers_destroy (headers);

    /* no original headers, no command id, no detail, value omitted, no timestamp */
    origin.command_id = NULL;
    origin.timestamp = -1;
    origin.timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    why.detail [0] = 0;
    headers = ingest_dlt_headers_new (NULL, &origin, &why, 1);
    assert_non_null (headers);
    assert_string_equal (s_header (headers, "kafka_dlt-exception-message"), "validation.ownership_percentage");
    assert_string_equal (s_header (headers, "kafka_dlt-original-timestamp"), "-1");
    assert_string_equal (s_header (headers, "kafka_dlt-original-timestamp-type"), "NoTimestampType");
    assert_null (s_header (headers, "dossier-command-id"));
    assert_non_null (s_header (headers, "dossier-value-omitted"));
    assert_null (s_header (headers, "idempotency-key"));
    rd_kafka_headers_destroy (headers);
    rd_kafka_headers_destroy (original);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_classify),
        cmocka_unit_test (test_classify_real_results),
        cmocka_unit_test (test_headers),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
