/* http_respond — writing answers into h2o. Every answer the gateway gives is JSON;
 * h2o answers a few requests itself before any handler runs (a Content-Length over
 * its limit, broken chunked encoding, an unknown Expect, a target it cannot route)
 * with a text/plain page, so an output filter rewrites exactly those. */
#include "http_respond.h"
#include "log.h"

#include <string.h>

static h2o_generator_t s_generator = { NULL, NULL };

static const char s_json [] = "application/json";

static int
s_is_head (h2o_req_t *req)
{
    return h2o_memis (req->method.base, req->method.len, H2O_STRLIT ("HEAD"));
}

/* Status line and headers of an answer of type content_type, then the body (or
 * none for HEAD). */
static void
s_send_typed (h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = gw_reply_reason (status);
    req->res.content_length = len;
    h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type",
                    content_type, strlen (content_type));
    h2o_start_response (req, &s_generator);
    h2o_iovec_t buf = h2o_iovec_init (body, len);
    if (s_is_head (req) || !len)
        h2o_send (req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send (req, &buf, 1, H2O_SEND_STATE_FINAL);
}

static void
s_send (h2o_req_t *req, int status, const char *body, size_t len)
{
    s_send_typed (req, status, s_json, body, len);
}

void
gw_respond_text (h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    char *copy = NULL;
    if (len && !s_is_head (req)) {
        copy = h2o_mem_alloc_pool (&req->pool, len);
        memcpy (copy, body, len);
    }
    s_send_typed (req, status, content_type, copy, len);
}

void
gw_respond (h2o_req_t *req, int status, const char *body, size_t len)
{
    char *copy = NULL;
    /* HEAD sends no body: no need for a copy of one. */
    if (len && !s_is_head (req)) {
        copy = h2o_mem_alloc_pool (&req->pool, len);
        memcpy (copy, body, len);
    }
    s_send (req, status, copy, len);
}

void
gw_respond_static (h2o_req_t *req, int status, const char *body, size_t len)
{
    s_send (req, status, body, len);
}

void
gw_respond_shared (h2o_req_t *req, int status, const char *shared_base, const char *body, size_t len)
{
    /* The reference lives as long as the request's pool, which outlives any write
     * h2o still has pending on the body. */
    if (!s_is_head (req))
        h2o_mem_link_shared (&req->pool, (void *) shared_base);
    s_send (req, status, body, len);
}

void
gw_respond_error (h2o_req_t *req, gw_buf_t *scratch, int status, const char *error, const char *detail)
{
    /* 503s are expected while a dependency is down and are reported where the
     * cause is known; other server errors deserve a line each. */
    if (status >= 500 && status != 503)
        log_warn (NULL, NULL, "%.*s %.*s -> %d %s", (int) req->method.len, req->method.base,
                  (int) (req->path.len > 200 ? 200 : req->path.len), req->path.base, status, error);
    if (gw_reply_error_body (scratch, error, detail) == 0)
        gw_respond (req, status, scratch->data, scratch->size);
    else {
        static const char fallback [] = "{\"error\":\"internal\",\"detail\":\"out of memory\"}";
        gw_respond (req, 500, fallback, sizeof fallback - 1);
    }
}

/* --- h2o's own error pages --- */

typedef struct {
    h2o_ostream_t super;
} s_rewrite_t;

/* The error class for a status h2o answers by itself. */
static const char *
s_error_class (int status)
{
    switch (status) {
        case 404: return "not_found";
        case 405: return "method_not_allowed";
        case 413: return "payload_too_large";
        case 417: return "expectation_failed";
        default:  return status >= 500 ? "internal" : "bad_request";
    }
}

/* Replaces the plain-text page with {"error","detail"}, the page's text (or the
 * reason phrase) as detail. h2o sends such a page in one final piece. */
static void
s_rewrite_send (h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    if (h2o_send_state_is_in_progress (state)) {
        h2o_ostream_send_next (self, req, NULL, 0, state);
        return;
    }
    gw_buf_t text;
    gw_buf_init (&text);
    for (size_t i = 0; i < bufcnt; i++)
        gw_buf_append (&text, bufs [i].base, bufs [i].len);
    if (!text.size && req->res.reason)
        gw_buf_append_str (&text, req->res.reason);
    gw_buf_t json;
    gw_buf_init (&json);
    const char *detail = gw_buf_cstr (&text);
    gw_reply_error_body (&json, s_error_class (req->res.status), detail ? detail : "");
    h2o_iovec_t body = h2o_iovec_init (NULL, 0);
    if (!json.failed) {
        body.base = h2o_mem_alloc_pool (&req->pool, json.size);
        memcpy (body.base, json.data, json.size);
        body.len = json.size;
    }
    gw_buf_free (&text);
    gw_buf_free (&json);
    /* The final stream writes the headers on its first send: still time to fix them. */
    req->res.content_length = body.len;
    if (s_is_head (req) || !body.len)
        h2o_ostream_send_next (self, req, NULL, 0, state);
    else
        h2o_ostream_send_next (self, req, &body, 1, state);
}

static void
s_on_setup_ostream (h2o_filter_t *filter, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void) filter;
    if (req->res.status >= 400) {
        ssize_t ct = h2o_find_header (&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
        int ours = ct >= 0 && h2o_memis (req->res.headers.entries [ct].value.base,
                                         req->res.headers.entries [ct].value.len, s_json, sizeof s_json - 1);
        if (!ours) {
            if (ct >= 0)
                req->res.headers.entries [ct].value = h2o_iovec_init (s_json, sizeof s_json - 1);
            else
                h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type",
                                s_json, sizeof s_json - 1);
            s_rewrite_t *rewrite = (s_rewrite_t *) h2o_add_ostream (req, sizeof (s_rewrite_t), slot);
            rewrite->super.do_send = s_rewrite_send;
            slot = &rewrite->super.next;
        }
    }
    h2o_setup_next_ostream (req, slot);
}

int
gw_respond_filter_register (h2o_pathconf_t *pathconf)
{
    h2o_filter_t *filter = h2o_create_filter (pathconf, sizeof (h2o_filter_t));
    if (!filter)
        return -1;
    filter->on_setup_ostream = s_on_setup_ostream;
    return 0;
}
