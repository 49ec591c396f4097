/* common/sy_yaml.c - one YAML document to a cJSON tree, with positions in every error.
 *
 * Built on libyaml's event parser, which keeps its own state on the heap; the tree is
 * assembled with an explicit stack of open containers capped at SY_YAML_MAX_DEPTH, so no
 * input can recurse. A container is linked into its parent as soon as it opens, so a single
 * cJSON_Delete of the root frees everything on any error path. Duplicate keys are found
 * with a per-mapping hash set of the keys already stored (pointers into the tree), which
 * keeps huge mappings linear. Stateless; any thread.
 */
#include "sy_yaml.h"
#include "sy_json.h"
#include "sy_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* A set of the keys already present in one mapping; keys point at item->string. */
struct keyset {
    const char **slots;
    size_t cap; /* power of two, or 0 before the first key */
    size_t n;
};

struct frame {
    cJSON *node; /* the open object or array */
    char *key;   /* object: the key waiting for its value, or NULL when a key comes next */
    struct keyset keys;
};

struct builder {
    cJSON *root;
    struct frame stack[SY_YAML_MAX_DEPTH];
    size_t depth;
    size_t nodes;
    unsigned documents;
    char *err;
};

enum plain_kind { PLAIN_NULL, PLAIN_BOOL, PLAIN_INT, PLAIN_FLOAT, PLAIN_STR, PLAIN_NONFINITE };

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

/* Returns true when <key> was already in <ks>; otherwise only looks. */
static bool keyset_has(const struct keyset *ks, const char *key)
{
    size_t i;

    if (!ks->cap)
        return false;
    for (i = fnv1a(key) & (ks->cap - 1); ks->slots[i]; i = (i + 1) & (ks->cap - 1))
        if (strcmp(ks->slots[i], key) == 0)
            return true;
    return false;
}

static void keyset_put(struct keyset *ks, const char *key)
{
    size_t i;

    if (2 * (ks->n + 1) > ks->cap) {
        struct keyset grown = {.cap = ks->cap ? ks->cap * 2 : 8, .n = 0};

        grown.slots = sy_xcalloc(grown.cap, sizeof(*grown.slots));
        for (i = 0; i < ks->cap; i++)
            if (ks->slots[i])
                keyset_put(&grown, ks->slots[i]);
        free(ks->slots);
        *ks = grown;
    }
    for (i = fnv1a(key) & (ks->cap - 1); ks->slots[i]; i = (i + 1) & (ks->cap - 1))
        ;
    ks->slots[i] = key;
    ks->n++;
}

/* Records the first error, prefixed with the position of <mark>. User text in <fmt>'s
 * arguments is clipped with %.80s, so the fixed buffer holds every message. */
static void fail(struct builder *b, const yaml_mark_t *mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct builder *b, const yaml_mark_t *mark, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (b->err)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?'; /* keep one error per line whatever the key holds */
    b->err = sy_xasprintf("line %zu, column %zu: %s", mark->line + 1, mark->column + 1, msg);
}

static bool all_digits(const char *s, const char *digits)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(digits, *s))
            return false;
    return true;
}

/* Matches the YAML 1.2 core float form [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float_text(const char *s)
{
    size_t int_digits = 0, frac_digits = 0;

    if (*s == '-' || *s == '+')
        s++;
    while (*s >= '0' && *s <= '9') {
        s++;
        int_digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static bool is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

/* Resolves a plain scalar by the YAML 1.2 core schema. *num receives numbers and booleans. */
static enum plain_kind resolve_plain(const char *s, double *num)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                       "+.INF", "-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *digits = s;
    char *end;

    if (is_one_of(s, nulls))
        return PLAIN_NULL;
    if (is_one_of(s, trues) || is_one_of(s, falses)) {
        *num = is_one_of(s, trues);
        return PLAIN_BOOL;
    }
    if (is_one_of(s, infs) || is_one_of(s, nans))
        return PLAIN_NONFINITE;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        bool hex = s[1] == 'x';
        unsigned long long v;

        if (!all_digits(s + 2, hex ? "0123456789abcdefABCDEF" : "01234567"))
            return PLAIN_STR;
        errno = 0;
        v = strtoull(s + 2, &end, hex ? 16 : 8);
        if (errno)
            return PLAIN_NONFINITE;
        *num = (double)v;
        return PLAIN_INT;
    }
    if (*digits == '-' || *digits == '+')
        digits++;
    if (all_digits(digits, "0123456789") || is_float_text(s)) {
        *num = strtod(s, &end);
        if (!isfinite(*num))
            return PLAIN_NONFINITE;
        return all_digits(digits, "0123456789") ? PLAIN_INT : PLAIN_FLOAT;
    }
    return PLAIN_STR;
}

/* Builds the cJSON value of a scalar event, or NULL with b->err set. */
static cJSON *make_scalar(struct builder *b, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    enum plain_kind kind = PLAIN_STR;
    double num = 0;

    if (strlen(text) != ev->data.scalar.length) {
        fail(b, &ev->start_mark, "NUL characters in scalars are not supported");
        return NULL;
    }
    if (tag && strcmp(tag, "!") != 0 && strcmp(tag, YAML_STR_TAG) != 0) {
        enum plain_kind want;

        if (strcmp(tag, YAML_NULL_TAG) == 0)
            want = PLAIN_NULL;
        else if (strcmp(tag, YAML_BOOL_TAG) == 0)
            want = PLAIN_BOOL;
        else if (strcmp(tag, YAML_INT_TAG) == 0)
            want = PLAIN_INT;
        else if (strcmp(tag, YAML_FLOAT_TAG) == 0)
            want = PLAIN_FLOAT;
        else {
            fail(b, &ev->start_mark, "unsupported tag \"%.80s\"", tag);
            return NULL;
        }
        kind = resolve_plain(text, &num);
        if (kind == PLAIN_INT && want == PLAIN_FLOAT)
            kind = PLAIN_FLOAT;
        if (kind != want) {
            fail(b, &ev->start_mark, "value does not match its tag \"%.80s\"", tag);
            return NULL;
        }
    } else if (!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        kind = resolve_plain(text, &num);
    }
    switch (kind) {
    case PLAIN_NULL:
        return cJSON_CreateNull();
    case PLAIN_BOOL:
        return cJSON_CreateBool(num != 0);
    case PLAIN_INT:
    case PLAIN_FLOAT:
        return cJSON_CreateNumber(num);
    case PLAIN_NONFINITE:
        fail(b, &ev->start_mark,
             "number \"%.80s\" is out of range (infinities and NaN are not "
             "supported)",
             text);
        return NULL;
    case PLAIN_STR:
        break;
    }
    return cJSON_CreateString(text);
}

/* Links <node> into the open container, or makes it the root. Takes <node>; a NULL <node>
 * (cJSON out of memory) stops the build. */
static bool attach(struct builder *b, const yaml_event_t *ev, cJSON *node)
{
    struct frame *top;

    if (!node) {
        fail(b, &ev->start_mark, "out of memory");
        return false;
    }
    if (b->depth == 0) {
        b->root = node;
        return true;
    }
    top = &b->stack[b->depth - 1];
    if (cJSON_IsObject(top->node)) {
        /* An object is a list whose items carry their key: hand the key over instead of
         * letting cJSON_AddItemToObject copy it. */
        node->string = top->key;
        top->key = NULL;
        keyset_put(&top->keys, node->string);
    }
    cJSON_AddItemToArray(top->node, node);
    return true;
}

/* Handles a node that is about to be added where a mapping key is expected. Returns true
 * when the event was consumed as a key. */
static bool take_key(struct builder *b, const yaml_event_t *ev)
{
    struct frame *top;
    const char *text;

    if (b->depth == 0)
        return false;
    top = &b->stack[b->depth - 1];
    if (!cJSON_IsObject(top->node) || top->key)
        return false;
    if (ev->type != YAML_SCALAR_EVENT) {
        fail(b, &ev->start_mark, "mapping keys must be scalars");
        return true;
    }
    text = (const char *)ev->data.scalar.value;
    if (strlen(text) != ev->data.scalar.length) {
        fail(b, &ev->start_mark, "NUL characters in keys are not supported");
        return true;
    }
    if (keyset_has(&top->keys, text)) {
        fail(b, &ev->start_mark, "duplicate key \"%.80s\"", text);
        return true;
    }
    top->key = sy_xstrdup(text);
    return true;
}

static bool container_tag_ok(const yaml_char_t *tag, const char *std)
{
    return !tag || strcmp((const char *)tag, "!") == 0 || strcmp((const char *)tag, std) == 0;
}

/* Applies one parser event to the tree. Returns false when building must stop. */
static bool on_event(struct builder *b, const yaml_event_t *ev)
{
    cJSON *node = NULL;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1)
            fail(b, &ev->start_mark, "only one YAML document is allowed");
        return !b->err;
    case YAML_ALIAS_EVENT:
        fail(b, &ev->start_mark, "aliases (*name) are not supported");
        return false;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        struct frame *top = &b->stack[--b->depth];

        free(top->keys.slots);
        top->keys.slots = NULL;
        return true;
    }
    case YAML_SCALAR_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        break;
    default:
        return true;
    }

    if (++b->nodes > SY_YAML_MAX_NODES) {
        fail(b, &ev->start_mark, "the document has more than %d nodes", SY_YAML_MAX_NODES);
        return false;
    }
    if (take_key(b, ev))
        return !b->err;

    if (ev->type == YAML_SCALAR_EVENT) {
        node = make_scalar(b, ev);
        if (!node && b->err)
            return false;
        return attach(b, ev, node);
    }

    if (b->depth == SY_YAML_MAX_DEPTH) {
        fail(b, &ev->start_mark, "nesting is deeper than %d levels", SY_YAML_MAX_DEPTH);
        return false;
    }
    if (ev->type == YAML_MAPPING_START_EVENT) {
        if (!container_tag_ok(ev->data.mapping_start.tag, YAML_MAP_TAG)) {
            fail(b, &ev->start_mark, "unsupported tag \"%.80s\"",
                 (const char *)ev->data.mapping_start.tag);
            return false;
        }
        node = cJSON_CreateObject();
    } else {
        if (!container_tag_ok(ev->data.sequence_start.tag, YAML_SEQ_TAG)) {
            fail(b, &ev->start_mark, "unsupported tag \"%.80s\"",
                 (const char *)ev->data.sequence_start.tag);
            return false;
        }
        node = cJSON_CreateArray();
    }
    if (!attach(b, ev, node))
        return false;
    b->stack[b->depth++] = (struct frame){.node = node};
    return true;
}

static void parser_error(struct builder *b, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "invalid YAML";

    if (parser->error == YAML_READER_ERROR) {
        b->err = sy_xasprintf("byte %zu: %s", parser->problem_offset, problem);
        return;
    }
    if (parser->context)
        b->err = sy_xasprintf("line %zu, column %zu: %s (%s at line %zu, column %zu)",
                              parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                              problem, parser->context, parser->context_mark.line + 1,
                              parser->context_mark.column + 1);
    else
        b->err = sy_xasprintf("line %zu, column %zu: %s", parser->problem_mark.line + 1,
                              parser->problem_mark.column + 1, problem);
}

cJSON *sy_yaml_parse(const char *src, size_t len, char **errmsg)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct builder b = {0};
    bool done = false;

    if (errmsg)
        *errmsg = NULL;
    if (!src)
        len = 0;
    if (!yaml_parser_initialize(&parser)) {
        b.err = sy_xasprintf("out of memory");
        goto out_report;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(src ? src : ""), len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(&b, &parser);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        if (!on_event(&b, &ev))
            done = true;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (!b.err && b.documents == 0)
        b.err = sy_xasprintf("the document is empty");

out_report:
    /* On errors, unwind the frames still open: their keys and key sets are not in the tree. */
    while (b.depth > 0) {
        struct frame *top = &b.stack[--b.depth];

        free(top->key);
        free(top->keys.slots);
    }
    if (b.err) {
        cJSON_Delete(b.root);
        if (errmsg)
            *errmsg = b.err;
        else
            free(b.err);
        return NULL;
    }
    return b.root;
}

cJSON *sy_yaml_load(const char *src, size_t len, char **errmsg)
{
    size_t i, bom = 0;
    cJSON *root;
    char *json_err = NULL;

    if (errmsg)
        *errmsg = NULL;
    if (!src)
        return sy_yaml_parse(NULL, 0, errmsg);
    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0)
        bom = 3;
    i = bom;
    while (i < len && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r'))
        i++;
    if (i == len || src[i] != '{')
        return sy_yaml_parse(src, len, errmsg);

    root = sy_json_parse(src + bom, len - bom, &json_err);
    if (root)
        return root;
    /* A YAML flow mapping such as `{a: 1}` is a valid document too, and its author wants
     * YAML's error if it is broken. Text whose first key is a JSON string was meant as JSON,
     * though: YAML would read `{"a": }` as a null and let a broken document through. */
    for (i++; i < len && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r');)
        i++;
    if (i < len && src[i] != '"') {
        free(json_err);
        return sy_yaml_parse(src, len, errmsg);
    }
    if (errmsg)
        *errmsg = json_err;
    else
        free(json_err);
    return NULL;
}
