/* tests/unit/controlplane/etcd_fixture.h - a real, throw-away etcd for control-plane tests.
 *
 * etcd_fixture_start() runs /usr/bin/etcd (or $SY_ETCD, or `etcd` on PATH) as a child on
 * two free loopback ports with its data in a fresh directory under /tmp, and waits for
 * GET /health to say "true" (at most 10 s). kill/restart simulate a crash and recovery on
 * the same data directory and ports; stop kills it and removes the directory. When etcd is
 * not installed, start fails with a message telling the reader to run scripts/deps.sh:
 * a missing etcd is a failed test, never a silently skipped one.
 *
 * Header-only (static functions) so each test program that needs etcd just includes it.
 * Single-threaded use from the test's main thread.
 */
#ifndef ETCD_FIXTURE_H
#define ETCD_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

struct etcd_fixture {
    pid_t pid;
    int client_port;
    int peer_port;
    char bin[256];
    char dir[64];      /* temp root: data/ and etcd.log */
    char endpoint[64]; /* "http://127.0.0.1:P" */
};

__attribute__((unused)) static int fixture_rm_one(const char *path, const struct stat *st, int flag,
                                                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes <path> and everything under it (like rm -rf). */
__attribute__((unused)) static void fixture_rm_rf(const char *path)
{
    nftw(path, fixture_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Returns a loopback TCP port that was free a moment ago, or -1. */
__attribute__((unused)) static int fixture_free_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

__attribute__((unused)) static size_t fixture_sink(char *p, size_t size, size_t nmemb, void *arg)
{
    char *buf = arg;
    size_t n = size * nmemb, have = strlen(buf);

    if (have + n < 256) {
        memcpy(buf + have, p, n);
        buf[have + n] = '\0';
    }
    return n;
}

/* Does GET <endpoint>/health answer {"health":"true"} right now? */
__attribute__((unused)) static bool fixture_etcd_healthy(const char *endpoint)
{
    char url[128];
    char body[256] = "";
    CURL *h = curl_easy_init();
    bool ok = false;

    if (!h)
        return false;
    snprintf(url, sizeof(url), "%s/health", endpoint);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fixture_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)body);
    if (curl_easy_perform(h) == CURLE_OK)
        ok = strstr(body, "\"health\":\"true\"") != NULL;
    curl_easy_cleanup(h);
    return ok;
}

__attribute__((unused)) static bool fixture_find_etcd(struct etcd_fixture *f)
{
    const char *env = getenv("SY_ETCD");
    const char *path = getenv("PATH");

    if (env && env[0]) {
        snprintf(f->bin, sizeof(f->bin), "%s", env);
        return access(f->bin, X_OK) == 0;
    }
    while (path && *path) {
        size_t len = strcspn(path, ":");
        snprintf(f->bin, sizeof(f->bin), "%.*s/etcd", (int)len, path);
        if (len > 0 && access(f->bin, X_OK) == 0)
            return true;
        path += len + (path[len] == ':');
    }
    snprintf(f->bin, sizeof(f->bin), "/usr/bin/etcd");
    return access(f->bin, X_OK) == 0;
}

/* Runs etcd on f's ports and data directory and waits until it is healthy. Returns 0, or
 * -1 with a message in <err>. */
__attribute__((unused)) static int fixture_spawn(struct etcd_fixture *f, char *err, size_t errlen)
{
    char data[96], log[96], client[64], peer[64], cluster[96];
    uint64_t deadline;
    struct timespec ts;

    snprintf(data, sizeof(data), "%s/data", f->dir);
    snprintf(log, sizeof(log), "%s/etcd.log", f->dir);
    snprintf(client, sizeof(client), "http://127.0.0.1:%d", f->client_port);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", f->peer_port);
    snprintf(cluster, sizeof(cluster), "default=%s", peer);
    f->pid = fork();
    if (f->pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (f->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(f->bin, f->bin, "--name", "default", "--data-dir", data, "--listen-client-urls",
              client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
              "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster, "--logger",
              "zap", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 10000;
    for (;;) {
        int status;
        if (fixture_etcd_healthy(f->endpoint))
            return 0;
        if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
            f->pid = 0;
            snprintf(err, errlen, "etcd exited during start-up; see %s", log);
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 > deadline) {
            snprintf(err, errlen, "etcd not healthy at %s/health after 10 s; see %s", f->endpoint,
                     log);
            return -1;
        }
        usleep(50 * 1000);
    }
}

/* Kills etcd at once (SIGKILL), as a crash would. */
__attribute__((unused)) static void etcd_fixture_kill(struct etcd_fixture *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    f->pid = 0;
}

/* Starts a fresh etcd. Returns 0, or -1 with a message in <err>. */
__attribute__((unused)) static int etcd_fixture_start(struct etcd_fixture *f, char *err,
                                                      size_t errlen)
{
    memset(f, 0, sizeof(*f));
    if (!fixture_find_etcd(f)) {
        snprintf(err, errlen,
                 "etcd is not installed (looked for $SY_ETCD, etcd on PATH, /usr/bin/etcd): "
                 "run scripts/deps.sh (Debian package etcd-server)");
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-etcd-XXXXXX");
    if (!mkdtemp(f->dir)) {
        snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    f->client_port = fixture_free_port();
    f->peer_port = fixture_free_port();
    if (f->client_port < 0 || f->peer_port < 0 || f->client_port == f->peer_port) {
        snprintf(err, errlen, "could not pick two free loopback ports");
        fixture_rm_rf(f->dir);
        return -1;
    }
    snprintf(f->endpoint, sizeof(f->endpoint), "http://127.0.0.1:%d", f->client_port);
    if (fixture_spawn(f, err, errlen) < 0) {
        etcd_fixture_kill(f);
        fixture_rm_rf(f->dir);
        return -1;
    }
    return 0;
}

/* Starts etcd again on the same data directory and ports (after etcd_fixture_kill). */
__attribute__((unused)) static int etcd_fixture_restart(struct etcd_fixture *f, char *err,
                                                        size_t errlen)
{
    etcd_fixture_kill(f);
    return fixture_spawn(f, err, errlen);
}

/* Kills etcd and removes its data. */
__attribute__((unused)) static void etcd_fixture_stop(struct etcd_fixture *f)
{
    etcd_fixture_kill(f);
    if (f->dir[0])
        fixture_rm_rf(f->dir);
    f->dir[0] = '\0';
}

#endif
