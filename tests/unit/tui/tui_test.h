/* tests/unit/tui/tui_test.h - helpers for the dashboard's unit tests: a model loaded from
 * the contract fixtures in fixtures/, and rendered lines as plain text.
 *
 * Header-only, for test programs that include cmocka first. The fixtures are the admin
 * API's documented examples (docs/admin-api.md), so the views are tested against the
 * contract rather than against whatever the server happens to send today.
 */
#ifndef TUI_TEST_H
#define TUI_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_DIR "fixtures/"
#include "../fixture.h"

#include "tui_model.h"
#include "tui_text.h"

/* A fixed "now": the stats fixture's now_unix_ms (2026-11-22 00:29:37.360 UTC). */
#define TEST_NOW_MS 1795307377360LL

#define TEST_UNUSED __attribute__((unused))

/* Fixture <name> as a JSON tree (caller frees); also keeps fixture.h's helper used. */
TEST_UNUSED static cJSON *fixture_json(const char *name)
{
    return parse_fixture(name);
}

/* Applies fixture <name> as a 200 answer for <src> to <m>. */
TEST_UNUSED static void apply_fixture(struct tui_model *m, enum tui_src src, const char *name)
{
    size_t len;
    char *body = read_fixture(name, &len);

    assert_int_equal(tui_model_apply(m, src, "1m", NULL, 200, body, len, TEST_NOW_MS), 0);
    free(body);
}

/* A model holding every fixture. */
TEST_UNUSED static void load_all(struct tui_model *m)
{
    memset(m, 0, sizeof(*m));
    apply_fixture(m, TUI_SRC_STATS, "stats.json");
    apply_fixture(m, TUI_SRC_FLEET, "fleet.json");
    apply_fixture(m, TUI_SRC_POLICIES, "policies.json");
    apply_fixture(m, TUI_SRC_SPEND_DAY, "spend_day.json");
    apply_fixture(m, TUI_SRC_SPEND_MONTH, "spend_month.json");
    apply_fixture(m, TUI_SRC_EXPERIMENTS, "experiments.json");
}

/* All of <ls> as text, one '\n' after each line (caller frees). */
TEST_UNUSED static char *lines_text(const struct tui_lines *ls)
{
    size_t total = 1;
    char *out, *p;

    for (size_t i = 0; i < ls->n; i++)
        total += ls->v[i].len + 1;
    out = malloc(total);
    assert_non_null(out);
    p = out;
    for (size_t i = 0; i < ls->n; i++) {
        memcpy(p, ls->v[i].text, ls->v[i].len);
        p += ls->v[i].len;
        *p++ = '\n';
    }
    *p = '\0';
    return out;
}

/* The line of <ls> that contains <needle>, or NULL. */
TEST_UNUSED static const struct tui_line *find_line(const struct tui_lines *ls, const char *needle)
{
    for (size_t i = 0; i < ls->n; i++)
        if (strstr(ls->v[i].text, needle))
            return &ls->v[i];
    return NULL;
}

/* The line of <ls> that contains <needle>; fails the test when there is none. Never NULL,
 * so the compiler's null-dereference check is satisfied too. */
TEST_UNUSED static const struct tui_line *must_line(const struct tui_lines *ls, const char *needle)
{
    static const struct tui_line none = {.text = (char *)""};
    const struct tui_line *l = find_line(ls, needle);

    if (!l) {
        char *all = lines_text(ls);

        print_error("no line contains \"%s\" in:\n%s", needle, all);
        free(all);
        fail();
        return &none;
    }
    return l;
}

/* The byte offset of <needle> in line <l>; fails the test when it is not there. */
TEST_UNUSED static size_t offset_of(const struct tui_line *l, const char *needle)
{
    const char *p = strstr(l->text, needle);

    if (!p)
        fail_msg("\"%s\" not in \"%s\"", needle, l->text);
    return p ? (size_t)(p - l->text) : 0;
}

/* Fails unless <text> contains <needle>, showing <text>. */
#define assert_contains(text, needle)                                                              \
    do {                                                                                           \
        if (!strstr((text), (needle)))                                                             \
            fail_msg("expected \"%s\" in:\n%s", (needle), (text));                                 \
    } while (0)

#define assert_not_contains(text, needle)                                                          \
    do {                                                                                           \
        if (strstr((text), (needle)))                                                              \
            fail_msg("did not expect \"%s\" in:\n%s", (needle), (text));                           \
    } while (0)

#endif
