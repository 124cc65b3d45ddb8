/* broker_inflight — a hash by (client, command id) for replies, a list in
 * dispatch order for expiry and ordered re-dispatch, and per-partition pin
 * counts. Every entry is in the hash and the list; the pin counts them. */
#include "broker_inflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    broker_command_t *command;      /* owned */
    void *handle;                   /* its place in the dispatch-order list */
    char key [2 * BROKER_ID_MAX + ENVELOPE_ID_MAX + 2];
} s_entry_t;

typedef struct {
    broker_id_t worker;
    size_t count;                   /* commands of this partition in flight */
} s_pin_t;

struct _broker_inflight_t {
    zhashx_t *entries;              /* key -> s_entry_t, owns entries */
    zlistx_t *order;                /* s_entry_t, dispatch order, borrows */
    zhashx_t *pins;                 /* partition -> s_pin_t, owns pins */
};

static void
s_entry_destroy (void **item)
{
    s_entry_t *entry = (s_entry_t *) *item;
    if (entry) {
        broker_command_destroy (&entry->command);
        free (entry);
        *item = NULL;
    }
}

static void
s_pin_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

broker_inflight_t *
broker_inflight_new (void)
{
    broker_inflight_t *self = calloc (1, sizeof (broker_inflight_t));
    if (!self)
        return NULL;
    self->entries = zhashx_new ();
    self->order = zlistx_new ();
    self->pins = zhashx_new ();
    if (!self->entries || !self->order || !self->pins) {
        broker_inflight_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->entries, s_entry_destroy);
    zhashx_set_destructor (self->pins, s_pin_destroy);
    return self;
}

void
broker_inflight_destroy (broker_inflight_t **self_p)
{
    if (self_p && *self_p) {
        broker_inflight_t *self = *self_p;
        zlistx_destroy (&self->order);
        zhashx_destroy (&self->entries);
        zhashx_destroy (&self->pins);
        free (self);
        *self_p = NULL;
    }
}

size_t
broker_inflight_size (broker_inflight_t *self)
{
    return zhashx_size (self->entries);
}

/* "<client hex>|<command id>": identities are binary, hash keys are strings. */
static void
s_key (const broker_id_t *client, const char *command_id, char *out, size_t out_size)
{
    char hex [2 * BROKER_ID_MAX + 1];
    broker_id_hex (client, hex, sizeof hex);
    snprintf (out, out_size, "%s|%s", hex, command_id);
}

const broker_id_t *
broker_inflight_pinned (broker_inflight_t *self, const char *partition)
{
    s_pin_t *pin = (s_pin_t *) zhashx_lookup (self->pins, partition);
    return pin ? &pin->worker : NULL;
}

broker_command_t *
broker_inflight_add (broker_inflight_t *self, broker_command_t **command_p, int64_t now_ms)
{
    broker_command_t *command = *command_p;
    *command_p = NULL;
    s_entry_t *entry = calloc (1, sizeof (s_entry_t));
    if (!entry) {
        broker_command_destroy (&command);
        return NULL;
    }
    s_key (&command->client, command->id, entry->key, sizeof entry->key);
    s_entry_t *existing = (s_entry_t *) zhashx_lookup (self->entries, entry->key);
    if (existing) {
        /* A client retry of a command still in flight: one copy is enough. */
        broker_command_destroy (&command);
        free (entry);
        return existing->command;
    }
    s_pin_t *pin = (s_pin_t *) zhashx_lookup (self->pins, command->partition);
    if (!pin) {
        pin = calloc (1, sizeof (s_pin_t));
        if (!pin || zhashx_insert (self->pins, command->partition, pin)) {
            free (pin);
            broker_command_destroy (&command);
            free (entry);
            return NULL;
        }
        pin->worker = command->worker;
    }
    entry->command = command;
    command->since_ms = now_ms;
    entry->handle = zlistx_add_end (self->order, entry);
    if (!entry->handle || zhashx_insert (self->entries, entry->key, entry)) {
        if (entry->handle)
            zlistx_delete (self->order, entry->handle);
        if (pin->count == 0)
            zhashx_delete (self->pins, command->partition);
        s_entry_destroy ((void **) &entry);
        return NULL;
    }
    pin->count++;
    return command;
}

/* Unlinks entry from list, hash and pin; returns its command (caller owns). */
static broker_command_t *
s_take (broker_inflight_t *self, s_entry_t *entry)
{
    broker_command_t *command = entry->command;
    entry->command = NULL;
    s_pin_t *pin = (s_pin_t *) zhashx_lookup (self->pins, command->partition);
    if (pin && --pin->count == 0)
        zhashx_delete (self->pins, command->partition);
    zlistx_delete (self->order, entry->handle);
    zhashx_delete (self->entries, entry->key);     /* frees entry */
    return command;
}

int
broker_inflight_complete (broker_inflight_t *self, const broker_id_t *client, const char *command_id)
{
    char key [2 * BROKER_ID_MAX + ENVELOPE_ID_MAX + 2];
    s_key (client, command_id, key, sizeof key);
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (!entry)
        return -1;
    broker_command_t *command = s_take (self, entry);
    broker_command_destroy (&command);
    return 0;
}

long
broker_inflight_take_worker (broker_inflight_t *self, const broker_id_t *worker, broker_command_t ***commands_p)
{
    *commands_p = NULL;
    size_t count = 0;
    for (s_entry_t *entry = zlistx_first (self->order); entry; entry = zlistx_next (self->order))
        if (broker_id_eq (&entry->command->worker, worker))
            count++;
    if (count == 0)
        return 0;
    broker_command_t **commands = calloc (count, sizeof (broker_command_t *));
    s_entry_t **entries = calloc (count, sizeof (s_entry_t *));
    if (!commands || !entries) {
        free (commands);
        free (entries);
        return -1;
    }
    /* Collect first: taking unlinks from the list being walked. */
    size_t n = 0;
    for (s_entry_t *entry = zlistx_first (self->order); entry && n < count; entry = zlistx_next (self->order))
        if (broker_id_eq (&entry->command->worker, worker))
            entries [n++] = entry;
    for (size_t i = 0; i < n; i++)
        commands [i] = s_take (self, entries [i]);
    free (entries);
    *commands_p = commands;
    return (long) n;
}

broker_command_t *
broker_inflight_take_expired (broker_inflight_t *self, int64_t now_ms, int64_t max_age_ms)
{
    s_entry_t *entry = (s_entry_t *) zlistx_first (self->order);
    if (!entry || now_ms - entry->command->since_ms <= max_age_ms)
        return NULL;
    return s_take (self, entry);
}
