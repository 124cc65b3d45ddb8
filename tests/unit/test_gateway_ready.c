/* test_gateway_ready — what the gateway's /ready adds from the metrics files on its
 * host: the children the supervisor says are down, and every process whose own
 * health state (dossier_process_health) is not ok; stale files say nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "../../actors/gateway/ready_children.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static char s_dir [64];

static void
s_write (const char *name, const char *text, int age_s)
{
    char path [256];
    snprintf (path, sizeof path, "%s/data/run/metrics/%s", s_dir, name);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
    if (age_s) {
        struct timeval times [2];
        gettimeofday (&times [0], NULL);
        times [0].tv_sec -= age_s;
        times [1] = times [0];
        assert_int_equal (utimes (path, times), 0);
    }
}

static const char *
s_health (const char *process, const char *now)
{
    static char text [1024];
    const char *states [] = { "ok", "starting", "not_ready", "stalled" };
    int n = snprintf (text, sizeof text, "# HELP dossier_process_health x\n# TYPE dossier_process_health gauge\n");
    for (int i = 0; i < 4; i++)
        n += snprintf (text + n, sizeof text - (size_t) n,
                       "dossier_process_health{process=\"%s\",instance=\"0\",state=\"%s\"} %d\n",
                       process, states [i], strcmp (states [i], now) == 0);
    return text;
}

static void
test_names_processes_not_ok (void **state)
{
    (void) state;
    snprintf (s_dir, sizeof s_dir, "/tmp/gwready-%d", (int) getpid ());
    char metrics [128];
    snprintf (metrics, sizeof metrics, "%s/data/run/metrics", s_dir);
    assert_int_equal (zsys_dir_create ("%s", metrics), 0);
    unsetenv ("DOSSIER_CONFIG");
    char data [96];
    snprintf (data, sizeof data, "%s/data", s_dir);
    setenv ("DOSSIER_DATA_DIR", data, 1);
    config_t *config = config_load (NULL);
    assert_non_null (config);

    s_write ("store-0.prom", s_health ("store", "ok"), 0);
    s_write ("handler-0.prom", s_health ("handler", "stalled"), 0);
    s_write ("projector-0.prom", s_health ("projector", "not_ready"), 0);
    s_write ("ingest-0.prom", s_health ("ingest", "starting"), 60);     /* stale: says nothing */
    s_write ("notes.txt", s_health ("notifier", "stalled"), 0);         /* not a .prom file */
    s_write ("supervisor-0.prom",
             "dossier_supervisor_child_up{process=\"supervisor\",instance=\"0\",child=\"scheduler\",child_instance=\"0\"} 0\n"
             "dossier_supervisor_child_up{process=\"supervisor\",instance=\"0\",child=\"store\",child_instance=\"0\"} 1\n", 0);

    gw_buf_t out;
    gw_buf_init (&out);
    int count = 0;
    assert_int_equal (gw_ready_children (config, 5000, &out, &count), 0);
    assert_int_equal (count, 1);
    assert_int_equal (gw_ready_processes (config, 5000, &out, &count), 0);
    assert_int_equal (count, 3);
    const char *text = gw_buf_cstr (&out);
    assert_non_null (strstr (text, "\"scheduler#0 not running\""));
    assert_non_null (strstr (text, ",\"handler#0 stalled\""));
    assert_non_null (strstr (text, ",\"projector#0 not_ready\""));
    assert_null (strstr (text, "store#0"));
    assert_null (strstr (text, "ingest#0"));
    assert_null (strstr (text, "notifier"));

    /* Everything ok: nothing added. */
    s_write ("handler-0.prom", s_health ("handler", "ok"), 0);
    s_write ("projector-0.prom", s_health ("projector", "ok"), 0);
    gw_buf_reset (&out);
    count = 0;
    assert_int_equal (gw_ready_processes (config, 5000, &out, &count), 0);
    assert_int_equal (count, 0);

    gw_buf_free (&out);
    config_destroy (&config);
    char cmd [160];
    snprintf (cmd, sizeof cmd, "rm -rf %s", s_dir);
    assert_int_equal (system (cmd), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_names_processes_not_ok),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
