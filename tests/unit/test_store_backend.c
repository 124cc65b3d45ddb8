/* test_store_backend — the SQLite event log through the backend-neutral API:
 * appends and reads, gapless positions, optimistic concurrency, idempotency by
 * command id, per-append atomicity inside a batch, and durability across reopen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../actors/store/store_backend.h"
#include "ids.h"

#include <czmq.h>
#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char dir [64];
    char path [128];
    store_backend_t *backend;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *f = calloc (1, sizeof (fixture_t));
    assert_non_null (f);
    snprintf (f->dir, sizeof f->dir, "/tmp/dossier-store-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->path, sizeof f->path, "%s/events.db", f->dir);
    f->backend = store_backend_new (&store_sqlite_ops, f->path, NULL);
    assert_non_null (f->backend);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    store_backend_destroy (&f->backend);
    const char *suffixes [] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < 4; i++) {
        char path [160];
        snprintf (path, sizeof path, "%s%s", f->path, suffixes [i]);
        unlink (path);
    }
    assert_int_equal (rmdir (f->dir), 0);
    free (f);
    return 0;
}

/* A request with n events whose ids are "<command>/<i>" and data {"i":i}. The
 * strings live in the test's static storage, as the decoded requests would
 * borrow from a message. */
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
    a->req.events = a->events;
    a->req.count = n;
}

/* Appends the given requests as one batch; outcomes must have n entries. */
static int
s_batch (store_backend_t *backend, test_append_t **appends, size_t n, store_outcome_t *outcomes)
{
    store_batch_item_t items [16];
    for (size_t i = 0; i < n; i++) {
        items [i].req = &appends [i]->req;
        items [i].correlation_id = "corr-1";
        items [i].traceparent = NULL;
    }
    return store_backend_append_batch (backend, items, n, 1700000000000000, outcomes);
}

static int64_t
s_head (store_backend_t *backend)
{
    int64_t head = -1;
    assert_int_equal (store_backend_head (backend, &head), 0);
    return head;
}

static void
test_append_and_read (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (s_head (f->backend), 0);
    test_append_t a;
    s_make (&a, "case-a", 0, "cmd-1", 3);
    store_outcome_t out [1];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [0].first_position, 1);
    assert_int_equal (out [0].last_position, 3);
    assert_int_equal (out [0].version, 3);
    store_outcomes_free (out, 1);

    store_events_t events;
    store_events_init (&events);
    assert_int_equal (store_backend_read_stream (f->backend, "case-a", 1, 100, &events), 0);
    assert_int_equal (events.count, 3);
    assert_int_equal (events.head, 3);
    for (size_t i = 0; i < 3; i++) {
        event_t *ev = &events.events [i];
        assert_int_equal (ev->position, (int64_t) i + 1);
        assert_int_equal (ev->version, (int64_t) i + 1);
        assert_string_equal (ev->stream, "case-a");
        assert_string_equal (ev->id, a.events [i].id);
        assert_string_equal (ev->type, a.events [i].type);
        assert_string_equal (ev->command_id, "cmd-1");
        assert_string_equal (ev->correlation_id, "corr-1");
        assert_int_equal (ev->timestamp_us, 1700000000000000);
        assert_int_equal (ev->data_size, strlen (a.data [i]));
        assert_memory_equal (ev->data, a.data [i], ev->data_size);
    }
    /* from_version inside the stream; an unknown stream is empty, not an error */
    assert_int_equal (store_backend_read_stream (f->backend, "case-a", 3, 100, &events), 0);
    assert_int_equal (events.count, 1);
    assert_int_equal (events.events [0].version, 3);
    assert_int_equal (store_backend_read_stream (f->backend, "nope", 1, 100, &events), 0);
    assert_int_equal (events.count, 0);
    assert_int_equal (events.head, 3);

    assert_int_equal (store_backend_read_all (f->backend, 2, 1, &events), 0);
    assert_int_equal (events.count, 1);
    assert_int_equal (events.events [0].position, 2);
    assert_int_equal (events.head, 3);
    assert_int_equal (store_backend_read_all (f->backend, 4, 10, &events), 0);
    assert_int_equal (events.count, 0);
    /* from below 1 reads from the start */
    assert_int_equal (store_backend_read_all (f->backend, -5, 10, &events), 0);
    assert_int_equal (events.count, 3);
    store_events_reset (&events);
}

static void
test_gapless_across_batches (void **state)
{
    fixture_t *f = *state;
    test_append_t a, b, c, d;
    s_make (&a, "case-a", 0, "cmd-a", 2);
    s_make (&b, "case-b", -1, "cmd-b", 1);
    store_outcome_t out [2];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a, &b}, 2, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [1].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [0].first_position, 1);
    assert_int_equal (out [0].last_position, 2);
    assert_int_equal (out [1].first_position, 3);
    assert_int_equal (out [1].last_position, 3);
    assert_int_equal (out [1].version, 1);
    store_outcomes_free (out, 2);

    s_make (&c, "case-a", 2, "cmd-c", 4);
    s_make (&d, "case-b", 1, "cmd-d", 1);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c, &d}, 2, out), 0);
    assert_int_equal (out [0].first_position, 4);
    assert_int_equal (out [0].last_position, 7);
    assert_int_equal (out [0].version, 6);
    assert_int_equal (out [1].first_position, 8);
    assert_int_equal (out [1].version, 2);
    store_outcomes_free (out, 2);

    store_events_t events;
    store_events_init (&events);
    assert_int_equal (store_backend_read_all (f->backend, 1, 100, &events), 0);
    assert_int_equal (events.count, 8);
    assert_int_equal (events.head, 8);
    for (size_t i = 0; i < events.count; i++)
        assert_int_equal (events.events [i].position, (int64_t) i + 1);
    assert_int_equal (store_backend_read_stream (f->backend, "case-a", 1, 100, &events), 0);
    assert_int_equal (events.count, 6);
    for (size_t i = 0; i < events.count; i++)
        assert_int_equal (events.events [i].version, (int64_t) i + 1);
    store_events_reset (&events);
}

static void
test_conflict (void **state)
{
    fixture_t *f = *state;
    test_append_t a, b, c, d;
    s_make (&a, "case-a", 0, "cmd-1", 2);
    store_outcome_t out [1];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
    store_outcomes_free (out, 1);

    s_make (&b, "case-a", 0, "cmd-2", 1);       /* must not exist: it does */
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&b}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_CONFLICT);
    assert_int_equal (out [0].current_version, 2);
    s_make (&c, "case-a", 1, "cmd-3", 1);       /* stale */
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_CONFLICT);
    assert_int_equal (out [0].current_version, 2);
    s_make (&c, "case-new", 3, "cmd-4", 1);     /* a version of a stream that does not exist */
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_CONFLICT);
    assert_int_equal (out [0].current_version, 0);
    assert_int_equal (s_head (f->backend), 2);

    /* a conflicting command wrote no command row: retried right, it appends */
    s_make (&d, "case-a", 2, "cmd-2", 1);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&d}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [0].version, 3);
    s_make (&d, "case-a", -1, "cmd-5", 1);      /* any version */
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&d}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [0].version, 4);
    assert_int_equal (s_head (f->backend), 4);
}

static void
test_duplicate (void **state)
{
    fixture_t *f = *state;
    test_append_t a, b;
    s_make (&a, "case-a", 0, "cmd-1", 2);
    a.req.result = "{\"case_id\":\"case-a\",\"events\":2}";
    a.req.result_size = strlen (a.req.result);
    store_outcome_t out [2];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
    store_outcomes_free (out, 1);

    /* same command id, other events and expected version: nothing written */
    s_make (&b, "case-a", 7, "cmd-1", 3);
    snprintf (b.events [0].id, sizeof b.events [0].id, "other-id");
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&b}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_DUPLICATE);
    assert_int_equal (out [0].result_size, a.req.result_size);
    assert_memory_equal (out [0].result, a.req.result, a.req.result_size);
    assert_string_equal (out [0].fingerprint, "fp-cmd-1");
    store_outcomes_free (out, 1);
    assert_int_equal (s_head (f->backend), 2);

    /* the same command twice in one batch: the second sees the first */
    test_append_t c, d;
    s_make (&c, "case-c", 0, "cmd-2", 1);
    s_make (&d, "case-c", 0, "cmd-2", 1);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c, &d}, 2, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [1].kind, STORE_OUTCOME_DUPLICATE);
    assert_string_equal (out [1].fingerprint, "fp-cmd-2");
    store_outcomes_free (out, 2);
    assert_int_equal (s_head (f->backend), 3);

    /* an empty remembered result comes back empty */
    s_make (&c, "case-e", 0, "cmd-3", 1);
    c.req.result = NULL;
    c.req.result_size = 0;
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c}, 1, out), 0);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_DUPLICATE);
    assert_int_equal (out [0].result_size, 0);
    store_outcomes_free (out, 1);
}

static void
test_atomicity (void **state)
{
    fixture_t *f = *state;
    test_append_t a, b, c, d, e;
    s_make (&a, "case-a", 0, "cmd-a", 2);
    store_outcome_t out [4];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
    store_outcomes_free (out, 1);

    /* b conflicts, c reuses an event id already stored on its third event,
     * d and e are fine: d and e commit, gapless, and nothing of c is left. */
    s_make (&b, "case-a", 0, "cmd-b", 1);
    s_make (&c, "case-c", 0, "cmd-c", 3);
    snprintf (c.events [2].id, sizeof c.events [2].id, "cmd-a/0");
    s_make (&d, "case-d", 0, "cmd-d", 2);
    s_make (&e, "case-a", 2, "cmd-e", 1);
    store_outcome_t out4 [4];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&b, &c, &d, &e}, 4, out4), 0);
    assert_int_equal (out4 [0].kind, STORE_OUTCOME_CONFLICT);
    assert_int_equal (out4 [1].kind, STORE_OUTCOME_ERROR);
    assert_string_equal (out4 [1].error, "invalid");
    assert_int_equal (out4 [2].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out4 [2].first_position, 3);
    assert_int_equal (out4 [2].last_position, 4);
    assert_int_equal (out4 [3].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out4 [3].first_position, 5);
    assert_int_equal (out4 [3].version, 3);
    store_outcomes_free (out4, 4);

    store_events_t events;
    store_events_init (&events);
    assert_int_equal (store_backend_read_stream (f->backend, "case-c", 1, 100, &events), 0);
    assert_int_equal (events.count, 0);
    assert_int_equal (store_backend_read_all (f->backend, 1, 100, &events), 0);
    assert_int_equal (events.count, 5);
    for (size_t i = 0; i < events.count; i++)
        assert_int_equal (events.events [i].position, (int64_t) i + 1);
    store_events_reset (&events);

    /* c wrote no command row either: fixed, it goes in */
    snprintf (c.events [2].id, sizeof c.events [2].id, "cmd-c/2");
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [0].first_position, 6);
    assert_int_equal (out [0].last_position, 8);
}

static void
test_invalid_requests (void **state)
{
    fixture_t *f = *state;
    test_append_t a, b, c;
    s_make (&a, "case-a", -2, "cmd-a", 1);          /* no such expected version */
    s_make (&b, "case-b", 0, "cmd-b", 1);
    s_make (&c, "case-c", 0, "cmd-c", 1);           /* oversized event */
    char *big = calloc (1, STORE_BACKEND_EVENT_DATA_MAX + 1);
    assert_non_null (big);
    c.events [0].data = big;
    c.events [0].data_size = STORE_BACKEND_EVENT_DATA_MAX + 1;
    store_outcome_t out [3];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a, &b, &c}, 3, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_ERROR);
    assert_int_equal (out [1].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [1].first_position, 1);
    assert_int_equal (out [2].kind, STORE_OUTCOME_ERROR);
    store_outcomes_free (out, 3);
    free (big);
    assert_int_equal (s_head (f->backend), 1);
}

static void
test_read_caps (void **state)
{
    fixture_t *f = *state;
    /* 11 appends of 1,000 events: more than one read may return */
    enum { N = 11, PER = 1000 };
    store_append_t reqs [N];
    store_new_event_t *events = calloc (N * PER, sizeof (store_new_event_t));
    assert_non_null (events);
    store_batch_item_t items [N];
    for (size_t i = 0; i < N; i++) {
        memset (&reqs [i], 0, sizeof reqs [i]);
        snprintf (reqs [i].stream, sizeof reqs [i].stream, "big");
        snprintf (reqs [i].command_id, sizeof reqs [i].command_id, "cmd-%zu", i);
        reqs [i].expected_version = -1;
        reqs [i].events = events + i * PER;
        reqs [i].count = PER;
        for (size_t e = 0; e < PER; e++) {
            snprintf (reqs [i].events [e].id, EVENT_ID_MAX, "ev-%zu-%zu", i, e);
            snprintf (reqs [i].events [e].type, EVENT_TYPE_MAX, "Big");
            reqs [i].events [e].data = "{}";
            reqs [i].events [e].data_size = 2;
        }
        items [i].req = &reqs [i];
        items [i].correlation_id = NULL;
        items [i].traceparent = NULL;
    }
    store_outcome_t out [N];
    assert_int_equal (store_backend_append_batch (f->backend, items, N, 1, out), 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal (out [i].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [N - 1].last_position, N * PER);

    free (events);

    store_events_t read;
    store_events_init (&read);
    assert_int_equal (store_backend_read_all (f->backend, 1, 1000000, &read), 0);
    assert_int_equal (read.count, STORE_READ_MAX);
    assert_int_equal (read.head, N * PER);
    assert_int_equal (store_backend_read_stream (f->backend, "big", 1, 1000000, &read), 0);
    assert_int_equal (read.count, STORE_READ_MAX);
    assert_int_equal (store_backend_read_stream (f->backend, "big", STORE_READ_MAX + 1, 1000000, &read), 0);
    assert_int_equal (read.count, N * PER - STORE_READ_MAX);
    assert_int_equal (read.events [0].version, STORE_READ_MAX + 1);
    store_events_reset (&read);
}

static void
test_reopen_keeps_everything (void **state)
{
    fixture_t *f = *state;
    test_append_t a, b;
    s_make (&a, "case-a", 0, "cmd-1", 3);
    store_outcome_t out [1];
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
    store_backend_destroy (&f->backend);
    assert_null (f->backend);

    f->backend = store_backend_new (&store_sqlite_ops, f->path, NULL);
    assert_non_null (f->backend);
    assert_int_equal (s_head (f->backend), 3);
    s_make (&b, "case-a", 0, "cmd-1", 1);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&b}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_DUPLICATE);
    store_outcomes_free (out, 1);
    s_make (&b, "case-a", 3, "cmd-2", 1);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&b}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [0].first_position, 4);
    assert_int_equal (out [0].version, 4);

    store_events_t events;
    store_events_init (&events);
    assert_int_equal (store_backend_read_stream (f->backend, "case-a", 1, 100, &events), 0);
    assert_int_equal (events.count, 4);
    assert_memory_equal (events.events [1].data, "{\"i\":1}", 7);
    store_events_reset (&events);
}

/* Rows of event_ids (the ids no handler minted), read straight from the file. */
static int
s_foreign_rows (const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT count(*) FROM event_ids", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    int n = sqlite3_column_int (stmt, 0);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    return n;
}

/* Event ids stay unique without an index over all of them: ids derived from their
 * command id (what handlers send) are unique with the command id; any other id is
 * checked against every stored id, derived ones included, and the other way round. */
static void
test_event_id_uniqueness (void **state)
{
    fixture_t *f = *state;
    store_outcome_t out [2];
    /* a: ids as the handler mints them */
    test_append_t a;
    s_make (&a, "case-a", 0, "cmd-a", 3);
    for (size_t i = 0; i < 3; i++)
        ids_uuid5_indexed ("cmd-a", (int) i, a.events [i].id);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (s_foreign_rows (f->path), 0);

    /* b: an id of its own that is one of a's: refused, nothing of b written */
    test_append_t b;
    s_make (&b, "case-b", 0, "cmd-b", 2);
    snprintf (b.events [1].id, sizeof b.events [1].id, "%s", a.events [2].id);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&b}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_ERROR);
    assert_string_equal (out [0].error, "invalid");
    assert_int_equal (s_foreign_rows (f->path), 0);
    assert_int_equal (s_head (f->backend), 3);

    /* c: ids of its own, accepted and remembered; d: two equal ids in one append */
    test_append_t c, d;
    s_make (&c, "case-c", 0, "cmd-c", 2);
    ids_uuid5_indexed ("cmd-d", 1, c.events [1].id);     /* what d will derive */
    s_make (&d, "case-d", 0, "cmd-d", 2);
    snprintf (d.events [1].id, sizeof d.events [1].id, "%s", d.events [0].id);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&c, &d}, 2, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    assert_int_equal (out [1].kind, STORE_OUTCOME_ERROR);
    assert_int_equal (s_foreign_rows (f->path), 2);

    /* d with its derived ids: the second is c's own id already: refused */
    for (size_t i = 0; i < 2; i++)
        ids_uuid5_indexed ("cmd-d", (int) i, d.events [i].id);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&d}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_ERROR);
    assert_string_equal (out [0].error, "invalid");

    /* after a reopen the remembered ids still count */
    store_backend_destroy (&f->backend);
    f->backend = store_backend_new (&store_sqlite_ops, f->path, NULL);
    assert_non_null (f->backend);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&d}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_ERROR);
    assert_int_equal (s_head (f->backend), 5);
}

/* A log created before event_ids keeps its UNIQUE index over event ids, which goes
 * on refusing a taken id. */
static void
test_event_id_unique_index_of_old_logs (void **state)
{
    fixture_t *f = *state;
    store_backend_destroy (&f->backend);
    unlink (f->path);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (f->path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db,
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,"
        " event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, ts INTEGER NOT NULL, command_id TEXT,"
        " correlation_id TEXT, data BLOB, UNIQUE (stream, version));", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    f->backend = store_backend_new (&store_sqlite_ops, f->path, NULL);
    assert_non_null (f->backend);
    store_outcome_t out [1];
    test_append_t a, b;
    s_make (&a, "case-a", 0, "cmd-a", 2);
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
    s_make (&b, "case-b", 0, "cmd-b", 2);
    snprintf (b.events [0].id, sizeof b.events [0].id, "cmd-a/1");
    assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&b}, 1, out), 0);
    assert_int_equal (out [0].kind, STORE_OUTCOME_ERROR);
    assert_string_equal (out [0].error, "invalid");
    assert_int_equal (s_foreign_rows (f->path), 0);
}

/* Trace context: each event of an append records the append's traceparent; one that
 * does not parse is not kept; a log from before the column gets it on open, its old
 * events reading as without one. */
#define S_TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void
test_traceparent_recorded (void **state)
{
    fixture_t *f = *state;
    store_backend_destroy (&f->backend);
    unlink (f->path);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (f->path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db,
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL,"
        " event_id TEXT NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL, command_id TEXT,"
        " correlation_id TEXT, data BLOB, UNIQUE (stream, version));"
        "INSERT INTO events VALUES (1, 'case-old', 1, 'old/0', 'Test0', 5, 'old', 'c', '{}');",
        NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    f->backend = store_backend_new (&store_sqlite_ops, f->path, NULL);
    assert_non_null (f->backend);

    test_append_t a, b, c;
    s_make (&a, "case-a", 0, "cmd-a", 2);
    s_make (&b, "case-b", 0, "cmd-b", 1);
    s_make (&c, "case-c", 0, "cmd-c", 1);
    store_batch_item_t items [3] = {
        { &a.req, "corr-a", S_TP },
        { &b.req, "corr-b", "00-not-a-trace" },
        { &c.req, "corr-c", NULL },
    };
    store_outcome_t out [3];
    assert_int_equal (store_backend_append_batch (f->backend, items, 3, 1700000000000000, out), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal (out [i].kind, STORE_OUTCOME_APPENDED);
    store_events_t events;
    store_events_init (&events);
    assert_int_equal (store_backend_read_all (f->backend, 1, 100, &events), 0);
    assert_int_equal (events.count, 5);
    assert_string_equal (events.events [0].stream, "case-old");
    assert_string_equal (events.events [0].traceparent, "");
    assert_string_equal (events.events [1].traceparent, S_TP);
    assert_string_equal (events.events [2].traceparent, S_TP);
    assert_string_equal (events.events [3].traceparent, "");
    assert_string_equal (events.events [4].traceparent, "");
    store_events_reset (&events);
    /* and after reopening (the column is there now: no second ALTER) */
    store_backend_destroy (&f->backend);
    f->backend = store_backend_new (&store_sqlite_ops, f->path, NULL);
    assert_non_null (f->backend);
    assert_int_equal (store_backend_read_stream (f->backend, "case-a", 1, 100, &events), 0);
    assert_int_equal (events.count, 2);
    assert_string_equal (events.events [1].traceparent, S_TP);
    store_events_reset (&events);
}

/* nBackfill of the WAL-index (the -shm file): the frames a checkpoint copied into
 * the database since the WAL last restarted. sqlite.org/walformat.html: two 48-byte
 * copies of the header, then the checkpoint info, whose first u32 it is (native
 * byte order). */
static uint32_t
s_backfilled (const char *db_path)
{
    char path [160];
    snprintf (path, sizeof path, "%s-shm", db_path);
    FILE *file = fopen (path, "rb");
    uint32_t n = 0;
    if (file) {
        unsigned char header [100];
        if (fread (header, 1, sizeof header, file) == sizeof header)
            memcpy (&n, header + 96, sizeof n);
        fclose (file);
    }
    return n;
}

/* The background checkpointer copies the WAL into the database once it is over
 * its threshold (1,000 frames), without a commit of ours waiting on it (its
 * connection used to copy nothing: every checkpoint was the inline one at 16,384
 * frames, inside a commit). */
static void
test_background_checkpoint_copies (void **state)
{
    fixture_t *f = *state;
    static char data [3000];
    memset (data, 'x', sizeof data);
    memcpy (data, "{\"x\":\"", 6);
    memcpy (data + sizeof data - 2, "\"}", 2);
    test_append_t a;
    store_outcome_t out [1];
    /* 120 appends of 12 events of 3 KB: ~1,500 pages of 4 KB, one commit each */
    for (int i = 0; i < 120; i++) {
        char stream [32], command [32];
        snprintf (stream, sizeof stream, "case-%d", i);
        snprintf (command, sizeof command, "cmd-%d", i);
        s_make (&a, stream, 0, command, 12);
        for (size_t e = 0; e < 12; e++) {
            a.events [e].data = data;
            a.events [e].data_size = sizeof data;
        }
        assert_int_equal (s_batch (f->backend, (test_append_t *[]) {&a}, 1, out), 0);
        assert_int_equal (out [0].kind, STORE_OUTCOME_APPENDED);
        store_outcomes_free (out, 1);
    }
    int64_t deadline = zclock_mono () + 10000;
    while (s_backfilled (f->path) == 0) {
        assert_true (zclock_mono () < deadline);
        zclock_sleep (10);
    }
    assert_int_equal (s_head (f->backend), 120 * 12);
}

static void
test_open_fails_cleanly (void **state)
{
    (void) state;
    assert_null (store_backend_new (&store_sqlite_ops, "/nonexistent-dir/deeper/events.db", NULL));
    assert_null (store_backend_new (NULL, "x", NULL));
    assert_ptr_equal (store_backend_lookup ("sqlite"), &store_sqlite_ops);
    assert_ptr_equal (store_backend_lookup (NULL), &store_sqlite_ops);
    assert_ptr_equal (store_backend_lookup ("mongodb"), &store_mongo_ops);
    assert_null (store_backend_lookup ("mongo"));
    store_backend_destroy (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_append_and_read, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_background_checkpoint_copies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_gapless_across_batches, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_conflict, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_duplicate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_atomicity, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_invalid_requests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_read_caps, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reopen_keeps_everything, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_event_id_uniqueness, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_event_id_unique_index_of_old_logs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_traceparent_recorded, s_setup, s_teardown),
        cmocka_unit_test (test_open_fails_cleanly),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
