/* scheduler — makes deferred notification decisions once their rules are available
 * again. Follows the event log from its own checkpoint, keeps the pending deferrals
 * (scheduler_db), and sends cmd.resolve_notifications for each through the broker
 * until a handler resolves it; the Case aggregate makes each decision once, so a
 * re-sent command changes nothing. */
#ifndef DOSSIER_SCHEDULER_H
#define DOSSIER_SCHEDULER_H

#include <czmq.h>

#include "config.h"

/* Runs until SIGINT/SIGTERM, or "$TERM" on pipe when pipe is not NULL (zactor).
 * Opens <data_dir>/scheduler.db, connects to "store", "store_pub" and "broker_front",
 * then signals readiness (ready_signal (), and zsock_signal (pipe) as an actor).
 * Returns 0 on a clean stop, -1 if it could not start (logged; an actor's pipe is
 * then signalled with status 1). */
int scheduler_run (config_t *config, zsock_t *pipe);

/* zactor entry point; args is the config_t * (borrowed, must outlive the actor). */
void scheduler_actor (zsock_t *pipe, void *args);

#endif
