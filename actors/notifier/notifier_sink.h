/* notifier_sink — where notifications go, behind one table of operations: a JSON
 * lines file, a ZeroMQ PUB socket and Kafka, each in its own file with its own
 * constructor. The notifier delivers every batch to its sinks in order and moves
 * its checkpoint only past what all of them settled. */
#ifndef DOSSIER_NOTIFIER_SINK_H
#define DOSSIER_NOTIFIER_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* One notification ready to go (all borrowed from the caller). */
typedef struct {
    const char *topic;          /* notification_type, "" when the event had none */
    const char *json;           /* the payload: one compact JSON object, no newline */
    size_t json_size;
    const char *event_id;       /* the NotificationRequired event's id: consumers dedupe on it */
    int64_t position;           /* its global log position */
    const char *case_id;        /* the event's stream (the case id): the Kafka key; may be NULL */
    int64_t time_us;            /* the event's time, microseconds since the epoch */
    const char *traceparent;    /* the event's W3C traceparent; NULL or "" when it has none */
} notifier_item_t;

typedef struct {
    const char *name;
    /* Delivers the batch. 0 = delivered, or for a sink that settles later
     * (settled() below) accepted; -1 = not delivered, the notifier retries the
     * whole batch later (so a sink may see a batch again: at least once). */
    int (*deliver) (void *state, const notifier_item_t *items, size_t count);
    /* Frees state; accepts NULL and nulls the pointer. */
    void (*destroy) (void **state_p);

    /* Optional: a sink that confirms later (Kafka; the file, which fsyncs later).
     * For such a sink deliver() = 0 means "accepted": it copied the items (or
     * wrote them) and owns their delivery from now on;
     * -1 means "not accepted, nothing kept". NULL entries behave as a synchronous
     * sink: always ready, nothing outstanding, no fd, no timer. */
    /* 1 if deliver() would accept count more items now, 0 to push back. */
    int (*ready) (void *state, size_t count);
    /* The highest position P such that every item at or below P that this sink
     * accepted is settled (delivered, or dead-lettered and that delivered);
     * INT64_MAX when nothing is outstanding. */
    int64_t (*settled) (void *state);
    /* A file descriptor that becomes readable when service() has work, or -1. */
    int (*fd) (void *state);
    /* Milliseconds until service() has timed work (retries), -1 for none. */
    int (*timeout) (void *state);
    /* Does the pending work (delivery reports, retries); never blocks. 0 ok, -1 the
     * sink is broken for good (the process should stop and be restarted). */
    int (*service) (void *state);
    /* Waits up to timeout_ms for everything outstanding to settle (at stop).
     * 0 all settled, -1 not all in time (they are re-sent after a restart). */
    int (*flush) (void *state, int timeout_ms);
} notifier_sink_ops_t;

typedef struct _notifier_sink_t notifier_sink_t;

/* Wraps an implementation: takes state (destroyed with the sink, also on failure).
 * Returns NULL on failure. Caller owns. */
notifier_sink_t *notifier_sink_new (const notifier_sink_ops_t *ops, void *state);
void notifier_sink_destroy (notifier_sink_t **self_p);
int notifier_sink_deliver (notifier_sink_t *self, const notifier_item_t *items, size_t count);
const char *notifier_sink_name (notifier_sink_t *self);
/* The optional operations, with the synchronous defaults described above. */
int notifier_sink_ready (notifier_sink_t *self, size_t count);
int64_t notifier_sink_settled (notifier_sink_t *self);
int notifier_sink_fd (notifier_sink_t *self);
int notifier_sink_timeout (notifier_sink_t *self);
int notifier_sink_service (notifier_sink_t *self);
int notifier_sink_flush (notifier_sink_t *self, int timeout_ms);

/* Appends one line per notification to path (created if missing, 0640), one write per
 * batch, and fsyncs what was written within 50 ms (service(); flush() at once); a line
 * is settled only once fsynced, and a failed fsync breaks the sink for good. A torn
 * last line left by a crash is closed with a newline first, so every line a reader
 * sees is whole. Returns NULL if path cannot be opened. */
notifier_sink_t *notifier_sink_jsonl_new (const char *path);

/* Binds a PUB socket at endpoint; each notification is two frames, [topic][json].
 * Fire and forget: a subscriber that is away misses messages (the file is the record).
 * Returns NULL if the endpoint cannot be bound. */
notifier_sink_t *notifier_sink_zmq_new (const char *endpoint);

/* Produces each notification to Kafka (notifier_sink_kafka.h has the contract):
 * idempotent producer, key = case id, value = the JSON, id and CloudEvents headers;
 * after notify_max_attempts failures to notify_dlt_topic. Settles an item only on a
 * successful delivery report. Returns NULL if the configuration is refused (logged). */
notifier_sink_t *notifier_sink_kafka_new (config_t *config);

#endif
