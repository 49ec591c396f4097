/* common/sy_yaml.h - YAML (and JSON) documents to cJSON trees, so readers handle one model.
 *
 * YAML is read with libyaml's event parser into a cJSON tree: mappings become objects,
 * sequences arrays, and plain scalars resolve by the YAML 1.2 core schema (null/~/empty,
 * true/false, decimal/0x/0o integers, floats); quoted and block scalars are always strings.
 * yes/no/on/off stay strings (YAML 1.2), so "Norway" stays "NO". Aliases, complex keys,
 * duplicate keys, multiple documents and non-finite numbers (.inf, .nan) are errors. Input
 * is bounded: SY_YAML_MAX_DEPTH levels of nesting and SY_YAML_MAX_NODES nodes. Errors
 * name the line and column. Stateless; any thread.
 */
#ifndef SY_YAML_H
#define SY_YAML_H

#include <cJSON.h>
#include <stddef.h>

#define SY_YAML_MAX_DEPTH 64
#define SY_YAML_MAX_NODES 1000000

/* Parses <src> (<len> bytes, need not be NUL-terminated) as exactly one YAML document.
 * Returns a new tree (caller frees with cJSON_Delete), or NULL with *errmsg set to a heap
 * string (caller frees) such as `line 4, column 3: duplicate key "name"`. <errmsg> may be
 * NULL. An empty stream is an error; an empty document is a JSON null. */
cJSON *sy_yaml_parse(const char *src, size_t len, char **errmsg);

/* Parses a configuration document that is either JSON or YAML. When the first character
 * after whitespace (and an optional UTF-8 byte order mark) is '{', the text is read as JSON
 * (sy_json_parse: strict, errors with line and column). If that fails and the first key is
 * not a double-quoted string, the text is read as YAML instead (a flow mapping such as
 * `{a: 1}`) and YAML's error, if any, is reported; otherwise the JSON error is. Anything else is
 * read as YAML. Returns and errors as sy_yaml_parse. */
cJSON *sy_yaml_load(const char *src, size_t len, char **errmsg);

#endif
