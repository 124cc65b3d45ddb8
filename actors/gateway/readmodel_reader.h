/* readmodel_reader — the gateway's read-only view of the read models: the SQLite file
 * <data_dir>/readmodels.db (schemas/readmodels.sql) or the MongoDB collections
 * (schemas/readmodels.md), behind a backend table (readmodel_reader_backend.h).
 * Answers are the stored JSON bytes, copied or concatenated into a gw_buf_t, never
 * re-serialised: both backends give the same bytes. One reader per thread. */
#ifndef DOSSIER_GW_READMODEL_READER_H
#define DOSSIER_GW_READMODEL_READER_H

#include "config.h"
#include "http_reply.h"
#include "http_routes.h"

#include <stdint.h>

typedef struct _gw_reader_t gw_reader_t;

/* Outcomes of every query below. */
#define GW_READER_OK           0
#define GW_READER_UNAVAILABLE -1    /* database missing, not yet initialised, down or failing: 503 */
#define GW_READER_NOT_FOUND    1    /* no such id: 404 */

/* Creates a reader for the database at path (copied). Does not need the file to
 * exist: every query first (re)opens it if needed, and a file replaced under the
 * reader (a rebuild) is noticed within a second. Returns NULL only on OOM. */
gw_reader_t *gw_reader_new (const char *path);

/* Creates the reader config "store" names: "sqlite" (default) reads
 * <data_dir>/readmodels.db as above; "mongodb" reads the collections of
 * "mongodb_database" at "mongodb_uri" through one client with short timeouts, and a
 * probe thread pings the database twice a second with a client of its own: once a
 * read or a ping failed, reads fail at once until a later ping succeeds, so an
 * outage costs the caller one read's timeout (2 s at most), not one per second.
 * config is borrowed. Returns NULL on OOM, an unknown store or a MongoDB setting
 * that cannot work (logged). */
gw_reader_t *gw_reader_new_config (config_t *config);
void gw_reader_destroy (gw_reader_t **self_p);

/* "sqlite" or "mongodb". */
const char *gw_reader_backend (gw_reader_t *self);

/* SQLite: opens the database if it is not open; 1 when it is open and has the
 * read-model tables. MongoDB: the probe's verdict (1 when its last ping, or the
 * last read, succeeded after the last failure), without waiting on the network; only
 * a call before anything is known pings itself. Else 0, and gw_reader_reason says
 * why (static text, for /ready). */
int gw_reader_ready (gw_reader_t *self);
const char *gw_reader_reason (gw_reader_t *self);

/* Starts, unless one is already open, a read snapshot: every query until
 * gw_reader_release sees the same data, and the returned generation names that
 * data (1 or more; equal generations, equal answers; it only moves forward). 0 when
 * no snapshot can be had now or the backend cannot tell when its data changes
 * (MongoDB): then nothing may be cached. SQLite: one read transaction and a look
 * at "PRAGMA data_version", instead of one transaction per query. */
uint64_t gw_reader_snapshot (gw_reader_t *self);
/* Ends the snapshot, if any (the event loop does it once per turn, so that no
 * answer is older than the turn that gives it and the log's writer can checkpoint). */
void gw_reader_release (gw_reader_t *self);

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
