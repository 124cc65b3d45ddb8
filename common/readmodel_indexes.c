/* readmodel_indexes — names, indexes and client settings of the MongoDB read models.
 * Index creation is one createIndexes command per collection: MongoDB (and FerretDB)
 * treat an index that already exists with the same key and options as a no-op, so
 * the projector runs it at every start and `dossier migrate` may run it any time. */
#include "readmodel_indexes.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

const char *const readmodel_collections [] = {
    RM_COLL_CHECKPOINTS, RM_COLL_CASES, RM_COLL_COMPANIES, RM_COLL_PERSONS, RM_COLL_BOS,
    RM_COLL_DOCUMENTS, RM_COLL_EVENTS, RM_COLL_ERRORS, RM_COLL_CHILDREN, NULL
};

/* One secondary index: name, up to three ascending key fields, unique or not. */
typedef struct {
    const char *collection;
    const char *name;
    const char *keys [3];
    int unique;
} s_index_t;

/* Every REST filter and sort of the gateway, and a case's rows by case id. (The
 * projector itself reads by _id only.) */
static const s_index_t s_indexes [] = {
    { RM_COLL_CASES,     "cases_by_seq",       { "seq" }, 1 },
    { RM_COLL_CASES,     "cases_by_client",    { "client_id", "seq" }, 0 },
    { RM_COLL_CASES,     "cases_by_type",      { "traitement_type", "seq" }, 0 },
    { RM_COLL_CASES,     "cases_by_status",    { "status", "seq" }, 0 },
    { RM_COLL_COMPANIES, "companies_by_case",  { "case_id", "seq" }, 0 },
    { RM_COLL_PERSONS,   "persons_by_case",    { "case_id", "seq" }, 0 },
    { RM_COLL_BOS,       "bos_by_company",     { "company_id", "seq" }, 0 },
    { RM_COLL_DOCUMENTS, "documents_by_case",  { "case_id", "seq" }, 0 },
    { RM_COLL_EVENTS,    "case_events_by_version", { "case_id", "version" }, 1 },
};

int
readmodel_is_collection (const char *name)
{
    if (name && strcmp (name, RM_COLL_LEASES) == 0)
        return 1;
    for (size_t i = 0; name && readmodel_collections [i]; i++)
        if (strcmp (name, readmodel_collections [i]) == 0)
            return 1;
    return 0;
}

const char *
readmodel_mongo_database (config_t *config)
{
    return config_get (config, "mongodb_database", RM_MONGODB_DATABASE_DEFAULT);
}

int
readmodel_mongo_valid_database (const char *name)
{
    size_t len = name ? strlen (name) : 0;
    if (len < 1 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The driver's own messages go to our JSON log instead of raw stderr lines. */
static void
s_mongoc_log (mongoc_log_level_t level, const char *domain, const char *message, void *arg)
{
    (void) arg;
    /* FerretDB has no sessions: the driver's goodbye to them is no news */
    if (level <= MONGOC_LOG_LEVEL_WARNING && !strstr (message, "endSessions"))
        log_warn (NULL, NULL, "mongoc %s: %s", domain, message);
}

static int s_initialised;

void
readmodel_mongo_cleanup (void)
{
    if (s_initialised)
        mongoc_cleanup ();
    s_initialised = 0;
}

mongoc_client_t *
readmodel_mongo_client_new (config_t *config, int socket_timeout_ms, char *err, size_t err_size)
{
    /* The handler first: mongoc_init itself may warn, and a plain-text line would
     * break the one-JSON-object-per-line log. */
    mongoc_log_set_handler (s_mongoc_log, NULL);
    mongoc_init ();
    s_initialised = 1;
    const char *text = config_get (config, "mongodb_uri", RM_MONGODB_URI_DEFAULT);
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error (text, &error);
    if (!uri) {
        /* the message quotes the URI, which may hold a password: keep only the reason */
        snprintf (err, err_size, "mongodb_uri is not a valid MongoDB URI");
        return NULL;
    }
    if (!mongoc_uri_has_option (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32 (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 1000);
    if (!mongoc_uri_has_option (uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32 (uri, MONGOC_URI_CONNECTTIMEOUTMS, 1000);
    if (!mongoc_uri_has_option (uri, MONGOC_URI_SOCKETTIMEOUTMS) && socket_timeout_ms > 0)
        mongoc_uri_set_option_as_int32 (uri, MONGOC_URI_SOCKETTIMEOUTMS, socket_timeout_ms);
    if (!mongoc_uri_has_option (uri, MONGOC_URI_APPNAME))
        mongoc_uri_set_appname (uri, "dossier");
    mongoc_client_t *client = mongoc_client_new_from_uri_with_error (uri, &error);
    mongoc_uri_destroy (uri);
    if (!client) {
        snprintf (err, err_size, "cannot create a MongoDB client: %s", error.message);
        return NULL;
    }
    /* Errors come back as return values; the driver's own stderr lines would break
     * our JSON log. */
    mongoc_client_set_error_api (client, MONGOC_ERROR_API_VERSION_2);
    return client;
}

mongoc_write_concern_t *
readmodel_mongo_write_concern_new (config_t *config, char *err, size_t err_size)
{
    const char *w = config_get (config, "mongodb_write_concern", "majority");
    const char *j = config_get (config, "mongodb_journal", "true");
    mongoc_write_concern_t *wc = mongoc_write_concern_new ();
    if (!wc) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    if (strcasecmp (w, "majority") == 0)
        mongoc_write_concern_set_wmajority (wc, 0);
    else {
        char *end = NULL;
        long n = strtol (w, &end, 10);
        if (!end || *end || end == w || n < 0 || n > 50) {
            snprintf (err, err_size, "mongodb_write_concern must be \"majority\" or a number of nodes, not \"%.40s\"", w);
            mongoc_write_concern_destroy (wc);
            return NULL;
        }
        mongoc_write_concern_set_w (wc, (int32_t) n);
    }
    if (strcasecmp (j, "true") == 0 || strcmp (j, "1") == 0 || strcasecmp (j, "yes") == 0)
        mongoc_write_concern_set_journal (wc, true);
    else
    if (strcasecmp (j, "false") == 0 || strcmp (j, "0") == 0 || strcasecmp (j, "no") == 0)
        mongoc_write_concern_set_journal (wc, false);
    else {
        snprintf (err, err_size, "mongodb_journal must be true or false, not \"%.40s\"", j);
        mongoc_write_concern_destroy (wc);
        return NULL;
    }
    return wc;
}

/* createIndexes for one index. One index per command: FerretDB 1.24 drops the
 * connection when a command lists several indexes that all exist already. */
static int
s_ensure_index (mongoc_database_t *db, const s_index_t *ix, char *err, size_t err_size)
{
    bson_t cmd = BSON_INITIALIZER, indexes, index, keys, reply;
    BSON_APPEND_UTF8 (&cmd, "createIndexes", ix->collection);
    BSON_APPEND_ARRAY_BEGIN (&cmd, "indexes", &indexes);
    BSON_APPEND_DOCUMENT_BEGIN (&indexes, "0", &index);
    BSON_APPEND_DOCUMENT_BEGIN (&index, "key", &keys);
    for (size_t k = 0; k < 3 && ix->keys [k]; k++)
        BSON_APPEND_INT32 (&keys, ix->keys [k], 1);
    bson_append_document_end (&index, &keys);
    BSON_APPEND_UTF8 (&index, "name", ix->name);
    if (ix->unique)
        BSON_APPEND_BOOL (&index, "unique", true);
    bson_append_document_end (&indexes, &index);
    bson_append_array_end (&cmd, &indexes);
    bson_error_t error;
    int rc = 0;
    if (!mongoc_database_write_command_with_opts (db, &cmd, NULL, &reply, &error)) {
        snprintf (err, err_size, "createIndexes %s on %s: %s", ix->name, ix->collection, error.message);
        rc = -1;
    }
    bson_destroy (&reply);
    bson_destroy (&cmd);
    return rc;
}

int
readmodel_indexes_ensure (mongoc_client_t *client, const char *db_name, char *err, size_t err_size)
{
    mongoc_database_t *db = mongoc_client_get_database (client, db_name);
    if (!db) {
        snprintf (err, err_size, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof s_indexes / sizeof s_indexes [0] && rc == 0; i++)
        rc = s_ensure_index (db, &s_indexes [i], err, err_size);
    mongoc_database_destroy (db);
    return rc;
}

int
readmodel_mongo_migrate (config_t *config)
{
    char err [300] = "";
    mongoc_client_t *client = readmodel_mongo_client_new (config, 60000, err, sizeof err);
    const char *db_name = readmodel_mongo_database (config);
    int rc = -1;
    if (!client)
        log_error (NULL, NULL, "read models: %s", err);
    else
    if (!readmodel_mongo_valid_database (db_name))
        log_error (NULL, NULL, "read models: mongodb_database \"%.80s\" is not a usable database name", db_name);
    else
    if (readmodel_indexes_ensure (client, db_name, err, sizeof err) != 0)
        log_error (NULL, NULL, "read models: indexes of %s not created: %s", db_name, err);
    else {
        log_info (NULL, NULL, "read models: indexes of %s in place", db_name);
        rc = 0;
    }
    mongoc_client_destroy (client);
    return rc;
}
