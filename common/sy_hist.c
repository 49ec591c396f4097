/* common/sy_hist.c - log-linear histogram: bucket arithmetic, merge, quantiles.
 *
 * Bucket i < 128 holds the value i. Above, with k = floor(log2 v) and s = k - 6, bucket
 * (s << 6) + (v >> s) holds [(v >> s) << s, ((v >> s) + 1) << s): the top seven bits of v
 * pick it, so the index is one count-leading-zeros and a shift. Single writer; all fields
 * are relaxed atomics written with a load and a store (no read-modify-write), see
 * sy_hist.h for what a concurrent reader may see.
 */
#include "sy_hist.h"

#include <errno.h>

#define SUB ((uint64_t)1 << SY_HIST_SUB_BITS)

static inline uint64_t get(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void set(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline size_t bucket_of(uint64_t v)
{
    unsigned shift;

    if (v < 2 * SUB)
        return (size_t)v;
    shift = (unsigned)(63 - __builtin_clzll(v)) - SY_HIST_SUB_BITS;
    return ((size_t)shift << SY_HIST_SUB_BITS) + (size_t)(v >> shift);
}

static inline uint64_t bucket_low(size_t i)
{
    unsigned shift;

    if (i < 2 * SUB)
        return i;
    shift = (unsigned)(i >> SY_HIST_SUB_BITS) - 1;
    return ((uint64_t)(i & (SUB - 1)) | SUB) << shift;
}

static inline uint64_t bucket_width(size_t i)
{
    return i < 2 * SUB ? 1 : (uint64_t)1 << ((i >> SY_HIST_SUB_BITS) - 1);
}

void sy_hist_init(struct sy_hist *h)
{
    for (size_t i = 0; i < SY_HIST_BUCKETS; i++)
        set(&h->counts[i], 0);
    set(&h->count, 0);
    set(&h->sum, 0);
    set(&h->min, UINT64_MAX);
    set(&h->max, 0);
}

void sy_hist_record(struct sy_hist *h, uint64_t v)
{
    _Atomic uint64_t *c;

    if (v > SY_HIST_HIGHEST)
        v = SY_HIST_HIGHEST;
    c = &h->counts[bucket_of(v)];
    set(c, get(c) + 1);
    set(&h->count, get(&h->count) + 1);
    set(&h->sum, get(&h->sum) + v);
    if (v < get(&h->min))
        set(&h->min, v);
    if (v > get(&h->max))
        set(&h->max, v);
}

void sy_hist_merge(struct sy_hist *dst, const struct sy_hist *src)
{
    uint64_t v, lo = get(&src->min), hi = get(&src->max);

    if (lo > hi)
        return; /* empty */
    /* Only the buckets between min and max can be non-zero: latencies of one series span
     * a few hundred buckets, not all of them, and a reader copies this while its writer
     * may be recording (see dp_stats.c). */
    for (size_t i = bucket_of(lo), end = bucket_of(hi); i <= end; i++) {
        v = get(&src->counts[i]);
        if (v)
            set(&dst->counts[i], get(&dst->counts[i]) + v);
    }
    set(&dst->count, get(&dst->count) + get(&src->count));
    set(&dst->sum, get(&dst->sum) + get(&src->sum));
    v = get(&src->min);
    if (v < get(&dst->min))
        set(&dst->min, v);
    v = get(&src->max);
    if (v > get(&dst->max))
        set(&dst->max, v);
}

uint64_t sy_hist_count(const struct sy_hist *h)
{
    return get(&h->count);
}

uint64_t sy_hist_sum(const struct sy_hist *h)
{
    return get(&h->sum);
}

uint64_t sy_hist_min(const struct sy_hist *h)
{
    uint64_t v = get(&h->min);
    return v == UINT64_MAX ? 0 : v;
}

uint64_t sy_hist_max(const struct sy_hist *h)
{
    return get(&h->max);
}

uint64_t sy_hist_quantile(const struct sy_hist *h, double q)
{
    uint64_t total = 0, rank, seen = 0, lo, hi, est;
    size_t i;

    /* The counts themselves, not h->count: a concurrent record may have bumped only one. */
    for (i = 0; i < SY_HIST_BUCKETS; i++)
        total += get(&h->counts[i]);
    if (total == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        q = 0;
    if (q > 1)
        q = 1;
    rank = (uint64_t)(q * (double)total);
    if ((double)rank < q * (double)total) /* ceil, without libm */
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    lo = sy_hist_min(h);
    hi = sy_hist_max(h);
    if (rank == 1)
        return lo;
    if (rank == total)
        return hi;
    for (i = 0; i < SY_HIST_BUCKETS; i++) {
        seen += get(&h->counts[i]);
        if (seen >= rank)
            break;
    }
    if (i == SY_HIST_BUCKETS)
        i = SY_HIST_BUCKETS - 1;
    /* The middle of the bucket: at most half a width (1/128 of the value) away. */
    est = bucket_low(i) + bucket_width(i) / 2;
    if (est < lo)
        est = lo;
    if (est > hi)
        est = hi;
    return est;
}

bool sy_hist_is_boundary(uint64_t v)
{
    return v <= SY_HIST_HIGHEST && bucket_low(bucket_of(v)) == v;
}

uint64_t sy_hist_count_below(const struct sy_hist *h, uint64_t bound)
{
    uint64_t out;

    sy_hist_cumulative(h, &bound, 1, &out);
    return out;
}

void sy_hist_cumulative(const struct sy_hist *h, const uint64_t *bounds, size_t n, uint64_t *out)
{
    uint64_t cum = 0;
    size_t i = 0, end;

    for (size_t j = 0; j < n; j++) {
        /* Every recorded value is at most SY_HIST_HIGHEST. */
        end = bounds[j] > SY_HIST_HIGHEST ? SY_HIST_BUCKETS : bucket_of(bounds[j]);
        for (; i < end; i++)
            cum += get(&h->counts[i]);
        out[j] = cum;
    }
}

void sy_hist_delta(struct sy_hist *out, const struct sy_hist *cur, const struct sy_hist *prev)
{
    size_t first = SY_HIST_BUCKETS, last = 0;
    uint64_t n = 0, lo, hi;

    for (size_t i = 0; i < SY_HIST_BUCKETS; i++) {
        uint64_t c = get(&cur->counts[i]), p = get(&prev->counts[i]);
        uint64_t d = c > p ? c - p : 0;
        set(&out->counts[i], d);
        if (d) {
            if (first == SY_HIST_BUCKETS)
                first = i;
            last = i;
            n += d;
        }
    }
    set(&out->count, n);
    if (n == 0) {
        set(&out->sum, 0);
        set(&out->min, UINT64_MAX);
        set(&out->max, 0);
        return;
    }
    set(&out->sum, get(&cur->sum) > get(&prev->sum) ? get(&cur->sum) - get(&prev->sum) : 0);
    lo = bucket_low(first);
    hi = bucket_low(last) + bucket_width(last) - 1;
    if (lo < get(&cur->min))
        lo = get(&cur->min);
    if (hi > get(&cur->max))
        hi = get(&cur->max);
    if (lo > hi) /* a racing reader's copy: keep min <= max */
        lo = hi;
    set(&out->min, lo);
    set(&out->max, hi);
}

size_t sy_hist_to_sparse(const struct sy_hist *h, uint32_t *idx, uint64_t *cnt, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < SY_HIST_BUCKETS; i++) {
        uint64_t c = get(&h->counts[i]);
        if (!c)
            continue;
        if (n < cap) {
            idx[n] = (uint32_t)i;
            cnt[n] = c;
        }
        n++;
    }
    return n;
}

bool sy_hist_sparse_valid(const uint32_t *idx, const uint64_t *cnt, size_t n, uint64_t min,
                          uint64_t max)
{
    uint64_t total = 0;

    for (size_t i = 0; i < n; i++) {
        if (idx[i] >= SY_HIST_BUCKETS || (i > 0 && idx[i] <= idx[i - 1]))
            return false;
        if (cnt[i] > UINT64_MAX - total)
            return false;
        total += cnt[i];
    }
    if (total == 0)
        return true;
    if (min > max || max > SY_HIST_HIGHEST)
        return false;
    /* sy_hist_merge reads only the buckets between min and max: counts elsewhere would be
     * lost there. */
    for (size_t i = 0; i < n; i++) {
        if (cnt[i] && (idx[i] < bucket_of(min) || idx[i] > bucket_of(max)))
            return false;
    }
    return true;
}

int sy_hist_add_sparse(struct sy_hist *h, const uint32_t *idx, const uint64_t *cnt, size_t n,
                       uint64_t sum, uint64_t min, uint64_t max)
{
    uint64_t total = 0;

    if (!sy_hist_sparse_valid(idx, cnt, n, min, max))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        total += cnt[i];
    if (total == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        set(&h->counts[idx[i]], get(&h->counts[idx[i]]) + cnt[i]);
    set(&h->count, get(&h->count) + total);
    set(&h->sum, get(&h->sum) + sum);
    if (min < get(&h->min))
        set(&h->min, min);
    if (max > get(&h->max))
        set(&h->max, max);
    return 0;
}
