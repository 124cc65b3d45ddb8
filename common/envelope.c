/* envelope — MessagePack codec for the inter-process envelope (schemas/messages.md).
 * Hostile input is expected: every string is length-checked against its field,
 * unknown keys are skipped, and nothing ever asserts on decoded bytes. */
#include "envelope.h"

#include <msgpack.h>
#include <string.h>
#include <time.h>

int64_t
envelope_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
envelope_set (char *field, size_t field_size, const char *src)
{
    if (!src)
        src = "";
    size_t len = strlen (src);
    if (len >= field_size) {
        memcpy (field, src, field_size - 1);
        field [field_size - 1] = 0;
        return -1;
    }
    memcpy (field, src, len + 1);
    return 0;
}

void
envelope_init (envelope_t *env, const char *type, const char *id)
{
    memset (env, 0, sizeof (*env));
    env->version = ENVELOPE_VERSION;
    env->timestamp_us = envelope_now_us ();
    envelope_set (env->type, sizeof env->type, type);
    envelope_set (env->id, sizeof env->id, id);
}

static void
s_pack_str (msgpack_packer *pk, const char *key, const char *value)
{
    size_t klen = strlen (key), vlen = strlen (value);
    msgpack_pack_str (pk, klen);
    msgpack_pack_str_body (pk, key, klen);
    msgpack_pack_str (pk, vlen);
    msgpack_pack_str_body (pk, value, vlen);
}

/* A packer target of fixed size: the first pass only counts, the second writes
 * into the frame itself, so an envelope costs one allocation and no copy of the
 * whole message (bodies run to megabytes on the feed). */
typedef struct {
    char *data;                 /* NULL: count only */
    size_t size, cap;
} s_fixed_t;

static int
s_fixed_write (void *target, const char *buf, size_t len)
{
    s_fixed_t *fixed = (s_fixed_t *) target;
    if (fixed->data) {
        if (len > fixed->cap - fixed->size)
            return -1;
        memcpy (fixed->data + fixed->size, buf, len);
    }
    fixed->size += len;
    return 0;
}

static void
s_pack_envelope (msgpack_packer *pk, const envelope_t *env)
{
    /* The trace context only when there is one: envelopes without it keep their bytes. */
    msgpack_pack_map (pk, env->traceparent [0] ? 9 : 8);
    msgpack_pack_str (pk, 1);
    msgpack_pack_str_body (pk, "v", 1);
    msgpack_pack_int (pk, env->version ? env->version : ENVELOPE_VERSION);
    s_pack_str (pk, "t", env->type);
    s_pack_str (pk, "id", env->id);
    s_pack_str (pk, "corr", env->correlation_id);
    s_pack_str (pk, "cause", env->causation_id);
    msgpack_pack_str (pk, 2);
    msgpack_pack_str_body (pk, "ts", 2);
    msgpack_pack_int64 (pk, env->timestamp_us);
    s_pack_str (pk, "key", env->key);
    if (env->traceparent [0])
        s_pack_str (pk, "tp", env->traceparent);
    msgpack_pack_str (pk, 4);
    msgpack_pack_str_body (pk, "body", 4);
    msgpack_pack_bin (pk, env->body_size);
    if (env->body_size)
        msgpack_pack_bin_body (pk, env->body, env->body_size);
}

zframe_t *
envelope_encode (const envelope_t *env)
{
    if (env->body_size > ENVELOPE_BODY_MAX)
        return NULL;
    s_fixed_t fixed = { NULL, 0, 0 };
    msgpack_packer pk;
    msgpack_packer_init (&pk, &fixed, s_fixed_write);
    s_pack_envelope (&pk, env);
    zframe_t *frame = zframe_new (NULL, fixed.size);
    if (!frame)
        return NULL;
    fixed = (s_fixed_t) { (char *) zframe_data (frame), 0, zframe_size (frame) };
    s_pack_envelope (&pk, env);
    if (fixed.size != fixed.cap)
        zframe_destroy (&frame);        /* cannot happen: the same packing twice */
    return frame;
}

/* Copies a msgpack str into a fixed field; -2 if not a string or too long. */
static int
s_copy_str (const msgpack_object *obj, char *field, size_t field_size)
{
    if (obj->type != MSGPACK_OBJECT_STR || obj->via.str.size >= field_size)
        return -2;
    memcpy (field, obj->via.str.ptr, obj->via.str.size);
    field [obj->via.str.size] = 0;
    return 0;
}

static int
s_key_is (const msgpack_object *key, const char *name)
{
    size_t len = strlen (name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == len
        && memcmp (key->via.str.ptr, name, len) == 0;
}

int
envelope_decode (const void *data, size_t size, envelope_t *env)
{
    memset (env, 0, sizeof (*env));
    if (!data || size == 0 || size > ENVELOPE_BODY_MAX + 4096)
        return -2;
    /* The body is zero-copy: with a zone-backed unpack, bin objects point into data. */
    msgpack_zone zone;
    if (!msgpack_zone_init (&zone, 1024))
        return -2;
    msgpack_object root;
    size_t off = 0;
    int rc = -2;
    if (msgpack_unpack (data, size, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS
    ||  off != size || root.type != MSGPACK_OBJECT_MAP)
        goto done;
    int have_version = 0, have_type = 0;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr [i].key;
        const msgpack_object *v = &root.via.map.ptr [i].val;
        if (s_key_is (k, "v")) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != ENVELOPE_VERSION)
                goto done;
            env->version = (int) v->via.u64;
            have_version = 1;
        }
        else
        if (s_key_is (k, "t")) {
            if (s_copy_str (v, env->type, sizeof env->type) || !env->type [0])
                goto done;
            have_type = 1;
        }
        else
        if (s_key_is (k, "id")) {
            if (s_copy_str (v, env->id, sizeof env->id))
                goto done;
        }
        else
        if (s_key_is (k, "corr")) {
            if (s_copy_str (v, env->correlation_id, sizeof env->correlation_id))
                goto done;
        }
        else
        if (s_key_is (k, "cause")) {
            if (s_copy_str (v, env->causation_id, sizeof env->causation_id))
                goto done;
        }
        else
        if (s_key_is (k, "tp")) {
            /* Checked where it enters (HTTP, Kafka); here only its size. */
            if (s_copy_str (v, env->traceparent, sizeof env->traceparent))
                goto done;
        }
        else
        if (s_key_is (k, "key")) {
            if (s_copy_str (v, env->key, sizeof env->key))
                goto done;
        }
        else
        if (s_key_is (k, "ts")) {
            if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                env->timestamp_us = (int64_t) v->via.u64;
            else
            if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                env->timestamp_us = v->via.i64;
            else
                goto done;
        }
        else
        if (s_key_is (k, "body")) {
            if (v->type != MSGPACK_OBJECT_BIN)
                goto done;
            /* v->via.bin.ptr points into data: msgpack_unpack references, not copies, bins. */
            env->body = v->via.bin.ptr;
            env->body_size = v->via.bin.size;
        }
    }
    if (have_version && have_type)
        rc = 0;
done:
    msgpack_zone_destroy (&zone);
    if (rc != 0)
        memset (env, 0, sizeof (*env));
    return rc;
}

int
envelope_send_routed (void *sock, zframe_t *route1, zframe_t *route2, const envelope_t *env)
{
    zframe_t *frame = envelope_encode (env);
    if (!frame)
        return -1;
    zmsg_t *msg = zmsg_new ();
    if (route1)
        zmsg_append (msg, &(zframe_t *) {zframe_dup (route1)});
    if (route2)
        zmsg_append (msg, &(zframe_t *) {zframe_dup (route2)});
    zmsg_append (msg, &frame);
    return zmsg_send (&msg, sock) == 0 ? 0 : -1;
}

int
envelope_send (void *sock, zframe_t *route, const envelope_t *env)
{
    return envelope_send_routed (sock, route, NULL, env);
}

int
envelope_recv (void *sock, int n_routes, zframe_t **routes, zmsg_t **msg_p, envelope_t *env)
{
    *msg_p = NULL;
    zmsg_t *msg = zmsg_recv (sock);
    if (!msg)
        return -1;
    if ((int) zmsg_size (msg) != n_routes + 1) {
        zmsg_destroy (&msg);
        return -2;
    }
    zframe_t *frame = zmsg_first (msg);
    for (int i = 0; i < n_routes; i++) {
        routes [i] = frame;
        frame = zmsg_next (msg);
    }
    if (envelope_decode (zframe_data (frame), zframe_size (frame), env) != 0) {
        zmsg_destroy (&msg);
        return -2;
    }
    *msg_p = msg;
    return 0;
}
