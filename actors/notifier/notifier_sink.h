/* notifier_sink — where notifications go, behind one table of operations: a JSON
 * lines file and a ZeroMQ PUB socket now; Kafka and webhooks later, each in its own
 * file with its own constructor. The notifier delivers every batch to its sinks in
 * order and moves its checkpoint only when all of them said yes. */
#ifndef DOSSIER_NOTIFIER_SINK_H
#define DOSSIER_NOTIFIER_SINK_H

#include <stddef.h>
#include <stdint.h>

/* One notification ready to go (all borrowed from the caller). */
typedef struct {
    const char *topic;          /* notification_type, "" when the event had none */
    const char *json;           /* the payload: one compact JSON object, no newline */
    size_t json_size;
    const char *event_id;       /* the NotificationRequired event's id: consumers dedupe on it */
    int64_t position;           /* its global log position */
} notifier_item_t;

typedef struct {
    const char *name;
    /* Delivers the batch. 0 = delivered as durably as this sink can (the file is
     * fsynced); -1 = not delivered, the notifier retries the whole batch later
     * (so a sink may see a batch again: delivery is at least once). */
    int (*deliver) (void *state, const notifier_item_t *items, size_t count);
    /* Frees state; accepts NULL and nulls the pointer. */
    void (*destroy) (void **state_p);
} notifier_sink_ops_t;

typedef struct _notifier_sink_t notifier_sink_t;

/* Wraps an implementation: takes state (destroyed with the sink, also on failure).
 * Returns NULL on failure. Caller owns. */
notifier_sink_t *notifier_sink_new (const notifier_sink_ops_t *ops, void *state);
void notifier_sink_destroy (notifier_sink_t **self_p);
int notifier_sink_deliver (notifier_sink_t *self, const notifier_item_t *items, size_t count);
const char *notifier_sink_name (notifier_sink_t *self);

/* Appends one line per notification to path (created if missing, 0640) and fsyncs
 * before returning. A torn last line left by a crash is closed with a newline first,
 * so every line a reader sees is whole. Returns NULL if path cannot be opened. */
notifier_sink_t *notifier_sink_jsonl_new (const char *path);

/* Binds a PUB socket at endpoint; each notification is two frames, [topic][json].
 * Fire and forget: a subscriber that is away misses messages (the file is the record).
 * Returns NULL if the endpoint cannot be bound. */
notifier_sink_t *notifier_sink_zmq_new (const char *endpoint);

#endif
