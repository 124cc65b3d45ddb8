/* json_scan — see json_scan.h. A recursive-descent reader over the bytes, building
 * with the same jansson constructors json_loadb's parser uses, in the same order.
 * The grammar is RFC 8259 as jansson's lexer reads it: whitespace is space, tab,
 * CR, LF; numbers have no leading zeros, no '+', no bare '.'; a number without
 * '.', 'e' or 'E' is an integer; strings hold no raw control bytes and only valid
 * UTF-8 (no overlongs, no surrogates). Where jansson would refuse, or where copying
 * its result exactly would take more than it is worth, this gives up (returns 0)
 * and the caller asks json_loadb. */
#include "json_scan.h"
#include "json_text.h"

#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DEPTH      64     /* jansson allows 2048: deeper records are left to it */
#define S_MAX_INT_DIGITS 18     /* always fits an int64 (jansson: strtoll, ERANGE refused) */
#define S_MAX_REAL_TEXT  48     /* longer reals (or ones that might overflow) go to jansson */
#define S_STRING_STACK   256

#define S_MAX_KEYS       64     /* members per object checked for duplicates without a tree */

typedef struct {
    const unsigned char *p, *end;
    size_t flags;
    char *buf;                  /* unescaped string scratch (grows) */
    size_t buf_cap;
    int build;                  /* 0: check only, except the wanted top-level members */
    const char *const *want;    /* top-level members to build when not building */
    size_t want_count;
    json_t **found;             /* want_count slots */
} s_scan_t;

/* What a value checked without building returns: never dereferenced or freed. */
static char s_checked_marker;
#define S_CHECKED ((json_t *) &s_checked_marker)

static void
s_release (json_t *value)
{
    if (value != S_CHECKED)
        json_decref (value);
}

static void
s_skip_space (s_scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int
s_hex4 (const unsigned char *p, const unsigned char *end, uint32_t *out)
{
    if (end - p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p [i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t) (c - '0');
        else
        if (c >= 'a' && c <= 'f')
            v |= (uint32_t) (c - 'a' + 10);
        else
        if (c >= 'A' && c <= 'F')
            v |= (uint32_t) (c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int
s_buf_reserve (s_scan_t *s, size_t need)
{
    if (need <= s->buf_cap)
        return 0;
    size_t cap = s->buf_cap * 2 > need ? s->buf_cap * 2 : need;
    char *buf = realloc (s->buf, cap);
    if (!buf)
        return -1;
    s->buf = buf;
    s->buf_cap = cap;
    return 0;
}

/* Reads a string (s->p at the opening quote) into s->buf; *len_p its length,
 * *escaped_p whether it had escapes. 0 ok, -1 give up. */
static int
s_string (s_scan_t *s, size_t *len_p, int *escaped_p)
{
    s->p++;
    const unsigned char *start = s->p;
    /* The common case: no escape, only printable ASCII and valid UTF-8. */
    const unsigned char *q = start;
    while (q < s->end && *q != '"' && *q != '\\' && *q >= 0x20) {
        if (*q < 0x80)
            q++;
        else {
            size_t n = json_text_utf8_length (q, (size_t) (s->end - q));
            if (!n)
                return -1;
            q += n;
        }
    }
    if (q >= s->end || *q < 0x20)
        return -1;
    size_t len = (size_t) (q - start);
    if (s_buf_reserve (s, len + 1))
        return -1;
    memcpy (s->buf, start, len);
    *escaped_p = 0;
    if (*q == '"') {
        s->p = q + 1;
        s->buf [len] = 0;
        *len_p = len;
        return 0;
    }
    /* Escapes: unescape from here on (never longer than the source). */
    *escaped_p = 1;
    s->p = q;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = *s->p;
        if (c < 0x20)
            return -1;
        if (s_buf_reserve (s, len + 5))
            return -1;
        if (c != '\\') {
            size_t n = json_text_utf8_length (s->p, (size_t) (s->end - s->p));
            if (!n)
                return -1;
            memcpy (s->buf + len, s->p, n);
            len += n;
            s->p += n;
            continue;
        }
        if (s->end - s->p < 2)
            return -1;
        c = s->p [1];
        s->p += 2;
        char simple = 0;
        switch (c) {
            case '"': simple = '"'; break;
            case '\\': simple = '\\'; break;
            case '/': simple = '/'; break;
            case 'b': simple = '\b'; break;
            case 'f': simple = '\f'; break;
            case 'n': simple = '\n'; break;
            case 'r': simple = '\r'; break;
            case 't': simple = '\t'; break;
            case 'u': break;
            default: return -1;
        }
        if (simple) {
            s->buf [len++] = simple;
            continue;
        }
        uint32_t cp;
        if (s_hex4 (s->p, s->end, &cp))
            return -1;
        s->p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t low;
            if (s->end - s->p < 6 || s->p [0] != '\\' || s->p [1] != 'u' || s_hex4 (s->p + 2, s->end, &low)
            ||  low < 0xdc00 || low > 0xdfff)
                return -1;
            s->p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        else
        if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0)
            return -1;          /* a lone low surrogate, or \u0000: jansson refuses */
        unsigned char *o = (unsigned char *) s->buf + len;
        if (cp < 0x80)
            o [0] = (unsigned char) cp, len += 1;
        else
        if (cp < 0x800) {
            o [0] = (unsigned char) (0xc0 | (cp >> 6));
            o [1] = (unsigned char) (0x80 | (cp & 0x3f));
            len += 2;
        }
        else
        if (cp < 0x10000) {
            o [0] = (unsigned char) (0xe0 | (cp >> 12));
            o [1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            o [2] = (unsigned char) (0x80 | (cp & 0x3f));
            len += 3;
        }
        else {
            o [0] = (unsigned char) (0xf0 | (cp >> 18));
            o [1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
            o [2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            o [3] = (unsigned char) (0x80 | (cp & 0x3f));
            len += 4;
        }
    }
    if (s->p >= s->end)
        return -1;
    s->p++;
    s->buf [len] = 0;
    *len_p = len;
    return 0;
}

/* A number token; NULL to give up. */
static json_t *
s_number (s_scan_t *s)
{
    const unsigned char *start = s->p, *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end)
        return NULL;
    if (*p == '0')
        p++;
    else
    if (*p >= '1' && *p <= '9')
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    int real = 0;
    if (p < s->end && *p == '.') {
        real = 1;
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return NULL;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        const unsigned char *digits = p;
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
        /* at most two exponent digits: no overflow to infinity is possible */
        if (p == digits || p - digits > 2)
            return NULL;
    }
    /* What follows a number must end it ("01", "1x" are jansson's errors). */
    if (p < s->end && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ','
                        || *p == ']' || *p == '}'))
        return NULL;
    size_t len = (size_t) (p - start);
    s->p = p;
    if (!s->build && !real)
        return len - (*start == '-') > S_MAX_INT_DIGITS ? NULL : S_CHECKED;
    if (!s->build && len < S_MAX_REAL_TEXT)
        return S_CHECKED;       /* the grammar was checked; strtod cannot refuse it */
    if (!real) {
        size_t digits = len - (*start == '-');
        if (digits > S_MAX_INT_DIGITS)
            return NULL;
        long long v = 0;
        for (const unsigned char *d = start + (*start == '-'); d < p; d++)
            v = v * 10 + (*d - '0');
        return json_integer ((json_int_t) (*start == '-' ? -v : v));
    }
    if (len >= S_MAX_REAL_TEXT)
        return NULL;
    char text [S_MAX_REAL_TEXT];
    memcpy (text, start, len);
    text [len] = 0;
    /* jansson calls strtod too (after putting the locale's decimal point in). */
    const struct lconv *lc = localeconv ();
    if (!lc || !lc->decimal_point || strcmp (lc->decimal_point, ".") != 0)
        return NULL;
    char *end = NULL;
    double value = strtod (text, &end);
    if (end != text + len)
        return NULL;
    return json_real (value);
}

static json_t *s_value (s_scan_t *s, int depth);

static json_t *
s_object (s_scan_t *s, int depth)
{
    s->p++;
    int build = s->build;
    json_t *object = build ? json_object () : S_CHECKED;
    if (!object)
        return NULL;
    /* Without a tree, duplicates are found among the raw keys (escaped keys are
     * left to jansson, so equal bytes are equal keys). */
    const unsigned char *keys [S_MAX_KEYS];
    size_t key_lens [S_MAX_KEYS];
    size_t n_keys = 0;
    s_skip_space (s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return object;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"')
            goto fail;
        size_t len;
        int escaped;
        const unsigned char *raw_key = s->p + 1;
        /* An escaped key could equal another in a way only unescaping shows, and
         * jansson refuses NUL in keys: such keys are left to it. */
        if (s_string (s, &len, &escaped) || escaped)
            goto fail;
        char stack [S_STRING_STACK];
        char *key = len < sizeof stack ? stack : malloc (len + 1);
        if (!key)
            goto fail;
        memcpy (key, s->buf, len + 1);
        size_t wanted = s->want_count;
        if (!build) {
            int duplicate = 0;
            for (size_t i = 0; i < n_keys && !duplicate; i++)
                duplicate = key_lens [i] == len && memcmp (keys [i], raw_key, len) == 0;
            if (duplicate || n_keys >= S_MAX_KEYS) {
                if (key != stack)
                    free (key);
                goto fail;
            }
            keys [n_keys] = raw_key;
            key_lens [n_keys++] = len;
            if (depth == 1)
                for (wanted = 0; wanted < s->want_count; wanted++)
                    if (strlen (s->want [wanted]) == len && memcmp (s->want [wanted], key, len) == 0)
                        break;
        }
        s_skip_space (s);
        json_t *value = NULL;
        if (s->p < s->end && *s->p == ':') {
            s->p++;
            s_skip_space (s);
            if (wanted < s->want_count)
                s->build = 1;
            value = s_value (s, depth + 1);
            s->build = build;
        }
        /* A duplicate key: jansson refuses it with JSON_REJECT_DUPLICATES and keeps
         * the last value without; either way it is its call. */
        int ok = 0;
        if (!build) {
            ok = value != NULL;
            if (ok && wanted < s->want_count)
                s->found [wanted] = value;
        }
        else
        if (value && json_object_getn (object, key, len))
            json_decref (value);
        else
        if (value)      /* the _new setter takes value, on failure too */
            ok = json_object_setn_new_nocheck (object, key, len, value) == 0;
        if (key != stack)
            free (key);
        if (!ok)
            goto fail;
        s_skip_space (s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            s_skip_space (s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return object;
        }
        goto fail;
    }
fail:
    s_release (object);
    return NULL;
}

static json_t *
s_array (s_scan_t *s, int depth)
{
    s->p++;
    json_t *array = s->build ? json_array () : S_CHECKED;
    if (!array)
        return NULL;
    s_skip_space (s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return array;
    }
    for (;;) {
        json_t *value = s_value (s, depth + 1);
        if (!value || (array != S_CHECKED && json_array_append_new (array, value)))
            goto fail;
        s_skip_space (s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            s_skip_space (s);
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return array;
        }
        goto fail;
    }
fail:
    s_release (array);
    return NULL;
}

static int
s_literal (s_scan_t *s, const char *word, size_t len)
{
    if ((size_t) (s->end - s->p) < len || memcmp (s->p, word, len) != 0)
        return -1;
    s->p += len;
    return 0;
}

static json_t *
s_value (s_scan_t *s, int depth)
{
    if (depth > S_MAX_DEPTH || s->p >= s->end)
        return NULL;
    switch (*s->p) {
        case '{':
            return s_object (s, depth);
        case '[':
            return s_array (s, depth);
        case '"': {
            size_t len;
            int escaped;
            if (s_string (s, &len, &escaped))
                return NULL;
            return s->build ? json_stringn_nocheck (s->buf, len) : S_CHECKED;
        }
        case 't':
            return s_literal (s, "true", 4) ? NULL : s->build ? json_true () : S_CHECKED;
        case 'f':
            return s_literal (s, "false", 5) ? NULL : s->build ? json_false () : S_CHECKED;
        case 'n':
            return s_literal (s, "null", 4) ? NULL : s->build ? json_null () : S_CHECKED;
        default:
            return s_number (s);
    }
}

/* Runs the reader over the whole text; the top value or NULL (gave up). */
static json_t *
s_run (s_scan_t *s, const char *text, size_t size, size_t flags)
{
    if (!text || (flags & ~(size_t) (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)))
        return NULL;
    /* Without JSON_REJECT_DUPLICATES jansson keeps a duplicate key's last value;
     * this reader always leaves duplicates to jansson, which is right either way. */
    s->p = (const unsigned char *) text;
    s->end = (const unsigned char *) text + size;
    s->flags = flags;
    /* Strings up to this size need no allocation of their own. */
    s->buf = malloc (S_STRING_STACK);
    if (!s->buf)
        return NULL;
    s->buf_cap = S_STRING_STACK;
    s_skip_space (s);
    json_t *json = NULL;
    if (s->p < s->end && ((flags & JSON_DECODE_ANY) || *s->p == '{' || *s->p == '['))
        json = s_value (s, 1);
    if (json) {
        s_skip_space (s);
        if (s->p != s->end) {
            s_release (json);
            json = NULL;
        }
    }
    free (s->buf);
    s->buf = NULL;
    return json;
}

int
json_scan_load (const char *text, size_t size, size_t flags, json_t **json_p)
{
    s_scan_t s = { .build = 1 };
    *json_p = s_run (&s, text, size, flags);
    return *json_p ? 1 : 0;
}

int
json_scan_members (const char *text, size_t size, size_t flags, const char *const *names, size_t count,
                   json_t **values)
{
    for (size_t i = 0; i < count; i++)
        values [i] = NULL;
    s_scan_t s = { .build = 0, .want = names, .want_count = count, .found = values };
    json_t *top = s_run (&s, text, size, flags);
    /* Only an object has members; anything else is for json_loadb to tell. */
    if (top && text [0] != '{') {
        const unsigned char *p = (const unsigned char *) text;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p != '{')
            top = NULL;
    }
    if (!top) {
        for (size_t i = 0; i < count; i++)
            if (values [i])
                json_decref (values [i]);
        for (size_t i = 0; i < count; i++)
            values [i] = NULL;
        return 0;
    }
    return 1;
}

json_t *
json_scan_loadb (const char *text, size_t size, size_t flags, json_error_t *error)
{
    json_t *json = NULL;
    if (json_scan_load (text, size, flags, &json) == 1) {
        if (error)
            memset (error, 0, sizeof (*error));
        return json;
    }
    return json_loadb (text, size, flags, error);
}
