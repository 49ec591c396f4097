/* tests/unit/tui/test_text.c - styled lines and UTF-8 widths (tui_text.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui_text.h"

#define ELLIPSIS "\xe2\x80\xa6"
#define CJK "\xe4\xb8\xad" /* U+4E2D, two columns */

static void test_utf8_next(void **state)
{
    size_t n;

    (void)state;
    assert_int_equal(tui_utf8_next("A", 1, &n), 'A');
    assert_int_equal(n, 1);
    assert_int_equal(tui_utf8_next("\xc3\xa9", 2, &n), 0xe9);
    assert_int_equal(n, 2);
    assert_int_equal(tui_utf8_next(CJK, 3, &n), 0x4e2d);
    assert_int_equal(n, 3);
    assert_int_equal(tui_utf8_next("\xf0\x9f\x98\x80", 4, &n), 0x1f600);
    assert_int_equal(n, 4);
    /* Invalid: a lone continuation byte, an overlong form, a truncated sequence, a
     * surrogate. Each consumes one byte. */
    assert_int_equal(tui_utf8_next("\x80", 1, &n), -1);
    assert_int_equal(n, 1);
    assert_int_equal(tui_utf8_next("\xc0\xaf", 2, &n), -1);
    assert_int_equal(tui_utf8_next("\xe4\xb8", 2, &n), -1);
    assert_int_equal(n, 1);
    assert_int_equal(tui_utf8_next("\xed\xa0\x80", 3, &n), -1);
}

static void test_cols_and_cut(void **state)
{
    const char *s = "a" CJK "b";

    (void)state;
    assert_int_equal(tui_text_cols("hello", 5), 5);
    assert_int_equal(tui_text_cols(s, strlen(s)), 4);
    assert_int_equal(tui_text_cols("e\xcc\x81", 3), 1); /* e + combining acute */
    assert_int_equal(tui_text_cols("\xff\xfe", 2), 2);  /* invalid bytes: one each */
    assert_int_equal(tui_text_cut(s, strlen(s), 0), 0);
    assert_int_equal(tui_text_cut(s, strlen(s), 1), 1);
    assert_int_equal(tui_text_cut(s, strlen(s), 2), 1); /* the wide char does not fit */
    assert_int_equal(tui_text_cut(s, strlen(s), 3), 4);
    assert_int_equal(tui_text_cut(s, strlen(s), 99), strlen(s));
}

static void test_clean(void **state)
{
    char *c;

    (void)state;
    assert_null(tui_text_clean(NULL));
    c = tui_text_clean("ok \x1b[31mred\x07\t\nnext\x7f \xc2\x9b \xff" CJK);
    assert_string_equal(c, "ok ?[31mred?  next? ? ?" CJK);
    free(c);
}

static void test_line_runs(void **state)
{
    struct tui_lines ls = {0};
    struct tui_line *l = tui_lines_add(&ls);

    (void)state;
    tui_line_put(l, TUI_S_TITLE, "ab");
    tui_line_put(l, TUI_S_TITLE, "cd"); /* same style: one run */
    tui_line_put(l, TUI_S_NORMAL, "");  /* nothing: no run */
    tui_line_putf(l, TUI_S_BAD, "%d", 42);
    assert_string_equal(l->text, "abcd42");
    assert_int_equal(l->nruns, 2);
    assert_int_equal(l->runs[0].style, TUI_S_TITLE);
    assert_int_equal(l->runs[1].start, 4);
    assert_int_equal(tui_line_style_at(l, 3), TUI_S_TITLE);
    assert_int_equal(tui_line_style_at(l, 5), TUI_S_BAD);
    tui_line_pad(l, TUI_S_NORMAL, 10);
    assert_string_equal(l->text, "abcd42    ");
    assert_int_equal(tui_line_cols(l), 10);
    tui_line_pad(l, TUI_S_NORMAL, 3); /* already wider: nothing */
    assert_int_equal(tui_line_cols(l), 10);
    tui_lines_cleanup(&ls);
    assert_int_equal(ls.n, 0);
}

static void test_long_putf(void **state)
{
    struct tui_lines ls = {0};
    struct tui_line *l = tui_lines_add(&ls);
    char big[600];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tui_line_putf(l, TUI_S_NORMAL, "[%s]", big);
    assert_int_equal(l->len, sizeof(big) + 1);
    assert_int_equal(l->text[0], '[');
    assert_int_equal(l->text[l->len - 1], ']');
    tui_lines_cleanup(&ls);
}

static void test_fit(void **state)
{
    struct tui_lines ls = {0};
    struct tui_line *l;

    (void)state;
    l = tui_lines_add(&ls);
    tui_line_put(l, TUI_S_NORMAL, "hello ");
    tui_line_put(l, TUI_S_BAD, "world");
    tui_line_fit(l, 20, true); /* fits: unchanged */
    assert_string_equal(l->text, "hello world");
    tui_line_fit(l, 8, true);
    assert_string_equal(l->text, "hello w" ELLIPSIS);
    assert_int_equal(tui_line_cols(l), 8);
    assert_int_equal(tui_line_style_at(l, l->len - 1), TUI_S_BAD);

    l = tui_lines_add(&ls);
    tui_line_put(l, TUI_S_NORMAL, "hello world");
    tui_line_fit(l, 5, false);
    assert_string_equal(l->text, "hell~");
    /* Cutting before the first run's end drops the later runs. */
    l = tui_lines_add(&ls);
    tui_line_put(l, TUI_S_TITLE, "abc");
    tui_line_put(l, TUI_S_BAD, "def");
    tui_line_fit(l, 2, false);
    assert_string_equal(l->text, "a~");
    assert_int_equal(l->nruns, 1);

    /* A wide character that would straddle the edge leaves a space before the ellipsis. */
    l = tui_lines_add(&ls);
    tui_line_put(l, TUI_S_NORMAL, "a" CJK CJK);
    tui_line_fit(l, 4, true);
    assert_string_equal(l->text, "a" CJK ELLIPSIS);
    tui_line_fit(l, 3, true);
    assert_string_equal(l->text, "a " ELLIPSIS);
    assert_int_equal(tui_line_cols(l), 3);

    l = tui_lines_add(&ls);
    tui_line_put(l, TUI_S_NORMAL, "abc");
    tui_line_fit(l, 0, true);
    assert_string_equal(l->text, "");
    assert_int_equal(l->nruns, 0);
    tui_lines_cleanup(&ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_next), cmocka_unit_test(test_cols_and_cut),
        cmocka_unit_test(test_clean),     cmocka_unit_test(test_line_runs),
        cmocka_unit_test(test_long_putf), cmocka_unit_test(test_fit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
