/* test_store_mongo_backend — the MongoDB event log (store_mongo.c) through the
 * backend-neutral API, against a real wire-protocol server: the FerretDB test
 * server (.cache/ferretdb/ferretdb, or $DOSSIER_FERRETDB; built by scripts/ferretdb.sh
 * build, which `make test` runs first and this test runs when the binary is missing),
 * started here on a free port and a temp directory. Only when it cannot be built (no
 * Go) is every test skipped, with a message saying so. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../actors/store/store_backend.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------ the test server */

typedef struct {
    char binary [512];
    char dir [64];
    int port;
    pid_t pid;
    char uri [96];
} s_server_t;

static s_server_t s_server;
static int s_database_seq;

static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0
    &&  getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
        port = ntohs (addr.sin_port);
    close (fd);
    return port;
}

/* Starts the server and waits (up to 30 s) for its "ready" line. 0 ok, -1 failed. */
static int
s_server_start (void)
{
    int out [2];
    if (pipe (out))
        return -1;
    char port [16];
    snprintf (port, sizeof port, "%d", s_server.port);
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2 (out [1], STDOUT_FILENO);
        close (out [0]);
        close (out [1]);
        int null = open ("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2 (null, STDERR_FILENO);
        execl (s_server.binary, s_server.binary, "-port", port, "-dir", s_server.dir, (char *) NULL);
        _exit (127);
    }
    close (out [1]);
    s_server.pid = pid;
    char line [256] = "";
    size_t used = 0;
    struct timespec start;
    clock_gettime (CLOCK_MONOTONIC, &start);
    int rc = -1;
    while (true) {
        struct timespec now;
        clock_gettime (CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited > 30000)
            break;
        struct pollfd p = { .fd = out [0], .events = POLLIN };
        if (poll (&p, 1, 100) <= 0)
            continue;
        ssize_t n = read (out [0], line + used, sizeof line - 1 - used);
        if (n <= 0)
            break;
        used += (size_t) n;
        line [used] = 0;
        if (strstr (line, "ready")) {
            rc = 0;
            break;
        }
        if (used >= sizeof line - 1)
            break;
    }
    close (out [0]);
    if (rc)
        fprintf (stderr, "FerretDB test server did not get ready: '%s'\n", line);
    return rc;
}

static void
s_server_stop (void)
{
    if (s_server.pid > 0) {
        kill (s_server.pid, SIGTERM);
        waitpid (s_server.pid, NULL, 0);
        s_server.pid = 0;
    }
}

static int
s_rm (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static int
s_group_setup (void **state)
{
    (void) state;
    unsetenv ("DOSSIER_CONFIG");
    log_init ("test", getenv ("TEST_LOG_LEVEL") ? getenv ("TEST_LOG_LEVEL") : "error");
    const char *binary = getenv ("DOSSIER_FERRETDB");
    snprintf (s_server.binary, sizeof s_server.binary, "%s", binary ? binary : ".cache/ferretdb/ferretdb");
    if (access (s_server.binary, X_OK) != 0 && !binary) {
        /* Built once into .cache/ (make test does it first); a no-op when present. */
        if (system ("scripts/ferretdb.sh build >&2") != 0)
            fprintf (stderr, "scripts/ferretdb.sh build failed\n");
    }
    if (access (s_server.binary, X_OK) != 0) {
        fprintf (stderr, "SKIPPED: no FerretDB test server at %s; build it with 'scripts/ferretdb.sh build'"
                 " (make test does)\n", s_server.binary);
        s_server.binary [0] = 0;
        return 0;
    }
    snprintf (s_server.dir, sizeof s_server.dir, "/tmp/dossier-fdb-XXXXXX");
    if (!mkdtemp (s_server.dir))
        return -1;
    s_server.port = s_free_port ();
    snprintf (s_server.uri, sizeof s_server.uri, "mongodb://127.0.0.1:%d/", s_server.port);
    return s_server.port > 0 && s_server_start () == 0 ? 0 : -1;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    s_server_stop ();
    if (s_server.dir [0])
        nftw (s_server.dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    mongoc_cleanup ();
    return 0;
}

/* ------------------------------------------------ fixtures */

typedef struct {
    char database [64];
    config_t *config;
    store_backend_t *backend;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof (fixture_t));
    assert_non_null (f);
    snprintf (f->database, sizeof f->database, "unit_%d_%d", (int) getpid (), ++s_database_seq);
    setenv ("DOSSIER_MONGODB_DATABASE", f->database, 1);
    unsetenv ("DOSSIER_MONGODB_RETRY_MAX_MS");
    f->config = config_load (NULL);
    assert_non_null (f->config);
    if (s_server.binary [0]) {
        f->backend = store_backend_new (&store_mongo_ops, s_server.uri, f->config);
        assert_non_null (f->backend);
    }
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    store_backend_destroy (&f->backend);
    if (s_server.binary [0] && s_server.pid > 0) {
        mongoc_client_t *client = mongoc_client_new (s_server.uri);
        if (client) {
            mongoc_database_t *db = mongoc_client_get_database (client, f->database);
            mongoc_database_drop (db, NULL);
            mongoc_database_destroy (db);
            mongoc_client_destroy (client);
        }
    }
    config_destroy (&f->config);
    free (f);
    return 0;
}

#define S_REQUIRE_SERVER() do { if (!s_server.binary [0]) { skip (); } } while (0)

/* A request with n events whose ids are "<command>/<i>" and data {"i":i} (the
 * last event's data holds a NUL and a high byte, which must come back as sent). */
typedef struct {
    store_append_t req;
    store_new_event_t events [16];
    char data [16][32];
} test_append_t;

static void
s_make (test_append_t *a, const char *stream, int64_t expected, const char *command, size_t n)
{
    memset (a, 0, sizeof (*a));
    snprintf (a->req.stream, sizeof a->req.stream, "%s", stream);
    snprintf (a->req.command_id, sizeof a->req.command_id, "%s", command);
    snprintf (a->req.fingerprint, sizeof a->req.fingerprint, "fp-%s", command);
    a->req.expected_version = expected;
    a->req.result = "{\"ok\":true}";
    a->req.result_size = strlen (a->req.result);
    for (size_t i = 0; i < n; i++) {
        snprintf (a->events [i].id, sizeof a->events [i].id, "%s/%zu", command, i);
        snprintf (a->events [i].type, sizeof a->events [i].type, "Test%zu", i);
        snprintf (a->data [i], sizeof a->data [i], "{\"i\":%zu}", i);
        a->events [i].data = a->data [i];
        a->events [i].data_size = strlen (a->data [i]);
    }
    if (n > 0) {
        memcpy (a->data [n - 1], "{\"b\":\"\0\xff\"}", 11);
        a->events [n - 1].data_size = 11;
    }
    a->req.events = a->events;
    a->req.count = n;
}

/* Appends the given requests as one batch; outcomes has n entries. */
static int
s_batch (store_backend_t *backend, test_append_t **appends, size_t n, store_outcome_t *outcomes)
{
    store_batch_item_t items [16];
    for (size_t i = 0; i < n; i++) {
        items [i].req = &appends [i]->req;
        items [i].correlation_id = "corr-1";
        items [i].traceparent = NULL;
    }
    return store_backend_append_batch (backend, items, n, 1700000000000000LL, outcomes);
}

static store_outcome_t
s_one (store_backend_t *backend, test_append_t *a)
{
    store_outcome_t outcome;
    s_batch (backend, &a, 1, &outcome);
    return outcome;
}

static int64_t
s_head_of (store_backend_t *backend)
{
    int64_t head = -1;
    assert_int_equal (store_backend_head (backend, &head), 0);
    return head;
}

/* ------------------------------------------------ tests */

static void
test_lookup_by_name (void **state)
{
    (void) state;
    assert_ptr_equal (store_backend_lookup ("mongodb"), &store_mongo_ops);
    assert_ptr_equal (store_backend_lookup ("sqlite"), &store_sqlite_ops);
    assert_null (store_backend_lookup ("mongo"));
}

static void
test_append_and_read (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    test_append_t a, b;
    s_make (&a, "case-1", 0, "cmd-a", 3);
    s_make (&b, "case-2", 0, "cmd-b", 2);
    test_append_t *batch [] = { &a, &b };
    store_outcome_t out [2];
    assert_int_equal (s_batch (f->backend, batch, 2, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [0].first_position, 1);
    assert_int_equal (out [0].last_position, 3);
    assert_int_equal (out [0].version, 3);
    assert_int_equal (out [1].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [1].first_position, 4);
    assert_int_equal (out [1].last_position, 5);
    assert_int_equal (out [1].version, 2);
    assert_int_equal (s_head_of (f->backend), 5);

    store_events_t ev;
    store_events_init (&ev);
    assert_int_equal (store_backend_read_stream (f->backend, "case-1", 1, 100, &ev), 0);
    assert_int_equal (ev.count, 3);
    assert_int_equal (ev.head, 5);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal (ev.events [i].version, (int64_t) i + 1);
        assert_int_equal (ev.events [i].position, (int64_t) i + 1);
        assert_string_equal (ev.events [i].stream, "case-1");
        assert_string_equal (ev.events [i].id, a.events [i].id);
        assert_string_equal (ev.events [i].type, a.events [i].type);
        assert_string_equal (ev.events [i].command_id, "cmd-a");
        assert_string_equal (ev.events [i].correlation_id, "corr-1");
        assert_int_equal (ev.events [i].timestamp_us, 1700000000000000LL);
        assert_int_equal (ev.events [i].data_size, a.events [i].data_size);
        assert_memory_equal (ev.events [i].data, a.events [i].data, a.events [i].data_size);
    }
    /* from the middle of an append */
    assert_int_equal (store_backend_read_stream (f->backend, "case-1", 3, 100, &ev), 0);
    assert_int_equal (ev.count, 1);
    assert_int_equal (ev.events [0].version, 3);
    assert_int_equal (store_backend_read_stream (f->backend, "no-such", 1, 100, &ev), 0);
    assert_int_equal (ev.count, 0);

    assert_int_equal (store_backend_read_all (f->backend, 1, 100, &ev), 0);
    assert_int_equal (ev.count, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal (ev.events [i].position, (int64_t) i + 1);
    assert_string_equal (ev.events [3].stream, "case-2");
    /* paging from a position inside a document, and a small max */
    assert_int_equal (store_backend_read_all (f->backend, 2, 2, &ev), 0);
    assert_int_equal (ev.count, 2);
    assert_int_equal (ev.events [0].position, 2);
    assert_int_equal (ev.events [1].position, 3);
    assert_int_equal (store_backend_read_all (f->backend, 6, 100, &ev), 0);
    assert_int_equal (ev.count, 0);
    assert_int_equal (ev.head, 5);
    store_events_reset (&ev);
    store_outcomes_free (out, 2);
}

static void
test_conflict_and_duplicate (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    test_append_t a, again, other, next, wrong, any;
    s_make (&a, "case-1", 0, "cmd-a", 2);
    store_outcome_t o = s_one (f->backend, &a);
    assert_int_equal (o.kind, STORE_OUTCOME_APPENDED);

    /* another command that expects a new stream: conflict, with the current version */
    s_make (&other, "case-1", 0, "cmd-other", 1);
    o = s_one (f->backend, &other);
    assert_int_equal (o.kind, STORE_OUTCOME_CONFLICT);
    assert_int_equal (o.current_version, 2);

    /* the same command again (its stream has moved on): a duplicate with the first result */
    s_make (&again, "case-1", 0, "cmd-a", 2);
    again.req.result = "{\"other\":1}";
    again.req.result_size = strlen (again.req.result);
    o = s_one (f->backend, &again);
    assert_int_equal (o.kind, STORE_OUTCOME_DUPLICATE);
    assert_int_equal (o.result_size, strlen ("{\"ok\":true}"));
    assert_memory_equal (o.result, "{\"ok\":true}", o.result_size);
    assert_string_equal (o.fingerprint, "fp-cmd-a");
    store_outcomes_free (&o, 1);

    /* expected version right / wrong / any */
    s_make (&next, "case-1", 2, "cmd-next", 1);
    o = s_one (f->backend, &next);
    assert_int_equal (o.kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (o.version, 3);
    s_make (&wrong, "case-1", 2, "cmd-wrong", 1);
    o = s_one (f->backend, &wrong);
    assert_int_equal (o.kind, STORE_OUTCOME_CONFLICT);
    assert_int_equal (o.current_version, 3);
    s_make (&any, "case-1", -1, "cmd-any", 1);
    o = s_one (f->backend, &any);
    assert_int_equal (o.kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (o.version, 4);
    assert_int_equal (o.first_position, 4);
    /* a duplicate with expected -1 goes through the insert's duplicate key */
    o = s_one (f->backend, &any);
    assert_int_equal (o.kind, STORE_OUTCOME_DUPLICATE);
    store_outcomes_free (&o, 1);
    assert_int_equal (s_head_of (f->backend), 4);
}

static void
test_one_batch_many_cases (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    /* in one batch: two appends chained on one stream, a conflict behind them,
     * the same command twice, and a refused request in the middle */
    test_append_t a, b, c, d, dup, bad;
    s_make (&a, "s", 0, "c-a", 2);
    s_make (&b, "s", 2, "c-b", 1);
    s_make (&c, "s", 2, "c-c", 1);          /* expects 2, but b made it 3 */
    s_make (&d, "t", 0, "c-d", 1);
    s_make (&dup, "t", 0, "c-d", 1);
    s_make (&bad, "u", 0, "c-bad", 0);      /* no events: refused before the backend */
    test_append_t *batch [] = { &a, &b, &bad, &c, &d, &dup };
    store_outcome_t out [6];
    assert_int_equal (s_batch (f->backend, batch, 6, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [1].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [1].version, 3);
    assert_int_equal (out [1].first_position, 3);
    assert_int_equal (out [2].kind, STORE_OUTCOME_ERROR);
    assert_string_equal (out [2].error, "invalid");
    assert_int_equal (out [3].kind, STORE_OUTCOME_CONFLICT);
    assert_int_equal (out [3].current_version, 3);
    assert_int_equal (out [4].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [4].first_position, 4);
    assert_int_equal (out [5].kind, STORE_OUTCOME_DUPLICATE);
    assert_memory_equal (out [5].result, "{\"ok\":true}", out [5].result_size);
    store_outcomes_free (out, 6);
    assert_int_equal (s_head_of (f->backend), 4);

    store_events_t ev;
    store_events_init (&ev);
    assert_int_equal (store_backend_read_all (f->backend, 1, 100, &ev), 0);
    assert_int_equal (ev.count, 4);
    for (size_t i = 0; i < ev.count; i++)
        assert_int_equal (ev.events [i].position, (int64_t) i + 1);
    store_events_reset (&ev);
}

/* Deletes a stream link, as if the store died between writing a batch's events
 * and its stream index. */
static void
s_drop_stream_index (const char *database, const char *link)
{
    mongoc_client_t *client = mongoc_client_new (s_server.uri);
    assert_non_null (client);
    mongoc_collection_t *streams = mongoc_client_get_collection (client, database, "streams");
    bson_t *selector = BCON_NEW ("_id", BCON_UTF8 (link));
    bson_error_t error;
    bson_t reply;
    assert_true (mongoc_collection_delete_one (streams, selector, NULL, &reply, &error));
    bson_iter_t iter;
    assert_true (bson_iter_init_find (&iter, &reply, "deletedCount"));
    assert_int_equal (bson_iter_as_int64 (&iter), 1);
    bson_destroy (&reply);
    bson_destroy (selector);
    mongoc_collection_destroy (streams);
    mongoc_client_destroy (client);
}

static void
test_reopen_recovers_head_and_stream_index (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    test_append_t a, b, c;
    s_make (&a, "s1", 0, "c-1", 3);
    assert_int_equal (s_one (f->backend, &a).kind, STORE_OUTCOME_APPENDED);
    s_make (&b, "s2", 0, "c-2", 2);
    assert_int_equal (s_one (f->backend, &b).kind, STORE_OUTCOME_APPENDED);
    store_backend_destroy (&f->backend);
    /* the last batch's stream link is lost; reopening writes it again */
    s_drop_stream_index (f->database, "s2#1");
    f->backend = store_backend_new (&store_mongo_ops, s_server.uri, f->config);
    assert_non_null (f->backend);
    assert_int_equal (s_head_of (f->backend), 5);
    store_events_t ev;
    store_events_init (&ev);
    assert_int_equal (store_backend_read_stream (f->backend, "s2", 1, 100, &ev), 0);
    assert_int_equal (ev.count, 2);
    assert_int_equal (ev.events [0].position, 4);
    /* a cold read of the whole log, from the middle of a document, then paging on */
    assert_int_equal (store_backend_read_all (f->backend, 2, 2, &ev), 0);
    assert_int_equal (ev.count, 2);
    assert_int_equal (ev.events [0].position, 2);
    assert_int_equal (ev.events [1].position, 3);
    assert_string_equal (ev.events [1].command_id, "c-1");
    assert_int_equal (ev.events [1].data_size, a.events [2].data_size);
    assert_memory_equal (ev.events [1].data, a.events [2].data, a.events [2].data_size);
    assert_int_equal (store_backend_read_all (f->backend, 4, 100, &ev), 0);
    assert_int_equal (ev.count, 2);
    assert_int_equal (ev.events [1].position, 5);
    assert_int_equal (ev.head, 5);
    store_events_reset (&ev);
    s_make (&c, "s2", 2, "c-3", 1);
    store_outcome_t o = s_one (f->backend, &c);
    assert_int_equal (o.kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (o.first_position, 6);
    assert_int_equal (o.version, 3);
}

/* Inserts the document of an append exactly as the store would have, as if its
 * insert reached the server but the answer was lost: the store must recognise its
 * own write (the batch token) and answer APPENDED at the stored positions. */
static void
test_lost_answer_is_recognised (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    test_append_t a, b;
    s_make (&a, "s1", 0, "c-1", 2);
    assert_int_equal (s_one (f->backend, &a).kind, STORE_OUTCOME_APPENDED);
    mongoc_client_t *client = mongoc_client_new (s_server.uri);
    assert_non_null (client);
    mongoc_collection_t *events = mongoc_client_get_collection (client, f->database, "events");
    bson_t *doc = BCON_NEW ("_id", BCON_UTF8 ("c-2"), "stream", BCON_UTF8 ("s2"),
                            "first_version", BCON_INT64 (1), "last_version", BCON_INT64 (1),
                            "first_position", BCON_INT64 (3), "last_position", BCON_INT64 (3),
                            "batch", BCON_INT64 (3), "ts", BCON_INT64 (1), "corr", BCON_UTF8 (""),
                            "fingerprint", BCON_UTF8 ("fp-c-2"), "result", BCON_BIN (0, (const uint8_t *) "{}", 2),
                            "events", "[", "{", "position", BCON_INT64 (3), "version", BCON_INT64 (1),
                            "id", BCON_UTF8 ("c-2/0"), "type", BCON_UTF8 ("Test0"),
                            "data", BCON_BIN (0, (const uint8_t *) "{}", 2), "}", "]");
    bson_error_t error;
    assert_true (mongoc_collection_insert_one (events, doc, NULL, NULL, &error));
    bson_destroy (doc);
    mongoc_collection_destroy (events);
    mongoc_client_destroy (client);

    s_make (&b, "s2", -1, "c-2", 1);
    store_outcome_t o = s_one (f->backend, &b);
    assert_int_equal (o.kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (o.first_position, 3);
    assert_int_equal (o.last_position, 3);
    assert_int_equal (s_head_of (f->backend), 3);
    store_events_t ev;
    store_events_init (&ev);
    assert_int_equal (store_backend_read_stream (f->backend, "s2", 1, 100, &ev), 0);
    assert_int_equal (ev.count, 1);
    store_events_reset (&ev);
}

/* A dead store's last insert lands after this store read the head (positions taken
 * behind its back): the append must not overlap it, but go on from the new head. */
static void
test_position_taken_behind_the_store (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    test_append_t a, b;
    s_make (&a, "s1", 0, "c-1", 2);
    assert_int_equal (s_one (f->backend, &a).kind, STORE_OUTCOME_APPENDED);
    mongoc_client_t *client = mongoc_client_new (s_server.uri);
    assert_non_null (client);
    mongoc_collection_t *events = mongoc_client_get_collection (client, f->database, "events");
    bson_t *doc = BCON_NEW ("_id", BCON_UTF8 ("zombie"), "stream", BCON_UTF8 ("z"),
                            "first_version", BCON_INT64 (1), "last_version", BCON_INT64 (2),
                            "first_position", BCON_INT64 (3), "last_position", BCON_INT64 (4),
                            "batch", BCON_INT64 (1), "ts", BCON_INT64 (1), "corr", BCON_UTF8 (""),
                            "fingerprint", BCON_UTF8 (""), "result", BCON_BIN (0, (const uint8_t *) "{}", 2),
                            "events", "[",
                            "{", "position", BCON_INT64 (3), "version", BCON_INT64 (1), "id", BCON_UTF8 ("z/0"),
                            "type", BCON_UTF8 ("T"), "data", BCON_BIN (0, (const uint8_t *) "{}", 2), "}",
                            "{", "position", BCON_INT64 (4), "version", BCON_INT64 (2), "id", BCON_UTF8 ("z/1"),
                            "type", BCON_UTF8 ("T"), "data", BCON_BIN (0, (const uint8_t *) "{}", 2), "}",
                            "]");
    bson_error_t error;
    assert_true (mongoc_collection_insert_one (events, doc, NULL, NULL, &error));
    bson_destroy (doc);
    mongoc_collection_destroy (events);
    mongoc_client_destroy (client);

    s_make (&b, "s2", 0, "c-2", 3);
    store_outcome_t o = s_one (f->backend, &b);
    assert_int_equal (o.kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (o.first_position, 5);
    assert_int_equal (o.last_position, 7);
    assert_int_equal (s_head_of (f->backend), 7);
    store_events_t ev;
    store_events_init (&ev);
    assert_int_equal (store_backend_read_all (f->backend, 1, 100, &ev), 0);
    assert_int_equal (ev.count, 7);
    for (size_t i = 0; i < ev.count; i++)
        assert_int_equal (ev.events [i].position, (int64_t) i + 1);
    store_events_reset (&ev);
}

static void *
s_restart_later (void *arg)
{
    (void) arg;
    usleep (1500 * 1000);
    s_server_start ();
    if (getenv ("TEST_LOG_LEVEL"))
        fprintf (stderr, "server back at %lld ms\n", (long long) zclock_mono ());
    return NULL;
}

static void
test_server_down_then_back (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    test_append_t a, b, c;
    s_make (&a, "s1", 0, "c-1", 2);
    assert_int_equal (s_one (f->backend, &a).kind, STORE_OUTCOME_APPENDED);

    /* down, with a retry budget: the append is refused as unavailable, nothing written */
    s_server_stop ();
    setenv ("DOSSIER_MONGODB_RETRY_MAX_MS", "800", 1);
    store_backend_t *impatient = store_backend_new (&store_mongo_ops, s_server.uri, f->config);
    assert_non_null (impatient);            /* opening never needs the server */
    s_make (&b, "s2", 0, "c-2", 1);
    store_outcome_t o = s_one (impatient, &b);
    assert_int_equal (o.kind, STORE_OUTCOME_ERROR);
    assert_string_equal (o.error, "unavailable");
    store_events_t ev;
    store_events_init (&ev);
    assert_int_equal (store_backend_read_all (impatient, 1, 10, &ev), -1);
    store_backend_destroy (&impatient);
    unsetenv ("DOSSIER_MONGODB_RETRY_MAX_MS");

    /* down, no budget: the append waits until the server is back, then lands */
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_restart_later, NULL), 0);
    s_make (&c, "s2", 0, "c-2", 1);
    o = s_one (f->backend, &c);
    pthread_join (thread, NULL);
    assert_true (s_server.pid > 0);
    assert_int_equal (o.kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (o.first_position, 3);
    assert_int_equal (store_backend_read_all (f->backend, 1, 10, &ev), 0);
    assert_int_equal (ev.count, 3);
    store_events_reset (&ev);
}

/* Trace context: each event of an append records the append's traceparent (from the
 * tail cache and, after reopening, from the database); an append without one, or with
 * one that does not parse, records none. */
static void
test_traceparent_recorded (void **state)
{
    S_REQUIRE_SERVER ();
    fixture_t *f = *state;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    test_append_t a, b, c;
    s_make (&a, "t-1", 0, "c-tp", 2);
    s_make (&b, "t-2", 0, "c-none", 1);
    s_make (&c, "t-3", 0, "c-bad", 1);
    store_batch_item_t items [3] = {
        { &a.req, "corr-1", tp }, { &b.req, "corr-1", NULL }, { &c.req, "corr-1", "00-bad" },
    };
    store_outcome_t out [3];
    assert_int_equal (store_backend_append_batch (f->backend, items, 3, 1700000000000000LL, out), 0);
    for (int round = 0; round < 2; round++) {
        store_events_t ev;
        store_events_init (&ev);
        assert_int_equal (store_backend_read_all (f->backend, 1, 100, &ev), 0);
        assert_int_equal (ev.count, 4);
        assert_string_equal (ev.events [0].traceparent, tp);
        assert_string_equal (ev.events [1].traceparent, tp);
        assert_string_equal (ev.events [2].traceparent, "");
        assert_string_equal (ev.events [3].traceparent, "");
        store_events_reset (&ev);
        /* again from the database itself */
        store_backend_destroy (&f->backend);
        f->backend = store_backend_new (&store_mongo_ops, s_server.uri, f->config);
        assert_non_null (f->backend);
    }
    store_outcomes_free (out, 3);
}

static void
test_bad_uri_fails_cleanly (void **state)
{
    fixture_t *f = *state;
    store_backend_t *backend = store_backend_new (&store_mongo_ops, "http://nope", f->config);
    assert_null (backend);
    backend = store_backend_new (&store_mongo_ops, "mongodb://", f->config);
    assert_null (backend);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_lookup_by_name),
        cmocka_unit_test_setup_teardown (test_append_and_read, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_conflict_and_duplicate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_one_batch_many_cases, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reopen_recovers_head_and_stream_index, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lost_answer_is_recognised, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_position_taken_behind_the_store, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_server_down_then_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_traceparent_recorded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_uri_fails_cleanly, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
