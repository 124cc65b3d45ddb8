/* readmodel_indexes — the read models on MongoDB as a contract shared by the projector
 * (writes), the gateway (reads) and `dossier migrate`: collection names, their indexes
 * (created idempotently), and the client settings taken from the configuration.
 * schemas/readmodels.md describes the collections; this file is its code. */
#ifndef DOSSIER_READMODEL_INDEXES_H
#define DOSSIER_READMODEL_INDEXES_H

#include <mongoc/mongoc.h>
#include <stddef.h>

#include "config.h"

/* Collections, in the same database as the event log. The rm_ prefix keeps them apart
 * from the log's own collections: a rebuild drops these and nothing else. */
#define RM_COLL_CASES       "rm_cases"
#define RM_COLL_COMPANIES   "rm_companies"
#define RM_COLL_PERSONS     "rm_persons"
#define RM_COLL_BOS         "rm_beneficial_owners"
#define RM_COLL_DOCUMENTS   "rm_documents"
#define RM_COLL_EVENTS      "rm_case_events"
#define RM_COLL_CHECKPOINTS "rm_checkpoints"
#define RM_COLL_ERRORS      "rm_projector_errors"
/* The projector's own index of each case's child rows ({_id: case id, companies,
 * persons, beneficial_owners, documents: [ids]}): it finds a case's children by _id
 * lookups only (the FerretDB test server pushes nothing else down to its indexes). */
#define RM_COLL_CHILDREN    "rm_case_children"

/* Leases of projector partitions (projector_partition = auto: {_id: "<i>-of-<N>",
 * partition, partitions, owner, expires_at}). Not in readmodel_collections: a rebuild
 * keeps it (who projects is not a read model); readmodel_is_collection knows it. */
#define RM_COLL_LEASES      "rm_projector_leases"

/* Every read-model collection, NULL-terminated. The checkpoint comes first: a rebuild
 * drops it before the rows, so a crash in between restarts from zero, never from a
 * checkpoint that claims rows which are gone. */
extern const char *const readmodel_collections [];

/* 1 if name is one of readmodel_collections or RM_COLL_LEASES, else 0. */
int readmodel_is_collection (const char *name);

/* Defaults of the configuration keys (environment DOSSIER_<KEY> wins, then the file). */
#define RM_MONGODB_URI_DEFAULT      "mongodb://127.0.0.1:27017"
#define RM_MONGODB_DATABASE_DEFAULT "dossier"

/* The database name from "mongodb_database". Borrowed from config. */
const char *readmodel_mongo_database (config_t *config);

/* 1 if name can be a database we create and drop: 1..63 bytes of [A-Za-z0-9_-]
 * (a strict subset of what MongoDB allows, so a path or a typo is never taken). */
int readmodel_mongo_valid_database (const char *name);

/* A client for "mongodb_uri" (default RM_MONGODB_URI_DEFAULT). Options the URI does
 * not set itself get short defaults, so that a database that is down costs a caller
 * about a second, never minutes: serverSelectionTimeoutMS and connectTimeoutMS 1000,
 * socketTimeoutMS = socket_timeout_ms (a slow answer). The client is single-threaded
 * (one per thread) and connects lazily: a database that is down does not make this
 * fail. Returns NULL on a malformed URI (reason in err). Caller owns;
 * mongoc_client_destroy. Calls mongoc_init () (idempotent). */
mongoc_client_t *readmodel_mongo_client_new (config_t *config, int socket_timeout_ms,
                                             char *err, size_t err_size);

/* mongoc_cleanup () if readmodel_mongo_client_new ran mongoc_init (): once, at the
 * very end of a process, after every client is destroyed. */
void readmodel_mongo_cleanup (void);

/* The write concern of "mongodb_write_concern" ("majority" default, or a number
 * of nodes) and "mongodb_journal" (true default). Caller owns;
 * mongoc_write_concern_destroy. NULL on a value that makes no sense (err says why). */
mongoc_write_concern_t *readmodel_mongo_write_concern_new (config_t *config, char *err, size_t err_size);

/* Creates every read-model index in database db_name (a no-op for those that exist
 * with the same definition). Returns 0 ok, -1 failed (database down, or an index
 * of the same name with another definition; err says which). */
int readmodel_indexes_ensure (mongoc_client_t *client, const char *db_name, char *err, size_t err_size);

/* `dossier migrate` for the read models: connects with the configuration's settings
 * and ensures the indexes. Returns 0 ok, -1 failed (logged). */
int readmodel_mongo_migrate (config_t *config);

#endif
