/* notifier_sink_zmq — notifications published on a PUB socket, [topic][json], the
 * topic being the notification type so subscribers can filter (e.g. "EMAIL"). */
#include "notifier_sink.h"

#include <czmq.h>

#include "log.h"

typedef struct {
    zsock_t *pub;
} s_zmq_t;

static void
s_zmq_destroy (void **state_p)
{
    if (state_p && *state_p) {
        s_zmq_t *self = (s_zmq_t *) *state_p;
        zsock_destroy (&self->pub);
        free (self);
        *state_p = NULL;
    }
}

static int
s_zmq_deliver (void *state, const notifier_item_t *items, size_t count)
{
    s_zmq_t *self = (s_zmq_t *) state;
    void *sock = zsock_resolve (self->pub);
    for (size_t i = 0; i < count; i++) {
        const char *topic = items [i].topic ? items [i].topic : "";
        /* PUB never blocks: with no subscriber, or a slow one, messages are dropped. */
        if (zmq_send (sock, topic, strlen (topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
        ||  zmq_send (sock, items [i].json, items [i].json_size, ZMQ_DONTWAIT) < 0) {
            log_warn (NULL, NULL, "notifier: publish of event %s failed: %s", items [i].event_id,
                      zmq_strerror (zmq_errno ()));
            return -1;
        }
    }
    return 0;
}

static const notifier_sink_ops_t s_zmq_ops = {
    .name = "zmq",
    .deliver = s_zmq_deliver,
    .destroy = s_zmq_destroy,
};

notifier_sink_t *
notifier_sink_zmq_new (const char *endpoint)
{
    if (!endpoint)
        return NULL;
    s_zmq_t *self = calloc (1, sizeof (s_zmq_t));
    if (!self)
        return NULL;
    self->pub = zsock_new (ZMQ_PUB);
    if (self->pub) {
        zsock_set_linger (self->pub, 0);
        if (zsock_bind (self->pub, "%s", endpoint) == -1) {      /* tcp: returns the port */
            log_error (NULL, NULL, "notifier: cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
            zsock_destroy (&self->pub);
        }
    }
    if (!self->pub) {
        void *state = self;
        s_zmq_destroy (&state);
        return NULL;
    }
    return notifier_sink_new (&s_zmq_ops, self);
}
