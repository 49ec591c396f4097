/* common/sy_pricing.c - the pricing catalogue: parse and check it, find an entry, apply it
 * to a policy.
 *
 * Parsing goes source -> cJSON tree (sy_yaml_load, as for policies) -> entries. Every
 * problem is collected with the path of its field and returned together; prices and windows
 * are read by the policy compiler (sy_prices_compile), so both accept the same prices and
 * word their errors the same way. Duplicate entries are found by sorting entry positions by
 * (model, provider) once every entry is read.
 *
 * Memory: the source is capped at SY_PRICING_MAX_BYTES before parsing and the entries at
 * SY_PRICING_MAX_ENTRIES, so allocations are proportional to a bounded input and use the
 * abort-on-OOM helpers. Stateless; any thread.
 */
#include "sy_pricing.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_json.h"
#include "sy_util.h"
#include "sy_yaml.h"

#define MAX_ERRORS 100   /* reported individually; the rest are counted */
#define NAME_MAX_LEN 256 /* model and provider names, as in a policy */
#define PATH_BUF 48      /* "models[<size_t>]" */

static const char *const top_keys[] = {"models", NULL};
/* The entry's own keys; sy_prices_compile adds the price keys after them. */
static const char *const entry_keys[] = {"model", "provider", NULL};

/* Collected error lines, '\n'-separated. */
struct errs {
    char *text;
    size_t len;
    unsigned n;
};

static void add_line(struct errs *e, const char *line, size_t n)
{
    if (++e->n > MAX_ERRORS)
        return;
    e->text = sy_xrealloc(e->text, e->len + n + 2);
    if (e->len)
        e->text[e->len++] = '\n';
    memcpy(e->text + e->len, line, n);
    e->len += n;
    e->text[e->len] = '\0';
}

static void errf(struct errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(struct errs *e, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    add_line(e, msg, strlen(msg));
}

/* Adds every line of <text> (from sy_prices_compile), which it takes. */
static void add_lines(struct errs *e, char *text)
{
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        add_line(e, line, next ? (size_t)(next - line) : strlen(line));
        if (next)
            next++;
    }
    free(text);
}

/* A name at <key>: a non-empty string of at most NAME_MAX_LEN bytes without control
 * characters. Returns it, or NULL when absent or invalid (reported). */
static const char *get_name(struct errs *e, const cJSON *obj, const char *path, const char *key,
                            bool required)
{
    const cJSON *it = sy_json_field(obj, key);
    const char *s;

    if (!it) {
        if (required)
            errf(e, "%s.%s: is required", path, key);
        return NULL;
    }
    if (!cJSON_IsString(it)) {
        errf(e, "%s.%s: expected a string, got %s", path, key, sy_json_kind(it));
        return NULL;
    }
    s = it->valuestring;
    if (!*s) {
        errf(e, "%s.%s: must not be empty", path, key);
        return NULL;
    }
    if (strlen(s) > NAME_MAX_LEN) {
        errf(e, "%s.%s: is longer than %d bytes", path, key, NAME_MAX_LEN);
        return NULL;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            errf(e, "%s.%s: must not contain control characters", path, key);
            return NULL;
        }
    }
    return s;
}

static int str_cmp_null(const char *a, const char *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

/* Sorting entry positions by (model, provider, position), for the duplicate check. */
static int cmp_entry_pos(const void *pa, const void *pb, void *arg)
{
    const struct sy_pricing_entry *ents = arg;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    int c = str_cmp_null(ents[a].model, ents[b].model);

    if (c == 0)
        c = str_cmp_null(ents[a].provider, ents[b].provider);
    if (c == 0)
        c = (a > b) - (a < b);
    return c;
}

/* Reports entries that repeat an earlier (model, provider); entries whose model did not
 * parse are skipped (already reported). */
static void check_duplicates(struct errs *e, const struct sy_pricing *cat)
{
    size_t *pos, i, first = 0;
    char q[SY_JSON_QUOTE_BUF], q2[SY_JSON_QUOTE_BUF];

    if (cat->n_entries < 2)
        return;
    pos = sy_xcalloc(cat->n_entries, sizeof(*pos));
    for (i = 0; i < cat->n_entries; i++)
        pos[i] = i;
    qsort_r(pos, cat->n_entries, sizeof(*pos), cmp_entry_pos, cat->entries);
    for (i = 1; i < cat->n_entries; i++) {
        const struct sy_pricing_entry *a = &cat->entries[pos[first]];
        const struct sy_pricing_entry *b = &cat->entries[pos[i]];

        if (!b->model || str_cmp_null(a->model, b->model) != 0 ||
            str_cmp_null(a->provider, b->provider) != 0) {
            first = i;
            continue;
        }
        if (b->provider)
            errf(e, "models[%zu]: duplicate entry for model %s with provider %s (also models[%zu])",
                 pos[i], sy_json_quote(q, b->model), sy_json_quote(q2, b->provider), pos[first]);
        else
            errf(e, "models[%zu]: duplicate entry for model %s (also models[%zu])", pos[i],
                 sy_json_quote(q, b->model), pos[first]);
    }
    free(pos);
}

static void parse_entry(struct errs *e, const cJSON *obj, size_t i, struct sy_pricing_entry *ent)
{
    char path[PATH_BUF];
    const char *s;
    char *perr = NULL;

    snprintf(path, sizeof(path), "models[%zu]", i);
    if (!cJSON_IsObject(obj)) {
        errf(e, "%s: expected a mapping, got %s", path, sy_json_kind(obj));
        return;
    }
    s = get_name(e, obj, path, "model", true);
    if (s)
        ent->model = sy_xstrdup(s);
    s = get_name(e, obj, path, "provider", false);
    if (s)
        ent->provider = sy_xstrdup(s);
    /* Required here, unlike in a policy: a price left out would silently become 0. */
    if (!sy_json_field(obj, "input_per_mtok"))
        errf(e, "%s.input_per_mtok: is required", path);
    if (!sy_json_field(obj, "output_per_mtok"))
        errf(e, "%s.output_per_mtok: is required", path);
    if (sy_prices_compile(obj, path, entry_keys, &ent->prices, &perr) < 0)
        add_lines(e, perr);
}

static void entry_cleanup(struct sy_pricing_entry *ent)
{
    free(ent->model);
    free(ent->provider);
    sy_prices_cleanup(&ent->prices);
}

void sy_pricing_free(struct sy_pricing *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n_entries; i++)
        entry_cleanup(&cat->entries[i]);
    free(cat->entries);
    free(cat);
}

static void set_err(char **errmsg, char *msg)
{
    if (errmsg)
        *errmsg = msg;
    else
        free(msg);
}

struct sy_pricing *sy_pricing_parse(const char *src, size_t len, char **errmsg)
{
    struct sy_pricing *cat = NULL;
    struct errs e = {0};
    char q[SY_JSON_QUOTE_BUF];
    const cJSON *list, *it;
    cJSON *root;
    size_t n, i;

    if (errmsg)
        *errmsg = NULL;
    if (len > SY_PRICING_MAX_BYTES) {
        set_err(errmsg, sy_xasprintf("catalogue: %zu bytes is more than the limit of %u bytes", len,
                                     SY_PRICING_MAX_BYTES));
        return NULL;
    }
    root = sy_yaml_load(src, len, errmsg);
    if (!root)
        return NULL;
    if (!cJSON_IsObject(root)) {
        errf(&e, "catalogue: expected a mapping with a \"models\" list at the top level, got %s",
             sy_json_kind(root));
        goto out_errors;
    }
    for (it = root->child; it; it = it->next)
        if (!it->string || strcmp(it->string, top_keys[0]) != 0)
            errf(&e, "catalogue: unknown key %s (expected one of: models)",
                 sy_json_quote(q, it->string ? it->string : ""));
    list = sy_json_field(root, "models");
    if (!list) {
        errf(&e, "models: is required (a list of prices)");
        goto out_errors;
    }
    if (!cJSON_IsArray(list)) {
        errf(&e, "models: expected a list, got %s", sy_json_kind(list));
        goto out_errors;
    }
    n = sy_json_count(list);
    if (n > SY_PRICING_MAX_ENTRIES) {
        errf(&e, "models: at most %d entries, got %zu", SY_PRICING_MAX_ENTRIES, n);
        goto out_errors;
    }
    cat = sy_xcalloc(1, sizeof(*cat));
    cat->entries = n ? sy_xcalloc(n, sizeof(*cat->entries)) : NULL;
    cat->n_entries = n;
    for (it = list->child, i = 0; it; it = it->next, i++)
        parse_entry(&e, it, i, &cat->entries[i]);
    check_duplicates(&e, cat);
    if (e.n == 0) {
        sy_sha256_hex(src, len, cat->sha256);
        cJSON_Delete(root);
        return cat;
    }

out_errors:
    if (e.n > MAX_ERRORS) {
        char *more = sy_xasprintf("%s\n... and %u more errors", e.text, e.n - MAX_ERRORS);

        free(e.text);
        e.text = more;
    }
    set_err(errmsg, e.text);
    sy_pricing_free(cat);
    cJSON_Delete(root);
    return NULL;
}

const struct sy_pricing_entry *sy_pricing_find(const struct sy_pricing *cat,
                                               const char *upstream_model, const char *provider)
{
    const struct sy_pricing_entry *any = NULL;

    if (!cat || !upstream_model)
        return NULL;
    for (size_t i = 0; i < cat->n_entries; i++) {
        const struct sy_pricing_entry *ent = &cat->entries[i];

        if (strcmp(ent->model, upstream_model) != 0)
            continue;
        if (!ent->provider)
            any = ent;
        else if (provider && strcmp(ent->provider, provider) == 0)
            return ent; /* a provider's own price wins over one for every provider */
    }
    return any;
}

cJSON *sy_pricing_entries_json(const struct sy_pricing *cat)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; cat && arr && i < cat->n_entries; i++) {
        const struct sy_pricing_entry *ent = &cat->entries[i];
        cJSON *o = cJSON_CreateObject();

        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            goto out_fail;
        }
        if (!cJSON_AddStringToObject(o, "model", ent->model))
            goto out_fail;
        if (ent->provider && !cJSON_AddStringToObject(o, "provider", ent->provider))
            goto out_fail;
        if (sy_prices_to_json(&ent->prices, o) < 0)
            goto out_fail;
    }
    return arr;

out_fail:
    cJSON_Delete(arr);
    return NULL;
}

bool sy_prices_equal(const struct sy_prices *a, const struct sy_prices *b)
{
    if (a->input_per_mtok != b->input_per_mtok || a->output_per_mtok != b->output_per_mtok ||
        a->cached_input_per_mtok != b->cached_input_per_mtok || a->n_windows != b->n_windows)
        return false;
    for (size_t i = 0; i < a->n_windows; i++) {
        const struct sy_price_window *x = &a->windows[i], *y = &b->windows[i];

        if (x->start_min != y->start_min || x->end_min != y->end_min ||
            x->input_per_mtok != y->input_per_mtok || x->output_per_mtok != y->output_per_mtok ||
            x->cached_input_per_mtok != y->cached_input_per_mtok)
            return false;
    }
    return true;
}

void sy_pricing_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

int sy_pricing_apply(const struct sy_pricing *cat, const struct sy_policy *pol, char **merged,
                     char ***changed, size_t *n_changed)
{
    char **names = NULL, *text;
    size_t n = 0, i = 0;
    cJSON *root, *models, *it;
    int rc = -ENOMEM;

    *merged = NULL;
    *changed = NULL;
    *n_changed = 0;
    /* The canonical form lists the models in policy order, so item i is pol->models[i]. */
    text = sy_policy_to_json(pol);
    root = text ? cJSON_Parse(text) : NULL;
    free(text);
    models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsArray(models))
        goto out_free;
    for (it = models->child; it && i < pol->n_models; it = it->next, i++) {
        const struct sy_model *m = &pol->models[i];
        const struct sy_pricing_entry *ent =
            sy_pricing_find(cat, m->upstream_model, pol->providers[m->provider].name);
        struct sy_prices cur = sy_model_prices(m);
        cJSON *pr;

        if (!ent || sy_prices_equal(&cur, &ent->prices))
            continue;
        pr = cJSON_CreateObject();
        if (!pr || sy_prices_to_json(&ent->prices, pr) < 0 ||
            !cJSON_ReplaceItemInObjectCaseSensitive(it, "pricing", pr)) {
            cJSON_Delete(pr);
            goto out_free;
        }
        names = sy_xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = sy_xstrdup(m->name);
    }
    if (n) {
        *merged = cJSON_PrintUnformatted(root);
        if (!*merged)
            goto out_free;
        *changed = names;
        *n_changed = n;
        names = NULL;
        n = 0;
    }
    rc = 0;

out_free:
    sy_pricing_names_free(names, n);
    cJSON_Delete(root);
    return rc;
}
