/* tests/unit/common/test_yaml.c - YAML and JSON documents to cJSON trees (sy_yaml, sy_json).
 *
 * Covers scalar resolution, containers, the refusals (duplicate keys, aliases, several
 * documents, hostile nesting) and that every error carries its position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_json.h"
#include "sy_util.h"
#include "sy_yaml.h"

static cJSON *yaml_ok(const char *src)
{
    char *err = NULL;
    cJSON *root = sy_yaml_load(src, strlen(src), &err);

    if (!root)
        fail_msg("unexpected error for <%s>: %s", src, err);
    assert_null(err);
    return root;
}

/* Asserts that <src> is refused with a message containing <want>. */
static void yaml_err(const char *src, const char *want)
{
    char *err = NULL;
    cJSON *root = sy_yaml_load(src, strlen(src), &err);

    assert_null(root);
    assert_non_null(err);
    if (!strstr(err, want))
        fail_msg("error <%s> does not contain <%s>", err, want);
    free(err);
}

static void test_plain_scalars(void **state)
{
    cJSON *r = yaml_ok("n1: ~\nn2: null\nn3:\nn4: NULL\n"
                       "b1: true\nb2: False\nb3: yes\nb4: off\nb5: NO\n"
                       "i1: 42\ni2: -7\ni3: +3\ni4: 0x1F\ni5: 0o17\ni6: 007\n"
                       "f1: 1.5\nf2: -.5\nf3: 1e3\nf4: 2.\nf5: 6.02E+23\n"
                       "s1: hello world\ns2: 1.2.3\ns3: 0x\ns4: 12abc\ns5: .\n");
    (void)state;
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "n1")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "n2")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "n3")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "n4")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "b1")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r, "b2")));
    /* YAML 1.2: yes/no/on/off are strings, so "NO" stays Norway. */
    assert_string_equal(cJSON_GetObjectItem(r, "b3")->valuestring, "yes");
    assert_string_equal(cJSON_GetObjectItem(r, "b4")->valuestring, "off");
    assert_string_equal(cJSON_GetObjectItem(r, "b5")->valuestring, "NO");
    assert_true(cJSON_GetObjectItem(r, "i1")->valuedouble == 42);
    assert_true(cJSON_GetObjectItem(r, "i2")->valuedouble == -7);
    assert_true(cJSON_GetObjectItem(r, "i3")->valuedouble == 3);
    assert_true(cJSON_GetObjectItem(r, "i4")->valuedouble == 31);
    assert_true(cJSON_GetObjectItem(r, "i5")->valuedouble == 15);
    assert_true(cJSON_GetObjectItem(r, "i6")->valuedouble == 7);
    assert_true(cJSON_GetObjectItem(r, "f1")->valuedouble == 1.5);
    assert_true(cJSON_GetObjectItem(r, "f2")->valuedouble == -0.5);
    assert_true(cJSON_GetObjectItem(r, "f3")->valuedouble == 1000);
    assert_true(cJSON_GetObjectItem(r, "f4")->valuedouble == 2);
    assert_true(cJSON_GetObjectItem(r, "f5")->valuedouble == 6.02e23);
    assert_string_equal(cJSON_GetObjectItem(r, "s1")->valuestring, "hello world");
    assert_string_equal(cJSON_GetObjectItem(r, "s2")->valuestring, "1.2.3");
    assert_string_equal(cJSON_GetObjectItem(r, "s3")->valuestring, "0x");
    assert_string_equal(cJSON_GetObjectItem(r, "s4")->valuestring, "12abc");
    assert_string_equal(cJSON_GetObjectItem(r, "s5")->valuestring, ".");
    cJSON_Delete(r);
}

static void test_quoted_and_block_scalars_are_strings(void **state)
{
    cJSON *r = yaml_ok("a: \"123\"\nb: 'true'\nc: ''\nd: \"null\"\n"
                       "e: |\n  line1\n  line2\nf: >\n  folded\n  text\n");
    (void)state;
    assert_string_equal(cJSON_GetObjectItem(r, "a")->valuestring, "123");
    assert_string_equal(cJSON_GetObjectItem(r, "b")->valuestring, "true");
    assert_string_equal(cJSON_GetObjectItem(r, "c")->valuestring, "");
    assert_string_equal(cJSON_GetObjectItem(r, "d")->valuestring, "null");
    assert_string_equal(cJSON_GetObjectItem(r, "e")->valuestring, "line1\nline2\n");
    assert_string_equal(cJSON_GetObjectItem(r, "f")->valuestring, "folded text\n");
    cJSON_Delete(r);
}

static void test_tags(void **state)
{
    cJSON *r = yaml_ok("a: !!str 123\nb: !!int \"12\"\nc: !!float 3\nd: ! 5\ne: !!null ''\n");
    (void)state;
    assert_string_equal(cJSON_GetObjectItem(r, "a")->valuestring, "123");
    assert_true(cJSON_GetObjectItem(r, "b")->valuedouble == 12);
    assert_true(cJSON_GetObjectItem(r, "c")->valuedouble == 3);
    assert_string_equal(cJSON_GetObjectItem(r, "d")->valuestring, "5");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "e")));
    cJSON_Delete(r);
    yaml_err("a: !custom x\n", "line 1, column 4: unsupported tag");
    yaml_err("a: !!int abc\n", "does not match its tag");
    yaml_err("a: !!set {x: 1}\n", "unsupported tag");
}

static void test_containers(void **state)
{
    cJSON *r = yaml_ok("list: [1, two, {k: v}]\n"
                       "block:\n  - a\n  - nested:\n      deep: [x]\n"
                       "flow: {a: 1, b: [true]}\n");
    cJSON *list, *block;

    (void)state;
    list = cJSON_GetObjectItem(r, "list");
    assert_int_equal(cJSON_GetArraySize(list), 3);
    assert_string_equal(cJSON_GetArrayItem(list, 1)->valuestring, "two");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 2), "k")->valuestring, "v");
    block = cJSON_GetObjectItem(r, "block");
    assert_int_equal(cJSON_GetArraySize(block), 2);
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(
                               cJSON_GetObjectItem(cJSON_GetArrayItem(block, 1), "nested"), "deep"),
                           0)
            ->valuestring,
        "x");
    assert_true(cJSON_IsTrue(
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "flow"), "b"), 0)));
    cJSON_Delete(r);
}

static void test_keys_are_strings_in_order(void **state)
{
    cJSON *r = yaml_ok("1: a\ntrue: b\nz: c\n");
    (void)state;
    assert_string_equal(r->child->string, "1");
    assert_string_equal(r->child->next->string, "true");
    assert_string_equal(r->child->next->next->string, "z");
    cJSON_Delete(r);
}

static void test_documents(void **state)
{
    cJSON *r;

    (void)state;
    r = yaml_ok("---\na: 1\n...\n");
    assert_true(cJSON_GetObjectItem(r, "a")->valuedouble == 1);
    cJSON_Delete(r);
    r = yaml_ok("---\n");
    assert_true(cJSON_IsNull(r));
    cJSON_Delete(r);
    r = yaml_ok("just text\n");
    assert_string_equal(r->valuestring, "just text");
    cJSON_Delete(r);
    yaml_err("", "empty");
    yaml_err("# only a comment\n", "empty");
    yaml_err("a: 1\n---\nb: 2\n", "line 2, column 1: only one YAML document is allowed");
}

static void test_refusals(void **state)
{
    (void)state;
    yaml_err("a: 1\nb: 2\na: 3\n", "line 3, column 1: duplicate key \"a\"");
    yaml_err("x:\n  - {k: 1, k: 2}\n", "line 2, column 12: duplicate key \"k\"");
    yaml_err("a: &x 1\nb: *x\n", "line 2, column 4: aliases");
    yaml_err("? [a, b]\n: 1\n", "line 1, column 3: mapping keys must be scalars");
    yaml_err("a: .inf\n", "line 1, column 4: number \".inf\" is out of range");
    yaml_err("a: .nan\n", "out of range");
    yaml_err("a: 1e999\n", "out of range");
    yaml_err("a: \"x\\0y\"\n", "NUL characters");
    yaml_err("a: \xff\n", "byte 3: invalid leading UTF-8 octet");
}

static void test_syntax_errors_have_positions(void **state)
{
    (void)state;
    yaml_err("a: 1\nb: [1, 2\nc: 3\n", "line 3, column 2: did not find expected ',' or ']'");
    yaml_err("a:\n  b: 1\n c: 2\n", "line 3, column 2");
    yaml_err("a: 'unterminated\n", "line 2");
    yaml_err("\t- tab\n", "line 1");
}

static char *nested(const char *open, const char *close, int depth)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *s = sy_xmalloc((size_t)depth * (lo + lc) + 2);
    size_t n = 0;
    int i;

    for (i = 0; i < depth; i++, n += lo)
        memcpy(s + n, open, lo);
    s[n++] = '1';
    for (i = 0; i < depth; i++, n += lc)
        memcpy(s + n, close, lc);
    s[n] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    char *ok = nested("[", "]", SY_YAML_MAX_DEPTH);
    char *deep = nested("[", "]", SY_YAML_MAX_DEPTH + 1);
    char *huge = nested("[", "]", 100000);
    char *json_ok = nested("{\"a\":", "}", SY_JSON_MAX_DEPTH);
    char *json_deep = nested("{\"a\":", "}", SY_JSON_MAX_DEPTH + 1);
    cJSON *r;

    (void)state;
    r = yaml_ok(ok);
    cJSON_Delete(r);
    yaml_err(deep, "line 1, column 65: nesting is deeper than 64 levels");
    yaml_err(huge, "nesting is deeper than 64 levels");
    r = yaml_ok(json_ok);
    cJSON_Delete(r);
    yaml_err(json_deep, "nesting deeper than 64 levels");
    free(ok);
    free(deep);
    free(huge);
    free(json_ok);
    free(json_deep);
}

static void test_big_mapping_is_fast(void **state)
{
    size_t n = 50000, i, len = 0, cap = n * 24;
    char *src = sy_xmalloc(cap);
    cJSON *r;

    (void)state;
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(src + len, cap - len, "key%zu: %zu\n", i, i);
    r = sy_yaml_load(src, len, NULL);
    assert_non_null(r);
    assert_int_equal(sy_json_count(r), n);
    cJSON_Delete(r);
    /* the same mapping with its last key repeated */
    len += (size_t)snprintf(src + len, cap - len, "key7: again\n");
    assert_null(sy_yaml_load(src, len, NULL));
    free(src);
}

static void test_json_input(void **state)
{
    cJSON *r;

    (void)state;
    r = yaml_ok("  {\"a\": [1, \"yes\", null], \"b\": {\"c\": false}}  \n");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "a"), 1)->valuestring, "yes");
    cJSON_Delete(r);
    /* not JSON, but a YAML flow mapping: still accepted */
    r = yaml_ok("{a: 1, b: [x]}");
    assert_true(cJSON_GetObjectItem(r, "a")->valuedouble == 1);
    cJSON_Delete(r);
    /* a byte order mark before the brace */
    r = yaml_ok("\xEF\xBB\xBF{\"a\": 1}");
    assert_true(cJSON_GetObjectItem(r, "a")->valuedouble == 1);
    cJSON_Delete(r);
    yaml_err("{\n  \"a\": 1,\n  \"b\": }\n", "line 3, column 8: invalid JSON near \"}\"");
    yaml_err("{\"a\": 1, \"a\": 2}", "(root): duplicate key \"a\"");
    yaml_err("{\"p\": [{\"n\": 1, \"n\": 2}]}", "p[0]: duplicate key \"n\"");
    yaml_err("{\"a\": 1", "line 1, column 7: invalid JSON");
    yaml_err("{\"a\": 1} {\"b\": 2}", "line 1, column 10: unexpected text after the JSON value");
    yaml_err("{\"a\": 1,}", "invalid JSON");
    yaml_err("{a: 1, b: [}", "line 1, column 12: did not find expected node content");
}

static void test_json_helpers(void **state)
{
    cJSON *r;
    char *err = NULL;

    (void)state;
    r = sy_json_parse("[1, {\"x\": \"y\"}]", 15, &err);
    assert_non_null(r);
    assert_int_equal(sy_json_count(r), 2);
    assert_string_equal(sy_json_type_name(r), "array");
    assert_string_equal(sy_json_type_name(cJSON_GetArrayItem(r, 1)), "object");
    assert_string_equal(sy_json_type_name(NULL), "nothing");
    assert_int_equal(sy_json_check_tree(r, 2, &err), 0);
    assert_int_equal(sy_json_check_tree(r, 1, &err), -EINVAL);
    assert_non_null(strstr(err, "[1]: nesting deeper than 1 levels"));
    free(err);
    cJSON_Delete(r);
    /* <len> bounds the input even without a NUL */
    r = sy_json_parse("{\"a\":1}garbage", 7, NULL);
    assert_non_null(r);
    cJSON_Delete(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_scalars),
        cmocka_unit_test(test_quoted_and_block_scalars_are_strings),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_containers),
        cmocka_unit_test(test_keys_are_strings_in_order),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_syntax_errors_have_positions),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_big_mapping_is_fast),
        cmocka_unit_test(test_json_input),
        cmocka_unit_test(test_json_helpers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
