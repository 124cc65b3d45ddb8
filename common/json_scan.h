/* json_scan — a fast reader for the JSON of client records: builds the same jansson
 * tree that json_loadb builds, several times faster (one pass over the bytes, no
 * stream layer). It only says yes when it is sure: anything unusual (an error,
 * a duplicate key, a huge number, deep nesting, an escaped key...) is left to
 * json_loadb, so every refusal and its message stay jansson's. Ingest and the
 * handler each read every record, and json_loadb was most of what ingest did. */
#ifndef DOSSIER_JSON_SCAN_H
#define DOSSIER_JSON_SCAN_H

#include <jansson.h>
#include <stddef.h>

/* Reads text (size bytes) as json_loadb (text, size, flags, ...) would, for flags
 * made of JSON_REJECT_DUPLICATES and JSON_DECODE_ANY. Returns 1 and *json_p (caller
 * owns) when it is sure that json_loadb accepts the text and builds this very
 * tree; 0 when the caller must ask json_loadb (*json_p NULL). Never fails otherwise:
 * out of memory is a 0 too. */
int json_scan_load (const char *text, size_t size, size_t flags, json_t **json_p);

/* Checks text as json_scan_load does, without building the tree: returns 1 when
 * json_loadb (text, size, flags) certainly accepts it and its top value is an
 * object; then values[i] is the member names[i] as json_loadb would build it
 * (caller owns; NULL when absent). 0 when not sure, or the top is not an object
 * (every values[i] NULL). Ingest needs three members of a record, not its tree. */
int json_scan_members (const char *text, size_t size, size_t flags, const char *const *names, size_t count,
                       json_t **values);

/* json_scan_load, then json_loadb when it was not sure: a drop-in json_loadb for
 * the flags above. */
json_t *json_scan_loadb (const char *text, size_t size, size_t flags, json_error_t *error);

#endif
