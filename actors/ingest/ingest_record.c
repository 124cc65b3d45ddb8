/* ingest_record — record → command, reply → ingest.result (see ingest_record.h).
 * Error details can quote hostile input (jansson's "near '...'"), so they are
 * reduced to printable ASCII before they go anywhere. */
#include "ingest_record.h"
#include "json_scan.h"
#include "json_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies src into dst as printable ASCII: anything else becomes '?'. */
static void
s_sanitise (char *dst, size_t dst_size, const char *src)
{
    size_t i = 0;
    for (; src && src [i] && i < dst_size - 1; i++) {
        unsigned char c = (unsigned char) src [i];
        dst [i] = c >= 0x20 && c < 0x7f ? (char) c : '?';
    }
    dst [i] = 0;
}

static int
s_reject (ingest_record_t *out, int status, const char *error, const char *detail)
{
    out->status = status;
    snprintf (out->error, sizeof out->error, "%s", error);
    s_sanitise (out->detail, sizeof out->detail, detail);
    return -2;
}

int
ingest_record_parse (const char *raw, size_t size, size_t max_size, ingest_record_t *out)
{
    memset (out, 0, sizeof *out);
    if (max_size && size > max_size) {
        char detail [128];
        snprintf (detail, sizeof detail, "record is %zu bytes; the limit is %zu", size, max_size);
        return s_reject (out, 413, "too_large", detail);
    }
    /* Duplicate keys are refused: two "client_id"s would let the id and the
     * handler's view of the record disagree. The common case, a valid object, is
     * checked without building it: only the three members the id needs are. */
    static const char *const names [] = { "client_id", "case_type", "case_version" };
    json_t *members [3];
    if (raw && json_scan_members (raw, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, names, 3, members)) {
        command_id_from_members (members [0], members [1], members [2], raw, size, out->command_id);
        command_id_case_id (out->command_id, out->case_id);
        for (size_t i = 0; i < 3; i++)
            json_decref (members [i]);
        return 0;
    }
    json_error_t error;
    json_t *record = json_loadb (raw ? raw : "", raw ? size : 0, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
    if (!record) {
        char detail [INGEST_RECORD_DETAIL_MAX];
        snprintf (detail, sizeof detail, "%s (at byte %d)", error.text, error.position);
        return s_reject (out, 400, "malformed_json", detail);
    }
    if (!json_is_object (record)) {
        const char *kind = json_is_array (record) ? "an array"
                         : json_is_string (record) ? "a string"
                         : json_is_null (record) ? "null" : "a scalar";
        char detail [128];
        snprintf (detail, sizeof detail, "a record must be a JSON object, not %s", kind);
        json_decref (record);
        return s_reject (out, 422, "validation.record", detail);
    }
    command_id_from_record (record, raw, size, out->command_id);
    command_id_case_id (out->command_id, out->case_id);
    json_decref (record);
    return 0;
}

int
ingest_record_line_from_id (const char *id, long *line)
{
    if (!id || strncmp (id, "line:", 5) != 0 || id [5] < '0' || id [5] > '9')
        return -2;
    char *end;
    long n = strtol (id + 5, &end, 10);
    if (*end || n < 0)
        return -2;
    *line = n;
    return 0;
}

static char *
s_dump (json_t *root)
{
    if (!root)
        return NULL;
    char *text = json_text_dump (root, JSON_COMPACT, NULL);
    json_decref (root);
    return text;
}

char *
ingest_record_result_ok (long line, const char *case_id, int duplicate)
{
    return s_dump (json_pack ("{s:I, s:b, s:s, s:b}", "line", (json_int_t) line, "ok", 1,
                              "case_id", case_id ? case_id : "", "duplicate", duplicate ? 1 : 0));
}

char *
ingest_record_result_error (long line, int status, const char *error, const char *detail)
{
    char *text = s_dump (json_pack ("{s:I, s:b, s:i, s:s, s:s}", "line", (json_int_t) line, "ok", 0,
                         "status", status, "error", error ? error : "", "detail", detail ? detail : ""));
    if (!text) {
        /* json_pack refuses invalid UTF-8; a peer's text must not make us lose the answer. */
        char clean_error [64], clean_detail [INGEST_RECORD_DETAIL_MAX];
        s_sanitise (clean_error, sizeof clean_error, error ? error : "");
        s_sanitise (clean_detail, sizeof clean_detail, detail ? detail : "");
        text = s_dump (json_pack ("{s:I, s:b, s:i, s:s, s:s}", "line", (json_int_t) line, "ok", 0,
                       "status", status, "error", clean_error, "detail", clean_detail));
    }
    return text;
}

char *
ingest_record_result_from_reply (long line, const char *type, const char *body,
                                 size_t size, const char *fallback_case_id)
{
    json_t *reply = body && size ? json_scan_loadb (body, size, 0, NULL) : NULL;
    char *result = NULL;
    if (reply && json_is_object (reply) && type && strcmp (type, "reply.ok") == 0) {
        const char *case_id = json_string_value (json_object_get (reply, "case_id"));
        int duplicate = json_is_true (json_object_get (reply, "duplicate"));
        result = ingest_record_result_ok (line, case_id ? case_id : fallback_case_id, duplicate);
    }
    else
    if (reply && json_is_object (reply) && type && strcmp (type, "reply.error") == 0) {
        json_t *status = json_object_get (reply, "status");
        const char *error = json_string_value (json_object_get (reply, "error"));
        const char *detail = json_string_value (json_object_get (reply, "detail"));
        json_int_t code = json_is_integer (status) ? json_integer_value (status) : 0;
        if (code >= 400 && code < 500)
            result = ingest_record_result_error (line, (int) code, error ? error : "error", detail);
        else {
            char why [INGEST_RECORD_DETAIL_MAX];
            snprintf (why, sizeof why, "handler answered %lld %s: %s", (long long) code,
                      error ? error : "error", detail ? detail : "");
            result = ingest_record_result_error (line, 503, "unavailable", why);
        }
    }
    else {
        char why [128];
        snprintf (why, sizeof why, "unexpected reply %.40s from the broker", type ? type : "(none)");
        result = ingest_record_result_error (line, 503, "unavailable", why);
    }
    json_decref (reply);
    return result;
}
