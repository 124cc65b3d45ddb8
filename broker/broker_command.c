/* broker_command — identities and command copies. Identities are values so the
 * registry, the in-flight table and the queue can copy them without ownership
 * questions; only the envelope frame is owned. */
#include "broker_command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
broker_id_set (broker_id_t *id, const void *data, size_t size)
{
    memset (id, 0, sizeof (*id));
    if (!data || size == 0 || size > BROKER_ID_MAX)
        return -2;
    memcpy (id->data, data, size);
    id->size = (uint8_t) size;
    return 0;
}

int
broker_id_from_frame (broker_id_t *id, zframe_t *frame)
{
    if (!frame)
        return broker_id_set (id, NULL, 0);
    return broker_id_set (id, zframe_data (frame), zframe_size (frame));
}

int
broker_id_cmp (const broker_id_t *a, const broker_id_t *b)
{
    size_t common = a->size < b->size ? a->size : b->size;
    int rc = memcmp (a->data, b->data, common);
    if (rc)
        return rc;
    return (int) a->size - (int) b->size;
}

int
broker_id_eq (const broker_id_t *a, const broker_id_t *b)
{
    return a->size == b->size && memcmp (a->data, b->data, a->size) == 0;
}

void
broker_id_hex (const broker_id_t *id, char *out, size_t out_size)
{
    static const char digits [] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < id->size && n + 3 <= out_size; i++) {
        out [n++] = digits [id->data [i] >> 4];
        out [n++] = digits [id->data [i] & 15];
    }
    if (out_size)
        out [n < out_size ? n : out_size - 1] = 0;
}

broker_command_t *
broker_command_new (const broker_id_t *client, const envelope_t *env, zframe_t **frame_p)
{
    broker_command_t *self = calloc (1, sizeof (broker_command_t));
    if (!self) {
        zframe_destroy (frame_p);
        return NULL;
    }
    self->client = *client;
    envelope_set (self->id, sizeof self->id, env->id);
    envelope_set (self->type, sizeof self->type, env->type);
    envelope_set (self->correlation_id, sizeof self->correlation_id, env->correlation_id);
    envelope_set (self->key, sizeof self->key, env->key);
    /* A command without a key has no aggregate to serialise on: spread it by id. */
    envelope_set (self->partition, sizeof self->partition, env->key [0] ? env->key : env->id);
    self->frame = *frame_p;
    *frame_p = NULL;
    return self;
}

void
broker_command_destroy (broker_command_t **self_p)
{
    if (self_p && *self_p) {
        zframe_destroy (&(*self_p)->frame);
        free (*self_p);
        *self_p = NULL;
    }
}
