/* record — parsing and validation of a client record. One pass over the document,
 * stopping at the first broken rule; every string in the result borrows from the
 * jansson document the record keeps, so a record costs one allocation per array. */
#include "record.h"
#include "json_scan.h"
#include "country.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Percentages are decimals typed by people: 33.33 + 33.33 + 33.34 must pass. */
#define S_PERCENT_EPSILON 1e-6

static const char *s_roles [] = {
    "APPLICANT", "CO_APPLICANT", "DIRECTOR", "LEGAL_REPRESENTATIVE",
    "AUTHORISED_SIGNATORY", "SHAREHOLDER", "CONTACT"
};
static const char *s_controls [] = {
    "SHARES", "VOTING_RIGHTS", "APPOINT_DIRECTORS", "SIGNIFICANT_INFLUENCE", "TRUST_CONTROL", "OTHER"
};

typedef enum { S_TEXT, S_DATE, S_COUNTRY, S_EMAIL, S_PHONE } s_kind_t;

/* What every check needs: where to report, and the date that bounds all dates. */
typedef struct {
    record_error_t *err;
    char today [11];            /* "" when the caller gave no date */
} s_check_t;

static int
s_in_list (const char *name, const char **list, size_t count)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < count; i++)
        if (strcmp (name, list [i]) == 0)
            return 1;
    return 0;
}

int
record_role_is_valid (const char *name)
{
    return s_in_list (name, s_roles, sizeof s_roles / sizeof s_roles [0]);
}

int
record_control_is_valid (const char *name)
{
    return s_in_list (name, s_controls, sizeof s_controls / sizeof s_controls [0]);
}

static int
s_digits (const char *s, int n)
{
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (s [i] < '0' || s [i] > '9')
            return -1;
        value = value * 10 + (s [i] - '0');
    }
    return value;
}

int
record_date_is_valid (const char *s)
{
    if (!s || strlen (s) != 10 || s [4] != '-' || s [7] != '-')
        return 0;
    int year = s_digits (s, 4), month = s_digits (s + 5, 2), day = s_digits (s + 8, 2);
    if (year < 1 || month < 1 || month > 12 || day < 1)
        return 0;
    static const int days [12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int max = days [month - 1] + (month == 2 && leap ? 1 : 0);
    return day <= max;
}

/* Records the failure; always returns -2 so callers can `return s_fail (...)`. */
static int
s_fail (s_check_t *check, const char *name, const char *path, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
s_fail (s_check_t *check, const char *name, const char *path, const char *fmt, ...)
{
    record_error_t *err = check->err;
    snprintf (err->error, sizeof err->error, "validation.%s", name);
    snprintf (err->field, sizeof err->field, "%s", path);
    char message [200];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    if (*path)
        snprintf (err->detail, sizeof err->detail, "%s %s", path, message);
    else
        snprintf (err->detail, sizeof err->detail, "%s", message);
    return -2;
}

static void
s_path (char *out, size_t size, const char *prefix, const char *name)
{
    if (prefix && *prefix)
        snprintf (out, size, "%s.%s", prefix, name);
    else
        snprintf (out, size, "%s", name);
}

/* Characters, not bytes: jansson guarantees valid UTF-8, so count lead bytes. */
static size_t
s_utf8_length (const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char) *s & 0xC0) != 0x80)
            n++;
    return n;
}

static int
s_has_control (const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || (unsigned char) *s == 0x7f)
            return 1;
    return 0;
}

static int
s_is_blank (const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return 0;
    return 1;
}

static int
s_email_ok (const char *s)
{
    const char *at = strchr (s, '@');
    if (!at || strchr (at + 1, '@'))
        return 0;
    size_t local = (size_t) (at - s), domain = strlen (at + 1);
    if (local == 0 || local > 64 || domain == 0 || domain > 253)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p == ' ')
            return 0;
    const char *dot = strchr (at + 1, '.');
    return dot && dot != at + 1 && at [domain] != '.';
}

static int
s_phone_ok (const char *s)
{
    int digits = 0;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else
        if (*p == '+') {
            if (p != s)
                return 0;
        }
        else
        if (!strchr (" -().", *p))
            return 0;
    }
    return digits >= 4;
}

/* Reads member name of obj as a string of the given kind into *out (NULL when an
 * optional member is absent, null or ""). Returns 0 or -2. */
static int
s_string (s_check_t *check, const json_t *obj, const char *prefix, const char *name,
          int required, s_kind_t kind, size_t max, const char **out)
{
    char path [128];
    s_path (path, sizeof path, prefix, name);
    *out = NULL;
    const json_t *value = json_object_get (obj, name);
    if (!value || json_is_null (value)) {
        if (required)
            return s_fail (check, name, path, "is required");
        return 0;
    }
    if (!json_is_string (value))
        return s_fail (check, name, path, "must be a string");
    const char *s = json_string_value (value);
    if (!*s) {
        if (required)
            return s_fail (check, name, path, "must not be empty");
        return 0;
    }
    if (json_string_length (value) != strlen (s) || s_has_control (s))
        return s_fail (check, name, path, "must not contain control characters");
    if (s_utf8_length (s) > max)
        return s_fail (check, name, path, "must be at most %zu characters", max);
    if (required && s_is_blank (s))
        return s_fail (check, name, path, "must not be blank");
    switch (kind) {
        case S_DATE:
            if (!record_date_is_valid (s))
                return s_fail (check, name, path, "must be a real date YYYY-MM-DD");
            if (strcmp (s, RECORD_MIN_DATE) < 0)
                return s_fail (check, name, path, "must not be before " RECORD_MIN_DATE);
            if (check->today [0] && strcmp (s, check->today) > 0)
                return s_fail (check, name, path, "must not be in the future");
            break;
        case S_COUNTRY:
            if (!country_is_valid (s))
                return s_fail (check, name, path, "must be an ISO 3166-1 alpha-2 country code");
            break;
        case S_EMAIL:
            if (!s_email_ok (s))
                return s_fail (check, name, path, "must be an email address with exactly one '@'");
            break;
        case S_PHONE:
            if (!s_phone_ok (s))
                return s_fail (check, name, path, "must be a phone number (digits, spaces, + - ( ) .)");
            break;
        case S_TEXT:
            break;
    }
    *out = s;
    return 0;
}

/* An optional member that must be an object when present: *out is NULL when absent or null. */
static int
s_object (s_check_t *check, const json_t *obj, const char *prefix, const char *name,
          int required, const json_t **out)
{
    char path [128];
    s_path (path, sizeof path, prefix, name);
    *out = NULL;
    const json_t *value = json_object_get (obj, name);
    if (!value || json_is_null (value)) {
        if (required)
            return s_fail (check, name, path, "is required");
        return 0;
    }
    if (!json_is_object (value))
        return s_fail (check, name, path, "must be an object");
    *out = value;
    return 0;
}

/* An optional array member of at most max entries: *out NULL when absent or null. */
static int
s_array (s_check_t *check, const json_t *obj, const char *name, size_t max, const json_t **out)
{
    *out = NULL;
    const json_t *value = json_object_get (obj, name);
    if (!value || json_is_null (value))
        return 0;
    if (!json_is_array (value))
        return s_fail (check, name, name, "must be an array");
    if (json_array_size (value) > max)
        return s_fail (check, name, name, "must have at most %zu entries", max);
    *out = value;
    return 0;
}

/* An address: required for a company (registered_address), optional for a person;
 * when present, street, city and country are required (the schema's address). */
static int
s_address (s_check_t *check, const json_t *obj, const char *prefix, const char *name,
           int required, int *present, record_address_t *address)
{
    const json_t *value;
    memset (address, 0, sizeof (*address));
    *present = 0;
    if (s_object (check, obj, prefix, name, required, &value))
        return -2;
    if (!value)
        return 0;
    char path [128];
    s_path (path, sizeof path, prefix, name);
    if (s_string (check, value, path, "street", 1, S_TEXT, RECORD_STREET_MAX, &address->street)
    ||  s_string (check, value, path, "city", 1, S_TEXT, RECORD_CITY_MAX, &address->city)
    ||  s_string (check, value, path, "postal_code", 0, S_TEXT, RECORD_POSTAL_MAX, &address->postal_code)
    ||  s_string (check, value, path, "country", 1, S_COUNTRY, RECORD_ID_MAX, &address->country))
        return -2;
    *present = 1;
    return 0;
}

/* A person of persons[] (with_role) or the person_details of a beneficial owner. */
static int
s_person (s_check_t *check, const json_t *obj, const char *prefix, int with_role, record_person_t *person)
{
    if (s_string (check, obj, prefix, "firstname", 1, S_TEXT, RECORD_NAME_MAX, &person->firstname)
    ||  s_string (check, obj, prefix, "lastname", 1, S_TEXT, RECORD_NAME_MAX, &person->lastname)
    ||  s_string (check, obj, prefix, "birthdate", 1, S_DATE, RECORD_ID_MAX, &person->birthdate))
        return -2;
    if (with_role) {
        if (s_string (check, obj, prefix, "role", 1, S_TEXT, RECORD_ID_MAX, &person->role))
            return -2;
        if (!record_role_is_valid (person->role)) {
            char path [128];
            s_path (path, sizeof path, prefix, "role");
            return s_fail (check, "role", path, "must be one of APPLICANT, CO_APPLICANT, DIRECTOR, "
                "LEGAL_REPRESENTATIVE, AUTHORISED_SIGNATORY, SHAREHOLDER, CONTACT");
        }
    }
    int has_address = 0;
    if (s_string (check, obj, prefix, "email", 0, S_EMAIL, RECORD_EMAIL_MAX, &person->email)
    ||  s_string (check, obj, prefix, "phone", 0, S_PHONE, RECORD_PHONE_MAX, &person->phone)
    ||  s_string (check, obj, prefix, "nationality", 0, S_COUNTRY, RECORD_ID_MAX, &person->nationality)
    ||  s_address (check, obj, prefix, "address", 0, &has_address, &person->address))
        return -2;
    person->has_address = has_address;
    return 0;
}

static int
s_company (s_check_t *check, const json_t *obj, record_company_t *company)
{
    const char *p = "company_profile";
    int present;
    if (s_string (check, obj, p, "registered_name", 1, S_TEXT, RECORD_COMPANY_NAME_MAX, &company->registered_name)
    ||  s_string (check, obj, p, "trading_name", 0, S_TEXT, RECORD_COMPANY_NAME_MAX, &company->trading_name)
    ||  s_string (check, obj, p, "registration_number", 1, S_TEXT, RECORD_ID_MAX, &company->registration_number)
    ||  s_string (check, obj, p, "registration_date", 1, S_DATE, RECORD_ID_MAX, &company->registration_date)
    ||  s_string (check, obj, p, "country_of_incorporation", 1, S_COUNTRY, RECORD_ID_MAX, &company->country_of_incorporation)
    ||  s_address (check, obj, p, "registered_address", 1, &present, &company->registered_address)
    ||  s_string (check, obj, p, "business_type", 0, S_TEXT, RECORD_BUSINESS_TYPE_MAX, &company->business_type)
    ||  s_string (check, obj, p, "industry_sector", 0, S_TEXT, RECORD_SECTOR_MAX, &company->industry_sector))
        return -2;
    return 0;
}

static int
s_owner (s_check_t *check, const json_t *obj, const char *prefix, record_owner_t *owner)
{
    char path [128];
    const json_t *details;
    if (s_object (check, obj, prefix, "person_details", 1, &details))
        return -2;
    s_path (path, sizeof path, prefix, "person_details");
    if (s_person (check, details, path, 0, &owner->person))
        return -2;

    s_path (path, sizeof path, prefix, "ownership_percentage");
    const json_t *pct = json_object_get (obj, "ownership_percentage");
    if (!pct || json_is_null (pct))
        return s_fail (check, "ownership_percentage", path, "is required");
    if (!json_is_number (pct))
        return s_fail (check, "ownership_percentage", path, "must be a number");
    owner->ownership_percentage = json_number_value (pct);
    owner->ownership_is_integer = json_is_integer (pct);
    if (!isfinite (owner->ownership_percentage)
    ||  owner->ownership_percentage < 0 || owner->ownership_percentage > 100)
        return s_fail (check, "ownership_percentage", path, "must be between 0 and 100");

    s_path (path, sizeof path, prefix, "types_of_control");
    const json_t *controls = json_object_get (obj, "types_of_control");
    if (controls && !json_is_null (controls)) {
        if (!json_is_array (controls))
            return s_fail (check, "types_of_control", path, "must be an array");
        if (json_array_size (controls) > RECORD_MAX_CONTROLS)
            return s_fail (check, "types_of_control", path, "must have at most %d entries", RECORD_MAX_CONTROLS);
        for (size_t i = 0; i < json_array_size (controls); i++) {
            const char *name = json_string_value (json_array_get (controls, i));
            char item [160];
            snprintf (item, sizeof item, "%s[%zu]", path, i);
            if (!record_control_is_valid (name))
                return s_fail (check, "types_of_control", item, "must be one of SHARES, VOTING_RIGHTS, "
                    "APPOINT_DIRECTORS, SIGNIFICANT_INFLUENCE, TRUST_CONTROL, OTHER");
            owner->types_of_control [owner->control_count++] = name;
        }
    }

    s_path (path, sizeof path, prefix, "is_ubo");
    const json_t *ubo = json_object_get (obj, "is_ubo");
    if (!ubo || json_is_null (ubo))
        return s_fail (check, "is_ubo", path, "is required");
    if (!json_is_boolean (ubo))
        return s_fail (check, "is_ubo", path, "must be true or false");
    owner->is_ubo = json_is_true (ubo);
    return 0;
}

static int
s_case_version (s_check_t *check, const json_t *root, record_t *self)
{
    const json_t *value = json_object_get (root, "case_version");
    if (!value || json_is_null (value))
        return s_fail (check, "case_version", "case_version", "is required");
    if (json_is_integer (value)) {
        if (json_integer_value (value) < 1)
            return s_fail (check, "case_version", "case_version", "must be a positive integer");
        self->case_version_is_integer = 1;
        self->case_version_integer = (int64_t) json_integer_value (value);
        return 0;
    }
    if (!json_is_string (value))
        return s_fail (check, "case_version", "case_version", "must be a positive integer or a non-empty string");
    return s_string (check, root, "", "case_version", 1, S_TEXT, RECORD_VERSION_MAX, &self->case_version_string);
}

/* Validates root into self; 0, -2 (check->err filled) or -1 (out of memory). */
static int
s_validate (s_check_t *check, const json_t *root, record_t *self)
{
    if (!json_is_object (root))
        return s_fail (check, "body", "", "body must be a JSON object");
    if (s_string (check, root, "", "client_id", 1, S_TEXT, RECORD_ID_MAX, &self->client_id)
    ||  s_string (check, root, "", "case_type", 1, S_TEXT, RECORD_ID_MAX, &self->case_type)
    ||  s_case_version (check, root, self)
    ||  s_string (check, root, "", "traitement_type", 1, S_TEXT, RECORD_ID_MAX, &self->traitement_type))
        return -2;
    if (strcmp (self->traitement_type, "KYC") == 0)
        self->is_kyb = 0;
    else
    if (strcmp (self->traitement_type, "KYB") == 0)
        self->is_kyb = 1;
    else
        return s_fail (check, "traitement_type", "traitement_type", "must be KYC or KYB");

    if (self->is_kyb) {
        const json_t *company;
        if (s_object (check, root, "", "company_profile", 1, &company)
        ||  s_company (check, company, &self->company))
            return -2;
        self->has_company = 1;
    }

    const json_t *persons, *owners;
    if (s_array (check, root, "persons", RECORD_MAX_PERSONS, &persons)
    ||  s_array (check, root, "beneficial_owners", RECORD_MAX_OWNERS, &owners))
        return -2;
    size_t person_count = persons ? json_array_size (persons) : 0;
    size_t owner_count = owners ? json_array_size (owners) : 0;
    if (!self->is_kyb && person_count == 0)
        return s_fail (check, "persons", "persons", "must list at least one person for KYC");
    if (!self->is_kyb && owner_count > 0)
        return s_fail (check, "beneficial_owners", "beneficial_owners", "are only allowed for KYB");

    if (person_count) {
        self->persons = calloc (person_count, sizeof (record_person_t));
        if (!self->persons)
            return -1;
        for (size_t i = 0; i < person_count; i++) {
            char prefix [32];
            snprintf (prefix, sizeof prefix, "persons[%zu]", i);
            const json_t *item = json_array_get (persons, i);
            if (!json_is_object (item))
                return s_fail (check, "persons", prefix, "must be an object");
            if (s_person (check, item, prefix, 1, &self->persons [i]))
                return -2;
            self->person_count = i + 1;
        }
    }
    if (owner_count) {
        self->owners = calloc (owner_count, sizeof (record_owner_t));
        if (!self->owners)
            return -1;
        double total = 0;
        for (size_t i = 0; i < owner_count; i++) {
            char prefix [40];
            snprintf (prefix, sizeof prefix, "beneficial_owners[%zu]", i);
            const json_t *item = json_array_get (owners, i);
            if (!json_is_object (item))
                return s_fail (check, "beneficial_owners", prefix, "must be an object");
            if (s_owner (check, item, prefix, &self->owners [i]))
                return -2;
            self->owner_count = i + 1;
            total += self->owners [i].ownership_percentage;
        }
        if (total > 100 + S_PERCENT_EPSILON)
            return s_fail (check, "ownership_percentage", "beneficial_owners",
                "ownership percentages must sum to at most 100");
    }
    return 0;
}

int
record_from_json (json_t *json, const char *today, record_t **record_p, record_error_t *err)
{
    record_error_t scratch;
    if (!err)
        err = &scratch;
    memset (err, 0, sizeof (*err));
    *record_p = NULL;
    record_t *self = calloc (1, sizeof (record_t));
    if (!self) {
        snprintf (err->error, sizeof err->error, "internal");
        snprintf (err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    self->json = json_incref (json);
    s_check_t check = { .err = err };
    if (today && strlen (today) >= 10) {
        memcpy (check.today, today, 10);
        check.today [10] = 0;
    }
    int rc = s_validate (&check, json, self);
    if (rc) {
        if (rc == -1) {
            snprintf (err->error, sizeof err->error, "internal");
            snprintf (err->detail, sizeof err->detail, "out of memory");
        }
        record_destroy (&self);
        return rc;
    }
    *record_p = self;
    return 0;
}

int
record_parse (const char *data, size_t size, const char *today, record_t **record_p, record_error_t *err)
{
    record_error_t scratch;
    if (!err)
        err = &scratch;
    memset (err, 0, sizeof (*err));
    *record_p = NULL;
    s_check_t check = { .err = err };
    if (!data || size == 0)
        return s_fail (&check, "body", "", "body is empty");
    if (size > RECORD_BODY_MAX)
        return s_fail (&check, "body", "", "body is larger than %d bytes", RECORD_BODY_MAX);
    json_error_t error;
    /* Duplicate keys would let two readers see two different records: refuse them. */
    json_t *json = json_scan_loadb (data, size, JSON_REJECT_DUPLICATES, &error);
    if (!json)
        /* error.text may quote the input, which may be personal: report the place only. */
        return s_fail (&check, "body", "", "body is not valid JSON (line %d, column %d)",
                       error.line, error.column);
    int rc = record_from_json (json, today, record_p, err);
    json_decref (json);
    return rc;
}

void
record_destroy (record_t **self_p)
{
    if (self_p && *self_p) {
        record_t *self = *self_p;
        free (self->persons);
        free (self->owners);
        json_decref (self->json);
        free (self);
        *self_p = NULL;
    }
}
