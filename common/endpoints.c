/* endpoints — one place that names every socket, so processes cannot disagree. */
#include "endpoints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *
endpoints_get (config_t *config, const char *name)
{
    char key [64];
    snprintf (key, sizeof key, "endpoint_%s", name);
    const char *explicit = config_get (config, key, NULL);
    if (explicit)
        return strdup (explicit);
    const char *dir = config_get (config, "data_dir", "./data");
    char run [4096];
    snprintf (run, sizeof run, "%s/run", dir);
    mkdir (dir, 0750);
    mkdir (run, 0750);
    char endpoint [4200];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/%s.ipc", run, name);
    /* sun_path holds 107 bytes; longer ipc paths fail at bind time with a vague error. */
    if (strlen (endpoint) - strlen ("ipc://") > 107)
        return NULL;
    return strdup (endpoint);
}
