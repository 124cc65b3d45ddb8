/* notifier_sink — the generic half of the sink table: a sink is its operations plus
 * the implementation's state, so the notifier never knows which outputs it feeds. */
#include "notifier_sink.h"

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
