/* broker_metrics — the broker's Prometheus series: messages in and out of each
 * socket by envelope type, errors by reason, re-dispatches, and what it holds
 * (commands in flight, commands queued for want of a handler, live handlers).
 * Series are found through memos (no registry lock per message); used from the
 * broker's one thread. Without a process registry every call is a no-op. */
#ifndef DOSSIER_BROKER_METRICS_H
#define DOSSIER_BROKER_METRICS_H

#include <stddef.h>

typedef enum {
    BROKER_METRICS_MALFORMED = 0,       /* dropped: frames or envelope unreadable */
    BROKER_METRICS_UNEXPECTED,          /* dropped: a type that has no business on that socket */
    BROKER_METRICS_NO_ID,               /* command refused: no command id */
    BROKER_METRICS_OVERLOADED,          /* command refused: too many in flight */
    BROKER_METRICS_NO_HANDLER,          /* command answered 503: no handler (queue full or timed out) */
    BROKER_METRICS_EXPIRED,             /* command forgotten: its handler never answered */
    BROKER_METRICS_ERRORS
} broker_metrics_error_t;

/* side: "front" (clients) or "back" (handlers); type: the envelope type (any
 * bytes: escaped, and past a few dozen distinct types counted as "other"). */
void broker_metrics_in (const char *side, const char *type);
void broker_metrics_out (const char *side, const char *type);
void broker_metrics_error (broker_metrics_error_t reason);
void broker_metrics_redispatched (long commands);
void broker_metrics_holding (size_t in_flight, size_t queued, size_t handlers);

#endif
