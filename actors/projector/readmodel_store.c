/* readmodel_store — picks the read-model backend the configuration names and says
 * where its live read models are. The backends are readmodel_sqlite.c and
 * readmodel_mongo.c; projection.c only ever talks to their table of operations. */
#include "readmodel_store.h"

#include <stdlib.h>
#include <string.h>

#include "readmodel_indexes.h"

const readmodel_store_ops_t *
readmodel_store_lookup (const char *name)
{
    if (!name || !*name || strcmp (name, "sqlite") == 0)
        return &readmodel_sqlite_ops;
    if (strcmp (name, "mongodb") == 0)
        return &readmodel_mongo_ops;
    return NULL;
}

char *
readmodel_store_location (const readmodel_store_ops_t *ops, config_t *config)
{
    if (ops == &readmodel_mongo_ops)
        return strdup (readmodel_mongo_database (config));
    return config_data_path (config, "readmodels.db");
}
