/* bench/routing/sy_bench_routing.c - sy-bench-routing: the cost of one routing decision
 * (dp_features_extract + dp_resolve) against a generated 1,000-route policy.
 *
 * Each scenario generates a policy as JSON text and compiles it with the real compiler
 * (sy_policy_compile), builds the matcher once, parses one request once, then times N
 * decisions one by one with clock_gettime(CLOCK_MONOTONIC) around each (about 20 ns of the
 * figure is the clock itself). It reports p50/p99/p99.9/max in microseconds, and separately
 * the features alone, the match alone and one bare automaton pass over the user text, so
 * that it is clear what dominates. Single-threaded; pin it (bench/routing/run.sh uses
 * taskset). docs/benchmarks.md, "Routing decision cost", has results and the command.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp_aho.h"
#include "dp_features.h"
#include "dp_match.h"
#include "sy_policy.h"
#include "sy_util.h"

/* A growable string. */
struct buf {
    char *p;
    size_t len, cap;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = sy_xrealloc(b->p, b->cap);
    }
}

/* ---- inputs ------------------------------------------------------------------------------ */

/* Words no prompt below contains: made of syllables, unique per (route, slot). */
static void pseudo_word(char *out, size_t n, unsigned route, unsigned slot)
{
    static const char *const syl[] = {"ka",  "zor", "vel", "quin", "tra", "mox", "dil", "fen",
                                      "bru", "xan", "lop", "rik",  "sue", "gah", "wen", "yol"};
    unsigned v = route * 7u + slot * 7919u + 12345u;
    snprintf(out, n, "%s%s%s%s%u", syl[v % 16], syl[(v / 16) % 16], syl[(v / 256) % 16],
             syl[(v / 4096) % 16], route);
}

static const char *const prose[] = {
    "I am working on a C service that proxies requests to several upstream APIs and I need "
    "help reviewing a change before it goes to production. ",
    "The function below parses the request body, validates the fields and then picks an "
    "upstream based on a weighted table; please check it for error handling problems. ",
    "We have seen intermittent failures under load, mostly when the connection pool is "
    "exhausted and the retry logic kicks in at the same time as a configuration reload. ",
    "static int pick(const struct table *t, uint64_t r) { for (size_t i = 0; i < t->n; i++) "
    "{ if (r < t->w[i]) return (int)i; r -= t->w[i]; } return -1; }\n",
    "Could you also suggest how to test this properly, including the error paths, and whether "
    "the locking around the shared configuration pointer is correct? ",
    "The logs from last night show the worker restarting twice; the metrics show p99 latency "
    "going from 40 ms to 900 ms for about two minutes before recovering on its own. ",
};

/* A user message of about <size> bytes of prose and code; with <trigger>, it ends with a
 * stack trace that the late route's keyword and regex recognise. */
static char *make_prompt(size_t size, bool trigger)
{
    struct buf b = {0};
    const char *tail = trigger ? "Here is the stack trace: segfault at 0x7ffd5e8c1a40 ip "
                                 "000055d0c2a1b3f4 in worker[55d0c2a00000+2f000]\n"
                               : "Thanks in advance for any pointers.\n";
    size_t i = 0;

    while (b.len + strlen(tail) + strlen(prose[i % 6]) < size)
        buf_printf(&b, "%s", prose[i++ % 6]);
    buf_printf(&b, "%s", tail);
    return b.p;
}

static const char system_prompt[] =
    "You are a senior software engineer. Answer precisely, show code when it helps, and say "
    "when you are not sure. Prefer small, reviewable changes. Follow the user's conventions.";

/* ---- policies ------------------------------------------------------------------------------ */

enum shape {
    SHAPE_KEYWORDS,   /* keyword rules (+ some regexes with literals); route <late> matches */
    SHAPE_REGEX,      /* one regex with a literal per route; route <late> matches */
    SHAPE_MODELS,     /* one exact model per route; the request names route <late>'s */
    SHAPE_NO_LITERAL, /* one regex per route with no usable literal: the worst case */
};

static void policy_head(struct buf *b)
{
    buf_printf(b, "{\"providers\":[{\"name\":\"p\",\"kind\":\"openai\","
                  "\"base_url\":\"http://127.0.0.1:1/v1\"}],"
                  "\"models\":[{\"name\":\"m0\",\"provider\":\"p\"},"
                  "{\"name\":\"m1\",\"provider\":\"p\"}],\"routes\":[");
}

static char *make_policy(enum shape shape, unsigned n_routes, unsigned late, bool late_regex)
{
    struct buf b = {0};
    char w[3][48];

    policy_head(&b);
    for (unsigned i = 0; i < n_routes; i++) {
        buf_printf(&b, "%s{\"name\":\"r%04u\",\"targets\":[{\"model\":\"m%u\"}],\"match\":{",
                   i ? "," : "", i, i % 2);
        switch (shape) {
        case SHAPE_KEYWORDS:
            for (unsigned k = 0; k < 3; k++)
                pseudo_word(w[k], sizeof(w[k]), i, k);
            if (i == late)
                buf_printf(&b, "\"keywords\":{\"any\":[\"stack trace\",\"traceback\"]}%s",
                           late_regex ? ",\"regex\":{\"pattern\":\"(segfault|sigsegv) at "
                                        "0x[0-9a-f]+\"}"
                                      : "");
            else if (i % 4 == 1) /* a common word holds, the other rule never does */
                buf_printf(&b,
                           "\"keywords\":[{\"any\":[\"%s\",\"%s\",\"%s\"]},"
                           "{\"any\":[\"request\",\"error\"],\"in\":\"any\"}]",
                           w[0], w[1], w[2]);
            else if (i % 10 == 3) /* regexes with a literal that never occurs */
                buf_printf(&b, "\"regex\":{\"pattern\":\"ticket-%s #[0-9]+\"}", w[0]);
            else if (i % 25 == 7)
                buf_printf(&b, "\"regex\":{\"pattern\":\"policy %s v[0-9]+\",\"in\":\"system\"}",
                           w[0]);
            else
                buf_printf(&b, "\"keywords\":{\"any\":[\"%s\",\"%s\",\"%s\"]}", w[0], w[1], w[2]);
            break;
        case SHAPE_REGEX:
            pseudo_word(w[0], sizeof(w[0]), i, 0);
            if (i == late)
                buf_printf(&b, "\"regex\":{\"pattern\":\"segfault at 0x[0-9a-f]+ ip\"}");
            else
                buf_printf(&b, "\"regex\":{\"pattern\":\"order %s-[0-9]+\"}", w[0]);
            break;
        case SHAPE_MODELS:
            buf_printf(&b, "\"model\":\"model-%04u\"", i);
            break;
        case SHAPE_NO_LITERAL:
            buf_printf(&b, "\"regex\":{\"pattern\":\"zz%u|qq%u\"}", i, i);
            break;
        }
        buf_printf(&b, "}}");
    }
    buf_printf(&b, "],\"default_route\":\"r0000\"}");
    return b.p;
}

/* ---- timing ------------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

struct dist {
    double p50, p99, p999, max, mean; /* microseconds */
};

static struct dist summarize(uint32_t *ns, size_t n)
{
    struct dist d;
    double sum = 0;

    qsort(ns, n, sizeof(*ns), cmp_u32);
    for (size_t i = 0; i < n; i++)
        sum += ns[i];
    d.p50 = ns[n / 2] / 1000.0;
    d.p99 = ns[(size_t)((double)n * 0.99)] / 1000.0;
    d.p999 = ns[(size_t)((double)n * 0.999)] / 1000.0;
    d.max = ns[n - 1] / 1000.0;
    d.mean = sum / (double)n / 1000.0;
    return d;
}

static const char *hdr_tags(void *arg, const char *name)
{
    (void)arg;
    return strcmp(name, DP_HDR_TAGS) == 0 ? "bench, internal" : NULL;
}

struct scenario {
    const char *name;
    enum shape shape;
    bool trigger;      /* the prompt contains the late route's words */
    bool late_regex;   /* the late route has a regex besides its keywords */
    const char *model; /* requested */
    const char *want;  /* expected route, or NULL when a direct model / default is expected */
    size_t prompt;     /* bytes of the user message */
    size_t max_decisions;
};

struct opts {
    unsigned routes, late;
    size_t decisions, warmup;
    size_t prompt;
    const char *only;
};

/* Builds the user text's automaton separately, to time one bare pass. */
static struct dp_aho *policy_aho(const struct sy_policy *pol)
{
    struct dp_aho_pattern *pats = NULL;
    char **lits = NULL;
    size_t n = 0, cap = 0, n_lits = 0;
    struct dp_aho *a;
    char *err = NULL;

    for (size_t r = 0; r < pol->n_routes; r++) {
        const struct sy_match *mt = &pol->routes[r].match;
        for (size_t k = 0; k < mt->n_keywords; k++)
            for (size_t j = 0; j < mt->keywords[k].n_words; j++) {
                if (n == cap)
                    pats = sy_xrealloc(pats, (cap = cap * 2 + 64) * sizeof(*pats));
                pats[n] = (struct dp_aho_pattern){mt->keywords[k].words[j],
                                                  strlen(mt->keywords[k].words[j]), (uint32_t)n};
                n++;
            }
        for (size_t k = 0; k < mt->n_regex; k++) {
            char *lit = sy_xmalloc(strlen(mt->regex[k].pattern) + 1);
            size_t len = dp_match_regex_literal(mt->regex[k].pattern, lit);
            if (!len) {
                free(lit);
                continue;
            }
            lits = sy_xrealloc(lits, (n_lits + 1) * sizeof(*lits));
            lits[n_lits++] = lit;
            if (n == cap)
                pats = sy_xrealloc(pats, (cap = cap * 2 + 64) * sizeof(*pats));
            pats[n] = (struct dp_aho_pattern){lit, len, (uint32_t)n};
            n++;
        }
    }
    a = dp_aho_new(pats, n, &err);
    if (!a) {
        fprintf(stderr, "automaton: %s\n", err ? err : "out of memory");
        exit(1);
    }
    for (size_t i = 0; i < n_lits; i++)
        free(lits[i]);
    free(lits);
    free(pats);
    return a;
}

static int run(const struct scenario *sc, const struct opts *o)
{
    char *src = make_policy(sc->shape, o->routes, o->late, sc->late_regex), *err = NULL;
    char *prompt = make_prompt(sc->prompt, sc->trigger);
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);
    struct dp_matcher *m;
    struct dp_matcher_stats st;
    struct dp_match_scratch s;
    struct dp_features f;
    cJSON *req, *msgs, *msg;
    size_t n =
        sc->max_decisions && sc->max_decisions < o->decisions ? sc->max_decisions : o->decisions;
    uint32_t *all = sy_xcalloc(n, sizeof(*all)), *feat = sy_xcalloc(n, sizeof(*feat));
    uint32_t *match = sy_xcalloc(n, sizeof(*match)), *scan = sy_xcalloc(n, sizeof(*scan));
    struct dist d_all, d_feat, d_match, d_scan;
    const struct sy_route *rt = NULL;
    const struct sy_model *md = NULL;
    struct dp_aho *aho;
    uint64_t *bits, regexec0, scans0; /* counters: totals, then what loop 1 added */
    size_t n_bit_words;

    if (!pol) {
        fprintf(stderr, "%s: the policy does not compile:\n%s\n", sc->name, err);
        return 1;
    }
    m = dp_matcher_new(pol, &err);
    if (!m) {
        fprintf(stderr, "%s: matcher: %s\n", sc->name, err ? err : "out of memory");
        return 1;
    }
    dp_matcher_get_stats(m, &st);
    aho = policy_aho(pol);
    n_bit_words = st.n_patterns / 64 + 1;
    bits = sy_xcalloc(n_bit_words, sizeof(*bits));

    req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", sc->model);
    msgs = cJSON_AddArrayToObject(req, "messages");
    msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "system");
    cJSON_AddStringToObject(msg, "content", system_prompt);
    cJSON_AddItemToArray(msgs, msg);
    msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "role", "user");
    cJSON_AddStringToObject(msg, "content", prompt);
    cJSON_AddItemToArray(msgs, msg);
    cJSON_AddBoolToObject(req, "stream", true);

    dp_match_scratch_init(&s);
    /* Check the answer once, then warm up. */
    dp_features_extract(req, hdr_tags, NULL, &f);
    if (dp_resolve(m, pol, &f, &s, &rt, &md) < 0 ||
        (sc->want && (!rt || strcmp(rt->name, sc->want))) ||
        (!sc->want && rt && strcmp(rt->name, "r0000") != 0)) {
        fprintf(stderr, "%s: resolved to %s, expected %s\n", sc->name,
                rt   ? rt->name
                : md ? md->name
                     : "nothing",
                sc->want ? sc->want : "the default");
        return 1;
    }
    dp_features_cleanup(&f);
    for (size_t i = 0; i < o->warmup; i++) {
        dp_features_extract(req, hdr_tags, NULL, &f);
        dp_resolve(m, pol, &f, &s, &rt, &md);
        dp_features_cleanup(&f);
    }

    /* 1. The whole decision. */
    regexec0 = s.n_regexec;
    scans0 = s.n_scans;
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns(), t1;
        dp_features_extract(req, hdr_tags, NULL, &f);
        dp_resolve(m, pol, &f, &s, &rt, &md);
        dp_features_cleanup(&f);
        t1 = now_ns();
        all[i] = (uint32_t)(t1 - t0);
    }
    regexec0 = s.n_regexec - regexec0;
    scans0 = s.n_scans - scans0;
    /* 2. Features alone. */
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns(), t1;
        dp_features_extract(req, hdr_tags, NULL, &f);
        dp_features_cleanup(&f);
        t1 = now_ns();
        feat[i] = (uint32_t)(t1 - t0);
    }
    /* 3. The match alone, on features extracted once. */
    dp_features_extract(req, hdr_tags, NULL, &f);
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns(), t1;
        dp_resolve(m, pol, &f, &s, &rt, &md);
        t1 = now_ns();
        match[i] = (uint32_t)(t1 - t0);
    }
    /* 4. One bare automaton pass over the user text (all words and literals). */
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns(), t1;
        memset(bits, 0, n_bit_words * sizeof(*bits));
        dp_aho_scan(aho, f.last_user.p, f.last_user.len, bits);
        t1 = now_ns();
        scan[i] = (uint32_t)(t1 - t0);
    }
    dp_features_cleanup(&f);

    d_all = summarize(all, n);
    d_feat = summarize(feat, n);
    d_match = summarize(match, n);
    d_scan = summarize(scan, n);
    printf("| %s | %u | %zu | %zu | %.2f | %.2f | %.2f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f "
           "| %.2f | %.1f |\n",
           sc->name, o->routes, sc->prompt, n, d_all.p50, d_all.p99, d_all.p999, d_all.max,
           d_all.mean, d_feat.p50, d_feat.p99, d_match.p50, d_match.p99, d_scan.p50,
           (double)regexec0 / (double)n);
    fflush(stdout);
    fprintf(stderr,
            "%s: %zu patterns, %zu states, automaton %.1f MiB, scratch %zu B, %.2f scans and "
            "%.2f regexec per decision; resolved to %s\n",
            sc->name, st.n_patterns, st.n_states, (double)st.automaton_bytes / 1048576.0,
            st.scratch_bytes, (double)scans0 / (double)n, (double)regexec0 / (double)n,
            rt   ? rt->name
            : md ? md->name
                 : "nothing");

    dp_match_scratch_cleanup(&s);
    cJSON_Delete(req);
    dp_aho_free(aho);
    dp_matcher_free(m);
    sy_policy_unref(pol);
    free(all);
    free(feat);
    free(match);
    free(scan);
    free(bits);
    free(prompt);
    free(src);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: sy-bench-routing [--routes N] [--late I] [--decisions N] [--warmup N]\n"
                 "                        [--prompt-bytes B] [--only NAME]\n"
                 "Times dp_features_extract + dp_resolve per decision; prints a Markdown table "
                 "row per scenario on stdout, details on stderr.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"routes", required_argument, NULL, 'r'},
        {"late", required_argument, NULL, 'l'},
        {"decisions", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"prompt-bytes", required_argument, NULL, 'p'},
        {"only", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {
        .routes = 1000, .late = 990, .decisions = 200000, .warmup = 20000, .prompt = 4096};
    char late_name[16];
    int c, rc = 0;
    int64_t v;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'o') {
            o.only = optarg;
            continue;
        }
        if (c == '?' || sy_parse_i64(optarg, 1, 100000000, &v) < 0) {
            usage(stderr);
            return 2;
        }
        if (c == 'r')
            o.routes = (unsigned)v;
        else if (c == 'l')
            o.late = (unsigned)v;
        else if (c == 'n')
            o.decisions = (size_t)v;
        else if (c == 'w')
            o.warmup = (size_t)v;
        else if (c == 'p')
            o.prompt = (size_t)v;
    }
    if (o.late >= o.routes) {
        fprintf(stderr, "--late must be below --routes\n");
        return 2;
    }
    snprintf(late_name, sizeof(late_name), "r%04u", o.late);

    const struct scenario scenarios[] = {
        {"keywords, late match", SHAPE_KEYWORDS, true, false, "auto", late_name, o.prompt, 0},
        {"keywords + regex, late match", SHAPE_KEYWORDS, true, true, "auto", late_name, o.prompt,
         0},
        {"keywords, no match -> default", SHAPE_KEYWORDS, false, false, "auto", NULL, o.prompt, 0},
        {"keywords, direct model", SHAPE_KEYWORDS, false, false, "m1", NULL, o.prompt, 0},
        {"keywords, late match, 512 B prompt", SHAPE_KEYWORDS, true, false, "auto", late_name, 512,
         0},
        {"regex literals, late match", SHAPE_REGEX, true, false, "auto", late_name, o.prompt, 0},
        {"exact models, late match", SHAPE_MODELS, false, false, NULL, late_name, o.prompt, 0},
        {"regex without literal (worst case)", SHAPE_NO_LITERAL, false, false, "auto", NULL,
         o.prompt, 2000},
    };
    char model_name[24];
    snprintf(model_name, sizeof(model_name), "model-%04u", o.late);

    printf("| scenario | routes | prompt B | decisions | p50 µs | p99 µs | p99.9 µs | max µs | "
           "mean µs | features p50 | features p99 | match p50 | match p99 | 1 AC pass p50 | "
           "regexec/decision |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
           "---: | ---: | ---: |\n");
    for (size_t i = 0; i < SY_ARRAY_LEN(scenarios); i++) {
        struct scenario sc = scenarios[i];
        if (o.only && !strstr(sc.name, o.only))
            continue;
        if (sc.shape == SHAPE_MODELS)
            sc.model = model_name;
        rc |= run(&sc, &o);
    }
    return rc;
}
