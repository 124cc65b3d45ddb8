/* json_text — see json_text.h. Mirrors jansson 2.x's dump.c for compact output:
 * members in the object's iteration (insertion) order, strings checked as UTF-8 the
 * way jansson checks them and escaped the same way (\" \\ \b \f \n \r \t, other
 * control bytes as \u00XX in upper case, nothing else), integers in decimal. Reals
 * are rare here and their formatting has subtleties (precision, ".0", exponent
 * zeros), so jansson writes those itself. */
#include "json_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The flags this writer reproduces; anything else goes to json_dumps as a whole. */
#define S_KNOWN_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION (31) | JSON_ENCODE_ANY)
/* Deeper than this is refused: our values are a few levels deep, and jansson's own
 * parser refuses beyond 2048 anyway. */
#define S_MAX_DEPTH   2048

void
json_text_init (json_text_t *self)
{
    memset (self, 0, sizeof (*self));
}

void
json_text_reset (json_text_t *self)
{
    free (self->data);
    json_text_init (self);
}

/* Makes room for extra more bytes and the NUL. 0 ok, -1 failed (marked). */
static int
s_reserve (json_text_t *self, size_t extra)
{
    if (self->failed)
        return -1;
    if (self->size + extra + 1 <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < self->size + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            self->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *data = realloc (self->data, cap);
    if (!data) {
        self->failed = 1;
        return -1;
    }
    self->data = data;
    self->cap = cap;
    return 0;
}

int
json_text_raw (json_text_t *self, const char *s, size_t len)
{
    if (s_reserve (self, len))
        return -1;
    memcpy (self->data + self->size, s, len);
    self->size += len;
    self->data [self->size] = 0;
    return 0;
}

int
json_text_integer (json_text_t *self, long long value)
{
    char digits [24];
    char *p = digits + sizeof digits;
    unsigned long long u = value < 0 ? 0ULL - (unsigned long long) value : (unsigned long long) value;
    do {
        *--p = (char) ('0' + u % 10);
        u /= 10;
    } while (u);
    if (value < 0)
        *--p = '-';
    return json_text_raw (self, p, (size_t) (digits + sizeof digits - p));
}

/* Length of the valid UTF-8 sequence at s (at most left bytes), or 0: jansson's
 * utf8_check_first and utf8_check_full (no overlongs, surrogates or > U+10FFFF). */
size_t
json_text_utf8_length (const unsigned char *s, size_t left)
{
    unsigned char u = s [0];
    size_t size;
    uint32_t value;
    if (u < 0x80)
        return 1;
    if (u >= 0xc2 && u <= 0xdf) {
        size = 2;
        value = u & 0x1f;
    }
    else
    if (u >= 0xe0 && u <= 0xef) {
        size = 3;
        value = u & 0x0f;
    }
    else
    if (u >= 0xf0 && u <= 0xf4) {
        size = 4;
        value = u & 0x07;
    }
    else
        return 0;               /* a continuation byte, C0, C1, F5..FF */
    if (size > left)
        return 0;
    for (size_t i = 1; i < size; i++) {
        if (s [i] < 0x80 || s [i] > 0xbf)
            return 0;
        value = (value << 6) | (s [i] & 0x3f);
    }
    if (value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff))
        return 0;
    if ((size == 2 && value < 0x80) || (size == 3 && value < 0x800) || (size == 4 && value < 0x10000))
        return 0;
    return size;
}

/* A string; is_key copies a quirk of jansson's dump.c, which ignores a failure to
 * write an object key: the key is written up to its last escape before the bad
 * byte (the plain run after that escape is not), without a closing quote, and
 * the dump goes on. (Such a key can only come from json_object_set_nocheck.) */
static int
s_string (json_text_t *self, const char *str, size_t len, int is_key)
{
    static const char hex [] = "0123456789ABCDEF";
    /* Worst case: every byte a \u00XX escape, plus the quotes. */
    if (len > (SIZE_MAX - 2) / 6 || s_reserve (self, len * 6 + 2))
        return -1;
    const unsigned char *s = (const unsigned char *) str;
    char *out = self->data + self->size;
    *out++ = '"';
    char *flushed = out;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s [i];
        if (c >= 0x80) {
            size_t n = json_text_utf8_length (s + i, len - i);
            if (n == 0) {
                if (is_key) {
                    self->size = (size_t) (flushed - self->data);
                    self->data [self->size] = 0;
                    return 0;
                }
                self->failed = 1;
                return -1;
            }
            memcpy (out, s + i, n);
            out += n;
            i += n;
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char) c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
            case '"':  *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = hex [c >> 4];
                *out++ = hex [c & 15];
                break;
        }
        flushed = out;
    }
    *out++ = '"';
    self->size = (size_t) (out - self->data);
    self->data [self->size] = 0;
    return 0;
}

int
json_text_string (json_text_t *self, const char *str, size_t len)
{
    return s_string (self, str, len, 0);
}

static int
s_value (json_text_t *self, const json_t *value, size_t flags, int depth)
{
    if (!value || depth > S_MAX_DEPTH) {
        self->failed = 1;
        return -1;
    }
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            if (json_text_raw (self, "{", 1))
                return -1;
            int first = 1;
            /* json_object_iter walks the members in insertion order, as dump.c does. */
            for (void *iter = json_object_iter ((json_t *) value); iter;
                 iter = json_object_iter_next ((json_t *) value, iter)) {
                if (!first && json_text_raw (self, ",", 1))
                    return -1;
                first = 0;
                const char *key = json_object_iter_key (iter);
                if (s_string (self, key, json_object_iter_key_len (iter), 1)
                ||  json_text_raw (self, ":", 1)
                ||  s_value (self, json_object_iter_value (iter), flags, depth + 1))
                    return -1;
            }
            return json_text_raw (self, "}", 1);
        }
        case JSON_ARRAY: {
            if (json_text_raw (self, "[", 1))
                return -1;
            size_t n = json_array_size (value);
            for (size_t i = 0; i < n; i++)
                if ((i && json_text_raw (self, ",", 1))
                ||  s_value (self, json_array_get (value, i), flags, depth + 1))
                    return -1;
            return json_text_raw (self, "]", 1);
        }
        case JSON_STRING:
            return json_text_string (self, json_string_value (value), json_string_length (value));
        case JSON_INTEGER:
            return json_text_integer (self, (long long) json_integer_value (value));
        case JSON_REAL: {
            char *text = json_dumps (value, flags | JSON_ENCODE_ANY);
            int rc = text ? json_text_raw (self, text, strlen (text)) : -1;
            free (text);
            if (rc)
                self->failed = 1;
            return rc;
        }
        case JSON_TRUE:
            return json_text_raw (self, "true", 4);
        case JSON_FALSE:
            return json_text_raw (self, "false", 5);
        case JSON_NULL:
            return json_text_raw (self, "null", 4);
    }
    self->failed = 1;
    return -1;
}

int
json_text_value (json_text_t *self, const json_t *value, size_t flags)
{
    if (self->failed || (flags & ~(size_t) S_KNOWN_FLAGS) || !(flags & JSON_COMPACT)) {
        self->failed = 1;
        return -1;
    }
    return s_value (self, value, flags & ~(size_t) JSON_ENCODE_ANY, 0);
}

char *
json_text_take (json_text_t *self, size_t *size_p)
{
    if (self->failed || s_reserve (self, 0)) {
        json_text_reset (self);
        return NULL;
    }
    char *data = self->data;
    if (size_p)
        *size_p = self->size;
    json_text_init (self);
    return data;
}

char *
json_text_dump (const json_t *value, size_t flags, size_t *size_p)
{
    if ((flags & ~(size_t) S_KNOWN_FLAGS) || !(flags & JSON_COMPACT)) {
        char *text = json_dumps (value, flags);
        if (text && size_p)
            *size_p = strlen (text);
        return text;
    }
    /* Without JSON_ENCODE_ANY json_dumps writes only objects and arrays. */
    if (!value || (!(flags & JSON_ENCODE_ANY) && !json_is_object (value) && !json_is_array (value)))
        return NULL;
    json_text_t text;
    json_text_init (&text);
    json_text_value (&text, value, flags);
    return json_text_take (&text, size_p);
}
