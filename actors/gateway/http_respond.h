/* http_respond — how the gateway writes an answer into h2o: a JSON body copied into
 * the request's pool, a shared body sent without a copy, the {"error","detail"}
 * answer, and a filter that turns h2o's own plain-text error pages (a body over
 * h2o's limit, broken chunked encoding, an unknown Expect) into that same JSON. */
#ifndef DOSSIER_GW_HTTP_RESPOND_H
#define DOSSIER_GW_HTTP_RESPOND_H

#include "gw_h2o.h"
#include "http_reply.h"

#include <stddef.h>

/* Answers req with status and body (copied) as application/json. HEAD gets the
 * headers of the GET answer, Content-Length included, and no body. */
void gw_respond (h2o_req_t *req, int status, const char *body, size_t len);

/* Same with another media type (content_type must live as long as the process). */
void gw_respond_text (h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);

/* Same, for a body that lives as long as the process (no copy). */
void gw_respond_static (h2o_req_t *req, int status, const char *body, size_t len);

/* Same, for a body in memory from h2o_mem_alloc_shared: the request takes a
 * reference (h2o_mem_link_shared) instead of a copy, so the caller may release its
 * own at once. */
void gw_respond_shared (h2o_req_t *req, int status, const char *shared_base, const char *body, size_t len);

/* Answers {"error": error, "detail": detail}, built in scratch (borrowed, reused).
 * Server errors other than 503 are logged with the request line. */
void gw_respond_error (h2o_req_t *req, gw_buf_t *scratch, int status, const char *error, const char *detail);

/* Installs the error-page filter on pathconf (do it for the host's fallback path
 * too: h2o answers requests it could not route from there). Returns 0, -1 on OOM. */
int gw_respond_filter_register (h2o_pathconf_t *pathconf);

#endif
