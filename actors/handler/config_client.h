/* config_client — asynchronous HTTP GETs to the configuration service with libcurl's
 * multi interface, driven from the owner's poll loop (libcurl's sockets go into its
 * zmq_poll), so a slow or dead service never blocks the handler. Every transfer has a
 * connect and a total timeout; easy handles are kept and reused and the multi handle
 * keeps connections alive between requests. At most `slots` transfers run at once,
 * the rest wait in a bounded FIFO queue; one key is never asked twice at a time. */
#ifndef DOSSIER_CONFIG_CLIENT_H
#define DOSSIER_CONFIG_CLIENT_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_CLIENT_BODY_MAX   (1024 * 1024)  /* a longer answer is a failed transfer */
#define CONFIG_CLIENT_QUEUE_MAX  1024
#define CONFIG_CLIENT_ETAG_MAX   128

/* One finished transfer (everything borrowed, valid during the callback only). */
typedef struct {
    const char *key;            /* as given to config_client_get */
    int answered;               /* 1: an HTTP answer came (status is set); 0: transport failure */
    long status;                /* HTTP status */
    const char *body;           /* NUL-terminated */
    size_t size;
    const char *etag;           /* the answer's ETag, "" when none */
    const char *error;          /* transport failure (timeout, refused, too large), "" otherwise */
    int64_t elapsed_ms;
} config_client_result_t;

typedef void (config_client_done_fn) (const config_client_result_t *result, void *arg);

typedef struct _config_client_t config_client_t;

/* base_url: "http://host:port" (a trailing "/" is dropped); only http and https are
 * used. Timeouts in milliseconds (>= 1). NULL on failure (bad URL, out of memory).
 * Caller owns. curl_global_init must have been called. */
config_client_t *config_client_new (const char *base_url, long connect_timeout_ms, long timeout_ms,
                                    size_t slots);
void config_client_destroy (config_client_t **self_p);

/* Asks for GET base_url + path (path starts with "/"; its query already escaped) on
 * behalf of key, with If-None-Match: etag when etag is non-empty. Returns 0 when it is
 * started, queued, or already asked for that key; -1 when the queue is full or out of
 * memory. */
int config_client_get (config_client_t *self, const char *key, const char *path, const char *etag);

/* 1 while a request for key is queued or in flight. */
int config_client_busy (config_client_t *self, const char *key);
/* Requests queued or in flight. */
size_t config_client_pending (config_client_t *self);

/* Puts the file descriptors libcurl waits on into items (at most max); returns how
 * many it wrote. Call before each zmq_poll. */
size_t config_client_pollitems (config_client_t *self, zmq_pollitem_t *items, size_t max);
/* Milliseconds until config_client_perform is due (0: now), -1 when idle. */
long config_client_timeout (config_client_t *self);
/* Moves transfers on and calls done for each finished one; then starts queued ones.
 * Call after each zmq_poll (cheap when idle). done may call config_client_get. */
void config_client_perform (config_client_t *self, config_client_done_fn *done, void *arg);

/* Percent-encodes value (RFC 3986 unreserved kept) into out (size bytes). Returns 0,
 * -1 when it does not fit. */
int config_client_escape (const char *value, char *out, size_t size);

#endif
