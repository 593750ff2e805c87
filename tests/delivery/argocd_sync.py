#!/usr/bin/env python3
"""argocd_sync.py - sync rendered manifests the way Argo CD orders them.

Plays Argo CD's sync of one application revision against a pretend cluster
kept in --state (a JSON file, so a second run is a re-sync of the same
cluster), and the kubelet's part through k8s_run.py:
  - resources are applied phase by phase (PreSync hooks, then Sync), and
    within a phase wave by wave (argocd.argoproj.io/sync-wave, default 0),
    ConfigMaps and Secrets before workloads within a wave; each wave must
    be healthy before the next starts (a hook Job must complete);
  - a hook that already exists from an earlier sync is deleted first when
    its hook-delete-policy has BeforeHookCreation; otherwise creating it
    fails ("already exists"), as Argo CD's sync of a finished Job does;
    HookSucceeded deletes it once it completed. An ordinary Job whose
    spec changed fails on the immutable spec.template;
  - a Job or Deployment whose pods reference a Secret or ConfigMap that is
    not in the cluster yet fails (the kubelet's CreateContainerConfigError);
    otherwise its schemagate container runs through k8s_run.py with the
    cluster's Secrets and ConfigMaps: a Job's once, a Deployment's in
    --pods pods at once.
Prints one "sync: PHASE wave N: Kind/name: what happened" line per step;
exits 0 iff the sync succeeded.
"""
import argparse
import base64
import json
import os
import subprocess
import sys

import yaml

ARGO = "argocd.argoproj.io/"
PHASES = ["PreSync", "Sync", "PostSync"]
KIND_ORDER = ["Namespace", "Secret", "ConfigMap", "Service", "Deployment", "Job"]


def phase_wave(doc):
    a = doc["metadata"].get("annotations") or {}
    hook = a.get(ARGO + "hook")
    return (hook or "Sync"), int(a.get(ARGO + "sync-wave", "0")), hook is not None


def references(doc):
    """(kind, name) of every Secret and ConfigMap the pod template needs."""
    pod = doc["spec"]["template"]["spec"]
    refs = set()
    for v in pod.get("volumes") or []:
        if "secret" in v:
            refs.add(("Secret", v["secret"]["secretName"]))
        if "configMap" in v:
            refs.add(("ConfigMap", v["configMap"]["name"]))
    for c in (pod.get("initContainers") or []) + pod["containers"]:
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.add(("Secret", ref["name"]))
    return refs


def data_of(doc):
    if doc["kind"] == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        data.update(doc.get("stringData") or {})
        return data
    return dict(doc.get("data") or {})


def run_pods(doc, cluster, args, pods):
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_run.py"),
           "--manifests", args.state + ".doc.yaml", "--kind", doc["kind"],
           "--name", doc["metadata"]["name"], "--pods", str(pods)]
    with open(cmd[3], "w") as f:
        yaml.safe_dump(doc, f)
    for key, obj in cluster.items():
        kind, name = key.split("/", 1)
        if kind in ("Secret", "ConfigMap"):
            for k, v in obj["data"].items():
                cmd += ["--" + kind.lower(), f"{name}/{k}={v}"]
    cmd += args.k8s_run_arg
    return subprocess.run(cmd).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifests", action="append", required=True, help="rendered manifests (repeatable)")
    ap.add_argument("--state", required=True, help="the pretend cluster, kept between syncs")
    ap.add_argument("--pods", type=int, default=3, help="a Deployment's pods")
    ap.add_argument("k8s_run_arg", nargs="*", help="after --: options for k8s_run.py (--path, --logs, ...)")
    args = ap.parse_args()

    docs = []
    for path in args.manifests:
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    cluster = {}
    if os.path.exists(args.state):
        with open(args.state) as f:
            cluster = json.load(f)

    def order(doc):
        phase, wave, _ = phase_wave(doc)
        kind = KIND_ORDER.index(doc["kind"]) if doc["kind"] in KIND_ORDER else len(KIND_ORDER)
        return PHASES.index(phase), wave, kind, doc["metadata"]["name"]

    ok = True
    for doc in sorted(docs, key=order):
        phase, wave, hook = phase_wave(doc)
        key = f"{doc['kind']}/{doc['metadata']['name']}"
        policy = ((doc["metadata"].get("annotations") or {}).get(ARGO + "hook-delete-policy") or "").split(",")

        def say(what):
            print(f"sync: {phase} wave {wave}: {key}: {what}", flush=True)

        if key in cluster:
            if hook and "BeforeHookCreation" in policy:
                del cluster[key]
                say("deleted the hook of the previous sync (BeforeHookCreation)")
            elif hook:
                say("FAILED: already exists (a hook without BeforeHookCreation)")
                ok = False
                break
            elif doc["kind"] == "Job" and cluster[key]["doc"]["spec"] != doc["spec"]:
                say("FAILED: spec.template: field is immutable")
                ok = False
                break
        if doc["kind"] in ("Job", "Deployment"):
            missing = sorted(f"{k}/{n}" for k, n in references(doc) if f"{k}/{n}" not in cluster)
            if missing:
                say(f"FAILED: CreateContainerConfigError: {', '.join(missing)} not found")
                ok = False
                break
            if doc["kind"] == "Job" and key in cluster and cluster[key]["doc"]["spec"] == doc["spec"]:
                say("unchanged")
                continue
            passed = run_pods(doc, cluster, args, 1 if doc["kind"] == "Job" else args.pods)
            if not passed:
                say("FAILED: its pods failed")
                ok = False
                break
            say("applied, completed" if doc["kind"] == "Job" else f"applied, {args.pods} pods' initContainers exited 0")
        else:
            say("applied")
        cluster[key] = {"doc": doc, "data": data_of(doc) if doc["kind"] in ("Secret", "ConfigMap") else {}}
        if hook and "HookSucceeded" in policy:
            del cluster[key]
            say("deleted (HookSucceeded)")
    with open(args.state, "w") as f:
        json.dump(cluster, f)
    print(f"sync: {'Succeeded' if ok else 'Failed'}", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
