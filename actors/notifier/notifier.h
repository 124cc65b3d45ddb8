/* notifier — the outbox relay: follows the event log from its own checkpoint and
 * hands every NotificationRequired event to its sinks (JSON lines file, PUB socket),
 * moving the checkpoint only after the sinks took the batch (at least once). */
#ifndef DOSSIER_NOTIFIER_H
#define DOSSIER_NOTIFIER_H

#include <czmq.h>

#include "config.h"

/* Runs until SIGINT/SIGTERM, or "$TERM" on pipe when pipe is not NULL (zactor).
 * Opens <data_dir>/notifier.db and the notify_file (default
 * <data_dir>/notifications.jsonl), binds endpoint "notify_pub", connects to "store"
 * and "store_pub", then signals readiness (ready_signal (), and zsock_signal (pipe)
 * as an actor). Returns 0 on a clean stop, -1 if it could not start (logged; an
 * actor's pipe is then signalled with status 1). */
int notifier_run (config_t *config, zsock_t *pipe);

/* zactor entry point; args is the config_t * (borrowed, must outlive the actor). */
void notifier_actor (zsock_t *pipe, void *args);

#endif
