/* projector — the read-model actor: follows the event log from its checkpoint with a
 * catch-up subscription, applies each batch in one transaction, and answers
 * ctl.status / ctl.rebuild on its control ROUTER (schemas/messages.md). */
#ifndef DOSSIER_PROJECTOR_H
#define DOSSIER_PROJECTOR_H

#include <czmq.h>

#include "config.h"

/* Runs the projector until SIGINT/SIGTERM, or "$TERM" on pipe when pipe is not NULL
 * (zactor). It projects the cases of its partition (projector_partition of
 * projector_partitions, common/partition.h); only partition 0 binds "projector". Opens the read models config "store" names (<data_dir>/readmodels.db, or
 * the MongoDB database "mongodb_database": schemas/readmodels.md), binds endpoint
 * "projector", connects to "store" and "store_pub", then signals readiness
 * (ready_signal (), and zsock_signal (pipe) when running as an actor). A MongoDB that
 * does not answer yet is no reason to fail: the projector is ready, and follows the
 * log once the database answers. ctl.rebuild's target is a file path on SQLite and
 * a database name on MongoDB. projector_partition = auto: it claims a partition by
 * lease first (projector_lease.h; a standby is ready, binds nothing and waits), and
 * the holder of partition 0 binds "projector". Returns 0 on a clean stop, -1 when it
 * could not start (logged; an actor's pipe is then signalled with status 1) or when
 * it lost its lease (logged: a restart claims again). */
int projector_run (config_t *config, zsock_t *pipe);

/* zactor entry point; args is the config_t * (borrowed, must outlive the actor). */
void projector_actor (zsock_t *pipe, void *args);

#endif
