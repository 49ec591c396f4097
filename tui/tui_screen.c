/* tui/tui_screen.c - the ncurses renderer. See tui_screen.h.
 *
 * Styles map to colour pairs when colours are on, and to plain attributes (bold, dim,
 * reverse, underline) when they are off, so a monochrome or NO_COLOR terminal still
 * shows headings, warnings and the active tab.
 */
#include "tui_screen.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"
#include "tui_app.h"

struct tui_screen {
    SCREEN *scr;
    attr_t attrs[TUI_S_COUNT];
};

static void set_styles(struct tui_screen *s, bool color)
{
    /* Monochrome first; colour adds to it. */
    s->attrs[TUI_S_NORMAL] = A_NORMAL;
    s->attrs[TUI_S_TITLE] = A_BOLD;
    s->attrs[TUI_S_HEADER] = A_BOLD | A_UNDERLINE;
    s->attrs[TUI_S_LABEL] = A_NORMAL;
    s->attrs[TUI_S_VALUE] = A_BOLD;
    s->attrs[TUI_S_DIM] = A_DIM;
    s->attrs[TUI_S_GOOD] = A_NORMAL;
    s->attrs[TUI_S_WARN] = A_BOLD;
    s->attrs[TUI_S_BAD] = A_BOLD | A_STANDOUT;
    s->attrs[TUI_S_TAB] = A_REVERSE;
    s->attrs[TUI_S_TAB_ON] = A_BOLD;
    s->attrs[TUI_S_BAR] = A_REVERSE;
    if (!color)
        return;
    start_color();
    use_default_colors();
    init_pair(1, COLOR_CYAN, -1);
    init_pair(2, COLOR_GREEN, -1);
    init_pair(3, COLOR_YELLOW, -1);
    init_pair(4, COLOR_RED, -1);
    init_pair(5, COLOR_BLACK, COLOR_CYAN);
    init_pair(6, COLOR_BLUE, -1);
    s->attrs[TUI_S_TITLE] = A_BOLD | COLOR_PAIR(1);
    s->attrs[TUI_S_HEADER] = A_BOLD | COLOR_PAIR(6);
    s->attrs[TUI_S_GOOD] = COLOR_PAIR(2);
    s->attrs[TUI_S_WARN] = A_BOLD | COLOR_PAIR(3);
    s->attrs[TUI_S_BAD] = A_BOLD | COLOR_PAIR(4);
    s->attrs[TUI_S_TAB_ON] = A_BOLD | COLOR_PAIR(5);
}

struct tui_screen *tui_screen_new(bool color, char **errmsg)
{
    struct tui_screen *s = sy_xcalloc(1, sizeof(*s));
    const char *term = getenv("TERM");

    s->scr = newterm(NULL, stdout, stdin);
    if (!s->scr) {
        *errmsg = sy_xasprintf("cannot use the terminal (TERM=%s)", term ? term : "unset");
        free(s);
        return NULL;
    }
    set_term(s->scr);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    leaveok(stdscr, TRUE);
    set_styles(s, color && has_colors());
    return s;
}

void tui_screen_free(struct tui_screen *s)
{
    if (!s)
        return;
    endwin();
    delscreen(s->scr);
    free(s);
}

void tui_screen_size(const struct tui_screen *s, size_t *cols, size_t *rows)
{
    (void)s;
    *cols = COLS > 0 ? (size_t)COLS : 0;
    *rows = LINES > 0 ? (size_t)LINES : 0;
}

int tui_screen_key(struct tui_screen *s)
{
    int ch = getch();

    (void)s;
    switch (ch) {
    case ERR:
        return -1;
    case KEY_UP:
        return TUI_KEY_UP;
    case KEY_DOWN:
        return TUI_KEY_DOWN;
    case KEY_PPAGE:
        return TUI_KEY_PGUP;
    case KEY_NPAGE:
        return TUI_KEY_PGDN;
    case KEY_HOME:
        return TUI_KEY_HOME;
    case KEY_END:
        return TUI_KEY_END;
    case KEY_BTAB:
        return TUI_KEY_BTAB;
    case KEY_RESIZE:
        return TUI_KEY_RESIZE;
    default:
        return ch >= 0 && ch < 256 ? ch : 0;
    }
}

/* Writes <len> bytes of <text> at the cursor; without UTF-8, each non-ASCII character
 * becomes as many '?' as it has columns. */
static void put_text(const char *text, size_t len, bool utf8)
{
    if (utf8) {
        addnstr(text, (int)len);
        return;
    }
    for (size_t i = 0; i < len;) {
        size_t n;
        long cp = tui_utf8_next(text + i, len - i, &n);

        if (cp >= 0 && cp < 0x80) {
            addch((chtype)cp);
        } else {
            for (size_t w = cp < 0 ? 1 : tui_cp_cols(cp); w > 0; w--)
                addch('?');
        }
        i += n;
    }
}

static void draw_line(const struct tui_screen *s, int y, int x, const struct tui_line *l, bool utf8)
{
    move(y, x);
    for (size_t i = 0; i < l->nruns; i++) {
        size_t start = l->runs[i].start;
        size_t end = i + 1 < l->nruns ? l->runs[i + 1].start : l->len;

        attrset(s->attrs[l->runs[i].style]);
        put_text(l->text + start, end - start, utf8);
    }
    attrset(A_NORMAL);
}

/* A box with <help>'s lines in the middle of the screen, if it fits. The frame is drawn
 * with box-drawing characters (UTF-8) or "+-|", not the terminal's alternate character
 * set, which some terminals and multiplexers show as letters. */
static void draw_help(const struct tui_screen *s, const struct tui_lines *help, bool utf8)
{
    const char *h = utf8 ? "\xe2\x94\x80" : "-";
    const char *v = utf8 ? "\xe2\x94\x82" : "|";
    const char *corner[4] = {"+", "+", "+", "+"};
    size_t w = 0;
    int bh, bw, y0, x0;

    if (utf8) {
        corner[0] = "\xe2\x94\x8c";
        corner[1] = "\xe2\x94\x90";
        corner[2] = "\xe2\x94\x94";
        corner[3] = "\xe2\x94\x98";
    }
    for (size_t i = 0; i < help->n; i++) {
        size_t c = tui_line_cols(&help->v[i]);

        w = c > w ? c : w;
    }
    bh = (int)help->n + 2;
    bw = (int)w + 4;
    if (bh > LINES || bw > COLS)
        return;
    y0 = (LINES - bh) / 2;
    x0 = (COLS - bw) / 2;
    attrset(A_NORMAL);
    for (int y = 0; y < bh; y++) {
        bool edge = y == 0 || y == bh - 1;

        move(y0 + y, x0);
        addstr(edge ? corner[y ? 2 : 0] : v);
        for (int x = 1; x < bw - 1; x++)
            addstr(edge ? h : " ");
        addstr(edge ? corner[y ? 3 : 1] : v);
    }
    for (size_t i = 0; i < help->n; i++)
        draw_line(s, y0 + 1 + (int)i, x0 + 2, &help->v[i], utf8);
}

void tui_screen_draw(struct tui_screen *s, const struct tui_lines *frame,
                     const struct tui_lines *help, bool utf8)
{
    erase();
    for (size_t i = 0; i < frame->n && i < (size_t)LINES; i++)
        draw_line(s, (int)i, 0, &frame->v[i], utf8);
    if (help)
        draw_help(s, help, utf8);
    refresh();
}
