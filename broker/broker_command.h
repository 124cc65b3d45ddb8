/* broker_command — what the broker holds while routing: peer identities as
 * small values, and a command (a copy of its envelope frame plus the ids needed
 * to route it, answer for it and match its reply). */
#ifndef DOSSIER_BROKER_COMMAND_H
#define DOSSIER_BROKER_COMMAND_H

#include "envelope.h"

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#define BROKER_ID_MAX 255   /* ZeroMQ routing ids are at most 255 bytes */

/* A routing identity (client or handler), by value. */
typedef struct {
    uint8_t size;
    byte data [BROKER_ID_MAX];
} broker_id_t;

/* Sets id from bytes; returns 0, or -2 when size is 0 or over BROKER_ID_MAX. */
int broker_id_set (broker_id_t *id, const void *data, size_t size);
/* Sets id from a routing frame; same returns. */
int broker_id_from_frame (broker_id_t *id, zframe_t *frame);
/* memcmp order, shorter first on a common prefix: the order all brokers agree on. */
int broker_id_cmp (const broker_id_t *a, const broker_id_t *b);
int broker_id_eq (const broker_id_t *a, const broker_id_t *b);
/* Printable form for logs: hex, cut to fit out (at least 3 bytes). */
void broker_id_hex (const broker_id_t *id, char *out, size_t out_size);

typedef struct {
    broker_id_t client;                     /* who sent it (frontend identity) */
    broker_id_t worker;                     /* the handler it went to, when in flight */
    char id [ENVELOPE_ID_MAX];              /* command id */
    char type [ENVELOPE_TYPE_MAX];          /* envelope type (cmd.*): metrics */
    char correlation_id [ENVELOPE_ID_MAX];
    char key [ENVELOPE_ID_MAX];             /* envelope key (case id) */
    char partition [ENVELOPE_ID_MAX];       /* what it is hashed by: key, or id when key is empty */
    zframe_t *frame;                        /* the envelope as received, owned */
    int64_t since_ms;                       /* when it was queued or dispatched */
    uint64_t seq;                           /* arrival order, to re-dispatch in order */
} broker_command_t;

/* Builds a command from a decoded envelope; takes *frame_p (the envelope frame).
 * Returns NULL on failure (frame destroyed). Caller owns. */
broker_command_t *broker_command_new (const broker_id_t *client, const envelope_t *env, zframe_t **frame_p);
void broker_command_destroy (broker_command_t **self_p);

#endif
