#!/usr/bin/env python3
"""k8s_run.py - run a container of a rendered manifest the way the kubelet would.

Takes the output of `helm template`, finds a workload's container and runs
its exact command and args with its exact environment, resolved as
Kubernetes resolves them:
  - env entries in order; $(VAR) in a value expands VARs defined earlier in
    the list, $$ escapes, an unknown $(VAR) stays as written;
  - valueFrom.secretKeyRef from --secret NAME/KEY=VALUE (the test's
    Secrets), valueFrom.fieldRef metadata.name/namespace from the pod;
  - command and args expand $(VAR) from the container's environment;
  - Secret volumes (from --secret) and ConfigMap volumes (from --configmap
    NAME/KEY=VALUE) are written into a temporary directory, and container
    paths (mount paths, --path mappings) are rewritten to host paths.
The environment is exactly the container's (plus nothing): like a container,
the process inherits nothing from the test.

--pods N runs N pods' copies of the container at once; the exit status is 0
iff every copy exits with --expect.

A native sidecar (an initContainer with restartPolicy: Always, such as
"schemagate serve") never exits on its own. For it, k8s_run plays the
kubelet's part: each pod gets its own loopback "pod IP" (127.0.0.10+i; an
env value 0.0.0.0:PORT, the pod's wildcard, becomes POD_IP:PORT), the
startupProbe (httpGet, named or numbered port) is polled until it answers
2xx/3xx (each pod's time to pass is printed), then the readinessProbe and
livenessProbe must pass once, the pods stay up for --hold seconds, then
get SIGTERM and must exit with --expect within --stop-within seconds
(2 s: what the kubelet waits for after the app containers end). A sidecar
that exits before that fails.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text, env):
    """Kubernetes' $(VAR) expansion (k8s.io/kubernetes/third_party/forked/golang/expansion)."""
    def repl(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return VAR.sub(repl, text)


def find_container(docs, kind, name, container):
    for doc in docs:
        if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name:
            pod = doc["spec"]["template"]["spec"]
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                if c["name"] == container:
                    return doc, pod, c
            sys.exit(f"k8s_run: {kind}/{name} has no container {container}")
    sys.exit(f"k8s_run: no {kind}/{name} in the manifests")


def secret_value(secrets, name, key):
    try:
        return secrets[name][key]
    except KeyError:
        sys.exit(f"k8s_run: the test supplied no secret {name}/{key}")


def map_path(value, paths):
    for cpath, hpath in sorted(paths.items(), key=lambda p: -len(p[0])):
        if value == cpath or value.startswith(cpath.rstrip("/") + "/"):
            return hpath + value[len(cpath):]
    return value


def prepare(pod, container, secrets, configmaps, paths, scratch):
    """Write the Secret and ConfigMap volumes the container mounts; extend the path map."""
    paths = dict(paths)
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        vol = volumes.get(mount["name"])
        if vol is None:
            sys.exit(f"k8s_run: volumeMount {mount['name']} has no volume")
        if "secret" in vol:
            src, name, store = vol["secret"], vol["secret"]["secretName"], secrets
        elif "configMap" in vol:
            src, name, store = vol["configMap"], vol["configMap"]["name"], configmaps
        else:
            sys.exit(f"k8s_run: volume {mount['name']} is neither a Secret nor a ConfigMap volume")
        if name not in store:
            sys.exit(f"k8s_run: the test supplied no {'Secret' if store is secrets else 'ConfigMap'} {name}")
        host = tempfile.mkdtemp(prefix=mount["name"] + ".", dir=scratch)
        os.chmod(host, 0o755)
        items = src.get("items") or [{"key": k, "path": k} for k in store[name]]
        for item in items:
            path = os.path.join(host, item["path"])
            with open(path, "w") as f:
                f.write(secret_value(store, name, item["key"]))
            os.chmod(path, src.get("defaultMode", 0o644) & 0o777 | 0o400)
        paths[mount["mountPath"]] = host
    return paths


def probe_once(pod_ip, container, probe, timeout):
    """One httpGet probe as the kubelet runs it: 200-399 passes."""
    get = probe["httpGet"]
    port = get["port"]
    if isinstance(port, str) and not port.isdigit():
        ports = {p["name"]: p["containerPort"] for p in container.get("ports") or []}
        if port not in ports:
            sys.exit(f"k8s_run: probe port {port} is not a named port of the container")
        port = ports[port]
    url = f"http://{pod_ip}:{port}{get.get('path', '/')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 400, f"{r.status}"
    except urllib.error.HTTPError as e:
        return False, f"{e.code} {e.read().decode(errors='replace').strip()}"
    except (OSError, urllib.error.URLError) as e:
        return False, str(e)


def run_sidecar(pod_name, proc, started, pod_ip, container, args):
    """Startup, readiness and liveness probes. Returns (ok, rc, detail)."""
    t0 = started
    startup = container.get("startupProbe")
    if startup:
        # the kubelet's budget is period x failureThreshold (an hour for
        # long migrations); the test's own --timeout bounds it here
        period = min(startup.get("periodSeconds", 10), args.probe_period)
        while True:
            if proc.poll() is not None:
                return False, proc.returncode, "exited before its startupProbe passed"
            ok, what = probe_once(pod_ip, container, startup, startup.get("timeoutSeconds", 1))
            if ok:
                break
            if time.monotonic() - t0 > args.timeout:
                return False, None, f"startupProbe still failing after {args.timeout} s: {what}"
            time.sleep(period)
        print(f"k8s_run: pod {pod_name}: startupProbe passed after {time.monotonic() - t0:.1f} s",
              file=sys.stderr)
    for name in ("readinessProbe", "livenessProbe"):
        probe = container.get(name)
        if probe:
            ok, what = probe_once(pod_ip, container, probe, probe.get("timeoutSeconds", 1))
            if not ok:
                return False, None, f"{name} failed: {what}"
    return True, None, ""


def stop_sidecar(proc, args):
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        rc = proc.wait(timeout=args.stop_within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, f"still running {args.stop_within} s after SIGTERM"
    return rc, f"exited {time.monotonic() - t0:.2f} s after SIGTERM"


def resolve_env(container, secrets, pod_name, namespace, paths, pod_ip):
    env = {}
    for e in container.get("env") or []:
        if "value" in e:
            val = expand(str(e["value"]), env)
        elif "valueFrom" in e:
            src = e["valueFrom"]
            if "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                val = secret_value(secrets, ref["name"], ref["key"])
            elif "fieldRef" in src:
                field = src["fieldRef"]["fieldPath"]
                val = {"metadata.name": pod_name, "metadata.namespace": namespace}.get(field)
                if val is None:
                    sys.exit(f"k8s_run: fieldRef {field} is not emulated")
            else:
                sys.exit(f"k8s_run: env {e['name']}: unsupported valueFrom {src}")
        else:
            val = ""
        # 0.0.0.0 inside a pod is the pod's own address
        env[e["name"]] = map_path(val, paths).replace("0.0.0.0:", pod_ip + ":")
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifests", required=True)
    ap.add_argument("--kind", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--container", default="schemagate")
    ap.add_argument("--secret", action="append", default=[], help="NAME/KEY=VALUE")
    ap.add_argument("--configmap", action="append", default=[], help="NAME/KEY=VALUE")
    ap.add_argument("--path", action="append", default=[], help="CONTAINER_PATH=HOST_PATH")
    ap.add_argument("--pods", type=int, default=1)
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--logs", help="directory for each pod's stderr")
    ap.add_argument("--json-logs", action="store_true", help="require JSON log lines")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--probe-period", type=float, default=0.2,
                    help="sidecars: poll the startupProbe at most this often (seconds)")
    ap.add_argument("--hold", type=float, default=0, help="sidecars: seconds to stay up after the probes")
    ap.add_argument("--stop-within", type=float, default=2, help="sidecars: seconds allowed after SIGTERM")
    args = ap.parse_args()

    secrets, configmaps = {}, {}
    for store, given in ((secrets, args.secret), (configmaps, args.configmap)):
        for s in given:
            ref, _, value = s.partition("=")
            name, _, key = ref.partition("/")
            store.setdefault(name, {})[key] = value
    paths = dict(p.split("=", 1) for p in args.path)

    with open(args.manifests) as f:
        docs = list(yaml.safe_load_all(f))
    _, pod, container = find_container(docs, args.kind, args.name, args.container)
    scratch = tempfile.mkdtemp(prefix="k8s_run.")
    logs = args.logs or scratch
    os.makedirs(logs, exist_ok=True)

    sidecar = container.get("restartPolicy") == "Always"
    procs = []
    for i in range(args.pods):
        pod_name = f"{args.name}-{i}"
        pod_ip = f"127.0.0.{10 + i}"
        pod_paths = prepare(pod, container, secrets, configmaps, paths, scratch)
        env = resolve_env(container, secrets, pod_name, args.namespace, pod_paths, pod_ip)
        argv = [expand(a, env) for a in (container.get("command") or []) + (container.get("args") or [])]
        if not argv:
            sys.exit("k8s_run: the container relies on the image ENTRYPOINT; give it a command")
        argv = [map_path(a, pod_paths) for a in argv]
        shown = " ".join(argv)
        print(f"k8s_run: pod {pod_name}: {shown}  (env: {' '.join(sorted(env))})", file=sys.stderr)
        err = open(os.path.join(logs, pod_name + ".log"), "w")
        procs.append((pod_name, subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                                 stdout=err, stderr=err), err, pod_ip, time.monotonic()))

    sidecar_problems = {}
    if sidecar:
        for pod_name, proc, err, pod_ip, started in procs:
            ok, _, detail = run_sidecar(pod_name, proc, started, pod_ip, container, args)
            if not ok:
                sidecar_problems[pod_name] = detail
        time.sleep(args.hold)
        for pod_name, proc, err, pod_ip, _ in procs:
            if proc.poll() is not None and pod_name not in sidecar_problems:
                sidecar_problems[pod_name] = f"a sidecar exited on its own (exit {proc.returncode})"
        for pod_name, proc, err, pod_ip, _ in procs:
            if proc.poll() is None:
                rc, detail = stop_sidecar(proc, args)
                print(f"k8s_run: pod {pod_name}: {detail}", file=sys.stderr)
                if rc is None:
                    sidecar_problems.setdefault(pod_name, detail)

    failed = 0
    for pod_name, proc, err, pod_ip, _ in procs:
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        err.close()
        with open(err.name) as f:
            text = f.read()
        bad_json = []
        if args.json_logs:
            for line in text.splitlines():
                try:
                    obj = json.loads(line)
                    if not isinstance(obj, dict) or "event" not in obj or "level" not in obj:
                        bad_json.append(line)
                except ValueError:
                    bad_json.append(line)
        problem = sidecar_problems.get(pod_name)
        status = "ok" if rc == args.expect and not bad_json and not problem else "FAILED"
        print(f"k8s_run: pod {pod_name}: exit {rc} (expected {args.expect}) {status}", file=sys.stderr)
        if status != "ok":
            failed += 1
            if problem:
                print(f"k8s_run:   {problem}", file=sys.stderr)
            for line in bad_json[:3]:
                print(f"k8s_run:   not a JSON log line: {line}", file=sys.stderr)
            sys.stderr.write("".join(text.splitlines(True)[-15:]))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
