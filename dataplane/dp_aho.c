/* dataplane/dp_aho.c - Aho-Corasick automaton as a full DFA over byte classes.
 *
 * Layout, chosen so that the per-byte step of a scan is one add and one load:
 * - cls[256] maps a text byte to its class (ASCII case folded; 0 = a byte no pattern has);
 * - table[state * n_classes + class] is the next state, stored premultiplied by n_classes,
 *   so "state" is directly the row offset;
 * - states are numbered so that every state at which some pattern ends (itself or through
 *   its dictionary-suffix chain) comes last: "a pattern ends here" is then one compare with
 *   hit_off, off the load-to-load dependency chain.
 * Built by one thread; immutable afterwards.
 */
#include "dp_aho.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

/* Texts shorter than this are scanned in one piece. */
#define SPLIT_MIN 256

struct dp_aho {
    uint8_t cls[256];
    uint32_t n_classes;
    uint32_t n_states;
    uint32_t hit_off;    /* first hit state x n_classes; >= means "some pattern ends here" */
    uint32_t first_hit;  /* first hit state id */
    uint32_t *table;     /* n_states x n_classes, premultiplied next states */
    uint32_t *hit_first; /* per hit state (id - first_hit): first index into hit_bits */
    uint32_t *hit_count; /* per hit state: bits of patterns ending exactly here */
    uint32_t *hit_dict;  /* per hit state: next hit state on the suffix chain, 0 = none */
    uint32_t *hit_bits;  /* pattern bits, grouped by state */
    size_t n_patterns;
    size_t max_len;
};

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

void dp_aho_free(struct dp_aho *a)
{
    if (!a)
        return;
    free(a->table);
    free(a->hit_first);
    free(a->hit_count);
    free(a->hit_dict);
    free(a->hit_bits);
    free(a);
}

/* The build's temporary arrays; one struct so that one label frees them all. */
struct build {
    uint32_t *go;     /* trie children, then complete transitions (state ids) */
    uint32_t *fail;   /* suffix link */
    uint32_t *dict;   /* next state with own outputs on the suffix chain, 0 = none */
    uint32_t *order;  /* BFS order, root first */
    uint32_t *perm;   /* old id -> new id */
    uint32_t *n_out;  /* patterns ending exactly at each (old) state */
    uint32_t *pat_at; /* end state of each pattern */
};

static void build_cleanup(struct build *b)
{
    free(b->go);
    free(b->fail);
    free(b->dict);
    free(b->order);
    free(b->perm);
    free(b->n_out);
    free(b->pat_at);
}

/* Inserts every pattern into the trie in b->go; returns the number of states. */
static uint32_t build_trie(struct dp_aho *a, struct build *b, const struct dp_aho_pattern *pats,
                           size_t n)
{
    uint32_t n_states = 1;
    const uint32_t nc = a->n_classes;

    for (size_t i = 0; i < n; i++) {
        uint32_t s = 0;
        for (size_t k = 0; k < pats[i].len; k++) {
            uint32_t c = a->cls[(unsigned char)pats[i].text[k]];
            if (!b->go[(size_t)s * nc + c])
                b->go[(size_t)s * nc + c] = n_states++;
            s = b->go[(size_t)s * nc + c];
        }
        b->pat_at[i] = s;
        b->n_out[s]++;
    }
    return n_states;
}

/* Breadth-first: suffix links, dictionary links, and the missing transitions (which makes
 * the trie a DFA). A state's row is completed only after all shallower rows, so the row of
 * its suffix link is already complete. */
static void build_links(struct dp_aho *a, struct build *b)
{
    const uint32_t nc = a->n_classes;
    size_t head = 0, tail = 0;

    b->order[tail++] = 0;
    while (head < tail) {
        uint32_t s = b->order[head++];
        for (uint32_t c = 0; c < nc; c++) {
            uint32_t *cell = &b->go[(size_t)s * nc + c];
            if (*cell) { /* a trie child: the root is nobody's child */
                uint32_t u = *cell;
                uint32_t f = s == 0 ? 0 : b->go[(size_t)b->fail[s] * nc + c];
                b->fail[u] = f;
                b->dict[u] = b->n_out[f] ? f : b->dict[f];
                b->order[tail++] = u;
            } else if (s != 0) {
                *cell = b->go[(size_t)b->fail[s] * nc + c];
            }
        }
    }
}

/* Renumbers states (non-hit states first, in BFS order, then hit states) and writes the
 * final premultiplied table and the hit lists. Returns 0 or -ENOMEM. */
static int build_final(struct dp_aho *a, struct build *b, const struct dp_aho_pattern *pats,
                       size_t n)
{
    const uint32_t nc = a->n_classes, ns = a->n_states;
    uint32_t next = 0, n_hit, *fill;

    for (uint32_t i = 0; i < ns; i++) {
        uint32_t s = b->order[i];
        if (!b->n_out[s] && !b->dict[s])
            b->perm[s] = next++;
    }
    a->first_hit = next;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t s = b->order[i];
        if (b->n_out[s] || b->dict[s])
            b->perm[s] = next++;
    }
    n_hit = ns - a->first_hit;
    a->hit_off = a->first_hit * nc;

    a->table = malloc((size_t)ns * nc * sizeof(*a->table));
    a->hit_first = calloc(n_hit ? n_hit : 1, sizeof(*a->hit_first));
    a->hit_count = calloc(n_hit ? n_hit : 1, sizeof(*a->hit_count));
    a->hit_dict = calloc(n_hit ? n_hit : 1, sizeof(*a->hit_dict));
    a->hit_bits = calloc(n ? n : 1, sizeof(*a->hit_bits));
    fill = calloc(n_hit ? n_hit : 1, sizeof(*fill));
    if (!a->table || !a->hit_first || !a->hit_count || !a->hit_dict || !a->hit_bits || !fill) {
        free(fill);
        return -ENOMEM;
    }
    for (uint32_t s = 0; s < ns; s++) {
        uint32_t *dst = &a->table[(size_t)b->perm[s] * nc];
        const uint32_t *src = &b->go[(size_t)s * nc];
        for (uint32_t c = 0; c < nc; c++)
            dst[c] = b->perm[src[c]] * nc;
        if (b->perm[s] >= a->first_hit) {
            uint32_t h = b->perm[s] - a->first_hit;
            a->hit_count[h] = b->n_out[s];
            a->hit_dict[h] = b->dict[s] ? b->perm[b->dict[s]] : 0;
        }
    }
    for (uint32_t h = 1; h < n_hit; h++)
        a->hit_first[h] = a->hit_first[h - 1] + a->hit_count[h - 1];
    for (size_t i = 0; i < n; i++) {
        uint32_t h = b->perm[b->pat_at[i]] - a->first_hit;
        a->hit_bits[a->hit_first[h] + fill[h]++] = pats[i].bit;
    }
    free(fill);
    return 0;
}

struct dp_aho *dp_aho_new(const struct dp_aho_pattern *pats, size_t n, char **errmsg)
{
    struct dp_aho *a = NULL;
    struct build b = {0};
    bool used[256] = {false};
    size_t total = 0, max_states;

    *errmsg = NULL;
    for (size_t i = 0; i < n; i++) {
        if (pats[i].len == 0) {
            *errmsg = sy_xasprintf("pattern %zu is empty", i);
            return NULL;
        }
        if (pats[i].len > DP_AHO_MAX_PATTERN_BYTES - total) {
            *errmsg = sy_xasprintf("patterns exceed %u bytes in all", DP_AHO_MAX_PATTERN_BYTES);
            return NULL;
        }
        total += pats[i].len;
        for (size_t k = 0; k < pats[i].len; k++)
            used[fold((unsigned char)pats[i].text[k])] = true;
    }
    a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->n_classes = 1;
    for (unsigned c = 0; c < 256; c++)
        if (used[c])
            a->cls[c] = (uint8_t)a->n_classes++;
    for (unsigned c = 'A'; c <= 'Z'; c++)
        a->cls[c] = a->cls[c + ('a' - 'A')];
    a->n_patterns = n;
    for (size_t i = 0; i < n; i++)
        if (pats[i].len > a->max_len)
            a->max_len = pats[i].len;

    max_states = total + 1;
    if (max_states > DP_AHO_MAX_CELLS / a->n_classes) {
        *errmsg = sy_xasprintf("keyword automaton too large: up to %zu states x %u byte classes "
                               "(limit %u cells)",
                               max_states, a->n_classes, DP_AHO_MAX_CELLS);
        goto out_free_aho;
    }
    b.go = calloc(max_states * a->n_classes, sizeof(*b.go));
    b.fail = calloc(max_states, sizeof(*b.fail));
    b.dict = calloc(max_states, sizeof(*b.dict));
    b.order = calloc(max_states, sizeof(*b.order));
    b.perm = calloc(max_states, sizeof(*b.perm));
    b.n_out = calloc(max_states, sizeof(*b.n_out));
    b.pat_at = calloc(n ? n : 1, sizeof(*b.pat_at));
    if (!b.go || !b.fail || !b.dict || !b.order || !b.perm || !b.n_out || !b.pat_at)
        goto out_free_build;

    a->n_states = build_trie(a, &b, pats, n);
    build_links(a, &b);
    if (build_final(a, &b, pats, n) < 0)
        goto out_free_build;
    build_cleanup(&b);
    return a;

out_free_build:
    build_cleanup(&b);
out_free_aho:
    dp_aho_free(a);
    return NULL;
}

/* Hit states already reported in this scan: a small direct-mapped set. A common word that
 * many rules share (hundreds of bits) and that occurs many times in a text is then reported
 * once, not once per occurrence; a collision only costs a repeated report. */
#define SEEN_SLOTS 64

/* Sets the bits of every pattern that ends at hit state offset <off>. Rare: off the scan's
 * hot loop. */
static void report(const struct dp_aho *a, uint32_t off, uint64_t *bits, uint32_t *seen)
{
    uint32_t id = off / a->n_classes;

    if (seen[id % SEEN_SLOTS] == id)
        return;
    seen[id % SEEN_SLOTS] = id; /* ids of hit states are >= 1: 0 marks an empty slot */
    while (id) {
        uint32_t h = id - a->first_hit;
        for (uint32_t i = 0; i < a->hit_count[h]; i++) {
            uint32_t bit = a->hit_bits[a->hit_first[h] + i];
            bits[bit / 64] |= UINT64_C(1) << (bit % 64);
        }
        id = a->hit_dict[h];
    }
}

/* One chain from the root over t[0, n). */
static void scan_one(const struct dp_aho *a, const unsigned char *t, size_t n, uint64_t *bits)
{
    const uint32_t *tb = a->table, thr = a->hit_off;
    const uint8_t *cls = a->cls;
    uint32_t s = 0, seen[SEEN_SLOTS] = {0};

    for (size_t i = 0; i < n; i++) {
        s = tb[s + cls[t[i]]];
        if (s >= thr)
            report(a, s, bits, seen);
    }
}

/* LANES chains in lockstep: the table loads of one chain do not wait for another's, so the
 * scan runs at load throughput instead of load latency (the rows a text visits do not all
 * fit in L1, so a step is an L2 access). Piece j starts max_len - 1 bytes before its share
 * (from the root), so an occurrence that straddles a cut is still seen whole by the piece
 * where it ends; occurrences seen twice set the same bit twice. */
#ifndef DP_AHO_LANES
#define DP_AHO_LANES 8
#endif

void dp_aho_scan(const struct dp_aho *a, const char *text, size_t len, uint64_t *bits)
{
    const unsigned char *t = (const unsigned char *)text;
    const uint32_t *tb;
    const uint8_t *cls;
    const unsigned char *p[DP_AHO_LANES];
    size_t n[DP_AHO_LANES], common, overlap, share;
    uint32_t s[DP_AHO_LANES], thr, seen[SEEN_SLOTS] = {0};

    if (!a || !a->n_patterns || !len)
        return;
    overlap = a->max_len - 1;
    share = len / DP_AHO_LANES;
    if (len < SPLIT_MIN || share <= overlap) {
        scan_one(a, t, len, bits);
        return;
    }
    tb = a->table;
    cls = a->cls;
    thr = a->hit_off;
    common = SIZE_MAX;
    for (int j = 0; j < DP_AHO_LANES; j++) {
        size_t from = share * (size_t)j, to = j == DP_AHO_LANES - 1 ? len : from + share;
        if (j > 0)
            from -= overlap;
        p[j] = t + from;
        n[j] = to - from;
        s[j] = 0;
        if (n[j] < common)
            common = n[j];
    }
    for (size_t i = 0; i < common; i++) {
        uint32_t hit = 0;
        for (int j = 0; j < DP_AHO_LANES; j++) {
            s[j] = tb[s[j] + cls[p[j][i]]];
            hit |= s[j] >= thr;
        }
        if (hit) {
            for (int j = 0; j < DP_AHO_LANES; j++)
                if (s[j] >= thr)
                    report(a, s[j], bits, seen);
        }
    }
    for (int j = 0; j < DP_AHO_LANES; j++) {
        for (size_t i = common; i < n[j]; i++) {
            s[j] = tb[s[j] + cls[p[j][i]]];
            if (s[j] >= thr)
                report(a, s[j], bits, seen);
        }
    }
}

void dp_aho_get_stats(const struct dp_aho *a, struct dp_aho_stats *out)
{
    size_t n_hit;

    memset(out, 0, sizeof(*out));
    if (!a)
        return;
    n_hit = a->n_states - a->first_hit;
    out->n_patterns = a->n_patterns;
    out->n_states = a->n_states;
    out->n_classes = a->n_classes;
    out->max_len = a->max_len;
    out->bytes = sizeof(*a) + (size_t)a->n_states * a->n_classes * sizeof(uint32_t) +
                 n_hit * 3 * sizeof(uint32_t) + a->n_patterns * sizeof(uint32_t);
}
