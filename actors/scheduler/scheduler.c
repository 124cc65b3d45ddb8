/* scheduler — one poll loop over the log subscription and a DEALER to the broker.
 * While resolutions succeed, every pending deferral is sent (at most max_inflight at a
 * time); after an "unavailable" answer (the rules still cannot be had) only one probe
 * goes out per retry_ms, so an outage costs one command per period rather than one
 * per pending decision, and the first success sends the rest at once. A deferral is
 * forgotten when a handler confirms it resolved or the log shows its resolution. */
#include "scheduler.h"
#include "health.h"
#include "scheduler_db.h"

#include "endpoints.h"
#include "envelope.h"
#include "heap_trim.h"
#include "ids.h"
#include "log.h"
#include "metrics_export.h"
#include "ready.h"
#include "subscription.h"
#include "traceparent.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define S_RETRY_MS          1000        /* probe period while rules are unavailable */
#define S_MAX_INFLIGHT      64
#define S_REQUEST_MS        10000       /* no reply by then: send again later (same command id) */
#define S_HOLD_BACK_MS      30000       /* after an answer that retrying soon cannot change */
#define S_PAGE              256
#define S_COMMAND_PREFIX    "resolve:"
/* A checkpoint that passed only events of other types is stored this long after it
 * moved (and at stop): re-reading such events after a crash changes nothing. */
#define S_CHECKPOINT_MS     1000
/* The live feed is read at most this often once emptied: deferrals wait for the
 * rules anyway, and one wake-up per store batch cost more than all the rest. */
#define S_LINGER_MS         100

typedef struct {
    char deferral_id [EVENT_ID_MAX];
    char case_id [EVENT_ID_MAX];
    int64_t sent_ms;
} s_flight_t;

typedef struct {
    config_t *config;
    zsock_t *pipe;
    char *db_path, *store_ep, *pub_ep, *broker_ep;
    scheduler_db_t *db;
    subscription_t *sub;
    zsock_t *broker;                /* DEALER to the broker's frontend */
    zhashx_t *inflight;             /* command id -> s_flight_t (owned) */
    zhashx_t *held_back;            /* deferral id -> int64_t * not before (owned) */
    int open;                       /* last answer was not "unavailable": send them all */
    int64_t next_probe_ms;
    int64_t next_dispatch_ms;
    int dirty;                      /* new deferrals or answers: dispatch now */
    int64_t retry_ms, request_ms;
    size_t max_inflight;
    uint64_t sent, resolved, unavailable;
    uint64_t reported [3];          /* sent, resolved, unavailable as last exported */
    int64_t metrics_at_ms;          /* next metrics update */
    int64_t sync_at_ms;             /* when to store a checkpoint moved in memory; 0 none due */
    heap_trim_t trim;               /* a burst's memory goes back once the feed is quiet */
    int stopping;
} self_t;

static void
s_free_item (void **item)
{
    if (item && *item) {
        free (*item);
        *item = NULL;
    }
}

/* ---- the log --------------------------------------------------------------------- */

static int
s_on_events (const event_t *events, size_t count, void *arg)
{
    self_t *self = (self_t *) arg;
    size_t added = 0;
    heap_trim_busy (&self->trim, zclock_mono ());
    if (scheduler_db_apply (self->db, events, count, &added) != 0)
        return -1;              /* the same batch comes again after a back-off */
    if (added) {
        log_debug (NULL, NULL, "scheduler: %zu deferred notification decision(s) recorded", added);
        self->dirty = 1;
    }
    return 0;
}

/* ---- commands -------------------------------------------------------------------- */

static int
s_send (self_t *self, const scheduler_item_t *item, int64_t now)
{
    char command_id [ENVELOPE_ID_MAX];
    snprintf (command_id, sizeof command_id, S_COMMAND_PREFIX "%s", item->deferral_id);
    char *body = NULL;
    json_t *json = json_pack ("{s:s}", "deferral_id", item->deferral_id);
    if (json)
        body = json_dumps (json, JSON_COMPACT);
    json_decref (json);
    s_flight_t *flight = calloc (1, sizeof (s_flight_t));
    if (!body || !flight) {
        free (body);
        free (flight);
        return -1;
    }
    envelope_t env;
    envelope_init (&env, "cmd.resolve_notifications", command_id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, command_id);
    envelope_set (env.key, sizeof env.key, item->case_id);
    /* The deferral's trace goes on with a span of the scheduler's (a deferral from
     * before trace context starts a trace here). */
    traceparent_hop (item->traceparent, strlen (item->traceparent), env.traceparent);
    env.body = body;
    env.body_size = strlen (body);
    int rc = envelope_send (zsock_resolve (self->broker), NULL, &env);
    free (body);
    if (rc != 0) {
        free (flight);
        return -1;
    }
    memcpy (flight->deferral_id, item->deferral_id, sizeof flight->deferral_id);
    memcpy (flight->case_id, item->case_id, sizeof flight->case_id);
    flight->sent_ms = now;
    zhashx_update (self->inflight, command_id, flight);
    self->sent++;
    return 0;
}

static int
s_is_held_back (self_t *self, const char *deferral_id, int64_t now)
{
    int64_t *until = (int64_t *) zhashx_lookup (self->held_back, deferral_id);
    if (until && now >= *until) {
        zhashx_delete (self->held_back, deferral_id);
        return 0;
    }
    return until != NULL;
}

/* Sends what is due: every pending deferral not in flight while open, one probe per
 * retry_ms otherwise. */
static void
s_dispatch (self_t *self, int64_t now)
{
    self->dirty = 0;
    self->next_dispatch_ms = now + self->retry_ms;
    if (!self->open && now < self->next_probe_ms)
        return;
    size_t in_flight = zhashx_size (self->inflight);
    size_t budget = self->open ? (in_flight < self->max_inflight ? self->max_inflight - in_flight : 0)
                               : (in_flight == 0 ? 1 : 0);
    if (budget == 0)
        return;
    if (!self->open)
        self->next_probe_ms = now + self->retry_ms;
    scheduler_item_t *items = calloc (S_PAGE, sizeof (scheduler_item_t));
    if (!items)
        return;
    int64_t after = 0;
    while (budget > 0) {
        size_t n = scheduler_db_pending (self->db, after, items, S_PAGE);
        for (size_t i = 0; i < n && budget > 0; i++) {
            after = items [i].position;
            char command_id [ENVELOPE_ID_MAX];
            snprintf (command_id, sizeof command_id, S_COMMAND_PREFIX "%s", items [i].deferral_id);
            if (zhashx_lookup (self->inflight, command_id) || s_is_held_back (self, items [i].deferral_id, now))
                continue;
            if (s_send (self, &items [i], now) != 0) {
                budget = 0;     /* the broker is not taking more now: next turn */
                break;
            }
            budget--;
        }
        if (n < S_PAGE)
            break;
    }
    free (items);
}

static void
s_hold_back (self_t *self, const char *deferral_id, int64_t now)
{
    int64_t *until = malloc (sizeof (int64_t));
    if (until) {
        *until = now + S_HOLD_BACK_MS;
        zhashx_update (self->held_back, deferral_id, until);
    }
}

static void
s_handle_broker (self_t *self)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    int rc = envelope_recv (zsock_resolve (self->broker), 0, NULL, &msg, &env);
    if (rc == -2)
        log_warn (NULL, NULL, "scheduler: dropped a malformed message from the broker");
    if (rc != 0)
        return;
    const char *command_id = env.causation_id [0] ? env.causation_id : env.correlation_id;
    s_flight_t *flight = (s_flight_t *) zhashx_lookup (self->inflight, command_id);
    if (!flight) {
        log_debug (command_id, env.key, "scheduler: %s for no command in flight (late)", env.type);
        zmsg_destroy (&msg);
        return;
    }
    int64_t now = zclock_mono ();
    if (streq (env.type, "reply.ok")) {
        if (scheduler_db_forget (self->db, flight->deferral_id) != 0)
            log_warn (command_id, flight->case_id, "scheduler: cannot forget deferral %s (the log will)",
                      flight->deferral_id);
        self->resolved++;
        if (!self->open)
            log_info (command_id, flight->case_id, "scheduler: a deferred notification decision was made; "
                      "sending the %zu still pending", scheduler_db_count (self->db));
        self->open = 1;
    }
    else {
        json_t *body = env.body && env.body_size ? json_loadb (env.body, env.body_size, 0, NULL) : NULL;
        int status = (int) json_integer_value (json_object_get (body, "status"));
        const char *error = json_string_value (json_object_get (body, "error"));
        if (status == 503) {
            self->unavailable++;
            if (self->open)
                log_info (command_id, flight->case_id, "scheduler: notification rules still unavailable; "
                          "one probe every %lld ms", (long long) self->retry_ms);
            self->open = 0;
            self->next_probe_ms = now + self->retry_ms;
        }
        else {
            /* 409 means it was made already (its resolution is in the log, which will
             * drop it here); anything else would fail the same way again soon. */
            log_emit (status == 409 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, command_id, flight->case_id,
                      "scheduler: deferral %s answered %s %d %s; asked again in %d s", flight->deferral_id,
                      env.type, status, error ? error : "", S_HOLD_BACK_MS / 1000);
            s_hold_back (self, flight->deferral_id, now);
        }
        json_decref (body);
    }
    zhashx_delete (self->inflight, command_id);
    self->dirty = 1;
    zmsg_destroy (&msg);
}

/* Commands without a reply in time are forgotten: they are sent again (same id). */
static void
s_expire (self_t *self, int64_t now)
{
    zlistx_t *late = NULL;
    for (s_flight_t *flight = (s_flight_t *) zhashx_first (self->inflight); flight;
         flight = (s_flight_t *) zhashx_next (self->inflight))
        if (now - flight->sent_ms >= self->request_ms) {
            if (!late && !(late = zlistx_new ()))
                return;
            zlistx_add_end (late, (void *) zhashx_cursor (self->inflight));
        }
    if (!late)
        return;
    for (const char *key = (const char *) zlistx_first (late); key; key = (const char *) zlistx_next (late)) {
        log_warn (key, NULL, "scheduler: no reply within %lld ms; will send again", (long long) self->request_ms);
        char copy [ENVELOPE_ID_MAX];
        snprintf (copy, sizeof copy, "%s", key);
        zhashx_delete (self->inflight, copy);
    }
    zlistx_destroy (&late);
    self->dirty = 1;
}

/* Exports where the scheduler is, once a second (the pending count is a query):
 * deferred decisions pending and in flight, checkpoint, and the commands sent,
 * resolved, and answered "unavailable" since the last time. */
static void
s_metrics_tick (self_t *self, int64_t now)
{
    metrics_t *m = metrics_process ();
    if (!m || now < self->metrics_at_ms)
        return;
    self->metrics_at_ms = now + 1000;
    metric_set (metrics_gauge (m, "dossier_scheduler_deferrals_pending",
                               "Deferred notification decisions not yet made.", NULL),
                (double) scheduler_db_count (self->db));
    metric_set (metrics_gauge (m, "dossier_scheduler_deferrals_in_flight",
                               "cmd.resolve_notifications sent and not yet answered.", NULL),
                (double) zhashx_size (self->inflight));
    metric_set (metrics_gauge (m, "dossier_scheduler_checkpoint_position",
                               "The scheduler's checkpoint (log position).", NULL),
                (double) scheduler_db_checkpoint (self->db));
    const uint64_t now_counts [3] = { self->sent, self->resolved, self->unavailable };
    static const char *outcomes [3] = { "outcome=\"sent\"", "outcome=\"resolved\"", "outcome=\"unavailable\"" };
    for (int i = 0; i < 3; i++) {
        metric_add (metrics_counter (m, "dossier_scheduler_resolutions_total",
                                     "cmd.resolve_notifications sent, and answers: resolved, or rules still unavailable.",
                                     outcomes [i]), (double) (now_counts [i] - self->reported [i]));
        self->reported [i] = now_counts [i];
    }
}

/* ---- life cycle --------------------------------------------------------------------- */

static void
s_self_destroy (self_t **self_p)
{
    if (self_p && *self_p) {
        self_t *self = *self_p;
        subscription_destroy (&self->sub);
        zsock_destroy (&self->broker);
        zhashx_destroy (&self->inflight);
        zhashx_destroy (&self->held_back);
        scheduler_db_close (&self->db);
        free (self->db_path);
        free (self->store_ep);
        free (self->pub_ep);
        free (self->broker_ep);
        free (self);
        *self_p = NULL;
    }
}

static self_t *
s_self_new (config_t *config, zsock_t *pipe)
{
    self_t *self = calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    self->config = config;
    self->pipe = pipe;
    heap_trim_init (&self->trim, HEAP_TRIM_QUIET_MS);
    self->retry_ms = config_get_long (config, "scheduler_retry_ms", S_RETRY_MS);
    if (self->retry_ms < 10 || self->retry_ms > 3600000)
        self->retry_ms = S_RETRY_MS;
    self->request_ms = config_get_long (config, "scheduler_request_timeout_ms", S_REQUEST_MS);
    if (self->request_ms < 100 || self->request_ms > 3600000)
        self->request_ms = S_REQUEST_MS;
    long max_inflight = config_get_long (config, "scheduler_max_inflight", S_MAX_INFLIGHT);
    self->max_inflight = max_inflight >= 1 && max_inflight <= 10000 ? (size_t) max_inflight : S_MAX_INFLIGHT;
    self->open = 1;
    self->db_path = config_data_path (config, "scheduler.db");
    self->store_ep = endpoints_get (config, "store");
    self->pub_ep = endpoints_get (config, "store_pub");
    self->broker_ep = endpoints_get (config, "broker_front");
    if (!self->db_path || !self->store_ep || !self->pub_ep || !self->broker_ep) {
        log_error (NULL, NULL, "scheduler: no usable endpoints or paths (ipc path too long?)");
        goto fail;
    }
    self->db = scheduler_db_open (self->db_path);
    if (!self->db)
        goto fail;
    self->inflight = zhashx_new ();
    self->held_back = zhashx_new ();
    self->broker = zsock_new (ZMQ_DEALER);
    if (!self->inflight || !self->held_back || !self->broker)
        goto fail;
    zhashx_set_destructor (self->inflight, s_free_item);
    zhashx_set_destructor (self->held_back, s_free_item);
    zsock_set_sndtimeo (self->broker, 0);
    zsock_set_linger (self->broker, 0);
    if (zsock_connect (self->broker, "%s", self->broker_ep) != 0) {
        log_error (NULL, NULL, "scheduler: cannot connect to the broker at %s", self->broker_ep);
        goto fail;
    }
    self->sub = subscription_new (self->store_ep, self->pub_ep, scheduler_db_checkpoint (self->db) + 1);
    if (!self->sub)
        goto fail;
    subscription_set_linger (self->sub, S_LINGER_MS);
    self->dirty = 1;
    return self;
fail:
    s_self_destroy (&self);
    return NULL;
}

/* Stores the checkpoint S_CHECKPOINT_MS after it first moved in memory only. */
static void
s_checkpoint_tick (self_t *self, int64_t now)
{
    if (!scheduler_db_dirty (self->db))
        self->sync_at_ms = 0;
    else
    if (!self->sync_at_ms)
        self->sync_at_ms = now + S_CHECKPOINT_MS;
    else
    if (now >= self->sync_at_ms)
        self->sync_at_ms = scheduler_db_sync (self->db) == 0 ? 0 : now + S_CHECKPOINT_MS;
}

static int
s_timeout (self_t *self, int64_t now)
{
    int timeout = subscription_timeout (self->sub);
    if (self->dirty)
        return 0;
    if (self->sync_at_ms) {
        int64_t sync = self->sync_at_ms - now;
        if (sync < timeout)
            timeout = sync < 0 ? 0 : (int) sync;
    }
    int trim = heap_trim_tick (&self->trim, now);
    if (trim >= 0 && trim < timeout)
        timeout = trim;
    int64_t due = self->next_dispatch_ms - now;
    if (due < 0)
        due = 0;
    return due < timeout ? (int) due : timeout;
}

static void
s_poll_once (self_t *self)
{
    zmq_pollitem_t items [4];
    int n = 0, pipe_at = -1;
    if (self->pipe) {
        pipe_at = n;
        items [n++] = (zmq_pollitem_t) { zsock_resolve (self->pipe), 0, ZMQ_POLLIN, 0 };
    }
    int store_at = n;
    items [n++] = (zmq_pollitem_t) { zsock_resolve (subscription_store_sock (self->sub)), 0, ZMQ_POLLIN, 0 };
    int pub_at = -1;
    if (subscription_live_due (self->sub)) {
        pub_at = n;
        items [n++] = (zmq_pollitem_t) { zsock_resolve (subscription_pub_sock (self->sub)), 0, ZMQ_POLLIN, 0 };
    }
    int broker_at = n;
    items [n++] = (zmq_pollitem_t) { zsock_resolve (self->broker), 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (items, n, s_timeout (self, zclock_mono ())) < 0) {
        if (zmq_errno () == ETERM)
            self->stopping = 1;
        return;                 /* EINTR: the loop looks at zsys_interrupted */
    }
    if (pipe_at >= 0 && (items [pipe_at].revents & ZMQ_POLLIN)) {
        char *command = zstr_recv (self->pipe);
        if (!command || strcmp (command, "$TERM") == 0)
            self->stopping = 1;
        zstr_free (&command);
    }
    if (items [store_at].revents & ZMQ_POLLIN)
        subscription_handle (self->sub, subscription_store_sock (self->sub), s_on_events, self);
    if (pub_at >= 0 && (items [pub_at].revents & ZMQ_POLLIN))
        subscription_handle (self->sub, subscription_pub_sock (self->sub), s_on_events, self);
    if (items [broker_at].revents & ZMQ_POLLIN)
        for (int i = 0; i < 256 && (zsock_events (self->broker) & ZMQ_POLLIN); i++)
            s_handle_broker (self);
}

int
scheduler_run (config_t *config, zsock_t *pipe)
{
    self_t *self = s_self_new (config, pipe);
    if (!self) {
        if (pipe)
            zsock_signal (pipe, 1);
        return -1;
    }
    log_info (NULL, NULL, "scheduler: ready at position %lld, %zu deferred notification decision(s) pending",
              (long long) scheduler_db_checkpoint (self->db), scheduler_db_count (self->db));
    ready_signal ();
    if (pipe)
        zsock_signal (pipe, 0);
    while (!self->stopping && !zsys_interrupted) {
        health_beat ();
        s_poll_once (self);
        subscription_tick (self->sub);
        int64_t now = zclock_mono ();
        s_expire (self, now);
        if (self->dirty || now >= self->next_dispatch_ms)
            s_dispatch (self, now);
        s_metrics_tick (self, now);
        s_checkpoint_tick (self, now);
    }
    scheduler_db_sync (self->db);
    log_info (NULL, NULL, "scheduler: stopping at position %lld: %llu sent, %llu resolved, %llu unavailable, "
              "%zu pending", (long long) scheduler_db_checkpoint (self->db), (unsigned long long) self->sent,
              (unsigned long long) self->resolved, (unsigned long long) self->unavailable,
              scheduler_db_count (self->db));
    s_self_destroy (&self);
    return 0;
}

void
scheduler_actor (zsock_t *pipe, void *args)
{
    scheduler_run ((config_t *) args, pipe);
}
