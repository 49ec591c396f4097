/* controlplane/learn/cp_bandit.c - samplers, Beta posteriors, tests and Thompson allocation.
 *
 * Everything here is a pure function of its arguments (plus the caller's struct cp_rng), so
 * the module has no state to lock and any thread may use it. Scratch space is bounded by
 * CP_BANDIT_MAX_ARMS and lives on the stack; nothing is allocated. Log-gamma is computed
 * here rather than with lgamma(), whose signgam side effect is a data race between threads.
 *
 * Algorithms, implemented from their published descriptions:
 *  - xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number generators",
 *    2018), seeded with splitmix64 as its authors recommend;
 *  - Marsaglia's polar method for normals; Marsaglia and Tsang, "A simple method for
 *    generating gamma variables" (2000), including the U^(1/a) boost for shape < 1;
 *  - the continued fraction of the regularized incomplete beta function (DLMF 8.17.22),
 *    evaluated with the modified Lentz method (Thompson and Barnett, 1986);
 *  - Stirling's series for log-gamma (DLMF 5.11.1) after shifting the argument to >= 10. */
#include "cp_bandit.h"

#include <errno.h>
#include <math.h>

/* The continued fraction stops when its last factor is within CF_EPS (~1.5 ulp) of 1; the
 * cap on its terms only guards against a bug: with the symmetry switch it needs about
 * sqrt(min(a, b)) terms, ~1,100 at a = b = 1e6. */
#define CF_EPS 3e-16
#define CF_MAX_TERMS 100000
#define CF_TINY 1e-300

/* Quantile search: stop when the step or the bracket is below this absolute size plus a
 * relative part, or after this many iterations (bisection alone needs about 60). */
#define QUANTILE_ABS_TOL 1e-15
#define QUANTILE_REL_TOL 1e-13
#define QUANTILE_MAX_ITER 500

#define LOG_SQRT_2PI 0.91893853320467274178

/* ---- PRNG ---------------------------------------------------------------------------- */

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64: advances *<x> by the golden-ratio increment and returns a mixed output. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cp_rng_seed(struct cp_rng *rng, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    rng->spare = 0.0;
    rng->has_spare = false;
}

uint64_t cp_rng_u64(struct cp_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t out = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return out;
}

double cp_rng_uniform(struct cp_rng *rng)
{
    /* The top 53 bits, centred in their cell: (k + 0.5) / 2^53 is in [2^-54, 1 - 2^-54]. */
    return ((double)(cp_rng_u64(rng) >> 11) + 0.5) * 0x1p-53;
}

double cp_rng_normal(struct cp_rng *rng)
{
    double u, v, s, m;

    if (rng->has_spare) {
        rng->has_spare = false;
        return rng->spare;
    }
    do {
        u = 2.0 * cp_rng_uniform(rng) - 1.0;
        v = 2.0 * cp_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    m = sqrt(-2.0 * log(s) / s);
    rng->spare = v * m;
    rng->has_spare = true;
    return u * m;
}

/* Marsaglia-Tsang for <shape> >= 1: a transformed normal, accepted by a cheap squeeze
 * first and the exact log test otherwise (acceptance is above 95% for every shape). */
static double gamma_mt(struct cp_rng *rng, double shape)
{
    double d = shape - 1.0 / 3.0;
    double c = 1.0 / sqrt(9.0 * d);

    for (;;) {
        double x, v, u;

        do {
            x = cp_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        u = cp_rng_uniform(rng);
        if (u < 1.0 - 0.0331 * (x * x) * (x * x))
            return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

/* log of a Gamma(<shape>) deviate, shape > 0. Below 1, Gamma(shape) = Gamma(shape + 1) *
 * U^(1/shape); in logs that stays finite where the product would underflow. */
static double log_gamma_variate(struct cp_rng *rng, double shape)
{
    if (shape >= 1.0)
        return log(gamma_mt(rng, shape));
    return log(gamma_mt(rng, shape + 1.0)) + log(cp_rng_uniform(rng)) / shape;
}

static bool valid_shape(double x)
{
    return isfinite(x) && x > 0.0;
}

double cp_rng_gamma(struct cp_rng *rng, double shape)
{
    if (!valid_shape(shape))
        return NAN;
    if (shape >= 1.0)
        return gamma_mt(rng, shape);
    return exp(log_gamma_variate(rng, shape));
}

double cp_rng_beta(struct cp_rng *rng, double a, double b)
{
    double x, y;

    if (!valid_shape(a) || !valid_shape(b))
        return NAN;
    if (a >= 1.0 && b >= 1.0) {
        x = gamma_mt(rng, a);
        y = gamma_mt(rng, b);
        return x / (x + y);
    }
    /* X / (X + Y) = 1 / (1 + exp(log Y - log X)); exp overflowing to inf gives 0. */
    x = log_gamma_variate(rng, a);
    y = log_gamma_variate(rng, b);
    return 1.0 / (1.0 + exp(y - x));
}

/* ---- Special functions --------------------------------------------------------------- */

/* Stirling's correction omega(x) = log Gamma(x) - ((x - 1/2) log x - x + log sqrt(2 pi))
 * for x >= 10, through the x^-13 term (the next one is below 3e-17 there). */
static double stirling_omega(double x)
{
    double z = 1.0 / (x * x);

    return (1.0 / 12.0 +
            z * (-1.0 / 360.0 +
                 z * (1.0 / 1260.0 +
                      z * (-1.0 / 1680.0 +
                           z * (1.0 / 1188.0 + z * (-691.0 / 360360.0 + z * (1.0 / 156.0))))))) /
           x;
}

/* log Gamma(x) for x > 0: shift to x >= 10 with Gamma(x) = Gamma(x + 1) / x, then
 * Stirling's series. */
static double log_gamma_fn(double x)
{
    double shift = 0.0;

    while (x < 10.0) {
        shift += log(x);
        x += 1.0;
    }
    return (x - 0.5) * log(x) - x + LOG_SQRT_2PI + stirling_omega(x) - shift;
}

/* log B(a, b) = log Gamma(a) + log Gamma(b) - log Gamma(a + b). For large arguments the
 * three terms are ~1e7 and cancel to a small number, losing 1e-9; written through
 * Stirling's series the large parts cancel algebraically instead:
 *   both >= 10:  (a - 1/2) log(a / (a+b)) + (b - 1/2) log(b / (a+b)) - log(a+b) / 2
 *                + log sqrt(2 pi) + omega(a) + omega(b) - omega(a+b)
 *   a < 10 <= b: log Gamma(a) - (b - 1/2) log1p(a / b) - a log(a + b) + a
 *                + omega(b) - omega(a + b) */
static double log_beta_fn(double a, double b)
{
    double s = a + b;

    if (a > b) {
        double t = a;
        a = b;
        b = t;
    }
    if (b < 10.0)
        return log_gamma_fn(a) + log_gamma_fn(b) - log_gamma_fn(s);
    if (a < 10.0)
        return log_gamma_fn(a) - (b - 0.5) * log1p(a / b) - a * log(s) + a + stirling_omega(b) -
               stirling_omega(s);
    return -(a - 0.5) * log1p(b / a) - (b - 0.5) * log1p(a / b) - 0.5 * log(s) + LOG_SQRT_2PI +
           stirling_omega(a) + stirling_omega(b) - stirling_omega(s);
}

/* log(x^a (1 - x)^b / B(a, b)), the factor in front of the continued fraction, for x in
 * (0, 1). When both shapes are large the naive sum of a log x (~ -7e5 at a = 1e6) and
 * log B loses 1e-10; around the mean m = a / (a + b) it is instead
 *   a log(x / m) + b log((1 - x) / (1 - m)) + log(a b / (a + b)) / 2 - log sqrt(2 pi)
 *   - omega(a) - omega(b) + omega(a + b)
 * where the two logs are small near the mean and nothing large cancels. */
static double log_cf_front(double a, double b, double x, double lbeta)
{
    double s, m, mc;

    if (a < 10.0 || b < 10.0)
        return a * log(x) + b * log1p(-x) - lbeta;
    s = a + b;
    m = a / s;
    mc = b / s;
    return a * log1p((x - m) / m) + b * log1p((m - x) / mc) + 0.5 * (log(a) + log(b) - log(s)) -
           LOG_SQRT_2PI - stirling_omega(a) - stirling_omega(b) + stirling_omega(s);
}

/* log of the Beta(a, b) density at x in (0, 1), given <lbeta> = log B(a, b). */
static double log_beta_pdf(double a, double b, double x, double lbeta)
{
    return (a - 1.0) * log(x) + (b - 1.0) * log1p(-x) - lbeta;
}

/* I_x(a, b) for 0 < x < 1 on the side where the continued fraction converges quickly,
 * x <= (a + 1) / (a + b + 2):
 *   I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) / (1 + d1 / (1 + d2 / (1 + ...)))
 *   d(2m+1) = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
 *   d(2m)   = m (b - m) x / ((a + 2m - 1)(a + 2m))
 * The denominator is evaluated forward with modified Lentz. A zero d(2m) (integer b)
 * ends the fraction exactly. */
static double inc_beta_cf(double a, double b, double x, double lbeta)
{
    double f = 1.0, c = 1.0, d = 0.0;
    double front = exp(log_cf_front(a, b, x, lbeta)) / a;

    for (int j = 1; j <= 2 * CF_MAX_TERMS; j++) {
        double m = (double)(j / 2), coef, delta;

        if (j % 2)
            coef = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        else
            coef = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 + coef * d;
        if (fabs(d) < CF_TINY)
            d = CF_TINY;
        c = 1.0 + coef / c;
        if (fabs(c) < CF_TINY)
            c = CF_TINY;
        d = 1.0 / d;
        delta = c * d;
        f *= delta;
        if (fabs(delta - 1.0) < CF_EPS)
            break;
    }
    return front / f;
}

/* I_x(a, b) with valid arguments and a precomputed <lbeta>. */
static double inc_beta(double a, double b, double x, double lbeta)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    if (x <= (a + 1.0) / (a + b + 2.0))
        return inc_beta_cf(a, b, x, lbeta);
    /* I_x(a, b) = 1 - I_(1-x)(b, a); B(b, a) = B(a, b). */
    return 1.0 - inc_beta_cf(b, a, 1.0 - x, lbeta);
}

/* ---- Beta posteriors ----------------------------------------------------------------- */

double cp_beta_mean(double a, double b)
{
    if (!valid_shape(a) || !valid_shape(b))
        return NAN;
    return a / (a + b);
}

double cp_beta_cdf(double a, double b, double x)
{
    if (!valid_shape(a) || !valid_shape(b) || isnan(x))
        return NAN;
    return inc_beta(a, b, x, log_beta_fn(a, b));
}

/* The <p>-quantile for 0 < p <= 1/2 and valid shapes. Starts at the mean: Newton from there
 * reaches central quantiles in a few steps, and the bracket [lo, hi] catches the steps
 * that leave it in skewed tails. */
static double quantile_lower(double a, double b, double p)
{
    double lbeta = log_beta_fn(a, b), lo = 0.0, hi = 1.0, x = a / (a + b);

    for (int i = 0; i < QUANTILE_MAX_ITER; i++) {
        double f = inc_beta(a, b, x, lbeta) - p;
        double pdf, step, next, tol;

        if (f == 0.0)
            return x;
        if (f < 0.0)
            lo = x;
        else
            hi = x;
        /* Relative to the distance from the nearer end: x near 1 is only known to 1e-16. */
        tol = QUANTILE_ABS_TOL + QUANTILE_REL_TOL * fmin(x, 1.0 - x);
        pdf = exp(log_beta_pdf(a, b, x, lbeta));
        step = f / pdf;
        if (pdf > 0.0 && fabs(step) <= tol) /* also when the step is below x's resolution */
            return fmin(fmax(x - step, lo), hi);
        next = x - step;
        if (!(pdf > 0.0) || !isfinite(next) || next <= lo || next >= hi)
            next = 0.5 * (lo + hi);
        if (hi - lo <= tol)
            return next;
        x = next;
    }
    return x;
}

double cp_beta_quantile(double a, double b, double p)
{
    if (!valid_shape(a) || !valid_shape(b) || !(p >= 0.0 && p <= 1.0))
        return NAN;
    if (p == 0.0)
        return 0.0;
    if (p == 1.0)
        return 1.0;
    /* Upper quantiles through X ~ Beta(a, b) <=> 1 - X ~ Beta(b, a): 1 - p is exact for
     * p > 1/2, and the lower tail of Beta(b, a) is computed to full relative precision,
     * where 1 - I would leave only 1e-16 absolute in a flat upper tail. */
    if (p > 0.5)
        return 1.0 - quantile_lower(b, a, 1.0 - p);
    return quantile_lower(a, b, p);
}

int cp_beta_ci95(double a, double b, double *lo, double *hi)
{
    if (!valid_shape(a) || !valid_shape(b)) {
        *lo = *hi = NAN;
        return -EINVAL;
    }
    *lo = cp_beta_quantile(a, b, 0.025);
    *hi = cp_beta_quantile(a, b, 0.975);
    return 0;
}

/* ---- Thompson sampling --------------------------------------------------------------- */

/* The shared core of cp_prob_best and cp_alloc_thompson: <draws> rounds of utility
 * u_i = wq * q_i - penalty[i] with q_i ~ Beta(a[i], b[i]); out[i] = arm i's share of the
 * wins, ties split. With wq = 0 the utilities are constant and no quality is sampled.
 * Arguments are valid and n <= CP_BANDIT_MAX_ARMS. */
static void thompson(const double *a, const double *b, const double *penalty, double wq, size_t n,
                     size_t draws, struct cp_rng *rng, double *out)
{
    size_t tied[CP_BANDIT_MAX_ARMS];
    double sum = 0.0;

    for (size_t i = 0; i < n; i++)
        out[i] = 0.0;
    for (size_t r = 0; r < draws; r++) {
        double best = -INFINITY;
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
            double u = -penalty[i];

            if (wq != 0.0)
                u += wq * cp_rng_beta(rng, a[i], b[i]);
            if (u > best) {
                best = u;
                k = 0;
                tied[k++] = i;
            } else if (u == best) {
                tied[k++] = i;
            }
        }
        for (size_t j = 0; j < k; j++)
            out[tied[j]] += 1.0 / (double)k;
    }
    for (size_t i = 0; i < n; i++)
        sum += out[i];
    for (size_t i = 0; i < n; i++)
        out[i] = sum > 0.0 ? out[i] / sum : 1.0 / (double)n;
}

int cp_prob_best(const double *a, const double *b, size_t n_arms, size_t draws, struct cp_rng *rng,
                 double *out)
{
    static const double zero[CP_BANDIT_MAX_ARMS];

    if (n_arms == 0 || n_arms > CP_BANDIT_MAX_ARMS || draws == 0)
        return -EINVAL;
    for (size_t i = 0; i < n_arms; i++)
        if (!valid_shape(a[i]) || !valid_shape(b[i]))
            return -EINVAL;
    thompson(a, b, zero, 1.0, n_arms, draws, rng, out);
    return 0;
}

/* ---- Two-proportion z-test ----------------------------------------------------------- */

int cp_two_proportion_test(uint64_t s1, uint64_t n1, uint64_t s2, uint64_t n2, double *z,
                           double *p_value)
{
    double p1, p2, pooled, se;

    *z = 0.0;
    *p_value = 1.0;
    if (s1 > n1 || s2 > n2)
        return -EINVAL;
    if (n1 == 0 || n2 == 0)
        return 0;
    p1 = (double)s1 / (double)n1;
    p2 = (double)s2 / (double)n2;
    pooled = ((double)s1 + (double)s2) / ((double)n1 + (double)n2);
    if (pooled <= 0.0 || pooled >= 1.0)
        return 0;
    se = sqrt(pooled * (1.0 - pooled) * (1.0 / (double)n1 + 1.0 / (double)n2));
    *z = (p1 - p2) / se;
    *p_value = erfc(fabs(*z) / sqrt(2.0));
    return 0;
}

/* ---- Allocation ---------------------------------------------------------------------- */

static bool valid_weight(double w)
{
    return isfinite(w) && w >= 0.0;
}

static bool valid_arm(const struct cp_arm *arm)
{
    return valid_shape(arm->a) && valid_shape(arm->b) && valid_weight(arm->cost_usd) &&
           valid_weight(arm->latency_ms);
}

/* Divides the <n> shares by their sum; -EINVAL when one is negative or not finite or the
 * sum is not positive and finite. */
static int normalise(double *s, size_t n)
{
    double sum = 0.0;

    for (size_t i = 0; i < n; i++) {
        if (!valid_weight(s[i]))
            return -EINVAL;
        sum += s[i];
    }
    if (!(sum > 0.0) || !isfinite(sum))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        s[i] /= sum;
    return 0;
}

/* Puts the rounding residual 1 - sum onto the largest share, which it cannot turn
 * negative, so the shares sum to 1 to within an ulp or two. */
static void fix_sum(double *s, size_t n)
{
    double sum = 0.0;
    size_t big = 0;

    for (size_t i = 0; i < n; i++) {
        sum += s[i];
        if (s[i] > s[big])
            big = i;
    }
    s[big] += 1.0 - sum;
}

int cp_alloc_thompson(const struct cp_arm *arms, size_t n, const struct cp_objective *w,
                      size_t draws, struct cp_rng *rng, double *out)
{
    double a[CP_BANDIT_MAX_ARMS], b[CP_BANDIT_MAX_ARMS], penalty[CP_BANDIT_MAX_ARMS];
    double max_cost = 0.0, max_lat = 0.0;

    if (n == 0 || n > CP_BANDIT_MAX_ARMS || draws == 0 || !valid_weight(w->quality) ||
        !valid_weight(w->cost) || !valid_weight(w->latency))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!valid_arm(&arms[i]))
            return -EINVAL;
        max_cost = fmax(max_cost, arms[i].cost_usd);
        max_lat = fmax(max_lat, arms[i].latency_ms);
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = arms[i].a;
        b[i] = arms[i].b;
        penalty[i] = 0.0;
        if (max_cost > 0.0)
            penalty[i] += w->cost * (arms[i].cost_usd / max_cost);
        if (max_lat > 0.0)
            penalty[i] += w->latency * (arms[i].latency_ms / max_lat);
    }
    thompson(a, b, penalty, w->quality, n, draws, rng, out);
    return 0;
}

/* Raises every share below its bound <lo>[i] to exactly that bound and scales the others by
 * one common factor so the total stays 1. Raising arms lowers the factor, which can push
 * further arms under their bounds, so it repeats until none moves (at most n rounds); an
 * arm once raised stays raised because the factor only decreases. <s> sums to 1 on entry
 * and the bounds sum to at most 1. */
static void raise_to_bounds(double *s, const double *lo, size_t n)
{
    bool fixed[CP_BANDIT_MAX_ARMS] = {false};
    double fixed_mass = 0.0, free_mass = 0.0, scale = 1.0;
    size_t n_free = n;

    for (;;) {
        bool raised = false;

        free_mass = 0.0;
        for (size_t i = 0; i < n; i++)
            if (!fixed[i])
                free_mass += s[i];
        if (!(free_mass > 0.0))
            break;
        scale = fmax(0.0, 1.0 - fixed_mass) / free_mass;
        for (size_t i = 0; i < n; i++) {
            if (!fixed[i] && s[i] * scale < lo[i]) {
                fixed[i] = true;
                fixed_mass += lo[i];
                n_free--;
                raised = true;
            }
        }
        if (!raised)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        if (fixed[i])
            s[i] = lo[i];
        else if (free_mass > 0.0)
            s[i] *= scale;
        else
            s[i] = fmax(0.0, 1.0 - fixed_mass) / (double)n_free;
    }
    if (n_free == 0)
        (void)normalise(s, n); /* every arm at its bound: the bounds were the whole */
    fix_sum(s, n);
}

int cp_alloc_bound(double *shares, const struct cp_arm *arms, size_t n, uint64_t min_samples,
                   double floor_share)
{
    double lo[CP_BANDIT_MAX_ARMS];
    double uniform;

    if (n == 0 || n > CP_BANDIT_MAX_ARMS || !(floor_share >= 0.0))
        return -EINVAL;
    if (normalise(shares, n) < 0)
        return -EINVAL;
    uniform = 1.0 / (double)n;
    floor_share = fmin(floor_share, uniform);
    for (size_t i = 0; i < n; i++)
        lo[i] = arms[i].samples < min_samples ? uniform : floor_share;
    raise_to_bounds(shares, lo, n);
    return 0;
}

int cp_alloc_step(double *shares, const double *current, size_t n, double max_step)
{
    double cur[CP_BANDIT_MAX_ARMS], d[CP_BANDIT_MAX_ARMS];
    double up = 0.0, down = 0.0;

    if (n == 0 || n > CP_BANDIT_MAX_ARMS || !(max_step >= 0.0))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        cur[i] = current[i];
    if (normalise(cur, n) < 0 || normalise(shares, n) < 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        d[i] = fmax(-max_step, fmin(max_step, shares[i] - cur[i]));
        if (d[i] > 0.0)
            up += d[i];
        else
            down -= d[i];
    }
    /* Both sides would be equal without the clamp (both vectors sum to 1); shrink the
     * larger so the moves cancel. Each result stays between current and target. */
    for (size_t i = 0; i < n; i++) {
        if (d[i] > 0.0 && up > down)
            d[i] *= down / up;
        else if (d[i] < 0.0 && down > up)
            d[i] *= up / down;
        shares[i] = cur[i] + d[i];
    }
    fix_sum(shares, n);
    return 0;
}

int cp_alloc_compute(const struct cp_arm *arms, size_t n, const struct cp_alloc_params *p,
                     const double *current, struct cp_rng *rng, double *out)
{
    double cur[CP_BANDIT_MAX_ARMS];
    int rc;

    if (n == 0 || n > CP_BANDIT_MAX_ARMS)
        return -EINVAL;
    if (current) /* copied first so that <out> may alias it */
        for (size_t i = 0; i < n; i++)
            cur[i] = current[i];
    rc = cp_alloc_thompson(arms, n, &p->weights, p->draws, rng, out);
    if (rc < 0)
        return rc;
    rc = cp_alloc_bound(out, arms, n, p->min_samples, p->floor);
    if (rc < 0 || !current)
        return rc;
    return cp_alloc_step(out, cur, n, p->max_step);
}

bool cp_alloc_changed(const double *prev, const double *next, size_t n, double threshold)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(next[i] - prev[i]) <= threshold))
            return true;
    return false;
}

int cp_shares_to_weights(const double *shares, size_t n, uint32_t total, uint32_t *weights)
{
    double sum = 0.0, scale;
    uint64_t assigned = 0, positive = 0;

    if (n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!valid_weight(shares[i]))
            return -EINVAL;
        sum += shares[i];
        positive += shares[i] > 0.0;
    }
    if (!(sum > 0.0) || !isfinite(sum) || positive > total)
        return -EINVAL;
    scale = (double)total / sum;
    for (size_t i = 0; i < n; i++) {
        double quota = shares[i] * scale;

        weights[i] = (uint32_t)fmin(floor(quota), (double)total);
        if (weights[i] == 0 && shares[i] > 0.0)
            weights[i] = 1;
        assigned += weights[i];
    }
    /* Hand out what is left to the largest shortfalls quota - weight (before any minimum
     * bump that is the fractional part), lowest index on ties... */
    while (assigned < total) {
        size_t pick = n;
        double best = -INFINITY;

        for (size_t i = 0; i < n; i++) {
            double gap = shares[i] * scale - (double)weights[i];

            if (shares[i] > 0.0 && gap > best) {
                best = gap;
                pick = i;
            }
        }
        weights[pick]++;
        assigned++;
    }
    /* ...or, when minimum bumps overshot, take back from the arms furthest above quota
     * that can spare a unit. Positive shares <= total guarantees such an arm exists. */
    while (assigned > total) {
        size_t pick = n;
        double best = -INFINITY;

        for (size_t i = 0; i < n; i++) {
            double excess = (double)weights[i] - shares[i] * scale;

            if (weights[i] >= 2 && excess > best) {
                best = excess;
                pick = i;
            }
        }
        weights[pick]--;
        assigned--;
    }
    return 0;
}

/* ---- Posterior updates --------------------------------------------------------------- */

int cp_posterior_decay(double *a, double *b, double gamma, double prior_a, double prior_b)
{
    if (!(gamma >= 0.0 && gamma <= 1.0) || !valid_shape(prior_a) || !valid_shape(prior_b))
        return -EINVAL;
    *a = prior_a + gamma * (*a - prior_a);
    *b = prior_b + gamma * (*b - prior_b);
    return 0;
}

void cp_posterior_add(double *a, double *b, uint64_t ups, uint64_t downs)
{
    *a += (double)ups;
    *b += (double)downs;
}

int cp_posterior_add_score(double *a, double *b, double score)
{
    if (!(score >= 0.0 && score <= 1.0))
        return -EINVAL;
    *a += score;
    *b += 1.0 - score;
    return 0;
}
