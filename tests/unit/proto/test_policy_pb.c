/* tests/unit/proto/test_policy_pb.c - a compiled policy survives the trip through the
 * switchyard.v1.Policy message unchanged, and bad messages are refused with reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sy_policy.h"
#include "sy_policy_pb.h"

static const char src[] =
    "providers:\n"
    "  - {name: p1, kind: openai, base_url: \"http://127.0.0.1:1/v1\", api_key_env: K1,\n"
    "     headers: {X-A: one, X-B: two}, connect_timeout_ms: 700, timeout_ms: 9000}\n"
    "  - {name: p2, kind: azure, api_version: \"2024-10-21\", base_url: \"https://x.test\"}\n"
    "models:\n"
    "  - {name: a, provider: p1, pricing: {input_per_mtok: 0.15, output_per_mtok: 0.6,\n"
    "     cached_input_per_mtok: 0.075}}\n"
    "  - {name: b, provider: p2, upstream_model: b-up}\n"
    "routes:\n"
    "  - {name: r, match: {model: auto}, targets: [{model: a, weight: 7}, {model: b, weight: 0}]}\n"
    "server: {max_body_bytes: 2048, idle_timeout_ms: 1000}\n";

/* Every routing and resilience key, with the values whose 0 is not "absent" set to 0. */
static const char routing_src[] =
    "providers:\n"
    "  - {name: p1, base_url: \"http://127.0.0.1:1/v1\", region: eu, compliance: [hipaa, soc2]}\n"
    "  - {name: p2, base_url: \"http://127.0.0.1:2/v1\", region: us-east-1}\n"
    "models:\n"
    "  - {name: a, provider: p1}\n"
    "  - {name: b, provider: p2}\n"
    "  - {name: c, provider: p2}\n"
    "routes:\n"
    "  - name: code\n"
    "    match:\n"
    "      model: \"auto*\"\n"
    "      tags: [code, team-a]\n"
    "      min_prompt_tokens: 0\n"
    "      max_prompt_tokens: 8000\n"
    "      min_messages: 1\n"
    "      max_messages: 50\n"
    "      has_tools: true\n"
    "      has_images: false\n"
    "      json_mode: true\n"
    "      stream: false\n"
    "      keywords: [{any: [Refactor, \"stack trace\"]}, {any: [x], in: system},\n"
    "                 {any: [y], in: any}]\n"
    "      regex: [{pattern: \"^fix( the)? bug\", in: any},\n"
    "              {pattern: \"[A-Z]+\", case_sensitive: true}]\n"
    "    strategy: priority\n"
    "    targets: [{model: a, weight: 70}, {model: b, weight: 30}]\n"
    "    fallback: [c]\n"
    "    timeouts: {attempt_ms: 20000, first_token_ms: 5000, total_ms: 60000}\n"
    "    retries: {max: 2, backoff_ms: 150, max_backoff_ms: 3000}\n"
    "    hedge_after_ms: 800\n"
    "  - {name: exact, match: {model: cheap, max_messages: 0}, strategy: lowest_latency,\n"
    "     targets: [{model: c, weight: 0}], timeouts: {first_token_ms: 100}}\n"
    "  - {name: rest, match: {tags: [x]}, strategy: cache_affinity, targets: [{model: a}]}\n"
    "default_route: rest\n"
    "resilience:\n"
    "  breaker: {failures: 3, error_rate: 0.25, min_requests: 10, window_ms: 10000,\n"
    "            open_ms: 2000}\n"
    "  retry_budget: {ratio: 0, min_per_second: 0}\n"
    "  max_retry_after_ms: 0\n";

/* Tenants with labels and open access: key digests travel as hex, never as keys. */
static const char tenants_src[] =
    "providers: [{name: p1, base_url: \"http://127.0.0.1:1/v1\"}]\n"
    "models: [{name: a, provider: p1}]\n"
    "tenants:\n"
    "  - name: acme\n"
    "    api_keys_sha256:\n"
    "      - \"819685611E044DC4918E558945F580790BEFD0786CC2FB36E3417477ED704A3D\"\n"
    "      - \"e13ec0cb85b1e9b4c68f9ab2eb9abeed3376e468aa136fcfbac7c29ca02d6a08\"\n"
    "    labels: {team: search, feature: autocomplete}\n"
    "  - {name: beta, api_keys_sha256: "
    "[\"1d2df9ceab14124d795d51c02facc58d787e4a097532d69546d3db544ffddb53\"]}\n"
    "auth: {mode: open}\n";

/* Packs the policy compiled from <text>, unpacks it, and checks both print the same. */
static struct sy_policy *roundtrip(const char *text)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(text, strlen(text), &err);
    struct sy_policy *back;
    uint8_t *buf;
    size_t len;
    char *a, *b;

    if (!pol)
        fail_msg("compile failed: %s", err);
    buf = sy_policy_pack(pol, &len);
    assert_true(len > 0);
    back = sy_policy_unpack(buf, len, &err);
    if (!back)
        fail_msg("unpack failed: %s", err);
    a = sy_policy_to_json(pol);
    b = sy_policy_to_json(back);
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(buf);
    sy_policy_unref(pol);
    return back;
}

static void test_roundtrip(void **state)
{
    struct sy_policy *back = roundtrip(src);
    (void)state;

    assert_int_equal(back->server.max_body_bytes, 2048);
    assert_int_equal(back->routes[0].targets[1].weight, 0);
    assert_false(sy_match_is_empty(&back->routes[0].match));
    assert_int_equal(back->default_route, SIZE_MAX);
    assert_int_equal(back->resilience.max_retry_after_ms, 30000);
    sy_policy_unref(back);
}

static void test_roundtrip_routing(void **state)
{
    struct sy_policy *back = roundtrip(routing_src);
    const struct sy_route *r = &back->routes[0];
    (void)state;

    assert_string_equal(back->providers[0].region, "eu");
    assert_int_equal(back->providers[0].n_compliance, 2);
    assert_string_equal(back->providers[1].region, "us-east-1");
    assert_int_equal(back->providers[1].n_compliance, 0);
    assert_true(r->match.model_glob);
    assert_int_equal(r->match.min_prompt_tokens, 0);
    assert_int_equal(r->match.json_mode, SY_TRI_YES);
    assert_int_equal(r->match.stream, SY_TRI_NO);
    assert_int_equal(r->match.keywords[2].in, SY_TEXT_LAST_USER | SY_TEXT_SYSTEM);
    assert_true(r->match.regex[1].case_sensitive);
    assert_int_equal(r->strategy, SY_STRATEGY_PRIORITY);
    assert_int_equal(r->n_fallback, 1);
    assert_int_equal(r->retry_backoff_ms, 150);
    assert_int_equal(r->hedge_after_ms, 800);
    r = &back->routes[1];
    assert_ptr_equal(sy_policy_find_route(back, "cheap"), r);
    assert_int_equal(r->match.max_messages, 0); /* 0, not unset */
    assert_int_equal(r->match.min_messages, -1);
    assert_int_equal(r->strategy, SY_STRATEGY_LOWEST_LATENCY);
    assert_int_equal(r->attempt_timeout_ms, 0);
    assert_int_equal(r->first_token_timeout_ms, 100);
    assert_int_equal(back->routes[2].match.n_tags, 1);
    assert_false(sy_match_is_empty(&back->routes[2].match));
    assert_int_equal(back->default_route, 2);
    assert_true(back->resilience.breaker_error_rate == 0.25);
    assert_true(back->resilience.retry_budget_ratio == 0);
    assert_int_equal(back->resilience.retry_budget_min_per_s, 0);
    assert_int_equal(back->resilience.max_retry_after_ms, 0);
    sy_policy_unref(back);
}

static void test_roundtrip_tenants(void **state)
{
    struct sy_policy *back = roundtrip(tenants_src);
    const struct sy_tenant *acme;
    (void)state;

    assert_int_equal(back->n_tenants, 2);
    assert_int_equal(back->n_tenant_keys, 3);
    assert_int_equal(back->auth_mode, SY_AUTH_OPEN);
    acme = sy_policy_find_tenant(back, "acme");
    assert_non_null(acme);
    assert_int_equal(acme->n_keys, 2);
    assert_int_equal(acme->n_labels, 2);
    assert_string_equal(acme->labels[1].key, "feature");
    assert_string_equal(acme->labels[1].value, "autocomplete");
    assert_int_equal(back->tenant_keys[0].sha256[0], 0x81);
    assert_ptr_equal(sy_policy_find_tenant_by_key(back, back->tenant_keys[2].sha256),
                     sy_policy_find_tenant(back, "beta"));
    sy_policy_unref(back);

    /* the defaults: keys with tenants, open without */
    back = roundtrip("providers: [{name: p1, base_url: \"http://h\"}]\n"
                     "models: [{name: a, provider: p1}]\n"
                     "tenants: [{name: t, api_keys_sha256: "
                     "[\"1d2df9ceab14124d795d51c02facc58d787e4a097532d69546d3db544ffddb53\"]}]\n");
    assert_int_equal(back->auth_mode, SY_AUTH_KEYS);
    sy_policy_unref(back);
    back = roundtrip(src);
    assert_int_equal(back->auth_mode, SY_AUTH_OPEN);
    assert_int_equal(back->n_tenants, 0);
    sy_policy_unref(back);
}

/* An older control plane sends no auth message: the default mode applies. A bad tenant in
 * a message gets the compiler's field-path errors. */
static void test_tenant_messages(void **state)
{
    Switchyard__V1__Policy msg = SWITCHYARD__V1__POLICY__INIT;
    Switchyard__V1__Provider prov = SWITCHYARD__V1__PROVIDER__INIT;
    Switchyard__V1__Provider *provs[1] = {&prov};
    Switchyard__V1__Model model = SWITCHYARD__V1__MODEL__INIT;
    Switchyard__V1__Model *models[1] = {&model};
    Switchyard__V1__Tenant tenant = SWITCHYARD__V1__TENANT__INIT;
    Switchyard__V1__Tenant *tenants[1] = {&tenant};
    Switchyard__V1__Label label = SWITCHYARD__V1__LABEL__INIT;
    Switchyard__V1__Label *labels[1] = {&label};
    Switchyard__V1__Auth auth = SWITCHYARD__V1__AUTH__INIT;
    char *keys[1] = {(char *)"1d2df9ceab14124d795d51c02facc58d787e4a097532d69546d3db544ffddb53"};
    struct sy_policy *pol;
    char *err = NULL;
    (void)state;

    prov.name = (char *)"p";
    prov.base_url = (char *)"http://h";
    model.name = (char *)"m";
    model.provider = (char *)"p";
    tenant.name = (char *)"t";
    tenant.n_api_keys_sha256 = 1;
    tenant.api_keys_sha256 = keys;
    msg.n_providers = 1;
    msg.providers = provs;
    msg.n_models = 1;
    msg.models = models;
    msg.n_tenants = 1;
    msg.tenants = tenants;
    pol = sy_policy_from_pb(&msg, &err);
    if (!pol)
        fail_msg("%s", err);
    assert_int_equal(pol->auth_mode, SY_AUTH_KEYS);
    sy_policy_unref(pol);

    keys[0] = (char *)"sk-plaintext";
    label.key = (char *)"a-b";
    label.value = (char *)"x";
    tenant.n_labels = 1;
    tenant.labels = labels;
    auth.mode = (char *)"closed";
    msg.auth = &auth;
    assert_null(sy_policy_from_pb(&msg, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "tenants[0].api_keys_sha256[0]: expected the SHA-256 of a key"));
    assert_null(strstr(err, "sk-plaintext"));
    assert_non_null(strstr(err, "tenants[0].labels: \"a-b\" is not a label name"));
    assert_non_null(strstr(err, "auth.mode: unknown mode \"closed\""));
    free(err);
}

static void test_garbage_refused(void **state)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    char *err = NULL;
    (void)state;

    assert_null(sy_policy_unpack(junk, sizeof(junk), &err));
    assert_non_null(err);
    free(err);
}

/* A message that is well-formed protobuf but not a valid policy gets the compiler's
 * field-path errors. */
static void test_invalid_policy_message(void **state)
{
    Switchyard__V1__Policy msg = SWITCHYARD__V1__POLICY__INIT;
    Switchyard__V1__Model model = SWITCHYARD__V1__MODEL__INIT;
    Switchyard__V1__Model *models[1] = {&model};
    char *err = NULL;
    (void)state;

    model.name = (char *)"m";
    model.provider = (char *)"nope";
    msg.n_models = 1;
    msg.models = models;
    assert_null(sy_policy_from_pb(&msg, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "models[0].provider"));
    free(err);
}

/* The new fields of a hand-built message go through the compiler's checks too. */
static void test_invalid_routing_message(void **state)
{
    Switchyard__V1__Policy msg = SWITCHYARD__V1__POLICY__INIT;
    Switchyard__V1__Provider prov = SWITCHYARD__V1__PROVIDER__INIT;
    Switchyard__V1__Provider *provs[1] = {&prov};
    Switchyard__V1__Model model = SWITCHYARD__V1__MODEL__INIT;
    Switchyard__V1__Model *models[1] = {&model};
    Switchyard__V1__Target target = SWITCHYARD__V1__TARGET__INIT;
    Switchyard__V1__Target *targets[1] = {&target};
    Switchyard__V1__RegexRule rx = SWITCHYARD__V1__REGEX_RULE__INIT;
    Switchyard__V1__RegexRule *rxs[1] = {&rx};
    Switchyard__V1__KeywordRule kw = SWITCHYARD__V1__KEYWORD_RULE__INIT;
    Switchyard__V1__KeywordRule *kws[1] = {&kw};
    Switchyard__V1__RouteMatch match = SWITCHYARD__V1__ROUTE_MATCH__INIT;
    Switchyard__V1__Route route = SWITCHYARD__V1__ROUTE__INIT;
    Switchyard__V1__Route *routes[1] = {&route};
    char *fallback[1] = {(char *)"nope"};
    char *err = NULL;
    (void)state;

    prov.name = (char *)"p";
    prov.base_url = (char *)"http://h";
    prov.region = (char *)"EU";
    model.name = (char *)"m";
    model.provider = (char *)"p";
    target.model = (char *)"m";
    target.weight = 1;
    rx.pattern = (char *)"(";
    kw.in = 9;
    match.n_regex = 1;
    match.regex = rxs;
    match.n_keywords = 1;
    match.keywords = kws;
    route.name = (char *)"r";
    route.match = &match;
    route.strategy = (char *)"fastest";
    route.n_targets = 1;
    route.targets = targets;
    route.n_fallback = 1;
    route.fallback = fallback;
    msg.n_providers = 1;
    msg.providers = provs;
    msg.n_models = 1;
    msg.models = models;
    msg.n_routes = 1;
    msg.routes = routes;
    msg.default_route = (char *)"s";
    assert_null(sy_policy_from_pb(&msg, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "providers[0].region: \"EU\" is not a region"));
    assert_non_null(strstr(err, "routes[0].match.regex[0].pattern: invalid regular expression"));
    assert_non_null(strstr(err, "routes[0].match.keywords[0].any: must not be empty"));
    assert_non_null(strstr(err, "routes[0].match.keywords[0].in: expected a string, got a number"));
    assert_non_null(strstr(err, "routes[0].strategy: unknown strategy \"fastest\""));
    assert_non_null(strstr(err, "routes[0].fallback[0]: unknown model \"nope\""));
    assert_non_null(strstr(err, "default_route: unknown route \"s\""));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_roundtrip_routing),
        cmocka_unit_test(test_roundtrip_tenants),
        cmocka_unit_test(test_tenant_messages),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_invalid_policy_message),
        cmocka_unit_test(test_invalid_routing_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
