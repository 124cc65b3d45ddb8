/* health — is this process alive and ready, as its own main thread says. The loop
 * stamps a heartbeat on every turn; the process may state its readiness (backend
 * reachable, read models loaded). metrics_http answers /healthz and /ready from it
 * on another thread, so a loop that is stuck is seen from outside. */
#ifndef DOSSIER_HEALTH_H
#define DOSSIER_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stamps the heartbeat: one coarse clock read and one relaxed atomic store, cheap
 * enough for every turn of a loop. Call from the main loop only. */
void health_beat (void);

/* The process said ready to its supervisor (ready.c calls this): until then /ready
 * answers "starting". Also stamps the heartbeat. */
void health_started (void);

/* The process's own readiness, beyond alive and started. reason (may be NULL) says
 * what is missing when ready is false; it is copied (at most 120 bytes). A process
 * that never calls this is ready once started. Thread-safe; cheap when nothing
 * changed, but meant for changes of state, not every turn. */
void health_set_ready (bool ready, const char *reason);

typedef enum {
    HEALTH_OK = 0,
    HEALTH_STARTING,            /* has not said ready yet */
    HEALTH_NOT_READY,           /* said so itself (health_set_ready) */
    HEALTH_STALLED,             /* heartbeat older than the limit */
    HEALTH_STATES
} health_state_t;

/* The state now (stalled before anything else). Thread-safe. */
health_state_t health_state (int64_t stall_ms);

/* "ok", "starting", "not_ready", "stalled": the JSON status and the metric label. */
const char *health_state_name (health_state_t state);

/* What /healthz (want_ready false) or /ready (true) answers now: 200 or 503, with a
 * JSON object written into body (NUL-terminated, truncated to size). A heartbeat
 * older than stall_ms is a stalled loop: 503 for both. Before the first beat the
 * process counts as alive (it is still starting). Thread-safe. */
int health_answer (bool want_ready, int64_t stall_ms, char *body, size_t size);

/* Forgets every state (tests). */
void health_reset (void);

#endif
