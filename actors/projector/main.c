/* dossier-projector — builds the read models from the event log.
 * Usage: dossier-projector [--config PATH]; stops cleanly on SIGINT/SIGTERM. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics_export.h"
#include "readmodel_indexes.h"
#include "projector.h"

int
main (int argc, char **argv)
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
    /* SQLite's memory statistics take a global mutex on every allocation; the
     * projector never reads them. (Before any other SQLite call.) */
    sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);
    config_t *config = config_load (config_file);
    if (!config) {
        fprintf (stderr, "dossier-projector: cannot load the configuration\n");
        return 1;
    }
    log_init ("projector", config_get (config, "log_level", "info"));
    metrics_export_start (config, "projector");
    int rc = projector_run (config, NULL);
    metrics_export_stop ();
    config_destroy (&config);
    readmodel_mongo_cleanup ();
    return rc == 0 ? 0 : 1;
}
