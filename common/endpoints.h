/* endpoints — where every process binds and connects. Derived from the data
 * directory (ipc://<data_dir>/run/<name>.ipc) unless configured explicitly
 * (key endpoint_<name>, env DOSSIER_ENDPOINT_<NAME>). */
#ifndef DOSSIER_ENDPOINTS_H
#define DOSSIER_ENDPOINTS_H

#include "config.h"

/* Names: broker_front, broker_back, store, store_pub, ingest, projector, supervisor, notify_pub.
 * Returns a malloc'd endpoint string (caller frees), creating <data_dir>/run if needed;
 * NULL if the resulting ipc path would be too long for a Unix socket. */
char *endpoints_get (config_t *config, const char *name);

#endif
