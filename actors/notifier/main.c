/* dossier-notifier — relays NotificationRequired events from the log to the outside.
 * Usage: dossier-notifier [--config PATH]; stops cleanly on SIGINT/SIGTERM. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics_export.h"
#include "notifier.h"

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
    config_t *config = config_load (config_file);
    if (!config) {
        fprintf (stderr, "dossier-notifier: cannot load the configuration\n");
        return 1;
    }
    log_init ("notifier", config_get (config, "log_level", "info"));
    metrics_export_start (config, "notifier");
    int rc = notifier_run (config, NULL);
    metrics_export_stop ();
    config_destroy (&config);
    return rc == 0 ? 0 : 1;
}
