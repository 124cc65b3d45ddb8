/* store_proto — MessagePack bodies of the store's request/reply protocol
 * (schemas/messages.md, "Store sockets"). Shared by the store and its clients
 * (handler, projector, notifier, CLI). Decoders borrow from the input buffer. */
#ifndef DOSSIER_STORE_PROTO_H
#define DOSSIER_STORE_PROTO_H

#include "event.h"
#include <stddef.h>
#include <stdint.h>

#define STORE_APPEND_MAX_EVENTS 1000
#define STORE_READ_MAX          10000

/* One event to append: the store fills position, version, stream, timestamps. */
typedef struct {
    char id[EVENT_ID_MAX];
    char type[EVENT_TYPE_MAX];
    const char *data;           /* JSON, borrowed */
    size_t data_size;
} store_new_event_t;

typedef struct {
    char stream[EVENT_ID_MAX];
    int64_t expected_version;   /* -1 any, 0 stream must not exist, n = current version must be n */
    char command_id[EVENT_ID_MAX];
    char fingerprint[64];       /* hash of the command payload, to detect key reuse */
    const char *result;         /* JSON reply body remembered for duplicates, borrowed */
    size_t result_size;
    store_new_event_t *events;  /* owned by the struct after decode (free with store_append_free) */
    size_t count;
} store_append_t;

/* Encodes an append body; *out is malloc'd (caller frees). Returns 0 ok, -1 failed. */
int store_append_encode (const store_append_t *req, char **out, size_t *out_size);
/* Decodes; returns 0 ok (call store_append_free), -2 malformed. Borrows from data. */
int store_append_decode (const char *data, size_t size, store_append_t *req);
void store_append_free (store_append_t *req);

/* Replies */
typedef struct {
    int64_t first_position, last_position, version;   /* store.appended */
    int64_t current_version;                          /* store.conflict */
    const char *result; size_t result_size;           /* store.duplicate (borrowed) */
    char fingerprint[64];                             /* store.duplicate */
    char error[64]; char detail[256];                 /* store.error */
} store_reply_t;

/* Encoders return a malloc'd body (caller frees) or NULL. */
char *store_appended_encode (int64_t first_position, int64_t last_position, int64_t version, size_t *size);
char *store_conflict_encode (int64_t current_version, size_t *size);
char *store_duplicate_encode (const char *result, size_t result_size, const char *fingerprint, size_t *size);
char *store_error_encode (const char *error, const char *detail, size_t *size);
/* Decodes any of the four replies above by type ("store.appended", ...). 0 ok, -2 malformed. */
int store_reply_decode (const char *type, const char *data, size_t size, store_reply_t *reply);

/* Reads */
char *store_read_stream_encode (const char *stream, int64_t from_version, size_t *size);
int store_read_stream_decode (const char *data, size_t size, char stream[EVENT_ID_MAX], int64_t *from_version);
char *store_read_all_encode (int64_t from_position, int64_t max, size_t *size);
int store_read_all_decode (const char *data, size_t size, int64_t *from_position, int64_t *max);
/* The answer to both reads is a `store.events` body: see event_batch_encode/decode. */

#endif
