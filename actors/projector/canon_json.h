/* canon_json — JSON text in exactly the bytes jansson's compact dump writes
 * ("canonical"). The projector copies canonical payload values into its rows as
 * they are, instead of parsing them into trees and dumping them again: the bytes
 * are the same, the work is not. Anything else (whitespace, other escapes, a real
 * written another way, duplicate keys, bad UTF-8) is first put in canonical form
 * by jansson itself (canon_normalize), so rows never depend on which path ran. */
#ifndef DOSSIER_CANON_JSON_H
#define DOSSIER_CANON_JSON_H

#include <stddef.h>

/* A piece of JSON text, borrowed. */
typedef struct {
    const char *ptr;
    size_t len;
} canon_span_t;

/* One member of an object: key is the raw string token with its quotes, value the
 * raw value text. */
typedef struct {
    canon_span_t key;
    canon_span_t value;
} canon_member_t;

/* 1 if text is exactly one JSON object that jansson would load and dump
 * (JSON_COMPACT) to the very same bytes, else 0. Never reads past len. */
int canon_is_object (const char *text, size_t len);

/* Most members canon_parse_object reports (an object with more is not taken as
 * canonical: it goes through canon_normalize). */
#define CANON_MAX_MEMBERS 64

/* canon_is_object that also stores the object's members in members (room for
 * CANON_MAX_MEMBERS) and their number in *count, in one pass. */
int canon_parse_object (const char *text, size_t len, canon_member_t *members, size_t *count);

/* Iterates over the members of a canonical object (checked by canon_is_object or
 * written by canon_normalize): *cursor starts at the object's first byte. Returns
 * 1 with *member set, 0 at the end. Trusts its input's shape, never its length. */
int canon_next_member (const char **cursor, const char *end, canon_member_t *member);

/* 1 if value is a string token (canonical), else 0. */
int canon_is_string (canon_span_t value);

/* Decodes a canonical string token into out (at least value.len bytes); returns
 * the decoded length. The result is NUL-terminated and holds no NUL before it. */
size_t canon_string_decode (canon_span_t value, char *out);

/* 1 if the raw key token equals the plain name (no escapes in name). */
int canon_key_is (canon_span_t key, const char *name);

/* Bytes canon_string_write needs for s as a JSON string token (quotes included),
 * or 0 when s is not valid UTF-8 (jansson refuses such a string). */
size_t canon_string_size (const char *s, size_t len);
/* Writes s as a JSON string token, escaped as jansson does; returns bytes written
 * (canon_string_size of it). */
size_t canon_string_write (const char *s, size_t len, char *out);

/* Loads text with jansson and dumps it compact: the canonical form of any JSON
 * object. Returns 0 with *out (caller frees with free ()) and *out_len; -2 when
 * text is not a JSON object (the reason, as before, in err); -1 out of memory. */
int canon_normalize (const char *text, size_t len, char **out, size_t *out_len, char *err, size_t err_size);

#endif
