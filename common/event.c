/* event — codec for stored events and event batches. Batches are the unit of
 * both catch-up reads and the live PUB feed, so readers have one code path. */
#include "event.h"

#include <stdlib.h>
#include <string.h>

#define EVENT_BATCH_MAX 100000   /* cap allocations by a constant, never by a peer's count */

int
msgpack_key_is (const msgpack_object *key, const char *name)
{
    size_t len = strlen (name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == len
        && memcmp (key->via.str.ptr, name, len) == 0;
}

int
msgpack_copy_str (const msgpack_object *obj, char *field, size_t field_size)
{
    if (obj->type != MSGPACK_OBJECT_STR || obj->via.str.size >= field_size)
        return -2;
    memcpy (field, obj->via.str.ptr, obj->via.str.size);
    field [obj->via.str.size] = 0;
    return 0;
}

int
msgpack_get_int (const msgpack_object *obj, int64_t *out)
{
    if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER && obj->via.u64 <= INT64_MAX)
        *out = (int64_t) obj->via.u64;
    else
    if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = obj->via.i64;
    else
        return -2;
    return 0;
}

void
msgpack_pack_cstr (msgpack_packer *pk, const char *s)
{
    size_t len = s ? strlen (s) : 0;
    msgpack_pack_str (pk, len);
    if (len)
        msgpack_pack_str_body (pk, s, len);
}

void
msgpack_pack_kv_str (msgpack_packer *pk, const char *key, const char *value)
{
    msgpack_pack_cstr (pk, key);
    msgpack_pack_cstr (pk, value);
}

void
msgpack_pack_kv_int (msgpack_packer *pk, const char *key, int64_t value)
{
    msgpack_pack_cstr (pk, key);
    msgpack_pack_int64 (pk, value);
}

void
msgpack_pack_kv_bin (msgpack_packer *pk, const char *key, const void *data, size_t size)
{
    msgpack_pack_cstr (pk, key);
    msgpack_pack_bin (pk, size);
    if (size)
        msgpack_pack_bin_body (pk, data, size);
}

void
event_pack (msgpack_packer *pk, const event_t *ev)
{
    msgpack_pack_map (pk, ev->traceparent [0] ? 10 : 9);
    msgpack_pack_kv_int (pk, "pos", ev->position);
    msgpack_pack_kv_str (pk, "stream", ev->stream);
    msgpack_pack_kv_int (pk, "ver", ev->version);
    msgpack_pack_kv_str (pk, "id", ev->id);
    msgpack_pack_kv_str (pk, "type", ev->type);
    msgpack_pack_kv_int (pk, "ts", ev->timestamp_us);
    msgpack_pack_kv_str (pk, "cmd", ev->command_id);
    msgpack_pack_kv_str (pk, "corr", ev->correlation_id);
    if (ev->traceparent [0])        /* absent otherwise: events without one keep their bytes */
        msgpack_pack_kv_str (pk, "tp", ev->traceparent);
    msgpack_pack_kv_bin (pk, "data", ev->data, ev->data_size);
}

int
event_unpack (const msgpack_object *obj, event_t *ev)
{
    memset (ev, 0, sizeof (*ev));
    if (obj->type != MSGPACK_OBJECT_MAP)
        return -2;
    int seen = 0;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *k = &obj->via.map.ptr [i].key;
        const msgpack_object *v = &obj->via.map.ptr [i].val;
        int rc = 0;
        if (msgpack_key_is (k, "pos"))
            rc = msgpack_get_int (v, &ev->position), seen |= 1;
        else
        if (msgpack_key_is (k, "stream"))
            rc = msgpack_copy_str (v, ev->stream, sizeof ev->stream), seen |= 2;
        else
        if (msgpack_key_is (k, "ver"))
            rc = msgpack_get_int (v, &ev->version), seen |= 4;
        else
        if (msgpack_key_is (k, "id"))
            rc = msgpack_copy_str (v, ev->id, sizeof ev->id), seen |= 8;
        else
        if (msgpack_key_is (k, "type"))
            rc = msgpack_copy_str (v, ev->type, sizeof ev->type), seen |= 16;
        else
        if (msgpack_key_is (k, "ts"))
            rc = msgpack_get_int (v, &ev->timestamp_us);
        else
        if (msgpack_key_is (k, "cmd"))
            rc = msgpack_copy_str (v, ev->command_id, sizeof ev->command_id);
        else
        if (msgpack_key_is (k, "corr"))
            rc = msgpack_copy_str (v, ev->correlation_id, sizeof ev->correlation_id);
        else
        if (msgpack_key_is (k, "tp")) {
            if (msgpack_copy_str (v, ev->traceparent, sizeof ev->traceparent))
                ev->traceparent [0] = 0;
        }
        else
        if (msgpack_key_is (k, "data")) {
            if (v->type == MSGPACK_OBJECT_BIN) {
                ev->data = v->via.bin.ptr;
                ev->data_size = v->via.bin.size;
            }
            else
            if (v->type == MSGPACK_OBJECT_STR) {
                ev->data = v->via.str.ptr;
                ev->data_size = v->via.str.size;
            }
            else
                rc = -2;
            seen |= 32;
        }
        if (rc)
            return -2;
    }
    return seen == 63 ? 0 : -2;
}

int
event_batch_encode (const event_t *events, size_t count, int64_t head, char **out, size_t *out_size)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    msgpack_pack_cstr (&pk, "events");
    msgpack_pack_array (&pk, count);
    for (size_t i = 0; i < count; i++)
        event_pack (&pk, &events [i]);
    msgpack_pack_kv_int (&pk, "head", head);
    if (!buf.data) {
        /* msgpack_sbuffer never allocated: impossible after packing a map, but be safe. */
        *out = NULL;
        *out_size = 0;
        return -1;
    }
    *out = buf.data;            /* ownership moves to the caller */
    *out_size = buf.size;
    return 0;
}

int
event_batch_decode (const char *data, size_t size, event_batch_t *batch)
{
    memset (batch, 0, sizeof (*batch));
    msgpack_zone zone;
    if (!msgpack_zone_init (&zone, 4096))
        return -2;
    msgpack_object root;
    size_t off = 0;
    int rc = -2;
    if (msgpack_unpack (data, size, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS
    ||  root.type != MSGPACK_OBJECT_MAP)
        goto done;
    const msgpack_object *events = NULL;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr [i].key;
        const msgpack_object *v = &root.via.map.ptr [i].val;
        if (msgpack_key_is (k, "events"))
            events = v;
        else
        if (msgpack_key_is (k, "head")) {
            if (msgpack_get_int (v, &batch->head))
                goto done;
        }
    }
    if (!events || events->type != MSGPACK_OBJECT_ARRAY || events->via.array.size > EVENT_BATCH_MAX)
        goto done;
    size_t n = events->via.array.size;
    if (n) {
        batch->events = calloc (n, sizeof (event_t));
        if (!batch->events)
            goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (event_unpack (&events->via.array.ptr [i], &batch->events [i]))
            goto done;
    batch->count = n;
    rc = 0;
done:
    msgpack_zone_destroy (&zone);
    if (rc) {
        free (batch->events);
        memset (batch, 0, sizeof (*batch));
    }
    return rc;
}

void
event_batch_destroy (event_batch_t *batch)
{
    if (batch) {
        free (batch->events);
        memset (batch, 0, sizeof (*batch));
    }
}
