/* test_domain_record — the ISO country list and client record validation: the two
 * example records pass, and each rule of schemas/client_record.schema.json (plus its
 * cross-field rules) is broken once, checking error class, field path and that the
 * message does not repeat the offending (possibly personal) value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "country.h"
#include "record.h"
#include "test_domain_fixtures.h"

/* ---- helpers */

static json_t *
s_load (const char *text)
{
    json_t *json = json_loads (text, 0, NULL);
    assert_non_null (json);
    return json;
}

/* Sets path (dotted, with [n] for array items) in root to value (stolen). */
static void
s_set (json_t *root, const char *path, json_t *value)
{
    char buf [256];
    snprintf (buf, sizeof buf, "%s", path);
    json_t *node = root;
    char *save = NULL;
    char *part = strtok_r (buf, ".", &save);
    while (part) {
        char *next = strtok_r (NULL, ".", &save);
        char *bracket = strchr (part, '[');
        int index = -1;
        if (bracket) {
            index = atoi (bracket + 1);
            *bracket = 0;
        }
        if (!next && index < 0) {
            if (value)
                json_object_set_new (node, part, value);
            else
                json_object_del (node, part);
            return;
        }
        node = json_object_get (node, part);
        assert_non_null (node);
        if (index >= 0) {
            if (!next) {
                json_array_set_new (node, (size_t) index, value);
                return;
            }
            node = json_array_get (node, (size_t) index);
            assert_non_null (node);
        }
        part = next;
    }
}

/* Validates json (stolen) and expects failure with error class and field path. */
static void
s_expect_invalid (json_t *json, const char *error, const char *field, const char *not_in_detail)
{
    char *text = json_dumps (json, JSON_COMPACT);
    json_decref (json);
    record_t *record = (record_t *) 0x1;
    record_error_t err;
    int rc = record_parse (text, strlen (text), FIXTURE_TODAY, &record, &err);
    free (text);
    if (rc != -2)
        fail_msg ("expected -2 (%s at %s), got %d", error, field, rc);
    assert_null (record);
    assert_string_equal (err.error, error);
    assert_string_equal (err.field, field);
    assert_true (strlen (err.detail) > 0);
    if (not_in_detail)
        assert_null (strstr (err.detail, not_in_detail));
}

static void
s_expect_valid (json_t *json)
{
    char *text = json_dumps (json, JSON_COMPACT);
    json_decref (json);
    record_t *record = NULL;
    record_error_t err;
    int rc = record_parse (text, strlen (text), FIXTURE_TODAY, &record, &err);
    free (text);
    if (rc != 0)
        fail_msg ("expected valid, got %d: %s %s %s", rc, err.error, err.field, err.detail);
    assert_non_null (record);
    record_destroy (&record);
    assert_null (record);
}

static json_t *
s_repeat (const char *unit, size_t count)
{
    size_t len = strlen (unit);
    char *buf = malloc (len * count + 1);
    for (size_t i = 0; i < count; i++)
        memcpy (buf + i * len, unit, len);
    buf [len * count] = 0;
    json_t *s = json_string (buf);
    free (buf);
    return s;
}

/* ---- country */

static void
test_country_list (void **state)
{
    (void) state;
    size_t n = 0;
    while (country_code_at (n))
        n++;
    assert_int_equal (n, 249);
    for (size_t i = 1; i < n; i++)
        assert_true (strcmp (country_code_at (i - 1), country_code_at (i)) < 0);
    const char *good [] = { "FR", "DE", "GB", "US", "AX", "SS" };
    for (size_t i = 0; i < 6; i++)
        assert_true (country_is_valid (good [i]));
    /* XK (Kosovo) is user-assigned, not officially assigned */
    const char *bad [] = { "XK", "XX", "UK", "EU", "fr", "F", "FRA", "", "ZZ", "AA" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        assert_false (country_is_valid (bad [i]));
    assert_false (country_is_valid (NULL));
    for (size_t i = 0; i < n; i++)
        assert_true (country_is_valid (country_code_at (i)));
}

/* ---- dates */

static void
test_dates (void **state)
{
    (void) state;
    const char *good [] = { "2000-02-29", "2024-02-29", "1900-01-01", "1999-12-31", "2023-04-30", "2023-01-31" };
    const char *bad [] = { "1900-02-29", "2023-02-29", "1990-02-30", "2023-04-31", "2023-13-01", "2023-00-10",
                           "2023-01-00", "2023-1-01", "20230101", "2023/01/01", "2023-01-01T00:00", "", "abcd-ef-gh",
                           "0000-01-01" };
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++)
        assert_true (record_date_is_valid (good [i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        assert_false (record_date_is_valid (bad [i]));
    assert_false (record_date_is_valid (NULL));
}

/* ---- good records */

static void
test_kyc_example_parses (void **state)
{
    (void) state;
    record_t *r = NULL;
    record_error_t err;
    assert_int_equal (record_parse (fixture_kyc, strlen (fixture_kyc), FIXTURE_TODAY, &r, &err), 0);
    assert_string_equal (r->client_id, "CLI-2026-000101");
    assert_string_equal (r->case_type, "STANDARD");
    assert_true (r->case_version_is_integer);
    assert_int_equal (r->case_version_integer, 1);
    assert_false (r->is_kyb);
    assert_false (r->has_company);
    assert_int_equal (r->person_count, 1);
    assert_int_equal (r->owner_count, 0);
    const record_person_t *p = &r->persons [0];
    assert_string_equal (p->firstname, "Camille");
    assert_string_equal (p->role, "APPLICANT");
    assert_string_equal (p->nationality, "FR");
    assert_string_equal (p->phone, "+33 6 12 34 56 78");
    assert_true (p->has_address);
    assert_string_equal (p->address.city, "Lyon");
    assert_string_equal (p->address.postal_code, "69003");
    record_destroy (&r);
    record_destroy (&r);        /* NULL-safe */
    record_destroy (NULL);
}

static void
test_kyb_example_parses (void **state)
{
    (void) state;
    record_t *r = NULL;
    record_error_t err;
    assert_int_equal (record_parse (fixture_kyb, strlen (fixture_kyb), FIXTURE_TODAY, &r, &err), 0);
    assert_true (r->is_kyb);
    assert_true (r->has_company);
    assert_string_equal (r->company.registered_name, "Nordlicht Logistik GmbH");
    assert_string_equal (r->company.registered_address.country, "DE");
    assert_int_equal (r->person_count, 2);
    assert_string_equal (r->persons [1].role, "AUTHORISED_SIGNATORY");
    assert_false (r->persons [0].has_address);
    assert_null (r->persons [0].phone);
    assert_int_equal (r->owner_count, 3);
    assert_true (r->owners [0].ownership_percentage == 60.0);
    assert_true (r->owners [0].ownership_is_integer);
    assert_int_equal (r->owners [0].control_count, 2);
    assert_string_equal (r->owners [0].types_of_control [1], "VOTING_RIGHTS");
    assert_true (r->owners [1].is_ubo);
    assert_false (r->owners [2].is_ubo);
    assert_string_equal (r->owners [2].person.lastname, "de Vries");
    assert_null (r->owners [2].person.role);
    record_destroy (&r);
}

static void
test_optional_and_forward_compatible (void **state)
{
    (void) state;
    json_t *j = s_load (fixture_kyb);
    s_set (j, "future_field", json_string ("ignored"));
    s_set (j, "persons[0].shoe_size", json_integer (44));
    s_set (j, "company_profile.trading_name", json_null ());
    s_set (j, "company_profile.business_type", json_string (""));
    s_set (j, "company_profile.industry_sector", NULL);
    s_set (j, "company_profile.registered_address.postal_code", NULL);
    s_set (j, "persons[0].email", json_null ());
    s_set (j, "beneficial_owners[0].types_of_control", NULL);
    s_expect_valid (j);

    /* case_version as a string; KYC with an empty beneficial owner list */
    j = s_load (fixture_kyc);
    s_set (j, "case_version", json_string ("2026-A"));
    s_set (j, "beneficial_owners", json_array ());
    s_expect_valid (j);

    /* limits are inclusive; lengths count characters, not bytes */
    j = s_load (fixture_kyc);
    s_set (j, "client_id", s_repeat ("c", 64));
    s_set (j, "persons[0].lastname", s_repeat ("\xc3\xa9", 100));
    s_set (j, "persons[0].birthdate", json_string (FIXTURE_TODAY));
    s_set (j, "persons[0].email", json_string ("a@b.io"));
    s_expect_valid (j);

    j = s_load (fixture_kyc);
    s_set (j, "persons[0].birthdate", json_string ("1900-01-01"));
    s_set (j, "case_version", s_repeat ("v", 32));
    s_expect_valid (j);

    /* a KYB record without persons or owners is fine */
    j = s_load (fixture_kyb);
    s_set (j, "persons", NULL);
    s_set (j, "beneficial_owners", json_null ());
    s_expect_valid (j);

    /* decimals that sum to 100 with rounding error */
    j = s_load (fixture_kyb);
    s_set (j, "beneficial_owners[0].ownership_percentage", json_real (33.33));
    s_set (j, "beneficial_owners[1].ownership_percentage", json_real (33.33));
    s_set (j, "beneficial_owners[2].ownership_percentage", json_real (33.34));
    s_expect_valid (j);
}

/* ---- bad bodies */

static void
test_bad_bodies (void **state)
{
    (void) state;
    record_t *r = NULL;
    record_error_t err;
    const char *bodies [] = { "[1,2,3]", "\"text\"", "42", "null", "{\"client_id\": ", "{\"a\":1,\"a\":2}" };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies [0]; i++) {
        assert_int_equal (record_parse (bodies [i], strlen (bodies [i]), FIXTURE_TODAY, &r, &err), -2);
        assert_null (r);
        assert_string_equal (err.error, "validation.body");
        assert_string_equal (err.field, "");
        assert_true (strlen (err.detail) > 0);
    }
    assert_int_equal (record_parse ("", 0, FIXTURE_TODAY, &r, &err), -2);
    assert_int_equal (record_parse (NULL, 10, FIXTURE_TODAY, &r, &err), -2);
    /* invalid JSON: the message gives the place, never a quote of the input */
    const char *secret = "{\"client_id\": \"Zebulon\" \"x\"}";
    assert_int_equal (record_parse (secret, strlen (secret), FIXTURE_TODAY, &r, &err), -2);
    assert_null (strstr (err.detail, "Zebulon"));
    /* bytes that are not UTF-8 */
    const char *latin1 = "{\"client_id\": \"\xff\xfe\"}";
    assert_int_equal (record_parse (latin1, strlen (latin1), FIXTURE_TODAY, &r, &err), -2);
    assert_string_equal (err.error, "validation.body");
    /* over the size limit */
    size_t big = RECORD_BODY_MAX + 1;
    char *huge = malloc (big);
    memset (huge, ' ', big);
    huge [0] = '{';
    huge [big - 1] = '}';
    assert_int_equal (record_parse (huge, big, FIXTURE_TODAY, &r, &err), -2);
    assert_string_equal (err.error, "validation.body");
    free (huge);
}

/* ---- top-level fields */

static void
test_top_level_fields (void **state)
{
    (void) state;
    json_t *j;
    j = s_load (fixture_kyc); s_set (j, "client_id", NULL);
    s_expect_invalid (j, "validation.client_id", "client_id", NULL);
    j = s_load (fixture_kyc); s_set (j, "client_id", json_integer (12345));
    s_expect_invalid (j, "validation.client_id", "client_id", NULL);
    j = s_load (fixture_kyc); s_set (j, "client_id", json_string (""));
    s_expect_invalid (j, "validation.client_id", "client_id", NULL);
    j = s_load (fixture_kyc); s_set (j, "client_id", json_string ("   "));
    s_expect_invalid (j, "validation.client_id", "client_id", NULL);
    j = s_load (fixture_kyc); s_set (j, "client_id", s_repeat ("c", 65));
    s_expect_invalid (j, "validation.client_id", "client_id", NULL);
    j = s_load (fixture_kyc); s_set (j, "client_id", json_string ("a\nb"));
    s_expect_invalid (j, "validation.client_id", "client_id", NULL);
    j = s_load (fixture_kyc); s_set (j, "case_type", NULL);
    s_expect_invalid (j, "validation.case_type", "case_type", NULL);
    j = s_load (fixture_kyc); s_set (j, "case_type", json_null ());
    s_expect_invalid (j, "validation.case_type", "case_type", NULL);

    json_t *versions [] = { json_integer (0), json_integer (-3), json_real (1.5), json_string (""),
                            json_true (), json_array (), s_repeat ("v", 33), NULL };
    for (int i = 0; versions [i]; i++) {
        j = s_load (fixture_kyc);
        s_set (j, "case_version", versions [i]);
        s_expect_invalid (j, "validation.case_version", "case_version", NULL);
    }
    j = s_load (fixture_kyc); s_set (j, "case_version", NULL);
    s_expect_invalid (j, "validation.case_version", "case_version", NULL);

    const char *types [] = { "KYZ", "kyc", "KYC ", "KYCKYB", "" };
    for (size_t i = 0; i < sizeof types / sizeof types [0]; i++) {
        j = s_load (fixture_kyc);
        s_set (j, "traitement_type", json_string (types [i]));
        s_expect_invalid (j, "validation.traitement_type", "traitement_type", NULL);
    }
    j = s_load (fixture_kyc); s_set (j, "traitement_type", json_integer (1));
    s_expect_invalid (j, "validation.traitement_type", "traitement_type", NULL);
}

/* ---- KYC / KYB structure */

static void
test_structure (void **state)
{
    (void) state;
    json_t *j;
    j = s_load (fixture_kyc); s_set (j, "traitement_type", json_string ("KYB"));
    s_expect_invalid (j, "validation.company_profile", "company_profile", NULL);
    j = s_load (fixture_kyb); s_set (j, "company_profile", json_string ("ACME"));
    s_expect_invalid (j, "validation.company_profile", "company_profile", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons", json_array ());
    s_expect_invalid (j, "validation.persons", "persons", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons", NULL);
    s_expect_invalid (j, "validation.persons", "persons", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons", json_object ());
    s_expect_invalid (j, "validation.persons", "persons", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons[0]", json_string ("someone"));
    s_expect_invalid (j, "validation.persons", "persons[0]", NULL);

    /* beneficial owners only for KYB */
    json_t *kyb = s_load (fixture_kyb);
    j = s_load (fixture_kyc);
    s_set (j, "beneficial_owners", json_deep_copy (json_object_get (kyb, "beneficial_owners")));
    json_decref (kyb);
    s_expect_invalid (j, "validation.beneficial_owners", "beneficial_owners", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners", json_string ("x"));
    s_expect_invalid (j, "validation.beneficial_owners", "beneficial_owners", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[1]", json_integer (3));
    s_expect_invalid (j, "validation.beneficial_owners", "beneficial_owners[1]", NULL);

    /* array caps */
    j = s_load (fixture_kyc);
    json_t *persons = json_object_get (j, "persons");
    json_t *one = json_array_get (persons, 0);
    for (int i = 1; i < RECORD_MAX_PERSONS; i++)
        json_array_append (persons, one);
    s_expect_valid (json_deep_copy (j));
    json_array_append (persons, one);
    s_expect_invalid (j, "validation.persons", "persons", NULL);

    j = s_load (fixture_kyb);
    json_t *owners = json_object_get (j, "beneficial_owners");
    json_t *owner = json_deep_copy (json_array_get (owners, 2));
    json_object_set_new (owner, "ownership_percentage", json_integer (0));
    json_array_clear (owners);
    for (int i = 0; i < RECORD_MAX_OWNERS; i++)
        json_array_append (owners, owner);
    s_expect_valid (json_deep_copy (j));
    json_array_append_new (owners, owner);
    s_expect_invalid (j, "validation.beneficial_owners", "beneficial_owners", NULL);
}

/* ---- company */

static void
test_company (void **state)
{
    (void) state;
    const char *required [] = { "registered_name", "registration_number", "registration_date",
                                "country_of_incorporation", "registered_address" };
    for (size_t i = 0; i < sizeof required / sizeof required [0]; i++) {
        json_t *j = s_load (fixture_kyb);
        char path [128], field [128], error [128];
        snprintf (path, sizeof path, "company_profile.%s", required [i]);
        snprintf (error, sizeof error, "validation.%s", required [i]);
        s_set (j, path, NULL);
        snprintf (field, sizeof field, "company_profile.%s", required [i]);
        s_expect_invalid (j, error, field, NULL);
    }
    const char *address [] = { "street", "city", "country" };
    for (size_t i = 0; i < 3; i++) {
        json_t *j = s_load (fixture_kyb);
        char path [128], error [128];
        snprintf (path, sizeof path, "company_profile.registered_address.%s", address [i]);
        snprintf (error, sizeof error, "validation.%s", address [i]);
        s_set (j, path, NULL);
        s_expect_invalid (j, error, path, NULL);
    }
    json_t *j;
    j = s_load (fixture_kyb); s_set (j, "company_profile.registration_date", json_string ("2999-01-01"));
    s_expect_invalid (j, "validation.registration_date", "company_profile.registration_date", "2999");
    j = s_load (fixture_kyb); s_set (j, "company_profile.registration_date", json_string ("2011-02-29"));
    s_expect_invalid (j, "validation.registration_date", "company_profile.registration_date", NULL);
    j = s_load (fixture_kyb); s_set (j, "company_profile.country_of_incorporation", json_string ("XX"));
    s_expect_invalid (j, "validation.country_of_incorporation", "company_profile.country_of_incorporation", NULL);
    j = s_load (fixture_kyb); s_set (j, "company_profile.registered_address.country", json_string ("Germany"));
    s_expect_invalid (j, "validation.country", "company_profile.registered_address.country", "Germany");
    j = s_load (fixture_kyb); s_set (j, "company_profile.registered_name", s_repeat ("n", 201));
    s_expect_invalid (j, "validation.registered_name", "company_profile.registered_name", NULL);
    j = s_load (fixture_kyb); s_set (j, "company_profile.registered_name", s_repeat ("n", 200));
    s_expect_valid (j);
    j = s_load (fixture_kyb); s_set (j, "company_profile.registration_number", s_repeat ("1", 65));
    s_expect_invalid (j, "validation.registration_number", "company_profile.registration_number", NULL);
    j = s_load (fixture_kyb); s_set (j, "company_profile.industry_sector", s_repeat ("s", 129));
    s_expect_invalid (j, "validation.industry_sector", "company_profile.industry_sector", NULL);
    j = s_load (fixture_kyb); s_set (j, "company_profile.registered_address.postal_code", s_repeat ("1", 21));
    s_expect_invalid (j, "validation.postal_code", "company_profile.registered_address.postal_code", NULL);
    j = s_load (fixture_kyb); s_set (j, "company_profile.registered_address", json_array ());
    s_expect_invalid (j, "validation.registered_address", "company_profile.registered_address", NULL);
}

/* ---- persons */

static void
test_persons (void **state)
{
    (void) state;
    json_t *j;
    const char *required [] = { "firstname", "lastname", "birthdate", "role" };
    for (size_t i = 0; i < 4; i++) {
        char path [64], error [64];
        snprintf (path, sizeof path, "persons[0].%s", required [i]);
        snprintf (error, sizeof error, "validation.%s", required [i]);
        j = s_load (fixture_kyc);
        s_set (j, path, NULL);
        s_expect_invalid (j, error, path, NULL);
    }
    j = s_load (fixture_kyc); s_set (j, "persons[0].role", json_string ("WIZARD"));
    s_expect_invalid (j, "validation.role", "persons[0].role", "WIZARD");
    j = s_load (fixture_kyc); s_set (j, "persons[0].role", json_string ("applicant"));
    s_expect_invalid (j, "validation.role", "persons[0].role", NULL);
    const char *roles [] = { "APPLICANT", "CO_APPLICANT", "DIRECTOR", "LEGAL_REPRESENTATIVE",
                             "AUTHORISED_SIGNATORY", "SHAREHOLDER", "CONTACT" };
    for (size_t i = 0; i < 7; i++) {
        assert_true (record_role_is_valid (roles [i]));
        j = s_load (fixture_kyc);
        s_set (j, "persons[0].role", json_string (roles [i]));
        s_expect_valid (j);
    }

    /* dates */
    const char *bad_dates [] = { "1990-02-30", "2023-02-29", "1990-2-3", "17/04/1988", "2999-01-01",
                                 "2026-11-23", "1899-12-31", "1988-04-17T00:00:00Z" };
    for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates [0]; i++) {
        j = s_load (fixture_kyc);
        s_set (j, "persons[0].birthdate", json_string (bad_dates [i]));
        s_expect_invalid (j, "validation.birthdate", "persons[0].birthdate", bad_dates [i]);
    }
    j = s_load (fixture_kyc); s_set (j, "persons[0].birthdate", json_string ("2000-02-29"));
    s_expect_valid (j);
    j = s_load (fixture_kyc); s_set (j, "persons[0].birthdate", json_integer (19880417));
    s_expect_invalid (j, "validation.birthdate", "persons[0].birthdate", NULL);

    /* countries */
    const char *bad_countries [] = { "XX", "fr", "FRA", "UK", "F" };
    for (size_t i = 0; i < 5; i++) {
        j = s_load (fixture_kyc);
        s_set (j, "persons[0].nationality", json_string (bad_countries [i]));
        s_expect_invalid (j, "validation.nationality", "persons[0].nationality", NULL);
        j = s_load (fixture_kyc);
        s_set (j, "persons[0].address.country", json_string (bad_countries [i]));
        s_expect_invalid (j, "validation.country", "persons[0].address.country", NULL);
    }
    j = s_load (fixture_kyc); s_set (j, "persons[0].address.country", NULL);
    s_expect_invalid (j, "validation.country", "persons[0].address.country", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons[0].address.city", NULL);
    s_expect_invalid (j, "validation.city", "persons[0].address.city", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons[0].address", json_string ("12 rue des Lilas"));
    s_expect_invalid (j, "validation.address", "persons[0].address", "Lilas");
    j = s_load (fixture_kyc); s_set (j, "persons[0].address", NULL);
    s_expect_valid (j);

    /* lengths and characters */
    j = s_load (fixture_kyc); s_set (j, "persons[0].lastname", s_repeat ("x", 5000));
    s_expect_invalid (j, "validation.lastname", "persons[0].lastname", "xxxx");
    j = s_load (fixture_kyc); s_set (j, "persons[0].firstname", s_repeat ("\xc3\xa9", 101));
    s_expect_invalid (j, "validation.firstname", "persons[0].firstname", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons[0].firstname", json_string ("Cam\tille"));
    s_expect_invalid (j, "validation.firstname", "persons[0].firstname", NULL);
    j = s_load (fixture_kyc); s_set (j, "persons[0].address.street", s_repeat ("s", 201));
    s_expect_invalid (j, "validation.street", "persons[0].address.street", NULL);

    /* email and phone */
    const char *bad_emails [] = { "camille", "a@b@c.io", "@example.fr", "camille@", "cam ille@example.fr",
                                  "camille@example", "camille@.fr", "camille@example." };
    for (size_t i = 0; i < sizeof bad_emails / sizeof bad_emails [0]; i++) {
        j = s_load (fixture_kyc);
        s_set (j, "persons[0].email", json_string (bad_emails [i]));
        s_expect_invalid (j, "validation.email", "persons[0].email", NULL);
    }
    char long_email [300];
    memset (long_email, 'a', 250);
    memcpy (long_email + 250, "@b.io", 6);
    j = s_load (fixture_kyc); s_set (j, "persons[0].email", json_string (long_email));
    s_expect_invalid (j, "validation.email", "persons[0].email", NULL);
    const char *bad_phones [] = { "call me", "+33+612", "12", "+33 6 12 34 56 78 90 12 34 56 78 90 12 34" };
    for (size_t i = 0; i < sizeof bad_phones / sizeof bad_phones [0]; i++) {
        j = s_load (fixture_kyc);
        s_set (j, "persons[0].phone", json_string (bad_phones [i]));
        s_expect_invalid (j, "validation.phone", "persons[0].phone", NULL);
    }
    j = s_load (fixture_kyc); s_set (j, "persons[0].phone", json_string ("(020) 7946-0958"));
    s_expect_valid (j);
}

/* ---- beneficial owners */

static void
test_owners (void **state)
{
    (void) state;
    json_t *j;
    json_t *bad_pct [] = { json_integer (101), json_real (100.0001), json_integer (-1), json_real (-0.5),
                           json_string ("50"), json_true (), NULL };
    for (int i = 0; bad_pct [i]; i++) {
        j = s_load (fixture_kyb);
        s_set (j, "beneficial_owners[1].ownership_percentage", bad_pct [i]);
        s_expect_invalid (j, "validation.ownership_percentage", "beneficial_owners[1].ownership_percentage", NULL);
    }
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[1].ownership_percentage", NULL);
    s_expect_invalid (j, "validation.ownership_percentage", "beneficial_owners[1].ownership_percentage", NULL);
    /* 80 + 30 + 10 > 100 */
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].ownership_percentage", json_integer (80));
    s_expect_invalid (j, "validation.ownership_percentage", "beneficial_owners", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[2].ownership_percentage", json_real (10.01));
    s_expect_invalid (j, "validation.ownership_percentage", "beneficial_owners", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].ownership_percentage", json_integer (100));
    s_set (j, "beneficial_owners[1].ownership_percentage", json_integer (0));
    s_set (j, "beneficial_owners[2].ownership_percentage", json_real (0.0));
    s_expect_valid (j);

    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].types_of_control[1]", json_string ("MIND_CONTROL"));
    s_expect_invalid (j, "validation.types_of_control", "beneficial_owners[0].types_of_control[1]", "MIND");
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].types_of_control[0]", json_integer (1));
    s_expect_invalid (j, "validation.types_of_control", "beneficial_owners[0].types_of_control[0]", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].types_of_control", json_string ("SHARES"));
    s_expect_invalid (j, "validation.types_of_control", "beneficial_owners[0].types_of_control", NULL);
    j = s_load (fixture_kyb);
    json_t *all = json_array ();
    const char *controls [] = { "SHARES", "VOTING_RIGHTS", "APPOINT_DIRECTORS", "SIGNIFICANT_INFLUENCE",
                                "TRUST_CONTROL", "OTHER" };
    for (int i = 0; i < 6; i++) {
        assert_true (record_control_is_valid (controls [i]));
        json_array_append_new (all, json_string (controls [i]));
    }
    s_set (j, "beneficial_owners[0].types_of_control", json_deep_copy (all));
    s_expect_valid (j);
    for (int i = 0; i < 5; i++)
        json_array_append_new (all, json_string ("OTHER"));
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].types_of_control", all);
    s_expect_invalid (j, "validation.types_of_control", "beneficial_owners[0].types_of_control", NULL);

    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[2].is_ubo", json_string ("yes"));
    s_expect_invalid (j, "validation.is_ubo", "beneficial_owners[2].is_ubo", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[2].is_ubo", json_integer (1));
    s_expect_invalid (j, "validation.is_ubo", "beneficial_owners[2].is_ubo", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[2].is_ubo", NULL);
    s_expect_invalid (j, "validation.is_ubo", "beneficial_owners[2].is_ubo", NULL);

    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].person_details", NULL);
    s_expect_invalid (j, "validation.person_details", "beneficial_owners[0].person_details", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[0].person_details.birthdate", json_string ("1975-13-03"));
    s_expect_invalid (j, "validation.birthdate", "beneficial_owners[0].person_details.birthdate", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[1].person_details.nationality", json_string ("ITA"));
    s_expect_invalid (j, "validation.nationality", "beneficial_owners[1].person_details.nationality", NULL);
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[1].person_details.lastname", json_string (""));
    s_expect_invalid (j, "validation.lastname", "beneficial_owners[1].person_details.lastname", NULL);
    /* a role is not asked of an owner */
    j = s_load (fixture_kyb); s_set (j, "beneficial_owners[1].person_details.role", json_string ("WIZARD"));
    s_expect_valid (j);
}

/* today bounds dates; without one there is no future check */
static void
test_today (void **state)
{
    (void) state;
    json_t *j = s_load (fixture_kyc);
    s_set (j, "persons[0].birthdate", json_string ("2030-01-01"));
    char *text = json_dumps (j, 0);
    json_decref (j);
    record_t *r = NULL;
    record_error_t err;
    assert_int_equal (record_parse (text, strlen (text), "2031-01-01T00:00:00.000Z", &r, &err), 0);
    record_destroy (&r);
    assert_int_equal (record_parse (text, strlen (text), NULL, &r, &err), 0);
    record_destroy (&r);
    assert_int_equal (record_parse (text, strlen (text), "2029-12-31", &r, &err), -2);
    assert_string_equal (err.error, "validation.birthdate");
    /* err may be NULL */
    assert_int_equal (record_parse (text, strlen (text), "2029-12-31", &r, NULL), -2);
    free (text);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_country_list),
        cmocka_unit_test (test_dates),
        cmocka_unit_test (test_kyc_example_parses),
        cmocka_unit_test (test_kyb_example_parses),
        cmocka_unit_test (test_optional_and_forward_compatible),
        cmocka_unit_test (test_bad_bodies),
        cmocka_unit_test (test_top_level_fields),
        cmocka_unit_test (test_structure),
        cmocka_unit_test (test_company),
        cmocka_unit_test (test_persons),
        cmocka_unit_test (test_owners),
        cmocka_unit_test (test_today),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
