/* store_backend — the event log behind a table of operations, so the store actor
 * never sees SQL (or Mongo). A backend implements store_backend_ops_t in its own
 * file (store_sqlite.c, store_mongo.c); the actor only calls the store_backend_* wrappers. */
#ifndef DOSSIER_STORE_BACKEND_H
#define DOSSIER_STORE_BACKEND_H

#include "config.h"
#include "event.h"
#include "store_proto.h"

#include <stddef.h>
#include <stdint.h>

/* One event's data may be at most this large; bigger appends are refused so that
 * any single event always fits in one outgoing store.events message. */
#define STORE_BACKEND_EVENT_DATA_MAX (4 * 1024 * 1024)
/* Budget for the events of one outgoing store.events body (reads stop early, the
 * live feed is split); with the largest single event it stays under ENVELOPE_BODY_MAX. */
#define STORE_BACKEND_BODY_BUDGET    (12 * 1024 * 1024)
/* Upper bound of an encoded event's size beyond its data (keys, ids, integers). */
#define STORE_BACKEND_EVENT_OVERHEAD 800

/* What happened to one append of a batch. */
typedef enum {
    STORE_OUTCOME_APPENDED = 0,     /* events written; positions and version set */
    STORE_OUTCOME_DUPLICATE,        /* command id already stored; result/fingerprint set */
    STORE_OUTCOME_CONFLICT,         /* expected version mismatch; current_version set */
    STORE_OUTCOME_ERROR             /* nothing written; error/detail set */
} store_outcome_kind_t;

/* One append of a batch: the decoded request and the envelope's correlation id and
 * traceparent (all borrowed for the duration of the call; the traceparent may be
 * NULL or "", and store_backend_append_batch passes on only one that parses). Each
 * event of the append records them. */
typedef struct {
    const store_append_t *req;
    const char *correlation_id;
    const char *traceparent;
} store_batch_item_t;

typedef struct {
    store_outcome_kind_t kind;
    int64_t first_position, last_position;  /* APPENDED */
    int64_t version;                        /* APPENDED: stream version after the append */
    int64_t current_version;                /* CONFLICT */
    char *result;                           /* DUPLICATE: owned, free with store_outcomes_free */
    size_t result_size;
    char fingerprint [64];                  /* DUPLICATE */
    char error [64];                        /* ERROR: class, e.g. "invalid", "unavailable" */
    char detail [256];                      /* ERROR: human text */
} store_outcome_t;

/* A growable list of events that owns each event's data (event_t.data points
 * into memory this list frees). Used for read answers and the live feed. */
typedef struct {
    event_t *events;
    size_t count;
    size_t capacity;
    size_t bytes;           /* encoded size bound: data + STORE_BACKEND_EVENT_OVERHEAD each */
    int64_t head;           /* the log's head position when the list was filled */
} store_events_t;

/* The table of operations a backend implements. `impl` is the backend's own
 * state, opaque to everyone else. Return codes: 0 ok, -1 failed. */
typedef struct {
    const char *name;
    /* Opens (creating if needed) the log at location: a file path, a URI...
     * config may be NULL (defaults); backends read their own tuning keys from it.
     * Returns the backend state or NULL. */
    void *(*open) (const char *location, config_t *config);
    void  (*close) (void *impl);
    /* Applies items in order in ONE durable transaction; fills outcomes[i] for each.
     * Events get ts = now_us, positions head+1.. without gaps. Returns 0 when the
     * transaction committed (outcomes say what each append did), -1 when it did not:
     * then every outcome is STORE_OUTCOME_ERROR and nothing was written. */
    int   (*append_batch) (void *impl, const store_batch_item_t *items, size_t count,
                           int64_t now_us, store_outcome_t *outcomes);
    /* Events of stream with version >= from_version, ascending, at most max and
     * within STORE_BACKEND_BODY_BUDGET (always at least one if any); sets out->head. */
    int   (*read_stream) (void *impl, const char *stream, int64_t from_version, size_t max,
                          store_events_t *out);
    /* Events with position >= from_position, ascending, same caps; sets out->head. */
    int   (*read_all) (void *impl, int64_t from_position, size_t max, store_events_t *out);
    /* The last assigned position (0 when empty). */
    int   (*head) (void *impl, int64_t *head);
    /* Optional (may be NULL): the store has gone quiet; give back what a burst
     * made the backend hold (caches beyond their size). */
    void  (*idle) (void *impl);
} store_backend_ops_t;

/* Backends compiled in. */
extern const store_backend_ops_t store_sqlite_ops;
extern const store_backend_ops_t store_mongo_ops;      /* store_mongo.c: location is the URI */

typedef struct _store_backend_t store_backend_t;

/* Backend by name ("sqlite" or empty, "mongodb"); NULL when unknown. */
const store_backend_ops_t *store_backend_lookup (const char *name);

/* Opens a backend. Returns NULL on failure (logged). Caller owns; destroy with
 * store_backend_destroy. */
store_backend_t *store_backend_new (const store_backend_ops_t *ops, const char *location, config_t *config);
void store_backend_destroy (store_backend_t **self_p);
const char *store_backend_name (store_backend_t *self);

/* Checks each item for what any backend would refuse (oversized event data...) and
 * marks those outcomes ERROR before handing the rest to the backend. outcomes has
 * count entries and is cleared first. Returns what the backend's append_batch
 * returns. Free results with store_outcomes_free. */
int store_backend_append_batch (store_backend_t *self, const store_batch_item_t *items, size_t count,
                                int64_t now_us, store_outcome_t *outcomes);
void store_outcomes_free (store_outcome_t *outcomes, size_t count);

/* Reads: max is capped at STORE_READ_MAX. out is reset first. 0 ok, -1 failed. */
int store_backend_read_stream (store_backend_t *self, const char *stream, int64_t from_version,
                               size_t max, store_events_t *out);
int store_backend_read_all (store_backend_t *self, int64_t from_position, size_t max, store_events_t *out);
int store_backend_head (store_backend_t *self, int64_t *head);
/* The store has gone quiet: the backend gives back memory it can (see ops.idle). */
void store_backend_idle (store_backend_t *self);


/* store_events_t: init to empty, push a copy of ev (data copied), reset (frees). */
void store_events_init (store_events_t *self);
int  store_events_push (store_events_t *self, const event_t *ev);
void store_events_reset (store_events_t *self);

#endif
