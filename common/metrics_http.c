/* metrics_http — see metrics_http.h. libmicrohttpd with its own polling thread: the
 * main loop is never asked anything, which is what lets /healthz tell that the loop
 * is stuck. Small limits: this port serves Prometheus and probes, not clients. */
#include "metrics_http.h"
#include "health.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CONNECTIONS   16      /* scrapers and probes: a handful at a time */
#define S_TIMEOUT_S     10      /* an idle or slow connection is closed after this */
#define S_MEMORY        (32 * 1024)     /* per connection: GET requests only */

struct _metrics_http_t {
    struct MHD_Daemon *daemon;
    metrics_t *registry;
    int64_t stall_ms;
    void (*refresh) (void);     /* before each /metrics, may be NULL */
};

static const char s_json [] = "application/json";
static const char s_text [] = "text/plain; version=0.0.4; charset=utf-8";

static enum MHD_Result
s_reply (struct MHD_Connection *connection, unsigned int status, const char *type,
         char *body, size_t size, bool owned)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (
        size, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!response) {
        if (owned)
            free (body);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result
s_error (struct MHD_Connection *connection, unsigned int status, const char *message)
{
    char body [160];
    int n = snprintf (body, sizeof body, "{\"error\":\"%s\"}", message);
    return s_reply (connection, status, s_json, body, (size_t) n, false);
}

static enum MHD_Result
s_answer (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    (void) version;
    (void) upload_data;
    metrics_http_t *self = (metrics_http_t *) cls;
    /* The first call only announces the headers; a body, if any, is never read:
     * every answer is given on the second call, after MHD has taken the upload. */
    if (*req_cls == NULL) {
        *req_cls = self;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    bool get = strcmp (method, MHD_HTTP_METHOD_GET) == 0 || strcmp (method, MHD_HTTP_METHOD_HEAD) == 0;
    bool known = strcmp (url, "/metrics") == 0 || strcmp (url, "/healthz") == 0 || strcmp (url, "/ready") == 0;
    if (!known)
        return s_error (connection, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz or /ready");
    if (!get)
        return s_error (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET or HEAD");
    if (strcmp (url, "/metrics") == 0) {
        void (*refresh) (void) = __atomic_load_n (&self->refresh, __ATOMIC_ACQUIRE);
        if (refresh)
            refresh ();
        size_t size = 0;
        char *text = metrics_render (self->registry, &size);
        if (!text)
            return s_error (connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return s_reply (connection, MHD_HTTP_OK, s_text, text, size, true);
    }
    char body [512];
    int status = health_answer (strcmp (url, "/ready") == 0, self->stall_ms, body, sizeof body);
    return s_reply (connection, (unsigned int) status, s_json, body, strlen (body), false);
}

static void
s_log (void *cls, const char *format, va_list args)
{
    (void) cls;
    char line [512];
    vsnprintf (line, sizeof line, format, args);
    size_t n = strlen (line);
    while (n && (line [n - 1] == '\n' || line [n - 1] == '\r'))
        line [--n] = 0;
    log_warn (NULL, NULL, "metrics port: %s", line);
}

/* Parses "tcp://host:port" into addr. 0 ok, -1 not of the form metrics_http.h says. */
static int
s_parse (const char *address, struct sockaddr_storage *addr, bool *ipv6)
{
    static const char tcp [] = "tcp://";
    if (!address || strncmp (address, tcp, sizeof tcp - 1) != 0)
        return -1;
    const char *host = address + sizeof tcp - 1;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host)
        return -1;
    char *end = NULL;
    long port = strtol (colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 0 || port > 65535)
        return -1;
    char text [64];
    size_t length = (size_t) (colon - host);
    if (length >= 2 && host [0] == '[' && host [length - 1] == ']') {
        host++;
        length -= 2;
    }
    if (length >= sizeof text)
        return -1;
    memcpy (text, host, length);
    text [length] = 0;
    memset (addr, 0, sizeof *addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *) addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) addr;
    if (strcmp (text, "*") == 0) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl (INADDR_ANY);
        v4->sin_port = htons ((uint16_t) port);
        *ipv6 = false;
    }
    else
    if (inet_pton (AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons ((uint16_t) port);
        *ipv6 = false;
    }
    else
    if (inet_pton (AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons ((uint16_t) port);
        *ipv6 = true;
    }
    else
        return -1;              /* an interface name: ZeroMQ binds those, MHD does not */
    return 0;
}

metrics_http_t *
metrics_http_start (const char *address, metrics_t *registry, int64_t stall_ms)
{
    struct sockaddr_storage addr;
    bool ipv6 = false;
    if (s_parse (address, &addr, &ipv6) != 0) {
        log_error (NULL, NULL, "metrics port: cannot listen on %s (an IP address or * and a port)",
                   address ? address : "(none)");
        return NULL;
    }
    metrics_http_t *self = calloc (1, sizeof (metrics_http_t));
    if (!self)
        return NULL;
    self->registry = registry;
    self->stall_ms = stall_ms;
    /* The server's thread inherits this mask: every signal stays with the main
     * thread, whose poll must be interrupted by SIGTERM, not this thread's. */
    sigset_t all, previous;
    sigfillset (&all);
    pthread_sigmask (SIG_SETMASK, &all, &previous);
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG
                       | (ipv6 ? MHD_USE_IPv6 : 0);
    self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_answer, self,
                                     MHD_OPTION_EXTERNAL_LOGGER, s_log, NULL,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned int) S_CONNECTIONS,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) S_TIMEOUT_S,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) S_MEMORY,
                                     MHD_OPTION_END);
    pthread_sigmask (SIG_SETMASK, &previous, NULL);
    if (!self->daemon) {
        log_error (NULL, NULL, "metrics port: cannot listen on %s", address);
        free (self);
        return NULL;
    }
    log_info (NULL, NULL, "metrics port: /metrics, /healthz and /ready on %s (port %d)",
              address, metrics_http_port (self));
    return self;
}

void
metrics_http_on_scrape (metrics_http_t *self, void (*refresh) (void))
{
    /* Set before the first scrape in practice; a scrape racing it sees either. */
    if (self)
        __atomic_store_n (&self->refresh, refresh, __ATOMIC_RELEASE);
}

int
metrics_http_port (metrics_http_t *self)
{
    if (!self || !self->daemon)
        return 0;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void
metrics_http_stop (metrics_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    metrics_http_t *self = *self_p;
    if (self->daemon)
        MHD_stop_daemon (self->daemon);
    free (self);
    *self_p = NULL;
}
