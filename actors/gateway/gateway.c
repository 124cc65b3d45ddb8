/* gateway — the HTTP actor. One h2o event loop serves every connection: reads are
 * keyed lookups in the read models answered inline, from a cache of ready-to-send
 * answers when the read models have not changed since they were made; writes go to
 * gateway_commands, which turns them into broker commands and answers when the
 * reply comes. Every query of one loop turn shares one read snapshot. */
#include "gateway.h"
#include "health.h"
#include "gateway_commands.h"
#include "gw_h2o.h"
#include "http_reply.h"
#include "http_metrics.h"
#include "http_respond.h"
#include "metrics_export.h"
#include "http_routes.h"
#include "openapi.h"
#include "readmodel_reader.h"
#include "ready_children.h"
#include "response_cache.h"

#include "endpoints.h"
#include "log.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_TIMEOUT_MS        10000       /* a command unanswered this long gets 503 */
#define S_RUN_SLICE_MS      500         /* upper bound on noticing a stop request */
#define S_CACHE_BYTES       (8 * 1024 * 1024)     /* keeps the process within ~30 MB RSS */

typedef struct {
    h2o_handler_t super;
    gateway_t *self;
} s_handler_t;

struct _gateway_t {
    config_t *config;                   /* borrowed */
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int port;
    h2o_multithread_receiver_t waker;   /* lets gateway_stop wake the loop */
    gw_reader_t *reader;
    gw_commands_t *commands;
    gw_cache_t *cache;                  /* NULL when configured off */
    gw_buf_t scratch;                   /* reused for every body we build */
    atomic_int stop;
    int closing;                        /* being destroyed: serve nothing more */
    int h2o_ready;                      /* globalconf, ctx and the waker are initialised */
};

/* A gateway destroyed while clients were still connected (see gateway_destroy);
 * volatile so the store that keeps it reachable is never optimised away. */
static gateway_t *volatile s_left_open;

/* --- reads --- */

static void
s_error (gateway_t *self, h2o_req_t *req, int status, const char *error, const char *detail)
{
    gw_respond_error (req, &self->scratch, status, error, detail);
}

/* Answers a read-model lookup whose answer is in self->scratch. A 200 is kept in
 * the cache under the request target, if the data it came from is still the
 * generation the cache holds, and sent from there without a copy. */
static void
s_respond_read (gateway_t *self, h2o_req_t *req, int rc, const char *what)
{
    if (rc == GW_READER_OK) {
        gw_cache_body_t entry;
        if (self->cache
        &&  gw_cache_put (self->cache, gw_reader_snapshot (self->reader), req->path.base, req->path.len,
                          self->scratch.data, self->scratch.size, &entry) == 0)
            gw_respond_shared (req, 200, entry.shared, entry.body, entry.size);
        else
            gw_respond (req, 200, self->scratch.data, self->scratch.size);
    }
    else
    if (rc == GW_READER_NOT_FOUND) {
        char detail [64];
        snprintf (detail, sizeof detail, "unknown %s", what);
        s_error (self, req, 404, "not_found", detail);
    }
    else
        s_error (self, req, 503, "unavailable", gw_reader_reason (self->reader));
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
        s_error (self, req, 400, "invalid_query", detail);
        return;
    }
    s_respond_read (self, req, gw_reader_cases (self->reader, &query, &self->scratch), "case");
}

static void
s_ready (gateway_t *self, h2o_req_t *req)
{
    int models = gw_reader_ready (self->reader);
    int broker = gw_commands_broker_alive (self->commands);
    gw_buf_t *out = &self->scratch;
    gw_buf_reset (out);
    gw_buf_append_str (out, "{\"status\":\"not_ready\",\"reasons\":[");
    int reasons = 0;
    if (!models) {
        const char *reason = gw_reader_reason (self->reader);
        gw_buf_append_json_string (out, reason, strlen (reason));
        reasons++;
    }
    if (!broker) {
        gw_buf_append_str (out, reasons ? ",\"broker not answering\"" : "\"broker not answering\"");
        reasons++;
    }
    /* The supervisor's children: one probe tells which process is down. */
    gw_ready_children (self->config, 5000, out, &reasons);
    /* ... and every process's own health: a loop that is stuck, a process not ready. */
    gw_ready_processes (self->config, 5000, out, &reasons);
    if (reasons == 0) {
        static const char ok [] = "{\"status\":\"ready\"}";
        gw_respond_static (req, 200, ok, sizeof ok - 1);
        return;
    }
    gw_buf_append_str (out, "]}");
    if (out->failed)
        s_error (self, req, 500, "internal", "out of memory");
    else
        gw_respond (req, 503, out->data, out->size);
}

/* Every process's metrics on this host, merged with the gateway's own (fresher
 * than its file). A process whose file is older than 15 s is not shown: it stopped
 * or hangs, and its figures would lie. */
static void
s_metrics (gateway_t *self, h2o_req_t *req)
{
    static const char type [] = "text/plain; version=0.0.4";
    size_t own_size = 0, size = 0;
    char *own = metrics_process () ? metrics_render (metrics_process (), &own_size) : NULL;
    char *text = metrics_export_collect (self->config, own, 15000, &size);
    free (own);
    if (!text) {
        s_error (self, req, 500, "internal", "out of memory");
        return;
    }
    gw_respond_text (req, 200, type, text, size);
    free (text);
}

/* GET and HEAD of a /v1/ resource: joins the turn's read snapshot, and answers
 * from the cache when it holds the target for the read models as they are now.
 * Returns 1 if answered. */
static int
s_from_cache (gateway_t *self, h2o_req_t *req)
{
    if (req->path.len < 4 || memcmp (req->path.base, "/v1/", 4) != 0)
        return 0;
    if (!h2o_memis (req->method.base, req->method.len, H2O_STRLIT ("GET"))
    &&  !h2o_memis (req->method.base, req->method.len, H2O_STRLIT ("HEAD")))
        return 0;
    uint64_t generation = gw_reader_snapshot (self->reader);
    if (!self->cache)
        return 0;
    gw_cache_validate (self->cache, generation);
    gw_cache_body_t hit;
    if (!gw_cache_get (self->cache, req->path.base, req->path.len, &hit))
        return 0;
    gw_respond_shared (req, 200, hit.shared, hit.body, hit.size);
    return 1;
}

static int
s_on_req (h2o_handler_t *handler, h2o_req_t *req)
{
    gateway_t *self = ((s_handler_t *) handler)->self;
    if (self->closing) {
        s_error (self, req, 503, "unavailable", "shutting down");
        return 0;
    }
    if (s_from_cache (self, req))
        return 0;
    gw_route_t route;
    gw_routes_match (req->method.base, req->method.len, req->path.base, req->path.len, &route);
    switch (route.action) {
        case GW_ACT_NOT_FOUND:
            s_error (self, req, 404, "not_found", "no such resource");
            break;
        case GW_ACT_METHOD_NOT_ALLOWED: {
            h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, "Allow",
                            route.allow, strlen (route.allow));
            char detail [64];
            snprintf (detail, sizeof detail, "allowed methods: %s", route.allow);
            s_error (self, req, 405, "method_not_allowed", detail);
            break;
        }
        case GW_ACT_HEALTH: {
            static const char ok [] = "{\"status\":\"ok\"}";
            gw_respond_static (req, 200, ok, sizeof ok - 1);
            break;
        }
        case GW_ACT_READY:
            s_ready (self, req);
            break;
        case GW_ACT_OPENAPI: {
            size_t size;
            const char *spec = gw_openapi_json (&size);
            gw_respond_static (req, 200, spec, size);
            break;
        }
        case GW_ACT_METRICS:
            s_metrics (self, req);
            break;
        case GW_ACT_LIST_CASES:
            s_list_cases (self, req);
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
        case GW_ACT_CREATE_CASE:
        case GW_ACT_DECIDE_CASE:
        case GW_ACT_CLOSE_CASE:
        case GW_ACT_UPDATE_DOCUMENT:
            gw_commands_handle (self->commands, req, &route);
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
    size_t body_limit = limit > 0 ? (size_t) limit : 1048576;
    long timeout = config_get_long (config, "command_timeout_ms", S_TIMEOUT_MS);
    int timeout_ms = timeout > 0 && timeout <= 600000 ? (int) timeout : S_TIMEOUT_MS;
    long cache_bytes = config_get_long (config, "gateway_cache_bytes", S_CACHE_BYTES);

    self->reader = gw_reader_new_config (config);
    if (!self->reader)
        goto fail;
    if (cache_bytes > 0 && !(self->cache = gw_cache_new ((size_t) cache_bytes)))
        goto fail;

    h2o_config_init (&self->globalconf);
    /* No Server header: it tells a client nothing it needs, and h2o formats it with a
     * sprintf of its own on every answer. */
    self->globalconf.server_name = h2o_iovec_init ("", 0);
    /* h2o refuses a body over its own limit before we see it; keep it well above
     * ours so that a client gets our 413 after its body was read, not a reset
     * connection while it is still sending, unless it sends something absurd (then
     * the error-page filter still answers in JSON). */
    size_t h2o_limit = body_limit * 4;
    if (h2o_limit < body_limit + 1024 * 1024)
        h2o_limit = body_limit + 1024 * 1024;
    self->globalconf.max_request_entity_size = h2o_limit;
    h2o_hostconf_t *host = h2o_config_register_host (&self->globalconf,
                                                     h2o_iovec_init (H2O_STRLIT ("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path (host, "/", 0);
    s_handler_t *handler = (s_handler_t *) h2o_create_handler (path, sizeof (s_handler_t));
    handler->super.on_req = s_on_req;
    handler->self = self;
    gw_metrics_filter_register (path);
    gw_metrics_filter_register (&host->fallback_path);
    gw_respond_filter_register (path);
    gw_respond_filter_register (&host->fallback_path);
    h2o_context_init (&self->ctx, h2o_evloop_create (), &self->globalconf);
    h2o_multithread_register_receiver (self->ctx.queue, &self->waker, s_on_wake);
    self->h2o_ready = 1;
    self->accept_ctx.ctx = &self->ctx;
    self->accept_ctx.hosts = self->globalconf.hosts;

    char *broker = endpoints_get (config, "broker_front");
    if (!broker) {
        log_error (NULL, NULL, "no usable broker_front endpoint (data_dir path too long?)");
        goto fail;
    }
    self->commands = gw_commands_new (broker, self->reader, self->ctx.loop, self->ctx.queue,
                                      body_limit, timeout_ms);
    free (broker);
    if (!self->commands)
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
    gw_commands_destroy (&self->commands);
    gw_reader_destroy (&self->reader);
    gw_cache_destroy (&self->cache);
    if (self->h2o_ready) {
        h2o_multithread_unregister_receiver (self->ctx.queue, &self->waker);
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
    while (!atomic_load (&self->stop) && !zsys_interrupted) {
        health_beat ();
        h2o_evloop_run (self->ctx.loop, S_RUN_SLICE_MS);
        /* One read snapshot per turn: answers are never older than the turn. */
        gw_reader_release (self->reader);
    }
    log_info (NULL, NULL, "stopping");
    return 0;
}

void
gateway_stop (gateway_t *self)
{
    atomic_store (&self->stop, 1);
    h2o_multithread_send_message (&self->waker, NULL);
}
