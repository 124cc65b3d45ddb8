/* http_routes — the gateway's routing table and request-line parsing: method +
 * path → action + path parameter, the GET /v1/cases query string, and the opaque
 * pagination cursor. Pure functions over bytes, so every odd input is unit-tested. */
#ifndef DOSSIER_GW_HTTP_ROUTES_H
#define DOSSIER_GW_HTTP_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#define GW_ID_MAX        128    /* a decoded {id} path parameter, NUL included */
#define GW_QUERY_VALUE_MAX 256  /* a decoded query value, NUL included */
#define GW_CURSOR_MAX     48
#define GW_LIMIT_DEFAULT  50
#define GW_LIMIT_MAX      500

typedef enum {
    GW_ACT_NOT_FOUND = 0,       /* no such path: 404 */
    GW_ACT_METHOD_NOT_ALLOWED,  /* known path, wrong method: 405 with route->allow */
    GW_ACT_HEALTH,
    GW_ACT_READY,
    GW_ACT_LIST_CASES,
    GW_ACT_CREATE_CASE,
    GW_ACT_GET_CASE,
    GW_ACT_CASE_EVENTS,
    GW_ACT_CASE_DOCUMENTS,
    GW_ACT_DECIDE_CASE,
    GW_ACT_CLOSE_CASE,
    GW_ACT_GET_COMPANY,
    GW_ACT_COMPANY_OWNERS,
    GW_ACT_GET_PERSON,
    GW_ACT_GET_DOCUMENT,
    GW_ACT_UPDATE_DOCUMENT,     /* POST /v1/documents/{id}/status and PATCH /v1/documents/{id} */
    GW_ACT_OPENAPI,             /* GET /openapi.json: the API's description */
    GW_ACT_METRICS              /* GET /metrics: Prometheus text of every process */
} gw_action_t;

#define GW_ACT_COUNT (GW_ACT_METRICS + 1)       /* how many actions there are */

typedef struct {
    gw_action_t action;
    int head;                   /* the method was HEAD: answer as GET without a body */
    const char *allow;          /* Allow header of the matched path (static), NULL if none */
    char id [GW_ID_MAX];        /* the decoded {id} segment, "" when the path has none */
} gw_route_t;

/* Routes a request. path is the request target as received; it may include a query
 * (ignored here). Never fails: unknown or malformed paths give GW_ACT_NOT_FOUND.
 * Segments are percent-decoded; an {id} must decode to 1..127 printable ASCII bytes. */
void gw_routes_match (const char *method, size_t method_len, const char *path, size_t path_len,
                      gw_route_t *route);

/* The filters and page of GET /v1/cases. Empty strings mean "no filter". */
typedef struct {
    char client_id [GW_QUERY_VALUE_MAX];
    char traitement_type [8];   /* "KYC" | "KYB" | "" */
    char status [32];           /* a case status or "" */
    int limit;                  /* 1..GW_LIMIT_MAX */
    int64_t after_seq;          /* from the cursor: list rows with seq > after_seq */
} gw_cases_query_t;

/* Parses the query string (the bytes after '?', may be empty or NULL). Unknown
 * parameters are ignored; an empty value means the parameter is absent.
 * Returns 0 ok, -2 invalid (detail holds a human reason for the 400). */
int gw_query_parse_cases (const char *query, size_t len, gw_cases_query_t *q,
                          char *detail, size_t detail_size);

/* 1 if s is a known case status (OPEN, AWAITING_DOCUMENTS, ...), else 0. */
int gw_query_is_case_status (const char *s);

/* Writes the opaque cursor that resumes a listing after seq. */
void gw_cursor_encode (int64_t seq, char out [GW_CURSOR_MAX]);
/* Reads a cursor back. Returns 0 ok, -2 if it is not one gw_cursor_encode made. */
int gw_cursor_decode (const char *s, size_t len, int64_t *seq);

/* Percent-decodes src into out (out_size includes the NUL). plus_is_space turns '+'
 * into ' ' (query strings). Returns the decoded length, or -2 on a bad escape, a
 * decoded NUL, or output that does not fit. */
int gw_percent_decode (const char *src, size_t len, char *out, size_t out_size, int plus_is_space);

#endif
