/* store_proto — codecs for the store protocol bodies. Every decoder checks each
 * field's type and size and caps counts by constants, never by the peer. */
#include "store_proto.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    msgpack_sbuffer buf;
    msgpack_packer pk;
} s_writer_t;

static void
s_writer_init (s_writer_t *w)
{
    msgpack_sbuffer_init (&w->buf);
    msgpack_packer_init (&w->pk, &w->buf, msgpack_sbuffer_write);
}

static char *
s_writer_take (s_writer_t *w, size_t *size)
{
    *size = w->buf.size;
    return w->buf.data;         /* ownership to the caller */
}

/* Unpacks a top-level map; returns 0 and fills root, or -2. zone must be destroyed by caller. */
static int
s_unpack_map (const char *data, size_t size, msgpack_zone *zone, msgpack_object *root)
{
    if (!data || size == 0)
        return -2;
    size_t off = 0;
    if (msgpack_unpack (data, size, &off, zone, root) != MSGPACK_UNPACK_SUCCESS
    ||  root->type != MSGPACK_OBJECT_MAP)
        return -2;
    return 0;
}

static int
s_get_bin (const msgpack_object *v, const char **ptr, size_t *size)
{
    if (v->type == MSGPACK_OBJECT_BIN) {
        *ptr = v->via.bin.ptr;
        *size = v->via.bin.size;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_STR) {
        *ptr = v->via.str.ptr;
        *size = v->via.str.size;
        return 0;
    }
    return -2;
}

int
store_append_encode (const store_append_t *req, char **out, size_t *out_size)
{
    s_writer_t w;
    s_writer_init (&w);
    msgpack_pack_map (&w.pk, 6);
    msgpack_pack_kv_str (&w.pk, "stream", req->stream);
    msgpack_pack_kv_int (&w.pk, "expected_version", req->expected_version);
    msgpack_pack_kv_str (&w.pk, "command_id", req->command_id);
    msgpack_pack_kv_str (&w.pk, "fingerprint", req->fingerprint);
    msgpack_pack_kv_bin (&w.pk, "result", req->result, req->result_size);
    msgpack_pack_cstr (&w.pk, "events");
    msgpack_pack_array (&w.pk, req->count);
    for (size_t i = 0; i < req->count; i++) {
        msgpack_pack_map (&w.pk, 3);
        msgpack_pack_kv_str (&w.pk, "id", req->events [i].id);
        msgpack_pack_kv_str (&w.pk, "type", req->events [i].type);
        msgpack_pack_kv_bin (&w.pk, "data", req->events [i].data, req->events [i].data_size);
    }
    *out = s_writer_take (&w, out_size);
    return *out ? 0 : -1;
}

int
store_append_decode (const char *data, size_t size, store_append_t *req)
{
    memset (req, 0, sizeof (*req));
    req->expected_version = -1;
    msgpack_zone zone;
    if (!msgpack_zone_init (&zone, 2048))
        return -2;
    msgpack_object root;
    int rc = -2;
    if (s_unpack_map (data, size, &zone, &root))
        goto done;
    const msgpack_object *events = NULL;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr [i].key;
        const msgpack_object *v = &root.via.map.ptr [i].val;
        int bad = 0;
        if (msgpack_key_is (k, "stream"))
            bad = msgpack_copy_str (v, req->stream, sizeof req->stream);
        else
        if (msgpack_key_is (k, "expected_version"))
            bad = msgpack_get_int (v, &req->expected_version);
        else
        if (msgpack_key_is (k, "command_id"))
            bad = msgpack_copy_str (v, req->command_id, sizeof req->command_id);
        else
        if (msgpack_key_is (k, "fingerprint"))
            bad = msgpack_copy_str (v, req->fingerprint, sizeof req->fingerprint);
        else
        if (msgpack_key_is (k, "result"))
            bad = s_get_bin (v, &req->result, &req->result_size);
        else
        if (msgpack_key_is (k, "events"))
            events = v;
        if (bad)
            goto done;
    }
    if (!req->stream [0] || !req->command_id [0] || !events
    ||  events->type != MSGPACK_OBJECT_ARRAY
    ||  events->via.array.size == 0 || events->via.array.size > STORE_APPEND_MAX_EVENTS)
        goto done;
    req->count = events->via.array.size;
    req->events = calloc (req->count, sizeof (store_new_event_t));
    if (!req->events)
        goto done;
    for (size_t n = 0; n < req->count; n++) {
        const msgpack_object *e = &events->via.array.ptr [n];
        if (e->type != MSGPACK_OBJECT_MAP)
            goto done;
        store_new_event_t *ne = &req->events [n];
        for (uint32_t i = 0; i < e->via.map.size; i++) {
            const msgpack_object *k = &e->via.map.ptr [i].key;
            const msgpack_object *v = &e->via.map.ptr [i].val;
            int bad = 0;
            if (msgpack_key_is (k, "id"))
                bad = msgpack_copy_str (v, ne->id, sizeof ne->id);
            else
            if (msgpack_key_is (k, "type"))
                bad = msgpack_copy_str (v, ne->type, sizeof ne->type);
            else
            if (msgpack_key_is (k, "data"))
                bad = s_get_bin (v, &ne->data, &ne->data_size);
            if (bad)
                goto done;
        }
        if (!ne->id [0] || !ne->type [0] || !ne->data)
            goto done;
    }
    rc = 0;
done:
    msgpack_zone_destroy (&zone);
    if (rc)
        store_append_free (req);
    return rc;
}

void
store_append_free (store_append_t *req)
{
    if (req) {
        free (req->events);
        req->events = NULL;
        req->count = 0;
    }
}

char *
store_appended_encode (int64_t first_position, int64_t last_position, int64_t version, size_t *size)
{
    s_writer_t w;
    s_writer_init (&w);
    msgpack_pack_map (&w.pk, 3);
    msgpack_pack_kv_int (&w.pk, "first_position", first_position);
    msgpack_pack_kv_int (&w.pk, "last_position", last_position);
    msgpack_pack_kv_int (&w.pk, "version", version);
    return s_writer_take (&w, size);
}

char *
store_conflict_encode (int64_t current_version, size_t *size)
{
    s_writer_t w;
    s_writer_init (&w);
    msgpack_pack_map (&w.pk, 1);
    msgpack_pack_kv_int (&w.pk, "current_version", current_version);
    return s_writer_take (&w, size);
}

char *
store_duplicate_encode (const char *result, size_t result_size, const char *fingerprint, size_t *size)
{
    s_writer_t w;
    s_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    msgpack_pack_kv_bin (&w.pk, "result", result, result_size);
    msgpack_pack_kv_str (&w.pk, "fingerprint", fingerprint);
    return s_writer_take (&w, size);
}

char *
store_error_encode (const char *error, const char *detail, size_t *size)
{
    s_writer_t w;
    s_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    msgpack_pack_kv_str (&w.pk, "error", error);
    msgpack_pack_kv_str (&w.pk, "detail", detail);
    return s_writer_take (&w, size);
}

int
store_reply_decode (const char *type, const char *data, size_t size, store_reply_t *reply)
{
    (void) type;
    memset (reply, 0, sizeof (*reply));
    msgpack_zone zone;
    if (!msgpack_zone_init (&zone, 512))
        return -2;
    msgpack_object root;
    int rc = -2;
    if (s_unpack_map (data, size, &zone, &root))
        goto done;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr [i].key;
        const msgpack_object *v = &root.via.map.ptr [i].val;
        int bad = 0;
        if (msgpack_key_is (k, "first_position"))
            bad = msgpack_get_int (v, &reply->first_position);
        else
        if (msgpack_key_is (k, "last_position"))
            bad = msgpack_get_int (v, &reply->last_position);
        else
        if (msgpack_key_is (k, "version"))
            bad = msgpack_get_int (v, &reply->version);
        else
        if (msgpack_key_is (k, "current_version"))
            bad = msgpack_get_int (v, &reply->current_version);
        else
        if (msgpack_key_is (k, "result"))
            bad = s_get_bin (v, &reply->result, &reply->result_size);
        else
        if (msgpack_key_is (k, "fingerprint"))
            bad = msgpack_copy_str (v, reply->fingerprint, sizeof reply->fingerprint);
        else
        if (msgpack_key_is (k, "error"))
            bad = msgpack_copy_str (v, reply->error, sizeof reply->error);
        else
        if (msgpack_key_is (k, "detail"))
            bad = msgpack_copy_str (v, reply->detail, sizeof reply->detail);
        if (bad)
            goto done;
    }
    rc = 0;
done:
    msgpack_zone_destroy (&zone);
    return rc;
}

char *
store_read_stream_encode (const char *stream, int64_t from_version, size_t *size)
{
    s_writer_t w;
    s_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    msgpack_pack_kv_str (&w.pk, "stream", stream);
    msgpack_pack_kv_int (&w.pk, "from_version", from_version);
    return s_writer_take (&w, size);
}

int
store_read_stream_decode (const char *data, size_t size, char stream[EVENT_ID_MAX], int64_t *from_version)
{
    msgpack_zone zone;
    if (!msgpack_zone_init (&zone, 256))
        return -2;
    msgpack_object root;
    int rc = -2;
    stream [0] = 0;
    *from_version = 1;
    if (s_unpack_map (data, size, &zone, &root))
        goto done;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr [i].key;
        const msgpack_object *v = &root.via.map.ptr [i].val;
        if (msgpack_key_is (k, "stream") && msgpack_copy_str (v, stream, EVENT_ID_MAX))
            goto done;
        if (msgpack_key_is (k, "from_version") && msgpack_get_int (v, from_version))
            goto done;
    }
    rc = stream [0] ? 0 : -2;
done:
    msgpack_zone_destroy (&zone);
    return rc;
}

char *
store_read_all_encode (int64_t from_position, int64_t max, size_t *size)
{
    s_writer_t w;
    s_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    msgpack_pack_kv_int (&w.pk, "from_position", from_position);
    msgpack_pack_kv_int (&w.pk, "max", max);
    return s_writer_take (&w, size);
}

int
store_read_all_decode (const char *data, size_t size, int64_t *from_position, int64_t *max)
{
    msgpack_zone zone;
    if (!msgpack_zone_init (&zone, 256))
        return -2;
    msgpack_object root;
    int rc = -2;
    *from_position = 1;
    *max = 1000;
    if (s_unpack_map (data, size, &zone, &root))
        goto done;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr [i].key;
        const msgpack_object *v = &root.via.map.ptr [i].val;
        if (msgpack_key_is (k, "from_position") && msgpack_get_int (v, from_position))
            goto done;
        if (msgpack_key_is (k, "max") && msgpack_get_int (v, max))
            goto done;
    }
    if (*from_position < 1)
        *from_position = 1;
    if (*max < 0)
        *max = 0;
    if (*max > STORE_READ_MAX)
        *max = STORE_READ_MAX;
    rc = 0;
done:
    msgpack_zone_destroy (&zone);
    return rc;
}
