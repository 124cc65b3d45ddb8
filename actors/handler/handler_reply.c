/* handler_reply — reply bodies built with jansson, so every string is escaped and
 * every body is one compact JSON object whatever the input was. */
#include "handler_reply.h"
#include "json_scan.h"
#include "json_text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
handler_error_set (handler_error_t *err, int status, const char *error, const char *fmt, ...)
{
    memset (err, 0, sizeof (*err));
    err->status = status;
    snprintf (err->error, sizeof err->error, "%s", error);
    va_list args;
    va_start (args, fmt);
    vsnprintf (err->detail, sizeof err->detail, fmt, args);
    va_end (args);
    return -2;
}

static char *
s_dump (json_t *body)
{
    char *text = body ? json_text_dump (body, JSON_COMPACT, NULL) : NULL;
    json_decref (body);
    return text;
}

char *
handler_reply_ok (const char *case_id, const char *status, size_t events, int64_t position,
                  int duplicate, const char *document_id, const char *document_status)
{
    json_t *body = json_pack ("{s:s, s:s, s:I, s:I, s:b}", "case_id", case_id ? case_id : "",
                              "status", status ? status : "", "events", (json_int_t) events,
                              "position", (json_int_t) position, "duplicate", duplicate ? 1 : 0);
    if (body && document_id) {
        json_object_set_new (body, "document_id", json_string (document_id));
        json_object_set_new (body, "document_status", json_string (document_status ? document_status : ""));
    }
    return s_dump (body);
}

/* Copies s as printable ASCII: a detail cut by snprintf in the middle of a UTF-8
 * sequence (or carrying odd bytes from a peer) must still make a valid JSON string. */
static void
s_ascii (char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < size; s++)
        out [n++] = (unsigned char) *s >= 0x20 && (unsigned char) *s < 0x7f ? *s : '?';
    out [n] = 0;
}

char *
handler_reply_error (const handler_error_t *err)
{
    char error [sizeof err->error], field [sizeof err->field], detail [sizeof err->detail];
    s_ascii (error, sizeof error, err->error [0] ? err->error : "error");
    s_ascii (field, sizeof field, err->field);
    s_ascii (detail, sizeof detail, err->detail);
    json_t *body = json_pack ("{s:i, s:s, s:s}", "status", err->status, "error", error, "detail", detail);
    if (body && field [0])
        json_object_set_new (body, "field", json_string (field));
    return s_dump (body);
}

char *
handler_reply_duplicate (const char *result, size_t size)
{
    json_t *body = result ? json_scan_loadb (result, size, 0, NULL) : NULL;
    if (!json_is_object (body)) {
        json_decref (body);
        return NULL;
    }
    json_object_set_new (body, "duplicate", json_true ());
    return s_dump (body);
}
