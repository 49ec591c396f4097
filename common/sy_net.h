/* common/sy_net.h - listening sockets. Stateless; any thread. */
#ifndef SY_NET_H
#define SY_NET_H

#include <stdbool.h>
#include <stddef.h>

/* Binds and listens on <host>:<port> (non-blocking, close-on-exec, SO_REUSEADDR, and
 * SO_REUSEPORT when <reuseport> so several workers can share the port). When <bound> is
 * not NULL it receives the address actually bound ("127.0.0.1:43121", "[::1]:80"), which
 * tells the port picked for port 0. Returns the fd, or a negative errno (logged). */
int sy_listen_tcp(const char *host, int port, bool reuseport, char *bound, size_t bound_len);

/* The port of a "HOST:PORT" string as written by sy_listen_tcp, or 0. */
int sy_bound_port(const char *bound);

#endif
