/* tui/tui_screen.h - the ncurses renderer: paints frames, reads keys.
 *
 * The terminal is driven through newterm (not initscr, which exits the process when the
 * terminal is unusable). Each frame is drawn into the virtual screen after erase() and sent
 * with one refresh(), so ncurses sends only what changed: no flicker, never clear().
 * Colours are used only when the terminal has them and NO_COLOR is not set. While a screen
 * exists nothing else may write to the terminal. Single-threaded: the UI thread.
 */
#ifndef TUI_SCREEN_H
#define TUI_SCREEN_H

#include <stdbool.h>
#include <stddef.h>

#include "tui_text.h"

struct tui_screen;

/* Takes over the terminal. <color> false forces monochrome. Returns NULL with *errmsg set
 * (caller frees) when the terminal cannot be used. */
struct tui_screen *tui_screen_new(bool color, char **errmsg);

/* Gives the terminal back (endwin) and frees <s>. Accepts NULL. */
void tui_screen_free(struct tui_screen *s);

/* The terminal's current size. */
void tui_screen_size(const struct tui_screen *s, size_t *cols, size_t *rows);

/* The next key as a TUI_KEY_* value or character, or -1 when none is waiting. */
int tui_screen_key(struct tui_screen *s);

/* Paints <frame> (one line per row) and, when <help> is not NULL, a box with its lines
 * centred over it. <utf8>: the terminal takes UTF-8 (else non-ASCII shows as '?'). */
void tui_screen_draw(struct tui_screen *s, const struct tui_lines *frame,
                     const struct tui_lines *help, bool utf8);

#endif
