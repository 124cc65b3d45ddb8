/* json_text — compact JSON text from jansson values, byte for byte what json_dumps
 * writes with JSON_COMPACT (and any JSON_REAL_PRECISION), several times faster: one
 * growable buffer, byte-wise escaping, no callback per piece. Every event's payload
 * and every reply goes through it, and json_dumps was the handler's largest cost. */
#ifndef DOSSIER_JSON_TEXT_H
#define DOSSIER_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* A text being written. Zero-initialised (or json_text_init) it is empty. */
typedef struct {
    char *data;             /* NUL-terminated while not failed */
    size_t size;
    size_t cap;
    int failed;             /* out of memory, or a value json_dumps would refuse */
} json_text_t;

void json_text_init (json_text_t *self);
/* Frees the buffer; the text is empty again. */
void json_text_reset (json_text_t *self);

/* Appends value as json_dumps (value, flags) would write it. flags must be
 * JSON_COMPACT, optionally with JSON_REAL_PRECISION (n) and JSON_ENCODE_ANY; a
 * string that is not valid UTF-8 fails, as it does in json_dumps. 0 ok, -1 failed
 * (the text is then unusable: reset it). */
int json_text_value (json_text_t *self, const json_t *value, size_t flags);
/* Appends s (len bytes) as a JSON string, quoted and escaped as json_dumps does. */
int json_text_string (json_text_t *self, const char *s, size_t len);
/* Appends bytes as they are (structure written by hand: braces, keys, commas). */
int json_text_raw (json_text_t *self, const char *s, size_t len);
/* Appends a decimal integer as json_dumps writes a JSON integer. */
int json_text_integer (json_text_t *self, long long value);

/* Hands the text over: caller frees. NULL if anything failed (the buffer is freed
 * then). *size_p (may be NULL) gets its length. self is empty afterwards. */
char *json_text_take (json_text_t *self, size_t *size_p);

/* json_dumps (value, flags) with the flags above: caller frees; NULL on failure. */
char *json_text_dump (const json_t *value, size_t flags, size_t *size_p);

/* Length of the well-formed UTF-8 sequence at s (at most left bytes), or 0: the
 * checks of jansson's utf8_check_first/full (no overlongs, surrogates or code
 * points past U+10FFFF). Shared by every JSON path that must agree with jansson. */
size_t json_text_utf8_length (const unsigned char *s, size_t left);

#endif
