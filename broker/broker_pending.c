/* broker_pending — FIFO of waiting commands. Waits start when a command is
 * queued, and queueing order is time order, so the oldest is always first. */
#include "broker_pending.h"

#include <stdlib.h>

struct _broker_pending_t {
    zlist_t *queue;         /* broker_command_t, owned */
    size_t max;
};

broker_pending_t *
broker_pending_new (size_t max)
{
    broker_pending_t *self = calloc (1, sizeof (broker_pending_t));
    if (!self)
        return NULL;
    self->queue = zlist_new ();
    if (!self->queue) {
        free (self);
        return NULL;
    }
    self->max = max;
    return self;
}

void
broker_pending_destroy (broker_pending_t **self_p)
{
    if (self_p && *self_p) {
        broker_pending_t *self = *self_p;
        broker_command_t *command;
        while ((command = (broker_command_t *) zlist_pop (self->queue)))
            broker_command_destroy (&command);
        zlist_destroy (&self->queue);
        free (self);
        *self_p = NULL;
    }
}

size_t
broker_pending_size (broker_pending_t *self)
{
    return zlist_size (self->queue);
}

int
broker_pending_push (broker_pending_t *self, broker_command_t **command_p, int64_t now_ms)
{
    if (zlist_size (self->queue) >= self->max)
        return -1;
    (*command_p)->since_ms = now_ms;
    if (zlist_append (self->queue, *command_p))
        return -1;
    *command_p = NULL;
    return 0;
}

broker_command_t *
broker_pending_pop (broker_pending_t *self)
{
    return (broker_command_t *) zlist_pop (self->queue);
}

broker_command_t *
broker_pending_take_expired (broker_pending_t *self, int64_t now_ms, int64_t max_age_ms)
{
    broker_command_t *first = (broker_command_t *) zlist_first (self->queue);
    if (!first || now_ms - first->since_ms <= max_age_ms)
        return NULL;
    return (broker_command_t *) zlist_pop (self->queue);
}
