/* broker — the command router actor. Clients' commands go to the handler their
 * case hashes to (or the one already busy with that case), replies come back the
 * same way, and a handler that falls silent has its unanswered commands re-sent. */
#include "broker.h"
#include "health.h"
#include "broker_command.h"
#include "broker_inflight.h"
#include "broker_metrics.h"
#include "broker_pending.h"
#include "broker_workers.h"
#include "ids.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Messages taken from one socket before looking at the others again. */
#define S_BURST 256

struct _broker_t {
    broker_options_t options;
    zsock_t *front;                 /* ROUTER: clients */
    zsock_t *back;                  /* ROUTER: handlers */
    broker_workers_t *workers;
    broker_inflight_t *inflight;
    broker_pending_t *pending;
    int64_t tick_ms;                /* how often timeouts are checked */
    int64_t last_tick_ms;
};

static const char *s_body_no_handler =
    "{\"status\":503,\"error\":\"unavailable\",\"detail\":\"no handler available\"}";
static const char *s_body_overloaded =
    "{\"status\":503,\"error\":\"unavailable\",\"detail\":\"too many commands in flight\"}";
static const char *s_body_no_id =
    "{\"status\":422,\"error\":\"validation.id\",\"detail\":\"a command needs an id (the envelope id)\"}";

void
broker_options_default (broker_options_t *options)
{
    options->worker_timeout_ms = 3000;
    options->queue_timeout_ms = 10000;
    options->queue_max = 100000;
    options->inflight_timeout_ms = 60000;
    options->inflight_max = 100000;
}

static int64_t
s_now_ms (void)
{
    return zclock_mono ();
}

broker_t *
broker_new (const char *front_endpoint, const char *back_endpoint, const broker_options_t *options)
{
    broker_t *self = calloc (1, sizeof (broker_t));
    if (!self)
        return NULL;
    if (options)
        self->options = *options;
    else
        broker_options_default (&self->options);
    self->tick_ms = self->options.worker_timeout_ms / 4;
    if (self->tick_ms < 10)
        self->tick_ms = 10;
    if (self->tick_ms > 250)
        self->tick_ms = 250;
    self->workers = broker_workers_new ();
    self->inflight = broker_inflight_new ();
    self->pending = broker_pending_new (self->options.queue_max);
    self->front = zsock_new (ZMQ_ROUTER);
    self->back = zsock_new (ZMQ_ROUTER);
    if (!self->workers || !self->inflight || !self->pending || !self->front || !self->back)
        goto fail;
    zsock_set_sndhwm (self->front, 100000);
    zsock_set_rcvhwm (self->front, 100000);
    zsock_set_sndhwm (self->back, 100000);
    zsock_set_rcvhwm (self->back, 100000);
    /* A handler gone from the socket must fail the send (EHOSTUNREACH) so its
     * command is re-dispatched now, not silently dropped. */
    zsock_set_router_mandatory (self->back, 1);
    /* A handler restarted under the same identity replaces its old connection. */
    zsock_set_router_handover (self->back, 1);
    zsock_set_linger (self->front, 1000);
    if (!front_endpoint || zsock_bind (self->front, "%s", front_endpoint) == -1) {
        log_error (NULL, NULL, "cannot bind broker frontend at %s: %s", front_endpoint ? front_endpoint : "(none)",
                   front_endpoint ? zmq_strerror (zmq_errno ()) : "no endpoint");
        goto fail;
    }
    if (!back_endpoint || zsock_bind (self->back, "%s", back_endpoint) == -1) {
        log_error (NULL, NULL, "cannot bind broker backend at %s: %s", back_endpoint ? back_endpoint : "(none)",
                   back_endpoint ? zmq_strerror (zmq_errno ()) : "no endpoint");
        goto fail;
    }
    self->last_tick_ms = s_now_ms ();
    return self;
fail:
    broker_destroy (&self);
    return NULL;
}

void
broker_destroy (broker_t **self_p)
{
    if (self_p && *self_p) {
        broker_t *self = *self_p;
        zsock_destroy (&self->front);
        zsock_destroy (&self->back);
        broker_workers_destroy (&self->workers);
        broker_inflight_destroy (&self->inflight);
        broker_pending_destroy (&self->pending);
        free (self);
        *self_p = NULL;
    }
}

/* Logs a dropped message with a printable sample of its last frame. */
static void
s_log_drop (zmsg_t *msg, const char *side, const char *why)
{
    zframe_t *frame = zmsg_last (msg);
    char sample [49];
    size_t size = frame ? zframe_size (frame) : 0;
    size_t n = size < sizeof sample - 1 ? size : sizeof sample - 1;
    const byte *data = frame ? zframe_data (frame) : NULL;
    for (size_t i = 0; i < n; i++)
        sample [i] = isprint (data [i]) ? (char) data [i] : '.';
    sample [n] = 0;
    log_warn (NULL, NULL, "dropped %s message (%s): %zu frames, last %zu bytes, starts '%s'",
              side, why, zmsg_size (msg), size, sample);
}

/* Sends [client][envelope type/body] on the frontend, answering cause. */
static void
s_answer (broker_t *self, const broker_id_t *client, const char *type, const char *cause,
          const char *correlation_id, const char *key, const char *body)
{
    char id [IDS_UUID_LEN];
    ids_uuid4 (id);
    envelope_t env;
    envelope_init (&env, type, id);
    envelope_set (env.causation_id, sizeof env.causation_id, cause);
    envelope_set (env.correlation_id, sizeof env.correlation_id, correlation_id);
    envelope_set (env.key, sizeof env.key, key);
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    zframe_t *route = zframe_new (client->data, client->size);
    /* The frontend ROUTER drops what it cannot route (client gone): nothing to do. */
    envelope_send (zsock_resolve (self->front), route, &env);
    broker_metrics_out ("front", type);
    zframe_destroy (&route);
}

static void
s_answer_command (broker_t *self, const broker_command_t *command, const char *body)
{
    s_answer (self, &command->client, "reply.error", command->id, command->correlation_id,
              command->key, body);
}

/* Sends [worker][client][envelope] on the backend without blocking.
 * Returns 0, or -1 with errno EHOSTUNREACH (handler gone) or EAGAIN (its queue is full). */
static int
s_send_to_worker (broker_t *self, const broker_command_t *command)
{
    zframe_t *worker = zframe_new (command->worker.data, command->worker.size);
    zframe_t *client = zframe_new (command->client.data, command->client.size);
    int rc = -1;
    /* ZeroMQ delivers all parts or none: only the first part can fail. */
    if (zframe_send (&worker, self->back, ZFRAME_MORE | ZFRAME_DONTWAIT | ZFRAME_REUSE) == 0
    &&  zframe_send (&client, self->back, ZFRAME_MORE | ZFRAME_REUSE) == 0) {
        zframe_t *frame = command->frame;
        rc = zframe_send (&frame, self->back, ZFRAME_REUSE);
    }
    if (rc == 0)
        broker_metrics_out ("back", command->type);
    int saved = zmq_errno ();
    zframe_destroy (&worker);
    zframe_destroy (&client);
    errno = saved;
    return rc;
}

static void s_worker_lost (broker_t *self, const broker_id_t *worker, const char *why);

/* Sends the command to its case's handler, or queues it when none is alive;
 * takes *command_p. A failed queueing is answered 503 at once. */
static void
s_route (broker_t *self, broker_command_t **command_p)
{
    broker_command_t *command = *command_p;
    int64_t now = s_now_ms ();
    broker_id_t worker;
    const broker_id_t *pinned = broker_inflight_pinned (self->inflight, command->partition);
    if (pinned && broker_workers_contains (self->workers, pinned))
        worker = *pinned;
    else
    if (broker_workers_choose (self->workers, command->partition, &worker)) {
        if (broker_pending_push (self->pending, command_p, now)) {
            log_warn (command->correlation_id, command->key, "no handler and queue full: %s refused", command->id);
            broker_metrics_error (BROKER_METRICS_NO_HANDLER);
            s_answer_command (self, command, s_body_no_handler);
            broker_command_destroy (command_p);
        }
        return;
    }
    command->worker = worker;
    broker_command_t *sent = broker_inflight_add (self->inflight, command_p, now);
    if (!sent) {
        log_error (NULL, NULL, "out of memory: a command was dropped; its client will retry");
        return;
    }
    if (s_send_to_worker (self, sent)) {
        /* sent may be an earlier copy (a client retry): its handler is the one that failed. */
        broker_id_t failed = sent->worker;
        if (errno == EHOSTUNREACH)
            /* Re-dispatches this command too, with the rest of that handler's. */
            s_worker_lost (self, &failed, "unreachable");
        else {
            char hex [65];
            broker_id_hex (&failed, hex, sizeof hex);
            log_warn (sent->correlation_id, sent->key, "handler %s not accepting: %s waits for its death or expiry",
                      hex, sent->id);
        }
    }
}

/* Sends a handler's unanswered commands again, in the order they were first
 * dispatched (so a case's commands keep their order). When forget is set the
 * handler is dead and is removed first, so they go to the others. */
static void
s_redispatch (broker_t *self, const broker_id_t *worker_in, const char *why, int forget)
{
    broker_id_t worker = *worker_in;     /* worker_in may point into the registry */
    if (forget)
        broker_workers_remove (self->workers, &worker);
    broker_command_t **commands = NULL;
    long count = broker_inflight_take_worker (self->inflight, &worker, &commands);
    char hex [65];
    broker_id_hex (&worker, hex, sizeof hex);
    if (count < 0) {
        log_error (NULL, NULL, "handler %s %s, out of memory: its commands will expire", hex, why);
        return;
    }
    log_emit (count ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, NULL, NULL,
              "handler %s %s: re-dispatching %ld commands, %zu handlers live",
              hex, why, count, broker_workers_size (self->workers));
    broker_metrics_redispatched (count);
    for (long i = 0; i < count; i++)
        s_route (self, &commands [i]);
    free (commands);
}

/* A dead handler: forget it, its commands go to the others. */
static void
s_worker_lost (broker_t *self, const broker_id_t *worker, const char *why)
{
    s_redispatch (self, worker, why, 1);
}

/* Sends queued commands now that a handler is alive. */
static void
s_flush_pending (broker_t *self)
{
    broker_command_t *command;
    while (broker_workers_size (self->workers) > 0
       &&  (command = broker_pending_pop (self->pending)))
        s_route (self, &command);
}

static void
s_handle_front (broker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->front);
    if (!msg)
        return;
    if (zmsg_size (msg) != 2) {
        broker_metrics_error (BROKER_METRICS_MALFORMED);
        s_log_drop (msg, "client", "expected [envelope]");
        zmsg_destroy (&msg);
        return;
    }
    zframe_t *client_frame = zmsg_pop (msg);
    zframe_t *frame = zmsg_pop (msg);
    broker_id_t client;
    envelope_t env;
    if (broker_id_from_frame (&client, client_frame)) {
        broker_metrics_error (BROKER_METRICS_MALFORMED);
        log_warn (NULL, NULL, "dropped client message: bad routing identity");
        goto done;
    }
    if (envelope_decode (zframe_data (frame), zframe_size (frame), &env)) {
        broker_metrics_error (BROKER_METRICS_MALFORMED);
        zmsg_append (msg, &frame);
        s_log_drop (msg, "client", "envelope");
        goto done;
    }
    broker_metrics_in ("front", env.type);
    if (streq (env.type, "ctl.ping"))
        s_answer (self, &client, "ctl.pong", env.id, env.correlation_id, env.key, NULL);
    else
    if (strncmp (env.type, "cmd.", 4) == 0) {
        if (!env.id [0]) {
            log_warn (env.correlation_id, env.key, "%s without a command id refused", env.type);
            broker_metrics_error (BROKER_METRICS_NO_ID);
            s_answer (self, &client, "reply.error", env.id, env.correlation_id, env.key, s_body_no_id);
        }
        else
        if (broker_inflight_size (self->inflight) >= self->options.inflight_max) {
            log_warn (env.correlation_id, env.key, "too many commands in flight: %s refused", env.id);
            broker_metrics_error (BROKER_METRICS_OVERLOADED);
            s_answer (self, &client, "reply.error", env.id, env.correlation_id, env.key, s_body_overloaded);
        }
        else {
            broker_command_t *command = broker_command_new (&client, &env, &frame);
            if (command)
                s_route (self, &command);
        }
    }
    else {
        broker_metrics_error (BROKER_METRICS_UNEXPECTED);
        log_warn (env.correlation_id, env.key, "dropped client message of type '%s'", env.type);
    }
done:
    zframe_destroy (&client_frame);
    zframe_destroy (&frame);
    zmsg_destroy (&msg);
}

static void
s_handle_back (broker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->back);
    if (!msg)
        return;
    size_t frames = zmsg_size (msg);
    broker_id_t worker;
    if (frames < 2 || broker_id_from_frame (&worker, zmsg_first (msg))) {
        broker_metrics_error (BROKER_METRICS_MALFORMED);
        s_log_drop (msg, "handler", "no routing identity");
        zmsg_destroy (&msg);
        return;
    }
    /* Any message is a sign of life; an unknown identity is a new handler. */
    int is_new = broker_workers_touch (self->workers, &worker, s_now_ms ());
    if (is_new == 1) {
        char hex [65];
        broker_id_hex (&worker, hex, sizeof hex);
        log_info (NULL, NULL, "handler %s registered, %zu handlers", hex, broker_workers_size (self->workers));
    }
    else
    if (is_new < 0)
        log_warn (NULL, NULL, "handler registry full: a new handler is ignored");
    zframe_t *frame = zmsg_last (msg);
    envelope_t env;
    if (frames > 3 || envelope_decode (zframe_data (frame), zframe_size (frame), &env)) {
        broker_metrics_error (BROKER_METRICS_MALFORMED);
        s_log_drop (msg, "handler", frames > 3 ? "expected [client][envelope] or [envelope]" : "envelope");
    }
    else
    if (frames == 2) {
        broker_metrics_in ("back", env.type);
        /* ctl.ready from a handler we already knew means it restarted under the
         * same identity: what it had in flight died with the old process. */
        if (streq (env.type, "ctl.ready")) {
            if (is_new == 0)
                s_redispatch (self, &worker, "restarted", 0);
        }
        else
        if (!streq (env.type, "ctl.heartbeat")) {
            broker_metrics_error (BROKER_METRICS_UNEXPECTED);
            log_warn (env.correlation_id, env.key, "dropped handler message of type '%s'", env.type);
        }
    }
    else {
        broker_id_t client;
        zmsg_first (msg);
        zframe_t *client_frame = zmsg_next (msg);
        broker_metrics_in ("back", env.type);
        if (strncmp (env.type, "reply.", 6) != 0 || broker_id_from_frame (&client, client_frame)) {
            broker_metrics_error (BROKER_METRICS_UNEXPECTED);
            s_log_drop (msg, "handler", "expected a reply.* for a client");
        }
        else {
            zframe_send (&client_frame, self->front, ZFRAME_MORE | ZFRAME_REUSE);
            zframe_send (&frame, self->front, ZFRAME_REUSE);
            broker_metrics_out ("front", env.type);
            /* A second reply (after a re-dispatch) is forwarded too: clients ignore extras. */
            broker_inflight_complete (self->inflight, &client, env.causation_id);
        }
    }
    zmsg_destroy (&msg);
    if (broker_pending_size (self->pending) > 0)
        s_flush_pending (self);
}

/* Timeouts: silent handlers, commands waiting too long for any handler, and
 * commands a live handler never answered. */
static void
s_tick (broker_t *self)
{
    int64_t now = s_now_ms ();
    self->last_tick_ms = now;
    broker_id_t worker;
    while (broker_workers_find_silent (self->workers, now, self->options.worker_timeout_ms, &worker))
        s_worker_lost (self, &worker, "silent");
    broker_command_t *command;
    while ((command = broker_pending_take_expired (self->pending, now, self->options.queue_timeout_ms))) {
        log_warn (command->correlation_id, command->key, "no handler for %s: answered 503", command->id);
        broker_metrics_error (BROKER_METRICS_NO_HANDLER);
        s_answer_command (self, command, s_body_no_handler);
        broker_command_destroy (&command);
    }
    while ((command = broker_inflight_take_expired (self->inflight, now, self->options.inflight_timeout_ms))) {
        log_warn (command->correlation_id, command->key, "%s unanswered for %" PRId64 " ms: forgotten",
                  command->id, now - command->since_ms);
        broker_metrics_error (BROKER_METRICS_EXPIRED);
        broker_command_destroy (&command);
    }
    if (broker_pending_size (self->pending) > 0)
        s_flush_pending (self);
    broker_metrics_holding (broker_inflight_size (self->inflight), broker_pending_size (self->pending),
                            broker_workers_size (self->workers));
}

int
broker_run (broker_t *self, zsock_t *pipe)
{
    zmq_pollitem_t items [] = {
        { zsock_resolve (self->back), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->front), 0, ZMQ_POLLIN, 0 },
        { pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0 },
    };
    int n_items = pipe ? 3 : 2;
    log_info (NULL, NULL, "broker routing");
    while (!zsys_interrupted) {
        health_beat ();
        int rc = zmq_poll (items, n_items, (long) self->tick_ms);
        if (rc == -1) {
            if (zmq_errno () == EINTR)
                continue;       /* a signal: the loop condition decides */
            log_error (NULL, NULL, "poll failed: %s", zmq_strerror (zmq_errno ()));
            break;
        }
        /* Handlers first (replies free capacity), then clients, each in bursts so
         * neither side can starve the other. */
        if (items [0].revents & ZMQ_POLLIN)
            for (int i = 0; i < S_BURST && (zsock_events (self->back) & ZMQ_POLLIN); i++)
                s_handle_back (self);
        if (items [1].revents & ZMQ_POLLIN)
            for (int i = 0; i < S_BURST && (zsock_events (self->front) & ZMQ_POLLIN); i++)
                s_handle_front (self);
        if (n_items == 3 && (items [2].revents & ZMQ_POLLIN)) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        if (s_now_ms () - self->last_tick_ms >= self->tick_ms)
            s_tick (self);
    }
    log_info (NULL, NULL, "broker stopping: %zu in flight, %zu waiting",
              broker_inflight_size (self->inflight), broker_pending_size (self->pending));
    return 0;
}

void
broker_actor (zsock_t *pipe, void *args)
{
    broker_actor_args_t *a = (broker_actor_args_t *) args;
    broker_t *self = broker_new (a->front_endpoint, a->back_endpoint, &a->options);
    zsock_signal (pipe, 0);
    if (!self)
        return;
    broker_run (self, pipe);
    broker_destroy (&self);
}
