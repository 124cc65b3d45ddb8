/* http_routes — one static table of paths, matched segment by segment on the
 * percent-decoded path. The table is the single place that knows which methods a
 * path allows, so 405 answers and their Allow headers cannot drift from routing. */
#include "http_routes.h"

#include <stdio.h>
#include <string.h>

#define S_MAX_SEGMENTS 4
#define S_PARAM        "{id}"

typedef struct {
    const char *segments [S_MAX_SEGMENTS];
    size_t count;
    const char *allow;
    gw_action_t on_get;         /* HEAD follows GET */
    gw_action_t on_post;
    gw_action_t on_patch;
} s_route_def_t;

static const s_route_def_t s_routes [] = {
    { { "health" },                                   1, "GET, HEAD",       GW_ACT_HEALTH,         0, 0 },
    { { "ready" },                                    1, "GET, HEAD",       GW_ACT_READY,          0, 0 },
    { { "openapi.json" },                             1, "GET, HEAD",       GW_ACT_OPENAPI,        0, 0 },
    { { "metrics" },                                  1, "GET, HEAD",       GW_ACT_METRICS,        0, 0 },
    { { "v1", "cases" },                              2, "GET, HEAD, POST", GW_ACT_LIST_CASES,     GW_ACT_CREATE_CASE, 0 },
    { { "v1", "cases", S_PARAM },                     3, "GET, HEAD",       GW_ACT_GET_CASE,       0, 0 },
    { { "v1", "cases", S_PARAM, "events" },           4, "GET, HEAD",       GW_ACT_CASE_EVENTS,    0, 0 },
    { { "v1", "cases", S_PARAM, "documents" },        4, "GET, HEAD",       GW_ACT_CASE_DOCUMENTS, 0, 0 },
    { { "v1", "cases", S_PARAM, "decision" },         4, "POST",            0, GW_ACT_DECIDE_CASE, 0 },
    { { "v1", "cases", S_PARAM, "close" },            4, "POST",            0, GW_ACT_CLOSE_CASE,  0 },
    { { "v1", "companies", S_PARAM },                 3, "GET, HEAD",       GW_ACT_GET_COMPANY,    0, 0 },
    { { "v1", "companies", S_PARAM, "beneficial-owners" }, 4, "GET, HEAD",  GW_ACT_COMPANY_OWNERS, 0, 0 },
    { { "v1", "persons", S_PARAM },                   3, "GET, HEAD",       GW_ACT_GET_PERSON,     0, 0 },
    { { "v1", "documents", S_PARAM },                 3, "GET, HEAD, PATCH", GW_ACT_GET_DOCUMENT,  0, GW_ACT_UPDATE_DOCUMENT },
    { { "v1", "documents", S_PARAM, "status" },       4, "POST",            0, GW_ACT_UPDATE_DOCUMENT, 0 },
};

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
gw_percent_decode (const char *src, size_t len, char *out, size_t out_size, int plus_is_space)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src [i];
        if (c == '%') {
            if (len - i < 3)
                return -2;
            int hi = s_hex (src [i + 1]), lo = s_hex (src [i + 2]);
            if (hi < 0 || lo < 0)
                return -2;
            c = (char) (hi * 16 + lo);
            i += 2;
        }
        else
        if (c == '+' && plus_is_space)
            c = ' ';
        if (c == 0 || n + 1 >= out_size)
            return -2;
        out [n++] = c;
    }
    if (out_size == 0)
        return -2;
    out [n] = 0;
    return (int) n;
}

/* 1 if the decoded id is usable: 1..GW_ID_MAX-1 printable ASCII bytes, no '/'
 * (an encoded slash must not smuggle a path into an id). */
static int
s_valid_id (const char *id, size_t len)
{
    if (len == 0 || len >= GW_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) id [i] < 0x21 || (unsigned char) id [i] > 0x7e || id [i] == '/')
            return 0;
    return 1;
}

static int
s_method_is (const char *method, size_t len, const char *name)
{
    return len == strlen (name) && memcmp (method, name, len) == 0;
}

/* 1 if the segment (len bytes at seg) is the NUL-terminated name. */
static int
s_segment_is (const char *seg, size_t len, const char *name)
{
    return strncmp (name, seg, len) == 0 && name [len] == 0;
}

void
gw_routes_match (const char *method, size_t method_len, const char *path, size_t path_len,
                 gw_route_t *route)
{
    route->action = GW_ACT_NOT_FOUND;
    route->head = 0;
    route->allow = NULL;
    route->id [0] = 0;
    if (!method || !path || path_len == 0 || path [0] != '/')
        return;

    /* Split into at most S_MAX_SEGMENTS segments, up to the query (or a stray
     * fragment), which are not part of the route. Empty segments ("//", a trailing
     * slash) match nothing, so they fall out as 404. A segment with escapes is
     * decoded into decoded[]; the others are used as they are, without a copy. */
    const char *seg [S_MAX_SEGMENTS];
    size_t seg_len [S_MAX_SEGMENTS];
    char decoded [S_MAX_SEGMENTS][GW_ID_MAX];
    size_t count = 0;
    size_t pos = 1;
    while (1) {
        size_t end = pos;
        int escaped = 0;
        while (end < path_len && path [end] != '/' && path [end] != '?' && path [end] != '#') {
            if (path [end] == '%')
                escaped = 1;
            end++;
        }
        if (count == S_MAX_SEGMENTS || end == pos)
            return;
        if (escaped) {
            int n = gw_percent_decode (path + pos, end - pos, decoded [count], GW_ID_MAX, 0);
            if (n <= 0)
                return;
            seg [count] = decoded [count];
            seg_len [count] = (size_t) n;
        }
        else {
            /* as gw_percent_decode would: at most GW_ID_MAX - 1 bytes, no NUL */
            if (end - pos >= GW_ID_MAX || memchr (path + pos, 0, end - pos))
                return;
            seg [count] = path + pos;
            seg_len [count] = end - pos;
        }
        count++;
        if (end >= path_len || path [end] != '/')
            break;
        pos = end + 1;
    }

    for (size_t r = 0; r < sizeof s_routes / sizeof s_routes [0]; r++) {
        const s_route_def_t *def = &s_routes [r];
        if (def->count != count)
            continue;
        int param = -1;
        size_t i;
        for (i = 0; i < count; i++) {
            if (def->segments [i][0] == '{')
                param = (int) i;
            else
            if (!s_segment_is (seg [i], seg_len [i], def->segments [i]))
                break;
        }
        if (i < count)
            continue;
        if (param >= 0 && !s_valid_id (seg [param], seg_len [param]))
            return;
        route->allow = def->allow;
        if (param >= 0) {
            memcpy (route->id, seg [param], seg_len [param]);
            route->id [seg_len [param]] = 0;
        }
        gw_action_t action = 0;
        if (s_method_is (method, method_len, "GET"))
            action = def->on_get;
        else
        if (s_method_is (method, method_len, "HEAD")) {
            action = def->on_get;
            route->head = action != 0;
        }
        else
        if (s_method_is (method, method_len, "POST"))
            action = def->on_post;
        else
        if (s_method_is (method, method_len, "PATCH"))
            action = def->on_patch;
        route->action = action ? action : GW_ACT_METHOD_NOT_ALLOWED;
        return;
    }
}

/* --- GET /v1/cases query --- */

static const char *s_case_statuses [] = {
    "OPEN", "AWAITING_DOCUMENTS", "IN_REVIEW", "APPROVED", "REJECTED", "CLOSED"
};

int
gw_query_is_case_status (const char *s)
{
    for (size_t i = 0; i < sizeof s_case_statuses / sizeof s_case_statuses [0]; i++)
        if (strcmp (s, s_case_statuses [i]) == 0)
            return 1;
    return 0;
}

/* Parses a decimal 1..GW_LIMIT_MAX with nothing around it. */
static int
s_parse_limit (const char *s, int *out)
{
    size_t len = strlen (s);
    if (len == 0 || len > 3)
        return -2;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s [i] < '0' || s [i] > '9')
            return -2;
        n = n * 10 + (s [i] - '0');
    }
    if (n < 1 || n > GW_LIMIT_MAX)
        return -2;
    *out = n;
    return 0;
}

int
gw_query_parse_cases (const char *query, size_t len, gw_cases_query_t *q,
                      char *detail, size_t detail_size)
{
    memset (q, 0, sizeof (*q));
    q->limit = GW_LIMIT_DEFAULT;
    int seen_client = 0, seen_type = 0, seen_status = 0, seen_limit = 0, seen_cursor = 0;
    size_t pos = 0;
    while (query && pos < len) {
        size_t end = pos;
        while (end < len && query [end] != '&')
            end++;
        size_t eq = pos;
        while (eq < end && query [eq] != '=')
            eq++;
        const char *raw_key = query + pos;
        size_t raw_key_len = eq - pos;
        const char *raw_val = eq < end ? query + eq + 1 : query + end;
        size_t raw_val_len = eq < end ? end - eq - 1 : 0;
        pos = end + 1;
        if (raw_key_len == 0 && raw_val_len == 0)
            continue;       /* "a=1&&b=2" */

        char key [32];
        if (gw_percent_decode (raw_key, raw_key_len, key, sizeof key, 1) < 0)
            continue;       /* not a key we know, whatever it is */
        int *seen = NULL;
        if (strcmp (key, "client_id") == 0)
            seen = &seen_client;
        else
        if (strcmp (key, "traitement_type") == 0)
            seen = &seen_type;
        else
        if (strcmp (key, "status") == 0)
            seen = &seen_status;
        else
        if (strcmp (key, "limit") == 0)
            seen = &seen_limit;
        else
        if (strcmp (key, "cursor") == 0)
            seen = &seen_cursor;
        else
            continue;
        if (*seen) {
            snprintf (detail, detail_size, "parameter %s given more than once", key);
            return -2;
        }
        *seen = 1;
        char value [GW_QUERY_VALUE_MAX];
        if (gw_percent_decode (raw_val, raw_val_len, value, sizeof value, 1) < 0) {
            snprintf (detail, detail_size, "parameter %s is badly encoded or longer than %d bytes",
                      key, GW_QUERY_VALUE_MAX - 1);
            return -2;
        }
        if (!value [0])
            continue;
        if (seen == &seen_client)
            memcpy (q->client_id, value, strlen (value) + 1);
        else
        if (seen == &seen_type) {
            if (strcmp (value, "KYC") != 0 && strcmp (value, "KYB") != 0) {
                snprintf (detail, detail_size, "traitement_type must be KYC or KYB");
                return -2;
            }
            memcpy (q->traitement_type, value, 4);
        }
        else
        if (seen == &seen_status) {
            if (!gw_query_is_case_status (value)) {
                snprintf (detail, detail_size, "status must be one of OPEN, AWAITING_DOCUMENTS, "
                          "IN_REVIEW, APPROVED, REJECTED, CLOSED");
                return -2;
            }
            memcpy (q->status, value, strlen (value) + 1);
        }
        else
        if (seen == &seen_limit) {
            if (s_parse_limit (value, &q->limit)) {
                snprintf (detail, detail_size, "limit must be an integer from 1 to %d", GW_LIMIT_MAX);
                return -2;
            }
        }
        else
        if (gw_cursor_decode (value, strlen (value), &q->after_seq)) {
            snprintf (detail, detail_size, "cursor is not one this service issued");
            return -2;
        }
    }
    return 0;
}

/* --- cursor: base64url (no padding) of "v1:<seq>" --- */

static const char s_b64 [] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int
s_b64_value (char c)
{
    const char *p = c ? strchr (s_b64, c) : NULL;
    return p ? (int) (p - s_b64) : -1;
}

void
gw_cursor_encode (int64_t seq, char out [GW_CURSOR_MAX])
{
    char plain [32];
    int n = snprintf (plain, sizeof plain, "v1:%lld", (long long) (seq < 0 ? 0 : seq));
    size_t o = 0;
    for (int i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) (unsigned char) plain [i] << 16;
        if (i + 1 < n)
            v |= (uint32_t) (unsigned char) plain [i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char) plain [i + 2];
        out [o++] = s_b64 [(v >> 18) & 63];
        out [o++] = s_b64 [(v >> 12) & 63];
        if (i + 1 < n)
            out [o++] = s_b64 [(v >> 6) & 63];
        if (i + 2 < n)
            out [o++] = s_b64 [v & 63];
    }
    out [o] = 0;
}

int
gw_cursor_decode (const char *s, size_t len, int64_t *seq)
{
    /* "v1:" + at most 19 digits is 22 bytes, 30 base64 characters. */
    if (!s || len < 4 || len > 30 || len % 4 == 1)
        return -2;
    char plain [32];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = s_b64_value (s [i]);
        if (v < 0)
            return -2;
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            plain [n++] = (char) ((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits must be zero, or two strings would decode alike. */
    if (acc & ((1u << bits) - 1))
        return -2;
    if (n < 4 || memcmp (plain, "v1:", 3) != 0)
        return -2;
    int64_t value = 0;
    for (size_t i = 3; i < n; i++) {
        if (plain [i] < '0' || plain [i] > '9')
            return -2;
        int digit = plain [i] - '0';
        if (value > (INT64_MAX - digit) / 10)
            return -2;
        value = value * 10 + digit;
    }
    /* Canonical form only: no leading zeros. */
    if (plain [3] == '0' && n > 4)
        return -2;
    *seq = value;
    return 0;
}
