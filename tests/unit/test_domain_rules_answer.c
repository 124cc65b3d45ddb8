/* test_domain_rules_answer — parsing the configuration service's answers
 * (schemas/config_service.openapi.yaml) with rules_parse_answer: notification rules for
 * one trigger (rules for another trigger left out, inactive kept but never matching),
 * document rules (inactive left out), and every kind of garbage refused with a reason:
 * bad JSON, wrong types, missing fields, duplicates, too many rules, too large. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

static rules_t *
s_parse (const char *json, const char *trigger, char *error, size_t size)
{
    return rules_parse_answer (json, strlen (json), trigger, error, size);
}

static void
test_notification_answer (void **state)
{
    (void) state;
    char error [256];
    rules_t *rules = s_parse (
        "{\"version\": \"2026-12-01.3\", \"trigger\": \"CASE_CREATED\", \"extra\": {\"ignored\": true}, \"rules\": ["
        " {\"rule_id\": \"A\", \"is_active\": true, \"notification_type\": \"EMAIL\", \"template_id\": \"t-a\","
        "  \"language_code\": \"de\"},"
        " {\"rule_id\": \"B\", \"trigger\": \"CASE_CREATED\", \"is_active\": false, \"notification_type\": \"SMS\","
        "  \"template_id\": \"t-b\", \"language_code\": \"de\"},"
        " {\"rule_id\": \"C\", \"trigger\": \"CASE_APPROVED\", \"is_active\": true, \"notification_type\": \"SMS\","
        "  \"template_id\": \"t-c\", \"language_code\": \"de\"}]}", "CASE_CREATED", error, sizeof error);
    assert_non_null (rules);
    assert_string_equal (rules_version (rules), "2026-12-01.3");
    rules_notification_set_t set;
    rules_notification_set (rules, &set);
    assert_string_equal (set.version, "2026-12-01.3");
    assert_int_equal (set.count, 2);                /* C is for another trigger: left out */
    assert_string_equal (set.rules [0].rule_id, "A");
    assert_string_equal (set.rules [0].trigger, "CASE_CREATED");
    assert_true (rules_notification_matches (&set.rules [0], "CASE_CREATED", "KYB", "STANDARD"));
    assert_false (rules_notification_matches (&set.rules [1], "CASE_CREATED", "KYB", "STANDARD"));   /* inactive */
    assert_int_equal (rules_document_count (rules), 0);
    rules_destroy (&rules);

    /* no rules at all is an answer too */
    rules = s_parse ("{\"version\": \"v\", \"rules\": []}", "DOCUMENT_REJECTED", error, sizeof error);
    assert_non_null (rules);
    assert_int_equal (rules_notification_count (rules), 0);
    rules_destroy (&rules);
}

static void
test_document_answer (void **state)
{
    (void) state;
    char error [256];
    rules_t *rules = s_parse (
        "{\"version\": \"d-1\", \"rules\": ["
        " {\"rule_id\": \"D1\", \"subject\": \"company\", \"document_type\": \"KBIS\"},"
        " {\"rule_id\": \"D2\", \"subject\": \"beneficial_owner\", \"only_ubo\": true, \"document_type\": \"ID\","
        "  \"is_active\": true},"
        " {\"rule_id\": \"D3\", \"subject\": \"person\", \"document_type\": \"PAYSLIP\", \"is_active\": false}]}",
        NULL, error, sizeof error);
    assert_non_null (rules);
    rules_document_set_t set;
    rules_document_set (rules, &set);
    assert_int_equal (set.count, 2);                /* the inactive one is left out */
    assert_string_equal (set.rules [1].rule_id, "D2");
    assert_true (set.rules [1].only_ubo);
    assert_int_equal (set.rules [0].subject, RULES_SUBJECT_COMPANY);
    rules_destroy (&rules);
}

static void
test_malformed_answers (void **state)
{
    (void) state;
    static const struct { const char *json; const char *trigger; const char *why; } cases [] = {
        { "{\"version\": \"v\", \"rules\": [{\"rule_id\": ", "CASE_CREATED", "invalid JSON" },
        { "[]", "CASE_CREATED", "must be a JSON object" },
        { "{\"rules\": []}", "CASE_CREATED", "\"version\" is required" },
        { "{\"version\": 7, \"rules\": []}", "CASE_CREATED", "\"version\" must be" },
        { "{\"version\": \"v\", \"rules\": \"none\"}", "CASE_CREATED", "\"rules\" must be an array" },
        { "{\"version\": \"v\"}", NULL, "\"rules\" must be an array" },
        { "{\"version\": \"v\", \"rules\": [{\"rule_id\": \"A\", \"notification_type\": \"EMAIL\","
          " \"template_id\": \"t\", \"language_code\": \"en\"}]}", "CASE_CREATED", "is_active" },
        { "{\"version\": \"v\", \"rules\": [{\"rule_id\": \"A\", \"is_active\": \"yes\", \"notification_type\": \"EMAIL\","
          " \"template_id\": \"t\", \"language_code\": \"en\"}]}", "CASE_CREATED", "is_active" },
        { "{\"version\": \"v\", \"rules\": [{\"rule_id\": \"A\", \"is_active\": true, \"template_id\": \"t\","
          " \"language_code\": \"en\"}]}", "CASE_CREATED", "notification_type" },
        { "{\"version\": \"v\", \"rules\": [7]}", "CASE_CREATED", "must be an object" },
        { "{\"version\": \"v\", \"rules\": [{\"rule_id\": \"A\", \"is_active\": true, \"notification_type\": \"E\","
          " \"template_id\": \"t\", \"language_code\": \"en\"}, {\"rule_id\": \"A\", \"is_active\": true,"
          " \"notification_type\": \"E\", \"template_id\": \"t\", \"language_code\": \"en\"}]}", "CASE_CREATED", "twice" },
        { "{\"version\": \"v\", \"rules\": [{\"rule_id\": \"D\", \"subject\": \"planet\", \"document_type\": \"X\"}]}",
          NULL, "subject" },
        { "{\"version\": \"v\", \"rules\": [{\"rule_id\": \"D\", \"subject\": \"person\", \"document_type\": \"X\","
          " \"is_active\": 1}]}", NULL, "is_active" },
        { "{\"version\": \"v\", \"version\": \"w\", \"rules\": []}", "CASE_CREATED", "invalid JSON" },
        { "{\"version\": \"v\", \"rules\": []}", "CASE_ESCALATED", "unknown trigger" },
        { "", "CASE_CREATED", "empty" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        char error [256] = "";
        rules_t *rules = s_parse (cases [i].json, cases [i].trigger, error, sizeof error);
        if (rules || !strstr (error, cases [i].why))
            fail_msg ("case %zu: expected a refusal mentioning '%s', got %s '%s'", i, cases [i].why,
                      rules ? "a rule set" : "a refusal", error);
    }
}

static void
test_limits (void **state)
{
    (void) state;
    /* more than RULES_MAX rules */
    size_t size = 64 + (RULES_MAX + 1) * 128;
    char *json = malloc (size);
    assert_non_null (json);
    size_t n = (size_t) snprintf (json, size, "{\"version\": \"v\", \"rules\": [");
    for (int i = 0; i <= RULES_MAX; i++)
        n += (size_t) snprintf (json + n, size - n, "%s{\"rule_id\": \"R%d\", \"is_active\": true, "
                                "\"notification_type\": \"E\", \"template_id\": \"t\", \"language_code\": \"en\"}",
                                i ? "," : "", i);
    snprintf (json + n, size - n, "]}");
    char error [256];
    assert_null (s_parse (json, "CASE_CREATED", error, sizeof error));
    assert_non_null (strstr (error, "more than"));
    free (json);
    /* larger than the cap, without reading it */
    assert_null (rules_parse_answer ("{}", RULES_FILE_MAX + 1, "CASE_CREATED", error, sizeof error));
    /* a version longer than its field */
    char long_version [200];
    snprintf (long_version, sizeof long_version, "{\"version\": \"%0100d\", \"rules\": []}", 7);
    assert_null (s_parse (long_version, NULL, error, sizeof error));
}

static void
test_empty_and_sets (void **state)
{
    (void) state;
    rules_t *rules = rules_new_empty ("none");
    assert_non_null (rules);
    rules_notification_set_t nset;
    rules_notification_set (rules, &nset);
    assert_int_equal (nset.count, 0);
    assert_string_equal (nset.version, "none");
    rules_destroy (&rules);
    rules_document_set_t dset;
    rules_document_set (NULL, &dset);
    assert_int_equal (dset.count, 0);
    assert_string_equal (dset.version, "");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_notification_answer),
        cmocka_unit_test (test_document_answer),
        cmocka_unit_test (test_malformed_answers),
        cmocka_unit_test (test_limits),
        cmocka_unit_test (test_empty_and_sets),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
