/* cli_rebuild — `dossier rebuild [--to FILE]`: asks the projector to rebuild the
 * read models, shows its ctl.progress, ends on ctl.done or ctl.error. The timeout
 * is the longest silence accepted, so a long rebuild that reports progress is fine. */
#include "cli_commands.h"
#include "cli_ctl.h"
#include "cli_progress.h"

#include <jansson.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/* Absolute form of path (the projector runs elsewhere); the file need not exist.
 * Caller frees; NULL on failure. */
static char *
s_absolute (const char *path)
{
    if (path [0] == '/')
        return strdup (path);
    char cwd [PATH_MAX];
    if (!getcwd (cwd, sizeof cwd))
        return NULL;
    size_t size = strlen (cwd) + strlen (path) + 2;
    char *result = malloc (size);
    if (result)
        snprintf (result, size, "%s/%s", cwd, path [0] == '.' && path [1] == '/' ? path + 2 : path);
    return result;
}

int
cli_rebuild_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err)
{
    char *body = NULL;
    if (args->to) {
        /* A file for sqlite read models (made absolute: the projector runs elsewhere);
         * a database name, as given, for mongodb ones. */
        bool database = strcmp (config_get (config, "store", "sqlite"), "mongodb") == 0;
        char *target = database ? strdup (args->to) : s_absolute (args->to);
        json_t *root = target ? json_pack ("{s:s}", "target", target) : NULL;
        body = root ? json_dumps (root, JSON_COMPACT) : NULL;
        json_decref (root);
        free (target);
        if (!body) {
            fprintf (err, "dossier: cannot use --to %s (not UTF-8, or no working directory)\n", args->to);
            return 1;
        }
    }
    char *endpoint = NULL;
    zsock_t *sock = cli_ctl_connect (config, "projector", &endpoint, err);
    if (!sock) {
        free (body);
        return 1;
    }
    int rc = 1;
    int tty = isatty (fileno (err)) && !args->quiet;
    int progress_shown = 0;
    int64_t next_plain_ms = 0;
    char id [ENVELOPE_ID_MAX];
    if (cli_ctl_send (sock, "ctl.rebuild", body ? body : "{}", id) != 0) {
        fprintf (err, "dossier: cannot send to the projector at %s\n", endpoint);
        goto done;
    }
    int timeout_ms = (int) (args->timeout_s * 1000);
    for (;;) {
        zmsg_t *msg = NULL;
        envelope_t env;
        int got = cli_ctl_recv (sock, timeout_ms, &msg, &env);
        if (got == -1) {
            if (progress_shown && tty)
                fprintf (err, "\n");
            if (zsys_interrupted)
                fprintf (err, "dossier: interrupted\n");
            else
                fprintf (err, "dossier: no word from the projector at %s for %.0f s\n",
                         endpoint, args->timeout_s);
            break;
        }
        if (got != 0)
            continue;
        if (env.causation_id [0] && !streq (env.causation_id, id)) {
            zmsg_destroy (&msg);
            continue;
        }
        json_t *json = json_loadb (env.body ? env.body : "", env.body_size, 0, NULL);
        if (streq (env.type, "ctl.progress")) {
            json_int_t done = json_integer_value (json_object_get (json, "done"));
            json_int_t total = json_integer_value (json_object_get (json, "total"));
            int64_t now = zclock_mono ();
            if (tty) {
                char bar [64];
                cli_progress_bar (total > 0 ? (double) done / (double) total : 0, 30, bar, sizeof bar);
                fprintf (err, "\r%s %lld/%lld events\033[K", bar, (long long) done, (long long) total);
                fflush (err);
                progress_shown = 1;
            }
            else
            if (!args->quiet && now >= next_plain_ms) {
                fprintf (err, "rebuild: %lld/%lld events\n", (long long) done, (long long) total);
                next_plain_ms = now + 1000;
            }
        }
        else
        if (streq (env.type, "ctl.done")) {
            if (progress_shown)
                fprintf (err, "\r\033[K");
            if (args->json)
                fprintf (out, "%.*s\n", (int) env.body_size, env.body);
            else {
                double events = json_number_value (json_object_get (json, "events"));
                double seconds = json_number_value (json_object_get (json, "seconds"));
                fprintf (out, "rebuilt %.0f events in %.2f s (%.0f events/s)\n", events, seconds,
                         seconds > 0 ? events / seconds : events);
            }
            rc = 0;
        }
        else
        if (streq (env.type, "ctl.error")) {
            if (progress_shown)
                fprintf (err, "\n");
            const char *error = json_string_value (json_object_get (json, "error"));
            const char *detail = json_string_value (json_object_get (json, "detail"));
            if (error || detail)
                fprintf (err, "dossier: rebuild failed: %s%s%s\n", error ? error : "",
                         error && detail ? ": " : "", detail ? detail : "");
            else
                fprintf (err, "dossier: rebuild failed: %.*s\n", (int) env.body_size, env.body);
            json_decref (json);
            zmsg_destroy (&msg);
            break;
        }
        json_decref (json);
        int finished = streq (env.type, "ctl.done");
        zmsg_destroy (&msg);
        if (finished)
            break;
    }
done:
    zsock_destroy (&sock);
    free (endpoint);
    free (body);
    return rc;
}
