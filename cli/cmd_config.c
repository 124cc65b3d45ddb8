/* cmd_config — `dossier config keys [--json]` (see cmd_config.h). The global
 * --config PATH is accepted and ignored: the registry does not depend on it. */
#include "cmd_config.h"

#include "config_keys.h"

#include <string.h>

static const char s_usage [] =
    "usage: dossier config keys [--json]\n"
    "\n"
    "Prints every configuration key the Dossier processes read: its key in the config\n"
    "file (section dossier unless shown as section/key), its environment variable (which\n"
    "wins over the file), its default, and the processes that read it.\n"
    "  --json    one JSON array of {section, key, env, default, processes, binder, description}\n";

/* Index of the first word of argv after from that is not an option or the value of
 * --config; argc when there is none. */
static int
s_next_word (int argc, char **argv, int from)
{
    for (int i = from; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0)
            i++;
        else
        if (argv [i][0] != '-')
            return i;
    }
    return argc;
}

int
cli_config_is_command (int argc, char **argv)
{
    int at = s_next_word (argc, argv, 1);
    return at < argc && strcmp (argv [at], "config") == 0;
}

int
cli_config_main (int argc, char **argv, FILE *out, FILE *err)
{
    int json = 0, help = 0;
    const char *action = NULL;
    int command_at = s_next_word (argc, argv, 1);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        if (i == command_at)
            continue;
        if (strcmp (arg, "--config") == 0) {
            if (++i >= argc) {
                fprintf (err, "dossier: --config needs a PATH\n");
                return 1;
            }
        }
        else
        if (strncmp (arg, "--config=", 9) == 0)
            ;
        else
        if (strcmp (arg, "--json") == 0)
            json = 1;
        else
        if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0)
            help = 1;
        else
        if (arg [0] == '-') {
            fprintf (err, "dossier: config: unknown option %.64s\n%s", arg, s_usage);
            return 1;
        }
        else
        if (!action)
            action = arg;
        else {
            fprintf (err, "dossier: config: unexpected argument %.64s\n%s", arg, s_usage);
            return 1;
        }
    }
    if (help) {
        fputs (s_usage, out);
        return 0;
    }
    if (!action || strcmp (action, "keys") != 0) {
        fprintf (err, "dossier: config: %s%.64s\n%s", action ? "unknown action " : "an action is needed",
                 action ? action : "", s_usage);
        return 1;
    }
    if (config_keys_print (out, json) != 0) {
        fprintf (err, "dossier: config: cannot write the output\n");
        return 1;
    }
    return 0;
}
