/* test_domain_rules — the rules file: the shipped config/rules.json loads (from a
 * temporary copy, and from the repository when run from its root), each kind of bad
 * file is refused with a reason, and document/notification rules match as documented
 * (inactive rules never fire). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"
#include "test_domain_fixtures.h"

static rules_t *
s_rules (void)
{
    char error [256];
    rules_t *rules = rules_parse (fixture_rules, strlen (fixture_rules), error, sizeof error);
    if (!rules)
        fail_msg ("fixture rules refused: %s", error);
    return rules;
}

/* Names of the notification rules that match, comma-separated, into out. */
static void
s_matching (const rules_t *rules, const char *trigger, const char *type, const char *case_type,
            char *out, size_t size)
{
    out [0] = 0;
    for (size_t i = 0; i < rules_notification_count (rules); i++) {
        const rules_notification_t *rule = rules_notification_at (rules, i);
        if (rules_notification_matches (rule, trigger, type, case_type)) {
            if (out [0])
                strncat (out, ",", size - strlen (out) - 1);
            strncat (out, rule->rule_id, size - strlen (out) - 1);
        }
    }
}

static void
test_parse_shipped_rules (void **state)
{
    (void) state;
    rules_t *rules = s_rules ();
    assert_string_equal (rules_version (rules), "2026-11-22.1");
    assert_int_equal (rules_document_count (rules), 6);
    assert_int_equal (rules_notification_count (rules), 8);
    const rules_document_t *d = rules_document_at (rules, 5);
    assert_string_equal (d->rule_id, "DOC-UBO-ID");
    assert_int_equal (d->subject, RULES_SUBJECT_BENEFICIAL_OWNER);
    assert_true (d->only_ubo);
    assert_string_equal (d->traitement_type, "");
    assert_null (rules_document_at (rules, 6));
    const rules_notification_t *n = rules_notification_at (rules, 7);
    assert_string_equal (n->rule_id, "NTF-SMS-APPROVED");
    assert_false (n->is_active);
    assert_string_equal (n->notification_type, "SMS");
    assert_null (rules_notification_at (rules, 8));
    rules_destroy (&rules);
    assert_null (rules);
    rules_destroy (&rules);
    rules_destroy (NULL);
}

static void
test_load_file (void **state)
{
    (void) state;
    char dir [] = "/tmp/dossier-test-rules-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path [256];
    snprintf (path, sizeof path, "%s/rules.json", dir);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (fixture_rules, f);
    fclose (f);
    char error [256];
    rules_t *rules = rules_load_file (path, error, sizeof error);
    assert_non_null (rules);
    assert_int_equal (rules_notification_count (rules), 8);
    rules_destroy (&rules);

    f = fopen (path, "w");
    fputs ("{\"version\": \"1\", \"documents\": [", f);
    fclose (f);
    assert_null (rules_load_file (path, error, sizeof error));
    assert_true (strlen (error) > 0);
    unlink (path);
    assert_null (rules_load_file (path, error, sizeof error));
    assert_non_null (strstr (error, "cannot open"));
    assert_null (rules_load_file (NULL, error, sizeof error));
    assert_int_equal (rmdir (dir), 0);

    /* the file the handler loads by default, when the tests run from the repository */
    if (access ("config/rules.json", R_OK) == 0) {
        rules = rules_load_file ("config/rules.json", error, sizeof error);
        if (!rules)
            fail_msg ("config/rules.json: %s", error);
        rules_destroy (&rules);
    }
}

static void
test_bad_rules (void **state)
{
    (void) state;
    const char *bad [] = {
        "",
        "not json",
        "[]",
        "{\"documents\": [], \"notifications\": []}",
        "{\"version\": 3, \"documents\": [], \"notifications\": []}",
        "{\"version\": \"1\", \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": {}, \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": []}",
        "{\"version\": \"1\", \"documents\": [7], \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": [{\"rule_id\": \"A\", \"subject\": \"pet\", \"document_type\": \"X\"}], \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": [{\"rule_id\": \"A\", \"subject\": \"person\"}], \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": [{\"rule_id\": \"A\", \"subject\": \"person\", \"document_type\": \"X\", \"traitement_type\": \"KYZ\"}], \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": [{\"rule_id\": \"A\", \"subject\": \"person\", \"document_type\": \"X\", \"only_ubo\": \"yes\"}], \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": [{\"rule_id\": \"A\", \"subject\": \"person\", \"document_type\": \"X\"},"
            "{\"rule_id\": \"A\", \"subject\": \"company\", \"document_type\": \"Y\"}], \"notifications\": []}",
        "{\"version\": \"1\", \"documents\": [], \"notifications\": [{\"rule_id\": \"N\", \"trigger\": \"CASE_EXPLODED\","
            "\"is_active\": true, \"notification_type\": \"EMAIL\", \"template_id\": \"t\", \"language_code\": \"en\"}]}",
        "{\"version\": \"1\", \"documents\": [], \"notifications\": [{\"rule_id\": \"N\", \"trigger\": \"CASE_CREATED\","
            "\"notification_type\": \"EMAIL\", \"template_id\": \"t\", \"language_code\": \"en\"}]}",
        "{\"version\": \"1\", \"documents\": [], \"notifications\": [{\"rule_id\": \"N\", \"trigger\": \"CASE_CREATED\","
            "\"is_active\": true, \"template_id\": \"t\", \"language_code\": \"en\"}]}",
        "{\"version\": \"1\", \"documents\": [], \"notifications\": [{\"rule_id\": \"N\", \"trigger\": \"CASE_CREATED\","
            "\"is_active\": 1, \"notification_type\": \"EMAIL\", \"template_id\": \"t\", \"language_code\": \"en\"}]}",
        "{\"version\": \"1\", \"version\": \"2\", \"documents\": [], \"notifications\": []}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char error [256] = "";
        rules_t *rules = rules_parse (bad [i], strlen (bad [i]), error, sizeof error);
        if (rules)
            fail_msg ("bad rules #%zu accepted", i);
        assert_true (strlen (error) > 0);
    }
    /* error may be NULL */
    assert_null (rules_parse ("[]", 2, NULL, 0));
    /* an empty but well-formed file is fine: nothing required, nothing notified */
    const char *empty = "{\"version\": \"0\", \"documents\": [], \"notifications\": []}";
    rules_t *rules = rules_parse (empty, strlen (empty), NULL, 0);
    assert_non_null (rules);
    assert_int_equal (rules_document_count (rules), 0);
    rules_destroy (&rules);
}

static void
test_document_matching (void **state)
{
    (void) state;
    rules_t *rules = s_rules ();
    const rules_document_t *kyc_id = rules_document_at (rules, 0);
    const rules_document_t *kyb_coi = rules_document_at (rules, 2);
    const rules_document_t *ubo_id = rules_document_at (rules, 5);
    assert_true (rules_document_matches (kyc_id, RULES_SUBJECT_PERSON, "KYC", 0));
    assert_false (rules_document_matches (kyc_id, RULES_SUBJECT_PERSON, "KYB", 0));
    assert_false (rules_document_matches (kyc_id, RULES_SUBJECT_COMPANY, "KYC", 0));
    assert_false (rules_document_matches (kyc_id, RULES_SUBJECT_PERSON, NULL, 0));
    assert_true (rules_document_matches (kyb_coi, RULES_SUBJECT_COMPANY, "KYB", 0));
    assert_false (rules_document_matches (kyb_coi, RULES_SUBJECT_COMPANY, "KYC", 0));
    assert_true (rules_document_matches (ubo_id, RULES_SUBJECT_BENEFICIAL_OWNER, "KYB", 1));
    assert_false (rules_document_matches (ubo_id, RULES_SUBJECT_BENEFICIAL_OWNER, "KYB", 0));
    /* no traitement_type: any */
    assert_true (rules_document_matches (ubo_id, RULES_SUBJECT_BENEFICIAL_OWNER, "KYC", 1));
    assert_false (rules_document_matches (NULL, RULES_SUBJECT_PERSON, "KYC", 0));

    assert_string_equal (rules_subject_name (RULES_SUBJECT_BENEFICIAL_OWNER), "beneficial_owner");
    assert_null (rules_subject_name (9));
    assert_int_equal (rules_subject_from_string ("company"), RULES_SUBJECT_COMPANY);
    assert_int_equal (rules_subject_from_string ("dog"), -1);
    assert_int_equal (rules_subject_from_string (NULL), -1);
    rules_destroy (&rules);
}

static void
test_notification_matching (void **state)
{
    (void) state;
    rules_t *rules = s_rules ();
    char names [256];
    s_matching (rules, "CASE_CREATED", "KYC", "STANDARD", names, sizeof names);
    assert_string_equal (names, "NTF-KYC-CREATED");
    s_matching (rules, "CASE_CREATED", "KYB", "STANDARD", names, sizeof names);
    assert_string_equal (names, "NTF-KYB-CREATED");
    s_matching (rules, "CASE_CREATED", "KYB", "ENHANCED", names, sizeof names);
    assert_string_equal (names, "NTF-KYB-ENHANCED");
    s_matching (rules, "CASE_CREATED", "KYB", "SIMPLIFIED", names, sizeof names);
    assert_string_equal (names, "");
    /* the SMS rule is inactive: never fires */
    s_matching (rules, "CASE_APPROVED", "KYC", "STANDARD", names, sizeof names);
    assert_string_equal (names, "NTF-APPROVED");
    s_matching (rules, "CASE_REJECTED", "KYB", "ENHANCED", names, sizeof names);
    assert_string_equal (names, "NTF-REJECTED");
    s_matching (rules, "DOCUMENT_REJECTED", "KYC", "STANDARD", names, sizeof names);
    assert_string_equal (names, "NTF-DOC-REJECTED");
    s_matching (rules, "ALL_DOCUMENTS_RECEIVED", "KYB", "STANDARD", names, sizeof names);
    assert_string_equal (names, "NTF-DOCS-RECEIVED");
    s_matching (rules, "NOTHING", "KYC", "STANDARD", names, sizeof names);
    assert_string_equal (names, "");
    assert_false (rules_notification_matches (rules_notification_at (rules, 0), NULL, "KYC", "STANDARD"));
    assert_true (rules_trigger_is_valid ("ALL_DOCUMENTS_RECEIVED"));
    assert_false (rules_trigger_is_valid ("case_created"));
    rules_destroy (&rules);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_parse_shipped_rules),
        cmocka_unit_test (test_load_file),
        cmocka_unit_test (test_bad_rules),
        cmocka_unit_test (test_document_matching),
        cmocka_unit_test (test_notification_matching),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
