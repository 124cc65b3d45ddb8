/* ingest_server — sources feed records to s_submit; s_submit turns each into a
 * command via ingest_record and tracks it in ingest_pending; s_answer routes the
 * outcome back to the record's source. Only s_handle_cli and the CLI branch of
 * s_answer know about the CLI socket: a Kafka source plugs in beside them. */
#include "ingest_server.h"
#include "ingest_pending.h"
#include "ingest_record.h"

#include "endpoints.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define INGEST_BATCH 1000               /* messages handled per socket per wake-up */

struct _ingest_server_t {
    config_t *config;                   /* borrowed */
    zsock_t *cli;                       /* ROUTER: CLI clients */
    zsock_t *broker;                    /* DEALER: broker frontend */
    zpoller_t *poller;
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
        zpoller_destroy (&self->poller);
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

    cli_endpoint = endpoints_get (config, "ingest");
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
    self->poller = zpoller_new (self->cli, self->broker, NULL);
    if (!self->poller)
        goto fail;
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
                const char *raw, size_t raw_size)
{
    envelope_t env;
    envelope_init (&env, "cmd.create_case", command_id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, command_id);
    envelope_set (env.key, sizeof env.key, case_id);
    env.body = raw;
    env.body_size = raw_size;
    return envelope_send (self->broker, NULL, &env);
}

/* Sends the next record queued on command_id, if any (after its predecessor's end). */
static void
s_promote (ingest_server_t *self, const char *command_id)
{
    ingest_waiter_t *next = ingest_pending_promote (self->pending, command_id, zclock_mono ());
    if (next && s_send_command (self, next->command_id, next->case_id, next->raw, next->raw_size) != 0)
        log_warn (command_id, next->case_id, "ingest: cannot send a command to the broker; it will time out");
}

/* Any source: one raw record in (borrowed; route too). Answers at once if the record
 * is rejected or we are overloaded, else sends (or queues) its command. */
static void
s_submit (ingest_server_t *self, const char *raw, size_t raw_size, int source, zframe_t *route,
          const char *request_id, long line)
{
    ingest_record_t record;
    if (ingest_record_parse (raw, raw_size, self->body_limit, &record) != 0) {
        log_debug (request_id, NULL, "ingest: line %ld rejected: %d %s", line, record.status, record.error);
        ingest_waiter_t stub = { .source = source, .route = route, .line = line };
        envelope_set (stub.request_id, sizeof stub.request_id, request_id);
        char *result = ingest_record_result_error (line, record.status, record.error, record.detail);
        s_answer (self, &stub, result);
        free (result);
        return;
    }
    ingest_waiter_t *waiter = ingest_waiter_new (record.command_id, record.case_id, source,
                                                 route, request_id, line);
    int rc = waiter ? ingest_pending_add (self->pending, &waiter, raw, raw_size, zclock_mono ()) : -1;
    if (rc == 1) {
        if (s_send_command (self, record.command_id, record.case_id, raw, raw_size) != 0)
            log_warn (record.command_id, record.case_id, "ingest: cannot send a command to the broker; it will time out");
    }
    else
    if (rc == -1) {
        ingest_waiter_t stub = { .source = source, .route = route, .line = line };
        envelope_set (stub.request_id, sizeof stub.request_id, request_id);
        char detail [96];
        snprintf (detail, sizeof detail, "ingest has %zu commands in flight; retry later",
                  ingest_pending_size (self->pending));
        char *result = ingest_record_result_error (line, 503, "unavailable", detail);
        s_answer (self, &stub, result);
        free (result);
        ingest_waiter_destroy (&waiter);
    }
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
        s_submit (self, env.body, env.body_size, INGEST_SOURCE_CLI, routes [0], env.id, line);
    }
    else
        log_warn (env.correlation_id, NULL, "ingest: ignoring message type '%s' from a client", env.type);
    zmsg_destroy (&msg);
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
        log_warn (waiter->command_id, waiter->case_id, "ingest: no reply within %lld ms for line %ld",
                  (long long) self->timeout_ms, waiter->line);
        char detail [96];
        snprintf (detail, sizeof detail, "no reply from a handler within %lld ms", (long long) self->timeout_ms);
        char *result = ingest_record_result_error (waiter->line, 503, "unavailable", detail);
        s_answer (self, waiter, result);
        free (result);
        char command_id [COMMAND_ID_MAX];
        memcpy (command_id, waiter->command_id, sizeof command_id);
        ingest_waiter_destroy (&waiter);
        s_promote (self, command_id);
    }
}

int
ingest_server_run (ingest_server_t *self, zsock_t *pipe)
{
    if (pipe)
        zpoller_add (self->poller, pipe);
    while (!zsys_interrupted) {
        int64_t wait = ingest_pending_next_expiry (self->pending, zclock_mono (), self->timeout_ms);
        if (wait < 0 || wait > 1000)
            wait = 1000;
        void *which = zpoller_wait (self->poller, (int) wait);
        if (pipe && which == pipe)
            break;                      /* $TERM, or anything else: the owner wants us gone */
        if (!which && zpoller_terminated (self->poller))
            break;
        /* Drain both sockets a batch at a time so neither starves the other. */
        for (int i = 0; i < INGEST_BATCH && (zsock_events (self->broker) & ZMQ_POLLIN); i++)
            s_handle_broker (self);
        for (int i = 0; i < INGEST_BATCH && (zsock_events (self->cli) & ZMQ_POLLIN); i++)
            s_handle_cli (self);
        s_expire (self);
    }
    if (pipe)
        zpoller_remove (self->poller, pipe);
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
