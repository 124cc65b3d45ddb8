/* projector — one actor, one poll loop: the live subscription feeds projection.c,
 * the control ROUTER answers status and rebuild requests, and a rebuild pages
 * through the whole log on its own DEALER while the loop keeps answering. The
 * read models live where config "store" says (readmodel_store.h); a MongoDB that
 * is down at start delays the subscription, never the process. */
#include "projector.h"
#include "health.h"
#include "projector_metrics.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "envelope.h"
#include "heap_trim.h"
#include "ids.h"
#include "log.h"
#include "partition.h"
#include "projection.h"
#include "projector_lease.h"
#include "readmodel_indexes.h"
#include "ready.h"
#include "store_proto.h"
#include "subscription.h"

#define S_PROGRESS_MS       100     /* ctl.progress at most this often */
#define S_REBUILD_TIMEOUT_MS 5000   /* a page not answered by then is asked again */
#define S_REBUILD_MAX_TRIES 12      /* ... and after this many, the rebuild fails */
#define S_LOAD_RETRY_MS     1000    /* read models not reachable at start: try again this often */
#define S_BUSY_BEHIND       "5000"  /* events behind the store's head that make the projector busy
                                       (config projector_busy_behind) */
#define S_IDLE_AFTER_MS     2000    /* ... and how long it must have kept up to be idle again, */
#define S_QUIET_MS          200     /* ... or, kept up, how long without a new event (the burst
                                       is over: its memory goes back before anyone looks) */
/* Events per read of the log (catch-up and rebuild). Each page is one message, one
 * decoded batch and one arena, and the next is read while this one is applied, so
 * the page sets much of a catch-up's memory: rebuilding 320,000 events, the peak RSS
 * was 127 MB with pages of 10,000 (STORE_READ_MAX) and 97 MB with 2,000, for the same
 * CPU (3.7-4.3 s either way, three runs each). */
#define S_PAGE              2000
/* Busy on a transactional backend, consecutive batches share one transaction (the
 * checkpoint in it) up to this many events or this long: fewer, larger commits. */
#define S_TX_EVENTS         50000
#define S_TX_MS             1000
/* ... and with several partitions on one file, how long one leaves the lock to the
 * others after such a commit (their busy handler polls every few ms). */
#define S_TX_YIELD_MS       10

/* A rebuild in progress: pages of the log into one transaction on target. */
typedef struct {
    zsock_t *dealer;
    projection_t *target;       /* the live projection (in place) or a fresh one (owned) */
    int in_place;
    zframe_t *requester;        /* routing identity of whoever asked */
    char cause [ENVELOPE_ID_MAX];
    char correlation [ENVELOPE_ID_MAX];
    char req_id [ENVELOPE_ID_MAX];
    uint64_t req_seq;
    int polled;                 /* dealer is in the poller */
    int outstanding, tries;
    int64_t sent_at;
    int64_t next;               /* next position to ask for */
    int64_t total;              /* the store's head when the rebuild began */
    int total_known;
    int64_t events;             /* events applied so far */
    int64_t started_at, progress_at;
    int progress_sent;
} s_rebuild_t;

typedef struct {
    config_t *config;
    zsock_t *pipe;              /* zactor pipe, or NULL when run from main */
    const readmodel_store_ops_t *ops;
    char *location;             /* the live read models: a file path, a database name */
    char *store_ep, *pub_ep, *ctl_ep;
    projection_t *projection;
    int64_t load_at;            /* when to try projection_load again (no subscription yet) */
    subscription_t *sub;
    zsock_t *ctl;
    zpoller_t *poller;
    int sub_paused;
    int busy;                   /* behind the log: the read models may use more memory */
    int64_t busy_behind;        /* ... by more than this many events */
    int64_t kept_up_since;      /* when it last caught up (0: it is behind) */
    int64_t event_at;           /* when the last batch came (monotonic ms) */
    heap_trim_t trim;           /* memory of a burst that never made it busy goes back too */
    int tx_open;                /* batches applied in a transaction not committed yet */
    int64_t tx_events, tx_started;
    int rewind;                 /* a shared transaction failed, or another writer moved the
                                   checkpoint back: read again from the checkpoint */
    int partition, partitions;  /* the cases it projects (partition.h); PARTITION_AUTO
                                   until a lease is claimed */
    projector_lease_t *lease;   /* projector_partition = auto, else NULL */
    int exit_rc;                /* projector_run's result: -1 after a lost lease */
    int said_ready;             /* what health_set_ready was last told (-1: nothing yet) */
    unsigned apply_failures;    /* consecutive batches the database refused */
    s_rebuild_t *rebuild;
    char tag [9];               /* random prefix of our message ids */
    uint64_t msg_seq;
    int stopping;
} self_t;

/* ---- replies on the control socket ------------------------------------------ */

/* Sends [identity][envelope type, body = compact JSON of body]; takes body. */
static void
s_send_ctl (self_t *self, zframe_t *identity, const char *type, const char *cause, const char *corr, json_t *body)
{
    char *text = body ? json_dumps (body, JSON_COMPACT) : NULL;
    json_decref (body);
    char id [ENVELOPE_ID_MAX];
    snprintf (id, sizeof id, "projector-%s-%llu", self->tag, (unsigned long long) ++self->msg_seq);
    envelope_t env;
    envelope_init (&env, type, id);
    envelope_set (env.causation_id, sizeof env.causation_id, cause);
    envelope_set (env.correlation_id, sizeof env.correlation_id, corr);
    env.body = text;
    env.body_size = text ? strlen (text) : 0;
    if (envelope_send (zsock_resolve (self->ctl), identity, &env) != 0)
        log_warn (corr, NULL, "projector: could not send %s", type);
    free (text);
}

static void
s_send_error (self_t *self, zframe_t *identity, const char *cause, const char *corr,
              const char *error, const char *detail)
{
    s_send_ctl (self, identity, "ctl.error", cause, corr, json_pack ("{s:s, s:s}", "error", error, "detail", detail));
}

/* ---- the live subscription ----------------------------------------------------- */

/* Commits the transaction batches share. On failure everything since the last
 * commit is undone and read again from the checkpoint. 0 ok, -1 failed. */
static int
s_tx_commit (self_t *self)
{
    if (!self->tx_open)
        return 0;
    self->tx_open = 0;
    if (projection_commit (self->projection) == 0) {
        /* Other partitions write the same file: leave them a turn at its lock
         * before the next shared transaction takes it again. */
        if (self->partitions > 1)
            zclock_sleep (S_TX_YIELD_MS);
        return 0;
    }
    projection_rollback (self->projection);
    self->rewind = 1;
    log_warn (NULL, NULL, "projector: commit of %lld events failed; reading them again", (long long) self->tx_events);
    return -1;
}

static int
s_on_events (const event_t *events, size_t count, void *arg)
{
    self_t *self = (self_t *) arg;
    int rc;
    int64_t started_us = zclock_usecs ();
    self->event_at = zclock_mono ();
    heap_trim_busy (&self->trim, self->event_at);
    /* far behind already at this batch (the store's head is known by now) */
    if (!self->busy && subscription_head (self->sub) - (events [0].position - 1) > self->busy_behind) {
        projection_set_busy (self->projection, 1);
        self->busy = 1;
    }
    if (self->busy && projection_transactional (self->projection)) {
        /* several batches in one transaction: the batches it holds were delivered,
         * so a failure rewinds the subscription to the checkpoint (s_tx_tick) */
        int began = 0;
        if (!self->tx_open) {
            began = projection_begin (self->projection);
            if (began == 0) {
                self->tx_open = 1;
                self->tx_events = 0;
                self->tx_started = zclock_mono ();
            }
        }
        if (began == -2)
            self->rewind = 1;
        rc = self->tx_open ? projection_apply_in_tx (self->projection, events, count) : -1;
        if (rc != 0 && self->tx_open) {
            projection_rollback (self->projection);
            self->tx_open = 0;
            self->rewind = self->tx_events > 0;
        }
        if (rc == 0) {
            self->tx_events += (int64_t) count;
            if (self->tx_events >= S_TX_EVENTS)
                s_tx_commit (self);
        }
    }
    else {
        rc = s_tx_commit (self) == 0 ? projection_apply (self->projection, events, count) : -1;
        if (rc == -2)
            self->rewind = 1;
    }
    if (rc != 0) {
        /* retried every few hundred ms: say so once, then now and then */
        if (self->apply_failures++ % 50 == 0)
            log_warn (NULL, NULL, "projector: batch at %lld not applied (%u in a row); will retry",
                      (long long) events [0].position, self->apply_failures);
        return -1;
    }
    self->apply_failures = 0;
    projector_metrics_batch (count, (double) (zclock_usecs () - started_us) / 1e6);
    return 0;
}

/* Commits a shared transaction once caught up or old enough, and after a failed
 * one asks the store again from the checkpoint. */
static void
s_tx_tick (self_t *self)
{
    int caught_up = subscription_next (self->sub) > subscription_head (self->sub);
    if (self->tx_open && (caught_up || !self->busy || zclock_mono () - self->tx_started >= S_TX_MS))
        s_tx_commit (self);
    if (self->rewind) {
        self->rewind = 0;
        subscription_reset (self->sub, projection_checkpoint (self->projection) + 1);
    }
}

/* Behind the log (a restart after downtime, a burst of appends): the read models
 * may keep more in memory until the projector has kept up for a while, or has kept
 * up and no event came for S_QUIET_MS (the burst is over), then give it back, so
 * that following a quiet feed stays small. */
static void
s_busy_tick (self_t *self)
{
    int64_t behind = subscription_head (self->sub) - (subscription_next (self->sub) - 1);
    int64_t now = zclock_mono ();
    /* (the idle reads of the safety net do not count as being behind) */
    if (behind > 0)
        self->kept_up_since = 0;
    else
    if (!self->kept_up_since)
        self->kept_up_since = now;
    if (!self->busy && behind > self->busy_behind) {
        projection_set_busy (self->projection, 1);
        self->busy = 1;
    }
    else
    if (self->busy && self->kept_up_since && !self->tx_open
    &&  (now - self->kept_up_since >= S_IDLE_AFTER_MS || now - self->event_at >= S_QUIET_MS)) {
        projection_set_busy (self->projection, 0);
        self->busy = 0;
    }
}

/* While an in-place rebuild holds the live database, the live feed waits: its
 * sockets leave the poller (the subscription reads again when it comes back). */
static void
s_pause_live (self_t *self, int pause)
{
    if (pause == self->sub_paused || !self->sub)
        return;
    if (pause) {
        zpoller_remove (self->poller, subscription_store_sock (self->sub));
        zpoller_remove (self->poller, subscription_pub_sock (self->sub));
    }
    else {
        zpoller_add (self->poller, subscription_store_sock (self->sub));
        zpoller_add (self->poller, subscription_pub_sock (self->sub));
    }
    self->sub_paused = pause;
}

/* ---- rebuild ----------------------------------------------------------------------- */

static void
s_rebuild_send (self_t *self)
{
    s_rebuild_t *r = self->rebuild;
    snprintf (r->req_id, sizeof r->req_id, "rebuild-%s-%llu", self->tag, (unsigned long long) ++r->req_seq);
    size_t size = 0;
    char *body = store_read_all_encode (r->next, S_PAGE, &size);
    if (body) {
        envelope_t env;
        envelope_init (&env, "store.read_all", r->req_id);
        envelope_set (env.correlation_id, sizeof env.correlation_id, r->correlation);
        env.body = body;
        env.body_size = size;
        if (envelope_send (zsock_resolve (r->dealer), NULL, &env) != 0)
            log_warn (r->correlation, NULL, "projector: rebuild read from %lld not sent; will retry", (long long) r->next);
        free (body);
    }
    r->outstanding = 1;
    r->sent_at = zclock_mono ();
}

/* Ends the rebuild: commits (ok) or rolls back, answers the requester, and lets
 * the live feed go on from whatever the live database now holds. */
static void
s_rebuild_finish (self_t *self, int ok, const char *error, const char *detail)
{
    s_rebuild_t *r = self->rebuild;
    if (ok && projection_commit (r->target) != 0) {
        ok = 0;
        error = "failed";
        detail = "could not commit the rebuilt read models";
    }
    if (!ok && r->target)
        projection_rollback (r->target);
    double seconds = (double) (zclock_mono () - r->started_at) / 1000.0;
    /* Close a target before answering: the requester opens it next. */
    if (r->in_place) {
        projection_set_all_partitions (self->projection, 0);
        if (self->sub)
            subscription_reset (self->sub, projection_checkpoint (self->projection) + 1);
        s_pause_live (self, 0);
    }
    else
        projection_destroy (&r->target);
    /* the rebuild's memory goes back (a long catch-up, if any, asks for it again) */
    projection_set_busy (self->projection, 0);
    self->busy = 0;
    if (ok) {
        log_info (r->correlation, NULL, "projector: rebuild%s done: %lld events in %.3f s",
                  r->in_place ? " in place" : "", (long long) r->events, seconds);
        s_send_ctl (self, r->requester, "ctl.done", r->cause, r->correlation,
                    json_pack ("{s:I, s:f}", "events", (json_int_t) r->events, "seconds", seconds));
    }
    else {
        log_error (r->correlation, NULL, "projector: rebuild failed after %lld events: %s (%s)",
                   (long long) r->events, error, detail);
        s_send_error (self, r->requester, r->cause, r->correlation, error, detail);
    }
    if (r->polled)
        zpoller_remove (self->poller, r->dealer);
    zsock_destroy (&r->dealer);
    zframe_destroy (&r->requester);
    free (r);
    self->rebuild = NULL;
}

/* Why target cannot be rebuilt into, or NULL when it can. On SQLite a target is an
 * absolute file path, on MongoDB a database name; never the live read models, never
 * a place that holds anything else. *error is set for a problem that is not the
 * target's fault (database unreachable). */
static const char *
s_target_problem (self_t *self, const char *target, const char **error)
{
    if (self->ops == &readmodel_mongo_ops) {
        if (!readmodel_mongo_valid_database (target))
            return "target must be a database name: 1 to 63 letters, digits, '_' or '-'";
        if (strcmp (target, self->location) == 0)
            return "target is the live read-model database: rebuild without a target instead";
    }
    else {
        char a [PATH_MAX], b [PATH_MAX];
        if (target [0] != '/' || strlen (target) >= PATH_MAX - 16)
            return "target must be an absolute path";
        if (realpath (target, a) && realpath (self->location, b) && strcmp (a, b) == 0)
            return "target is the live read-model database: rebuild without a target instead";
    }
    int ours = self->ops->is_readmodel (target, self->config);
    if (ours == 0)
        return "target exists and is not a read-model database: it would be overwritten";
    if (ours < 0) {
        *error = "unavailable";
        return "cannot tell what the target holds (database unreachable?)";
    }
    return NULL;
}

static void
s_rebuild_start (self_t *self, zframe_t *identity, const envelope_t *req)
{
    if (self->rebuild) {
        s_send_error (self, identity, req->id, req->correlation_id, "busy", "a rebuild is already running");
        return;
    }
    const char *target = NULL;
    json_t *body = NULL;
    if (req->body_size > 0) {
        body = json_loadb (req->body, req->body_size, 0, NULL);
        json_t *t = json_object_get (body, "target");
        if (!json_is_object (body) || (t && !json_is_null (t) && !json_is_string (t))) {
            json_decref (body);
            s_send_error (self, identity, req->id, req->correlation_id, "validation.body",
                          "the body must be a JSON object {\"target\": \"/abs/path.db\"}");
            return;
        }
        target = json_string_value (t);
    }
    if (target) {
        const char *error = "validation.target";
        const char *problem = s_target_problem (self, target, &error);
        if (problem) {
            json_decref (body);
            s_send_error (self, identity, req->id, req->correlation_id, error, problem);
            return;
        }
    }
    else
    if (!projection_loaded (self->projection)) {
        json_decref (body);
        s_send_error (self, identity, req->id, req->correlation_id, "unavailable", "the read models are not reachable");
        return;
    }
    else
    if (self->partitions > 1 && !projection_transactional (self->projection)) {
        /* MongoDB: clear drops the collections at once, while the other partitions'
         * projectors keep writing and would meet cases that are gone. */
        json_decref (body);
        s_send_error (self, identity, req->id, req->correlation_id, "validation.target",
                      "with several projector partitions on MongoDB, rebuild into a new database "
                      "(--to NAME), or stop the other partitions first");
        return;
    }
    s_tx_commit (self);                 /* the live batches first (a failure rewinds later) */
    s_rebuild_t *r = calloc (1, sizeof (s_rebuild_t));
    if (!r) {
        json_decref (body);
        s_send_error (self, identity, req->id, req->correlation_id, "failed", "out of memory");
        return;
    }
    self->rebuild = r;
    r->requester = zframe_dup (identity);
    snprintf (r->cause, sizeof r->cause, "%s", req->id);
    snprintf (r->correlation, sizeof r->correlation, "%s", req->correlation_id [0] ? req->correlation_id : req->id);
    r->in_place = target == NULL;
    r->next = 1;
    r->started_at = r->progress_at = zclock_mono ();
    r->target = r->in_place ? self->projection : projection_new_rebuild (self->ops, target, self->config);
    if (r->target && !projection_loaded (r->target)) {
        projection_destroy (&r->target);
        r->target = NULL;
    }
    log_info (r->correlation, NULL, "projector: rebuild %s%s started", r->in_place ? "in place" : "into ",
              r->in_place ? "" : target);
    json_decref (body);
    r->dealer = zsock_new (ZMQ_DEALER);
    if (!r->target || !r->dealer) {
        s_rebuild_finish (self, 0, "failed", r->target ? "cannot create a socket" : "cannot open the target database");
        return;
    }
    zsock_set_linger (r->dealer, 0);
    if (zsock_connect (r->dealer, "%s", self->store_ep) != 0) {
        s_rebuild_finish (self, 0, "failed", "cannot connect to the store");
        return;
    }
    zpoller_add (self->poller, r->dealer);
    r->polled = 1;
    if (r->in_place) {
        s_pause_live (self, 1);
        projection_set_busy (r->target, 1);
        /* every case and every partition's checkpoint (the others find theirs moved
         * when they next begin: projection_begin) */
        projection_set_all_partitions (r->target, 1);
    }
    if (projection_begin (r->target) != 0 || projection_clear (r->target) != 0) {
        s_rebuild_finish (self, 0, "failed", "cannot reset the read models");
        return;
    }
    s_rebuild_send (self);
}

/* Sends ctl.progress at most every S_PROGRESS_MS; at the end (last) also when none
 * was sent yet, so even a short rebuild reports its total once. */
static void
s_rebuild_progress (self_t *self, int last)
{
    s_rebuild_t *r = self->rebuild;
    int64_t now = zclock_mono ();
    if (now - r->progress_at < S_PROGRESS_MS && !(last && !r->progress_sent))
        return;
    r->progress_at = now;
    r->progress_sent = 1;
    s_send_ctl (self, r->requester, "ctl.progress", r->cause, r->correlation,
                json_pack ("{s:I, s:I}", "done", (json_int_t) r->events, "total", (json_int_t) r->total));
}

static void
s_handle_rebuild (self_t *self)
{
    s_rebuild_t *r = self->rebuild;
    zmsg_t *msg = NULL;
    envelope_t env;
    int rc = envelope_recv (zsock_resolve (r->dealer), 0, NULL, &msg, &env);
    if (rc != 0) {
        if (rc == -2)
            log_warn (r->correlation, NULL, "projector: malformed reply from the store dropped");
        return;
    }
    if (!r->outstanding || (env.causation_id [0] && strcmp (env.causation_id, r->req_id) != 0)) {
        zmsg_destroy (&msg);                        /* answer to a read we re-sent */
        return;
    }
    r->outstanding = 0;
    r->tries = 0;
    event_batch_t batch;
    if (strcmp (env.type, "store.events") != 0 || event_batch_decode (env.body, env.body_size, &batch) != 0) {
        store_reply_t reply;
        char detail [400];
        if (strcmp (env.type, "store.error") == 0 && store_reply_decode (env.type, env.body, env.body_size, &reply) == 0)
            snprintf (detail, sizeof detail, "store: %s: %s", reply.error, reply.detail);
        else
            snprintf (detail, sizeof detail, "unexpected reply '%s' from the store", env.type);
        zmsg_destroy (&msg);
        s_rebuild_finish (self, 0, "unavailable", detail);
        return;
    }
    if (!r->total_known) {
        r->total = batch.head;
        r->total_known = 1;
    }
    for (size_t i = 0; i < batch.count; i++)
        if (batch.events [i].position != r->next + (int64_t) i) {
            char detail [128];
            snprintf (detail, sizeof detail, "the store skipped position %lld", (long long) (r->next + (int64_t) i));
            event_batch_destroy (&batch);
            zmsg_destroy (&msg);
            s_rebuild_finish (self, 0, "failed", detail);
            return;
        }
    r->next += (int64_t) batch.count;
    int last = batch.count == 0 || r->next > r->total;
    if (!last)
        s_rebuild_send (self);          /* the store reads the next page while we write this one */
    int applied = batch.count == 0 || projection_apply_in_tx (r->target, batch.events, batch.count) == 0;
    r->events += (int64_t) batch.count;
    event_batch_destroy (&batch);
    zmsg_destroy (&msg);
    if (!applied)
        s_rebuild_finish (self, 0, "failed", "could not write the read models");
    else
    if (last) {
        s_rebuild_progress (self, 1);
        s_rebuild_finish (self, 1, NULL, NULL);
    }
    else
        s_rebuild_progress (self, 0);
}

static void
s_rebuild_tick (self_t *self)
{
    s_rebuild_t *r = self->rebuild;
    if (!r || !r->outstanding || zclock_mono () - r->sent_at < S_REBUILD_TIMEOUT_MS)
        return;
    if (++r->tries >= S_REBUILD_MAX_TRIES)
        s_rebuild_finish (self, 0, "unavailable", "the store did not answer");
    else {
        log_warn (r->correlation, NULL, "projector: rebuild read from %lld unanswered; asking again", (long long) r->next);
        s_rebuild_send (self);
    }
}

/* ---- control socket -------------------------------------------------------------- */

static int
s_on_checkpoint (void *arg, const char *name, int64_t position)
{
    return json_object_set_new ((json_t *) arg, name, json_integer ((json_int_t) position));
}

/* ctl.status body. position: where every partition of the current count has got to:
 * the least of their rows, this projector's own position for its own, and for a
 * partition without a row the least row of other partition counts (those covered
 * every case; none: 0); checkpoints: every row; own_position: this projector's.
 * Without a readable checkpoint table, its own position. NULL on OOM. */
static json_t *
s_status (self_t *self)
{
    int64_t own = projection_checkpoint (self->projection);
    int64_t head = self->sub ? subscription_head (self->sub) : 0;
    json_t *rows = json_object ();
    if (!rows)
        return NULL;
    int64_t position = own;
    if (projection_checkpoints (self->projection, s_on_checkpoint, rows) == 0) {
        char suffix [PARTITION_NAME_MAX];
        snprintf (suffix, sizeof suffix, "-of-%d", self->partitions);
        int64_t older = -1;             /* least row of another partition count */
        const char *key;
        json_t *value;
        json_object_foreach (rows, key, value) {
            size_t len = strlen (key), n = strlen (suffix);
            int current = self->partitions == 1 ? strcmp (key, "projector") == 0
                        : len > n && strcmp (key + len - n, suffix) == 0;
            if (!current && (older < 0 || json_integer_value (value) < older))
                older = json_integer_value (value);
        }
        for (int i = 0; i < self->partitions; i++) {
            char name [PARTITION_NAME_MAX];
            partition_checkpoint_name (i, self->partitions, name, sizeof name);
            json_t *row = json_object_get (rows, name);
            int64_t at = i == self->partition ? own
                       : row ? json_integer_value (row) : older > 0 ? older : 0;
            if (at < position)
                position = at;
        }
    }
    else
        json_object_clear (rows);
    json_t *status = json_pack ("{s:I, s:I, s:I, s:i, s:i, s:o}", "position", (json_int_t) position,
                                "head", (json_int_t) (head > position ? head : position),
                                "own_position", (json_int_t) own,
                                "partition", self->partition, "partitions", self->partitions, "checkpoints", rows);
    /* auto: who holds the partition, until when (a standby binds no control socket:
     * it is never the one asked) */
    if (status && self->lease)
        json_object_set_new (status, "lease",
                             json_pack ("{s:s, s:s, s:I, s:I}", "state", projector_lease_state (self->lease),
                                        "owner", projector_lease_owner (self->lease),
                                        "expires_at", (json_int_t) projector_lease_expires (self->lease),
                                        "ttl_ms", (json_int_t) projector_lease_ttl (self->lease)));
    return status;
}

static void
s_handle_ctl (self_t *self)
{
    zframe_t *routes [1];
    zmsg_t *msg = NULL;
    envelope_t env;
    int rc = envelope_recv (zsock_resolve (self->ctl), 1, routes, &msg, &env);
    if (rc == -2)
        log_warn (NULL, NULL, "projector: malformed control message dropped");
    if (rc != 0)
        return;
    if (strcmp (env.type, "ctl.status") == 0) {
        json_t *status = s_status (self);
        if (status)
            s_send_ctl (self, routes [0], "ctl.status", env.id, env.correlation_id, status);
        else
            s_send_error (self, routes [0], env.id, env.correlation_id, "failed", "out of memory");
    }
    else
    if (strcmp (env.type, "ctl.rebuild") == 0)
        s_rebuild_start (self, routes [0], &env);
    else
    if (strcmp (env.type, "ctl.ping") == 0)
        s_send_ctl (self, routes [0], "ctl.pong", env.id, env.correlation_id, NULL);
    else
        s_send_error (self, routes [0], env.id, env.correlation_id, "unknown_type", env.type);
    zmsg_destroy (&msg);
}

static void
s_handle_pipe (self_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || strcmp (command, "$TERM") == 0)
        self->stopping = 1;
    zstr_free (&command);
}

/* ---- life cycle ------------------------------------------------------------------- */

static void
s_self_destroy (self_t **self_p)
{
    if (self_p && *self_p) {
        self_t *self = *self_p;
        if (self->rebuild)
            s_rebuild_finish (self, 0, "unavailable", "the projector is stopping");
        if (!self->lease || projector_lease_index (self->lease) >= 0)
            s_tx_commit (self);         /* what was applied is kept */
        else
        if (self->tx_open)
            projection_rollback (self->projection);     /* a lost lease: stop applying */
        if (self->lease && self->projection)
            projector_lease_release (self->lease, self->projection);
        projector_lease_destroy (&self->lease);
        zpoller_destroy (&self->poller);
        subscription_destroy (&self->sub);
        zsock_destroy (&self->ctl);
        projection_destroy (&self->projection);
        free (self->location);
        free (self->store_ep);
        free (self->pub_ep);
        free (self->ctl_ep);
        free (self);
        *self_p = NULL;
    }
}

/* Starts following the log from the checkpoint. 0 ok, -1 failed (bad endpoint, OOM). */
static int
s_subscribe (self_t *self)
{
    self->sub = subscription_new (self->store_ep, self->pub_ep, projection_checkpoint (self->projection) + 1);
    if (!self->sub)
        return -1;
    /* Larger pages than the default: catching up after downtime is a replay, and
     * each page is one batch (S_PAGE says why not larger). */
    subscription_set_page (self->sub, S_PAGE);
    zpoller_add (self->poller, subscription_store_sock (self->sub));
    zpoller_add (self->poller, subscription_pub_sock (self->sub));
    return 0;
}

/* Read models not reachable at start: tries again now and then, and subscribes
 * once they answer. */
static void
s_load_tick (self_t *self)
{
    if (self->sub || zclock_mono () < self->load_at)
        return;
    self->load_at = zclock_mono () + S_LOAD_RETRY_MS;
    if (self->partition == PARTITION_AUTO) {
        projection_load (self->projection);     /* the lease tick claims, then subscribes */
        return;
    }
    if (projection_load (self->projection) != 0)
        return;
    if (s_subscribe (self) != 0) {
        log_error (NULL, NULL, "projector: cannot subscribe to the store");
        self->stopping = 1;
        return;
    }
    log_info (NULL, NULL, "projector: read models reachable, following the log from position %lld",
              (long long) projection_checkpoint (self->projection) + 1);
}

/* Binds the control socket (the holder of partition 0 only, so that the partitions
 * do not fight over one endpoint: its rebuild covers every partition). 0 ok, -1 failed. */
static int
s_bind_ctl (self_t *self)
{
    self->ctl = zsock_new (ZMQ_ROUTER);
    if (!self->ctl)
        return -1;
    zsock_set_linger (self->ctl, 0);
    if (zsock_bind (self->ctl, "%s", self->ctl_ep) == -1) {   /* tcp: returns the port */
        log_error (NULL, NULL, "projector: cannot bind %s: %s", self->ctl_ep, zmq_strerror (zmq_errno ()));
        return -1;
    }
    zpoller_add (self->poller, self->ctl);
    return 0;
}

/* projector_partition = auto: claims a partition (then binds the control socket for
 * partition 0, and follows the log), renews it, and stops the projector when it is
 * lost: a restart claims again. A pending shared transaction is committed before a
 * renewal, so the renewal is its own; only a rebuild in place renews inside its
 * transaction (SQLite: nobody else can write meanwhile anyway). */
static void
s_lease_tick (self_t *self)
{
    if (!self->lease || self->stopping)
        return;
    int64_t now = zclock_time ();
    if (now < projector_lease_due (self->lease))
        return;
    if (self->tx_open && !(self->rebuild && self->rebuild->in_place))
        s_tx_commit (self);
    projector_lease_event_t ev = projector_lease_tick (self->lease, self->projection, now);
    if (ev == PROJECTOR_LEASE_CLAIMED) {
        self->partition = projector_lease_index (self->lease);
        if ((self->partition == 0 && s_bind_ctl (self) != 0) || s_subscribe (self) != 0) {
            log_error (NULL, NULL, "projector: cannot take up partition %d (control socket or subscription)",
                       self->partition);
            self->stopping = 1;
            self->exit_rc = -1;
            return;
        }
        log_info (NULL, NULL, "projector: partition %d of %d: following the log from position %lld",
                  self->partition, self->partitions, (long long) projection_checkpoint (self->projection) + 1);
    }
    else
    if (ev == PROJECTOR_LEASE_LOST) {
        self->stopping = 1;
        self->exit_rc = -1;
    }
}

static self_t *
s_self_new (config_t *config, zsock_t *pipe)
{
    self_t *self = calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    self->said_ready = -1;
    heap_trim_init (&self->trim, HEAP_TRIM_QUIET_MS);
    self->config = config;
    self->pipe = pipe;
    char uuid [IDS_UUID_LEN];
    ids_uuid4 (uuid);
    memcpy (self->tag, uuid, 8);
    self->busy_behind = atoll (config_get (config, "projector_busy_behind", S_BUSY_BEHIND));
    const char *store = config_get (config, "store", "sqlite");
    self->ops = readmodel_store_lookup (store);
    if (!self->ops) {
        log_error (NULL, NULL, "projector: unknown store \"%.40s\" (sqlite or mongodb)", store);
        goto fail;
    }
    self->location = readmodel_store_location (self->ops, config);
    self->store_ep = endpoints_get (config, "store");
    self->pub_ep = endpoints_get (config, "store_pub");
    self->ctl_ep = endpoints_get_bind (config, "projector");     /* bound here (partition 0) */
    if (!self->location || !self->store_ep || !self->pub_ep || !self->ctl_ep) {
        log_error (NULL, NULL, "projector: no usable endpoints or data path (ipc path too long?)");
        goto fail;
    }
    self->projection = projection_new_with (self->ops, self->location, config);
    if (!self->projection)
        goto fail;
    projection_partition (self->projection, &self->partition, &self->partitions);
    self->poller = zpoller_new (NULL);
    if (!self->poller)
        goto fail;
    /* One control socket: partition 0's (s_bind_ctl); with auto, bound once
     * partition 0 is claimed (s_lease_tick). */
    if (self->partition == 0 && s_bind_ctl (self) != 0)
        goto fail;
    if (pipe)
        zpoller_add (self->poller, pipe);
    if (self->partition == PARTITION_AUTO) {
        long ttl = atol (config_get (config, "projector_lease_ms", PROJECTOR_LEASE_TTL_MS));
        if (ttl < 30) {
            log_error (NULL, NULL, "projector: projector_lease_ms must be at least 30, not %ld", ttl);
            goto fail;
        }
        self->lease = projector_lease_new (ttl);
        if (!self->lease)
            goto fail;
        s_lease_tick (self);            /* claimed at once when a partition is free */
        if (self->stopping)
            goto fail;
    }
    else
    if (projection_loaded (self->projection) && s_subscribe (self) != 0)
        goto fail;
    return self;
fail:
    s_self_destroy (&self);
    return NULL;
}

int
projector_run (config_t *config, zsock_t *pipe)
{
    self_t *self = s_self_new (config, pipe);
    if (!self) {
        if (pipe)
            zsock_signal (pipe, 1);
        return -1;
    }
    log_info (NULL, NULL, "projector: partition %d of %d%s ready at position %lld, read models %s (%s)%s",
              self->partition, self->partitions,
              !self->lease ? "" : self->partition == PARTITION_AUTO ? " (auto: standby, no lease yet)" : " (auto: leased)",
              (long long) projection_checkpoint (self->projection), self->location,
              projection_backend (self->projection),
              projection_loaded (self->projection) ? "" : ", not reachable yet");
    ready_signal ();
    if (pipe)
        zsock_signal (pipe, 0);

    while (!self->stopping && !zsys_interrupted) {
        int timeout = self->sub_paused ? S_PROGRESS_MS
                    : self->sub ? subscription_timeout (self->sub) : S_LOAD_RETRY_MS;
        if (self->rebuild && timeout > S_PROGRESS_MS)
            timeout = S_PROGRESS_MS;
        if (self->lease) {
            int64_t wait = projector_lease_due (self->lease) - zclock_time ();
            if (wait < timeout)
                timeout = wait < 0 ? 0 : (int) wait;
        }
        int64_t now = zclock_mono ();
        int trim = heap_trim_tick (&self->trim, now);
        if (trim >= 0 && trim < timeout)
            timeout = trim;
        if (self->busy && self->kept_up_since && self->sub && !self->sub_paused) {     /* s_busy_tick */
            int64_t quiet = self->event_at + S_QUIET_MS - now;
            if (quiet < timeout)
                timeout = quiet < 0 ? 0 : (int) quiet;
        }
        health_beat ();
        /* Ready for the metrics port's /ready once the read models are open and the
         * feed followed; a readmodel backend not reachable yet says so. A standby
         * (auto, every partition leased) is ready too: it is where it should be. */
        int ready = projection_loaded (self->projection) && (self->sub != NULL || self->lease != NULL);
        if (ready != self->said_ready) {
            health_set_ready (ready, "read models not reachable yet");
            self->said_ready = ready;
        }
        void *which = zpoller_wait (self->poller, timeout);
        if (!which && zpoller_terminated (self->poller))
            break;
        if (which && which == pipe)
            s_handle_pipe (self);
        else
        if (which && which == self->ctl)
            s_handle_ctl (self);
        else
        if (which && self->rebuild && which == self->rebuild->dealer)
            s_handle_rebuild (self);
        else
        if (which && self->sub && !self->sub_paused)
            subscription_handle (self->sub, which, s_on_events, self);
        if (self->sub && !self->sub_paused) {
            s_tx_tick (self);
            subscription_tick (self->sub);
            s_busy_tick (self);
        }
        s_load_tick (self);
        s_lease_tick (self);
        s_rebuild_tick (self);
        projector_metrics_progress (projection_checkpoint (self->projection),
                                    self->sub ? subscription_head (self->sub) : 0);
    }
    log_info (NULL, NULL, "projector: stopping at position %lld", (long long) projection_checkpoint (self->projection));
    int rc = self->exit_rc;
    s_self_destroy (&self);
    return rc;
}

void
projector_actor (zsock_t *pipe, void *args)
{
    projector_run ((config_t *) args, pipe);
}
