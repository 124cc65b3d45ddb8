/* ingest_server — sources feed records to s_submit; s_submit turns each into a
 * command via ingest_record and tracks it in ingest_pending; s_answer routes the
 * outcome back to the record's source: the CLI socket (s_handle_cli) or the Kafka
 * consumer (s_handle_kafka, ingest_kafka), whose wake-up fd sits in the same poll. */
#include "ingest_server.h"
#include "health.h"
#include "ingest_dlt.h"
#include "ingest_kafka.h"
#include "ingest_metrics.h"
#include "ingest_pending.h"
#include "ingest_record.h"

#include "command_id.h"
#include "endpoints.h"
#include "envelope.h"
#include "ids.h"
#include "kafka_config.h"
#include "log.h"
#include "traceparent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_BATCH 1000               /* messages handled per socket per wake-up */

struct _ingest_server_t {
    config_t *config;                   /* borrowed */
    zsock_t *cli;                       /* ROUTER: CLI clients */
    zsock_t *broker;                    /* DEALER: broker frontend */
    ingest_kafka_t *kafka;              /* the Kafka source, when kafka_brokers is set */
    ingest_pending_t *pending;
    size_t body_limit;
    int64_t timeout_ms;
    size_t max_pending;
};

void
ingest_server_destroy (ingest_server_t **self_p)
{
    if (self_p && *self_p) {
        ingest_server_t *self = *self_p;
        ingest_kafka_destroy (&self->kafka);
        zsock_destroy (&self->cli);
        zsock_destroy (&self->broker);
        ingest_pending_destroy (&self->pending);
        free (self);
        *self_p = NULL;
    }
}

ingest_server_t *
ingest_server_new (config_t *config)
{
    ingest_server_t *self = calloc (1, sizeof (ingest_server_t));
    if (!self)
        return NULL;
    char *cli_endpoint = NULL, *broker_endpoint = NULL;
    self->config = config;
    long body_limit = config_get_long (config, "body_limit", 1048576);
    self->body_limit = body_limit > 0 ? (size_t) body_limit : 1048576;
    long timeout = config_get_long (config, "ingest_timeout_ms", 15000);
    self->timeout_ms = timeout > 0 ? timeout : 15000;
    long max_pending = config_get_long (config, "ingest_max_pending", 100000);
    self->max_pending = max_pending > 0 ? (size_t) max_pending : 100000;
    self->pending = ingest_pending_new (self->max_pending);
    if (!self->pending)
        goto fail;

    cli_endpoint = endpoints_get_bind (config, "ingest");     /* bound here (instance 0) */
    broker_endpoint = endpoints_get (config, "broker_front");
    if (!cli_endpoint || !broker_endpoint) {
        log_error (NULL, NULL, "ingest: endpoint path too long; shorten data_dir or set endpoint_*");
        goto fail;
    }
    self->cli = zsock_new (ZMQ_ROUTER);
    self->broker = zsock_new (ZMQ_DEALER);
    if (!self->cli || !self->broker)
        goto fail;
    /* The bounds are the pending limit and the CLI's window, not the HWM: a full
     * HWM would silently drop answers on the ROUTER. */
    zsock_set_sndhwm (self->cli, 0);
    zsock_set_rcvhwm (self->cli, 0);
    zsock_set_sndhwm (self->broker, 0);
    zsock_set_rcvhwm (self->broker, 0);
    /* One endpoint, one owner: a second instance binding the same ipc path would
     * silently take the socket from the first. Extra instances only make sense for
     * the Kafka source (later), so they leave the CLI socket to instance 0. */
    const char *instance = getenv ("DOSSIER_INSTANCE");
    if (instance && atoi (instance) > 0)
        log_warn (NULL, NULL, "ingest: instance %s leaves %s to instance 0", instance, cli_endpoint);
    else
    if (zsock_bind (self->cli, "%s", cli_endpoint) == -1) {
        log_error (NULL, NULL, "ingest: cannot bind %s: %s", cli_endpoint, zmq_strerror (zmq_errno ()));
        goto fail;
    }
    if (zsock_connect (self->broker, "%s", broker_endpoint) == -1) {
        log_error (NULL, NULL, "ingest: cannot connect %s: %s", broker_endpoint, zmq_strerror (zmq_errno ()));
        goto fail;
    }
    /* Every instance joins the consumer group: the partitions are shared out. */
    if (kafka_config_enabled (config)) {
        self->kafka = ingest_kafka_new (config);
        if (!self->kafka)
            goto fail;
    }
    log_info (NULL, NULL, "ingest: records on %s, commands to %s", cli_endpoint, broker_endpoint);
    free (cli_endpoint);
    free (broker_endpoint);
    return self;
fail:
    free (cli_endpoint);
    free (broker_endpoint);
    ingest_server_destroy (&self);
    return NULL;
}

/* Sends the outcome to whoever gave us the record. Takes nothing. */
static void
s_answer (ingest_server_t *self, const ingest_waiter_t *waiter, const char *result)
{
    if (waiter->source == INGEST_SOURCE_KAFKA) {
        /* The line is the record's ticket. A NULL result (out of memory) is a
         * transient failure there: the record is retried, never lost. */
        if (self->kafka)
            ingest_kafka_result (self->kafka, (uint64_t) waiter->line, waiter->command_id, result);
        return;
    }
    if (!result) {
        log_error (waiter->command_id, NULL, "ingest: out of memory building a result for line %ld", waiter->line);
        return;
    }
    if (waiter->source == INGEST_SOURCE_CLI) {
        envelope_t env;
        char id [IDS_UUID_LEN];
        ids_uuid4 (id);
        envelope_init (&env, "ingest.result", id);
        envelope_set (env.causation_id, sizeof env.causation_id, waiter->request_id);
        envelope_set (env.correlation_id, sizeof env.correlation_id, waiter->command_id);
        envelope_set (env.key, sizeof env.key, waiter->case_id);
        env.body = result;
        env.body_size = strlen (result);
        if (envelope_send (self->cli, waiter->route, &env) != 0)
            log_warn (waiter->command_id, NULL, "ingest: cannot answer line %ld", waiter->line);
    }
}

static int
s_send_command (ingest_server_t *self, const char *command_id, const char *case_id,
                const char *traceparent, const char *raw, size_t raw_size)
{
    envelope_t env;
    envelope_init (&env, "cmd.create_case", command_id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, command_id);
    envelope_set (env.key, sizeof env.key, case_id);
    envelope_set (env.traceparent, sizeof env.traceparent, traceparent);
    env.body = raw;
    env.body_size = raw_size;
    return envelope_send (self->broker, NULL, &env);
}

/* Sends the next record queued on command_id, if any (after its predecessor's end). */
static void
s_promote (ingest_server_t *self, const char *command_id)
{
    ingest_waiter_t *next = ingest_pending_promote (self->pending, command_id, zclock_mono ());
    if (next && s_send_command (self, next->command_id, next->case_id, next->traceparent,
                                next->raw, next->raw_size) != 0)
        log_warn (command_id, next->case_id, "ingest: cannot send a command to the broker; it will time out");
}

/* Answers a record rejected before it became a command. */
static void
s_reject (ingest_server_t *self, int source, zframe_t *route, const char *request_id, long line,
          int status, const char *error, const char *detail)
{
    log_debug (request_id, NULL, "ingest: %s rejected: %d %s", request_id, status, error);
    ingest_metrics_result (source, status, error);
    ingest_waiter_t stub = { .source = source, .route = route, .line = line };
    envelope_set (stub.request_id, sizeof stub.request_id, request_id);
    char *result = ingest_record_result_error (line, status, error, detail);
    s_answer (self, &stub, result);
    free (result);
}

/* The work of s_submit (below), which puts the record's trace on the lines logged meanwhile. */
static void
s_submit_traced (ingest_server_t *self, const char *raw, size_t raw_size, int source, zframe_t *route,
                 const char *request_id, long line, const char *idempotency_key, size_t idempotency_key_size,
                 const char *traceparent)
{
    ingest_record_t record;
    if (ingest_record_parse (raw, raw_size, self->body_limit, &record) != 0) {
        s_reject (self, source, route, request_id, line, record.status, record.error, record.detail);
        return;
    }
    if (idempotency_key) {
        if (command_id_from_idempotency_key (idempotency_key, idempotency_key_size, record.command_id) != 0) {
            s_reject (self, source, route, request_id, line, 400, "invalid_idempotency_key",
                      "an idempotency key is 1 to 100 printable ASCII characters, without '\"'");
            return;
        }
        command_id_case_id (record.command_id, record.case_id);
    }
    ingest_waiter_t *waiter = ingest_waiter_new (record.command_id, record.case_id, source,
                                                 route, request_id, line);
    if (waiter)
        envelope_set (waiter->traceparent, sizeof waiter->traceparent, traceparent);
    int rc = waiter ? ingest_pending_add (self->pending, &waiter, raw, raw_size, zclock_mono ()) : -1;
    if (rc == 1) {
        if (s_send_command (self, record.command_id, record.case_id, traceparent, raw, raw_size) != 0)
            log_warn (record.command_id, record.case_id, "ingest: cannot send a command to the broker; it will time out");
        else
            log_debug (record.command_id, record.case_id, "ingest: %s sent as a command", request_id);
    }
    else
    if (rc == -1) {
        char detail [96];
        snprintf (detail, sizeof detail, "ingest has %zu commands in flight; retry later",
                  ingest_pending_size (self->pending));
        s_reject (self, source, route, request_id, line, 503, "unavailable", detail);
        ingest_waiter_destroy (&waiter);
    }
}

/* Any source: one raw record in (borrowed; route and key too). Answers at once if
 * the record is rejected or we are overloaded, else sends (or queues) its command.
 * idempotency_key (may be NULL) names the command instead of the record's natural
 * key, as the HTTP Idempotency-Key does. traceparent is ingest's span of the record,
 * carried by its command. */
static void
s_submit (ingest_server_t *self, const char *raw, size_t raw_size, int source, zframe_t *route,
          const char *request_id, long line, const char *idempotency_key, size_t idempotency_key_size,
          const char *traceparent)
{
    char trace_id [33];
    log_set_trace (traceparent_trace_id (traceparent, trace_id));     /* lines about this record */
    s_submit_traced (self, raw, raw_size, source, route, request_id, line, idempotency_key,
                     idempotency_key_size, traceparent);
    log_set_trace (NULL);
}

/* Source: the CLI socket. */
static void
s_handle_cli (ingest_server_t *self)
{
    zframe_t *routes [1];
    zmsg_t *msg = NULL;
    envelope_t env;
    int rc = envelope_recv (self->cli, 1, routes, &msg, &env);
    if (rc == -2)
        log_warn (NULL, NULL, "ingest: dropped a malformed message from a client");
    if (rc != 0)
        return;
    if (streq (env.type, "ingest.record")) {
        long line = 0;
        if (ingest_record_line_from_id (env.id, &line) != 0)
            log_debug (env.id, NULL, "ingest: record id is not line:<n>; answering as line 0");
        ingest_metrics_record (INGEST_SOURCE_CLI);
        /* A file's records start their trace here (or go on with one the client sent). */
        char traceparent [TRACEPARENT_LEN];
        traceparent_hop (env.traceparent, strlen (env.traceparent), traceparent);
        s_submit (self, env.body, env.body_size, INGEST_SOURCE_CLI, routes [0], env.id, line, NULL, 0,
                  traceparent);
    }
    else
        log_warn (env.correlation_id, NULL, "ingest: ignoring message type '%s' from a client", env.type);
    zmsg_destroy (&msg);
}

/* Counts a handler's answer; only an error's result is read again (for its class). */
static void
s_count_reply (int source, const char *type, const char *result)
{
    if (streq (type, "reply.ok")) {
        ingest_metrics_result (source, 200, NULL);
        return;
    }
    ingest_outcome_t outcome;
    if (result && ingest_dlt_classify (result, &outcome) == 0)
        ingest_metrics_result (source, outcome.status ? outcome.status : 500, outcome.error);
    else
        ingest_metrics_result (source, 500, "internal");
}

static void
s_handle_broker (ingest_server_t *self)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    int rc = envelope_recv (self->broker, 0, NULL, &msg, &env);
    if (rc == -2)
        log_warn (NULL, NULL, "ingest: dropped a malformed message from the broker");
    if (rc != 0)
        return;
    const char *command_id = env.causation_id [0] ? env.causation_id : env.correlation_id;
    if (streq (env.type, "reply.ok") || streq (env.type, "reply.error")) {
        ingest_waiter_t *waiter = ingest_pending_take (self->pending, command_id);
        if (waiter) {
            char *result = ingest_record_result_from_reply (waiter->line, env.type, env.body,
                                                            env.body_size, waiter->case_id);
            s_count_reply (waiter->source, env.type, result);
            s_answer (self, waiter, result);
            free (result);
            ingest_waiter_destroy (&waiter);
            s_promote (self, command_id);
        }
        else
            log_debug (command_id, NULL, "ingest: %s for no command in flight (late after a timeout?)", env.type);
    }
    else
        log_debug (command_id, NULL, "ingest: ignoring %s from the broker", env.type);
    zmsg_destroy (&msg);
}

static void
s_expire (ingest_server_t *self)
{
    int64_t now = zclock_mono ();
    ingest_waiter_t *waiter;
    while ((waiter = ingest_pending_expire (self->pending, now, self->timeout_ms))) {
        /* Kafka records are retried and their failures summed up by ingest_kafka:
         * one line each would flood the log during an outage. */
        log_emit (waiter->source == INGEST_SOURCE_KAFKA ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN,
                  waiter->command_id, waiter->case_id, "ingest: no reply within %lld ms for %s",
                  (long long) self->timeout_ms, waiter->request_id);
        char detail [96];
        snprintf (detail, sizeof detail, "no reply from a handler within %lld ms", (long long) self->timeout_ms);
        char *result = ingest_record_result_error (waiter->line, 503, "unavailable", detail);
        ingest_metrics_result (waiter->source, 503, "timeout");
        s_answer (self, waiter, result);
        free (result);
        char command_id [COMMAND_ID_MAX];
        memcpy (command_id, waiter->command_id, sizeof command_id);
        ingest_waiter_destroy (&waiter);
        s_promote (self, command_id);
    }
}

/* Source: Kafka. librdkafka's own work first (delivery reports, offsets, pauses),
 * then a batch of records, so acknowledgments never wait behind new input. */
static void
s_handle_kafka (ingest_server_t *self)
{
    ingest_kafka_service (self->kafka);
    ingest_kafka_record_t record;
    for (int i = 0; i < INGEST_BATCH && ingest_kafka_next (self->kafka, &record); i++)
        s_submit (self, record.value, record.value_size, INGEST_SOURCE_KAFKA, NULL, record.request_id,
                  (long) record.ticket, record.idempotency_key, record.idempotency_key_size,
                  record.traceparent);
}

int
ingest_server_run (ingest_server_t *self, zsock_t *pipe)
{
    /* zmq_poll rather than zpoller: the Kafka source is a plain fd. */
    zmq_pollitem_t items [4];
    int count = 0, pipe_at = -1;
    items [count++] = (zmq_pollitem_t) { zsock_resolve (self->broker), 0, ZMQ_POLLIN, 0 };
    items [count++] = (zmq_pollitem_t) { zsock_resolve (self->cli), 0, ZMQ_POLLIN, 0 };
    if (pipe) {
        pipe_at = count;
        items [count++] = (zmq_pollitem_t) { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 };
    }
    if (self->kafka)
        items [count++] = (zmq_pollitem_t) { NULL, ingest_kafka_fd (self->kafka), ZMQ_POLLIN, 0 };
    while (!zsys_interrupted) {
        health_beat ();
        int64_t wait = ingest_pending_next_expiry (self->pending, zclock_mono (), self->timeout_ms);
        if (wait < 0 || wait > 1000)
            wait = 1000;
        if (self->kafka) {
            int64_t kafka_wait = ingest_kafka_timeout (self->kafka);
            if (kafka_wait < wait)
                wait = kafka_wait;
        }
        if (zmq_poll (items, count, (long) wait) == -1) {
            if (errno == EINTR)
                continue;               /* a signal: the loop condition decides */
            break;                      /* the context is terminating */
        }
        if (pipe_at >= 0 && (items [pipe_at].revents & ZMQ_POLLIN))
            break;                      /* $TERM, or anything else: the owner wants us gone */
        /* Drain every source a batch at a time so none starves the others. */
        for (int i = 0; i < INGEST_BATCH && (zsock_events (self->broker) & ZMQ_POLLIN); i++)
            s_handle_broker (self);
        for (int i = 0; i < INGEST_BATCH && (zsock_events (self->cli) & ZMQ_POLLIN); i++)
            s_handle_cli (self);
        if (self->kafka)
            s_handle_kafka (self);
        s_expire (self);
        ingest_metrics_in_flight (ingest_pending_size (self->pending));
    }
    log_info (NULL, NULL, "ingest: stopping with %zu commands in flight", ingest_pending_size (self->pending));
    return 0;
}

void
ingest_server_actor (zsock_t *pipe, void *args)
{
    ingest_server_t *self = ingest_server_new ((config_t *) args);
    zsock_signal (pipe, self ? 0 : 1);
    if (self) {
        ingest_server_run (self, pipe);
        ingest_server_destroy (&self);
    }
}
