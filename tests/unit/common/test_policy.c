/* tests/unit/common/test_policy.c - the policy compiler (sy_policy): schema, defaults, every
 * error class with its path, lookups, canonical JSON, reference counting.
 *
 * Runs with tests/unit/common as the working directory, where the policy_good.* fixtures
 * live.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sy_json.h"
#include "sy_policy.h"
#include "sy_util.h"

/* A small valid policy that error tests append to or vary. */
#define BASE_PROVIDERS "providers:\n  - {name: p, base_url: \"http://127.0.0.1:1/v1\"}\n"
#define BASE_MODELS "models:\n  - {name: m, provider: p}\n"
#define BASE BASE_PROVIDERS BASE_MODELS

static struct sy_policy *compile_ok(const char *src)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);

    if (!pol)
        fail_msg("unexpected error: %s", err);
    assert_null(err);
    return pol;
}

/* Compiles <src>, expects failure, and returns the message (caller frees). */
static char *compile_err(const char *src)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);

    if (pol)
        fail_msg("policy compiled but should not have:\n%s", src);
    assert_non_null(err);
    return err;
}

static void assert_has(const char *err, const char *want)
{
    if (!strstr(err, want))
        fail_msg("error message\n%s\ndoes not contain\n%s", err, want);
}

/* Asserts that <src> fails with a message containing <want>. */
static void expect_err(const char *src, const char *want)
{
    char *err = compile_err(src);

    assert_has(err, want);
    free(err);
}

static size_t count_lines(const char *s)
{
    size_t n = 1;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_good_policy_yaml(void **state)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_load_file("policy_good.yaml", &err);
    const struct sy_provider *p;
    const struct sy_model *m;
    const struct sy_route *r;
    size_t i;

    (void)state;
    if (!pol)
        fail_msg("%s", err);
    assert_int_equal(pol->n_providers, 2);
    assert_int_equal(pol->n_models, 2);
    assert_int_equal(pol->n_routes, 2);
    assert_int_equal(pol->version, 0);
    assert_int_equal(atomic_load(&pol->refcount), 1);
    assert_int_equal(strlen(pol->hash), 16);
    for (i = 0; i < 16; i++)
        assert_non_null(strchr("0123456789abcdef", pol->hash[i]));

    p = sy_policy_find_provider(pol, "local");
    assert_ptr_equal(p, &pol->providers[0]);
    assert_int_equal(p->kind, SY_PROVIDER_OPENAI);
    assert_string_equal(p->base_url, "http://127.0.0.1:18080/v1"); /* trailing '/' stripped */
    assert_string_equal(p->api_key_env, "LOCAL_KEY");
    assert_int_equal(p->n_headers, 2);
    assert_string_equal(p->headers[0].name, "X-Extra");
    assert_string_equal(p->headers[0].value, "v");
    assert_string_equal(p->headers[1].name, "X-Team");
    assert_string_equal(p->headers[1].value, "42");
    assert_int_equal(p->connect_timeout_ms, 2000);
    assert_int_equal(p->timeout_ms, 60000);

    m = sy_policy_find_model(pol, "gpt-4o-mini");
    assert_ptr_equal(m, &pol->models[0]);
    assert_int_equal(m->provider, 0);
    assert_string_equal(m->upstream_model, "gpt-4o-mini-2024-07-18");
    assert_true(m->input_per_mtok == 0.15);
    assert_true(m->output_per_mtok == 0.60);
    assert_true(m->cached_input_per_mtok == 0.075);

    r = sy_policy_find_route(pol, "auto");
    assert_ptr_equal(r, &pol->routes[0]);
    assert_string_equal(r->name, "auto");
    assert_int_equal(r->n_targets, 2);
    assert_int_equal(r->targets[0].model, 0);
    assert_int_equal(r->targets[0].weight, 80);
    assert_int_equal(r->targets[1].model, 1);
    assert_int_equal(r->targets[1].weight, 20);
    assert_int_equal(r->total_weight, 100);
    /* a route may shadow a model of the same name */
    r = sy_policy_find_route(pol, "other-model");
    assert_string_equal(r->name, "shadow");
    assert_int_equal(r->targets[0].weight, 1);

    assert_int_equal(pol->server.max_body_bytes, 1048576);
    assert_int_equal(pol->server.header_timeout_ms, 5000);
    assert_int_equal(pol->server.body_timeout_ms, 20000);
    assert_int_equal(pol->server.idle_timeout_ms, 60000);
    assert_int_equal(pol->server.max_connections, 500);
    sy_policy_unref(pol);
}

static void test_yaml_and_json_compile_equal(void **state)
{
    char *err = NULL;
    struct sy_policy *y = sy_policy_load_file("policy_good.yaml", &err);
    struct sy_policy *j = sy_policy_load_file("policy_good.json", &err);
    char *yj, *jj;

    (void)state;
    assert_non_null(y);
    assert_non_null(j);
    yj = sy_policy_to_json(y);
    jj = sy_policy_to_json(j);
    assert_string_equal(yj, jj);
    /* different source text, different hash */
    assert_string_not_equal(y->hash, j->hash);
    free(yj);
    free(jj);
    sy_policy_unref(y);
    sy_policy_unref(j);
}

static void test_canonical_json_round_trips(void **state)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_load_file("policy_good.yaml", &err), *again;
    char *first, *second;
    cJSON *tree;

    (void)state;
    assert_non_null(pol);
    first = sy_policy_to_json(pol);
    assert_non_null(first);
    assert_has(first, "\n      \"base_url\": \"http://127.0.0.1:18080/v1\",\n");
    assert_null(strchr(first, '\t'));
    again = compile_ok(first);
    second = sy_policy_to_json(again);
    assert_string_equal(first, second);

    /* the same through the tree entry point */
    tree = cJSON_Parse(first);
    sy_policy_unref(again);
    again = sy_policy_compile_json(tree, &err);
    assert_non_null(again);
    assert_int_equal(strlen(again->hash), 16);
    free(second);
    second = sy_policy_to_json(again);
    assert_string_equal(first, second);
    cJSON_Delete(tree);
    free(first);
    free(second);
    sy_policy_unref(again);
    sy_policy_unref(pol);
}

static void test_defaults(void **state)
{
    struct sy_policy *pol = compile_ok(BASE "routes:\n"
                                            "server:\n");
    const struct sy_provider *p = &pol->providers[0];

    (void)state;
    assert_int_equal(p->kind, SY_PROVIDER_OPENAI);
    assert_null(p->api_key_env);
    assert_int_equal(p->n_headers, 0);
    assert_int_equal(p->connect_timeout_ms, 5000);
    assert_int_equal(p->timeout_ms, 120000);
    assert_string_equal(pol->models[0].upstream_model, "m");
    assert_true(pol->models[0].input_per_mtok == 0);
    assert_int_equal(pol->n_routes, 0);
    assert_null(sy_policy_find_route(pol, "m"));
    assert_int_equal(pol->server.max_body_bytes, 4 * 1024 * 1024);
    assert_int_equal(pol->server.header_timeout_ms, 10000);
    assert_int_equal(pol->server.body_timeout_ms, 30000);
    assert_int_equal(pol->server.idle_timeout_ms, 75000);
    assert_int_equal(pol->server.max_connections, 10000);
    sy_policy_unref(pol);
}

static void test_defaults_spelled_out_are_canonical(void **state)
{
    struct sy_policy *a = compile_ok(BASE);
    struct sy_policy *b = compile_ok("# comment\nmodels: [{provider: p, name: m, upstream_model: "
                                     "m, pricing: {}}]\n"
                                     "providers: [{name: p, kind: openai, base_url: "
                                     "\"http://127.0.0.1:1/v1///\", connect_timeout_ms: 5000, "
                                     "headers: {}}]\nserver: {max_connections: 10000}\n");
    char *ja = sy_policy_to_json(a), *jb = sy_policy_to_json(b);

    (void)state;
    assert_string_equal(ja, jb);
    assert_string_not_equal(a->hash, b->hash);
    free(ja);
    free(jb);
    sy_policy_unref(a);
    sy_policy_unref(b);
}

static void test_top_level_errors(void **state)
{
    (void)state;
    expect_err("- a\n- b\n", "policy: expected a mapping at the top level, got a list");
    expect_err("---\n", "policy: expected a mapping at the top level, got null");
    expect_err("models: [{name: m, provider: p}]\n", "providers: is required");
    expect_err(BASE_PROVIDERS, "models: is required");
    expect_err("providers: []\n" BASE_MODELS, "providers: must not be empty");
    expect_err(BASE_PROVIDERS "models: []\n", "models: must not be empty");
    expect_err("providers: {a: 1}\n" BASE_MODELS, "providers: expected a list, got a mapping");
    expect_err(BASE "routes: 5\n", "routes: expected a list, got a number");
    expect_err(BASE "server: [1]\n", "server: expected a mapping, got a list");
    expect_err(BASE "provders: []\n", "policy: unknown key \"provders\" (expected one of: "
                                      "providers, models, routes, default_route, resilience, "
                                      "server, tenants, auth, experiments)");
}

static void test_unknown_keys_everywhere(void **state)
{
    (void)state;
    expect_err("providers:\n  - {name: p, base_url: \"http://h\", timout_ms: 5}\n" BASE_MODELS,
               "providers[0]: unknown key \"timout_ms\" (expected one of: name, kind, base_url, "
               "api_key_env, api_version, headers, connect_timeout_ms, timeout_ms, region, "
               "compliance)");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: p, pricing: {input: 1}}]\n",
               "models[0].pricing: unknown key \"input\"");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: p, upstream: x}]\n",
               "models[0]: unknown key \"upstream\"");
    expect_err(BASE "routes: [{name: r, match: {model: a, tenant: t}, targets: [{model: m}]}]\n",
               "routes[0].match: unknown key \"tenant\" (expected one of: model, tags, "
               "min_prompt_tokens, max_prompt_tokens, min_messages, max_messages, has_tools, "
               "has_images, json_mode, stream, keywords, regex)");
    expect_err(BASE "routes: [{name: r, match: {model: a}, targets: [{model: m, wieght: 2}]}]\n",
               "routes[0].targets[0]: unknown key \"wieght\"");
    expect_err(BASE "routes: [{name: r, match: {model: a}, target: [{model: m}]}]\n",
               "routes[0]: unknown key \"target\"");
    expect_err(BASE "server: {max_body: 5}\n", "server: unknown key \"max_body\"");
}

static void test_provider_errors(void **state)
{
    (void)state;
    expect_err("providers: [{base_url: \"http://h\"}]\n" BASE_MODELS,
               "providers[0].name: is required");
    expect_err("providers: [{name: \"\", base_url: \"http://h\"}]\n" BASE_MODELS,
               "providers[0].name: must not be empty");
    expect_err("providers: [{name: 5, base_url: \"http://h\"}]\n" BASE_MODELS,
               "providers[0].name: expected a string, got a number");
    expect_err("providers: [{name: \"a\\nb\", base_url: \"http://h\"}]\n" BASE_MODELS,
               "providers[0].name: must not contain control characters");
    expect_err("providers: [{name: p, base_url: \"http://h\"}, {name: p, base_url: \"http://i\"}]"
               "\n" BASE_MODELS,
               "providers[1].name: duplicate provider \"p\" (also providers[0])");
    expect_err("providers: [{name: p, kind: bedrock, base_url: \"http://h\"}]\n" BASE_MODELS,
               "providers[0].kind: unknown kind \"bedrock\" (accepted: openai, azure, anthropic, "
               "gemini)");
    expect_err("providers: [{name: p, kind: openai, base_url: \"http://h\", api_version: "
               "v1}]\n" BASE_MODELS,
               "providers[0].api_version: only azure and anthropic providers take an api_version");
    expect_err("providers: [{name: p, kind: azure, base_url: \"http://h\", api_version: \"a "
               "b\"}]\n" BASE_MODELS,
               "providers[0].api_version: \"a b\" is not a version string");
    expect_err("providers: [{name: p}]\n" BASE_MODELS, "providers[0].base_url: is required");
    expect_err("providers: [{name: p, base_url: \"ftp://h\"}]\n" BASE_MODELS,
               "providers[0].base_url: must start with http:// or https://");
    expect_err("providers: [{name: p, base_url: \"https:///v1\"}]\n" BASE_MODELS,
               "providers[0].base_url: has no host");
    expect_err("providers: [{name: p, base_url: \"http://h/v1?x=1\"}]\n" BASE_MODELS,
               "providers[0].base_url: must not contain a query");
    expect_err("providers: [{name: p, base_url: \"http://h /v1\"}]\n" BASE_MODELS,
               "providers[0].base_url: must not contain spaces");
    expect_err("providers: [{name: p, base_url: \"http://h\", api_key_env: 1KEY}]\n" BASE_MODELS,
               "providers[0].api_key_env: \"1KEY\" is not an environment variable name");
    expect_err("providers: [{name: p, base_url: \"http://h\", api_key_env: A-B}]\n" BASE_MODELS,
               "providers[0].api_key_env: \"A-B\" is not an environment variable name");
    expect_err("providers: [{name: p, base_url: \"http://h\", headers: [a]}]\n" BASE_MODELS,
               "providers[0].headers: expected a mapping, got a list");
    expect_err(
        "providers: [{name: p, base_url: \"http://h\", headers: {\"X A\": v}}]\n" BASE_MODELS,
        "providers[0].headers: invalid header name \"X A\"");
    expect_err("providers: [{name: p, base_url: \"http://h\", headers: {X-A: \"v\\r\\nEvil: 1\"}}]"
               "\n" BASE_MODELS,
               "providers[0].headers: header \"X-A\": value must not contain CR, LF");
    expect_err("providers: [{name: p, base_url: \"http://h\", headers: {X-A: 5}}]\n" BASE_MODELS,
               "providers[0].headers: header \"X-A\": expected a string value, got a number");
    expect_err(
        "providers: [{name: p, base_url: \"http://h\", headers: {X-A: a, x-a: b}}]\n" BASE_MODELS,
        "providers[0].headers: header \"x-a\" given twice");
    expect_err("providers: [{name: p, base_url: \"http://h\", headers: {Content-Length: "
               "5}}]\n" BASE_MODELS,
               "providers[0].headers: header \"Content-Length\" is set by the proxy");
    expect_err("providers: [{name: p, base_url: \"http://h\", api_key_env: K, headers: "
               "{authorization: x}}]\n" BASE_MODELS,
               "providers[0].headers: header \"authorization\" conflicts with api_key_env");
    expect_err("providers: [{name: p, base_url: \"http://h\", timeout_ms: 0}]\n" BASE_MODELS,
               "providers[0].timeout_ms: must be between 1 and 3600000, got 0");
    expect_err("providers: [{name: p, base_url: \"http://h\", timeout_ms: 1.5}]\n" BASE_MODELS,
               "providers[0].timeout_ms: expected an integer, got 1.5");
    expect_err("providers: [{name: p, base_url: \"http://h\", timeout_ms: \"5s\"}]\n" BASE_MODELS,
               "providers[0].timeout_ms: expected an integer, got a string");
    expect_err(
        "providers: [{name: p, base_url: \"http://h\", connect_timeout_ms: -1}]\n" BASE_MODELS,
        "providers[0].connect_timeout_ms: must be between 1 and 600000, got -1");
    expect_err("providers: [5]\n" BASE_MODELS, "providers[0]: expected a mapping, got a number");
}

static void test_model_errors(void **state)
{
    (void)state;
    expect_err(BASE_PROVIDERS "models: [{name: m}]\n", "models[0].provider: is required");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: q}]\n",
               "models[0].provider: unknown provider \"q\"");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: p}, {name: m, provider: p}]\n",
               "models[1].name: duplicate model \"m\" (also models[0])");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: p, upstream_model: \"\"}]\n",
               "models[0].upstream_model: must not be empty");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: p, pricing: {input_per_mtok: -1}}]\n",
               "models[0].pricing.input_per_mtok: must be between 0 and 1000000, got -1");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: p, pricing: {output_per_mtok: x}}]\n",
               "models[0].pricing.output_per_mtok: expected a number, got a string");
    expect_err(BASE_PROVIDERS "models: [{name: m, provider: p, pricing: 3}]\n",
               "models[0].pricing: expected a mapping, got a number");
}

static void test_route_errors(void **state)
{
    (void)state;
    expect_err(BASE "routes:\n  - name: r\n    match: {model: a}\n"
                    "    targets: [{model: m}, {model: gpt5}]\n",
               "routes[0].targets[1].model: unknown model \"gpt5\"");
    expect_err(BASE "routes: [{match: {model: a}, targets: [{model: m}]}]\n",
               "routes[0].name: is required");
    /* match and match.model are optional (test_routing_defaults) but typed */
    expect_err(BASE "routes: [{name: r, match: auto, targets: [{model: m}]}]\n",
               "routes[0].match: expected a mapping, got a string");
    expect_err(BASE "routes: [{name: r, match: {model: [a]}, targets: [{model: m}]}]\n",
               "routes[0].match.model: expected a string, got a list");
    expect_err(BASE "routes: [{name: r, match: {model: a}}]\n",
               "routes[0].targets: is required (a non-empty list)");
    expect_err(BASE "routes: [{name: r, match: {model: a}, targets: []}]\n",
               "routes[0].targets: must not be empty");
    expect_err(BASE "routes: [{name: r, match: {model: a}, targets: [{weight: 1}]}]\n",
               "routes[0].targets[0].model: is required");
    expect_err(BASE "routes: [{name: r, match: {model: a}, targets: [{model: m, weight: 0}]}]\n",
               "routes[0].targets: total weight must be greater than 0");
    expect_err(BASE "routes: [{name: r, match: {model: a}, targets: [{model: m, weight: -1}]}]\n",
               "routes[0].targets[0].weight: must be between 0 and 1000000, got -1");
    expect_err(BASE "routes: [{name: r, match: {model: a}, targets: [{model: m, weight: 2000000}]}]"
                    "\n",
               "routes[0].targets[0].weight: must be between 0 and 1000000, got 2000000");
    expect_err(BASE "routes: [{name: r, match: {model: a}, targets: [{model: m}, {model: m}]}]\n",
               "routes[0].targets[1].model: model \"m\" is already a target of this route "
               "(routes[0].targets[0])");
    expect_err(BASE "routes:\n  - {name: r, match: {model: a}, targets: [{model: m}]}\n"
                    "  - {name: r, match: {model: b}, targets: [{model: m}]}\n",
               "routes[1].name: duplicate route \"r\" (also routes[0])");
    expect_err(BASE "routes:\n  - {name: r, match: {model: a}, targets: [{model: m}]}\n"
                    "  - {name: s, match: {model: a}, targets: [{model: m}]}\n",
               "routes[1].match.model: unreachable: routes[0] takes every request for model "
               "\"a\" first");
    /* The same exact model on two routes is fine when the first one has other conditions. */
    {
        static const char two[] =
            BASE "routes:\n  - {name: small, match: {model: a, max_prompt_tokens: 100},"
                 " targets: [{model: m}]}\n"
                 "  - {name: large, match: {model: a}, targets: [{model: m}]}\n";
        char *err = NULL;
        struct sy_policy *pol = sy_policy_compile(two, strlen(two), &err);
        if (!pol)
            fail_msg("should compile: %s", err);
        /* The index keeps the first route for the name. */
        assert_string_equal(sy_policy_find_route(pol, "a")->name, "small");
        sy_policy_unref(pol);
    }
}

static void test_server_errors(void **state)
{
    (void)state;
    expect_err(BASE "server: {max_body_bytes: 100}\n",
               "server.max_body_bytes: must be between 1024 and 1073741824, got 100");
    expect_err(BASE "server: {max_body_bytes: 2147483648}\n",
               "server.max_body_bytes: must be between 1024 and 1073741824");
    expect_err(BASE "server: {header_timeout_ms: 0}\n",
               "server.header_timeout_ms: must be between");
    expect_err(BASE "server: {body_timeout_ms: true}\n",
               "server.body_timeout_ms: expected an integer, got a boolean");
    expect_err(BASE "server: {idle_timeout_ms: 99999999}\n", "server.idle_timeout_ms: must be");
    expect_err(BASE "server: {max_connections: 0}\n", "server.max_connections: must be between");
}

static void test_all_errors_reported_together(void **state)
{
    char *err = compile_err("providers:\n"
                            "  - {name: p, kind: bedrock, base_url: \"ftp://x\"}\n"
                            "models:\n"
                            "  - {name: m, provider: q, colour: red}\n"
                            "routes:\n"
                            "  - {name: r, match: {model: a}, targets: [{model: gpt5}]}\n"
                            "server: {max_connections: 0}\n");

    (void)state;
    assert_has(err, "providers[0].kind: unknown kind \"bedrock\"");
    assert_has(err, "providers[0].base_url: must start with http:// or https://");
    assert_has(err, "models[0]: unknown key \"colour\"");
    assert_has(err, "models[0].provider: unknown provider \"q\"");
    assert_has(err, "routes[0].targets[0].model: unknown model \"gpt5\"");
    assert_has(err, "server.max_connections: must be between 1 and 1000000, got 0");
    assert_int_equal(count_lines(err), 6);
    free(err);
}

static void test_error_flood_is_capped(void **state)
{
    size_t cap = 64 * 1024, len = 0, i;
    char *src = sy_xmalloc(cap), *err;

    (void)state;
    len += (size_t)snprintf(src + len, cap - len, BASE_PROVIDERS "models:\n");
    for (i = 0; i < 250; i++)
        len += (size_t)snprintf(src + len, cap - len, "  - {name: m%zu, provider: nope}\n", i);
    err = compile_err(src);
    assert_int_equal(count_lines(err), 101);
    assert_has(err, "... and 150 more errors");
    free(err);
    free(src);
}

static void test_user_text_is_escaped_in_errors(void **state)
{
    char *err = compile_err(BASE "\"x\\ny\\\"z\": 1\n"
                                 "routes: [{name: r, match: {model: a}, targets: [{model: "
                                 "\"q\\\"\"}]}]\n");

    (void)state;
    assert_has(err, "policy: unknown key \"x\\x0ay\\\"z\"");
    assert_has(err, "unknown model \"q\\\"\"");
    assert_int_equal(count_lines(err), 2);
    free(err);
}

static void test_syntax_and_structure_errors(void **state)
{
    (void)state;
    expect_err(BASE "routes:\n  - name: r\n   match: x\n", "line 7, column 4: did not find");
    expect_err(BASE "models: []\n", "line 5, column 1: duplicate key \"models\"");
    expect_err("{\"providers\": [], \"providers\": []}", "(root): duplicate key \"providers\"");
    expect_err("{\"providers\": [\n  {\"name\": \"p\",}\n]}",
               "line 2, column 17: invalid JSON at the end of the line");
    expect_err(BASE "a: &x 1\nb: *x\n", "aliases");
    expect_err(BASE "---\nx: 1\n", "only one YAML document");
}

static void test_deep_nesting_rejected(void **state)
{
    size_t depth = 5000, i, n = 0;
    char *src = sy_xmalloc(2 * depth + 64);

    (void)state;
    n += (size_t)snprintf(src, 64, "providers: ");
    for (i = 0; i < depth; i++)
        src[n++] = '[';
    for (i = 0; i < depth; i++)
        src[n++] = ']';
    src[n] = '\0';
    expect_err(src, "nesting is deeper than 64 levels");
    src[0] = '{';
    memcpy(src + 1, "\"p\":", 4);
    n = 5;
    for (i = 0; i < depth; i++)
        src[n++] = '[';
    for (i = 0; i < depth; i++)
        src[n++] = ']';
    src[n++] = '}';
    src[n] = '\0';
    expect_err(src, "invalid JSON"); /* cJSON stops at its own nesting limit */
    free(src);
}

static void test_compile_json_checks_duplicates(void **state)
{
    cJSON *root = cJSON_Parse("{\"providers\": [{\"name\": \"p\", \"name\": \"q\", \"base_url\": "
                              "\"http://h\"}], \"models\": [{\"name\": \"m\", \"provider\": "
                              "\"p\"}]}");
    char *err = NULL;

    (void)state;
    assert_null(sy_policy_compile_json(root, &err));
    assert_has(err, "providers[0].name: given more than once");
    free(err);
    cJSON_Delete(root);
}

static void test_lookups(void **state)
{
    size_t cap = 1 << 20, len = 0, i;
    char *src = sy_xmalloc(cap), name[32];
    struct sy_policy *pol;

    (void)state;
    len += (size_t)snprintf(src + len, cap - len, BASE_PROVIDERS "models:\n");
    for (i = 0; i < 1000; i++)
        len += (size_t)snprintf(src + len, cap - len, "  - {name: model-%zu, provider: p}\n", i);
    len += (size_t)snprintf(src + len, cap - len, "routes:\n");
    for (i = 0; i < 1000; i += 2)
        len += (size_t)snprintf(src + len, cap - len,
                                "  - {name: r%zu, match: {model: alias-%zu}, targets: [{model: "
                                "model-%zu}]}\n",
                                i, i, i);
    pol = compile_ok(src);
    assert_true(pol->model_index.mask + 1 >= 2 * pol->n_models);
    for (i = 0; i < 1000; i++) {
        const struct sy_model *m;
        const struct sy_route *r;

        snprintf(name, sizeof(name), "model-%zu", i);
        m = sy_policy_find_model(pol, name);
        assert_non_null(m);
        assert_ptr_equal(m, &pol->models[i]);
        snprintf(name, sizeof(name), "alias-%zu", i);
        r = sy_policy_find_route(pol, name);
        if (i % 2) {
            assert_null(r);
        } else {
            assert_non_null(r);
            assert_int_equal(r->targets[0].model, i);
        }
    }
    assert_null(sy_policy_find_model(pol, "model-1000"));
    assert_null(sy_policy_find_model(pol, ""));
    assert_null(sy_policy_find_model(pol, NULL));
    assert_null(sy_policy_find_route(pol, "model-1")); /* routes are keyed by match.model */
    assert_null(sy_policy_find_provider(pol, "P"));    /* names are case-sensitive */
    assert_non_null(sy_policy_find_provider(pol, "p"));
    assert_null(sy_policy_find_model(NULL, "m"));
    assert_null(sy_policy_find_route(NULL, "m"));
    assert_null(sy_policy_find_provider(NULL, "p"));
    sy_policy_unref(pol);
    free(src);
}

static void *lookup_thread(void *arg)
{
    struct sy_policy *pol = arg;
    int i;

    for (i = 0; i < 20000; i++) {
        if (!sy_policy_find_model(pol, "m") || !sy_policy_find_route(pol, "a") ||
            sy_policy_find_model(pol, "zz"))
            return (void *)1;
    }
    sy_policy_unref(pol); /* the last thread to finish frees the policy */
    return NULL;
}

static void test_refcount_and_threads(void **state)
{
    struct sy_policy *pol = compile_ok(BASE "routes: [{name: r, match: {model: a}, targets: "
                                            "[{model: m}]}]\n");
    pthread_t th[4];
    void *rv;
    int i;

    (void)state;
    assert_ptr_equal(sy_policy_ref(pol), pol);
    assert_int_equal(atomic_load(&pol->refcount), 2);
    sy_policy_unref(pol);
    assert_int_equal(atomic_load(&pol->refcount), 1);
    assert_null(sy_policy_ref(NULL));
    sy_policy_unref(NULL);

    for (i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, lookup_thread, sy_policy_ref(pol)), 0);
    sy_policy_unref(pol);
    for (i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], &rv), 0);
        assert_null(rv);
    }
}

static void test_hash(void **state)
{
    /* SHA-256("providers: ...") computed with `sha256sum`, first 16 hex digits. */
    const char *src = BASE;
    struct sy_policy *a = compile_ok(src), *b = compile_ok(src);
    struct sy_policy *c = compile_ok(BASE "# changed\n");

    (void)state;
    assert_string_equal(a->hash, b->hash);
    assert_string_not_equal(a->hash, c->hash);
    assert_string_equal(a->hash, "924f9bc59a3e6cbc");
    sy_policy_unref(a);
    sy_policy_unref(b);
    sy_policy_unref(c);
}

static void test_load_file_errors(void **state)
{
    char *err = NULL;

    (void)state;
    assert_null(sy_policy_load_file("no-such-policy.yaml", &err));
    assert_string_equal(err, "no-such-policy.yaml: No such file or directory");
    free(err);
    assert_null(sy_policy_load_file(".", &err));
    assert_string_equal(err, ".: Is a directory");
    free(err);
    /* without errmsg the failure is still reported by NULL */
    assert_null(sy_policy_load_file("no-such-policy.yaml", NULL));
    assert_null(sy_policy_compile("x: [", 4, NULL));
}

static void test_size_limit(void **state)
{
    char *err = NULL;

    (void)state;
    assert_null(sy_policy_compile(BASE, SY_POLICY_MAX_BYTES + 1, &err));
    assert_has(err, "is more than the limit of 16777216 bytes");
    free(err);
}

static void test_flow_yaml_document(void **state)
{
    struct sy_policy *pol = compile_ok("{providers: [{name: p, base_url: 'http://h'}], "
                                       "models: [{name: m, provider: p}]}");

    (void)state;
    assert_string_equal(pol->providers[0].base_url, "http://h");
    assert_string_equal(sy_provider_kind_name(pol->providers[0].kind), "openai");
    sy_policy_unref(pol);
}

/* Prints <pol> canonically, compiles that and prints the result: the two prints
 * must be equal (compile(to_json(p)) == p). Returns the first print (caller frees). */
static char *assert_round_trip(const struct sy_policy *pol)
{
    char *first = sy_policy_to_json(pol), *second;
    struct sy_policy *again;

    assert_non_null(first);
    again = compile_ok(first);
    second = sy_policy_to_json(again);
    assert_string_equal(first, second);
    free(second);
    sy_policy_unref(again);
    return first;
}

static bool re_matches(const struct sy_regex_rule *r, const char *text)
{
    return regexec(&r->re, text, 0, NULL, 0) == 0;
}

static void test_routing_policy(void **state)
{
    char *err = NULL, *json;
    struct sy_policy *pol = sy_policy_load_file("policy_routing.yaml", &err);
    const struct sy_provider *p;
    const struct sy_route *r;
    const struct sy_match *m;
    const struct sy_resilience *res;

    (void)state;
    if (!pol)
        fail_msg("%s", err);

    p = sy_policy_find_provider(pol, "openai");
    assert_null(p->region);
    assert_int_equal(p->n_compliance, 1);
    assert_string_equal(p->compliance[0], "soc2");
    p = sy_policy_find_provider(pol, "azure-eu");
    assert_string_equal(p->region, "eu");
    assert_int_equal(p->n_compliance, 3);
    assert_string_equal(p->compliance[0], "hipaa");
    assert_string_equal(p->compliance[2], "gdpr");
    assert_string_equal(sy_policy_find_provider(pol, "anthropic")->region, "us-east-1");

    assert_int_equal(pol->n_routes, 3);
    r = &pol->routes[0];
    m = &r->match;
    assert_string_equal(r->name, "code");
    assert_string_equal(m->model, "auto*");
    assert_true(m->model_glob);
    assert_null(r->match_model); /* a glob is not indexed */
    assert_null(sy_policy_find_route(pol, "auto*"));
    assert_int_equal(m->n_tags, 2);
    assert_string_equal(m->tags[0], "code");
    assert_string_equal(m->tags[1], "team-a");
    assert_int_equal(m->min_prompt_tokens, 100);
    assert_int_equal(m->max_prompt_tokens, 8000);
    assert_int_equal(m->min_messages, 1);
    assert_int_equal(m->max_messages, 50);
    assert_int_equal(m->has_tools, SY_TRI_YES);
    assert_int_equal(m->has_images, SY_TRI_NO);
    assert_int_equal(m->json_mode, SY_TRI_NO);
    assert_int_equal(m->stream, SY_TRI_YES);
    assert_int_equal(m->n_keywords, 1);
    assert_int_equal(m->keywords[0].n_words, 2);
    assert_string_equal(m->keywords[0].words[0], "refactor"); /* stored lowercased */
    assert_string_equal(m->keywords[0].words[1], "stack trace");
    assert_int_equal(m->keywords[0].in, SY_TEXT_LAST_USER);
    assert_int_equal(m->n_regex, 1);
    assert_string_equal(m->regex[0].pattern, "^fix( the)? bug");
    assert_int_equal(m->regex[0].in, SY_TEXT_LAST_USER | SY_TEXT_SYSTEM);
    assert_false(m->regex[0].case_sensitive);
    assert_true(re_matches(&m->regex[0], "Fix the BUG in main.c"));
    assert_true(re_matches(&m->regex[0], "fix bug"));
    assert_false(re_matches(&m->regex[0], "please fix bug"));
    assert_false(sy_match_is_empty(m));
    assert_int_equal(r->strategy, SY_STRATEGY_PRIORITY);
    assert_string_equal(sy_strategy_name(r->strategy), "priority");
    assert_int_equal(r->n_targets, 2);
    assert_int_equal(r->total_weight, 100);
    assert_int_equal(r->n_fallback, 1);
    assert_string_equal(pol->models[r->fallback[0]].name, "small");
    assert_int_equal(r->attempt_timeout_ms, 20000);
    assert_int_equal(r->first_token_timeout_ms, 5000);
    assert_int_equal(r->total_timeout_ms, 60000);
    assert_int_equal(r->retries_max, 2);
    assert_int_equal(r->retry_backoff_ms, 100);
    assert_int_equal(r->retry_max_backoff_ms, 2000);
    assert_int_equal(r->hedge_after_ms, 800);

    r = &pol->routes[1];
    m = &r->match;
    assert_false(m->model_glob);
    assert_string_equal(r->match_model, "cheap"); /* exact: indexed as before */
    assert_ptr_equal(sy_policy_find_route(pol, "cheap"), r);
    assert_int_equal(m->min_prompt_tokens, -1);
    assert_int_equal(m->max_prompt_tokens, 500);
    assert_int_equal(m->n_keywords, 2);
    assert_int_equal(m->keywords[0].in, SY_TEXT_SYSTEM);
    assert_int_equal(m->keywords[1].in, SY_TEXT_LAST_USER);
    assert_int_equal(m->keywords[1].n_words, 2);
    assert_int_equal(m->n_regex, 2);
    assert_true(m->regex[0].case_sensitive);
    assert_true(re_matches(&m->regex[0], "abc"));
    assert_false(re_matches(&m->regex[0], "ABC"));
    assert_int_equal(m->regex[1].in, SY_TEXT_SYSTEM);
    assert_int_equal(r->strategy, SY_STRATEGY_LOWEST_COST);

    r = &pol->routes[2];
    assert_ptr_equal(sy_policy_find_route(pol, "other"), r);
    assert_int_equal(r->strategy, SY_STRATEGY_CACHE_AFFINITY);
    assert_int_equal(r->total_weight, 0); /* zero weights are fine outside weighted */
    assert_int_equal(pol->default_route, 2);

    res = &pol->resilience;
    assert_int_equal(res->breaker_failures, 3);
    assert_true(res->breaker_error_rate == 0.25);
    assert_int_equal(res->breaker_min_requests, 10);
    assert_int_equal(res->breaker_window_ms, 10000);
    assert_int_equal(res->breaker_open_ms, 2000);
    assert_true(res->retry_budget_ratio == 0.1);
    assert_int_equal(res->retry_budget_min_per_s, 5);
    assert_int_equal(res->max_retry_after_ms, 0);

    json = assert_round_trip(pol);
    assert_has(json, "\"region\": \"eu\",\n      \"compliance\": [\"hipaa\", \"soc2\", \"gdpr\"]");
    assert_has(json,
               "\"any\": [\"refactor\", \"stack trace\"],\n            \"in\": \"last_user\"");
    assert_has(json, "\"strategy\": \"priority\"");
    assert_has(json, "\"fallback\": [\"small\"]");
    assert_has(json, "\"hedge_after_ms\": 800");
    assert_has(json, "\"default_route\": \"other\"");
    assert_has(json, "\"error_rate\": 0.25");
    assert_has(json, "\"max_retry_after_ms\": 0");
    free(json);
    sy_policy_unref(pol);
}

static void test_routing_defaults(void **state)
{
    struct sy_policy *pol = compile_ok(BASE "routes: [{name: r, targets: [{model: m}]}]\n");
    const struct sy_route *r = &pol->routes[0];
    const struct sy_resilience *res = &pol->resilience;
    char *json;

    (void)state;
    assert_null(pol->providers[0].region);
    assert_int_equal(pol->providers[0].n_compliance, 0);
    assert_true(sy_match_is_empty(&r->match)); /* no match: every request */
    assert_null(r->match.model);
    assert_null(r->match_model);
    assert_false(r->match.model_glob);
    assert_int_equal(r->match.min_prompt_tokens, -1);
    assert_int_equal(r->match.max_prompt_tokens, -1);
    assert_int_equal(r->match.min_messages, -1);
    assert_int_equal(r->match.max_messages, -1);
    assert_int_equal(r->match.has_tools, SY_TRI_ANY);
    assert_int_equal(r->match.stream, SY_TRI_ANY);
    assert_int_equal(r->strategy, SY_STRATEGY_WEIGHTED);
    assert_int_equal(r->n_fallback, 0);
    assert_int_equal(r->attempt_timeout_ms, 0);
    assert_int_equal(r->first_token_timeout_ms, 0);
    assert_int_equal(r->total_timeout_ms, 0);
    assert_int_equal(r->retries_max, 0);
    assert_int_equal(r->retry_backoff_ms, 100);
    assert_int_equal(r->retry_max_backoff_ms, 2000);
    assert_int_equal(r->hedge_after_ms, 0);
    assert_int_equal(pol->default_route, SIZE_MAX);
    assert_null(sy_policy_find_route(pol, "m"));
    assert_int_equal(res->breaker_failures, 5);
    assert_true(res->breaker_error_rate == 0.5);
    assert_int_equal(res->breaker_min_requests, 20);
    assert_int_equal(res->breaker_window_ms, 30000);
    assert_int_equal(res->breaker_open_ms, 5000);
    assert_true(res->retry_budget_ratio == 0.2);
    assert_int_equal(res->retry_budget_min_per_s, 10);
    assert_int_equal(res->max_retry_after_ms, 30000);

    json = assert_round_trip(pol);
    assert_has(json, "\"match\": {\n        \"tags\": [],\n        \"keywords\": [],\n        "
                     "\"regex\": []\n      },\n      \"strategy\": \"weighted\"");
    assert_has(json, "\"fallback\": [],\n      \"timeouts\": {\n      },\n      \"retries\": {\n"
                     "        \"max\": 0,\n        \"backoff_ms\": 100,\n        "
                     "\"max_backoff_ms\": 2000\n      },\n      \"hedge_after_ms\": 0");
    assert_null(strstr(json, "default_route"));
    free(json);
    sy_policy_unref(pol);

    /* without resilience and default_route the old canonical keys keep their meaning */
    pol = compile_ok(BASE);
    json = assert_round_trip(pol);
    assert_has(json,
               "\"resilience\": {\n    \"breaker\": {\n      \"failures\": 5,\n"
               "      \"error_rate\": 0.5,\n      \"min_requests\": 20,\n"
               "      \"window_ms\": 30000,\n      \"open_ms\": 5000\n    },\n"
               "    \"retry_budget\": {\n      \"ratio\": 0.2,\n      \"min_per_second\": 10\n"
               "    },\n    \"max_retry_after_ms\": 30000\n  }");
    free(json);
    sy_policy_unref(pol);
}

static void test_routing_defaults_spelled_out_are_canonical(void **state)
{
    struct sy_policy *a = compile_ok(BASE "routes: [{name: r, targets: [{model: m}]}]\n");
    struct sy_policy *b =
        compile_ok(BASE "routes:\n"
                        "  - name: r\n"
                        "    match: {tags: [], keywords: [], regex: []}\n"
                        "    strategy: weighted\n"
                        "    targets: [{model: m, weight: 1}]\n"
                        "    fallback: []\n"
                        "    timeouts: {}\n"
                        "    retries: {max: 0, backoff_ms: 100, max_backoff_ms: 2000}\n"
                        "    hedge_after_ms: 0\n"
                        "resilience:\n"
                        "  breaker: {failures: 5, error_rate: 0.5, min_requests: 20,\n"
                        "            window_ms: 30000, open_ms: 5000}\n"
                        "  retry_budget: {ratio: 0.2, min_per_second: 10}\n"
                        "  max_retry_after_ms: 30000\n");
    /* one rule written as a mapping is the same as a list of that rule; "in" defaults */
    struct sy_policy *c = compile_ok(BASE "routes: [{name: r, match: {keywords: {any: [A]}, "
                                          "regex: {pattern: x}}, targets: [{model: m}]}]\n");
    struct sy_policy *d = compile_ok(BASE "routes: [{name: r, match: {keywords: [{any: [a], in: "
                                          "last_user}], regex: [{pattern: x, in: last_user, "
                                          "case_sensitive: false}]}, targets: [{model: m}]}]\n");
    char *ja = sy_policy_to_json(a), *jb = sy_policy_to_json(b);
    char *jc = sy_policy_to_json(c), *jd = sy_policy_to_json(d);

    (void)state;
    assert_string_equal(ja, jb);
    assert_string_equal(jc, jd);
    free(ja);
    free(jb);
    free(jc);
    free(jd);
    sy_policy_unref(a);
    sy_policy_unref(b);
    sy_policy_unref(c);
    sy_policy_unref(d);
}

static void test_match_model_globs_and_exact(void **state)
{
    struct sy_policy *pol =
        compile_ok(BASE "routes:\n"
                        "  - {name: a, match: {model: \"gpt-*\"}, targets: [{model: m}]}\n"
                        "  - {name: b, match: {model: \"gpt-?o\"}, targets: [{model: m}]}\n"
                        "  - {name: c, match: {model: \"gpt-[45]*\"}, targets: [{model: m}]}\n"
                        "  - {name: d, match: {model: gpt-4o}, targets: [{model: m}]}\n"
                        "  - {name: e, match: {model: m}, targets: [{model: m}]}\n"
                        "  - {name: f, match: {tags: [x]}, targets: [{model: m}]}\n");

    (void)state;
    assert_true(pol->routes[0].match.model_glob);
    assert_true(pol->routes[1].match.model_glob);
    assert_true(pol->routes[2].match.model_glob);
    assert_false(pol->routes[3].match.model_glob);
    assert_ptr_equal(sy_policy_find_route(pol, "gpt-4o"), &pol->routes[3]);
    assert_ptr_equal(sy_policy_find_route(pol, "m"), &pol->routes[4]);
    assert_null(sy_policy_find_route(pol, "gpt-*"));
    assert_null(pol->routes[5].match.model);
    sy_policy_unref(pol);
}

static void test_retry_backoff_raises_default_cap(void **state)
{
    struct sy_policy *pol = compile_ok(BASE "routes: [{name: r, targets: [{model: m}], "
                                            "retries: {max: 10, backoff_ms: 5000}}]\n");

    (void)state;
    assert_int_equal(pol->routes[0].retries_max, 10);
    assert_int_equal(pol->routes[0].retry_backoff_ms, 5000);
    assert_int_equal(pol->routes[0].retry_max_backoff_ms, 5000);
    sy_policy_unref(pol);
}

/* A route named r with <extra> appended inside its flow mapping. */
#define ROUTE(extra) BASE "routes: [{name: r, targets: [{model: m}]" extra "}]\n"
#define MATCH(m) ROUTE(", match: {" m "}")
#define TWO_MODELS BASE_PROVIDERS "models: [{name: m, provider: p}, {name: n, provider: p}]\n"

static void test_match_errors(void **state)
{
    (void)state;
    expect_err(MATCH("model: \"gpt-[45\""),
               "routes[0].match.model: glob \"gpt-[45\" has a '[' without a closing ']'");
    expect_err(MATCH("model: \"\""), "routes[0].match.model: must not be empty");
    expect_err(BASE "routes:\n  - {name: r, match: {model: a}, targets: [{model: m}]}\n"
                    "  - {name: s, match: {model: \"a*\"}, targets: [{model: m}]}\n"
                    "  - {name: t, match: {model: \"a*\"}, targets: [{model: m}]}\n"
                    "  - {name: u, match: {model: a}, targets: [{model: m}]}\n",
               "routes[3].match.model: unreachable: routes[0] takes every request for model "
               "\"a\" first");
    expect_err(MATCH("tags: code"), "routes[0].match.tags: expected a list, got a string");
    expect_err(MATCH("tags: [a, 5]"), "routes[0].match.tags[1]: expected a string, got a number");
    expect_err(MATCH("tags: [\"a b\"]"), "routes[0].match.tags[0]: \"a b\" is not a tag");
    expect_err(MATCH("tags: [\"a,b\"]"), "routes[0].match.tags[0]: \"a,b\" is not a tag");
    expect_err(MATCH("tags: [a, b, a]"), "routes[0].match.tags[2]: \"a\" is listed twice");
    expect_err(MATCH("min_prompt_tokens: 500, max_prompt_tokens: 100"),
               "routes[0].match.min_prompt_tokens: must not be greater than max_prompt_tokens "
               "(100), got 500");
    expect_err(MATCH("min_messages: 3, max_messages: 2"),
               "routes[0].match.min_messages: must not be greater than max_messages (2), got 3");
    expect_err(MATCH("min_prompt_tokens: -1"),
               "routes[0].match.min_prompt_tokens: must be between 0 and 1000000000, got -1");
    expect_err(MATCH("max_messages: 1.5"),
               "routes[0].match.max_messages: expected an integer, got 1.5");
    expect_err(MATCH("has_tools: yes"),
               "routes[0].match.has_tools: expected true or false, got a string");
    expect_err(MATCH("stream: 1"), "routes[0].match.stream: expected true or false, got a number");
    expect_err(MATCH("keywords: refactor"),
               "routes[0].match.keywords: expected a mapping or a list of mappings, got a string");
    expect_err(MATCH("keywords: {in: system}"),
               "routes[0].match.keywords.any: is required (a non-empty list)");
    expect_err(MATCH("keywords: {any: []}"), "routes[0].match.keywords.any: must not be empty");
    expect_err(MATCH("keywords: [{any: [a]}, {any: [b, \"\"]}]"),
               "routes[0].match.keywords[1].any[1]: must not be empty");
    expect_err(MATCH("keywords: [{any: [a]}, 7]"),
               "routes[0].match.keywords[1]: expected a mapping, got a number");
    expect_err(MATCH("keywords: {any: [a, [b]]}"),
               "routes[0].match.keywords.any[1]: expected a string, got a list");
    expect_err(MATCH("keywords: {any: [a], in: user}"),
               "routes[0].match.keywords.in: unknown text \"user\" (accepted: last_user, system, "
               "any)");
    expect_err(MATCH("keywords: {any: [a], all: [b]}"),
               "routes[0].match.keywords: unknown key \"all\" (expected one of: any, in)");
    expect_err(MATCH("regex: {pattern: \"fix(\"}"),
               "routes[0].match.regex.pattern: invalid regular expression \"fix(\": ");
    expect_err(MATCH("regex: [{pattern: a}, {pattern: \"[z-a]\"}]"),
               "routes[0].match.regex[1].pattern: invalid regular expression \"[z-a]\": "
               "Invalid range end");
    /* nested bounded repeats would make regcomp() allocate gigabytes */
    expect_err(MATCH("regex: {pattern: \"((a{1,255}){1,255}){1,255}\"}"),
               "routes[0].match.regex.pattern: \"((a{1,255}){1,255}){1,255}\": its repeats "
               "expand to more than 10000 positions");
    expect_err(MATCH("regex: {pattern: \"([[:alpha:]]{100}x){1000,}\"}"),
               "expand to more than 10000 positions");
    sy_policy_unref(compile_ok(MATCH("regex: [{pattern: \"(a{1,99}){1,100}\"}, "
                                     "{pattern: \"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"}, "
                                     "{pattern: \"x{0}y{2,}[]{]{3}\\\\{5}\"}]")));
    expect_err(MATCH("regex: {in: any}"), "routes[0].match.regex.pattern: is required");
    expect_err(MATCH("regex: {pattern: \"\"}"), "routes[0].match.regex.pattern: must not be empty");
    expect_err(MATCH("regex: {pattern: a, case_sensitive: \"no\"}"),
               "routes[0].match.regex.case_sensitive: expected true or false, got a string");
    expect_err(MATCH("regex: {pattern: a, in: body}"),
               "routes[0].match.regex.in: unknown text \"body\"");
    expect_err(MATCH("regex: {pattern: a, flags: i}"),
               "routes[0].match.regex: unknown key \"flags\" (expected one of: pattern, in, "
               "case_sensitive)");
}

static void test_long_and_many_rules_refused(void **state)
{
    char *src = sy_xmalloc(8192), *pat = sy_xmalloc(1100);

    (void)state;
    memset(pat, 'a', 1025);
    pat[1025] = '\0';
    snprintf(src, 8192, MATCH("regex: {pattern: %s}"), pat);
    expect_err(src, "routes[0].match.regex.pattern: is longer than 1024 bytes");
    pat[1024] = '\0';
    snprintf(src, 8192, MATCH("regex: {pattern: %s}"), pat);
    sy_policy_unref(compile_ok(src));
    expect_err(MATCH("regex: [{pattern: a}, {pattern: a}, {pattern: a}, {pattern: a}, "
                     "{pattern: a}, {pattern: a}, {pattern: a}, {pattern: a}, {pattern: a}, "
                     "{pattern: a}, {pattern: a}, {pattern: a}, {pattern: a}, {pattern: a}, "
                     "{pattern: a}, {pattern: a}, {pattern: a}]"),
               "routes[0].match.regex: at most 16 rules, got 17");
    free(pat);
    free(src);
}

static void test_route_resilience_errors(void **state)
{
    (void)state;
    expect_err(ROUTE(", strategy: fastest"),
               "routes[0].strategy: unknown strategy \"fastest\" (accepted: weighted, priority, "
               "lowest_cost, lowest_latency, least_busy, cache_affinity, learned)");
    expect_err(ROUTE(", strategy: 1"), "routes[0].strategy: expected a string, got a number");
    /* zero total weight: only the weighted strategy needs weights */
    expect_err(BASE "routes: [{name: r, strategy: weighted, targets: [{model: m, weight: 0}]}]\n",
               "routes[0].targets: total weight must be greater than 0 for the weighted "
               "strategy");
    sy_policy_unref(compile_ok(BASE "routes: [{name: r, strategy: priority, targets: "
                                    "[{model: m, weight: 0}]}]\n"));
    expect_err(ROUTE(", fallback: [gpt5]"), "routes[0].fallback[0]: unknown model \"gpt5\"");
    expect_err(ROUTE(", fallback: m"), "routes[0].fallback: expected a list, got a string");
    expect_err(ROUTE(", fallback: [{model: m}]"),
               "routes[0].fallback[0]: expected a model name, got a mapping");
    expect_err(ROUTE(", fallback: [m]"),
               "routes[0].fallback[0]: model \"m\" is already a target of this route "
               "(routes[0].targets[0])");
    expect_err(TWO_MODELS "routes: [{name: r, targets: [{model: m}], fallback: [n, n]}]\n",
               "routes[0].fallback[1]: model \"n\" is already in the fallback list of this "
               "route (routes[0].fallback[0])");
    /* the same model may be a fallback of one route and a target of another */
    sy_policy_unref(compile_ok(TWO_MODELS "routes:\n"
                                          "  - {name: r, targets: [{model: m}], fallback: [n]}\n"
                                          "  - {name: s, targets: [{model: n}], fallback: [m]}\n"));
    expect_err(ROUTE(", timeouts: {attempt_ms: 0}"),
               "routes[0].timeouts.attempt_ms: must be between 1 and 3600000, got 0");
    expect_err(ROUTE(", timeouts: {total_ms: 3600001}"),
               "routes[0].timeouts.total_ms: must be between 1 and 3600000, got 3600001");
    expect_err(ROUTE(", timeouts: {first_token_ms: 5000, attempt_ms: 2000}"),
               "routes[0].timeouts.first_token_ms: must not be greater than attempt_ms (2000), "
               "got 5000");
    expect_err(ROUTE(", timeouts: {attempt_ms: 20000, total_ms: 10000}"),
               "routes[0].timeouts.attempt_ms: must not be greater than total_ms (10000), got "
               "20000");
    expect_err(ROUTE(", timeouts: {first_token_ms: 20000, total_ms: 10000}"),
               "routes[0].timeouts.first_token_ms: must not be greater than total_ms (10000), "
               "got 20000");
    expect_err(ROUTE(", timeouts: {connect_ms: 1}"),
               "routes[0].timeouts: unknown key \"connect_ms\" (expected one of: attempt_ms, "
               "first_token_ms, total_ms)");
    expect_err(ROUTE(", timeouts: 5"), "routes[0].timeouts: expected a mapping, got a number");
    expect_err(ROUTE(", retries: {max: 11}"),
               "routes[0].retries.max: must be between 0 and 10, got 11");
    expect_err(ROUTE(", retries: {backoff_ms: 0}"),
               "routes[0].retries.backoff_ms: must be between 1 and 60000, got 0");
    expect_err(ROUTE(", retries: {backoff_ms: 500, max_backoff_ms: 100}"),
               "routes[0].retries.max_backoff_ms: must not be less than backoff_ms (500), got "
               "100");
    expect_err(ROUTE(", retries: {count: 1}"),
               "routes[0].retries: unknown key \"count\" (expected one of: max, backoff_ms, "
               "max_backoff_ms)");
    expect_err(ROUTE(", hedge_after_ms: 600001"),
               "routes[0].hedge_after_ms: must be between 0 and 600000, got 600001");
    expect_err(ROUTE(", hedge_after_ms: -5"),
               "routes[0].hedge_after_ms: must be between 0 and 600000, got -5");
    expect_err(ROUTE(", hedge: 5"), "routes[0]: unknown key \"hedge\" (expected one of: name, "
                                    "match, strategy, targets, fallback, timeouts, retries, "
                                    "hedge_after_ms, learn)");
    expect_err(ROUTE("") "default_route: nope\n", "default_route: unknown route \"nope\"");
    expect_err(BASE "default_route: r\n", "default_route: unknown route \"r\"");
    expect_err(ROUTE("") "default_route: [r]\n", "default_route: expected a string, got a list");
    /* a condition-less route already takes every request in step 1 */
    expect_err(ROUTE("") "default_route: r\n",
               "default_route: route \"r\" has no match conditions, so it already takes every "
               "request before models are looked up; give it a match (e.g. {model: \"r\"})");
    expect_err(ROUTE(", match: {}") "default_route: r\n", "default_route: route \"r\" has no");
    sy_policy_unref(compile_ok(ROUTE(", match: {model: r}") "default_route: r\n"));
    sy_policy_unref(compile_ok(ROUTE(", match: {stream: true}") "default_route: r\n"));
}

static void test_provider_region_compliance_errors(void **state)
{
    (void)state;
#define PROV(extra) "providers: [{name: p, base_url: \"http://h\"" extra "}]\n" BASE_MODELS
    expect_err(PROV(", region: EU"),
               "providers[0].region: \"EU\" is not a region (1 to 32 characters of a-z, 0-9 and "
               "'-')");
    expect_err(PROV(", region: \"eu west\""), "providers[0].region: \"eu west\" is not a region");
    expect_err(PROV(", region: \"\""), "providers[0].region: \"\" is not a region");
    expect_err(PROV(", region: eu_west"), "providers[0].region: \"eu_west\" is not a region");
    expect_err(PROV(", region: [eu]"), "providers[0].region: expected a string, got a list");
    expect_err(PROV(", compliance: hipaa"),
               "providers[0].compliance: expected a list, got a string");
    expect_err(PROV(", compliance: [hipaa, soc2, hipaa]"),
               "providers[0].compliance[2]: \"hipaa\" is listed twice");
    expect_err(PROV(", compliance: [HIPAA]"),
               "providers[0].compliance[0]: \"HIPAA\" is not a compliance tag (1 to 32 "
               "characters of a-z, 0-9 and '-')");
    expect_err(PROV(", compliance: [true]"),
               "providers[0].compliance[0]: expected a string, got a boolean");
#undef PROV
}

static void test_resilience_errors(void **state)
{
    (void)state;
    expect_err(BASE "resilience: [1]\n", "resilience: expected a mapping, got a list");
    expect_err(BASE "resilience: {breakers: {}}\n",
               "resilience: unknown key \"breakers\" (expected one of: breaker, retry_budget, "
               "max_retry_after_ms)");
    expect_err(BASE "resilience: {breaker: {failures: 0}}\n",
               "resilience.breaker.failures: must be between 1 and 1000, got 0");
    expect_err(BASE "resilience: {breaker: {failures: 1001}}\n",
               "resilience.breaker.failures: must be between 1 and 1000, got 1001");
    expect_err(BASE "resilience: {breaker: {error_rate: 0}}\n",
               "resilience.breaker.error_rate: must be greater than 0 and at most 1, got 0");
    expect_err(BASE "resilience: {breaker: {error_rate: 1.5}}\n",
               "resilience.breaker.error_rate: must be greater than 0 and at most 1, got 1.5");
    expect_err(BASE "resilience: {breaker: {error_rate: \"50%\"}}\n",
               "resilience.breaker.error_rate: expected a number, got a string");
    expect_err(BASE "resilience: {breaker: {min_requests: 0}}\n",
               "resilience.breaker.min_requests: must be between 1 and 1000000, got 0");
    expect_err(BASE "resilience: {breaker: {window_ms: 99}}\n",
               "resilience.breaker.window_ms: must be between 100 and 3600000, got 99");
    expect_err(BASE "resilience: {breaker: {open_ms: 3600001}}\n",
               "resilience.breaker.open_ms: must be between 100 and 3600000, got 3600001");
    expect_err(BASE "resilience: {breaker: {threshold: 1}}\n",
               "resilience.breaker: unknown key \"threshold\" (expected one of: failures, "
               "error_rate, min_requests, window_ms, open_ms)");
    expect_err(BASE "resilience: {retry_budget: {ratio: -0.1}}\n",
               "resilience.retry_budget.ratio: must be at least 0 and at most 10, got -0.1");
    expect_err(BASE "resilience: {retry_budget: {ratio: 11}}\n",
               "resilience.retry_budget.ratio: must be at least 0 and at most 10, got 11");
    expect_err(BASE "resilience: {retry_budget: {min_per_second: 100001}}\n",
               "resilience.retry_budget.min_per_second: must be between 0 and 100000, got 100001");
    expect_err(BASE "resilience: {retry_budget: {per_second: 1}}\n",
               "resilience.retry_budget: unknown key \"per_second\" (expected one of: ratio, "
               "min_per_second)");
    expect_err(BASE "resilience: {max_retry_after_ms: 3600001}\n",
               "resilience.max_retry_after_ms: must be between 0 and 3600000, got 3600001");
    /* boundaries are accepted */
    sy_policy_unref(compile_ok(BASE "resilience: {breaker: {failures: 1000, error_rate: 1, "
                                    "min_requests: 1, window_ms: 100, open_ms: 3600000}, "
                                    "retry_budget: {ratio: 0, min_per_second: 0}, "
                                    "max_retry_after_ms: 0}\n"));
}

static void test_routing_errors_reported_together(void **state)
{
    char *err = compile_err(BASE "routes:\n"
                                 "  - name: r\n"
                                 "    match: {regex: {pattern: \"(\"}, min_messages: 9, "
                                 "max_messages: 1}\n"
                                 "    strategy: random\n"
                                 "    targets: [{model: m}]\n"
                                 "    fallback: [m, zz]\n"
                                 "default_route: s\n"
                                 "resilience: {breaker: {failures: 0}}\n");

    (void)state;
    assert_has(err, "routes[0].match.regex.pattern: invalid regular expression \"(\"");
    assert_has(err, "routes[0].match.min_messages: must not be greater than max_messages");
    assert_has(err, "routes[0].strategy: unknown strategy \"random\"");
    assert_has(err, "routes[0].fallback[0]: model \"m\" is already a target");
    assert_has(err, "routes[0].fallback[1]: unknown model \"zz\"");
    assert_has(err, "default_route: unknown route \"s\"");
    assert_has(err, "resilience.breaker.failures: must be between 1 and 1000");
    assert_int_equal(count_lines(err), 7);
    free(err);
}

/* SHA-256 of "sk-acme-1", "sk-acme-2" and "sk-beta-1" (sha256sum). */
#define H_ACME1 "819685611e044dc4918e558945f580790befd0786cc2fb36e3417477ed704a3d"
#define H_ACME2 "e13ec0cb85b1e9b4c68f9ab2eb9abeed3376e468aa136fcfbac7c29ca02d6a08"
#define H_BETA1 "1d2df9ceab14124d795d51c02facc58d787e4a097532d69546d3db544ffddb53"
#define TENANTS                                                                                    \
    "tenants:\n"                                                                                   \
    "  - name: acme\n"                                                                             \
    "    api_keys_sha256: [\"" H_ACME1 "\", \"" H_ACME2 "\"]\n"                                    \
    "    labels: {team: search, feature: \"autocomplete v2\"}\n"                                   \
    "  - {name: beta, api_keys_sha256: [\"" H_BETA1 "\"]}\n"

static const struct sy_tenant *tenant_of_key(const struct sy_policy *pol, const char *key)
{
    uint8_t d[SY_SHA256_LEN];
    unsigned int n = 0;

    assert_true(EVP_Digest(key, strlen(key), d, &n, EVP_sha256(), NULL));
    assert_int_equal(n, SY_SHA256_LEN);
    return sy_policy_find_tenant_by_key(pol, d);
}

static void test_tenants(void **state)
{
    struct sy_policy *pol = compile_ok(BASE TENANTS);
    const struct sy_tenant *acme, *beta;
    char *json;

    (void)state;
    assert_int_equal(pol->n_tenants, 2);
    assert_int_equal(pol->n_tenant_keys, 3);
    assert_int_equal(pol->auth_mode, SY_AUTH_KEYS); /* tenants, no auth: keys */
    acme = sy_policy_find_tenant(pol, "acme");
    beta = sy_policy_find_tenant(pol, "beta");
    assert_ptr_equal(acme, &pol->tenants[0]);
    assert_ptr_equal(beta, &pol->tenants[1]);
    assert_null(sy_policy_find_tenant(pol, "gamma"));
    assert_int_equal(acme->n_keys, 2);
    assert_int_equal(acme->first_key, 0);
    assert_int_equal(beta->first_key, 2);
    assert_int_equal(acme->n_labels, 2);
    assert_string_equal(acme->labels[0].key, "team");
    assert_string_equal(acme->labels[0].value, "search");
    assert_string_equal(acme->labels[1].key, "feature");
    assert_string_equal(acme->labels[1].value, "autocomplete v2");
    assert_int_equal(beta->n_labels, 0);

    assert_ptr_equal(tenant_of_key(pol, "sk-acme-1"), acme);
    assert_ptr_equal(tenant_of_key(pol, "sk-acme-2"), acme);
    assert_ptr_equal(tenant_of_key(pol, "sk-beta-1"), beta);
    assert_null(tenant_of_key(pol, "sk-acme-3"));
    assert_null(tenant_of_key(pol, ""));
    assert_null(tenant_of_key(pol, H_ACME1)); /* the digest is not the key */

    json = assert_round_trip(pol);
    assert_has(json,
               "\"tenants\": [{\n      \"name\": \"acme\",\n      \"api_keys_sha256\": [\"" H_ACME1
               "\", \"" H_ACME2 "\"],\n      \"labels\": {\n        \"team\": \"search\",\n"
               "        \"feature\": \"autocomplete v2\"\n      }\n    }, {\n      \"name\": "
               "\"beta\",\n      \"api_keys_sha256\": [\"" H_BETA1 "\"],\n      \"labels\": "
               "{\n      }\n    }],\n  \"auth\": {\n    \"mode\": \"keys\"\n  }\n}");
    free(json);
    sy_policy_unref(pol);
}

static void test_auth_modes(void **state)
{
    struct sy_policy *pol;
    char *json;

    (void)state;
    /* no tenants: open, and the canonical form says so */
    pol = compile_ok(BASE);
    assert_int_equal(pol->auth_mode, SY_AUTH_OPEN);
    assert_int_equal(pol->n_tenants, 0);
    assert_null(sy_policy_find_tenant(pol, "acme"));
    assert_null(tenant_of_key(pol, "sk-acme-1"));
    json = assert_round_trip(pol);
    assert_has(json, "\"tenants\": [],\n  \"auth\": {\n    \"mode\": \"open\"\n  }\n}");
    free(json);
    sy_policy_unref(pol);

    /* open access with tenants: keys still name tenants, none is required */
    pol = compile_ok(BASE TENANTS "auth: {mode: open}\n");
    assert_int_equal(pol->auth_mode, SY_AUTH_OPEN);
    assert_ptr_equal(tenant_of_key(pol, "sk-beta-1"), &pol->tenants[1]);
    json = assert_round_trip(pol);
    assert_has(json, "\"mode\": \"open\"");
    free(json);
    sy_policy_unref(pol);

    pol = compile_ok(BASE TENANTS "auth: {mode: keys}\n");
    assert_int_equal(pol->auth_mode, SY_AUTH_KEYS);
    sy_policy_unref(pol);
    pol = compile_ok(BASE "tenants: []\nauth: {}\n");
    assert_int_equal(pol->auth_mode, SY_AUTH_OPEN);
    sy_policy_unref(pol);
    assert_string_equal(sy_auth_mode_name(SY_AUTH_KEYS), "keys");
    assert_string_equal(sy_auth_mode_name((enum sy_auth_mode)7), "unknown");
}

/* Digests are normalised: upper-case hex, key order and a spelled-out default mode print
 * the same canonical text. */
static void test_tenants_canonical(void **state)
{
    struct sy_policy *a = compile_ok(BASE TENANTS);
    struct sy_policy *b;
    char upper[sizeof(H_ACME1)], *src, *ja, *jb;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(upper); i++)
        upper[i] = (char)(H_ACME1[i] >= 'a' && H_ACME1[i] <= 'f' ? H_ACME1[i] - 32 : H_ACME1[i]);
    src = sy_xasprintf(BASE "auth: {mode: keys}\n"
                            "tenants:\n"
                            "  - labels: {team: search, feature: autocomplete v2}\n"
                            "    api_keys_sha256: [\"%s\", \"" H_ACME2 "\"]\n"
                            "    name: acme\n"
                            "  - {name: beta, api_keys_sha256: [\"" H_BETA1 "\"], labels: {}}\n",
                       upper);
    b = compile_ok(src);
    ja = sy_policy_to_json(a);
    jb = sy_policy_to_json(b);
    assert_string_equal(ja, jb);
    assert_null(strstr(jb, upper));
    free(ja);
    free(jb);
    free(src);
    sy_policy_unref(a);
    sy_policy_unref(b);
}

static void test_tenant_errors(void **state)
{
    char *err, *src;
    size_t i;

    (void)state;
    expect_err(BASE "tenants: {acme: 1}\n", "tenants: expected a list, got a mapping");
    expect_err(BASE "tenants: [acme]\n", "tenants[0]: expected a mapping, got a string");
    expect_err(BASE "tenants: [{api_keys_sha256: [\"" H_ACME1 "\"]}]\n",
               "tenants[0].name: is required");
    expect_err(BASE "tenants: [{name: a}]\n",
               "tenants[0].api_keys_sha256: is required (a non-empty list)");
    expect_err(BASE "tenants: [{name: a, api_keys_sha256: []}]\n",
               "tenants[0].api_keys_sha256: must not be empty (a tenant without keys cannot call)");
    expect_err(BASE "tenants: [{name: a, api_keys_sha256: \"" H_ACME1 "\"}]\n",
               "tenants[0].api_keys_sha256: expected a list, got a string");
    expect_err(BASE "tenants: [{name: a, api_keys_sha256: [\"" H_ACME1 "\"], key: x}]\n",
               "tenants[0]: unknown key \"key\" (expected one of: name, api_keys_sha256, labels, "
               "budget)");
    expect_err(BASE "tenants: [{name: a, api_keys_sha256: [12]}]\n",
               "tenants[0].api_keys_sha256[0]: expected a string (64 hex digits, quoted), got a "
               "number");
    expect_err(BASE "tenants: [{name: a, api_keys_sha256: [\"" H_ACME1 "\"]},\n"
                    "          {name: a, api_keys_sha256: [\"" H_BETA1 "\"]}]\n",
               "tenants[1].name: duplicate tenant \"a\" (also tenants[0])");
    expect_err(BASE "tenants: [{name: a, api_keys_sha256: [\"" H_ACME1 "\", \"" H_ACME1 "\"]}]\n",
               "tenants[0].api_keys_sha256[1]: the same key is already "
               "tenants[0].api_keys_sha256[0] (a key names one tenant)");
    /* unique across tenants, whatever the case of the hex digits */
    expect_err(BASE "tenants: [{name: a, api_keys_sha256: [\"" H_BETA1 "\", \"" H_ACME1 "\"]},\n"
                    "          {name: b, api_keys_sha256: "
                    "[\"819685611E044DC4918E558945F580790BEFD0786CC2FB36E3417477ED704A3D\"]}]\n",
               "tenants[1].api_keys_sha256[0]: the same key is already "
               "tenants[0].api_keys_sha256[1]");

    /* a plaintext key where its digest belongs is refused without being echoed */
    err = compile_err(BASE "tenants: [{name: a, api_keys_sha256: [sk-live-secret-123]}]\n");
    assert_has(err, "tenants[0].api_keys_sha256[0]: expected the SHA-256 of a key as 64 hex "
                    "digits (printf %s \"$KEY\" | sha256sum), got 18 characters that are not; "
                    "never write the key itself here");
    assert_null(strstr(err, "sk-live"));
    free(err);
    /* 64 characters, not all hex */
    err = compile_err(BASE
                      "tenants: [{name: a, api_keys_sha256: "
                      "[\"g19685611e044dc4918e558945f580790befd0786cc2fb36e3417477ed704a3d\"]}]\n");
    assert_has(err, "got 64 characters that are not");
    assert_null(strstr(err, "g196"));
    free(err);

    {
        char *keys = sy_xcalloc(65, 70), *p = keys;

        for (i = 0; i < 65; i++)
            p += snprintf(p, 70, "%s\"%064zx\"", i ? ", " : "", i);
        src = sy_xasprintf(BASE "tenants: [{name: a, api_keys_sha256: [%s]}]\n", keys);
        expect_err(src, "tenants[0].api_keys_sha256: at most 64 keys, got 65");
        free(src);
        free(keys);
    }
}

static void test_label_errors(void **state)
{
    (void)state;
#define TENANT_WITH_LABELS(l)                                                                      \
    BASE "tenants: [{name: a, api_keys_sha256: [\"" H_ACME1 "\"], labels: " l "}]\n"
    expect_err(TENANT_WITH_LABELS("[team]"), "tenants[0].labels: expected a mapping, got a list");
    expect_err(TENANT_WITH_LABELS("{team: 5}"),
               "tenants[0].labels.team: expected a string, got a number");
    expect_err(TENANT_WITH_LABELS("{team: \"\"}"),
               "tenants[0].labels.team: must be 1 to 128 bytes long");
    expect_err(TENANT_WITH_LABELS("{team: \"a\\tb\"}"),
               "tenants[0].labels.team: must not contain control characters");
    expect_err(TENANT_WITH_LABELS("{cost-center: x}"),
               "tenants[0].labels: \"cost-center\" is not a label name (1 to 32 letters, digits "
               "and '_', not starting with a digit)");
    expect_err(TENANT_WITH_LABELS("{1team: x}"), "\"1team\" is not a label name");
    expect_err(TENANT_WITH_LABELS("{abcdefghijabcdefghijabcdefghijabc: x}"),
               "\"abcdefghijabcdefghijabcdefghijabc\" is not a label name");
    expect_err(TENANT_WITH_LABELS("{a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"),
               "tenants[0].labels: at most 8 labels, got 9");
    expect_err(
        TENANT_WITH_LABELS("{team: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}"),
        "tenants[0].labels.team: must be 1 to 128 bytes long");
#undef TENANT_WITH_LABELS
}

static void test_auth_errors(void **state)
{
    char *err;

    (void)state;
    expect_err(BASE "auth: open\n", "auth: expected a mapping, got a string");
    expect_err(BASE "auth: {mode: none}\n",
               "auth.mode: unknown mode \"none\" (accepted: open, keys)");
    expect_err(BASE "auth: {mode: true}\n", "auth.mode: expected a string, got a boolean");
    expect_err(BASE "auth: {mod: open}\n", "auth: unknown key \"mod\" (expected one of: mode)");
    expect_err(BASE "auth: {mode: keys}\n",
               "auth.mode: keys needs at least one tenant with api_keys_sha256 (add tenants, or "
               "use mode: open)");
    expect_err(BASE "tenants: []\nauth: {mode: keys}\n", "auth.mode: keys needs at least one");

    /* every problem at once, each with its path */
    err = compile_err(BASE "tenants:\n"
                           "  - {name: \"\", api_keys_sha256: [x], labels: {\"a b\": c}}\n"
                           "  - {name: b, api_keys_sha256: []}\n"
                           "auth: {mode: closed}\n");
    assert_has(err, "tenants[0].name: must not be empty");
    assert_has(err, "tenants[0].api_keys_sha256[0]: expected the SHA-256 of a key");
    assert_has(err, "tenants[0].labels: \"a b\" is not a label name");
    assert_has(err, "tenants[1].api_keys_sha256: must not be empty");
    assert_has(err, "auth.mode: unknown mode \"closed\"");
    assert_int_equal(count_lines(err), 5);
    free(err);
}

/* Trees that did not come through the parsers can repeat a label. */
static void test_tenant_json_duplicates(void **state)
{
    const char *src = "{\"providers\": [{\"name\": \"p\", \"base_url\": \"http://h\"}],"
                      " \"models\": [{\"name\": \"m\", \"provider\": \"p\"}],"
                      " \"tenants\": [{\"name\": \"a\", \"api_keys_sha256\": [\"" H_ACME1 "\"],"
                      " \"labels\": {\"team\": \"x\"}}]}";
    cJSON *tree = cJSON_Parse(src), *labels;
    char *err = NULL;

    (void)state;
    assert_non_null(tree);
    labels =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(tree, "tenants"), 0), "labels");
    cJSON_AddStringToObject(labels, "team", "y");
    assert_null(sy_policy_compile_json(tree, &err));
    assert_has(err, "tenants[0].labels.team: given more than once");
    free(err);
    cJSON_Delete(tree);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_policy_yaml),
        cmocka_unit_test(test_yaml_and_json_compile_equal),
        cmocka_unit_test(test_canonical_json_round_trips),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_defaults_spelled_out_are_canonical),
        cmocka_unit_test(test_top_level_errors),
        cmocka_unit_test(test_unknown_keys_everywhere),
        cmocka_unit_test(test_provider_errors),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_all_errors_reported_together),
        cmocka_unit_test(test_error_flood_is_capped),
        cmocka_unit_test(test_user_text_is_escaped_in_errors),
        cmocka_unit_test(test_syntax_and_structure_errors),
        cmocka_unit_test(test_deep_nesting_rejected),
        cmocka_unit_test(test_compile_json_checks_duplicates),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_refcount_and_threads),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_flow_yaml_document),
        cmocka_unit_test(test_routing_policy),
        cmocka_unit_test(test_routing_defaults),
        cmocka_unit_test(test_routing_defaults_spelled_out_are_canonical),
        cmocka_unit_test(test_match_model_globs_and_exact),
        cmocka_unit_test(test_retry_backoff_raises_default_cap),
        cmocka_unit_test(test_match_errors),
        cmocka_unit_test(test_long_and_many_rules_refused),
        cmocka_unit_test(test_route_resilience_errors),
        cmocka_unit_test(test_provider_region_compliance_errors),
        cmocka_unit_test(test_resilience_errors),
        cmocka_unit_test(test_routing_errors_reported_together),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_auth_modes),
        cmocka_unit_test(test_tenants_canonical),
        cmocka_unit_test(test_tenant_errors),
        cmocka_unit_test(test_label_errors),
        cmocka_unit_test(test_auth_errors),
        cmocka_unit_test(test_tenant_json_duplicates),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
