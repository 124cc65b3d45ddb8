/* readmodel_reader_backend — the table of operations behind gw_reader_t: one
 * implementation per read-model backend, each in its own file
 * (readmodel_reader_sqlite.c, readmodel_reader_mongo.c). A backend only finds the
 * stored JSON and appends it; readmodel_reader.c frames lists and cursors. */
#ifndef DOSSIER_GW_READMODEL_READER_BACKEND_H
#define DOSSIER_GW_READMODEL_READER_BACKEND_H

#include <stdint.h>

#include "config.h"
#include "readmodel_reader.h"

/* Keyed objects: the stored JSON of one row. */
typedef enum {
    GW_RM_CASE = 0,             /* a case's full_json */
    GW_RM_COMPANY,
    GW_RM_PERSON,
    GW_RM_DOCUMENT
} gw_rm_object_t;

/* Rows under a parent, in order. */
typedef enum {
    GW_RM_CASE_EVENTS = 0,      /* case_events of a case, by version */
    GW_RM_CASE_DOCUMENTS,       /* documents of a case, by seq */
    GW_RM_COMPANY_OWNERS        /* beneficial owners of a company, by seq */
} gw_rm_list_t;

/* Every operation answers GW_READER_OK, GW_READER_NOT_FOUND or GW_READER_UNAVAILABLE
 * and only ever appends to out (the caller resets it). */
typedef struct {
    const char *name;
    void (*destroy) (void *impl);
    /* 1 when reads can be answered now, else 0 (reason says why, static text). */
    int  (*ready) (void *impl);
    const char *(*reason) (void *impl);
    int  (*object) (void *impl, gw_rm_object_t which, const char *id, gw_buf_t *out);
    /* Existence of a case (which = GW_RM_CASE) or a company (GW_RM_COMPANY). */
    int  (*exists) (void *impl, gw_rm_object_t which, const char *id);
    int  (*document_case) (void *impl, const char *document_id, char case_id [GW_ID_MAX]);
    /* The stored JSON of every row, comma separated. */
    int  (*rows) (void *impl, gw_rm_list_t which, const char *id, gw_buf_t *out);
    /* Case summaries with seq > query->after_seq matching the filters, by seq, at most
     * limit of them, comma separated; *last_seq = the seq of the last one appended,
     * *more = 1 when at least one more row matches. */
    int  (*cases) (void *impl, const gw_cases_query_t *query, int limit, gw_buf_t *out,
                   int64_t *last_seq, int *more);
    /* Optional (NULL: the backend cannot tell when its data changes). Starts, unless
     * one is open, a read snapshot every query shares until release; returns the
     * generation of the data it sees, 0 when no snapshot could be had. */
    uint64_t (*snapshot) (void *impl);
    void (*release) (void *impl);
} gw_reader_ops_t;

/* SQLite: the file at path, opened read-only and lazily. NULL only on OOM. */
extern const gw_reader_ops_t gw_reader_sqlite_ops;
void *gw_reader_sqlite_new (const char *path);

/* MongoDB: the read-model collections (common/readmodel_indexes.h) of the configured
 * database, through one single-threaded client. NULL on a configuration that cannot
 * work (bad URI or database name; logged). */
extern const gw_reader_ops_t gw_reader_mongo_ops;
void *gw_reader_mongo_new (config_t *config);

#endif
