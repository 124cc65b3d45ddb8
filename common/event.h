/* event — a stored domain event as it travels from the store to its readers,
 * and the MessagePack codec for it and for batches of them (schemas/messages.md). */
#ifndef DOSSIER_EVENT_H
#define DOSSIER_EVENT_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_MAX   128
#define EVENT_TYPE_MAX 64

typedef struct {
    int64_t position;               /* global, gapless, 1-based; 0 before it is appended */
    char stream[EVENT_ID_MAX];      /* aggregate (case) id */
    int64_t version;                /* 1-based within its stream */
    char id[EVENT_ID_MAX];          /* event id */
    char type[EVENT_TYPE_MAX];      /* e.g. "CaseCreated" */
    int64_t timestamp_us;
    char command_id[EVENT_ID_MAX];
    char correlation_id[EVENT_ID_MAX];
    char traceparent[56];           /* W3C traceparent of the append that wrote it; "" none */
    const char *data;               /* JSON payload; borrowed (see event_batch_t) */
    size_t data_size;
} event_t;

/* Packs one event as a msgpack map (key "tp" only when it has a traceparent). */
void event_pack (msgpack_packer *pk, const event_t *ev);

/* Unpacks obj into ev; ev->data borrows from the buffer obj was unpacked from.
 * Returns 0 ok, -2 malformed. A "tp" that is not a string of at most 55 bytes is
 * ignored, not refused: optional metadata never makes the feed unreadable. */
int event_unpack (const msgpack_object *obj, event_t *ev);

/* A decoded `store.events` body: events plus the store's head position.
 * Owns its events array; event data borrows the buffer given to event_batch_decode,
 * which must outlive the batch. */
typedef struct {
    event_t *events;
    size_t count;
    int64_t head;
} event_batch_t;

/* Encodes {events:[...], head} into a new buffer (caller frees *out with free()).
 * Returns 0 ok, -1 out of memory. */
int event_batch_encode (const event_t *events, size_t count, int64_t head, char **out, size_t *out_size);

/* Decodes a store.events body. Returns 0 ok (caller calls event_batch_destroy), -2 malformed. */
int event_batch_decode (const char *data, size_t size, event_batch_t *batch);
void event_batch_destroy (event_batch_t *batch);

/* Helpers shared by every msgpack body decoder: */
int msgpack_key_is (const msgpack_object *key, const char *name);
/* Copies a str object into field; -2 if not a str or too long. */
int msgpack_copy_str (const msgpack_object *obj, char *field, size_t field_size);
/* Reads an integer object; -2 if not an integer. */
int msgpack_get_int (const msgpack_object *obj, int64_t *out);
void msgpack_pack_cstr (msgpack_packer *pk, const char *s);
void msgpack_pack_kv_str (msgpack_packer *pk, const char *key, const char *value);
void msgpack_pack_kv_int (msgpack_packer *pk, const char *key, int64_t value);
void msgpack_pack_kv_bin (msgpack_packer *pk, const char *key, const void *data, size_t size);

#endif
