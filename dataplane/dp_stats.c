/* dataplane/dp_stats.c - per-worker series table (single writer, lock-free readers) and
 * the merged view.
 *
 * Writer side: find or create the series for the outcome's key, then update it between
 * two seqlock bumps, with relaxed loads and stores only. Reader side: copy each published
 * series while its seqlock is even and unchanged, add the copy to the view's row for the
 * same key. See dp_stats.h for the threading contract.
 */
#include "dp_stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_accesslog.h"
#include "sy_policy.h"
#include "sy_util.h"

/* A reader that keeps losing the race to its writer (a worker recording into the same
 * series back to back for the whole copy) settles, after this many tries (about a
 * millisecond), for a copy that may hold records half-applied, rather than spin: every
 * value in it is still whole. */
#define DP_STATS_READ_TRIES 1000

static inline uint64_t get(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void add(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

const char *dp_status_class_name(enum dp_status_class c)
{
    static const char *const names[DP_STATUS_CLASSES] = {"2xx", "4xx", "5xx"};
    return (unsigned)c < DP_STATUS_CLASSES ? names[c] : "5xx";
}

static enum dp_status_class status_class(int status)
{
    if (status >= 500 || status < 100)
        return DP_STATUS_5XX; /* no status at all is our failure */
    if (status >= 400)
        return DP_STATUS_4XX;
    return DP_STATUS_2XX;
}

/* Length of <s> as a label value: at most <max> - 1 bytes, cut before a UTF-8
 * continuation byte so the value stays valid UTF-8. */
static size_t name_len(const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    if (n < max)
        return n;
    n = max - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* Hashes <n> bytes eight at a time (a multiply-xorshift mix per word; the last word may
 * overlap the one before): the key hash is on every record, and a byte-at-a-time hash of
 * three names was most of its cost. */
static inline uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    uint64_t w = 0;

    h ^= n * 0x9e3779b97f4a7c15ull; /* ("ab", "c") and ("a", "bc") differ */
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&w, s + i, 8);
            h = (h ^ w) * 0xff51afd7ed558ccdull;
            h ^= h >> 32;
        }
        memcpy(&w, s + n - 8, 8);
    } else {
        for (; n > 0; n--)
            w = (w << 8) | (unsigned char)s[n - 1];
    }
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

#define HASH_SEED 0xcbf29ce484222325ull

/* The key of an outcome, as lengths into the entry's own strings (no copy on the hot path). */
struct lookup {
    const char *name[DP_STATS_DIMS];
    size_t len[DP_STATS_DIMS];
    enum dp_status_class sc;
    bool stream;
    uint64_t hash;
};

static void lookup_init(struct lookup *l, const char *const names[DP_STATS_DIMS],
                        enum dp_status_class sc, bool stream)
{
    uint64_t h = HASH_SEED;

    for (int i = 0; i < DP_STATS_DIMS; i++) {
        l->name[i] = names[i] ? names[i] : "";
        l->len[i] = name_len(l->name[i], DP_STATS_NAME_MAX);
        h = hash_bytes(h, l->name[i], l->len[i]);
    }
    l->sc = sc;
    l->stream = stream;
    l->hash = hash_bytes(h, "", 0) ^ ((uint64_t)sc << 1 | (uint64_t)stream);
}

static bool name_is(const char *stored, const char *s, size_t len)
{
    return memcmp(stored, s, len) == 0 && stored[len] == '\0';
}

static bool key_matches(const struct dp_stats_key *k, uint64_t hash, uint64_t want,
                        const struct lookup *l)
{
    if (hash != want || k->status_class != l->sc || k->stream != l->stream)
        return false;
    for (int i = 0; i < DP_STATS_DIMS; i++) {
        if (!name_is(k->name[i], l->name[i], l->len[i]))
            return false;
    }
    return true;
}

static void key_fill(struct dp_stats_key *k, const struct lookup *l)
{
    for (int i = 0; i < DP_STATS_DIMS; i++) {
        memcpy(k->name[i], l->name[i], l->len[i]);
        k->name[i][l->len[i]] = '\0';
    }
    k->status_class = l->sc;
    k->stream = l->stream;
}

static struct dp_stats_series *series_new(const struct lookup *l)
{
    struct dp_stats_series *s = sy_xcalloc(1, sizeof(*s));

    key_fill(&s->key, l);
    s->hash = l->hash;
    sy_hist_init(&s->latency);
    sy_hist_init(&s->ttft);
    return s;
}

void dp_stats_init(struct dp_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < DP_STATS_SLOTS; i++)
        atomic_init(&st->slots[i], NULL);
    for (int c = 0; c < DP_STATUS_CLASSES; c++) {
        atomic_init(&st->overflow[c][0], NULL);
        atomic_init(&st->overflow[c][1], NULL);
    }
    snprintf(st->tag_overflow.tenant, sizeof(st->tag_overflow.tenant), "%s", DP_STATS_OTHER);
    snprintf(st->tag_overflow.tag, sizeof(st->tag_overflow.tag), "%s", DP_STATS_OTHER);
    atomic_store_explicit(&st->tag_overflow.used, true, memory_order_release);
    snprintf(st->err_overflow.provider, sizeof(st->err_overflow.provider), "%s", DP_STATS_OTHER);
    snprintf(st->err_overflow.code, sizeof(st->err_overflow.code), "%s", DP_STATS_OTHER);
    atomic_store_explicit(&st->err_overflow.used, true, memory_order_release);
}

void dp_stats_cleanup(struct dp_stats *st)
{
    for (size_t i = 0; i < DP_STATS_SLOTS; i++) {
        free(atomic_load_explicit(&st->slots[i], memory_order_relaxed));
        atomic_store_explicit(&st->slots[i], NULL, memory_order_relaxed);
    }
    for (int c = 0; c < DP_STATUS_CLASSES; c++) {
        for (int s = 0; s < 2; s++) {
            free(atomic_load_explicit(&st->overflow[c][s], memory_order_relaxed));
            atomic_store_explicit(&st->overflow[c][s], NULL, memory_order_relaxed);
        }
    }
    memset(st->cache, 0, sizeof(st->cache));
    st->n_series = 0;
}

void dp_stats_begin(struct dp_stats *st)
{
    atomic_store_explicit(&st->in_flight,
                          atomic_load_explicit(&st->in_flight, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The series for <l>, created when new; the overflow series when the table is full. */
static struct dp_stats_series *series_for(struct dp_stats *st, const struct lookup *l)
{
    size_t mask = DP_STATS_SLOTS - 1, i = (size_t)l->hash & mask;
    struct dp_stats_series *s = NULL;
    _Atomic(struct dp_stats_series *) *of;
    struct lookup other;

    for (size_t probes = 0; probes < DP_STATS_SLOTS; probes++, i = (i + 1) & mask) {
        /* Only this thread stores slots: a relaxed load sees its own stores. */
        s = atomic_load_explicit(&st->slots[i], memory_order_relaxed);
        if (!s)
            break;
        if (key_matches(&s->key, s->hash, l->hash, l))
            return s;
    }
    if (!s && st->n_series < DP_STATS_MAX_SERIES) {
        s = series_new(l);
        st->n_series++;
        /* Release: a reader that sees the pointer sees the key and the zeroed counters. */
        atomic_store_explicit(&st->slots[i], s, memory_order_release);
        return s;
    }
    add(&st->dropped, 1);
    of = &st->overflow[l->sc][l->stream];
    s = atomic_load_explicit(of, memory_order_relaxed);
    if (!s) {
        const char *const others[DP_STATS_DIMS] = {DP_STATS_OTHER, DP_STATS_OTHER, DP_STATS_OTHER,
                                                   DP_STATS_OTHER, DP_STATS_OTHER};
        lookup_init(&other, others, l->sc, l->stream);
        s = series_new(&other);
        atomic_store_explicit(of, s, memory_order_release);
    }
    return s;
}

static uint64_t tokens(int64_t n)
{
    return n > 0 ? (uint64_t)n : 0; /* -1: unknown */
}

/* The first of the two cache entries (a set) that may hold this key. */
static size_t cache_set(const char *const names[DP_STATS_DIMS], enum dp_status_class sc,
                        bool stream)
{
    uint64_t h = 0;

    for (int i = 0; i < DP_STATS_DIMS; i++)
        h = (h ^ (uint64_t)(uintptr_t)names[i]) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h ^= (uint64_t)sc << 1 | (uint64_t)stream;
    return (size_t)((h >> 40) % (DP_STATS_CACHE / 2)) * 2;
}

static bool cache_hit(const struct dp_stats_cached *c, const char *const names[DP_STATS_DIMS],
                      enum dp_status_class sc, bool stream)
{
    const struct dp_stats_series *s = c->series;

    if (!s || c->status_class != sc || c->stream != stream)
        return false;
    for (int i = 0; i < DP_STATS_DIMS; i++) {
        if (c->name[i] != names[i])
            return false;
    }
    for (int i = 0; i < DP_STATS_DIMS; i++) {
        if (strcmp(s->key.name[i], names[i] ? names[i] : "") != 0)
            return false;
    }
    return true;
}

/* The series for the outcome: from the cache when the same name pointers were seen and
 * still spell the series' key (addresses are reused after a policy swap), else by hashing
 * the names. The set's entries are kept most recent first. Names that were cut, and keys
 * that went to an overflow series (every drop must be counted), are not cached. */
static struct dp_stats_series *series_of(struct dp_stats *st, const struct dp_access_entry *e,
                                         enum dp_status_class sc)
{
    const char *const names[DP_STATS_DIMS] = {e->route, e->provider, e->model,
                                              e->tenant ? e->tenant->name : NULL, e->arm};
    struct dp_stats_cached *set = &st->cache[cache_set(names, sc, e->stream)];
    struct dp_stats_cached hit;
    struct dp_stats_series *s;
    struct lookup l;

    if (cache_hit(&set[0], names, sc, e->stream))
        return set[0].series;
    if (cache_hit(&set[1], names, sc, e->stream)) {
        hit = set[1];
        set[1] = set[0];
        set[0] = hit;
        return hit.series;
    }
    lookup_init(&l, names, sc, e->stream);
    s = series_for(st, &l);
    if (s == atomic_load_explicit(&st->overflow[sc][e->stream], memory_order_relaxed))
        return s;
    for (int i = 0; i < DP_STATS_DIMS; i++) {
        if (l.name[i][l.len[i]] != '\0')
            return s;
    }
    set[1] = set[0];
    memcpy(set[0].name, names, sizeof(set[0].name));
    set[0].status_class = sc;
    set[0].stream = e->stream;
    set[0].series = s;
    return s;
}

/* The attribution pair (<tenant>, <tag>) (<tag_len> bytes), created while there is room;
 * user tags beyond DP_STATS_MAX_USERS become user:_other, the rest the overflow pair. */
static struct dp_stats_tag *tag_for(struct dp_stats *st, const char *tenant, const char *tag,
                                    size_t tag_len, bool user)
{
    size_t tlen = name_len(tenant, DP_STATS_NAME_MAX), mask = DP_STATS_TAG_SLOTS - 1, i;
    bool user_other = user && tag_len == 11 && memcmp(tag, "user:" DP_STATS_OTHER, 11) == 0;
    uint64_t h;

    if (tag_len >= DP_STATS_TAG_MAX)
        tag_len = DP_STATS_TAG_MAX - 1;
    h = hash_bytes(hash_bytes(HASH_SEED, tenant, tlen), tag, tag_len);
    i = (size_t)h & mask;
    for (size_t probes = 0; probes < DP_STATS_TAG_SLOTS; probes++, i = (i + 1) & mask) {
        struct dp_stats_tag *x = &st->tags[i];
        if (!atomic_load_explicit(&x->used, memory_order_relaxed)) {
            if (st->n_tags >= DP_STATS_MAX_TAGS ||
                (user && !user_other && st->n_user_tags >= DP_STATS_MAX_USERS))
                break;
            memcpy(x->tenant, tenant, tlen);
            x->tenant[tlen] = '\0';
            memcpy(x->tag, tag, tag_len);
            x->tag[tag_len] = '\0';
            x->hash = h;
            st->n_tags++;
            st->n_user_tags += user && !user_other;
            atomic_store_explicit(&x->used, true, memory_order_release);
            return x;
        }
        if (x->hash == h && name_is(x->tenant, tenant, tlen) && name_is(x->tag, tag, tag_len))
            return x;
    }
    if (user && !user_other)
        return tag_for(st, tenant, "user:" DP_STATS_OTHER, 11, true);
    return &st->tag_overflow;
}

static void tag_add(struct dp_stats_tag *x, const struct dp_access_entry *e, uint64_t cost)
{
    add(&x->requests, 1);
    add(&x->prompt_tokens, e->prompt_tokens > 0 ? (uint64_t)e->prompt_tokens : 0);
    add(&x->completion_tokens, e->completion_tokens > 0 ? (uint64_t)e->completion_tokens : 0);
    add(&x->cost_nusd, cost);
}

/* Counts the outcome for each of its tags and its user. */
static void record_tags(struct dp_stats *st, const struct dp_access_entry *e, uint64_t cost)
{
    const char *tenant = e->tenant ? e->tenant->name : "";
    char user[DP_STATS_TAG_MAX];

    for (const char *p = e->tags; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0)
            tag_add(tag_for(st, tenant, p, n, false), e, cost);
        p += n;
        if (*p == ',')
            p++;
    }
    if (e->user && e->user[0]) {
        int n = snprintf(user, sizeof(user), "user:%s", e->user);
        tag_add(tag_for(st, tenant, user, n < 0 ? 0 : (size_t)n, true), e, cost);
    }
}

void dp_stats_record(struct dp_stats *st, const struct dp_access_entry *e)
{
    enum dp_status_class sc = status_class(e->status);
    struct dp_stats_series *s;
    unsigned seq;
    /* A negative, NaN or absurd cost counts as nothing; (x + 0.5) rounds a positive x. */
    uint64_t cost = e->cost_usd > 0 && e->cost_usd < 1e9 ? (uint64_t)(e->cost_usd * 1e9 + 0.5) : 0;

    atomic_store_explicit(&st->in_flight,
                          atomic_load_explicit(&st->in_flight, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    s = series_of(st, e, sc);

    seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    /* The odd sequence is visible before any of the stores below (Boehm's seqlock). */
    atomic_thread_fence(memory_order_release);
    add(&s->requests, 1);
    add(&s->prompt_tokens, tokens(e->prompt_tokens));
    add(&s->completion_tokens, tokens(e->completion_tokens));
    add(&s->cached_tokens, tokens(e->cached_tokens));
    add(&s->cost_nusd, cost);
    sy_hist_record(&s->latency, e->latency_us);
    if (e->stream && e->ttft_us > 0)
        sy_hist_record(&s->ttft, e->ttft_us);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
    if ((e->tags && e->tags[0]) || (e->user && e->user[0]))
        record_tags(st, e, cost);
}

void dp_stats_upstream_error(struct dp_stats *st, const char *provider, int http_status,
                             const char *code)
{
    char label[DP_STATS_CODE_MAX];
    size_t plen, clen, mask = DP_STATS_ERR_SLOTS - 1, i;
    struct dp_stats_err *e = NULL;
    uint64_t h;

    if (http_status >= 400)
        snprintf(label, sizeof(label), "%d", http_status);
    else
        snprintf(label, sizeof(label), "%s", code && *code ? code : "upstream_error");
    provider = provider ? provider : "";
    plen = name_len(provider, DP_STATS_NAME_MAX);
    clen = name_len(label, DP_STATS_CODE_MAX);
    label[clen] = '\0';
    h = hash_bytes(hash_bytes(HASH_SEED, provider, plen), label, clen);
    i = (size_t)h & mask;
    for (size_t probes = 0; probes < DP_STATS_ERR_SLOTS; probes++, i = (i + 1) & mask) {
        struct dp_stats_err *x = &st->errs[i];
        if (!atomic_load_explicit(&x->used, memory_order_relaxed)) {
            if (st->n_errs >= DP_STATS_MAX_ERRS)
                break;
            memcpy(x->provider, provider, plen);
            x->provider[plen] = '\0';
            memcpy(x->code, label, clen + 1);
            x->hash = h;
            st->n_errs++;
            atomic_store_explicit(&x->used, true, memory_order_release);
            e = x;
            break;
        }
        if (x->hash == h && name_is(x->provider, provider, plen) && strcmp(x->code, label) == 0) {
            e = x;
            break;
        }
    }
    add(e ? &e->count : &st->err_overflow.count, 1);
}

/* ---- the view -------------------------------------------------------------------------- */

struct dp_stats_view *dp_stats_view_new(void)
{
    struct dp_stats_view *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    v->scratch = malloc(sizeof(*v->scratch));
    if (!v->scratch) {
        free(v);
        return NULL;
    }
    return v;
}

void dp_stats_view_free(struct dp_stats_view *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_rows; i++)
        free(v->rows[i]);
    free(v->rows);
    free(v->errs);
    free(v->tags);
    free(v->index);
    free(v->scratch);
    free(v);
}

/* Copies <s> into <r> (key included) as of one moment between two of its records. Returns
 * false when it gave up and the copy may be torn. */
static bool series_copy(struct dp_stats_row *r, const struct dp_stats_series *s)
{
    unsigned s1, s2;

    r->key = s->key;
    r->hash = s->hash;
    for (int tries = 1;; tries++) {
        /* Outside the read window: keep the window short, so the writer rarely hits it. */
        sy_hist_init(&r->latency);
        sy_hist_init(&r->ttft);
        s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        r->requests = get(&s->requests);
        r->prompt_tokens = get(&s->prompt_tokens);
        r->completion_tokens = get(&s->completion_tokens);
        r->cached_tokens = get(&s->cached_tokens);
        r->cost_nusd = get(&s->cost_nusd);
        sy_hist_merge(&r->latency, &s->latency);
        sy_hist_merge(&r->ttft, &s->ttft);
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if (s1 == s2 && !(s1 & 1))
            return true;
        if (tries >= DP_STATS_READ_TRIES)
            return false;
    }
}

static bool row_key_eq(const struct dp_stats_key *a, const struct dp_stats_key *b)
{
    if (a->status_class != b->status_class || a->stream != b->stream)
        return false;
    for (int i = 0; i < DP_STATS_DIMS; i++) {
        if (strcmp(a->name[i], b->name[i]) != 0)
            return false;
    }
    return true;
}

static int index_grow(struct dp_stats_view *v)
{
    size_t cap = v->index_cap ? v->index_cap * 2 : 64, mask = cap - 1;
    size_t *idx = malloc(cap * sizeof(*idx));

    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++)
        idx[i] = SIZE_MAX;
    for (size_t r = 0; r < v->n_rows; r++) {
        size_t i = (size_t)v->rows[r]->hash & mask;
        while (idx[i] != SIZE_MAX)
            i = (i + 1) & mask;
        idx[i] = r;
    }
    free(v->index);
    v->index = idx;
    v->index_cap = cap;
    return 0;
}

/* Adds the copy in <c> to the row with its key, creating the row. */
static int view_add_row(struct dp_stats_view *v, const struct dp_stats_row *c)
{
    size_t mask, i;
    struct dp_stats_row *r;

    /* Keep the index at most half full. */
    if ((v->n_rows + 1) * 2 > v->index_cap && index_grow(v) < 0)
        return -ENOMEM;
    mask = v->index_cap - 1;
    for (i = (size_t)c->hash & mask; v->index[i] != SIZE_MAX; i = (i + 1) & mask) {
        r = v->rows[v->index[i]];
        if (r->hash == c->hash && row_key_eq(&r->key, &c->key))
            goto out_add;
    }
    if (v->n_rows == v->cap_rows) {
        size_t cap = v->cap_rows ? v->cap_rows * 2 : 16;
        struct dp_stats_row **rows = realloc(v->rows, cap * sizeof(*rows));
        if (!rows)
            return -ENOMEM;
        v->rows = rows;
        v->cap_rows = cap;
    }
    r = malloc(sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->key = c->key;
    r->hash = c->hash;
    r->requests = r->prompt_tokens = r->completion_tokens = r->cached_tokens = 0;
    r->cost_nusd = 0;
    sy_hist_init(&r->latency);
    sy_hist_init(&r->ttft);
    v->index[i] = v->n_rows;
    v->rows[v->n_rows++] = r;

out_add:
    r->requests += c->requests;
    r->prompt_tokens += c->prompt_tokens;
    r->completion_tokens += c->completion_tokens;
    r->cached_tokens += c->cached_tokens;
    r->cost_nusd += c->cost_nusd;
    sy_hist_merge(&r->latency, &c->latency);
    sy_hist_merge(&r->ttft, &c->ttft);
    return 0;
}

static int view_add_err(struct dp_stats_view *v, const struct dp_stats_err *e)
{
    uint64_t n = get(&e->count);
    struct dp_stats_err_row *r;

    if (n == 0)
        return 0;
    /* A few dozen pairs per worker: a linear search is enough. */
    for (size_t i = 0; i < v->n_errs; i++) {
        r = &v->errs[i];
        if (strcmp(r->provider, e->provider) == 0 && strcmp(r->code, e->code) == 0) {
            r->count += n;
            return 0;
        }
    }
    if (v->n_errs == v->cap_errs) {
        size_t cap = v->cap_errs ? v->cap_errs * 2 : 16;
        struct dp_stats_err_row *errs = realloc(v->errs, cap * sizeof(*errs));
        if (!errs)
            return -ENOMEM;
        v->errs = errs;
        v->cap_errs = cap;
    }
    r = &v->errs[v->n_errs++];
    snprintf(r->provider, sizeof(r->provider), "%s", e->provider);
    snprintf(r->code, sizeof(r->code), "%s", e->code);
    r->count = n;
    return 0;
}

static int view_add_series(struct dp_stats_view *v, const struct dp_stats_series *s)
{
    if (!s)
        return 0;
    if (!series_copy(v->scratch, s))
        v->torn++;
    if (v->scratch->requests == 0)
        return 0; /* published a moment ago, not counted yet */
    return view_add_row(v, v->scratch);
}

static int view_add_tag(struct dp_stats_view *v, const struct dp_stats_tag *x)
{
    uint64_t n = get(&x->requests);
    struct dp_stats_tag_row *r;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < v->n_tags; i++) {
        r = &v->tags[i];
        if (strcmp(r->tenant, x->tenant) == 0 && strcmp(r->tag, x->tag) == 0)
            goto out_add;
    }
    if (v->n_tags == v->cap_tags) {
        size_t cap = v->cap_tags ? v->cap_tags * 2 : 16;
        struct dp_stats_tag_row *tags = realloc(v->tags, cap * sizeof(*tags));
        if (!tags)
            return -ENOMEM;
        v->tags = tags;
        v->cap_tags = cap;
    }
    r = &v->tags[v->n_tags++];
    memset(r, 0, sizeof(*r));
    snprintf(r->tenant, sizeof(r->tenant), "%s", x->tenant);
    snprintf(r->tag, sizeof(r->tag), "%s", x->tag);
out_add:
    r->requests += n;
    r->prompt_tokens += get(&x->prompt_tokens);
    r->completion_tokens += get(&x->completion_tokens);
    r->cost_nusd += get(&x->cost_nusd);
    return 0;
}

int dp_stats_view_add(struct dp_stats_view *v, const struct dp_stats *st)
{
    int rc;

    for (size_t i = 0; i < DP_STATS_SLOTS; i++) {
        rc = view_add_series(v, atomic_load_explicit(&st->slots[i], memory_order_acquire));
        if (rc < 0)
            return rc;
    }
    for (int c = 0; c < DP_STATUS_CLASSES; c++) {
        for (int s = 0; s < 2; s++) {
            rc =
                view_add_series(v, atomic_load_explicit(&st->overflow[c][s], memory_order_acquire));
            if (rc < 0)
                return rc;
        }
    }
    for (size_t i = 0; i < DP_STATS_ERR_SLOTS; i++) {
        if (!atomic_load_explicit(&st->errs[i].used, memory_order_acquire))
            continue;
        rc = view_add_err(v, &st->errs[i]);
        if (rc < 0)
            return rc;
    }
    rc = view_add_err(v, &st->err_overflow);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < DP_STATS_TAG_SLOTS; i++) {
        if (!atomic_load_explicit(&st->tags[i].used, memory_order_acquire))
            continue;
        rc = view_add_tag(v, &st->tags[i]);
        if (rc < 0)
            return rc;
    }
    rc = view_add_tag(v, &st->tag_overflow);
    if (rc < 0)
        return rc;
    v->in_flight += atomic_load_explicit(&st->in_flight, memory_order_relaxed);
    v->dropped += get(&st->dropped);
    return 0;
}

static int key_cmp(const struct dp_stats_key *a, const struct dp_stats_key *b)
{
    int d;

    for (int i = 0; i < DP_STATS_DIMS; i++) {
        if ((d = strcmp(a->name[i], b->name[i])) != 0)
            return d;
    }
    if (a->status_class != b->status_class)
        return (int)a->status_class - (int)b->status_class;
    return (int)a->stream - (int)b->stream;
}

static int row_cmp(const void *pa, const void *pb)
{
    return key_cmp(&(*(struct dp_stats_row *const *)pa)->key,
                   &(*(struct dp_stats_row *const *)pb)->key);
}

static int err_cmp(const void *pa, const void *pb)
{
    const struct dp_stats_err_row *a = pa, *b = pb;
    int d = strcmp(a->provider, b->provider);
    return d ? d : strcmp(a->code, b->code);
}

static int tag_cmp(const void *pa, const void *pb)
{
    const struct dp_stats_tag_row *a = pa, *b = pb;
    int d = strcmp(a->tenant, b->tenant);
    return d ? d : strcmp(a->tag, b->tag);
}

void dp_stats_view_finish(struct dp_stats_view *v)
{
    if (v->n_tags > 1)
        qsort(v->tags, v->n_tags, sizeof(*v->tags), tag_cmp);
    if (v->n_rows > 1)
        qsort(v->rows, v->n_rows, sizeof(*v->rows), row_cmp);
    if (v->n_errs > 1)
        qsort(v->errs, v->n_errs, sizeof(*v->errs), err_cmp);
    /* The index points into the old order: a finished view takes no more adds. */
    free(v->index);
    v->index = NULL;
    v->index_cap = 0;
}

int dp_stats_view_diff(const struct dp_stats_view *cur, const struct dp_stats_view *prev,
                       dp_stats_row_fn row_fn, dp_stats_err_fn err_fn, void *arg)
{
    struct dp_stats_row *d = malloc(sizeof(*d));
    size_t j = 0;

    if (!d)
        return -ENOMEM;
    /* Both are sorted by key, and a key never leaves a worker's table: a merge join. */
    for (size_t i = 0; i < cur->n_rows; i++) {
        const struct dp_stats_row *c = cur->rows[i], *p = NULL;
        int cmp = 1;

        while (prev && j < prev->n_rows && (cmp = key_cmp(&prev->rows[j]->key, &c->key)) < 0)
            j++;
        if (prev && j < prev->n_rows && cmp == 0)
            p = prev->rows[j];
        /* Every field on its own: a copy made while its writer recorded (torn) may hold a
         * request's count before its tokens, which then arrive with no new request. */
        if (p && p->requests >= c->requests && p->prompt_tokens >= c->prompt_tokens &&
            p->completion_tokens >= c->completion_tokens && p->cached_tokens >= c->cached_tokens &&
            p->cost_nusd >= c->cost_nusd &&
            sy_hist_count(&p->latency) >= sy_hist_count(&c->latency) &&
            sy_hist_count(&p->ttft) >= sy_hist_count(&c->ttft))
            continue;
        d->key = c->key;
        d->hash = c->hash;
#define SUB0(f) (p && p->f < c->f ? c->f - p->f : (p ? 0 : c->f))
        d->requests = SUB0(requests);
        d->prompt_tokens = SUB0(prompt_tokens);
        d->completion_tokens = SUB0(completion_tokens);
        d->cached_tokens = SUB0(cached_tokens);
        d->cost_nusd = SUB0(cost_nusd);
#undef SUB0
        if (p) {
            sy_hist_delta(&d->latency, &c->latency, &p->latency);
            sy_hist_delta(&d->ttft, &c->ttft, &p->ttft);
        } else {
            memcpy(&d->latency, &c->latency, sizeof(d->latency));
            memcpy(&d->ttft, &c->ttft, sizeof(d->ttft));
        }
        row_fn(d, arg);
    }
    free(d);
    for (size_t i = 0; i < cur->n_errs; i++) {
        const struct dp_stats_err_row *c = &cur->errs[i];
        struct dp_stats_err_row e = *c;
        for (size_t k = 0; prev && k < prev->n_errs; k++) {
            if (err_cmp(&prev->errs[k], c) == 0) {
                e.count = c->count > prev->errs[k].count ? c->count - prev->errs[k].count : 0;
                break;
            }
        }
        if (e.count)
            err_fn(&e, arg);
    }
    return 0;
}

void dp_stats_view_diff_tags(const struct dp_stats_view *cur, const struct dp_stats_view *prev,
                             dp_stats_tag_fn fn, void *arg)
{
    size_t j = 0;

    for (size_t i = 0; i < cur->n_tags; i++) {
        struct dp_stats_tag_row d = cur->tags[i];
        int cmp = 1;

        while (prev && j < prev->n_tags && (cmp = tag_cmp(&prev->tags[j], &d)) < 0)
            j++;
        if (prev && j < prev->n_tags && cmp == 0) {
            /* Each counter on its own (they are read one by one while the writer records): a
             * request's cost may show up one cut after its count. */
            const struct dp_stats_tag_row *p = &prev->tags[j];
            d.requests -= p->requests < d.requests ? p->requests : d.requests;
            d.prompt_tokens -=
                p->prompt_tokens < d.prompt_tokens ? p->prompt_tokens : d.prompt_tokens;
            d.completion_tokens -= p->completion_tokens < d.completion_tokens ? p->completion_tokens
                                                                              : d.completion_tokens;
            d.cost_nusd -= p->cost_nusd < d.cost_nusd ? p->cost_nusd : d.cost_nusd;
        }
        if (d.requests || d.prompt_tokens || d.completion_tokens || d.cost_nusd)
            fn(&d, arg);
    }
}
