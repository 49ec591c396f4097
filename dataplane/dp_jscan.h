/* dataplane/dp_jscan.h - cheap looks into JSON text on the hot path, without building a
 * tree: does an object member exist with an object value, where is it, is the text an
 * object at all. They scan for "name" at the start of a member (a quote not preceded by a
 * backslash, followed by optional blanks and ':'), so a string value that happens to
 * contain the name is not mistaken for it once the member check holds. Stateless. */
#ifndef DP_JSCAN_H
#define DP_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

/* True when <json> has a member "<name>" whose value starts with '{' (an object). */
bool dp_json_has_object_member(const char *json, size_t len, const char *name);

/* Parses and returns the last member "<name>" whose value is an object (caller frees), or
 * NULL. Only that object's bytes are parsed. */
cJSON *dp_json_member_object(const char *json, size_t len, const char *name);

/* First and last non-blank characters are '{' and '}'. */
bool dp_json_looks_like_object(const char *json, size_t len);

#endif
