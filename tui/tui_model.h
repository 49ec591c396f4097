/* tui/tui_model.h - what the dashboard knows: the admin API's replies as plain structs.
 *
 * One struct per endpoint (tui_parse.c fills them from JSON), and struct tui_model that
 * holds the latest good reply of each source with the state of its last fetch. A failed
 * fetch keeps the last good data (the screen shows it as stale) and records why; a 404 on
 * an optional endpoint (/v1/experiments) marks it absent rather than failed.
 *
 * Conventions: strings are cleaned UTF-8 (tui_text_clean) owned by their struct, or NULL
 * when the server sent none; numbers the server may send as null are NAN (doubles) or 0
 * (versions, which start at 1, and Unix-ms timestamps). The model is owned by the UI
 * thread; nothing else touches it.
 */
#ifndef TUI_MODEL_H
#define TUI_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each admin API document the dashboard reads. */
enum tui_src {
    TUI_SRC_STATS = 0,   /* GET /v1/stats?window=W */
    TUI_SRC_FLEET,       /* GET /v1/fleet */
    TUI_SRC_POLICIES,    /* GET /v1/policies */
    TUI_SRC_SPEND_DAY,   /* GET /v1/spend?period=day */
    TUI_SRC_SPEND_MONTH, /* GET /v1/spend?period=month */
    TUI_SRC_EXPERIMENTS, /* GET /v1/experiments (optional: 404 = none reported) */
    TUI_SRC_COUNT
};

#define TUI_SRC_BIT(s) (1u << (s))

/* How many RPS samples the overview's sparkline keeps. */
#define TUI_HISTORY 60

struct tui_quantiles {
    double p50, p95, p99; /* ms; NAN when the window holds no sample */
};

/* One row of /v1/stats: the totals, or one provider, model, route or tenant. */
struct tui_traffic {
    char *provider; /* providers[] and models[] rows */
    char *model;    /* models[] rows */
    char *route;    /* routes[] rows ("" = reached no route) */
    char *tenant;   /* tenants[] rows ("" = no tenant) */
    int64_t requests, errors, client_errors, in_flight;
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    double rps, error_rate, tokens_per_s, cost_usd, cost_per_hour_usd;
    struct tui_quantiles latency, ttft;
};

struct tui_stats {
    char *window; /* "10s", "1m", "1h" as the server echoed it */
    double window_s;
    int64_t now_ms;
    int64_t active_version;
    int64_t proxies; /* proxies reporting telemetry; -1 when not sent */
    struct tui_traffic totals;
    struct tui_traffic *providers, *models, *routes, *tenants;
    size_t n_providers, n_models, n_routes, n_tenants;
    /* Control-plane replicas that did not answer (their proxies are missing from the
     * numbers): "cp-2 (connection refused), ...", or NULL. */
    char *unreachable;
};

struct tui_spend_model {
    char *provider;
    char *model;
    int64_t requests, prompt_tokens, completion_tokens, cached_tokens;
    double cost_usd;
};

struct tui_spend_tenant {
    char *tenant;
    int64_t requests, prompt_tokens, completion_tokens, cached_tokens;
    double cost_usd, projected_usd;
    double budget_usd; /* NAN: no budget for this period */
    struct tui_spend_model *models;
    size_t n_models;
};

struct tui_spend {
    char *period; /* "day" or "month" */
    char *date;   /* "2026-11-22" or "2026-11" */
    int64_t start_ms, end_ms;
    double elapsed_fraction, total_usd, projected_usd;
    struct tui_spend_tenant *tenants;
    size_t n_tenants;
};

struct tui_proxy {
    char *node_id, *zone, *address, *build_version;
    bool connected;
    int64_t connected_since_ms, last_seen_ms, acked_version;
    bool has_nack;
    char *nack_version; /* as sent (a string, or a number printed) */
    char *nack_error;
    int64_t nack_at_ms;
};

struct tui_fleet {
    int64_t active_version;
    char *control_plane;
    struct tui_proxy *proxies;
    size_t n_proxies;
};

struct tui_policy {
    int64_t version;
    char *hash;
    int64_t created_ms;
    char *note;
    bool active;
    int64_t rollback_of;
};

struct tui_policies {
    int64_t active;
    struct tui_policy *versions; /* newest first, as sent */
    size_t n_versions;
};

struct tui_arm {
    char *name, *model;
    double share; /* percent of the experiment's traffic */
    int64_t requests, feedback, up, down;
    double up_rate, mean_score, posterior_mean, ci_low, ci_high, prob_best;
    double latency_p50, latency_p95, cost_per_request_usd, error_rate;
};

struct tui_experiment {
    char *name, *route, *metric, *status;
    int64_t policy_version, min_samples;
    char *stop_rule; /* NULL when not sent */
    char *winner;    /* NULL: none yet */
    char *promoted_arm;
    int64_t promoted_in_version;
    struct tui_arm *arms;
    size_t n_arms;
    bool has_test;
    char *test_method;
    double test_z, test_p_value;
    bool test_significant;
};

struct tui_experiments {
    struct tui_experiment *v;
    size_t n;
};

/* The outcome of the latest fetch of one source. */
struct tui_src_state {
    char *error;        /* why the last fetch failed, NULL when it succeeded */
    bool absent;        /* the server does not have this endpoint (404 on an optional one) */
    int64_t updated_ms; /* wall clock of the last good reply, 0 never */
};

struct tui_model {
    struct tui_stats *stats;
    struct tui_fleet *fleet;
    struct tui_policies *policies;
    struct tui_spend *spend_day;
    struct tui_spend *spend_month;
    struct tui_experiments *experiments;
    struct tui_src_state src[TUI_SRC_COUNT];
    /* The transport failure of the latest request ("connection refused"), NULL once the
     * server answers again. */
    char *unreachable;
    /* totals.rps of the latest stats replies, oldest first; reset when the window changes. */
    double rps_history[TUI_HISTORY];
    size_t n_history;
};

/* Frees what <m> holds and zeroes it (embedded). */
void tui_model_cleanup(struct tui_model *m);

void tui_stats_free(struct tui_stats *s);
void tui_spend_free(struct tui_spend *s);
void tui_fleet_free(struct tui_fleet *f);
void tui_policies_free(struct tui_policies *p);
void tui_experiments_free(struct tui_experiments *e);

/* The path (with query) of source <src>: "/v1/stats?window=1m". <window> is used by
 * TUI_SRC_STATS only. Returns a static string or <buf>. */
const char *tui_src_path(enum tui_src src, const char *window, char *buf, size_t size);

/* Records the outcome of one request for <src> made at wall clock <now_ms>:
 * - <transport_err> non-NULL: no answer (the text says why, e.g. "connection refused");
 * - otherwise HTTP <status> with <body> (<len> bytes): 2xx is parsed into the model, 404
 *   on TUI_SRC_EXPERIMENTS marks the source absent, anything else is an error whose
 *   text comes from the admin API's error object.
 * Returns 0 when the source now holds fresh data (or is known absent), -EIO when the
 * server could not be reached, -EPROTO when it answered an error or a reply that does not
 * parse; the reason is in m->src[src].error either way. */
int tui_model_apply(struct tui_model *m, enum tui_src src, const char *window,
                    const char *transport_err, long status, const char *body, size_t len,
                    int64_t now_ms);

/* Forgets the RPS history (the window changed). */
void tui_model_reset_history(struct tui_model *m);

#endif
