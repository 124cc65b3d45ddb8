/* canon_json — a checker for jansson's compact output, a member iterator over it,
 * and jansson itself for everything else. The checker is deliberately narrow: it
 * accepts only what it can prove jansson writes byte for byte, and says no to the
 * rest, which then takes the slow, exact road through canon_normalize. */
#include "canon_json.h"
#include "json_text.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper or wider than this goes through jansson (which allows 2048 levels). */
#define S_MAX_DEPTH   32
#define S_MAX_MEMBERS CANON_MAX_MEMBERS
#define S_MAX_NUMBER  40

static const char *s_value (const char *p, const char *end, int depth);

/* Bytes of a string: 0 written as they are, 1 '"', 2 '\\', 3 below 0x20, 4 not ASCII. */
static const unsigned char s_class [256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* Past one well-formed UTF-8 sequence at p, or NULL: the same checks as jansson. */
static const char *
s_utf8 (const char *p, const char *end)
{
    size_t n = json_text_utf8_length ((const unsigned char *) p, (size_t) (end - p));
    return n ? p + n : NULL;
}

static int
s_hex_upper (char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* A string token at p ('"'): past it, or NULL if jansson would write it otherwise.
 * jansson escapes exactly '"', '\\' and code points below 0x20 (\b \f \n \r \t,
 * the others as \u00XX in capitals) and writes everything else as UTF-8. */
static const char *
s_string (const char *p, const char *end)
{
    p++;
    while (p < end) {
        while (p < end && s_class [(unsigned char) *p] == 0)
            p++;
        if (p >= end)
            break;
        unsigned char c = (unsigned char) *p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (end - p < 2)
                return NULL;
            char e = p [1];
            if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't')
                p += 2;
            else
            if (e == 'u') {
                if (end - p < 6 || p [2] != '0' || p [3] != '0' || (p [4] != '0' && p [4] != '1')
                ||  !s_hex_upper (p [5]))
                    return NULL;
                int cp = (p [4] - '0') * 16 + (p [5] <= '9' ? p [5] - '0' : p [5] - 'A' + 10);
                /* NUL is refused on load; the short forms are written short */
                if (cp == 0 || cp == '\b' || cp == '\f' || cp == '\n' || cp == '\r' || cp == '\t')
                    return NULL;
                p += 6;
            }
            else
                return NULL;
        }
        else
        if (c < 0x20)
            return NULL;
        else
        if (c < 0x80)
            p++;
        else
        if (!(p = s_utf8 (p, end)))
            return NULL;
    }
    return NULL;
}

/* jansson's real formatting (jsonp_dtostr, precision 17): "%.17g", ".0" added when
 * it would read back as an integer, '+' and leading zeros of the exponent dropped. */
static size_t
s_real_format (double value, char *buf, size_t size)
{
    int n = snprintf (buf, size, "%.17g", value);
    if (n < 0 || (size_t) n + 3 >= size)
        return 0;
    size_t len = (size_t) n;
    if (!strchr (buf, '.') && !strchr (buf, 'e')) {
        buf [len++] = '.';
        buf [len++] = '0';
        buf [len] = 0;
    }
    char *start = strchr (buf, 'e');
    if (start) {
        start++;
        char *stop = start + 1;
        if (*start == '-')
            start++;
        while (*stop == '0')
            stop++;
        if (stop != start) {
            memmove (start, stop, len - (size_t) (stop - buf) + 1);
            len -= (size_t) (stop - start);
        }
    }
    return len;
}

/* A number token at p: past it, or NULL if jansson would not write these bytes
 * (an integer out of int64, "-0", a real it would print another way). */
static const char *
s_number (const char *p, const char *end)
{
    const char *start = p;
    int real = 0;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return NULL;
    if (*p == '0')
        p++;
    else
    if (*p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (p < end && *p == '.') {
        real = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t len = (size_t) (p - start);
    char text [S_MAX_NUMBER + 1];
    if (len > S_MAX_NUMBER)
        return NULL;
    memcpy (text, start, len);
    text [len] = 0;
    if (!real) {
        if (len == 2 && text [0] == '-' && text [1] == '0')
            return NULL;                            /* loads as 0 */
        if (len < 19)
            return p;
        errno = 0;
        long long v = strtoll (text, NULL, 10);
        (void) v;
        return errno == ERANGE ? NULL : p;
    }
    errno = 0;
    double v = strtod (text, NULL);
    if (isinf (v) || isnan (v))
        return NULL;                                /* jansson refuses an overflow */
    char again [S_MAX_NUMBER + 8];
    size_t n = s_real_format (v, again, sizeof again);
    return n == len && memcmp (again, text, len) == 0 ? p : NULL;
}

static const char *
s_literal (const char *p, const char *end, const char *word, size_t len)
{
    return (size_t) (end - p) >= len && memcmp (p, word, len) == 0 ? p + len : NULL;
}

/* An object at p; when members is not NULL, its members are stored there (up to
 * S_MAX_MEMBERS, which is also the most it accepts) and counted in *count. */
static const char *
s_object (const char *p, const char *end, int depth, canon_member_t *members, size_t *count_out)
{
    canon_member_t local [S_MAX_MEMBERS];
    canon_member_t *m = members ? members : local;
    size_t count = 0;
    p++;
    if (p < end && *p == '}') {
        if (count_out)
            *count_out = 0;
        return p + 1;
    }
    for (;;) {
        if (p >= end || *p != '"' || count == S_MAX_MEMBERS)
            return NULL;
        const char *key = p;
        if (!(p = s_string (p, end)))
            return NULL;
        canon_span_t k = { key, (size_t) (p - key) };
        /* jansson keeps one of duplicate keys: such an object is not written back as is */
        for (size_t i = 0; i < count; i++)
            if (m [i].key.len == k.len && memcmp (m [i].key.ptr, k.ptr, k.len) == 0)
                return NULL;
        m [count].key = k;
        if (p >= end || *p != ':')
            return NULL;
        const char *value = ++p;
        if (!(p = s_value (p, end, depth + 1)))
            return NULL;
        m [count].value.ptr = value;
        m [count].value.len = (size_t) (p - value);
        count++;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}') {
            if (count_out)
                *count_out = count;
            return p + 1;
        }
        return NULL;
    }
}

static const char *
s_array (const char *p, const char *end, int depth)
{
    p++;
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        if (!(p = s_value (p, end, depth + 1)))
            return NULL;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        return p < end && *p == ']' ? p + 1 : NULL;
    }
}

static const char *
s_value (const char *p, const char *end, int depth)
{
    if (p >= end || depth > S_MAX_DEPTH)
        return NULL;
    switch (*p) {
        case '{': return s_object (p, end, depth, NULL, NULL);
        case '[': return s_array (p, end, depth);
        case '"': return s_string (p, end);
        case 't': return s_literal (p, end, "true", 4);
        case 'f': return s_literal (p, end, "false", 5);
        case 'n': return s_literal (p, end, "null", 4);
        default:  return s_number (p, end);
    }
}

int
canon_is_object (const char *text, size_t len)
{
    return canon_parse_object (text, len, NULL, NULL);
}

int
canon_parse_object (const char *text, size_t len, canon_member_t *members, size_t *count)
{
    if (!text || len < 2 || text [0] != '{')
        return 0;
    const char *end = text + len;
    return s_object (text, end, 0, members, count) == end;
}

/* Past the string token at p ('"'), or NULL at a premature end. */
static const char *
s_skip_string (const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else
        if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Past the value at p, in text known to be canonical: brackets are counted
 * outside strings, so depth costs nothing. NULL at a premature end. */
static const char *
s_skip (const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return s_skip_string (p, end);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                if (!(p = s_skip_string (p, end)))
                    return NULL;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else
            if ((c == '}' || c == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']')
        p++;
    return p;
}

int
canon_next_member (const char **cursor, const char *end, canon_member_t *member)
{
    const char *p = *cursor;
    if (p >= end)
        return 0;
    if (*p == '{' || *p == ',')
        p++;
    if (p >= end || *p != '"')
        return 0;
    const char *key = p;
    if (!(p = s_skip_string (p, end)))
        return 0;
    member->key.ptr = key;
    member->key.len = (size_t) (p - key);
    if (p >= end || *p != ':')
        return 0;
    p++;
    const char *value = p;
    p = s_skip (p, end);
    if (!p || p == value)
        return 0;
    member->value.ptr = value;
    member->value.len = (size_t) (p - value);
    *cursor = p;
    return 1;
}

int
canon_is_string (canon_span_t value)
{
    return value.ptr && value.len >= 2 && value.ptr [0] == '"';
}

size_t
canon_string_decode (canon_span_t value, char *out)
{
    size_t n = 0;
    const char *p = value.ptr + 1, *end = value.ptr + value.len - 1;
    while (p < end) {
        if (*p != '\\') {
            out [n++] = *p++;
            continue;
        }
        char e = p [1];
        p += 2;
        switch (e) {
            case 'b': out [n++] = '\b'; break;
            case 'f': out [n++] = '\f'; break;
            case 'n': out [n++] = '\n'; break;
            case 'r': out [n++] = '\r'; break;
            case 't': out [n++] = '\t'; break;
            case 'u': {
                /* canonical: \u00XX below 0x20 only */
                int hi = p [2] - '0', lo = p [3] <= '9' ? p [3] - '0' : p [3] - 'A' + 10;
                out [n++] = (char) (hi * 16 + lo);
                p += 4;
                break;
            }
            default:  out [n++] = e; break;          /* '"' and '\\' */
        }
    }
    out [n] = 0;
    return n;
}

int
canon_key_is (canon_span_t key, const char *name)
{
    size_t len = strlen (name);
    return key.len == len + 2 && memcmp (key.ptr + 1, name, len) == 0;
}

size_t
canon_string_size (const char *s, size_t len)
{
    size_t size = 2;
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *run = p;
        while (p < end && s_class [(unsigned char) *p] == 0)
            p++;
        size += (size_t) (p - run);
        if (p >= end)
            break;
        unsigned char c = (unsigned char) *p;
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
            size += 2;
            p++;
        }
        else
        if (c < 0x20) {
            if (c == 0)
                return 0;
            size += 6;
            p++;
        }
        else
        if (c < 0x80) {
            size++;
            p++;
        }
        else {
            const char *next = s_utf8 (p, end);
            if (!next)
                return 0;
            size += (size_t) (next - p);
            p = next;
        }
    }
    return size;
}

size_t
canon_string_write (const char *s, size_t len, char *out)
{
    static const char hex [] = "0123456789ABCDEF";
    size_t n = 0;
    out [n++] = '"';
    for (size_t i = 0; i < len; i++) {
        size_t run = i;
        while (i < len && s_class [(unsigned char) s [i]] != 1 && s_class [(unsigned char) s [i]] != 2
           &&  s_class [(unsigned char) s [i]] != 3)
            i++;
        memcpy (out + n, s + run, i - run);
        n += i - run;
        if (i >= len)
            break;
        unsigned char c = (unsigned char) s [i];
        const char *short_form = NULL;
        switch (c) {
            case '"':  short_form = "\\\""; break;
            case '\\': short_form = "\\\\"; break;
            case '\b': short_form = "\\b"; break;
            case '\f': short_form = "\\f"; break;
            case '\n': short_form = "\\n"; break;
            case '\r': short_form = "\\r"; break;
            case '\t': short_form = "\\t"; break;
            default: break;
        }
        if (short_form) {
            out [n++] = short_form [0];
            out [n++] = short_form [1];
        }
        else
        if (c < 0x20) {
            memcpy (out + n, "\\u00", 4);
            out [n + 4] = hex [c >> 4];
            out [n + 5] = hex [c & 15];
            n += 6;
        }
        else
            out [n++] = (char) c;
    }
    out [n++] = '"';
    return n;
}

int
canon_normalize (const char *text, size_t len, char **out, size_t *out_len, char *err, size_t err_size)
{
    *out = NULL;
    *out_len = 0;
    json_error_t jerr;
    json_t *data = json_loadb (text, len, 0, &jerr);
    if (!data || !json_is_object (data)) {
        snprintf (err, err_size, "payload is not a JSON object: %s", data ? "not an object" : jerr.text);
        json_decref (data);
        return -2;
    }
    char *dump = json_dumps (data, JSON_COMPACT);
    json_decref (data);
    if (!dump)
        return -1;
    *out = dump;
    *out_len = strlen (dump);
    return 0;
}
