/* http_metrics — counts every answer the gateway gives, by route pattern and
 * status, and how long it took from the request's first byte to the answer's
 * start. An h2o output filter, so cached, routed, asynchronous and h2o's own
 * answers all count the same way. */
#ifndef DOSSIER_GW_HTTP_METRICS_H
#define DOSSIER_GW_HTTP_METRICS_H

#include <h2o.h>

/* Installs the filter on pathconf. 0 ok, -1 out of memory. */
int gw_metrics_filter_register (h2o_pathconf_t *pathconf);

#endif
