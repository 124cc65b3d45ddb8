/* latency — end-to-end latency of `make bench`: POSTs client records to
 * /v1/cases at a fixed rate and, for each, polls GET /v1/cases/{id} until it
 * answers 200; produce → readable is measured from the moment the record was
 * *scheduled* to be sent, so a server that falls behind cannot hide it by slowing
 * the client down (no coordinated omission).
 *
 *   latency --url http://127.0.0.1:PORT --records FILE.jsonl [--rate 1000] [--seconds 20]
 *           [--poll-ms 1] [--watch list|get] [--max-inflight 2000] [--connections 32]
 *           [--timeout 30] [--kafka BROKERS --topic TOPIC [--linger-ms 5]]
 *
 * With --kafka the records are produced to TOPIC (librdkafka, acks=all, linger.ms 5)
 * instead of POSTed, "acknowledged" is the delivery report, and the case id each
 * record will get is computed as Dossier does (common/command_id.h).
 *
 * libcurl multi, keep-alive connections (at most --connections). How "readable" is
 * watched (--watch):
 *   list (default) — one GET /v1/cases?limit=20 at a time, every --poll-ms, from a
 *     cursor at the tail of the list: the list is ordered by the log position that
 *     created each case and the projector applies the log in order, so a new case
 *     always shows up on the last page. A record is readable when its client id is
 *     listed, confirmed by one GET /v1/cases/{id} that must answer 200 (if it does
 *     not, the record counts from the first GET that does). The read load is ~1,000
 *     small GETs/s plus one per record, whatever the lag.
 *   get — each record's GET /v1/cases/{id} every --poll-ms from its acknowledgement:
 *     finer per record, but at lag L it costs rate x L / poll-ms GETs/s (15,000/s at
 *     1,000/s and 15 ms): the instrument then loads the 2-core machine more than
 *     the system it measures.
 * Waits are exact to the microsecond (pselect on curl's sockets), so the client
 * neither spins nor sends late by a rounded-up millisecond.
 * Prints one JSON object: counts, achieved rate, and p50/p90/p99/p999/max of
 * produce → acknowledged (201) and produce → readable, in milliseconds, over every
 * record: one not readable by the deadline (rate x seconds + --timeout) counts as
 * infinitely late (a percentile among those is null). Exit 0 when all were read. */
#include "command_id.h"

#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/select.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_BODY_MAX  65536      /* a list page of 20 cases fits */
#define S_WATCH_LIMIT 20        /* --watch list: page size (a re-read partial page stays small) */
#define S_ID_MAX    64

typedef enum { S_WAITING, S_POSTING, S_POLLING, S_DONE, S_FAILED } s_state_t;

typedef struct {
    const char *line;
    size_t size;
    s_state_t state;
    double t_sched, t_sent, t_ack, t_readable;
    double t_listed;            /* --watch list: when the list first showed it (0: not yet) */
    char case_id [S_ID_MAX];
    int polls;
} s_record_t;

/* One transfer in flight: a POST of a record or a GET (poll) of its case. */
typedef struct {
    CURL *easy;
    size_t record;
    bool post;
    char body [S_BODY_MAX];
    size_t body_size;
    char url [512];
} s_xfer_t;

/* Records waiting for their next poll, in due order (a FIFO: every re-poll is
 * due poll_ms after now, so appends keep it sorted). */
typedef struct {
    size_t *items;
    double *due;
    size_t head, tail, cap;
} s_queue_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static size_t
s_write_body (char *data, size_t size, size_t nmemb, void *user)
{
    s_xfer_t *x = (s_xfer_t *) user;
    size_t n = size * nmemb;
    size_t room = S_BODY_MAX - 1 - x->body_size;
    size_t take = n < room ? n : room;
    memcpy (x->body + x->body_size, data, take);
    x->body_size += take;
    x->body [x->body_size] = 0;
    return n;
}

static int
s_queue_push (s_queue_t *q, size_t record, double due)
{
    if (q->tail == q->cap) {
        /* Compact first; grow only when the live part fills the array. */
        size_t live = q->tail - q->head;
        if (q->head > 0 && live < q->cap / 2) {
            memmove (q->items, q->items + q->head, live * sizeof (size_t));
            memmove (q->due, q->due + q->head, live * sizeof (double));
        }
        else {
            size_t cap = q->cap ? q->cap * 2 : 1024;
            size_t *items = realloc (q->items, cap * sizeof (size_t));
            if (!items)
                return -1;
            q->items = items;
            double *due_arr = realloc (q->due, cap * sizeof (double));
            if (!due_arr)
                return -1;
            q->due = due_arr;
            if (q->head > 0) {
                memmove (q->items, q->items + q->head, live * sizeof (size_t));
                memmove (q->due, q->due + q->head, live * sizeof (double));
            }
            q->cap = cap;
        }
        q->head = 0;
        q->tail = live;
    }
    q->items [q->tail] = record;
    q->due [q->tail] = due;
    q->tail++;
    return 0;
}

/* Client id -> record, for --watch list (open addressing, FNV-1a; built once
 * before the clock starts). The ids are kept in `ids` (owned), one per record. */
typedef struct {
    size_t *slots;              /* record index + 1; 0 = empty */
    size_t cap;
    char (*ids) [S_ID_MAX];
} s_index_t;

static uint32_t
s_hash (const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t) s [i]) * 16777619u;
    return h;
}

static int
s_index_build (s_index_t *ix, const s_record_t *records, size_t count)
{
    ix->cap = 1;
    while (ix->cap < count * 2)
        ix->cap <<= 1;
    ix->slots = calloc (ix->cap, sizeof (size_t));
    ix->ids = calloc (count ? count : 1, sizeof *ix->ids);
    if (!ix->slots || !ix->ids)
        return -1;
    for (size_t i = 0; i < count; i++) {
        json_t *record = json_loadb (records [i].line, records [i].size, 0, NULL);
        const char *id = json_string_value (json_object_get (record, "client_id"));
        if (id && strlen (id) < S_ID_MAX)
            snprintf (ix->ids [i], S_ID_MAX, "%s", id);
        json_decref (record);
        if (!ix->ids [i][0])
            continue;           /* never listed: it stays unreadable and counts as late */
        size_t k = s_hash (ix->ids [i], strlen (ix->ids [i])) & (ix->cap - 1);
        while (ix->slots [k])
            k = (k + 1) & (ix->cap - 1);
        ix->slots [k] = i + 1;
    }
    return 0;
}

/* The record whose client id is id[0..len), or -1. */
static long
s_index_find (const s_index_t *ix, const char *id, size_t len)
{
    size_t k = s_hash (id, len) & (ix->cap - 1);
    for (; ix->slots [k]; k = (k + 1) & (ix->cap - 1)) {
        const char *have = ix->ids [ix->slots [k] - 1];
        if (strlen (have) == len && memcmp (have, id, len) == 0)
            return (long) (ix->slots [k] - 1);
    }
    return -1;
}

/* What the Kafka delivery-report callback needs (it runs inside rd_kafka_poll). */
typedef struct {
    s_record_t *records;
    s_queue_t *polls;
    size_t *inflight, *failed;
    int oom;
    bool watch_list;            /* the list watcher finds the case: no per-record polls */
} s_kafka_ctx_t;

static void
s_delivered (rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void) rk;
    s_kafka_ctx_t *ctx = (s_kafka_ctx_t *) opaque;
    size_t i = (size_t) (uintptr_t) msg->_private;
    s_record_t *r = &ctx->records [i];
    double t = s_now ();
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        r->t_ack = t;
        if (r->state != S_DONE)
            r->state = S_POLLING;
        if (!ctx->watch_list && s_queue_push (ctx->polls, i, t))
            ctx->oom = 1;
    }
    else {
        r->state = S_FAILED;
        (*ctx->failed)++;
        (*ctx->inflight)--;
        fprintf (stderr, "latency: produce failed: %s\n", rd_kafka_err2str (msg->err));
    }
}

/* A producer for the benchmark: durable (acks=all), batching for linger_ms as an
 * ordinary client would (0 sends each record alone: on a busy 2-core machine the
 * broker then falls behind at 1,000 records/s and Kafka's own latency dominates). */
static rd_kafka_t *
s_producer_new (const char *brokers, const char *linger_ms, s_kafka_ctx_t *ctx)
{
    char err [256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    if (rd_kafka_conf_set (conf, "bootstrap.servers", brokers, err, sizeof err) != RD_KAFKA_CONF_OK
    ||  rd_kafka_conf_set (conf, "acks", "all", err, sizeof err) != RD_KAFKA_CONF_OK
    ||  rd_kafka_conf_set (conf, "linger.ms", linger_ms, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf (stderr, "latency: kafka configuration: %s\n", err);
        rd_kafka_conf_destroy (conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb (conf, s_delivered);
    rd_kafka_conf_set_opaque (conf, ctx);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf (stderr, "latency: kafka producer: %s\n", err);
        rd_kafka_conf_destroy (conf);
    }
    return rk;
}

/* Connects and learns the topic's leaders before the clock starts, so the first
 * records do not wait for a connection that a running producer would already have. */
static int
s_producer_warm (rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new (rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rkt ? rd_kafka_metadata (rk, 0, rkt, &md, 10000) : RD_KAFKA_RESP_ERR__FAIL;
    if (md)
        rd_kafka_metadata_destroy (md);
    if (rkt)
        rd_kafka_topic_destroy (rkt);
    if (err)
        fprintf (stderr, "latency: no metadata for %s: %s\n", topic, rd_kafka_err2str (err));
    return err ? -1 : 0;
}

/* Waits up to `seconds` (microsecond precision) for activity on curl's sockets:
 * curl_multi_poll takes whole milliseconds, and rounding a 0.4 ms wait down spins
 * while rounding it up sends late. */
static void
s_wait (CURLM *multi, double seconds)
{
    fd_set r, w, e;
    int maxfd = -1;
    FD_ZERO (&r);
    FD_ZERO (&w);
    FD_ZERO (&e);
    curl_multi_fdset (multi, &r, &w, &e, &maxfd);
    long curl_ms = -1;
    curl_multi_timeout (multi, &curl_ms);
    if (curl_ms >= 0 && (double) curl_ms / 1000.0 < seconds)
        seconds = (double) curl_ms / 1000.0;
    struct timespec ts = { (time_t) seconds, (long) ((seconds - (double) (time_t) seconds) * 1e9) };
    pselect (maxfd + 1, &r, &w, &e, &ts, NULL);
}

/* Prepares the watcher's GET of one list page from cursor (empty: the first). */
static void
s_watch_setup (s_xfer_t *x, const char *url, const char *cursor)
{
    curl_easy_reset (x->easy);
    x->body_size = 0;
    snprintf (x->url, sizeof x->url, "%s/v1/cases?limit=%d%s%s", url, S_WATCH_LIMIT,
              cursor [0] ? "&cursor=" : "", cursor);
    curl_easy_setopt (x->easy, CURLOPT_URL, x->url);
    curl_easy_setopt (x->easy, CURLOPT_WRITEFUNCTION, s_write_body);
    curl_easy_setopt (x->easy, CURLOPT_WRITEDATA, x);
}

/* Starts the watcher's GET of the list from cursor, on the multi handle. */
static int
s_watch_start (CURLM *multi, s_xfer_t *x, const char *url, const char *cursor, double timeout)
{
    s_watch_setup (x, url, cursor);
    curl_easy_setopt (x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt (x->easy, CURLOPT_TIMEOUT_MS, (long) (timeout * 1000));
    return curl_multi_add_handle (multi, x->easy) == CURLM_OK ? 0 : -1;
}

/* One list page answered at time t: every record of ours it lists for the first
 * time is marked listed and gets its confirming GET; a full page moves the cursor
 * on (*more = 1). Returns 0, or -1 if the page is not what the API promises. */
static int
s_watch_page (s_xfer_t *x, const s_index_t *index, s_record_t *records, double t,
              char *cursor, size_t cursor_size, s_queue_t *polls, int *more)
{
    json_t *page = json_loadb (x->body, x->body_size, 0, NULL);
    json_t *items = json_object_get (page, "items");
    if (!json_is_array (items)) {
        json_decref (page);
        return -1;
    }
    size_t i;
    json_t *item;
    json_array_foreach (items, i, item) {
        json_t *client = json_object_get (item, "client_id");
        const char *case_id = json_string_value (json_object_get (item, "case_id"));
        long ri = json_is_string (client)
                ? s_index_find (index, json_string_value (client), json_string_length (client)) : -1;
        if (ri < 0 || !case_id || strlen (case_id) >= S_ID_MAX)
            continue;           /* a case of an earlier run */
        s_record_t *r = &records [ri];
        if (r->t_listed > 0 || r->state == S_DONE || r->state == S_WAITING)
            continue;
        r->t_listed = t;
        snprintf (r->case_id, sizeof r->case_id, "%s", case_id);
        if (s_queue_push (polls, (size_t) ri, t)) {
            json_decref (page);
            return -1;
        }
    }
    const char *next = json_string_value (json_object_get (page, "next_cursor"));
    *more = next && strlen (next) < cursor_size;
    if (*more)
        snprintf (cursor, cursor_size, "%s", next);
    json_decref (page);
    return 0;
}

/* Before the clock: walks the list to its last page, so that the watcher starts at
 * the tail instead of re-reading every case of earlier runs. */
static int
s_watch_tail (s_xfer_t *x, const char *url, char *cursor, size_t cursor_size)
{
    for (int pages = 0; pages < 1000000; pages++) {
        s_watch_setup (x, url, cursor);
        long code = 0;
        if (curl_easy_perform (x->easy) != CURLE_OK
        ||  curl_easy_getinfo (x->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200) {
            fprintf (stderr, "latency: GET %s -> %ld\n", x->url, code);
            return -1;
        }
        json_t *page = json_loadb (x->body, x->body_size, 0, NULL);
        const char *next = json_string_value (json_object_get (page, "next_cursor"));
        int more = next && strlen (next) < cursor_size;
        if (more)
            snprintf (cursor, cursor_size, "%s", next);
        json_decref (page);
        if (!more)
            return 0;
    }
    return -1;
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* Sorts values[0..n) and prints {"p50":..,...} in milliseconds over `total`
 * records: the total - n that never got there count as infinitely late, so a
 * percentile that falls among them is null (unbounded), never flattered. */
static void
s_print_dist (const char *name, double *values, size_t n, size_t total)
{
    printf ("\"%s\":", name);
    if (n == 0 || total == 0) {
        printf ("null");
        return;
    }
    qsort (values, n, sizeof (double), s_cmp_double);
    double q [] = { 0.50, 0.90, 0.99, 0.999 };
    const char *label [] = { "p50", "p90", "p99", "p999" };
    printf ("{");
    for (int i = 0; i < 4; i++) {
        size_t k = (size_t) (q [i] * (double) total);
        if (k >= total)
            k = total - 1;
        if (k < n)
            printf ("\"%s\":%.3f,", label [i], values [k] * 1000.0);
        else
            printf ("\"%s\":null,", label [i]);
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += values [i];
    printf ("\"mean\":%.3f,\"max\":", sum / (double) n * 1000.0);
    if (n == total)
        printf ("%.3f}", values [n - 1] * 1000.0);
    else
        printf ("null}");
}

static int
s_usage (void)
{
    fprintf (stderr, "usage: latency --url http://127.0.0.1:PORT --records FILE.jsonl [--rate 1000]"
                     " [--seconds 20] [--poll-ms 1] [--watch list|get] [--max-inflight 2000] [--connections 32] [--timeout 30]"
                     " [--kafka BROKERS --topic TOPIC [--linger-ms 5]]\n");
    return 2;
}

/* Reads the file whole and points each non-blank line into it. */
static char *
s_load_lines (const char *path, s_record_t **records_p, size_t *count, size_t want)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return NULL;
    fseek (f, 0, SEEK_END);
    long size = ftell (f);
    fseek (f, 0, SEEK_SET);
    char *text = size >= 0 ? malloc ((size_t) size + 1) : NULL;
    if (!text || fread (text, 1, (size_t) size, f) != (size_t) size) {
        free (text);
        fclose (f);
        return NULL;
    }
    fclose (f);
    text [size] = 0;
    s_record_t *records = calloc (want ? want : 1, sizeof (s_record_t));
    if (!records) {
        free (text);
        return NULL;
    }
    size_t n = 0;
    char *p = text;
    while (*p && n < want) {
        char *end = strchr (p, '\n');
        if (end)
            *end = 0;
        size_t len = strlen (p);
        if (len) {
            records [n].line = p;
            records [n].size = len;
            n++;
        }
        if (!end)
            break;
        p = end + 1;
    }
    *records_p = records;
    *count = n;
    return text;
}

int
main (int argc, char **argv)
{
    const char *url = NULL, *path = NULL, *brokers = NULL, *topic = NULL, *linger = "5";
    bool watch_list = true;
    double rate = 1000, seconds = 20, poll_ms = 1, timeout = 30;
    long max_inflight = 2000, connections = 32;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return s_usage ();
        const char *arg = argv [i], *value = argv [++i];
        char *end = NULL;
        if (strcmp (arg, "--url") == 0)
            url = value;
        else
        if (strcmp (arg, "--records") == 0)
            path = value;
        else
        if (strcmp (arg, "--kafka") == 0)
            brokers = value;
        else
        if (strcmp (arg, "--topic") == 0)
            topic = value;
        else
        if (strcmp (arg, "--watch") == 0) {
            if (strcmp (value, "list") && strcmp (value, "get"))
                return s_usage ();
            watch_list = strcmp (value, "list") == 0;
        }
        else
        if (strcmp (arg, "--linger-ms") == 0) {
            if (strspn (value, "0123456789") != strlen (value) || strlen (value) == 0 || strlen (value) > 4)
                return s_usage ();
            linger = value;
        }
        else {
            double v = strtod (value, &end);
            if (!end || *end || v <= 0 || v > 1e7)
                return s_usage ();
            if (strcmp (arg, "--rate") == 0)
                rate = v;
            else
            if (strcmp (arg, "--seconds") == 0)
                seconds = v;
            else
            if (strcmp (arg, "--poll-ms") == 0)
                poll_ms = v;
            else
            if (strcmp (arg, "--timeout") == 0)
                timeout = v;
            else
            if (strcmp (arg, "--max-inflight") == 0)
                max_inflight = (long) v;
            else
            if (strcmp (arg, "--connections") == 0)
                connections = (long) v;
            else
                return s_usage ();
        }
    }
    if (!url || !path || strlen (url) > 300 || max_inflight < 1 || connections < 1 || (!brokers) != (!topic))
        return s_usage ();
    size_t want = (size_t) (rate * seconds);
    s_record_t *records = NULL;
    size_t count = 0;
    char *text = s_load_lines (path, &records, &count, want);
    if (!text) {
        fprintf (stderr, "latency: cannot read %s\n", path);
        return 1;
    }
    if (count < want)
        fprintf (stderr, "latency: %s holds %zu records, fewer than rate x seconds (%zu)\n", path, count, want);
    if (count == 0) {
        free (text);
        free (records);
        return 1;
    }
    s_index_t index = { 0 };
    if (watch_list && s_index_build (&index, records, count)) {
        fprintf (stderr, "latency: out of memory\n");
        free (text);
        free (records);
        return 1;
    }
    /* Produced records are never answered with their case id: to poll each by id,
     * compute it as Dossier does (the same derivation as ingest's, from the record's
     * natural key). The list watcher reads it from the list instead. */
    for (size_t i = 0; brokers && !watch_list && i < count; i++) {
        json_t *record = json_loadb (records [i].line, records [i].size, 0, NULL);
        char command [COMMAND_ID_MAX];
        command_id_from_record (record, records [i].line, records [i].size, command);
        command_id_case_id (command, records [i].case_id);
        json_decref (record);
    }

    curl_global_init (CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init ();
    curl_multi_setopt (multi, CURLMOPT_MAX_HOST_CONNECTIONS, connections);
    curl_multi_setopt (multi, CURLMOPT_MAXCONNECTS, connections);
    struct curl_slist *headers = curl_slist_append (NULL, "Content-Type: application/json");
    headers = curl_slist_append (headers, "Expect:");
    char post_url [512];
    snprintf (post_url, sizeof post_url, "%s/v1/cases", url);

    /* A pool of transfers; at most `connections` run at once. */
    size_t n_xfers = (size_t) connections;
    s_xfer_t *xfers = calloc (n_xfers + 1, sizeof (s_xfer_t));   /* + the list watcher */
    size_t *free_list = calloc (n_xfers, sizeof (size_t));
    size_t n_free = 0;
    s_queue_t polls = { 0 };
    rd_kafka_t *rk = NULL;
    int status = 1;
    if (!multi || !headers || !xfers || !free_list)
        goto done;
    for (size_t i = 0; i <= n_xfers; i++) {
        xfers [i].easy = curl_easy_init ();
        if (!xfers [i].easy)
            goto done;
        if (i < n_xfers)
            free_list [n_free++] = i;
    }
    s_xfer_t *watcher = &xfers [n_xfers];
    bool watching = false;              /* the watcher's GET is in flight */
    double watch_due = 0;
    char watch_cursor [256] = "";
    long watches = 0, confirm_misses = 0;
    if (watch_list && s_watch_tail (watcher, url, watch_cursor, sizeof watch_cursor))
        goto done;

    size_t next = 0, inflight = 0, finished = 0, failed = 0, late = 0;
    long http_errors = 0, polls_total = 0;
    s_kafka_ctx_t kctx = { records, &polls, &inflight, &failed, 0, watch_list };
    if (brokers && (!(rk = s_producer_new (brokers, linger, &kctx)) || s_producer_warm (rk, topic)))
        goto done;
    double start = s_now () + 0.05, last_send = start;
    double deadline = start + (double) count / rate + timeout;
    for (size_t i = 0; i < count; i++)
        records [i].t_sched = start + (double) i / rate;

    while (finished + failed < count && s_now () < deadline) {
        double now = s_now ();
        /* New records whose time has come (bounded: past the bound they go out late,
         * and their latency still counts from their scheduled time). */
        while (rk && next < count && records [next].t_sched <= now && (long) inflight < max_inflight) {
            s_record_t *r = &records [next];
            rd_kafka_resp_err_t err = rd_kafka_producev (rk, RD_KAFKA_V_TOPIC (topic),
                                                         RD_KAFKA_V_VALUE ((void *) r->line, r->size),
                                                         RD_KAFKA_V_OPAQUE ((void *) (uintptr_t) next),
                                                         RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;              /* the producer's queue is full: try again next turn */
            if (err) {
                r->state = S_FAILED;
                failed++;
            }
            else {
                r->state = S_POSTING;
                inflight++;
            }
            r->t_sent = now;
            if (now - r->t_sched > 0.001)
                late++;
            last_send = now;
            next++;
        }
        while (!rk && next < count && records [next].t_sched <= now && (long) inflight < max_inflight && n_free) {
            size_t xi = free_list [--n_free];
            s_xfer_t *x = &xfers [xi];
            s_record_t *r = &records [next];
            curl_easy_reset (x->easy);
            x->record = next;
            x->post = true;
            x->body_size = 0;
            curl_easy_setopt (x->easy, CURLOPT_URL, post_url);
            curl_easy_setopt (x->easy, CURLOPT_HTTPHEADER, headers);
            curl_easy_setopt (x->easy, CURLOPT_POSTFIELDS, r->line);
            curl_easy_setopt (x->easy, CURLOPT_POSTFIELDSIZE, (long) r->size);
            curl_easy_setopt (x->easy, CURLOPT_WRITEFUNCTION, s_write_body);
            curl_easy_setopt (x->easy, CURLOPT_WRITEDATA, x);
            curl_easy_setopt (x->easy, CURLOPT_PRIVATE, x);
            curl_easy_setopt (x->easy, CURLOPT_TIMEOUT_MS, (long) (timeout * 1000));
            curl_multi_add_handle (multi, x->easy);
            r->state = S_POSTING;
            r->t_sent = now;
            if (now - r->t_sched > 0.001)
                late++;
            last_send = now;
            inflight++;
            next++;
        }
        /* Polls that are due. */
        while (polls.head < polls.tail && polls.due [polls.head] <= now && n_free) {
            size_t ri = polls.items [polls.head++];
            size_t xi = free_list [--n_free];
            s_xfer_t *x = &xfers [xi];
            curl_easy_reset (x->easy);
            x->record = ri;
            x->post = false;
            x->body_size = 0;
            snprintf (x->url, sizeof x->url, "%s/v1/cases/%s", url, records [ri].case_id);
            curl_easy_setopt (x->easy, CURLOPT_URL, x->url);
            curl_easy_setopt (x->easy, CURLOPT_WRITEFUNCTION, s_write_body);
            curl_easy_setopt (x->easy, CURLOPT_WRITEDATA, x);
            curl_easy_setopt (x->easy, CURLOPT_PRIVATE, x);
            curl_easy_setopt (x->easy, CURLOPT_TIMEOUT_MS, (long) (timeout * 1000));
            curl_multi_add_handle (multi, x->easy);
            records [ri].polls++;
            polls_total++;
        }
        if (watch_list && !watching && next > 0 && watch_due <= now) {
            if (s_watch_start (multi, watcher, url, watch_cursor, timeout))
                goto done;
            watching = true;
        }
        if (rk) {
            rd_kafka_poll (rk, 0);          /* delivery reports: start polling those cases */
            if (kctx.oom)
                goto done;
        }
        int running = 0;
        curl_multi_perform (multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read (multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            s_xfer_t *x = NULL;
            curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &x);
            long code = 0;
            curl_easy_getinfo (msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            CURLcode result = msg->data.result;
            curl_multi_remove_handle (multi, msg->easy_handle);
            double t = s_now ();
            s_record_t *r = &records [x->record];
            if (x->post) {
                json_t *reply = result == CURLE_OK && (code == 201 || code == 200)
                              ? json_loadb (x->body, x->body_size, 0, NULL) : NULL;
                const char *id = json_string_value (json_object_get (reply, "case_id"));
                if (id && strlen (id) < S_ID_MAX) {
                    snprintf (r->case_id, sizeof r->case_id, "%s", id);
                    r->t_ack = t;
                    if (r->state != S_DONE)
                        r->state = S_POLLING;
                    if (!watch_list && s_queue_push (&polls, x->record, t))
                        goto done;
                }
                else {
                    r->state = S_FAILED;
                    failed++;
                    inflight--;
                    http_errors++;
                    if (http_errors <= 3)
                        fprintf (stderr, "latency: POST -> %ld (%s): %.200s\n", code,
                                 curl_easy_strerror (result), x->body);
                }
                json_decref (reply);
            }
            else
            if (x == watcher) {
                watching = false;
                watches++;
                int more = 0;
                if (result != CURLE_OK || code != 200
                ||  s_watch_page (x, &index, records, t, watch_cursor, sizeof watch_cursor, &polls, &more) < 0)
                    http_errors++;
                /* a full page: the next one at once; the tail: again after poll_ms */
                watch_due = more ? t : t + poll_ms / 1000.0;
                continue;
            }
            else
            if (result == CURLE_OK && code == 200) {
                if (r->state != S_DONE) {
                    /* listed and confirmed: readable since the list showed it (or,
                     * after a 404, since this GET) */
                    r->t_readable = watch_list && r->polls == 1 && r->t_listed > 0 ? r->t_listed : t;
                    r->state = S_DONE;
                    finished++;
                    inflight--;
                }
            }
            else {
                if (result != CURLE_OK || code != 404)
                    http_errors++;
                else
                if (watch_list)
                    confirm_misses++;   /* listed but not yet readable by id */
                if (s_queue_push (&polls, x->record, t + poll_ms / 1000.0))
                    goto done;
            }
            free_list [n_free++] = (size_t) (x - xfers);
        }
        /* Sleep until the next send, the next poll, or some socket activity. */
        double wake = deadline;
        if (next < count && records [next].t_sched < wake)
            wake = records [next].t_sched;
        if (polls.head < polls.tail && n_free && polls.due [polls.head] < wake)
            wake = polls.due [polls.head];
        if (watch_list && !watching && next > 0 && watch_due < wake)
            wake = watch_due;
        double wait = wake - s_now ();
        if (rk && wait > 0.001)
            wait = 0.001;                   /* delivery reports arrive outside curl's sockets */
        if (wait > 0)
            s_wait (multi, wait > 0.1 ? 0.1 : wait);
    }

    double *readable = calloc (count, sizeof (double));
    double *ack = calloc (count, sizeof (double));
    double *after_ack = calloc (count, sizeof (double));
    if (!readable || !ack || !after_ack) {
        free (readable);
        free (ack);
        free (after_ack);
        goto done;
    }
    size_t n_ok = 0, n_ack = 0;
    for (size_t i = 0; i < count; i++) {
        if (records [i].t_ack > 0)
            ack [n_ack++] = records [i].t_ack - records [i].t_sched;
        if (records [i].state == S_DONE) {
            readable [n_ok] = records [i].t_readable - records [i].t_sched;
            after_ack [n_ok] = records [i].t_readable - records [i].t_ack;
            n_ok++;
        }
    }
    double span = last_send - start;
    printf ("{\"mode\":\"%s\",\"target_rate\":%.1f,\"records\":%zu,\"sent\":%zu,\"readable\":%zu,\"failed\":%zu,"
            "\"unfinished\":%zu,\"late_sends\":%zu,\"achieved_rate\":%.1f,\"polls\":%ld,\"http_errors\":%ld,"
            "\"watch\":\"%s\",\"list_requests\":%ld,\"confirm_misses\":%ld,"
            "\"poll_ms\":%.3f,\"connections\":%ld,",
            rk ? "kafka" : "http", rate, count, next, finished, failed, count - finished - failed, late,
            span > 0 ? (double) (next > 1 ? next - 1 : next) / span : 0.0, polls_total, http_errors,
            watch_list ? "list" : "get", watches, confirm_misses, poll_ms, connections);
    s_print_dist ("ack_ms", ack, n_ack, count);
    printf (",");
    s_print_dist ("readable_ms", readable, n_ok, count);
    printf (",");
    s_print_dist ("ack_to_readable_ms", after_ack, n_ok, n_ack);
    printf ("}\n");
    free (readable);
    free (ack);
    free (after_ack);
    status = finished == count ? 0 : 1;
done:
    if (rk) {
        rd_kafka_flush (rk, 5000);
        rd_kafka_destroy (rk);
    }
    if (xfers)
        for (size_t i = 0; i <= n_xfers; i++)
            if (xfers [i].easy) {
                curl_multi_remove_handle (multi, xfers [i].easy);
                curl_easy_cleanup (xfers [i].easy);
            }
    free (xfers);
    free (free_list);
    free (polls.items);
    free (polls.due);
    free (index.slots);
    free (index.ids);
    curl_slist_free_all (headers);
    if (multi)
        curl_multi_cleanup (multi);
    curl_global_cleanup ();
    free (records);
    free (text);
    return status;
}
