/* test_handler_config_service — handler_rules and config_client against a real HTTP
 * server in a thread of this test (127.0.0.1, an ephemeral port): a miss is fetched and
 * cached, a fresh entry costs no request, a stale one is revalidated with If-None-Match
 * (304) over the same connection, a changed rule set replaces it, 500s and malformed
 * bodies leave the stale rules in place, the breaker stops the calls and lets a probe
 * through after its cool-down, and an answer that never comes costs the timeout only.
 * Without config_service_url, rules are local and nothing is fetched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../actors/handler/circuit_breaker.h"
#include "../../actors/handler/config_client.h"
#include "../../actors/handler/handler_rules.h"
#include "config.h"
#include "log.h"
#include "test_domain_fixtures.h"

/* ---- a tiny HTTP/1.1 server (keep-alive, one thread, poll) */

enum { S_OK = 0, S_ERROR, S_MALFORMED, S_SILENT };

#define S_CLIENTS 8

typedef struct {
    int listen_fd;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    int stop;
    int mode;
    char version [32];
    int requests, conditional, connections;
    char last_path [512];
} s_server_t;

static int
s_get (s_server_t *s, int *field)
{
    pthread_mutex_lock (&s->lock);
    int v = *field;
    pthread_mutex_unlock (&s->lock);
    return v;
}

static void
s_answer (s_server_t *s, int fd, const char *request)
{
    char path [512] = "";
    sscanf (request, "GET %511s", path);
    char inm [128] = "";
    for (const char *line = strstr (request, "\r\n"); line && line [2]; line = strstr (line + 2, "\r\n"))
        if (strncasecmp (line + 2, "If-None-Match:", 14) == 0)
            sscanf (line + 16, " %127[^\r]", inm);
    pthread_mutex_lock (&s->lock);
    s->requests++;
    if (inm [0])
        s->conditional++;
    snprintf (s->last_path, sizeof s->last_path, "%s", path);
    int mode = s->mode;
    char etag [64], body [512];
    snprintf (etag, sizeof etag, "\"%s\"", s->version);
    if (strncmp (path, "/v1/document-rules", 18) == 0)
        snprintf (body, sizeof body, "{\"version\":\"%s\",\"rules\":[{\"rule_id\":\"D1\",\"subject\":\"person\","
                  "\"document_type\":\"ID\"}]}", s->version);
    else
        snprintf (body, sizeof body, "{\"version\":\"%s\",\"rules\":[{\"rule_id\":\"R1\",\"is_active\":true,"
                  "\"notification_type\":\"EMAIL\",\"template_id\":\"t\",\"language_code\":\"en\"}]}", s->version);
    pthread_mutex_unlock (&s->lock);
    char reply [1024];
    int n = 0;
    if (mode == S_SILENT)
        return;
    if (mode == S_ERROR)
        n = snprintf (reply, sizeof reply, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}");
    else
    if (mode == S_MALFORMED)
        n = snprintf (reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"version\": ");
    else
    if (strcmp (inm, etag) == 0)
        n = snprintf (reply, sizeof reply, "HTTP/1.1 304 Not Modified\r\nETag: %s\r\n\r\n", etag);
    else
        n = snprintf (reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: %s\r\n"
                      "Content-Length: %zu\r\n\r\n%s", etag, strlen (body), body);
    if (write (fd, reply, (size_t) n) < 0)
        return;
}

static void *
s_serve (void *arg)
{
    s_server_t *s = arg;
    struct pollfd fds [1 + S_CLIENTS];
    char buffers [S_CLIENTS][4096];
    size_t filled [S_CLIENTS];
    int n_clients = 0;
    fds [0] = (struct pollfd) { s->listen_fd, POLLIN, 0 };
    while (!s_get (s, &s->stop)) {
        if (poll (fds, (nfds_t) (1 + n_clients), 20) <= 0)
            continue;
        if ((fds [0].revents & POLLIN) && n_clients < S_CLIENTS) {
            int fd = accept (s->listen_fd, NULL, NULL);
            if (fd >= 0) {
                fds [1 + n_clients] = (struct pollfd) { fd, POLLIN, 0 };
                filled [n_clients++] = 0;
                pthread_mutex_lock (&s->lock);
                s->connections++;
                pthread_mutex_unlock (&s->lock);
            }
        }
        for (int i = 0; i < n_clients; i++) {
            if (!(fds [1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read (fds [1 + i].fd, buffers [i] + filled [i], sizeof buffers [i] - 1 - filled [i]);
            if (got <= 0) {
                close (fds [1 + i].fd);
                fds [1 + i] = fds [n_clients];
                memcpy (buffers [i], buffers [n_clients - 1], sizeof buffers [i]);
                filled [i] = filled [n_clients - 1];
                n_clients--;
                i--;
                continue;
            }
            filled [i] += (size_t) got;
            buffers [i][filled [i]] = 0;
            char *end;
            while ((end = strstr (buffers [i], "\r\n\r\n"))) {
                *end = 0;
                s_answer (s, fds [1 + i].fd, buffers [i]);
                size_t used = (size_t) (end + 4 - buffers [i]);
                memmove (buffers [i], end + 4, filled [i] - used + 1);
                filled [i] -= used;
            }
        }
    }
    for (int i = 0; i < n_clients; i++)
        close (fds [1 + i].fd);
    return NULL;
}

static s_server_t *
s_server_start (void)
{
    s_server_t *s = calloc (1, sizeof (s_server_t));
    pthread_mutex_init (&s->lock, NULL);
    snprintf (s->version, sizeof s->version, "v1");
    s->listen_fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (s->listen_fd, (struct sockaddr *) &addr, sizeof addr), 0);
    assert_int_equal (listen (s->listen_fd, 16), 0);
    socklen_t len = sizeof addr;
    getsockname (s->listen_fd, (struct sockaddr *) &addr, &len);
    s->port = ntohs (addr.sin_port);
    pthread_create (&s->thread, NULL, s_serve, s);
    return s;
}

static void
s_server_stop (s_server_t *s)
{
    pthread_mutex_lock (&s->lock);
    s->stop = 1;
    pthread_mutex_unlock (&s->lock);
    pthread_join (s->thread, NULL);
    close (s->listen_fd);
    pthread_mutex_destroy (&s->lock);
    free (s);
}

static void
s_server_set (s_server_t *s, int mode, const char *version)
{
    pthread_mutex_lock (&s->lock);
    s->mode = mode;
    if (version)
        snprintf (s->version, sizeof s->version, "%s", version);
    pthread_mutex_unlock (&s->lock);
}

/* ---- fixture: a temp dir with the rules file and a config naming the server */

typedef struct {
    char dir [64];
    char cfg_path [128];
    char rules_path [128];
    s_server_t *server;
    config_t *config;
    handler_rules_t *rules;
} s_fixture_t;

static void
s_config (s_fixture_t *f, const char *settings)
{
    FILE *file = fopen (f->cfg_path, "w");
    assert_non_null (file);
    fprintf (file, "dossier\n    rules_file = \"%s\"\n%s", f->rules_path, settings);
    fclose (file);
    config_destroy (&f->config);
    f->config = config_load (f->cfg_path);
    assert_non_null (f->config);
    handler_rules_destroy (&f->rules);
    f->rules = handler_rules_new (f->config);
    assert_non_null (f->rules);
}

static void
s_remote (s_fixture_t *f, long ttl_ms, long timeout_ms, long retry_ms, long threshold, long cooldown_ms)
{
    char settings [1024];
    snprintf (settings, sizeof settings,
              "    config_service_url = \"http://127.0.0.1:%d/\"\n"
              "    config_service_ttl_ms = \"%ld\"\n"
              "    config_service_timeout_ms = \"%ld\"\n"
              "    config_service_connect_timeout_ms = \"%ld\"\n"
              "    config_service_retry_ms = \"%ld\"\n"
              "    config_service_breaker_threshold = \"%ld\"\n"
              "    config_service_breaker_cooldown_ms = \"%ld\"\n",
              f->server->port, ttl_ms, timeout_ms, timeout_ms, retry_ms, threshold, cooldown_ms);
    s_config (f, settings);
}

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof (s_fixture_t));
    snprintf (f->dir, sizeof f->dir, "/tmp/dos-cfg-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->cfg_path, sizeof f->cfg_path, "%s/dossier.cfg", f->dir);
    snprintf (f->rules_path, sizeof f->rules_path, "%s/rules.json", f->dir);
    FILE *file = fopen (f->rules_path, "w");
    fputs (fixture_rules, file);
    fclose (file);
    f->server = s_server_start ();
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    handler_rules_destroy (&f->rules);
    config_destroy (&f->config);
    s_server_stop (f->server);
    unlink (f->cfg_path);
    unlink (f->rules_path);
    rmdir (f->dir);
    free (f);
    return 0;
}

/* ---- driving lookups the way the handler does */

static const rules_context_t s_kyc = { "KYC", "STANDARD", "FR" };

/* One decision's lookup of CASE_CREATED rules. Returns what the source answered. */
static int
s_lookup (s_fixture_t *f, int may_wait, handler_rules_session_t *session, rules_notification_set_t *set)
{
    rules_source_t store;
    const rules_source_t *source = NULL;
    handler_rules_begin (f->rules, session, may_wait, zclock_mono (), &store, &source);
    assert_non_null (source);
    memset (set, 0, sizeof (*set));
    return source->notifications (source->arg, "CASE_CREATED", &s_kyc, set);
}

/* Runs the poll loop until the session's fetches ended (or max_ms). Returns the ms it took. */
static int64_t
s_drive (s_fixture_t *f, const handler_rules_session_t *session, int64_t max_ms)
{
    int64_t start = zclock_mono ();
    while (handler_rules_waiting (f->rules, session) && zclock_mono () - start < max_ms) {
        zmq_pollitem_t items [16];
        size_t n = handler_rules_pollitems (f->rules, items, 16);
        long timeout = handler_rules_timeout (f->rules);
        zmq_poll (n ? items : NULL, (int) n, timeout < 0 || timeout > 50 ? 50 : timeout);
        handler_rules_service (f->rules);
    }
    return zclock_mono () - start;
}

/* A lookup that wants a fetch, the fetch, then the decision again without waiting. */
static int
s_fetch_and_lookup (s_fixture_t *f, rules_notification_set_t *set, int64_t *took)
{
    handler_rules_session_t session;
    s_lookup (f, 1, &session, set);
    assert_int_equal (session.wanted, 1);
    assert_int_equal (handler_rules_fetch (f->rules, &session), 1);
    int64_t ms = s_drive (f, &session, 5000);
    if (took)
        *took = ms;
    assert_false (handler_rules_waiting (f->rules, &session));
    return s_lookup (f, 0, &session, set);
}

/* TTLs are about time: waits until ms have passed. */
static void
s_let_pass (int64_t ms)
{
    int64_t until = zclock_mono () + ms;
    while (zclock_mono () < until)
        zclock_sleep (5);
}

/* ---- tests */

static void
test_local_rules_only (void **state)
{
    s_fixture_t *f = *state;
    s_config (f, "");
    assert_false (handler_rules_remote (f->rules));
    assert_string_equal (rules_version (handler_rules_local (f->rules)), "2026-11-22.1");
    handler_rules_session_t session;
    rules_source_t store;
    const rules_source_t *source = &store;
    handler_rules_begin (f->rules, &session, 1, zclock_mono (), &store, &source);
    assert_null (source);
    assert_int_equal (handler_rules_fetch (f->rules, &session), 0);
    assert_int_equal (handler_rules_pollitems (f->rules, NULL, 0), 0);
    assert_int_equal (handler_rules_timeout (f->rules), -1);
    /* a URL that is not http(s) is refused at start */
    FILE *file = fopen (f->cfg_path, "w");
    fprintf (file, "dossier\n    rules_file = \"%s\"\n    config_service_url = \"ftp://x\"\n", f->rules_path);
    fclose (file);
    config_t *config = config_load (f->cfg_path);
    assert_null (handler_rules_new (config));
    config_destroy (&config);
}

static void
test_fetch_cache_and_revalidate (void **state)
{
    s_fixture_t *f = *state;
    s_remote (f, 300, 1000, 1000, 3, 1000);
    assert_true (handler_rules_remote (f->rules));
    rules_notification_set_t set;
    handler_rules_session_t session;
    /* a miss: not now, but worth a fetch */
    assert_int_equal (s_lookup (f, 1, &session, &set), -1);
    assert_int_equal (session.unavailable, 1);
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), 0);
    assert_string_equal (set.version, "v1");
    assert_int_equal (set.count, 1);
    assert_string_equal (set.rules [0].rule_id, "R1");
    assert_string_equal (f->server->last_path,
                         "/v1/notification-rules?trigger=CASE_CREATED&traitement_type=KYC&case_type=STANDARD&country=FR");
    /* fresh: answered from memory, no request */
    assert_int_equal (s_lookup (f, 1, &session, &set), 0);
    assert_int_equal (session.wanted, 0);
    assert_int_equal (s_get (f->server, &f->server->requests), 1);
    /* stale: served, and revalidated with the ETag (304), on the same connection */
    s_let_pass (310);
    assert_int_equal (s_lookup (f, 1, &session, &set), 0);
    assert_int_equal (session.stale, 1);
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), 0);
    assert_string_equal (set.version, "v1");
    handler_rules_stats_t stats;
    handler_rules_stats (f->rules, &stats);
    assert_int_equal (stats.not_modified, 1);
    assert_int_equal (s_get (f->server, &f->server->conditional), 1);
    assert_int_equal (s_get (f->server, &f->server->connections), 1);
    /* a changed rule set replaces the old one once the TTL passed */
    s_server_set (f->server, S_OK, "v2");
    assert_int_equal (s_lookup (f, 1, &session, &set), 0);
    assert_string_equal (set.version, "v1");            /* still fresh */
    s_let_pass (310);
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), 0);
    assert_string_equal (set.version, "v2");
    assert_int_equal (s_get (f->server, &f->server->connections), 1);
    handler_rules_stats (f->rules, &stats);
    assert_int_equal (stats.requests, 3);
    assert_int_equal (stats.answers, 2);
    assert_int_equal (stats.failures, 0);
}

static void
test_errors_serve_stale_rules (void **state)
{
    s_fixture_t *f = *state;
    s_remote (f, 100, 1000, 0, 10, 1000);
    rules_notification_set_t set;
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), 0);
    s_let_pass (110);
    s_server_set (f->server, S_ERROR, NULL);
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), 0);       /* stale-if-error */
    assert_string_equal (set.version, "v1");
    s_server_set (f->server, S_MALFORMED, NULL);
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), 0);
    assert_string_equal (set.version, "v1");
    handler_rules_stats_t stats;
    handler_rules_stats (f->rules, &stats);
    assert_int_equal (stats.failures, 2);
    /* document rules never cached: unavailable (the domain falls back to the file) */
    handler_rules_session_t session;
    rules_source_t store;
    const rules_source_t *source = NULL;
    handler_rules_begin (f->rules, &session, 0, zclock_mono (), &store, &source);
    rules_document_set_t docs;
    assert_int_equal (source->documents (source->arg, &s_kyc, &docs), -1);
}

static void
test_breaker_opens_then_probes (void **state)
{
    s_fixture_t *f = *state;
    s_remote (f, 1000, 1000, 0, 2, 200);
    s_server_set (f->server, S_ERROR, NULL);
    rules_notification_set_t set;
    handler_rules_session_t session;
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), -1);
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), -1);      /* the second failure opens it */
    handler_rules_stats_t stats;
    handler_rules_stats (f->rules, &stats);
    assert_int_equal (stats.breaker, CIRCUIT_OPEN);
    /* open: nothing is worth waiting for, no request is made */
    assert_int_equal (s_lookup (f, 1, &session, &set), -1);
    assert_int_equal (session.wanted, 0);
    assert_int_equal (handler_rules_fetch (f->rules, &session), 0);
    assert_int_equal (s_get (f->server, &f->server->requests), 2);
    /* after the cool-down, one probe; it succeeds and closes the breaker */
    s_server_set (f->server, S_OK, NULL);
    s_let_pass (210);
    assert_int_equal (s_fetch_and_lookup (f, &set, NULL), 0);
    assert_string_equal (set.version, "v1");
    handler_rules_stats (f->rules, &stats);
    assert_int_equal (stats.breaker, CIRCUIT_CLOSED);
}

static void
test_silent_service_costs_the_timeout_only (void **state)
{
    s_fixture_t *f = *state;
    s_remote (f, 1000, 300, 1000, 3, 1000);
    s_server_set (f->server, S_SILENT, NULL);
    rules_notification_set_t set;
    int64_t took = 0;
    assert_int_equal (s_fetch_and_lookup (f, &set, &took), -1);
    assert_in_range (took, 250, 1000);
    handler_rules_stats_t stats;
    handler_rules_stats (f->rules, &stats);
    assert_int_equal (stats.failures, 1);
    /* the key failed just now: the next decision does not wait for it again */
    handler_rules_session_t session;
    assert_int_equal (s_lookup (f, 1, &session, &set), -1);
    assert_int_equal (session.wanted, 0);
    assert_true (handler_rules_hold_ms (f->rules) >= 300);
}

static void
test_escape (void **state)
{
    (void) state;
    char out [32];
    assert_int_equal (config_client_escape ("A b&c=d/é", out, sizeof out), 0);
    assert_string_equal (out, "A%20b%26c%3Dd%2F%C3%A9");
    assert_int_equal (config_client_escape ("abcdef", out, 6), -1);
    assert_int_equal (config_client_escape ("", out, 1), 0);
    assert_null (config_client_new ("file:///etc/passwd", 100, 100, 1));
}

int
main (void)
{
    log_init ("test", "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_local_rules_only, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fetch_cache_and_revalidate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_errors_serve_stale_rules, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_breaker_opens_then_probes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_silent_service_costs_the_timeout_only, s_setup, s_teardown),
        cmocka_unit_test (test_escape),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
