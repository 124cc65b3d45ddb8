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

/* The address a process binds for a configured endpoint. Connectors use the
 * configured form (tcp://broker:5555), but ZeroMQ binds only to an IP address, an
 * interface name or "*", never to a DNS name: in tcp://<name>:<port> the name
 * becomes "*" (every interface of this host; in a container, its own network
 * namespace), "localhost" becomes 127.0.0.1, and IP literals, "*", local interface
 * names and every other transport (ipc, inproc) are kept as they are. Returns a
 * malloc'd string (caller frees), or NULL when endpoint is NULL or a tcp endpoint
 * has no host or port. */
char *endpoints_bind_address (const char *endpoint);

/* endpoints_get followed by endpoints_bind_address: what the process that owns the
 * endpoint binds. Returns a malloc'd string (caller frees) or NULL as either does. */
char *endpoints_get_bind (config_t *config, const char *name);

#endif
