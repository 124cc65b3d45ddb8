/* notifier_payload — the outgoing notification built from a NotificationRequired
 * event (schemas/events.md): the event's payload fields plus the event id, its log
 * position and its time, as one compact JSON object. */
#ifndef DOSSIER_NOTIFIER_PAYLOAD_H
#define DOSSIER_NOTIFIER_PAYLOAD_H

#include <stddef.h>

#include "event.h"

#define NOTIFIER_TOPIC_MAX 64

/* Builds {"id", "notification_id", "case_id", "trigger", "rule_id", "rules_version",
 * "notification_type", "template_id", "language_code", "recipient_details",
 * "context_data", "event_position", "created_at"}: fields missing from the event are
 * null, case_id falls back to the event's stream, created_at is the event's own time
 * (RFC 3339 UTC, milliseconds) so a re-sent notification is byte-identical.
 * topic gets notification_type ("" when missing or too long).
 * Returns a malloc'd string (caller frees) and its size, or NULL when the payload is
 * not a JSON object (reason in err). */
char *notifier_payload_build (const event_t *ev, size_t *size, char topic [NOTIFIER_TOPIC_MAX],
                              char *err, size_t err_size);

#endif
