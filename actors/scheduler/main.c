/* dossier-scheduler — makes deferred notification decisions once their rules can be
 * had. Usage: dossier-scheduler [--config PATH]; stops cleanly on SIGINT/SIGTERM. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics_export.h"
#include "scheduler.h"

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
            fprintf (stderr, "usage: %s [--config PATH]\n", argv [0]);
            return 2;
        }
    }
    config_t *config = config_load (config_file);
    if (!config) {
        fprintf (stderr, "dossier-scheduler: cannot load the configuration\n");
        return 1;
    }
    log_init ("scheduler", config_get (config, "log_level", "info"));
    metrics_export_start (config, "scheduler");
    int rc = scheduler_run (config, NULL);
    metrics_export_stop ();
    config_destroy (&config);
    return rc == 0 ? 0 : 1;
}
