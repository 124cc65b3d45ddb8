/* ready_children — what the gateway's /ready adds about the other processes: the
 * supervisor's view of its children (dossier_supervisor_child_up in its metrics
 * file), so one probe says which process is down. Without a supervisor (one process
 * per container) there is no such file and nothing is added. */
#ifndef DOSSIER_GW_READY_CHILDREN_H
#define DOSSIER_GW_READY_CHILDREN_H

#include "config.h"
#include "http_reply.h"

/* Appends to out, as JSON strings each preceded by a comma when *count > 0, one
 * reason per supervised process that is not up ("handler#1 not running"), and
 * counts them in *count. A missing or stale (> max_age_ms) file adds nothing.
 * Returns 0, -1 when out of memory. */
int gw_ready_children (config_t *config, int64_t max_age_ms, gw_buf_t *out, int *count);

/* The same for every process that writes a metrics file on this host and is not ok
 * by its own health (dossier_process_health: "store#0 stalled", "projector#0
 * not_ready", "ingest#0 starting"), from the files changed within max_age_ms (an
 * older file is a process that stopped: the supervisor's view says so). Returns 0,
 * -1 when out of memory. */
int gw_ready_processes (config_t *config, int64_t max_age_ms, gw_buf_t *out, int *count);

#endif
