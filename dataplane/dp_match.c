/* dataplane/dp_match.c - route matching: compiled once per snapshot, evaluated per request.
 *
 * Representation. Route sets are bitsets (one bit per route, policy order). The "AC rules"
 * are the keyword rules of all routes plus one pseudo-rule per prefiltered regex ("its
 * literal occurs"); a route's AC rules are numbered contiguously, so "all of this route's
 * rules hold" is a bit-range test. The automaton sets, per text field, the bit of every AC
 * rule that has a word in that field's text.
 *
 * Per request (dp_match_route): candidates = routes whose model and boolean traits fit, by
 * bitset AND; then in policy order each candidate gets its per-route cheap checks (glob,
 * ranges, tags); the first candidate that reads a text field not scanned yet triggers the
 * scan of that field, after which every later route that reads only scanned fields and
 * fails its AC rules is dropped in bulk; regexes run last, per route, through a per-request
 * cache. The compiled matcher is immutable; everything per request is in the scratch.
 */
#include "dp_match.h"

#include <assert.h>
#include <errno.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "dp_aho.h"
#include "sy_util.h"

#define N_FIELDS 2 /* bit f of a field mask is field f: SY_TEXT_LAST_USER, SY_TEXT_SYSTEM */
#define ALL_FIELDS (SY_TEXT_LAST_USER | SY_TEXT_SYSTEM)
#define N_TRAITS 4 /* has_tools, has_images, json_mode, stream */

struct m_route {
    const struct sy_route *rt;
    const char *glob; /* model glob, or NULL (exact models are in the model index) */
    int64_t min_tok, max_tok, min_msg, max_msg; /* INT64_MIN / INT64_MAX when unset */
    uint32_t ac_first, ac_count;                /* AC rules */
    uint32_t re_first, re_count;                /* into dp_matcher.regex */
    unsigned need;                              /* fields the AC rules read */
};

struct m_rule {
    uint32_t route;
    unsigned in; /* field mask */
};

struct m_regex {
    const struct sy_regex_rule *rule; /* the first rule with this pattern and case flag */
    uint32_t uid;     /* same for every rule with the same pattern and case flag: cache key */
    unsigned in;      /* field mask */
    int64_t lit_rule; /* AC rule of its literal, -1 = no prefilter */
};

struct m_model {
    const char *name;      /* NULL = empty slot */
    uint32_t first, count; /* into dp_matcher.model_routes */
};

struct dp_matcher {
    size_t n_routes, rw; /* routes; words per route bitset */
    struct m_route *routes;
    size_t n_rules, aw; /* AC rules; words per rule bitset */
    struct m_rule *rules;
    size_t n_regex, n_uregex, xw; /* xw: words per bitset of distinct regexes */
    struct m_regex *regex;
    size_t n_keyword_rules, n_prefiltered;
    struct dp_aho *aho;

    uint64_t *bits;                  /* one allocation for all the bitsets below */
    uint64_t *model_free;            /* routes with no exact model: any model or a glob */
    uint64_t *trait_ok[N_TRAITS][2]; /* [trait][feature value]: routes that accept it */
    uint64_t *need[ALL_FIELDS + 1];  /* [mask]: AC routes whose rules read exactly <mask> */
    uint64_t *rule_in[N_FIELDS];     /* AC rules reading field f (aw words) */

    struct m_model *models; /* open addressing by exact model name */
    size_t models_mask;
    uint32_t *model_routes;

    /* Scratch layout, in words. */
    size_t s_hits[N_FIELDS], s_held, s_pass, s_cand, s_known[N_FIELDS], s_val[N_FIELDS];
    size_t s_total;
};

static bool bit_get(const uint64_t *b, size_t i)
{
    return (b[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *b, size_t i)
{
    b[i / 64] |= UINT64_C(1) << (i % 64);
}

/* True when bits [first, first + n) of <b> are all set. */
static bool bit_range_all(const uint64_t *b, size_t first, size_t n)
{
    while (n > 0) {
        size_t w = first / 64, sh = first % 64, k = 64 - sh < n ? 64 - sh : n;
        uint64_t mask = (k == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << k) - 1)) << sh;
        if ((b[w] & mask) != mask)
            return false;
        first += k;
        n -= k;
    }
    return true;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

/* ---- regex literal ----------------------------------------------------------------------- */

/* Returns the index just past the bracket expression starting at p[i] == '[', or 0 when it
 * is not terminated. Inside brackets a backslash is an ordinary character (POSIX). */
static size_t skip_bracket(const char *p, size_t i)
{
    size_t j = i + 1;

    if (p[j] == '^')
        j++;
    if (p[j] == ']')
        j++;
    for (; p[j]; j++) {
        if (p[j] == '[' && (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
            char kind = p[j + 1];
            j += 2;
            while (p[j] && !(p[j] == kind && p[j + 1] == ']'))
                j++;
            if (!p[j])
                return 0;
            j++;
        } else if (p[j] == ']') {
            return j + 1;
        }
    }
    return 0;
}

/* Returns the index just past the group starting at p[i] == '(', or 0 when unbalanced. */
static size_t skip_group(const char *p, size_t i)
{
    size_t j = i + 1, depth = 1;

    while (p[j]) {
        if (p[j] == '\\') {
            if (!p[j + 1])
                return 0;
            j += 2;
        } else if (p[j] == '[') {
            j = skip_bracket(p, j);
            if (!j)
                return 0;
        } else if (p[j] == '(') {
            depth++;
            j++;
        } else if (p[j] == ')') {
            j++;
            if (--depth == 0)
                return j;
        } else {
            j++;
        }
    }
    return 0;
}

/* Parses the interval at p[i] == '{'; sets *zero_ok when its minimum is 0. Returns the index
 * past '}', or 0 when malformed. */
static size_t parse_interval(const char *p, size_t i, bool *zero_ok)
{
    size_t j = i + 1;
    bool digits = false, min_zero = true;

    while (p[j] >= '0' && p[j] <= '9') {
        if (p[j] != '0')
            min_zero = false;
        digits = true;
        j++;
    }
    if (p[j] == ',') {
        j++;
        while (p[j] >= '0' && p[j] <= '9')
            j++;
    } else if (!digits) {
        return 0;
    }
    if (p[j] != '}')
        return 0;
    *zero_ok = min_zero;
    return j + 1;
}

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Keeps the longer of the best run buf[0, *best) and the current run buf[*best, +*cur). The
 * runs are disjoint characters of the pattern, so both fit in strlen(pattern) bytes. */
static void end_run(char *buf, size_t *best, size_t *cur)
{
    if (*cur > *best) {
        memmove(buf, buf + *best, *cur);
        *best = *cur;
    }
    *cur = 0;
}

size_t dp_match_regex_literal(const char *p, char *buf)
{
    size_t i = 0, best = 0, cur = 0;
    bool last_char = false; /* the previous atom is the last character of the current run */

    buf[0] = '\0';
    while (p[i]) {
        unsigned char c = (unsigned char)p[i];
        bool zero_ok = false;
        size_t next;

        switch (c) {
        case '|':
            goto out_none;
        case ')':
            goto out_none;
        case '(':
        case '[':
            next = c == '(' ? skip_group(p, i) : skip_bracket(p, i);
            if (!next)
                goto out_none;
            end_run(buf, &best, &cur);
            last_char = false;
            i = next;
            continue;
        case '.':
        case '^':
        case '$':
            end_run(buf, &best, &cur);
            last_char = false;
            i++;
            continue;
        case '*':
        case '?':
        case '+':
        case '{':
            if (c == '{') {
                next = parse_interval(p, i, &zero_ok);
                if (!next)
                    goto out_none;
            } else {
                zero_ok = c != '+';
                next = i + 1;
            }
            if (last_char && zero_ok)
                cur--;
            end_run(buf, &best, &cur);
            last_char = false;
            i = next;
            continue;
        case '\\':
            if (!p[i + 1])
                goto out_none;
            c = (unsigned char)p[i + 1];
            i += 2;
            if (is_alnum(c) || c >= 0x80) {
                end_run(buf, &best, &cur);
                last_char = false;
                continue;
            }
            break;
        default:
            i++;
            if (c >= 0x80) {
                end_run(buf, &best, &cur);
                last_char = false;
                continue;
            }
            break;
        }
        buf[best + cur++] = (char)c;
        last_char = true;
    }
    end_run(buf, &best, &cur);
    buf[best] = '\0';
    if (best >= DP_MATCH_MIN_LITERAL)
        return best;
out_none:
    buf[0] = '\0';
    return 0;
}

/* ---- compile ----------------------------------------------------------------------------- */

void dp_matcher_free(struct dp_matcher *m)
{
    if (!m)
        return;
    dp_aho_free(m->aho);
    free(m->routes);
    free(m->rules);
    free(m->regex);
    free(m->bits);
    free(m->models);
    free(m->model_routes);
    free(m);
}

static unsigned field_mask(unsigned in)
{
    in &= ALL_FIELDS;
    return in ? in : SY_TEXT_LAST_USER;
}

static const char *route_model(const struct sy_route *rt)
{
    return rt->match.model ? rt->match.model : rt->match_model;
}

static bool route_glob(const struct sy_route *rt)
{
    return rt->match.model && rt->match.model_glob;
}

static int tri_accepts(enum sy_tristate t, int v)
{
    return t == SY_TRI_ANY || (t == SY_TRI_YES && v) || (t == SY_TRI_NO && !v);
}

/* The slot for exact model <name>: its entry, or the empty slot where it would go. */
static struct m_model *model_slot(const struct dp_matcher *m, const char *name)
{
    size_t i = (size_t)hash_name(name) & m->models_mask;

    while (m->models[i].name && strcmp(m->models[i].name, name) != 0)
        i = (i + 1) & m->models_mask;
    return &m->models[i];
}

/* Builds the exact-model index. Returns 0 or -ENOMEM. */
static int build_models(struct dp_matcher *m, const struct sy_policy *pol)
{
    size_t n_exact = 0, cap = 2, pos = 0;

    for (size_t r = 0; r < pol->n_routes; r++)
        if (route_model(&pol->routes[r]) && !route_glob(&pol->routes[r]))
            n_exact++;
    while (cap < 2 * n_exact)
        cap *= 2;
    m->models = calloc(cap, sizeof(*m->models));
    m->model_routes = calloc(n_exact ? n_exact : 1, sizeof(*m->model_routes));
    if (!m->models || !m->model_routes)
        return -ENOMEM;
    m->models_mask = cap - 1;
    for (size_t r = 0; r < pol->n_routes; r++) {
        const struct sy_route *rt = &pol->routes[r];
        if (route_model(rt) && !route_glob(rt)) {
            struct m_model *slot = model_slot(m, route_model(rt));
            slot->name = route_model(rt);
            slot->count++;
        }
    }
    for (size_t i = 0; i <= m->models_mask; i++) {
        m->models[i].first = (uint32_t)pos;
        pos += m->models[i].count;
        m->models[i].count = 0;
    }
    for (size_t r = 0; r < pol->n_routes; r++) {
        const struct sy_route *rt = &pol->routes[r];
        if (route_model(rt) && !route_glob(rt)) {
            struct m_model *slot = model_slot(m, route_model(rt));
            m->model_routes[slot->first + slot->count++] = (uint32_t)r;
        }
    }
    return 0;
}

/* Lays out the bitsets and the scratch. Returns 0 or -ENOMEM. */
static int build_bitsets(struct dp_matcher *m)
{
    size_t rw = m->rw, aw = m->aw, total = rw * (1 + N_TRAITS * 2 + ALL_FIELDS + 1) + aw * N_FIELDS;
    uint64_t *p;

    m->bits = calloc(total ? total : 1, sizeof(*m->bits));
    if (!m->bits)
        return -ENOMEM;
    p = m->bits;
    m->model_free = p;
    p += rw;
    for (int t = 0; t < N_TRAITS; t++)
        for (int v = 0; v < 2; v++) {
            m->trait_ok[t][v] = p;
            p += rw;
        }
    for (unsigned n = 0; n <= ALL_FIELDS; n++) {
        m->need[n] = p;
        p += rw;
    }
    for (int f = 0; f < N_FIELDS; f++) {
        m->rule_in[f] = p;
        p += aw;
    }

    for (size_t r = 0; r < m->n_routes; r++) {
        const struct m_route *mr = &m->routes[r];
        const struct sy_match *mt = &mr->rt->match;
        const enum sy_tristate tri[N_TRAITS] = {mt->has_tools, mt->has_images, mt->json_mode,
                                                mt->stream};
        if (!route_model(mr->rt) || mr->glob)
            bit_set(m->model_free, r);
        for (int t = 0; t < N_TRAITS; t++)
            for (int v = 0; v < 2; v++)
                if (tri_accepts(tri[t], v))
                    bit_set(m->trait_ok[t][v], r);
        if (mr->ac_count)
            bit_set(m->need[mr->need], r);
    }
    for (size_t k = 0; k < m->n_rules; k++)
        for (int f = 0; f < N_FIELDS; f++)
            if (m->rules[k].in & (1u << f))
                bit_set(m->rule_in[f], k);

    m->s_total = 0;
    for (int f = 0; f < N_FIELDS; f++) {
        m->s_hits[f] = m->s_total;
        m->s_total += aw;
    }
    m->s_held = m->s_total;
    m->s_total += aw;
    m->s_pass = m->s_total;
    m->s_total += rw;
    m->s_cand = m->s_total;
    m->s_total += rw;
    for (int f = 0; f < N_FIELDS; f++) {
        m->s_known[f] = m->s_total;
        m->s_total += m->xw;
        m->s_val[f] = m->s_total;
        m->s_total += m->xw;
    }
    return 0;
}

/* Gives every regex the id of the first one with the same pattern and case flag, so that
 * routes sharing a regex run it once per request. Returns 0 or -ENOMEM. */
static int dedupe_regex(struct dp_matcher *m)
{
    size_t cap = 2;
    uint32_t *slots; /* regex index + 1; 0 = empty */

    while (cap < 2 * m->n_regex)
        cap *= 2;
    slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t x = 0; x < m->n_regex; x++) {
        const struct sy_regex_rule *rr = m->regex[x].rule;
        size_t i = (size_t)(hash_name(rr->pattern) ^ rr->case_sensitive) & (cap - 1);
        for (;; i = (i + 1) & (cap - 1)) {
            const struct m_regex *o = slots[i] ? &m->regex[slots[i] - 1] : NULL;
            if (!o) {
                slots[i] = (uint32_t)x + 1;
                m->regex[x].uid = (uint32_t)m->n_uregex++;
                break;
            }
            if (o->rule->case_sensitive == rr->case_sensitive &&
                strcmp(o->rule->pattern, rr->pattern) == 0) {
                m->regex[x].uid = o->uid;
                m->regex[x].rule = o->rule;
                break;
            }
        }
    }
    free(slots);
    m->xw = (m->n_uregex + 63) / 64;
    return 0;
}

/* Counts rules and patterns, fills routes, rules, regexes and the automaton's pattern list.
 * <lits> receives one heap literal per regex (NULL = none). Returns 0 or -ENOMEM. */
static int build_rules(struct dp_matcher *m, const struct sy_policy *pol, char **lits,
                       struct dp_aho_pattern **pats_out, size_t *n_pats_out)
{
    size_t n_words = 0, k = 0, x = 0, np = 0;
    struct dp_aho_pattern *pats;

    for (size_t r = 0; r < pol->n_routes; r++) {
        const struct sy_match *mt = &pol->routes[r].match;
        m->n_keyword_rules += mt->n_keywords;
        for (size_t i = 0; i < mt->n_keywords; i++)
            n_words += mt->keywords[i].n_words;
        for (size_t i = 0; i < mt->n_regex; i++) {
            size_t len = strlen(mt->regex[i].pattern);
            char *buf = malloc(len + 1);
            if (!buf)
                return -ENOMEM;
            if (dp_match_regex_literal(mt->regex[i].pattern, buf) > 0) {
                lits[x] = buf;
                m->n_prefiltered++;
            } else {
                free(buf);
            }
            x++;
        }
    }
    m->n_rules = m->n_keyword_rules + m->n_prefiltered;
    m->aw = (m->n_rules + 63) / 64;
    m->rules = calloc(m->n_rules ? m->n_rules : 1, sizeof(*m->rules));
    pats = calloc(n_words + m->n_prefiltered + 1, sizeof(*pats));
    if (!m->rules || !pats) {
        free(pats);
        return -ENOMEM;
    }

    x = 0;
    for (size_t r = 0; r < pol->n_routes; r++) {
        const struct sy_route *rt = &pol->routes[r];
        const struct sy_match *mt = &rt->match;
        struct m_route *mr = &m->routes[r];

        mr->rt = rt;
        mr->glob = route_glob(rt) ? rt->match.model : NULL;
        mr->min_tok = mt->min_prompt_tokens >= 0 ? mt->min_prompt_tokens : INT64_MIN;
        mr->max_tok = mt->max_prompt_tokens >= 0 ? mt->max_prompt_tokens : INT64_MAX;
        mr->min_msg = mt->min_messages >= 0 ? mt->min_messages : INT64_MIN;
        mr->max_msg = mt->max_messages >= 0 ? mt->max_messages : INT64_MAX;
        mr->ac_first = (uint32_t)k;
        for (size_t i = 0; i < mt->n_keywords; i++, k++) {
            const struct sy_keyword_rule *kw = &mt->keywords[i];
            m->rules[k] = (struct m_rule){(uint32_t)r, field_mask(kw->in)};
            mr->need |= m->rules[k].in;
            for (size_t j = 0; j < kw->n_words; j++)
                if (kw->words[j] && kw->words[j][0])
                    pats[np++] =
                        (struct dp_aho_pattern){kw->words[j], strlen(kw->words[j]), (uint32_t)k};
        }
        mr->re_first = (uint32_t)x;
        mr->re_count = (uint32_t)mt->n_regex;
        for (size_t i = 0; i < mt->n_regex; i++, x++) {
            struct m_regex *rx = &m->regex[x];
            rx->rule = &mt->regex[i];
            rx->in = field_mask(mt->regex[i].in);
            rx->lit_rule = -1;
            if (lits[x]) {
                m->rules[k] = (struct m_rule){(uint32_t)r, rx->in};
                mr->need |= rx->in;
                rx->lit_rule = (int64_t)k;
                pats[np++] = (struct dp_aho_pattern){lits[x], strlen(lits[x]), (uint32_t)k};
                k++;
            }
        }
        mr->ac_count = (uint32_t)(k - mr->ac_first);
    }
    *pats_out = pats;
    *n_pats_out = np;
    return 0;
}

struct dp_matcher *dp_matcher_new(const struct sy_policy *pol, char **errmsg)
{
    struct dp_matcher *m = calloc(1, sizeof(*m));
    struct dp_aho_pattern *pats = NULL;
    char **lits = NULL;
    size_t n_pats = 0, n_regex = 0;
    char *aho_err = NULL;

    *errmsg = NULL;
    if (!m)
        return NULL;
    for (size_t r = 0; r < pol->n_routes; r++)
        n_regex += pol->routes[r].match.n_regex;
    m->n_routes = pol->n_routes;
    m->rw = (pol->n_routes + 63) / 64;
    m->n_regex = n_regex;
    m->routes = calloc(pol->n_routes ? pol->n_routes : 1, sizeof(*m->routes));
    m->regex = calloc(n_regex ? n_regex : 1, sizeof(*m->regex));
    lits = calloc(n_regex ? n_regex : 1, sizeof(*lits));
    if (!m->routes || !m->regex || !lits)
        goto out_free_lits;
    if (build_rules(m, pol, lits, &pats, &n_pats) < 0 || dedupe_regex(m) < 0)
        goto out_free_lits;
    m->aho = dp_aho_new(pats, n_pats, &aho_err);
    if (!m->aho) {
        if (aho_err)
            *errmsg = sy_xasprintf("routes[].match keywords and regex literals: %s", aho_err);
        goto out_free_lits;
    }
    if (build_models(m, pol) < 0 || build_bitsets(m) < 0)
        goto out_free_lits;
    /* The automaton copied the literals into its table; they are no longer needed. */
    for (size_t x = 0; x < n_regex; x++)
        free(lits[x]);
    free(lits);
    free(pats);
    return m;

out_free_lits:
    for (size_t x = 0; lits && x < n_regex; x++)
        free(lits[x]);
    free(lits);
    free(pats);
    free(aho_err);
    dp_matcher_free(m);
    return NULL;
}

void dp_matcher_get_stats(const struct dp_matcher *m, struct dp_matcher_stats *out)
{
    struct dp_aho_stats as;

    memset(out, 0, sizeof(*out));
    if (!m)
        return;
    dp_aho_get_stats(m->aho, &as);
    out->n_routes = m->n_routes;
    out->n_keyword_rules = m->n_keyword_rules;
    out->n_regex = m->n_regex;
    out->n_regex_distinct = m->n_uregex;
    out->n_regex_prefiltered = m->n_prefiltered;
    out->n_patterns = as.n_patterns;
    out->n_states = as.n_states;
    out->automaton_bytes = as.bytes;
    out->scratch_bytes = m->s_total * sizeof(uint64_t);
}

/* ---- per request ------------------------------------------------------------------------- */

void dp_match_scratch_init(struct dp_match_scratch *s)
{
    memset(s, 0, sizeof(*s));
}

void dp_match_scratch_cleanup(struct dp_match_scratch *s)
{
    free(s->words);
    memset(s, 0, sizeof(*s));
}

int dp_match_scratch_prepare(struct dp_match_scratch *s, const struct dp_matcher *m)
{
    size_t need = m->s_total ? m->s_total : 1; /* never NULL: offsets are added to it */

    if (s->cap < need) {
        uint64_t *w = malloc(need * sizeof(*w));
        if (!w)
            return -ENOMEM;
        free(s->words);
        s->words = w;
        s->cap = need;
    }
    for (int f = 0; f < N_FIELDS; f++)
        memset(s->words + m->s_known[f], 0, m->xw * sizeof(uint64_t));
    s->scanned = 0;
    s->prepared = m;
    return 0;
}

static const struct dp_text *field_text(const struct dp_features *f, int field)
{
    return field == 0 ? &f->last_user : &f->system;
}

/* Candidates by model and boolean traits, word-wide. */
static void build_candidates(const struct dp_matcher *m, const struct dp_features *f,
                             uint64_t *cand)
{
    const int v[N_TRAITS] = {f->has_tools, f->has_images, f->json_mode, f->stream};

    memcpy(cand, m->model_free, m->rw * sizeof(*cand));
    if (f->model && m->models_mask) {
        const struct m_model *slot = model_slot(m, f->model);
        for (uint32_t i = 0; slot->name && i < slot->count; i++)
            bit_set(cand, m->model_routes[slot->first + i]);
    }
    for (size_t w = 0; w < m->rw; w++)
        cand[w] &= m->trait_ok[0][v[0]][w] & m->trait_ok[1][v[1]][w] & m->trait_ok[2][v[2]][w] &
                   m->trait_ok[3][v[3]][w];
}

/* Glob, numeric ranges and tags: per route, no text. */
static bool cheap_ok(const struct m_route *mr, const struct dp_features *f)
{
    const struct sy_match *mt = &mr->rt->match;

    if (mr->glob && (!f->model || fnmatch(mr->glob, f->model, 0) != 0))
        return false;
    if (f->prompt_tokens < mr->min_tok || f->prompt_tokens > mr->max_tok)
        return false;
    if (f->n_messages < mr->min_msg || f->n_messages > mr->max_msg)
        return false;
    for (size_t i = 0; i < mt->n_tags; i++)
        if (!dp_features_has_tag(f, mt->tags[i]))
            return false;
    return true;
}

/* Scans the fields in <fields> (not scanned yet), then recomputes which AC rules and routes
 * hold and drops from cand[w0..] every route that reads only scanned fields and fails. */
static void scan_and_filter(const struct dp_matcher *m, const struct dp_features *f,
                            struct dp_match_scratch *s, unsigned fields, size_t w0)
{
    uint64_t *held = s->words + m->s_held, *pass = s->words + m->s_pass;
    uint64_t *cand = s->words + m->s_cand;

    for (int fl = 0; fl < N_FIELDS; fl++) {
        uint64_t *hits = s->words + m->s_hits[fl];
        const struct dp_text *t = field_text(f, fl);
        if (!(fields & (1u << fl)))
            continue;
        memset(hits, 0, m->aw * sizeof(*hits));
        dp_aho_scan(m->aho, t->p ? t->p : "", t->len, hits);
        s->n_scans++;
        s->n_scan_bytes += t->len;
        s->scanned |= 1u << fl;
    }

    for (size_t w = 0; w < m->aw; w++) {
        held[w] = 0;
        for (int fl = 0; fl < N_FIELDS; fl++)
            if (s->scanned & (1u << fl))
                held[w] |= s->words[m->s_hits[fl] + w] & m->rule_in[fl][w];
    }
    memset(pass, 0, m->rw * sizeof(*pass));
    for (size_t w = 0; w < m->aw; w++) {
        uint64_t b = held[w];
        while (b) {
            size_t k = w * 64 + (size_t)__builtin_ctzll(b);
            uint32_t r = m->rules[k].route;
            b &= b - 1;
            if (!bit_get(pass, r) &&
                bit_range_all(held, m->routes[r].ac_first, m->routes[r].ac_count))
                bit_set(pass, r);
        }
    }
    for (size_t w = w0; w < m->rw; w++) {
        uint64_t decided = 0;
        for (unsigned n = 1; n <= ALL_FIELDS; n++)
            if ((n & ~s->scanned) == 0)
                decided |= m->need[n][w];
        cand[w] &= ~(decided & ~pass[w]);
    }
}

/* Whether regex <x> matches field <fl>, once per request; the literal prefilter first. */
static bool regex_field(const struct dp_matcher *m, const struct dp_features *f,
                        struct dp_match_scratch *s, size_t x, int fl)
{
    const struct m_regex *rx = &m->regex[x];
    uint64_t *known = s->words + m->s_known[fl], *val = s->words + m->s_val[fl];
    const struct dp_text *t = field_text(f, fl);
    regmatch_t pm[1];
    bool ok;

    if (bit_get(known, rx->uid))
        return bit_get(val, rx->uid);
    if (rx->lit_rule >= 0 && !bit_get(s->words + m->s_hits[fl], (size_t)rx->lit_rule)) {
        s->n_prefilter_skips++;
        ok = false;
    } else {
        /* REG_STARTEND: the text has a length and need not be NUL-terminated. */
        pm[0].rm_so = 0;
        pm[0].rm_eo = (regoff_t)t->len;
        ok = regexec(&rx->rule->re, t->p ? t->p : "", 1, pm, REG_STARTEND) == 0;
        s->n_regexec++;
    }
    bit_set(known, rx->uid);
    if (ok)
        bit_set(val, rx->uid);
    else
        val[rx->uid / 64] &= ~(UINT64_C(1) << (rx->uid % 64)); /* stale from an earlier request */
    return ok;
}

static bool regex_ok(const struct dp_matcher *m, const struct dp_features *f,
                     struct dp_match_scratch *s, const struct m_route *mr)
{
    for (uint32_t i = 0; i < mr->re_count; i++) {
        size_t x = mr->re_first + i;
        bool ok = false;
        for (int fl = 0; fl < N_FIELDS && !ok; fl++)
            if (m->regex[x].in & (1u << fl))
                ok = regex_field(m, f, s, x, fl);
        if (!ok)
            return false;
    }
    return true;
}

const struct sy_route *dp_match_route(const struct dp_matcher *m, const struct dp_features *f,
                                      struct dp_match_scratch *s)
{
    uint64_t *cand = s->words + m->s_cand, *pass = s->words + m->s_pass;

    assert(s->prepared == m && s->cap >= m->s_total);
    if (!m->n_routes)
        return NULL;
    build_candidates(m, f, cand);
    for (size_t w = 0; w < m->rw; w++) {
        uint64_t bits = cand[w];
        while (bits) {
            size_t r = w * 64 + (size_t)__builtin_ctzll(bits);
            const struct m_route *mr = &m->routes[r];
            bits &= bits - 1;
            if (!cheap_ok(mr, f))
                continue;
            if (mr->need & ~s->scanned) {
                scan_and_filter(m, f, s, mr->need & ~s->scanned, w);
                bits &= cand[w];
            }
            if (mr->ac_count && !bit_get(pass, r))
                continue;
            if (mr->re_count && !regex_ok(m, f, s, mr))
                continue;
            return mr->rt;
        }
    }
    return NULL;
}

int dp_resolve(const struct dp_matcher *m, const struct sy_policy *pol, const struct dp_features *f,
               struct dp_match_scratch *s, const struct sy_route **route,
               const struct sy_model **direct_model)
{
    *route = NULL;
    *direct_model = NULL;
    if (dp_match_scratch_prepare(s, m) < 0)
        return -ENOMEM;
    *route = dp_match_route(m, f, s);
    if (*route)
        return 0;
    if (f->model) {
        *direct_model = sy_policy_find_model(pol, f->model);
        if (*direct_model)
            return 0;
    }
    if (pol->default_route < pol->n_routes) {
        *route = &pol->routes[pol->default_route];
        return 0;
    }
    return -ENOENT;
}
