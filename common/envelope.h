/* envelope — the one MessagePack message that travels between Dossier processes.
 * Contract: schemas/messages.md. Decoding borrows from the input buffer; nothing
 * here allocates except envelope_encode's output and envelope_recv's frames. */
#ifndef DOSSIER_ENVELOPE_H
#define DOSSIER_ENVELOPE_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION  1
#define ENVELOPE_TYPE_MAX 64
#define ENVELOPE_ID_MAX   128
#define ENVELOPE_BODY_MAX (16 * 1024 * 1024)

typedef struct {
    int version;
    char type[ENVELOPE_TYPE_MAX];
    char id[ENVELOPE_ID_MAX];
    char correlation_id[ENVELOPE_ID_MAX];
    char causation_id[ENVELOPE_ID_MAX];
    int64_t timestamp_us;
    char key[ENVELOPE_ID_MAX];
    char traceparent[56];       /* W3C traceparent of the work this is part of; "" none */
    const char *body;           /* borrowed: points into the decoded buffer or the caller's data */
    size_t body_size;
} envelope_t;

/* Fills version, timestamp and the given type/id; other strings empty, no body. */
void envelope_init (envelope_t *env, const char *type, const char *id);

/* Copies src into a fixed-size field, truncating; returns -1 if it did not fit. */
int envelope_set (char *field, size_t field_size, const char *src);

/* Encodes into a new frame. Returns NULL on failure (oversized body). Caller owns the frame. */
zframe_t *envelope_encode (const envelope_t *env);

/* Decodes data. Returns 0 ok, -2 malformed. env->body borrows from data. */
int envelope_decode (const void *data, size_t size, envelope_t *env);

/* Sends [route?][envelope] on sock (route is borrowed, may be NULL).
 * Returns 0 ok, -1 failed. */
int envelope_send (void *sock, zframe_t *route, const envelope_t *env);

/* Sends [route1][route2][envelope]; both routes borrowed, route2 may be NULL. */
int envelope_send_routed (void *sock, zframe_t *route1, zframe_t *route2, const envelope_t *env);

/* Receives one message of n_routes routing frames followed by the envelope frame.
 * On success returns 0; *msg_p holds the message (caller owns, destroy with zmsg_destroy),
 * routes[i] borrow frames from it and env->body borrows from it.
 * Returns -1 on receive failure (interrupted), -2 on malformed input (message dropped). */
int envelope_recv (void *sock, int n_routes, zframe_t **routes, zmsg_t **msg_p, envelope_t *env);

/* Current wall-clock time in microseconds since the epoch. */
int64_t envelope_now_us (void);

#endif
