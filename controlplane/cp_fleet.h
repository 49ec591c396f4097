/* controlplane/cp_fleet.h - GET /v1/fleet (docs/admin-api.md): the proxies following the
 * control plane, over every replica (cp_peers.h) unless scope=replica. Main thread. */
#ifndef CP_FLEET_H
#define CP_FLEET_H

struct cp_admin;
struct cp_discovery;
struct cp_peers;

struct cp_fleet {
    struct cp_discovery *disc;
    struct cp_peers *peers; /* may be NULL: this replica's proxies only */
};

/* Registers /v1/fleet on <a>; <f> is borrowed and must outlive it. Returns 0 or -errno. */
int cp_fleet_register(struct cp_admin *a, struct cp_fleet *f);

#endif
