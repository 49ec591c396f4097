/* tests/unit/common/test_hist.c - sy_hist: quantiles within 1% of the exact sorted values
 * on random and adversarial inputs (fixed seeds), merge == recording everything into one,
 * exact cumulative counts at bucket boundaries, and the edges (empty, 0, huge). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sy_hist.h"

#define N_VALUES 20000

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: a fixed seed gives the same values on every run and platform. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The value of rank ceil(q * n) (1 for q = 0) in sorted <v>: what sy_hist_quantile
 * estimates. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    uint64_t rank = (uint64_t)(q * (double)n);
    if ((double)rank < q * (double)n)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

static struct sy_hist *hist_new(void)
{
    struct sy_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    sy_hist_init(h);
    return h;
}

static const double qs[] = {0,   0.001, 0.01, 0.05,  0.1,    0.25,  0.5, 0.75,
                            0.9, 0.95,  0.99, 0.999, 0.9999, 0.333, 1};

/* Records <n> values and checks every quantile in qs against the sorted values. */
static void check_quantiles(const char *what, uint64_t *v, size_t n)
{
    struct sy_hist *h = hist_new();
    uint64_t sum = 0;

    for (size_t i = 0; i < n; i++) {
        if (v[i] > SY_HIST_HIGHEST)
            v[i] = SY_HIST_HIGHEST; /* what the histogram stores */
        sy_hist_record(h, v[i]);
        sum += v[i];
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    assert_int_equal(sy_hist_count(h), n);
    assert_int_equal(sy_hist_sum(h), sum);
    assert_int_equal(sy_hist_min(h), v[0]);
    assert_int_equal(sy_hist_max(h), v[n - 1]);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        uint64_t want = exact_quantile(v, n, qs[i]);
        uint64_t got = sy_hist_quantile(h, qs[i]);
        uint64_t err = got > want ? got - want : want - got;
        /* <= 1% relative; err * 100 <= want, in integers (want = 0 needs got = 0). */
        if (err * 100 > want)
            fail_msg("%s: q=%g: got %llu, exact %llu (error %.4f%%)", what, qs[i],
                     (unsigned long long)got, (unsigned long long)want,
                     want ? 100.0 * (double)err / (double)want : 100.0);
    }
    free(h);
}

static void test_quantiles_random(void **state)
{
    uint64_t *v = malloc(N_VALUES * sizeof(*v));
    (void)state;

    assert_non_null(v);
    rng_state = 0x9e3779b97f4a7c15ull;
    /* Uniform over a typical latency range: 1 ms .. 10 s. */
    for (size_t i = 0; i < N_VALUES; i++)
        v[i] = 1000 + rnd_below(10000000);
    check_quantiles("uniform", v, N_VALUES);
    /* Log-uniform over the whole range: every octave equally likely. */
    for (size_t i = 0; i < N_VALUES; i++) {
        unsigned k = (unsigned)rnd_below(SY_HIST_MAX_BITS);
        v[i] = ((uint64_t)1 << k) + rnd_below((uint64_t)1 << k);
    }
    check_quantiles("log-uniform", v, N_VALUES);
    /* Small values, where buckets are exact. */
    for (size_t i = 0; i < N_VALUES; i++)
        v[i] = rnd_below(300);
    check_quantiles("small", v, N_VALUES);
    /* Bimodal: fast cache hits and slow generations. */
    for (size_t i = 0; i < N_VALUES; i++)
        v[i] = i % 10 ? 200000 + rnd_below(30000000) : 300 + rnd_below(200);
    check_quantiles("bimodal", v, N_VALUES);
    /* Few samples: quantiles hit single values. */
    for (size_t n = 1; n <= 9; n++) {
        for (size_t i = 0; i < n; i++)
            v[i] = rnd_below(100000000);
        check_quantiles("few", v, n);
    }
    free(v);
}

static void test_quantiles_adversarial(void **state)
{
    uint64_t *v = malloc(N_VALUES * sizeof(*v));
    size_t n = 0;
    (void)state;

    assert_non_null(v);
    rng_state = 42;
    /* The ends of buckets, where the middle of the bucket is farthest away: for each
     * power of two k >= 7, its first and last bucket's lower and upper ends. */
    for (unsigned k = 7; k < SY_HIST_MAX_BITS; k++) {
        uint64_t w = (uint64_t)1 << (k - SY_HIST_SUB_BITS);
        uint64_t lo = (uint64_t)1 << k, top = ((uint64_t)1 << (k + 1)) - 1;
        v[n++] = lo;
        v[n++] = lo + w - 1;
        v[n++] = top;
        v[n++] = top - w + 1;
    }
    check_quantiles("bucket ends", v, n);
    /* Only lower ends (every quantile lands on a worst case), one octave. */
    n = 0;
    for (uint64_t x = 1u << 20; x < 1u << 21; x += 1u << 14)
        v[n++] = x;
    check_quantiles("lower ends", v, n);
    n = 0;
    for (uint64_t x = (1u << 20) + (1u << 14) - 1; x < 1u << 21; x += 1u << 14)
        v[n++] = x;
    check_quantiles("upper ends", v, n);
    /* Powers of two and their neighbours. */
    n = 0;
    for (unsigned k = 0; k < 40; k++) {
        uint64_t p = (uint64_t)1 << k;
        v[n++] = p - 1;
        v[n++] = p;
        v[n++] = p + 1;
    }
    check_quantiles("powers of two", v, n);
    /* One value many times. */
    for (n = 0; n < 1000; n++)
        v[n] = 123457;
    check_quantiles("constant", v, n);
    /* Heavy tail: a few huge values above the range among small ones. */
    for (n = 0; n < N_VALUES; n++)
        v[n] = n % 1000 ? 500 + rnd_below(5000) : UINT64_MAX - n;
    check_quantiles("heavy tail", v, n);
    free(v);
}

static void test_merge_equals_record_all(void **state)
{
    struct sy_hist *all = hist_new(), *part[3] = {hist_new(), hist_new(), hist_new()};
    struct sy_hist *merged = hist_new();
    (void)state;

    rng_state = 7;
    for (int i = 0; i < N_VALUES; i++) {
        unsigned k = (unsigned)rnd_below(34);
        uint64_t x = ((uint64_t)1 << k) + rnd_below((uint64_t)1 << k);
        sy_hist_record(all, x);
        sy_hist_record(part[rnd_below(3)], x);
    }
    sy_hist_record(part[2], 0);
    sy_hist_record(all, 0);
    for (int i = 0; i < 3; i++)
        sy_hist_merge(merged, part[i]);
    for (size_t i = 0; i < SY_HIST_BUCKETS; i++)
        assert_int_equal(merged->counts[i], all->counts[i]);
    assert_int_equal(sy_hist_count(merged), sy_hist_count(all));
    assert_int_equal(sy_hist_sum(merged), sy_hist_sum(all));
    assert_int_equal(sy_hist_min(merged), 0);
    assert_int_equal(sy_hist_max(merged), sy_hist_max(all));
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        assert_int_equal(sy_hist_quantile(merged, qs[i]), sy_hist_quantile(all, qs[i]));
    /* Merging an empty histogram changes nothing (its min is "none", not 0). */
    sy_hist_init(part[0]);
    sy_hist_init(merged);
    sy_hist_record(merged, 5000);
    sy_hist_merge(merged, part[0]);
    assert_int_equal(sy_hist_min(merged), 5000);
    assert_int_equal(sy_hist_count(merged), 1);
    free(all);
    free(merged);
    for (int i = 0; i < 3; i++)
        free(part[i]);
}

static void test_edges(void **state)
{
    struct sy_hist *h = hist_new();
    uint64_t out[2], bounds[2] = {1, UINT64_MAX};
    (void)state;

    /* Empty. */
    assert_int_equal(sy_hist_count(h), 0);
    assert_int_equal(sy_hist_quantile(h, 0.5), 0);
    assert_int_equal(sy_hist_min(h), 0);
    assert_int_equal(sy_hist_max(h), 0);
    assert_int_equal(sy_hist_count_below(h, UINT64_MAX), 0);
    /* Zero and the largest values. */
    sy_hist_record(h, 0);
    assert_int_equal(sy_hist_quantile(h, 1), 0);
    sy_hist_record(h, UINT64_MAX);
    sy_hist_record(h, SY_HIST_HIGHEST + 1);
    sy_hist_record(h, SY_HIST_HIGHEST);
    assert_int_equal(sy_hist_count(h), 4);
    assert_int_equal(sy_hist_min(h), 0);
    assert_int_equal(sy_hist_max(h), SY_HIST_HIGHEST);
    assert_int_equal(sy_hist_sum(h), 3 * SY_HIST_HIGHEST);
    assert_int_equal(sy_hist_quantile(h, 0), 0);
    assert_int_equal(sy_hist_quantile(h, 0.25), 0);
    /* Within 1/128 of the value inside the range, exact at the ends. */
    assert_true(sy_hist_quantile(h, 0.26) >= SY_HIST_HIGHEST - SY_HIST_HIGHEST / 128);
    assert_int_equal(sy_hist_quantile(h, 1), SY_HIST_HIGHEST);
    /* Out-of-range q is clamped. */
    assert_int_equal(sy_hist_quantile(h, -3), 0);
    assert_int_equal(sy_hist_quantile(h, 7), SY_HIST_HIGHEST);
    sy_hist_cumulative(h, bounds, 2, out);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 4);
    assert_int_equal(sy_hist_count_below(h, SY_HIST_HIGHEST), 1);
    assert_int_equal(sy_hist_count_below(h, 0), 0);
    free(h);
}

static void test_boundaries_and_cumulative(void **state)
{
    struct sy_hist *h = hist_new();
    uint64_t *v = malloc(N_VALUES * sizeof(*v));
    uint64_t bounds[18 + 3], out[18 + 3];
    size_t nb = 0;
    (void)state;

    assert_non_null(v);
    /* The Prometheus `le` set (1 ms * 2^i) must be boundaries; 5 ms is not one. */
    for (unsigned i = 0; i < 18; i++) {
        assert_true(sy_hist_is_boundary(UINT64_C(1000) << i));
        bounds[nb++] = UINT64_C(1000) << i;
    }
    assert_false(sy_hist_is_boundary(5000));
    assert_false(sy_hist_is_boundary(SY_HIST_HIGHEST + 1));
    for (uint64_t x = 0; x < 128; x++)
        assert_true(sy_hist_is_boundary(x));
    /* Below each boundary, exactly; random values in and around the bounds. */
    rng_state = 99;
    for (size_t i = 0; i < N_VALUES; i++) {
        uint64_t b = bounds[rnd_below(18)];
        v[i] = i % 2 ? b - 1 + rnd_below(3) : rnd_below(200000000);
        sy_hist_record(h, v[i]);
    }
    bounds[nb++] = SY_HIST_HIGHEST;
    bounds[nb++] = SY_HIST_HIGHEST + 1;
    bounds[nb++] = UINT64_MAX;
    sy_hist_cumulative(h, bounds, nb, out);
    for (size_t j = 0; j < nb; j++) {
        uint64_t want = 0;
        for (size_t i = 0; i < N_VALUES; i++)
            want += v[i] < bounds[j];
        if (j < 18)
            assert_int_equal(out[j], want);
        if (j > 0)
            assert_true(out[j] >= out[j - 1]);
        assert_int_equal(sy_hist_count_below(h, bounds[j]), out[j]);
    }
    assert_int_equal(out[nb - 1], N_VALUES);
    /* A bound that is not a boundary rounds down to the one below it. */
    assert_int_equal(sy_hist_count_below(h, 5000), sy_hist_count_below(h, 4992));
    free(v);
    free(h);
}

/* The telemetry path: a cumulative histogram copied at two moments, the delta of the two
 * sent in sparse form and added into an empty one, gives the same counts, sum and
 * quantiles (within the bucket error) as recording only the values in between. */
static void test_delta_sparse_roundtrip(void **state)
{
    static struct sy_hist cur, prev, delta, later, back;
    static uint32_t idx[SY_HIST_BUCKETS];
    static uint64_t cnt[SY_HIST_BUCKETS];
    uint64_t *vals = malloc(N_VALUES * sizeof(*vals));
    size_t n;
    (void)state;

    rng_state = 0x5eed5eedull;
    sy_hist_init(&cur);
    sy_hist_init(&later);
    sy_hist_init(&back);
    for (int i = 0; i < 5000; i++)
        sy_hist_record(&cur, 100 + rnd_below(1000000));
    memcpy(&prev, &cur, sizeof(prev));
    for (int i = 0; i < N_VALUES; i++) {
        vals[i] = 5000 + rnd_below(200000);
        sy_hist_record(&cur, vals[i]);
        sy_hist_record(&later, vals[i]);
    }
    sy_hist_delta(&delta, &cur, &prev);
    assert_int_equal(sy_hist_count(&delta), N_VALUES);
    assert_int_equal(sy_hist_sum(&delta), sy_hist_sum(&later));
    n = sy_hist_to_sparse(&delta, idx, cnt, SY_HIST_BUCKETS);
    assert_true(n > 0 && n < SY_HIST_BUCKETS);
    for (size_t i = 1; i < n; i++)
        assert_true(idx[i] > idx[i - 1]);
    assert_int_equal(sy_hist_add_sparse(&back, idx, cnt, n, sy_hist_sum(&delta),
                                        sy_hist_min(&delta), sy_hist_max(&delta)),
                     0);
    assert_int_equal(sy_hist_count(&back), N_VALUES);
    for (size_t i = 0; i < SY_HIST_BUCKETS; i++)
        assert_int_equal(back.counts[i], later.counts[i]);
    qsort(vals, N_VALUES, sizeof(*vals), cmp_u64);
    for (int q = 1; q < 100; q++) {
        uint64_t exact = vals[(size_t)((q / 100.0) * N_VALUES + 0.999999) - 1];
        uint64_t est = sy_hist_quantile(&back, q / 100.0);
        double err = exact ? ((double)est - (double)exact) / (double)exact : 0;
        assert_true(err < 0.01 && err > -0.01);
    }
    /* Bad input changes nothing. */
    idx[0] = SY_HIST_BUCKETS;
    assert_int_equal(sy_hist_add_sparse(&back, idx, cnt, 1, 1, 1, 1), -EINVAL);
    assert_int_equal(sy_hist_add_sparse(&back, &idx[1], &cnt[1], 1, 1, 9, 1), -EINVAL);
    assert_int_equal(sy_hist_count(&back), N_VALUES);
    /* No change: an empty delta. */
    sy_hist_delta(&delta, &cur, &cur);
    assert_int_equal(sy_hist_count(&delta), 0);
    assert_int_equal(sy_hist_to_sparse(&delta, idx, cnt, SY_HIST_BUCKETS), 0);
    free(vals);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_random),
        cmocka_unit_test(test_quantiles_adversarial),
        cmocka_unit_test(test_merge_equals_record_all),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_boundaries_and_cumulative),
        cmocka_unit_test(test_delta_sparse_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
