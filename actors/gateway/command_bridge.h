/* command_bridge — the gateway's link to the broker. A czmq actor thread owns the
 * DEALER socket; the HTTP event loop hands it commands without blocking and gets
 * replies back on its own thread through an h2o multithread queue. The bridge also
 * pings the broker every second so /ready can tell whether it answers. */
#ifndef DOSSIER_GW_COMMAND_BRIDGE_H
#define DOSSIER_GW_COMMAND_BRIDGE_H

#include "gw_h2o.h"
#include <stddef.h>

typedef struct _gw_bridge_t gw_bridge_t;

/* Called on the event-loop thread for each reply: type is "reply.ok" or
 * "reply.error", cause is the command id it answers, body the reply JSON (all
 * borrowed for the duration of the call). When the bridge could not hand a command
 * to the broker at all, it calls back with a reply.error of status 503. */
typedef void (gw_bridge_reply_fn) (void *arg, const char *cause, const char *type,
                                   const char *body, size_t body_size);

/* Starts the bridge thread, connected to the broker frontend at endpoint. Replies
 * are delivered through queue (the event loop's). Returns NULL on failure (a bad
 * endpoint). Call from the event-loop thread. */
gw_bridge_t *gw_bridge_new (const char *endpoint, h2o_multithread_queue_t *queue,
                            gw_bridge_reply_fn *reply_fn, void *reply_arg);
/* Stops the thread and drops replies not yet delivered. Call from the loop thread. */
void gw_bridge_destroy (gw_bridge_t **self_p);

/* Queues a command envelope for the broker (type, id = command id, key, corr; body
 * borrowed, copied). Never blocks. Returns 0 queued (a reply or a 503 will follow),
 * -1 if the bridge is saturated (answer 503 now). */
int gw_bridge_send (gw_bridge_t *self, const char *type, const char *command_id,
                    const char *key, const char *correlation_id, const char *traceparent,
                    const char *body, size_t body_size);

/* 1 if the broker answered a ctl.ping within the last 3 seconds, else 0. Any thread. */
int gw_bridge_broker_alive (gw_bridge_t *self);

#endif
