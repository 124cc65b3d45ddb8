/* test_notifier_payload — NotificationRequired event to notification JSON: every
 * field in order, nulls for missing ones, the event's own id/position/time, and
 * refusal (never a crash) of payloads that are not JSON objects. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../actors/notifier/notifier_payload.h"

static event_t
s_event (const char *data)
{
    event_t ev;
    memset (&ev, 0, sizeof ev);
    ev.position = 42;
    ev.version = 6;
    strcpy (ev.stream, "11111111-1111-5111-8111-111111111111");
    strcpy (ev.id, "aaaaaaaa-0000-5000-8000-000000000006");
    strcpy (ev.type, "NotificationRequired");
    ev.timestamp_us = 1767261600123456LL;     /* 2026-01-01T10:00:00.123456Z */
    ev.data = data;
    ev.data_size = data ? strlen (data) : 0;
    return ev;
}

static void
test_full_payload (void **state)
{
    (void) state;
    event_t ev = s_event (
        "{\"notification_id\":\"N1\",\"case_id\":\"C1\",\"trigger\":\"CASE_CREATED\",\"rule_id\":\"NTF-KYC-CREATED\","
        "\"rules_version\":\"2026-11-22.1\",\"notification_type\":\"EMAIL\",\"template_id\":\"kyc_case_opened\","
        "\"language_code\":\"en\",\"recipient_details\":{\"case_id\":\"C1\",\"client_id\":\"CLI-1\",\"person_id\":\"P1\"},"
        "\"context_data\":{\"traitement_type\":\"KYC\",\"n\":[1,2]},\"extra\":\"ignored\"}");
    char topic [NOTIFIER_TOPIC_MAX], err [128];
    size_t size;
    char *json = notifier_payload_build (&ev, &size, topic, err, sizeof err);
    assert_non_null (json);
    assert_string_equal (json,
        "{\"id\":\"aaaaaaaa-0000-5000-8000-000000000006\",\"notification_id\":\"N1\",\"case_id\":\"C1\","
        "\"trigger\":\"CASE_CREATED\",\"rule_id\":\"NTF-KYC-CREATED\",\"rules_version\":\"2026-11-22.1\","
        "\"notification_type\":\"EMAIL\",\"template_id\":\"kyc_case_opened\",\"language_code\":\"en\","
        "\"recipient_details\":{\"case_id\":\"C1\",\"client_id\":\"CLI-1\",\"person_id\":\"P1\"},"
        "\"context_data\":{\"traitement_type\":\"KYC\",\"n\":[1,2]},\"event_position\":42,"
        "\"created_at\":\"2026-01-01T10:00:00.123Z\"}");
    assert_int_equal (size, strlen (json));
    assert_string_equal (topic, "EMAIL");
    /* the same event always gives the same bytes (a re-sent batch is identical) */
    char *again = notifier_payload_build (&ev, &size, topic, err, sizeof err);
    assert_string_equal (json, again);
    free (again);
    free (json);
}

static void
test_missing_fields_are_null (void **state)
{
    (void) state;
    event_t ev = s_event ("{\"notification_id\":\"N2\",\"notification_type\":7}");
    char topic [NOTIFIER_TOPIC_MAX], err [128];
    size_t size;
    char *json = notifier_payload_build (&ev, &size, topic, err, sizeof err);
    assert_non_null (json);
    assert_string_equal (json,
        "{\"id\":\"aaaaaaaa-0000-5000-8000-000000000006\",\"notification_id\":\"N2\","
        "\"case_id\":\"11111111-1111-5111-8111-111111111111\",\"trigger\":null,\"rule_id\":null,"
        "\"rules_version\":null,\"notification_type\":7,\"template_id\":null,\"language_code\":null,"
        "\"recipient_details\":null,\"context_data\":null,\"event_position\":42,"
        "\"created_at\":\"2026-01-01T10:00:00.123Z\"}");
    assert_string_equal (topic, "");          /* not a string: no topic */
    free (json);

    char longtype [200];
    memset (longtype, 'X', sizeof longtype);
    longtype [sizeof longtype - 1] = 0;
    char data [300];
    snprintf (data, sizeof data, "{\"notification_type\":\"%s\"}", longtype);
    ev = s_event (data);
    json = notifier_payload_build (&ev, &size, topic, err, sizeof err);
    assert_non_null (json);
    assert_string_equal (topic, "");          /* too long for a topic */
    free (json);
}

static void
test_bad_payloads_are_refused (void **state)
{
    (void) state;
    const char *bad [] = { "{not json", "[1,2,3]", "\"text\"", "", "{\"a\":1", "null" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        event_t ev = s_event (bad [i]);
        char topic [NOTIFIER_TOPIC_MAX] = "x", err [128] = "";
        size_t size = 99;
        assert_null (notifier_payload_build (&ev, &size, topic, err, sizeof err));
        assert_true (strlen (err) > 0);
        assert_int_equal (size, 0);
        assert_string_equal (topic, "");
    }
    event_t ev = s_event (NULL);
    char topic [NOTIFIER_TOPIC_MAX], err [128];
    size_t size;
    assert_null (notifier_payload_build (&ev, &size, topic, err, sizeof err));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_full_payload),
        cmocka_unit_test (test_missing_fields_are_null),
        cmocka_unit_test (test_bad_payloads_are_refused),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
