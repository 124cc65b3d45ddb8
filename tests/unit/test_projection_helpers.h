/* test_projection_helpers — hand-built event logs and a table dump shared by the
 * projection and projector tests (header only: each test binary includes it once). */
#ifndef TEST_PROJECTION_HELPERS_H
#define TEST_PROJECTION_HELPERS_H

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"

#define T_MAX_EVENTS 64

/* A little log: events get consecutive positions, per-stream versions, fixed times. */
typedef struct {
    event_t events [T_MAX_EVENTS];
    char data [T_MAX_EVENTS][1024];
    size_t count;
} t_log_t;

static inline event_t *
t_add (t_log_t *log, const char *stream, const char *type, const char *json)
{
    if (log->count >= T_MAX_EVENTS)
        abort ();
    size_t i = log->count++;
    event_t *ev = &log->events [i];
    memset (ev, 0, sizeof *ev);
    ev->position = (int64_t) i + 1;
    int64_t version = 1;
    for (size_t j = 0; j < i; j++)
        if (strcmp (log->events [j].stream, stream) == 0)
            version++;
    ev->version = version;
    snprintf (ev->stream, sizeof ev->stream, "%s", stream);
    snprintf (ev->id, sizeof ev->id, "ev-%zu", i + 1);
    snprintf (ev->type, sizeof ev->type, "%s", type);
    ev->timestamp_us = 1767261600000000LL + (int64_t) i * 1500;     /* 2026-01-01T10:00:00Z */
    snprintf (ev->command_id, sizeof ev->command_id, "cmd-%s", stream);
    snprintf (ev->correlation_id, sizeof ev->correlation_id, "corr-%s", stream);
    snprintf (log->data [i], sizeof log->data [i], "%s", json);
    ev->data = log->data [i];
    ev->data_size = strlen (log->data [i]);
    return ev;
}

#define T_KYC "11111111-1111-5111-8111-111111111111"
#define T_KYB "22222222-2222-5222-8222-222222222222"

/* A KYC case as the handler writes it: 6 events, then 6 document/case changes. */
static inline void
t_kyc_case (t_log_t *log)
{
    t_add (log, T_KYC, "CaseCreated", "{\"case_id\":\"" T_KYC "\",\"client_id\":\"CLI-1\",\"case_type\":\"STANDARD\","
           "\"case_version\":1,\"traitement_type\":\"KYC\",\"status\":\"OPEN\",\"created_at\":\"2026-01-01T09:59:59.990Z\"}");
    t_add (log, T_KYC, "PersonLinked", "{\"case_id\":\"" T_KYC "\",\"person_id\":\"P1\",\"company_id\":null,"
           "\"role\":\"APPLICANT\",\"person\":{\"firstname\":\"Camille\",\"lastname\":\"Durand\","
           "\"birthdate\":\"1988-04-17\",\"email\":\"c@example.org\",\"nationality\":\"FR\"}}");
    t_add (log, T_KYC, "DocumentRequirementDetermined", "{\"case_id\":\"" T_KYC "\",\"document_id\":\"D1\","
           "\"document_type\":\"IDENTITY_DOCUMENT\",\"subject_type\":\"person\",\"subject_id\":\"P1\","
           "\"rule_id\":\"DOC-KYC-ID\",\"status\":\"AWAITING_UPLOAD\"}");
    t_add (log, T_KYC, "DocumentRequirementDetermined", "{\"case_id\":\"" T_KYC "\",\"document_id\":\"D2\","
           "\"document_type\":\"PROOF_OF_ADDRESS\",\"subject_type\":\"person\",\"subject_id\":\"P1\","
           "\"rule_id\":\"DOC-KYC-POA\",\"status\":\"AWAITING_UPLOAD\"}");
    t_add (log, T_KYC, "CaseStatusChanged", "{\"case_id\":\"" T_KYC "\",\"from\":\"OPEN\",\"to\":\"AWAITING_DOCUMENTS\","
           "\"reason\":\"documents required\",\"changed_at\":\"2026-01-01T09:59:59.990Z\"}");
    t_add (log, T_KYC, "NotificationRequired", "{\"notification_id\":\"N1\",\"case_id\":\"" T_KYC "\","
           "\"trigger\":\"CASE_CREATED\",\"rule_id\":\"NTF-KYC-CREATED\",\"rules_version\":\"v1\","
           "\"notification_type\":\"EMAIL\",\"template_id\":\"kyc_case_opened\",\"language_code\":\"en\","
           "\"recipient_details\":{\"case_id\":\"" T_KYC "\",\"client_id\":\"CLI-1\"},\"context_data\":{\"n\":1.5}}");
}

static inline void
t_kyc_documents (t_log_t *log)
{
    t_add (log, T_KYC, "DocumentStatusChanged", "{\"case_id\":\"" T_KYC "\",\"document_id\":\"D1\","
           "\"from\":\"AWAITING_UPLOAD\",\"to\":\"UPLOADED\",\"reason\":null,\"changed_at\":\"2026-01-02T10:00:00.000Z\"}");
    t_add (log, T_KYC, "DocumentStatusChanged", "{\"case_id\":\"" T_KYC "\",\"document_id\":\"D2\","
           "\"from\":\"AWAITING_UPLOAD\",\"to\":\"UPLOADED\",\"reason\":null,\"changed_at\":\"2026-01-02T10:00:01.000Z\"}");
    t_add (log, T_KYC, "CaseStatusChanged", "{\"case_id\":\"" T_KYC "\",\"from\":\"AWAITING_DOCUMENTS\","
           "\"to\":\"IN_REVIEW\",\"reason\":\"all received\",\"changed_at\":\"2026-01-02T10:00:01.000Z\"}");
    t_add (log, T_KYC, "DocumentStatusChanged", "{\"case_id\":\"" T_KYC "\",\"document_id\":\"D1\","
           "\"from\":\"UPLOADED\",\"to\":\"REJECTED\",\"reason\":\"blurred scan\",\"changed_at\":\"2026-01-03T10:00:00.000Z\"}");
    t_add (log, T_KYC, "DocumentStatusChanged", "{\"case_id\":\"" T_KYC "\",\"document_id\":\"D1\","
           "\"from\":\"REJECTED\",\"to\":\"AWAITING_UPLOAD\",\"reason\":\"upload again\",\"changed_at\":\"2026-01-03T10:00:00.000Z\"}");
    t_add (log, T_KYC, "CaseStatusChanged", "{\"case_id\":\"" T_KYC "\",\"from\":\"IN_REVIEW\","
           "\"to\":\"AWAITING_DOCUMENTS\",\"reason\":\"document rejected\",\"changed_at\":\"2026-01-03T10:00:00.000Z\"}");
}

static inline void
t_kyb_case (t_log_t *log)
{
    t_add (log, T_KYB, "CaseCreated", "{\"case_id\":\"" T_KYB "\",\"client_id\":\"CLI-2\",\"case_type\":\"ENHANCED\","
           "\"case_version\":2,\"traitement_type\":\"KYB\",\"status\":\"OPEN\",\"created_at\":\"2026-01-04T08:00:00.000Z\"}");
    t_add (log, T_KYB, "CompanyProfileCreated", "{\"case_id\":\"" T_KYB "\",\"company_id\":\"C1\","
           "\"registered_name\":\"Nordlicht Logistik GmbH\",\"trading_name\":\"Nordlicht\",\"registration_number\":\"HRB 123456\","
           "\"registration_date\":\"2011-09-01\",\"country_of_incorporation\":\"DE\",\"registered_address\":{\"street\":"
           "\"Hafenstrasse 8\",\"city\":\"Hamburg\",\"postal_code\":\"20457\",\"country\":\"DE\"},"
           "\"business_type\":\"LIMITED_COMPANY\",\"industry_sector\":\"Logistics\"}");
    t_add (log, T_KYB, "PersonLinked", "{\"case_id\":\"" T_KYB "\",\"person_id\":\"P2\",\"company_id\":\"C1\","
           "\"role\":\"DIRECTOR\",\"person\":{\"firstname\":\"Jonas\",\"lastname\":\"Becker\",\"birthdate\":\"1975-02-03\"}}");
    t_add (log, T_KYB, "PersonLinked", "{\"case_id\":\"" T_KYB "\",\"person_id\":\"P3\",\"company_id\":\"C1\","
           "\"role\":\"AUTHORISED_SIGNATORY\",\"person\":{\"firstname\":\"Lea\",\"lastname\":\"H\\u00f6ffmann\",\"birthdate\":\"1983-11-21\"}}");
    t_add (log, T_KYB, "BeneficialOwnerAdded", "{\"case_id\":\"" T_KYB "\",\"company_id\":\"C1\","
           "\"beneficial_owner_id\":\"B1\",\"person_id\":\"P2\",\"ownership_percentage\":60,"
           "\"types_of_control\":[\"SHARES\",\"VOTING_RIGHTS\"],\"is_ubo\":true,\"person\":{\"firstname\":\"Jonas\"}}");
    t_add (log, T_KYB, "BeneficialOwnerAdded", "{\"case_id\":\"" T_KYB "\",\"company_id\":\"C1\","
           "\"beneficial_owner_id\":\"B2\",\"person_id\":\"P4\",\"ownership_percentage\":12.5,"
           "\"types_of_control\":[\"SHARES\"],\"is_ubo\":false,\"person\":{\"firstname\":\"Pieter\"}}");
    t_add (log, T_KYB, "DocumentRequirementDetermined", "{\"case_id\":\"" T_KYB "\",\"document_id\":\"D3\","
           "\"document_type\":\"CERTIFICATE_OF_INCORPORATION\",\"subject_type\":\"company\",\"subject_id\":\"C1\","
           "\"rule_id\":\"DOC-KYB-COI\",\"status\":\"AWAITING_UPLOAD\"}");
}

/* Payloads the handler would never write but the log may hold: spaces, escapes
 * jansson writes otherwise, reals in other spellings, duplicate keys. */
static inline void
t_odd_log (t_log_t *log)
{
    t_add (log, T_KYB, "CaseCreated", " { \"case_id\" : \"" T_KYB "\", \"client_id\":\"C\\u00e9\\/1\","
           "\"case_type\":\"STANDARD\", \"case_version\": 1.0, \"traitement_type\":\"KYB\",\"status\":\"OPEN\","
           "\"created_at\":\"2026-01-01T00:00:00.000Z\"}\n");
    t_add (log, T_KYB, "CompanyProfileCreated", "{\"case_id\":\"" T_KYB "\",\"company_id\":\"C1\","
           "\"registered_name\":\"A\",\"registered_name\":\"B\\tC\",\"capital\":1E2,\"zero\":-0,\"tenth\":0.1,"
           "\"tiny\":1e-7,\"big\":123456789012345678,\"path\":\"\\/x\\u001f\\u001F\",\"list\":[ 1 , 2.50 , {\"k\" : true} ],"
           "\"utf8\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"pair\":\"\\ud83d\\ude00\"}");
    t_add (log, T_KYB, "PersonLinked", "{\"case_id\":\"" T_KYB "\",\"person_id\":\"P1\",\"company_id\":\"C1\","
           "\"role\":\"DIRECTOR\",\"person\":{\"firstname\":\"Jo\",\"\\u0065mail\":\"j@x.org\",\"email\":\"dup\","
           "\"role\":\"ignored\",\"lastname\":\"L\\u00F6w\",\"n\":[],\"o\":{}}}");
    t_add (log, T_KYB, "BeneficialOwnerAdded", "{\"case_id\":\"" T_KYB "\",\"company_id\":\"C1\","
           "\"beneficial_owner_id\":\"B1\",\"person_id\":\"P1\",\"ownership_percentage\":33.33,"
           "\"types_of_control\":[ \"SHARES\" ],\"is_ubo\":true,\"person\":{\"firstname\":\"Jo\",\"x\":1.5e3}}");
    t_add (log, T_KYB, "DocumentRequirementDetermined", "{ \"case_id\":\"" T_KYB "\",\"document_id\":\"D1\","
           "\"document_type\":\"COI\",\"subject_type\":\"company\",\"subject_id\":\"C1\",\"rule_id\":null,"
           "\"status\":\"AWAITING_UPLOAD\"}");
    t_add (log, T_KYB, "DocumentStatusChanged", "{\"case_id\":\"" T_KYB "\",\"document_id\":\"D1\","
           "\"from\":\"AWAITING_UPLOAD\",\"to\":\"UP\\u004cOADED\",\"reason\":2.50,\"changed_at\":\"2026-01-02T00:00:00.000Z\"}");
    t_add (log, T_KYB, "DocumentStatusChanged", "{\"case_id\":\"" T_KYB "\",\"document_id\":\"D1\","
           "\"from\":\"UPLOADED\",\"to\":\"odd \\\"one\\\"\",\"reason\":{\"a\":[1,{}]},\"changed_at\":\"2026-01-03T00:00:00.000Z\"}");
    t_add (log, T_KYB, "CaseStatusChanged", "{\"to\" : \"IN_REVIEW\", \"to\":\"AWAITING_DOCUMENTS\"}");
    t_add (log, T_KYB, "CompanyProfileCreated", "{\"company_id\":\"C2\",\"n\":1e400}");
}

/* Every row of every table as text, ordered: equal dumps mean equal read models. */
static inline char *
t_dump (const char *path)
{
    sqlite3 *db;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        abort ();
    size_t cap = 1 << 16, len = 0;
    char *out = malloc (cap);
    out [0] = 0;
    const char *tables [] = { "checkpoint", "cases", "companies", "persons", "beneficial_owners",
                              "documents", "case_events", "projector_errors" };
    for (size_t t = 0; t < sizeof tables / sizeof tables [0]; t++) {
        char sql [128];
        snprintf (sql, sizeof sql, "SELECT * FROM %s ORDER BY 1, 2", tables [t]);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) != SQLITE_OK)
            abort ();
        while (sqlite3_step (st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count (st); c++) {
                const char *v = (const char *) sqlite3_column_text (st, c);
                size_t need = len + (v ? strlen (v) : 4) + strlen (tables [t]) + 8;
                while (need >= cap) {     /* a test helper: out of memory ends the test */
                    char *bigger = realloc (out, cap * 2);
                    if (!bigger)
                        abort ();
                    out = bigger;
                    cap *= 2;
                }
                len += (size_t) sprintf (out + len, "%s%s|", c ? "" : tables [t], v ? v : "NULL");
            }
            out [len++] = '\n';
            out [len] = 0;
        }
        sqlite3_finalize (st);
    }
    sqlite3_close (db);
    return out;
}

/* A fresh temporary directory and a database path inside it. */
typedef struct {
    char dir [64];
    char path [128];
} t_tmp_t;

static inline void
t_tmp_new (t_tmp_t *t, const char *name)
{
    snprintf (t->dir, sizeof t->dir, "/tmp/dos-projXXXXXX");
    if (!mkdtemp (t->dir))
        abort ();
    snprintf (t->path, sizeof t->path, "%s/%s", t->dir, name);
}

/* Removes a directory tree of plain files (databases, ipc sockets). */
static inline void
t_rmtree (const char *path)
{
    DIR *dir = opendir (path);
    if (!dir)
        abort ();
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
            continue;
        char file [1024];
        if (snprintf (file, sizeof file, "%s/%s", path, entry->d_name) >= (int) sizeof file)
            abort ();
        if (entry->d_type == DT_DIR)
            t_rmtree (file);
        else
            unlink (file);
    }
    closedir (dir);
    if (rmdir (path) != 0)
        abort ();
}

static inline void
t_tmp_destroy (t_tmp_t *t)
{
    t_rmtree (t->dir);
}

#endif
