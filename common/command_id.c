/* command_id — deterministic command and case ids (see command_id.h). */
#include "command_id.h"
#include "ids.h"

#include <stdio.h>
#include <string.h>

/* Appends the canonical text of a scalar JSON value; returns -1 if it is not a scalar. */
static int
s_scalar_text (const json_t *value, char *out, size_t size)
{
    if (json_is_string (value))
        snprintf (out, size, "%s", json_string_value (value));
    else
    if (json_is_integer (value))
        snprintf (out, size, "%lld", (long long) json_integer_value (value));
    else
    if (json_is_real (value))
        snprintf (out, size, "%.17g", json_real_value (value));
    else
        return -1;
    return 0;
}

void
command_id_from_record (const json_t *record, const char *raw, size_t raw_size, char out[COMMAND_ID_MAX])
{
    if (json_is_object (record))
        command_id_from_members (json_object_get (record, "client_id"), json_object_get (record, "case_type"),
                                 json_object_get (record, "case_version"), raw, raw_size, out);
    else
        command_id_from_members (NULL, NULL, NULL, raw, raw_size, out);
}

void
command_id_from_members (const json_t *client_id, const json_t *case_type, const json_t *case_version,
                         const char *raw, size_t raw_size, char out[COMMAND_ID_MAX])
{
    char client [256], type [256], version [256];
    char hex [41];
    if (s_scalar_text (client_id, client, sizeof client) == 0
    &&  s_scalar_text (case_type, type, sizeof type) == 0
    &&  s_scalar_text (case_version, version, sizeof version) == 0) {
        char key [800];
        size_t cl = strlen (client), tl = strlen (type), vl = strlen (version);
        memcpy (key, client, cl + 1);
        memcpy (key + cl + 1, type, tl + 1);
        memcpy (key + cl + 1 + tl + 1, version, vl);
        ids_sha1_hex (key, cl + 1 + tl + 1 + vl, hex);
        snprintf (out, COMMAND_ID_MAX, "rec:%s", hex);
    }
    else {
        ids_sha1_hex (raw ? raw : "", raw ? raw_size : 0, hex);
        snprintf (out, COMMAND_ID_MAX, "raw:%s", hex);
    }
}

int
command_id_from_idempotency_key (const char *value, size_t size, char out[COMMAND_ID_MAX])
{
    if (size >= 2 && value [0] == '"' && value [size - 1] == '"') {
        value++;
        size -= 2;
    }
    if (size == 0 || size > 100)
        return -2;
    for (size_t i = 0; i < size; i++)
        if ((unsigned char) value [i] < 0x20 || (unsigned char) value [i] > 0x7e || value [i] == '"')
            return -2;
    snprintf (out, COMMAND_ID_MAX, "http:%.*s", (int) size, value);
    return 0;
}

void
command_id_case_id (const char *command_id, char out[37])
{
    ids_uuid5 (command_id, out);
}
