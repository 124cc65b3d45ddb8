/* dossier-store — the event log process: opens <data_dir>/events.db, binds the
 * store ROUTER and PUB, says it is ready and serves until SIGINT/SIGTERM.
 * Everything but argument handling lives in store_server.c and the backends. */
#include "config.h"
#include "endpoints.h"
#include "log.h"
#include "ready.h"
#include "store_backend.h"
#include "store_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

    const char *backend_name = config_get (config, "store_backend", "sqlite");
    const store_backend_ops_t *ops = store_backend_lookup (backend_name);
    if (!ops) {
        log_error (NULL, NULL, "unknown store_backend '%.32s'", backend_name);
        goto done;
    }
    path = config_data_path (config, "events.db");
    router = endpoints_get (config, "store");
    pub = endpoints_get (config, "store_pub");
    if (!path || !router || !pub) {
        log_error (NULL, NULL, "data directory path too long for the store's files or sockets");
        goto done;
    }
    backend = store_backend_new (ops, path, config);
    if (!backend)
        goto done;
    server = store_server_new (&backend, router, pub);
    if (!server)
        goto done;
    ready_signal ();
    rc = store_server_run (server, NULL) == 0 ? 0 : 1;
done:
    store_server_destroy (&server);
    store_backend_destroy (&backend);
    free (path);
    free (router);
    free (pub);
    config_destroy (&config);
    return rc;
}
