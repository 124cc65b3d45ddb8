/* record — the client record that upstream onboarding systems publish (KYC: persons;
 * KYB: a company profile, related persons and beneficial owners), parsed with jansson
 * and validated into a read-only C view. The first rule broken is reported as an
 * error class, a field path and a message that never repeats personal data. */
#ifndef DOSSIER_RECORD_H
#define DOSSIER_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_BODY_MAX      (1024 * 1024)  /* bytes of JSON accepted by record_parse */
#define RECORD_MAX_PERSONS   50
#define RECORD_MAX_OWNERS    50
#define RECORD_MAX_CONTROLS  10
#define RECORD_NAME_MAX      100            /* characters (code points): person names, city */
#define RECORD_COMPANY_NAME_MAX 200         /* registered_name, trading_name */
#define RECORD_BUSINESS_TYPE_MAX 64
#define RECORD_SECTOR_MAX    128
#define RECORD_VERSION_MAX   32             /* case_version as a string */
#define RECORD_ID_MAX        64
#define RECORD_EMAIL_MAX     254
#define RECORD_PHONE_MAX     32
#define RECORD_STREET_MAX    200
#define RECORD_CITY_MAX      100
#define RECORD_POSTAL_MAX    20
#define RECORD_MIN_DATE      "1900-01-01"

typedef struct {
    char error[64];     /* "validation.<field>", e.g. "validation.ownership_percentage" */
    char field[128];    /* path, e.g. "beneficial_owners[1].ownership_percentage"; "" for the body */
    char detail[256];   /* human text, without the offending value */
} record_error_t;

/* The contract is schemas/client_record.schema.json plus its x-dossier-rules.
 * Every string below is borrowed from the parsed document the record owns: valid until
 * record_destroy. Optional fields that are absent, null or "" are NULL. */
typedef struct {
    const char *street, *city, *postal_code, *country;
} record_address_t;

typedef struct {
    const char *firstname, *lastname, *birthdate;
    const char *role;           /* persons[]: from the role enum (required); owners: NULL */
    const char *email, *phone, *nationality;
    int has_address;
    record_address_t address;
} record_person_t;

typedef struct {
    record_person_t person;     /* from person_details */
    double ownership_percentage;
    int ownership_is_integer;   /* the input was a JSON integer: write it back as one */
    const char *types_of_control [RECORD_MAX_CONTROLS];
    size_t control_count;
    int is_ubo;
} record_owner_t;

typedef struct {
    const char *registered_name, *trading_name, *registration_number, *registration_date;
    const char *country_of_incorporation, *business_type, *industry_sector;
    record_address_t registered_address;
} record_company_t;

/* A validated record. Transparent on purpose: it is a read-only value that the domain
 * reads field by field; only record_parse/record_from_json build one. */
typedef struct {
    const char *client_id, *case_type, *traitement_type;    /* traitement_type "KYC" | "KYB" */
    int is_kyb;
    int case_version_is_integer;        /* case_version: a positive integer ... */
    int64_t case_version_integer;
    const char *case_version_string;    /* ... or a non-empty string */
    int has_company;                    /* always 1 for KYB, 0 for KYC */
    record_company_t company;
    record_person_t *persons;
    size_t person_count;
    record_owner_t *owners;
    size_t owner_count;
    json_t *json;                       /* the document everything borrows from (owned) */
} record_t;

/* Parses and validates data (JSON). today ("YYYY-MM-DD", or an RFC 3339 time whose
 * first 10 characters are the date) bounds every date; NULL skips the future check.
 * Returns 0 and *record_p (caller owns: record_destroy), -2 invalid (err filled),
 * -1 out of memory. Unknown fields are ignored. */
int record_parse (const char *data, size_t size, const char *today, record_t **record_p, record_error_t *err);

/* Same on an already parsed document; the record takes its own reference to json. */
int record_from_json (json_t *json, const char *today, record_t **record_p, record_error_t *err);

void record_destroy (record_t **self_p);

/* 1 if name is a person role of the enum (APPLICANT, CO_APPLICANT, DIRECTOR,
 * LEGAL_REPRESENTATIVE, AUTHORISED_SIGNATORY, SHAREHOLDER, CONTACT), else 0. */
int record_role_is_valid (const char *name);

/* 1 if name is a type of control (SHARES, VOTING_RIGHTS, APPOINT_DIRECTORS,
 * SIGNIFICANT_INFLUENCE, TRUST_CONTROL, OTHER), else 0. */
int record_control_is_valid (const char *name);

/* 1 if s is a real calendar date "YYYY-MM-DD" (leap years honoured), else 0. */
int record_date_is_valid (const char *s);

#endif
