/* test_metrics_http — a process's own scrape and health port over real HTTP (libcurl):
 * /metrics renders the registry, /healthz follows the heartbeat, /ready the start-up
 * and the process's own word, and anything else is a JSON 404 or 405. Also the
 * supervisor's port arithmetic (metrics_export_port). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "health.h"
#include "metrics_export.h"
#include "metrics_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    long status;
    char type [128];
    char body [8192];
    size_t size;
} s_answer_t;

static size_t
s_collect (char *data, size_t size, size_t n, void *arg)
{
    s_answer_t *answer = (s_answer_t *) arg;
    size_t bytes = size * n;
    size_t room = sizeof answer->body - 1 - answer->size;
    size_t take = bytes < room ? bytes : room;
    memcpy (answer->body + answer->size, data, take);
    answer->size += take;
    answer->body [answer->size] = 0;
    return bytes;
}

/* One request; the answer's status, Content-Type and body. */
static s_answer_t
s_fetch (int port, const char *method, const char *path)
{
    s_answer_t answer;
    memset (&answer, 0, sizeof answer);
    char url [128];
    snprintf (url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *curl = curl_easy_init ();
    assert_non_null (curl);
    curl_easy_setopt (curl, CURLOPT_URL, url);
    if (strcmp (method, "HEAD") == 0)
        curl_easy_setopt (curl, CURLOPT_NOBODY, 1L);   /* else curl waits for the body */
    else
        curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt (curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, 10000L);
    if (strcmp (method, "POST") == 0)
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, "{}");
    assert_int_equal (curl_easy_perform (curl), CURLE_OK);
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &answer.status);
    char *type = NULL;
    curl_easy_getinfo (curl, CURLINFO_CONTENT_TYPE, &type);
    snprintf (answer.type, sizeof answer.type, "%s", type ? type : "");
    curl_easy_cleanup (curl);
    return answer;
}

static metrics_t *s_registry;

static void
s_refresh (void)
{
    metric_add (metrics_counter (s_registry, "dossier_test_scrapes_total", "Scrapes.", NULL), 1);
}

static void
test_metrics_health_ready_and_errors (void **state)
{
    (void) state;
    health_reset ();
    metrics_t *registry = metrics_new ("process=\"test\",instance=\"0\"");
    assert_non_null (registry);
    metric_add (metrics_counter (registry, "dossier_test_things_total", "Things.", NULL), 3);
    s_registry = registry;
    metrics_http_t *http = metrics_http_start ("tcp://127.0.0.1:0", registry, 60000);
    assert_non_null (http);
    int port = metrics_http_port (http);
    assert_true (port > 0);

    s_answer_t a = s_fetch (port, "GET", "/metrics");
    assert_int_equal (a.status, 200);
    assert_string_equal (a.type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null (strstr (a.body, "# TYPE dossier_test_things_total counter\n"));
    assert_non_null (strstr (a.body, "dossier_test_things_total{process=\"test\",instance=\"0\"} 3\n"));

    /* Alive before the first beat (still starting), but not ready until started. */
    a = s_fetch (port, "GET", "/healthz");
    assert_int_equal (a.status, 200);
    assert_string_equal (a.type, "application/json");
    assert_string_equal (a.body, "{\"status\":\"ok\"}");
    a = s_fetch (port, "GET", "/ready");
    assert_int_equal (a.status, 503);
    assert_non_null (strstr (a.body, "\"status\":\"starting\""));

    assert_int_equal (health_state (60000), HEALTH_STARTING);
    health_started ();
    assert_int_equal (health_state (60000), HEALTH_OK);
    a = s_fetch (port, "GET", "/ready");
    assert_int_equal (a.status, 200);
    assert_string_equal (a.body, "{\"status\":\"ok\"}");

    /* The process's own word, with its reason as a JSON string. */
    health_set_ready (false, "event log \"backend\" not reachable");
    a = s_fetch (port, "GET", "/ready");
    assert_int_equal (a.status, 503);
    assert_string_equal (a.body, "{\"status\":\"not_ready\",\"reason\":\"event log \\\"backend\\\" not reachable\"}");
    a = s_fetch (port, "GET", "/healthz");
    assert_int_equal (a.status, 200);       /* alive, only not ready */
    assert_int_equal (health_state (60000), HEALTH_NOT_READY);
    health_set_ready (true, NULL);
    assert_int_equal (s_fetch (port, "GET", "/ready").status, 200);

    a = s_fetch (port, "HEAD", "/healthz");
    assert_int_equal (a.status, 200);
    assert_int_equal (a.size, 0);
    a = s_fetch (port, "GET", "/nope");
    assert_int_equal (a.status, 404);
    assert_string_equal (a.type, "application/json");
    assert_non_null (strstr (a.body, "\"error\":"));
    a = s_fetch (port, "POST", "/metrics");
    assert_int_equal (a.status, 405);
    assert_string_equal (a.type, "application/json");
    assert_non_null (strstr (a.body, "\"error\":"));
    a = s_fetch (port, "DELETE", "/ready");
    assert_int_equal (a.status, 405);

    /* A refresh hook runs on every scrape, before the rendering. */
    metrics_http_on_scrape (http, s_refresh);
    a = s_fetch (port, "GET", "/metrics");
    assert_non_null (strstr (a.body, "dossier_test_scrapes_total{process=\"test\",instance=\"0\"} 1\n"));
    metrics_http_on_scrape (http, NULL);

    /* The answer follows the registry as it changes. */
    metric_add (metrics_counter (registry, "dossier_test_things_total", "Things.", NULL), 1);
    a = s_fetch (port, "GET", "/metrics");
    assert_non_null (strstr (a.body, "dossier_test_things_total{process=\"test\",instance=\"0\"} 4\n"));

    metrics_http_stop (&http);
    assert_null (http);
    metrics_http_stop (&http);              /* twice is fine */
    metrics_destroy (&registry);
}

/* A loop that stops beating is seen by the server's own thread: 503 for both
 * /healthz and /ready past the limit, 200 again at the next beat. */
static void
test_stalled_loop_answers_503 (void **state)
{
    (void) state;
    health_reset ();
    health_started ();
    metrics_t *registry = metrics_new ("process=\"test\",instance=\"0\"");
    metrics_http_t *http = metrics_http_start ("tcp://127.0.0.1:0", registry, 200);
    assert_non_null (http);
    int port = metrics_http_port (http);
    health_beat ();
    assert_int_equal (s_fetch (port, "GET", "/healthz").status, 200);
    usleep (400 * 1000);
    s_answer_t a = s_fetch (port, "GET", "/healthz");
    assert_int_equal (a.status, 503);
    assert_non_null (strstr (a.body, "\"status\":\"stalled\""));
    assert_int_equal (s_fetch (port, "GET", "/ready").status, 503);
    assert_int_equal (health_state (200), HEALTH_STALLED);
    assert_string_equal (health_state_name (HEALTH_STALLED), "stalled");
    health_set_ready (false, "x");
    assert_int_equal (health_state (200), HEALTH_STALLED);     /* stalled comes first */
    health_set_ready (true, NULL);
    health_beat ();
    assert_int_equal (s_fetch (port, "GET", "/healthz").status, 200);
    assert_int_equal (s_fetch (port, "GET", "/ready").status, 200);
    metrics_http_stop (&http);
    metrics_destroy (&registry);
}

static void
test_bad_addresses_are_refused (void **state)
{
    (void) state;
    metrics_t *registry = metrics_new (NULL);
    assert_null (metrics_http_start ("tcp://lo:9100", registry, 1000));     /* interface names: no */
    assert_null (metrics_http_start ("tcp://127.0.0.1", registry, 1000));
    assert_null (metrics_http_start ("tcp://127.0.0.1:70000", registry, 1000));
    assert_null (metrics_http_start ("ipc:///tmp/x", registry, 1000));
    assert_null (metrics_http_start (NULL, registry, 1000));
    /* A port in use is refused, not shared. */
    metrics_http_t *first = metrics_http_start ("tcp://127.0.0.1:0", registry, 1000);
    assert_non_null (first);
    char taken [64];
    snprintf (taken, sizeof taken, "tcp://127.0.0.1:%d", metrics_http_port (first));
    assert_null (metrics_http_start (taken, registry, 1000));
    metrics_http_stop (&first);
    metrics_destroy (&registry);
}

static void
test_port_arithmetic (void **state)
{
    (void) state;
    char out [64];
    assert_int_equal (metrics_export_port ("9100", 0, out, sizeof out), 1);
    assert_string_equal (out, "9100");
    assert_int_equal (metrics_export_port ("9100", 3, out, sizeof out), 1);
    assert_string_equal (out, "9103");
    assert_int_equal (metrics_export_port ("127.0.0.1:9100", 12, out, sizeof out), 1);
    assert_string_equal (out, "127.0.0.1:9112");
    assert_int_equal (metrics_export_port ("[::1]:9100", 1, out, sizeof out), 1);
    assert_string_equal (out, "[::1]:9101");
    assert_int_equal (metrics_export_port ("0", 5, out, sizeof out), 0);
    assert_int_equal (metrics_export_port ("", 5, out, sizeof out), 0);
    assert_int_equal (metrics_export_port (NULL, 5, out, sizeof out), 0);
    assert_int_equal (metrics_export_port ("http", 0, out, sizeof out), -1);
    assert_int_equal (metrics_export_port ("9100x", 0, out, sizeof out), -1);
    assert_int_equal (metrics_export_port ("65535", 1, out, sizeof out), -1);
    assert_int_equal (metrics_export_port ("-5", 0, out, sizeof out), -1);
}

int
main (void)
{
    curl_global_init (CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_metrics_health_ready_and_errors),
        cmocka_unit_test (test_stalled_loop_answers_503),
        cmocka_unit_test (test_bad_addresses_are_refused),
        cmocka_unit_test (test_port_arithmetic),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    curl_global_cleanup ();
    return rc;
}
