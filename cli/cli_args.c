/* cli_args — argv → cli_args_t (see cli_args.h). Options may come before or after
 * the subcommand; each subcommand accepts only the options that mean something to it. */
#include "cli_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int
s_error (char *err, size_t err_size, const char *fmt, ...)
{
    if (err && err_size) {
        va_list args;
        va_start (args, fmt);
        vsnprintf (err, err_size, fmt, args);
        va_end (args);
    }
    return -2;
}

/* "--name VALUE" or "--name=VALUE": returns the value and advances *i, or NULL if
 * arg is not this option; *missing is set when the option has no value. */
static const char *
s_option_value (int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t len = strlen (name);
    const char *arg = argv [*i];
    if (strncmp (arg, name, len) != 0)
        return NULL;
    if (arg [len] == '=')
        return arg + len + 1;
    if (arg [len] != 0)
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv [++*i];
}

static int
s_parse_seconds (const char *text, double *out)
{
    char *end;
    errno = 0;
    double value = strtod (text, &end);
    if (errno || end == text || *end || !isfinite (value) || value <= 0 || value > 86400.0 * 365)
        return -2;
    *out = value;
    return 0;
}

int
cli_args_parse (int argc, char **argv, cli_args_t *args, char *err, size_t err_size)
{
    memset (args, 0, sizeof *args);
    args->command = CLI_CMD_HELP;
    args->window = CLI_INGEST_WINDOW;
    const char *command = NULL, *timeout = NULL, *window = NULL;
    const char *positional [4];
    int n_positional = 0;
    int options_done = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *value;
        int missing = 0;
        if (options_done || arg [0] != '-' || strcmp (arg, "-") == 0) {
            if (!command)
                command = arg;
            else
            if (n_positional < (int) (sizeof positional / sizeof positional [0]))
                positional [n_positional++] = arg;
            else
                return s_error (err, err_size, "too many arguments");
            continue;
        }
        if (strcmp (arg, "--") == 0)
            options_done = 1;
        else
        if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0)
            args->help = 1;
        else
        if (strcmp (arg, "--json") == 0)
            args->json = 1;
        else
        if (strcmp (arg, "--quiet") == 0 || strcmp (arg, "-q") == 0)
            args->quiet = 1;
        else
        if ((value = s_option_value (argc, argv, &i, "--config", &missing)))
            args->config = value;
        else
        if ((value = s_option_value (argc, argv, &i, "--timeout", &missing)))
            timeout = value;
        else
        if ((value = s_option_value (argc, argv, &i, "--window", &missing)))
            window = value;
        else
        if ((value = s_option_value (argc, argv, &i, "--to", &missing)))
            args->to = value;
        else
        if (missing)
            return s_error (err, err_size, "option %s needs a value", arg);
        else
            return s_error (err, err_size, "unknown option '%s'", arg);
        if (args->config && !*args->config)
            return s_error (err, err_size, "--config needs a path");
    }

    if (!command || strcmp (command, "help") == 0) {
        args->command = CLI_CMD_HELP;
        if (command && n_positional == 1) {
            /* "dossier help ingest" is "dossier ingest --help" */
            cli_args_t inner;
            char *inner_argv [] = { argv [0], (char *) positional [0], "--help", NULL };
            if (cli_args_parse (3, inner_argv, &inner, err, err_size) != 0)
                return -2;
            args->command = inner.command;
            args->help = 1;
        }
        else
        if (n_positional > 1)
            return s_error (err, err_size, "help takes at most one command");
        return 0;
    }
    if (strcmp (command, "ingest") == 0)
        args->command = CLI_CMD_INGEST;
    else
    if (strcmp (command, "status") == 0)
        args->command = CLI_CMD_STATUS;
    else
    if (strcmp (command, "rebuild") == 0)
        args->command = CLI_CMD_REBUILD;
    else
    if (strcmp (command, "stop") == 0)
        args->command = CLI_CMD_STOP;
    else
    if (strcmp (command, "migrate") == 0)
        args->command = CLI_CMD_MIGRATE;
    else
        return s_error (err, err_size, "unknown command '%s'", command);
    if (args->help)
        return 0;               /* usage wins over anything else on the line */

    switch (args->command) {
        case CLI_CMD_INGEST:
            if (n_positional != 1)
                return s_error (err, err_size, "ingest needs exactly one FILE (or - for stdin)");
            args->file = positional [0];
            args->timeout_s = CLI_INGEST_TIMEOUT_S;
            break;
        case CLI_CMD_REBUILD:
            args->timeout_s = CLI_REBUILD_TIMEOUT_S;
            break;
        case CLI_CMD_MIGRATE:
            args->timeout_s = CLI_MIGRATE_TIMEOUT_S;
            break;
        default:
            args->timeout_s = CLI_CTL_TIMEOUT_S;
            break;
    }
    if (args->command != CLI_CMD_INGEST && n_positional > 0)
        return s_error (err, err_size, "unexpected argument '%s'", positional [0]);
    if (args->to && args->command != CLI_CMD_REBUILD)
        return s_error (err, err_size, "--to is an option of rebuild");
    if (args->to && !*args->to)
        return s_error (err, err_size, "--to needs a file name");
    if (window && args->command != CLI_CMD_INGEST)
        return s_error (err, err_size, "--window is an option of ingest");
    if (window) {
        char *end;
        errno = 0;
        long n = strtol (window, &end, 10);
        if (errno || end == window || *end || n < 1 || n > 100000)
            return s_error (err, err_size, "--window must be 1..100000, not '%s'", window);
        args->window = n;
    }
    if (timeout && s_parse_seconds (timeout, &args->timeout_s) != 0)
        return s_error (err, err_size, "--timeout must be a positive number of seconds, not '%s'", timeout);
    return 0;
}

void
cli_args_usage (FILE *out, cli_command_t command)
{
    switch (command) {
        case CLI_CMD_INGEST:
            fprintf (out,
                "usage: dossier ingest FILE.jsonl|- [--json] [--timeout S] [--window N] [--quiet]\n"
                "Sends every non-blank line (one client record) to the ingest process, %d at a\n"
                "time, and prints a summary. Unanswered lines and 503 answers are re-sent (the\n"
                "same line gives the same command id, so this is safe) until --timeout (%.0f s).\n"
                "Exit 0: all accepted; 2: some rejected; 1: failure (deadline, no input).\n",
                CLI_INGEST_WINDOW, CLI_INGEST_TIMEOUT_S);
            break;
        case CLI_CMD_STATUS:
            fprintf (out,
                "usage: dossier status [--json] [--timeout S]\n"
                "Asks the supervisor for its processes: NAME INSTANCE PID STATE UPTIME RESTARTS.\n");
            break;
        case CLI_CMD_REBUILD:
            fprintf (out,
                "usage: dossier rebuild [--to FILE] [--json] [--timeout S]\n"
                "Asks the projector to rebuild the read models from the event log (into FILE\n"
                "with --to), showing progress. --timeout is the longest wait for any answer\n"
                "(default %.0f s).\n", CLI_REBUILD_TIMEOUT_S);
            break;
        case CLI_CMD_STOP:
            fprintf (out,
                "usage: dossier stop [--timeout S]\n"
                "Asks the supervisor to stop every process gracefully.\n");
            break;
        case CLI_CMD_MIGRATE:
            fprintf (out,
                "usage: dossier migrate [--timeout S]\n"
                "Creates the event log's schema and indexes (dossier-store --migrate) and, on\n"
                "MongoDB, the read models' indexes. Idempotent; needs no running processes.\n"
                "Exit 0: all in place; 1: something could not be created (see the messages).\n");
            break;
        default:
            fprintf (out,
                "usage: dossier [--config PATH] COMMAND [OPTIONS]\n"
                "\n"
                "commands:\n"
                "  ingest FILE|-    send client records (JSON lines) to be opened as cases\n"
                "  status           show the supervised processes\n"
                "  rebuild [--to F] rebuild the read models from the event log\n"
                "  stop             stop all processes\n"
                "  migrate          create the storage schema and indexes\n"
                "  help [COMMAND]   this text, or a command's usage\n"
                "\n"
                "The config file is $DOSSIER_CONFIG if set, else --config PATH, else built-in\n"
                "defaults (common/config.c).\n");
            break;
    }
}
