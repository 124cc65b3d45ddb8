/* dossier-handler — one command handler (the supervisor runs N of them): loads the
 * rules, connects to the broker and the store, says it is ready and handles commands
 * until SIGINT/SIGTERM. Everything but argument handling lives in handler.c. */
#include "config.h"
#include "handler.h"
#include "log.h"
#include "metrics_export.h"
#include "ready.h"

#include <stdio.h>
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
        fprintf (stderr, "dossier-handler: cannot load configuration\n");
        return 1;
    }
    log_init ("handler", config_get (config, "log_level", "info"));
    handler_t *handler = handler_new (config);
    int rc = 1;
    if (handler) {
        metrics_export_start (config, "handler");
        ready_signal ();
        rc = handler_run (handler, NULL) == 0 ? 0 : 1;
        metrics_export_stop ();
    }
    handler_destroy (&handler);
    config_destroy (&config);
    return rc;
}
