/* gateway_commands — write requests become broker commands. A pending command keeps
 * its request until the reply (matched by command id) or the timeout; a request
 * whose client has gone is detached from its pending command, so a late reply is
 * simply dropped. Requests retried with the same Idempotency-Key while the first is
 * in flight queue behind it and get the same answer. */
#include "gateway_commands.h"
#include "command_bridge.h"
#include "http_reply.h"
#include "http_respond.h"

#include "command_id.h"
#include "envelope.h"
#include "ids.h"
#include "json_scan.h"
#include "log.h"
#include "traceparent.h"

#include <czmq.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_IN_FLIGHT     10000       /* pending commands; past it, 503 at once */

typedef struct s_pending_s s_pending_t;

/* Lives in the request's memory pool; h2o disposes it with the request (answered,
 * or the connection closed), which is how a pending command learns its client left. */
typedef struct {
    s_pending_t *pending;
} s_req_link_t;

/* A command sent to the broker and not yet answered. Owned by gw_commands_t. */
struct s_pending_s {
    gw_commands_t *self;
    char command_id [COMMAND_ID_MAX];
    char case_id [GW_ID_MAX];           /* for Location on create */
    gw_action_t action;
    h2o_req_t *req;                     /* NULL once the client is gone */
    s_req_link_t *link;
    h2o_timeout_entry_t timeout;
    s_pending_t *next;                  /* FIFO of requests waiting on one command id */
};

struct _gw_commands_t {
    gw_reader_t *reader;                /* borrowed */
    h2o_loop_t *loop;
    size_t body_limit;
    h2o_timeout_t cmd_timeout;
    int timeout_ready;
    gw_bridge_t *bridge;
    zhashx_t *pending;                  /* command id -> first s_pending_t */
    size_t in_flight;
    gw_buf_t scratch;                   /* error bodies */
};

static void s_on_reply (void *arg, const char *cause, const char *type, const char *body, size_t body_size);

static void
s_error (gw_commands_t *self, h2o_req_t *req, int status, const char *error, const char *detail)
{
    gw_respond_error (req, &self->scratch, status, error, detail);
}

static void
s_unavailable (gw_commands_t *self, h2o_req_t *req)
{
    s_error (self, req, 503, "unavailable", gw_reader_reason (self->reader));
}

/* --- request helpers --- */

/* From the Idempotency-Key header: 1 found and valid (command_id filled), 0 absent,
 * -2 invalid. */
static int
s_idempotency_key (h2o_req_t *req, char command_id [COMMAND_ID_MAX])
{
    ssize_t index = h2o_find_header_by_str (&req->headers, H2O_STRLIT ("idempotency-key"), -1);
    if (index < 0)
        return 0;
    h2o_iovec_t value = req->headers.entries [index].value;
    return command_id_from_idempotency_key (value.base, value.len, command_id) == 0 ? 1 : -2;
}

/* Validates a JSON request body: media type, size, syntax, an object. On failure
 * answers the request and returns NULL; else returns the object (caller decrefs).
 * allow_empty: an empty body (any Content-Type) stands for {}. */
static json_t *
s_json_body (gw_commands_t *self, h2o_req_t *req, int allow_empty)
{
    if (allow_empty && req->entity.len == 0)
        return json_object ();
    ssize_t ct = h2o_find_header (&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct < 0 || !gw_reply_is_json_media_type (req->headers.entries [ct].value.base,
                                                 req->headers.entries [ct].value.len)) {
        s_error (self, req, 415, "unsupported_media_type", "Content-Type must be application/json");
        return NULL;
    }
    if (req->entity.len > self->body_limit) {
        char detail [96];
        snprintf (detail, sizeof detail, "request body exceeds %zu bytes", self->body_limit);
        s_error (self, req, 413, "payload_too_large", detail);
        return NULL;
    }
    json_error_t error;
    /* JSON_DECODE_ANY so that a bare scalar parses and gets the 422 it deserves,
     * not a syntax 400. jansson refuses invalid UTF-8 and NUL in strings. json_scan
     * builds jansson's very tree several times faster, and leaves every text it is
     * not sure of (every error) to json_loadb, so the answers stay jansson's. */
    json_t *root = json_scan_loadb (req->entity.base ? req->entity.base : "", req->entity.len,
                                    JSON_DECODE_ANY, &error);
    if (!root) {
        char detail [256];
        snprintf (detail, sizeof detail, "%s (line %d, column %d)", error.text, error.line, error.column);
        s_error (self, req, 400, "malformed_json", detail);
        return NULL;
    }
    if (!json_is_object (root)) {
        json_decref (root);
        s_error (self, req, 422, "validation.body", "request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* Reads an optional string field: absent or null gives "". 0 ok, -2 wrong type. */
static int
s_optional_string (json_t *object, const char *field, const char **out)
{
    json_t *value = json_object_get (object, field);
    *out = "";
    if (!value || json_is_null (value))
        return 0;
    if (!json_is_string (value))
        return -2;
    *out = json_string_value (value);
    return 0;
}

/* Reads a required string that must be one of allowed (NULL-terminated). */
static int
s_enum_string (json_t *object, const char *field, const char *const *allowed, const char **out)
{
    json_t *value = json_object_get (object, field);
    if (!json_is_string (value))
        return -2;
    for (int i = 0; allowed [i]; i++)
        if (strcmp (json_string_value (value), allowed [i]) == 0) {
            *out = allowed [i];
            return 0;
        }
    return -2;
}

/* --- pending commands --- */

/* h2o: the request's pool is going away (answered, or the client closed). */
static void
s_on_link_dispose (void *data)
{
    s_req_link_t *link = (s_req_link_t *) data;
    if (link->pending) {
        link->pending->req = NULL;
        link->pending->link = NULL;
        link->pending = NULL;
    }
}

/* Takes the pending out of the id table (it stays allocated). */
static void
s_pending_unlist (gw_commands_t *self, s_pending_t *pending)
{
    s_pending_t *head = (s_pending_t *) zhashx_lookup (self->pending, pending->command_id);
    if (head == pending) {
        if (pending->next)
            zhashx_update (self->pending, pending->command_id, pending->next);
        else
            zhashx_delete (self->pending, pending->command_id);
    }
    else
        for (s_pending_t *p = head; p; p = p->next)
            if (p->next == pending) {
                p->next = pending->next;
                break;
            }
    pending->next = NULL;
}

/* Stops the timer and unties the request; returns the request to answer, or NULL
 * if the client is gone. */
static h2o_req_t *
s_pending_detach (s_pending_t *pending)
{
    if (h2o_timeout_is_linked (&pending->timeout))
        h2o_timeout_unlink (&pending->timeout);
    h2o_req_t *req = pending->req;
    if (pending->link)
        pending->link->pending = NULL;
    pending->link = NULL;
    pending->req = NULL;
    return req;
}

static void
s_pending_free (gw_commands_t *self, s_pending_t *pending)
{
    s_pending_detach (pending);
    free (pending);
    self->in_flight--;
}

static void
s_on_command_timeout (h2o_timeout_entry_t *entry)
{
    s_pending_t *pending = H2O_STRUCT_FROM_MEMBER (s_pending_t, timeout, entry);
    gw_commands_t *self = pending->self;
    s_pending_unlist (self, pending);
    h2o_req_t *req = s_pending_detach (pending);
    log_warn (pending->command_id, pending->case_id [0] ? pending->case_id : NULL,
              "no reply from the broker in time");
    if (req)
        s_error (self, req, 503, "unavailable", "no reply from the broker in time; retry with the same Idempotency-Key");
    s_pending_free (self, pending);
}

/* Answers a request from the broker's reply. */
static void
s_answer_reply (gw_commands_t *self, h2o_req_t *req, s_pending_t *pending, const char *type,
                const char *body, size_t size)
{
    json_t *reply = json_scan_loadb (body, size, 0, NULL);
    if (!json_is_object (reply)) {
        json_decref (reply);
        log_error (pending->command_id, NULL, "unreadable %s body from the broker", type);
        s_error (self, req, 502, "bad_gateway", "unreadable reply from the command handler");
        return;
    }
    if (streq (type, "reply.ok")) {
        int status = 200;
        if (pending->action == GW_ACT_CREATE_CASE) {
            /* A replay of an idempotent create returns the first result, with 200. */
            status = json_is_true (json_object_get (reply, "duplicate")) ? 200 : 201;
            const char *case_id = json_string_value (json_object_get (reply, "case_id"));
            if (!case_id || !ids_is_uuid (case_id))
                case_id = pending->case_id;
            char location [GW_ID_MAX + 16];
            int len = snprintf (location, sizeof location, "/v1/cases/%s", case_id);
            h2o_iovec_t value = h2o_strdup (&req->pool, location, (size_t) len);
            h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, "Location", value.base, value.len);
        }
        gw_respond (req, status, body, size);
    }
    else
    if (streq (type, "reply.error")) {
        json_t *status_value = json_object_get (reply, "status");
        int status = json_is_integer (status_value) ? (int) json_integer_value (status_value) : 0;
        if (status < 400 || status > 599)
            status = 502;
        const char *error = json_string_value (json_object_get (reply, "error"));
        const char *detail = json_string_value (json_object_get (reply, "detail"));
        s_error (self, req, status, error ? error : "error", detail ? detail : "");
    }
    else
        s_error (self, req, 502, "bad_gateway", "unexpected reply type from the command handler");
    json_decref (reply);
}

/* The bridge delivers a reply (loop thread). */
static void
s_on_reply (void *arg, const char *cause, const char *type, const char *body, size_t body_size)
{
    gw_commands_t *self = (gw_commands_t *) arg;
    s_pending_t *pending = (s_pending_t *) zhashx_lookup (self->pending, cause);
    if (!pending) {
        log_debug (cause, NULL, "%s for no waiting request, dropped", type);
        return;
    }
    s_pending_unlist (self, pending);
    h2o_req_t *req = s_pending_detach (pending);
    if (req)
        s_answer_reply (self, req, pending, type, body, body_size);
    else
        log_info (cause, NULL, "%s arrived after its client left", type);
    s_pending_free (self, pending);
}

/* Sends a command and parks the request until its reply or timeout. */
static void
s_command (gw_commands_t *self, h2o_req_t *req, gw_action_t action, const char *type,
           const char *command_id, const char *key, const char *body, size_t size)
{
    if (self->in_flight >= S_MAX_IN_FLIGHT) {
        s_error (self, req, 503, "unavailable", "too many commands in flight");
        return;
    }
    s_pending_t *pending = calloc (1, sizeof (s_pending_t));
    s_req_link_t *link = pending
        ? (s_req_link_t *) h2o_mem_alloc_shared (&req->pool, sizeof (s_req_link_t), s_on_link_dispose) : NULL;
    if (!link) {
        free (pending);
        s_error (self, req, 500, "internal", "out of memory");
        return;
    }
    pending->self = self;
    envelope_set (pending->command_id, sizeof pending->command_id, command_id);
    envelope_set (pending->case_id, sizeof pending->case_id, key);
    pending->action = action;
    pending->req = req;
    pending->link = link;
    link->pending = pending;
    pending->timeout.cb = s_on_command_timeout;
    self->in_flight++;

    s_pending_t *head = (s_pending_t *) zhashx_lookup (self->pending, command_id);
    if (head) {
        while (head->next)
            head = head->next;
        head->next = pending;
    }
    else
        zhashx_insert (self->pending, command_id, pending);
    h2o_timeout_link (self->loop, &self->cmd_timeout, &pending->timeout);

    /* W3C trace context: the caller's trace goes on with a span of ours; without
     * one (or with a malformed one, which the spec says to ignore) a trace starts here. */
    traceparent_t trace, span;
    ssize_t tp_at = h2o_find_header_by_str (&req->headers, H2O_STRLIT ("traceparent"), -1);
    if (tp_at < 0 || traceparent_parse (req->headers.entries [tp_at].value.base,
                                        req->headers.entries [tp_at].value.len, &trace) != 0)
        traceparent_new (&trace);
    traceparent_child (&trace, &span);
    char traceparent [TRACEPARENT_LEN];
    traceparent_format (&span, traceparent);
    if (gw_bridge_send (self->bridge, type, command_id, key, command_id, traceparent, body, size) != 0) {
        s_pending_unlist (self, pending);
        s_pending_detach (pending);
        s_pending_free (self, pending);
        s_error (self, req, 503, "unavailable", "command queue full");
        return;
    }
    log_debug (command_id, key, "%s sent", type);
}

/* --- endpoints --- */

static void
s_create_case (gw_commands_t *self, h2o_req_t *req)
{
    json_t *record = s_json_body (self, req, 0);
    if (!record)
        return;
    char command_id [COMMAND_ID_MAX];
    int rc = s_idempotency_key (req, command_id);
    if (rc == -2) {
        json_decref (record);
        s_error (self, req, 400, "invalid_idempotency_key",
                 "Idempotency-Key must be 1 to 100 printable ASCII characters");
        return;
    }
    if (rc == 0)
        command_id_from_record (record, req->entity.base, req->entity.len, command_id);
    json_decref (record);
    char case_id [IDS_UUID_LEN];
    command_id_case_id (command_id, case_id);
    /* The body goes on as the client sent it: the handler owns record validation
     * and the fingerprint of the exact bytes. */
    s_command (self, req, GW_ACT_CREATE_CASE, "cmd.create_case", command_id, case_id,
               req->entity.base, req->entity.len);
}

/* Fills command_id from Idempotency-Key or a fresh random id. Answers 400 and
 * returns -1 on an invalid key. */
static int
s_write_command_id (gw_commands_t *self, h2o_req_t *req, char command_id [COMMAND_ID_MAX])
{
    int rc = s_idempotency_key (req, command_id);
    if (rc == -2) {
        s_error (self, req, 400, "invalid_idempotency_key",
                 "Idempotency-Key must be 1 to 100 printable ASCII characters");
        return -1;
    }
    if (rc == 0) {
        char uuid [IDS_UUID_LEN];
        ids_uuid4 (uuid);
        snprintf (command_id, COMMAND_ID_MAX, "gw:%s", uuid);
    }
    return 0;
}

/* Serialises body and sends it as a command on case_id. Takes body. */
static void
s_send_json_command (gw_commands_t *self, h2o_req_t *req, gw_action_t action, const char *type,
                     const char *case_id, json_t **body_p)
{
    char command_id [COMMAND_ID_MAX];
    char *text = *body_p ? json_dumps (*body_p, JSON_COMPACT) : NULL;
    json_decref (*body_p);
    *body_p = NULL;
    if (!text)
        s_error (self, req, 500, "internal", "out of memory");
    else
    if (s_write_command_id (self, req, command_id) == 0)
        s_command (self, req, action, type, command_id, case_id, text, strlen (text));
    free (text);
}

static void
s_update_document (gw_commands_t *self, h2o_req_t *req, const gw_route_t *route)
{
    json_t *input = s_json_body (self, req, 0);
    if (!input)
        return;
    static const char *const statuses [] = { "UPLOADED", "VERIFIED", "REJECTED", NULL };
    const char *status = NULL, *reason = NULL;
    if (s_enum_string (input, "status", statuses, &status)) {
        s_error (self, req, 422, "validation.status", "status must be UPLOADED, VERIFIED or REJECTED");
        json_decref (input);
        return;
    }
    if (s_optional_string (input, "reason", &reason)) {
        s_error (self, req, 422, "validation.reason", "reason must be a string");
        json_decref (input);
        return;
    }
    char case_id [GW_ID_MAX];
    int rc = gw_reader_document_case (self->reader, route->id, case_id);
    if (rc != GW_READER_OK) {
        json_decref (input);
        if (rc == GW_READER_NOT_FOUND)
            s_error (self, req, 404, "not_found", "unknown document");
        else
            s_unavailable (self, req);
        return;
    }
    json_t *body = json_pack ("{s:s, s:s, s:s}", "document_id", route->id, "status", status, "reason", reason);
    json_decref (input);
    s_send_json_command (self, req, GW_ACT_UPDATE_DOCUMENT, "cmd.update_document_status", case_id, &body);
}

static void
s_decide_or_close (gw_commands_t *self, h2o_req_t *req, const gw_route_t *route)
{
    int decide = route->action == GW_ACT_DECIDE_CASE;
    json_t *input = s_json_body (self, req, !decide);
    if (!input)
        return;
    static const char *const decisions [] = { "APPROVE", "REJECT", NULL };
    const char *decision = NULL, *reason = NULL;
    if (decide && s_enum_string (input, "decision", decisions, &decision)) {
        s_error (self, req, 422, "validation.decision", "decision must be APPROVE or REJECT");
        json_decref (input);
        return;
    }
    if (s_optional_string (input, "reason", &reason)) {
        s_error (self, req, 422, "validation.reason", "reason must be a string");
        json_decref (input);
        return;
    }
    int rc = gw_reader_case_exists (self->reader, route->id);
    if (rc != GW_READER_OK) {
        json_decref (input);
        if (rc == GW_READER_NOT_FOUND)
            s_error (self, req, 404, "not_found", "unknown case");
        else
            s_unavailable (self, req);
        return;
    }
    json_t *body = decide
        ? json_pack ("{s:s, s:s}", "decision", decision, "reason", reason)
        : json_pack ("{s:s}", "reason", reason);
    json_decref (input);
    s_send_json_command (self, req, route->action,
                         decide ? "cmd.decide_case" : "cmd.close_case", route->id, &body);
}

void
gw_commands_handle (gw_commands_t *self, h2o_req_t *req, const gw_route_t *route)
{
    switch (route->action) {
        case GW_ACT_CREATE_CASE:
            s_create_case (self, req);
            break;
        case GW_ACT_DECIDE_CASE:
        case GW_ACT_CLOSE_CASE:
            s_decide_or_close (self, req, route);
            break;
        case GW_ACT_UPDATE_DOCUMENT:
            s_update_document (self, req, route);
            break;
        default:
            s_error (self, req, 500, "internal", "not a command route");
            break;
    }
    /* Keep the scratch buffer from pinning a big error body. */
    if (self->scratch.cap > 64 * 1024)
        gw_buf_free (&self->scratch);
}

int
gw_commands_broker_alive (gw_commands_t *self)
{
    return gw_bridge_broker_alive (self->bridge);
}

/* --- lifecycle --- */

gw_commands_t *
gw_commands_new (const char *broker_endpoint, gw_reader_t *reader, h2o_loop_t *loop,
                 h2o_multithread_queue_t *queue, size_t body_limit, int timeout_ms)
{
    gw_commands_t *self = calloc (1, sizeof (gw_commands_t));
    if (!self)
        return NULL;
    self->reader = reader;
    self->loop = loop;
    self->body_limit = body_limit;
    gw_buf_init (&self->scratch);
    h2o_timeout_init (loop, &self->cmd_timeout, (uint64_t) timeout_ms);
    self->timeout_ready = 1;
    self->pending = zhashx_new ();
    if (!self->pending)
        goto fail;
    self->bridge = gw_bridge_new (broker_endpoint, queue, s_on_reply, self);
    if (!self->bridge)
        goto fail;
    return self;
fail:
    gw_commands_destroy (&self);
    return NULL;
}

void
gw_commands_destroy (gw_commands_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_commands_t *self = *self_p;
    /* Commands still waiting: their clients get nothing more from us. */
    if (self->pending) {
        s_pending_t *head;
        while ((head = (s_pending_t *) zhashx_first (self->pending))) {
            while (head) {
                s_pending_t *next = head->next;
                s_pending_unlist (self, head);
                s_pending_free (self, head);
                head = next;
            }
        }
        zhashx_destroy (&self->pending);
    }
    gw_bridge_destroy (&self->bridge);
    if (self->timeout_ready)
        h2o_timeout_dispose (self->loop, &self->cmd_timeout);
    gw_buf_free (&self->scratch);
    free (self);
    *self_p = NULL;
}
