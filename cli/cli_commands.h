/* cli_commands — the dossier subcommands, one file each. Each returns the process
 * exit code and writes results to out and messages (and progress) to err. */
#ifndef DOSSIER_CLI_COMMANDS_H
#define DOSSIER_CLI_COMMANDS_H

#include "cli_args.h"
#include "config.h"

#include <stdio.h>

/* dossier ingest: 0 all accepted, 2 some rejected, 1 failure (deadline, interrupt,
 * unreadable input). Hidden settings for tests and slow systems (section dossier,
 * or the environment): cli_answer_timeout_ms (20000), cli_retry_delay_ms (1000). */
int cli_ingest_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err);

/* dossier status: 0, or 1 when no supervisor answers in time. */
int cli_status_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err);

/* dossier rebuild: 0 on ctl.done, 1 on ctl.error or silence longer than the timeout. */
int cli_rebuild_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err);

/* dossier migrate (cli_migrate.c): runs `dossier-store --migrate` (event log schema and
 * indexes) and, when store = mongodb, readmodel_mongo_migrate (read-model indexes).
 * 0 all in place, 1 something failed. */
int cli_migrate_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err);

/* dossier stop: 0 once the supervisor said ctl.stopping, else 1. */
int cli_stop_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err);

/* The status table (NAME INSTANCE PID STATE UPTIME RESTARTS) of a ctl.status body.
 * Returns 0, or -2 when the body is not a process list. */
int cli_status_print_table (const char *body, size_t size, FILE *out);

/* "12.5s", "3m04s", "2h05m", "3d04h". */
void cli_format_duration (double seconds, char *buf, size_t size);

#endif
