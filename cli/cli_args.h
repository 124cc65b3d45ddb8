/* cli_args — the dossier command line: a subcommand (ingest, status, rebuild, stop,
 * help) with its options, and the global --config PATH anywhere on the line. Pure:
 * it only reads argv, so every rule is unit-tested. */
#ifndef DOSSIER_CLI_ARGS_H
#define DOSSIER_CLI_ARGS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_CMD_HELP = 0,
    CLI_CMD_INGEST,
    CLI_CMD_STATUS,
    CLI_CMD_REBUILD,
    CLI_CMD_STOP,
    CLI_CMD_MIGRATE
} cli_command_t;

#define CLI_INGEST_TIMEOUT_S   300.0    /* overall deadline of dossier ingest */
#define CLI_INGEST_WINDOW      1000     /* lines in flight */
#define CLI_CTL_TIMEOUT_S      2.0      /* status and stop: the supervisor answers at once */
#define CLI_REBUILD_TIMEOUT_S  60.0     /* rebuild: longest silence from the projector (one page
                                          * into a slow or busy database can take many seconds) */
#define CLI_MIGRATE_TIMEOUT_S  60.0     /* migrate: the whole run */

typedef struct {
    cli_command_t command;
    int help;                   /* --help / -h given: print the command's usage */
    const char *config;         /* --config PATH (borrowed from argv), NULL if absent */
    const char *file;           /* ingest: FILE, or "-" for stdin */
    const char *to;             /* rebuild --to FILE */
    int json;                   /* --json */
    int quiet;                  /* --quiet / -q: no progress output */
    double timeout_s;           /* --timeout SECONDS, or the command's default */
    long window;                /* ingest --window N */
} cli_args_t;

/* Parses argv (argv[0] is the program). Returns 0 ok; -2 on a usage error, with a
 * one-line message in err (err_size bytes, may be 0). Strings borrow from argv. */
int cli_args_parse (int argc, char **argv, cli_args_t *args, char *err, size_t err_size);

/* Prints usage of one command (CLI_CMD_HELP: the overview) to out. */
void cli_args_usage (FILE *out, cli_command_t command);

#endif
