/* http_reply — the bytes of the gateway's answers: a growable buffer, JSON string
 * escaping that survives any input bytes, the {"error","detail"} body every error
 * uses, reason phrases, and the Content-Type test. Pure: no h2o, no sockets. */
#ifndef DOSSIER_GW_HTTP_REPLY_H
#define DOSSIER_GW_HTTP_REPLY_H

#include <stddef.h>

/* Largest body the gateway will build; past it appends fail (the caller answers 500)
 * rather than let one huge list exhaust memory. */
#define GW_BUF_MAX (64 * 1024 * 1024)

/* A growable byte buffer. A plain value type: init it, append, read data/size, free.
 * After a failed append `failed` stays set and further appends are no-ops, so a
 * builder can append freely and check once at the end. data is not NUL-terminated
 * unless gw_buf_cstr is called. */
typedef struct {
    char *data;
    size_t size;
    size_t cap;
    int failed;
} gw_buf_t;

void gw_buf_init (gw_buf_t *buf);
/* Frees the memory and re-initialises the buffer. */
void gw_buf_free (gw_buf_t *buf);
/* Empties the buffer, keeping its memory for reuse. */
void gw_buf_reset (gw_buf_t *buf);
/* Returns 0 ok, -1 out of memory or over GW_BUF_MAX (buf->failed is then set). */
int gw_buf_append (gw_buf_t *buf, const void *data, size_t size);
int gw_buf_append_str (gw_buf_t *buf, const char *s);
/* Appends s as a quoted JSON string. Control bytes are escaped and bytes that are
 * not valid UTF-8 become U+FFFD, so the output is valid JSON whatever s holds. */
int gw_buf_append_json_string (gw_buf_t *buf, const char *s, size_t len);
/* NUL-terminates the contents (not counted in size); returns data or NULL on failure. */
const char *gw_buf_cstr (gw_buf_t *buf);

/* Replaces buf's contents with {"error": error, "detail": detail}. detail may be NULL
 * (then ""). Returns 0 ok, -1 out of memory. */
int gw_reply_error_body (gw_buf_t *buf, const char *error, const char *detail);

/* The reason phrase for an HTTP status ("Not Found"); never NULL. */
const char *gw_reply_reason (int status);

/* 1 if a Content-Type value names application/json (case-insensitive, optional
 * parameters such as "; charset=utf-8" and surrounding blanks allowed), else 0. */
int gw_reply_is_json_media_type (const char *value, size_t len);

#endif
