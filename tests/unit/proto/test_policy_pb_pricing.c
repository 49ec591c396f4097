/* tests/unit/proto/test_policy_pb_pricing.c - price windows and tenant budgets survive the
 * trip through the switchyard.v1.Policy message (a window price of 0 stays 0), and a bad
 * window in a message is refused with the compiler's path. */
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
    "providers: [{name: p, base_url: \"http://127.0.0.1:1/v1\"}]\n"
    "models:\n"
    "  - name: a\n"
    "    provider: p\n"
    "    pricing:\n"
    "      input_per_mtok: 1\n"
    "      output_per_mtok: 2\n"
    "      cached_input_per_mtok: 0.5\n"
    "      windows:\n"
    "        - {start: \"00:00\", end: \"06:00\", input_per_mtok: 0, output_per_mtok: 0}\n"
    "        - {start: \"12:00\", end: \"24:00\", cached_input_per_mtok: 0.25}\n"
    "  - {name: b, provider: p, pricing: {input_per_mtok: 3}}\n"
    "tenants:\n"
    "  - name: t1\n"
    "    api_keys_sha256: [\"1d2df9ceab14124d795d51c02facc58d787e4a097532d69546d3db544ffddb53\"]\n"
    "    budget: {daily_usd: 5, monthly_usd: 100.25}\n"
    "  - name: t2\n"
    "    api_keys_sha256: [\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"]\n"
    "    budget: {monthly_usd: 7}\n"
    "  - name: t3\n"
    "    api_keys_sha256: [\"fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9\"]\n";

static void test_roundtrip_windows_and_budgets(void **state)
{
    char *err = NULL, *a, *b;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err), *back;
    const struct sy_model *m;
    size_t len;
    uint8_t *buf;

    (void)state;
    if (!pol)
        fail_msg("%s", err);
    buf = sy_policy_pack(pol, &len);
    back = sy_policy_unpack(buf, len, &err);
    if (!back)
        fail_msg("unpack failed: %s", err);
    a = sy_policy_to_json(pol);
    b = sy_policy_to_json(back);
    assert_string_equal(a, b);

    m = sy_policy_find_model(back, "a");
    assert_int_equal(m->n_windows, 2);
    assert_int_equal(m->windows[0].start_min, 0);
    assert_int_equal(m->windows[0].end_min, 6 * 60);
    assert_true(m->windows[0].input_per_mtok == 0); /* 0 is a price, not "absent" */
    assert_true(m->windows[0].output_per_mtok == 0);
    assert_true(m->windows[0].cached_input_per_mtok == 0.5);
    assert_int_equal(m->windows[1].end_min, 0);
    assert_true(m->windows[1].input_per_mtok == 1);
    assert_true(m->windows[1].cached_input_per_mtok == 0.25);
    assert_int_equal(sy_policy_find_model(back, "b")->n_windows, 0);

    assert_true(sy_policy_find_tenant(back, "t1")->budget_daily_usd == 5);
    assert_true(sy_policy_find_tenant(back, "t1")->budget_monthly_usd == 100.25);
    assert_true(sy_policy_find_tenant(back, "t2")->budget_daily_usd == 0);
    assert_true(sy_policy_find_tenant(back, "t2")->budget_monthly_usd == 7);
    assert_true(sy_policy_find_tenant(back, "t3")->budget_monthly_usd == 0);
    free(a);
    free(b);
    free(buf);
    sy_policy_unref(back);
    sy_policy_unref(pol);
}

/* A message from a producer that got a window wrong is checked like a policy file. */
static void test_bad_window_message(void **state)
{
    Switchyard__V1__Policy msg = SWITCHYARD__V1__POLICY__INIT;
    Switchyard__V1__Provider prov = SWITCHYARD__V1__PROVIDER__INIT;
    Switchyard__V1__Provider *provs[1] = {&prov};
    Switchyard__V1__Model model = SWITCHYARD__V1__MODEL__INIT;
    Switchyard__V1__Model *models[1] = {&model};
    Switchyard__V1__Pricing pricing = SWITCHYARD__V1__PRICING__INIT;
    Switchyard__V1__PriceWindow w0 = SWITCHYARD__V1__PRICE_WINDOW__INIT;
    Switchyard__V1__PriceWindow w1 = SWITCHYARD__V1__PRICE_WINDOW__INIT;
    Switchyard__V1__PriceWindow *ws[2] = {&w0, &w1};
    char *err = NULL;

    (void)state;
    prov.name = (char *)"p";
    prov.kind = (char *)"openai";
    prov.base_url = (char *)"http://h";
    msg.n_providers = 1;
    msg.providers = provs;
    model.name = (char *)"m";
    model.provider = (char *)"p";
    model.pricing = &pricing;
    pricing.n_windows = 2;
    pricing.windows = ws;
    w0.start = (char *)"01:00";
    w0.end = (char *)"03:00";
    w1.start = (char *)"02:00"; /* overlaps */
    w1.end = (char *)"";        /* absent */
    msg.n_models = 1;
    msg.models = models;
    assert_null(sy_policy_from_pb(&msg, &err));
    assert_non_null(strstr(err, "models[0].pricing.windows[1].end: is required"));
    free(err);

    w1.end = (char *)"04:00";
    assert_null(sy_policy_from_pb(&msg, &err));
    assert_non_null(strstr(err, "models[0].pricing.windows[1]: 02:00-04:00 overlaps windows[0] "
                                "(01:00-03:00)"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_windows_and_budgets),
        cmocka_unit_test(test_bad_window_message),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
