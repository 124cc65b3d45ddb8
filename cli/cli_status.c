/* cli_status — `dossier status` and `dossier stop`: one request to the supervisor's
 * control socket, an answer within the timeout or a clear failure. */
#include "cli_commands.h"
#include "cli_ctl.h"

#include <jansson.h>
#include <string.h>

void
cli_format_duration (double seconds, char *buf, size_t size)
{
    if (!(seconds >= 0))
        seconds = 0;
    if (seconds < 60)
        snprintf (buf, size, "%.1fs", seconds);
    else
    if (seconds < 3600)
        snprintf (buf, size, "%dm%02ds", (int) (seconds / 60), (int) seconds % 60);
    else
    if (seconds < 86400)
        snprintf (buf, size, "%dh%02dm", (int) (seconds / 3600), (int) (seconds / 60) % 60);
    else
    if (seconds < 86400.0 * 100000)
        snprintf (buf, size, "%dd%02dh", (int) (seconds / 86400), (int) (seconds / 3600) % 24);
    else
        snprintf (buf, size, "long");
}

int
cli_status_print_table (const char *body, size_t size, FILE *out)
{
    json_t *root = json_loadb (body ? body : "", body ? size : 0, 0, NULL);
    json_t *list = root ? json_object_get (root, "processes") : NULL;
    if (!json_is_array (list)) {
        json_decref (root);
        return -2;
    }
    fprintf (out, "%-12s %-8s %-8s %-9s %-9s %s\n", "NAME", "INSTANCE", "PID", "STATE", "UPTIME", "RESTARTS");
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item) {
        const char *name = json_string_value (json_object_get (item, "name"));
        const char *state = json_string_value (json_object_get (item, "state"));
        json_int_t pid = json_integer_value (json_object_get (item, "pid"));
        char pid_text [24] = "-";
        if (pid > 0)
            snprintf (pid_text, sizeof pid_text, "%lld", (long long) pid);
        char uptime [32] = "-";
        if (pid > 0)
            cli_format_duration (json_number_value (json_object_get (item, "uptime_s")), uptime, sizeof uptime);
        fprintf (out, "%-12.31s %-8lld %-8s %-9.15s %-9s %lld\n", name ? name : "?",
                 (long long) json_integer_value (json_object_get (item, "instance")), pid_text,
                 state ? state : "?", uptime,
                 (long long) json_integer_value (json_object_get (item, "restarts")));
    }
    json_decref (root);
    return 0;
}

/* Sends type to the supervisor and waits for the answer (matched by cause). Returns
 * 0 with *msg_p and env, or 1 after printing why. */
static int
s_ask_supervisor (config_t *config, const cli_args_t *args, const char *type,
                  zmsg_t **msg_p, envelope_t *env, FILE *err)
{
    char *endpoint = NULL;
    zsock_t *sock = cli_ctl_connect (config, "supervisor", &endpoint, err);
    if (!sock)
        return 1;
    char id [ENVELOPE_ID_MAX];
    int rc = 1;
    if (cli_ctl_send (sock, type, "{}", id) != 0)
        fprintf (err, "dossier: cannot send to the supervisor at %s\n", endpoint);
    else {
        int64_t deadline = zclock_mono () + (int64_t) (args->timeout_s * 1000);
        while (rc != 0) {
            int64_t left = deadline - zclock_mono ();
            int got = left > 0 ? cli_ctl_recv (sock, (int) left, msg_p, env) : -1;
            if (got == -1) {
                fprintf (err, "dossier: no supervisor answered at %s within %.0f s (is it running?)\n",
                         endpoint, args->timeout_s);
                break;
            }
            if (got == 0 && streq (env->causation_id, id))
                rc = 0;
            else
                zmsg_destroy (msg_p);
        }
    }
    zsock_destroy (&sock);
    free (endpoint);
    return rc;
}

int
cli_status_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    if (s_ask_supervisor (config, args, "ctl.status", &msg, &env, err) != 0)
        return 1;
    int rc = 0;
    if (!streq (env.type, "ctl.status")) {
        fprintf (err, "dossier: the supervisor answered %s: %.*s\n", env.type, (int) env.body_size, env.body);
        rc = 1;
    }
    else
    if (args->json)
        fprintf (out, "%.*s\n", (int) env.body_size, env.body);
    else
    if (cli_status_print_table (env.body, env.body_size, out) != 0) {
        fprintf (err, "dossier: the supervisor's status is not a process list\n");
        rc = 1;
    }
    zmsg_destroy (&msg);
    return rc;
}

int
cli_stop_run (config_t *config, const cli_args_t *args, FILE *out, FILE *err)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    if (s_ask_supervisor (config, args, "ctl.stop", &msg, &env, err) != 0)
        return 1;
    int rc = 0;
    if (streq (env.type, "ctl.stopping"))
        fprintf (out, "supervisor is stopping all processes\n");
    else {
        fprintf (err, "dossier: the supervisor answered %s: %.*s\n", env.type, (int) env.body_size, env.body);
        rc = 1;
    }
    zmsg_destroy (&msg);
    return rc;
}
