/* cmd_config — `dossier config keys [--json]`: the registry of configuration keys
 * (common/config_keys.c). It needs neither a config file nor a running process, so
 * main.c dispatches it before loading the configuration. */
#ifndef DOSSIER_CMD_CONFIG_H
#define DOSSIER_CMD_CONFIG_H

#include <stdio.h>

/* 1 when the subcommand of argv (its first word that is not an option or the value
 * of --config) is "config", else 0. */
int cli_config_is_command (int argc, char **argv);

/* Runs `dossier config ...` (argv as given to main). Returns the exit code: 0 done
 * (or --help), 1 usage error (message to err) or output that could not be written. */
int cli_config_main (int argc, char **argv, FILE *out, FILE *err);

#endif
