/* cli_window — each held line sits in exactly one of three FIFO lists: due (never
 * sent), sent (in send order = timeout order, since the timeout is one constant) and
 * retry (in 503 order = retry order). So every decision looks only at list heads. */
#include "cli_window.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

enum { S_DUE = 0, S_SENT, S_RETRY };

typedef struct s_slot_t s_slot_t;
struct s_slot_t {
    long line;
    char *data;
    size_t size;
    int list;
    int attempts;
    int64_t at_ms;              /* sent: when sent; retry: when the 503 came */
    s_slot_t *prev, *next;
};

typedef struct {
    s_slot_t *first, *last;
} s_list_t;

struct _cli_window_t {
    zhashx_t *slots;            /* "line" → s_slot_t (owned) */
    s_list_t lists [3];
    size_t capacity;
    size_t size;
    size_t resends;
    int64_t answer_timeout_ms;
    int64_t retry_delay_ms;
};

static void
s_slot_free (void **item_p)
{
    if (item_p && *item_p) {
        s_slot_t *slot = (s_slot_t *) *item_p;
        free (slot->data);
        free (slot);
        *item_p = NULL;
    }
}

cli_window_t *
cli_window_new (size_t capacity, int64_t answer_timeout_ms, int64_t retry_delay_ms)
{
    cli_window_t *self = calloc (1, sizeof (cli_window_t));
    if (!self)
        return NULL;
    self->slots = zhashx_new ();
    if (!self->slots) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->slots, s_slot_free);
    self->capacity = capacity ? capacity : 1;
    self->answer_timeout_ms = answer_timeout_ms;
    self->retry_delay_ms = retry_delay_ms;
    return self;
}

void
cli_window_destroy (cli_window_t **self_p)
{
    if (self_p && *self_p) {
        zhashx_destroy (&(*self_p)->slots);
        free (*self_p);
        *self_p = NULL;
    }
}

int
cli_window_has_room (cli_window_t *self)
{
    return self->size < self->capacity;
}

size_t
cli_window_size (cli_window_t *self)
{
    return self->size;
}

size_t
cli_window_resends (cli_window_t *self)
{
    return self->resends;
}

static void
s_push (cli_window_t *self, s_slot_t *slot, int list)
{
    s_list_t *l = &self->lists [list];
    slot->list = list;
    slot->next = NULL;
    slot->prev = l->last;
    if (l->last)
        l->last->next = slot;
    else
        l->first = slot;
    l->last = slot;
}

static void
s_unlink (cli_window_t *self, s_slot_t *slot)
{
    s_list_t *l = &self->lists [slot->list];
    if (slot->prev)
        slot->prev->next = slot->next;
    else
        l->first = slot->next;
    if (slot->next)
        slot->next->prev = slot->prev;
    else
        l->last = slot->prev;
    slot->prev = slot->next = NULL;
}

static s_slot_t *
s_lookup (cli_window_t *self, long line)
{
    char key [24];
    snprintf (key, sizeof key, "%ld", line);
    return (s_slot_t *) zhashx_lookup (self->slots, key);
}

int
cli_window_add (cli_window_t *self, long line, const char *data, size_t size, int64_t now_ms)
{
    (void) now_ms;
    if (line <= 0 || s_lookup (self, line))
        return -2;
    if (self->size >= self->capacity)
        return -1;
    s_slot_t *slot = calloc (1, sizeof (s_slot_t));
    if (!slot)
        return -1;
    slot->data = malloc (size ? size : 1);
    if (!slot->data) {
        free (slot);
        return -1;
    }
    if (size)
        memcpy (slot->data, data, size);
    slot->size = size;
    slot->line = line;
    char key [24];
    snprintf (key, sizeof key, "%ld", line);
    if (zhashx_insert (self->slots, key, slot) != 0) {
        free (slot->data);
        free (slot);
        return -1;
    }
    s_push (self, slot, S_DUE);
    self->size++;
    return 0;
}

long
cli_window_next_due (cli_window_t *self, int64_t now_ms, const char **data, size_t *size, int *attempt_p)
{
    s_slot_t *slot = self->lists [S_DUE].first;
    if (!slot) {
        s_slot_t *sent = self->lists [S_SENT].first;
        s_slot_t *retry = self->lists [S_RETRY].first;
        if (sent && sent->at_ms + self->answer_timeout_ms <= now_ms)
            slot = sent;
        else
        if (retry && retry->at_ms + self->retry_delay_ms <= now_ms)
            slot = retry;
    }
    if (!slot)
        return 0;
    if (slot->attempts > 0)
        self->resends++;
    s_unlink (self, slot);
    slot->attempts++;
    slot->at_ms = now_ms;
    s_push (self, slot, S_SENT);
    *data = slot->data;
    *size = slot->size;
    if (attempt_p)
        *attempt_p = slot->attempts;
    return slot->line;
}

int
cli_window_answer (cli_window_t *self, long line, int retry, int64_t now_ms)
{
    s_slot_t *slot = s_lookup (self, line);
    if (!slot)
        return CLI_WINDOW_STALE;
    if (retry) {
        /* Only a line in flight moves: one already waiting keeps its place. */
        if (slot->list == S_SENT) {
            s_unlink (self, slot);
            slot->at_ms = now_ms;
            s_push (self, slot, S_RETRY);
        }
        return CLI_WINDOW_RETRY;
    }
    s_unlink (self, slot);
    char key [24];
    snprintf (key, sizeof key, "%ld", line);
    zhashx_delete (self->slots, key);
    self->size--;
    return CLI_WINDOW_DONE;
}

size_t
cli_window_resend_all (cli_window_t *self)
{
    size_t count = 0;
    s_slot_t *slot;
    while ((slot = self->lists [S_SENT].first)) {
        s_unlink (self, slot);
        s_push (self, slot, S_DUE);
        count++;
    }
    return count;
}

int64_t
cli_window_next_timer (cli_window_t *self, int64_t now_ms)
{
    if (self->size == 0)
        return -1;
    if (self->lists [S_DUE].first)
        return 0;
    int64_t next = INT64_MAX;
    s_slot_t *sent = self->lists [S_SENT].first;
    s_slot_t *retry = self->lists [S_RETRY].first;
    if (sent && sent->at_ms + self->answer_timeout_ms < next)
        next = sent->at_ms + self->answer_timeout_ms;
    if (retry && retry->at_ms + self->retry_delay_ms < next)
        next = retry->at_ms + self->retry_delay_ms;
    return next <= now_ms ? 0 : next - now_ms;
}
