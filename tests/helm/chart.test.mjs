// tests/helm/chart.test.mjs - checks of the Helm chart helm/switchyard (CTest helm/chart).
//
// 1. `helm lint` with the default values and with tests/helm/values-prod.yaml.
// 2. `helm template` of several configurations (default: bundled etcd; prod: external etcd,
//    NetworkPolicies; file: the file store), parsed with helm's own YAML reader
//    (tests/helm/yaml2json) and checked: security contexts, resources, probes, Services,
//    HPA, PDB, wiring between objects, no credential in plain text, drain timing.
// 3. Every container's command line, as rendered, is run with the REAL binary: the
//    addresses are swapped for loopback ones (listen addresses become free 127.0.0.1
//    ports, the etcd endpoints a test etcd, the proxy's --control-plane the control plane
//    the test started from its own rendered command line), every volume mount becomes a
//    temporary directory (a ConfigMap mount gets the rendered ConfigMap's files), $(VAR)
//    references are expanded from the container's env as the kubelet would. Each process
//    must log its "listening on" lines (at log level info), answer its liveness and
//    readiness probes' paths (/healthz, /readyz) with 200 - the proxy once it applied the
//    policy the control plane bootstrapped from the rendered ConfigMap, or, with no Secret
//    for the policy's key variable, refuse it with the reason in the fleet view and stay
//    unready - and exit 0 on SIGTERM. The bundled etcd's command line runs with Debian's
//    etcd; an external etcd is stood in for by one.
// 4. NOTES.txt tells how to reach the proxies and the admin API and run switchyard-top.
// 5. values.schema.json and templates/validate.yaml reject bad values with a clear message.
// 6. The Dockerfiles' runtime packages provide every library the binaries link.
//
// Environment: SY_BIN_DIR (the built binaries, required), SY_HELM (helm; default
// .cache/helm/helm from scripts/deps.sh, else helm on PATH), SY_ETCD (default /usr/bin/etcd).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const CHART = path.join(REPO, 'helm/switchyard');
const YAML2JSON = path.join(HERE, 'yaml2json');
const PROD_VALUES = path.join(HERE, 'values-prod.yaml');
const BIN_DIR = process.env.SY_BIN_DIR ? path.resolve(process.env.SY_BIN_DIR) : '';
const ETCD = process.env.SY_ETCD || '/usr/bin/etcd';
const SLOW = process.env.ASAN_OPTIONS || process.env.SY_SLOW ? 3 : 1;

function findHelm() {
    const cands = [process.env.SY_HELM, path.join(REPO, '.cache/helm/helm')].filter(Boolean);
    for (const c of cands) if (fs.existsSync(c)) return c;
    const r = spawnSync('sh', ['-c', 'command -v helm'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
    throw new Error(`helm not found (tried ${cands.join(', ')} and PATH): run scripts/deps.sh`);
}
const HELM = findHelm();

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-helm-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

// ---- helm ---------------------------------------------------------------------------------

function helm(args) {
    const r = spawnSync(HELM, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function valueArgs({ files = [], set = [], setString = [], kubeVersion } = {}) {
    const a = kubeVersion ? ['--kube-version', kubeVersion] : [];
    for (const f of files) a.push('-f', f);
    for (const s of set) a.push('--set', s);
    for (const s of setString) a.push('--set-string', s);
    return a;
}

// YAML documents -> objects, with helm's (Kubernetes') YAML reader.
function parseYaml(text) {
    const f = path.join(TMP, `src-${process.hrtime.bigint()}.yaml`);
    fs.writeFileSync(f, text);
    const r = helm(['template', 'y', YAML2JSON, '--set-file', `src=${f}`]);
    fs.rmSync(f);
    assert.equal(r.status, 0, `yaml2json failed: ${r.stderr}`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    return JSON.parse(line).items;
}

// Renders the chart as release "sy" in <ns>; returns { objects, text }.
function render(cfg) {
    const r = helm(['template', 'sy', CHART, '--namespace', cfg.namespace, ...valueArgs(cfg)]);
    assert.equal(r.status, 0, `helm template (${cfg.name}) failed:\n${r.stderr}`);
    return { text: r.stdout, objects: parseYaml(r.stdout) };
}

// name, namespace, values files, --set; run: 'ready' (the proxy applies the bootstrap
// policy), 'nack' (it refuses it: the policy's provider key variable has no Secret, so it
// stays out of the Service), or false (manifest checks only).
const CONFIGS = [
    { name: 'default', namespace: 'default', run: 'nack' },
    { name: 'default with a provider-key Secret', namespace: 'default', run: 'ready',
      set: ['proxy.providerKeys.existingSecret=llm-keys'] },
    { name: 'prod', namespace: 'gateway', files: [PROD_VALUES], run: 'ready' },
    {
        name: 'file-store',
        namespace: 'sy-small',
        run: 'ready',
        set: ['store.type=file', 'etcd.enabled=false', 'controlPlane.replicas=1',
              'controlPlane.persistence.enabled=true', 'proxy.autoscaling.enabled=false',
              'proxy.replicas=3', 'proxy.workers=0', 'proxy.providerKeys.env[0].name=OPENAI_API_KEY',
              'proxy.providerKeys.env[0].secretName=openai', 'proxy.providerKeys.env[0].key=api-key'],
    },
    {
        name: 'everything on (3 etcd members, NetworkPolicies, ServiceMonitors, Kubernetes 1.25)',
        namespace: 'default',
        run: false,
        kubeVersion: '1.25.0',
        set: ['etcd.replicas=3', 'networkPolicy.enabled=true', 'metrics.serviceMonitor.enabled=true',
              'proxy.autoscaling.targetMemoryUtilizationPercentage=80'],
    },
];

// ---- manifest helpers ---------------------------------------------------------------------

const kinds = (objs, kind) => objs.filter((o) => o.kind === kind);
const byName = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const workloads = (objs) => objs.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind));
const component = (o) => o.metadata.labels?.['app.kubernetes.io/component'];
const workloadOf = (objs, comp) => workloads(objs).find((w) => component(w) === comp);
const matches = (selector, labels) =>
    Object.entries(selector || {}).every(([k, v]) => labels?.[k] === v);

function switchyardBinary(container) {
    const cmd = container.command?.[0] || '';
    const base = path.basename(cmd);
    return base.startsWith('switchyard-') || base === 'switchyardctl' ? base : null;
}

// The value of option <name> in argv (--name V or --name=V), or undefined.
function optValue(argv, name) {
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === name) return argv[i + 1];
        if (argv[i].startsWith(`${name}=`)) return argv[i].slice(name.length + 1);
    }
    return undefined;
}

// A rewritten copy of argv: <fn>(name, value) returns the new value or undefined (keep).
function mapOpts(argv, fn) {
    const out = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const eq = a.indexOf('=');
        if (a.startsWith('--') && eq > 0) {
            const name = a.slice(0, eq);
            const v = fn(name, a.slice(eq + 1));
            out.push(v === undefined ? a : `${name}=${v}`);
        } else if (a.startsWith('--') && i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
            const v = fn(a, argv[i + 1]);
            out.push(a, v === undefined ? argv[i + 1] : v);
            i++;
        } else {
            out.push(a);
        }
    }
    return out;
}

// ---- static checks ------------------------------------------------------------------------

function checkManifests(cfg, objects, values) {
    const problems = [];
    const bad = (msg) => problems.push(`${cfg.name}: ${msg}`);

    for (const o of objects) {
        if (!o.apiVersion || !o.kind || !o.metadata?.name) bad(`object without apiVersion/kind/name: ${JSON.stringify(o).slice(0, 200)}`);
        if (o.metadata?.namespace && o.metadata.namespace !== cfg.namespace) bad(`${o.kind}/${o.metadata.name} in namespace ${o.metadata.namespace}`);
        if (o.kind === 'Secret') bad(`the chart renders a Secret (${o.metadata.name}): keys must come from existing Secrets`);
    }

    // Every workload: security, resources, probes.
    for (const w of workloads(objects)) {
        const where = `${w.kind}/${w.metadata.name}`;
        const pod = w.spec.template.spec;
        if (!matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels)) bad(`${where}: selector does not match its pod labels`);
        if (pod.automountServiceAccountToken !== false) bad(`${where}: mounts a service account token`);
        const podSc = pod.securityContext || {};
        if (pod.hostNetwork || pod.hostPID || pod.hostIPC) bad(`${where}: uses host namespaces`);
        for (const c of [...(pod.initContainers || []), ...pod.containers]) {
            const cw = `${where} container ${c.name}`;
            const sc = c.securityContext || {};
            if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) bad(`${cw}: runAsNonRoot is not true`);
            if ((sc.runAsUser ?? podSc.runAsUser) === 0) bad(`${cw}: runs as uid 0`);
            if (sc.readOnlyRootFilesystem !== true) bad(`${cw}: readOnlyRootFilesystem is not true`);
            if (sc.allowPrivilegeEscalation !== false) bad(`${cw}: allowPrivilegeEscalation is not false`);
            if (sc.privileged) bad(`${cw}: privileged`);
            if (!(sc.capabilities?.drop || []).includes('ALL')) bad(`${cw}: capabilities do not drop ALL`);
            if (sc.capabilities?.add?.length) bad(`${cw}: adds capabilities`);
            if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) bad(`${cw}: no cpu/memory requests`);
            if (!c.resources?.limits?.memory) bad(`${cw}: no memory limit`);
            if (!c.image || !/:[^/]+$/.test(c.image)) bad(`${cw}: image ${c.image} has no tag`);
            if (!c.livenessProbe || !c.readinessProbe) { bad(`${cw}: missing liveness or readiness probe`); continue; }
            const portNames = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
            for (const [kind, probe] of [['liveness', c.livenessProbe], ['readiness', c.readinessProbe]]) {
                const port = probe.httpGet?.port;
                if (!probe.httpGet) bad(`${cw}: ${kind} probe is not an HTTP GET`);
                else if (typeof port === 'string' && !portNames.has(port)) bad(`${cw}: ${kind} probe port ${port} is not a container port`);
            }
            if (switchyardBinary(c)) {
                if (c.livenessProbe.httpGet?.path !== '/healthz') bad(`${cw}: liveness probe is not /healthz`);
                if (c.readinessProbe.httpGet?.path !== '/readyz') bad(`${cw}: readiness probe is not /readyz`);
            } else if (!/^\/health/.test(c.livenessProbe.httpGet?.path || '')) {
                bad(`${cw}: liveness probe path ${c.livenessProbe.httpGet?.path}`);
            }
            // No credential as a literal env value.
            for (const e of c.env || []) {
                if ('value' in e && /key|token|secret|passw|credential/i.test(e.name)) bad(`${cw}: env ${e.name} holds a literal value`);
                if ('value' in e && /^(sk-|sk_|AKIA|AIza)/.test(String(e.value))) bad(`${cw}: env ${e.name} looks like a key`);
            }
        }
    }

    // Control plane: Deployment + Service with grpc and admin.
    const cp = workloadOf(objects, 'control-plane');
    const px = workloadOf(objects, 'proxy');
    if (!cp || cp.kind !== 'Deployment') bad('no control-plane Deployment');
    if (!px || px.kind !== 'Deployment') bad('no proxy Deployment');
    if (!cp || !px) return problems;
    const cpSvc = kinds(objects, 'Service').find((s) => matches(s.spec.selector, cp.spec.template.metadata.labels) && s.spec.clusterIP !== 'None');
    if (!cpSvc) bad('no Service selects the control plane');
    else {
        const names = cpSvc.spec.ports.map((p) => p.name);
        for (const n of ['grpc', 'admin']) if (!names.includes(n)) bad(`control-plane Service has no ${n} port`);
    }
    const pxSvc = kinds(objects, 'Service').find((s) => matches(s.spec.selector, px.spec.template.metadata.labels));
    if (!pxSvc) bad('no Service selects the proxies');
    // Every Service's selector picks exactly one workload and its targetPorts exist.
    for (const s of kinds(objects, 'Service')) {
        const ws = workloads(objects).filter((w) => matches(s.spec.selector, w.spec.template.metadata.labels));
        if (ws.length !== 1) { bad(`Service/${s.metadata.name} selects ${ws.length} workloads`); continue; }
        const cports = ws[0].spec.template.spec.containers.flatMap((c) => c.ports || []);
        for (const p of s.spec.ports) {
            const ok = typeof p.targetPort === 'string'
                ? cports.some((c) => c.name === p.targetPort)
                : cports.some((c) => c.containerPort === (p.targetPort ?? p.port));
            if (!ok) bad(`Service/${s.metadata.name} port ${p.name} targets ${p.targetPort}, not a container port`);
        }
    }
    // Replicas and the store.
    const storeSpec = optValue(cp.spec.template.spec.containers[0].args, '--store') || '';
    if (storeSpec.startsWith('file:')) {
        if (cp.spec.replicas !== 1) bad(`file store with ${cp.spec.replicas} control-plane replicas`);
        if (cp.spec.strategy?.type !== 'Recreate') bad('file store without the Recreate strategy');
    } else if (!storeSpec.startsWith('etcd:')) {
        bad(`control plane --store ${storeSpec}`);
    }
    if (cfg.name === 'default' && !(cp.spec.replicas >= 2)) bad(`default control-plane replicas ${cp.spec.replicas} < 2`);

    // Proxy: HPA (when autoscaling) and PDB.
    const hpa = kinds(objects, 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === px.metadata.name);
    if (values.proxy.autoscaling.enabled) {
        if (!hpa) bad('no HorizontalPodAutoscaler for the proxies');
        else {
            if (hpa.apiVersion !== 'autoscaling/v2') bad(`HPA apiVersion ${hpa.apiVersion}`);
            if (hpa.spec.scaleTargetRef.kind !== 'Deployment') bad('HPA does not target a Deployment');
            if (!(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas >= hpa.spec.minReplicas)) bad('HPA replica bounds');
            if (!hpa.spec.metrics?.length) bad('HPA without metrics');
        }
        if ('replicas' in px.spec) bad('the proxy Deployment sets replicas although the HPA owns them');
    } else if (hpa) {
        bad('HPA rendered with autoscaling disabled');
    }
    const pdb = kinds(objects, 'PodDisruptionBudget').find((p) => matches(p.spec.selector.matchLabels, px.spec.template.metadata.labels));
    if (!pdb) bad('no PodDisruptionBudget for the proxies');
    else if (pdb.apiVersion !== 'policy/v1') bad(`PDB apiVersion ${pdb.apiVersion}`);

    // Graceful shutdown: preStop sleep + drain < grace period.
    const pc = px.spec.template.spec.containers[0];
    const drain = Number(optValue(pc.args, '--drain-timeout-ms'));
    const grace = px.spec.template.spec.terminationGracePeriodSeconds;
    const pre = pc.lifecycle?.preStop;
    const preSec = pre ? Number(pre.sleep?.seconds ?? pre.exec?.command?.[1] ?? NaN) : 0;
    if (!Number.isFinite(drain)) bad('the proxy has no --drain-timeout-ms');
    else if (!(preSec * 1000 + drain < grace * 1000)) bad(`preStop ${preSec}s + drain ${drain}ms >= terminationGracePeriodSeconds ${grace}s`);

    // Provider keys: only Secret references.
    for (const e of pc.env || []) {
        if (e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.name) bad(`proxy env ${e.name}: secretKeyRef without a name`);
    }

    // Volumes referenced by mounts exist; the state dir is writable scratch space.
    for (const w of workloads(objects)) {
        const pod = w.spec.template.spec;
        const vols = new Set([...(pod.volumes || []).map((v) => v.name),
                              ...(w.spec.volumeClaimTemplates || []).map((v) => v.metadata.name)]);
        for (const c of pod.containers) {
            for (const m of c.volumeMounts || []) if (!vols.has(m.name)) bad(`${w.metadata.name}/${c.name}: mount ${m.name} has no volume`);
        }
    }
    // NetworkPolicies and ServiceMonitors point at pods and ports that exist.
    for (const np of kinds(objects, 'NetworkPolicy')) {
        const ws = workloads(objects).filter((w) => matches(np.spec.podSelector.matchLabels, w.spec.template.metadata.labels));
        if (ws.length !== 1) { bad(`NetworkPolicy/${np.metadata.name} selects ${ws.length} workloads`); continue; }
        const names = ws[0].spec.template.spec.containers.flatMap((c) => (c.ports || []).map((p) => p.name));
        for (const rule of np.spec.ingress || []) {
            for (const p of rule.ports || []) if (!names.includes(p.port)) bad(`NetworkPolicy/${np.metadata.name}: port ${p.port} is not a container port`);
            for (const f of rule.from || []) {
                if (f.podSelector?.matchLabels && !workloads(objects).some((w) => matches(f.podSelector.matchLabels, w.spec.template.metadata.labels))) {
                    bad(`NetworkPolicy/${np.metadata.name}: a podSelector matches no workload`);
                }
            }
        }
    }
    for (const sm of kinds(objects, 'ServiceMonitor')) {
        const svcs = kinds(objects, 'Service').filter((x) => matches(sm.spec.selector.matchLabels, x.metadata.labels));
        if (svcs.length !== 1) { bad(`ServiceMonitor/${sm.metadata.name} selects ${svcs.length} Services`); continue; }
        for (const e of sm.spec.endpoints) {
            if (!svcs[0].spec.ports.some((p) => p.name === e.port)) bad(`ServiceMonitor/${sm.metadata.name}: no port ${e.port} on Service/${svcs[0].metadata.name}`);
        }
    }
    if (cfg.set?.includes('etcd.replicas=3')) {
        const sts = workloadOf(objects, 'etcd');
        const args = sts?.spec.template.spec.containers[0].args || [];
        const ic = optValue(args, '--initial-cluster') || '';
        if (ic.split(',').length !== 3) bad(`--initial-cluster lists ${ic.split(',').length} members`);
        if (sts?.spec.podManagementPolicy !== 'Parallel') bad('etcd members do not start in parallel');
        const ep = optValue(cp.spec.template.spec.containers[0].args, '--store') || '';
        if (ep.split(',').length !== 3) bad(`the control plane knows ${ep.split(',').length} etcd members`);
    }
    if (cfg.kubeVersion === '1.25.0' && !px.spec.template.spec.containers[0].lifecycle?.preStop?.exec) bad('preStop is not exec before 1.30');

    const stateDir = optValue(pc.args, '--state-dir');
    const stateMount = (pc.volumeMounts || []).find((m) => m.mountPath === stateDir);
    if (!stateMount) bad(`proxy --state-dir ${stateDir} is not a mounted volume`);
    else {
        const v = px.spec.template.spec.volumes.find((x) => x.name === stateMount.name);
        if (!v?.emptyDir) bad('proxy state dir is not an emptyDir');
    }
    return problems;
}

// ---- running the rendered command lines ----------------------------------------------------

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, what, timeoutMs = 10000 * SLOW) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
    }
}

async function httpStatus(url) {
    try {
        const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await r.text();
        return r.status;
    } catch {
        return 0;
    }
}

class Proc {
    constructor(name, file, argv, env) {
        this.name = name;
        this.argv = argv;
        this.out = '';
        this.exit = null;
        this.child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        this.child.stdout.on('data', (d) => { this.out += d; });
        this.child.stderr.on('data', (d) => { this.out += d; });
        this.exited = new Promise((resolve) => {
            this.child.on('exit', (code, signal) => { this.exit = { code, signal }; resolve(this.exit); });
            this.child.on('error', (e) => { this.out += String(e); this.exit = { code: -1, signal: null }; resolve(this.exit); });
        });
    }

    describe() {
        return `${this.name}: ${[this.child.spawnfile, ...this.argv].join(' ')}\n` +
            `exit: ${JSON.stringify(this.exit)}\n--- output ---\n${this.out.slice(-4000)}`;
    }

    async line(re, what) {
        await waitFor(() => re.test(this.out) || this.exit, `${this.name} to log ${what}`)
            .catch((e) => { throw new Error(`${e.message}\n${this.describe()}`); });
        const m = re.exec(this.out);
        if (!m) throw new Error(`${this.name} exited before logging ${what}\n${this.describe()}`);
        return m;
    }

    // Waits until <url> answers 200.
    async up(url) {
        await waitFor(async () => (await httpStatus(url)) === 200 || this.exit, `${this.name}: ${url} 200`)
            .catch((e) => { throw new Error(`${e.message}\n${this.describe()}`); });
        if (this.exit) throw new Error(`${this.name} exited\n${this.describe()}`);
    }

    async stop({ expectZero = true } = {}) {
        if (!this.exit) this.child.kill('SIGTERM');
        const t = setTimeout(() => this.child.kill('SIGKILL'), 15000 * SLOW);
        const e = await this.exited;
        clearTimeout(t);
        if (expectZero && !(e.code === 0 && e.signal === null)) {
            throw new Error(`${this.name} did not exit 0 on SIGTERM\n${this.describe()}`);
        }
    }
}

// What a container starts with besides its own env: no variable of this machine leaks in
// (an OPENAI_API_KEY in the developer's shell must not satisfy the policy), except PATH and
// the sanitizers' options.
function baseEnv() {
    const keep = ['PATH', 'ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'];
    return Object.fromEntries(keep.filter((k) => k in process.env).map((k) => [k, process.env[k]]));
}

// True when the command line logs at info level or below (the "listening on" lines).
function logsInfo(argv) {
    return ['debug', 'info', undefined].includes(optValue(argv, '--log-level'));
}

// The environment the kubelet would give <container> (secrets replaced by test values), and
// the expansion of $(VAR) in its command line.
function podEnv(container, podName, namespace, extraSecretVars) {
    const env = {};
    for (const e of container.env || []) {
        if ('value' in e) env[e.name] = String(e.value);
        else if (e.valueFrom?.fieldRef) {
            const f = e.valueFrom.fieldRef.fieldPath;
            env[e.name] = f === 'metadata.name' ? podName : f === 'metadata.namespace' ? namespace : `field-${f}`;
        } else if (e.valueFrom?.secretKeyRef) {
            env[e.name] = `test-secret-${e.valueFrom.secretKeyRef.name}-${e.valueFrom.secretKeyRef.key}`;
        }
    }
    if ((container.envFrom || []).some((f) => f.secretRef)) {
        for (const v of extraSecretVars) if (!(v in env)) env[v] = `test-secret-${v}`;
    }
    return env;
}

function expandVars(argv, env, where) {
    return argv.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) => {
        if (!(v in env)) throw new Error(`${where}: ${m} in the command line is not defined in the container's env`);
        return env[v];
    }));
}

// Every mount of <container> becomes a directory under <dir>; ConfigMap volumes get the
// rendered ConfigMap's files. Returns [[mountPath, localDir], ...], longest first.
function materialiseMounts(objects, w, container, dir) {
    const pod = w.spec.template.spec;
    const out = [];
    for (const m of container.volumeMounts || []) {
        const local = path.join(dir, m.name);
        fs.mkdirSync(local, { recursive: true });
        const v = (pod.volumes || []).find((x) => x.name === m.name);
        if (v?.configMap) {
            const cm = byName(objects, 'ConfigMap', v.configMap.name);
            assert.ok(cm, `${w.metadata.name}: ConfigMap ${v.configMap.name} is not rendered`);
            const items = v.configMap.items || Object.keys(cm.data).map((k) => ({ key: k, path: k }));
            for (const it of items) {
                assert.ok(it.key in cm.data, `ConfigMap ${cm.metadata.name} has no key ${it.key}`);
                fs.writeFileSync(path.join(local, it.path), cm.data[it.key]);
            }
        } else if (v?.secret) {
            throw new Error(`${w.metadata.name}: secret volumes are not expected`);
        }
        out.push([m.mountPath.replace(/\/$/, ''), local]);
    }
    return out.sort((a, b) => b[0].length - a[0].length);
}

function mapPath(mounts, p, what) {
    for (const [mp, local] of mounts) {
        if (p === mp || p.startsWith(`${mp}/`)) return local + p.slice(mp.length);
    }
    throw new Error(`${what} ${p} is not under any volume mount (the root filesystem is read-only)`);
}

function binaryFor(container) {
    const base = path.basename(container.command[0]);
    assert.equal(path.dirname(container.command[0]), '/usr/local/bin',
                 `${container.name}: binaries live in /usr/local/bin in the images`);
    if (base === 'etcd') return ETCD;
    const p = path.join(BIN_DIR, base);
    assert.ok(fs.existsSync(p), `${p} not found (SY_BIN_DIR=${BIN_DIR})`);
    return p;
}

// Runs a cluster from the rendered objects; returns nothing, throws on the first failure.
async function runRendered(cfg, objects, values) {
    assert.ok(BIN_DIR, 'SY_BIN_DIR is not set');
    const dir = fs.mkdtempSync(path.join(TMP, `${cfg.name}-`));
    const procs = [];
    const domain = values.clusterDomain;
    const ns = cfg.namespace;
    try {
        const cp = workloadOf(objects, 'control-plane');
        const px = workloadOf(objects, 'proxy');
        const etcdSts = workloadOf(objects, 'etcd');
        const cc = cp.spec.template.spec.containers.find((c) => switchyardBinary(c) === 'switchyard-control');
        const pc = px.spec.template.spec.containers.find((c) => switchyardBinary(c) === 'switchyard-proxy');
        assert.ok(cc && pc, 'control and proxy containers');

        // -- etcd: the bundled one from its rendered command line, or a stand-in for external.
        let etcdUrl = null;
        const storeSpec = optValue(cc.args, '--store');
        if (storeSpec.startsWith('etcd:')) {
            const endpoints = storeSpec.slice(5).split(',');
            const clientPort = await freePort();
            const peerPort = await freePort();
            etcdUrl = `http://127.0.0.1:${clientPort}`;
            if (etcdSts) {
                // The control plane must name exactly the members of the StatefulSet.
                const headless = byName(objects, 'Service', etcdSts.spec.serviceName);
                assert.ok(headless && headless.spec.clusterIP === 'None', 'etcd headless Service');
                const ec = etcdSts.spec.template.spec.containers[0];
                const cport = ec.ports.find((p) => p.name === 'client').containerPort;
                const want = Array.from({ length: etcdSts.spec.replicas }, (_, i) =>
                    `http://${etcdSts.metadata.name}-${i}.${headless.metadata.name}.${ns}.svc.${domain}:${cport}`);
                assert.deepEqual(endpoints, want, 'the control plane\'s etcd endpoints are the bundled members');
                assert.equal(etcdSts.spec.replicas, 1, 'the run check starts one member');
                const pod = `${etcdSts.metadata.name}-0`;
                const env = podEnv(ec, pod, ns, []);
                const mounts = materialiseMounts(objects, etcdSts, ec, path.join(dir, 'etcd'));
                const pport = ec.ports.find((p) => p.name === 'peer').containerPort;
                let argv = expandVars(ec.args, env, 'etcd');
                argv = argv.map((a) => a
                    .replace(new RegExp(`http://[^,=\\s]+:${cport}\\b`, 'g'), `http://127.0.0.1:${clientPort}`)
                    .replace(new RegExp(`http://[^,=\\s]+:${pport}\\b`, 'g'), `http://127.0.0.1:${peerPort}`));
                argv = mapOpts(argv, (n, v) => (n === '--data-dir' ? mapPath(mounts, v, '--data-dir') : undefined));
                const p = new Proc('etcd (rendered)', binaryFor(ec), argv, { ...baseEnv(), ...env });
                p.isEtcd = true;
                procs.push(p);
            } else {
                for (const e of endpoints) assert.match(e, /^https?:\/\/[^/]+:\d+$/, 'external etcd endpoint');
                const p = new Proc('etcd (stand-in for external)', ETCD, [
                    '--name', 'test', '--data-dir', path.join(dir, 'etcd-data'),
                    '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
                    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
                    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
                    '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
                ], baseEnv());
                p.isEtcd = true;
                procs.push(p);
            }
            const ep = procs[procs.length - 1];
            await waitFor(async () => (await httpStatus(`${etcdUrl}/health`)) === 200 || ep.exit, 'etcd /health')
                .catch((e) => { throw new Error(`${e.message}\n${ep.describe()}`); });
            if (ep.exit) throw new Error(`etcd exited\n${ep.describe()}`);
        }

        // -- control plane, from its rendered command line.
        const cpSvc = kinds(objects, 'Service').find((s) => matches(s.spec.selector, cp.spec.template.metadata.labels));
        const grpcListen = optValue(cc.args, '--grpc-listen');
        const adminListen = optValue(cc.args, '--admin-listen');
        const portOf = (name) => cc.ports.find((p) => p.name === name).containerPort;
        assert.equal(Number(grpcListen.split(':').pop()), portOf('grpc'), '--grpc-listen port = container port grpc');
        assert.equal(Number(adminListen.split(':').pop()), portOf('admin'), '--admin-listen port = container port admin');
        const cpPod = `${cp.metadata.name}-5d8f9c7b6d-x2x9q`;
        const cpEnv = podEnv(cc, cpPod, ns, []);
        const cpMounts = materialiseMounts(objects, cp, cc, path.join(dir, 'control'));
        let cpArgv = expandVars(cc.args, cpEnv, 'control plane');
        // Fixed free ports rather than :0, so that a quieter --log-level (no "listening on"
        // line) can still be checked through the probes.
        const grpcPort = await freePort();
        const adminPort = await freePort();
        cpArgv = mapOpts(cpArgv, (n, v) => {
            if (n === '--grpc-listen') return `127.0.0.1:${grpcPort}`;
            if (n === '--admin-listen') return `127.0.0.1:${adminPort}`;
            if (n === '--store') return v.startsWith('etcd:') ? `etcd:${etcdUrl}` : `file:${mapPath(cpMounts, v.slice(5), '--store')}`;
            if (n === '--bootstrap-policy') return mapPath(cpMounts, v, '--bootstrap-policy');
            return undefined;
        });
        const cpProc = new Proc('switchyard-control (rendered)', binaryFor(cc), cpArgv, { ...baseEnv(), ...cpEnv });
        procs.push(cpProc);
        const admin = `http://127.0.0.1:${adminPort}`;
        if (logsInfo(cpArgv)) {
            await cpProc.line(new RegExp(`grpc listening on 127\\.0\\.0\\.1:${grpcPort}\\b`), '"grpc listening on"');
            await cpProc.line(new RegExp(`admin listening on 127\\.0\\.0\\.1:${adminPort}\\b`), '"admin listening on"');
        }
        await cpProc.up(`${admin}${cc.livenessProbe.httpGet.path}`);
        for (const probe of [cc.livenessProbe, cc.readinessProbe]) {
            assert.equal(await httpStatus(`${admin}${probe.httpGet.path}`), 200, `control plane ${probe.httpGet.path}\n${cpProc.describe()}`);
        }
        if (values.bootstrapPolicy.enabled) {
            const r = await fetch(`${admin}/v1/policies`);
            const j = await r.json();
            assert.ok(j.active >= 1, `the bootstrap policy is active: ${JSON.stringify(j)}\n${cpProc.describe()}`);
        }

        // -- proxy, from its rendered command line, following that control plane.
        const cpAddr = optValue(pc.args, '--control-plane');
        const grpcSvcPort = cpSvc.spec.ports.find((p) => p.name === 'grpc');
        assert.equal(cpAddr, `${cpSvc.metadata.name}.${ns}.svc.${domain}:${grpcSvcPort.port}`,
                     'the proxy follows the control-plane Service\'s grpc port');
        const pxListen = optValue(pc.args, '--listen');
        assert.equal(Number(pxListen.split(':').pop()), pc.ports.find((p) => p.name === 'http').containerPort, '--listen port = container port http');
        // The policy's api_key_env variables, which the proxy needs from its Secret(s).
        const keyVars = [];
        const cmName = cp.spec.template.spec.volumes.find((v) => v.configMap)?.configMap.name;
        const cm = cmName && byName(objects, 'ConfigMap', cmName);
        if (cm) {
            for (const doc of Object.values(cm.data)) {
                const pol = parseYaml(doc)[0];
                for (const p of pol.providers || []) if (p.api_key_env) keyVars.push(p.api_key_env);
            }
        }
        const pxPod = `${px.metadata.name}-7c9d8f6b5-q8w7e`;
        const keyVarsInPolicy = keyVars;
        const pxEnv = podEnv(pc, pxPod, ns, keyVars);
        for (const v of keyVars) {
            if (cfg.run === 'ready') assert.ok(v in pxEnv, `the proxy gets ${v} (api_key_env) from no Secret`);
            else assert.ok(!(v in pxEnv), `${v} unexpectedly set`);
        }
        if (cfg.run === 'nack') assert.ok(keyVars.length > 0, 'the default policy names a provider key variable');
        const pxMounts = materialiseMounts(objects, px, pc, path.join(dir, 'proxy'));
        let pxArgv = expandVars(pc.args, pxEnv, 'proxy');
        const pxPort = await freePort();
        pxArgv = mapOpts(pxArgv, (n, v) => {
            if (n === '--listen') return `127.0.0.1:${pxPort}`;
            if (n === '--control-plane') return `127.0.0.1:${grpcPort}`;
            if (n === '--state-dir') return mapPath(pxMounts, v, '--state-dir');
            if (n === '--access-log' && v !== '-' && v !== 'off') return mapPath(pxMounts, v, '--access-log');
            return undefined;
        });
        assert.equal(optValue(pxArgv, '--node-id'), pxPod, '--node-id is the pod name');
        const pxProc = new Proc('switchyard-proxy (rendered)', binaryFor(pc), pxArgv, { ...baseEnv(), ...pxEnv });
        procs.push(pxProc);
        const pxUrl = `http://127.0.0.1:${pxPort}`;
        if (logsInfo(pxArgv)) await pxProc.line(new RegExp(`listening on 127\\.0\\.0\\.1:${pxPort}\\b`), '"listening on"');
        await pxProc.up(`${pxUrl}${pc.livenessProbe.httpGet.path}`);
        const fleetEntry = async () => {
            const j = await (await fetch(`${admin}/v1/fleet`)).json();
            return j.proxies?.find((p) => p.node_id === pxPod);
        };
        if (cfg.run === 'ready') {
            await waitFor(async () => (await httpStatus(`${pxUrl}${pc.readinessProbe.httpGet.path}`)) === 200, 'proxy /readyz 200 (policy applied)')
                .catch((e) => { throw new Error(`${e.message}\n${pxProc.describe()}\n${cpProc.describe()}`); });
            // The fleet view shows the proxy under its pod name, with the version acked.
            await waitFor(async () => (await fleetEntry())?.acked_version >= 1, 'the proxy in the fleet view with an acked version');
        } else {
            // No Secret for the policy's key variable: the proxy refuses the policy, says why
            // in the fleet view, and stays unready (out of the Service).
            const nack = await waitFor(async () => (await fleetEntry())?.last_nack, 'a NACK in the fleet view')
                .catch((err) => { throw new Error(`${err.message}\n${pxProc.describe()}\n${cpProc.describe()}`); });
            assert.match(nack.error, new RegExp(keyVarsInPolicy.join('|')), JSON.stringify(nack));
            assert.equal(await httpStatus(`${pxUrl}${pc.readinessProbe.httpGet.path}`), 503, 'an unconfigured proxy is not ready');
        }

        // Stop in order; Switchyard processes must exit 0 (under ASan: no leaks).
        await pxProc.stop();
        await cpProc.stop();
    } finally {
        for (const p of procs.reverse()) await p.stop({ expectZero: false }).catch(() => {});
    }
    for (const p of procs) {
        if (!p.isEtcd && !(p.exit?.code === 0)) throw new Error(`${p.name} exit ${JSON.stringify(p.exit)}\n${p.describe()}`);
    }
}

// ---- tests --------------------------------------------------------------------------------

test(`helm is v3 (${HELM})`, () => {
    const r = helm(['version', '--short']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^v3\./);
});

test('helm lint: default values and tests/helm/values-prod.yaml', () => {
    for (const files of [[], [PROD_VALUES]]) {
        const r = helm(['lint', '--strict', CHART, ...valueArgs({ files })]);
        assert.equal(r.status, 0, `helm lint ${files.join(' ')}:\n${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
});

test('values.yaml holds no credential', () => {
    const values = parseYaml(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'))[0];
    const refKeys = new Set(['existingSecret', 'secretName', 'key', 'api_key_env', 'imagePullSecrets', 'secretKeyRef']);
    const walk = (v, p) => {
        if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${p}[${i}]`));
        else if (v && typeof v === 'object') {
            for (const [k, x] of Object.entries(v)) {
                if (/key|token|secret|passw|credential/i.test(k) && !refKeys.has(k) && typeof x === 'string' && x) {
                    assert.fail(`${p}.${k} holds a string value: credentials belong in Secrets`);
                }
                walk(x, `${p}.${k}`);
            }
        }
    };
    walk(values, 'values');
    // The bootstrap policy names variables, never keys.
    const pol = parseYaml(values.bootstrapPolicy.policy)[0];
    for (const [i, p] of pol.providers.entries()) {
        assert.ok(!Object.keys(p.headers || {}).some((h) => /authorization|api-key/i.test(h)), `providers[${i}] carries a key header`);
    }
});

for (const cfg of CONFIGS) {
    test(`${cfg.name}: rendered manifests`, () => {
        const { objects } = render(cfg);
        const values = computedValues(cfg);
        const problems = checkManifests(cfg, objects, values);
        assert.deepEqual(problems, []);
    });

    if (!cfg.run) continue;
    test(`${cfg.name}: every container's command line runs with the real binary (${cfg.run})`, async () => {
        const { objects } = render(cfg);
        await runRendered(cfg, objects, computedValues(cfg));
    });
}

// Defaults from values.yaml, overridden by the configuration's files and --set (the keys the
// checks read are scalars or whole objects, so a shallow-per-key merge is enough).
function computedValues(cfg) {
    const merge = (a, b) => {
        if (b && typeof b === 'object' && !Array.isArray(b) && a && typeof a === 'object' && !Array.isArray(a)) {
            const out = { ...a };
            for (const [k, v] of Object.entries(b)) out[k] = merge(a[k], v);
            return out;
        }
        return b === undefined ? a : b;
    };
    let v = parseYaml(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'))[0];
    for (const f of cfg.files || []) v = merge(v, parseYaml(fs.readFileSync(f, 'utf8'))[0]);
    for (const s of cfg.set || []) {
        const [k, raw] = s.split('=');
        const val = raw === 'true' ? true : raw === 'false' ? false : /^-?\d+$/.test(raw) ? Number(raw) : raw;
        const keys = k.split('.');
        const patch = keys.reduceRight((acc, key) => ({ [key]: acc }), val);
        v = merge(v, patch);
    }
    return v;
}

// NOTES.txt as `helm install` would print it: helm template does not render NOTES, so a
// copy of the chart renders it through `tpl` into a ConfigMap.
function renderNotes(cfg) {
    const copy = path.join(TMP, `notes-${process.hrtime.bigint()}`);
    fs.cpSync(CHART, copy, { recursive: true });
    fs.copyFileSync(path.join(CHART, 'templates/NOTES.txt'), path.join(copy, 'notes.txt'));
    fs.writeFileSync(path.join(copy, 'templates/zz-notes.yaml'),
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n' +
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n');
    const r = helm(['template', 'sy', copy, '--namespace', cfg.namespace, ...valueArgs(cfg),
                    '--show-only', 'templates/zz-notes.yaml']);
    fs.rmSync(copy, { recursive: true, force: true });
    assert.equal(r.status, 0, r.stderr);
    return parseYaml(r.stdout)[0].data.notes;
}

test('NOTES.txt: reaching the proxies and the admin API, switchyardctl, switchyard-top', () => {
    const notes = renderNotes(CONFIGS[0]);
    for (const want of [
        'kubectl -n default port-forward svc/sy-switchyard-proxy 8080:80',
        'kubectl -n default port-forward svc/sy-switchyard-control 9090:9090',
        'switchyardctl --server http://127.0.0.1:9090 fleet',
        'kubectl -n default exec deploy/sy-switchyard-control -- switchyardctl',
        'switchyard-top --server http://127.0.0.1:9090',
        'OPENAI_API_KEY',
        'WARNING: proxy.providerKeys sets no Secret',
        'bundled etcd',
    ]) assert.ok(notes.includes(want), `NOTES lack "${want}":\n${notes}`);
    assert.ok(!/<no value>|%!/.test(notes), `NOTES render a missing value:\n${notes}`);
    const prod = renderNotes(CONFIGS.find((c) => c.name === 'prod'));
    assert.ok(prod.includes('Secret "switchyard-provider-keys"'), prod);
    assert.ok(!prod.includes('WARNING'), prod);
    assert.ok(prod.includes('port-forward svc/switchyard-control 9090:9090'), prod);
});

test('preStop falls back to exec /bin/sleep before Kubernetes 1.30', () => {
    const r = helm(['template', 'sy', CHART, '--kube-version', '1.28.0', '--show-only', 'templates/proxy-deployment.yaml']);
    assert.equal(r.status, 0, r.stderr);
    const d = parseYaml(r.stdout)[0];
    const pre = d.spec.template.spec.containers[0].lifecycle.preStop;
    assert.deepEqual(pre.exec?.command, ['/bin/sleep', '5']);
    assert.ok(fs.existsSync('/bin/sleep'), 'Debian ships /bin/sleep (coreutils), as the slim images do');
});

test('the schema and the chart\'s rules reject bad values', () => {
    const keyPolicy = path.join(TMP, 'policy-with-key.yaml');
    fs.writeFileSync(keyPolicy, 'providers:\n  - {name: o, base_url: "https://x/v1", headers: {Authorization: "Bearer sk-1"}}\n' +
                                'models:\n  - {name: m, provider: o}\n');
    // [what, args, expected message, checked by]. values.schema.json is enforced by both
    // `helm lint` and `helm template` (and install/upgrade); the rules in
    // templates/validate.yaml span several keys and use `fail`, which helm lint reports only
    // as [INFO], so those are checked with `helm template` (as install/upgrade enforce them).
    const both = ['template', 'lint'];
    const cases = [
        ['negative replicas', ['--set', 'proxy.replicas=-1'], /proxy\.replicas: Must be greater than or equal to 1/, both],
        ['wrong type', ['--set', 'proxy.replicas=two'], /proxy\.replicas: Invalid type\. Expected: integer, given: string/, both],
        ['wrong type (bool)', ['--set-string', 'proxy.autoscaling.enabled=yes'], /proxy\.autoscaling\.enabled: Invalid type\. Expected: boolean/, both],
        ['port out of range', ['--set', 'controlPlane.grpcPort=70000'], /controlPlane\.grpcPort: Must be less than or equal to 65535/, both],
        ['unknown key (typo)', ['--set', 'proxy.replica=3'], /Additional property replica is not allowed/, both],
        ['bad log level', ['--set', 'controlPlane.logLevel=verbose'], /controlPlane\.logLevel/, both],
        ['access log on the read-only root filesystem', ['--set', 'proxy.accessLog=/var/log/access.log'], /proxy\.accessLog/, both],
        ['unknown store', ['--set', 'store.type=consul'], /store\.type/, both],
        ['bad etcd endpoint', ['--set', 'etcd.enabled=false', '--set', 'store.etcd.endpoints={etcd:2379}'], /store\.etcd\.endpoints\.0/, both],
        ['even etcd members', ['--set', 'etcd.replicas=2'], /etcd\.replicas/, both],
        ['file store with 2 replicas', ['--set', 'store.type=file'], /controlPlane\.replicas: Must be less than or equal to 1/, both],
        ['etcd store without etcd', ['--set', 'etcd.enabled=false'], /store\.etcd\.endpoints: Array must have at least 1 items/, both],
        ['bundled and external etcd', ['--set', 'store.etcd.endpoints={http://etcd:2379}'], /store\.etcd\.endpoints: Array must have at most 0 items/, both],
        ['non-root is not optional', ['--set', 'podSecurityContext.runAsNonRoot=false'], /podSecurityContext\.runAsNonRoot/, both],
        ['providerKeys.env without key', ['--set', 'proxy.providerKeys.env[0].name=K', '--set', 'proxy.providerKeys.env[0].secretName=s'], /providerKeys\.env\.0: key is required/, both],
        ['file store with etcd endpoints', ['--set', 'store.type=file', '--set', 'controlPlane.replicas=1', '--set', 'etcd.enabled=false', '--set', 'store.etcd.endpoints={http://etcd:2379}'], /store\.etcd\.endpoints is set but store\.type=file/, ['template']],
        ['drain longer than the grace period', ['--set', 'proxy.drainTimeoutMs=90000'], /must be less than proxy\.terminationGracePeriodSeconds\*1000/, ['template']],
        ['HPA min above max', ['--set', 'proxy.autoscaling.minReplicas=20', '--set', 'proxy.autoscaling.maxReplicas=5'], /minReplicas \(20\) is above maxReplicas \(5\)/, ['template']],
        ['a key as a plain env value', ['--set', 'proxy.extraEnv[0].name=OPENAI_API_KEY', '--set', 'proxy.extraEnv[0].value=sk-live'], /proxy\.extraEnv\[0\] \(OPENAI_API_KEY\): a credential must not be a plain value/, ['template']],
        ['a key in the bootstrap policy', ['--set-file', `bootstrapPolicy.policy=${keyPolicy}`], /headers\.Authorization: a provider key must not be in the chart's values/, ['template']],
    ];
    const failures = [];
    for (const [what, args, re, by] of cases) {
        for (const how of by) {
            const cmd = how === 'lint' ? ['lint', CHART] : ['template', 'sy', CHART];
            const r = helm([...cmd, ...args]);
            const out = r.stdout + r.stderr;
            if (r.status === 0) failures.push(`${what}: helm ${how} ${args.join(' ')} succeeded`);
            else if (!re.test(out)) failures.push(`${what}: helm ${how} failed without ${re}:\n${out}`);
        }
    }
    assert.deepEqual(failures, []);
});

test('the Dockerfiles install the libraries the binaries link', (t) => {
    assert.ok(BIN_DIR, 'SY_BIN_DIR is not set');
    // A sanitizer build links every transitive library directly (no --as-needed), unlike
    // the images' Release build; the plain build of scripts/test.sh checks this.
    const probe = spawnSync('objdump', ['-p', path.join(BIN_DIR, 'switchyard-proxy')], { encoding: 'utf8' });
    if (/NEEDED\s+libasan\./.test(probe.stdout)) {
        t.skip('sanitizer build: checked by the plain build');
        return;
    }
    const images = [
        ['docker/Dockerfile.proxy', ['switchyard-proxy']],
        ['docker/Dockerfile.control', ['switchyard-control', 'switchyardctl', 'switchyard-top']],
    ];
    // In debian:bookworm-slim already (Essential/required): the C runtime.
    const base = new Set(['libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g', 'libtinfo6']);
    for (const [file, bins] of images) {
        const text = fs.readFileSync(path.join(REPO, file), 'utf8');
        const m = /^# runtime-packages: (.*)$/m.exec(text);
        assert.ok(m, `${file}: no "# runtime-packages:" line`);
        const listed = new Set(m[1].trim().split(/\s+/));
        // The comment must match what the RUN line installs.
        const run = /FROM debian:\$\{DEBIAN_RELEASE\}-slim[\s\S]*?apt-get install -y --no-install-recommends([\s\S]*?)&&/.exec(text);
        assert.ok(run, `${file}: runtime apt-get install not found`);
        assert.deepEqual(new Set(run[1].replace(/\\\n/g, ' ').trim().split(/\s+/)), listed, `${file}: runtime-packages comment and apt-get line differ`);
        assert.match(text, /^USER 10001:10001$/m, `${file}: not a non-root USER`);
        assert.match(text, /^FROM debian:\$\{DEBIAN_RELEASE\}-slim$/m, `${file}: runtime is not Debian slim`);
        for (const b of bins) {
            const exe = path.join(BIN_DIR, b);
            if (!fs.existsSync(exe)) {
                assert.notEqual(b, 'switchyard-proxy');
                assert.notEqual(b, 'switchyard-control');
                continue; // switchyard-top: shipped when the build has it
            }
            assert.match(text, new RegExp(`/usr/local/bin`), `${file}: binaries go to /usr/local/bin`);
            const od = spawnSync('objdump', ['-p', exe], { encoding: 'utf8' });
            assert.equal(od.status, 0, `objdump ${exe}: ${od.stderr}`);
            const needed = [...od.stdout.matchAll(/^\s*NEEDED\s+(\S+)/gm)].map((x) => x[1]);
            const ldd = spawnSync('ldd', [exe], { encoding: 'utf8' }).stdout;
            // Each library's file, under every name dpkg may know it by (usrmerge: /lib and
            // /usr/lib), looked up in one dpkg -S call.
            const names = new Map();
            for (const lib of needed) {
                const lm = new RegExp(`^\\s*${lib.replace(/[.+]/g, '\\$&')} => (\\S+)`, 'm').exec(ldd);
                assert.ok(lm, `${b}: ${lib} not resolved by ldd`);
                const cands = new Set([lm[1], fs.realpathSync(lm[1])]);
                for (const c of [...cands]) {
                    if (c.startsWith('/usr/lib/')) cands.add(c.slice(4));
                    else if (c.startsWith('/lib/')) cands.add(`/usr${c}`);
                }
                names.set(lib, [...cands]);
            }
            const dq = spawnSync('dpkg', ['-S', ...[...names.values()].flat()], { encoding: 'utf8' });
            const owner = new Map();
            for (const line of dq.stdout.split('\n')) {
                const m = /^([^:,\s]+)(?::\S+)?: (\S+)$/.exec(line);
                if (m) owner.set(m[2], m[1]);
            }
            for (const [lib, cands] of names) {
                const pkg = cands.map((c) => owner.get(c)).find(Boolean);
                assert.ok(pkg, `${b}: no Debian package owns ${lib} (${cands.join(', ')})`);
                assert.ok(listed.has(pkg) || base.has(pkg), `${file}: ${b} needs ${lib} from ${pkg}, which the runtime stage does not install`);
            }
        }
    }
});
