/* dossier-gateway — the REST API process: loads the configuration, starts the
 * gateway actor, says ready, and serves until SIGINT/SIGTERM. */
#include "gateway.h"

#include "config.h"
#include "log.h"
#include "metrics_export.h"
#include "readmodel_indexes.h"
#include "ready.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

int
main (int argc, char *argv [])
{
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            config_file = argv [++i];
        else {
            fprintf (stderr, "usage: %s [--config PATH]\n", argv [0]);
            return 2;
        }
    }
    config_t *config = config_load (config_file);
    if (!config) {
        fprintf (stderr, "dossier-gateway: cannot load configuration\n");
        return 1;
    }
    log_init ("gateway", config_get (config, "log_level", "info"));
    metrics_export_start (config, "gateway");
    /* czmq installs its SIGINT/SIGTERM handlers here, before any thread exists. */
    zsys_init ();
    gateway_t *gateway = gateway_new (config);
    if (!gateway) {
        metrics_export_stop ();
        log_error (NULL, NULL, "gateway failed to start");
        config_destroy (&config);
        return 1;
    }
    ready_signal ();
    gateway_run (gateway);
    gateway_destroy (&gateway);
    metrics_export_stop ();
    config_destroy (&config);
    readmodel_mongo_cleanup ();
    return 0;
}
