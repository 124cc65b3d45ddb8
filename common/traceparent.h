/* traceparent — W3C Trace Context `traceparent` values: parse what a caller sent
 * (HTTP header, Kafka header), start a trace when none came, and derive the value
 * each hop passes on (same trace id, its own span id). */
#ifndef DOSSIER_TRACEPARENT_H
#define DOSSIER_TRACEPARENT_H

#include <stdbool.h>
#include <stddef.h>

/* "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>" and its terminator. */
#define TRACEPARENT_LEN 56

typedef struct {
    char trace_id [33];         /* lowercase hex */
    char parent_id [17];        /* lowercase hex: the span of whoever sent it */
    unsigned flags;             /* bit 0: sampled */
} traceparent_t;

/* Parses value as the spec's receiver does: version 00 exactly 55 characters;
 * a higher version is read by its first four fields (forward compatible); ff, an
 * all-zero id, upper-case hex or any other deviation is invalid. 0 ok, -1 invalid
 * (*out untouched). size bounds value (which need not be terminated). */
int traceparent_parse (const char *value, size_t size, traceparent_t *out);

/* A new trace (random trace and parent ids, sampled). */
void traceparent_new (traceparent_t *out);

/* The value this hop sends on: the same trace and flags, a new random span id. */
void traceparent_child (const traceparent_t *parent, traceparent_t *out);

/* Writes the version-00 text into out (TRACEPARENT_LEN bytes at least). */
void traceparent_format (const traceparent_t *tp, char *out);

/* One hop: the span this hop sends on, as text in out (TRACEPARENT_LEN bytes) — a
 * child of value when value (size bytes, may be NULL) parses, else of a new trace
 * (a malformed value is ignored, as the spec says). */
void traceparent_hop (const char *value, size_t size, char *out);

/* The trace id of a traceparent text (NUL-terminated, may be NULL) copied into out
 * (33 bytes); returns out, or NULL when value is empty or does not parse: made for
 * log_set_trace (traceparent_trace_id (tp, buf)). */
const char *traceparent_trace_id (const char *value, char *out);

#endif
