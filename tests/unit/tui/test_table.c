/* tests/unit/tui/test_table.c - table layout: widths, alignment, dropping and shrinking
 * columns to fit (tui_table.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui_table.h"

static const struct tui_col cols[] = {
    {"NAME", TUI_ALIGN_LEFT, 0, 6},
    {"N", TUI_ALIGN_RIGHT, 0, 0},
    {"EXTRA", TUI_ALIGN_LEFT, 2, 0},
    {"MORE", TUI_ALIGN_LEFT, 1, 0},
};

static struct tui_table *sample(void)
{
    struct tui_table *t = tui_table_new(cols, 4);

    tui_table_cell(t, TUI_S_NORMAL, "alpha-long-name");
    tui_table_cellf(t, TUI_S_BAD, "%d", 7);
    tui_table_cell(t, TUI_S_NORMAL, "x");
    tui_table_cell(t, TUI_S_NORMAL, "m1");
    tui_table_cell(t, TUI_S_NORMAL, "b");
    tui_table_cell(t, TUI_S_NORMAL, "1234");
    tui_table_cell(t, TUI_S_NORMAL, "yy");
    tui_table_cell(t, TUI_S_NORMAL, "m2");
    return t;
}

static void check_lines(const struct tui_lines *ls, const char *const *want, size_t n)
{
    assert_int_equal(ls->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ls->v[i].text, want[i]);
}

static void test_natural(void **state)
{
    static const char *const want[] = {
        "  NAME                N  EXTRA  MORE",
        "  alpha-long-name     7  x      m1",
        "  b                1234  yy     m2",
    };
    struct tui_table *t = sample();
    struct tui_lines ls = {0};

    (void)state;
    assert_int_equal(tui_table_rows(t), 2);
    tui_table_render(t, 0, 2, false, &ls);
    check_lines(&ls, want, 3);
    /* The 7 keeps its style, the header has the header style. */
    assert_int_equal(tui_line_style_at(&ls.v[1], strlen("  alpha-long-name     ")), TUI_S_BAD);
    assert_int_equal(tui_line_style_at(&ls.v[0], 2), TUI_S_HEADER);
    tui_lines_cleanup(&ls);
    tui_table_free(t);
}

static void test_shrink_then_drop(void **state)
{
    static const char *const shrunk[] = {
        "NAME             N  EXTRA  MORE",
        "alpha-long-~     7  x      m1",
        "b             1234  yy     m2",
    };
    static const char *const dropped[] = {
        "NAME          N  MORE",
        "alpha-lo~     7  m1",
        "b          1234  m2",
    };
    static const char *const minimal[] = {
        "NAME        N",
        "alpha-~     7",
        "b        1234",
    };
    struct tui_table *t = sample();
    struct tui_lines ls = {0};

    (void)state;
    /* Natural width is 34: the flexible NAME column gives up 3 columns. */
    tui_table_render(t, 31, 0, false, &ls);
    check_lines(&ls, shrunk, 3);
    tui_lines_cleanup(&ls);
    /* Shrinking NAME to 6 is not enough: EXTRA (the highest drop rank) goes, and NAME
     * gives up what is still missing. */
    tui_table_render(t, 21, 0, false, &ls);
    check_lines(&ls, dropped, 3);
    tui_lines_cleanup(&ls);
    /* Still too wide: MORE goes too. */
    tui_table_render(t, 13, 0, false, &ls);
    check_lines(&ls, minimal, 3);
    tui_lines_cleanup(&ls);
    /* Narrower than the columns that always show: lines are cut. */
    tui_table_render(t, 8, 0, false, &ls);
    assert_string_equal(ls.v[1].text, "alpha~ ~");
    for (size_t i = 0; i < ls.n; i++)
        assert_true(tui_line_cols(&ls.v[i]) <= 8);
    tui_lines_cleanup(&ls);
    tui_table_free(t);
}

static void test_drop_early(void **state)
{
    static const struct tui_col early[] = {
        {"NOTE", TUI_ALIGN_LEFT, 0, 4},
        {"BUILD", TUI_ALIGN_LEFT, TUI_DROP_EARLY, 0},
    };
    struct tui_table *t = tui_table_new(early, 2);
    struct tui_lines ls = {0};

    (void)state;
    tui_table_cell(t, TUI_S_NORMAL, "a long note");
    tui_table_cell(t, TUI_S_NORMAL, "v1.2.3");
    /* 11 + 2 + 6 = 19 > 15: BUILD goes before NOTE is cut. */
    tui_table_render(t, 15, 0, true, &ls);
    assert_string_equal(ls.v[0].text, "NOTE");
    assert_string_equal(ls.v[1].text, "a long note");
    tui_lines_cleanup(&ls);
    tui_table_free(t);
}

static void test_sort_mark_and_empty_cells(void **state)
{
    struct tui_table *t = tui_table_new(cols, 4);
    struct tui_lines ls = {0};

    (void)state;
    tui_table_cell(t, TUI_S_NORMAL, "only");
    tui_table_cell(t, TUI_S_NORMAL, NULL); /* an empty cell; the row is short */
    tui_table_sorted(t, 1, true);
    tui_table_render(t, 0, 0, true, &ls);
    assert_string_equal(ls.v[0].text, "NAME  N\xe2\x96\xbc  EXTRA  MORE");
    assert_string_equal(ls.v[1].text, "only             "); /* N, EXTRA padded */
    tui_lines_cleanup(&ls);
    tui_table_sorted(t, 0, false);
    tui_table_render(t, 0, 0, false, &ls);
    assert_string_equal(ls.v[0].text, "NAME*  N  EXTRA  MORE");
    tui_lines_cleanup(&ls);
    tui_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_natural),
        cmocka_unit_test(test_shrink_then_drop),
        cmocka_unit_test(test_drop_early),
        cmocka_unit_test(test_sort_mark_and_empty_cells),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
