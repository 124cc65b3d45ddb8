/* metrics_http — one process's own scrape and health port (libmicrohttpd, on a
 * thread of its own): GET /metrics renders a registry, /healthz and /ready answer
 * from health.c. For containers, where the files of metrics_export never meet. */
#ifndef DOSSIER_METRICS_HTTP_H
#define DOSSIER_METRICS_HTTP_H

#include "metrics.h"

#include <stdint.h>

typedef struct _metrics_http_t metrics_http_t;

/* Starts answering on address, "tcp://<IPv4 or [IPv6] literal, or *>:<port>" as
 * endpoints_bind_address writes it (port 0: any free port). registry is borrowed and
 * must outlive the server; stall_ms is health_answer's limit. Returns NULL (logged)
 * when address is not of that form or the port cannot be bound. Caller owns; stop
 * with metrics_http_stop. */
metrics_http_t *metrics_http_start (const char *address, metrics_t *registry, int64_t stall_ms);

/* A function the server calls on its thread before each /metrics rendering (series
 * computed at scrape time, such as the health state); NULL for none. */
void metrics_http_on_scrape (metrics_http_t *self, void (*refresh) (void));

/* The port actually bound (the one chosen for port 0); 0 when unknown. */
int metrics_http_port (metrics_http_t *self);

/* Stops the thread, closes the port, frees; *self_p becomes NULL. NULL is fine. */
void metrics_http_stop (metrics_http_t **self_p);

#endif
