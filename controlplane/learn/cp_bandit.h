/* controlplane/learn/cp_bandit.h - the statistics behind A/B experiments and learned routing:
 * a seeded PRNG and samplers, Beta posteriors of a thumbs-up rate, Monte Carlo probability
 * of being best, a two-proportion z-test, and Thompson-sampling traffic allocation with
 * minimum-sample, exploration-floor and bounded-step knobs.
 *
 * Pure computation: no I/O, no globals, no heap. Every function works only on what the
 * caller passes, so any thread may call any function concurrently as long as the arguments
 * (in particular a struct cp_rng) are not shared between threads without a lock. Results
 * are deterministic for a given seed on a given platform and libm.
 *
 * Conventions: a "rate" posterior is Beta(a, b) over the probability that a response gets a
 * thumbs-up; with the default Beta(1, 1) prior (CP_BANDIT_PRIOR_A/B) a = 1 + ups and
 * b = 1 + downs. "Shares" are traffic fractions per arm that sum to 1. Functions that act
 * return 0 or a negative errno (-EINVAL for arguments outside the documented ranges, in
 * which case outputs are left unspecified unless stated); functions that compute a number
 * return NaN for invalid arguments. Arrays of arms are limited to CP_BANDIT_MAX_ARMS, which
 * lets the module keep its per-round scratch on the stack. */
#ifndef CP_BANDIT_H
#define CP_BANDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most arms one experiment or learned route may have (functions taking arms return
 * -EINVAL above it). */
#define CP_BANDIT_MAX_ARMS 64

/* The default uninformative prior of a thumbs-up rate: Beta(1, 1), uniform on [0, 1]. */
#define CP_BANDIT_PRIOR_A 1.0
#define CP_BANDIT_PRIOR_B 1.0

/* ---- Pseudo-random numbers ----------------------------------------------------------- */

/* xoshiro256** state, seeded through splitmix64. Embed it anywhere; the fields are private
 * to cp_bandit.c. One generator per thread (or per computation): it is not locked. */
struct cp_rng {
    uint64_t s[4];
    double spare; /* second normal deviate of the last polar-method pair */
    bool has_spare;
};

/* Seeds <rng> from <seed>: the four state words are successive splitmix64 outputs, so any
 * seed (0 included) gives a valid, well-mixed state. Same seed, same sequence. */
void cp_rng_seed(struct cp_rng *rng, uint64_t seed);

/* Returns the next 64 uniformly distributed bits (xoshiro256**, period 2^256 - 1). */
uint64_t cp_rng_u64(struct cp_rng *rng);

/* Returns a uniform double in the open interval (0, 1): (k + 0.5) / 2^53 for a uniform
 * 53-bit k, so never exactly 0 or 1 (safe to take log of, or of 1 minus it). */
double cp_rng_uniform(struct cp_rng *rng);

/* Returns a standard normal deviate N(0, 1) (Marsaglia's polar method; deviates come in
 * pairs, the second is cached in <rng>). */
double cp_rng_normal(struct cp_rng *rng);

/* Returns a Gamma(<shape>, scale 1) deviate (mean = variance = shape), by Marsaglia and
 * Tsang's squeeze method; for shape < 1 it samples Gamma(shape + 1) and multiplies by
 * U^(1/shape). Exact in distribution up to floating point; very small shapes may return 0
 * (underflow); cp_rng_beta copes with that by working in logs. NaN when shape <= 0 or not
 * finite. */
double cp_rng_gamma(struct cp_rng *rng, double shape);

/* Returns a Beta(<a>, <b>) deviate in [0, 1] as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b)
 * (computed from log X - log Y when a shape is below 1, so tiny shapes give 0 or 1 rather
 * than 0/0). NaN when a or b is <= 0 or not finite. */
double cp_rng_beta(struct cp_rng *rng, double a, double b);

/* ---- Beta posteriors ----------------------------------------------------------------- */

/* Returns the mean a / (a + b) of Beta(<a>, <b>): the posterior estimate of the rate.
 * NaN when a or b is <= 0 or not finite. */
double cp_beta_mean(double a, double b);

/* Returns the regularized incomplete beta function I_x(a, b) = P(X <= <x>) for
 * X ~ Beta(<a>, <b>): 0 for x <= 0, 1 for x >= 1. Continued fraction (modified Lentz) on
 * the side of the mean where it converges fast, with a self-contained log-gamma (no
 * lgamma/signgam) and a log-space prefactor that stays exact for large shapes. Absolute
 * error below 1e-11 for a, b in [0.5, 1e6] (worst seen 4e-12 against 30-digit
 * quadrature); usable well beyond. NaN when a or b is <= 0 or not finite, or x is NaN. */
double cp_beta_cdf(double a, double b, double x);

/* Returns the <p>-quantile of Beta(<a>, <b>): the x in [0, 1] with I_x(a, b) = p (0 for
 * p = 0, 1 for p = 1). Newton's method on cp_beta_cdf, safeguarded by a bisection bracket
 * so it always converges; p > 1/2 is solved as 1 - quantile(b, a, 1 - p) so upper tails
 * keep full precision. Absolute error <= 1e-6 guaranteed for a, b in [0.5, 1e6], in practice
 * about 1e-15: the search stops once Newton's step is below 1e-15 + 1e-13 min(x, 1 - x).
 * That tolerance is absolute near 0, so for shapes far below 0.5 a quantile of, say, 1e-40
 * comes back as some value below 1e-15. Costs ~5-60 cp_beta_cdf evaluations (each
 * O(sqrt(min(a, b))) terms): a few microseconds, ~40 us at a = b = 1e6. NaN when a or b
 * is <= 0 or not finite, or p is outside [0, 1]. */
double cp_beta_quantile(double a, double b, double p);

/* Stores in *<lo> and *<hi> the equal-tailed 95% credible interval of Beta(<a>, <b>): the
 * 2.5% and 97.5% quantiles (accuracy as cp_beta_quantile). Returns 0, or -EINVAL (both set
 * to NaN) when a or b is <= 0 or not finite. */
int cp_beta_ci95(double a, double b, double *lo, double *hi);

/* Monte Carlo probability that each arm has the highest rate: in each of <draws> rounds,
 * draws one rate per arm from Beta(<a>[i], <b>[i]) and credits the arm with the largest
 * draw (ties split equally). <out>[i] = credits / draws, so the <n_arms> values sum to 1
 * (within 1e-12). The standard error of each value is at most 0.5 / sqrt(draws): 10,000
 * draws give +-0.01 at 2 sigma. Consumes 2 * n_arms * draws gamma deviates from <rng>.
 * Returns 0, or -EINVAL for n_arms of 0 or above CP_BANDIT_MAX_ARMS, draws of 0, or an
 * invalid a or b. */
int cp_prob_best(const double *a, const double *b, size_t n_arms, size_t draws, struct cp_rng *rng,
                 double *out);

/* ---- Frequentist test ---------------------------------------------------------------- */

/* Two-proportion z-test of H0: rate1 == rate2 with <s1> successes out of <n1> trials and
 * <s2> out of <n2>. z = (s1/n1 - s2/n2) / sqrt(p (1 - p) (1/n1 + 1/n2)) with the pooled
 * p = (s1 + s2) / (n1 + n2); positive z means arm 1 does better. The two-sided p-value is
 * erfc(|z| / sqrt(2)) (normal approximation: trust it when every cell, s and n - s, is
 * about 5 or more). When n1 or n2 is 0, or p is 0 or 1 (no variance), stores z = 0 and
 * p_value = 1. Returns 0, or -EINVAL when s1 > n1 or s2 > n2. */
int cp_two_proportion_test(uint64_t s1, uint64_t n1, uint64_t s2, uint64_t n2, double *z,
                           double *p_value);

/* ---- Learned-routing allocation ------------------------------------------------------ */

/* What the allocator knows about one arm (target/model of a learned route). */
struct cp_arm {
    double a, b;       /* Beta posterior of the thumbs-up rate, both > 0 */
    double cost_usd;   /* mean cost per request in USD, >= 0 */
    double latency_ms; /* mean latency in milliseconds, >= 0 */
    uint64_t samples;  /* observations behind a and b, compared with min_samples */
};

/* Objective weights, all >= 0. Utility of an arm with sampled quality q:
 * u = quality * q - cost * cost_usd / max_cost - latency * latency_ms / max_latency,
 * where max_cost / max_latency are the largest over the arms (a term is 0 when its
 * maximum is 0). So each penalty lies in [0, weight] and is commensurate with quality. */
struct cp_objective {
    double quality;
    double cost;
    double latency;
};

/* Knobs of cp_alloc_compute. */
struct cp_alloc_params {
    struct cp_objective weights;
    size_t draws;         /* Thompson rounds, > 0; e.g. 10000 (shares +-0.01 at 2 sigma) */
    uint64_t min_samples; /* arms with fewer observations get at least 1 / n_arms */
    double floor;         /* exploration floor per arm, >= 0; capped at 1 / n_arms */
    double max_step;      /* most any share may move per call, >= 0; >= 1 is unbounded */
};

/* Thompson sampling on utility: in each of <draws> rounds, samples q_i ~ Beta(a_i, b_i)
 * for every arm, computes the utility of struct cp_objective and credits the arm with the
 * highest utility (ties split equally). <out>[i] is arm i's fraction of the credits: the
 * posterior probability that it is the best arm, which is the share Thompson sampling
 * would route to it. Sums to 1 within 1e-12. Returns 0, or -EINVAL for n of 0 or above
 * CP_BANDIT_MAX_ARMS, draws of 0, a negative or non-finite weight, or an invalid arm. */
int cp_alloc_thompson(const struct cp_arm *arms, size_t n, const struct cp_objective *w,
                      size_t draws, struct cp_rng *rng, double *out);

/* Applies the lower bounds to the <n> <shares> in place, minimum samples first, then the
 * exploration floor:
 *  - min_samples: every arm with arms[i].samples < <min_samples> gets at least 1 / n, the
 *    share a uniform split would give it. If every arm is under-sampled the result is
 *    uniform; with k under-sampled arms the learner steers at most 1 - k / n of traffic.
 *  - floor: every arm gets at least min(<floor_share>, 1 / n), so no arm is starved of the
 *    observations that would let it recover; a floor >= 1 / n means uniform.
 * Both are one lower bound per arm, lo_i = max(floor, under-sampled ? 1 / n : 0), met by
 * raising the arms below it to exactly lo_i and scaling all other arms by one common factor
 * (so the floor never pushes an under-sampled arm back under 1 / n, and the arms above
 * their bound keep their proportions). <shares> need not be normalised on input (it is
 * first divided by its sum); the result sums to 1 within 1e-12. Returns 0, or -EINVAL for
 * n of 0 or above CP_BANDIT_MAX_ARMS, a negative, non-finite or all-zero share, or a
 * negative or NaN floor. */
int cp_alloc_bound(double *shares, const struct cp_arm *arms, size_t n, uint64_t min_samples,
                   double floor_share);

/* Bounded step: replaces the target <shares> (in place) by a step from <current> toward
 * them. Each share moves toward its target by at most <max_step> in absolute terms; when
 * the clamped increases and decreases do not balance, the larger side is scaled down so the
 * total stays exactly 1 (within 1e-12). Hence every result lies between current[i] and
 * target[i]: nothing overshoots, and any lower bound met by both current and target is
 * still met. A target within <max_step> everywhere is reached in one call. <current> and
 * <shares> are normalised by their sums first. Returns 0, or -EINVAL for n of 0 or above
 * CP_BANDIT_MAX_ARMS, a negative or NaN max_step, or shares or current that are negative,
 * non-finite or all zero. */
int cp_alloc_step(double *shares, const double *current, size_t n, double max_step);

/* The whole allocation: cp_alloc_thompson with <p>->weights and <p>->draws, then
 * cp_alloc_bound with <p>->min_samples and <p>->floor, then, when <current> (the shares in
 * force, n values) is not NULL, cp_alloc_step with <p>->max_step. The step bound is
 * applied last and wins: a new arm whose current share is 0 reaches its floor over several
 * calls, not at once. Writes the <n> new shares to <out>, which may be <current> itself.
 * Returns 0 or -EINVAL as the three steps do. */
int cp_alloc_compute(const struct cp_arm *arms, size_t n, const struct cp_alloc_params *p,
                     const double *current, struct cp_rng *rng, double *out);

/* True when any of the <n> shares moved by more than <threshold> between <prev> and
 * <next> (or either is NaN): whether a new allocation is worth publishing. */
bool cp_alloc_changed(const double *prev, const double *next, size_t n, double threshold);

/* Converts <n> <shares> to integer <weights> summing exactly to <total> (e.g. 1000), by
 * largest remainder (Hamilton): each arm gets floor(share * total) and the units left go to
 * the largest fractional parts (lower index first on ties). Every arm with a positive share
 * gets at least 1, the units for that taken from the arms most above their exact quota;
 * a zero share gets 0. <shares> are normalised by their sum first. Returns 0, or -EINVAL
 * for n of 0, shares negative, non-finite or all zero, or total smaller than the number of
 * positive shares. */
int cp_shares_to_weights(const double *shares, size_t n, uint32_t total, uint32_t *weights);

/* ---- Posterior updates --------------------------------------------------------------- */

/* Discounts old evidence so the learner follows change: a <- prior_a + gamma (a - prior_a)
 * and the same for b, on *<a> and *<b>. gamma = 1 keeps everything, 0 resets to the prior;
 * applied once per period, an observation's weight halves every ln(0.5) / ln(gamma)
 * periods. The mean moves toward the prior mean and the interval widens. Returns 0, or
 * -EINVAL (nothing changed) when gamma is outside [0, 1] or a prior is <= 0 or not finite. */
int cp_posterior_decay(double *a, double *b, double gamma, double prior_a, double prior_b);

/* Adds <ups> thumbs-up to *<a> and <downs> thumbs-down to *<b>. */
void cp_posterior_add(double *a, double *b, uint64_t ups, uint64_t downs);

/* Adds one graded observation: <score> in [0, 1] counts as a fractional success, so
 * *<a> += score and *<b> += 1 - score. Returns 0, or -EINVAL (nothing changed) when score
 * is outside [0, 1] or NaN. */
int cp_posterior_add_score(double *a, double *b, double score);

#endif
