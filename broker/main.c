/* dossier-broker — routes commands from clients to handlers: binds the frontend
 * and backend ROUTERs, says it is ready and routes until SIGINT/SIGTERM.
 * Everything but argument handling lives in broker.c and its modules. */
#include "broker.h"
#include "config.h"
#include "endpoints.h"
#include "log.h"
#include "metrics_export.h"
#include "ready.h"

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
        fprintf (stderr, "dossier-broker: cannot load configuration\n");
        return 1;
    }
    log_init ("broker", config_get (config, "log_level", "info"));
    int rc = 1;
    broker_t *broker = NULL;
    char *front = endpoints_get_bind (config, "broker_front");     /* bound here */
    char *back = endpoints_get_bind (config, "broker_back");
    if (!front || !back) {
        log_error (NULL, NULL, "data directory path too long for the broker's sockets");
        goto done;
    }
    broker_options_t options;
    broker_options_default (&options);
    /* Tunable for tests and odd deployments; the defaults are the contract. */
    options.worker_timeout_ms = config_get_long (config, "broker_worker_timeout_ms", options.worker_timeout_ms);
    options.queue_timeout_ms = config_get_long (config, "broker_queue_timeout_ms", options.queue_timeout_ms);
    long queue_max = config_get_long (config, "broker_queue_max", (long) options.queue_max);
    if (queue_max > 0)
        options.queue_max = (size_t) queue_max;
    broker_options_t defaults;
    broker_options_default (&defaults);
    if (options.worker_timeout_ms < 100)
        options.worker_timeout_ms = defaults.worker_timeout_ms;
    if (options.queue_timeout_ms < 0)
        options.queue_timeout_ms = defaults.queue_timeout_ms;
    broker = broker_new (front, back, &options);
    if (!broker)
        goto done;
    metrics_export_start (config, "broker");
    ready_signal ();
    rc = broker_run (broker, NULL) == 0 ? 0 : 1;
    metrics_export_stop ();
done:
    broker_destroy (&broker);
    free (front);
    free (back);
    config_destroy (&config);
    return rc;
}
