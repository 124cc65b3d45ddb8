/* dossier-store — the event log process: opens the log (config `store`: sqlite
 * <data_dir>/events.db, or mongodb at `mongodb_uri`), binds the store ROUTER and
 * PUB, says it is ready and serves until SIGINT/SIGTERM. `--migrate` only creates
 * the log's schema and indexes and exits (0 done, 1 failed): `dossier migrate`.
 * Everything but argument handling lives in store_server.c and the backends. */
#include "config.h"
#include "endpoints.h"
#include "log.h"
#include "metrics_export.h"
#include "ready.h"
#include "store_backend.h"
#include "store_server.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
s_flag (int argc, char *argv [], const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp (argv [i], flag) == 0)
            return true;
    return false;
}

static const char *
s_config_arg (int argc, char *argv [])
{
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            return argv [i + 1];
        if (strncmp (argv [i], "--config=", 9) == 0)
            return argv [i] + 9;
    }
    return NULL;
}

int
main (int argc, char *argv [])
{
    config_t *config = config_load (s_config_arg (argc, argv));
    if (!config) {
        fprintf (stderr, "dossier-store: cannot load configuration\n");
        return 1;
    }
    log_init ("store", config_get (config, "log_level", "info"));
    int rc = 1;
    char *path = NULL, *router = NULL, *pub = NULL;
    store_backend_t *backend = NULL;
    store_server_t *server = NULL;

    const char *backend_name = config_get (config, "store", "sqlite");
    const store_backend_ops_t *ops = store_backend_lookup (backend_name);
    if (!ops) {
        log_error (NULL, NULL, "unknown store '%.32s' (sqlite or mongodb)", backend_name);
        goto done;
    }
    if (ops == &store_mongo_ops)
        path = strdup (config_get (config, "mongodb_uri", "mongodb://127.0.0.1:27017"));
    else
        path = config_data_path (config, "events.db");
    router = endpoints_get_bind (config, "store");     /* both bound here */
    pub = endpoints_get_bind (config, "store_pub");
    if (!path || !router || !pub) {
        log_error (NULL, NULL, "data directory path too long for the store's files or sockets");
        goto done;
    }
    backend = store_backend_new (ops, path, config);
    if (!backend)
        goto done;
    if (s_flag (argc, argv, "--migrate")) {
        /* head() needs the schema: a backend creates it (idempotently) on the way. */
        int64_t head = 0;
        rc = store_backend_head (backend, &head) == 0 ? 0 : 1;
        if (rc == 0)
            log_info (NULL, NULL, "store: %s event log schema and indexes in place (head %lld)",
                      store_backend_name (backend), (long long) head);
        else
            log_error (NULL, NULL, "store: %s event log schema or indexes could not be created",
                       store_backend_name (backend));
        goto done;
    }
    server = store_server_new (&backend, router, pub);
    if (!server)
        goto done;
    /* The handlers' store timeout is how long an append is awaited (same file). */
    store_server_set_expiry (server, config_get_long (config, "handler_store_timeout_ms", 8000));
    metrics_export_start (config, "store");
    ready_signal ();
    rc = store_server_run (server, NULL) == 0 ? 0 : 1;
    metrics_export_stop ();
done:
    store_server_destroy (&server);
    store_backend_destroy (&backend);
    free (path);
    free (router);
    free (pub);
    config_destroy (&config);
    return rc;
}
