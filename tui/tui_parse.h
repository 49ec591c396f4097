/* tui/tui_parse.h - the admin API's JSON replies into the structs of tui_model.h.
 *
 * Readers are lenient where the contract lets the server leave things out (a missing or
 * null number is NAN, a missing array is empty) and strict about types: a field of the
 * wrong type fails the whole reply with a message naming its path
 * ("models[3].rps: expected a number, got string"), because a dashboard that shows a
 * number it misread is worse than one that says it cannot read the reply. Arrays longer
 * than TUI_MAX_ROWS are cut there. All strings are cleaned for display. Pure; any thread.
 */
#ifndef TUI_PARSE_H
#define TUI_PARSE_H

#include <stddef.h>

#include "tui_model.h"

#define TUI_MAX_ROWS 10000

/* Each parser reads <body> (<len> bytes, need not be NUL-terminated) and returns 0 with a
 * new struct in *out (caller frees with the matching tui_*_free), or -EINVAL with *errmsg
 * set (caller frees) and *out NULL. */
int tui_parse_stats(const char *body, size_t len, struct tui_stats **out, char **errmsg);
int tui_parse_spend(const char *body, size_t len, struct tui_spend **out, char **errmsg);
int tui_parse_fleet(const char *body, size_t len, struct tui_fleet **out, char **errmsg);
int tui_parse_policies(const char *body, size_t len, struct tui_policies **out, char **errmsg);
int tui_parse_experiments(const char *body, size_t len, struct tui_experiments **out,
                          char **errmsg);

/* A one-line description of an error answer: the admin API's error.message when the body
 * is its error object ("HTTP 404: unknown path /v1/stats"), else the start of the body.
 * Caller frees. */
char *tui_parse_error_text(long status, const char *body, size_t len);

#endif
