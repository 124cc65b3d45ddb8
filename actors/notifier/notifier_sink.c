/* notifier_sink — the generic half of the sink table: a sink is its operations plus
 * the implementation's state, so the notifier never knows which outputs it feeds. */
#include "notifier_sink.h"

#include <stdint.h>
#include <stdlib.h>

struct _notifier_sink_t {
    const notifier_sink_ops_t *ops;
    void *state;
};

notifier_sink_t *
notifier_sink_new (const notifier_sink_ops_t *ops, void *state)
{
    notifier_sink_t *self = ops && ops->deliver && ops->destroy ? calloc (1, sizeof (notifier_sink_t)) : NULL;
    if (!self) {
        if (ops && ops->destroy)
            ops->destroy (&state);
        return NULL;
    }
    self->ops = ops;
    self->state = state;
    return self;
}

void
notifier_sink_destroy (notifier_sink_t **self_p)
{
    if (self_p && *self_p) {
        notifier_sink_t *self = *self_p;
        self->ops->destroy (&self->state);
        free (self);
        *self_p = NULL;
    }
}

int
notifier_sink_deliver (notifier_sink_t *self, const notifier_item_t *items, size_t count)
{
    if (count == 0)
        return 0;
    return self->ops->deliver (self->state, items, count);
}

const char *
notifier_sink_name (notifier_sink_t *self)
{
    return self->ops->name;
}

int
notifier_sink_ready (notifier_sink_t *self, size_t count)
{
    return self->ops->ready ? self->ops->ready (self->state, count) : 1;
}

int64_t
notifier_sink_settled (notifier_sink_t *self)
{
    return self->ops->settled ? self->ops->settled (self->state) : INT64_MAX;
}

int
notifier_sink_fd (notifier_sink_t *self)
{
    return self->ops->fd ? self->ops->fd (self->state) : -1;
}

int
notifier_sink_timeout (notifier_sink_t *self)
{
    return self->ops->timeout ? self->ops->timeout (self->state) : -1;
}

int
notifier_sink_service (notifier_sink_t *self)
{
    return self->ops->service ? self->ops->service (self->state) : 0;
}

int
notifier_sink_flush (notifier_sink_t *self, int timeout_ms)
{
    return self->ops->flush ? self->ops->flush (self->state, timeout_ms) : 0;
}
