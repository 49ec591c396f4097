/* tests/unit/dataplane/test_match.c - route matching: every condition, evaluation order and
 * laziness (through the scratch counters), regex prefilters, resolution, the automaton, a
 * randomized comparison with a naive evaluator, and concurrent readers.
 *
 * Routes are built by hand on top of a compiled policy that has only providers and models,
 * so these tests do not depend on the policy compiler's routing keys.
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_aho.h"
#include "dp_features.h"
#include "dp_match.h"
#include "sy_policy.h"
#include "sy_util.h"

#define LU SY_TEXT_LAST_USER
#define SYS SY_TEXT_SYSTEM
#define ANY (SY_TEXT_LAST_USER | SY_TEXT_SYSTEM)

static const char base_src[] = "providers:\n"
                               "  - {name: p, kind: openai, base_url: \"http://127.0.0.1:1/v1\"}\n"
                               "models:\n"
                               "  - {name: m1, provider: p}\n"
                               "  - {name: m2, provider: p}\n";

/* A compiled base policy with hand-made routes swapped in. */
struct tpol {
    struct sy_policy *pol;
    struct sy_route *routes;
    size_t n, cap;
    struct sy_target target;
    struct dp_matcher *m;
    struct dp_match_scratch s;
};

static void tpol_init(struct tpol *t, size_t cap)
{
    char *err = NULL;

    memset(t, 0, sizeof(*t));
    t->pol = sy_policy_compile(base_src, strlen(base_src), &err);
    if (!t->pol)
        fail_msg("base policy did not compile: %s", err);
    assert_int_equal(t->pol->n_routes, 0);
    t->routes = sy_xcalloc(cap ? cap : 1, sizeof(*t->routes));
    t->cap = cap;
    t->target = (struct sy_target){.model = 0, .weight = 1};
    dp_match_scratch_init(&t->s);
}

static struct sy_route *add_route(struct tpol *t, const char *name)
{
    struct sy_route *rt;

    assert_true(t->n < t->cap);
    rt = &t->routes[t->n++];
    rt->name = sy_xstrdup(name);
    rt->match.min_prompt_tokens = rt->match.max_prompt_tokens = -1;
    rt->match.min_messages = rt->match.max_messages = -1;
    rt->targets = &t->target;
    rt->n_targets = 1;
    rt->total_weight = 1;
    return rt;
}

static void set_model(struct sy_route *rt, const char *model)
{
    rt->match.model = sy_xstrdup(model);
    rt->match.model_glob = strpbrk(model, "*?[") != NULL;
    rt->match_model = rt->match.model_glob ? NULL : rt->match.model;
}

static void add_tag(struct sy_route *rt, const char *tag)
{
    struct sy_match *mt = &rt->match;
    mt->tags = sy_xrealloc(mt->tags, (mt->n_tags + 1) * sizeof(*mt->tags));
    mt->tags[mt->n_tags++] = sy_xstrdup(tag);
}

/* A keyword rule with the comma-separated <words> (lowercased, as the compiler does). */
static void add_kw(struct sy_route *rt, unsigned in, const char *words)
{
    struct sy_match *mt = &rt->match;
    struct sy_keyword_rule *kw;
    const char *p = words;

    mt->keywords = sy_xrealloc(mt->keywords, (mt->n_keywords + 1) * sizeof(*mt->keywords));
    kw = &mt->keywords[mt->n_keywords++];
    memset(kw, 0, sizeof(*kw));
    kw->in = in;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *w = sy_xstrndup(p, n);
        for (char *c = w; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
        kw->words = sy_xrealloc(kw->words, (kw->n_words + 1) * sizeof(*kw->words));
        kw->words[kw->n_words++] = w;
        p += n + (e ? 1 : 0);
    }
}

static void add_re(struct sy_route *rt, unsigned in, const char *pattern, bool case_sensitive)
{
    struct sy_match *mt = &rt->match;
    struct sy_regex_rule *rr;

    mt->regex = sy_xrealloc(mt->regex, (mt->n_regex + 1) * sizeof(*mt->regex));
    rr = &mt->regex[mt->n_regex++];
    memset(rr, 0, sizeof(*rr));
    rr->pattern = sy_xstrdup(pattern);
    rr->in = in;
    rr->case_sensitive = case_sensitive;
    if (regcomp(&rr->re, pattern, REG_EXTENDED | REG_NOSUB | (case_sensitive ? 0 : REG_ICASE)))
        fail_msg("test regex does not compile: %s", pattern);
}

/* Installs the routes (default route <def>, SIZE_MAX = none) and compiles the matcher. */
static void tpol_finish(struct tpol *t, size_t def)
{
    char *err = NULL;

    t->pol->routes = t->routes;
    t->pol->n_routes = t->n;
    t->pol->default_route = def;
    t->m = dp_matcher_new(t->pol, &err);
    if (!t->m)
        fail_msg("matcher: %s", err ? err : "out of memory");
}

static void route_cleanup(struct sy_route *rt)
{
    struct sy_match *mt = &rt->match;

    free(rt->name);
    free(mt->model);
    for (size_t i = 0; i < mt->n_tags; i++)
        free(mt->tags[i]);
    free(mt->tags);
    for (size_t i = 0; i < mt->n_keywords; i++) {
        for (size_t j = 0; j < mt->keywords[i].n_words; j++)
            free(mt->keywords[i].words[j]);
        free(mt->keywords[i].words);
    }
    free(mt->keywords);
    for (size_t i = 0; i < mt->n_regex; i++) {
        regfree(&mt->regex[i].re);
        free(mt->regex[i].pattern);
    }
    free(mt->regex);
}

static void tpol_cleanup(struct tpol *t)
{
    dp_matcher_free(t->m);
    dp_match_scratch_cleanup(&t->s);
    for (size_t i = 0; i < t->n; i++)
        route_cleanup(&t->routes[i]);
    free(t->routes);
    t->pol->routes = NULL;
    t->pol->n_routes = 0;
    t->pol->default_route = SIZE_MAX;
    sy_policy_unref(t->pol);
}

static void feat_init(struct dp_features *f)
{
    memset(f, 0, sizeof(*f));
    f->last_user.p = f->system.p = f->region.p = "";
}

static void set_text(struct dp_text *t, const char *s)
{
    t->p = s;
    t->len = strlen(s);
}

static void add_ftag(struct dp_features *f, const char *tag)
{
    f->tags[f->n_tags++] = (struct dp_text){tag, strlen(tag)};
}

/* The name of the matched route, or NULL. */
static const char *match(struct tpol *t, const struct dp_features *f)
{
    const struct sy_route *rt;

    assert_int_equal(dp_match_scratch_prepare(&t->s, t->m), 0);
    rt = dp_match_route(t->m, f, &t->s);
    return rt ? rt->name : NULL;
}

static void assert_match(struct tpol *t, const struct dp_features *f, const char *want)
{
    const char *got = match(t, f);
    if (!want && got)
        fail_msg("expected no match, got route %s", got);
    if (want && (!got || strcmp(got, want) != 0))
        fail_msg("expected route %s, got %s", want, got ? got : "(none)");
}

/* ---- conditions ---------------------------------------------------------------------------- */

static void test_empty_policy(void **state)
{
    struct tpol t;
    struct dp_features f;
    const struct sy_route *rt;
    const struct sy_model *md;
    (void)state;

    tpol_init(&t, 0);
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    assert_match(&t, &f, NULL);
    f.model = "nope";
    assert_int_equal(dp_resolve(t.m, t.pol, &f, &t.s, &rt, &md), -ENOENT);
    assert_null(rt);
    assert_null(md);
    tpol_cleanup(&t);
}

static void test_model_exact_first_wins(void **state)
{
    struct tpol t;
    struct dp_features f;
    (void)state;

    tpol_init(&t, 4);
    set_model(add_route(&t, "r-a"), "a");
    set_model(add_route(&t, "r-b"), "b");
    set_model(add_route(&t, "r-b2"), "b");
    add_route(&t, "catch-all");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    f.model = "b";
    assert_match(&t, &f, "r-b");
    f.model = "a";
    assert_match(&t, &f, "r-a");
    f.model = "B"; /* exact names are case-sensitive */
    assert_match(&t, &f, "catch-all");
    f.model = NULL;
    assert_match(&t, &f, "catch-all");
    tpol_cleanup(&t);
}

static void test_glob(void **state)
{
    struct tpol t;
    struct dp_features f;
    (void)state;

    tpol_init(&t, 3);
    set_model(add_route(&t, "gpt4"), "gpt-4*");
    set_model(add_route(&t, "claude"), "claude-?-[hs]*");
    set_model(add_route(&t, "vendor"), "*/llama*");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    f.model = "gpt-4o-mini";
    assert_match(&t, &f, "gpt4");
    f.model = "gpt-3.5-turbo";
    assert_match(&t, &f, NULL);
    f.model = "claude-3-haiku";
    assert_match(&t, &f, "claude");
    f.model = "claude-3-opus";
    assert_match(&t, &f, NULL);
    f.model = "meta/llama-3-70b"; /* '*' crosses '/': no FNM_PATHNAME */
    assert_match(&t, &f, "vendor");
    f.model = NULL;
    assert_match(&t, &f, NULL);
    tpol_cleanup(&t);
}

/* A route from a compiler that only filled the exact-name field still matches by it. */
static void test_legacy_match_model(void **state)
{
    struct tpol t;
    struct dp_features f;
    (void)state;

    tpol_init(&t, 1);
    add_route(&t, "old")->match_model = sy_xstrdup("auto");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    f.model = "auto";
    assert_match(&t, &f, "old");
    f.model = "other";
    assert_match(&t, &f, NULL);
    free(t.routes[0].match_model);
    t.routes[0].match_model = NULL;
    tpol_cleanup(&t);
}

static void test_tags(void **state)
{
    struct tpol t;
    struct dp_features f;
    struct sy_route *rt;
    (void)state;

    tpol_init(&t, 2);
    rt = add_route(&t, "batch-eu");
    add_tag(rt, "batch");
    add_tag(rt, "eu");
    add_tag(add_route(&t, "batch"), "batch");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    assert_match(&t, &f, NULL);
    add_ftag(&f, "EU");
    assert_match(&t, &f, NULL);
    add_ftag(&f, "batch");
    assert_match(&t, &f, "batch-eu");
    f.n_tags = 0;
    add_ftag(&f, "batch");
    assert_match(&t, &f, "batch");
    tpol_cleanup(&t);
}

static void test_ranges(void **state)
{
    struct tpol t;
    struct dp_features f;
    struct sy_route *rt;
    (void)state;

    tpol_init(&t, 3);
    rt = add_route(&t, "small");
    rt->match.max_prompt_tokens = 1000;
    rt->match.max_messages = 2;
    rt = add_route(&t, "mid");
    rt->match.min_prompt_tokens = 1001;
    rt->match.max_prompt_tokens = 50000;
    rt = add_route(&t, "long-chat");
    rt->match.min_messages = 10;
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);

    f.prompt_tokens = 1000; /* bounds are inclusive */
    f.n_messages = 2;
    assert_match(&t, &f, "small");
    f.n_messages = 3;
    assert_match(&t, &f, NULL);
    f.prompt_tokens = 1001;
    assert_match(&t, &f, "mid");
    f.prompt_tokens = 50000;
    assert_match(&t, &f, "mid");
    f.prompt_tokens = 50001;
    assert_match(&t, &f, NULL);
    f.n_messages = 10;
    assert_match(&t, &f, "long-chat");
    f.prompt_tokens = 0;
    f.n_messages = 1;
    assert_match(&t, &f, "small");
    tpol_cleanup(&t);
}

static void test_booleans(void **state)
{
    (void)state;

    for (int trait = 0; trait < 4; trait++) {
        struct tpol t;
        struct dp_features f;
        enum sy_tristate *yes, *no;
        bool *fv;

        tpol_init(&t, 2);
        yes = trait == 0   ? &add_route(&t, "yes")->match.has_tools
              : trait == 1 ? &add_route(&t, "yes")->match.has_images
              : trait == 2 ? &add_route(&t, "yes")->match.json_mode
                           : &add_route(&t, "yes")->match.stream;
        no = trait == 0   ? &add_route(&t, "no")->match.has_tools
             : trait == 1 ? &add_route(&t, "no")->match.has_images
             : trait == 2 ? &add_route(&t, "no")->match.json_mode
                          : &add_route(&t, "no")->match.stream;
        *yes = SY_TRI_YES;
        *no = SY_TRI_NO;
        tpol_finish(&t, SIZE_MAX);
        feat_init(&f);
        fv = trait == 0   ? &f.has_tools
             : trait == 1 ? &f.has_images
             : trait == 2 ? &f.json_mode
                          : &f.stream;
        *fv = true;
        assert_match(&t, &f, "yes");
        *fv = false;
        assert_match(&t, &f, "no");
        /* The other traits are "any" in both routes. */
        f.has_tools = f.has_images = f.json_mode = f.stream = true;
        *fv = false;
        assert_match(&t, &f, "no");
        tpol_cleanup(&t);
    }
}

static void test_keywords_fields(void **state)
{
    struct tpol t;
    struct dp_features f;
    (void)state;

    tpol_init(&t, 3);
    add_kw(add_route(&t, "user-code"), LU, "refactor,stack trace");
    add_kw(add_route(&t, "sys-legal"), SYS, "contract");
    add_kw(add_route(&t, "any-sql"), ANY, "select ");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);

    set_text(&f.last_user, "Please REFACTOR this function");
    assert_match(&t, &f, "user-code");
    set_text(&f.last_user, "here is a Stack Trace:");
    assert_match(&t, &f, "user-code");
    set_text(&f.last_user, "stack\ntrace");
    assert_match(&t, &f, NULL);
    /* A last_user rule does not read the system prompt. */
    set_text(&f.last_user, "hello");
    set_text(&f.system, "You refactor code. Review this contract.");
    assert_match(&t, &f, "sys-legal");
    set_text(&f.system, "");
    set_text(&f.last_user, "review this contract");
    assert_match(&t, &f, NULL);
    set_text(&f.system, "Answer with SELECT statements");
    assert_match(&t, &f, "any-sql");
    set_text(&f.system, "");
    set_text(&f.last_user, "select * from t");
    assert_match(&t, &f, "any-sql");
    tpol_cleanup(&t);
}

/* Several rules: all must hold; within a rule, any word. */
static void test_keywords_and_or(void **state)
{
    struct tpol t;
    struct dp_features f;
    struct sy_route *rt;
    (void)state;

    tpol_init(&t, 1);
    rt = add_route(&t, "sql-perf");
    add_kw(rt, LU, "sql,query");
    add_kw(rt, LU, "slow,performance,latency");
    add_kw(rt, SYS, "dba");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    set_text(&f.system, "You are a DBA.");
    set_text(&f.last_user, "my query is slow");
    assert_match(&t, &f, "sql-perf");
    set_text(&f.last_user, "SQL latency");
    assert_match(&t, &f, "sql-perf");
    set_text(&f.last_user, "my query is fine");
    assert_match(&t, &f, NULL);
    set_text(&f.last_user, "slow performance");
    assert_match(&t, &f, NULL);
    set_text(&f.last_user, "my query is slow");
    set_text(&f.system, "You are a poet.");
    assert_match(&t, &f, NULL);
    tpol_cleanup(&t);
}

/* The automaton runs at most once per field, only when a candidate needs it. */
static void test_scan_laziness(void **state)
{
    struct tpol t;
    struct dp_features f;
    struct sy_route *rt;
    char name[32];
    (void)state;

    tpol_init(&t, 104);
    rt = add_route(&t, "kw-but-tools");
    rt->match.has_tools = SY_TRI_YES; /* not a candidate without tools: bitset filter */
    add_kw(rt, ANY, "x");
    rt = add_route(&t, "kw-but-long");
    rt->match.min_messages = 5; /* fails its cheap check first */
    add_kw(rt, ANY, "x");
    rt = add_route(&t, "plain");
    rt->match.max_messages = 1;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "kw%d", i);
        rt = add_route(&t, name);
        snprintf(name, sizeof(name), "word%03d", i);
        add_kw(rt, LU, name);
    }
    add_kw(add_route(&t, "sys"), SYS, "word050");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    set_text(&f.last_user, "x word050 x");
    set_text(&f.system, "word050");

    f.n_messages = 1;
    assert_match(&t, &f, "plain");
    assert_int_equal(t.s.n_scans, 0);

    f.n_messages = 2;
    assert_match(&t, &f, "kw50");
    assert_int_equal(t.s.n_scans, 1); /* last_user only, once for 100 routes */

    set_text(&f.last_user, "nothing here");
    assert_match(&t, &f, "sys");
    assert_int_equal(t.s.n_scans, 3); /* last_user, then system when "sys" was reached */
    tpol_cleanup(&t);
}

/* ---- regex ------------------------------------------------------------------------------- */

static void test_regex_literal(void **state)
{
    static const char *const cases[][2] = {
        {"invoice #[0-9]+", "invoice #"},
        {"abc|defgh", ""},
        {"foo(bar)?bazz", "bazz"},
        {"colou?r", "colo"},
        {"ab+cde", "cde"},
        {"abcd+e", "abcd"},
        {"x{0,2}yzw", "yzw"},
        {"wxyz{2}", "wxyz"},
        {"abc{,3}d", ""},
        {"abcd{,3}e", "abc"},
        {"a\\.b\\.c", "a.b.c"},
        {"\\bword\\b", "word"},
        {"[abc]def", "def"},
        {"[]x]yyy", "yyy"},
        {"[[:digit:]]+ items", " items"},
        {"^hello$", "hello"},
        {"h.llo", "llo"},
        {"(a|b)", ""},
        {"(unclosed", ""},
        {"a{", ""},
        {"ab", ""},
        {"caf\xc3\xa9 au lait", " au lait"},
        {"\\(paren\\)", "(paren)"},
        {"", ""},
    };
    char buf[64];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = dp_match_regex_literal(cases[i][0], buf);
        if (n != strlen(cases[i][1]) || strcmp(buf, cases[i][1]) != 0)
            fail_msg("literal of /%s/: got \"%s\" (%zu), want \"%s\"", cases[i][0], buf, n,
                     cases[i][1]);
    }
}

static void test_regex_prefilter(void **state)
{
    struct tpol t;
    struct dp_features f;
    struct dp_matcher_stats st;
    (void)state;

    tpol_init(&t, 3);
    add_re(add_route(&t, "invoice"), LU, "invoice #[0-9]+", false);
    add_re(add_route(&t, "order-any"), ANY, "order no\\. [0-9]+", false);
    add_re(add_route(&t, "yesno"), LU, "^(yes|no)$", false);
    tpol_finish(&t, SIZE_MAX);
    dp_matcher_get_stats(t.m, &st);
    assert_int_equal(st.n_regex, 3);
    assert_int_equal(st.n_regex_prefiltered, 2);
    feat_init(&f);

    /* Literals absent: both prefiltered regexes are dropped with the keyword rules, without
     * regexec; yesno has no prefilter and runs. */
    set_text(&f.last_user, "no");
    assert_match(&t, &f, "yesno");
    assert_int_equal(t.s.n_regexec, 1);
    assert_int_equal(t.s.n_prefilter_skips, 0);

    /* Literal present (in another case): regexec runs and matches. */
    set_text(&f.last_user, "see INVOICE #42 please");
    assert_match(&t, &f, "invoice");
    assert_int_equal(t.s.n_regexec, 2);

    /* Literal present but the regex fails: regexec runs, then yesno's. */
    set_text(&f.last_user, "invoice #none");
    assert_match(&t, &f, NULL);
    assert_int_equal(t.s.n_regexec, 4);

    /* An "any" regex whose literal is only in the system prompt: the last_user field is
     * skipped without regexec, the system field runs. */
    set_text(&f.last_user, "hello");
    set_text(&f.system, "Order No. 12 is late");
    assert_match(&t, &f, "order-any");
    assert_int_equal(t.s.n_regexec, 5);
    assert_int_equal(t.s.n_prefilter_skips, 1);
    tpol_cleanup(&t);
}

/* The same regex in several routes runs once per request and field. */
static void test_regex_cache(void **state)
{
    struct tpol t;
    struct dp_features f;
    struct dp_matcher_stats st;
    struct sy_route *rt;
    (void)state;

    tpol_init(&t, 3);
    rt = add_route(&t, "a");
    add_re(rt, LU, "[0-9]{3}-[0-9]{2}-[0-9]{4}", false);
    add_re(rt, LU, "^zz", false); /* no literal: runs, and fails */
    add_re(add_route(&t, "b"), LU, "[0-9]{3}-[0-9]{2}-[0-9]{4}", false);
    add_re(add_route(&t, "c"), LU, "[0-9]{3}-[0-9]{2}-[0-9]{4}", true); /* another key */
    tpol_finish(&t, SIZE_MAX);
    dp_matcher_get_stats(t.m, &st);
    assert_int_equal(st.n_regex, 4);
    assert_int_equal(st.n_regex_distinct, 3);
    feat_init(&f);
    set_text(&f.last_user, "ssn 123-45-6789");
    assert_match(&t, &f, "b"); /* a ran both of its regexes; b reused the first result */
    assert_int_equal(t.s.n_regexec, 2);
    tpol_cleanup(&t);
}

static void test_regex_fields_and_case(void **state)
{
    struct tpol t;
    struct dp_features f;
    (void)state;

    tpol_init(&t, 3);
    add_re(add_route(&t, "sys-json"), SYS, "respond (only )?in json", false);
    add_re(add_route(&t, "any-ticket"), ANY, "TICKET-[0-9]+", true);
    add_re(add_route(&t, "user-url"), LU, "https?://[a-z.]+/", false);
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);

    set_text(&f.system, "Always RESPOND ONLY IN JSON.");
    assert_match(&t, &f, "sys-json");
    set_text(&f.system, "");
    set_text(&f.last_user, "respond in json");
    assert_match(&t, &f, NULL);
    set_text(&f.last_user, "see ticket-12");
    assert_match(&t, &f, NULL); /* case-sensitive: the literal occurs, regexec says no */
    set_text(&f.system, "about TICKET-12");
    assert_match(&t, &f, "any-ticket");
    set_text(&f.system, "");
    set_text(&f.last_user, "open HTTP://example.com/x");
    assert_match(&t, &f, "user-url");
    tpol_cleanup(&t);
}

/* A text that is cut (not NUL-terminated at its length) is read only up to its length. */
static void test_regex_length_bound(void **state)
{
    struct tpol t;
    struct dp_features f;
    const char text[] = "abc secret";
    (void)state;

    tpol_init(&t, 2);
    add_re(add_route(&t, "secret"), LU, "sec(ret)", false);
    add_kw(add_route(&t, "kw-secret"), LU, "secret");
    tpol_finish(&t, SIZE_MAX);
    feat_init(&f);
    f.last_user = (struct dp_text){text, 7}; /* "abc sec" */
    assert_match(&t, &f, NULL);
    f.last_user.len = sizeof(text) - 1;
    assert_match(&t, &f, "secret");
    tpol_cleanup(&t);
}

/* ---- resolution -------------------------------------------------------------------------- */

static void test_resolve(void **state)
{
    struct tpol t;
    struct dp_features f;
    const struct sy_route *rt;
    const struct sy_model *md;
    (void)state;

    tpol_init(&t, 3);
    set_model(add_route(&t, "auto"), "auto");
    add_kw(add_route(&t, "m1-code"), LU, "code");
    add_route(&t, "fallback")->match.max_messages = 0; /* never matches by itself */
    tpol_finish(&t, 2);
    feat_init(&f);
    f.n_messages = 1;

    f.model = "auto";
    assert_int_equal(dp_resolve(t.m, t.pol, &f, &t.s, &rt, &md), 0);
    assert_string_equal(rt->name, "auto");
    assert_null(md);

    /* A matching route wins over a model of the requested name. */
    f.model = "m1";
    set_text(&f.last_user, "write code");
    assert_int_equal(dp_resolve(t.m, t.pol, &f, &t.s, &rt, &md), 0);
    assert_string_equal(rt->name, "m1-code");

    set_text(&f.last_user, "write a poem");
    assert_int_equal(dp_resolve(t.m, t.pol, &f, &t.s, &rt, &md), 0);
    assert_null(rt);
    assert_string_equal(md->name, "m1");

    f.model = "unknown";
    assert_int_equal(dp_resolve(t.m, t.pol, &f, &t.s, &rt, &md), 0);
    assert_string_equal(rt->name, "fallback");
    assert_null(md);

    t.pol->default_route = SIZE_MAX;
    assert_int_equal(dp_resolve(t.m, t.pol, &f, &t.s, &rt, &md), -ENOENT);
    assert_null(rt);
    assert_null(md);
    f.model = NULL;
    assert_int_equal(dp_resolve(t.m, t.pol, &f, &t.s, &rt, &md), -ENOENT);
    tpol_cleanup(&t);
}

static void test_automaton_too_large(void **state)
{
    struct tpol t;
    size_t n = 200000;
    char *word = malloc(n + 1), *err = NULL;
    (void)state;

    /* 200k states x ~220 byte classes > DP_AHO_MAX_CELLS. */
    for (size_t i = 0; i < n; i++)
        word[i] = (char)(0x21 + (i % 220));
    word[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (word[i] == ',' || (word[i] >= 'A' && word[i] <= 'Z'))
            word[i] = '~';
    tpol_init(&t, 1);
    add_kw(add_route(&t, "huge"), LU, word);
    t.pol->routes = t.routes;
    t.pol->n_routes = t.n;
    t.pol->default_route = SIZE_MAX;
    assert_null(dp_matcher_new(t.pol, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "too large"));
    free(err);
    free(word);
    tpol_cleanup(&t);
}

/* ---- the automaton itself ---------------------------------------------------------------- */

static void test_aho(void **state)
{
    const struct dp_aho_pattern pats[] = {
        {"he", 2, 0},   {"she", 3, 1},  {"his", 3, 2},
        {"hers", 4, 3}, {"HERS", 4, 4}, {"\xc3\xa9t\xc3\xa9", 5, 5},
        {"a\0b", 3, 6},
    };
    struct dp_aho *a;
    char *err = NULL, text[4096];
    uint64_t bits[1];
    struct dp_aho_stats st;
    (void)state;

    a = dp_aho_new(pats, sizeof(pats) / sizeof(pats[0]), &err);
    assert_non_null(a);
    dp_aho_get_stats(a, &st);
    assert_int_equal(st.n_patterns, 7);
    assert_int_equal(st.max_len, 5);

    bits[0] = 0;
    dp_aho_scan(a, "uSHErs", 6, bits); /* she, he, hers and HERS (folded) */
    assert_int_equal(bits[0], 0x1b);
    bits[0] = 0;
    dp_aho_scan(a, "this", 4, bits);
    assert_int_equal(bits[0], 0x4);
    bits[0] = 0;
    dp_aho_scan(a, "\xc3\xa9t\xc3\xa9 x", 7, bits);
    assert_int_equal(bits[0], 0x20);
    bits[0] = 0;
    dp_aho_scan(a, "\xc3\x89t\xc3\xa9", 5, bits); /* non-ASCII is not folded */
    assert_int_equal(bits[0], 0);
    bits[0] = 0;
    dp_aho_scan(a, "xa\0by", 5, bits);
    assert_int_equal(bits[0], 0x40);

    /* Long texts are scanned in four pieces: put "hers" across each cut and at both ends. */
    memset(text, '.', sizeof(text));
    for (int cut = 1; cut < 4; cut++)
        memcpy(text + cut * 1024 - 2, "hers", 4);
    bits[0] = 0;
    dp_aho_scan(a, text, sizeof(text), bits);
    assert_int_equal(bits[0], 0x19); /* he, hers, HERS */
    for (int off = 0; off < 4; off++) {
        memset(text, '.', sizeof(text));
        memcpy(text + (off == 0 ? 0 : sizeof(text) - 3), "his", 3);
        bits[0] = 0;
        dp_aho_scan(a, text, sizeof(text) - (size_t)(off % 2), bits);
        assert_int_equal(bits[0], off % 2 ? 0 : 0x4);
    }
    dp_aho_free(a);

    /* An empty pattern is refused; an empty set scans to nothing. */
    a = dp_aho_new((const struct dp_aho_pattern[]){{"", 0, 0}}, 1, &err);
    assert_null(a);
    assert_non_null(err);
    free(err);
    a = dp_aho_new(NULL, 0, &err);
    assert_non_null(a);
    bits[0] = 0;
    dp_aho_scan(a, "anything", 8, bits);
    assert_int_equal(bits[0], 0);
    dp_aho_free(a);
}

/* ---- randomized comparison with a naive evaluator ----------------------------------------- */

static const char *const vocab[] = {
    "alpha", "alp",   "pha",  "beta",    "bet",    "gamma", "amma", "delta", "epsilon", "zeta",
    "eta",   "theta", "iota", "kappa",   "lambda", "mu",    "nu",   "xi",    "omicron", "pi",
    "rho",   "sigma", "tau",  "upsilon", "phi",    "chi",   "psi",  "omega",
};
static const char *const patterns[] = {
    "alpha [a-z]+a", "(beta|gamma) delta", "^omega", "sigma$",
    "t[ah]u",        "kappa lambda",       "mu? nu", "rho.{0,6}tau",
};
static const char *const models[] = {"a", "b", "c"};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t rnd(uint64_t *s, size_t n)
{
    return (size_t)(rng_next(s) % n);
}

static bool ci_contains(const char *text, size_t len, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++) {
        size_t k = 0;
        while (k < n) {
            char c = text[i + k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (c != word[k])
                break;
            k++;
        }
        if (k == n)
            return true;
    }
    return false;
}

static bool tri_ok(enum sy_tristate t, bool v)
{
    return t == SY_TRI_ANY || (t == SY_TRI_YES) == v;
}

static bool naive_route(const struct sy_route *rt, const struct dp_features *f)
{
    const struct sy_match *mt = &rt->match;
    const struct dp_text *texts[2] = {&f->last_user, &f->system};

    if (mt->model) {
        if (!f->model)
            return false;
        if (mt->model_glob ? fnmatch(mt->model, f->model, 0) != 0 : strcmp(mt->model, f->model))
            return false;
    }
    if (!tri_ok(mt->has_tools, f->has_tools) || !tri_ok(mt->has_images, f->has_images) ||
        !tri_ok(mt->json_mode, f->json_mode) || !tri_ok(mt->stream, f->stream))
        return false;
    if ((mt->min_prompt_tokens >= 0 && f->prompt_tokens < mt->min_prompt_tokens) ||
        (mt->max_prompt_tokens >= 0 && f->prompt_tokens > mt->max_prompt_tokens) ||
        (mt->min_messages >= 0 && f->n_messages < mt->min_messages) ||
        (mt->max_messages >= 0 && f->n_messages > mt->max_messages))
        return false;
    for (size_t i = 0; i < mt->n_tags; i++)
        if (!dp_features_has_tag(f, mt->tags[i]))
            return false;
    for (size_t i = 0; i < mt->n_keywords; i++) {
        bool any = false;
        for (int fl = 0; fl < 2; fl++)
            for (size_t j = 0; j < mt->keywords[i].n_words; j++)
                if ((mt->keywords[i].in & (1u << fl)) &&
                    ci_contains(texts[fl]->p, texts[fl]->len, mt->keywords[i].words[j]))
                    any = true;
        if (!any)
            return false;
    }
    for (size_t i = 0; i < mt->n_regex; i++) {
        bool any = false;
        for (int fl = 0; fl < 2; fl++)
            if ((mt->regex[i].in & (1u << fl)) &&
                regexec(&mt->regex[i].re, texts[fl]->p, 0, NULL, 0) == 0)
                any = true;
        if (!any)
            return false;
    }
    return true;
}

/* Random text of about <len> bytes from the vocabulary, in random case. */
static void random_text(uint64_t *s, char *buf, size_t len)
{
    size_t n = 0;
    while (n + 12 < len) {
        const char *w = vocab[rnd(s, SY_ARRAY_LEN(vocab))];
        bool upper = rnd(s, 4) == 0;
        for (const char *c = w; *c; c++)
            buf[n++] = upper ? (char)(*c - 32) : *c;
        buf[n++] = " \n,"[rnd(s, 3)];
    }
    buf[n] = '\0';
}

static void test_random_vs_naive(void **state)
{
    const size_t n_routes = 150;
    const unsigned ins[] = {LU, SYS, ANY};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    struct tpol t;
    static char lu[3000], sys[600];
    char words[128];
    bool won[150] = {false};
    int n_won = 0, n_none = 0;
    (void)state;

    tpol_init(&t, n_routes);
    for (size_t r = 0; r < n_routes; r++) {
        char name[16];
        struct sy_route *rt;
        snprintf(name, sizeof(name), "r%zu", r);
        rt = add_route(&t, name);
        if (rnd(&seed, 4) == 0)
            set_model(rt, rnd(&seed, 3) == 0 ? "[ab]" : models[rnd(&seed, 3)]);
        if (rnd(&seed, 5) == 0)
            rt->match.stream = (enum sy_tristate)(1 + rnd(&seed, 2));
        if (rnd(&seed, 5) == 0)
            rt->match.has_tools = (enum sy_tristate)(1 + rnd(&seed, 2));
        if (rnd(&seed, 6) == 0)
            rt->match.max_prompt_tokens = (int64_t)rnd(&seed, 800);
        if (rnd(&seed, 8) == 0)
            add_tag(rt, rnd(&seed, 2) ? "x" : "y");
        for (size_t k = 1 + rnd(&seed, 3); k > 0; k--) {
            size_t nw = 1 + rnd(&seed, 2), n = 0;
            for (size_t j = 0; j < nw; j++)
                n += (size_t)snprintf(words + n, sizeof(words) - n, "%s%s", j ? "," : "",
                                      vocab[rnd(&seed, SY_ARRAY_LEN(vocab))]);
            add_kw(rt, ins[rnd(&seed, 3)], words);
        }
        if (rnd(&seed, 4) == 0)
            add_re(rt, ins[rnd(&seed, 3)], patterns[rnd(&seed, SY_ARRAY_LEN(patterns))],
                   rnd(&seed, 3) == 0);
    }
    tpol_finish(&t, SIZE_MAX);

    for (int iter = 0; iter < 3000; iter++) {
        struct dp_features f;
        const char *want = NULL, *got;
        feat_init(&f);
        f.model = rnd(&seed, 3) ? models[rnd(&seed, 3)] : NULL;
        f.stream = rnd(&seed, 2);
        f.has_tools = rnd(&seed, 2);
        f.prompt_tokens = (int64_t)rnd(&seed, 1000);
        f.n_messages = 1 + (int64_t)rnd(&seed, 5);
        if (rnd(&seed, 3) == 0)
            add_ftag(&f, rnd(&seed, 2) ? "X" : "y");
        /* Mostly short texts (so that rules fail often), some long ones (cut in four). */
        random_text(&seed, lu, 1 + rnd(&seed, rnd(&seed, 5) ? 150 : sizeof(lu) - 1));
        random_text(&seed, sys, 1 + rnd(&seed, rnd(&seed, 5) ? 100 : sizeof(sys) - 1));
        set_text(&f.last_user, lu);
        set_text(&f.system, sys);
        for (size_t r = 0; r < t.n && !want; r++)
            if (naive_route(&t.routes[r], &f))
                want = t.routes[r].name;
        got = match(&t, &f);
        if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0))
            fail_msg("iteration %d: naive %s, matcher %s", iter, want ? want : "-",
                     got ? got : "-");
        if (!got) {
            n_none++;
        } else if (!won[strtol(got + 1, NULL, 10)]) {
            won[strtol(got + 1, NULL, 10)] = true;
            n_won++;
        }
    }
    /* The comparison means something only if many different routes won. */
    print_message("%d distinct routes won, %d requests matched none\n", n_won, n_none);
    assert_true(n_won >= 30);
    assert_true(n_none >= 10);
    tpol_cleanup(&t);
}

/* ---- concurrent readers ------------------------------------------------------------------ */

struct reader {
    struct tpol *t;
    int mismatches;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    struct dp_match_scratch s;
    static const char *const texts[] = {"please refactor", "invoice #7", "nothing", "INVOICE #x"};
    static const char *const want[] = {"code", "invoice", NULL, NULL};

    dp_match_scratch_init(&s);
    for (int i = 0; i < 20000; i++) {
        struct dp_features f;
        const struct sy_route *rt;
        const struct sy_model *md;
        int k = i % 4;
        feat_init(&f);
        set_text(&f.last_user, texts[k]);
        if (dp_resolve(rd->t->m, rd->t->pol, &f, &s, &rt, &md) < 0 && want[k])
            rd->mismatches++;
        else if ((rt == NULL) != (want[k] == NULL) || (rt && strcmp(rt->name, want[k]) != 0))
            rd->mismatches++;
    }
    dp_match_scratch_cleanup(&s);
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    struct tpol t;
    pthread_t th[4];
    struct reader rd[4];
    (void)state;

    tpol_init(&t, 2);
    add_kw(add_route(&t, "code"), LU, "refactor");
    add_re(add_route(&t, "invoice"), LU, "invoice #[0-9]", false);
    tpol_finish(&t, SIZE_MAX);
    for (int i = 0; i < 4; i++) {
        rd[i] = (struct reader){&t, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rd[i].mismatches, 0);
    }
    tpol_cleanup(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_policy),
        cmocka_unit_test(test_model_exact_first_wins),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_legacy_match_model),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_keywords_fields),
        cmocka_unit_test(test_keywords_and_or),
        cmocka_unit_test(test_scan_laziness),
        cmocka_unit_test(test_regex_literal),
        cmocka_unit_test(test_regex_prefilter),
        cmocka_unit_test(test_regex_cache),
        cmocka_unit_test(test_regex_fields_and_case),
        cmocka_unit_test(test_regex_length_bound),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_automaton_too_large),
        cmocka_unit_test(test_aho),
        cmocka_unit_test(test_random_vs_naive),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
