/* readmodel_store — where the projector keeps its read models: one table of operations
 * per backend, each in its own file (readmodel_sqlite.c: one transaction per batch;
 * readmodel_mongo.c: guarded idempotent upserts, checkpoint written last). projection.c
 * computes every row and its JSON; a backend only stores rows and reads them back. */
#ifndef DOSSIER_READMODEL_STORE_H
#define DOSSIER_READMODEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The child rows of a case. */
typedef enum {
    RM_COMPANY = 0,
    RM_PERSON,
    RM_BENEFICIAL_OWNER,
    RM_DOCUMENT,
    RM_KIND_COUNT
} rm_kind_t;

/* One row of companies, persons, beneficial_owners or documents (schemas/readmodels.sql,
 * schemas/readmodels.md). Strings are borrowed for the duration of a call. */
typedef struct {
    rm_kind_t kind;
    const char *id;
    const char *case_id;
    const char *company_id;     /* persons (NULL when none) and beneficial owners */
    const char *status;         /* documents */
    int64_t seq;                /* position of the event that first created the row */
    int64_t updated_position;   /* position of the last event applied to it */
    const char *json;           /* the ready-to-send JSON */
    size_t json_size;
} rm_row_t;

typedef struct {
    const char *id;
    int64_t seq;
    int64_t updated_position;
    const char *client_id;
    const char *traitement_type;
    const char *status;
    const char *summary_json;
    size_t summary_size;
    const char *full_json;      /* NULL in what cases_get reports: the projector never reads it */
    size_t full_size;
} rm_case_row_t;

typedef struct {
    const char *case_id;
    int64_t case_seq;           /* the case's seq (SQLite keys the audit trail by it) */
    int64_t version;
    int64_t position;
    const char *json;
    size_t json_size;
} rm_event_row_t;

/* Read callbacks: the row is borrowed for the call. Return 0 to go on, -1 to stop
 * (the read then fails). */
typedef int (rm_case_fn) (void *arg, const rm_case_row_t *row);
typedef int (rm_row_fn) (void *arg, const rm_row_t *row);
/* A checkpoint row: its name (borrowed for the call) and position. */
typedef int (rm_checkpoint_fn) (void *arg, const char *name, int64_t position);

/* Every operation returns 0 ok, -1 failed (logged) unless it says otherwise. `impl` is
 * the backend's own state. Writes happen between begin and commit; a transactional
 * backend makes them atomic, the other one makes each write idempotent and guarded
 * by updated_position (a replay of events already stored changes nothing) and makes
 * everything before set_checkpoint durable before it writes the checkpoint. */
typedef struct {
    const char *name;
    /* 1: begin..commit is all or nothing. 0: writes are durable one by one, in order;
     * a failed batch may leave some rows written, which a replay then finds. */
    int transactional;
    /* location: a file path (sqlite), a database name (mongodb). config may be NULL
     * (defaults). Opening does not need the database to be up when the backend is
     * not transactional: load then fails until it is. Returns NULL on failure. */
    void *(*open) (const char *location, config_t *config);
    /* Optional (NULL: open is used): opens location as the target of a rebuild,
     * which nobody reads before it is complete. The backend may build it elsewhere
     * and put it in place when commit succeeded and it is closed; a target whose
     * rebuild failed is then left as it was. */
    void *(*open_rebuild) (const char *location, config_t *config);
    void  (*close) (void *impl);
    /* Ready to use: schema/indexes in place, checkpoint read into *position as
     * checkpoint_get does. */
    int   (*load) (void *impl, const char *checkpoint, int64_t *position);
    /* The checkpoint row named name (one per projector partition: partition.h); when
     * there is none, the least of every row (a partition new to the read models starts
     * where the slowest one stopped: each write is guarded by the event's position, so
     * what another partition count applied already is found and left as it is); 0
     * when there are no rows. Returns 0 when the named row exists, 1 when *position
     * is that fallback, -1 on failure. */
    int   (*checkpoint_get) (void *impl, const char *name, int64_t *position);
    /* Every checkpoint row, in any order (status: one per partition). */
    int   (*checkpoints) (void *impl, rm_checkpoint_fn *fn, void *arg);
    /* 1 when location does not exist or holds nothing but read models (so a rebuild
     * may drop them), 0 when it holds anything else, -1 when it cannot be told. */
    int   (*is_readmodel) (const char *location, config_t *config);

    int   (*begin) (void *impl);
    /* Drops every read model and recreates the empty schema (checkpoint 0). */
    int   (*clear) (void *impl);
    int   (*commit) (void *impl);
    void  (*rollback) (void *impl);

    /* Stored rows for the given ids, in any order; ids not found are not reported. */
    int   (*cases_get) (void *impl, const char *const *ids, size_t count, rm_case_fn *fn, void *arg);
    int   (*documents_get) (void *impl, const char *const *ids, size_t count, rm_row_fn *fn, void *arg);
    /* Every child row (all kinds) of the given cases, in any order; beneficial owners
     * at least those of the case's companies. fresh[i] = 1: case i had no stored row
     * when the batch began. Rows carry a case's id only from its CaseCreated on, so its
     * children as of this batch are the rows put during the batch and the documents
     * documents_get found for it (stored by an earlier attempt at the same events): a
     * backend may answer from those instead of reading them back. */
    int   (*children_get) (void *impl, const char *const *case_ids, const int *fresh, size_t count,
                           rm_row_fn *fn, void *arg);

    /* Upserts: a row is written only if it is new or its stored updated_position is
     * lower (cases: lower or equal); seq and case_id of a stored document stay.
     * put_row returns 1 when a row with that id was already stored (updated, or left
     * alone as newer) and the backend knows it at once; a backend that does not
     * (writes queued) returns 0, and is then not transactional. */
    int   (*put_row) (void *impl, const rm_row_t *row);
    int   (*put_case) (void *impl, const rm_case_row_t *row);
    /* Inserts unless (case_id, version) / position is already there. */
    int   (*put_event) (void *impl, const rm_event_row_t *row);
    int   (*put_error) (void *impl, int64_t position, const char *event_id, const char *error);
    /* Optional: busy 1 while a long catch-up or a rebuild runs (the backend may
     * keep more in memory), 0 once caught up (it gives that memory back). */
    void  (*set_busy) (void *impl, int busy);
    /* Makes every write so far visible to the reads that follow. */
    int   (*sync) (void *impl);
    /* The checkpoint rows names[0..count-1] (a partition's own; every partition's
     * after a rebuild), after everything written before them. */
    int   (*set_checkpoint) (void *impl, const char *const *names, size_t count, int64_t position);

    /* Leases of projector partitions (projector_partition = auto: projector_lease.h),
     * kept beside the checkpoints and never dropped by clear. A lease is keyed by
     * (count, index) and says owner and expires_at (wall-clock ms, the claimant's
     * clock). Times are passed in so that tests choose them. */
    /* Claims the first partition of count whose lease is ours, else the first free or
     * expired (expires_at < now_ms), until now_ms + ttl_ms, atomically (SQLite: one
     * BEGIN IMMEDIATE transaction; MongoDB: a conditional upsert per partition, a
     * duplicate key meaning taken). 0 claimed (*index set), 1 every partition held by
     * someone else, -1 failed (database unreachable or busy). Not inside begin..commit. */
    int   (*lease_claim) (void *impl, int count, const char *owner, int64_t now_ms, int64_t ttl_ms, int *index);
    /* Moves our lease's expiry to now_ms + ttl_ms if owner still holds it (expired or
     * not, as long as nobody took it). 0 renewed, 1 taken by another owner (or gone),
     * -2 the database stayed locked by another writer (SQLite: a rebuild in place, one
     * long transaction; while it lasts nobody can claim the lease either), -1 failed.
     * Inside begin..commit on SQLite it is part of that transaction. */
    int   (*lease_renew) (void *impl, int count, int index, const char *owner, int64_t now_ms, int64_t ttl_ms);
    /* Lets our lease expire now (a clean stop), so that a standby need not wait for
     * the TTL. 0 ok (or not ours any more), -1 failed. */
    int   (*lease_release) (void *impl, int count, int index, const char *owner);
} readmodel_store_ops_t;

extern const readmodel_store_ops_t readmodel_sqlite_ops;
extern const readmodel_store_ops_t readmodel_mongo_ops;

/* The backend config "store" names ("sqlite" default, "mongodb"); NULL when unknown. */
const readmodel_store_ops_t *readmodel_store_lookup (const char *name);

/* The live read models' location for ops under config: <data_dir>/readmodels.db or
 * the mongodb_database name. Caller frees; NULL on failure. */
char *readmodel_store_location (const readmodel_store_ops_t *ops, config_t *config);

#endif
