/* handler — the command handler actor. One self_t, one poll loop over the broker and
 * the store; every command is a small state machine (read the stream → decide →
 * append) kept in memory while its store requests are in flight, so one slow append
 * never stalls the others and heartbeats keep flowing while the store is down.
 * Commands of the same case are run one after the other (no self-inflicted conflicts);
 * conflicts with other handlers are re-read and re-decided. With a configuration
 * service, a decision that wanted rules not yet cached is held (at most the request
 * timeout) while they are fetched, then decided again with whatever is there. */
#include "handler.h"
#include "health.h"
#include "handler_command.h"
#include "handler_metrics.h"
#include "handler_rules.h"
#include "handler_store.h"
#include "heap_trim.h"

#include "case.h"
#include "command_id.h"
#include "endpoints.h"
#include "envelope.h"
#include "event.h"
#include "ids.h"
#include "log.h"
#include "traceparent.h"
#include "rules.h"
#include "store_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_STORE_TIMEOUT_MS  8000    /* store unreachable this long: 503 */
#define S_CONFLICT_RETRIES  5
#define S_HEARTBEAT_MS      1000
#define S_IDLE_MS           200     /* nothing in hand this long after work: give memory back */
#define S_MAX_COMMANDS      4096    /* running + waiting; past it the broker holds them */
#define S_BURST             256
/* A read that came back this full may have been cut by the store: read on. */
#define S_READ_MORE_EVENTS  1000
#define S_READ_MORE_BYTES   (1024 * 1024)

#define S_RULES_POLLITEMS   16

typedef enum { S_QUEUED = 0, S_READING, S_HOLDING, S_APPENDING } s_phase_t;

typedef struct {
    zframe_t *client;               /* routing identity of the client (owned) */
    handler_command_t *cmd;
    s_phase_t phase;
    case_t *state;                  /* the case folded from its stream */
    const case_t *after;            /* state + the events being appended (borrowed from events) */
    case_events_t *events;
    char *result;                   /* reply body remembered with the append */
    int conflicts;
    int checking_create;            /* a create met an existing stream: is it ours? */
    int64_t deadline_ms;
    char request [HANDLER_STORE_REQUEST_ID_MAX];
    /* The command's own events found in the stream: it was done before (a retry). */
    size_t own_events;
    int64_t own_position;
    char own_status [32];
    char own_document_status [32];
    /* Held for rules (S_HOLDING): what the decision wanted, until when. A command is
     * held once at most; its next decision takes what there is. */
    int held_once;
    int64_t hold_until_ms;
    handler_rules_session_t *session;
    char trace_id [33];             /* W3C trace of the command: on its log lines */
    char traceparent [TRACEPARENT_LEN];     /* the handler's span of it: on its store requests */
    int64_t arrived_us;             /* when it came from the broker: its latency metric */
    int duplicate;                  /* answered with the first result of an earlier attempt */
} s_pending_t;

struct _handler_t {
    handler_rules_t *rules;
    zlistx_t *held;                 /* s_pending_t held for rules, oldest first (not owned) */
    zsock_t *broker;                /* DEALER to the broker backend */
    handler_store_t *store;
    zhashx_t *active;               /* case id → the s_pending_t running for it (not owned) */
    zlistx_t *waiting;              /* s_pending_t whose case is busy (not owned) */
    size_t commands;                /* running + waiting */
    int64_t store_timeout_ms;
    int64_t next_heartbeat_ms;
    uint64_t sequence;
};

/* --------------------------------------------------------------------------
 * Pending commands */

static s_pending_t *
s_pending_new (zframe_t *client, handler_command_t **cmd_p)
{
    s_pending_t *p = calloc (1, sizeof (s_pending_t));
    if (!p)
        return NULL;
    p->client = zframe_dup (client);
    if (!p->client) {
        free (p);
        return NULL;
    }
    p->cmd = *cmd_p;
    *cmd_p = NULL;
    p->arrived_us = zclock_usecs ();
    return p;
}

static void
s_pending_destroy (s_pending_t **p_p)
{
    if (p_p && *p_p) {
        s_pending_t *p = *p_p;
        zframe_destroy (&p->client);
        handler_command_destroy (&p->cmd);
        case_destroy (&p->state);
        case_events_destroy (&p->events);
        free (p->result);
        free (p->session);
        free (p);
        *p_p = NULL;
    }
}

/* Drops what one attempt at deciding produced, before another attempt. */
static void
s_pending_reset_attempt (s_pending_t *p)
{
    p->after = NULL;
    case_events_destroy (&p->events);
    free (p->result);
    p->result = NULL;
}

/* --------------------------------------------------------------------------
 * Replies */

static void
s_send_reply (handler_t *self, zframe_t *client, const char *type, const char *command_id,
              const char *corr, const char *key, const char *body)
{
    char id [IDS_UUID_LEN];
    ids_uuid4 (id);
    envelope_t env;
    envelope_init (&env, type, id);
    envelope_set (env.causation_id, sizeof env.causation_id, command_id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, corr);
    envelope_set (env.key, sizeof env.key, key);
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    if (envelope_send (zsock_resolve (self->broker), client, &env) != 0)
        log_warn (command_id, key, "could not send %s to the broker: dropped", type);
}

static void
s_reply_error (handler_t *self, zframe_t *client, const char *command_id, const char *corr,
               const char *key, const handler_error_t *err)
{
    char *body = handler_reply_error (err);
    static const char fallback [] =
        "{\"status\":500,\"error\":\"internal\",\"detail\":\"out of memory while answering\"}";
    s_send_reply (self, client, "reply.error", command_id, corr, key, body ? body : fallback);
    free (body);
}

static void s_activate (handler_t *self, s_pending_t *p);

/* Ends a command: forgets its store request, frees it, and lets the next command of
 * the same case run. */
static void
s_finish (handler_t *self, s_pending_t *p)
{
    char case_id [ENVELOPE_ID_MAX];
    snprintf (case_id, sizeof case_id, "%s", handler_command_case_id (p->cmd));
    handler_store_cancel (self->store, p->request);
    int was_active = zhashx_lookup (self->active, case_id) == p;
    if (was_active)
        zhashx_delete (self->active, case_id);
    s_pending_destroy (&p);
    self->commands--;
    if (!was_active)
        return;
    s_pending_t *next = (s_pending_t *) zlistx_first (self->waiting);
    while (next) {
        if (strcmp (handler_command_case_id (next->cmd), case_id) == 0) {
            zlistx_delete (self->waiting, zlistx_cursor (self->waiting));
            s_activate (self, next);
            return;
        }
        next = (s_pending_t *) zlistx_next (self->waiting);
    }
}

static void
s_answer_ok (handler_t *self, s_pending_t *p, const char *body)
{
    handler_command_t *cmd = p->cmd;
    s_send_reply (self, p->client, "reply.ok", handler_command_id (cmd), handler_command_correlation_id (cmd),
                  handler_command_case_id (cmd), body);
    handler_metrics_command (handler_command_type (cmd), 200, p->duplicate, NULL,
                             (double) (zclock_usecs () - p->arrived_us) / 1e6);
    s_finish (self, p);
}

static void
s_answer_error (handler_t *self, s_pending_t *p, const handler_error_t *err)
{
    handler_command_t *cmd = p->cmd;
    log_info (handler_command_id (cmd), handler_command_case_id (cmd), "%s refused: %d %s",
              handler_command_type (cmd), err->status, err->error);
    s_reply_error (self, p->client, handler_command_id (cmd), handler_command_correlation_id (cmd),
                   handler_command_case_id (cmd), err);
    handler_metrics_command (handler_command_type (cmd), err->status, 0, err->error,
                             (double) (zclock_usecs () - p->arrived_us) / 1e6);
    s_finish (self, p);
}

static void
s_fail (handler_t *self, s_pending_t *p, int status, const char *error, const char *detail)
{
    handler_error_t err;
    handler_error_set (&err, status, error, "%s", detail);
    s_answer_error (self, p, &err);
}

/* --------------------------------------------------------------------------
 * Steps */

static void
s_request (handler_t *self, s_pending_t *p, const char *type, char *body, size_t size)
{
    handler_command_t *cmd = p->cmd;
    int rc = body ? handler_store_request (self->store, type, handler_command_case_id (cmd),
                                           handler_command_correlation_id (cmd), p->traceparent, body, size,
                                           p->deadline_ms, p, p->request) : -1;
    free (body);
    if (rc != 0)
        s_fail (self, p, 500, "internal", "out of memory while talking to the store");
}

/* Reads the case's events from version `from` on. */
static void
s_read (handler_t *self, s_pending_t *p, int64_t from)
{
    p->phase = S_READING;
    size_t size = 0;
    char *body = store_read_stream_encode (handler_command_case_id (p->cmd), from, &size);
    s_request (self, p, "store.read_stream", body, size);
}

/* Holds p until the rules its decision wanted were fetched (or the hold ran out).
 * Returns 0, -1 out of memory (the caller goes on with what it decided). */
static int
s_hold (handler_t *self, s_pending_t *p, const handler_rules_session_t *session)
{
    p->session = malloc (sizeof (handler_rules_session_t));
    if (!p->session)
        return -1;
    memcpy (p->session, session, sizeof (handler_rules_session_t));
    if (!zlistx_add_end (self->held, p)) {
        free (p->session);
        p->session = NULL;
        return -1;
    }
    p->held_once = 1;
    p->phase = S_HOLDING;
    p->hold_until_ms = session->now_ms + handler_rules_hold_ms (self->rules);
    log_debug (handler_command_id (p->cmd), handler_command_case_id (p->cmd),
               "%s held for %zu rule lookup(s)", handler_command_type (p->cmd), session->wanted);
    return 0;
}

/* Logs the notification decisions a command could not make (they are in its events). */
static void
s_log_deferrals (const s_pending_t *p)
{
    size_t deferred = 0, fallback = 0;
    for (size_t i = 0; i < case_events_count (p->events); i++) {
        const case_event_t *e = case_events_at (p->events, i);
        if (strcmp (e->type, "NotificationDecisionDeferred") == 0)
            deferred++;
        else
        if (strcmp (e->type, "DocumentRequirementDetermined") == 0 && strstr (e->data, "\"rules_origin\":\"rules_file\""))
            fallback++;
    }
    if (deferred)
        log_info (handler_command_id (p->cmd), handler_command_case_id (p->cmd),
                  "%zu notification decision(s) deferred: rules unavailable (recorded; made once they are)", deferred);
    if (fallback)
        log_info (handler_command_id (p->cmd), handler_command_case_id (p->cmd),
                  "document requirements from the local rules file: the configuration service had none to give");
}

/* Decides on the folded state and appends the new events with its version. */
static void
s_decide (handler_t *self, s_pending_t *p)
{
    handler_command_t *cmd = p->cmd;
    s_pending_reset_attempt (p);
    char now [HANDLER_TIME_MAX];
    handler_command_time (envelope_now_us (), now);
    handler_rules_session_t session;
    rules_source_t source_store;
    const rules_source_t *source = NULL;
    handler_rules_begin (self->rules, &session, !p->held_once, zclock_mono (), &source_store, &source);
    handler_error_t err;
    int rc = handler_command_decide_with (cmd, p->state, handler_rules_local (self->rules), source, now,
                                          &p->events, &err);
    /* Rules it wanted are on their way: this decision was a draft. */
    if (session.wanted && handler_rules_fetch (self->rules, &session) && s_hold (self, p, &session) == 0) {
        s_pending_reset_attempt (p);
        return;
    }
    if (rc) {
        s_answer_error (self, p, &err);
        return;
    }
    s_log_deferrals (p);
    /* The decision folded its own events: that is the state after the append. */
    p->after = case_events_after (p->events);
    /* The position is not known before the append: the remembered result has 0. */
    p->result = handler_command_result (cmd, p->after, case_events_count (p->events), 0, 0);
    int64_t expected = handler_command_kind (cmd) == HANDLER_CMD_CREATE ? 0 : case_get_version (p->state);
    char *body = NULL;
    size_t size = 0;
    if (!p->result || handler_command_append_body (cmd, expected, p->events, p->result, &body, &size) != 0) {
        s_fail (self, p, 500, "internal", "out of memory while encoding the append");
        return;
    }
    p->phase = S_APPENDING;
    s_request (self, p, "store.append", body, size);
}

static void
s_activate (handler_t *self, s_pending_t *p)
{
    log_set_trace (p->trace_id);
    handler_command_t *cmd = p->cmd;
    zhashx_update (self->active, handler_command_case_id (cmd), p);
    p->deadline_ms = zclock_mono () + self->store_timeout_ms;
    if (handler_command_kind (cmd) == HANDLER_CMD_CREATE)
        s_decide (self, p);
    else
        s_read (self, p, 1);
}

/* Decides again every held command whose rules came (or failed), or whose hold ran
 * out. Those are taken off the list first: deciding may hold or finish commands. */
static void
s_release_held (handler_t *self, int64_t now)
{
    zlistx_t *ready = NULL;
    s_pending_t *p = (s_pending_t *) zlistx_first (self->held);
    while (p) {
        void *handle = zlistx_cursor (self->held);
        s_pending_t *next = (s_pending_t *) zlistx_next (self->held);
        if (now >= p->hold_until_ms || !handler_rules_waiting (self->rules, p->session)) {
            if (!ready)
                ready = zlistx_new ();
            if (!ready || !zlistx_add_end (ready, p))
                break;          /* out of memory: the rest go at their deadline */
            zlistx_delete (self->held, handle);
        }
        p = next;
    }
    if (!ready)
        return;
    for (p = (s_pending_t *) zlistx_first (ready); p; p = (s_pending_t *) zlistx_next (ready)) {
        free (p->session);
        p->session = NULL;
        s_decide (self, p);
    }
    zlistx_destroy (&ready);
}

/* Milliseconds until the oldest held command's hold runs out, or -1. */
static int64_t
s_held_timeout (handler_t *self, int64_t now)
{
    s_pending_t *p = (s_pending_t *) zlistx_first (self->held);
    if (!p)
        return -1;
    return p->hold_until_ms > now ? p->hold_until_ms - now : 0;
}

/* --------------------------------------------------------------------------
 * Store replies */

/* Folds a batch of the case's events; notes the command's own events. Returns 0, or
 * -1 when the stream is not what a case stream must be (answered 500 by the caller). */
static int
s_fold (s_pending_t *p, const event_batch_t *batch)
{
    handler_command_t *cmd = p->cmd;
    if (!p->state && !(p->state = case_new ()))
        return -1;
    for (size_t i = 0; i < batch->count; i++) {
        const event_t *ev = &batch->events [i];
        if (strcmp (ev->stream, handler_command_case_id (cmd)) != 0) {
            log_error (handler_command_id (cmd), handler_command_case_id (cmd),
                       "the store answered with events of another stream");
            return -1;
        }
        if (ev->version != case_get_version (p->state) + 1) {
            log_error (handler_command_id (cmd), handler_command_case_id (cmd),
                       "stream read out of order (version %lld after %lld)",
                       (long long) ev->version, (long long) case_get_version (p->state));
            return -1;
        }
        if (case_apply (p->state, ev->type, ev->data, ev->data_size) != 0) {
            log_error (handler_command_id (cmd), handler_command_case_id (cmd),
                       "stored event %s (version %lld) cannot be read", ev->type, (long long) ev->version);
            return -1;
        }
        if (strcmp (ev->command_id, handler_command_id (cmd)) == 0) {
            p->own_events++;
            p->own_position = ev->position;
            const char *status = case_state_name (case_get_status (p->state));
            snprintf (p->own_status, sizeof p->own_status, "%s", status ? status : "");
            const case_document_t *doc = case_document_find (p->state, handler_command_document_id (cmd));
            if (doc)
                snprintf (p->own_document_status, sizeof p->own_document_status, "%s",
                          document_state_name (doc->status));
        }
    }
    return 0;
}

/* The reply to a command whose events are already in the stream. */
static void
s_answer_own (handler_t *self, s_pending_t *p)
{
    handler_command_t *cmd = p->cmd;
    log_info (handler_command_id (cmd), handler_command_case_id (cmd),
              "%s already applied (%zu events): answered as a duplicate", handler_command_type (cmd), p->own_events);
    /* Rebuilt from the log: the state as of the command's last event. The first
     * reply was the same, but for the position, which only the log knew. */
    const char *document_id = handler_command_document_id (cmd);
    char *body = handler_reply_ok (handler_command_case_id (cmd), p->own_status, p->own_events,
                                   p->own_position, 1, document_id, p->own_document_status);
    if (!body) {
        s_fail (self, p, 500, "internal", "out of memory while answering");
        return;
    }
    p->duplicate = 1;
    s_answer_ok (self, p, body);
    free (body);
}

static void
s_on_events (handler_t *self, s_pending_t *p, const envelope_t *env)
{
    handler_command_t *cmd = p->cmd;
    event_batch_t batch;
    if (event_batch_decode (env->body, env->body_size, &batch) != 0) {
        log_error (handler_command_id (cmd), handler_command_case_id (cmd), "malformed store.events reply");
        s_fail (self, p, 503, "unavailable", "unreadable answer from the event store");
        return;
    }
    int rc = s_fold (p, &batch);
    size_t count = batch.count;
    event_batch_destroy (&batch);
    if (rc) {
        s_fail (self, p, 500, "internal", "the case's events cannot be read");
        return;
    }
    if (count >= S_READ_MORE_EVENTS || (count > 0 && env->body_size >= S_READ_MORE_BYTES)) {
        s_read (self, p, case_get_version (p->state) + 1);
        return;
    }
    if (p->own_events) {
        s_answer_own (self, p);
        return;
    }
    if (p->checking_create) {
        if (case_get_version (p->state) == 0) {
            /* the stream vanished between conflict and read: impossible in an
             * append-only log, but trying again is the safe answer */
            p->checking_create = 0;
            s_decide (self, p);
        }
        else
            s_fail (self, p, 409, "conflict.exists", "a case with this id already exists (opened by another command)");
        return;
    }
    if (!case_exists (p->state)) {
        s_fail (self, p, 404, "not_found", "no such case");
        return;
    }
    s_decide (self, p);
}

static void
s_on_append (handler_t *self, s_pending_t *p, const envelope_t *env)
{
    handler_command_t *cmd = p->cmd;
    const char *command_id = handler_command_id (cmd), *case_id = handler_command_case_id (cmd);
    store_reply_t reply;
    if (store_reply_decode (env->type, env->body, env->body_size, &reply) != 0) {
        log_error (command_id, case_id, "malformed %s reply from the store", env->type);
        s_fail (self, p, 503, "unavailable", "unreadable answer from the event store");
        return;
    }
    if (streq (env->type, "store.appended")) {
        char *body = handler_command_result (cmd, p->after, case_events_count (p->events), reply.last_position, 0);
        log_info (command_id, case_id, "%s: %zu events appended, case %s, version %lld",
                  handler_command_type (cmd), case_events_count (p->events),
                  case_state_name (case_get_status (p->after)), (long long) reply.version);
        if (body)
            s_answer_ok (self, p, body);
        else
            s_fail (self, p, 500, "internal", "out of memory while answering");
        free (body);
    }
    else
    if (streq (env->type, "store.duplicate")) {
        if (strcmp (reply.fingerprint, handler_command_fingerprint (cmd)) != 0) {
            s_fail (self, p, 422, "idempotency.mismatch", "Idempotency-Key reused with a different payload");
            return;
        }
        char *body = handler_reply_duplicate (reply.result, reply.result_size);
        if (!body) {
            /* an unreadable remembered result: answer with what this attempt knows */
            log_warn (command_id, case_id, "remembered result unreadable: answering from this attempt");
            body = handler_command_result (cmd, p->after, case_events_count (p->events), 0, 1);
        }
        log_info (command_id, case_id, "%s is a duplicate: first result returned", handler_command_type (cmd));
        p->duplicate = 1;
        if (body)
            s_answer_ok (self, p, body);
        else
            s_fail (self, p, 500, "internal", "out of memory while answering");
        free (body);
    }
    else
    if (streq (env->type, "store.conflict")) {
        p->conflicts++;
        handler_metrics_conflict ();
        log_debug (command_id, case_id, "version conflict #%d (store at %lld)", p->conflicts,
                   (long long) reply.current_version);
        if (p->conflicts > S_CONFLICT_RETRIES) {
            s_fail (self, p, 409, "conflict.concurrency", "the case kept changing; try again");
            return;
        }
        s_pending_reset_attempt (p);
        if (handler_command_kind (cmd) == HANDLER_CMD_CREATE) {
            p->checking_create = 1;
            case_destroy (&p->state);
            s_read (self, p, 1);
        }
        else
            /* keep what was folded: only the events written since are read */
            s_read (self, p, case_get_version (p->state) + 1);
    }
    else {
        log_error (command_id, case_id, "store refused the append: %s %s (%s)", env->type, reply.error, reply.detail);
        s_fail (self, p, 503, "unavailable", "the event store could not take the events");
    }
}

static void
s_handle_store (handler_t *self)
{
    void *owner = NULL;
    zmsg_t *msg = NULL;
    envelope_t env;
    if (handler_store_recv (self->store, &owner, &msg, &env) != 0)
        return;
    s_pending_t *p = (s_pending_t *) owner;
    p->request [0] = 0;
    log_set_trace (p->trace_id);
    if (streq (env.type, "store.error")) {
        store_reply_t reply;
        if (store_reply_decode (env.type, env.body, env.body_size, &reply) != 0)
            memset (&reply, 0, sizeof reply);
        log_error (handler_command_id (p->cmd), handler_command_case_id (p->cmd), "store error: %s (%s)",
                   reply.error, reply.detail);
        s_fail (self, p, 503, "unavailable", "the event store reported an error");
    }
    else
    if (p->phase == S_READING && streq (env.type, "store.events"))
        s_on_events (self, p, &env);
    else
    if (p->phase == S_APPENDING)
        s_on_append (self, p, &env);
    else {
        log_error (handler_command_id (p->cmd), handler_command_case_id (p->cmd),
                   "unexpected %s from the store", env.type);
        s_fail (self, p, 503, "unavailable", "unexpected answer from the event store");
    }
    zmsg_destroy (&msg);
}

static void
s_on_expired (void *owner, void *arg)
{
    handler_t *self = (handler_t *) arg;
    s_pending_t *p = (s_pending_t *) owner;
    p->request [0] = 0;
    log_set_trace (p->trace_id);
    log_warn (handler_command_id (p->cmd), handler_command_case_id (p->cmd),
              "the store did not answer in %lld ms", (long long) self->store_timeout_ms);
    s_fail (self, p, 503, "unavailable", "the event store did not answer in time; retry with the same id");
}

/* --------------------------------------------------------------------------
 * Broker */

static void
s_handle_broker (handler_t *self)
{
    zmsg_t *msg = zmsg_recv (self->broker);
    if (!msg)
        return;
    int64_t received_us = zclock_usecs ();
    if (zmsg_size (msg) != 2) {
        log_warn (NULL, NULL, "dropped a broker message of %zu frames", zmsg_size (msg));
        zmsg_destroy (&msg);
        return;
    }
    zframe_t *client = zmsg_first (msg);
    zframe_t *frame = zmsg_next (msg);
    envelope_t env;
    if (envelope_decode (zframe_data (frame), zframe_size (frame), &env) != 0) {
        log_warn (NULL, NULL, "dropped a malformed envelope from the broker");
        zmsg_destroy (&msg);
        return;
    }
    if (strncmp (env.type, "cmd.", 4) != 0) {
        log_warn (env.correlation_id, env.key, "dropped a '%s' from the broker", env.type);
        zmsg_destroy (&msg);
        return;
    }
    char now [HANDLER_TIME_MAX];
    handler_command_time (envelope_now_us (), now);
    handler_command_t *cmd = NULL;
    handler_error_t err;
    if (handler_command_new (&env, now, &cmd, &err) != 0) {
        /* The reply's key is the case id, which a create without one derives. */
        char key [ENVELOPE_ID_MAX];
        snprintf (key, sizeof key, "%s", env.key);
        if (!key [0] && env.id [0] && streq (env.type, "cmd.create_case"))
            command_id_case_id (env.id, key);
        log_info (env.id, key, "%s refused: %d %s %s", env.type, err.status, err.error, err.field);
        s_reply_error (self, client, env.id, env.correlation_id [0] ? env.correlation_id : env.id, key, &err);
        handler_metrics_command (env.type, err.status, 0, err.error, (double) (zclock_usecs () - received_us) / 1e6);
        zmsg_destroy (&msg);
        return;
    }
    /* The command's trace goes on with a span of the handler's, which the store
     * records on the events; a command that came without one (or with one that
     * does not parse) starts a trace here, so every event has one. */
    char traceparent [TRACEPARENT_LEN], trace_id [33];
    traceparent_hop (env.traceparent, strlen (env.traceparent), traceparent);
    traceparent_trace_id (traceparent, trace_id);
    log_set_trace (trace_id);
    log_debug (env.id, handler_command_case_id (cmd), "%s received", env.type);
    s_pending_t *p = s_pending_new (client, &cmd);
    if (p) {
        memcpy (p->trace_id, trace_id, sizeof p->trace_id);
        memcpy (p->traceparent, traceparent, sizeof p->traceparent);
    }
    if (!p) {
        handler_error_set (&err, 500, "internal", "out of memory");
        s_reply_error (self, client, env.id, env.correlation_id, env.key, &err);
        handler_metrics_command (env.type, 500, 0, "internal", (double) (zclock_usecs () - received_us) / 1e6);
        handler_command_destroy (&cmd);
        zmsg_destroy (&msg);
        return;
    }
    zmsg_destroy (&msg);
    self->commands++;
    if (zhashx_lookup (self->active, handler_command_case_id (p->cmd))) {
        p->phase = S_QUEUED;
        if (!zlistx_add_end (self->waiting, p))
            s_fail (self, p, 500, "internal", "out of memory");
    }
    else
        s_activate (self, p);
}

static void
s_send_control (handler_t *self, const char *type)
{
    char id [48];
    snprintf (id, sizeof id, "%s-%" PRIu64, type, ++self->sequence);
    envelope_t env;
    envelope_init (&env, type, id);
    if (envelope_send (zsock_resolve (self->broker), NULL, &env) != 0)
        log_debug (NULL, NULL, "could not send %s to the broker", type);
}

/* --------------------------------------------------------------------------
 * Actor */

handler_t *
handler_new (config_t *config)
{
    handler_t *self = calloc (1, sizeof (handler_t));
    if (!self)
        return NULL;
    char *broker_endpoint = endpoints_get (config, "broker_back");
    char *store_endpoint = endpoints_get (config, "store");
    self->rules = handler_rules_new (config);
    if (!self->rules)
        goto fail;              /* logged */
    self->store_timeout_ms = config_get_long (config, "handler_store_timeout_ms", S_STORE_TIMEOUT_MS);
    if (self->store_timeout_ms < 100)
        self->store_timeout_ms = S_STORE_TIMEOUT_MS;
    if (!broker_endpoint || !store_endpoint) {
        log_error (NULL, NULL, "data directory path too long for the handler's sockets");
        goto fail;
    }
    self->active = zhashx_new ();
    self->waiting = zlistx_new ();
    self->held = zlistx_new ();
    self->broker = zsock_new (ZMQ_DEALER);
    if (!self->active || !self->waiting || !self->held || !self->broker)
        goto fail;
    /* A stable identity per instance: after a restart the broker recognises us
     * (ctl.ready from a known identity) and re-dispatches what the old process had. */
    char identity [64];
    const char *instance = getenv ("DOSSIER_INSTANCE");
    if (instance && *instance)
        snprintf (identity, sizeof identity, "handler-%.32s", instance);
    else {
        /* Without a supervisor (one container per handler) every replica may have the
         * same pid: the host name tells them apart. */
        char host [40] = "";
        if (gethostname (host, sizeof host) != 0)
            host [0] = 0;
        host [sizeof host - 1] = 0;
        snprintf (identity, sizeof identity, "handler-%.40s-%d", host, (int) getpid ());
    }
    zsock_set_identity (self->broker, identity);
    zsock_set_sndtimeo (self->broker, 0);
    zsock_set_sndhwm (self->broker, 100000);
    zsock_set_rcvhwm (self->broker, 100000);
    zsock_set_linger (self->broker, 1000);
    if (zsock_connect (self->broker, "%s", broker_endpoint) != 0) {
        log_error (NULL, NULL, "cannot connect to the broker at %s", broker_endpoint);
        goto fail;
    }
    self->store = handler_store_new (store_endpoint);
    if (!self->store) {
        log_error (NULL, NULL, "cannot connect to the store at %s", store_endpoint);
        goto fail;
    }
    log_info (NULL, NULL, "handler %s connected to %s and %s", identity, broker_endpoint, store_endpoint);
    free (broker_endpoint);
    free (store_endpoint);
    return self;
fail:
    free (broker_endpoint);
    free (store_endpoint);
    handler_destroy (&self);
    return NULL;
}

void
handler_destroy (handler_t **self_p)
{
    if (self_p && *self_p) {
        handler_t *self = *self_p;
        /* Unanswered commands are the broker's to re-dispatch: nothing to send. */
        if (self->active) {
            s_pending_t *p = (s_pending_t *) zhashx_first (self->active);
            while (p) {
                s_pending_destroy (&p);
                p = (s_pending_t *) zhashx_next (self->active);
            }
            zhashx_destroy (&self->active);
        }
        if (self->waiting) {
            s_pending_t *p = (s_pending_t *) zlistx_first (self->waiting);
            while (p) {
                s_pending_destroy (&p);
                p = (s_pending_t *) zlistx_next (self->waiting);
            }
            zlistx_destroy (&self->waiting);
        }
        /* Held commands are active ones: freed above. */
        zlistx_destroy (&self->held);
        handler_store_destroy (&self->store);
        zsock_destroy (&self->broker);
        handler_rules_destroy (&self->rules);
        free (self);
        *self_p = NULL;
    }
}

/* A message on the pipe (tests, or an embedding thread): "$TERM" stops the loop. */
static int
s_handle_pipe (zsock_t *pipe)
{
    char *command = zstr_recv (pipe);
    int stop = !command || streq (command, "$TERM");
    zstr_free (&command);
    return stop;
}

int
handler_run (handler_t *self, zsock_t *pipe)
{
    s_send_control (self, "ctl.ready");
    self->next_heartbeat_ms = zclock_mono () + S_HEARTBEAT_MS;
    /* After a burst, memory goes back to the system once nothing is in hand for a
     * moment: the burst's records and events would otherwise stay in the process. */
    heap_trim_t trim;
    heap_trim_init (&trim, S_IDLE_MS);
    /* A line per command (its correlation ids at info): held and written a few
     * kilobytes at a time, flushed before every wait, rather than a write each. */
    log_hold (1);
    int rc = 0;
    while (!zsys_interrupted) {
        health_beat ();
        log_flush ();
        int64_t now = zclock_mono ();
        if (self->commands > 0)
            heap_trim_busy (&trim, now);
        int trim_wait = heap_trim_tick (&trim, now);
        int64_t timeout = self->next_heartbeat_ms > now ? self->next_heartbeat_ms - now : 0;
        if (trim_wait >= 0 && trim_wait < timeout)
            timeout = trim_wait;
        int64_t store_timeout = handler_store_timeout (self->store, now);
        if (store_timeout >= 0 && store_timeout < timeout)
            timeout = store_timeout;
        long rules_timeout = handler_rules_timeout (self->rules);
        if (rules_timeout >= 0 && rules_timeout < timeout)
            timeout = rules_timeout;
        int64_t held_timeout = s_held_timeout (self, now);
        if (held_timeout >= 0 && held_timeout < timeout)
            timeout = held_timeout;
        /* Take no more commands than we can hold: the broker keeps the rest. */
        int take = self->commands < S_MAX_COMMANDS;
        zmq_pollitem_t items [3 + S_RULES_POLLITEMS] = {
            { pipe ? zsock_resolve (pipe) : NULL, 0, pipe ? ZMQ_POLLIN : 0, 0 },
            { zsock_resolve (handler_store_sock (self->store)), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (self->broker), 0, take ? ZMQ_POLLIN : 0, 0 },
        };
        /* The configuration service's sockets (none without one, or when idle). */
        size_t http = handler_rules_pollitems (self->rules, items + 3, S_RULES_POLLITEMS);
        /* With no pipe, item 0 is a null socket with no events: zmq_poll skips it;
         * a broker item without events (not taking) is skipped the same way. */
        if (zmq_poll (pipe ? items : items + 1, (pipe ? 1 : 0) + 2 + (int) http, (long) timeout) == -1) {
            if (zmq_errno () == EINTR)
                continue;
            log_error (NULL, NULL, "poll failed: %s", zmq_strerror (zmq_errno ()));
            rc = -1;
            break;
        }
        if (pipe && (items [0].revents & ZMQ_POLLIN) && s_handle_pipe (pipe))
            break;
        /* Store answers first: they finish commands and free capacity. */
        if (items [1].revents & ZMQ_POLLIN)
            for (int i = 0; i < S_BURST && (zsock_events (handler_store_sock (self->store)) & ZMQ_POLLIN); i++)
                s_handle_store (self);
        if (take && (items [2].revents & ZMQ_POLLIN))
            for (int i = 0; i < S_BURST && self->commands < S_MAX_COMMANDS
                            && (zsock_events (self->broker) & ZMQ_POLLIN); i++)
                s_handle_broker (self);
        log_set_trace (NULL);       /* lines about no command in particular */
        /* Held commands move when a fetch ended or the oldest hold ran out. */
        if (handler_rules_service (self->rules) > 0 || s_held_timeout (self, zclock_mono ()) == 0)
            s_release_held (self, zclock_mono ());
        now = zclock_mono ();
        handler_store_tick (self->store, now, s_on_expired, self);
        if (now >= self->next_heartbeat_ms) {
            s_send_control (self, "ctl.heartbeat");
            self->next_heartbeat_ms = now + S_HEARTBEAT_MS;
        }
    }
    log_info (NULL, NULL, "handler stopping with %zu commands unanswered", self->commands);
    log_hold (0);
    return rc;
}
