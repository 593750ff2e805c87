#!/usr/bin/env python3
"""chart_checks.py - assertions on one `helm template` rendering of the chart.

usage: chart_checks.py MANIFESTS MODE PROXY ROLLBACK [WAIT_AS [ARGOCD [CONFIGMAP]]]
  MODE initContainer|job|sidecar, PROXY and ROLLBACK true|false, WAIT_AS
  initContainer|sidecar (schemagate.job.waitAs, default initContainer),
  ARGOCD (argocd.enabled) and CONFIGMAP (schemagate.migrations.files given)
  true|false, default false: the values the rendering was made with. Prints
  one "ok - ..." line per check; exits 1 on the first failure.
"""
import sys

import yaml

FULL = "rel-schemagate-example"
HARDENED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def check(what, cond):
    if not cond:
        print(f"FAIL - {what}")
        sys.exit(1)
    print(f"ok - {what}")


def env_of(c):
    return {e["name"]: e for e in c.get("env") or []}


def check_serve(w, pod, meta, sg, args):
    """schemagate serve as a native sidecar whose startupProbe gates the app."""
    check(f"{w} schemagate is an initContainer", sg in (pod.get("initContainers") or []))
    check(f"{w} schemagate is a native sidecar (restartPolicy Always)", sg.get("restartPolicy") == "Always")
    check(f"{w} schemagate runs {args}", sg.get("args") == args)
    ports = {p["name"]: p for p in sg.get("ports") or []}
    check(f"{w} the metrics port is named metrics (9187)", ports.get("metrics", {}).get("containerPort") == 9187)
    listen = env_of(sg).get("SCHEMAGATE_LISTEN", {}).get("value")
    check(f"{w} SCHEMAGATE_LISTEN {listen} is on the metrics port", listen == "0.0.0.0:9187")
    check(f"{w} SCHEMAGATE_CHECK_INTERVAL is set", env_of(sg).get("SCHEMAGATE_CHECK_INTERVAL", {}).get("value") == "30s")
    for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        p = sg.get(probe) or {}
        check(f"{w} {probe} is GET {path} on port metrics",
              p.get("httpGet") == {"path": path, "port": "metrics"})
        check(f"{w} {probe} has a timeout", isinstance(p.get("timeoutSeconds"), int))
    sp = sg["startupProbe"]
    budget = sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3)
    check(f"{w} startupProbe allows {budget} s for long migrations (>= 1 h)", budget >= 3600)
    a = meta.get("annotations") or {}
    check(f"{w} prometheus.io annotations scrape/port/path",
          a.get("prometheus.io/scrape") == "true" and a.get("prometheus.io/port") == "9187"
          and a.get("prometheus.io/path") == "/metrics")


ARGO = "argocd.argoproj.io/"
# argocd.syncWaves defaults: config, rollback Job, migrate Job, Deployment
WAVES = {"config": -3, "rollback": -2, "migrate": -1, "deployment": 0}


def hook_of(doc, argocd):
    """(phase, wave) of a resource as Argo CD orders it, or Helm's (hook, weight)."""
    a = doc["metadata"].get("annotations") or {}
    if argocd:
        return a.get(ARGO + "hook", "Sync"), int(a.get(ARGO + "sync-wave", "0"))
    return a.get("helm.sh/hook"), a.get("helm.sh/hook-weight")


def check_argocd(tag, docs, by, mode, rollback, configmap):
    """Argo CD: PreSync hooks with BeforeHookCreation, ordered by sync wave."""
    for d in docs:
        a = d["metadata"].get("annotations") or {}
        check(f"{tag} {d['kind']}/{d['metadata']['name']} carries no Helm hook annotation",
              not any(k.startswith("helm.sh/hook") for k in a))
    jobs = [("migrate", mode == "job"), ("rollback", rollback)]
    for suffix, wanted in jobs:
        job = by.get(("Job", f"{FULL}-{suffix}"))
        if not wanted:
            continue
        a = job["metadata"]["annotations"]
        w = f"{tag} Job/{FULL}-{suffix}:"
        check(f"{w} argocd hook PreSync", a.get(ARGO + "hook") == "PreSync")
        check(f"{w} hook-delete-policy BeforeHookCreation (a re-sync replaces the finished Job)",
              a.get(ARGO + "hook-delete-policy") == "BeforeHookCreation")
        check(f"{w} sync wave {WAVES[suffix]}", hook_of(job, True) == ("PreSync", WAVES[suffix]))
    deploy = by[("Deployment", FULL)]
    check(f"{tag} Deployment in the Sync phase, wave 0", hook_of(deploy, True) == ("Sync", 0))
    cm = by.get(("ConfigMap", f"{FULL}-migrations"))
    check(f"{tag} migrations ConfigMap rendered iff files are given", (cm is not None) == configmap)
    if cm:
        hook = mode == "job" or rollback
        want = ("PreSync" if hook else "Sync", WAVES["config"])
        check(f"{tag} migrations ConfigMap is {want[0]} wave {want[1]}", hook_of(cm, True) == want)
        if hook:
            check(f"{tag} migrations ConfigMap is replaced on re-sync (BeforeHookCreation)",
                  cm["metadata"]["annotations"].get(ARGO + "hook-delete-policy") == "BeforeHookCreation")
    # The order Argo CD applies them in: phase, then wave.
    phases = {"PreSync": 0, "Sync": 1}
    order = sorted(docs, key=lambda d: (phases[hook_of(d, True)[0]], hook_of(d, True)[1]))
    kinds = [d["kind"] + ("/" + d["metadata"]["name"].rsplit("-", 1)[1] if d["kind"] == "Job" else "")
             for d in order]
    expected = [k for k, on in (("ConfigMap", configmap), ("Job/rollback", rollback),
                                ("Job/migrate", mode == "job"), ("Deployment", True)) if on]
    check(f"{tag} Argo CD applies {' < '.join(kinds)}", kinds == expected)


def main():
    path, mode, proxy, rollback = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4] == "true"
    wait_as = sys.argv[5] if len(sys.argv) > 5 else "initContainer"
    argocd = len(sys.argv) > 6 and sys.argv[6] == "true"
    configmap = len(sys.argv) > 7 and sys.argv[7] == "true"
    serves = mode == "sidecar" or (mode == "job" and wait_as == "sidecar")
    tag = f"[{mode}, proxy={proxy}, rollback={rollback}, waitAs={wait_as}, argocd={argocd}, configmap={configmap}]"
    with open(path) as f:
        text = f.read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    check(f"{tag} no Secret object is rendered", not any(d["kind"] == "Secret" for d in docs))
    deploy = by.get(("Deployment", FULL))
    check(f"{tag} the Deployment is rendered", deploy is not None)
    migrate = by.get(("Job", f"{FULL}-migrate"))
    rollback_job = by.get(("Job", f"{FULL}-rollback"))
    check(f"{tag} migrate Job rendered iff job mode", (migrate is not None) == (mode == "job"))
    check(f"{tag} rollback Job rendered iff enabled", (rollback_job is not None) == rollback)

    # workload -> (expected args, credentials Secret)
    if mode == "job":
        deploy_args = ["serve", "--wait"] if serves else ["wait"]
    else:
        deploy_args = ["serve"] if serves else ["up"]
    expect = {("Deployment", FULL): (deploy_args, "app-db-app" if mode == "job" else "app-db-migrator")}
    if migrate:
        expect[("Job", f"{FULL}-migrate")] = (["up"], "app-db-migrator")
        if not argocd:
            check(f"{tag} migrate Job hook is pre-install,pre-upgrade, weight -5",
                  hook_of(migrate, False) == ("pre-install,pre-upgrade", "-5"))
    if rollback_job:
        expect[("Job", f"{FULL}-rollback")] = (["rollback"], "app-db-migrator")
        if not argocd:
            check(f"{tag} rollback Job hook is pre-rollback, weight -5",
                  hook_of(rollback_job, False) == ("pre-rollback", "-5"))
    if argocd:
        check_argocd(tag, docs, by, mode, rollback, configmap)
    else:
        check(f"{tag} no Argo CD annotation without argocd.enabled",
              not any(k.startswith(ARGO) for d in docs for k in d["metadata"].get("annotations") or {}))
        cm = by.get(("ConfigMap", f"{FULL}-migrations"))
        check(f"{tag} migrations ConfigMap rendered iff files are given", (cm is not None) == configmap)
        if cm and (mode == "job" or rollback):
            check(f"{tag} migrations ConfigMap is a hook before the Jobs (weight -10)",
                  hook_of(cm, False) == ("pre-install,pre-upgrade,pre-rollback", "-10"))
        elif cm:
            check(f"{tag} migrations ConfigMap is an ordinary object", hook_of(cm, False) == (None, None))

    for (kind, name), (args, secret) in expect.items():
        doc = by[(kind, name)]
        w = f"{tag} {kind}/{name}:"
        pod = doc["spec"]["template"]["spec"]
        if kind == "Job":
            a = doc["metadata"]["annotations"]
            if not argocd:
                check(f"{w} delete policy before-hook-creation,hook-succeeded",
                      a.get("helm.sh/hook-delete-policy") == "before-hook-creation,hook-succeeded")
            spec = doc["spec"]
            for field in ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"):
                check(f"{w} {field} is set", isinstance(spec.get(field), int))
            check(f"{w} restartPolicy Never", pod.get("restartPolicy") == "Never")
            sg_list = pod["containers"]
        else:
            sg_list = pod.get("initContainers") or []
        inits = pod.get("initContainers") or []
        names = [c["name"] for c in inits]
        sg = next((c for c in sg_list if c["name"] == "schemagate"), None)
        check(f"{w} has a schemagate container", sg is not None)
        check(f"{w} schemagate runs /schemagate {' '.join(args)}",
              sg.get("command") == ["/schemagate"] and sg.get("args") == args)
        meta = doc["spec"]["template"].get("metadata") or {}
        if kind == "Deployment" and serves:
            check_serve(w, pod, meta, sg, args)
        else:
            check(f"{w} schemagate is not a sidecar and has no probes or ports",
                  not any(k in sg for k in ("restartPolicy", "ports", "startupProbe", "readinessProbe",
                                            "livenessProbe")))
            check(f"{w} no prometheus.io annotations",
                  not any(k.startswith("prometheus.io/") for k in meta.get("annotations") or {}))
        psc = pod.get("securityContext") or {}
        check(f"{w} pod runAsNonRoot and seccomp RuntimeDefault",
              psc.get("runAsNonRoot") is True and psc.get("seccompProfile") == {"type": "RuntimeDefault"})
        for c in inits + pod["containers"]:
            sc = c.get("securityContext") or {}
            check(f"{w} container {c['name']} has the hardened securityContext",
                  all(sc.get(k) == v for k, v in HARDENED.items()))
        if proxy:
            check(f"{w} cloud-sql-proxy is the first initContainer", names[:1] == ["cloud-sql-proxy"])
            px = inits[0]
            check(f"{w} cloud-sql-proxy is a native sidecar (restartPolicy Always)", px.get("restartPolicy") == "Always")
            check(f"{w} cloud-sql-proxy has a startupProbe", "httpGet" in (px.get("startupProbe") or {}))
            if kind == "Deployment":
                check(f"{w} cloud-sql-proxy comes before schemagate",
                      names.index("cloud-sql-proxy") < names.index("schemagate"))
        else:
            check(f"{w} no cloud-sql-proxy", "cloud-sql-proxy" not in names)
        env = env_of(sg)
        check(f"{w} POD_NAME from the downward API",
              env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name")
        check(f"{w} JSON logs", env.get("SCHEMAGATE_LOG_FORMAT", {}).get("value") == "json")
        check(f"{w} terminationMessagePolicy FallbackToLogsOnError",
              sg.get("terminationMessagePolicy") == "FallbackToLogsOnError")
        ref = env.get("DB_USER", {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(f"{w} DB_USER from secretKeyRef {secret}", ref.get("name") == secret)
        url = env.get("DATABASE_URL", {}).get("value", "")
        host = "127.0.0.1:5432" if proxy else "db.example.internal:5432"
        check(f"{w} DATABASE_URL {url} carries $(DB_USER), no password, host {host}",
              url.startswith("postgres://$(DB_USER)@" + host + "/"))
        pw = env.get("DATABASE_PASSWORD_FILE", {}).get("value", "")
        mounts = {m["mountPath"]: m for m in sg.get("volumeMounts") or []}
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        mount = mounts.get(pw.rsplit("/", 1)[0])
        check(f"{w} DATABASE_PASSWORD_FILE is in a read-only Secret volume of {secret}",
              mount is not None and mount.get("readOnly") is True
              and vols[mount["name"]]["secret"]["secretName"] == secret)
        dir_mount = mounts.get(env.get("SCHEMAGATE_DIR", {}).get("value"))
        if configmap:
            check(f"{w} SCHEMAGATE_DIR is the migrations ConfigMap, read-only",
                  dir_mount is not None and dir_mount.get("readOnly") is True
                  and vols[dir_mount["name"]].get("configMap", {}).get("name") == f"{FULL}-migrations")
        else:
            check(f"{w} SCHEMAGATE_DIR is the image's own (no volume)", dir_mount is None)
        for c in inits + pod["containers"]:
            for e in c.get("env") or []:
                if any(w_ in e["name"].upper() for w_ in ("PASSWORD", "SECRET", "TOKEN")) \
                        and not e["name"].endswith("_FILE"):
                    check(f"{w} {c['name']} {e['name']} has no literal value", "value" not in e)

    if mode == "job":
        app_inits = deploy["spec"]["template"]["spec"]["initContainers"]
        check(f"{tag} app pods never run up or plain serve in job mode",
              all(c.get("args") not in (["up"], ["serve"]) for c in app_inits))
    if proxy and migrate:
        check(f"{tag} hook Job pods get the proxy too",
              migrate["spec"]["template"]["spec"]["initContainers"][0]["name"] == "cloud-sql-proxy")


if __name__ == "__main__":
    main()
