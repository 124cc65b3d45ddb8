/* http_metrics — dossier_http_requests_total{route,status} and
 * dossier_http_request_duration_seconds{route}. Series pointers are kept per
 * (route, status): a request costs two array lookups, not a registry search. */
#include "http_metrics.h"
#include "http_routes.h"
#include "metrics_export.h"

#include <stdio.h>
#include <sys/time.h>

#define S_STATUS_MIN 100
#define S_STATUS_MAX 599

/* The route label of each action: the path pattern, as the API spec names it. */
static const char *s_route_labels [GW_ACT_COUNT] = {
    [GW_ACT_NOT_FOUND] = "unmatched",
    [GW_ACT_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [GW_ACT_HEALTH] = "/health",
    [GW_ACT_READY] = "/ready",
    [GW_ACT_LIST_CASES] = "/v1/cases",
    [GW_ACT_CREATE_CASE] = "/v1/cases",
    [GW_ACT_GET_CASE] = "/v1/cases/{id}",
    [GW_ACT_CASE_EVENTS] = "/v1/cases/{id}/events",
    [GW_ACT_CASE_DOCUMENTS] = "/v1/cases/{id}/documents",
    [GW_ACT_DECIDE_CASE] = "/v1/cases/{id}/decision",
    [GW_ACT_CLOSE_CASE] = "/v1/cases/{id}/close",
    [GW_ACT_GET_COMPANY] = "/v1/companies/{id}",
    [GW_ACT_COMPANY_OWNERS] = "/v1/companies/{id}/beneficial-owners",
    [GW_ACT_GET_PERSON] = "/v1/persons/{id}",
    [GW_ACT_GET_DOCUMENT] = "/v1/documents/{id}",
    [GW_ACT_UPDATE_DOCUMENT] = "/v1/documents/{id}/status",
    [GW_ACT_OPENAPI] = "/openapi.json",
    [GW_ACT_METRICS] = "/metrics",
};

static metric_t *s_requests [GW_ACT_COUNT][S_STATUS_MAX - S_STATUS_MIN + 1];
static metric_t *s_durations [GW_ACT_COUNT];

static void
s_count (gw_action_t action, int status, double seconds)
{
    metrics_t *registry = metrics_process ();
    if (!registry || action >= GW_ACT_COUNT)
        return;
    const char *route = s_route_labels [action] ? s_route_labels [action] : "unmatched";
    if (status < S_STATUS_MIN || status > S_STATUS_MAX)
        status = S_STATUS_MAX;
    metric_t **requests = &s_requests [action][status - S_STATUS_MIN];
    if (!*requests) {
        char labels [160];
        snprintf (labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, status);
        *requests = metrics_counter (registry, "dossier_http_requests_total",
                                     "HTTP answers by route pattern and status.", labels);
    }
    if (!s_durations [action]) {
        char labels [128];
        snprintf (labels, sizeof labels, "route=\"%s\"", route);
        s_durations [action] = metrics_histogram (registry, "dossier_http_request_duration_seconds",
                                                  "From a request's first byte to the start of its answer.",
                                                  labels, metrics_latency_buckets, metrics_latency_buckets_count);
    }
    metric_add (*requests, 1);
    metric_observe (s_durations [action], seconds);
}

static void
s_on_setup_ostream (h2o_filter_t *filter, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void) filter;
    gw_route_t route;
    gw_routes_match (req->method.base, req->method.len, req->path.base, req->path.len, &route);
    struct timeval now;
    gettimeofday (&now, NULL);
    const struct timeval *begin = &req->timestamps.request_begin_at;
    double seconds = begin->tv_sec ? (double) (now.tv_sec - begin->tv_sec) + (now.tv_usec - begin->tv_usec) / 1e6 : 0;
    s_count (route.action, req->res.status, seconds < 0 ? 0 : seconds);
    h2o_setup_next_ostream (req, slot);
}

int
gw_metrics_filter_register (h2o_pathconf_t *pathconf)
{
    h2o_filter_t *filter = h2o_create_filter (pathconf, sizeof (h2o_filter_t));
    if (!filter)
        return -1;
    filter->on_setup_ostream = s_on_setup_ostream;
    return 0;
}
