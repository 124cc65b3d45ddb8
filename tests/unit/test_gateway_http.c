/* test_gateway_http — the whole gateway over real sockets: the gateway in a child
 * process on an ephemeral port, a fake broker (czmq actor) that answers pings and
 * commands as told, and a temporary readmodels.db. Checks status codes, bodies,
 * headers, command envelopes, timeouts, late replies, hostile requests, and that
 * SIGTERM ends the gateway with status 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <czmq.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../actors/gateway/gateway.h"
#include "command_id.h"
#include "config.h"
#include "endpoints.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"

/* --- fake broker --- */

/* Pipe protocol (test -> broker): "MODE" <ok|error|garbage|silent|hold> (signal back),
 * "WAITPING" (answers "PONG" after the next ping it answers), "RELEASE" (answers
 * held commands with reply.ok, signal back), "LAST" (answers type, id, key, body). */
static void
s_fake_broker (zsock_t *pipe, void *args)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    if (!router || zsock_bind (router, "%s", (const char *) args) != 0) {
        zsock_destroy (&router);
        zsock_signal (pipe, 1);
        return;
    }
    zsock_signal (pipe, 0);
    char mode [16] = "ok";
    int want_pong = 0;
    zlistx_t *held = zlistx_new ();
    zhashx_t *seen = zhashx_new ();
    char last_type [64] = "", last_id [128] = "", last_key [128] = "";
    char *last_body = strdup ("");
    int64_t position = 0;
    zpoller_t *poller = zpoller_new (pipe, router, NULL);

    while (1) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            zmsg_t *msg = zmsg_recv (pipe);
            char *command = msg ? zmsg_popstr (msg) : NULL;
            int stop = !command || streq (command, "$TERM");
            if (command && streq (command, "MODE")) {
                char *value = zmsg_popstr (msg);
                snprintf (mode, sizeof mode, "%s", value ? value : "ok");
                free (value);
                zsock_signal (pipe, 0);
            }
            else
            if (command && streq (command, "WAITPING"))
                want_pong = 1;
            else
            if (command && streq (command, "LAST"))
                zstr_sendx (pipe, last_type, last_id, last_key, last_body, NULL);
            else
            if (command && streq (command, "RELEASE")) {
                zmsg_t *hold;
                while ((hold = (zmsg_t *) zlistx_detach (held, NULL))) {
                    zframe_t *route = zmsg_pop (hold);
                    char *id = zmsg_popstr (hold);
                    char *key = zmsg_popstr (hold);
                    char body [256];
                    snprintf (body, sizeof body, "{\"case_id\":\"%s\",\"status\":\"OPEN\",\"duplicate\":false}", key);
                    envelope_t reply;
                    envelope_init (&reply, "reply.ok", "r-held");
                    envelope_set (reply.causation_id, sizeof reply.causation_id, id);
                    reply.body = body;
                    reply.body_size = strlen (body);
                    envelope_send (router, route, &reply);
                    zframe_destroy (&route);
                    free (id);
                    free (key);
                    zmsg_destroy (&hold);
                }
                zsock_signal (pipe, 0);
            }
            free (command);
            zmsg_destroy (&msg);
            if (stop)
                break;
            continue;
        }
        if (which != router)
            break;
        zframe_t *routes [1];
        zmsg_t *msg = NULL;
        envelope_t env;
        if (envelope_recv (router, 1, routes, &msg, &env) != 0)
            continue;
        if (streq (env.type, "ctl.ping")) {
            envelope_t pong;
            envelope_init (&pong, "ctl.pong", "pong");
            envelope_set (pong.causation_id, sizeof pong.causation_id, env.id);
            envelope_send (router, routes [0], &pong);
            if (want_pong) {
                want_pong = 0;
                zstr_send (pipe, "PONG");
            }
            zmsg_destroy (&msg);
            continue;
        }
        snprintf (last_type, sizeof last_type, "%s", env.type);
        snprintf (last_id, sizeof last_id, "%s", env.id);
        snprintf (last_key, sizeof last_key, "%s", env.key);
        free (last_body);
        last_body = malloc (env.body_size + 1);
        memcpy (last_body, env.body, env.body_size);
        last_body [env.body_size] = 0;

        envelope_t reply;
        char body [512];
        if (streq (mode, "ok")) {
            int duplicate = zhashx_lookup (seen, env.id) != NULL;
            zhashx_update (seen, env.id, (void *) 1);
            snprintf (body, sizeof body, "{\"case_id\":\"%s\",\"status\":\"OPEN\",\"events\":3,"
                      "\"position\":%lld,\"duplicate\":%s}", env.key, (long long) ++position,
                      duplicate ? "true" : "false");
            envelope_init (&reply, "reply.ok", "r");
        }
        else
        if (streq (mode, "error")) {
            snprintf (body, sizeof body, "{\"status\":409,\"error\":\"conflict.state\",\"detail\":\"illegal transition\"}");
            envelope_init (&reply, "reply.error", "r");
        }
        else
        if (streq (mode, "garbage")) {
            snprintf (body, sizeof body, "not json \xff");
            envelope_init (&reply, "reply.ok", "r");
        }
        else {
            if (streq (mode, "hold")) {
                zmsg_t *hold = zmsg_new ();
                zmsg_append (hold, &(zframe_t *) {zframe_dup (routes [0])});
                zmsg_addstr (hold, env.id);
                zmsg_addstr (hold, env.key);
                zlistx_add_end (held, hold);
                zstr_send (pipe, "GOT");
            }
            zmsg_destroy (&msg);
            continue;
        }
        envelope_set (reply.causation_id, sizeof reply.causation_id, env.id);
        envelope_set (reply.key, sizeof reply.key, env.key);
        reply.body = body;
        reply.body_size = strlen (body);
        envelope_send (router, routes [0], &reply);
        zmsg_destroy (&msg);
    }
    zmsg_t *hold;
    while ((hold = (zmsg_t *) zlistx_detach (held, NULL)))
        zmsg_destroy (&hold);
    zlistx_destroy (&held);
    zhashx_destroy (&seen);
    free (last_body);
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

/* --- the gateway in a child process --- */

typedef struct {
    char dir [256];
    config_t *config;
    char *broker_endpoint;
    zactor_t *broker;
    pid_t pid;
    int port;
} server_t;

static server_t s_server;

/* The child: exactly what dossier-gateway's main does, reporting its port on fd
 * instead of logging it. Forked before the parent touches ZeroMQ, so the child
 * starts with a clean czmq state; runs until SIGTERM, exits 0 only if all went well. */
static void
s_gateway_child (int fd)
{
    /* Never outlive a test run that died. */
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    config_t *config = config_load (NULL);
    gateway_t *gateway = config ? gateway_new (config) : NULL;
    int port = gateway ? gateway_port (gateway) : -1;
    ssize_t written = write (fd, &port, sizeof port);
    close (fd);
    int rc = gateway && written == sizeof port ? 0 : 1;
    if (gateway) {
        gateway_run (gateway);
        gateway_destroy (&gateway);
    }
    config_destroy (&config);
    exit (rc);
}

static void
s_exec (sqlite3 *db, const char *sql)
{
    char *error = NULL;
    if (sqlite3_exec (db, sql, NULL, NULL, &error) != SQLITE_OK) {
        fprintf (stderr, "SQL failed: %s\n", error);
        sqlite3_free (error);
    }
}

static int
s_create_db (const char *dir)
{
    FILE *file = fopen ("schemas/readmodels.sql", "rb");
    if (!file)
        return -1;
    char *schema = calloc (1, 1 << 16);
    size_t size = fread (schema, 1, (1 << 16) - 1, file);
    fclose (file);
    schema [size] = 0;
    char path [512];
    snprintf (path, sizeof path, "%s/readmodels.db", dir);
    sqlite3 *db = NULL;
    sqlite3_open (path, &db);
    s_exec (db, "PRAGMA journal_mode=WAL");
    s_exec (db, schema);
    free (schema);
    s_exec (db,
        "INSERT INTO cases VALUES ('c1', 1, 'C1', 'KYC', 'OPEN', 1, '{\"id\":\"c1\"}', '{\"id\":\"c1\",\"full\":true}');"
        "INSERT INTO cases VALUES ('c2', 5, 'C2', 'KYB', 'IN_REVIEW', 9, '{\"id\":\"c2\"}', '{\"id\":\"c2\",\"full\":true}');"
        "INSERT INTO companies VALUES ('co1', 'c2', 6, 6, '{\"id\":\"co1\"}');"
        "INSERT INTO persons VALUES ('p1', 'c1', NULL, 2, 2, '{\"id\":\"p1\"}');"
        "INSERT INTO beneficial_owners VALUES ('b1', 'co1', 'c2', 7, 7, '{\"id\":\"b1\"}');"
        "INSERT INTO documents VALUES ('d1', 'c1', 3, 'UPLOADED', 3, '{\"id\":\"d1\"}');"
        "INSERT INTO case_events VALUES (1, 1, 'c1', 1, '{\"version\":1}');");
    sqlite3_close (db);
    return 0;
}

static int
s_group_setup (void **state)
{
    (void) state;
    log_init ("test", "error");
    server_t *server = &s_server;
    snprintf (server->dir, sizeof server->dir, "/tmp/dossier-gw-http-XXXXXX");
    if (!mkdtemp (server->dir))
        return -1;
    unsetenv ("DOSSIER_CONFIG");
    setenv ("DOSSIER_DATA_DIR", server->dir, 1);
    setenv ("DOSSIER_HTTP_ADDR", "127.0.0.1:0", 1);
    setenv ("DOSSIER_BODY_LIMIT", "2048", 1);
    setenv ("DOSSIER_COMMAND_TIMEOUT_MS", "300", 1);
    if (s_create_db (server->dir))
        return -1;
    int fds [2];
    if (pipe (fds) != 0)
        return -1;
    server->pid = fork ();
    if (server->pid == 0) {
        close (fds [0]);
        s_gateway_child (fds [1]);
    }
    close (fds [1]);
    /* The child's readiness signal: its port, once it listens. */
    if (server->pid < 0 || read (fds [0], &server->port, sizeof server->port) != sizeof server->port)
        server->port = -1;
    close (fds [0]);
    server->config = config_load (NULL);
    server->broker_endpoint = server->config ? endpoints_get (server->config, "broker_front") : NULL;
    if (!server->broker_endpoint)
        return -1;
    server->broker = zactor_new (s_fake_broker, server->broker_endpoint);
    return server->port > 0 ? 0 : -1;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    server_t *server = &s_server;
    if (server->pid > 0) {
        /* test_sigterm_exits_cleanly did not get to run */
        kill (server->pid, SIGKILL);
        waitpid (server->pid, NULL, 0);
    }
    zactor_destroy (&server->broker);
    free (server->broker_endpoint);
    config_destroy (&server->config);
    const char *files [] = { "readmodels.db", "readmodels.db-wal", "readmodels.db-shm",
                             "run/broker_front.ipc" };
    for (size_t i = 0; i < sizeof files / sizeof files [0]; i++) {
        char path [512];
        snprintf (path, sizeof path, "%s/%s", server->dir, files [i]);
        unlink (path);
    }
    char run [512];
    snprintf (run, sizeof run, "%s/run", server->dir);
    rmdir (run);
    rmdir (server->dir);
    return 0;
}

/* --- HTTP client --- */

typedef struct {
    int status;
    char head [8192];           /* status line and headers */
    char *body;
    size_t body_len;
} resp_t;

static int
s_connect (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons ((uint16_t) s_server.port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    struct timeval tv = { 20, 0 };     /* a hung gateway fails the test, not the run */
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0) {
        close (fd);
        return -1;
    }
    return fd;
}

static void
s_send_all (int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send (fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t) n;
    }
}

/* Sends raw bytes, reads the whole answer (the request asks to close). -1 if no
 * HTTP answer came back. */
static int
s_raw (const char *request, size_t len, resp_t *resp)
{
    memset (resp, 0, sizeof (*resp));
    int fd = s_connect ();
    if (fd < 0)
        return -1;
    s_send_all (fd, request, len);
    size_t cap = 65536, size = 0;
    char *data = malloc (cap);
    ssize_t n;
    while ((n = recv (fd, data + size, cap - size - 1, 0)) > 0) {
        size += (size_t) n;
        if (cap - size < 1024) {
            cap *= 2;
            data = realloc (data, cap);
        }
    }
    close (fd);
    data [size] = 0;
    char *end = strstr (data, "\r\n\r\n");
    if (!end || sscanf (data, "HTTP/1.%*d %d", &resp->status) != 1) {
        free (data);
        return -1;
    }
    size_t head_len = (size_t) (end - data);
    if (head_len >= sizeof resp->head)
        head_len = sizeof resp->head - 1;
    memcpy (resp->head, data, head_len);
    resp->head [head_len] = 0;
    resp->body_len = size - (size_t) (end + 4 - data);
    resp->body = malloc (resp->body_len + 1);
    memcpy (resp->body, end + 4, resp->body_len);
    resp->body [resp->body_len] = 0;
    free (data);
    return 0;
}

/* One request; extra_headers ends each line with \r\n. Asserts the body is JSON
 * with a JSON Content-Type (every answer of the gateway must be). */
static resp_t
s_http (const char *method, const char *path, const char *extra_headers, const char *body)
{
    size_t body_len = body ? strlen (body) : 0;
    size_t cap = strlen (path) + (extra_headers ? strlen (extra_headers) : 0) + body_len + 256;
    char *request = malloc (cap);
    int len = snprintf (request, cap, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s"
                        "Content-Length: %zu\r\n\r\n%s", method, path, extra_headers ? extra_headers : "",
                        body_len, body ? body : "");
    resp_t resp;
    int rc = s_raw (request, (size_t) len, &resp);
    free (request);
    if (rc != 0)
        fail_msg ("%s %.80s: no HTTP answer", method, path);
    if (!strcasestr (resp.head, "\r\ncontent-type: application/json"))
        fail_msg ("%s %.80s: not JSON:\n%s", method, path, resp.head);
    if (strcmp (method, "HEAD") != 0) {
        json_error_t error;
        json_t *parsed = json_loadb (resp.body, resp.body_len, 0, &error);
        if (!parsed)
            fail_msg ("%s %.80s: body is not JSON: %s", method, path, resp.body);
        json_decref (parsed);
    }
    return resp;
}

static void
s_free (resp_t *resp)
{
    free (resp->body);
    resp->body = NULL;
}

/* Value of a response header (lowercase name), copied into out; "" if absent. */
static const char *
s_resp_header (resp_t *resp, const char *name, char *out, size_t size)
{
    char needle [64];
    snprintf (needle, sizeof needle, "\r\n%s: ", name);
    const char *at = strcasestr (resp->head, needle);
    out [0] = 0;
    if (at) {
        at += strlen (needle);
        size_t len = strcspn (at, "\r\n");
        snprintf (out, size, "%.*s", (int) (len < size ? len : size - 1), at);
    }
    return out;
}

static void
s_expect (const char *method, const char *path, const char *headers, const char *body,
          int status, const char *expected_body)
{
    resp_t resp = s_http (method, path, headers, body);
    if (resp.status != status)
        fail_msg ("%s %.80s: status %d, expected %d; body %s", method, path, resp.status, status, resp.body);
    if (expected_body && strcmp (resp.body, expected_body) != 0)
        fail_msg ("%s %.80s: body %s, expected %s", method, path, resp.body, expected_body);
    s_free (&resp);
}

/* The error class of an error answer must be error_class. */
static void
s_expect_error (const char *method, const char *path, const char *headers, const char *body,
                int status, const char *error_class)
{
    resp_t resp = s_http (method, path, headers, body);
    json_t *parsed = json_loadb (resp.body, resp.body_len, 0, NULL);
    const char *error = json_string_value (json_object_get (parsed, "error"));
    if (resp.status != status || !error || strcmp (error, error_class) != 0
    ||  !json_is_string (json_object_get (parsed, "detail")))
        fail_msg ("%s %.80s: got %d %s, expected %d %s", method, path, resp.status, resp.body,
                  status, error_class);
    json_decref (parsed);
    s_free (&resp);
}

static void
s_broker_mode (const char *mode)
{
    zstr_sendx (s_server.broker, "MODE", mode, NULL);
    zsock_wait (s_server.broker);
}

/* The last command the broker saw. */
static void
s_broker_last (char **type, char **id, char **key, char **body)
{
    zstr_send (s_server.broker, "LAST");
    zstr_recvx (s_server.broker, type, id, key, body, NULL);
}

#define JSON_CT "Content-Type: application/json\r\n"

/* --- tests --- */

static void
test_health_and_protocol (void **state)
{
    (void) state;
    s_expect ("GET", "/health", NULL, NULL, 200, "{\"status\":\"ok\"}");
    s_expect_error ("GET", "/nope", NULL, NULL, 404, "not_found");
    s_expect_error ("GET", "/v1/cases/", NULL, NULL, 404, "not_found");

    resp_t resp = s_http ("DELETE", "/v1/cases", NULL, NULL);
    char value [128];
    assert_int_equal (resp.status, 405);
    assert_string_equal (s_resp_header (&resp, "allow", value, sizeof value), "GET, HEAD, POST");
    s_free (&resp);
    resp = s_http ("GET", "/v1/documents/d1/status", NULL, NULL);
    assert_int_equal (resp.status, 405);
    assert_string_equal (s_resp_header (&resp, "allow", value, sizeof value), "POST");
    s_free (&resp);

    resp = s_http ("HEAD", "/health", NULL, NULL);
    assert_int_equal (resp.status, 200);
    assert_int_equal (resp.body_len, 0);
    assert_string_equal (s_resp_header (&resp, "content-length", value, sizeof value), "15");
    s_free (&resp);
}

static void
test_reads (void **state)
{
    (void) state;
    s_expect ("GET", "/v1/cases/c1", NULL, NULL, 200, "{\"id\":\"c1\",\"full\":true}");
    s_expect_error ("GET", "/v1/cases/zz", NULL, NULL, 404, "not_found");
    s_expect ("GET", "/v1/cases/c1/events", NULL, NULL, 200, "{\"case_id\":\"c1\",\"events\":[{\"version\":1}]}");
    s_expect_error ("GET", "/v1/cases/zz/events", NULL, NULL, 404, "not_found");
    s_expect ("GET", "/v1/cases/c1/documents", NULL, NULL, 200, "{\"items\":[{\"id\":\"d1\"}]}");
    s_expect_error ("GET", "/v1/cases/zz/documents", NULL, NULL, 404, "not_found");
    s_expect ("GET", "/v1/companies/co1", NULL, NULL, 200, "{\"id\":\"co1\"}");
    s_expect ("GET", "/v1/companies/co1/beneficial-owners", NULL, NULL, 200, "{\"items\":[{\"id\":\"b1\"}]}");
    s_expect_error ("GET", "/v1/companies/zz/beneficial-owners", NULL, NULL, 404, "not_found");
    s_expect ("GET", "/v1/persons/p1", NULL, NULL, 200, "{\"id\":\"p1\"}");
    s_expect_error ("GET", "/v1/persons/zz", NULL, NULL, 404, "not_found");
    s_expect ("GET", "/v1/documents/d1", NULL, NULL, 200, "{\"id\":\"d1\"}");
    s_expect ("GET", "/v1/cases%2Fc1", NULL, NULL, 404, NULL);

    s_expect ("GET", "/v1/cases", NULL, NULL, 200,
              "{\"items\":[{\"id\":\"c1\"},{\"id\":\"c2\"}],\"next_cursor\":null}");
    s_expect ("GET", "/v1/cases?traitement_type=KYB&status=IN_REVIEW", NULL, NULL, 200,
              "{\"items\":[{\"id\":\"c2\"}],\"next_cursor\":null}");
    resp_t resp = s_http ("GET", "/v1/cases?limit=1", NULL, NULL);
    assert_int_equal (resp.status, 200);
    json_t *page = json_loadb (resp.body, resp.body_len, 0, NULL);
    const char *cursor = json_string_value (json_object_get (page, "next_cursor"));
    assert_non_null (cursor);
    char path [128];
    snprintf (path, sizeof path, "/v1/cases?limit=1&cursor=%s", cursor);
    s_expect ("GET", path, NULL, NULL, 200, "{\"items\":[{\"id\":\"c2\"}],\"next_cursor\":null}");
    json_decref (page);
    s_free (&resp);

    s_expect_error ("GET", "/v1/cases?status=WHATEVER", NULL, NULL, 400, "invalid_query");
    s_expect_error ("GET", "/v1/cases?traitement_type=KYX", NULL, NULL, 400, "invalid_query");
    s_expect_error ("GET", "/v1/cases?limit=0", NULL, NULL, 400, "invalid_query");
    s_expect_error ("GET", "/v1/cases?limit=abc", NULL, NULL, 400, "invalid_query");
    s_expect_error ("GET", "/v1/cases?cursor=forged", NULL, NULL, 400, "invalid_query");

    resp = s_http ("HEAD", "/v1/cases/c1", NULL, NULL);
    assert_int_equal (resp.status, 200);
    assert_int_equal (resp.body_len, 0);
    s_free (&resp);
}

static void
test_create_case_and_ready (void **state)
{
    (void) state;
    /* Wait until the broker has answered a ping: the bridge is connected. */
    zstr_send (s_server.broker, "WAITPING");
    char *pong = zstr_recv (s_server.broker);
    assert_string_equal (pong, "PONG");
    free (pong);

    const char *record = "{\"client_id\":\"K-1\",\"case_type\":\"STANDARD\",\"case_version\":1}";
    resp_t resp = s_http ("POST", "/v1/cases", "Content-Type: application/json; charset=utf-8\r\n", record);
    assert_int_equal (resp.status, 201);

    char *type, *id, *key, *body;
    s_broker_last (&type, &id, &key, &body);
    assert_string_equal (type, "cmd.create_case");
    json_t *parsed = json_loads (record, 0, NULL);
    char expected_id [COMMAND_ID_MAX], expected_case [IDS_UUID_LEN];
    command_id_from_record (parsed, record, strlen (record), expected_id);
    json_decref (parsed);
    command_id_case_id (expected_id, expected_case);
    assert_string_equal (id, expected_id);
    assert_string_equal (key, expected_case);
    assert_string_equal (body, record);         /* raw bytes, not re-serialised */

    char location [256], expected_location [128];
    snprintf (expected_location, sizeof expected_location, "/v1/cases/%s", expected_case);
    assert_string_equal (s_resp_header (&resp, "location", location, sizeof location), expected_location);
    json_t *reply = json_loadb (resp.body, resp.body_len, 0, NULL);
    assert_string_equal (json_string_value (json_object_get (reply, "case_id")), expected_case);
    json_decref (reply);
    s_free (&resp);

    /* The pong was processed before this reply (same socket, in order): ready now. */
    s_expect ("GET", "/ready", NULL, NULL, 200, "{\"status\":\"ready\"}");

    /* The same record again is a duplicate: 200 with the first result. */
    resp = s_http ("POST", "/v1/cases", JSON_CT, record);
    assert_int_equal (resp.status, 200);
    assert_string_equal (s_resp_header (&resp, "location", location, sizeof location), expected_location);
    s_free (&resp);
    free (type); free (id); free (key); free (body);
}

static void
test_idempotency_key (void **state)
{
    (void) state;
    s_expect ("POST", "/v1/cases", JSON_CT "Idempotency-Key: \"order-77\"\r\n", "{\"a\":1}", 201, NULL);
    char *type, *id, *key, *body;
    s_broker_last (&type, &id, &key, &body);
    assert_string_equal (id, "http:order-77");
    char expected_case [IDS_UUID_LEN];
    command_id_case_id ("http:order-77", expected_case);
    assert_string_equal (key, expected_case);
    free (type); free (id); free (key); free (body);

    char headers [400];
    memset (headers, 0, sizeof headers);
    strcpy (headers, JSON_CT "Idempotency-Key: ");
    memset (headers + strlen (headers), 'k', 101);
    strcat (headers, "\r\n");
    s_expect_error ("POST", "/v1/cases", headers, "{}", 400, "invalid_idempotency_key");
    s_expect_error ("POST", "/v1/cases", JSON_CT "Idempotency-Key: caf\xc3\xa9\r\n", "{}", 400,
                    "invalid_idempotency_key");
    s_expect_error ("POST", "/v1/cases", JSON_CT "Idempotency-Key: \"\"\r\n", "{}", 400,
                    "invalid_idempotency_key");
}

static void
test_body_validation (void **state)
{
    (void) state;
    s_expect_error ("POST", "/v1/cases", NULL, "{}", 415, "unsupported_media_type");
    s_expect_error ("POST", "/v1/cases", "Content-Type: text/plain\r\n", "{}", 415, "unsupported_media_type");
    s_expect_error ("POST", "/v1/cases", "Content-Type: application/jsonp\r\n", "{}", 415, "unsupported_media_type");

    char *big = malloc (4000);
    memset (big, ' ', 3999);
    big [0] = '{';
    big [3997] = '}';
    big [3998] = 0;
    s_expect_error ("POST", "/v1/cases", JSON_CT, big, 413, "payload_too_large");
    free (big);

    s_expect_error ("POST", "/v1/cases", JSON_CT, "", 400, "malformed_json");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "{\"a\":", 400, "malformed_json");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "{\"a\":1} trailing", 400, "malformed_json");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "{\"a\":\"\xff\xfe\"}", 400, "malformed_json");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "{\"a\":\"\xc0\xaf\"}", 400, "malformed_json");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "[1,2]", 422, "validation.body");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "42", 422, "validation.body");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "\"text\"", 422, "validation.body");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "null", 422, "validation.body");
}

static void
test_document_status (void **state)
{
    (void) state;
    s_expect ("POST", "/v1/documents/d1/status", JSON_CT,
              "{\"status\":\"VERIFIED\",\"reason\":\"looks fine\"}", 200, NULL);
    char *type, *id, *key, *body;
    s_broker_last (&type, &id, &key, &body);
    assert_string_equal (type, "cmd.update_document_status");
    assert_string_equal (key, "c1");
    assert_true (strncmp (id, "gw:", 3) == 0);
    json_t *parsed = json_loads (body, 0, NULL);
    assert_string_equal (json_string_value (json_object_get (parsed, "document_id")), "d1");
    assert_string_equal (json_string_value (json_object_get (parsed, "status")), "VERIFIED");
    assert_string_equal (json_string_value (json_object_get (parsed, "reason")), "looks fine");
    json_decref (parsed);
    free (type); free (id); free (key); free (body);

    s_expect ("PATCH", "/v1/documents/d1", JSON_CT "Idempotency-Key: up-1\r\n",
              "{\"status\":\"UPLOADED\"}", 200, NULL);
    s_broker_last (&type, &id, &key, &body);
    assert_string_equal (id, "http:up-1");
    assert_string_equal (body, "{\"document_id\":\"d1\",\"status\":\"UPLOADED\",\"reason\":\"\"}");
    free (type); free (id); free (key); free (body);

    s_expect_error ("POST", "/v1/documents/nope/status", JSON_CT, "{\"status\":\"VERIFIED\"}", 404, "not_found");
    s_expect_error ("POST", "/v1/documents/d1/status", JSON_CT, "{\"status\":\"DONE\"}", 422, "validation.status");
    s_expect_error ("POST", "/v1/documents/d1/status", JSON_CT, "{\"status\":1}", 422, "validation.status");
    s_expect_error ("POST", "/v1/documents/d1/status", JSON_CT, "{}", 422, "validation.status");
    s_expect_error ("POST", "/v1/documents/d1/status", JSON_CT, "{\"status\":\"REJECTED\",\"reason\":7}",
                    422, "validation.reason");
    s_expect_error ("POST", "/v1/documents/d1/status", NULL, "{\"status\":\"VERIFIED\"}", 415,
                    "unsupported_media_type");
}

static void
test_decide_and_close (void **state)
{
    (void) state;
    s_expect ("POST", "/v1/cases/c1/decision", JSON_CT, "{\"decision\":\"APPROVE\",\"reason\":\"ok\"}", 200, NULL);
    char *type, *id, *key, *body;
    s_broker_last (&type, &id, &key, &body);
    assert_string_equal (type, "cmd.decide_case");
    assert_string_equal (key, "c1");
    assert_string_equal (body, "{\"decision\":\"APPROVE\",\"reason\":\"ok\"}");
    free (type); free (id); free (key); free (body);

    s_expect ("POST", "/v1/cases/c2/close", NULL, NULL, 200, NULL);
    s_broker_last (&type, &id, &key, &body);
    assert_string_equal (type, "cmd.close_case");
    assert_string_equal (key, "c2");
    assert_string_equal (body, "{\"reason\":\"\"}");
    free (type); free (id); free (key); free (body);
    s_expect ("POST", "/v1/cases/c2/close", JSON_CT, "{\"reason\":\"done\"}", 200, NULL);

    s_expect_error ("POST", "/v1/cases/zz/decision", JSON_CT, "{\"decision\":\"REJECT\"}", 404, "not_found");
    s_expect_error ("POST", "/v1/cases/zz/close", NULL, NULL, 404, "not_found");
    s_expect_error ("POST", "/v1/cases/c1/decision", JSON_CT, "{\"decision\":\"MAYBE\"}", 422, "validation.decision");
    s_expect_error ("POST", "/v1/cases/c1/decision", JSON_CT, "{\"decision\":\"APPROVE\",\"reason\":[]}",
                    422, "validation.reason");
    s_expect_error ("POST", "/v1/cases/c1/close", JSON_CT, "[]", 422, "validation.body");
}

static void
test_error_replies (void **state)
{
    (void) state;
    s_broker_mode ("error");
    resp_t resp = s_http ("POST", "/v1/cases/c1/decision", JSON_CT, "{\"decision\":\"REJECT\"}");
    assert_int_equal (resp.status, 409);
    assert_string_equal (resp.body, "{\"error\":\"conflict.state\",\"detail\":\"illegal transition\"}");
    s_free (&resp);
    s_broker_mode ("garbage");
    s_expect_error ("POST", "/v1/cases", JSON_CT, "{\"x\":1}", 502, "bad_gateway");
    s_broker_mode ("ok");
}

static void
test_timeout (void **state)
{
    (void) state;
    s_broker_mode ("silent");
    int64_t start = zclock_mono ();
    s_expect_error ("POST", "/v1/cases", JSON_CT, "{\"t\":1}", 503, "unavailable");
    int64_t elapsed = zclock_mono () - start;
    /* the test config sets a 300 ms command timeout */
    assert_true (elapsed >= 250 && elapsed < 5000);
    s_broker_mode ("ok");
    /* The gateway still serves writes afterwards. */
    s_expect ("POST", "/v1/cases", JSON_CT, "{\"t\":2}", 201, NULL);
}

static void
test_client_gone_before_reply (void **state)
{
    (void) state;
    s_broker_mode ("hold");
    const char request [] = "POST /v1/cases HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                            "Content-Length: 7\r\n\r\n{\"g\":1}";
    int fd = s_connect ();
    assert_true (fd >= 0);
    s_send_all (fd, request, sizeof request - 1);
    char *got = zstr_recv (s_server.broker);    /* the command reached the broker */
    assert_string_equal (got, "GOT");
    free (got);
    close (fd);
    /* Its reply arrives after the client left; then a fresh command, whose answer
     * proves the loop handled the late reply (replies are delivered in order). */
    zstr_send (s_server.broker, "RELEASE");
    zsock_wait (s_server.broker);
    s_broker_mode ("ok");
    s_expect ("POST", "/v1/cases", JSON_CT, "{\"g\":2}", 201, NULL);
    s_expect ("GET", "/health", NULL, NULL, 200, NULL);
}

/* Reads one whole answer from fd (the request asked to close) and returns its status. */
static int
s_read_status (int fd)
{
    char buf [4096];
    size_t size = 0;
    ssize_t n;
    while (size < sizeof buf - 1 && (n = recv (fd, buf + size, sizeof buf - 1 - size, 0)) > 0)
        size += (size_t) n;
    buf [size] = 0;
    int status = 0;
    return sscanf (buf, "HTTP/1.%*d %d", &status) == 1 ? status : -1;
}

static void
test_many_in_flight (void **state)
{
    (void) state;
    /* The broker holds every command: all of them wait at once, none blocks the
     * loop, and each gets its own answer on release. Two share one key. */
    s_broker_mode ("hold");
    enum { N = 40 };
    int fds [N];
    for (int i = 0; i < N; i++) {
        char request [256];
        int len = snprintf (request, sizeof request,
            "POST /v1/cases HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
            "Idempotency-Key: many-%d\r\nContent-Length: 2\r\n\r\n{}", i == N - 1 ? 0 : i);
        fds [i] = s_connect ();
        assert_true (fds [i] >= 0);
        s_send_all (fds [i], request, (size_t) len);
    }
    for (int i = 0; i < N; i++) {
        char *got = zstr_recv (s_server.broker);
        assert_string_equal (got, "GOT");
        free (got);
    }
    /* While they wait, reads are still served. */
    s_expect ("GET", "/v1/cases/c1", NULL, NULL, 200, NULL);
    zstr_send (s_server.broker, "RELEASE");
    zsock_wait (s_server.broker);
    for (int i = 0; i < N; i++) {
        assert_int_equal (s_read_status (fds [i]), 201);
        close (fds [i]);
    }
    s_broker_mode ("ok");
}

static void
test_hostile_requests (void **state)
{
    (void) state;
    const char *requests [] = {
        "GET /v1/cases/\x80\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /v1/cases/%%%%%% HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /v1/cases?%zz=%zz&&&=&status=%4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /v1/cases/c1 HTTP/1.0\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET http://example.com/v1/cases/c1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "BREW /v1/cases HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "POST /v1/cases HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n3\r\n{}\n\r\n0\r\n\r\n",
        "GET /../../etc/passwd HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "this is not http\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests [0]; i++) {
        resp_t resp;
        if (s_raw (requests [i], strlen (requests [i]), &resp) == 0) {
            assert_true (resp.status >= 200 && resp.status < 600);
            s_free (&resp);
        }
    }
    /* A very long query string and path. */
    size_t len = 6000;
    char *path = malloc (len + 32);
    strcpy (path, "/v1/cases?client_id=");
    memset (path + strlen (path), 'x', len);
    path [len + 20] = 0;
    s_expect_error ("GET", path, NULL, NULL, 400, "invalid_query");
    strcpy (path, "/v1/cases/");
    memset (path + strlen (path), 'y', len);
    path [len + 10] = 0;
    s_expect_error ("GET", path, NULL, NULL, 404, "not_found");
    free (path);
    /* Still alive. */
    s_expect ("GET", "/health", NULL, NULL, 200, "{\"status\":\"ok\"}");
}

/* Requests h2o answers by itself, before any handler: still a JSON error. */
static void
test_h2o_errors_are_json (void **state)
{
    (void) state;
    static const struct {
        const char *request;
        int status;
        const char *error;
    } cases [] = {
        /* over h2o's own body limit: refused from Content-Length, body never read */
        { "POST /v1/cases HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
          "Content-Length: 99999999999\r\n\r\n", 413, "payload_too_large" },
        { "POST /v1/cases HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400, "bad_request" },
        { "POST /v1/cases HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: gzip\r\n\r\n", 400, "bad_request" },
        { "POST /v1/cases HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
          "Content-Length: 12abc\r\n\r\n", 400, "bad_request" },
        { "POST /v1/cases HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
          "Expect: a-pony\r\nContent-Length: 2\r\n\r\n{}", 417, "expectation_failed" },
        /* not a path h2o can route at all */
        { "GET * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404, "not_found" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        resp_t resp;
        if (s_raw (cases [i].request, strlen (cases [i].request), &resp) != 0)
            fail_msg ("request %zu: no HTTP answer", i);
        char value [128];
        if (resp.status != cases [i].status)
            fail_msg ("request %zu: status %d, expected %d; %s", i, resp.status, cases [i].status, resp.body);
        assert_string_equal (s_resp_header (&resp, "content-type", value, sizeof value), "application/json");
        json_t *body = json_loadb (resp.body, resp.body_len, 0, NULL);
        if (!json_is_object (body) || json_object_size (body) != 2
        ||  !json_is_string (json_object_get (body, "detail")))
            fail_msg ("request %zu: not an error body: %s", i, resp.body);
        assert_string_equal (json_string_value (json_object_get (body, "error")), cases [i].error);
        /* Content-Length must describe the JSON, not h2o's text */
        assert_int_equal (atoi (s_resp_header (&resp, "content-length", value, sizeof value)), (int) resp.body_len);
        json_decref (body);
        s_free (&resp);
    }
    s_expect ("GET", "/health", NULL, NULL, 200, "{\"status\":\"ok\"}");
}

/* Answers come from a cache between changes of the read models: a write by another
 * connection (the projector) must show at the next request, never a stale body. */
static void
test_reads_follow_writes (void **state)
{
    (void) state;
    char path [512];
    snprintf (path, sizeof path, "%s/readmodels.db", s_server.dir);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    sqlite3_busy_timeout (db, 5000);
    s_expect ("GET", "/v1/persons/p1", NULL, NULL, 200, "{\"id\":\"p1\"}");
    s_expect ("GET", "/v1/persons/p1", NULL, NULL, 200, "{\"id\":\"p1\"}");
    s_exec (db, "UPDATE persons SET json = '{\"id\":\"p1\",\"v\":2}' WHERE id = 'p1'");
    s_expect ("GET", "/v1/persons/p1", NULL, NULL, 200, "{\"id\":\"p1\",\"v\":2}");
    /* a list and HEAD from the cache */
    s_expect ("GET", "/v1/companies/co1/beneficial-owners", NULL, NULL, 200, "{\"items\":[{\"id\":\"b1\"}]}");
    s_exec (db, "INSERT INTO beneficial_owners VALUES ('b2', 'co1', 'c2', 8, 8, '{\"id\":\"b2\"}')");
    s_expect ("GET", "/v1/companies/co1/beneficial-owners", NULL, NULL, 200,
              "{\"items\":[{\"id\":\"b1\"},{\"id\":\"b2\"}]}");
    resp_t resp = s_http ("HEAD", "/v1/companies/co1/beneficial-owners", NULL, NULL);
    char value [64];
    assert_int_equal (resp.status, 200);
    assert_int_equal (resp.body_len, 0);
    assert_string_equal (s_resp_header (&resp, "content-length", value, sizeof value), "35");
    s_free (&resp);
    /* a deleted row is a 404 at once */
    s_exec (db, "DELETE FROM beneficial_owners WHERE id = 'b2';"
                "UPDATE persons SET json = '{\"id\":\"p1\"}' WHERE id = 'p1'");
    s_expect ("GET", "/v1/companies/co1/beneficial-owners", NULL, NULL, 200, "{\"items\":[{\"id\":\"b1\"}]}");
    s_expect ("GET", "/v1/persons/p1", NULL, NULL, 200, "{\"id\":\"p1\"}");
    sqlite3_close (db);
}

/* GET /openapi.json is schemas/openapi.json, byte for byte. */
static void
test_openapi_served (void **state)
{
    (void) state;
    FILE *file = fopen ("schemas/openapi.json", "rb");
    assert_non_null (file);
    static char expected [1 << 20];
    size_t size = fread (expected, 1, sizeof expected - 1, file);
    fclose (file);
    expected [size] = 0;
    resp_t resp = s_http ("GET", "/openapi.json", NULL, NULL);
    assert_int_equal (resp.status, 200);
    assert_int_equal (resp.body_len, size);
    assert_memory_equal (resp.body, expected, size);
    s_free (&resp);
    s_expect_error ("POST", "/openapi.json", JSON_CT, "{}", 405, "method_not_allowed");
}

/* Last: SIGTERM must stop the gateway promptly and cleanly. Exit status 0 also
 * means, under SANITIZE=1, that the child saw no leak or memory error. */
static void
test_sigterm_exits_cleanly (void **state)
{
    (void) state;
    assert_true (s_server.pid > 0);
    int64_t start = zclock_mono ();
    kill (s_server.pid, SIGTERM);
    int status = -1;
    assert_int_equal (waitpid (s_server.pid, &status, 0), s_server.pid);
    s_server.pid = 0;
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        fail_msg ("gateway ended with status 0x%x", status);
    assert_true (zclock_mono () - start < 3000);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_health_and_protocol),
        cmocka_unit_test (test_reads),
        cmocka_unit_test (test_create_case_and_ready),
        cmocka_unit_test (test_idempotency_key),
        cmocka_unit_test (test_body_validation),
        cmocka_unit_test (test_document_status),
        cmocka_unit_test (test_decide_and_close),
        cmocka_unit_test (test_error_replies),
        cmocka_unit_test (test_timeout),
        cmocka_unit_test (test_client_gone_before_reply),
        cmocka_unit_test (test_many_in_flight),
        cmocka_unit_test (test_hostile_requests),
        cmocka_unit_test (test_h2o_errors_are_json),
        cmocka_unit_test (test_reads_follow_writes),
        cmocka_unit_test (test_openapi_served),
        cmocka_unit_test (test_sigterm_exits_cleanly),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
