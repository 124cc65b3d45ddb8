/* handler_metrics — the handler's Prometheus series: commands by type and outcome
 * (accepted, duplicate, rejected or failed, with the error's class), the time from
 * a command's arrival to its reply, version conflicts met, and configuration-
 * service requests by outcome with their latency. Used from the handler's one
 * thread; series are found through memos. Without a process registry every call
 * is a no-op (unit tests). */
#ifndef DOSSIER_HANDLER_METRICS_H
#define DOSSIER_HANDLER_METRICS_H

#include <stdint.h>

/* A command answered: type is its envelope type (any bytes: escaped, capped);
 * status the HTTP-like status of the answer (2xx: accepted, or duplicate when
 * duplicate is set; 4xx: rejected; 5xx: failed); error its error code (class =
 * the part before the first '.', e.g. "validation"), NULL or "" on success;
 * seconds from its arrival to the reply (< 0: not timed). Every command the handler
 * answers is counted once here. */
void handler_metrics_command (const char *type, int status, int duplicate, const char *error, double seconds);

/* The store said the expected version was stale (the command is decided again). */
void handler_metrics_conflict (void);

/* A configuration-service request ended: status is the HTTP status, 0 when no
 * answer came (transport error, timeout); seconds its duration. */
void handler_metrics_config_request (long status, double seconds);

#endif
