/* gateway_commands — the write side of the REST API: POST /v1/cases, decisions,
 * closing, document status. Each request is checked (media type, size, JSON,
 * fields), becomes one broker command, and waits without blocking the loop for the
 * reply matched by command id, or a timeout (503). Loop thread only. */
#ifndef DOSSIER_GW_GATEWAY_COMMANDS_H
#define DOSSIER_GW_GATEWAY_COMMANDS_H

#include "gw_h2o.h"
#include "http_routes.h"
#include "readmodel_reader.h"

#include <stddef.h>

typedef struct _gw_commands_t gw_commands_t;

/* Connects to the broker frontend at broker_endpoint (command_bridge.h); replies come
 * back through queue, timeouts run on loop. reader (borrowed, must outlive this)
 * answers "does this case / document exist". body_limit: largest accepted body.
 * Returns NULL on failure (logged). */
gw_commands_t *gw_commands_new (const char *broker_endpoint, gw_reader_t *reader, h2o_loop_t *loop,
                                h2o_multithread_queue_t *queue, size_t body_limit, int timeout_ms);
/* Drops every waiting command (their clients get nothing more) and stops the bridge. */
void gw_commands_destroy (gw_commands_t **self_p);

/* Handles a write route: GW_ACT_CREATE_CASE, GW_ACT_DECIDE_CASE, GW_ACT_CLOSE_CASE
 * or GW_ACT_UPDATE_DOCUMENT. Answers req now (a 4xx/5xx) or once the reply comes. */
void gw_commands_handle (gw_commands_t *self, h2o_req_t *req, const gw_route_t *route);

/* 1 if the broker answered a ping within the last seconds (for /ready). */
int gw_commands_broker_alive (gw_commands_t *self);

#endif
