/* notifier_payload — NotificationRequired event to notification JSON. Every value
 * comes from the event, never from this process, so a batch re-sent after a crash
 * produces the same bytes and consumers can compare or dedupe on "id". */
#include "notifier_payload.h"
#include "json_scan.h"
#include "json_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* RFC 3339 UTC with milliseconds. */
static void
s_format_time (int64_t us, char out [32])
{
    int64_t sec = us / 1000000, rem = us % 1000000;
    if (rem < 0) {
        rem += 1000000;
        sec--;
    }
    time_t t = (time_t) sec;
    struct tm tm;
    if (!gmtime_r (&t, &tm))
        memset (&tm, 0, sizeof tm);
    /* The modulos only bound the widths for the compiler; real dates are in range. */
    snprintf (out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned) (tm.tm_year + 1900) % 10000u,
              (unsigned) (tm.tm_mon + 1) % 100u, (unsigned) tm.tm_mday % 100u, (unsigned) tm.tm_hour % 100u,
              (unsigned) tm.tm_min % 100u, (unsigned) tm.tm_sec % 100u, (unsigned) (rem / 1000) % 1000u);
}

static void
s_copy (json_t *dst, const json_t *src, const char *key)
{
    json_t *v = json_object_get (src, key);
    json_object_set (dst, key, v ? v : json_null ());
}

char *
notifier_payload_build (const event_t *ev, size_t *size, char topic [NOTIFIER_TOPIC_MAX],
                        char *err, size_t err_size)
{
    topic [0] = 0;
    *size = 0;
    json_error_t jerr;
    /* json_scan and json_text: the same tree and bytes as json_loadb and json_dumps,
     * at a fraction of the cost (this was most of the notifier's CPU per event). */
    json_t *data = ev->data && ev->data_size ? json_scan_loadb (ev->data, ev->data_size, 0, &jerr) : NULL;
    if (!json_is_object (data)) {
        snprintf (err, err_size, "payload is not a JSON object%s%s", data ? "" : ": ",
                  data ? "" : (ev->data_size ? jerr.text : "empty"));
        json_decref (data);
        return NULL;
    }
    json_t *out = json_object ();
    json_object_set_new (out, "id", json_string (ev->id));
    s_copy (out, data, "notification_id");
    json_t *case_id = json_object_get (data, "case_id");
    json_object_set_new (out, "case_id", json_is_string (case_id) ? json_incref (case_id) : json_string (ev->stream));
    s_copy (out, data, "trigger");
    s_copy (out, data, "rule_id");
    s_copy (out, data, "rules_version");
    s_copy (out, data, "notification_type");
    s_copy (out, data, "template_id");
    s_copy (out, data, "language_code");
    s_copy (out, data, "recipient_details");
    s_copy (out, data, "context_data");
    json_object_set_new (out, "event_position", json_integer (ev->position));
    char at [32];
    s_format_time (ev->timestamp_us, at);
    json_object_set_new (out, "created_at", json_string (at));
    const char *type = json_string_value (json_object_get (data, "notification_type"));
    if (type && strlen (type) < NOTIFIER_TOPIC_MAX)
        snprintf (topic, NOTIFIER_TOPIC_MAX, "%s", type);
    size_t text_size = 0;
    char *text = json_text_dump (out, JSON_COMPACT, &text_size);
    json_decref (out);
    json_decref (data);
    if (!text) {
        snprintf (err, err_size, "out of memory");
        return NULL;
    }
    *size = text_size;
    return text;
}
