/* ingest_pending — hash of command id → FIFO of waiters (head at the broker), plus
 * one list of sent waiters in send order. Timeouts are one constant, so send order
 * is expiry order and expiry is O(1) at the head; a reply unlinks in O(1). */
#include "ingest_pending.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    ingest_waiter_t *head;              /* at the broker */
    ingest_waiter_t *tail;
} s_queue_t;

struct _ingest_pending_t {
    zhashx_t *by_command;               /* command id → s_queue_t (owned) */
    ingest_waiter_t *sent_first;        /* oldest sent */
    ingest_waiter_t *sent_last;
    size_t size;
    size_t limit;
};

ingest_waiter_t *
ingest_waiter_new (const char *command_id, const char *case_id, int source,
                   zframe_t *route, const char *request_id, long line)
{
    ingest_waiter_t *self = calloc (1, sizeof (ingest_waiter_t));
    if (!self)
        return NULL;
    envelope_set (self->command_id, sizeof self->command_id, command_id);
    envelope_set (self->case_id, sizeof self->case_id, case_id);
    envelope_set (self->request_id, sizeof self->request_id, request_id);
    self->source = source;
    self->line = line;
    if (route) {
        self->route = zframe_dup (route);
        if (!self->route) {
            free (self);
            return NULL;
        }
    }
    return self;
}

void
ingest_waiter_destroy (ingest_waiter_t **self_p)
{
    if (self_p && *self_p) {
        zframe_destroy (&(*self_p)->route);
        free ((*self_p)->raw);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_queue_free (void **item_p)
{
    if (item_p && *item_p) {
        s_queue_t *queue = (s_queue_t *) *item_p;
        while (queue->head) {
            ingest_waiter_t *waiter = queue->head;
            queue->head = waiter->next_same;
            ingest_waiter_destroy (&waiter);
        }
        free (queue);
        *item_p = NULL;
    }
}

ingest_pending_t *
ingest_pending_new (size_t limit)
{
    ingest_pending_t *self = calloc (1, sizeof (ingest_pending_t));
    if (!self)
        return NULL;
    self->by_command = zhashx_new ();
    if (!self->by_command) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->by_command, s_queue_free);
    self->limit = limit;
    return self;
}

void
ingest_pending_destroy (ingest_pending_t **self_p)
{
    if (self_p && *self_p) {
        zhashx_destroy (&(*self_p)->by_command);
        free (*self_p);
        *self_p = NULL;
    }
}

static void
s_sent_append (ingest_pending_t *self, ingest_waiter_t *waiter, int64_t now_ms)
{
    waiter->sent_ms = now_ms > 0 ? now_ms : 1;      /* 0 means "queued" */
    waiter->prev_sent = self->sent_last;
    waiter->next_sent = NULL;
    if (self->sent_last)
        self->sent_last->next_sent = waiter;
    else
        self->sent_first = waiter;
    self->sent_last = waiter;
}

static void
s_sent_unlink (ingest_pending_t *self, ingest_waiter_t *waiter)
{
    if (waiter->prev_sent)
        waiter->prev_sent->next_sent = waiter->next_sent;
    else
        self->sent_first = waiter->next_sent;
    if (waiter->next_sent)
        waiter->next_sent->prev_sent = waiter->prev_sent;
    else
        self->sent_last = waiter->prev_sent;
    waiter->prev_sent = waiter->next_sent = NULL;
}

int
ingest_pending_add (ingest_pending_t *self, ingest_waiter_t **waiter_p,
                    const char *raw, size_t raw_size, int64_t now_ms)
{
    ingest_waiter_t *waiter = *waiter_p;
    if (!waiter || self->size >= self->limit)
        return -1;
    s_queue_t *queue = (s_queue_t *) zhashx_lookup (self->by_command, waiter->command_id);
    if (queue) {
        /* Another record with this id is at the broker: wait for its answer. */
        waiter->raw = malloc (raw_size ? raw_size : 1);
        if (!waiter->raw)
            return -1;
        if (raw_size)
            memcpy (waiter->raw, raw, raw_size);
        waiter->raw_size = raw_size;
        waiter->sent_ms = 0;
        waiter->next_same = NULL;
        queue->tail->next_same = waiter;
        queue->tail = waiter;
        self->size++;
        *waiter_p = NULL;
        return 0;
    }
    queue = calloc (1, sizeof (s_queue_t));
    if (!queue)
        return -1;
    queue->head = queue->tail = waiter;
    waiter->next_same = NULL;
    if (zhashx_insert (self->by_command, waiter->command_id, queue) != 0) {
        free (queue);
        return -1;
    }
    s_sent_append (self, waiter, now_ms);
    self->size++;
    *waiter_p = NULL;
    return 1;
}

/* Detaches the head (the sent waiter) of command_id's queue; drops an empty queue. */
static ingest_waiter_t *
s_detach_head (ingest_pending_t *self, const char *command_id)
{
    s_queue_t *queue = (s_queue_t *) zhashx_lookup (self->by_command, command_id);
    if (!queue || !queue->head || queue->head->sent_ms == 0)
        return NULL;
    ingest_waiter_t *waiter = queue->head;
    queue->head = waiter->next_same;
    waiter->next_same = NULL;
    s_sent_unlink (self, waiter);
    self->size--;
    if (!queue->head) {
        queue->tail = NULL;
        zhashx_delete (self->by_command, command_id);
    }
    return waiter;
}

ingest_waiter_t *
ingest_pending_take (ingest_pending_t *self, const char *command_id)
{
    return command_id ? s_detach_head (self, command_id) : NULL;
}

ingest_waiter_t *
ingest_pending_promote (ingest_pending_t *self, const char *command_id, int64_t now_ms)
{
    s_queue_t *queue = (s_queue_t *) zhashx_lookup (self->by_command, command_id);
    if (!queue || !queue->head || queue->head->sent_ms != 0)
        return NULL;
    s_sent_append (self, queue->head, now_ms);
    return queue->head;
}

ingest_waiter_t *
ingest_pending_expire (ingest_pending_t *self, int64_t now_ms, int64_t timeout_ms)
{
    ingest_waiter_t *oldest = self->sent_first;
    if (!oldest || oldest->sent_ms > now_ms - timeout_ms)
        return NULL;
    /* The key is a field of the waiter being detached: copy it first. */
    char command_id [COMMAND_ID_MAX];
    memcpy (command_id, oldest->command_id, sizeof command_id);
    return s_detach_head (self, command_id);
}

int64_t
ingest_pending_next_expiry (ingest_pending_t *self, int64_t now_ms, int64_t timeout_ms)
{
    if (!self->sent_first)
        return -1;
    int64_t left = self->sent_first->sent_ms + timeout_ms - now_ms;
    return left > 0 ? left : 0;
}

size_t
ingest_pending_size (ingest_pending_t *self)
{
    return self->size;
}
