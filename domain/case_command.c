/* case_command — parsing of the small command bodies. Enum values are accepted in
 * any case and stored upper-cased, so "approve" and "APPROVE" are one command. */
#include "case_command.h"
#include "json_scan.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int
s_invalid (case_error_t *err, const char *field, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static int
s_invalid (case_error_t *err, const char *field, const char *fmt, ...)
{
    err->status = 422;
    snprintf (err->error, sizeof err->error, "validation.%s", field);
    snprintf (err->field, sizeof err->field, "%s", strcmp (field, "body") ? field : "");
    va_list args;
    va_start (args, fmt);
    vsnprintf (err->detail, sizeof err->detail, fmt, args);
    va_end (args);
    return -2;
}

/* Loads body as a JSON object into *root (caller decrefs). An empty body is {} when
 * allow_empty. Returns 0 or -2. */
static int
s_load (const char *body, size_t size, int allow_empty, json_t **root, case_error_t *err)
{
    *root = NULL;
    if (!body || size == 0) {
        if (!allow_empty)
            return s_invalid (err, "body", "body is empty");
        *root = json_object ();
        return *root ? 0 : s_invalid (err, "body", "out of memory");
    }
    if (size > CASE_COMMAND_BODY_MAX)
        return s_invalid (err, "body", "body is larger than %d bytes", CASE_COMMAND_BODY_MAX);
    json_error_t error;
    *root = json_scan_loadb (body, size, JSON_REJECT_DUPLICATES, &error);
    if (!*root)
        return s_invalid (err, "body", "body is not valid JSON (line %d, column %d)", error.line, error.column);
    if (!json_is_object (*root)) {
        json_decref (*root);
        *root = NULL;
        return s_invalid (err, "body", "body must be a JSON object");
    }
    return 0;
}

/* Copies string member name (required or not) of at most max characters into field
 * (of size bytes), upper-cased if upper. Returns 0 or -2. */
static int
s_string (const json_t *root, const char *name, int required, size_t max, int upper,
          char *field, size_t size, case_error_t *err)
{
    field [0] = 0;
    const json_t *value = json_object_get (root, name);
    if (!value || json_is_null (value)) {
        if (required)
            return s_invalid (err, name, "%s is required", name);
        return 0;
    }
    const char *s = json_string_value (value);
    if (!s)
        return s_invalid (err, name, "%s must be a string", name);
    if (required && !*s)
        return s_invalid (err, name, "%s must not be empty", name);
    size_t chars = 0, len = strlen (s);
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char) s [i] & 0xC0) != 0x80)
            chars++;
        if ((unsigned char) s [i] < 0x20 && s [i] != '\n' && s [i] != '\t')
            return s_invalid (err, name, "%s must not contain control characters", name);
    }
    if (chars > max || len >= size || json_string_length (value) != len)
        return s_invalid (err, name, "%s must be at most %zu characters", name, max);
    for (size_t i = 0; i <= len; i++)
        field [i] = upper ? (char) toupper ((unsigned char) s [i]) : s [i];
    return 0;
}

int
case_command_parse_document_status (const char *body, size_t size, case_command_t *cmd, case_error_t *err)
{
    memset (cmd, 0, sizeof (*cmd));
    memset (err, 0, sizeof (*err));
    json_t *root;
    if (s_load (body, size, 0, &root, err))
        return -2;
    int rc = -2;
    if (s_string (root, "document_id", 1, CASE_ID_MAX - 1, 0, cmd->document_id, sizeof cmd->document_id, err)
    ||  s_string (root, "status", 1, sizeof cmd->status - 1, 1, cmd->status, sizeof cmd->status, err)
    ||  s_string (root, "reason", 0, CASE_REASON_MAX, 0, cmd->reason, sizeof cmd->reason, err))
        goto done;
    if (strcmp (cmd->status, "UPLOADED") && strcmp (cmd->status, "VERIFIED") && strcmp (cmd->status, "REJECTED")) {
        s_invalid (err, "status", "status must be UPLOADED, VERIFIED or REJECTED");
        goto done;
    }
    rc = 0;
done:
    json_decref (root);
    return rc;
}

int
case_command_parse_decision (const char *body, size_t size, case_command_t *cmd, case_error_t *err)
{
    memset (cmd, 0, sizeof (*cmd));
    memset (err, 0, sizeof (*err));
    json_t *root;
    if (s_load (body, size, 0, &root, err))
        return -2;
    int rc = -2;
    if (s_string (root, "decision", 1, sizeof cmd->decision - 1, 1, cmd->decision, sizeof cmd->decision, err)
    ||  s_string (root, "reason", 0, CASE_REASON_MAX, 0, cmd->reason, sizeof cmd->reason, err))
        goto done;
    if (strcmp (cmd->decision, "APPROVE") && strcmp (cmd->decision, "REJECT")) {
        s_invalid (err, "decision", "decision must be APPROVE or REJECT");
        goto done;
    }
    rc = 0;
done:
    json_decref (root);
    return rc;
}

int
case_command_parse_close (const char *body, size_t size, case_command_t *cmd, case_error_t *err)
{
    memset (cmd, 0, sizeof (*cmd));
    memset (err, 0, sizeof (*err));
    json_t *root;
    if (s_load (body, size, 1, &root, err))
        return -2;
    int rc = s_string (root, "reason", 0, CASE_REASON_MAX, 0, cmd->reason, sizeof cmd->reason, err);
    json_decref (root);
    return rc;
}

int
case_command_parse_resolve (const char *body, size_t size, case_command_t *cmd, case_error_t *err)
{
    memset (cmd, 0, sizeof (*cmd));
    memset (err, 0, sizeof (*err));
    json_t *root;
    if (s_load (body, size, 0, &root, err))
        return -2;
    int rc = s_string (root, "deferral_id", 1, CASE_ID_MAX - 1, 0, cmd->deferral_id, sizeof cmd->deferral_id, err);
    json_decref (root);
    return rc;
}
