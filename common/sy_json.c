/* common/sy_json.c - strict JSON parsing (positions, depth, duplicate keys) over cJSON.
 *
 * The tree walk recurses, but only to the depth limit it enforces, so hostile input cannot
 * exhaust the stack; cJSON's own parser stops at CJSON_NESTING_LIMIT (1000) levels before
 * the walk ever runs. Stateless; any thread.
 */
#include "sy_json.h"
#include "sy_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 256
#define SNIPPET_MAX 16

static void set_err(char **errmsg, char *msg)
{
    if (errmsg)
        *errmsg = msg;
    else
        free(msg);
}

/* Converts a byte offset into 1-based line and column numbers. */
static void offset_to_linecol(const char *src, size_t off, size_t *line, size_t *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < off; i++) {
        if (src[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Copies up to SNIPPET_MAX printable bytes of the text at <p> into <out>, so an error can
 * show what the parser stumbled on without echoing control characters. */
static void snippet(const char *p, const char *end, char out[SNIPPET_MAX + 1])
{
    size_t n = 0;

    while (p < end && n < SNIPPET_MAX && *p != '\n' && *p != '\r') {
        unsigned char ch = (unsigned char)*p++;
        out[n++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '?';
    }
    out[n] = '\0';
}

cJSON *sy_json_parse(const char *src, size_t len, char **errmsg)
{
    const char *end = NULL, *stop;
    cJSON *root;
    size_t line, col;
    char near[SNIPPET_MAX + 1];

    if (errmsg)
        *errmsg = NULL;
    if (!src) {
        set_err(errmsg, sy_xasprintf("line 1, column 1: invalid JSON: no input"));
        return NULL;
    }
    stop = src + len;
    root = cJSON_ParseWithLengthOpts(src, len, &end, 0);
    if (!root) {
        if (!end || end < src || end > stop)
            end = stop;
        offset_to_linecol(src, (size_t)(end - src), &line, &col);
        if (end == stop) {
            set_err(errmsg, sy_xasprintf("line %zu, column %zu: invalid JSON: unexpected end of "
                                         "input (or nesting deeper than %d levels)",
                                         line, col, CJSON_NESTING_LIMIT));
        } else {
            snippet(end, stop, near);
            if (near[0])
                set_err(errmsg, sy_xasprintf("line %zu, column %zu: invalid JSON near \"%s\"", line,
                                             col, near));
            else
                set_err(errmsg, sy_xasprintf("line %zu, column %zu: invalid JSON at the end of "
                                             "the line",
                                             line, col));
        }
        return NULL;
    }
    while (end && end < stop && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end && end < stop) {
        offset_to_linecol(src, (size_t)(end - src), &line, &col);
        snippet(end, stop, near);
        set_err(errmsg,
                sy_xasprintf("line %zu, column %zu: unexpected text after the JSON value: \"%s\"",
                             line, col, near));
        goto out_delete_root;
    }
    if (sy_json_check_tree(root, SY_JSON_MAX_DEPTH, errmsg) < 0)
        goto out_delete_root;
    return root;

out_delete_root:
    cJSON_Delete(root);
    return NULL;
}

static int cmp_key(const void *a, const void *b)
{
    const cJSON *const *x = a;
    const cJSON *const *y = b;
    return strcmp((*x)->string, (*y)->string);
}

/* Returns the first repeated key of <obj> (sorted order), NULL when all keys are distinct;
 * *err is set to -ENOMEM when the scratch array cannot be allocated. Sorting keeps this
 * O(n log n) where a pairwise scan would let a large object cost O(n^2). */
static const char *find_duplicate_key(const cJSON *obj, size_t n, int *err)
{
    const cJSON **items;
    const cJSON *it;
    const char *dup = NULL;
    size_t i = 0;

    *err = 0;
    if (n < 2)
        return NULL;
    items = malloc(n * sizeof(*items));
    if (!items) {
        *err = -ENOMEM;
        return NULL;
    }
    for (it = obj->child; it && i < n; it = it->next)
        if (it->string)
            items[i++] = it;
    qsort(items, i, sizeof(*items), cmp_key);
    for (n = 1; n < i; n++) {
        if (strcmp(items[n - 1]->string, items[n]->string) == 0) {
            dup = items[n]->string;
            break;
        }
    }
    free(items);
    return dup;
}

static int check_node(const cJSON *node, int depth, int max_depth, char *path, size_t plen,
                      char **errmsg)
{
    const cJSON *it;
    const char *dup;
    size_t i = 0;
    int rc;

    if (!cJSON_IsArray(node) && !cJSON_IsObject(node))
        return 0;
    if (depth > max_depth) {
        set_err(errmsg, sy_xasprintf("%s: nesting deeper than %d levels", plen ? path : "(root)",
                                     max_depth));
        return -EINVAL;
    }
    if (cJSON_IsObject(node)) {
        dup = find_duplicate_key(node, sy_json_count(node), &rc);
        if (rc < 0)
            return rc;
        if (dup) {
            set_err(errmsg,
                    sy_xasprintf("%s: duplicate key \"%.80s\"", plen ? path : "(root)", dup));
            return -EINVAL;
        }
    }
    for (it = node->child; it; it = it->next, i++) {
        int n;

        if (cJSON_IsObject(node))
            n = snprintf(path + plen, PATH_MAX_LEN - plen, "%s%.64s", plen ? "." : "",
                         it->string ? it->string : "");
        else
            n = snprintf(path + plen, PATH_MAX_LEN - plen, "[%zu]", i);
        if (n < 0)
            n = 0;
        rc = check_node(it, depth + 1, max_depth, path,
                        plen + (size_t)n < PATH_MAX_LEN ? plen + (size_t)n : PATH_MAX_LEN - 1,
                        errmsg);
        path[plen] = '\0';
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sy_json_check_tree(const cJSON *root, int max_depth, char **errmsg)
{
    char path[PATH_MAX_LEN] = "";

    if (errmsg)
        *errmsg = NULL;
    if (!root)
        return 0;
    return check_node(root, 1, max_depth, path, 0, errmsg);
}

const char *sy_json_kind(const cJSON *item)
{
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsBool(item))
        return "a boolean";
    if (cJSON_IsNumber(item))
        return "a number";
    if (cJSON_IsString(item))
        return "a string";
    if (cJSON_IsArray(item))
        return "a list";
    if (cJSON_IsObject(item))
        return "a mapping";
    return "an invalid value";
}

const cJSON *sy_json_field(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsNull(it) ? NULL : it;
}

const char *sy_json_quote(char *buf, const char *s)
{
    size_t n = 0, i;

    buf[n++] = '"';
    for (i = 0; s[i] && i < SY_JSON_QUOTE_SRC_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            n += (size_t)snprintf(buf + n, SY_JSON_QUOTE_BUF - n, "\\x%02x", ch);
        } else {
            buf[n++] = (char)ch;
        }
    }
    if (s[i]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

const char *sy_json_type_name(const cJSON *item)
{
    if (!item)
        return "nothing";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsBool(item))
        return "boolean";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsArray(item))
        return "array";
    if (cJSON_IsObject(item))
        return "object";
    return "invalid";
}

size_t sy_json_count(const cJSON *item)
{
    const cJSON *it;
    size_t n = 0;

    if (!cJSON_IsArray(item) && !cJSON_IsObject(item))
        return 0;
    for (it = item->child; it; it = it->next)
        n++;
    return n;
}
