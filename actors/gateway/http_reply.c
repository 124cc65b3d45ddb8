/* http_reply — building answer bodies. Error details can quote hostile input (a
 * jansson message cites the offending bytes), so the JSON escaper validates UTF-8
 * itself instead of trusting its input. */
#include "http_reply.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
gw_buf_init (gw_buf_t *buf)
{
    memset (buf, 0, sizeof (*buf));
}

void
gw_buf_free (gw_buf_t *buf)
{
    free (buf->data);
    gw_buf_init (buf);
}

void
gw_buf_reset (gw_buf_t *buf)
{
    buf->size = 0;
    buf->failed = 0;
}

/* Makes room for extra more bytes (plus a spare one for gw_buf_cstr). */
static int
s_reserve (gw_buf_t *buf, size_t extra)
{
    if (buf->failed)
        return -1;
    if (extra > GW_BUF_MAX || buf->size + extra > GW_BUF_MAX) {
        buf->failed = 1;
        return -1;
    }
    size_t need = buf->size + extra + 1;
    if (need <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = realloc (buf->data, cap);
    if (!data) {
        buf->failed = 1;
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}

int
gw_buf_append (gw_buf_t *buf, const void *data, size_t size)
{
    if (s_reserve (buf, size))
        return -1;
    if (size)
        memcpy (buf->data + buf->size, data, size);
    buf->size += size;
    return 0;
}

int
gw_buf_append_str (gw_buf_t *buf, const char *s)
{
    return gw_buf_append (buf, s, strlen (s));
}

const char *
gw_buf_cstr (gw_buf_t *buf)
{
    if (s_reserve (buf, 0))
        return NULL;
    buf->data [buf->size] = 0;
    return buf->data;
}

/* Length of the valid UTF-8 sequence starting at p (at most left bytes), or 0 if
 * the bytes there are not one: overlongs, surrogates and code points past
 * U+10FFFF are refused, as RFC 3629 requires. */
static size_t
s_utf8_len (const unsigned char *p, size_t left)
{
    unsigned char c = p [0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    }
    else
    if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    }
    else
    if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    }
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p [i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p [i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
    ||  (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

int
gw_buf_append_json_string (gw_buf_t *buf, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) (s ? s : "");
    if (!s)
        len = 0;
    gw_buf_append (buf, "\"", 1);
    size_t i = 0;
    while (i < len && !buf->failed) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t start = i;
        while (i < len && p [i] >= 0x20 && p [i] < 0x80 && p [i] != '"' && p [i] != '\\')
            i++;
        if (i > start)
            gw_buf_append (buf, p + start, i - start);
        if (i >= len)
            break;
        unsigned char c = p [i];
        if (c == '"' || c == '\\') {
            char esc [2] = { '\\', (char) c };
            gw_buf_append (buf, esc, 2);
            i++;
        }
        else
        if (c < 0x20) {
            char esc [8];
            snprintf (esc, sizeof esc, "\\u%04x", c);
            gw_buf_append (buf, esc, 6);
            i++;
        }
        else {
            size_t n = s_utf8_len (p + i, len - i);
            if (n) {
                gw_buf_append (buf, p + i, n);
                i += n;
            }
            else {
                gw_buf_append (buf, "\\ufffd", 6);
                i++;
            }
        }
    }
    return gw_buf_append (buf, "\"", 1);
}

int
gw_reply_error_body (gw_buf_t *buf, const char *error, const char *detail)
{
    gw_buf_reset (buf);
    gw_buf_append_str (buf, "{\"error\":");
    gw_buf_append_json_string (buf, error ? error : "error", strlen (error ? error : "error"));
    gw_buf_append_str (buf, ",\"detail\":");
    gw_buf_append_json_string (buf, detail ? detail : "", strlen (detail ? detail : ""));
    return gw_buf_append_str (buf, "}");
}

const char *
gw_reply_reason (int status)
{
    switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 409: return "Conflict";
        case 413: return "Payload Too Large";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Entity";
        case 429: return "Too Many Requests";
        case 500: return "Internal Server Error";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default:  return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "OK";
    }
}

int
gw_reply_is_json_media_type (const char *value, size_t len)
{
    if (!value)
        return 0;
    size_t i = 0;
    while (i < len && (value [i] == ' ' || value [i] == '\t'))
        i++;
    size_t start = i;
    while (i < len && value [i] != ';' && value [i] != ' ' && value [i] != '\t')
        i++;
    static const char json [] = "application/json";
    if (i - start != sizeof json - 1 || strncasecmp (value + start, json, sizeof json - 1) != 0)
        return 0;
    /* Only blanks may separate the media type from its parameters. */
    while (i < len && (value [i] == ' ' || value [i] == '\t'))
        i++;
    return i == len || value [i] == ';';
}
