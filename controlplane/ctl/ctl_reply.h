/* controlplane/ctl/ctl_reply.h - reading the admin API's JSON replies defensively, and
 * reporting errors the way every switchyardctl command does.
 *
 * The accessors never trust the reply's shape: a missing member or a wrong type gives an
 * error naming the member's path ("versions[2].version: expected an integer, got a
 * string"), which the command prints as an unexpected reply instead of crashing.
 * Messages built here are sanitised (no control characters from the server reach the
 * terminal). Single-threaded; no state.
 */
#ifndef CTL_REPLY_H
#define CTL_REPLY_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Prints "switchyardctl: <message>\n" to stderr. */
void ctl_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "switchyardctl: unexpected reply from server: <what>", frees <what> (may be NULL)
 * and returns CTL_EXIT_SERVER. */
int ctl_unexpected(char *what);

/* Builds the message for a reply with an error <status>: the server's error.message, then
 * for each entry of error.errors a line "  <path>: <message>". When <body> (<len> bytes)
 * is not the API's error object, falls back to "HTTP <status>: <start of body>". Returns a
 * heap string without a final newline (caller frees). */
char *ctl_reply_error_text(long status, const char *body, size_t len);

/* Reads the integer member <key> of the object <obj>. <where> names <obj> in messages ("" at
 * the top level, "versions[2]" inside). Returns 0, or -EINVAL with *errmsg set (caller
 * frees) when the member is missing, not a number, or not a whole number in +-2^53. */
int ctl_json_int(const cJSON *obj, const char *where, const char *key, int64_t *out, char **errmsg);

/* Like ctl_json_int, but a missing or null member is fine: *present says which. */
int ctl_json_int_opt(const cJSON *obj, const char *where, const char *key, int64_t *out,
                     bool *present, char **errmsg);

/* Reads the boolean member <key>; missing or null gives <dflt>. -EINVAL for another type. */
int ctl_json_bool(const cJSON *obj, const char *where, const char *key, bool dflt, bool *out,
                  char **errmsg);

/* Reads the string member <key> into *out (borrowed from <obj>). When <required> is false, a
 * missing or null member gives NULL. -EINVAL for another type or a missing required one. */
int ctl_json_str(const cJSON *obj, const char *where, const char *key, bool required,
                 const char **out, char **errmsg);

/* Reads the array member <key> into *out (borrowed). -EINVAL when missing or not an array. */
int ctl_json_array(const cJSON *obj, const char *where, const char *key, const cJSON **out,
                   char **errmsg);

/* Reads the object member <key> into *out (borrowed). -EINVAL when missing or not an object. */
int ctl_json_object(const cJSON *obj, const char *where, const char *key, const cJSON **out,
                    char **errmsg);

/* Prints <json> indented by two spaces, with a final newline. Returns 0, or -ENOMEM. */
int ctl_json_print(FILE *out, const cJSON *json);

#endif
