/* readmodel_reader — the gateway's read-only view of <data_dir>/readmodels.db
 * (schemas/readmodels.sql). Answers are the stored JSON bytes, copied or
 * concatenated into a gw_buf_t, never re-serialised. One reader per thread. */
#ifndef DOSSIER_GW_READMODEL_READER_H
#define DOSSIER_GW_READMODEL_READER_H

#include "http_reply.h"
#include "http_routes.h"

typedef struct _gw_reader_t gw_reader_t;

/* Outcomes of every query below. */
#define GW_READER_OK           0
#define GW_READER_UNAVAILABLE -1    /* database missing, not yet initialised, or failing: 503 */
#define GW_READER_NOT_FOUND    1    /* no such id: 404 */

/* Creates a reader for the database at path (copied). Does not need the file to
 * exist: every query first (re)opens it if needed, and a file replaced under the
 * reader (a rebuild) is noticed within a second. Returns NULL only on OOM. */
gw_reader_t *gw_reader_new (const char *path);
void gw_reader_destroy (gw_reader_t **self_p);

/* Opens the database if it is not open. Returns 1 when it is open and has the
 * read-model tables, else 0. */
int gw_reader_ready (gw_reader_t *self);

/* Single objects: out receives the stored JSON (out is reset first). */
int gw_reader_case (gw_reader_t *self, const char *id, gw_buf_t *out);
int gw_reader_company (gw_reader_t *self, const char *id, gw_buf_t *out);
int gw_reader_person (gw_reader_t *self, const char *id, gw_buf_t *out);
int gw_reader_document (gw_reader_t *self, const char *id, gw_buf_t *out);

/* Existence of a case (GW_READER_OK or GW_READER_NOT_FOUND). */
int gw_reader_case_exists (gw_reader_t *self, const char *id);
/* The case a document belongs to, copied into case_id. */
int gw_reader_document_case (gw_reader_t *self, const char *document_id, char case_id [GW_ID_MAX]);

/* Lists (out is reset first):
 *   cases:           {"items":[summary...],"next_cursor":"..."|null}, ordered by seq
 *   case events:     {"case_id":"...","events":[...]}, ordered by version
 *   case documents:  {"items":[...]}, ordered by seq
 *   company owners:  {"items":[...]}, ordered by seq
 * A list under an unknown case or company is GW_READER_NOT_FOUND. */
int gw_reader_cases (gw_reader_t *self, const gw_cases_query_t *query, gw_buf_t *out);
int gw_reader_case_events (gw_reader_t *self, const char *case_id, gw_buf_t *out);
int gw_reader_case_documents (gw_reader_t *self, const char *case_id, gw_buf_t *out);
int gw_reader_company_owners (gw_reader_t *self, const char *company_id, gw_buf_t *out);

#endif
