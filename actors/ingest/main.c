/* dossier-ingest — entry point: config, logging, the ingest server, readiness. */
#include "ingest_server.h"

#include "config.h"
#include "log.h"
#include "metrics_export.h"
#include "ready.h"

#include <stdio.h>
#include <string.h>

int
main (int argc, char **argv)
{
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            config_file = argv [++i];
        else
        if (strncmp (argv [i], "--config=", 9) == 0)
            config_file = argv [i] + 9;
        else {
            fprintf (stderr, "usage: dossier-ingest [--config PATH]\n");
            return strcmp (argv [i], "--help") == 0 ? 0 : 1;
        }
    }
    zsys_init ();                       /* installs czmq's SIGINT/SIGTERM flag handler now */
    config_t *config = config_load (config_file);
    if (!config) {
        fprintf (stderr, "dossier-ingest: cannot load config\n");
        return 1;
    }
    log_init ("ingest", config_get (config, "log_level", "info"));
    /* Before the server: the Kafka consumer's first statistics may come at once. */
    metrics_export_start (config, "ingest");
    ingest_server_t *server = ingest_server_new (config);
    if (!server) {
        metrics_export_stop ();
        config_destroy (&config);
        return 1;
    }
    ready_signal ();
    ingest_server_run (server, NULL);
    ingest_server_destroy (&server);
    metrics_export_stop ();
    config_destroy (&config);
    return 0;
}
