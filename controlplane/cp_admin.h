/* controlplane/cp_admin.h - the control plane's admin HTTP/JSON API (docs/admin-api.md).
 *
 * Runs on the control plane's main event loop through common/sy_http. Clients:
 * switchyardctl, switchyard-top, operators' scripts. Main thread only.
 */
#ifndef CP_ADMIN_H
#define CP_ADMIN_H

#include <event2/event.h>

struct cp_admin;
struct cp_policies;
struct cp_discovery;
struct cp_store;

struct cp_admin_deps {
    struct cp_policies *policies;
    struct cp_discovery *discovery;
    struct cp_store *store;
    const char *cp_id;
};

/* Serves the admin API on the listening socket <fd> (taken) on <base>. <deps> are
 * borrowed and must outlive the admin server. NULL on failure. */
struct cp_admin *cp_admin_new(struct event_base *base, int fd, const struct cp_admin_deps *deps);
void cp_admin_free(struct cp_admin *a);

struct sy_http_req;

/* Handles a request whose path is <prefix> or <prefix>/<rest> (<rest> "" for the former). */
typedef void (*cp_admin_handler_fn)(struct sy_http_req *req, const char *rest, void *arg);

/* Routes <prefix> ("/v1/stats") and everything below it to <fn>, after the built-in paths.
 * At most 16 routes. Returns 0 or -ENOSPC. Main thread, before requests arrive. */
int cp_admin_add_route(struct cp_admin *a, const char *prefix, cp_admin_handler_fn fn, void *arg);

#endif
