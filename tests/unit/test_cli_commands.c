/* test_cli_commands — the dossier subcommands against fake servers run as actors in
 * this process: a fake ingest (answers by a "mode" field in each record: ok, dup,
 * bad, busy_once, silent_once, silent), a fake supervisor and a fake projector. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "endpoints.h"
#include "envelope.h"
#include "../../cli/cli_args.h"
#include "../../cli/cli_commands.h"

typedef struct {
    char dir [64];
    config_t *config;
} s_env_t;

/* The test's env, for s_cleanup when an assertion cut the test short. */
static s_env_t *s_current = NULL;

static void
s_env_setup (s_env_t *env, const char *extra)
{
    s_current = env;
    snprintf (env->dir, sizeof env->dir, "/tmp/dcli-XXXXXX");
    assert_non_null (mkdtemp (env->dir));
    char path [128];
    snprintf (path, sizeof path, "%s/test.cfg", env->dir);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f, "dossier\n    data_dir = \"%s/data\"\n    cli_answer_timeout_ms = \"300\"\n"
                "    cli_retry_delay_ms = \"50\"\n%s", env->dir, extra ? extra : "");
    fclose (f);
    unsetenv ("DOSSIER_CONFIG");
    env->config = config_load (path);
    assert_non_null (env->config);
}

static void
s_env_teardown (s_env_t *env)
{
    config_destroy (&env->config);
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", env->dir);
    if (system (command) != 0)
        fprintf (stderr, "could not remove %s\n", env->dir);
    s_current = NULL;
}

/* Per-test teardown: runs even when an assertion ended the test early. */
static int
s_cleanup (void **state)
{
    (void) state;
    unsetenv ("DOSSIER_CLI_ANSWER_TIMEOUT_MS");
    if (s_current)
        s_env_teardown (s_current);
    return 0;
}

static char *
s_write_file (s_env_t *env, const char *name, const char *text)
{
    char *path = malloc (256);
    snprintf (path, 256, "%s/%s", env->dir, name);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
    return path;
}

/* Binds a ROUTER at endpoint name of config (the fakes' common start). */
static zsock_t *
s_bind (config_t *config, const char *name)
{
    char *endpoint = endpoints_get (config, name);
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    assert_int_equal (zsock_bind (sock, "%s", endpoint), 0);
    free (endpoint);
    return sock;
}

static void
s_reply (zsock_t *sock, zframe_t *route, const char *type, const char *cause, const char *body)
{
    envelope_t env;
    envelope_init (&env, type, "fake");
    envelope_set (env.causation_id, sizeof env.causation_id, cause);
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    envelope_send (sock, route, &env);
}

/* ---------------------------------------------------------------- fake ingest */

static void
s_fake_ingest (zsock_t *pipe, void *args)
{
    zsock_t *router = s_bind ((config_t *) args, "ingest");
    zhash_t *attempts = zhash_new ();           /* request id → count */
    zhash_autofree (attempts);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    zsock_signal (pipe, 0);
    long received = 0;
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break;
        zframe_t *routes [1];
        zmsg_t *msg = NULL;
        envelope_t env;
        if (envelope_recv (router, 1, routes, &msg, &env) != 0)
            continue;
        received++;
        char *count = (char *) zhash_lookup (attempts, env.id);
        int n = count ? atoi (count) + 1 : 1;
        char text [16];
        snprintf (text, sizeof text, "%d", n);
        zhash_update (attempts, env.id, text);
        long line = strtol (env.id + 5, NULL, 10);
        json_t *record = json_loadb (env.body, env.body_size, 0, NULL);
        const char *mode = json_string_value (json_object_get (record, "mode"));
        char body [256];
        if (!record)
            snprintf (body, sizeof body, "{\"line\":%ld,\"ok\":false,\"status\":400,\"error\":\"malformed_json\","
                                         "\"detail\":\"not JSON\"}", line);
        else
        if (mode && streq (mode, "bad"))
            snprintf (body, sizeof body, "{\"line\":%ld,\"ok\":false,\"status\":422,\"error\":\"validation.mode\","
                                         "\"detail\":\"bad mode\"}", line);
        else
        if (mode && streq (mode, "busy_once") && n == 1)
            snprintf (body, sizeof body, "{\"line\":%ld,\"ok\":false,\"status\":503,\"error\":\"unavailable\","
                                         "\"detail\":\"try again\"}", line);
        else
        if (mode && (streq (mode, "silent") || (streq (mode, "silent_once") && n == 1)))
            body [0] = 0;
        else
        if (mode && streq (mode, "die") && n == 1) {
            /* a crash and restart: whatever was queued for the old socket is lost */
            json_decref (record);
            zmsg_destroy (&msg);
            zpoller_remove (poller, router);
            zsock_destroy (&router);
            router = s_bind ((config_t *) args, "ingest");
            zpoller_add (poller, router);
            continue;
        }
        else
            snprintf (body, sizeof body, "{\"line\":%ld,\"ok\":true,\"case_id\":\"c-%ld\",\"duplicate\":%s}",
                      line, line, mode && streq (mode, "dup") ? "true" : "false");
        if (body [0])
            s_reply (router, routes [0], "ingest.result", env.id, body);
        json_decref (record);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zhash_destroy (&attempts);
    zsock_destroy (&router);
}

typedef struct {
    int rc;
    char *out;
    char *err;
} s_run_t;

static s_run_t
s_cli (s_env_t *env, int (*command) (config_t *, const cli_args_t *, FILE *, FILE *), ...)
{
    char *argv [16] = { "dossier" };
    int argc = 1;
    va_list list;
    va_start (list, command);
    char *arg;
    while (argc < 15 && (arg = va_arg (list, char *)))
        argv [argc++] = arg;
    va_end (list);
    cli_args_t args;
    char error [256];
    assert_int_equal (cli_args_parse (argc, argv, &args, error, sizeof error), 0);
    s_run_t run = { 0 };
    size_t out_size = 0, err_size = 0;
    FILE *out = open_memstream (&run.out, &out_size);
    FILE *err = open_memstream (&run.err, &err_size);
    run.rc = command (env->config, &args, out, err);
    fclose (out);
    fclose (err);
    return run;
}

static void
s_run_free (s_run_t *run)
{
    free (run->out);
    free (run->err);
}

static json_t *
s_summary (s_run_t *run)
{
    json_t *root = json_loads (run->out, 0, NULL);
    if (!root)
        fail_msg ("not a JSON summary: %s / %s", run->out, run->err);
    return root;
}

static json_int_t
s_field (json_t *root, const char *key)
{
    return json_integer_value (json_object_get (root, key));
}

static void
test_ingest_mixed_file (void **state)
{
    (void) state;
    static s_env_t env;         /* static: s_cleanup may need it after a failed assertion */
    s_env_setup (&env, NULL);
    zactor_t *fake = zactor_new (s_fake_ingest, env.config);
    char *path = s_write_file (&env, "mixed.jsonl",
        "{\"mode\":\"ok\",\"n\":1}\r\n"
        "\r\n"
        "{oops\r\n"
        "{\"mode\":\"dup\"}\n"
        "{\"mode\":\"bad\"}\n"
        "{\"mode\":\"busy_once\"}\n"
        "{\"mode\":\"silent_once\"}\n"
        "   \n"
        "{\"mode\":\"ok\",\"n\":9}");
    /* a small window so that lines wait for room */
    s_run_t run = s_cli (&env, cli_ingest_run, "ingest", path, "--json", "--window", "2", "--timeout", "20", NULL);
    assert_int_equal (run.rc, 2);
    json_t *s = s_summary (&run);
    assert_int_equal (s_field (s, "accepted"), 5);
    assert_int_equal (s_field (s, "new"), 4);
    assert_int_equal (s_field (s, "duplicate"), 1);
    assert_int_equal (s_field (s, "rejected"), 2);
    assert_int_equal (s_field (s, "unanswered"), 0);
    json_t *errors = json_object_get (s, "errors");
    assert_int_equal (json_array_size (errors), 2);
    assert_int_equal (s_field (json_array_get (errors, 0), "line"), 3);
    assert_int_equal (s_field (json_array_get (errors, 0), "status"), 400);
    assert_int_equal (s_field (json_array_get (errors, 1), "line"), 5);
    assert_string_equal (json_string_value (json_object_get (json_array_get (errors, 1), "error")),
                         "validation.mode");
    json_decref (s);
    s_run_free (&run);

    /* the same file as text, quiet */
    run = s_cli (&env, cli_ingest_run, "ingest", path, "-q", NULL);
    assert_int_equal (run.rc, 2);
    assert_string_equal (run.out,
        "accepted 5 (new 4, duplicate 1), rejected 2\n"
        "line 3: 400 malformed_json: not JSON\n"
        "line 5: 422 validation.mode: bad mode\n");
    assert_string_equal (run.err, "");
    s_run_free (&run);
    free (path);
    zactor_destroy (&fake);
    s_env_teardown (&env);
}

static void
test_ingest_many_lines_and_stdin (void **state)
{
    (void) state;
    static s_env_t env;         /* static: s_cleanup may need it after a failed assertion */
    s_env_setup (&env, NULL);
    zactor_t *fake = zactor_new (s_fake_ingest, env.config);
    enum { N = 3000 };
    char *text = malloc (N * 40);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t) sprintf (text + len, "{\"mode\":\"ok\",\"n\":%d}\n", i);
    char *path = s_write_file (&env, "many.jsonl", text);
    free (text);
    s_run_t run = s_cli (&env, cli_ingest_run, "ingest", path, "--window", "100", NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.out, "accepted 3000 (new 3000, duplicate 0), rejected 0\n");
    /* not a terminal: plain progress lines, no escape codes */
    assert_non_null (strstr (run.err, "ingest:"));
    assert_null (strstr (run.err, "\033["));
    s_run_free (&run);

    /* "-" reads stdin */
    int saved = dup (STDIN_FILENO);
    int fd = open (path, O_RDONLY);
    dup2 (fd, STDIN_FILENO);
    close (fd);
    run = s_cli (&env, cli_ingest_run, "ingest", "-", "--json", "-q", NULL);
    dup2 (saved, STDIN_FILENO);
    close (saved);
    assert_int_equal (run.rc, 0);
    json_t *s = s_summary (&run);
    assert_int_equal (s_field (s, "accepted"), N);
    json_decref (s);
    s_run_free (&run);
    free (path);
    zactor_destroy (&fake);
    s_env_teardown (&env);
}

static void
test_ingest_deadline_and_failures (void **state)
{
    (void) state;
    static s_env_t env;         /* static: s_cleanup may need it after a failed assertion */
    s_env_setup (&env, "    body_limit = \"64\"\n");
    zactor_t *fake = zactor_new (s_fake_ingest, env.config);
    char *path = s_write_file (&env, "stuck.jsonl",
        "{\"mode\":\"ok\"}\n"
        "{\"mode\":\"silent\"}\n"
        "{\"mode\":\"ok\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n");
    int64_t started = zclock_mono ();
    s_run_t run = s_cli (&env, cli_ingest_run, "ingest", path, "--json", "--timeout", "3", "-q", NULL);
    assert_true (zclock_mono () - started >= 3000);
    assert_int_equal (run.rc, 1);
    json_t *s = s_summary (&run);
    assert_int_equal (s_field (s, "accepted"), 1);
    assert_int_equal (s_field (s, "unanswered"), 1);
    /* the line over body_limit is rejected without being sent */
    assert_int_equal (s_field (s, "rejected"), 1);
    json_t *e = json_array_get (json_object_get (s, "errors"), 0);
    assert_int_equal (s_field (e, "line"), 3);
    assert_int_equal (s_field (e, "status"), 413);
    json_decref (s);
    assert_non_null (strstr (run.err, "deadline of 3 s reached with 1 lines unanswered"));
    s_run_free (&run);

    run = s_cli (&env, cli_ingest_run, "ingest", "/nonexistent/file.jsonl", NULL);
    assert_int_equal (run.rc, 1);
    assert_non_null (strstr (run.err, "cannot open /nonexistent/file.jsonl"));
    s_run_free (&run);

    /* a directory opens but cannot be read */
    run = s_cli (&env, cli_ingest_run, "ingest", env.dir, "-q", NULL);
    assert_int_equal (run.rc, 1);
    assert_non_null (strstr (run.err, "cannot read"));
    s_run_free (&run);
    free (path);
    zactor_destroy (&fake);

    /* nobody listening: the CLI says so and gives up at the deadline */
    path = s_write_file (&env, "one.jsonl", "{\"mode\":\"ok\"}\n");
    run = s_cli (&env, cli_ingest_run, "ingest", path, "--timeout", "0.5", "-q", NULL);
    assert_int_equal (run.rc, 1);
    assert_non_null (strstr (run.out, "accepted 0 (new 0, duplicate 0), rejected 0, unanswered 1"));
    assert_non_null (strstr (run.err, "no answer from ingest"));
    s_run_free (&run);
    free (path);
    s_env_teardown (&env);
}

static void
test_ingest_survives_an_ingest_restart (void **state)
{
    (void) state;
    static s_env_t env;         /* static: s_cleanup may need it after a failed assertion */
    s_env_setup (&env, NULL);
    /* an answer timeout far beyond the deadline: only noticing the disconnect helps */
    setenv ("DOSSIER_CLI_ANSWER_TIMEOUT_MS", "60000", 1);
    zactor_t *fake = zactor_new (s_fake_ingest, env.config);
    char *text = malloc (600 * 40);
    size_t len = 0;
    for (int i = 0; i < 600; i++)
        len += (size_t) sprintf (text + len, "{\"mode\":\"%s\",\"n\":%d}\n", i == 200 ? "die" : "ok", i);
    char *path = s_write_file (&env, "restart.jsonl", text);
    free (text);
    s_run_t run = s_cli (&env, cli_ingest_run, "ingest", path, "--json", "--timeout", "15", NULL);
    unsetenv ("DOSSIER_CLI_ANSWER_TIMEOUT_MS");
    assert_int_equal (run.rc, 0);
    json_t *s = s_summary (&run);
    assert_int_equal (s_field (s, "accepted"), 600);
    json_decref (s);
    assert_non_null (strstr (run.err, "lost the connection to ingest; re-sending"));
    s_run_free (&run);
    free (path);
    zactor_destroy (&fake);
    s_env_teardown (&env);
}

static void
test_ingest_empty_input (void **state)
{
    (void) state;
    static s_env_t env;         /* static: s_cleanup may need it after a failed assertion */
    s_env_setup (&env, NULL);
    char *path = s_write_file (&env, "empty.jsonl", "\n\r\n  \n");
    s_run_t run = s_cli (&env, cli_ingest_run, "ingest", path, "-q", NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.out, "accepted 0 (new 0, duplicate 0), rejected 0\n");
    s_run_free (&run);
    free (path);
    s_env_teardown (&env);
}

/* ---------------------------------------------------------------- fake supervisor */

static void
s_fake_supervisor (zsock_t *pipe, void *args)
{
    zsock_t *router = s_bind ((config_t *) args, "supervisor");
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    zsock_signal (pipe, 0);
    while (zpoller_wait (poller, -1) == router) {
        zframe_t *routes [1];
        zmsg_t *msg = NULL;
        envelope_t env;
        if (envelope_recv (router, 1, routes, &msg, &env) != 0)
            continue;
        /* a stray answer first: the CLI must match by cause */
        s_reply (router, routes [0], "ctl.status", "someone-else", "{}");
        if (streq (env.type, "ctl.status"))
            s_reply (router, routes [0], "ctl.status", env.id,
                     "{\"processes\":[{\"name\":\"store\",\"instance\":0,\"pid\":77,\"state\":\"running\","
                     "\"uptime_s\":75.2,\"restarts\":1}]}");
        else
        if (streq (env.type, "ctl.stop"))
            s_reply (router, routes [0], "ctl.stopping", env.id, "{}");
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static void
test_status_and_stop (void **state)
{
    (void) state;
    static s_env_t env;         /* static: s_cleanup may need it after a failed assertion */
    s_env_setup (&env, NULL);

    /* no supervisor: a clear message within the timeout */
    int64_t started = zclock_mono ();
    s_run_t run = s_cli (&env, cli_status_run, "status", "--timeout", "0.3", NULL);
    assert_true (zclock_mono () - started < 2000);
    assert_int_equal (run.rc, 1);
    assert_non_null (strstr (run.err, "no supervisor answered"));
    assert_non_null (strstr (run.err, "is it running?"));
    s_run_free (&run);
    run = s_cli (&env, cli_stop_run, "stop", "--timeout", "0.3", NULL);
    assert_int_equal (run.rc, 1);
    s_run_free (&run);

    zactor_t *fake = zactor_new (s_fake_supervisor, env.config);
    run = s_cli (&env, cli_status_run, "status", NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.out,
        "NAME         INSTANCE PID      STATE     UPTIME    RESTARTS\n"
        "store        0        77       running   1m15s     1\n");
    s_run_free (&run);
    run = s_cli (&env, cli_status_run, "status", "--json", NULL);
    assert_int_equal (run.rc, 0);
    json_t *root = json_loads (run.out, 0, NULL);
    assert_non_null (root);
    assert_int_equal (json_array_size (json_object_get (root, "processes")), 1);
    json_decref (root);
    s_run_free (&run);
    run = s_cli (&env, cli_stop_run, "stop", NULL);
    assert_int_equal (run.rc, 0);
    assert_non_null (strstr (run.out, "stopping"));
    s_run_free (&run);
    zactor_destroy (&fake);
    s_env_teardown (&env);
}

/* ---------------------------------------------------------------- fake projector */

typedef struct {
    config_t *config;
    const char *mode;           /* "done", "error" or "silent" */
    char target [512];          /* what ctl.rebuild asked for */
} s_projector_t;

static void
s_fake_projector (zsock_t *pipe, void *args)
{
    s_projector_t *self = (s_projector_t *) args;
    zsock_t *router = s_bind (self->config, "projector");
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    zsock_signal (pipe, 0);
    while (zpoller_wait (poller, -1) == router) {
        zframe_t *routes [1];
        zmsg_t *msg = NULL;
        envelope_t env;
        if (envelope_recv (router, 1, routes, &msg, &env) != 0)
            continue;
        json_t *body = json_loadb (env.body, env.body_size, 0, NULL);
        const char *target = json_string_value (json_object_get (body, "target"));
        snprintf (self->target, sizeof self->target, "%s", target ? target : (body ? "(none)" : "(not json)"));
        json_decref (body);
        if (streq (self->mode, "done")) {
            for (int i = 1; i <= 3; i++) {
                char progress [64];
                snprintf (progress, sizeof progress, "{\"done\":%d,\"total\":30}", i * 10);
                s_reply (router, routes [0], "ctl.progress", env.id, progress);
            }
            s_reply (router, routes [0], "ctl.done", env.id, "{\"events\":30,\"seconds\":0.5}");
        }
        else
        if (streq (self->mode, "error"))
            s_reply (router, routes [0], "ctl.error", env.id, "{\"error\":\"io\",\"detail\":\"disk full\"}");
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static void
test_rebuild (void **state)
{
    (void) state;
    static s_env_t env;         /* static: s_cleanup may need it after a failed assertion */
    s_env_setup (&env, NULL);
    s_projector_t projector = { .config = env.config, .mode = "done" };
    zactor_t *fake = zactor_new (s_fake_projector, &projector);
    s_run_t run = s_cli (&env, cli_rebuild_run, "rebuild", "--to", "out/rebuilt.db", NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.out, "rebuilt 30 events in 0.50 s (60 events/s)\n");
    assert_non_null (strstr (run.err, "rebuild: 10/30 events"));
    /* the target is made absolute: the projector runs in another directory */
    char cwd [512], expected [600];
    assert_non_null (getcwd (cwd, sizeof cwd));
    snprintf (expected, sizeof expected, "%s/out/rebuilt.db", cwd);
    assert_string_equal (projector.target, expected);
    s_run_free (&run);

    run = s_cli (&env, cli_rebuild_run, "rebuild", "--json", "--to", "/abs/x.db", NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (run.out, "{\"events\":30,\"seconds\":0.5}\n");
    assert_string_equal (projector.target, "/abs/x.db");
    s_run_free (&run);
    run = s_cli (&env, cli_rebuild_run, "rebuild", "-q", NULL);
    assert_int_equal (run.rc, 0);
    assert_string_equal (projector.target, "(none)");      /* body {} without --to */
    assert_string_equal (run.err, "");
    s_run_free (&run);
    zactor_destroy (&fake);

    projector.mode = "error";
    fake = zactor_new (s_fake_projector, &projector);
    run = s_cli (&env, cli_rebuild_run, "rebuild", NULL);
    assert_int_equal (run.rc, 1);
    assert_non_null (strstr (run.err, "rebuild failed: io: disk full"));
    s_run_free (&run);
    zactor_destroy (&fake);

    projector.mode = "silent";
    fake = zactor_new (s_fake_projector, &projector);
    run = s_cli (&env, cli_rebuild_run, "rebuild", "--timeout", "0.3", NULL);
    assert_int_equal (run.rc, 1);
    assert_non_null (strstr (run.err, "no word from the projector"));
    s_run_free (&run);
    zactor_destroy (&fake);
    s_env_teardown (&env);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_teardown (test_ingest_mixed_file, s_cleanup),
        cmocka_unit_test_teardown (test_ingest_many_lines_and_stdin, s_cleanup),
        cmocka_unit_test_teardown (test_ingest_deadline_and_failures, s_cleanup),
        cmocka_unit_test_teardown (test_ingest_survives_an_ingest_restart, s_cleanup),
        cmocka_unit_test_teardown (test_ingest_empty_input, s_cleanup),
        cmocka_unit_test_teardown (test_status_and_stop, s_cleanup),
        cmocka_unit_test_teardown (test_rebuild, s_cleanup),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
