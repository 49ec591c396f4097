/* tests/unit/controlplane/test_bandit.c - cp_bandit: sampler moments over 200k draws, Beta
 * quantiles against closed forms and independently computed references, credible
 * intervals, probability of being best, the two-proportion z-test, every allocation knob
 * (Thompson majority, min_samples, floor, bounded step, exact sums, integer weights),
 * posterior decay, and a simulated two-arm Bernoulli bandit. Fixed seeds throughout, so
 * every run draws the same numbers. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_bandit.h"

#define N_DRAWS 200000
#define SUM_TOL 1e-12

#define ARRAY_LEN(x) (sizeof(x) / sizeof((x)[0]))

/* Fails unless |got - want| <= tol, printing all three. */
#define assert_close(got, want, tol)                                                               \
    do {                                                                                           \
        double g_ = (got), w_ = (want), t_ = (tol);                                                \
        if (!(fabs(g_ - w_) <= t_))                                                                \
            fail_msg("%s = %.15g, want %.15g +- %g (line %d)", #got, g_, w_, t_, __LINE__);        \
    } while (0)

static double sum_of(const double *v, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* Mean and (unbiased) variance of <n> draws of <draw>(rng, x, y). */
struct moments {
    double mean, var;
};

static struct moments sample_moments(double (*draw)(struct cp_rng *, double, double),
                                     struct cp_rng *rng, double x, double y, size_t n)
{
    double mean = 0.0, m2 = 0.0;

    /* Welford's update: no catastrophic cancellation over 200k terms. */
    for (size_t i = 0; i < n; i++) {
        double v = draw(rng, x, y), d = v - mean;

        mean += d / (double)(i + 1);
        m2 += d * (v - mean);
    }
    return (struct moments){mean, m2 / (double)(n - 1)};
}

static double draw_gamma(struct cp_rng *rng, double shape, double unused)
{
    (void)unused;
    return cp_rng_gamma(rng, shape);
}

static double draw_beta(struct cp_rng *rng, double a, double b)
{
    double v = cp_rng_beta(rng, a, b);

    if (!(v >= 0.0 && v <= 1.0))
        fail_msg("Beta(%g, %g) draw %g outside [0, 1]", a, b, v);
    return v;
}

static double draw_normal(struct cp_rng *rng, double unused1, double unused2)
{
    (void)unused1;
    (void)unused2;
    return cp_rng_normal(rng);
}

static double draw_uniform(struct cp_rng *rng, double unused1, double unused2)
{
    double u = cp_rng_uniform(rng);

    (void)unused1;
    (void)unused2;
    if (!(u > 0.0 && u < 1.0))
        fail_msg("uniform draw %g outside (0, 1)", u);
    return u;
}

/* Checks sample moments against the exact mean and variance. Tolerances are 5 standard
 * errors: sqrt(var / n) for the mean and var * sqrt((2 + kurt) / n) for the variance, kurt
 * being the distribution's excess kurtosis. With fixed seeds the outcome never changes;
 * the margin only has to hold for these seeds, and 5 sigma keeps it independent of them. */
static void check_moments(const char *what, struct moments m, double mean, double var, double kurt)
{
    double tol_mean = 5.0 * sqrt(var / N_DRAWS);
    double tol_var = 5.0 * var * sqrt((2.0 + kurt) / N_DRAWS);

    if (!(fabs(m.mean - mean) <= tol_mean))
        fail_msg("%s: mean %.6g, want %.6g +- %.3g", what, m.mean, mean, tol_mean);
    if (!(fabs(m.var - var) <= tol_var))
        fail_msg("%s: variance %.6g, want %.6g +- %.3g", what, m.var, var, tol_var);
}

/* ---- PRNG and samplers --------------------------------------------------------------- */

static void test_rng_deterministic(void **state)
{
    struct cp_rng r1, r2, r3;
    int same = 0;
    (void)state;

    cp_rng_seed(&r1, 42);
    cp_rng_seed(&r2, 42);
    cp_rng_seed(&r3, 43);
    for (int i = 0; i < 1000; i++) {
        uint64_t x = cp_rng_u64(&r1);

        assert_int_equal(x, cp_rng_u64(&r2));
        same += x == cp_rng_u64(&r3);
    }
    assert_int_equal(same, 0);
    /* Seed 0 is valid: splitmix64 does not leave the xoshiro state all zero, which would
     * return 0 forever. */
    cp_rng_seed(&r1, 0);
    assert_true(cp_rng_u64(&r1) != cp_rng_u64(&r1));
    /* Every bit position is about half ones. */
    cp_rng_seed(&r1, 7);
    {
        unsigned ones[64] = {0};

        for (int i = 0; i < 20000; i++) {
            uint64_t x = cp_rng_u64(&r1);

            for (int b = 0; b < 64; b++)
                ones[b] += (x >> b) & 1;
        }
        for (int b = 0; b < 64; b++) /* sd = 71 */
            if (ones[b] < 9600 || ones[b] > 10400)
                fail_msg("bit %d set %u times in 20000", b, ones[b]);
    }
}

static void test_uniform_normal_moments(void **state)
{
    struct cp_rng rng;
    (void)state;

    cp_rng_seed(&rng, 1);
    check_moments("uniform", sample_moments(draw_uniform, &rng, 0, 0, N_DRAWS), 0.5, 1.0 / 12.0,
                  -1.2);
    check_moments("normal", sample_moments(draw_normal, &rng, 0, 0, N_DRAWS), 0.0, 1.0, 0.0);
}

static void test_gamma_moments(void **state)
{
    static const double shapes[] = {0.3, 1.0, 2.5, 50.0, 1e4};
    struct cp_rng rng;
    (void)state;

    cp_rng_seed(&rng, 2);
    for (size_t i = 0; i < ARRAY_LEN(shapes); i++) {
        double k = shapes[i];

        /* Gamma(k, 1): mean k, variance k, excess kurtosis 6 / k. */
        check_moments("gamma", sample_moments(draw_gamma, &rng, k, 0, N_DRAWS), k, k, 6.0 / k);
    }
    assert_true(isnan(cp_rng_gamma(&rng, 0.0)));
    assert_true(isnan(cp_rng_gamma(&rng, -1.0)));
    assert_true(isnan(cp_rng_gamma(&rng, NAN)));
    assert_true(isnan(cp_rng_gamma(&rng, INFINITY)));
}

static void test_beta_moments(void **state)
{
    static const double shapes[][2] = {{1, 1},   {2, 5},       {0.5, 0.5},
                                       {0.2, 3}, {1000, 3000}, {0.7, 40}};
    struct cp_rng rng;
    (void)state;

    cp_rng_seed(&rng, 3);
    for (size_t i = 0; i < ARRAY_LEN(shapes); i++) {
        double a = shapes[i][0], b = shapes[i][1], s = a + b;
        double mean = a / s, var = a * b / (s * s * (s + 1.0));
        double kurt = 6.0 * ((a - b) * (a - b) * (s + 1.0) - a * b * (s + 2.0)) /
                      (a * b * (s + 2.0) * (s + 3.0));

        check_moments("beta", sample_moments(draw_beta, &rng, a, b, N_DRAWS), mean, var, kurt);
    }
    /* Tiny shapes put nearly all mass at 0 and 1: draws stay in [0, 1], never NaN. */
    for (int i = 0; i < 10000; i++)
        draw_beta(&rng, 0.01, 0.02);
    assert_true(isnan(cp_rng_beta(&rng, 0.0, 1.0)));
    assert_true(isnan(cp_rng_beta(&rng, 1.0, -2.0)));
}

/* ---- Beta posteriors ----------------------------------------------------------------- */

/* Reference quantiles from the Python standard library alone (python3 3.11): the CDF by
 * tanh-sinh quadrature of the density (log B from math.lgamma; split at mean +- 1, 3, 8 sd
 * and cut to mean +- 40 sd for peaked shapes), the quantile by bisection to 1e-14, printed
 * to 12 decimals. A separate 30-digit mpmath quadrature agrees to 1e-12. The script:
 *
 * import math
 * def seg(a, b, lb, lo, hi, h=2.0**-8):  # tanh-sinh on [lo, hi]
 *     c, tot = (hi - lo) / 2, 0.0
 *     for k in range(-1024, 1025):
 *         u = math.pi / 2 * math.sinh(k * h)
 *         w = math.pi / 2 * math.cosh(k * h) / math.cosh(u) ** 2
 *         x, xc = lo + 2 * c / (1 + math.exp(-2 * u)), 1 - hi + 2 * c / (1 + math.exp(2 * u))
 *         if x > 0 and xc > 0:
 *             tot += w * math.exp((a - 1) * math.log(x) + (b - 1) * math.log(xc) - lb)
 *     return tot * c * h
 * def cdf(a, b, x):
 *     lb = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
 *     m, s = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
 *     lo, hi = (max(0, m - 40 * s), min(1, m + 40 * s)) if a > 50 and b > 50 else (0, 1)
 *     if x <= lo or x >= hi:
 *         return float(x >= hi)
 *     if x <= m:
 *         p = [lo] + [v for v in (m - 8 * s, m - 3 * s, m - s) if lo < v < x] + [x]
 *         return sum(seg(a, b, lb, u, v) for u, v in zip(p, p[1:]))
 *     p = [x] + [v for v in (m + s, m + 3 * s, m + 8 * s) if x < v < hi] + [hi]
 *     return 1 - sum(seg(a, b, lb, u, v) for u, v in zip(p, p[1:]))
 * def quantile(a, b, p):
 *     lo, hi = 0.0, 1.0
 *     while hi - lo > 1e-14:
 *         lo, hi = ((lo + hi) / 2, hi) if cdf(a, b, (lo + hi) / 2) < p else (lo, (lo + hi) / 2)
 *     return (lo + hi) / 2
 * for a, b, p in [(2, 5, .5), (.5, .5, .1), (3, 7, .025), (3, 7, .975), (10.5, 3.2, .9),
 *                 (.5, 20, .5), (.7, 2.5, .01), (101, 901, .025), (101, 901, .975),
 *                 (5001, 4001, .975), (1e6, 5e5, .025), (1e6, 1e6, .975)]:
 *     print("{%g, %g, %g, %.12f}," % (a, b, p, quantile(a, b, p)))
 */
static const struct {
    double a, b, p, x;
} quantile_refs[] = {
    {2, 5, 0.5, 0.264449983296}, /* the Beta(2, 5) median */
    {0.5, 0.5, 0.1, 0.024471741852},     {3, 7, 0.025, 0.074854631420},
    {3, 7, 0.975, 0.600093573716},       {10.5, 3.2, 0.9, 0.899349874589},
    {0.5, 20, 0.5, 0.011450256706},      {0.7, 2.5, 0.01, 0.000513940323},
    {101, 901, 0.025, 0.082936398496},   {101, 901, 0.975, 0.120169129876},
    {5001, 4001, 0.975, 0.565795551767}, {1e6, 5e5, 0.025, 0.665912066077},
    {1e6, 1e6, 0.975, 0.500692951666},
};

static void test_beta_quantile_references(void **state)
{
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(quantile_refs); i++)
        assert_close(cp_beta_quantile(quantile_refs[i].a, quantile_refs[i].b, quantile_refs[i].p),
                     quantile_refs[i].x, 1e-9);
    assert_close(cp_beta_quantile(2, 5, 0.5), 0.26445, 1e-5);
}

static void test_beta_quantile_closed_forms(void **state)
{
    static const double ps[] = {1e-9, 1e-4, 0.01, 0.025, 0.1,   0.3,
                                0.5,  0.77, 0.9,  0.975, 0.999, 1 - 1e-9};
    static const double shapes[] = {0.5, 0.8, 1.0, 2.0, 7.5, 40.0, 1e3, 1e6};
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(ps); i++) {
        double p = ps[i];

        /* Beta(1, 1) is uniform. */
        assert_close(cp_beta_quantile(1, 1, p), p, 1e-12);
        assert_close(cp_beta_cdf(1, 1, p), p, 1e-14);
        /* Beta(1/2, 1/2) is the arcsine law: I_x = (2 / pi) asin(sqrt(x)). */
        assert_close(cp_beta_quantile(0.5, 0.5, p), pow(sin(M_PI * p / 2.0), 2.0), 1e-10);
        for (size_t j = 0; j < ARRAY_LEN(shapes); j++) {
            double s = shapes[j];

            /* Beta(s, 1): I_x = x^s. Beta(1, s): I_x = 1 - (1 - x)^s. */
            assert_close(cp_beta_quantile(s, 1, p), pow(p, 1.0 / s), 1e-9);
            assert_close(cp_beta_quantile(1, s, p), -expm1(log1p(-p) / s), 1e-9);
            /* cdf(x) is exact to 1e-12 plus what rounding x to a double costs, pdf(x) * ulp. */
            {
                double x = pow(p, 1.0 / s), pdf = s * pow(x, s - 1.0);

                assert_close(cp_beta_cdf(s, 1, x), p, 1e-12 + pdf * 2.3e-16);
            }
            /* Reflection: X ~ Beta(a, b) <=> 1 - X ~ Beta(b, a), where 1 - p is exact (for
             * p = 1e-9, 1 - p keeps only 7 digits of p and the check means nothing). */
            if (1.0 - (1.0 - p) == p)
                assert_close(cp_beta_quantile(s, 3.5, p), 1.0 - cp_beta_quantile(3.5, s, 1.0 - p),
                             1e-11);
        }
    }
    /* Large symmetric shapes: Beta(n, n) is normal to O(1/n) in the tails; the mean
     * +- 1.959964 sd agrees to 1e-9 at n = 1e6. */
    {
        double n = 1e6, sd = sqrt(0.25 / (2.0 * n + 1.0)), z = 1.959963984540054;

        assert_close(cp_beta_quantile(n, n, 0.975), 0.5 + z * sd, 1e-9);
        assert_close(cp_beta_quantile(n, n, 0.025), 0.5 - z * sd, 1e-9);
        assert_close(cp_beta_quantile(n, n, 0.5), 0.5, 1e-12);
    }
}

static void test_beta_quantile_edges(void **state)
{
    (void)state;

    assert_true(cp_beta_quantile(3, 4, 0.0) == 0.0);
    assert_true(cp_beta_quantile(3, 4, 1.0) == 1.0);
    assert_true(isnan(cp_beta_quantile(3, 4, -0.1)));
    assert_true(isnan(cp_beta_quantile(3, 4, 1.1)));
    assert_true(isnan(cp_beta_quantile(3, 4, NAN)));
    assert_true(isnan(cp_beta_quantile(0, 4, 0.5)));
    assert_true(isnan(cp_beta_quantile(3, -1, 0.5)));
    assert_true(isnan(cp_beta_quantile(INFINITY, 1, 0.5)));
    assert_true(isnan(cp_beta_cdf(0, 1, 0.5)));
    assert_true(isnan(cp_beta_cdf(1, 1, NAN)));
    assert_true(cp_beta_cdf(2, 3, -1.0) == 0.0);
    assert_true(cp_beta_cdf(2, 3, 2.0) == 1.0);
    assert_close(cp_beta_mean(1, 1), 0.5, 0);
    assert_close(cp_beta_mean(81, 21), 81.0 / 102.0, 1e-15);
    assert_true(isnan(cp_beta_mean(0, 1)));
    /* Quantiles increase with p and bracket the exact one to 1e-10 (cdf(x - 1e-10) < p <
     * cdf(x + 1e-10)) over the whole supported range. Comparing cdf(x) with p instead would
     * need a tolerance of pdf(x) * ulp(x), which reaches 1e-9 where x is 1 - 1e-8. */
    {
        static const double shapes[] = {0.5, 0.9, 3.0, 120.0, 5e4, 1e6};

        for (size_t i = 0; i < ARRAY_LEN(shapes); i++) {
            for (size_t j = 0; j < ARRAY_LEN(shapes); j++) {
                double a = shapes[i], b = shapes[j], prev = -1.0;

                for (double p = 0.01; p < 1.0; p += 0.07) {
                    double x = cp_beta_quantile(a, b, p);

                    assert_true(x > prev);
                    if (!(cp_beta_cdf(a, b, x - 1e-10) < p && p < cp_beta_cdf(a, b, x + 1e-10)))
                        fail_msg("Beta(%g, %g): quantile(%g) = %.17g is off by more than 1e-10", a,
                                 b, p, x);
                    prev = x;
                }
            }
        }
    }
}

static void test_ci95(void **state)
{
    double prev_width = 2.0, lo, hi;
    (void)state;

    /* A 70% thumbs-up rate seen over more and more votes (Beta(1, 1) prior). */
    for (double n = 10; n <= 1e5; n *= 10) {
        double a = 1.0 + 0.7 * n, b = 1.0 + 0.3 * n, mean = cp_beta_mean(a, b);

        assert_int_equal(cp_beta_ci95(a, b, &lo, &hi), 0);
        assert_true(lo < mean && mean < hi);
        assert_true(0.0 < lo && hi < 1.0);
        assert_true(hi - lo < prev_width);
        assert_close(lo, cp_beta_quantile(a, b, 0.025), 0);
        assert_close(hi, cp_beta_quantile(a, b, 0.975), 0);
        prev_width = hi - lo;
    }
    /* At n = 1e5 the width is the normal one, 2 * 1.96 * sqrt(0.7 * 0.3 / n), to 0.1%. */
    assert_close(prev_width, 2.0 * 1.959964 * sqrt(0.21 / 1e5), 0.001 * prev_width);
    /* The uniform prior: the middle 95% of [0, 1]. */
    assert_int_equal(cp_beta_ci95(1, 1, &lo, &hi), 0);
    assert_close(lo, 0.025, 1e-12);
    assert_close(hi, 0.975, 1e-12);
    assert_int_equal(cp_beta_ci95(0, 1, &lo, &hi), -EINVAL);
    assert_true(isnan(lo) && isnan(hi));
}

/* ---- Probability of being best ------------------------------------------------------- */

static void test_prob_best(void **state)
{
    struct cp_rng rng;
    double out[4];
    (void)state;

    cp_rng_seed(&rng, 4);
    {
        /* 90/100 vs 50/100 thumbs-up: the posteriors barely overlap. */
        const double a[] = {91, 51}, b[] = {11, 51};

        assert_int_equal(cp_prob_best(a, b, 2, 10000, &rng, out), 0);
        assert_true(out[0] > 0.99);
        assert_close(sum_of(out, 2), 1.0, SUM_TOL);
    }
    {
        /* Four identical arms: each best a quarter of the time (sd 0.0043 at 10k draws). */
        const double a[] = {31, 31, 31, 31}, b[] = {71, 71, 71, 71};

        assert_int_equal(cp_prob_best(a, b, 4, 10000, &rng, out), 0);
        for (int i = 0; i < 4; i++)
            assert_close(out[i], 0.25, 0.02);
        assert_close(sum_of(out, 4), 1.0, SUM_TOL);
    }
    {
        /* A close race: 0.55 vs 0.5 over 200 votes each is ~ 84% / 16% (normal approx.:
         * Phi(0.05 / sqrt(2 * 0.25 / 200)) = Phi(1.0) = 0.84). */
        const double a[] = {111, 101}, b[] = {91, 101};

        assert_int_equal(cp_prob_best(a, b, 2, 10000, &rng, out), 0);
        assert_close(out[0], 0.84, 0.02);
    }
    {
        const double a[] = {1, 1}, b[] = {1, 0};

        assert_int_equal(cp_prob_best(a, b, 2, 100, &rng, out), -EINVAL);
        assert_int_equal(cp_prob_best(a, a, 0, 100, &rng, out), -EINVAL);
        assert_int_equal(cp_prob_best(a, a, 2, 0, &rng, out), -EINVAL);
        assert_int_equal(cp_prob_best(a, a, CP_BANDIT_MAX_ARMS + 1, 100, &rng, out), -EINVAL);
    }
}

/* ---- Two-proportion z-test ----------------------------------------------------------- */

static void test_two_proportion(void **state)
{
    double z, p;
    (void)state;

    /* 45/100 vs 30/100:
     *   p1 = 0.45, p2 = 0.30, pooled p = 75 / 200 = 0.375
     *   p (1 - p) = 0.375 * 0.625 = 0.234375; * (1/100 + 1/100) = 0.0046875
     *   SE = sqrt(0.0046875) = 0.0684653197; z = 0.15 / SE = 2.19089023
     *   two-sided p = erfc(2.19089023 / sqrt 2) = 0.0284597369 (just under 0.05) */
    assert_int_equal(cp_two_proportion_test(45, 100, 30, 100, &z, &p), 0);
    assert_close(z, 2.19089023002066, 1e-9);
    assert_close(p, 0.0284597369163106, 1e-9);
    /* Swapping the arms flips the sign of z only. */
    assert_int_equal(cp_two_proportion_test(30, 100, 45, 100, &z, &p), 0);
    assert_close(z, -2.19089023002066, 1e-9);
    assert_close(p, 0.0284597369163106, 1e-9);
    /* Unequal sizes, 120/400 vs 90/450: pooled 210 / 850 = 0.247059,
     * SE = sqrt(0.247059 * 0.752941 * (1/400 + 1/450)) = 0.0296383,
     * z = (0.3 - 0.2) / 0.0296383 = 3.374008, p = erfc(3.374008 / sqrt 2) = 0.000740823. */
    assert_int_equal(cp_two_proportion_test(120, 400, 90, 450, &z, &p), 0);
    assert_close(z, 3.37400779065914, 1e-9);
    assert_close(p, 0.000740822710463, 1e-12);
    /* Equal rates: z = 0, p = 1. */
    assert_int_equal(cp_two_proportion_test(50, 100, 25, 50, &z, &p), 0);
    assert_close(z, 0, 1e-15);
    assert_close(p, 1, 1e-15);
    /* Degenerate: an empty arm, or no variance at all (all down, all up). */
    assert_int_equal(cp_two_proportion_test(0, 0, 30, 100, &z, &p), 0);
    assert_true(z == 0.0 && p == 1.0);
    assert_int_equal(cp_two_proportion_test(30, 100, 0, 0, &z, &p), 0);
    assert_true(z == 0.0 && p == 1.0);
    assert_int_equal(cp_two_proportion_test(0, 100, 0, 80, &z, &p), 0);
    assert_true(z == 0.0 && p == 1.0);
    assert_int_equal(cp_two_proportion_test(100, 100, 80, 80, &z, &p), 0);
    assert_true(z == 0.0 && p == 1.0);
    /* More successes than trials is a caller bug. */
    assert_int_equal(cp_two_proportion_test(101, 100, 0, 80, &z, &p), -EINVAL);
    assert_int_equal(cp_two_proportion_test(1, 100, 81, 80, &z, &p), -EINVAL);
}

/* ---- Allocation ---------------------------------------------------------------------- */

static struct cp_arm arm(double ups, double downs, double cost, double latency)
{
    return (struct cp_arm){.a = CP_BANDIT_PRIOR_A + ups,
                           .b = CP_BANDIT_PRIOR_B + downs,
                           .cost_usd = cost,
                           .latency_ms = latency,
                           .samples = (uint64_t)(ups + downs)};
}

static const struct cp_objective quality_only = {1.0, 0.0, 0.0};

static void test_alloc_better_arm_wins(void **state)
{
    struct cp_arm arms[3] = {arm(80, 20, 0.01, 800), arm(50, 50, 0.01, 800),
                             arm(40, 60, 0.01, 800)};
    struct cp_alloc_params p = {quality_only, 10000, 0, 0.05, 1.0};
    struct cp_rng rng;
    double out[3];
    (void)state;

    cp_rng_seed(&rng, 5);
    assert_int_equal(cp_alloc_compute(arms, 3, &p, NULL, &rng, out), 0);
    assert_true(out[0] > 0.85);
    assert_true(out[1] >= 0.05 - 1e-15 && out[2] >= 0.05 - 1e-15);
    assert_close(sum_of(out, 3), 1.0, SUM_TOL);

    /* Equal quality, one arm 10x the cost: cost decides. */
    arms[0] = arm(60, 40, 0.02, 900);
    arms[1] = arm(60, 40, 0.002, 900);
    arms[2] = arm(60, 40, 0.02, 900);
    p.weights = (struct cp_objective){1.0, 0.5, 0.0};
    assert_int_equal(cp_alloc_compute(arms, 3, &p, NULL, &rng, out), 0);
    assert_true(out[1] > 0.85);
    /* ...or latency does: arm 2 answers in a quarter of the time. */
    arms[1].cost_usd = 0.02;
    arms[2].latency_ms = 225;
    p.weights = (struct cp_objective){1.0, 0.0, 0.5};
    assert_int_equal(cp_alloc_compute(arms, 3, &p, NULL, &rng, out), 0);
    assert_true(out[2] > 0.85);
    /* A small quality edge outweighs a small cost penalty when quality is weighted up. */
    arms[0] = arm(900, 100, 0.011, 900);
    arms[1] = arm(500, 500, 0.010, 900);
    p.weights = (struct cp_objective){1.0, 0.1, 0.0};
    assert_int_equal(cp_alloc_compute(arms, 2, &p, NULL, &rng, out), 0);
    assert_true(out[0] > 0.9);
}

static void test_alloc_thompson_ties_and_normalisation(void **state)
{
    struct cp_arm arms[4] = {arm(5, 5, 0.01, 100), arm(50, 5, 0.01, 100), arm(5, 50, 0.02, 100),
                             arm(1, 1, 0.01, 100)};
    struct cp_objective cost_only = {0.0, 1.0, 0.0};
    struct cp_rng rng;
    double out[4];
    (void)state;

    cp_rng_seed(&rng, 6);
    /* Quality ignored: the three cheapest arms tie every round and split exactly. */
    assert_int_equal(cp_alloc_thompson(arms, 4, &cost_only, 999, &rng, out), 0);
    assert_close(out[0], 1.0 / 3.0, 1e-12);
    assert_close(out[1], 1.0 / 3.0, 1e-12);
    assert_close(out[2], 0.0, 0);
    assert_close(out[3], 1.0 / 3.0, 1e-12);
    /* All costs and latencies 0: those terms are 0, not 0/0, and every arm ties. */
    for (int i = 0; i < 4; i++)
        arms[i].cost_usd = arms[i].latency_ms = 0.0;
    assert_int_equal(cp_alloc_thompson(arms, 4, &cost_only, 10, &rng, out), 0);
    for (int i = 0; i < 4; i++)
        assert_close(out[i], 0.25, 1e-15);
    /* Invalid arguments. */
    assert_int_equal(cp_alloc_thompson(arms, 0, &quality_only, 10, &rng, out), -EINVAL);
    assert_int_equal(cp_alloc_thompson(arms, 4, &quality_only, 0, &rng, out), -EINVAL);
    assert_int_equal(cp_alloc_thompson(arms, CP_BANDIT_MAX_ARMS + 1, &quality_only, 10, &rng, out),
                     -EINVAL);
    {
        struct cp_objective neg = {1.0, -0.1, 0.0};

        assert_int_equal(cp_alloc_thompson(arms, 4, &neg, 10, &rng, out), -EINVAL);
    }
    arms[2].cost_usd = -1.0;
    assert_int_equal(cp_alloc_thompson(arms, 4, &quality_only, 10, &rng, out), -EINVAL);
    arms[2].cost_usd = 0.0;
    arms[3].a = 0.0;
    assert_int_equal(cp_alloc_thompson(arms, 4, &quality_only, 10, &rng, out), -EINVAL);
}

static void test_alloc_floor(void **state)
{
    struct cp_arm arms[4] = {arm(1, 0, 0, 0), arm(1, 0, 0, 0), arm(1, 0, 0, 0), arm(1, 0, 0, 0)};
    double s[4];
    (void)state;

    /* Two arms under the floor are raised to exactly it; the others keep their ratio. */
    memcpy(s, (double[]){0.9, 0.1, 0.0, 0.0}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, 0.05), 0);
    assert_close(s[2], 0.05, 1e-15);
    assert_close(s[3], 0.05, 1e-15);
    assert_close(s[0], 0.9 * 0.9, 1e-15);
    assert_close(s[1], 0.1 * 0.9, 1e-15);
    assert_close(sum_of(s, 4), 1.0, SUM_TOL);
    /* Scaling down can push another arm under the floor: 0.06 * 0.9 < 0.06, so it is raised
     * in a second round. */
    memcpy(s, (double[]){0.84, 0.06, 0.1, 0.0}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, 0.06), 0);
    assert_close(s[1], 0.06, 1e-15);
    assert_close(s[3], 0.06, 1e-15);
    assert_close(s[0] / s[2], 8.4, 1e-12);
    assert_close(sum_of(s, 4), 1.0, SUM_TOL);
    /* A floor of 1/n or more means uniform. */
    memcpy(s, (double[]){0.7, 0.1, 0.1, 0.1}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, 0.4), 0);
    for (int i = 0; i < 4; i++)
        assert_close(s[i], 0.25, 1e-15);
    /* Unnormalised input is normalised; floor 0 changes nothing else. */
    memcpy(s, (double[]){2, 1, 1, 0}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, 0.0), 0);
    assert_close(s[0], 0.5, 1e-15);
    assert_close(s[3], 0.0, 0);
    /* Invalid shares and floors. */
    memcpy(s, (double[]){0, 0, 0, 0}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, 0.05), -EINVAL);
    memcpy(s, (double[]){0.5, -0.1, 0.6, 0}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, 0.05), -EINVAL);
    memcpy(s, (double[]){0.5, NAN, 0.5, 0}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, 0.05), -EINVAL);
    memcpy(s, (double[]){0.5, 0.5, 0, 0}, sizeof(s));
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, -0.01), -EINVAL);
    assert_int_equal(cp_alloc_bound(s, arms, 4, 0, NAN), -EINVAL);
    assert_int_equal(cp_alloc_bound(s, arms, 0, 0, 0.05), -EINVAL);
}

static void test_alloc_min_samples(void **state)
{
    /* Arm 0 is clearly best with 1000 votes; arms 1 and 2 have 3 and 5. */
    struct cp_arm arms[4] = {arm(900, 100, 0, 0), arm(1, 2, 0, 0), arm(1, 4, 0, 0),
                             arm(300, 700, 0, 0)};
    struct cp_alloc_params p = {quality_only, 5000, 10, 0.05, 1.0};
    struct cp_rng rng;
    double s[4];
    (void)state;

    cp_rng_seed(&rng, 8);
    /* Without the knob arm 0 takes all but the floors. */
    p.min_samples = 0;
    assert_int_equal(cp_alloc_compute(arms, 4, &p, NULL, &rng, s), 0);
    assert_true(s[0] > 0.8);
    /* With it, each under-sampled arm keeps at least the uniform share 1/4; the sampled
     * arms share what is left, the floor still holding for arm 3. */
    p.min_samples = 10;
    assert_int_equal(cp_alloc_compute(arms, 4, &p, NULL, &rng, s), 0);
    assert_true(s[1] >= 0.25 - 1e-15 && s[2] >= 0.25 - 1e-15);
    assert_true(s[3] >= 0.05 - 1e-15);
    assert_true(s[0] > 0.4);
    assert_close(sum_of(s, 4), 1.0, SUM_TOL);
    /* "Fewer than": exactly min_samples observations is enough. */
    p.min_samples = 5;
    assert_int_equal(cp_alloc_compute(arms, 4, &p, NULL, &rng, s), 0);
    assert_true(s[1] >= 0.25 - 1e-15);
    assert_true(s[2] < 0.1);
    /* Every arm under-sampled: uniform. */
    p.min_samples = 100000;
    assert_int_equal(cp_alloc_compute(arms, 4, &p, NULL, &rng, s), 0);
    for (int i = 0; i < 4; i++)
        assert_close(s[i], 0.25, 1e-15);
    /* The floor applied after min_samples never takes an under-sampled arm (1 and 3 here)
     * below 1/n; raising arm 2 to the floor is paid for by arm 0 alone. */
    memcpy(s, (double[]){0.9, 0.1, 0.0, 0.0}, sizeof(s));
    arms[2].samples = 50;
    arms[3].samples = 0;
    assert_int_equal(cp_alloc_bound(s, arms, 4, 10, 0.05), 0);
    assert_close(s[3], 0.25, 1e-15);
    assert_close(s[2], 0.05, 1e-15);
    assert_close(s[1], 0.25, 1e-15); /* arm 1 (3 samples) is under-sampled too */
    assert_close(s[0], 0.45, 1e-15);
}

static void test_alloc_step(void **state)
{
    double s[3], cur[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    (void)state;

    /* Up moves capped at 0.2 total 0.2; down moves capped at 0.2 each total 0.4, scaled to
     * 0.2 so the sum stays 1: (1/3 + 0.2, 1/3 - 0.1, 1/3 - 0.1). */
    memcpy(s, (double[]){1, 0, 0}, sizeof(s));
    assert_int_equal(cp_alloc_step(s, cur, 3, 0.2), 0);
    assert_close(s[0], 1.0 / 3 + 0.2, 1e-15);
    assert_close(s[1], 1.0 / 3 - 0.1, 1e-15);
    assert_close(s[2], 1.0 / 3 - 0.1, 1e-15);
    assert_close(sum_of(s, 3), 1.0, SUM_TOL);
    /* Within reach: the target itself. */
    memcpy(s, (double[]){0.4, 0.3, 0.3}, sizeof(s));
    assert_int_equal(cp_alloc_step(s, cur, 3, 0.2), 0);
    assert_close(s[0], 0.4, 1e-15);
    assert_close(s[2], 0.3, 1e-15);
    /* max_step 0 freezes; max_step 1 jumps. */
    memcpy(s, (double[]){1, 0, 0}, sizeof(s));
    assert_int_equal(cp_alloc_step(s, cur, 3, 0.0), 0);
    for (int i = 0; i < 3; i++)
        assert_close(s[i], 1.0 / 3, 1e-15);
    memcpy(s, (double[]){1, 0, 0}, sizeof(s));
    assert_int_equal(cp_alloc_step(s, cur, 3, 1.0), 0);
    assert_close(s[0], 1.0, 1e-15);
    /* cp_alloc_compute applies it last, and <out> may be <current>. */
    {
        struct cp_arm arms[2] = {arm(95, 5, 0, 0), arm(5, 95, 0, 0)};
        struct cp_alloc_params p = {quality_only, 2000, 0, 0.05, 0.1};
        struct cp_rng rng;
        double shares[2] = {0.5, 0.5};

        cp_rng_seed(&rng, 9);
        assert_int_equal(cp_alloc_compute(arms, 2, &p, shares, &rng, shares), 0);
        assert_close(shares[0], 0.6, 1e-15);
        assert_close(shares[1], 0.4, 1e-15);
    }
    memcpy(s, (double[]){1, 0, 0}, sizeof(s));
    assert_int_equal(cp_alloc_step(s, cur, 3, -0.1), -EINVAL);
    assert_int_equal(cp_alloc_step(s, (double[]){0, 0, 0}, 3, 0.1), -EINVAL);
    assert_int_equal(cp_alloc_step(s, cur, 0, 0.1), -EINVAL);
}

/* Random shares, floors, min_samples and steps: the invariants always hold. */
static void test_alloc_invariants_random(void **state)
{
    struct cp_rng rng;
    (void)state;

    cp_rng_seed(&rng, 10);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1 + cp_rng_u64(&rng) % 12;
        struct cp_arm arms[12];
        double target[12], cur[12], s[12], lo[12];
        double floor_share = cp_rng_uniform(&rng) * 0.2;
        double step = cp_rng_uniform(&rng) * 0.5;
        uint64_t min_samples = cp_rng_u64(&rng) % 20;
        double eff_floor = fmin(floor_share, 1.0 / (double)n);

        for (size_t i = 0; i < n; i++) {
            /* A third of the shares are exactly 0, the rest spread over decades. */
            target[i] = cp_rng_u64(&rng) % 3 ? pow(10.0, -4.0 * cp_rng_uniform(&rng)) : 0.0;
            cur[i] = cp_rng_uniform(&rng);
            arms[i] = arm(0, 0, 0, 0);
            arms[i].samples = cp_rng_u64(&rng) % 30;
            lo[i] = arms[i].samples < min_samples ? 1.0 / (double)n : eff_floor;
        }
        target[cp_rng_u64(&rng) % n] += 0.01; /* never all zero */
        /* The bounds. */
        memcpy(s, target, n * sizeof(*s));
        assert_int_equal(cp_alloc_bound(s, arms, n, min_samples, floor_share), 0);
        assert_close(sum_of(s, n), 1.0, SUM_TOL);
        for (size_t i = 0; i < n; i++)
            if (!(s[i] >= lo[i] - 1e-12))
                fail_msg("iter %d: share %zu = %.17g under its bound %.17g", iter, i, s[i], lo[i]);
        /* The step from a current allocation meeting the same bounds. */
        assert_int_equal(cp_alloc_bound(cur, arms, n, min_samples, floor_share), 0);
        memcpy(target, s, n * sizeof(*s));
        assert_int_equal(cp_alloc_step(s, cur, n, step), 0);
        assert_close(sum_of(s, n), 1.0, SUM_TOL);
        for (size_t i = 0; i < n; i++) {
            double low = fmin(cur[i], target[i]), high = fmax(cur[i], target[i]);

            if (!(fabs(s[i] - cur[i]) <= step + 1e-12))
                fail_msg("iter %d: share %zu moved %.17g > %g", iter, i, s[i] - cur[i], step);
            if (!(s[i] >= low - 1e-12 && s[i] <= high + 1e-12))
                fail_msg("iter %d: share %zu = %.17g outside [%.17g, %.17g]", iter, i, s[i], low,
                         high);
            if (!(s[i] >= lo[i] - 1e-12))
                fail_msg("iter %d: stepped share %zu under its bound", iter, i);
        }
        /* A step that reaches the target in one go lands on it. */
        if (!cp_alloc_changed(cur, target, n, step))
            for (size_t i = 0; i < n; i++)
                assert_close(s[i], target[i], 1e-12);
    }
}

static void test_alloc_changed(void **state)
{
    const double a[] = {0.5, 0.3, 0.2};
    (void)state;

    assert_false(cp_alloc_changed(a, a, 3, 0.0));
    assert_false(cp_alloc_changed(a, (double[]){0.515, 0.29, 0.195}, 3, 0.02));
    assert_true(cp_alloc_changed(a, (double[]){0.53, 0.29, 0.18}, 3, 0.02));
    assert_true(cp_alloc_changed(a, (double[]){0.5, 0.3, 0.22}, 3, 0.01));
    assert_true(cp_alloc_changed(a, (double[]){0.5, NAN, 0.2}, 3, 0.5));
    assert_false(cp_alloc_changed(a, a, 0, 0.0));
}

/* ---- Integer weights ----------------------------------------------------------------- */

static uint64_t weights_sum(const uint32_t *w, size_t n)
{
    uint64_t s = 0;

    for (size_t i = 0; i < n; i++)
        s += w[i];
    return s;
}

static void test_weights(void **state)
{
    uint32_t w[5];
    struct cp_rng rng;
    (void)state;

    assert_int_equal(cp_shares_to_weights((double[]){0.5, 0.3, 0.2}, 3, 1000, w), 0);
    assert_int_equal(w[0], 500);
    assert_int_equal(w[1], 300);
    assert_int_equal(w[2], 200);
    /* Thirds: 333.33 each, the spare unit to the lowest index. */
    assert_int_equal(cp_shares_to_weights((double[]){1, 1, 1}, 3, 1000, w), 0);
    assert_int_equal(w[0], 334);
    assert_int_equal(w[1], 333);
    assert_int_equal(w[2], 333);
    /* Largest remainder: quotas 123.4, 567.8, 308.8 -> 123, 568, 309. */
    assert_int_equal(cp_shares_to_weights((double[]){0.1234, 0.5678, 0.3088}, 3, 1000, w), 0);
    assert_int_equal(w[0], 123);
    assert_int_equal(w[1], 568);
    assert_int_equal(w[2], 309);
    /* A tiny share still gets 1, taken from the arm most above its quota; zero gets 0. */
    assert_int_equal(
        cp_shares_to_weights((double[]){0.6666, 0.3333, 1e-6, 0.0, 0.0001}, 5, 1000, w), 0);
    assert_int_equal(w[2], 1);
    assert_int_equal(w[3], 0);
    assert_int_equal(w[4], 1);
    assert_int_equal(weights_sum(w, 5), 1000);
    /* Exactly as many units as positive shares: one each. */
    assert_int_equal(cp_shares_to_weights((double[]){0.97, 0.01, 0.01, 0.01}, 4, 4, w), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w[i], 1);
    /* Errors: fewer units than positive shares, bad shares. */
    assert_int_equal(cp_shares_to_weights((double[]){0.5, 0.3, 0.2}, 3, 2, w), -EINVAL);
    assert_int_equal(cp_shares_to_weights((double[]){0, 0}, 2, 1000, w), -EINVAL);
    assert_int_equal(cp_shares_to_weights((double[]){0.5, -0.5, 1}, 3, 1000, w), -EINVAL);
    assert_int_equal(cp_shares_to_weights((double[]){0.5, NAN}, 2, 1000, w), -EINVAL);
    assert_int_equal(cp_shares_to_weights((double[]){1}, 0, 1000, w), -EINVAL);
    /* Random shares: always the exact total, positive shares >= 1, and without minimum
     * bumps each weight is its quota rounded down or up. */
    cp_rng_seed(&rng, 11);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1 + cp_rng_u64(&rng) % 5;
        uint32_t total = 1 + (uint32_t)(cp_rng_u64(&rng) % 10000);
        double s[5], sum = 0.0;
        bool bumped = false;

        for (size_t i = 0; i < n; i++) {
            s[i] = cp_rng_u64(&rng) % 4 ? pow(10.0, -5.0 * cp_rng_uniform(&rng)) : 0.0;
            sum += s[i];
        }
        if (sum == 0.0) {
            s[0] = 1.0;
            sum = 1.0;
        }
        if (cp_shares_to_weights(s, n, total, w) < 0) {
            size_t positive = 0;

            for (size_t i = 0; i < n; i++)
                positive += s[i] > 0.0;
            assert_true(positive > total);
            continue;
        }
        assert_int_equal(weights_sum(w, n), total);
        for (size_t i = 0; i < n; i++) {
            assert_true(s[i] > 0.0 ? w[i] >= 1 : w[i] == 0);
            bumped |= s[i] > 0.0 && s[i] / sum * total < 1.0;
        }
        if (!bumped)
            for (size_t i = 0; i < n; i++)
                assert_true(fabs((double)w[i] - s[i] / sum * total) < 1.0 + 1e-9);
    }
}

/* ---- Posterior updates --------------------------------------------------------------- */

static void test_decay_and_updates(void **state)
{
    double a = CP_BANDIT_PRIOR_A, b = CP_BANDIT_PRIOR_B, mean, lo, hi, width;
    (void)state;

    cp_posterior_add(&a, &b, 100, 10);
    assert_close(a, 101, 0);
    assert_close(b, 11, 0);
    mean = cp_beta_mean(a, b);
    assert_int_equal(cp_beta_ci95(a, b, &lo, &hi), 0);
    width = hi - lo;
    /* Halving the evidence: the mean moves toward the prior's 0.5, the interval widens. */
    assert_int_equal(cp_posterior_decay(&a, &b, 0.5, 1, 1), 0);
    assert_close(a, 51, 1e-12);
    assert_close(b, 6, 1e-12);
    assert_true(cp_beta_mean(a, b) < mean && cp_beta_mean(a, b) > 0.5);
    assert_int_equal(cp_beta_ci95(a, b, &lo, &hi), 0);
    assert_true(hi - lo > width);
    /* gamma = 1 keeps everything, repeated decay converges on the prior, 0 resets. */
    assert_int_equal(cp_posterior_decay(&a, &b, 1.0, 1, 1), 0);
    assert_close(a, 51, 1e-12);
    for (int i = 0; i < 200; i++)
        assert_int_equal(cp_posterior_decay(&a, &b, 0.9, 1, 1), 0);
    assert_close(a, 1, 1e-7);
    assert_close(b, 1, 1e-7);
    a = 40;
    assert_int_equal(cp_posterior_decay(&a, &b, 0.0, 2, 3), 0);
    assert_close(a, 2, 0);
    assert_close(b, 3, 0);
    /* Invalid gamma or prior: nothing changes. */
    assert_int_equal(cp_posterior_decay(&a, &b, 1.5, 1, 1), -EINVAL);
    assert_int_equal(cp_posterior_decay(&a, &b, -0.1, 1, 1), -EINVAL);
    assert_int_equal(cp_posterior_decay(&a, &b, NAN, 1, 1), -EINVAL);
    assert_int_equal(cp_posterior_decay(&a, &b, 0.5, 0, 1), -EINVAL);
    assert_close(a, 2, 0);
    /* Graded scores are fractional successes. */
    a = b = 1;
    assert_int_equal(cp_posterior_add_score(&a, &b, 0.75), 0);
    assert_int_equal(cp_posterior_add_score(&a, &b, 1.0), 0);
    assert_int_equal(cp_posterior_add_score(&a, &b, 0.0), 0);
    assert_close(a, 2.75, 1e-15);
    assert_close(b, 2.25, 1e-15);
    assert_int_equal(cp_posterior_add_score(&a, &b, 1.01), -EINVAL);
    assert_int_equal(cp_posterior_add_score(&a, &b, NAN), -EINVAL);
    assert_close(a, 2.75, 1e-15);
}

/* ---- A simulated bandit -------------------------------------------------------------- */

/* Two arms with hidden thumbs-up rates 0.8 and 0.5. Each round routes one request by the
 * current shares and records its vote; every 20 votes the allocation is recomputed (floor
 * 0.05, max_step 0.2, min_samples 10). After 1,000 rounds the better arm must carry at
 * least 85% of the traffic, and every intermediate allocation must respect the knobs. */
static void test_simulated_bandit(void **state)
{
    static const double rate[2] = {0.8, 0.5};
    struct cp_arm arms[2] = {arm(0, 0, 0.01, 500), arm(0, 0, 0.01, 500)};
    struct cp_alloc_params p = {quality_only, 5000, 10, 0.05, 0.2};
    struct cp_rng env, alloc;
    double shares[2] = {0.5, 0.5}, next[2];
    (void)state;

    cp_rng_seed(&env, 2024);
    cp_rng_seed(&alloc, 4202);
    for (int round = 1; round <= 1000; round++) {
        int k = cp_rng_uniform(&env) < shares[0] ? 0 : 1;
        bool up = cp_rng_uniform(&env) < rate[k];

        cp_posterior_add(&arms[k].a, &arms[k].b, up, !up);
        arms[k].samples++;
        if (round % 20)
            continue;
        assert_int_equal(cp_alloc_compute(arms, 2, &p, shares, &alloc, next), 0);
        assert_close(sum_of(next, 2), 1.0, SUM_TOL);
        for (int i = 0; i < 2; i++) {
            assert_true(fabs(next[i] - shares[i]) <= 0.2 + 1e-12);
            assert_true(next[i] >= 0.05 - 1e-12);
        }
        memcpy(shares, next, sizeof(shares));
    }
    if (!(shares[0] >= 0.85))
        fail_msg("better arm ends with share %.4f (posteriors Beta(%g, %g) vs Beta(%g, %g))",
                 shares[0], arms[0].a, arms[0].b, arms[1].a, arms[1].b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_uniform_normal_moments),
        cmocka_unit_test(test_gamma_moments),
        cmocka_unit_test(test_beta_moments),
        cmocka_unit_test(test_beta_quantile_references),
        cmocka_unit_test(test_beta_quantile_closed_forms),
        cmocka_unit_test(test_beta_quantile_edges),
        cmocka_unit_test(test_ci95),
        cmocka_unit_test(test_prob_best),
        cmocka_unit_test(test_two_proportion),
        cmocka_unit_test(test_alloc_better_arm_wins),
        cmocka_unit_test(test_alloc_thompson_ties_and_normalisation),
        cmocka_unit_test(test_alloc_floor),
        cmocka_unit_test(test_alloc_min_samples),
        cmocka_unit_test(test_alloc_step),
        cmocka_unit_test(test_alloc_invariants_random),
        cmocka_unit_test(test_alloc_changed),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_decay_and_updates),
        cmocka_unit_test(test_simulated_bandit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
