/* tests/unit/common/test_pricing.c - the pricing catalogue (sy_pricing): parsing YAML and
 * JSON, every error with its exact path, entry lookup (a provider's entry over a general one),
 * and applying a catalogue to a policy (what changes, what does not, idempotence). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_policy.h"
#include "sy_pricing.h"

static struct sy_pricing *parse_ok(const char *src)
{
    char *err = NULL;
    struct sy_pricing *cat = sy_pricing_parse(src, strlen(src), &err);

    if (!cat)
        fail_msg("unexpected error: %s", err);
    assert_null(err);
    return cat;
}

static char *parse_err(const char *src)
{
    char *err = NULL;
    struct sy_pricing *cat = sy_pricing_parse(src, strlen(src), &err);

    if (cat)
        fail_msg("catalogue parsed but should not have:\n%s", src);
    assert_non_null(err);
    return err;
}

/* Asserts that <err> is exactly the lines of <want>, in any order. */
static void assert_lines(const char *err, const char *const *want)
{
    size_t n_err = 1, n_want = 0;

    for (const char *p = err; *p; p++)
        n_err += *p == '\n';
    for (; want[n_want]; n_want++) {
        const char *hit = strstr(err, want[n_want]);
        size_t len = strlen(want[n_want]);

        if (!hit || (hit != err && hit[-1] != '\n') || (hit[len] && hit[len] != '\n'))
            fail_msg("error message\n%s\nhas no line\n%s", err, want[n_want]);
    }
    if (n_err != n_want)
        fail_msg("error message\n%s\nhas %zu lines, expected %zu", err, n_err, n_want);
}

#define GOOD_YAML                                                                                  \
    "# prices as of today\n"                                                                       \
    "models:\n"                                                                                    \
    "  - model: gpt-4o-mini\n"                                                                     \
    "    provider: openai\n"                                                                       \
    "    input_per_mtok: 0.15\n"                                                                   \
    "    output_per_mtok: 0.60\n"                                                                  \
    "    cached_input_per_mtok: 0.075\n"                                                           \
    "    windows: [{start: \"22:00\", end: \"06:00\", input_per_mtok: 0.10, output_per_mtok: "     \
    "0.40}]\n"                                                                                     \
    "  - model: gpt-4o-mini\n"                                                                     \
    "    input_per_mtok: 0.2\n"                                                                    \
    "    output_per_mtok: 0.8\n"                                                                   \
    "  - {model: llama, input_per_mtok: 0, output_per_mtok: 0}\n"
static const char good_yaml[] = GOOD_YAML;

static void test_parse_yaml(void **state)
{
    struct sy_pricing *cat = parse_ok(good_yaml);
    const struct sy_pricing_entry *e;

    (void)state;
    assert_int_equal(cat->n_entries, 3);
    assert_int_equal(strlen(cat->sha256), 64);
    e = &cat->entries[0];
    assert_string_equal(e->model, "gpt-4o-mini");
    assert_string_equal(e->provider, "openai");
    assert_true(e->prices.input_per_mtok == 0.15);
    assert_true(e->prices.output_per_mtok == 0.60);
    assert_true(e->prices.cached_input_per_mtok == 0.075);
    assert_int_equal(e->prices.n_windows, 1);
    assert_int_equal(e->prices.windows[0].start_min, 22 * 60);
    assert_int_equal(e->prices.windows[0].end_min, 6 * 60);
    assert_true(e->prices.windows[0].input_per_mtok == 0.10);
    assert_true(e->prices.windows[0].output_per_mtok == 0.40);
    assert_true(e->prices.windows[0].cached_input_per_mtok == 0.075);
    assert_null(cat->entries[1].provider);
    assert_true(cat->entries[2].prices.input_per_mtok == 0);

    /* Lookup: a provider's entry wins over the general one, which serves other providers. */
    assert_ptr_equal(sy_pricing_find(cat, "gpt-4o-mini", "openai"), &cat->entries[0]);
    assert_ptr_equal(sy_pricing_find(cat, "gpt-4o-mini", "azure"), &cat->entries[1]);
    assert_ptr_equal(sy_pricing_find(cat, "llama", "local"), &cat->entries[2]);
    assert_null(sy_pricing_find(cat, "gpt-4o", "openai"));
    assert_null(sy_pricing_find(NULL, "gpt-4o", "openai"));
    sy_pricing_free(cat);
}

static void test_parse_json_same_as_yaml(void **state)
{
    static const char json[] =
        "{\"models\":[{\"model\":\"gpt-4o-mini\",\"provider\":\"openai\",\"input_per_mtok\":0.15,"
        "\"output_per_mtok\":0.6,\"cached_input_per_mtok\":0.075,\"windows\":[{\"start\":\"22:00\","
        "\"end\":\"06:00\",\"input_per_mtok\":0.1,\"output_per_mtok\":0.4}]},"
        "{\"model\":\"gpt-4o-mini\",\"input_per_mtok\":0.2,\"output_per_mtok\":0.8},"
        "{\"model\":\"llama\",\"input_per_mtok\":0,\"output_per_mtok\":0}]}";
    struct sy_pricing *a = parse_ok(good_yaml), *b = parse_ok(json);
    cJSON *ja = sy_pricing_entries_json(a), *jb = sy_pricing_entries_json(b);
    char *ta = cJSON_PrintUnformatted(ja), *tb = cJSON_PrintUnformatted(jb);

    (void)state;
    assert_string_equal(ta, tb);
    /* Canonical: the provider only when set, windows resolved. */
    assert_string_equal(
        ta, "[{\"model\":\"gpt-4o-mini\",\"provider\":\"openai\",\"input_per_mtok\":0.15,"
            "\"output_per_mtok\":0.6,\"cached_input_per_mtok\":0.075,\"windows\":[{\"start\":"
            "\"22:00\",\"end\":\"06:00\",\"input_per_mtok\":0.1,\"output_per_mtok\":0.4,"
            "\"cached_input_per_mtok\":0.075}]},{\"model\":\"gpt-4o-mini\",\"input_per_mtok\":0.2,"
            "\"output_per_mtok\":0.8,\"cached_input_per_mtok\":0},{\"model\":\"llama\","
            "\"input_per_mtok\":0,\"output_per_mtok\":0,\"cached_input_per_mtok\":0}]");
    /* The digest is of the source bytes. */
    assert_string_not_equal(a->sha256, b->sha256);
    free(ta);
    free(tb);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    sy_pricing_free(a);
    sy_pricing_free(b);
}

static void test_sha256_of_source(void **state)
{
    struct sy_pricing *cat = parse_ok("models: []\n");

    (void)state;
    assert_int_equal(cat->n_entries, 0);
    /* printf 'models: []\n' | sha256sum */
    assert_string_equal(cat->sha256,
                        "fd2b6ed0d059759b57090a8da0051a9a73a1252d761696f8387d41ac5bbdda79");
    sy_pricing_free(cat);
}

static void test_entry_errors(void **state)
{
    static const char *const want[] = {
        "models[0].model: is required",
        "models[0].output_per_mtok: is required",
        "models[1].model: expected a string, got a number",
        "models[1].input_per_mtok: must be between 0 and 1000000, got -1",
        "models[2].model: must not be empty",
        "models[2].provider: expected a string, got a list",
        "models[2]: unknown key \"inputs_per_mtok\" (expected one of: model, provider, "
        "input_per_mtok, output_per_mtok, cached_input_per_mtok, windows)",
        "models[2].input_per_mtok: is required",
        "models[3]: expected a mapping, got a string",
        "models[4].windows[0].end: expected a time of day \"HH:MM\" (UTC, 00:00 to 23:59, or "
        "24:00), got \"6am\"",
        "models[4].windows[2]: 23:00-01:00 overlaps windows[1] (22:00-02:00)",
        "models[4].output_per_mtok: expected a number, got a string",
        "models[5].windows[0]: start and end are both 10:00: a window must be shorter than a day "
        "(for all-day prices set the base prices)",
        "models[7]: duplicate entry for model \"a\" (also models[6])",
        "models[9]: duplicate entry for model \"a\" with provider \"p\" (also models[8])",
        NULL,
    };
    char *err = parse_err("models:\n"
                          "  - {input_per_mtok: 1}\n"                                /* 0 */
                          "  - {model: 5, input_per_mtok: -1, output_per_mtok: 1}\n" /* 1 */
                          "  - {model: \"\", provider: [x], inputs_per_mtok: 1, output_per_mtok: "
                          "1}\n"           /* 2 */
                          "  - gpt-4o\n"   /* 3 */
                          "  - model: w\n" /* 4 */
                          "    input_per_mtok: 1\n"
                          "    output_per_mtok: \"2\"\n"
                          "    windows:\n"
                          "      - {start: \"01:00\", end: \"6am\"}\n"
                          "      - {start: \"22:00\", end: \"02:00\"}\n"
                          "      - {start: \"23:00\", end: \"01:00\"}\n"
                          "  - {model: x, input_per_mtok: 1, output_per_mtok: 1,\n" /* 5 */
                          "     windows: [{start: \"10:00\", end: \"10:00\"}]}\n"
                          "  - {model: a, input_per_mtok: 1, output_per_mtok: 1}\n" /* 6 */
                          "  - {model: a, input_per_mtok: 2, output_per_mtok: 2}\n" /* 7 */
                          "  - {model: a, provider: p, input_per_mtok: 1, output_per_mtok: 1}\n"
                          "  - {model: a, provider: p, input_per_mtok: 1, output_per_mtok: 1}\n");

    (void)state;
    assert_lines(err, want);
    free(err);
}

static void test_document_errors(void **state)
{
    static const struct {
        const char *src;
        const char *want;
    } cases[] = {
        {"- a\n- b\n", "catalogue: expected a mapping with a \"models\" list at the top level, got "
                       "a list"},
        {"{}", "models: is required (a list of prices)"},
        {"models: {model: a}\n", "models: expected a list, got a mapping"},
        {"models: []\nprices: []\nversion: 2\n",
         "catalogue: unknown key \"prices\" (expected one of: models)\n"
         "catalogue: unknown key \"version\" (expected one of: models)"},
        {"models: [\n", NULL}, /* a YAML syntax error, with its line and column */
        {"{\"models\": [}", NULL},
        {"models: []\nmodels: []\n", "line 2, column 1: duplicate key \"models\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = parse_err(cases[i].src);

        if (cases[i].want)
            assert_string_equal(err, cases[i].want);
        else if (strncmp(err, "line ", 5) != 0)
            fail_msg("case %zu: %s", i, err);
        free(err);
    }
}

static void test_limits(void **state)
{
    size_t cap = SY_PRICING_MAX_BYTES + 16, n = 0;
    char *src = malloc(cap + 1), *err = NULL;

    (void)state;
    assert_non_null(src);
    memset(src, ' ', cap);
    src[cap] = '\0';
    assert_null(sy_pricing_parse(src, cap, &err));
    assert_string_equal(err, "catalogue: 4194320 bytes is more than the limit of 4194304 bytes");
    free(err);

    /* One entry more than the limit (each "{model: mNNNNN, ...}" is short enough). */
    n = (size_t)snprintf(src, cap, "models:\n");
    for (int i = 0; i <= SY_PRICING_MAX_ENTRIES; i++)
        n += (size_t)snprintf(src + n, cap - n,
                              "- {model: m%d, input_per_mtok: 1, output_per_mtok: 1}\n", i);
    assert_null(sy_pricing_parse(src, n, &err));
    assert_string_equal(err, "models: at most 10000 entries, got 10001");
    free(err);
    free(src);
}

/* Many bad entries: the first 100 errors, then a count. */
static void test_error_flood(void **state)
{
    char *src = malloc(64 * 1024), *err;
    size_t n = 0, lines = 1;

    (void)state;
    n += (size_t)snprintf(src, 64 * 1024, "models:\n");
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(src + n, 64 * 1024 - n, "- {model: m%d}\n", i);
    err = parse_err(src);
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 101);
    assert_non_null(strstr(err, "\n... and 200 more errors"));
    free(err);
    free(src);
}

/* ---- applying a catalogue to a policy ---- */

static const char policy_src[] =
    "providers:\n"
    "  - {name: openai, base_url: \"https://api.openai.com/v1\"}\n"
    "  - {name: azure, kind: azure, base_url: \"https://x.openai.azure.com\"}\n"
    "  - {name: local, base_url: \"http://127.0.0.1:1/v1\"}\n"
    "models:\n"
    "  - {name: mini, provider: openai, upstream_model: gpt-4o-mini,\n"
    "     pricing: {input_per_mtok: 1, output_per_mtok: 1}}\n"
    "  - {name: mini-azure, provider: azure, upstream_model: gpt-4o-mini}\n"
    "  - {name: gpt-4o, provider: openai, pricing: {input_per_mtok: 2.5, output_per_mtok: 10}}\n"
    "  - {name: llama, provider: local}\n"
    "routes:\n"
    "  - {name: auto, match: {model: auto}, targets: [{model: mini}, {model: llama}]}\n";

static struct sy_policy *compile_policy(const char *src)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);

    if (!pol)
        fail_msg("%s", err);
    return pol;
}

static void test_apply(void **state)
{
    struct sy_pricing *cat =
        parse_ok(GOOD_YAML "  - {model: gpt-4o, input_per_mtok: 2.5, output_per_mtok: "
                           "10}\n"
                           "  - {model: unused, input_per_mtok: 9, output_per_mtok: 9}\n");
    struct sy_policy *pol = compile_policy(policy_src), *next, *again;
    char *merged = NULL, *merged2 = NULL, *err = NULL;
    char **names = NULL, **names2 = NULL;
    size_t n = 0, n2 = 0;
    const struct sy_model *m;
    double in, out, cached;

    (void)state;
    assert_int_equal(sy_pricing_apply(cat, pol, &merged, &names, &n), 0);
    assert_non_null(merged);
    /* gpt-4o and llama (free, like its entry) already have the catalogue's prices. */
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "mini");
    assert_string_equal(names[1], "mini-azure");

    next = sy_policy_compile(merged, strlen(merged), &err);
    if (!next)
        fail_msg("%s", err);
    m = sy_policy_find_model(next, "mini"); /* the openai entry, with its window */
    assert_true(m->input_per_mtok == 0.15 && m->output_per_mtok == 0.6);
    assert_int_equal(m->n_windows, 1);
    sy_model_prices_at(m, 1735689600 + 23 * 3600, &in, &out, &cached);
    assert_true(in == 0.10 && out == 0.40 && cached == 0.075);
    m = sy_policy_find_model(next, "mini-azure"); /* the general entry */
    assert_true(m->input_per_mtok == 0.2 && m->output_per_mtok == 0.8);
    assert_int_equal(m->n_windows, 0);
    m = sy_policy_find_model(next, "gpt-4o"); /* matched by name (no upstream_model) */
    assert_true(m->input_per_mtok == 2.5 && m->output_per_mtok == 10);
    /* Everything else is untouched. */
    assert_int_equal(next->n_routes, 1);
    assert_string_equal(next->routes[0].name, "auto");
    assert_int_equal(next->providers[1].kind, SY_PROVIDER_AZURE);

    /* Applying again changes nothing: no new version, no loop. */
    assert_int_equal(sy_pricing_apply(cat, next, &merged2, &names2, &n2), 0);
    assert_null(merged2);
    assert_null(names2);
    assert_int_equal(n2, 0);

    /* The canonical form of the result is a fixed point too. */
    {
        char *c1 = sy_policy_to_json(next), *c2;

        again = sy_policy_compile(c1, strlen(c1), &err);
        assert_non_null(again);
        c2 = sy_policy_to_json(again);
        assert_string_equal(c1, c2);
        free(c1);
        free(c2);
        sy_policy_unref(again);
    }
    free(merged);
    sy_pricing_names_free(names, n);
    sy_policy_unref(next);
    sy_policy_unref(pol);
    sy_pricing_free(cat);
}

static void test_apply_removes_windows(void **state)
{
    struct sy_policy *pol =
        compile_policy("providers: [{name: p, base_url: \"http://h\"}]\n"
                       "models:\n"
                       "  - name: m\n"
                       "    provider: p\n"
                       "    pricing:\n"
                       "      input_per_mtok: 1\n"
                       "      output_per_mtok: 2\n"
                       "      windows: [{start: \"01:00\", end: \"02:00\", input_per_mtok: 0}]\n");
    struct sy_pricing *cat =
        parse_ok("models: [{model: m, input_per_mtok: 1, output_per_mtok: 2}]");
    char *merged = NULL, *err = NULL;
    char **names = NULL;
    size_t n = 0;
    struct sy_policy *next;

    (void)state;
    assert_int_equal(sy_pricing_apply(cat, pol, &merged, &names, &n), 0);
    assert_int_equal(n, 1);
    next = sy_policy_compile(merged, strlen(merged), &err);
    assert_non_null(next);
    assert_int_equal(next->models[0].n_windows, 0);
    sy_policy_unref(next);
    free(merged);
    sy_pricing_names_free(names, n);
    sy_pricing_free(cat);
    sy_policy_unref(pol);
}

static void test_apply_nothing_matches(void **state)
{
    struct sy_policy *pol = compile_policy(policy_src);
    struct sy_pricing *cat =
        parse_ok("models: [{model: gpt-4o-mini, provider: other, input_per_mtok: 1, "
                 "output_per_mtok: 1}, {model: mini, input_per_mtok: 5, output_per_mtok: 5}]");
    char *merged = (char *)"x";
    char **names = (char **)&merged;
    size_t n = 7;

    (void)state;
    /* "mini" is a client-facing name; entries match upstream models. */
    assert_int_equal(sy_pricing_apply(cat, pol, &merged, &names, &n), 0);
    assert_null(merged);
    assert_null(names);
    assert_int_equal(n, 0);
    sy_pricing_free(cat);
    sy_policy_unref(pol);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_yaml),
        cmocka_unit_test(test_parse_json_same_as_yaml),
        cmocka_unit_test(test_sha256_of_source),
        cmocka_unit_test(test_entry_errors),
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_flood),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_apply_removes_windows),
        cmocka_unit_test(test_apply_nothing_matches),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
