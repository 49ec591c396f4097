/* controlplane/cp_spend.c - per-node daily spend ledgers in the store. See cp_spend.h. */
#define SY_LOG_MODULE "spend"

#include "cp_spend.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "cp_map.h"
#include "cp_store.h"
#include "sy_log.h"
#include "sy_policy.h"
#include "sy_util.h"

#define DAY_MS 86400000LL

struct entry {
    char *tenant, *model, *provider;
    uint64_t requests, prompt, completion, cached, cost_nusd;
};

struct ledger {
    char day[11];
    char *node;
    struct cp_map seen;    /* boot id -> uint64_t * (last seq counted) */
    struct cp_map entries; /* "tenant\x1fmodel" -> struct entry */
    bool dirty;
    int64_t mod_rev; /* of the stored copy this one extends; 0 = none in the store */
};

struct cp_spend {
    struct cp_store *store;
    pthread_mutex_t lock;
    struct cp_map ledgers; /* "day/node" -> struct ledger */
};

void cp_spend_day(int64_t unix_ms, char out[11])
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static void entry_free(void *p)
{
    struct entry *e = p;
    free(e->tenant);
    free(e->model);
    free(e->provider);
    free(e);
}

static void ledger_free(void *p)
{
    struct ledger *l = p;
    free(l->node);
    cp_map_clear(&l->seen, free);
    cp_map_clear(&l->entries, entry_free);
    free(l);
}

static struct entry *entry_get(struct cp_map *m, const char *tenant, const char *model,
                               const char *provider)
{
    char key[600];
    struct entry *e;

    snprintf(key, sizeof(key), "%s\x1f%s", tenant, model);
    e = cp_map_get(m, key);
    if (!e) {
        e = sy_xcalloc(1, sizeof(*e));
        e->tenant = sy_xstrdup(tenant);
        e->model = sy_xstrdup(model);
        e->provider = sy_xstrdup(provider);
        cp_map_put(m, key, e);
    }
    return e;
}

static uint64_t num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Adds the entries of a stored ledger document to <entries> (and its watermarks to <seen>
 * when not NULL). Returns false when it is not a ledger. */
static bool ledger_parse(const char *text, size_t len, struct cp_map *entries, struct cp_map *seen)
{
    cJSON *root = cJSON_ParseWithLength(text, len), *arr, *it;

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return false;
    }
    arr = cJSON_GetObjectItemCaseSensitive(root, "entries");
    cJSON_ArrayForEach(it, arr)
    {
        struct entry *e =
            entry_get(entries, str(it, "tenant"), str(it, "model"), str(it, "provider"));
        e->requests += num(it, "requests");
        e->prompt += num(it, "prompt_tokens");
        e->completion += num(it, "completion_tokens");
        e->cached += num(it, "cached_tokens");
        e->cost_nusd += num(it, "cost_nusd");
    }
    arr = seen ? cJSON_GetObjectItemCaseSensitive(root, "seen") : NULL;
    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsNumber(it) && !cp_map_get(seen, it->string)) {
            uint64_t *v = sy_xmalloc(sizeof(*v));
            *v = (uint64_t)it->valuedouble;
            cp_map_put(seen, it->string, v);
        }
    }
    cJSON_Delete(root);
    return true;
}

static char *ledger_print(const struct ledger *l)
{
    cJSON *root = cJSON_CreateObject(), *seen, *arr;
    char *out;

    cJSON_AddStringToObject(root, "node", l->node);
    cJSON_AddStringToObject(root, "day", l->day);
    seen = cJSON_AddObjectToObject(root, "seen");
    for (size_t i = 0; i < l->seen.n; i++)
        cJSON_AddNumberToObject(seen, l->seen.keys[i], (double)*(uint64_t *)l->seen.vals[i]);
    arr = cJSON_AddArrayToObject(root, "entries");
    for (size_t i = 0; i < l->entries.n; i++) {
        const struct entry *e = l->entries.vals[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", e->tenant);
        cJSON_AddStringToObject(o, "model", e->model);
        cJSON_AddStringToObject(o, "provider", e->provider);
        cJSON_AddNumberToObject(o, "requests", (double)e->requests);
        cJSON_AddNumberToObject(o, "prompt_tokens", (double)e->prompt);
        cJSON_AddNumberToObject(o, "completion_tokens", (double)e->completion);
        cJSON_AddNumberToObject(o, "cached_tokens", (double)e->cached);
        cJSON_AddNumberToObject(o, "cost_nusd", (double)e->cost_nusd);
        cJSON_AddItemToArray(arr, o);
    }
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static void ledger_key(char *buf, size_t cap, const char *day, const char *node)
{
    snprintf(buf, cap, "spend/%s/%s", day, node);
}

/* The ledger of (<day>, <node>), read from the store the first time. NULL with *rc set when
 * the store cannot be read. Lock held. */
static struct ledger *ledger_get(struct cp_spend *sp, const char *day, const char *node, int *rc)
{
    char key[CP_STORE_MAX_KEY];
    struct ledger *l;
    struct cp_kv *kv = NULL;

    snprintf(key, sizeof(key), "%s/%s", day, node);
    l = cp_map_get(&sp->ledgers, key);
    if (l)
        return l;
    ledger_key(key, sizeof(key), day, node);
    *rc = cp_store_get(sp->store, key, &kv);
    if (*rc < 0 && *rc != -ENOENT)
        return NULL;
    l = sy_xcalloc(1, sizeof(*l));
    snprintf(l->day, sizeof(l->day), "%s", day);
    l->node = sy_xstrdup(node);
    if (kv && !ledger_parse(kv->value, kv->value_len, &l->entries, &l->seen))
        sy_warn("%s: not a spend ledger; starting it over", key);
    l->mod_rev = kv ? kv->mod_revision : 0;
    cp_kv_free(kv);
    snprintf(key, sizeof(key), "%s/%s", day, node);
    cp_map_put(&sp->ledgers, key, l);
    *rc = 0;
    return l;
}

struct cp_spend *cp_spend_new(struct cp_store *store)
{
    struct cp_spend *sp = sy_xcalloc(1, sizeof(*sp));

    sp->store = store;
    pthread_mutex_init(&sp->lock, NULL);
    return sp;
}

void cp_spend_free(struct cp_spend *sp)
{
    if (!sp)
        return;
    cp_map_clear(&sp->ledgers, ledger_free);
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

/* The ledger <rep> belongs in (*out) and whether it is new (1), counted already (0), or
 * -errno when the store cannot be read. Lock held. */
static int place(struct cp_spend *sp, const Switchyard__V1__TelemetryReport *rep,
                 struct ledger **out)
{
    const char *node = rep->node && rep->node->id ? rep->node->id : "";
    int64_t end = rep->end_unix_ms > 0 ? rep->end_unix_ms : (int64_t)(sy_wall_us() / 1000);
    char day[11], prev[11];
    struct ledger *l, *lp;
    uint64_t mark = 0;
    int rc = 0;

    cp_spend_day(end, day);
    cp_spend_day(end - DAY_MS, prev);
    /* The watermark may sit in yesterday's ledger (a report just before midnight). */
    lp = ledger_get(sp, prev, node, &rc);
    l = lp ? ledger_get(sp, day, node, &rc) : NULL;
    if (!l)
        return rc;
    for (size_t i = 0; i < sp->ledgers.n; i++) {
        const struct ledger *x = sp->ledgers.vals[i];
        const uint64_t *s = strcmp(x->node, node) == 0 ? cp_map_get(&x->seen, rep->boot_id) : NULL;
        if (s && *s > mark)
            mark = *s;
    }
    *out = l;
    return rep->seq > mark;
}

int cp_spend_check(struct cp_spend *sp, const Switchyard__V1__TelemetryReport *rep)
{
    struct ledger *l;
    int rc;

    pthread_mutex_lock(&sp->lock);
    rc = place(sp, rep, &l);
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

void cp_spend_forget(struct cp_spend *sp, const char *node)
{
    struct cp_map keep = {0};

    pthread_mutex_lock(&sp->lock);
    for (size_t i = 0; i < sp->ledgers.n; i++) {
        struct ledger *l = sp->ledgers.vals[i];
        if (strcmp(l->node, node) == 0)
            ledger_free(l);
        else
            cp_map_put(&keep, sp->ledgers.keys[i], l);
    }
    cp_map_clear(&sp->ledgers, NULL);
    sp->ledgers = keep;
    pthread_mutex_unlock(&sp->lock);
}

int cp_spend_apply(struct cp_spend *sp, const Switchyard__V1__TelemetryReport *rep)
{
    struct ledger *l = NULL;
    uint64_t *seen;
    bool counted = false;
    int rc;

    pthread_mutex_lock(&sp->lock);
    rc = place(sp, rep, &l);
    if (rc <= 0) {
        pthread_mutex_unlock(&sp->lock);
        return rc;
    }
    for (size_t i = 0; i < rep->n_series; i++) {
        const Switchyard__V1__SeriesDelta *d = rep->series[i];
        struct entry *e;
        if (!d->model[0])
            continue; /* refused before a model was chosen: no spend */
        if (d->requests == 0 && d->prompt_tokens == 0 && d->completion_tokens == 0 &&
            d->cached_tokens == 0 && d->cost_nusd == 0)
            continue;
        e = entry_get(&l->entries, d->tenant, d->model, d->provider);
        e->requests += d->requests;
        e->prompt += d->prompt_tokens;
        e->completion += d->completion_tokens;
        e->cached += d->cached_tokens;
        e->cost_nusd += d->cost_nusd;
        counted = true;
    }
    seen = cp_map_get(&l->seen, rep->boot_id);
    if (!seen) {
        seen = sy_xcalloc(1, sizeof(*seen));
        cp_map_put(&l->seen, rep->boot_id, seen);
    }
    *seen = rep->seq;
    /* A report without traffic need not be written: replayed, it counts nothing either. */
    if (counted)
        l->dirty = true;
    pthread_mutex_unlock(&sp->lock);
    return 1;
}

int cp_spend_flush(struct cp_spend *sp, cp_spend_failed_fn failed, void *arg)
{
    char key[CP_STORE_MAX_KEY];
    struct cp_map keep = {0};
    int rc = 0;

    pthread_mutex_lock(&sp->lock);
    for (size_t i = 0; i < sp->ledgers.n; i++) {
        struct ledger *l = sp->ledgers.vals[i];
        char *text;
        int64_t rev = 0;
        int r = 0;

        if (l->dirty) {
            text = ledger_print(l);
            ledger_key(key, sizeof(key), l->day, l->node);
            /* Only over the copy this one extends: another replica may have written it since
             * (the node's stream moved), and its counts must not be overwritten. */
            r = cp_store_cas(sp->store, key, text, strlen(text), l->mod_rev, &rev);
            free(text);
            if (r == 0) {
                l->dirty = false;
                l->mod_rev = rev;
            } else {
                rc = rc ? rc : r;
                if (failed)
                    failed(arg, l->node, r);
                if (r == -EEXIST) {
                    /* Nothing in this copy since its last write was acknowledged: the node
                     * sends it again, and it is counted on the stored copy. */
                    sy_warn("%s: written meanwhile by another control plane; counting %s's "
                            "unacknowledged reports again from the stored copy",
                            key, l->node);
                    ledger_free(l);
                    continue;
                }
            }
        }
        cp_map_put(&keep, sp->ledgers.keys[i], l);
    }
    cp_map_clear(&sp->ledgers, NULL);
    sp->ledgers = keep;
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

void cp_spend_trim(struct cp_spend *sp, int64_t now_ms)
{
    char prev[11];
    struct cp_map keep = {0};

    cp_spend_day(now_ms - DAY_MS, prev);
    pthread_mutex_lock(&sp->lock);
    for (size_t i = 0; i < sp->ledgers.n; i++) {
        struct ledger *l = sp->ledgers.vals[i];
        if (!l->dirty && strcmp(l->day, prev) < 0)
            ledger_free(l);
        else
            cp_map_put(&keep, sp->ledgers.keys[i], l);
    }
    cp_map_clear(&sp->ledgers, NULL); /* the values moved to <keep> or were freed */
    sp->ledgers = keep;
    pthread_mutex_unlock(&sp->lock);
}

/* ---- GET /v1/spend -------------------------------------------------------------------- */

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* The value of <n> digits (checked by the caller). */
static int number(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Parses "YYYY-MM-DD" (day) or "YYYY-MM" (month) into the period's bounds. */
static bool period_bounds(bool month, const char *date, int64_t *start_ms, int64_t *end_ms)
{
    struct tm tm = {0}, chk;
    time_t t;
    size_t len = strlen(date);

    if (len != (month ? 7u : 10u) || !digits(date, 4) || date[4] != '-' || !digits(date + 5, 2))
        return false;
    if (!month && (date[7] != '-' || !digits(date + 8, 2)))
        return false;
    tm.tm_year = number(date, 4) - 1900;
    tm.tm_mon = number(date + 5, 2) - 1;
    tm.tm_mday = month ? 1 : number(date + 8, 2);
    if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1)
        return false;
    chk = tm;
    t = timegm(&tm); /* normalises <tm>: 2026-02-30 becomes 2026-03-02 */
    if (chk.tm_mday != tm.tm_mday || chk.tm_mon != tm.tm_mon)
        return false;
    *start_ms = (int64_t)t * 1000;
    if (month) {
        tm.tm_mon++;
        *end_ms = (int64_t)timegm(&tm) * 1000;
    } else {
        *end_ms = *start_ms + DAY_MS;
    }
    return true;
}

static double usd(uint64_t nusd)
{
    return (double)nusd / 1e9;
}

struct tenant_sum {
    char *name;
    struct entry total;
    struct cp_map models; /* model -> struct entry (borrowed from <all>) */
};

static void tenant_sum_free(void *p)
{
    struct tenant_sum *t = p;
    free(t->name);
    cp_map_clear(&t->models, NULL);
    free(t);
}

static void counts_json(cJSON *o, const struct entry *e)
{
    cJSON_AddNumberToObject(o, "requests", (double)e->requests);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)e->prompt);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)e->completion);
    cJSON_AddNumberToObject(o, "cached_tokens", (double)e->cached);
    cJSON_AddNumberToObject(o, "cost_usd", usd(e->cost_nusd));
}

static int tenant_cmp(const void *pa, const void *pb)
{
    const struct tenant_sum *a = *(struct tenant_sum *const *)pa;
    const struct tenant_sum *b = *(struct tenant_sum *const *)pb;
    if (a->total.cost_nusd != b->total.cost_nusd)
        return a->total.cost_nusd > b->total.cost_nusd ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int entry_cmp(const void *pa, const void *pb)
{
    const struct entry *a = *(struct entry *const *)pa, *b = *(struct entry *const *)pb;
    if (a->cost_nusd != b->cost_nusd)
        return a->cost_nusd > b->cost_nusd ? -1 : 1;
    return strcmp(a->model, b->model);
}

cJSON *cp_spend_json(struct cp_spend *sp, const char *period, const char *date, int64_t now_ms,
                     const struct sy_policy *pol, int *status, char **errmsg)
{
    bool month;
    char cur[11], prefix[64];
    int64_t start, end;
    struct cp_kv *kvs = NULL;
    size_t n = 0;
    struct cp_map all = {0}, tenants = {0}, stale = {0};
    uint64_t total = 0;
    double frac;
    cJSON *root, *arr;
    struct tenant_sum **ts;
    int rc;

    if (!period || strcmp(period, "day") == 0) {
        month = false;
    } else if (strcmp(period, "month") == 0) {
        month = true;
    } else {
        *status = 400;
        *errmsg = sy_xasprintf("period \"%.40s\" is not one of: day, month", period);
        return NULL;
    }
    cp_spend_day(now_ms, cur);
    if (!date || !*date)
        date = month ? (cur[7] = '\0', cur) : cur;
    if (!period_bounds(month, date, &start, &end)) {
        *status = 400;
        *errmsg = sy_xasprintf("date \"%.40s\" is not a valid %s", date,
                               month ? "month (YYYY-MM)" : "day (YYYY-MM-DD)");
        return NULL;
    }
    snprintf(prefix, sizeof(prefix), month ? "spend/%s-" : "spend/%s/", date);
    rc = cp_store_range(sp->store, prefix, &kvs, &n);
    if (rc < 0) {
        *status = 503;
        *errmsg = sy_xasprintf("the store cannot be read: %s", strerror(-rc));
        return NULL;
    }
    /* The store, except where this replica's copy of a ledger is at least as new: it holds
     * the counts not written yet (at most a flush period old), and it may have been written
     * after the range was read. A copy older than the store's (another replica wrote since)
     * is dropped at its next flush, so the store's counts are the ones that stand. Reading
     * never writes: only the telemetry flusher, which knows what it acknowledged, does. */
    pthread_mutex_lock(&sp->lock);
    for (size_t i = 0; i < n; i++) {
        const struct ledger *l =
            strlen(kvs[i].key) > 6 ? cp_map_get(&sp->ledgers, kvs[i].key + 6) : NULL;
        if (l && l->mod_rev >= kvs[i].mod_revision)
            continue; /* read from memory below */
        ledger_parse(kvs[i].value, kvs[i].value_len, &all, NULL);
        if (l)
            cp_map_put(&stale, kvs[i].key, (void *)l);
    }
    for (size_t i = 0; i < sp->ledgers.n; i++) {
        const struct ledger *l = sp->ledgers.vals[i];
        char key[CP_STORE_MAX_KEY];
        char *text;

        ledger_key(key, sizeof(key), l->day, l->node);
        if (strncmp(key, prefix, strlen(prefix)) != 0 || cp_map_get(&stale, key))
            continue;
        text = ledger_print(l);
        ledger_parse(text, strlen(text), &all, NULL);
        free(text);
    }
    pthread_mutex_unlock(&sp->lock);
    cp_map_clear(&stale, NULL);
    cp_kv_array_free(kvs, n);

    for (size_t i = 0; i < all.n; i++) {
        struct entry *e = all.vals[i];
        struct tenant_sum *t = cp_map_get(&tenants, e->tenant);
        struct entry *m;
        if (!t) {
            t = sy_xcalloc(1, sizeof(*t));
            t->name = sy_xstrdup(e->tenant);
            cp_map_put(&tenants, e->tenant, t);
        }
        t->total.requests += e->requests;
        t->total.prompt += e->prompt;
        t->total.completion += e->completion;
        t->total.cached += e->cached;
        t->total.cost_nusd += e->cost_nusd;
        total += e->cost_nusd;
        /* The same model may come from several ledgers' entries: they were merged by key. */
        m = cp_map_get(&t->models, e->model);
        if (!m)
            cp_map_put(&t->models, e->model, e);
    }
    /* Tenants of the policy without spend are listed too, so budgets show. */
    for (size_t i = 0; pol && i < pol->n_tenants; i++) {
        if (!cp_map_get(&tenants, pol->tenants[i].name)) {
            struct tenant_sum *t = sy_xcalloc(1, sizeof(*t));
            t->name = sy_xstrdup(pol->tenants[i].name);
            cp_map_put(&tenants, t->name, t);
        }
    }

    frac = now_ms >= end     ? 1.0
           : now_ms <= start ? 0.0
                             : (double)(now_ms - start) / (double)(end - start);
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "period", month ? "month" : "day");
    cJSON_AddStringToObject(root, "date", date);
    cJSON_AddNumberToObject(root, "start_unix_ms", (double)start);
    cJSON_AddNumberToObject(root, "end_unix_ms", (double)end);
    cJSON_AddNumberToObject(root, "elapsed_fraction", frac);
    cJSON_AddNumberToObject(root, "total_usd", usd(total));
    cJSON_AddNumberToObject(root, "projected_usd", frac > 0 ? usd(total) / frac : 0);
    arr = cJSON_AddArrayToObject(root, "tenants");
    ts = sy_xmalloc((tenants.n ? tenants.n : 1) * sizeof(*ts));
    for (size_t i = 0; i < tenants.n; i++)
        ts[i] = tenants.vals[i];
    qsort(ts, tenants.n, sizeof(*ts), tenant_cmp);
    for (size_t i = 0; i < tenants.n; i++) {
        const struct tenant_sum *t = ts[i];
        const struct sy_tenant *pt = pol && t->name[0] ? sy_policy_find_tenant(pol, t->name) : NULL;
        cJSON *o = cJSON_CreateObject(), *labels, *models;
        struct entry **es;
        double budget = pt ? (month ? pt->budget_monthly_usd : pt->budget_daily_usd) : 0;

        cJSON_AddStringToObject(o, "tenant", t->name);
        labels = cJSON_AddObjectToObject(o, "labels");
        for (size_t k = 0; pt && k < pt->n_labels; k++)
            cJSON_AddStringToObject(labels, pt->labels[k].key, pt->labels[k].value);
        counts_json(o, &t->total);
        cJSON_AddNumberToObject(o, "projected_usd", frac > 0 ? usd(t->total.cost_nusd) / frac : 0);
        if (budget > 0)
            cJSON_AddNumberToObject(o, "budget_usd", budget);
        else
            cJSON_AddNullToObject(o, "budget_usd");
        models = cJSON_AddArrayToObject(o, "models");
        es = sy_xmalloc((t->models.n ? t->models.n : 1) * sizeof(*es));
        for (size_t k = 0; k < t->models.n; k++)
            es[k] = t->models.vals[k];
        qsort(es, t->models.n, sizeof(*es), entry_cmp);
        for (size_t k = 0; k < t->models.n; k++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "model", es[k]->model);
            cJSON_AddStringToObject(m, "provider", es[k]->provider);
            counts_json(m, es[k]);
            cJSON_AddItemToArray(models, m);
        }
        free(es);
        cJSON_AddItemToArray(arr, o);
    }
    free(ts);
    cp_map_clear(&tenants, tenant_sum_free);
    cp_map_clear(&all, entry_free);
    return root;
}
