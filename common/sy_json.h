/* common/sy_json.h - strict JSON parsing on top of cJSON, and small tree helpers.
 *
 * cJSON accepts duplicate object keys, nests up to 1000 levels and reports errors through a
 * process-wide pointer; these helpers add what a config or API reader needs: errors with
 * line and column, a depth limit, duplicate-key rejection and no trailing garbage. Trees
 * returned here are plain cJSON trees owned by the caller (cJSON_Delete). Stateless; any
 * thread (cJSON itself writes its global error pointer on failure, which nothing here reads).
 */
#ifndef SY_JSON_H
#define SY_JSON_H

#include <cJSON.h>
#include <stddef.h>

/* Default nesting limit for documents read from operators or clients. */
#define SY_JSON_MAX_DEPTH 64

/* Parses <src> (<len> bytes, need not be NUL-terminated) as exactly one JSON value,
 * optionally surrounded by whitespace. Rejects nesting deeper than SY_JSON_MAX_DEPTH and
 * objects that repeat a key. Returns a new tree (caller frees with cJSON_Delete), or NULL
 * with *errmsg set to a heap string (caller frees) such as
 * `line 3, column 7: invalid JSON near "}"` or `providers[0]: duplicate key "name"`.
 * <errmsg> may be NULL. */
cJSON *sy_json_parse(const char *src, size_t len, char **errmsg);

/* Checks an existing tree: arrays and objects nested at most <max_depth> deep (a root
 * container is level 1; scalars add no level) and no object with a repeated key. Returns 0, -EINVAL
 * with *errmsg set (caller frees; <errmsg> may be NULL), or -ENOMEM. */
int sy_json_check_tree(const cJSON *root, int max_depth, char **errmsg);

/* Returns a static, human-readable name for <item>'s type: "null", "boolean", "number",
 * "string", "array", "object" ("nothing" for NULL, "invalid" for a broken item). */
const char *sy_json_type_name(const cJSON *item);

/* The same as it reads in a message about a document's field: "a mapping", "a list",
 * "a string", "a number", "a boolean", "null" ("an invalid value" otherwise). Static. */
const char *sy_json_kind(const cJSON *item);

/* <obj>'s member <key>, an explicit null counting as absent (YAML's `key:` with nothing
 * after it). NULL when absent. */
const cJSON *sy_json_field(const cJSON *obj, const char *key);

/* Longest user text an error message shows, in source bytes, and the room it needs quoted. */
#define SY_JSON_QUOTE_SRC_MAX 64
#define SY_JSON_QUOTE_BUF (SY_JSON_QUOTE_SRC_MAX * 4 + 8)

/* Writes <s> double-quoted into <buf> (SY_JSON_QUOTE_BUF bytes) with '"' and '\' escaped,
 * control characters as \xNN and text beyond SY_JSON_QUOTE_SRC_MAX bytes clipped to "...",
 * so a message stays on its line and a hostile value stays short. Returns <buf>. */
const char *sy_json_quote(char *buf, const char *s);

/* Counts the direct children of an array or object <item> (0 for anything else). Unlike
 * cJSON_GetArraySize this returns size_t. */
size_t sy_json_count(const cJSON *item);

#endif
