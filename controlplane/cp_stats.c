/* controlplane/cp_stats.c - rolling windows, counters since start and proxy states, built
 * from telemetry reports. See cp_stats.h. */
#include "cp_stats.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cp_map.h"
#include "sy_hist.h"
#include "sy_util.h"

#define SEC_SLOTS 60
#define MIN_SLOTS 60
#define NODE_STALE_MS 60000 /* a proxy's last report counts this long */
#define N_NAMES 5           /* tenant, route, provider, model, arm */
#define LE_COUNT 18         /* /metrics buckets: 1 ms * 2^i, as the proxy's */

enum { N_TENANT, N_ROUTE, N_PROVIDER, N_MODEL, N_ARM };
static const char *const name_labels[N_NAMES] = {"tenant", "route", "provider", "model", "arm"};
static const char *const class_names[3] = {"2xx", "4xx", "5xx"};

/* Histogram in its wire form: (index, count) pairs ascending, plus sum, min and max. */
struct sparse {
    uint32_t *idx;
    uint64_t *cnt;
    size_t n, cap;
    uint64_t sum, min, max;
};

struct counts {
    uint64_t requests, prompt, completion, cached, cost_nusd;
};

/* One series in one slot. */
struct agg {
    char *names[N_NAMES];
    int sc; /* 0 2xx, 1 4xx, 2 5xx */
    bool stream;
    struct counts c;
    struct sparse lat, ttft;
};

/* One series since start, for /metrics. */
struct cum {
    char *names[N_NAMES];
    int sc;
    bool stream;
    struct counts c;
    struct sy_hist lat, ttft;
};

struct err_count {
    char *provider, *code;
    uint64_t count;
};

/* Attribution: one (tenant, tag) pair. */
struct tag_count {
    char *tenant, *tag;
    uint64_t requests, prompt, completion, cost_nusd;
};

struct slot {
    int64_t epoch;        /* second or minute since the epoch; -1 = empty */
    struct cp_map series; /* -> struct agg */
    struct cp_map errs;   /* -> struct err_count */
    struct cp_map tags;   /* -> struct tag_count */
};

struct target {
    char *provider, *model, *state;
    uint64_t latency_ewma_us;
};

struct node {
    int64_t last_ms;
    bool connected;
    int64_t in_flight;
    char policy_version[24];
    uint64_t coalesced, overflow;
    struct target *targets;
    size_t n_targets;
};

struct cp_stats {
    pthread_mutex_t lock;
    struct slot sec[SEC_SLOTS], min[MIN_SLOTS];
    struct cp_map cum;      /* -> struct cum */
    struct cp_map cum_errs; /* -> struct err_count */
    struct cp_map cum_tags; /* -> struct tag_count */
    struct cp_map nodes;    /* -> struct node */
    uint64_t reports, duplicates;
};

/* ---- building blocks ------------------------------------------------------------------ */

static void sparse_free(struct sparse *s)
{
    free(s->idx);
    free(s->cnt);
}

/* Adds a wire histogram into <s> (merge of two ascending lists). */
static void sparse_add(struct sparse *s, const Switchyard__V1__Histogram *h)
{
    size_t n = h ? (h->n_index < h->n_count ? h->n_index : h->n_count) : 0, i = 0, j = 0, k = 0;
    uint32_t *idx;
    uint64_t *cnt;

    /* A histogram a peer got wrong is left out (its series' counts still count), so one bad
     * report cannot make every later merge of this slot fail. */
    if (n == 0 || !sy_hist_sparse_valid(h->index, h->count, n, h->min, h->max))
        return;
    idx = sy_xmalloc((s->n + n) * sizeof(*idx));
    cnt = sy_xmalloc((s->n + n) * sizeof(*cnt));
    while (i < s->n || j < n) {
        if (j == n || (i < s->n && s->idx[i] < h->index[j])) {
            idx[k] = s->idx[i];
            cnt[k++] = s->cnt[i++];
        } else if (i == s->n || h->index[j] < s->idx[i]) {
            idx[k] = h->index[j];
            cnt[k++] = h->count[j++];
        } else {
            idx[k] = s->idx[i];
            cnt[k++] = s->cnt[i++] + h->count[j++];
        }
    }
    sparse_free(s);
    s->idx = idx;
    s->cnt = cnt;
    s->n = s->cap = k;
    s->sum += h->sum;
    if (h->min < s->min)
        s->min = h->min;
    if (h->max > s->max)
        s->max = h->max;
}

static void hist_add_wire(struct sy_hist *d, const Switchyard__V1__Histogram *h)
{
    if (!h)
        return;
    /* A malformed histogram (bad index, min > max) is ignored: counts stay exact. */
    sy_hist_add_sparse(d, h->index, h->count, h->n_index < h->n_count ? h->n_index : h->n_count,
                       h->sum, h->min, h->max);
}

static int class_of(const char *s)
{
    if (s && strcmp(s, "4xx") == 0)
        return 1;
    if (s && strcmp(s, "5xx") == 0)
        return 2;
    return 0;
}

static void series_key(char *buf, size_t cap, const Switchyard__V1__SeriesDelta *d)
{
    snprintf(buf, cap, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%d\x1f%d", d->tenant, d->route, d->provider,
             d->model, d->arm, class_of(d->status_class), d->stream ? 1 : 0);
}

static void names_of(char *names[N_NAMES], const Switchyard__V1__SeriesDelta *d)
{
    names[N_TENANT] = sy_xstrdup(d->tenant);
    names[N_ROUTE] = sy_xstrdup(d->route);
    names[N_PROVIDER] = sy_xstrdup(d->provider);
    names[N_MODEL] = sy_xstrdup(d->model);
    names[N_ARM] = sy_xstrdup(d->arm);
}

static void counts_add(struct counts *c, const Switchyard__V1__SeriesDelta *d)
{
    c->requests += d->requests;
    c->prompt += d->prompt_tokens;
    c->completion += d->completion_tokens;
    c->cached += d->cached_tokens;
    c->cost_nusd += d->cost_nusd;
}

static void agg_free(void *p)
{
    struct agg *a = p;
    for (int i = 0; i < N_NAMES; i++)
        free(a->names[i]);
    sparse_free(&a->lat);
    sparse_free(&a->ttft);
    free(a);
}

static void cum_free(void *p)
{
    struct cum *c = p;
    for (int i = 0; i < N_NAMES; i++)
        free(c->names[i]);
    free(c);
}

static void err_free(void *p)
{
    struct err_count *e = p;
    free(e->provider);
    free(e->code);
    free(e);
}

static void tag_free(void *p)
{
    struct tag_count *t = p;
    free(t->tenant);
    free(t->tag);
    free(t);
}

static void tags_add(struct cp_map *m, const Switchyard__V1__TelemetryReport *rep)
{
    char key[600];

    for (size_t i = 0; i < rep->n_tags; i++) {
        const Switchyard__V1__TagDelta *d = rep->tags[i];
        struct tag_count *t;

        snprintf(key, sizeof(key), "%s\x1f%s", d->tenant, d->tag);
        t = cp_map_get(m, key);
        if (!t) {
            t = sy_xcalloc(1, sizeof(*t));
            t->tenant = sy_xstrdup(d->tenant);
            t->tag = sy_xstrdup(d->tag);
            cp_map_put(m, key, t);
        }
        t->requests += d->requests;
        t->prompt += d->prompt_tokens;
        t->completion += d->completion_tokens;
        t->cost_nusd += d->cost_nusd;
    }
}

static void node_targets_free(struct node *n)
{
    for (size_t i = 0; i < n->n_targets; i++) {
        free(n->targets[i].provider);
        free(n->targets[i].model);
        free(n->targets[i].state);
    }
    free(n->targets);
    n->targets = NULL;
    n->n_targets = 0;
}

static void node_free(void *p)
{
    node_targets_free(p);
    free(p);
}

static void err_add(struct cp_map *m, const char *provider, const char *code, uint64_t n)
{
    char key[512];
    struct err_count *e;

    snprintf(key, sizeof(key), "%s\x1f%s", provider, code);
    e = cp_map_get(m, key);
    if (!e) {
        e = sy_xcalloc(1, sizeof(*e));
        e->provider = sy_xstrdup(provider);
        e->code = sy_xstrdup(code);
        cp_map_put(m, key, e);
    }
    e->count += n;
}

/* The slot of <ring> for <epoch>, emptied when it held an older one; NULL when it already
 * holds a newer one (the report is older than the ring). */
static struct slot *slot_for(struct slot *ring, size_t n, int64_t epoch)
{
    struct slot *s = &ring[(size_t)epoch % n];

    if (s->epoch == epoch)
        return s;
    if (s->epoch > epoch)
        return NULL;
    cp_map_clear(&s->series, agg_free);
    cp_map_clear(&s->errs, err_free);
    cp_map_clear(&s->tags, tag_free);
    s->epoch = epoch;
    return s;
}

static void slot_add(struct slot *s, const Switchyard__V1__TelemetryReport *rep)
{
    char key[1024];

    for (size_t i = 0; i < rep->n_series; i++) {
        const Switchyard__V1__SeriesDelta *d = rep->series[i];
        struct agg *a;

        series_key(key, sizeof(key), d);
        a = cp_map_get(&s->series, key);
        if (!a) {
            a = sy_xcalloc(1, sizeof(*a));
            names_of(a->names, d);
            a->sc = class_of(d->status_class);
            a->stream = d->stream;
            a->lat.min = a->ttft.min = UINT64_MAX;
            cp_map_put(&s->series, key, a);
        }
        counts_add(&a->c, d);
        sparse_add(&a->lat, d->latency_us);
        sparse_add(&a->ttft, d->ttft_us);
    }
    for (size_t i = 0; i < rep->n_upstream_errors; i++)
        err_add(&s->errs, rep->upstream_errors[i]->provider, rep->upstream_errors[i]->code,
                rep->upstream_errors[i]->count);
    tags_add(&s->tags, rep);
}

/* ---- lifecycle and input -------------------------------------------------------------- */

struct cp_stats *cp_stats_new(void)
{
    struct cp_stats *st = sy_xcalloc(1, sizeof(*st));

    pthread_mutex_init(&st->lock, NULL);
    for (size_t i = 0; i < SEC_SLOTS; i++)
        st->sec[i].epoch = -1;
    for (size_t i = 0; i < MIN_SLOTS; i++)
        st->min[i].epoch = -1;
    return st;
}

void cp_stats_free(struct cp_stats *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < SEC_SLOTS; i++) {
        cp_map_clear(&st->sec[i].series, agg_free);
        cp_map_clear(&st->sec[i].errs, err_free);
        cp_map_clear(&st->sec[i].tags, tag_free);
    }
    for (size_t i = 0; i < MIN_SLOTS; i++) {
        cp_map_clear(&st->min[i].series, agg_free);
        cp_map_clear(&st->min[i].errs, err_free);
        cp_map_clear(&st->min[i].tags, tag_free);
    }
    cp_map_clear(&st->cum, cum_free);
    cp_map_clear(&st->cum_errs, err_free);
    cp_map_clear(&st->cum_tags, tag_free);
    cp_map_clear(&st->nodes, node_free);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* A proxy's state from its latest report, heard at <at_ms>. Lock held. */
static void node_update(struct node *n, const Switchyard__V1__TelemetryReport *rep, int64_t at_ms)
{
    n->last_ms = at_ms;
    n->in_flight = rep->in_flight;
    snprintf(n->policy_version, sizeof(n->policy_version), "%s", rep->policy_version);
    n->coalesced = rep->coalesced_intervals;
    n->overflow = rep->stats_overflow;
    node_targets_free(n);
    n->targets = sy_xcalloc(rep->n_targets ? rep->n_targets : 1, sizeof(*n->targets));
    for (size_t i = 0; i < rep->n_targets; i++) {
        n->targets[i].provider = sy_xstrdup(rep->targets[i]->provider);
        n->targets[i].model = sy_xstrdup(rep->targets[i]->model);
        n->targets[i].state = sy_xstrdup(rep->targets[i]->state);
        n->targets[i].latency_ewma_us = rep->targets[i]->latency_ewma_us;
    }
    n->n_targets = rep->n_targets;
}

static struct node *node_get(struct cp_stats *st, const char *id)
{
    struct node *n = cp_map_get(&st->nodes, id);

    if (!n) {
        n = sy_xcalloc(1, sizeof(*n));
        cp_map_put(&st->nodes, id, n);
    }
    return n;
}

void cp_stats_apply(struct cp_stats *st, const Switchyard__V1__TelemetryReport *rep, int64_t now_ms)
{
    int64_t end = rep->end_unix_ms > 0 && rep->end_unix_ms <= now_ms ? rep->end_unix_ms : now_ms;
    int64_t sec = end / 1000;
    const char *node_id = rep->node && rep->node->id ? rep->node->id : "";
    struct slot *s;
    char key[1024];

    pthread_mutex_lock(&st->lock);
    st->reports++;
    if ((s = slot_for(st->sec, SEC_SLOTS, sec)) != NULL)
        slot_add(s, rep);
    if ((s = slot_for(st->min, MIN_SLOTS, sec / 60)) != NULL)
        slot_add(s, rep);
    for (size_t i = 0; i < rep->n_series; i++) {
        const Switchyard__V1__SeriesDelta *d = rep->series[i];
        struct cum *c;

        series_key(key, sizeof(key), d);
        c = cp_map_get(&st->cum, key);
        if (!c) {
            c = sy_xcalloc(1, sizeof(*c));
            names_of(c->names, d);
            c->sc = class_of(d->status_class);
            c->stream = d->stream;
            sy_hist_init(&c->lat);
            sy_hist_init(&c->ttft);
            cp_map_put(&st->cum, key, c);
        }
        counts_add(&c->c, d);
        hist_add_wire(&c->lat, d->latency_us);
        hist_add_wire(&c->ttft, d->ttft_us);
    }
    for (size_t i = 0; i < rep->n_upstream_errors; i++)
        err_add(&st->cum_errs, rep->upstream_errors[i]->provider, rep->upstream_errors[i]->code,
                rep->upstream_errors[i]->count);

    tags_add(&st->cum_tags, rep);
    if (!rep->node) { /* a slot merged from another replica (cp_stats_merge) */
        pthread_mutex_unlock(&st->lock);
        return;
    }
    node_update(node_get(st, node_id), rep, now_ms);
    pthread_mutex_unlock(&st->lock);
}

void cp_stats_node_connected(struct cp_stats *st, const char *node_id, bool connected)
{
    pthread_mutex_lock(&st->lock);
    node_get(st, node_id)->connected = connected;
    pthread_mutex_unlock(&st->lock);
}

void cp_stats_count_duplicate(struct cp_stats *st)
{
    pthread_mutex_lock(&st->lock);
    st->duplicates++;
    pthread_mutex_unlock(&st->lock);
}

void cp_stats_counters(struct cp_stats *st, struct cp_stats_counters *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&st->lock);
    out->reports = st->reports;
    out->duplicates = st->duplicates;
    for (size_t i = 0; i < st->nodes.n; i++) {
        const struct node *n = st->nodes.vals[i];
        out->coalesced_intervals += n->coalesced;
        out->proxies_connected += n->connected;
    }
    pthread_mutex_unlock(&st->lock);
}

int cp_window_parse(const char *s)
{
    if (strcmp(s, "10s") == 0)
        return CP_WINDOW_10S;
    if (strcmp(s, "1m") == 0)
        return CP_WINDOW_1M;
    if (strcmp(s, "1h") == 0)
        return CP_WINDOW_1H;
    return -1;
}

const char *cp_window_name(enum cp_window w)
{
    return w == CP_WINDOW_10S ? "10s" : w == CP_WINDOW_1H ? "1h" : "1m";
}

/* ---- queries -------------------------------------------------------------------------- */

/* One row of a grouping. */
struct group {
    const char *names[N_NAMES]; /* borrowed from the slots (the lock is held) */
    struct counts c;
    uint64_t errors, client_errors;
    struct sy_hist *lat, *ttft;
};

static void group_free(void *p)
{
    struct group *g = p;
    free(g->lat);
    free(g->ttft);
    free(g);
}

static void group_add(struct cp_map *m, const char *key, const struct agg *a)
{
    struct group *g = cp_map_get(m, key);

    if (!g) {
        g = sy_xcalloc(1, sizeof(*g));
        for (int i = 0; i < N_NAMES; i++)
            g->names[i] = a->names[i];
        g->lat = sy_xmalloc(sizeof(*g->lat));
        g->ttft = sy_xmalloc(sizeof(*g->ttft));
        sy_hist_init(g->lat);
        sy_hist_init(g->ttft);
        cp_map_put(m, key, g);
    }
    g->c.requests += a->c.requests;
    g->c.prompt += a->c.prompt;
    g->c.completion += a->c.completion;
    g->c.cached += a->c.cached;
    g->c.cost_nusd += a->c.cost_nusd;
    if (a->sc == 2)
        g->errors += a->c.requests;
    else if (a->sc == 1)
        g->client_errors += a->c.requests;
    if (a->lat.n)
        sy_hist_add_sparse(g->lat, a->lat.idx, a->lat.cnt, a->lat.n, a->lat.sum, a->lat.min,
                           a->lat.max);
    if (a->ttft.n)
        sy_hist_add_sparse(g->ttft, a->ttft.idx, a->ttft.cnt, a->ttft.n, a->ttft.sum, a->ttft.min,
                           a->ttft.max);
}

/* The slots of window <w> at <now_ms>, into out[] (room for 60). */
static size_t window_slots(struct cp_stats *st, enum cp_window w, int64_t now_ms, struct slot **out,
                           int *seconds)
{
    int64_t now_s = now_ms / 1000;
    size_t n = 0;

    if (w == CP_WINDOW_1H) {
        *seconds = 3600;
        for (size_t i = 0; i < MIN_SLOTS; i++) {
            if (st->min[i].epoch >= 0 && st->min[i].epoch > now_s / 60 - MIN_SLOTS &&
                st->min[i].epoch <= now_s / 60)
                out[n++] = &st->min[i];
        }
        return n;
    }
    *seconds = w == CP_WINDOW_10S ? 10 : 60;
    for (size_t i = 0; i < SEC_SLOTS; i++) {
        if (st->sec[i].epoch >= 0 && st->sec[i].epoch > now_s - *seconds &&
            st->sec[i].epoch <= now_s)
            out[n++] = &st->sec[i];
    }
    return n;
}

static double round3(double v)
{
    return (double)(int64_t)(v * 1000 + (v >= 0 ? 0.5 : -0.5)) / 1000;
}

static void add_quantiles(cJSON *o, const char *name, const struct sy_hist *h, bool p95)
{
    cJSON *q = cJSON_AddObjectToObject(o, name);
    static const double qs[3] = {0.5, 0.95, 0.99};
    static const char *const qn[3] = {"p50", "p95", "p99"};

    for (int i = 0; i < 3; i++) {
        if (i == 1 && !p95)
            continue;
        if (sy_hist_count(h) == 0)
            cJSON_AddNullToObject(q, qn[i]);
        else
            cJSON_AddNumberToObject(q, qn[i], round3((double)sy_hist_quantile(h, qs[i]) / 1000));
    }
}

static double usd(uint64_t nusd)
{
    return (double)nusd / 1e9;
}

static cJSON *group_json(const struct group *g, const int *which, size_t n_which, int seconds)
{
    cJSON *o = cJSON_CreateObject();
    uint64_t tokens = g->c.prompt + g->c.completion;

    for (size_t i = 0; i < n_which; i++)
        cJSON_AddStringToObject(o, name_labels[which[i]], g->names[which[i]]);
    cJSON_AddNumberToObject(o, "requests", (double)g->c.requests);
    cJSON_AddNumberToObject(o, "rps", round3((double)g->c.requests / seconds));
    cJSON_AddNumberToObject(o, "errors", (double)g->errors);
    cJSON_AddNumberToObject(o, "client_errors", (double)g->client_errors);
    cJSON_AddNumberToObject(o, "error_rate",
                            g->c.requests ? (double)g->errors / (double)g->c.requests : 0);
    add_quantiles(o, "latency_ms", g->lat, true);
    add_quantiles(o, "ttft_ms", g->ttft, true);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)g->c.prompt);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)g->c.completion);
    cJSON_AddNumberToObject(o, "cached_tokens", (double)g->c.cached);
    cJSON_AddNumberToObject(o, "tokens_per_s", round3((double)tokens / seconds));
    cJSON_AddNumberToObject(o, "cost_usd", usd(g->c.cost_nusd));
    cJSON_AddNumberToObject(o, "cost_per_hour_usd", usd(g->c.cost_nusd) * 3600.0 / seconds);
    return o;
}

static int group_cmp(const void *pa, const void *pb)
{
    const struct group *a = *(struct group *const *)pa, *b = *(struct group *const *)pb;
    if (a->c.requests != b->c.requests)
        return a->c.requests > b->c.requests ? -1 : 1;
    for (int i = 0; i < N_NAMES; i++) {
        int d = strcmp(a->names[i], b->names[i]);
        if (d)
            return d;
    }
    return 0;
}

static cJSON *groups_json(struct cp_map *m, const int *which, size_t n_which, int seconds)
{
    cJSON *arr = cJSON_CreateArray();
    struct group **gs = sy_xmalloc((m->n ? m->n : 1) * sizeof(*gs));

    for (size_t i = 0; i < m->n; i++)
        gs[i] = m->vals[i];
    qsort(gs, m->n, sizeof(*gs), group_cmp);
    for (size_t i = 0; i < m->n; i++)
        cJSON_AddItemToArray(arr, group_json(gs[i], which, n_which, seconds));
    free(gs);
    return arr;
}

/* Groups every series of the window by the names in each of <n_groupings> groupings. */
static void group_window(struct slot **slots, size_t n_slots, struct cp_map *maps,
                         const int (*which)[2], const size_t *n_which, size_t n_groupings)
{
    char key[1024];

    for (size_t s = 0; s < n_slots; s++) {
        for (size_t i = 0; i < slots[s]->series.n; i++) {
            const struct agg *a = slots[s]->series.vals[i];
            for (size_t g = 0; g < n_groupings; g++) {
                size_t off = 0;
                key[0] = '\0';
                for (size_t k = 0; k < n_which[g] && off < sizeof(key); k++) {
                    int w = snprintf(key + off, sizeof(key) - off, "%s\x1f", a->names[which[g][k]]);
                    off += w > 0 ? (size_t)w : 0;
                }
                group_add(&maps[g], key, a);
            }
        }
    }
}

static int tag_cmp(const void *pa, const void *pb)
{
    const struct tag_count *a = *(struct tag_count *const *)pa, *b = *(struct tag_count *const *)pb;
    int d;
    if (a->cost_nusd != b->cost_nusd)
        return a->cost_nusd > b->cost_nusd ? -1 : 1;
    if (a->requests != b->requests)
        return a->requests > b->requests ? -1 : 1;
    d = strcmp(a->tenant, b->tenant);
    return d ? d : strcmp(a->tag, b->tag);
}

/* The attribution pairs of the window, by spend. Lock held. */
static cJSON *tags_json(struct slot **slots, size_t n_slots, int seconds)
{
    struct cp_map all = {0};
    cJSON *arr = cJSON_CreateArray();
    struct tag_count **ts;
    char key[600];

    for (size_t s = 0; s < n_slots; s++) {
        for (size_t i = 0; i < slots[s]->tags.n; i++) {
            const struct tag_count *x = slots[s]->tags.vals[i];
            struct tag_count *t;
            snprintf(key, sizeof(key), "%s\x1f%s", x->tenant, x->tag);
            t = cp_map_get(&all, key);
            if (!t) {
                t = sy_xcalloc(1, sizeof(*t));
                t->tenant = x->tenant; /* borrowed */
                t->tag = x->tag;
                cp_map_put(&all, key, t);
            }
            t->requests += x->requests;
            t->prompt += x->prompt;
            t->completion += x->completion;
            t->cost_nusd += x->cost_nusd;
        }
    }
    ts = sy_xmalloc((all.n ? all.n : 1) * sizeof(*ts));
    for (size_t i = 0; i < all.n; i++)
        ts[i] = all.vals[i];
    qsort(ts, all.n, sizeof(*ts), tag_cmp);
    for (size_t i = 0; i < all.n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", ts[i]->tenant);
        cJSON_AddStringToObject(o, "tag", ts[i]->tag);
        cJSON_AddNumberToObject(o, "requests", (double)ts[i]->requests);
        cJSON_AddNumberToObject(o, "rps", round3((double)ts[i]->requests / seconds));
        cJSON_AddNumberToObject(o, "prompt_tokens", (double)ts[i]->prompt);
        cJSON_AddNumberToObject(o, "completion_tokens", (double)ts[i]->completion);
        cJSON_AddNumberToObject(o, "cost_usd", usd(ts[i]->cost_nusd));
        cJSON_AddNumberToObject(o, "cost_per_hour_usd", usd(ts[i]->cost_nusd) * 3600.0 / seconds);
        cJSON_AddItemToArray(arr, o);
    }
    free(ts);
    cp_map_clear(&all, free);
    return arr;
}

cJSON *cp_stats_json(struct cp_stats *st, enum cp_window w, int64_t active_version, int64_t now_ms)
{
    static const char *const window_names[] = {"10s", "1m", "1h"};
    static const int which[5][2] = {
        {0, 0}, {N_PROVIDER, 0}, {N_PROVIDER, N_MODEL}, {N_ROUTE, 0}, {N_TENANT, 0}};
    static const size_t n_which[5] = {0, 1, 2, 1, 1};
    static const char *const keys[5] = {"totals", "providers", "models", "routes", "tenants"};
    struct cp_map maps[5] = {{0}};
    struct slot *slots[SEC_SLOTS > MIN_SLOTS ? SEC_SLOTS : MIN_SLOTS];
    cJSON *root = cJSON_CreateObject(), *totals;
    int seconds;
    size_t n_slots, proxies = 0;
    int64_t in_flight = 0;

    pthread_mutex_lock(&st->lock);
    n_slots = window_slots(st, w, now_ms, slots, &seconds);
    group_window(slots, n_slots, maps, which, n_which, 5);
    for (size_t i = 0; i < st->nodes.n; i++) {
        const struct node *n = st->nodes.vals[i];
        if (n->connected) {
            proxies++;
            in_flight += n->in_flight;
        }
    }
    cJSON_AddStringToObject(root, "window", window_names[w]);
    cJSON_AddNumberToObject(root, "window_s", seconds);
    cJSON_AddNumberToObject(root, "now_unix_ms", (double)now_ms);
    cJSON_AddNumberToObject(root, "active_version", (double)active_version);
    cJSON_AddNumberToObject(root, "proxies", (double)proxies);
    if (maps[0].n) {
        totals = group_json(maps[0].vals[0], NULL, 0, seconds);
    } else {
        struct group empty = {.lat = sy_xmalloc(sizeof(struct sy_hist)),
                              .ttft = sy_xmalloc(sizeof(struct sy_hist))};
        sy_hist_init(empty.lat);
        sy_hist_init(empty.ttft);
        totals = group_json(&empty, NULL, 0, seconds);
        free(empty.lat);
        free(empty.ttft);
    }
    cJSON_AddNumberToObject(totals, "in_flight", (double)in_flight);
    cJSON_AddItemToObject(root, keys[0], totals);
    for (int g = 1; g < 5; g++)
        cJSON_AddItemToObject(root, keys[g], groups_json(&maps[g], which[g], n_which[g], seconds));
    cJSON_AddItemToObject(root, "tags", tags_json(slots, n_slots, seconds));
    pthread_mutex_unlock(&st->lock);
    for (int g = 0; g < 5; g++)
        cp_map_clear(&maps[g], group_free);
    return root;
}

/* ---- health --------------------------------------------------------------------------- */

static int state_rank(const char *s)
{
    if (strcmp(s, "open") == 0)
        return 2;
    if (strcmp(s, "half_open") == 0)
        return 1;
    return 0;
}

cJSON *cp_stats_health_json(struct cp_stats *st, int64_t now_ms)
{
    static const int which[1][2] = {{N_PROVIDER, N_MODEL}};
    static const size_t n_which[1] = {2};
    static const char *const states[3] = {"closed", "half_open", "open"};
    struct cp_map groups = {0}, errs = {0};
    struct slot *slots[SEC_SLOTS];
    cJSON *root = cJSON_CreateObject(), *arr;
    char key[1024];
    int seconds;
    size_t n_slots;
    struct row {
        char *provider, *model;
        int worst;
        unsigned states[3];
        const struct group *g;
    };
    struct cp_map rows = {0};

    pthread_mutex_lock(&st->lock);
    n_slots = window_slots(st, CP_WINDOW_1M, now_ms, slots, &seconds);
    group_window(slots, n_slots, &groups, which, n_which, 1);
    for (size_t s = 0; s < n_slots; s++) {
        for (size_t i = 0; i < slots[s]->errs.n; i++) {
            const struct err_count *e = slots[s]->errs.vals[i];
            err_add(&errs, e->provider, e->code, e->count);
        }
    }
    /* Targets: what proxies report, and whatever served traffic in the window. */
    for (size_t i = 0; i < st->nodes.n; i++) {
        const struct node *n = st->nodes.vals[i];
        if (!n->connected && now_ms - n->last_ms > NODE_STALE_MS)
            continue;
        for (size_t t = 0; t < n->n_targets; t++) {
            struct row *r;
            snprintf(key, sizeof(key), "%s\x1f%s\x1f", n->targets[t].provider, n->targets[t].model);
            r = cp_map_get(&rows, key);
            if (!r) {
                r = sy_xcalloc(1, sizeof(*r));
                r->provider = n->targets[t].provider;
                r->model = n->targets[t].model;
                cp_map_put(&rows, key, r);
            }
            int rank = state_rank(n->targets[t].state);
            r->states[rank]++;
            if (rank > r->worst)
                r->worst = rank;
        }
    }
    for (size_t i = 0; i < groups.n; i++) {
        const struct group *g = groups.vals[i];
        struct row *r = cp_map_get(&rows, groups.keys[i]);
        if (!g->names[N_MODEL][0])
            continue; /* rejected before a model was chosen */
        if (!r) {
            r = sy_xcalloc(1, sizeof(*r));
            r->provider = (char *)g->names[N_PROVIDER];
            r->model = (char *)g->names[N_MODEL];
            cp_map_put(&rows, groups.keys[i], r);
        }
        r->g = g;
    }
    cJSON_AddNumberToObject(root, "window_s", seconds);
    arr = cJSON_AddArrayToObject(root, "targets");
    for (size_t i = 0; i < rows.n; i++) {
        const struct row *r = rows.vals[i];
        cJSON *o = cJSON_CreateObject(), *b, *ue;
        uint64_t req = r->g ? r->g->c.requests : 0, err = r->g ? r->g->errors : 0;

        cJSON_AddStringToObject(o, "provider", r->provider);
        cJSON_AddStringToObject(o, "model", r->model);
        cJSON_AddStringToObject(o, "state", states[r->worst]);
        cJSON_AddNumberToObject(o, "requests", (double)req);
        cJSON_AddNumberToObject(o, "errors", (double)err);
        cJSON_AddNumberToObject(o, "error_rate", req ? (double)err / (double)req : 0);
        if (r->g) {
            add_quantiles(o, "latency_ms", r->g->lat, false);
        } else {
            cJSON *q = cJSON_AddObjectToObject(o, "latency_ms");
            cJSON_AddNullToObject(q, "p50");
            cJSON_AddNullToObject(q, "p99");
        }
        b = cJSON_AddObjectToObject(o, "breaker");
        for (int s = 0; s < 3; s++)
            cJSON_AddNumberToObject(b, states[s], r->states[s]);
        ue = cJSON_AddObjectToObject(o, "upstream_errors");
        for (size_t e = 0; e < errs.n; e++) {
            const struct err_count *x = errs.vals[e];
            if (strcmp(x->provider, r->provider) == 0)
                cJSON_AddNumberToObject(ue, x->code, (double)x->count);
        }
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&st->lock);
    cp_map_clear(&rows, free);
    cp_map_clear(&groups, group_free);
    cp_map_clear(&errs, err_free);
    return root;
}

/* ---- export and merge (fleet-wide views over several replicas) ---------------------- */

/* The wire form of a sparse histogram, borrowing its arrays; NULL when it is empty. */
static Switchyard__V1__Histogram *wire_hist(Switchyard__V1__Histogram *h, const struct sparse *s)
{
    if (!s->n)
        return NULL;
    switchyard__v1__histogram__init(h);
    h->index = s->idx;
    h->n_index = s->n;
    h->count = s->cnt;
    h->n_count = s->n;
    h->sum = s->sum;
    h->min = s->min;
    h->max = s->max;
    return h;
}

/* One slot as a report without a node; the strings and arrays are borrowed from the slot. */
struct slot_arrays {
    Switchyard__V1__SeriesDelta *d;
    Switchyard__V1__Histogram *h;
    Switchyard__V1__UpstreamErrorDelta *e;
    Switchyard__V1__TagDelta *t;
};

static void slot_report(Switchyard__V1__TelemetryReport *r, struct slot_arrays *m,
                        const struct slot *s, bool minutes)
{
    static const char *const classes[3] = {"2xx", "4xx", "5xx"};
    Switchyard__V1__SeriesDelta *d;
    Switchyard__V1__Histogram *h;
    Switchyard__V1__UpstreamErrorDelta *e;
    Switchyard__V1__TagDelta *t;

    switchyard__v1__telemetry_report__init(r);
    /* Inside the slot, so the merging side places it in the same second or minute. */
    r->end_unix_ms = minutes ? s->epoch * 60000 + 30000 : s->epoch * 1000 + 500;
    r->n_series = s->series.n;
    r->series = sy_xcalloc(s->series.n + 1, sizeof(*r->series));
    d = m->d = sy_xcalloc(s->series.n + 1, sizeof(*d));
    h = m->h = sy_xcalloc(2 * s->series.n + 1, sizeof(*h));
    for (size_t i = 0; i < s->series.n; i++) {
        const struct agg *a = s->series.vals[i];
        switchyard__v1__series_delta__init(&d[i]);
        d[i].tenant = a->names[N_TENANT];
        d[i].route = a->names[N_ROUTE];
        d[i].provider = a->names[N_PROVIDER];
        d[i].model = a->names[N_MODEL];
        d[i].arm = a->names[N_ARM];
        d[i].status_class = (char *)classes[a->sc];
        d[i].stream = a->stream;
        d[i].requests = a->c.requests;
        d[i].prompt_tokens = a->c.prompt;
        d[i].completion_tokens = a->c.completion;
        d[i].cached_tokens = a->c.cached;
        d[i].cost_nusd = a->c.cost_nusd;
        d[i].latency_us = wire_hist(&h[2 * i], &a->lat);
        d[i].ttft_us = wire_hist(&h[2 * i + 1], &a->ttft);
        r->series[i] = &d[i];
    }
    r->n_upstream_errors = s->errs.n;
    r->upstream_errors = sy_xcalloc(s->errs.n + 1, sizeof(*r->upstream_errors));
    e = m->e = sy_xcalloc(s->errs.n + 1, sizeof(*e));
    for (size_t i = 0; i < s->errs.n; i++) {
        const struct err_count *x = s->errs.vals[i];
        switchyard__v1__upstream_error_delta__init(&e[i]);
        e[i].provider = x->provider;
        e[i].code = x->code;
        e[i].count = x->count;
        r->upstream_errors[i] = &e[i];
    }
    r->n_tags = s->tags.n;
    r->tags = sy_xcalloc(s->tags.n + 1, sizeof(*r->tags));
    t = m->t = sy_xcalloc(s->tags.n + 1, sizeof(*t));
    for (size_t i = 0; i < s->tags.n; i++) {
        const struct tag_count *x = s->tags.vals[i];
        switchyard__v1__tag_delta__init(&t[i]);
        t[i].tenant = x->tenant;
        t[i].tag = x->tag;
        t[i].requests = x->requests;
        t[i].prompt_tokens = x->prompt;
        t[i].completion_tokens = x->completion;
        t[i].cost_nusd = x->cost_nusd;
        r->tags[i] = &t[i];
    }
}

static void slot_report_clear(Switchyard__V1__TelemetryReport *r, struct slot_arrays *m)
{
    free(r->series);
    free(r->upstream_errors);
    free(r->tags);
    free(m->d);
    free(m->h);
    free(m->e);
    free(m->t);
}

uint8_t *cp_stats_export(struct cp_stats *st, enum cp_window w, int64_t now_ms, const char *replica,
                         size_t *len)
{
    Switchyard__V1__StatsExport ex = SWITCHYARD__V1__STATS_EXPORT__INIT;
    struct slot *slots[SEC_SLOTS > MIN_SLOTS ? SEC_SLOTS : MIN_SLOTS];
    Switchyard__V1__TelemetryReport *reps, *nreps;
    struct slot_arrays *arrays;
    Switchyard__V1__Node *nodes;
    Switchyard__V1__TargetState *targets = NULL, **tptrs = NULL;
    size_t n_slots, n_nodes = 0, n_targets = 0;
    int seconds;
    uint8_t *buf;

    pthread_mutex_lock(&st->lock);
    ex.replica = (char *)replica;
    n_slots = window_slots(st, w, now_ms, slots, &seconds);
    reps = sy_xcalloc(n_slots + 1, sizeof(*reps));
    arrays = sy_xcalloc(n_slots + 1, sizeof(*arrays));
    ex.slots = sy_xcalloc(n_slots + 1, sizeof(*ex.slots));
    for (size_t i = 0; i < n_slots; i++) {
        slot_report(&reps[i], &arrays[i], slots[i], w == CP_WINDOW_1H);
        ex.slots[i] = &reps[i];
    }
    ex.n_slots = n_slots;
    /* The proxies /v1/stats and /v1/health count: connected, or heard from lately. */
    for (size_t i = 0; i < st->nodes.n; i++)
        n_targets += ((const struct node *)st->nodes.vals[i])->n_targets;
    nreps = sy_xcalloc(st->nodes.n + 1, sizeof(*nreps));
    nodes = sy_xcalloc(st->nodes.n + 1, sizeof(*nodes));
    ex.nodes = sy_xcalloc(st->nodes.n + 1, sizeof(*ex.nodes));
    ex.connected = sy_xcalloc(st->nodes.n + 1, sizeof(*ex.connected));
    targets = sy_xcalloc(n_targets + 1, sizeof(*targets));
    tptrs = sy_xcalloc(n_targets + 1, sizeof(*tptrs));
    n_targets = 0;
    for (size_t i = 0; i < st->nodes.n; i++) {
        const struct node *n = st->nodes.vals[i];
        Switchyard__V1__TelemetryReport *r = &nreps[n_nodes];

        if (!n->connected && now_ms - n->last_ms > NODE_STALE_MS)
            continue;
        if (n->connected)
            ex.connected[ex.n_connected++] = st->nodes.keys[i];
        switchyard__v1__telemetry_report__init(r);
        switchyard__v1__node__init(&nodes[n_nodes]);
        nodes[n_nodes].id = st->nodes.keys[i];
        r->node = &nodes[n_nodes];
        r->end_unix_ms = n->last_ms;
        r->in_flight = n->in_flight;
        r->policy_version = (char *)n->policy_version;
        r->coalesced_intervals = n->coalesced;
        r->stats_overflow = n->overflow;
        r->targets = &tptrs[n_targets];
        r->n_targets = n->n_targets;
        for (size_t t = 0; t < n->n_targets; t++) {
            switchyard__v1__target_state__init(&targets[n_targets]);
            targets[n_targets].provider = n->targets[t].provider;
            targets[n_targets].model = n->targets[t].model;
            targets[n_targets].state = n->targets[t].state;
            targets[n_targets].latency_ewma_us = n->targets[t].latency_ewma_us;
            tptrs[n_targets] = &targets[n_targets];
            n_targets++;
        }
        ex.nodes[n_nodes] = r;
        n_nodes++;
    }
    ex.n_nodes = n_nodes;
    *len = switchyard__v1__stats_export__get_packed_size(&ex);
    buf = sy_xmalloc(*len + 1);
    switchyard__v1__stats_export__pack(&ex, buf);
    pthread_mutex_unlock(&st->lock);
    for (size_t i = 0; i < n_slots; i++)
        slot_report_clear(&reps[i], &arrays[i]);
    free(reps);
    free(arrays);
    free(ex.slots);
    free(nreps);
    free(nodes);
    free(ex.nodes);
    free(ex.connected);
    free(targets);
    free(tptrs);
    return buf;
}

void cp_stats_merge(struct cp_stats *st, const Switchyard__V1__StatsExport *ex, int64_t now_ms)
{
    for (size_t i = 0; i < ex->n_slots; i++) {
        if (!ex->slots[i]->node) /* slots carry no node: they must not create one */
            cp_stats_apply(st, ex->slots[i], now_ms);
    }
    for (size_t i = 0; i < ex->n_nodes; i++) {
        const Switchyard__V1__TelemetryReport *r = ex->nodes[i];
        struct node *n;

        if (!r->node || !r->node->id || !r->node->id[0] || r->n_series)
            continue;
        /* Only the state: placing it in a slot could recycle one still in the window when
         * the peer's clock runs ahead. */
        int64_t at = r->end_unix_ms > 0 && r->end_unix_ms < now_ms ? r->end_unix_ms : now_ms;
        pthread_mutex_lock(&st->lock);
        n = cp_map_get(&st->nodes, r->node->id);
        /* A proxy that moved between replicas is known to both: the newest word counts. */
        if (!n || n->last_ms <= at)
            node_update(node_get(st, r->node->id), r, at);
        pthread_mutex_unlock(&st->lock);
    }
    for (size_t i = 0; i < ex->n_connected; i++)
        cp_stats_node_connected(st, ex->connected[i], true);
}

/* ---- /metrics ------------------------------------------------------------------------- */

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (size_t)(n > 0 ? n : 0) + 64;
        o->p = sy_xrealloc(o->p, o->cap);
    }
}

static void put_value(struct out *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            put(o, "\\\\");
        else if (*v == '"')
            put(o, "\\\"");
        else if (*v == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *v);
    }
}

static void put_labels(struct out *o, const struct cum *c, const char *extra, const char *value)
{
    put(o, "{");
    for (int i = 0; i < N_NAMES; i++) {
        put(o, "%s%s=\"", i ? "," : "", name_labels[i]);
        put_value(o, c->names[i]);
        put(o, "\"");
    }
    put(o, ",status_class=\"%s\",stream=\"%s\"", class_names[c->sc], c->stream ? "true" : "false");
    if (extra) {
        put(o, ",%s=\"", extra);
        put_value(o, value);
        put(o, "\"");
    }
    put(o, "}");
}

static void put_family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_histogram(struct out *o, const char *name, const struct cum *c,
                          const struct sy_hist *h)
{
    uint64_t bounds[LE_COUNT], below[LE_COUNT];
    char le[32];

    for (int i = 0; i < LE_COUNT; i++)
        bounds[i] = (uint64_t)1000 << i;
    sy_hist_cumulative(h, bounds, LE_COUNT, below);
    for (int i = 0; i <= LE_COUNT; i++) {
        if (i < LE_COUNT)
            snprintf(le, sizeof(le), "%g", (double)bounds[i] / 1e6);
        else
            snprintf(le, sizeof(le), "+Inf");
        put(o, "%s_bucket", name);
        put_labels(o, c, "le", le);
        put(o, " %" PRIu64 "\n", i < LE_COUNT ? below[i] : sy_hist_count(h));
    }
    put(o, "%s_sum", name);
    put_labels(o, c, NULL, NULL);
    put(o, " %.6f\n", (double)sy_hist_sum(h) / 1e6);
    put(o, "%s_count", name);
    put_labels(o, c, NULL, NULL);
    put(o, " %" PRIu64 "\n", sy_hist_count(h));
}

char *cp_stats_metrics(struct cp_stats *st, size_t *len)
{
    static const char *const kinds[3] = {"prompt", "completion", "cached"};
    struct out o = {.p = sy_xmalloc(4096), .cap = 4096};

    o.p[0] = '\0';
    pthread_mutex_lock(&st->lock);
    put_family(&o, "switchyard_fleet_requests_total", "counter",
               "Requests the fleet's proxies answered, as reported to this control plane.");
    for (size_t i = 0; i < st->cum.n; i++) {
        const struct cum *c = st->cum.vals[i];
        put(&o, "switchyard_fleet_requests_total");
        put_labels(&o, c, NULL, NULL);
        put(&o, " %" PRIu64 "\n", c->c.requests);
    }
    put_family(&o, "switchyard_fleet_request_duration_seconds", "histogram",
               "Request start to last byte, across the fleet.");
    for (size_t i = 0; i < st->cum.n; i++) {
        const struct cum *c = st->cum.vals[i];
        put_histogram(&o, "switchyard_fleet_request_duration_seconds", c, &c->lat);
    }
    put_family(&o, "switchyard_fleet_time_to_first_token_seconds", "histogram",
               "Request start to the first streamed token, across the fleet (streams only).");
    for (size_t i = 0; i < st->cum.n; i++) {
        const struct cum *c = st->cum.vals[i];
        if (c->stream)
            put_histogram(&o, "switchyard_fleet_time_to_first_token_seconds", c, &c->ttft);
    }
    put_family(&o, "switchyard_fleet_tokens_total", "counter",
               "Tokens the fleet's providers reported, by type.");
    for (size_t i = 0; i < st->cum.n; i++) {
        const struct cum *c = st->cum.vals[i];
        const uint64_t v[3] = {c->c.prompt, c->c.completion, c->c.cached};
        for (int k = 0; k < 3; k++) {
            put(&o, "switchyard_fleet_tokens_total");
            put_labels(&o, c, "type", kinds[k]);
            put(&o, " %" PRIu64 "\n", v[k]);
        }
    }
    put_family(&o, "switchyard_fleet_cost_usd_total", "counter",
               "What the fleet's requests cost at the policy's prices, in US dollars.");
    for (size_t i = 0; i < st->cum.n; i++) {
        const struct cum *c = st->cum.vals[i];
        put(&o, "switchyard_fleet_cost_usd_total");
        put_labels(&o, c, NULL, NULL);
        put(&o, " %" PRIu64 ".%09" PRIu64 "\n", c->c.cost_nusd / 1000000000u,
            c->c.cost_nusd % 1000000000u);
    }
    put_family(&o, "switchyard_fleet_upstream_errors_total", "counter",
               "Failed upstream attempts across the fleet, by provider and status or failure.");
    for (size_t i = 0; i < st->cum_errs.n; i++) {
        const struct err_count *e = st->cum_errs.vals[i];
        put(&o, "switchyard_fleet_upstream_errors_total{provider=\"");
        put_value(&o, e->provider);
        put(&o, "\",code=\"");
        put_value(&o, e->code);
        put(&o, "\"} %" PRIu64 "\n", e->count);
    }
    put_family(&o, "switchyard_fleet_attribution_requests_total", "counter",
               "Requests per tenant and attribution tag across the fleet.");
    for (size_t i = 0; i < st->cum_tags.n; i++) {
        const struct tag_count *t = st->cum_tags.vals[i];
        put(&o, "switchyard_fleet_attribution_requests_total{tenant=\"");
        put_value(&o, t->tenant);
        put(&o, "\",tag=\"");
        put_value(&o, t->tag);
        put(&o, "\"} %" PRIu64 "\n", t->requests);
    }
    put_family(&o, "switchyard_fleet_attribution_cost_usd_total", "counter",
               "Spend per tenant and attribution tag across the fleet, in US dollars.");
    for (size_t i = 0; i < st->cum_tags.n; i++) {
        const struct tag_count *t = st->cum_tags.vals[i];
        put(&o, "switchyard_fleet_attribution_cost_usd_total{tenant=\"");
        put_value(&o, t->tenant);
        put(&o, "\",tag=\"");
        put_value(&o, t->tag);
        put(&o, "\"} %" PRIu64 ".%09" PRIu64 "\n", t->cost_nusd / 1000000000u,
            t->cost_nusd % 1000000000u);
    }
    put_family(&o, "switchyard_fleet_circuit_breaker_state", "gauge",
               "Each proxy's breaker per target: 0 closed, 1 open, 2 half-open.");
    for (size_t i = 0; i < st->nodes.n; i++) {
        const struct node *n = st->nodes.vals[i];
        if (!n->connected)
            continue;
        for (size_t t = 0; t < n->n_targets; t++) {
            int rank = state_rank(n->targets[t].state);
            put(&o, "switchyard_fleet_circuit_breaker_state{node=\"");
            put_value(&o, st->nodes.keys[i]);
            put(&o, "\",provider=\"");
            put_value(&o, n->targets[t].provider);
            put(&o, "\",model=\"");
            put_value(&o, n->targets[t].model);
            put(&o, "\"} %d\n", rank == 2 ? 1 : rank == 1 ? 2 : 0);
        }
    }
    put_family(&o, "switchyard_fleet_requests_in_flight", "gauge",
               "Requests in flight on each connected proxy at its last report.");
    for (size_t i = 0; i < st->nodes.n; i++) {
        const struct node *n = st->nodes.vals[i];
        if (!n->connected)
            continue;
        put(&o, "switchyard_fleet_requests_in_flight{node=\"");
        put_value(&o, st->nodes.keys[i]);
        put(&o, "\"} %" PRId64 "\n", n->in_flight);
    }
    pthread_mutex_unlock(&st->lock);
    *len = o.len;
    return o.p;
}

/* ---- summaries ------------------------------------------------------------------------ */

static bool filter_match(const struct cp_stats_filter *f, char *const names[N_NAMES], int sc)
{
    return (!f->ok_only || sc == 0) && (!f->route || strcmp(f->route, names[N_ROUTE]) == 0) &&
           (!f->model || strcmp(f->model, names[N_MODEL]) == 0) &&
           (!f->arm || strcmp(f->arm, names[N_ARM]) == 0);
}

void cp_stats_summary(struct cp_stats *st, const struct cp_stats_filter *f, int window,
                      int64_t now_ms, struct cp_stats_summary *out)
{
    struct sy_hist *h = sy_xmalloc(sizeof(*h));

    memset(out, 0, sizeof(*out));
    sy_hist_init(h);
    pthread_mutex_lock(&st->lock);
    if (window < 0) {
        for (size_t i = 0; i < st->cum.n; i++) {
            const struct cum *c = st->cum.vals[i];
            if (!filter_match(f, c->names, c->sc))
                continue;
            out->requests += c->c.requests;
            out->cost_nusd += c->c.cost_nusd;
            if (c->sc == 2)
                out->errors += c->c.requests;
            sy_hist_merge(h, &c->lat);
        }
    } else {
        struct slot *slots[SEC_SLOTS > MIN_SLOTS ? SEC_SLOTS : MIN_SLOTS];
        int seconds;
        size_t n = window_slots(st, (enum cp_window)window, now_ms, slots, &seconds);

        for (size_t s = 0; s < n; s++) {
            for (size_t i = 0; i < slots[s]->series.n; i++) {
                const struct agg *a = slots[s]->series.vals[i];
                if (!filter_match(f, a->names, a->sc))
                    continue;
                out->requests += a->c.requests;
                out->cost_nusd += a->c.cost_nusd;
                if (a->sc == 2)
                    out->errors += a->c.requests;
                if (a->lat.n)
                    sy_hist_add_sparse(h, a->lat.idx, a->lat.cnt, a->lat.n, a->lat.sum, a->lat.min,
                                       a->lat.max);
            }
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (sy_hist_count(h)) {
        out->latency_p50_ms = (double)sy_hist_quantile(h, 0.5) / 1000;
        out->latency_p95_ms = (double)sy_hist_quantile(h, 0.95) / 1000;
    }
    free(h);
}
