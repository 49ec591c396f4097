/* tui/tui_fetch.h - GETs against the admin API with libcurl's multi interface.
 *
 * One easy handle per source, reused so connections stay open between refreshes; all of
 * them run in one multi handle driven from the UI loop, which waits in tui_client_poll on
 * the transfers and the keyboard at once. So the UI never blocks on the network: a key is
 * handled while a request is out, and a dead server costs at most TUI_REQUEST_TIMEOUT_MS
 * per refresh. Each finished transfer is applied to the model (tui_model_apply).
 * Call curl_global_init() before tui_client_new. Single-threaded: the UI thread only.
 */
#ifndef TUI_FETCH_H
#define TUI_FETCH_H

#include <stdbool.h>

#include "tui_model.h"

#define TUI_CONNECT_TIMEOUT_MS 500L
#define TUI_REQUEST_TIMEOUT_MS 900L
#define TUI_MAX_REPLY (16u * 1024 * 1024)

struct tui_client;

/* A client for the admin API at <server> ("http://host:port", no trailing slash; copied).
 * Returns NULL when libcurl cannot be set up. */
struct tui_client *tui_client_new(const char *server);

/* Per-request limits other than the live screen's TUI_CONNECT/REQUEST_TIMEOUT_MS: --once
 * waits longer (TUI_ONCE_*), since nothing has to stay responsive meanwhile. */
#define TUI_ONCE_CONNECT_TIMEOUT_MS 3000L
#define TUI_ONCE_REQUEST_TIMEOUT_MS 10000L
void tui_client_set_timeouts(struct tui_client *c, long connect_ms, long total_ms);

void tui_client_free(struct tui_client *c);

/* Starts a GET for every source in <mask> (TUI_SRC_BIT) that is not already in flight;
 * <window> is the stats window ("1m"). Returns the number of requests started, or -ENOMEM. */
int tui_client_start(struct tui_client *c, unsigned mask, const char *window);

/* True while a request is in flight. */
bool tui_client_busy(const struct tui_client *c);

/* Waits up to <timeout_ms> for network activity or for input on <fd> (-1: none), moves the
 * transfers along and applies each one that finished to <m>. Returns how many finished
 * (0 or more), or -EIO when libcurl fails. */
int tui_client_poll(struct tui_client *c, int fd, int timeout_ms, struct tui_model *m);

/* Fetches every source in <mask> and waits for all of them (bounded by the request
 * timeout). Returns 0 when each one is fresh in <m> (or known absent), else the first
 * failure: -EIO when the server could not be reached, -EPROTO when it answered an error
 * (m->src[...].error says which and why). */
int tui_client_fetch(struct tui_client *c, unsigned mask, const char *window, struct tui_model *m);

#endif
