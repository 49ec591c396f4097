/* common/sy_hist.h - a mergeable log-linear histogram of microsecond values.
 *
 * HdrHistogram's layout: values below 128 have a bucket each; above that, every power of
 * two [2^k, 2^(k+1)) is split into 64 equal buckets, so a bucket is never wider than 1/64
 * of its lower bound and a quantile read from its middle is within 1/128 (< 1%) of the
 * exact value. The range is 0 .. SY_HIST_HIGHEST (2^32 - 1 us, about 71.6 minutes); larger
 * values are recorded as SY_HIST_HIGHEST. The counts are a fixed array inside the struct:
 * recording never allocates, and merging two histograms is adding their arrays.
 *
 * Threads: one writer at a time (sy_hist_init, _record, _merge into it). Readers on other
 * threads may read concurrently: every field is a relaxed atomic, so each value read is
 * whole (plain loads and stores on x86-64 and arm64, never a locked instruction), but a
 * reader racing the writer may see one record half-applied (its count, not yet its sum).
 * A caller that needs a consistent copy brackets the writes itself (dp_stats: a seqlock).
 */
#ifndef SY_HIST_H
#define SY_HIST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SY_HIST_SUB_BITS 6 /* 64 buckets per power of two */
#define SY_HIST_MAX_BITS 32
#define SY_HIST_HIGHEST ((UINT64_C(1) << SY_HIST_MAX_BITS) - 1)
#define SY_HIST_BUCKETS ((SY_HIST_MAX_BITS - SY_HIST_SUB_BITS + 1) << SY_HIST_SUB_BITS)

struct sy_hist {
    _Atomic uint64_t counts[SY_HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum; /* of the recorded (clamped) values */
    _Atomic uint64_t min; /* UINT64_MAX while empty */
    _Atomic uint64_t max;
};

/* Empties <h> (embedded; there is nothing to clean up). Writer. */
void sy_hist_init(struct sy_hist *h);

/* Records one value <v> (microseconds; above SY_HIST_HIGHEST counts as SY_HIST_HIGHEST).
 * No allocation, no lock, no atomic read-modify-write: a few ns. Writer. */
void sy_hist_record(struct sy_hist *h, uint64_t v);

/* Adds everything recorded in <src> to <dst>, as if each value had been recorded into
 * <dst> too. <dst>'s writer; <src> may be written concurrently by its own writer. */
void sy_hist_merge(struct sy_hist *dst, const struct sy_hist *src);

/* Number of values, their sum, the smallest and the largest (0 when empty). Any thread. */
uint64_t sy_hist_count(const struct sy_hist *h);
uint64_t sy_hist_sum(const struct sy_hist *h);
uint64_t sy_hist_min(const struct sy_hist *h);
uint64_t sy_hist_max(const struct sy_hist *h);

/* The <q>-quantile (q in [0, 1]; clamped) of the recorded values: an estimate of the value
 * of rank ceil(q * count) in sorted order (rank 1 for q = 0), within 1/128 of it relative,
 * exact below 128 and at the recorded min and max. 0 when empty. Any thread. */
uint64_t sy_hist_quantile(const struct sy_hist *h, double q);

/* Whether <v> is the lower end of a bucket, so that sy_hist_count_below(h, v) is exact. */
bool sy_hist_is_boundary(uint64_t v);

/* Number of recorded values below <bound>: exact when <bound> is a bucket boundary (see
 * sy_hist_is_boundary), else rounded down to the boundary at or below it. Any thread. */
uint64_t sy_hist_count_below(const struct sy_hist *h, uint64_t bound);

/* sy_hist_count_below for <n> ascending <bounds> in one pass: out[i] = values < bounds[i].
 * For Prometheus `_bucket{le=...}`: a value of v us stands for [v, v + 1) us, so "below
 * <bound>" is "at most <bound> us", exactly. Any thread. */
void sy_hist_cumulative(const struct sy_hist *h, const uint64_t *bounds, size_t n, uint64_t *out);

/* ---- interval deltas and the wire form (telemetry) ---- */

/* <out> = what was recorded into <cur> since it looked like <prev> (<prev> an earlier copy
 * of the same histogram): counts and sum subtract. min and max of a delta are not known
 * exactly; they are taken from the lowest and highest bucket that grew, clamped to <cur>'s
 * min and max, so quantiles stay within the bucket error. <out>'s writer. */
void sy_hist_delta(struct sy_hist *out, const struct sy_hist *cur, const struct sy_hist *prev);

/* Writes the non-zero buckets of <h> as (index, count) pairs in ascending index order into
 * idx[]/cnt[] (room for <cap>). Returns how many there are (may exceed <cap>: then only
 * the first <cap> were written). Any thread. */
size_t sy_hist_to_sparse(const struct sy_hist *h, uint32_t *idx, uint64_t *cnt, size_t cap);

/* Whether <n> (index, count) pairs from outside (the wire) form a histogram
 * sy_hist_add_sparse accepts: indexes strictly ascending, in range and within the buckets of
 * <min> .. <max> (when any count is set), and a total that does not overflow. Any thread. */
bool sy_hist_sparse_valid(const uint32_t *idx, const uint64_t *cnt, size_t n, uint64_t min,
                          uint64_t max);

/* Adds <n> (index, count) pairs and the summary (sum, min, max of those values) to <h>, as
 * if the values had been recorded. Returns 0, or -EINVAL (nothing added) when an index is
 * out of range or min > max with counts present. <h>'s writer. */
int sy_hist_add_sparse(struct sy_hist *h, const uint32_t *idx, const uint64_t *cnt, size_t n,
                       uint64_t sum, uint64_t min, uint64_t max);

#endif
