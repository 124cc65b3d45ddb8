/* config_client — libcurl multi + a few reused easy handles. Options that never change
 * are set once per easy handle; each request only sets its URL and headers. Finished
 * transfers are collected with curl_multi_info_read after curl_multi_perform. */
#include "config_client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

typedef struct {
    CURL *easy;                 /* created on first use, reused for every later request */
    int busy;
    char *key;
    struct curl_slist *headers;
    char *body;
    size_t size, cap;
    int too_large;
    int64_t started_ms;
    char error [CURL_ERROR_SIZE];
} s_slot_t;

typedef struct {
    char *key, *path, *etag;
} s_request_t;

struct _config_client_t {
    CURLM *multi;
    char *base;
    long connect_ms, timeout_ms;
    s_slot_t *slots;
    size_t slot_count;
    size_t running;             /* slots busy */
    zlistx_t *queue;            /* s_request_t, oldest first */
    int in_perform;
};

static void
s_request_destroy (void **item)
{
    if (item && *item) {
        s_request_t *req = (s_request_t *) *item;
        free (req->key);
        free (req->path);
        free (req->etag);
        free (req);
        *item = NULL;
    }
}

static size_t
s_on_body (char *data, size_t size, size_t nmemb, void *arg)
{
    s_slot_t *slot = (s_slot_t *) arg;
    size_t n = size * nmemb;
    if (slot->size + n > CONFIG_CLIENT_BODY_MAX) {
        slot->too_large = 1;
        return 0;               /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (slot->size + n + 1 > slot->cap) {
        size_t cap = slot->cap ? slot->cap : 4096;
        while (cap < slot->size + n + 1)
            cap *= 2;
        char *body = realloc (slot->body, cap);
        if (!body)
            return 0;
        slot->body = body;
        slot->cap = cap;
    }
    memcpy (slot->body + slot->size, data, n);
    slot->size += n;
    slot->body [slot->size] = 0;
    return n;
}

config_client_t *
config_client_new (const char *base_url, long connect_timeout_ms, long timeout_ms, size_t slots)
{
    if (!base_url || (strncmp (base_url, "http://", 7) != 0 && strncmp (base_url, "https://", 8) != 0))
        return NULL;
    config_client_t *self = calloc (1, sizeof (config_client_t));
    if (!self)
        return NULL;
    self->base = strdup (base_url);
    self->slot_count = slots ? slots : 1;
    self->slots = calloc (self->slot_count, sizeof (s_slot_t));
    self->queue = zlistx_new ();
    self->multi = curl_multi_init ();
    if (!self->base || !self->slots || !self->queue || !self->multi) {
        config_client_destroy (&self);
        return NULL;
    }
    size_t len = strlen (self->base);
    while (len > 0 && self->base [len - 1] == '/')
        self->base [--len] = 0;
    zlistx_set_destructor (self->queue, s_request_destroy);
    self->connect_ms = connect_timeout_ms > 0 ? connect_timeout_ms : 1;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, (long) self->slot_count);
    return self;
}

static void
s_slot_clear (s_slot_t *slot)
{
    free (slot->key);
    slot->key = NULL;
    curl_slist_free_all (slot->headers);
    slot->headers = NULL;
    slot->size = 0;
    slot->too_large = 0;
    slot->error [0] = 0;
    slot->busy = 0;
}

void
config_client_destroy (config_client_t **self_p)
{
    if (self_p && *self_p) {
        config_client_t *self = *self_p;
        for (size_t i = 0; self->slots && i < self->slot_count; i++) {
            s_slot_t *slot = &self->slots [i];
            if (slot->easy) {
                if (slot->busy && self->multi)
                    curl_multi_remove_handle (self->multi, slot->easy);
                curl_easy_cleanup (slot->easy);
            }
            s_slot_clear (slot);
            free (slot->body);
        }
        free (self->slots);
        if (self->multi)
            curl_multi_cleanup (self->multi);
        zlistx_destroy (&self->queue);
        free (self->base);
        free (self);
        *self_p = NULL;
    }
}

/* The options every request of this slot shares. Returns 0, -1. */
static int
s_slot_init (config_client_t *self, s_slot_t *slot)
{
    slot->easy = curl_easy_init ();
    if (!slot->easy)
        return -1;
    CURL *e = slot->easy;
    curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, self->connect_ms);
    curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt (e, CURLOPT_USERAGENT, "dossier-handler");
    curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (e, CURLOPT_WRITEDATA, slot);
    curl_easy_setopt (e, CURLOPT_PRIVATE, slot);
    curl_easy_setopt (e, CURLOPT_ERRORBUFFER, slot->error);
    return 0;
}

/* Starts req on a free slot (req's strings are taken). Returns 0, -1. */
static int
s_start (config_client_t *self, s_slot_t *slot, s_request_t *req)
{
    if (!slot->easy && s_slot_init (self, slot) != 0)
        return -1;
    size_t size = strlen (self->base) + strlen (req->path) + 1;
    char *url = malloc (size);
    if (!url)
        return -1;
    snprintf (url, size, "%s%s", self->base, req->path);
    struct curl_slist *headers = curl_slist_append (NULL, "Accept: application/json");
    if (headers && req->etag && *req->etag) {
        char line [CONFIG_CLIENT_ETAG_MAX + 32];
        snprintf (line, sizeof line, "If-None-Match: %s", req->etag);
        struct curl_slist *more = curl_slist_append (headers, line);
        if (!more) {
            curl_slist_free_all (headers);
            headers = NULL;
        }
        else
            headers = more;
    }
    if (!headers) {
        free (url);
        return -1;
    }
    curl_easy_setopt (slot->easy, CURLOPT_URL, url);   /* libcurl copies the string */
    curl_easy_setopt (slot->easy, CURLOPT_HTTPHEADER, headers);
    free (url);
    slot->headers = headers;
    slot->key = req->key;
    req->key = NULL;
    slot->size = 0;
    slot->too_large = 0;
    slot->error [0] = 0;
    slot->started_ms = zclock_mono ();
    if (curl_multi_add_handle (self->multi, slot->easy) != CURLM_OK) {
        s_slot_clear (slot);
        return -1;
    }
    slot->busy = 1;
    self->running++;
    return 0;
}

static s_slot_t *
s_free_slot (config_client_t *self)
{
    for (size_t i = 0; i < self->slot_count; i++)
        if (!self->slots [i].busy)
            return &self->slots [i];
    return NULL;
}

/* Starts queued requests while slots are free. Returns how many started. */
static size_t
s_start_queued (config_client_t *self)
{
    size_t started = 0;
    s_slot_t *slot;
    while (zlistx_size (self->queue) > 0 && (slot = s_free_slot (self))) {
        s_request_t *req = (s_request_t *) zlistx_first (self->queue);
        if (s_start (self, slot, req) == 0)
            started++;
        /* A request that cannot start (out of memory) is dropped: its key is no longer
         * busy, so the owner's deadline lets its waiters go on without it. */
        zlistx_delete (self->queue, zlistx_cursor (self->queue));
    }
    return started;
}

int
config_client_busy (config_client_t *self, const char *key)
{
    for (size_t i = 0; i < self->slot_count; i++)
        if (self->slots [i].busy && strcmp (self->slots [i].key, key) == 0)
            return 1;
    for (s_request_t *req = (s_request_t *) zlistx_first (self->queue); req;
         req = (s_request_t *) zlistx_next (self->queue))
        if (strcmp (req->key, key) == 0)
            return 1;
    return 0;
}

size_t
config_client_pending (config_client_t *self)
{
    return self->running + zlistx_size (self->queue);
}

int
config_client_get (config_client_t *self, const char *key, const char *path, const char *etag)
{
    if (!key || !path || path [0] != '/')
        return -1;
    if (config_client_busy (self, key))
        return 0;
    if (zlistx_size (self->queue) >= CONFIG_CLIENT_QUEUE_MAX)
        return -1;
    s_request_t *req = calloc (1, sizeof (s_request_t));
    if (req) {
        req->key = strdup (key);
        req->path = strdup (path);
        req->etag = strdup (etag ? etag : "");
    }
    if (!req || !req->key || !req->path || !req->etag || !zlistx_add_end (self->queue, req)) {
        void *item = req;
        s_request_destroy (&item);
        return -1;
    }
    /* Inside perform, the queue is served once the finished transfers are collected. */
    if (!self->in_perform && s_start_queued (self) > 0) {
        int still_running;
        curl_multi_perform (self->multi, &still_running);
    }
    return 0;
}

size_t
config_client_pollitems (config_client_t *self, zmq_pollitem_t *items, size_t max)
{
    if (self->running == 0)
        return 0;
    fd_set rd, wr, ex;
    FD_ZERO (&rd);
    FD_ZERO (&wr);
    FD_ZERO (&ex);
    int maxfd = -1;
    if (curl_multi_fdset (self->multi, &rd, &wr, &ex, &maxfd) != CURLM_OK)
        return 0;
    size_t n = 0;
    for (int fd = 0; fd <= maxfd && n < max; fd++) {
        short events = (short) ((FD_ISSET (fd, &rd) ? ZMQ_POLLIN : 0) | (FD_ISSET (fd, &wr) ? ZMQ_POLLOUT : 0));
        if (events || FD_ISSET (fd, &ex))
            items [n++] = (zmq_pollitem_t) { NULL, fd, (short) (events | ZMQ_POLLERR), 0 };
    }
    return n;
}

long
config_client_timeout (config_client_t *self)
{
    if (self->running == 0)
        return zlistx_size (self->queue) ? 0 : -1;
    long ms = -1;
    if (curl_multi_timeout (self->multi, &ms) != CURLM_OK || ms < 0)
        ms = 50;                /* libcurl has no timer yet (e.g. resolving): look again soon */
    return ms > 50 ? 50 : ms;   /* sockets that are not in the poll set yet (connecting) */
}

void
config_client_perform (config_client_t *self, config_client_done_fn *done, void *arg)
{
    if (self->running == 0 && zlistx_size (self->queue) == 0)
        return;
    self->in_perform = 1;
    int still_running = 0;
    curl_multi_perform (self->multi, &still_running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read (self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        s_slot_t *slot = NULL;
        curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &slot);
        if (!slot)
            continue;
        config_client_result_t result;
        memset (&result, 0, sizeof result);
        result.key = slot->key;
        result.body = slot->body && slot->size ? slot->body : "";
        result.size = slot->size;
        result.etag = "";
        result.error = "";
        result.elapsed_ms = zclock_mono () - slot->started_ms;
        if (code == CURLE_OK) {
            result.answered = 1;
            curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &result.status);
            struct curl_header *header = NULL;
            if (curl_easy_header (easy, "ETag", 0, CURLH_HEADER, -1, &header) == CURLHE_OK
            &&  header && header->value && strlen (header->value) < CONFIG_CLIENT_ETAG_MAX)
                result.etag = header->value;
        }
        else
        if (slot->too_large)
            result.error = "answer larger than 1 MiB";
        else
            result.error = slot->error [0] ? slot->error : curl_easy_strerror (code);
        /* No longer busy for done: it may ask for the same key again (queued, as
         * this slot is only freed below). */
        slot->busy = 0;
        self->running--;
        if (done)
            done (&result, arg);
        curl_multi_remove_handle (self->multi, easy);
        s_slot_clear (slot);
    }
    self->in_perform = 0;
    if (s_start_queued (self) > 0)
        curl_multi_perform (self->multi, &still_running);
}

int
config_client_escape (const char *value, char *out, size_t size)
{
    static const char hex [] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) (value ? value : ""); *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (n + (keep ? 1 : 3) >= size)
            return -1;
        if (keep)
            out [n++] = (char) *p;
        else {
            out [n++] = '%';
            out [n++] = hex [*p >> 4];
            out [n++] = hex [*p & 15];
        }
    }
    if (n >= size)
        return -1;
    out [n] = 0;
    return 0;
}
