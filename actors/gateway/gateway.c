/* gateway — the HTTP actor. One h2o event loop serves every connection: reads are
 * keyed SQLite lookups answered inline; writes become broker commands that wait,
 * without blocking the loop, for a reply matched by command id. A request whose
 * client has gone is detached from its pending command, so a late reply is
 * simply dropped. */
#include "gateway.h"
#include "command_bridge.h"
#include "gw_h2o.h"
#include "http_reply.h"
#include "http_routes.h"
#include "readmodel_reader.h"

#include "command_id.h"
#include "endpoints.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_MAX_IN_FLIGHT     10000       /* pending commands; past it, 503 at once */
#define S_TIMEOUT_MS        10000       /* a command unanswered this long gets 503 */
#define S_RUN_SLICE_MS      500         /* upper bound on noticing a stop request */

typedef struct s_pending_s s_pending_t;

/* Lives in the request's memory pool; h2o disposes it with the request (answered,
 * or the connection closed), which is how a pending command learns its client left. */
typedef struct {
    s_pending_t *pending;
} s_req_link_t;

/* A command sent to the broker and not yet answered. Owned by the gateway. */
struct s_pending_s {
    gateway_t *self;
    char command_id [COMMAND_ID_MAX];
    char case_id [GW_ID_MAX];           /* for Location on create */
    gw_action_t action;
    h2o_req_t *req;                     /* NULL once the client is gone */
    s_req_link_t *link;
    h2o_timeout_entry_t timeout;
    s_pending_t *next;                  /* FIFO of requests waiting on one command id */
};

typedef struct {
    h2o_handler_t super;
    gateway_t *self;
} s_handler_t;

struct _gateway_t {
    config_t *config;                   /* borrowed */
    size_t body_limit;
    int timeout_ms;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int port;
    h2o_timeout_t cmd_timeout;
    h2o_multithread_receiver_t waker;   /* lets gateway_stop wake the loop */
    gw_reader_t *reader;
    gw_bridge_t *bridge;
    zhashx_t *pending;                  /* command id -> first s_pending_t */
    size_t in_flight;
    gw_buf_t scratch;                   /* reused for every body we build */
    atomic_int stop;
    int closing;                        /* being destroyed: serve nothing more */
    int h2o_ready;                      /* globalconf, ctx and timeouts are initialised */
};

static h2o_generator_t s_generator = { NULL, NULL };

/* A gateway destroyed while clients were still connected (see gateway_destroy);
 * volatile so the store that keeps it reachable is never optimised away. */
static gateway_t *volatile s_left_open;

/* --- responses --- */

static int
s_is_head (h2o_req_t *req)
{
    return h2o_memis (req->method.base, req->method.len, H2O_STRLIT ("HEAD"));
}

/* Sends body (copied) as the whole JSON response. */
static void
s_respond (h2o_req_t *req, int status, const char *body, size_t len)
{
    char *copy = len ? h2o_mem_alloc_pool (&req->pool, len) : NULL;
    if (len)
        memcpy (copy, body, len);
    req->res.status = status;
    req->res.reason = gw_reply_reason (status);
    req->res.content_length = len;
    h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type",
                    H2O_STRLIT ("application/json"));
    h2o_start_response (req, &s_generator);
    h2o_iovec_t buf = h2o_iovec_init (copy, len);
    /* HEAD gets the headers of the GET answer, Content-Length included, no body. */
    if (s_is_head (req) || !len)
        h2o_send (req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send (req, &buf, 1, H2O_SEND_STATE_FINAL);
}

static void
s_respond_error (gateway_t *self, h2o_req_t *req, int status, const char *error, const char *detail)
{
    /* 503s are expected while a dependency is down and are reported where the
     * cause is known; other server errors deserve a line each. */
    if (status >= 500 && status != 503)
        log_warn (NULL, NULL, "%.*s %.*s -> %d %s", (int) req->method.len, req->method.base,
                  (int) (req->path.len > 200 ? 200 : req->path.len), req->path.base, status, error);
    if (gw_reply_error_body (&self->scratch, error, detail) == 0)
        s_respond (req, status, self->scratch.data, self->scratch.size);
    else {
        static const char fallback [] = "{\"error\":\"internal\",\"detail\":\"out of memory\"}";
        s_respond (req, 500, fallback, sizeof fallback - 1);
    }
}

static void
s_respond_unavailable (gateway_t *self, h2o_req_t *req)
{
    s_respond_error (self, req, 503, "unavailable", gw_reader_reason (self->reader));
}

/* Answers a read-model lookup. */
static void
s_respond_read (gateway_t *self, h2o_req_t *req, int rc, const char *what)
{
    if (rc == GW_READER_OK)
        s_respond (req, 200, self->scratch.data, self->scratch.size);
    else
    if (rc == GW_READER_NOT_FOUND) {
        char detail [64];
        snprintf (detail, sizeof detail, "unknown %s", what);
        s_respond_error (self, req, 404, "not_found", detail);
    }
    else
        s_respond_unavailable (self, req);
}

/* --- request helpers --- */

/* The value of a request header (base NULL when absent). */
static h2o_iovec_t
s_header (h2o_req_t *req, const char *name, size_t name_len)
{
    ssize_t index = h2o_find_header_by_str (&req->headers, name, name_len, -1);
    if (index < 0)
        return h2o_iovec_init (NULL, 0);
    return req->headers.entries [index].value;
}

/* From the Idempotency-Key header: 1 found and valid (command_id filled), 0 absent,
 * -2 invalid. */
static int
s_idempotency_key (h2o_req_t *req, char command_id [COMMAND_ID_MAX])
{
    h2o_iovec_t value = s_header (req, H2O_STRLIT ("idempotency-key"));
    if (!value.base)
        return 0;
    return command_id_from_idempotency_key (value.base, value.len, command_id) == 0 ? 1 : -2;
}

/* Validates a JSON request body: media type, size, syntax, an object. On failure
 * answers the request and returns NULL; else returns the object (caller decrefs).
 * allow_empty: an empty body (any Content-Type) stands for {}. */
static json_t *
s_json_body (gateway_t *self, h2o_req_t *req, int allow_empty)
{
    if (allow_empty && req->entity.len == 0)
        return json_object ();
    ssize_t ct = h2o_find_header (&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (ct < 0 || !gw_reply_is_json_media_type (req->headers.entries [ct].value.base,
                                                 req->headers.entries [ct].value.len)) {
        s_respond_error (self, req, 415, "unsupported_media_type", "Content-Type must be application/json");
        return NULL;
    }
    if (req->entity.len > self->body_limit) {
        char detail [96];
        snprintf (detail, sizeof detail, "request body exceeds %zu bytes", self->body_limit);
        s_respond_error (self, req, 413, "payload_too_large", detail);
        return NULL;
    }
    json_error_t error;
    /* JSON_DECODE_ANY so that a bare scalar parses and gets the 422 it deserves,
     * not a syntax 400. jansson refuses invalid UTF-8 and NUL in strings. */
    json_t *root = json_loadb (req->entity.base ? req->entity.base : "", req->entity.len,
                               JSON_DECODE_ANY, &error);
    if (!root) {
        char detail [256];
        snprintf (detail, sizeof detail, "%s (line %d, column %d)", error.text, error.line, error.column);
        s_respond_error (self, req, 400, "malformed_json", detail);
        return NULL;
    }
    if (!json_is_object (root)) {
        json_decref (root);
        s_respond_error (self, req, 422, "validation.body", "request body must be a JSON object");
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
s_pending_unlist (gateway_t *self, s_pending_t *pending)
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
s_pending_free (gateway_t *self, s_pending_t *pending)
{
    s_pending_detach (pending);
    free (pending);
    self->in_flight--;
}

static void
s_on_command_timeout (h2o_timeout_entry_t *entry)
{
    s_pending_t *pending = H2O_STRUCT_FROM_MEMBER (s_pending_t, timeout, entry);
    gateway_t *self = pending->self;
    s_pending_unlist (self, pending);
    h2o_req_t *req = s_pending_detach (pending);
    log_warn (pending->command_id, pending->case_id [0] ? pending->case_id : NULL,
              "no reply from the broker in time");
    if (req)
        s_respond_error (self, req, 503, "unavailable", "no reply from the broker in time; retry with the same Idempotency-Key");
    s_pending_free (self, pending);
}

/* Answers a request from the broker's reply. */
static void
s_answer_reply (gateway_t *self, h2o_req_t *req, s_pending_t *pending, const char *type,
                const char *body, size_t size)
{
    json_t *reply = json_loadb (body, size, 0, NULL);
    if (!json_is_object (reply)) {
        json_decref (reply);
        log_error (pending->command_id, NULL, "unreadable %s body from the broker", type);
        s_respond_error (self, req, 502, "bad_gateway", "unreadable reply from the command handler");
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
        s_respond (req, status, body, size);
    }
    else
    if (streq (type, "reply.error")) {
        json_t *status_value = json_object_get (reply, "status");
        int status = json_is_integer (status_value) ? (int) json_integer_value (status_value) : 0;
        if (status < 400 || status > 599)
            status = 502;
        const char *error = json_string_value (json_object_get (reply, "error"));
        const char *detail = json_string_value (json_object_get (reply, "detail"));
        s_respond_error (self, req, status, error ? error : "error", detail ? detail : "");
    }
    else
        s_respond_error (self, req, 502, "bad_gateway", "unexpected reply type from the command handler");
    json_decref (reply);
}

/* The bridge delivers a reply (loop thread). */
static void
s_on_reply (void *arg, const char *cause, const char *type, const char *body, size_t body_size)
{
    gateway_t *self = (gateway_t *) arg;
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
s_command (gateway_t *self, h2o_req_t *req, gw_action_t action, const char *type,
           const char *command_id, const char *key, const char *body, size_t size)
{
    if (self->in_flight >= S_MAX_IN_FLIGHT) {
        s_respond_error (self, req, 503, "unavailable", "too many commands in flight");
        return;
    }
    s_pending_t *pending = calloc (1, sizeof (s_pending_t));
    s_req_link_t *link = pending
        ? (s_req_link_t *) h2o_mem_alloc_shared (&req->pool, sizeof (s_req_link_t), s_on_link_dispose) : NULL;
    if (!link) {
        free (pending);
        s_respond_error (self, req, 500, "internal", "out of memory");
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
    h2o_timeout_link (self->ctx.loop, &self->cmd_timeout, &pending->timeout);

    if (gw_bridge_send (self->bridge, type, command_id, key, command_id, body, size) != 0) {
        s_pending_unlist (self, pending);
        s_pending_detach (pending);
        s_pending_free (self, pending);
        s_respond_error (self, req, 503, "unavailable", "command queue full");
        return;
    }
    log_debug (command_id, key, "%s sent", type);
}

/* --- endpoints --- */

static void
s_create_case (gateway_t *self, h2o_req_t *req)
{
    json_t *record = s_json_body (self, req, 0);
    if (!record)
        return;
    char command_id [COMMAND_ID_MAX];
    int rc = s_idempotency_key (req, command_id);
    if (rc == -2) {
        json_decref (record);
        s_respond_error (self, req, 400, "invalid_idempotency_key",
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
s_write_command_id (gateway_t *self, h2o_req_t *req, char command_id [COMMAND_ID_MAX])
{
    int rc = s_idempotency_key (req, command_id);
    if (rc == -2) {
        s_respond_error (self, req, 400, "invalid_idempotency_key",
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
s_send_json_command (gateway_t *self, h2o_req_t *req, gw_action_t action, const char *type,
                     const char *case_id, json_t **body_p)
{
    char command_id [COMMAND_ID_MAX];
    char *text = *body_p ? json_dumps (*body_p, JSON_COMPACT) : NULL;
    json_decref (*body_p);
    *body_p = NULL;
    if (!text)
        s_respond_error (self, req, 500, "internal", "out of memory");
    else
    if (s_write_command_id (self, req, command_id) == 0)
        s_command (self, req, action, type, command_id, case_id, text, strlen (text));
    free (text);
}

static void
s_update_document (gateway_t *self, h2o_req_t *req, const gw_route_t *route)
{
    json_t *input = s_json_body (self, req, 0);
    if (!input)
        return;
    static const char *const statuses [] = { "UPLOADED", "VERIFIED", "REJECTED", NULL };
    const char *status = NULL, *reason = NULL;
    if (s_enum_string (input, "status", statuses, &status)) {
        s_respond_error (self, req, 422, "validation.status", "status must be UPLOADED, VERIFIED or REJECTED");
        json_decref (input);
        return;
    }
    if (s_optional_string (input, "reason", &reason)) {
        s_respond_error (self, req, 422, "validation.reason", "reason must be a string");
        json_decref (input);
        return;
    }
    char case_id [GW_ID_MAX];
    int rc = gw_reader_document_case (self->reader, route->id, case_id);
    if (rc != GW_READER_OK) {
        json_decref (input);
        if (rc == GW_READER_NOT_FOUND)
            s_respond_error (self, req, 404, "not_found", "unknown document");
        else
            s_respond_unavailable (self, req);
        return;
    }
    json_t *body = json_pack ("{s:s, s:s, s:s}", "document_id", route->id, "status", status, "reason", reason);
    json_decref (input);
    s_send_json_command (self, req, GW_ACT_UPDATE_DOCUMENT, "cmd.update_document_status", case_id, &body);
}

static void
s_decide_or_close (gateway_t *self, h2o_req_t *req, const gw_route_t *route)
{
    int decide = route->action == GW_ACT_DECIDE_CASE;
    json_t *input = s_json_body (self, req, !decide);
    if (!input)
        return;
    static const char *const decisions [] = { "APPROVE", "REJECT", NULL };
    const char *decision = NULL, *reason = NULL;
    if (decide && s_enum_string (input, "decision", decisions, &decision)) {
        s_respond_error (self, req, 422, "validation.decision", "decision must be APPROVE or REJECT");
        json_decref (input);
        return;
    }
    if (s_optional_string (input, "reason", &reason)) {
        s_respond_error (self, req, 422, "validation.reason", "reason must be a string");
        json_decref (input);
        return;
    }
    int rc = gw_reader_case_exists (self->reader, route->id);
    if (rc != GW_READER_OK) {
        json_decref (input);
        if (rc == GW_READER_NOT_FOUND)
            s_respond_error (self, req, 404, "not_found", "unknown case");
        else
            s_respond_unavailable (self, req);
        return;
    }
    json_t *body = decide
        ? json_pack ("{s:s, s:s}", "decision", decision, "reason", reason)
        : json_pack ("{s:s}", "reason", reason);
    json_decref (input);
    s_send_json_command (self, req, route->action,
                         decide ? "cmd.decide_case" : "cmd.close_case", route->id, &body);
}

static void
s_list_cases (gateway_t *self, h2o_req_t *req)
{
    gw_cases_query_t query;
    char detail [160];
    const char *qs = NULL;
    size_t qs_len = 0;
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len) {
        qs = req->path.base + req->query_at + 1;
        qs_len = req->path.len - req->query_at - 1;
    }
    if (gw_query_parse_cases (qs, qs_len, &query, detail, sizeof detail)) {
        s_respond_error (self, req, 400, "invalid_query", detail);
        return;
    }
    s_respond_read (self, req, gw_reader_cases (self->reader, &query, &self->scratch), "case");
}

static void
s_ready (gateway_t *self, h2o_req_t *req)
{
    int models = gw_reader_ready (self->reader);
    int broker = gw_bridge_broker_alive (self->bridge);
    if (models && broker) {
        static const char ok [] = "{\"status\":\"ready\"}";
        s_respond (req, 200, ok, sizeof ok - 1);
        return;
    }
    gw_buf_t *out = &self->scratch;
    gw_buf_reset (out);
    gw_buf_append_str (out, "{\"status\":\"not_ready\",\"reasons\":[");
    if (!models) {
        const char *reason = gw_reader_reason (self->reader);
        gw_buf_append_json_string (out, reason, strlen (reason));
    }
    if (!broker)
        gw_buf_append_str (out, models ? "\"broker not answering\"" : ",\"broker not answering\"");
    gw_buf_append_str (out, "]}");
    if (out->failed)
        s_respond_error (self, req, 500, "internal", "out of memory");
    else
        s_respond (req, 503, out->data, out->size);
}

static int
s_on_req (h2o_handler_t *handler, h2o_req_t *req)
{
    gateway_t *self = ((s_handler_t *) handler)->self;
    if (self->closing) {
        s_respond_error (self, req, 503, "unavailable", "shutting down");
        return 0;
    }
    gw_route_t route;
    gw_routes_match (req->method.base, req->method.len, req->path.base, req->path.len, &route);
    switch (route.action) {
        case GW_ACT_NOT_FOUND:
            s_respond_error (self, req, 404, "not_found", "no such resource");
            break;
        case GW_ACT_METHOD_NOT_ALLOWED: {
            h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, "Allow",
                            route.allow, strlen (route.allow));
            char detail [64];
            snprintf (detail, sizeof detail, "allowed methods: %s", route.allow);
            s_respond_error (self, req, 405, "method_not_allowed", detail);
            break;
        }
        case GW_ACT_HEALTH: {
            static const char ok [] = "{\"status\":\"ok\"}";
            s_respond (req, 200, ok, sizeof ok - 1);
            break;
        }
        case GW_ACT_READY:
            s_ready (self, req);
            break;
        case GW_ACT_LIST_CASES:
            s_list_cases (self, req);
            break;
        case GW_ACT_CREATE_CASE:
            s_create_case (self, req);
            break;
        case GW_ACT_GET_CASE:
            s_respond_read (self, req, gw_reader_case (self->reader, route.id, &self->scratch), "case");
            break;
        case GW_ACT_CASE_EVENTS:
            s_respond_read (self, req, gw_reader_case_events (self->reader, route.id, &self->scratch), "case");
            break;
        case GW_ACT_CASE_DOCUMENTS:
            s_respond_read (self, req, gw_reader_case_documents (self->reader, route.id, &self->scratch), "case");
            break;
        case GW_ACT_DECIDE_CASE:
        case GW_ACT_CLOSE_CASE:
            s_decide_or_close (self, req, &route);
            break;
        case GW_ACT_GET_COMPANY:
            s_respond_read (self, req, gw_reader_company (self->reader, route.id, &self->scratch), "company");
            break;
        case GW_ACT_COMPANY_OWNERS:
            s_respond_read (self, req, gw_reader_company_owners (self->reader, route.id, &self->scratch), "company");
            break;
        case GW_ACT_GET_PERSON:
            s_respond_read (self, req, gw_reader_person (self->reader, route.id, &self->scratch), "person");
            break;
        case GW_ACT_GET_DOCUMENT:
            s_respond_read (self, req, gw_reader_document (self->reader, route.id, &self->scratch), "document");
            break;
        case GW_ACT_UPDATE_DOCUMENT:
            s_update_document (self, req, &route);
            break;
    }
    /* Keep the scratch buffer from pinning a huge allocation after a big list. */
    if (self->scratch.cap > 1024 * 1024)
        gw_buf_free (&self->scratch);
    return 0;
}

/* --- listener --- */

static void
s_on_accept (h2o_socket_t *listener, const char *err)
{
    gateway_t *self = (gateway_t *) listener->data;
    if (err)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept (listener);
    if (sock)
        h2o_accept (&self->accept_ctx, sock);
}

/* Splits "host:port" or "[v6]:port". Returns 0 ok, -2 malformed. */
static int
s_split_addr (const char *addr, char *host, size_t host_size, char *port, size_t port_size)
{
    const char *colon;
    const char *host_start = addr, *host_end;
    if (addr [0] == '[') {
        host_start = addr + 1;
        host_end = strchr (host_start, ']');
        if (!host_end || host_end [1] != ':')
            return -2;
        colon = host_end + 1;
    }
    else {
        colon = strrchr (addr, ':');
        if (!colon)
            return -2;
        host_end = colon;
    }
    size_t host_len = (size_t) (host_end - host_start);
    size_t port_len = strlen (colon + 1);
    if (host_len >= host_size || port_len == 0 || port_len >= port_size)
        return -2;
    memcpy (host, host_start, host_len);
    host [host_len] = 0;
    memcpy (port, colon + 1, port_len + 1);
    for (size_t i = 0; i < port_len; i++)
        if (port [i] < '0' || port [i] > '9')
            return -2;
    return atoi (port) <= 65535 ? 0 : -2;
}

static int
s_listen (gateway_t *self, const char *addr)
{
    char host [256], port [8];
    if (s_split_addr (addr, host, sizeof host, port, sizeof port)) {
        log_error (NULL, NULL, "http_addr \"%s\" is not host:port", addr);
        return -1;
    }
    struct addrinfo hints, *found = NULL;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo (host [0] ? host : NULL, port, &hints, &found);
    if (rc != 0 || !found) {
        log_error (NULL, NULL, "cannot resolve %s: %s", host, gai_strerror (rc));
        return -1;
    }
    int fd = socket (found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    /* SO_REUSEPORT lets several gateway processes share the port, the kernel
     * spreading connections among them. */
    if (fd < 0
    ||  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0
    ||  setsockopt (fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0
    ||  bind (fd, found->ai_addr, found->ai_addrlen) != 0
    ||  listen (fd, SOMAXCONN) != 0) {
        log_error (NULL, NULL, "cannot listen on %s: %s", addr, strerror (errno));
        if (fd >= 0)
            close (fd);
        freeaddrinfo (found);
        return -1;
    }
    freeaddrinfo (found);
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    char shown [INET6_ADDRSTRLEN + 2] = "?";
    if (getsockname (fd, (struct sockaddr *) &bound, &bound_len) == 0) {
        if (bound.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &bound;
            char text [INET6_ADDRSTRLEN];
            inet_ntop (AF_INET6, &in6->sin6_addr, text, sizeof text);
            snprintf (shown, sizeof shown, "[%s]", text);
            self->port = ntohs (in6->sin6_port);
        }
        else {
            struct sockaddr_in *in4 = (struct sockaddr_in *) &bound;
            inet_ntop (AF_INET, &in4->sin_addr, shown, sizeof shown);
            self->port = ntohs (in4->sin_port);
        }
    }
    self->listener = h2o_evloop_socket_create (self->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    self->listener->data = self;
    h2o_socket_read_start (self->listener, s_on_accept);
    log_info (NULL, NULL, "listening on %s:%d", shown, self->port);
    return 0;
}

/* --- actor --- */

static void
s_on_wake (h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void) receiver;
    (void) messages;    /* only ever woken with NULL messages */
}

gateway_t *
gateway_new (config_t *config)
{
    gateway_t *self = calloc (1, sizeof (gateway_t));
    if (!self)
        return NULL;
    self->config = config;
    atomic_init (&self->stop, 0);
    gw_buf_init (&self->scratch);
    /* A client that disconnects mid-write must cost an EPIPE, not the process. */
    signal (SIGPIPE, SIG_IGN);

    long limit = config_get_long (config, "body_limit", 1048576);
    self->body_limit = limit > 0 ? (size_t) limit : 1048576;
    long timeout = config_get_long (config, "command_timeout_ms", S_TIMEOUT_MS);
    self->timeout_ms = timeout > 0 && timeout <= 600000 ? (int) timeout : S_TIMEOUT_MS;

    self->pending = zhashx_new ();
    self->reader = gw_reader_new_config (config);
    if (!self->pending || !self->reader)
        goto fail;

    h2o_config_init (&self->globalconf);
    self->globalconf.server_name = h2o_iovec_init (H2O_STRLIT ("dossier"));
    /* h2o's own limit answers with a plain-text 413; keep it well above ours so
     * that clients see our JSON 413 unless they send something absurd. */
    size_t h2o_limit = self->body_limit * 4;
    if (h2o_limit < self->body_limit + 1024 * 1024)
        h2o_limit = self->body_limit + 1024 * 1024;
    self->globalconf.max_request_entity_size = h2o_limit;
    h2o_hostconf_t *host = h2o_config_register_host (&self->globalconf,
                                                     h2o_iovec_init (H2O_STRLIT ("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path (host, "/", 0);
    s_handler_t *handler = (s_handler_t *) h2o_create_handler (path, sizeof (s_handler_t));
    handler->super.on_req = s_on_req;
    handler->self = self;
    h2o_context_init (&self->ctx, h2o_evloop_create (), &self->globalconf);
    h2o_timeout_init (self->ctx.loop, &self->cmd_timeout, (uint64_t) self->timeout_ms);
    h2o_multithread_register_receiver (self->ctx.queue, &self->waker, s_on_wake);
    self->h2o_ready = 1;
    self->accept_ctx.ctx = &self->ctx;
    self->accept_ctx.hosts = self->globalconf.hosts;

    char *broker = endpoints_get (config, "broker_front");
    if (!broker) {
        log_error (NULL, NULL, "no usable broker_front endpoint (data_dir path too long?)");
        goto fail;
    }
    self->bridge = gw_bridge_new (broker, self->ctx.queue, s_on_reply, self);
    free (broker);
    if (!self->bridge)
        goto fail;
    if (s_listen (self, config_get (config, "http_addr", "127.0.0.1:8080")))
        goto fail;
    return self;
fail:
    gateway_destroy (&self);
    return NULL;
}

void
gateway_destroy (gateway_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gateway_t *self = *self_p;
    self->closing = 1;
    if (self->listener) {
        h2o_socket_read_stop (self->listener);
        h2o_socket_close (self->listener);
        self->listener = NULL;
    }
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
    gw_reader_destroy (&self->reader);
    if (self->h2o_ready) {
        h2o_multithread_unregister_receiver (self->ctx.queue, &self->waker);
        h2o_timeout_dispose (self->ctx.loop, &self->cmd_timeout);
        /* Let closed sockets finish their disposal. */
        h2o_evloop_run (self->ctx.loop, 0);
        h2o_evloop_run (self->ctx.loop, 0);
        if (h2o_linklist_is_empty (&self->ctx.http1._conns)
        &&  h2o_linklist_is_empty (&self->ctx.http2._conns)) {
            h2o_loop_t *loop = self->ctx.loop;
            h2o_multithread_queue_t *queue = self->ctx.queue;
            h2o_context_dispose (&self->ctx);
            h2o_evloop_run (loop, 0);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR < 3
            /* h2o 2.2's h2o_multithread_destroy_queue stops and closes the queue
             * but never frees it (fixed in 2.3); without this, every sanitized
             * run would end in a LeakSanitizer failure. */
            free (queue);
#else
            (void) queue;
#endif
            h2o_evloop_destroy (loop);
            h2o_config_dispose (&self->globalconf);
        }
        else {
            /* h2o 2.2 cannot dispose a context with live connections (it asserts)
             * nor close them for us. The process is exiting: park the whole state
             * where it stays reachable, and let the kernel close the sockets. */
            log_info (NULL, NULL, "exiting with client connections still open");
            s_left_open = self;
            *self_p = NULL;
            return;
        }
    }
    gw_buf_free (&self->scratch);
    free (self);
    *self_p = NULL;
}

int
gateway_port (gateway_t *self)
{
    return self->port;
}

int
gateway_run (gateway_t *self)
{
    while (!atomic_load (&self->stop) && !zsys_interrupted)
        h2o_evloop_run (self->ctx.loop, S_RUN_SLICE_MS);
    log_info (NULL, NULL, "stopping");
    return 0;
}

void
gateway_stop (gateway_t *self)
{
    atomic_store (&self->stop, 1);
    h2o_multithread_send_message (&self->waker, NULL);
}
