/* raw_zmq — the messaging limit of `make bench`: how many of Dossier's own
 * envelopes ZeroMQ moves per second over ipc between two processes, with nothing
 * else done to them (no decoding, no storage).
 *
 *   raw_zmq --events EVENTS.db | --records FILE.jsonl [--mode rr|push|both]
 *           [--window N] [--max N] [--dir DIR]
 *
 * The envelopes: from an event log, the `store.append` envelope of each append in
 * it (the events of one command, its result and fingerprint, as a handler sends
 * them to the store); from a records file, the `cmd.create_case` envelope of each
 * line (as ingest sends it to the broker). Modes: `rr` — DEALER → ROUTER, the
 * ROUTER answers each message with a `store.appended` (or `reply.ok`) envelope and
 * the DEALER keeps up to N messages in flight (Dossier's clients pipeline the same
 * way: the CLI keeps 1,000 lines in flight); `push` — PUSH → PULL one way. The peer
 * is a forked process, as Dossier's are. Prints one JSON object. */
#include "envelope.h"
#include "store_proto.h"

#include <czmq.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    char *data;
    size_t size;
} s_blob_t;

typedef struct {
    s_blob_t *items;
    size_t count, cap;
    size_t bytes;
} s_blobs_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
s_cpu (int who)
{
    struct rusage ru;
    getrusage (who, &ru);
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
         + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static void
s_blobs_destroy (s_blobs_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free (self->items [i].data);
    free (self->items);
    memset (self, 0, sizeof *self);
}

/* Takes an encoded frame's bytes. 0 ok, -1 failed. */
static int
s_blobs_push_frame (s_blobs_t *self, zframe_t **frame_p)
{
    zframe_t *frame = *frame_p;
    if (!frame)
        return -1;
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 1024;
        s_blob_t *items = realloc (self->items, cap * sizeof (s_blob_t));
        if (!items) {
            zframe_destroy (frame_p);
            return -1;
        }
        self->items = items;
        self->cap = cap;
    }
    s_blob_t *b = &self->items [self->count];
    b->size = zframe_size (frame);
    b->data = malloc (b->size ? b->size : 1);
    if (!b->data) {
        zframe_destroy (frame_p);
        return -1;
    }
    memcpy (b->data, zframe_data (frame), b->size);
    zframe_destroy (frame_p);
    self->count++;
    self->bytes += b->size;
    return 0;
}

/* Encodes one append (events[0..n)) as a store.append envelope. 0 ok, -1 failed. */
static int
s_push_append (s_blobs_t *out, store_append_t *req, const char *correlation)
{
    char *body = NULL;
    size_t size = 0;
    if (store_append_encode (req, &body, &size))
        return -1;
    envelope_t env;
    envelope_init (&env, "store.append", req->command_id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, correlation);
    envelope_set (env.causation_id, sizeof env.causation_id, req->command_id);
    envelope_set (env.key, sizeof env.key, req->stream);
    env.body = body;
    env.body_size = size;
    zframe_t *frame = envelope_encode (&env);
    free (body);
    return s_blobs_push_frame (out, &frame);
}

/* The store.append envelopes of every append in the log (at most max). */
static int
s_load_appends (const char *path, size_t max, s_blobs_t *out)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *read = NULL, *command = NULL;
    char uri [4200];
    snprintf (uri, sizeof uri, "file:%s?mode=ro", path);
    int status = -1;
    store_new_event_t *events = calloc (STORE_APPEND_MAX_EVENTS, sizeof (store_new_event_t));
    char **datas = calloc (STORE_APPEND_MAX_EVENTS, sizeof (char *));
    store_append_t req;
    memset (&req, 0, sizeof req);
    char correlation [ENVELOPE_ID_MAX] = "";
    char *result = NULL;
    if (!events || !datas)
        goto done;
    if (sqlite3_open_v2 (uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (db, "SELECT command_id, stream, event_id, type, data, correlation_id"
                            " FROM events ORDER BY position", -1, &read, NULL) != SQLITE_OK
    ||  sqlite3_prepare_v2 (db, "SELECT result, fingerprint FROM commands WHERE command_id = ?1",
                            -1, &command, NULL) != SQLITE_OK) {
        fprintf (stderr, "raw_zmq: %s: %s\n", path, db ? sqlite3_errmsg (db) : "cannot open");
        goto done;
    }
    req.events = events;
    req.expected_version = 0;
    int rc;
    for (;;) {
        rc = sqlite3_step (read);
        const char *cmd = rc == SQLITE_ROW ? (const char *) sqlite3_column_text (read, 0) : NULL;
        bool flush = req.count > 0 && (rc != SQLITE_ROW || !cmd || strcmp (cmd, req.command_id) != 0
                                       || req.count == STORE_APPEND_MAX_EVENTS);
        if (flush) {
            sqlite3_bind_text (command, 1, req.command_id, -1, SQLITE_STATIC);
            free (result);
            result = NULL;
            req.result = "";
            req.result_size = 0;
            req.fingerprint [0] = 0;
            if (sqlite3_step (command) == SQLITE_ROW) {
                size_t rsize = (size_t) sqlite3_column_bytes (command, 0);
                result = malloc (rsize + 1);
                if (!result)
                    goto done;
                memcpy (result, sqlite3_column_blob (command, 0) ? sqlite3_column_blob (command, 0) : "", rsize);
                req.result = result;
                req.result_size = rsize;
                const unsigned char *fp = sqlite3_column_text (command, 1);
                snprintf (req.fingerprint, sizeof req.fingerprint, "%s", fp ? (const char *) fp : "");
            }
            sqlite3_reset (command);
            if (s_push_append (out, &req, correlation))
                goto done;
            for (size_t i = 0; i < req.count; i++) {
                free (datas [i]);
                datas [i] = NULL;
            }
            req.count = 0;
            if (max && out->count >= max)
                break;
        }
        if (rc != SQLITE_ROW)
            break;
        if (req.count == 0) {
            snprintf (req.command_id, sizeof req.command_id, "%s", cmd ? cmd : "");
            const unsigned char *stream = sqlite3_column_text (read, 1);
            const unsigned char *corr = sqlite3_column_text (read, 5);
            snprintf (req.stream, sizeof req.stream, "%s", stream ? (const char *) stream : "");
            snprintf (correlation, sizeof correlation, "%s", corr ? (const char *) corr : "");
        }
        store_new_event_t *ev = &events [req.count];
        const unsigned char *id = sqlite3_column_text (read, 2);
        const unsigned char *type = sqlite3_column_text (read, 3);
        snprintf (ev->id, sizeof ev->id, "%s", id ? (const char *) id : "");
        snprintf (ev->type, sizeof ev->type, "%s", type ? (const char *) type : "");
        size_t dsize = (size_t) sqlite3_column_bytes (read, 4);
        datas [req.count] = malloc (dsize + 1);
        if (!datas [req.count])
            goto done;
        memcpy (datas [req.count], sqlite3_column_blob (read, 4) ? sqlite3_column_blob (read, 4) : "", dsize);
        ev->data = datas [req.count];
        ev->data_size = dsize;
        req.count++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fprintf (stderr, "raw_zmq: reading %s: %s\n", path, sqlite3_errmsg (db));
        goto done;
    }
    status = out->count ? 0 : -1;
    if (status)
        fprintf (stderr, "raw_zmq: %s holds no events\n", path);
done:
    if (datas)
        for (size_t i = 0; i < STORE_APPEND_MAX_EVENTS; i++)
            free (datas [i]);
    free (datas);
    free (events);
    free (result);
    sqlite3_finalize (read);
    sqlite3_finalize (command);
    sqlite3_close (db);
    return status;
}

/* The cmd.create_case envelope of every non-blank line (at most max). */
static int
s_load_records (const char *path, size_t max, s_blobs_t *out)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        fprintf (stderr, "raw_zmq: cannot open %s\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0;
    int status = 0;
    while ((len = getline (&line, &cap, file)) >= 0 && (!max || out->count < max)) {
        n++;
        while (len > 0 && (line [len - 1] == '\n' || line [len - 1] == '\r'))
            line [--len] = 0;
        if (len == 0)
            continue;
        char id [64];
        snprintf (id, sizeof id, "bench:%ld", n);
        envelope_t env;
        envelope_init (&env, "cmd.create_case", id);
        envelope_set (env.correlation_id, sizeof env.correlation_id, id);
        envelope_set (env.key, sizeof env.key, "00000000-0000-5000-8000-000000000000");
        env.body = line;
        env.body_size = (size_t) len;
        zframe_t *frame = envelope_encode (&env);
        if (s_blobs_push_frame (out, &frame)) {
            status = -1;
            break;
        }
    }
    free (line);
    fclose (file);
    if (status == 0 && out->count == 0) {
        fprintf (stderr, "raw_zmq: %s holds no records\n", path);
        status = -1;
    }
    return status;
}

/* ------------------------------------------------------------- the peers */

static int
s_write_all (int fd, const void *data, size_t size)
{
    const char *p = (const char *) data;
    while (size) {
        ssize_t n = write (fd, p, size);
        if (n <= 0)
            return -1;
        p += n;
        size -= (size_t) n;
    }
    return 0;
}

static int
s_read_all (int fd, void *data, size_t size)
{
    char *p = (char *) data;
    while (size) {
        ssize_t n = read (fd, p, size);
        if (n <= 0)
            return -1;
        p += n;
        size -= (size_t) n;
    }
    return 0;
}

/* The ROUTER peer: answers count messages (+1 warm-up) with reply, then exits. */
static int
s_router_peer (const char *endpoint, size_t count, const s_blob_t *reply, int ready_fd)
{
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_ROUTER);
    int hwm = 0;           /* unbounded: the client's window is the bound */
    zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int status = 1;
    if (zmq_bind (sock, endpoint) != 0)
        goto done;
    char ok = 'r';
    if (s_write_all (ready_fd, &ok, 1))
        goto done;
    zmq_msg_t route, msg;
    for (size_t i = 0; i < count + 1; i++) {
        zmq_msg_init (&route);
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&route, sock, 0) < 0 || zmq_msg_recv (&msg, sock, 0) < 0) {
            zmq_msg_close (&route);
            zmq_msg_close (&msg);
            goto done;
        }
        zmq_msg_close (&msg);
        if (zmq_msg_send (&route, sock, ZMQ_SNDMORE) < 0
        ||  zmq_send (sock, reply->data, reply->size, 0) < 0) {
            zmq_msg_close (&route);
            goto done;
        }
    }
    status = 0;
done:
    zmq_close (sock);
    zmq_ctx_term (ctx);
    return status;
}

/* The PULL peer: receives a warm-up (answered on go_fd), then count messages;
 * writes the time of the last one to ready_fd. */
static int
s_pull_peer (const char *endpoint, size_t count, int ready_fd)
{
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_PULL);
    int status = 1;
    if (zmq_bind (sock, endpoint) != 0)
        goto done;
    char ok = 'r';
    if (s_write_all (ready_fd, &ok, 1))
        goto done;
    zmq_msg_t msg;
    for (size_t i = 0; i < count + 1; i++) {
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, sock, 0) < 0) {
            zmq_msg_close (&msg);
            goto done;
        }
        zmq_msg_close (&msg);
        if (i == 0 && s_write_all (ready_fd, &ok, 1))
            goto done;
    }
    double last = s_now ();
    if (s_write_all (ready_fd, &last, sizeof last))
        goto done;
    status = 0;
done:
    zmq_close (sock);
    zmq_ctx_term (ctx);
    return status;
}

typedef struct {
    double seconds;
    double cpu_client, cpu_peer;
} s_result_t;

/* Forks the peer; returns its pid and the read end of its pipe, or -1. */
static pid_t
s_fork_peer (const char *mode, const char *endpoint, size_t count, const s_blob_t *reply, int *fd)
{
    int p [2];
    if (pipe (p))
        return -1;
    fflush (NULL);
    pid_t pid = fork ();
    if (pid == 0) {
        close (p [0]);
        int rc = strcmp (mode, "rr") == 0 ? s_router_peer (endpoint, count, reply, p [1])
                                          : s_pull_peer (endpoint, count, p [1]);
        _exit (rc);
    }
    close (p [1]);
    if (pid < 0) {
        close (p [0]);
        return -1;
    }
    char ok;
    if (s_read_all (p [0], &ok, 1)) {
        close (p [0]);
        waitpid (pid, NULL, 0);
        return -1;
    }
    *fd = p [0];
    return pid;
}

static int
s_reap (pid_t pid, s_result_t *r)
{
    int wstatus = 0;
    struct rusage ru;
    if (wait4 (pid, &wstatus, 0, &ru) != pid)
        return -1;
    r->cpu_peer = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
                + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
    return WIFEXITED (wstatus) && WEXITSTATUS (wstatus) == 0 ? 0 : -1;
}

static int
s_run_rr (const char *endpoint, const s_blobs_t *msgs, const s_blob_t *reply, size_t window, s_result_t *r)
{
    int fd = -1;
    pid_t pid = s_fork_peer ("rr", endpoint, msgs->count, reply, &fd);
    if (pid < 0)
        return -1;
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    int hwm = 0;
    zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    int status = -1;
    char buf [256];
    if (zmq_connect (sock, endpoint) != 0)
        goto done;
    /* Warm-up round trip: the clock starts on an established connection. */
    if (zmq_send (sock, msgs->items [0].data, msgs->items [0].size, 0) < 0
    ||  zmq_recv (sock, buf, sizeof buf, 0) < 0)
        goto done;
    double c0 = s_cpu (RUSAGE_SELF), t0 = s_now ();
    size_t sent = 0, received = 0;
    while (received < msgs->count) {
        while (sent < msgs->count && sent - received < window) {
            if (zmq_send (sock, msgs->items [sent].data, msgs->items [sent].size, 0) < 0)
                goto done;
            sent++;
        }
        if (zmq_recv (sock, buf, sizeof buf, 0) < 0)
            goto done;
        received++;
        /* Take whatever else is already there without blocking. */
        while (received < sent && zmq_recv (sock, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
            received++;
    }
    r->seconds = s_now () - t0;
    r->cpu_client = s_cpu (RUSAGE_SELF) - c0;
    status = 0;
done:
    zmq_close (sock);
    zmq_ctx_term (ctx);
    close (fd);
    if (s_reap (pid, r))
        status = -1;
    return status;
}

static int
s_run_push (const char *endpoint, const s_blobs_t *msgs, s_result_t *r)
{
    int fd = -1;
    pid_t pid = s_fork_peer ("push", endpoint, msgs->count, NULL, &fd);
    if (pid < 0)
        return -1;
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_PUSH);
    int status = -1;
    char ok;
    double last = 0;
    if (zmq_connect (sock, endpoint) != 0)
        goto done;
    if (zmq_send (sock, msgs->items [0].data, msgs->items [0].size, 0) < 0 || s_read_all (fd, &ok, 1))
        goto done;
    double c0 = s_cpu (RUSAGE_SELF), t0 = s_now ();
    for (size_t i = 0; i < msgs->count; i++)
        if (zmq_send (sock, msgs->items [i].data, msgs->items [i].size, 0) < 0)
            goto done;
    r->cpu_client = s_cpu (RUSAGE_SELF) - c0;
    if (s_read_all (fd, &last, sizeof last))
        goto done;
    r->seconds = last - t0;
    status = 0;
done:
    zmq_close (sock);
    zmq_ctx_term (ctx);
    close (fd);
    if (s_reap (pid, r))
        status = -1;
    return status;
}

static void
s_print_result (const char *name, const s_result_t *r, size_t count, size_t bytes, size_t window, bool comma)
{
    double s = r->seconds > 0 ? r->seconds : 1e-9;
    printf ("\"%s\":{", name);
    if (window)
        printf ("\"window\":%zu,", window);
    printf ("\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,\"cpu_seconds_client\":%.3f,"
            "\"cpu_seconds_peer\":%.3f}%s", r->seconds, (double) count / s, (double) bytes / s / 1e6,
            r->cpu_client, r->cpu_peer, comma ? "," : "");
}

static int
s_usage (void)
{
    fprintf (stderr, "usage: raw_zmq --events EVENTS.db | --records FILE.jsonl [--mode rr|push|both]"
                     " [--window N] [--max N] [--dir DIR]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    const char *events = NULL, *records = NULL, *mode = "both", *dir = "/tmp";
    long window = 1000, max = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        if (i + 1 >= argc)
            return s_usage ();
        const char *value = argv [++i];
        char *end = NULL;
        if (strcmp (arg, "--events") == 0)
            events = value;
        else
        if (strcmp (arg, "--records") == 0)
            records = value;
        else
        if (strcmp (arg, "--mode") == 0)
            mode = value;
        else
        if (strcmp (arg, "--dir") == 0)
            dir = value;
        else
        if (strcmp (arg, "--window") == 0) {
            window = strtol (value, &end, 10);
            if (!end || *end || window < 1 || window > 1000000)
                return s_usage ();
        }
        else
        if (strcmp (arg, "--max") == 0) {
            max = strtol (value, &end, 10);
            if (!end || *end || max < 0)
                return s_usage ();
        }
        else
            return s_usage ();
    }
    bool rr = strcmp (mode, "rr") == 0 || strcmp (mode, "both") == 0;
    bool push = strcmp (mode, "push") == 0 || strcmp (mode, "both") == 0;
    if ((!events) == (!records) || (!rr && !push))
        return s_usage ();

    s_blobs_t msgs = { 0 };
    if ((events ? s_load_appends (events, (size_t) max, &msgs) : s_load_records (records, (size_t) max, &msgs))) {
        s_blobs_destroy (&msgs);
        return 1;
    }
    /* The answer a client gets back: store.appended, or reply.ok for commands. */
    s_blob_t reply = { NULL, 0 };
    envelope_t env;
    envelope_init (&env, events ? "store.appended" : "reply.ok", "00000000-0000-4000-8000-000000000000");
    envelope_set (env.causation_id, sizeof env.causation_id, "rec:0000000000000000000000000000000000000000");
    size_t body_size = 0;
    char *body = events ? store_appended_encode (1, 8, 8, &body_size) : NULL;
    const char *ok = "{\"case_id\":\"00000000-0000-5000-8000-000000000000\",\"status\":\"AWAITING_DOCUMENTS\","
                     "\"events\":8,\"position\":8,\"duplicate\":false}";
    env.body = events ? body : ok;
    env.body_size = events ? body_size : strlen (ok);
    zframe_t *frame = (events && !body) ? NULL : envelope_encode (&env);
    free (body);
    if (frame) {
        reply.size = zframe_size (frame);
        reply.data = malloc (reply.size);
        if (reply.data)
            memcpy (reply.data, zframe_data (frame), reply.size);
        zframe_destroy (&frame);
    }
    int status = 1;
    char endpoint [512];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/raw-zmq-%d.ipc", dir, (int) getpid ());
    if (!reply.data)
        goto done;
    s_result_t r_rr = { 0 }, r_push = { 0 };
    if (rr && s_run_rr (endpoint, &msgs, &reply, (size_t) window, &r_rr)) {
        fprintf (stderr, "raw_zmq: the request-reply run failed\n");
        goto done;
    }
    if (push && s_run_push (endpoint, &msgs, &r_push)) {
        fprintf (stderr, "raw_zmq: the push-pull run failed\n");
        goto done;
    }
    printf ("{\"envelope\":\"%s\",\"messages\":%zu,\"bytes\":%zu,\"avg_bytes\":%.0f,\"reply_bytes\":%zu,",
            events ? "store.append" : "cmd.create_case", msgs.count, msgs.bytes,
            (double) msgs.bytes / (double) msgs.count, reply.size);
    if (rr)
        s_print_result ("dealer_router", &r_rr, msgs.count, msgs.bytes, (size_t) window, push);
    if (push)
        s_print_result ("push_pull", &r_push, msgs.count, msgs.bytes, 0, false);
    printf ("}\n");
    status = 0;
done:
    unlink (endpoint + 6);
    free (reply.data);
    s_blobs_destroy (&msgs);
    return status;
}
