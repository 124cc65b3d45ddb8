/* dossier — the command-line tool: parses the command line, loads the config and
 * runs one subcommand (cli_ingest.c, cli_status.c, cli_rebuild.c). */
#include "cli_args.h"
#include "cli_commands.h"
#include "cmd_config.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
    if (cli_config_is_command (argc, argv))     /* needs no config file: cmd_config.c */
        return cli_config_main (argc, argv, stdout, stderr);
    cli_args_t args;
    char error [256];
    if (cli_args_parse (argc, argv, &args, error, sizeof error) != 0) {
        fprintf (stderr, "dossier: %s\n", error);
        fprintf (stderr, "Try 'dossier --help'.\n");
        return 1;
    }
    if (args.command == CLI_CMD_HELP || args.help) {
        cli_args_usage (stdout, args.command);
        return 0;
    }
    if (args.config && access (args.config, R_OK) != 0) {
        fprintf (stderr, "dossier: cannot read config %s: %s\n", args.config, strerror (errno));
        return 1;
    }
    config_t *config = config_load (args.config);
    if (!config) {
        fprintf (stderr, "dossier: cannot load the config (%s)\n",
                 args.config ? args.config : "$DOSSIER_CONFIG");
        return 1;
    }
    /* Common code logs JSON lines; for a person at a terminal only errors matter. */
    log_init ("cli", "error");
    int rc = 1;
    switch (args.command) {
        case CLI_CMD_INGEST:  rc = cli_ingest_run (config, &args, stdout, stderr); break;
        case CLI_CMD_STATUS:  rc = cli_status_run (config, &args, stdout, stderr); break;
        case CLI_CMD_REBUILD: rc = cli_rebuild_run (config, &args, stdout, stderr); break;
        case CLI_CMD_STOP:    rc = cli_stop_run (config, &args, stdout, stderr); break;
        case CLI_CMD_MIGRATE: rc = cli_migrate_run (config, &args, stdout, stderr); break;
        default:              break;
    }
    config_destroy (&config);
    return rc;
}
