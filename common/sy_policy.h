/* common/sy_policy.h - the policy model and its compiler (YAML or JSON -> struct sy_policy).
 *
 * One compiler for every binary: the proxy compiles its --policy file with it, and the
 * control plane (later) compiles pushed policies with it, so a policy that works from a
 * file works pushed. A compiled policy is immutable and reference-counted: it is built by
 * one thread, then shared read-only by any number of threads; the last sy_policy_unref()
 * frees it. Names are looked up through hash tables built at compile time.
 *
 * What the compiler does NOT do: read environment variables (api_key_env is resolved by
 * the data plane when it applies a policy, so one node can refuse a policy another accepts).
 */
#ifndef SY_POLICY_H
#define SY_POLICY_H

#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* Largest policy source the compiler accepts (bytes). */
#define SY_POLICY_MAX_BYTES (16u * 1024 * 1024)

enum sy_provider_kind {
    SY_PROVIDER_OPENAI = 0, /* OpenAI and every OpenAI-compatible API */
    SY_PROVIDER_AZURE,      /* Azure OpenAI: deployment URLs, api-version, api-key header */
    SY_PROVIDER_ANTHROPIC,  /* Anthropic Messages API */
    SY_PROVIDER_GEMINI,     /* Google Gemini generateContent */
};

struct sy_header {
    char *name;
    char *value;
};

struct sy_provider {
    char *name;
    enum sy_provider_kind kind;
    char *base_url;            /* API root without trailing '/', e.g. "http://127.0.0.1:18080/v1" */
    char *api_key_env;         /* name of the environment variable holding the key, or NULL */
    char *api_version;         /* azure: the api-version query value; anthropic: the
                                  anthropic-version header; NULL = the adapter's default */
    struct sy_header *headers; /* extra request headers sent upstream */
    size_t n_headers;
    uint32_t connect_timeout_ms; /* default 5000 */
    uint32_t timeout_ms;         /* whole attempt; default 120000 */
    char *region;                /* e.g. "eu"; NULL = none (key "region") */
    char **compliance;           /* e.g. {"hipaa","soc2"} (key "compliance", a list) */
    size_t n_compliance;
};

/* Most time-of-day price windows per model (and per pricing catalogue entry). */
#define SY_MAX_PRICE_WINDOWS 24
#define SY_MINUTES_PER_DAY 1440

/* models[].pricing.windows[]: prices that hold from <start_min> (inclusive) to <end_min>
 * (exclusive), in minutes after 00:00 UTC. A window with end_min < start_min wraps midnight
 * (22:00-06:00); end_min == start_min never compiles. The prices are resolved at compile time:
 * a price the window leaves out is the model's base price. */
struct sy_price_window {
    uint16_t start_min; /* 0 .. 1439 */
    uint16_t end_min;   /* 0 .. 1439; "24:00" is stored as 0 */
    double input_per_mtok;
    double output_per_mtok;
    double cached_input_per_mtok; /* 0 = the window's input price (as for the base price) */
};

/* A price list: what models[].pricing holds, and what a pricing catalogue entry
 * (common/sy_pricing.h) holds. Windows never overlap. */
struct sy_prices {
    double input_per_mtok;
    double output_per_mtok;
    double cached_input_per_mtok;
    struct sy_price_window *windows;
    size_t n_windows;
};

struct sy_model {
    char *name;                      /* the name clients use */
    size_t provider;                 /* index into policy->providers */
    char *upstream_model;            /* the name sent to the provider; defaults to name */
    double input_per_mtok;           /* USD per million prompt tokens */
    double output_per_mtok;          /* USD per million completion tokens */
    double cached_input_per_mtok;    /* USD per million cached prompt tokens; 0 = input price */
    struct sy_price_window *windows; /* time-of-day prices (pricing.windows), source order */
    size_t n_windows;
};

struct sy_target {
    size_t model; /* index into policy->models */
    uint32_t weight;
};

/* Route strategies (key "strategy"; default weighted). docs/policy.md, routing. */
enum sy_strategy {
    SY_STRATEGY_WEIGHTED = 0,   /* random split by weight: A/B tests */
    SY_STRATEGY_PRIORITY,       /* targets in the order written; the next when one is unhealthy */
    SY_STRATEGY_LOWEST_COST,    /* price x estimated tokens, from the models' pricing */
    SY_STRATEGY_LOWEST_LATENCY, /* EWMA latency (TTFT for streams), power of two choices */
    SY_STRATEGY_LEAST_BUSY,     /* fewest requests in flight */
    SY_STRATEGY_CACHE_AFFINITY, /* sticky by a hash of the system prompt / conversation prefix */
    SY_STRATEGY_LEARNED,        /* weighted, with weights the control plane learns from feedback */
};

/* routes[].learn: the learner's knobs for a route with strategy learned (docs/learning.md).
 * The proxies only read the weights; the control plane reads the rest. */
struct sy_learn {
    double w_quality, w_cost, w_latency; /* objective: default 1, 0, 0 */
    uint32_t update_period_s;            /* default 60; 1 .. 86400 */
    double exploration;                  /* floor per target; default 0.05 */
    double max_step;                     /* share moved per update at most; default 0.2 */
    uint32_t min_samples;                /* feedback per target before it moves; default 20 */
    double threshold;                    /* publish when a share moves more; default 0.02 */
    double discount;                     /* old evidence kept per update; default 0.98 */
};

/* Which text a keyword or regex rule reads (key "in"): a bit set. */
#define SY_TEXT_LAST_USER 1u /* "last_user" (default) */
#define SY_TEXT_SYSTEM 2u    /* "system"; "any" = both */

/* For boolean traits: unset, must be true, must be false. */
enum sy_tristate {
    SY_TRI_ANY = 0,
    SY_TRI_YES,
    SY_TRI_NO,
};

/* keywords: {any: [words...], in: last_user|system|any} - holds when any word occurs,
 * case-insensitively, as a substring of the chosen text. Words are stored lowercased. */
struct sy_keyword_rule {
    char **words;
    size_t n_words;
    unsigned in;
};

/* regex: {pattern: "...", in: ..., case_sensitive: false} - POSIX extended; compiled once
 * per policy (REG_EXTENDED|REG_NOSUB, REG_ICASE unless case_sensitive). */
struct sy_regex_rule {
    char *pattern;
    regex_t re;
    unsigned in;
    bool case_sensitive;
};

/* routes[].match: every condition present must hold; absent ones hold trivially. */
struct sy_match {
    char *model; /* exact name, or a glob with * ? [..] (fnmatch); NULL = any model */
    bool model_glob;
    char **tags; /* all must be present (x-switchyard-tags header, metadata keys) */
    size_t n_tags;
    int64_t min_prompt_tokens, max_prompt_tokens; /* estimated; -1 = unset */
    int64_t min_messages, max_messages;           /* -1 = unset */
    enum sy_tristate has_tools, has_images, json_mode, stream;
    struct sy_keyword_rule *keywords; /* all rules must hold (each: any of its words) */
    size_t n_keywords;
    struct sy_regex_rule *regex; /* all must match */
    size_t n_regex;
};

struct sy_route {
    char *name;
    char *match_model; /* == match.model when it is an exact name (not a glob), else NULL */
    struct sy_match match;
    enum sy_strategy strategy;
    struct sy_target *targets;
    size_t n_targets;
    uint32_t total_weight; /* sum of target weights (> 0 for weighted) */
    size_t *fallback;      /* model indexes tried in order after the targets ("fallback") */
    size_t n_fallback;
    /* "timeouts": 0 = unset. attempt_ms defaults to the provider's timeout_ms. */
    uint32_t attempt_timeout_ms, first_token_timeout_ms, total_timeout_ms;
    /* "retries": {max, backoff_ms, max_backoff_ms}: retries of the same target on retryable
     * failures (429, 5xx, connect errors, timeouts); default max 0, backoff 100, max 2000. */
    uint32_t retries_max, retry_backoff_ms, retry_max_backoff_ms;
    uint32_t hedge_after_ms; /* "hedge_after_ms": 0 = no hedging */
    struct sy_learn learn;   /* strategy learned only */
    size_t experiment;       /* index into policy->experiments, SIZE_MAX = none */
};

/* experiments[].metric: what decides the winner. */
enum sy_metric {
    SY_METRIC_THUMBS_UP = 0, /* "thumbs_up": rate of thumbs up among thumbs (and score >= 0.5) */
    SY_METRIC_SCORE,         /* "score": mean score in [0, 1] (thumbs count as 1 and 0) */
    SY_METRIC_LATENCY,       /* "latency": lower p50 wins */
    SY_METRIC_COST,          /* "cost": lower cost per request wins */
};

/* experiments[].sticky.by: which request trait keeps a user on one arm. */
enum sy_sticky {
    SY_STICKY_USER = 0, /* the body's "user"; falls back to the tenant, then to the request */
    SY_STICKY_HEADER,   /* the header named by sticky.header (e.g. x-session-id) */
    SY_STICKY_TENANT,   /* the tenant (all of a tenant's traffic on one arm) */
    SY_STICKY_REQUEST,  /* none: each request draws */
};

/* experiments[].stop.rule: when the experiment has an answer. */
enum sy_stop_rule {
    SY_STOP_PROB_BEST = 0, /* an arm's probability to be best >= threshold (default 0.95) */
    SY_STOP_SIGNIFICANCE,  /* two-proportion test p-value <= threshold (default 0.05) */
    SY_STOP_NONE,          /* runs until promoted */
};

struct sy_arm {
    char *name;
    struct sy_target *targets; /* "model: m" is one target of weight 1 */
    size_t n_targets;
    uint32_t total_weight;
    uint32_t share; /* of the experiment's traffic; > 0 */
};

struct sy_experiment {
    char *name;
    size_t route; /* index into policy->routes */
    enum sy_metric metric;
    enum sy_sticky sticky;
    char *sticky_header;  /* lowercased; SY_STICKY_HEADER only */
    uint32_t min_samples; /* feedback (or requests, for latency/cost) per arm; default 100 */
    enum sy_stop_rule stop_rule;
    double stop_threshold;
    bool auto_promote; /* stop.auto_promote: the control plane promotes the winner itself */
    struct sy_arm *arms;
    size_t n_arms;
    uint32_t total_share;
};

/* Top-level "resilience": breaker and retry budget, shared by all routes. */
struct sy_resilience {
    uint32_t breaker_failures;       /* consecutive failures that open; default 5 */
    double breaker_error_rate;       /* error rate over the window that opens; default 0.5 */
    uint32_t breaker_min_requests;   /* requests in the window before the rate counts; 20 */
    uint32_t breaker_window_ms;      /* default 30000 */
    uint32_t breaker_open_ms;        /* open before a half-open probe; default 5000 */
    double retry_budget_ratio;       /* retries allowed per request; default 0.2 */
    uint32_t retry_budget_min_per_s; /* retries always allowed per second; default 10 */
    uint32_t max_retry_after_ms;     /* Retry-After honoured up to this; default 30000 */
};

/* Limits of the proxy's HTTP server (policy key "server"). */
struct sy_server_limits {
    size_t max_body_bytes;      /* default 4 MiB */
    uint32_t header_timeout_ms; /* default 10000 */
    uint32_t body_timeout_ms;   /* default 30000 */
    uint32_t idle_timeout_ms;   /* keep-alive idle; default 75000 */
    uint32_t max_connections;   /* per process; default 10000 */
};

/* Open access or gateway keys (key "auth.mode"). docs/policy.md, tenants. */
enum sy_auth_mode {
    SY_AUTH_OPEN = 0, /* no key needed; a known key still names its tenant */
    SY_AUTH_KEYS,     /* every /v1/ request needs the key of a tenant */
};

#define SY_SHA256_LEN 32 /* bytes of a SHA-256 digest */

/* tenants[].labels: cost-attribution dimensions (team, feature), in source order. */
struct sy_label {
    char *key;
    char *value;
};

/* tenants[]: who may call the gateway. Its keys are known only by their SHA-256 digests
 * (policy->tenant_keys[first_key .. first_key + n_keys)); plaintext keys never reach a
 * policy. */
struct sy_tenant {
    char *name;
    struct sy_label *labels;
    size_t n_labels;
    size_t first_key, n_keys;
    /* tenants[].budget: USD per UTC day and per UTC month; 0 = unset. Informational: shown
     * next to spend, never enforced by the proxy. */
    double budget_daily_usd;
    double budget_monthly_usd;
};

struct sy_tenant_key {
    uint8_t sha256[SY_SHA256_LEN];
    size_t tenant; /* index into policy->tenants */
};

/* Hash table from name to index; built by the compiler, read-only afterwards. */
struct sy_name_index {
    uint32_t *slots; /* index + 1; 0 = empty */
    size_t mask;     /* capacity - 1 (capacity is a power of two) */
};

struct sy_policy {
    atomic_int refcount;
    int64_t version; /* 0 until the owner assigns one (file load counter, control plane) */
    char hash[17];   /* first 16 hex chars of SHA-256 of the source text */

    struct sy_provider *providers;
    size_t n_providers;
    struct sy_model *models;
    size_t n_models;
    struct sy_route *routes;
    size_t n_routes;
    size_t default_route; /* index into routes ("default_route: NAME"), SIZE_MAX = none */
    struct sy_server_limits server;
    struct sy_resilience resilience;
    struct sy_tenant *tenants;
    size_t n_tenants;
    struct sy_tenant_key *tenant_keys; /* every tenant's key digests, tenant after tenant */
    size_t n_tenant_keys;
    enum sy_auth_mode auth_mode; /* default: keys when there are tenants, else open */

    struct sy_name_index provider_index;
    struct sy_name_index model_index;
    struct sy_name_index route_index;  /* keyed by match_model */
    struct sy_name_index tenant_index; /* keyed by tenant name */
    struct sy_name_index key_index;    /* into tenant_keys, keyed by the digest itself */
    struct sy_experiment *experiments;
    size_t n_experiments;
};

/* Compiles <src> (<len> bytes, YAML or JSON; JSON is YAML's subset and is detected by a
 * leading '{') into a new policy with refcount 1. On error returns NULL and sets *errmsg to a
 * heap string (caller frees) listing every problem found, one per line, each prefixed with
 * the path of the bad field, e.g. `routes[2].targets[0].model: unknown model "gpt5"`.
 * Thread: any; no shared state. */
struct sy_policy *sy_policy_compile(const char *src, size_t len, char **errmsg);

/* Reads the file at <path> and compiles it (see sy_policy_compile). I/O errors are reported
 * through *errmsg too. */
struct sy_policy *sy_policy_load_file(const char *path, char **errmsg);

/* Compiles a policy that is already a cJSON tree (e.g. from a JSON API body); same checks
 * and errors as sy_policy_compile. The hash is taken over the tree printed unformatted, so
 * it differs from the hash of the source text the tree came from. <root> is borrowed. */
struct sy_policy *sy_policy_compile_json(const struct cJSON *root, char **errmsg);

/* Returns the compiled policy as canonical JSON (caller frees): every key present with its
 * default applied, keys in a fixed order, lists in source order, references by name; it is
 * itself a valid policy that compiles to the same result. Leaves out version and hash. Two
 * sources that differ only in formatting, comments, key order or spelled-out defaults give
 * the same string, so it is what to show and diff. NULL when out of memory. Any thread. */
char *sy_policy_to_json(const struct sy_policy *pol);

/* The prices of <m> at <unix_s> (seconds since the epoch; the minute of the UTC day picks
 * the window, if any, else the base prices), in USD per million tokens. *cached is the
 * cached-input price with its default applied: the input price when it is 0. Any thread. */
void sy_model_prices_at(const struct sy_model *m, int64_t unix_s, double *in, double *out,
                        double *cached);

/* The same for a price list. */
void sy_prices_at(const struct sy_prices *p, int64_t unix_s, double *in, double *out,
                  double *cached);

/* Compiles the pricing mapping <obj> (keys input_per_mtok, output_per_mtok,
 * cached_input_per_mtok, windows; each optional) into <out> (zeroed first; its windows are
 * the caller's to release with sy_prices_cleanup). Keys listed in the NULL-terminated
 * <extra_keys> (may be NULL) are allowed and left to the caller. Returns 0, or -EINVAL with
 * *errmsg set (caller frees) to every problem, one per line, each prefixed with <path>, the
 * field's location, e.g. "models[0].windows[1].end". Checked exactly as models[].pricing in a
 * policy. Any thread. */
int sy_prices_compile(const struct cJSON *obj, const char *path, const char *const *extra_keys,
                      struct sy_prices *out, char **errmsg);

/* Releases the windows of <p> and zeroes it. Accepts NULL. */
void sy_prices_cleanup(struct sy_prices *p);

/* Writes <p> into the object <obj> in canonical form: the three prices, then "windows" (only
 * when there are any) with every price resolved. Returns 0 or -ENOMEM. */
int sy_prices_to_json(const struct sy_prices *p, struct cJSON *obj);

/* The prices of <m> as a price list that borrows <m>'s windows. */
struct sy_prices sy_model_prices(const struct sy_model *m);

/* Writes minute-of-day <min> as "HH:MM" into <buf> (6 bytes). Returns <buf>. */
const char *sy_hhmm(unsigned min, char buf[6]);

/* Returns the policy spelling of <kind> ("openai"), or "unknown". */
const char *sy_provider_kind_name(enum sy_provider_kind kind);

/* Returns the policy spelling of <s> ("lowest_cost"), or "unknown". */
const char *sy_strategy_name(enum sy_strategy s);

/* Returns the policy spelling of <mode> ("keys"), or "unknown". */
const char *sy_auth_mode_name(enum sy_auth_mode mode);

/* True when <m> has no condition at all, so it matches every request (the compiler refuses
 * such a route as default_route: it would take every request before the default applies). */
bool sy_match_is_empty(const struct sy_match *m);

/* Takes one more reference. Any thread. Returns <pol>. */
struct sy_policy *sy_policy_ref(struct sy_policy *pol);
/* Drops one reference; the last one frees the policy. Accepts NULL. Any thread. */
void sy_policy_unref(struct sy_policy *pol);

/* Lookups by exact name; NULL when absent. */
const struct sy_provider *sy_policy_find_provider(const struct sy_policy *pol, const char *name);
const struct sy_model *sy_policy_find_model(const struct sy_policy *pol, const char *name);
/* The route whose match.model equals <requested_model>, or NULL. */
const struct sy_route *sy_policy_find_route(const struct sy_policy *pol,
                                            const char *requested_model);
const struct sy_tenant *sy_policy_find_tenant(const struct sy_policy *pol, const char *name);

/* The tenant one of whose keys has the SHA-256 digest <sha256>, or NULL. The digests are
 * compared in constant time (CRYPTO_memcmp); the probe sequence depends only on the digest
 * of the presented key, which tells a caller nothing about the stored ones. Any thread. */
const struct sy_tenant *sy_policy_find_tenant_by_key(const struct sy_policy *pol,
                                                     const uint8_t sha256[SY_SHA256_LEN]);

#endif
