/* tests/unit/controlplane/test_ctl_table.c - switchyardctl's table printer and human times. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The CLI is an executable, not a library: the test compiles the module itself. */
#include "../../../controlplane/ctl/ctl_table.c"

/* Prints <t> limited to <width> into a heap string (caller frees). */
static char *render(const struct ctl_table *t, size_t width)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    ctl_table_print(t, f, width);
    fclose(f);
    return buf;
}

static void test_alignment(void **state)
{
    static const char *const headers[] = {"NODE", "ADDRESS", "NOTE"};
    struct ctl_table *t = ctl_table_new(3, headers);
    char *out;
    (void)state;

    ctl_table_cell(t, "p1");
    ctl_table_cell(t, "127.0.0.1:8080");
    ctl_table_cell(t, "short");
    ctl_table_cellf(t, "node-%d", 22);
    ctl_table_cell(t, NULL);
    ctl_table_cell(t, "");
    assert_int_equal(ctl_table_rows(t), 2);
    out = render(t, 0);
    assert_string_equal(out, "NODE     ADDRESS         NOTE\n"
                             "p1       127.0.0.1:8080  short\n"
                             "node-22  -\n");
    free(out);
    ctl_table_free(t);
    ctl_table_free(NULL);
}

static void test_flex_truncation(void **state)
{
    static const char *const headers[] = {"ID", "NACK", "X"};
    struct ctl_table *t = ctl_table_new(3, headers);
    char *out;
    (void)state;

    ctl_table_set_flex(t, 1);
    ctl_table_cell(t, "1");
    ctl_table_cell(t, "routes[0].targets[1].model: unknown model \"gpt5\"");
    ctl_table_cell(t, "y");
    /* 2 + 2 + flex + 2 + 1 = 25 leaves 18 for the flex column. */
    out = render(t, 25);
    assert_string_equal(out, "ID  NACK                X\n"
                             "1   routes[0].targe...  y\n");
    free(out);
    /* Never below CTL_TABLE_MIN_FLEX, however narrow the terminal. */
    out = render(t, 5);
    assert_string_equal(out, "ID  NACK          X\n"
                             "1   routes[0]...  y\n");
    free(out);
    /* No limit: whole cells. */
    out = render(t, 0);
    assert_non_null(strstr(out, "\"gpt5\"  y\n"));
    free(out);
    ctl_table_free(t);
}

static void test_sanitize_and_utf8(void **state)
{
    static const char *const headers[] = {"NOTE", "N"};
    struct ctl_table *t = ctl_table_new(2, headers);
    char *s = ctl_sanitize("a\nb\033[31mc\x7f");
    char *out;
    (void)state;

    assert_string_equal(s, "a b [31mc ");
    free(s);
    assert_int_equal(ctl_display_width("été"), 3);
    ctl_table_cell(t, "été");
    ctl_table_cell(t, "1");
    ctl_table_cell(t, "line1\nline2");
    ctl_table_cell(t, "2");
    out = render(t, 0);
    assert_string_equal(out, "NOTE         N\n"
                             "été          1\n"
                             "line1 line2  2\n");
    free(out);
    ctl_table_free(t);
}

static void test_utf8_cut(void **state)
{
    static const char *const headers[] = {"N"};
    struct ctl_table *t = ctl_table_new(1, headers);
    char *out;
    (void)state;

    ctl_table_set_flex(t, 0);
    ctl_table_cell(t, "éééééééééééééééééééé");
    out = render(t, 12);
    /* Cut between code points, never inside one. */
    assert_string_equal(out, "N\nééééééééé...\n");
    free(out);
    ctl_table_free(t);
}

static void test_times(void **state)
{
    char b[48];
    (void)state;

    assert_string_equal(ctl_fmt_time(b, sizeof(b), 1795341845000), "2026-11-22 10:04:05Z");
    assert_string_equal(ctl_fmt_time(b, sizeof(b), 0), "-");
    assert_string_equal(ctl_fmt_duration(b, sizeof(b), 999), "0s");
    assert_string_equal(ctl_fmt_duration(b, sizeof(b), -5000), "0s");
    assert_string_equal(ctl_fmt_duration(b, sizeof(b), 12000), "12s");
    assert_string_equal(ctl_fmt_duration(b, sizeof(b), 250000), "4m10s");
    assert_string_equal(ctl_fmt_duration(b, sizeof(b), 11520000), "3h12m");
    assert_string_equal(ctl_fmt_duration(b, sizeof(b), 187200000), "2d4h");
    assert_string_equal(ctl_fmt_ago(b, sizeof(b), 1000000, 1012000), "12s ago");
    assert_string_equal(ctl_fmt_ago(b, sizeof(b), 1000000, 1000500), "just now");
    /* A proxy clock slightly ahead of ours is not "in the future". */
    assert_string_equal(ctl_fmt_ago(b, sizeof(b), 1003000, 1000000), "just now");
    assert_string_equal(ctl_fmt_ago(b, sizeof(b), 0, 1000000), "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_flex_truncation),
        cmocka_unit_test(test_sanitize_and_utf8),
        cmocka_unit_test(test_utf8_cut),
        cmocka_unit_test(test_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
