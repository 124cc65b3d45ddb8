/* traceparent — W3C Trace Context level 1 parsing and generation (see the header).
 * Ids come from the same kernel-seeded generator as the random UUIDs. */
#include "traceparent.h"
#include "ids.h"

#include <stdio.h>
#include <string.h>

static bool
s_lower_hex (const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s [i] >= '0' && s [i] <= '9') || (s [i] >= 'a' && s [i] <= 'f')))
            return false;
    return true;
}

static bool
s_all_zero (const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s [i] != '0')
            return false;
    return true;
}

static unsigned
s_hex_value (char c)
{
    return c <= '9' ? (unsigned) (c - '0') : (unsigned) (c - 'a' + 10);
}

int
traceparent_parse (const char *value, size_t size, traceparent_t *out)
{
    /* vv-<32>-<16>-ff */
    if (!value || size < 55 || value [2] != '-' || value [35] != '-' || value [52] != '-')
        return -1;
    if (!s_lower_hex (value, 2) || (value [0] == 'f' && value [1] == 'f'))
        return -1;
    bool version_00 = value [0] == '0' && value [1] == '0';
    /* Version 00 is exactly 55 characters; a later version may append "-..." fields. */
    if (version_00 ? size != 55 : (size > 55 && value [55] != '-'))
        return -1;
    if (!s_lower_hex (value + 3, 32) || !s_lower_hex (value + 36, 16) || !s_lower_hex (value + 53, 2))
        return -1;
    if (s_all_zero (value + 3, 32) || s_all_zero (value + 36, 16))
        return -1;
    memcpy (out->trace_id, value + 3, 32);
    out->trace_id [32] = 0;
    memcpy (out->parent_id, value + 36, 16);
    out->parent_id [16] = 0;
    out->flags = s_hex_value (value [53]) * 16 + s_hex_value (value [54]);
    return 0;
}

/* n lowercase hex digits (n <= 32) from a random UUID. */
static void
s_random_hex (char *out, size_t n)
{
    char uuid [IDS_UUID_LEN];
    do {
        ids_uuid4 (uuid);
        size_t k = 0;
        for (const char *c = uuid; *c && k < n; c++)
            if (*c != '-')
                out [k++] = *c;
        out [k] = 0;
    } while (s_all_zero (out, n));
}

void
traceparent_new (traceparent_t *out)
{
    s_random_hex (out->trace_id, 32);
    s_random_hex (out->parent_id, 16);
    out->flags = 1;
}

void
traceparent_child (const traceparent_t *parent, traceparent_t *out)
{
    if (out != parent)
        memcpy (out->trace_id, parent->trace_id, sizeof out->trace_id);
    out->flags = parent->flags;
    s_random_hex (out->parent_id, 16);
}

void
traceparent_format (const traceparent_t *tp, char *out)
{
    snprintf (out, TRACEPARENT_LEN, "00-%s-%s-%02x", tp->trace_id, tp->parent_id, tp->flags & 0xffu);
}

void
traceparent_hop (const char *value, size_t size, char *out)
{
    traceparent_t trace;
    if (!value || traceparent_parse (value, size, &trace) != 0)
        traceparent_new (&trace);
    traceparent_child (&trace, &trace);
    traceparent_format (&trace, out);
}

const char *
traceparent_trace_id (const char *value, char *out)
{
    traceparent_t trace;
    if (!value || !value [0] || traceparent_parse (value, strlen (value), &trace) != 0)
        return NULL;
    memcpy (out, trace.trace_id, sizeof trace.trace_id);
    return out;
}
