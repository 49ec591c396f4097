/* common/sy_policy.c - the policy compiler: YAML/JSON text -> an immutable struct sy_policy.
 *
 * The source becomes one cJSON tree (sy_yaml_load), which is checked field by field against
 * the schema in docs/policy.md while the compiled policy is filled in. Checking never stops
 * at the first problem: every error is collected with the path of its field and all of them
 * are returned together, so an operator fixes a policy in one round. Cross references are
 * resolved through the name indexes as soon as the list they point into is compiled
 * (providers, then models, then routes), so each section can name what it refers to.
 *
 * Ownership: the compiler owns the policy until it returns it with refcount 1; from then on
 * it is never written again, lookups are plain reads, and any thread may use it while it
 * holds a reference. The last sy_policy_unref() frees it.
 *
 * Memory: every allocation here is proportional to the source, which is capped at
 * SY_POLICY_MAX_BYTES before parsing, so the abort-on-OOM helpers are used throughout.
 */
#include "sy_policy.h"
#include "sy_json.h"
#include "sy_util.h"
#include "sy_yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define MAX_ERRORS 100             /* reported individually; the rest are counted */
#define NAME_MAX_LEN 256           /* provider, model, route names and upstream models */
#define ENV_NAME_MAX_LEN 256       /* api_key_env */
#define URL_MAX_LEN 2048           /* base_url */
#define MAX_HEADERS 64             /* per provider */
#define HEADER_VALUE_MAX 8192      /* bytes */
#define MAX_WEIGHT 1000000         /* per target */
#define MAX_PRICE 1000000.0        /* USD per million tokens */
#define LIST_BUF 256               /* "expected one of: ..." lists */
#define TOKEN_MAX_LEN 32           /* provider region and compliance tags */
#define MAX_COMPLIANCE 32          /* tags per provider */
#define TAG_MAX_LEN 64             /* routes[].match.tags[] */
#define MAX_TAGS 32                /* per route */
#define MAX_TEXT_RULES 16          /* keyword rules, and regex rules, per route */
#define MAX_WORDS 1024             /* per keyword rule */
#define WORD_MAX_LEN 256           /* bytes per keyword */
#define PATTERN_MAX_LEN 1024       /* bytes per regex pattern */
#define PATTERN_MAX_EXPANDED 10000 /* pattern positions once bounded repeats are unrolled */
#define MAX_TOKENS 1000000000      /* match.{min,max}_prompt_tokens */
#define MAX_MESSAGES 1000000       /* match.{min,max}_messages */
#define MAX_TENANT_KEYS 64         /* api_keys_sha256 per tenant (rotation needs two) */
#define MAX_LABELS 8               /* per tenant; each ends up on every access log line */
#define LABEL_KEY_MAX_LEN 32       /* bytes */
#define LABEL_VALUE_MAX_LEN 128    /* bytes */
#define MAX_BUDGET 1000000000.0    /* USD, per tenant and period */
#define MAX_PRICE_KEYS 16          /* pricing keys plus a caller's extra keys (sy_prices_compile) */
#define PRICES_PATH_BUF 256        /* paths inside a price list, caller prefix included */
/* Paths hold only schema keys and indexes, so they have fixed bounds: "routes[<size_t>]",
 * then one more key, then one more index. */
#define PATH_BUF 48
#define SUBPATH_BUF (PATH_BUF + 48)
#define ITEM_PATH_BUF (SUBPATH_BUF + 32)
#define DEEP_PATH_BUF (ITEM_PATH_BUF + 32) /* routes[i].match.keywords[j].any[k] */

/* API families the data plane has an adapter for. Adding one: a line here and its value in
 * enum sy_provider_kind. */
static const struct {
    const char *name;
    enum sy_provider_kind kind;
} provider_kinds[] = {
    {"openai", SY_PROVIDER_OPENAI},
    {"azure", SY_PROVIDER_AZURE},
    {"anthropic", SY_PROVIDER_ANTHROPIC},
    {"gemini", SY_PROVIDER_GEMINI},
};

/* Headers the proxy itself must control, because they frame the upstream message. */
static const char *const reserved_headers[] = {
    "connection", "content-length",    "keep-alive", "te",
    "trailer",    "transfer-encoding", "upgrade",    NULL,
};

/* Route strategies, in enum order. */
static const char *const strategy_names[] = {
    [SY_STRATEGY_WEIGHTED] = "weighted",       [SY_STRATEGY_PRIORITY] = "priority",
    [SY_STRATEGY_LOWEST_COST] = "lowest_cost", [SY_STRATEGY_LOWEST_LATENCY] = "lowest_latency",
    [SY_STRATEGY_LEAST_BUSY] = "least_busy",   [SY_STRATEGY_CACHE_AFFINITY] = "cache_affinity",
    [SY_STRATEGY_LEARNED] = "learned",         NULL,
};

/* Spellings of a text rule's "in" (SY_TEXT_* bits). */
static const struct {
    const char *name;
    unsigned bits;
} text_sources[] = {
    {"last_user", SY_TEXT_LAST_USER},
    {"system", SY_TEXT_SYSTEM},
    {"any", SY_TEXT_LAST_USER | SY_TEXT_SYSTEM},
};

static const char *const top_keys[] = {"providers",   "models", "routes",  "default_route",
                                       "resilience",  "server", "tenants", "auth",
                                       "experiments", NULL};
static const char *const provider_keys[] = {
    "name",
    "kind",
    "base_url",
    "api_key_env",
    "api_version",
    "headers",
    "connect_timeout_ms",
    "timeout_ms",
    "region",
    "compliance",
    NULL,
};
static const char *const model_keys[] = {"name", "provider", "upstream_model", "pricing", NULL};
static const char *const pricing_keys[] = {"input_per_mtok", "output_per_mtok",
                                           "cached_input_per_mtok", "windows", NULL};
static const char *const window_keys[] = {
    "start", "end", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", NULL};
static const char *const route_keys[] = {"name",     "match",    "strategy", "targets",
                                         "fallback", "timeouts", "retries",  "hedge_after_ms",
                                         "learn",    NULL};
static const char *const learn_keys[] = {
    "objective",   "update_period_s", "exploration", "max_step",
    "min_samples", "threshold",       "discount",    NULL};
static const char *const objective_keys[] = {"quality", "cost", "latency", NULL};
static const char *const experiment_keys[] = {"name",   "route",       "metric", "arms",
                                              "sticky", "min_samples", "stop",   NULL};
static const char *const arm_keys[] = {"name", "model", "targets", "share", NULL};
static const char *const sticky_keys[] = {"by", "header", NULL};
static const char *const stop_keys[] = {"rule", "threshold", "auto_promote", NULL};
static const char *const metric_names[] = {
    [SY_METRIC_THUMBS_UP] = "thumbs_up",
    [SY_METRIC_SCORE] = "score",
    [SY_METRIC_LATENCY] = "latency",
    [SY_METRIC_COST] = "cost",
    NULL,
};
static const char *const sticky_names[] = {
    [SY_STICKY_USER] = "user",
    [SY_STICKY_HEADER] = "header",
    [SY_STICKY_TENANT] = "tenant",
    [SY_STICKY_REQUEST] = "request",
    NULL,
};
static const char *const stop_names[] = {
    [SY_STOP_PROB_BEST] = "prob_best",
    [SY_STOP_SIGNIFICANCE] = "significance",
    [SY_STOP_NONE] = "none",
    NULL,
};
static const char *const match_keys[] = {
    "model",        "tags",         "min_prompt_tokens", "max_prompt_tokens",
    "min_messages", "max_messages", "has_tools",         "has_images",
    "json_mode",    "stream",       "keywords",          "regex",
    NULL,
};
static const char *const keyword_keys[] = {"any", "in", NULL};
static const char *const regex_keys[] = {"pattern", "in", "case_sensitive", NULL};
static const char *const target_keys[] = {"model", "weight", NULL};
static const char *const timeout_keys[] = {"attempt_ms", "first_token_ms", "total_ms", NULL};
static const char *const retry_keys[] = {"max", "backoff_ms", "max_backoff_ms", NULL};
static const char *const resilience_keys[] = {"breaker", "retry_budget", "max_retry_after_ms",
                                              NULL};
static const char *const breaker_keys[] = {"failures",  "error_rate", "min_requests",
                                           "window_ms", "open_ms",    NULL};
static const char *const budget_keys[] = {"ratio", "min_per_second", NULL};
static const char *const tenant_keys[] = {"name", "api_keys_sha256", "labels", "budget", NULL};
static const char *const tenant_budget_keys[] = {"daily_usd", "monthly_usd", NULL};
static const char *const auth_keys[] = {"mode", NULL};
static const char *const auth_mode_names[] = {
    [SY_AUTH_OPEN] = "open",
    [SY_AUTH_KEYS] = "keys",
    NULL,
};
static const char *const server_keys[] = {"max_body_bytes",  "header_timeout_ms", "body_timeout_ms",
                                          "idle_timeout_ms", "max_connections",   NULL};

/* State of one compilation. */
struct compiler {
    struct sy_policy *pol;
    char *errs; /* collected messages, '\n'-separated */
    size_t errs_len;
    unsigned n_errs;
    struct sy_name_index route_names; /* only to find duplicate route names */
};

/* The array a name index points into: entries of <stride> bytes whose key is the char *
 * at offset <off>. Lets one index implementation serve providers, models and routes. */
struct table {
    const void *base;
    size_t stride;
    size_t off;
};

/* ---- name indexes ---------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

static const char *table_key(const struct table *t, size_t i)
{
    return *(char *const *)((const char *)t->base + i * t->stride + t->off);
}

static struct table provider_table(const struct sy_policy *pol)
{
    return (struct table){pol->providers, sizeof(struct sy_provider),
                          offsetof(struct sy_provider, name)};
}

static struct table model_table(const struct sy_policy *pol)
{
    return (struct table){pol->models, sizeof(struct sy_model), offsetof(struct sy_model, name)};
}

static struct table route_table(const struct sy_policy *pol)
{
    return (struct table){pol->routes, sizeof(struct sy_route),
                          offsetof(struct sy_route, match_model)};
}

static struct table route_name_table(const struct sy_policy *pol)
{
    return (struct table){pol->routes, sizeof(struct sy_route), offsetof(struct sy_route, name)};
}

static struct table tenant_table(const struct sy_policy *pol)
{
    return (struct table){pol->tenants, sizeof(struct sy_tenant), offsetof(struct sy_tenant, name)};
}

/* Sizes <ix> for <n> entries: a power of two at least twice <n>, so probes stay short and
 * always reach an empty slot. */
static void index_init(struct sy_name_index *ix, size_t n)
{
    size_t cap = 4;

    while (cap < 2 * n)
        cap <<= 1;
    ix->slots = sy_xcalloc(cap, sizeof(*ix->slots));
    ix->mask = cap - 1;
}

/* Returns the entry of <t> named <name>, or SIZE_MAX. */
static size_t index_find(const struct sy_name_index *ix, const struct table *t, const char *name)
{
    size_t i;

    if (!ix->slots || !name)
        return SIZE_MAX;
    for (i = fnv1a(name) & ix->mask; ix->slots[i]; i = (i + 1) & ix->mask) {
        size_t e = ix->slots[i] - 1;

        if (strcmp(table_key(t, e), name) == 0)
            return e;
    }
    return SIZE_MAX;
}

/* Adds entry <e> of <t> under its key. Returns SIZE_MAX, or the entry that already has the
 * key (then nothing is added). */
static size_t index_insert(struct sy_name_index *ix, const struct table *t, size_t e)
{
    const char *name = table_key(t, e);
    size_t i;

    for (i = fnv1a(name) & ix->mask; ix->slots[i]; i = (i + 1) & ix->mask)
        if (strcmp(table_key(t, ix->slots[i] - 1), name) == 0)
            return ix->slots[i] - 1;
    ix->slots[i] = (uint32_t)(e + 1);
    return SIZE_MAX;
}

/* The key index is keyed by the digests themselves: their first bytes are already uniformly
 * spread, so they need no further hashing. */
static size_t key_slot(const uint8_t *sha256, size_t mask)
{
    uint64_t h;

    memcpy(&h, sha256, sizeof(h));
    return (size_t)h & mask;
}

/* Adds pol->tenant_keys[e] to the key index. Returns SIZE_MAX, or the entry that already
 * has the same digest (then nothing is added). */
static size_t key_index_insert(struct sy_policy *pol, size_t e)
{
    struct sy_name_index *ix = &pol->key_index;
    const uint8_t *d = pol->tenant_keys[e].sha256;
    size_t i;

    for (i = key_slot(d, ix->mask); ix->slots[i]; i = (i + 1) & ix->mask)
        if (memcmp(pol->tenant_keys[ix->slots[i] - 1].sha256, d, SY_SHA256_LEN) == 0)
            return ix->slots[i] - 1;
    ix->slots[i] = (uint32_t)(e + 1);
    return SIZE_MAX;
}

/* ---- error collection ------------------------------------------------------------------ */

/* Records one error as "<path>.<key>: <message>" (or "<path>: ..." without <key>, or
 * "policy: ..." at the top). User text must come through sy_json_quote(). */
static void errf(struct compiler *c, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void errf(struct compiler *c, const char *path, const char *key, const char *fmt, ...)
{
    char msg[1024];
    char *line;
    size_t n;
    va_list ap;

    if (++c->n_errs > MAX_ERRORS)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!*path && !key)
        line = sy_xasprintf("policy: %s", msg);
    else
        line = sy_xasprintf("%s%s%s: %s", path, *path && key ? "." : "", key ? key : "", msg);
    n = strlen(line);
    c->errs = sy_xrealloc(c->errs, c->errs_len + n + 2);
    if (c->errs_len)
        c->errs[c->errs_len++] = '\n';
    memcpy(c->errs + c->errs_len, line, n + 1);
    c->errs_len += n;
    free(line);
}

/* Joins a NULL-terminated word list with ", " into <buf> (LIST_BUF bytes). */
static const char *join_words(char *buf, const char *const *words)
{
    size_t n = 0;

    buf[0] = '\0';
    for (; *words && n < LIST_BUF; words++) {
        int w = snprintf(buf + n, LIST_BUF - n, "%s%s", n ? ", " : "", *words);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return buf;
}

/* ---- typed field readers --------------------------------------------------------------- */

/* Reports every key of <obj> that the schema does not know (typos must not pass silently)
 * and known keys given twice (possible in trees that did not come through our parsers). */
static void check_keys(struct compiler *c, const cJSON *obj, const char *path,
                       const char *const *allowed)
{
    char q[SY_JSON_QUOTE_BUF], list[LIST_BUF];
    uint64_t seen = 0;
    const cJSON *it;
    size_t k;

    for (it = obj->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";

        for (k = 0; allowed[k] && strcmp(allowed[k], key) != 0; k++)
            ;
        if (!allowed[k]) {
            errf(c, path, NULL, "unknown key %s (expected one of: %s)", sy_json_quote(q, key),
                 join_words(list, allowed));
        } else if (seen & (1ull << k)) {
            errf(c, path, key, "given more than once");
        } else {
            seen |= 1ull << k;
        }
    }
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Returns the string value of <key>, or NULL (absent, or wrong type: reported). */
static const char *get_str(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                           bool required)
{
    const cJSON *it = sy_json_field(obj, key);

    if (!it) {
        if (required)
            errf(c, path, key, "is required");
        return NULL;
    }
    if (!cJSON_IsString(it)) {
        errf(c, path, key, "expected a string, got %s", sy_json_kind(it));
        return NULL;
    }
    return it->valuestring;
}

/* Like get_str, for names: non-empty, at most NAME_MAX_LEN bytes, no control characters
 * (names end up in response headers and logs). Returns NULL when absent or invalid. */
static const char *get_name(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                            bool required)
{
    const char *s = get_str(c, obj, path, key, required);

    if (!s)
        return NULL;
    if (!*s) {
        errf(c, path, key, "must not be empty");
        return NULL;
    }
    if (strlen(s) > NAME_MAX_LEN) {
        errf(c, path, key, "is longer than %d bytes", NAME_MAX_LEN);
        return NULL;
    }
    if (has_control_chars(s)) {
        errf(c, path, key, "must not contain control characters");
        return NULL;
    }
    return s;
}

/* Returns the integer value of <key> within [min, max], or <def> when absent or invalid
 * (invalid values are reported). */
static uint64_t get_uint(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                         uint64_t min, uint64_t max, uint64_t def)
{
    const cJSON *it = sy_json_field(obj, key);
    double v;

    if (!it)
        return def;
    if (!cJSON_IsNumber(it)) {
        errf(c, path, key, "expected an integer, got %s", sy_json_kind(it));
        return def;
    }
    v = it->valuedouble;
    if (!isfinite(v) || v < (double)min || v > (double)max) {
        errf(c, path, key, "must be between %llu and %llu, got %.17g", (unsigned long long)min,
             (unsigned long long)max, v);
        return def;
    }
    if ((double)(uint64_t)v != v) { /* in range, so the cast is defined */
        errf(c, path, key, "expected an integer, got %.17g", v);
        return def;
    }
    return (uint64_t)v;
}

/* Returns the price at <key> (USD per million tokens, 0..MAX_PRICE), or 0. */
static double get_price(struct compiler *c, const cJSON *obj, const char *path, const char *key)
{
    const cJSON *it = sy_json_field(obj, key);

    if (!it)
        return 0;
    if (!cJSON_IsNumber(it)) {
        errf(c, path, key, "expected a number, got %s", sy_json_kind(it));
        return 0;
    }
    if (!isfinite(it->valuedouble) || it->valuedouble < 0 || it->valuedouble > MAX_PRICE) {
        errf(c, path, key, "must be between 0 and %.0f, got %.17g", MAX_PRICE, it->valuedouble);
        return 0;
    }
    return it->valuedouble;
}

/* Returns the number at <key> within [min, max] (or (min, max] when <min_open>), or <def>
 * when absent or invalid (reported). For rates and ratios, which need not be whole. */
static double get_number(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                         double min, bool min_open, double max, double def)
{
    const cJSON *it = sy_json_field(obj, key);
    double v;

    if (!it)
        return def;
    if (!cJSON_IsNumber(it)) {
        errf(c, path, key, "expected a number, got %s", sy_json_kind(it));
        return def;
    }
    v = it->valuedouble;
    if (!isfinite(v) || (min_open ? v <= min : v < min) || v > max) {
        errf(c, path, key, "must be %s %g and at most %g, got %.17g",
             min_open ? "greater than" : "at least", min, max, v);
        return def;
    }
    return v;
}

/* Returns the integer at <key> within [0, max], or -1 when absent (or invalid: reported). */
static int64_t get_opt_int(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                           uint64_t max)
{
    if (!sy_json_field(obj, key))
        return -1;
    return (int64_t)get_uint(c, obj, path, key, 0, max, 0);
}

/* Returns the boolean at <key>, or <def> when absent or invalid (reported). */
static bool get_bool(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                     bool def)
{
    const cJSON *it = sy_json_field(obj, key);

    if (!it)
        return def;
    if (!cJSON_IsBool(it)) {
        errf(c, path, key, "expected true or false, got %s", sy_json_kind(it));
        return def;
    }
    return cJSON_IsTrue(it);
}

/* A boolean trait of a request: absent = either way. */
static enum sy_tristate get_tri(struct compiler *c, const cJSON *obj, const char *path,
                                const char *key)
{
    if (!sy_json_field(obj, key))
        return SY_TRI_ANY;
    return get_bool(c, obj, path, key, false) ? SY_TRI_YES : SY_TRI_NO;
}

/* Returns the mapping at <key> (or <obj> itself when <key> is NULL), or NULL when absent or
 * of another type (reported). */
static const cJSON *get_map(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                            bool required)
{
    const cJSON *it = key ? sy_json_field(obj, key) : obj;

    if (!it) {
        if (required)
            errf(c, path, key, "is required");
        return NULL;
    }
    if (!cJSON_IsObject(it)) {
        errf(c, path, key, "expected a mapping, got %s", sy_json_kind(it));
        return NULL;
    }
    return it;
}

/* Returns the list at <key>, or NULL when absent or of another type (reported). Sets *n. */
static const cJSON *get_list(struct compiler *c, const cJSON *obj, const char *path,
                             const char *key, bool required, size_t *n)
{
    const cJSON *it = sy_json_field(obj, key);

    *n = 0;
    if (!it) {
        if (required)
            errf(c, path, key, "is required (a non-empty list)");
        return NULL;
    }
    if (!cJSON_IsArray(it)) {
        errf(c, path, key, "expected a list, got %s", sy_json_kind(it));
        return NULL;
    }
    *n = sy_json_count(it);
    return it;
}

/* ---- providers ------------------------------------------------------------------------- */

static bool is_token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_env_name(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* Region and compliance tags: short lowercase tokens, compared exactly with the
 * x-switchyard-region and x-switchyard-compliance request headers. */
static bool is_lower_token(const char *s)
{
    size_t n;

    for (n = 0; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-'))
            return false;
    return n > 0 && n <= TOKEN_MAX_LEN;
}

/* The list of distinct strings at <obj>.<key> (at most <max>), each accepted by <valid>;
 * <bad> completes "<value> ..." for one it refuses. *out gets heap copies (*n of them). */
static void compile_string_set(struct compiler *c, const cJSON *obj, const char *ppath,
                               const char *key, size_t max, bool (*valid)(const char *),
                               const char *bad, char ***out, size_t *n_out)
{
    char path[ITEM_PATH_BUF], ipath[DEEP_PATH_BUF], q[SY_JSON_QUOTE_BUF];
    const cJSON *list, *it;
    size_t n, i, j;

    list = get_list(c, obj, ppath, key, false, &n);
    if (!list)
        return;
    snprintf(path, sizeof(path), "%s.%s", ppath, key);
    if (n > max) {
        errf(c, path, NULL, "at most %zu tags, got %zu", max, n);
        return;
    }
    *out = n ? sy_xcalloc(n, sizeof(**out)) : NULL;
    for (it = list->child, i = 0; it; it = it->next, i++) {
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!cJSON_IsString(it)) {
            errf(c, ipath, NULL, "expected a string, got %s", sy_json_kind(it));
            continue;
        }
        if (!valid(it->valuestring)) {
            errf(c, ipath, NULL, "%s %s", sy_json_quote(q, it->valuestring), bad);
            continue;
        }
        for (j = 0; j < *n_out; j++)
            if (strcmp((*out)[j], it->valuestring) == 0)
                break;
        if (j < *n_out) {
            errf(c, ipath, NULL, "%s is listed twice", sy_json_quote(q, it->valuestring));
            continue;
        }
        (*out)[(*n_out)++] = sy_xstrdup(it->valuestring);
    }
}

static void compile_compliance(struct compiler *c, const cJSON *obj, const char *ppath,
                               struct sy_provider *p)
{
    char bad[96];

    snprintf(bad, sizeof(bad), "is not a compliance tag (1 to %d characters of a-z, 0-9 and '-')",
             TOKEN_MAX_LEN);
    compile_string_set(c, obj, ppath, "compliance", MAX_COMPLIANCE, is_lower_token, bad,
                       &p->compliance, &p->n_compliance);
}

static void compile_kind(struct compiler *c, const cJSON *obj, const char *path,
                         struct sy_provider *p)
{
    const char *kind = get_str(c, obj, path, "kind", false);
    const char *names[SY_ARRAY_LEN(provider_kinds) + 1];
    char q[SY_JSON_QUOTE_BUF], list[LIST_BUF];
    size_t i;

    p->kind = SY_PROVIDER_OPENAI;
    if (!kind)
        return;
    for (i = 0; i < SY_ARRAY_LEN(provider_kinds); i++) {
        names[i] = provider_kinds[i].name;
        if (strcmp(kind, provider_kinds[i].name) == 0) {
            p->kind = provider_kinds[i].kind;
            return;
        }
    }
    names[i] = NULL;
    errf(c, path, "kind", "unknown kind %s (accepted: %s)", sy_json_quote(q, kind),
         join_words(list, names));
}

static void compile_base_url(struct compiler *c, const cJSON *obj, const char *path,
                             struct sy_provider *p)
{
    const char *url = get_str(c, obj, path, "base_url", true);
    size_t len, scheme;
    const char *s;

    if (!url)
        return;
    len = strlen(url);
    if (strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else {
        errf(c, path, "base_url", "must start with http:// or https://");
        return;
    }
    if (len > URL_MAX_LEN) {
        errf(c, path, "base_url", "is longer than %d bytes", URL_MAX_LEN);
        return;
    }
    for (s = url; *s; s++) {
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
            errf(c, path, "base_url", "must not contain spaces or control characters");
            return;
        }
        if (*s == '?' || *s == '#') {
            errf(c, path, "base_url",
                 "must not contain a query or fragment (request paths "
                 "are appended to it)");
            return;
        }
    }
    while (len > scheme && url[len - 1] == '/')
        len--;
    if (len == scheme || url[scheme] == '/') {
        errf(c, path, "base_url", "has no host");
        return;
    }
    p->base_url = sy_xstrndup(url, len);
}

static void compile_headers(struct compiler *c, const cJSON *obj, const char *ppath,
                            struct sy_provider *p)
{
    const cJSON *map = get_map(c, obj, ppath, "headers", false);
    char path[SUBPATH_BUF], q[SY_JSON_QUOTE_BUF];
    const cJSON *it;
    size_t n, i, j, k;

    if (!map)
        return;
    snprintf(path, sizeof(path), "%s.headers", ppath);
    n = sy_json_count(map);
    if (n > MAX_HEADERS) {
        errf(c, path, NULL, "at most %d headers, got %zu", MAX_HEADERS, n);
        return;
    }
    p->headers = n ? sy_xcalloc(n, sizeof(*p->headers)) : NULL;
    for (it = map->child, i = 0; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        const char *v;
        bool ok = *name != '\0';

        for (v = name; *v && ok; v++)
            ok = is_token_char((unsigned char)*v);
        if (!ok) {
            errf(c, path, NULL, "invalid header name %s", sy_json_quote(q, name));
            continue;
        }
        for (k = 0; reserved_headers[k]; k++)
            if (strcasecmp(name, reserved_headers[k]) == 0)
                break;
        if (reserved_headers[k]) {
            errf(c, path, NULL, "header %s is set by the proxy and cannot be configured",
                 sy_json_quote(q, name));
            continue;
        }
        if (p->api_key_env && strcasecmp(name, "authorization") == 0) {
            errf(c, path, NULL, "header %s conflicts with api_key_env, which sets it",
                 sy_json_quote(q, name));
            continue;
        }
        if (!cJSON_IsString(it)) {
            errf(c, path, NULL, "header %s: expected a string value, got %s",
                 sy_json_quote(q, name), sy_json_kind(it));
            continue;
        }
        v = it->valuestring;
        for (k = 0; v[k]; k++)
            if (((unsigned char)v[k] < 0x20 && v[k] != '\t') || v[k] == 0x7f)
                break;
        if (v[k]) {
            errf(c, path, NULL,
                 "header %s: value must not contain CR, LF or other control "
                 "characters",
                 sy_json_quote(q, name));
            continue;
        }
        if (k > HEADER_VALUE_MAX) {
            errf(c, path, NULL, "header %s: value is longer than %d bytes", sy_json_quote(q, name),
                 HEADER_VALUE_MAX);
            continue;
        }
        for (j = 0; j < i; j++)
            if (strcasecmp(p->headers[j].name, name) == 0)
                break;
        if (j < i) {
            errf(c, path, NULL, "header %s given twice (header names ignore case)",
                 sy_json_quote(q, name));
            continue;
        }
        p->headers[i].name = sy_xstrdup(name);
        p->headers[i].value = sy_xstrdup(v);
        p->n_headers = ++i;
    }
}

static void compile_provider(struct compiler *c, const cJSON *obj, size_t i)
{
    struct sy_policy *pol = c->pol;
    struct sy_provider *p = &pol->providers[i];
    struct table t = provider_table(pol);
    char path[PATH_BUF], q[SY_JSON_QUOTE_BUF];
    const char *s;
    size_t dup;

    snprintf(path, sizeof(path), "providers[%zu]", i);
    p->connect_timeout_ms = 5000;
    p->timeout_ms = 120000;
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, provider_keys);

    s = get_name(c, obj, path, "name", true);
    if (s) {
        p->name = sy_xstrdup(s);
        dup = index_insert(&pol->provider_index, &t, i);
        if (dup != SIZE_MAX)
            errf(c, path, "name", "duplicate provider %s (also providers[%zu])",
                 sy_json_quote(q, s), dup);
    }
    compile_kind(c, obj, path, p);
    compile_base_url(c, obj, path, p);

    s = get_str(c, obj, path, "api_key_env", false);
    if (s && (strlen(s) > ENV_NAME_MAX_LEN || !is_env_name(s)))
        errf(c, path, "api_key_env",
             "%s is not an environment variable name (letters, digits and '_', not starting "
             "with a digit)",
             sy_json_quote(q, s));
    else if (s)
        p->api_key_env = sy_xstrdup(s);

    s = get_str(c, obj, path, "api_version", false);
    if (s && (!*s || strlen(s) > 64 || strpbrk(s, " \t\r\n&?#/")))
        errf(c, path, "api_version", "%s is not a version string (e.g. 2024-10-21)",
             sy_json_quote(q, s));
    else if (s && p->kind != SY_PROVIDER_AZURE && p->kind != SY_PROVIDER_ANTHROPIC)
        errf(c, path, "api_version", "only azure and anthropic providers take an api_version");
    else if (s)
        p->api_version = sy_xstrdup(s);

    compile_headers(c, obj, path, p);
    p->connect_timeout_ms =
        (uint32_t)get_uint(c, obj, path, "connect_timeout_ms", 1, 600000, p->connect_timeout_ms);
    p->timeout_ms = (uint32_t)get_uint(c, obj, path, "timeout_ms", 1, 3600000, p->timeout_ms);

    s = get_str(c, obj, path, "region", false);
    if (s && !is_lower_token(s))
        errf(c, path, "region", "%s is not a region (1 to %d characters of a-z, 0-9 and '-')",
             sy_json_quote(q, s), TOKEN_MAX_LEN);
    else if (s)
        p->region = sy_xstrdup(s);
    compile_compliance(c, obj, path, p);
}

/* ---- prices ---------------------------------------------------------------------------- */

/* Reads "HH:MM" (two digits each) as minutes after midnight; "24:00" only when <is_end>, as
 * 0 (the same instant). Returns -1 when <s> is no such time. */
static int parse_hhmm(const char *s, bool is_end)
{
    int h, m;

    if (strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    if (is_end && h == 24 && m == 0)
        return 0;
    if (h > 23 || m > 59)
        return -1;
    return h * 60 + m;
}

const char *sy_hhmm(unsigned min, char buf[6])
{
    min %= SY_MINUTES_PER_DAY;
    buf[0] = (char)('0' + min / 600);
    buf[1] = (char)('0' + min / 60 % 10);
    buf[2] = ':';
    buf[3] = (char)('0' + min % 60 / 10);
    buf[4] = (char)('0' + min % 10);
    buf[5] = '\0';
    return buf;
}

/* Returns the minutes of the time at <key> (required), or -1 (reported). */
static int get_hhmm(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                    bool is_end)
{
    const char *s = get_str(c, obj, path, key, true);
    char q[SY_JSON_QUOTE_BUF];
    int v;

    if (!s)
        return -1;
    v = parse_hhmm(s, is_end);
    if (v < 0)
        errf(c, path, key, "expected a time of day \"HH:MM\" (UTC, 00:00 to 23:59%s), got %s",
             is_end ? ", or 24:00" : "", sy_json_quote(q, s));
    return v;
}

static bool window_has(const struct sy_price_window *w, unsigned min)
{
    if (w->start_min < w->end_min)
        return min >= w->start_min && min < w->end_min;
    return min >= w->start_min || min < w->end_min; /* wraps midnight */
}

/* Two arcs of the day share a minute exactly when one contains the other's start. */
static bool windows_overlap(const struct sy_price_window *a, const struct sy_price_window *b)
{
    return window_has(a, b->start_min) || window_has(b, a->start_min);
}

/* A price the window leaves out is the base price of <base>. */
static double get_window_price(struct compiler *c, const cJSON *obj, const char *path,
                               const char *key, double base)
{
    return sy_json_field(obj, key) ? get_price(c, obj, path, key) : base;
}

/* pricing.windows: fills out->windows (the base prices must be in <out> already). */
static void compile_windows(struct compiler *c, const cJSON *obj, const char *ppath,
                            struct sy_prices *out)
{
    char path[PRICES_PATH_BUF], wpath[PRICES_PATH_BUF + 32], a[6], b[6], x[6], y[6];
    size_t src_index[SY_MAX_PRICE_WINDOWS]; /* source position of each kept window */
    const cJSON *list, *it;
    size_t n, i, j;

    list = get_list(c, obj, ppath, "windows", false, &n);
    if (!list || n == 0)
        return;
    snprintf(path, sizeof(path), "%s.windows", ppath);
    if (n > SY_MAX_PRICE_WINDOWS) {
        errf(c, path, NULL, "at most %d windows, got %zu", SY_MAX_PRICE_WINDOWS, n);
        return;
    }
    out->windows = sy_xcalloc(n, sizeof(*out->windows));
    for (it = list->child, i = 0; it; it = it->next, i++) {
        struct sy_price_window *w = &out->windows[out->n_windows];
        int start, end;

        snprintf(wpath, sizeof(wpath), "%s[%zu]", path, i);
        if (!get_map(c, it, wpath, NULL, true))
            continue;
        check_keys(c, it, wpath, window_keys);
        start = get_hhmm(c, it, wpath, "start", false);
        end = get_hhmm(c, it, wpath, "end", true);
        w->input_per_mtok = get_window_price(c, it, wpath, "input_per_mtok", out->input_per_mtok);
        w->output_per_mtok =
            get_window_price(c, it, wpath, "output_per_mtok", out->output_per_mtok);
        w->cached_input_per_mtok =
            get_window_price(c, it, wpath, "cached_input_per_mtok", out->cached_input_per_mtok);
        if (start < 0 || end < 0)
            continue;
        if (start == end) {
            errf(c, wpath, NULL,
                 "start and end are both %s: a window must be shorter than a day (for all-day "
                 "prices set the base prices)",
                 sy_hhmm((unsigned)start, a));
            continue;
        }
        w->start_min = (uint16_t)start;
        w->end_min = (uint16_t)end;
        for (j = 0; j < out->n_windows && !windows_overlap(&out->windows[j], w); j++)
            ;
        if (j < out->n_windows) {
            errf(c, wpath, NULL, "%s-%s overlaps windows[%zu] (%s-%s)", sy_hhmm(w->start_min, a),
                 sy_hhmm(w->end_min, b), src_index[j], sy_hhmm(out->windows[j].start_min, x),
                 sy_hhmm(out->windows[j].end_min, y));
            continue;
        }
        src_index[out->n_windows++] = i;
    }
}

/* A pricing mapping at <path> into <out> (zeroed first): the base prices, then the windows,
 * which default to them. <extra_keys> (may be NULL) are the caller's keys, allowed too. */
static void compile_prices(struct compiler *c, const cJSON *obj, const char *path,
                           const char *const *extra_keys, struct sy_prices *out)
{
    const char *allowed[MAX_PRICE_KEYS];
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    for (; extra_keys && *extra_keys && n + SY_ARRAY_LEN(pricing_keys) < MAX_PRICE_KEYS; n++)
        allowed[n] = *extra_keys++;
    memcpy(&allowed[n], pricing_keys, sizeof(pricing_keys));
    check_keys(c, obj, path, allowed);
    out->input_per_mtok = get_price(c, obj, path, "input_per_mtok");
    out->output_per_mtok = get_price(c, obj, path, "output_per_mtok");
    out->cached_input_per_mtok = get_price(c, obj, path, "cached_input_per_mtok");
    compile_windows(c, obj, path, out);
}

/* ---- models ---------------------------------------------------------------------------- */

static void compile_model(struct compiler *c, const cJSON *obj, size_t i)
{
    struct sy_policy *pol = c->pol;
    struct sy_model *m = &pol->models[i];
    struct table mt = model_table(pol), pt = provider_table(pol);
    char path[PATH_BUF], q[SY_JSON_QUOTE_BUF];
    const cJSON *pricing;
    const char *s;
    size_t dup;

    snprintf(path, sizeof(path), "models[%zu]", i);
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, model_keys);

    s = get_name(c, obj, path, "name", true);
    if (s) {
        m->name = sy_xstrdup(s);
        dup = index_insert(&pol->model_index, &mt, i);
        if (dup != SIZE_MAX)
            errf(c, path, "name", "duplicate model %s (also models[%zu])", sy_json_quote(q, s),
                 dup);
    }

    s = get_name(c, obj, path, "provider", true);
    if (s) {
        m->provider = index_find(&pol->provider_index, &pt, s);
        if (m->provider == SIZE_MAX) {
            errf(c, path, "provider", "unknown provider %s", sy_json_quote(q, s));
            m->provider = 0;
        }
    }

    s = get_name(c, obj, path, "upstream_model", false);
    if (s)
        m->upstream_model = sy_xstrdup(s);
    else if (m->name)
        m->upstream_model = sy_xstrdup(m->name);

    pricing = get_map(c, obj, path, "pricing", false);
    if (pricing) {
        char ppath[SUBPATH_BUF];
        struct sy_prices pr;

        snprintf(ppath, sizeof(ppath), "%s.pricing", path);
        compile_prices(c, pricing, ppath, NULL, &pr);
        m->input_per_mtok = pr.input_per_mtok;
        m->output_per_mtok = pr.output_per_mtok;
        m->cached_input_per_mtok = pr.cached_input_per_mtok;
        m->windows = pr.windows;
        m->n_windows = pr.n_windows;
    }
}

/* ---- routes ---------------------------------------------------------------------------- */

/* Per-model scratch for finding a model listed twice in one route, across its targets and
 * its fallback list, in linear time. */
struct target_seen {
    size_t route;  /* route that last listed the model, SIZE_MAX for none */
    size_t pos;    /* its position there */
    bool fallback; /* listed in "fallback" rather than in "targets" */
};

/* Lowercases ASCII letters in place: keywords match case-insensitively, and comparing with
 * lowercased request text is then a plain substring search. */
static char *ascii_lower(char *s)
{
    char *p;

    for (p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return s;
}

/* Match tags travel in a comma-separated header, so they are plain tokens. */
static bool is_tag(const char *s)
{
    size_t n;

    for (n = 0; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9') || strchr("-_.:/", s[n])))
            return false;
    return n > 0 && n <= TAG_MAX_LEN;
}

static void compile_tags(struct compiler *c, const cJSON *match, const char *mpath,
                         struct sy_match *m)
{
    char bad[96];

    snprintf(bad, sizeof(bad), "is not a tag (1 to %d letters, digits, '-', '_', '.', ':' or '/')",
             TAG_MAX_LEN);
    compile_string_set(c, match, mpath, "tags", MAX_TAGS, is_tag, bad, &m->tags, &m->n_tags);
}

/* Reads a text rule's "in" as SY_TEXT_* bits; default last_user. */
static unsigned compile_text_source(struct compiler *c, const cJSON *obj, const char *path)
{
    const char *s = get_str(c, obj, path, "in", false);
    const char *names[SY_ARRAY_LEN(text_sources) + 1];
    char q[SY_JSON_QUOTE_BUF], list[LIST_BUF];
    size_t i;

    if (!s)
        return SY_TEXT_LAST_USER;
    for (i = 0; i < SY_ARRAY_LEN(text_sources); i++) {
        names[i] = text_sources[i].name;
        if (strcmp(s, text_sources[i].name) == 0)
            return text_sources[i].bits;
    }
    names[i] = NULL;
    errf(c, path, "in", "unknown text %s (accepted: %s)", sy_json_quote(q, s),
         join_words(list, names));
    return SY_TEXT_LAST_USER;
}

/* "keywords" and "regex" take one rule (a mapping) or a list of rules. Returns the first rule
 * and sets *n (rules to read, following ->next) and *single, or returns NULL with *n = 0 when
 * absent or invalid (reported). */
static const cJSON *get_rules(struct compiler *c, const cJSON *match, const char *mpath,
                              const char *key, size_t *n, bool *single)
{
    const cJSON *it = sy_json_field(match, key);

    *n = 0;
    *single = false;
    if (!it)
        return NULL;
    if (cJSON_IsObject(it)) {
        *n = 1;
        *single = true;
        return it;
    }
    if (!cJSON_IsArray(it)) {
        errf(c, mpath, key, "expected a mapping or a list of mappings, got %s", sy_json_kind(it));
        return NULL;
    }
    if (sy_json_count(it) > MAX_TEXT_RULES) {
        errf(c, mpath, key, "at most %d rules, got %zu", MAX_TEXT_RULES, sy_json_count(it));
        return NULL;
    }
    *n = sy_json_count(it);
    return it->child;
}

static void compile_keyword_rule(struct compiler *c, const cJSON *obj, const char *path,
                                 struct sy_keyword_rule *k)
{
    char apath[DEEP_PATH_BUF + 8], wpath[DEEP_PATH_BUF + 32];
    const cJSON *list, *it;
    size_t n, i;

    k->in = SY_TEXT_LAST_USER;
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, keyword_keys);
    k->in = compile_text_source(c, obj, path);
    list = get_list(c, obj, path, "any", true, &n);
    if (!list)
        return;
    snprintf(apath, sizeof(apath), "%s.any", path);
    if (n == 0) {
        errf(c, apath, NULL, "must not be empty");
        return;
    }
    if (n > MAX_WORDS) {
        errf(c, apath, NULL, "at most %d words, got %zu", MAX_WORDS, n);
        return;
    }
    k->words = sy_xcalloc(n, sizeof(*k->words));
    for (it = list->child, i = 0; it; it = it->next, i++) {
        snprintf(wpath, sizeof(wpath), "%s[%zu]", apath, i);
        if (!cJSON_IsString(it))
            errf(c, wpath, NULL, "expected a string, got %s", sy_json_kind(it));
        else if (!*it->valuestring)
            errf(c, wpath, NULL, "must not be empty");
        else if (strlen(it->valuestring) > WORD_MAX_LEN)
            errf(c, wpath, NULL, "is longer than %d bytes", WORD_MAX_LEN);
        else
            k->words[k->n_words++] = ascii_lower(sy_xstrdup(it->valuestring));
    }
}

/* Skips the bracket expression opening at s[i] ('['); returns the index after its ']' (or of
 * the terminating NUL: regcomp() reports the error). */
static size_t skip_bracket(const char *s, size_t i)
{
    char d;

    i++;
    if (s[i] == '^')
        i++;
    if (s[i] == ']')
        i++;
    while (s[i] && s[i] != ']') {
        if (s[i] == '[' && (s[i + 1] == ':' || s[i + 1] == '=' || s[i + 1] == '.')) {
            d = s[i + 1];
            for (i += 2; s[i] && !(s[i] == d && s[i + 1] == ']'); i++)
                ;
            i += s[i] ? 2 : 0;
            continue;
        }
        i++;
    }
    return s[i] ? i + 1 : i;
}

/* An upper bound of the size of <s> once glibc's regcomp() unrolls bounded repeats: it
 * copies the repeated atom up to m times for {n,m}, so nested repeats multiply, and
 * "((a{1,255}){1,255}){1,255}" alone needs gigabytes. Returns at most limit + 1. */
static size_t regex_expanded_size(const char *s, size_t limit)
{
    size_t outer[PATTERN_MAX_LEN + 1]; /* running size of each enclosing group */
    size_t depth = 0, sum = 0, last = 0, i = 0, n, m;
    char *end;

    while (s[i] && sum <= limit) {
        if (s[i] == '(') {
            outer[depth++] = sum;
            sum = last = 0;
            i++;
        } else if (s[i] == ')' && depth > 0) {
            last = sum;
            sum = outer[--depth] + last;
            i++;
        } else if (s[i] == '|') {
            last = 0;
            i++;
        } else if (s[i] == '{' && s[i + 1] >= '0' && s[i + 1] <= '9') {
            n = strtoul(s + i + 1, &end, 10);
            m = n;
            if (*end == ',') {
                end++;
                m = *end >= '0' && *end <= '9' ? strtoul(end, &end, 10) : n + 1;
            }
            if (*end == '}')
                end++;
            i = (size_t)(end - s);
            m = m > n ? m : n;
            if (m > 0 && last > (limit + 1) / m)
                return limit + 1;
            sum = sum - last + last * m; /* the atom was counted once already */
            last *= m;
        } else {
            i = s[i] == '[' ? skip_bracket(s, i) : i + (s[i] == '\\' && s[i + 1] ? 2 : 1);
            last = 1;
            sum++;
        }
    }
    return sum > limit ? limit + 1 : sum;
}

static void compile_regex_rule(struct compiler *c, const cJSON *obj, const char *path,
                               struct sy_regex_rule *r)
{
    char q[SY_JSON_QUOTE_BUF], ebuf[256];
    const char *s;
    int rc;

    r->in = SY_TEXT_LAST_USER;
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, regex_keys);
    r->in = compile_text_source(c, obj, path);
    r->case_sensitive = get_bool(c, obj, path, "case_sensitive", false);
    s = get_str(c, obj, path, "pattern", true);
    if (!s)
        return;
    if (!*s) {
        errf(c, path, "pattern", "must not be empty");
        return;
    }
    if (strlen(s) > PATTERN_MAX_LEN) {
        errf(c, path, "pattern", "is longer than %d bytes", PATTERN_MAX_LEN);
        return;
    }
    if (regex_expanded_size(s, PATTERN_MAX_EXPANDED) > PATTERN_MAX_EXPANDED) {
        errf(c, path, "pattern",
             "%s: its repeats expand to more than %d positions (use smaller {n,m} bounds, or * "
             "and +)",
             sy_json_quote(q, s), PATTERN_MAX_EXPANDED);
        return;
    }
    rc = regcomp(&r->re, s, REG_EXTENDED | REG_NOSUB | (r->case_sensitive ? 0 : REG_ICASE));
    if (rc != 0) {
        regerror(rc, &r->re, ebuf, sizeof(ebuf));
        errf(c, path, "pattern", "invalid regular expression %s: %s", sy_json_quote(q, s), ebuf);
        return;
    }
    /* Set only with a compiled <re>: policy_free() calls regfree() on rules that have one. */
    r->pattern = sy_xstrdup(s);
}

static void compile_text_rules(struct compiler *c, const cJSON *match, const char *mpath,
                               struct sy_match *m)
{
    char path[DEEP_PATH_BUF];
    const cJSON *it;
    bool single;
    size_t n, i;

    it = get_rules(c, match, mpath, "keywords", &n, &single);
    m->keywords = n ? sy_xcalloc(n, sizeof(*m->keywords)) : NULL;
    m->n_keywords = n;
    for (i = 0; i < n; i++, it = it->next) {
        if (single)
            snprintf(path, sizeof(path), "%s.keywords", mpath);
        else
            snprintf(path, sizeof(path), "%s.keywords[%zu]", mpath, i);
        compile_keyword_rule(c, it, path, &m->keywords[i]);
    }

    it = get_rules(c, match, mpath, "regex", &n, &single);
    m->regex = n ? sy_xcalloc(n, sizeof(*m->regex)) : NULL;
    m->n_regex = n;
    for (i = 0; i < n; i++, it = it->next) {
        if (single)
            snprintf(path, sizeof(path), "%s.regex", mpath);
        else
            snprintf(path, sizeof(path), "%s.regex[%zu]", mpath, i);
        compile_regex_rule(c, it, path, &m->regex[i]);
    }
}

/* Reports <min_key> when both bounds are set and it exceeds <max_key>. */
static void check_bounds(struct compiler *c, const char *path, const char *min_key, int64_t min,
                         const char *max_key, int64_t max)
{
    if (min >= 0 && max >= 0 && min > max)
        errf(c, path, min_key, "must not be greater than %s (%lld), got %lld", max_key,
             (long long)max, (long long)min);
}

/* match.model: a glob when it has any of * ? [ (matched with fnmatch() by the data plane),
 * otherwise an exact name, which goes into the route index (the first route with that name
 * wins the index). Several routes may share an exact name, told apart by their other
 * conditions; check_shadowed_routes() refuses the ones that can never match. */
static void compile_match_model(struct compiler *c, const cJSON *match, const char *mpath,
                                size_t ri)
{
    struct sy_policy *pol = c->pol;
    struct sy_route *r = &pol->routes[ri];
    struct table rt = route_table(pol);
    char q[SY_JSON_QUOTE_BUF];
    const char *s, *open;

    s = get_name(c, match, mpath, "model", false);
    if (!s)
        return;
    r->match.model = sy_xstrdup(s);
    r->match.model_glob = strpbrk(s, "*?[") != NULL;
    if (r->match.model_glob) {
        /* fnmatch() takes an unclosed '[' literally; here it is almost surely a typo. */
        open = strchr(s, '[');
        if (open && !strchr(open + 1, ']'))
            errf(c, mpath, "model", "glob %s has a '[' without a closing ']'", sy_json_quote(q, s));
        return;
    }
    r->match_model = sy_xstrdup(s);
    /* A repeat keeps the first route in the index; check_shadowed_routes() judges it. */
    index_insert(&pol->route_index, &rt, ri);
}

/* Does <m> hold for every request for its model, i.e. has no condition besides the model? */
static bool match_only_model(const struct sy_match *m)
{
    struct sy_match t = *m;
    t.model = NULL;
    return sy_match_is_empty(&t);
}

/* Routes are tried in order: a route whose exact match.model repeats an earlier route's
 * that has no other condition can never match. That is a mistake worth an error (the
 * typical intent, "auto with short prompts -> small, else auto -> large", puts the
 * condition on the earlier route). */
static void check_shadowed_routes(struct compiler *c)
{
    struct sy_policy *pol = c->pol;
    char path[PATH_BUF], q[SY_JSON_QUOTE_BUF];

    for (size_t i = 0; i < pol->n_routes; i++) {
        const struct sy_route *r = &pol->routes[i];
        if (!r->match_model)
            continue;
        for (size_t j = 0; j < i; j++) {
            const struct sy_route *e = &pol->routes[j];
            if (e->match_model && strcmp(e->match_model, r->match_model) == 0 &&
                match_only_model(&e->match)) {
                snprintf(path, sizeof(path), "routes[%zu].match", i);
                errf(c, path, "model",
                     "unreachable: routes[%zu] takes every request for model %s first (give it "
                     "more conditions, or put this route before it)",
                     j, sy_json_quote(q, r->match_model));
                break;
            }
        }
    }
}

static void compile_match(struct compiler *c, const cJSON *obj, const char *path, size_t ri)
{
    struct sy_match *m = &c->pol->routes[ri].match;
    char mpath[SUBPATH_BUF];
    const cJSON *match;

    m->min_prompt_tokens = m->max_prompt_tokens = -1;
    m->min_messages = m->max_messages = -1;
    match = get_map(c, obj, path, "match", false);
    if (!match)
        return;
    snprintf(mpath, sizeof(mpath), "%s.match", path);
    check_keys(c, match, mpath, match_keys);
    compile_match_model(c, match, mpath, ri);
    compile_tags(c, match, mpath, m);
    m->min_prompt_tokens = get_opt_int(c, match, mpath, "min_prompt_tokens", MAX_TOKENS);
    m->max_prompt_tokens = get_opt_int(c, match, mpath, "max_prompt_tokens", MAX_TOKENS);
    check_bounds(c, mpath, "min_prompt_tokens", m->min_prompt_tokens, "max_prompt_tokens",
                 m->max_prompt_tokens);
    m->min_messages = get_opt_int(c, match, mpath, "min_messages", MAX_MESSAGES);
    m->max_messages = get_opt_int(c, match, mpath, "max_messages", MAX_MESSAGES);
    check_bounds(c, mpath, "min_messages", m->min_messages, "max_messages", m->max_messages);
    m->has_tools = get_tri(c, match, mpath, "has_tools");
    m->has_images = get_tri(c, match, mpath, "has_images");
    m->json_mode = get_tri(c, match, mpath, "json_mode");
    m->stream = get_tri(c, match, mpath, "stream");
    compile_text_rules(c, match, mpath, m);
}

static void compile_strategy(struct compiler *c, const cJSON *obj, const char *path,
                             struct sy_route *r)
{
    const char *s = get_str(c, obj, path, "strategy", false);
    char q[SY_JSON_QUOTE_BUF], list[LIST_BUF];
    size_t i;

    r->strategy = SY_STRATEGY_WEIGHTED;
    if (!s)
        return;
    for (i = 0; strategy_names[i]; i++) {
        if (strcmp(s, strategy_names[i]) == 0) {
            r->strategy = (enum sy_strategy)i;
            return;
        }
    }
    errf(c, path, "strategy", "unknown strategy %s (accepted: %s)", sy_json_quote(q, s),
         join_words(list, strategy_names));
}

/* One {model, weight} item at <path> (of a route's or an experiment arm's targets) into <t>.
 * Returns true when it names a known model (duplicates are the caller's to find); an unknown
 * one is reported and left as model 0 so compilation goes on. */
static bool compile_target(struct compiler *c, const cJSON *it, const char *path,
                           struct sy_target *t)
{
    struct table mt = model_table(c->pol);
    char q[SY_JSON_QUOTE_BUF];
    const char *s;
    bool known = false;

    if (!get_map(c, it, path, NULL, true))
        return false;
    check_keys(c, it, path, target_keys);
    s = get_name(c, it, path, "model", true);
    if (s) {
        t->model = index_find(&c->pol->model_index, &mt, s);
        known = t->model != SIZE_MAX;
        if (!known) {
            errf(c, path, "model", "unknown model %s", sy_json_quote(q, s));
            t->model = 0;
        }
    }
    t->weight = (uint32_t)get_uint(c, it, path, "weight", 0, MAX_WEIGHT, 1);
    return known;
}

static void compile_targets(struct compiler *c, const cJSON *obj, const char *rpath, size_t ri,
                            struct target_seen *seen)
{
    struct sy_policy *pol = c->pol;
    struct sy_route *r = &pol->routes[ri];
    char path[SUBPATH_BUF], tpath[ITEM_PATH_BUF], q[SY_JSON_QUOTE_BUF];
    const cJSON *list, *it;
    uint64_t total = 0;
    size_t n, i;

    list = get_list(c, obj, rpath, "targets", true, &n);
    if (!list)
        return;
    snprintf(path, sizeof(path), "%s.targets", rpath);
    if (n == 0) {
        errf(c, path, NULL, "must not be empty");
        return;
    }
    r->targets = sy_xcalloc(n, sizeof(*r->targets));
    r->n_targets = n;
    for (it = list->child, i = 0; it; it = it->next, i++) {
        struct sy_target *t = &r->targets[i];

        snprintf(tpath, sizeof(tpath), "%s[%zu]", path, i);
        if (compile_target(c, it, tpath, t)) {
            if (seen[t->model].route == ri)
                errf(c, tpath, "model", "model %s is already a target of this route (%s[%zu])",
                     sy_json_quote(q, pol->models[t->model].name), path, seen[t->model].pos);
            else
                seen[t->model] = (struct target_seen){.route = ri, .pos = i};
        }
        total += t->weight;
    }
    /* Only the weighted strategy divides traffic by weight; the others ignore it. */
    if (total == 0 && (r->strategy == SY_STRATEGY_WEIGHTED || r->strategy == SY_STRATEGY_LEARNED))
        errf(c, path, NULL, "total weight must be greater than 0 for the weighted strategy");
    else if (total > UINT32_MAX)
        errf(c, path, NULL, "total weight must not exceed %u", UINT32_MAX);
    else
        r->total_weight = (uint32_t)total;
}

static void compile_fallback(struct compiler *c, const cJSON *obj, const char *rpath, size_t ri,
                             struct target_seen *seen)
{
    struct sy_policy *pol = c->pol;
    struct sy_route *r = &pol->routes[ri];
    struct table mt = model_table(pol);
    char path[SUBPATH_BUF], ipath[ITEM_PATH_BUF], q[SY_JSON_QUOTE_BUF];
    const cJSON *list, *it;
    size_t n, i, mi;

    list = get_list(c, obj, rpath, "fallback", false, &n);
    if (!list)
        return;
    snprintf(path, sizeof(path), "%s.fallback", rpath);
    r->fallback = n ? sy_xcalloc(n, sizeof(*r->fallback)) : NULL;
    for (it = list->child, i = 0; it; it = it->next, i++) {
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!cJSON_IsString(it)) {
            errf(c, ipath, NULL, "expected a model name, got %s", sy_json_kind(it));
            continue;
        }
        mi = index_find(&pol->model_index, &mt, it->valuestring);
        if (mi == SIZE_MAX) {
            errf(c, ipath, NULL, "unknown model %s", sy_json_quote(q, it->valuestring));
            continue;
        }
        if (seen[mi].route == ri) {
            errf(c, ipath, NULL, "model %s is already %s of this route (%s.%s[%zu])",
                 sy_json_quote(q, it->valuestring),
                 seen[mi].fallback ? "in the fallback list" : "a target", rpath,
                 seen[mi].fallback ? "fallback" : "targets", seen[mi].pos);
            continue;
        }
        seen[mi] = (struct target_seen){.route = ri, .pos = i, .fallback = true};
        r->fallback[r->n_fallback++] = mi;
    }
}

/* 0 = unset; when several are set they must nest: first_token <= attempt <= total. */
static void compile_timeouts(struct compiler *c, const cJSON *obj, const char *rpath,
                             struct sy_route *r)
{
    char path[SUBPATH_BUF];
    const cJSON *o;
    uint32_t ft, at, tot;

    o = get_map(c, obj, rpath, "timeouts", false);
    if (!o)
        return;
    snprintf(path, sizeof(path), "%s.timeouts", rpath);
    check_keys(c, o, path, timeout_keys);
    at = (uint32_t)get_uint(c, o, path, "attempt_ms", 1, 3600000, 0);
    ft = (uint32_t)get_uint(c, o, path, "first_token_ms", 1, 3600000, 0);
    tot = (uint32_t)get_uint(c, o, path, "total_ms", 1, 3600000, 0);
    if (ft && at && ft > at)
        errf(c, path, "first_token_ms", "must not be greater than attempt_ms (%u), got %u", at, ft);
    if (at && tot && at > tot)
        errf(c, path, "attempt_ms", "must not be greater than total_ms (%u), got %u", tot, at);
    if (ft && tot && !at && ft > tot)
        errf(c, path, "first_token_ms", "must not be greater than total_ms (%u), got %u", tot, ft);
    r->attempt_timeout_ms = at;
    r->first_token_timeout_ms = ft;
    r->total_timeout_ms = tot;
}

static void compile_retries(struct compiler *c, const cJSON *obj, const char *rpath,
                            struct sy_route *r)
{
    char path[SUBPATH_BUF];
    const cJSON *o;

    r->retries_max = 0;
    r->retry_backoff_ms = 100;
    r->retry_max_backoff_ms = 2000;
    o = get_map(c, obj, rpath, "retries", false);
    if (!o)
        return;
    snprintf(path, sizeof(path), "%s.retries", rpath);
    check_keys(c, o, path, retry_keys);
    r->retries_max = (uint32_t)get_uint(c, o, path, "max", 0, 10, r->retries_max);
    r->retry_backoff_ms =
        (uint32_t)get_uint(c, o, path, "backoff_ms", 1, 60000, r->retry_backoff_ms);
    /* A longer first backoff raises the default cap with it rather than failing the check. */
    if (r->retry_backoff_ms > r->retry_max_backoff_ms)
        r->retry_max_backoff_ms = r->retry_backoff_ms;
    r->retry_max_backoff_ms =
        (uint32_t)get_uint(c, o, path, "max_backoff_ms", 1, 600000, r->retry_max_backoff_ms);
    if (r->retry_max_backoff_ms < r->retry_backoff_ms)
        errf(c, path, "max_backoff_ms", "must not be less than backoff_ms (%u), got %u",
             r->retry_backoff_ms, r->retry_max_backoff_ms);
}

static void compile_learn(struct compiler *c, const cJSON *obj, const char *rpath,
                          struct sy_route *r);

static void compile_route(struct compiler *c, const cJSON *obj, size_t i, struct target_seen *seen)
{
    struct sy_policy *pol = c->pol;
    struct sy_route *r = &pol->routes[i];
    struct table nt = route_name_table(pol);
    char path[PATH_BUF], q[SY_JSON_QUOTE_BUF];
    const char *s;
    size_t dup;

    snprintf(path, sizeof(path), "routes[%zu]", i);
    r->experiment = SIZE_MAX;
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, route_keys);

    s = get_name(c, obj, path, "name", true);
    if (s) {
        r->name = sy_xstrdup(s);
        dup = index_insert(&c->route_names, &nt, i);
        if (dup != SIZE_MAX)
            errf(c, path, "name", "duplicate route %s (also routes[%zu])", sy_json_quote(q, s),
                 dup);
    }
    compile_match(c, obj, path, i);
    compile_strategy(c, obj, path, r);
    compile_targets(c, obj, path, i, seen);
    compile_fallback(c, obj, path, i, seen);
    compile_timeouts(c, obj, path, r);
    compile_retries(c, obj, path, r);
    r->hedge_after_ms = (uint32_t)get_uint(c, obj, path, "hedge_after_ms", 0, 600000, 0);
    compile_learn(c, obj, path, r);
}

/* ---- learned routes and experiments ------------------------------------------------- */

/* Index of <s> in the NULL-terminated <names>, or -1 (reported with the accepted list). */
static int get_enum(struct compiler *c, const cJSON *obj, const char *path, const char *key,
                    const char *const *names, int def)
{
    const char *s = get_str(c, obj, path, key, false);
    char q[SY_JSON_QUOTE_BUF], list[LIST_BUF];

    if (!s)
        return def;
    for (int i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0)
            return i;
    }
    errf(c, path, key, "unknown value %s (accepted: %s)", sy_json_quote(q, s),
         join_words(list, names));
    return def;
}

static void compile_learn(struct compiler *c, const cJSON *obj, const char *rpath,
                          struct sy_route *r)
{
    struct sy_learn *l = &r->learn;
    char path[SUBPATH_BUF], opath[ITEM_PATH_BUF];
    const cJSON *lo = sy_json_field(obj, "learn"), *ob;

    *l = (struct sy_learn){.w_quality = 1,
                           .update_period_s = 60,
                           .exploration = 0.05,
                           .max_step = 0.2,
                           .min_samples = 20,
                           .threshold = 0.02,
                           .discount = 0.98};
    if (!lo)
        return;
    if (r->strategy != SY_STRATEGY_LEARNED) {
        errf(c, rpath, "learn", "is only for strategy learned");
        return;
    }
    snprintf(path, sizeof(path), "%s.learn", rpath);
    if (!get_map(c, obj, rpath, "learn", false))
        return;
    check_keys(c, lo, path, learn_keys);
    ob = get_map(c, lo, path, "objective", false);
    if (ob) {
        snprintf(opath, sizeof(opath), "%s.objective", path);
        check_keys(c, ob, opath, objective_keys);
        l->w_quality = get_number(c, ob, opath, "quality", 0, false, 1000, 1);
        l->w_cost = get_number(c, ob, opath, "cost", 0, false, 1000, 0);
        l->w_latency = get_number(c, ob, opath, "latency", 0, false, 1000, 0);
        if (l->w_quality == 0 && l->w_cost == 0 && l->w_latency == 0)
            errf(c, opath, NULL, "at least one weight must be greater than 0");
    }
    l->update_period_s = (uint32_t)get_uint(c, lo, path, "update_period_s", 1, 86400, 60);
    l->exploration = get_number(c, lo, path, "exploration", 0, false, 0.5, 0.05);
    l->max_step = get_number(c, lo, path, "max_step", 0, true, 1, 0.2);
    l->min_samples = (uint32_t)get_uint(c, lo, path, "min_samples", 0, 1000000000, 20);
    l->threshold = get_number(c, lo, path, "threshold", 0, false, 1, 0.02);
    l->discount = get_number(c, lo, path, "discount", 0, true, 1, 0.98);
    if (l->exploration * (double)r->n_targets > 1)
        errf(c, path, "exploration", "%g per target over %zu targets is more than all traffic",
             l->exploration, r->n_targets);
}

/* experiments[i].arms[a]: "model: m" or "targets: [...]", and a share. */
static void compile_arm(struct compiler *c, const cJSON *obj, const char *xpath, size_t a,
                        struct sy_arm *arm, uint64_t *total)
{
    struct sy_policy *pol = c->pol;
    struct table mt = model_table(pol);
    char path[ITEM_PATH_BUF], tpath[ITEM_PATH_BUF + 32], q[SY_JSON_QUOTE_BUF];
    const cJSON *list, *it;
    const char *s;
    size_t n = 0, i;
    uint64_t weight = 0;

    snprintf(path, sizeof(path), "%s.arms[%zu]", xpath, a);
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, arm_keys);
    s = get_name(c, obj, path, "name", true);
    if (s)
        arm->name = sy_xstrdup(s);
    arm->share = (uint32_t)get_uint(c, obj, path, "share", 1, MAX_WEIGHT, 1);
    *total += arm->share;
    if (sy_json_field(obj, "model") && sy_json_field(obj, "targets")) {
        errf(c, path, NULL, "give either model or targets, not both");
        return;
    }
    if (sy_json_field(obj, "model")) {
        s = get_name(c, obj, path, "model", true);
        if (!s)
            return;
        arm->targets = sy_xcalloc(1, sizeof(*arm->targets));
        arm->n_targets = 1;
        arm->total_weight = 1;
        arm->targets[0].weight = 1;
        arm->targets[0].model = index_find(&pol->model_index, &mt, s);
        if (arm->targets[0].model == SIZE_MAX) {
            errf(c, path, "model", "unknown model %s", sy_json_quote(q, s));
            arm->targets[0].model = 0;
        }
        return;
    }
    list = get_list(c, obj, path, "targets", false, &n);
    if (!list) {
        errf(c, path, NULL, "needs a model or targets");
        return;
    }
    if (n == 0) {
        errf(c, path, "targets", "must not be empty");
        return;
    }
    arm->targets = sy_xcalloc(n, sizeof(*arm->targets));
    arm->n_targets = n;
    for (it = list->child, i = 0; it; it = it->next, i++) {
        struct sy_target *t = &arm->targets[i];

        snprintf(tpath, sizeof(tpath), "%s.targets[%zu]", path, i);
        if (compile_target(c, it, tpath, t)) {
            for (size_t k = 0; k < i; k++)
                if (arm->targets[k].model == t->model)
                    errf(c, tpath, "model", "model %s is already a target of this arm",
                         sy_json_quote(q, pol->models[t->model].name));
        }
        weight += t->weight;
    }
    if (weight == 0)
        errf(c, path, "targets", "total weight must be greater than 0");
    arm->total_weight = (uint32_t)(weight > UINT32_MAX ? UINT32_MAX : weight);
}

static void compile_experiment(struct compiler *c, const cJSON *obj, size_t i)
{
    struct sy_policy *pol = c->pol;
    struct sy_experiment *x = &pol->experiments[i];
    struct table nt = route_name_table(pol);
    char path[PATH_BUF], sub[SUBPATH_BUF], q[SY_JSON_QUOTE_BUF];
    const cJSON *list, *it, *o;
    const char *s;
    size_t n = 0, a;
    uint64_t total = 0;

    snprintf(path, sizeof(path), "experiments[%zu]", i);
    x->route = SIZE_MAX;
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, experiment_keys);
    s = get_name(c, obj, path, "name", true);
    if (s) {
        x->name = sy_xstrdup(s);
        if (strchr(s, '/'))
            errf(c, path, "name", "must not contain '/' (answers name an arm as experiment/arm)");
        for (size_t k = 0; k < i; k++)
            if (pol->experiments[k].name && strcmp(pol->experiments[k].name, s) == 0)
                errf(c, path, "name", "duplicate experiment %s (also experiments[%zu])",
                     sy_json_quote(q, s), k);
    }
    s = get_name(c, obj, path, "route", true);
    if (s) {
        x->route = index_find(&c->route_names, &nt, s);
        if (x->route == SIZE_MAX)
            errf(c, path, "route", "unknown route %s", sy_json_quote(q, s));
        else if (pol->routes[x->route].experiment != SIZE_MAX)
            errf(c, path, "route", "route %s already runs experiment %s", sy_json_quote(q, s),
                 pol->experiments[pol->routes[x->route].experiment].name);
        else if (pol->routes[x->route].strategy == SY_STRATEGY_LEARNED)
            errf(c, path, "route",
                 "route %s learns its weights; experiments need another "
                 "strategy",
                 sy_json_quote(q, s));
        else
            pol->routes[x->route].experiment = i;
    }
    x->metric = (enum sy_metric)get_enum(c, obj, path, "metric", metric_names, SY_METRIC_THUMBS_UP);
    x->sticky = SY_STICKY_USER;
    o = get_map(c, obj, path, "sticky", false);
    if (o) {
        snprintf(sub, sizeof(sub), "%s.sticky", path);
        check_keys(c, o, sub, sticky_keys);
        x->sticky = (enum sy_sticky)get_enum(c, o, sub, "by", sticky_names, SY_STICKY_USER);
        s = get_str(c, o, sub, "header", false);
        if (x->sticky == SY_STICKY_HEADER && !s)
            errf(c, sub, "header", "is required with by: header");
        else if (x->sticky != SY_STICKY_HEADER && s)
            errf(c, sub, "header", "is only for by: header");
        else if (s && (!*s || strlen(s) > 128 ||
                       strspn(s, "abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != strlen(s)))
            errf(c, sub, "header", "%s is not a header name", sy_json_quote(q, s));
        else if (s)
            x->sticky_header = ascii_lower(sy_xstrdup(s));
    }
    x->min_samples = (uint32_t)get_uint(c, obj, path, "min_samples", 1, 1000000000, 100);
    x->stop_rule = SY_STOP_PROB_BEST;
    x->stop_threshold = 0.95;
    o = get_map(c, obj, path, "stop", false);
    if (o) {
        snprintf(sub, sizeof(sub), "%s.stop", path);
        check_keys(c, o, sub, stop_keys);
        x->stop_rule =
            (enum sy_stop_rule)get_enum(c, o, sub, "rule", stop_names, SY_STOP_PROB_BEST);
        if (x->stop_rule == SY_STOP_SIGNIFICANCE)
            x->stop_threshold = get_number(c, o, sub, "threshold", 0, true, 0.5, 0.05);
        else if (x->stop_rule == SY_STOP_PROB_BEST)
            x->stop_threshold = get_number(c, o, sub, "threshold", 0.5, true, 1, 0.95);
        else if (sy_json_field(o, "threshold"))
            errf(c, sub, "threshold", "is not used with rule none");
        x->auto_promote = get_bool(c, o, sub, "auto_promote", false);
    }
    list = get_list(c, obj, path, "arms", true, &n);
    if (!list)
        return;
    if (n < 2) {
        errf(c, path, "arms", "needs at least 2 arms, got %zu", n);
        if (n == 0)
            return;
    }
    x->arms = sy_xcalloc(n, sizeof(*x->arms));
    x->n_arms = n;
    for (it = list->child, a = 0; it; it = it->next, a++) {
        compile_arm(c, it, path, a, &x->arms[a], &total);
        for (size_t k = 0; k < a && x->arms[a].name; k++)
            if (x->arms[k].name && strcmp(x->arms[k].name, x->arms[a].name) == 0)
                errf(c, path, "arms", "duplicate arm %s", sy_json_quote(q, x->arms[a].name));
        if (x->arms[a].name && strchr(x->arms[a].name, '/'))
            errf(c, path, "arms", "arm %s: names must not contain '/'",
                 sy_json_quote(q, x->arms[a].name));
    }
    x->total_share = (uint32_t)(total > UINT32_MAX ? UINT32_MAX : total);
}

static void compile_experiments(struct compiler *c, const cJSON *root)
{
    struct sy_policy *pol = c->pol;
    const cJSON *list = get_list(c, root, "", "experiments", false, &pol->n_experiments), *it;
    size_t i;

    pol->experiments =
        pol->n_experiments ? sy_xcalloc(pol->n_experiments, sizeof(*pol->experiments)) : NULL;
    for (it = list ? list->child : NULL, i = 0; it; it = it->next, i++)
        compile_experiment(c, it, i);
}

/* ---- tenants ---------------------------------------------------------------------------- */

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Reads exactly 64 hex digits (either case) into <out>. Returns false otherwise. */
static bool parse_sha256_hex(const char *s, uint8_t out[SY_SHA256_LEN])
{
    size_t i;

    if (strlen(s) != 2 * SY_SHA256_LEN)
        return false;
    for (i = 0; i < SY_SHA256_LEN; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Label names can become metric label names: Prometheus' syntax, bounded. */
static bool is_label_key(const char *s)
{
    size_t n;

    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (n = 1; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return false;
    return n <= LABEL_KEY_MAX_LEN;
}

/* Writes the path of key entry <e> ("tenants[1].api_keys_sha256[0]") into <buf>. */
static const char *key_path(const struct sy_policy *pol, size_t e, char *buf, size_t cap)
{
    size_t t = pol->tenant_keys[e].tenant;

    snprintf(buf, cap, "tenants[%zu].api_keys_sha256[%zu]", t, e - pol->tenants[t].first_key);
    return buf;
}

/* A value that is not a digest may well be the key itself, so it is never quoted back. */
static void compile_tenant_keys(struct compiler *c, const cJSON *obj, const char *tpath, size_t ti)
{
    struct sy_policy *pol = c->pol;
    struct sy_tenant *t = &pol->tenants[ti];
    char path[SUBPATH_BUF], ipath[ITEM_PATH_BUF], other[ITEM_PATH_BUF];
    const cJSON *list, *it;
    size_t n, i, dup;

    t->first_key = pol->n_tenant_keys;
    list = get_list(c, obj, tpath, "api_keys_sha256", true, &n);
    if (!list)
        return;
    snprintf(path, sizeof(path), "%s.api_keys_sha256", tpath);
    if (n == 0) {
        errf(c, path, NULL, "must not be empty (a tenant without keys cannot call)");
        return;
    }
    if (n > MAX_TENANT_KEYS) {
        errf(c, path, NULL, "at most %d keys, got %zu", MAX_TENANT_KEYS, n);
        return;
    }
    for (it = list->child, i = 0; it; it = it->next, i++) {
        struct sy_tenant_key *k = &pol->tenant_keys[pol->n_tenant_keys];

        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!cJSON_IsString(it)) {
            errf(c, ipath, NULL, "expected a string (64 hex digits, quoted), got %s",
                 sy_json_kind(it));
            continue;
        }
        if (!parse_sha256_hex(it->valuestring, k->sha256)) {
            errf(c, ipath, NULL,
                 "expected the SHA-256 of a key as 64 hex digits (printf %%s \"$KEY\" | "
                 "sha256sum), got %zu characters that are not; never write the key itself here",
                 strlen(it->valuestring));
            continue;
        }
        k->tenant = ti;
        dup = key_index_insert(pol, pol->n_tenant_keys);
        if (dup != SIZE_MAX) {
            errf(c, ipath, NULL, "the same key is already %s (a key names one tenant)",
                 key_path(pol, dup, other, sizeof(other)));
            continue;
        }
        pol->n_tenant_keys++;
        t->n_keys++;
    }
}

static void compile_labels(struct compiler *c, const cJSON *obj, const char *tpath,
                           struct sy_tenant *t)
{
    const cJSON *map = get_map(c, obj, tpath, "labels", false);
    char path[SUBPATH_BUF], q[SY_JSON_QUOTE_BUF];
    const cJSON *it;
    size_t n, j;

    if (!map)
        return;
    snprintf(path, sizeof(path), "%s.labels", tpath);
    n = sy_json_count(map);
    if (n > MAX_LABELS) {
        errf(c, path, NULL, "at most %d labels, got %zu", MAX_LABELS, n);
        return;
    }
    t->labels = n ? sy_xcalloc(n, sizeof(*t->labels)) : NULL;
    for (it = map->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";

        if (!is_label_key(key)) {
            errf(c, path, NULL,
                 "%s is not a label name (1 to %d letters, digits and '_', not starting with a "
                 "digit)",
                 sy_json_quote(q, key), LABEL_KEY_MAX_LEN);
            continue;
        }
        for (j = 0; j < t->n_labels && strcmp(t->labels[j].key, key) != 0; j++)
            ;
        if (j < t->n_labels) {
            errf(c, path, key, "given more than once");
            continue;
        }
        if (!cJSON_IsString(it)) {
            errf(c, path, key, "expected a string, got %s", sy_json_kind(it));
            continue;
        }
        if (!*it->valuestring || strlen(it->valuestring) > LABEL_VALUE_MAX_LEN) {
            errf(c, path, key, "must be 1 to %d bytes long", LABEL_VALUE_MAX_LEN);
            continue;
        }
        if (has_control_chars(it->valuestring)) {
            errf(c, path, key, "must not contain control characters");
            continue;
        }
        t->labels[t->n_labels].key = sy_xstrdup(key);
        t->labels[t->n_labels].value = sy_xstrdup(it->valuestring);
        t->n_labels++;
    }
}

/* Returns the budget at <key>: absent = 0 (unset), else greater than 0 and finite. */
static double get_budget(struct compiler *c, const cJSON *obj, const char *path, const char *key)
{
    const cJSON *it = sy_json_field(obj, key);

    if (!it)
        return 0;
    if (!cJSON_IsNumber(it)) {
        errf(c, path, key, "expected a number (USD), got %s", sy_json_kind(it));
        return 0;
    }
    if (!isfinite(it->valuedouble) || it->valuedouble <= 0 || it->valuedouble > MAX_BUDGET) {
        errf(c, path, key, "must be greater than 0 and at most %.0f (USD), got %.17g", MAX_BUDGET,
             it->valuedouble);
        return 0;
    }
    return it->valuedouble;
}

static void compile_budget(struct compiler *c, const cJSON *obj, const char *tpath,
                           struct sy_tenant *t)
{
    const cJSON *b = get_map(c, obj, tpath, "budget", false);
    char path[SUBPATH_BUF];

    if (!b)
        return;
    snprintf(path, sizeof(path), "%s.budget", tpath);
    check_keys(c, b, path, tenant_budget_keys);
    t->budget_daily_usd = get_budget(c, b, path, "daily_usd");
    t->budget_monthly_usd = get_budget(c, b, path, "monthly_usd");
}

static void compile_tenant(struct compiler *c, const cJSON *obj, size_t i)
{
    struct sy_policy *pol = c->pol;
    struct sy_tenant *t = &pol->tenants[i];
    struct table tt = tenant_table(pol);
    char path[PATH_BUF], q[SY_JSON_QUOTE_BUF];
    const char *s;
    size_t dup;

    snprintf(path, sizeof(path), "tenants[%zu]", i);
    t->first_key = pol->n_tenant_keys;
    if (!get_map(c, obj, path, NULL, true))
        return;
    check_keys(c, obj, path, tenant_keys);

    s = get_name(c, obj, path, "name", true);
    if (s) {
        t->name = sy_xstrdup(s);
        dup = index_insert(&pol->tenant_index, &tt, i);
        if (dup != SIZE_MAX)
            errf(c, path, "name", "duplicate tenant %s (also tenants[%zu])", sy_json_quote(q, s),
                 dup);
    }
    compile_tenant_keys(c, obj, path, i);
    compile_labels(c, obj, path, t);
    compile_budget(c, obj, path, t);
}

static void compile_tenants(struct compiler *c, const cJSON *root)
{
    struct sy_policy *pol = c->pol;
    const cJSON *list, *it, *keys;
    size_t n_keys = 0, i;

    list = get_list(c, root, "", "tenants", false, &pol->n_tenants);
    /* Sized for every listed key up front: the key index holds positions in tenant_keys. */
    for (it = list ? list->child : NULL; it; it = it->next) {
        keys = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "api_keys_sha256") : NULL;
        if (cJSON_IsArray(keys))
            n_keys += sy_json_count(keys);
    }
    pol->tenants = pol->n_tenants ? sy_xcalloc(pol->n_tenants, sizeof(*pol->tenants)) : NULL;
    pol->tenant_keys = n_keys ? sy_xcalloc(n_keys, sizeof(*pol->tenant_keys)) : NULL;
    index_init(&pol->tenant_index, pol->n_tenants);
    index_init(&pol->key_index, n_keys);
    for (it = list ? list->child : NULL, i = 0; it; it = it->next, i++)
        compile_tenant(c, it, i);
}

/* Must follow the tenants: the default mode depends on them. */
static void compile_auth(struct compiler *c, const cJSON *root)
{
    struct sy_policy *pol = c->pol;
    char q[SY_JSON_QUOTE_BUF], list[LIST_BUF];
    const cJSON *obj;
    const char *s;
    size_t i;

    pol->auth_mode = pol->n_tenants ? SY_AUTH_KEYS : SY_AUTH_OPEN;
    obj = get_map(c, root, "", "auth", false);
    if (!obj)
        return;
    check_keys(c, obj, "auth", auth_keys);
    s = get_str(c, obj, "auth", "mode", false);
    if (!s)
        return;
    for (i = 0; auth_mode_names[i] && strcmp(s, auth_mode_names[i]) != 0; i++)
        ;
    if (!auth_mode_names[i]) {
        errf(c, "auth", "mode", "unknown mode %s (accepted: %s)", sy_json_quote(q, s),
             join_words(list, auth_mode_names));
        return;
    }
    pol->auth_mode = (enum sy_auth_mode)i;
    if (pol->auth_mode == SY_AUTH_KEYS && pol->n_tenants == 0)
        errf(c, "auth", "mode",
             "keys needs at least one tenant with api_keys_sha256 (add tenants, or use mode: "
             "open)");
}

/* ---- top level ------------------------------------------------------------------------- */

static void compile_server(struct compiler *c, const cJSON *root)
{
    struct sy_server_limits *s = &c->pol->server;
    const cJSON *obj;

    s->max_body_bytes = 4u * 1024 * 1024;
    s->header_timeout_ms = 10000;
    s->body_timeout_ms = 30000;
    s->idle_timeout_ms = 75000;
    s->max_connections = 10000;
    obj = get_map(c, root, "", "server", false);
    if (!obj)
        return;
    check_keys(c, obj, "server", server_keys);
    s->max_body_bytes =
        get_uint(c, obj, "server", "max_body_bytes", 1024, 1024u * 1024 * 1024, s->max_body_bytes);
    s->header_timeout_ms =
        (uint32_t)get_uint(c, obj, "server", "header_timeout_ms", 1, 3600000, s->header_timeout_ms);
    s->body_timeout_ms =
        (uint32_t)get_uint(c, obj, "server", "body_timeout_ms", 1, 3600000, s->body_timeout_ms);
    s->idle_timeout_ms =
        (uint32_t)get_uint(c, obj, "server", "idle_timeout_ms", 1, 3600000, s->idle_timeout_ms);
    s->max_connections =
        (uint32_t)get_uint(c, obj, "server", "max_connections", 1, 1000000, s->max_connections);
}

/* Must follow the routes: it names one. */
static void compile_default_route(struct compiler *c, const cJSON *root)
{
    struct table nt = route_name_table(c->pol);
    char q[SY_JSON_QUOTE_BUF], q2[SY_JSON_QUOTE_BUF];
    const char *s;

    c->pol->default_route = SIZE_MAX;
    s = get_name(c, root, "", "default_route", false);
    if (!s)
        return;
    c->pol->default_route = index_find(&c->route_names, &nt, s);
    if (c->pol->default_route == SIZE_MAX) {
        errf(c, "", "default_route", "unknown route %s", sy_json_quote(q, s));
        return;
    }
    /* Routes are tried before models and before the default, so a condition-less default
     * route would take every request itself and the default would never apply. */
    if (sy_match_is_empty(&c->pol->routes[c->pol->default_route].match))
        errf(c, "", "default_route",
             "route %s has no match conditions, so it already takes every request before "
             "models are looked up; give it a match (e.g. {model: %s})",
             sy_json_quote(q, s), sy_json_quote(q2, s));
}

static void compile_resilience(struct compiler *c, const cJSON *root)
{
    struct sy_resilience *r = &c->pol->resilience;
    const char *bpath = "resilience.breaker", *rpath = "resilience.retry_budget";
    const cJSON *obj, *o;

    r->breaker_failures = 5;
    r->breaker_error_rate = 0.5;
    r->breaker_min_requests = 20;
    r->breaker_window_ms = 30000;
    r->breaker_open_ms = 5000;
    r->retry_budget_ratio = 0.2;
    r->retry_budget_min_per_s = 10;
    r->max_retry_after_ms = 30000;
    obj = get_map(c, root, "", "resilience", false);
    if (!obj)
        return;
    check_keys(c, obj, "resilience", resilience_keys);
    o = get_map(c, obj, "resilience", "breaker", false);
    if (o) {
        check_keys(c, o, bpath, breaker_keys);
        r->breaker_failures =
            (uint32_t)get_uint(c, o, bpath, "failures", 1, 1000, r->breaker_failures);
        r->breaker_error_rate =
            get_number(c, o, bpath, "error_rate", 0, true, 1, r->breaker_error_rate);
        r->breaker_min_requests =
            (uint32_t)get_uint(c, o, bpath, "min_requests", 1, 1000000, r->breaker_min_requests);
        r->breaker_window_ms =
            (uint32_t)get_uint(c, o, bpath, "window_ms", 100, 3600000, r->breaker_window_ms);
        r->breaker_open_ms =
            (uint32_t)get_uint(c, o, bpath, "open_ms", 100, 3600000, r->breaker_open_ms);
    }
    o = get_map(c, obj, "resilience", "retry_budget", false);
    if (o) {
        check_keys(c, o, rpath, budget_keys);
        r->retry_budget_ratio =
            get_number(c, o, rpath, "ratio", 0, false, 10, r->retry_budget_ratio);
        r->retry_budget_min_per_s =
            (uint32_t)get_uint(c, o, rpath, "min_per_second", 0, 100000, r->retry_budget_min_per_s);
    }
    r->max_retry_after_ms = (uint32_t)get_uint(c, obj, "resilience", "max_retry_after_ms", 0,
                                               3600000, r->max_retry_after_ms);
}

static void compile_sections(struct compiler *c, const cJSON *root)
{
    struct sy_policy *pol = c->pol;
    struct target_seen *seen = NULL;
    const cJSON *providers, *models, *routes, *it;
    size_t i;

    check_keys(c, root, "", top_keys);

    providers = get_list(c, root, "", "providers", true, &pol->n_providers);
    if (providers && pol->n_providers == 0)
        errf(c, "providers", NULL, "must not be empty");
    pol->providers =
        pol->n_providers ? sy_xcalloc(pol->n_providers, sizeof(*pol->providers)) : NULL;
    index_init(&pol->provider_index, pol->n_providers);
    for (it = providers ? providers->child : NULL, i = 0; it; it = it->next, i++)
        compile_provider(c, it, i);

    models = get_list(c, root, "", "models", true, &pol->n_models);
    if (models && pol->n_models == 0)
        errf(c, "models", NULL, "must not be empty");
    pol->models = pol->n_models ? sy_xcalloc(pol->n_models, sizeof(*pol->models)) : NULL;
    index_init(&pol->model_index, pol->n_models);
    for (it = models ? models->child : NULL, i = 0; it; it = it->next, i++)
        compile_model(c, it, i);

    routes = get_list(c, root, "", "routes", false, &pol->n_routes);
    pol->routes = pol->n_routes ? sy_xcalloc(pol->n_routes, sizeof(*pol->routes)) : NULL;
    index_init(&pol->route_index, pol->n_routes);
    index_init(&c->route_names, pol->n_routes);
    if (pol->n_routes) {
        seen = sy_xcalloc(pol->n_models ? pol->n_models : 1, sizeof(*seen));
        for (i = 0; i < pol->n_models; i++)
            seen[i].route = SIZE_MAX;
    }
    for (it = routes ? routes->child : NULL, i = 0; it; it = it->next, i++)
        compile_route(c, it, i, seen);
    free(seen);
    check_shadowed_routes(c);

    compile_default_route(c, root);
    compile_resilience(c, root);
    compile_server(c, root);
    compile_tenants(c, root);
    compile_auth(c, root);
    compile_experiments(c, root);
}

static void match_cleanup(struct sy_match *m)
{
    size_t i, j;

    free(m->model);
    for (i = 0; i < m->n_tags; i++)
        free(m->tags[i]);
    free(m->tags);
    for (i = 0; i < m->n_keywords; i++) {
        for (j = 0; j < m->keywords[i].n_words; j++)
            free(m->keywords[i].words[j]);
        free(m->keywords[i].words);
    }
    free(m->keywords);
    for (i = 0; i < m->n_regex; i++) {
        if (m->regex[i].pattern) /* NULL: regcomp() was never run or failed */
            regfree(&m->regex[i].re);
        free(m->regex[i].pattern);
    }
    free(m->regex);
}

static void policy_free(struct sy_policy *pol)
{
    size_t i, j;

    if (!pol)
        return;
    for (i = 0; i < pol->n_providers; i++) {
        struct sy_provider *p = &pol->providers[i];

        free(p->name);
        free(p->base_url);
        free(p->api_key_env);
        free(p->api_version);
        for (j = 0; j < p->n_headers; j++) {
            free(p->headers[j].name);
            free(p->headers[j].value);
        }
        free(p->headers);
        free(p->region);
        for (j = 0; j < p->n_compliance; j++)
            free(p->compliance[j]);
        free(p->compliance);
    }
    free(pol->providers);
    for (i = 0; i < pol->n_models; i++) {
        free(pol->models[i].name);
        free(pol->models[i].upstream_model);
        free(pol->models[i].windows);
    }
    free(pol->models);
    for (i = 0; i < pol->n_routes; i++) {
        free(pol->routes[i].name);
        free(pol->routes[i].match_model);
        match_cleanup(&pol->routes[i].match);
        free(pol->routes[i].targets);
        free(pol->routes[i].fallback);
    }
    free(pol->routes);
    for (i = 0; i < pol->n_experiments; i++) {
        struct sy_experiment *x = &pol->experiments[i];
        free(x->name);
        free(x->sticky_header);
        for (j = 0; j < x->n_arms; j++) {
            free(x->arms[j].name);
            free(x->arms[j].targets);
        }
        free(x->arms);
    }
    free(pol->experiments);
    for (i = 0; i < pol->n_tenants; i++) {
        free(pol->tenants[i].name);
        for (j = 0; j < pol->tenants[i].n_labels; j++) {
            free(pol->tenants[i].labels[j].key);
            free(pol->tenants[i].labels[j].value);
        }
        free(pol->tenants[i].labels);
    }
    free(pol->tenants);
    free(pol->tenant_keys);
    free(pol->provider_index.slots);
    free(pol->model_index.slots);
    free(pol->route_index.slots);
    free(pol->tenant_index.slots);
    free(pol->key_index.slots);
    free(pol);
}

static void set_err(char **errmsg, char *msg)
{
    if (errmsg)
        *errmsg = msg;
    else
        free(msg);
}

/* Compiles <root> into a new policy (refcount 1, hash not yet set), or NULL with *errmsg. */
static struct sy_policy *compile_tree(const cJSON *root, char **errmsg)
{
    struct compiler c = {0};

    c.pol = sy_xcalloc(1, sizeof(*c.pol));
    atomic_init(&c.pol->refcount, 1);
    if (!cJSON_IsObject(root))
        errf(&c, "", NULL, "expected a mapping at the top level, got %s", sy_json_kind(root));
    else
        compile_sections(&c, root);
    free(c.route_names.slots);
    if (c.n_errs == 0)
        return c.pol;

    if (c.n_errs > MAX_ERRORS) {
        char *more = sy_xasprintf("%s\n... and %u more errors", c.errs, c.n_errs - MAX_ERRORS);

        free(c.errs);
        c.errs = more;
    }
    set_err(errmsg, c.errs);
    policy_free(c.pol);
    return NULL;
}

/* ---- public API ------------------------------------------------------------------------ */

struct sy_policy *sy_policy_compile(const char *src, size_t len, char **errmsg)
{
    struct sy_policy *pol;
    cJSON *root;

    if (errmsg)
        *errmsg = NULL;
    if (!src) {
        set_err(errmsg, sy_xasprintf("policy: no source text"));
        return NULL;
    }
    if (len > SY_POLICY_MAX_BYTES) {
        set_err(errmsg, sy_xasprintf("policy: %zu bytes is more than the limit of %u bytes", len,
                                     SY_POLICY_MAX_BYTES));
        return NULL;
    }
    root = sy_yaml_load(src, len, errmsg);
    if (!root)
        return NULL;
    pol = compile_tree(root, errmsg);
    cJSON_Delete(root);
    if (pol && sy_sha256_hex16(src, len, pol->hash) < 0) {
        set_err(errmsg, sy_xasprintf("policy: cannot compute SHA-256"));
        policy_free(pol);
        pol = NULL;
    }
    return pol;
}

struct sy_policy *sy_policy_compile_json(const struct cJSON *root, char **errmsg)
{
    struct sy_policy *pol;
    char *text;

    if (errmsg)
        *errmsg = NULL;
    pol = compile_tree(root, errmsg);
    if (!pol)
        return NULL;
    text = cJSON_PrintUnformatted(root);
    if (!text || sy_sha256_hex16(text, strlen(text), pol->hash) < 0) {
        set_err(errmsg, sy_xasprintf("policy: out of memory"));
        policy_free(pol);
        pol = NULL;
    }
    free(text);
    return pol;
}

struct sy_policy *sy_policy_load_file(const char *path, char **errmsg)
{
    struct sy_policy *pol = NULL;
    char *buf = NULL, ebuf[128];
    size_t len = 0, cap = 0;
    ssize_t n;
    int fd;

    if (errmsg)
        *errmsg = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(errmsg, sy_xasprintf("%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf))));
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            if (cap > SY_POLICY_MAX_BYTES) {
                set_err(errmsg, sy_xasprintf("%s: larger than the policy limit of %u bytes", path,
                                             SY_POLICY_MAX_BYTES));
                goto out_free_buf;
            }
            cap = cap ? cap * 2 : 64 * 1024;
            buf = sy_xrealloc(buf, cap + 1); /* grows to at most 2 x the cap */
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(errmsg, sy_xasprintf("%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf))));
            goto out_free_buf;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > SY_POLICY_MAX_BYTES) {
        set_err(errmsg, sy_xasprintf("%s: larger than the policy limit of %u bytes", path,
                                     SY_POLICY_MAX_BYTES));
        goto out_free_buf;
    }
    pol = sy_policy_compile(buf, len, errmsg);

out_free_buf:
    free(buf);
    close(fd);
    return pol;
}

struct sy_policy *sy_policy_ref(struct sy_policy *pol)
{
    if (pol)
        atomic_fetch_add_explicit(&pol->refcount, 1, memory_order_relaxed);
    return pol;
}

void sy_policy_unref(struct sy_policy *pol)
{
    if (!pol)
        return;
    /* acq_rel: every thread's reads happen before the last owner frees. */
    if (atomic_fetch_sub_explicit(&pol->refcount, 1, memory_order_acq_rel) == 1)
        policy_free(pol);
}

const struct sy_provider *sy_policy_find_provider(const struct sy_policy *pol, const char *name)
{
    struct table t;
    size_t i;

    if (!pol)
        return NULL;
    t = provider_table(pol);
    i = index_find(&pol->provider_index, &t, name);
    return i == SIZE_MAX ? NULL : &pol->providers[i];
}

const struct sy_model *sy_policy_find_model(const struct sy_policy *pol, const char *name)
{
    struct table t;
    size_t i;

    if (!pol)
        return NULL;
    t = model_table(pol);
    i = index_find(&pol->model_index, &t, name);
    return i == SIZE_MAX ? NULL : &pol->models[i];
}

const struct sy_route *sy_policy_find_route(const struct sy_policy *pol,
                                            const char *requested_model)
{
    struct table t;
    size_t i;

    if (!pol)
        return NULL;
    t = route_table(pol);
    i = index_find(&pol->route_index, &t, requested_model);
    return i == SIZE_MAX ? NULL : &pol->routes[i];
}

const struct sy_tenant *sy_policy_find_tenant(const struct sy_policy *pol, const char *name)
{
    struct table t;
    size_t i;

    if (!pol)
        return NULL;
    t = tenant_table(pol);
    i = index_find(&pol->tenant_index, &t, name);
    return i == SIZE_MAX ? NULL : &pol->tenants[i];
}

const struct sy_tenant *sy_policy_find_tenant_by_key(const struct sy_policy *pol,
                                                     const uint8_t sha256[SY_SHA256_LEN])
{
    const struct sy_name_index *ix;
    size_t i;

    if (!pol || !pol->key_index.slots)
        return NULL;
    ix = &pol->key_index;
    for (i = key_slot(sha256, ix->mask); ix->slots[i]; i = (i + 1) & ix->mask) {
        const struct sy_tenant_key *k = &pol->tenant_keys[ix->slots[i] - 1];

        if (CRYPTO_memcmp(k->sha256, sha256, SY_SHA256_LEN) == 0)
            return &pol->tenants[k->tenant];
    }
    return NULL;
}

const char *sy_provider_kind_name(enum sy_provider_kind kind)
{
    size_t i;

    for (i = 0; i < SY_ARRAY_LEN(provider_kinds); i++)
        if (provider_kinds[i].kind == kind)
            return provider_kinds[i].name;
    return "unknown";
}

const char *sy_strategy_name(enum sy_strategy s)
{
    if ((size_t)s < SY_ARRAY_LEN(strategy_names) - 1)
        return strategy_names[s];
    return "unknown";
}

const char *sy_auth_mode_name(enum sy_auth_mode mode)
{
    if ((size_t)mode < SY_ARRAY_LEN(auth_mode_names) - 1)
        return auth_mode_names[mode];
    return "unknown";
}

bool sy_match_is_empty(const struct sy_match *m)
{
    return !m->model && m->n_tags == 0 && m->min_prompt_tokens < 0 && m->max_prompt_tokens < 0 &&
           m->min_messages < 0 && m->max_messages < 0 && m->has_tools == SY_TRI_ANY &&
           m->has_images == SY_TRI_ANY && m->json_mode == SY_TRI_ANY && m->stream == SY_TRI_ANY &&
           m->n_keywords == 0 && m->n_regex == 0;
}

/* ---- canonical JSON -------------------------------------------------------------------- */

/* cJSON's Add* functions return NULL on allocation failure and accept a NULL parent, so a
 * build can run to the end and be checked once through <ok>. */
static void put_str(bool *ok, cJSON *obj, const char *key, const char *v)
{
    if (!cJSON_AddStringToObject(obj, key, v))
        *ok = false;
}

static void put_num(bool *ok, cJSON *obj, const char *key, double v)
{
    if (!cJSON_AddNumberToObject(obj, key, v))
        *ok = false;
}

static void put_bool(bool *ok, cJSON *obj, const char *key, bool v)
{
    if (!cJSON_AddBoolToObject(obj, key, v))
        *ok = false;
}

/* Writes <v> unless it is -1 (unset). */
static void put_opt_int(bool *ok, cJSON *obj, const char *key, int64_t v)
{
    if (v >= 0)
        put_num(ok, obj, key, (double)v);
}

/* Writes a trait unless it is "either way". */
static void put_tri(bool *ok, cJSON *obj, const char *key, enum sy_tristate v)
{
    if (v != SY_TRI_ANY)
        put_bool(ok, obj, key, v == SY_TRI_YES);
}

static void put_str_list(bool *ok, cJSON *obj, const char *key, char *const *v, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    size_t i;

    if (!arr)
        *ok = false;
    for (i = 0; i < n && arr; i++)
        if (!cJSON_AddItemToArray(arr, cJSON_CreateString(v[i])))
            *ok = false;
}

static const char *text_source_name(unsigned bits)
{
    size_t i;

    for (i = 0; i < SY_ARRAY_LEN(text_sources); i++)
        if (text_sources[i].bits == bits)
            return text_sources[i].name;
    return "unknown";
}

static cJSON *put_obj(bool *ok, cJSON *obj, const char *key)
{
    cJSON *o = cJSON_AddObjectToObject(obj, key);

    if (!o)
        *ok = false;
    return o;
}

static cJSON *push_obj(bool *ok, cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || !arr || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        *ok = false;
        return NULL;
    }
    return o;
}

static void providers_to_json(bool *ok, const struct sy_policy *pol, cJSON *root)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "providers");
    size_t i, j;

    for (i = 0; i < pol->n_providers; i++) {
        const struct sy_provider *p = &pol->providers[i];
        cJSON *o = push_obj(ok, arr), *h;

        put_str(ok, o, "name", p->name);
        put_str(ok, o, "kind", sy_provider_kind_name(p->kind));
        put_str(ok, o, "base_url", p->base_url);
        if (p->api_key_env)
            put_str(ok, o, "api_key_env", p->api_key_env);
        if (p->api_version)
            put_str(ok, o, "api_version", p->api_version);
        h = put_obj(ok, o, "headers");
        for (j = 0; j < p->n_headers; j++)
            put_str(ok, h, p->headers[j].name, p->headers[j].value);
        put_num(ok, o, "connect_timeout_ms", p->connect_timeout_ms);
        put_num(ok, o, "timeout_ms", p->timeout_ms);
        if (p->region)
            put_str(ok, o, "region", p->region);
        put_str_list(ok, o, "compliance", p->compliance, p->n_compliance);
    }
    if (!arr)
        *ok = false;
}

static void models_to_json(bool *ok, const struct sy_policy *pol, cJSON *root)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "models");
    size_t i;

    for (i = 0; i < pol->n_models; i++) {
        const struct sy_model *m = &pol->models[i];
        cJSON *o = push_obj(ok, arr), *pr;
        struct sy_prices prices;

        put_str(ok, o, "name", m->name);
        put_str(ok, o, "provider", pol->providers[m->provider].name);
        put_str(ok, o, "upstream_model", m->upstream_model);
        pr = put_obj(ok, o, "pricing");
        prices = sy_model_prices(m);
        if (!pr || sy_prices_to_json(&prices, pr) < 0)
            *ok = false;
    }
    if (!arr)
        *ok = false;
}

/* Keywords and regex rules are always printed as lists, the general form. */
static void match_to_json(bool *ok, const struct sy_match *m, cJSON *match)
{
    cJSON *arr;
    size_t i;

    if (m->model)
        put_str(ok, match, "model", m->model);
    put_str_list(ok, match, "tags", m->tags, m->n_tags);
    put_opt_int(ok, match, "min_prompt_tokens", m->min_prompt_tokens);
    put_opt_int(ok, match, "max_prompt_tokens", m->max_prompt_tokens);
    put_opt_int(ok, match, "min_messages", m->min_messages);
    put_opt_int(ok, match, "max_messages", m->max_messages);
    put_tri(ok, match, "has_tools", m->has_tools);
    put_tri(ok, match, "has_images", m->has_images);
    put_tri(ok, match, "json_mode", m->json_mode);
    put_tri(ok, match, "stream", m->stream);
    arr = cJSON_AddArrayToObject(match, "keywords");
    if (!arr)
        *ok = false;
    for (i = 0; i < m->n_keywords; i++) {
        cJSON *k = push_obj(ok, arr);

        put_str_list(ok, k, "any", m->keywords[i].words, m->keywords[i].n_words);
        put_str(ok, k, "in", text_source_name(m->keywords[i].in));
    }
    arr = cJSON_AddArrayToObject(match, "regex");
    if (!arr)
        *ok = false;
    for (i = 0; i < m->n_regex; i++) {
        cJSON *x = push_obj(ok, arr);

        put_str(ok, x, "pattern", m->regex[i].pattern);
        put_str(ok, x, "in", text_source_name(m->regex[i].in));
        put_bool(ok, x, "case_sensitive", m->regex[i].case_sensitive);
    }
}

static void learn_to_json(bool *ok, const struct sy_learn *l, cJSON *o);

static void route_to_json(bool *ok, const struct sy_policy *pol, const struct sy_route *r, cJSON *o)
{
    cJSON *targets, *fallback, *t;
    size_t j;

    put_str(ok, o, "name", r->name);
    match_to_json(ok, &r->match, put_obj(ok, o, "match"));
    put_str(ok, o, "strategy", sy_strategy_name(r->strategy));
    targets = cJSON_AddArrayToObject(o, "targets");
    if (!targets)
        *ok = false;
    for (j = 0; j < r->n_targets; j++) {
        t = push_obj(ok, targets);
        put_str(ok, t, "model", pol->models[r->targets[j].model].name);
        put_num(ok, t, "weight", r->targets[j].weight);
    }
    fallback = cJSON_AddArrayToObject(o, "fallback");
    if (!fallback)
        *ok = false;
    for (j = 0; j < r->n_fallback && fallback; j++)
        if (!cJSON_AddItemToArray(fallback, cJSON_CreateString(pol->models[r->fallback[j]].name)))
            *ok = false;
    t = put_obj(ok, o, "timeouts"); /* only those set: unset ones have no value of their own */
    if (r->attempt_timeout_ms)
        put_num(ok, t, "attempt_ms", r->attempt_timeout_ms);
    if (r->first_token_timeout_ms)
        put_num(ok, t, "first_token_ms", r->first_token_timeout_ms);
    if (r->total_timeout_ms)
        put_num(ok, t, "total_ms", r->total_timeout_ms);
    t = put_obj(ok, o, "retries");
    put_num(ok, t, "max", r->retries_max);
    put_num(ok, t, "backoff_ms", r->retry_backoff_ms);
    put_num(ok, t, "max_backoff_ms", r->retry_max_backoff_ms);
    put_num(ok, o, "hedge_after_ms", r->hedge_after_ms);
    if (r->strategy == SY_STRATEGY_LEARNED)
        learn_to_json(ok, &r->learn, put_obj(ok, o, "learn"));
}

static void learn_to_json(bool *ok, const struct sy_learn *l, cJSON *o)
{
    cJSON *obj = put_obj(ok, o, "objective");

    put_num(ok, obj, "quality", l->w_quality);
    put_num(ok, obj, "cost", l->w_cost);
    put_num(ok, obj, "latency", l->w_latency);
    put_num(ok, o, "update_period_s", l->update_period_s);
    put_num(ok, o, "exploration", l->exploration);
    put_num(ok, o, "max_step", l->max_step);
    put_num(ok, o, "min_samples", l->min_samples);
    put_num(ok, o, "threshold", l->threshold);
    put_num(ok, o, "discount", l->discount);
}

/* Only when there are experiments, so policies without them keep their canonical text. */
static void experiments_to_json(bool *ok, const struct sy_policy *pol, cJSON *root)
{
    cJSON *arr;

    if (pol->n_experiments == 0)
        return;
    arr = cJSON_AddArrayToObject(root, "experiments");
    if (!arr)
        *ok = false;
    for (size_t i = 0; i < pol->n_experiments; i++) {
        const struct sy_experiment *x = &pol->experiments[i];
        cJSON *o = push_obj(ok, arr), *st, *arms;

        put_str(ok, o, "name", x->name);
        put_str(ok, o, "route", pol->routes[x->route].name);
        put_str(ok, o, "metric", metric_names[x->metric]);
        st = put_obj(ok, o, "sticky");
        put_str(ok, st, "by", sticky_names[x->sticky]);
        if (x->sticky == SY_STICKY_HEADER)
            put_str(ok, st, "header", x->sticky_header);
        put_num(ok, o, "min_samples", x->min_samples);
        st = put_obj(ok, o, "stop");
        put_str(ok, st, "rule", stop_names[x->stop_rule]);
        if (x->stop_rule != SY_STOP_NONE)
            put_num(ok, st, "threshold", x->stop_threshold);
        put_bool(ok, st, "auto_promote", x->auto_promote);
        arms = cJSON_AddArrayToObject(o, "arms");
        if (!arms)
            *ok = false;
        for (size_t a = 0; a < x->n_arms; a++) {
            const struct sy_arm *arm = &x->arms[a];
            cJSON *ao = push_obj(ok, arms), *ts = cJSON_AddArrayToObject(ao, "targets");

            put_str(ok, ao, "name", arm->name);
            if (!ts)
                *ok = false;
            for (size_t t = 0; t < arm->n_targets; t++) {
                cJSON *to = push_obj(ok, ts);
                put_str(ok, to, "model", pol->models[arm->targets[t].model].name);
                put_num(ok, to, "weight", arm->targets[t].weight);
            }
            put_num(ok, ao, "share", arm->share);
        }
    }
}

static void routes_to_json(bool *ok, const struct sy_policy *pol, cJSON *root)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "routes");
    size_t i;

    for (i = 0; i < pol->n_routes; i++)
        route_to_json(ok, pol, &pol->routes[i], push_obj(ok, arr));
    if (!arr)
        *ok = false;
}

static void tenants_to_json(bool *ok, const struct sy_policy *pol, cJSON *root)
{
    static const char hex[] = "0123456789abcdef";
    cJSON *arr = cJSON_AddArrayToObject(root, "tenants"), *keys, *labels;
    char digest[2 * SY_SHA256_LEN + 1];
    size_t i, j, b;

    for (i = 0; i < pol->n_tenants; i++) {
        const struct sy_tenant *t = &pol->tenants[i];
        cJSON *o = push_obj(ok, arr);

        put_str(ok, o, "name", t->name);
        keys = cJSON_AddArrayToObject(o, "api_keys_sha256");
        if (!keys)
            *ok = false;
        for (j = 0; j < t->n_keys && keys; j++) {
            const uint8_t *d = pol->tenant_keys[t->first_key + j].sha256;

            for (b = 0; b < SY_SHA256_LEN; b++) {
                digest[2 * b] = hex[d[b] >> 4];
                digest[2 * b + 1] = hex[d[b] & 15];
            }
            digest[2 * SY_SHA256_LEN] = '\0';
            if (!cJSON_AddItemToArray(keys, cJSON_CreateString(digest)))
                *ok = false;
        }
        labels = put_obj(ok, o, "labels");
        for (j = 0; j < t->n_labels; j++)
            put_str(ok, labels, t->labels[j].key, t->labels[j].value);
        /* Only when set, so policies without budgets keep their canonical text (and hash). */
        if (t->budget_daily_usd > 0 || t->budget_monthly_usd > 0) {
            cJSON *budget = put_obj(ok, o, "budget");

            if (t->budget_daily_usd > 0)
                put_num(ok, budget, "daily_usd", t->budget_daily_usd);
            if (t->budget_monthly_usd > 0)
                put_num(ok, budget, "monthly_usd", t->budget_monthly_usd);
        }
    }
    if (!arr)
        *ok = false;
}

static void resilience_to_json(bool *ok, const struct sy_resilience *r, cJSON *root)
{
    cJSON *o = put_obj(ok, root, "resilience"), *b;

    b = put_obj(ok, o, "breaker");
    put_num(ok, b, "failures", r->breaker_failures);
    put_num(ok, b, "error_rate", r->breaker_error_rate);
    put_num(ok, b, "min_requests", r->breaker_min_requests);
    put_num(ok, b, "window_ms", r->breaker_window_ms);
    put_num(ok, b, "open_ms", r->breaker_open_ms);
    b = put_obj(ok, o, "retry_budget");
    put_num(ok, b, "ratio", r->retry_budget_ratio);
    put_num(ok, b, "min_per_second", r->retry_budget_min_per_s);
    put_num(ok, o, "max_retry_after_ms", r->max_retry_after_ms);
}

/* Rewrites cJSON_Print's tab layout with two-space indents and ": " (friendlier in a diff
 * and a terminal). Raw tabs occur only as layout: tabs inside strings are escaped. Takes
 * <text>; returns the new string, or NULL. */
static char *untabify(char *text)
{
    size_t n = 0, tabs = 0, i;
    char *out;

    for (i = 0; text[i]; i++)
        tabs += text[i] == '\t';
    out = malloc(i + tabs + 1);
    if (out) {
        for (i = 0; text[i]; i++) {
            if (text[i] != '\t') {
                out[n++] = text[i];
            } else if (i > 0 && text[i - 1] == ':') {
                out[n++] = ' ';
            } else {
                out[n++] = ' ';
                out[n++] = ' ';
            }
        }
        out[n] = '\0';
    }
    free(text);
    return out;
}

char *sy_policy_to_json(const struct sy_policy *pol)
{
    cJSON *root, *server;
    char *text = NULL;
    bool ok = true;

    if (!pol)
        return NULL;
    root = cJSON_CreateObject();
    if (!root)
        return NULL;
    providers_to_json(&ok, pol, root);
    models_to_json(&ok, pol, root);
    routes_to_json(&ok, pol, root);
    if (pol->default_route != SIZE_MAX)
        put_str(&ok, root, "default_route", pol->routes[pol->default_route].name);
    resilience_to_json(&ok, &pol->resilience, root);
    server = put_obj(&ok, root, "server");
    put_num(&ok, server, "max_body_bytes", (double)pol->server.max_body_bytes);
    put_num(&ok, server, "header_timeout_ms", pol->server.header_timeout_ms);
    put_num(&ok, server, "body_timeout_ms", pol->server.body_timeout_ms);
    put_num(&ok, server, "idle_timeout_ms", pol->server.idle_timeout_ms);
    put_num(&ok, server, "max_connections", pol->server.max_connections);
    tenants_to_json(&ok, pol, root);
    put_str(&ok, put_obj(&ok, root, "auth"), "mode", sy_auth_mode_name(pol->auth_mode));
    experiments_to_json(&ok, pol, root);
    if (ok)
        text = cJSON_Print(root);
    cJSON_Delete(root);
    return text ? untabify(text) : NULL;
}

/* ---- prices: public API ---------------------------------------------------------------- */

struct sy_prices sy_model_prices(const struct sy_model *m)
{
    return (struct sy_prices){
        .input_per_mtok = m->input_per_mtok,
        .output_per_mtok = m->output_per_mtok,
        .cached_input_per_mtok = m->cached_input_per_mtok,
        .windows = m->windows,
        .n_windows = m->n_windows,
    };
}

void sy_prices_at(const struct sy_prices *p, int64_t unix_s, double *in, double *out,
                  double *cached)
{
    int64_t sec = unix_s % 86400;
    unsigned min;
    double i = p->input_per_mtok, o = p->output_per_mtok, c = p->cached_input_per_mtok;

    if (sec < 0) /* before 1970: % keeps the sign */
        sec += 86400;
    min = (unsigned)(sec / 60);
    for (size_t k = 0; k < p->n_windows; k++) {
        if (window_has(&p->windows[k], min)) {
            i = p->windows[k].input_per_mtok;
            o = p->windows[k].output_per_mtok;
            c = p->windows[k].cached_input_per_mtok;
            break;
        }
    }
    *in = i;
    *out = o;
    *cached = c > 0 ? c : i;
}

void sy_model_prices_at(const struct sy_model *m, int64_t unix_s, double *in, double *out,
                        double *cached)
{
    struct sy_prices p = sy_model_prices(m);

    sy_prices_at(&p, unix_s, in, out, cached);
}

int sy_prices_compile(const struct cJSON *obj, const char *path, const char *const *extra_keys,
                      struct sy_prices *out, char **errmsg)
{
    struct compiler c = {0};

    if (errmsg)
        *errmsg = NULL;
    if (!cJSON_IsObject(obj)) {
        memset(out, 0, sizeof(*out));
        errf(&c, path, NULL, "expected a mapping, got %s", sy_json_kind(obj));
    } else {
        compile_prices(&c, obj, path, extra_keys, out);
    }
    if (c.n_errs == 0)
        return 0;
    if (c.n_errs > MAX_ERRORS) {
        char *more = sy_xasprintf("%s\n... and %u more errors", c.errs, c.n_errs - MAX_ERRORS);

        free(c.errs);
        c.errs = more;
    }
    set_err(errmsg, c.errs);
    sy_prices_cleanup(out);
    return -EINVAL;
}

void sy_prices_cleanup(struct sy_prices *p)
{
    if (!p)
        return;
    free(p->windows);
    memset(p, 0, sizeof(*p));
}

int sy_prices_to_json(const struct sy_prices *p, cJSON *obj)
{
    char hhmm[6];
    bool ok = true;
    cJSON *arr;

    put_num(&ok, obj, "input_per_mtok", p->input_per_mtok);
    put_num(&ok, obj, "output_per_mtok", p->output_per_mtok);
    put_num(&ok, obj, "cached_input_per_mtok", p->cached_input_per_mtok);
    /* Only when there are any, so policies without windows keep their canonical text. */
    if (p->n_windows) {
        arr = cJSON_AddArrayToObject(obj, "windows");
        if (!arr)
            ok = false;
        for (size_t i = 0; i < p->n_windows && arr; i++) {
            const struct sy_price_window *w = &p->windows[i];
            cJSON *o = push_obj(&ok, arr);

            put_str(&ok, o, "start", sy_hhmm(w->start_min, hhmm));
            put_str(&ok, o, "end", sy_hhmm(w->end_min, hhmm));
            put_num(&ok, o, "input_per_mtok", w->input_per_mtok);
            put_num(&ok, o, "output_per_mtok", w->output_per_mtok);
            put_num(&ok, o, "cached_input_per_mtok", w->cached_input_per_mtok);
        }
    }
    return ok ? 0 : -ENOMEM;
}
