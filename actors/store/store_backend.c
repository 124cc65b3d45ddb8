/* store_backend — the backend-neutral half of the event log: lookup by name, the
 * checks every backend shares, and the event lists reads and the live feed use.
 * Backend-specific code lives in store_<backend>.c behind store_backend_ops_t. */
#include "store_backend.h"
#include "log.h"
#include "traceparent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _store_backend_t {
    const store_backend_ops_t *ops;
    void *impl;
};

const store_backend_ops_t *
store_backend_lookup (const char *name)
{
    if (!name || !*name || strcmp (name, store_sqlite_ops.name) == 0)
        return &store_sqlite_ops;
    if (strcmp (name, store_mongo_ops.name) == 0)
        return &store_mongo_ops;
    return NULL;
}

store_backend_t *
store_backend_new (const store_backend_ops_t *ops, const char *location, config_t *config)
{
    if (!ops || !location)
        return NULL;
    store_backend_t *self = calloc (1, sizeof (store_backend_t));
    if (!self)
        return NULL;
    self->ops = ops;
    self->impl = ops->open (location, config);
    if (!self->impl) {
        free (self);
        return NULL;
    }
    return self;
}

void
store_backend_destroy (store_backend_t **self_p)
{
    if (self_p && *self_p) {
        store_backend_t *self = *self_p;
        self->ops->close (self->impl);
        free (self);
        *self_p = NULL;
    }
}

const char *
store_backend_name (store_backend_t *self)
{
    return self->ops->name;
}

static void
s_outcome_error (store_outcome_t *outcome, const char *error, const char *detail)
{
    outcome->kind = STORE_OUTCOME_ERROR;
    snprintf (outcome->error, sizeof outcome->error, "%s", error);
    snprintf (outcome->detail, sizeof outcome->detail, "%s", detail);
}

int
store_backend_append_batch (store_backend_t *self, const store_batch_item_t *items, size_t count,
                            int64_t now_us, store_outcome_t *outcomes)
{
    memset (outcomes, 0, count * sizeof (store_outcome_t));
    if (count == 0)
        return 0;
    /* Refused items are passed to the backend as NULL requests, which it skips:
     * that keeps outcomes[i] aligned with items[i] without a second array. */
    store_batch_item_t *checked = calloc (count, sizeof (store_batch_item_t));
    if (!checked) {
        for (size_t i = 0; i < count; i++)
            s_outcome_error (&outcomes [i], "unavailable", "store out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        checked [i] = items [i];
        /* Checked where it entered (gateway, ingest); checked again before it is kept
         * for good, so the log never holds a value no reader can parse. */
        traceparent_t trace;
        const char *tp = items [i].traceparent;
        if (tp && (!tp [0] || traceparent_parse (tp, strlen (tp), &trace) != 0))
            checked [i].traceparent = NULL;
        const store_append_t *req = items [i].req;
        const char *why = NULL;
        if (!req || req->count == 0 || req->count > STORE_APPEND_MAX_EVENTS)
            why = "an append needs 1 to 1000 events";
        else
        if (req->expected_version < -1)
            why = "expected_version must be -1, 0 or a version";
        else
        if (!req->stream [0] || !req->command_id [0])
            why = "stream and command_id are required";
        else
            for (size_t e = 0; e < req->count && !why; e++)
                if (req->events [e].data_size > STORE_BACKEND_EVENT_DATA_MAX)
                    why = "event data over 4 MiB";
        if (why) {
            s_outcome_error (&outcomes [i], "invalid", why);
            checked [i].req = NULL;
        }
    }
    int rc = self->ops->append_batch (self->impl, checked, count, now_us, outcomes);
    free (checked);
    return rc;
}

void
store_outcomes_free (store_outcome_t *outcomes, size_t count)
{
    for (size_t i = 0; outcomes && i < count; i++) {
        free (outcomes [i].result);
        outcomes [i].result = NULL;
        outcomes [i].result_size = 0;
    }
}

int
store_backend_read_stream (store_backend_t *self, const char *stream, int64_t from_version,
                           size_t max, store_events_t *out)
{
    store_events_reset (out);
    if (!stream || !*stream)
        return -1;
    if (max > STORE_READ_MAX)
        max = STORE_READ_MAX;
    if (from_version < 1)
        from_version = 1;
    return self->ops->read_stream (self->impl, stream, from_version, max, out);
}

int
store_backend_read_all (store_backend_t *self, int64_t from_position, size_t max, store_events_t *out)
{
    store_events_reset (out);
    if (max > STORE_READ_MAX)
        max = STORE_READ_MAX;
    if (from_position < 1)
        from_position = 1;
    return self->ops->read_all (self->impl, from_position, max, out);
}

int
store_backend_head (store_backend_t *self, int64_t *head)
{
    return self->ops->head (self->impl, head);
}

void
store_backend_idle (store_backend_t *self)
{
    if (self && self->ops->idle)
        self->ops->idle (self->impl);
}

void
store_events_init (store_events_t *self)
{
    memset (self, 0, sizeof (*self));
}

int
store_events_push (store_events_t *self, const event_t *ev)
{
    if (self->count == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 64;
        event_t *events = realloc (self->events, capacity * sizeof (event_t));
        if (!events)
            return -1;
        self->events = events;
        self->capacity = capacity;
    }
    /* +1 so an empty payload still owns a distinct, non-NULL buffer. */
    char *data = malloc (ev->data_size + 1);
    if (!data)
        return -1;
    if (ev->data_size)
        memcpy (data, ev->data, ev->data_size);
    data [ev->data_size] = 0;
    self->events [self->count] = *ev;
    self->events [self->count].data = data;
    self->count++;
    self->bytes += ev->data_size + STORE_BACKEND_EVENT_OVERHEAD;
    return 0;
}

void
store_events_reset (store_events_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free ((void *) self->events [i].data);
    free (self->events);
    memset (self, 0, sizeof (*self));
}
