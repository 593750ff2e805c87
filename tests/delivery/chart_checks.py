#!/usr/bin/env python3
"""chart_checks.py - assertions on one `helm template` rendering of the chart.

usage: chart_checks.py MANIFESTS MODE PROXY ROLLBACK
  MODE initContainer|job, PROXY and ROLLBACK true|false: the values the
  rendering was made with. Prints one "ok - ..." line per check; exits 1 on
  the first failure.
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


def main():
    path, mode, proxy, rollback = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4] == "true"
    tag = f"[{mode}, proxy={proxy}, rollback={rollback}]"
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

    # workload -> (expected command, credentials Secret)
    expect = {("Deployment", FULL): ("up" if mode == "initContainer" else "wait",
                                     "app-db-migrator" if mode == "initContainer" else "app-db-app")}
    if migrate:
        expect[("Job", f"{FULL}-migrate")] = ("up", "app-db-migrator")
        a = migrate["metadata"]["annotations"]
        check(f"{tag} migrate Job hook is pre-install,pre-upgrade", a.get("helm.sh/hook") == "pre-install,pre-upgrade")
        check(f"{tag} migrate Job hook weight is set", a.get("helm.sh/hook-weight") == "-5")
    if rollback_job:
        expect[("Job", f"{FULL}-rollback")] = ("rollback", "app-db-migrator")
        a = rollback_job["metadata"]["annotations"]
        check(f"{tag} rollback Job hook is pre-rollback", a.get("helm.sh/hook") == "pre-rollback")
        check(f"{tag} rollback Job hook weight is set", a.get("helm.sh/hook-weight") == "-5")

    for (kind, name), (command, secret) in expect.items():
        doc = by[(kind, name)]
        w = f"{tag} {kind}/{name}:"
        pod = doc["spec"]["template"]["spec"]
        if kind == "Job":
            a = doc["metadata"]["annotations"]
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
        check(f"{w} schemagate runs [/schemagate {command}]",
              sg.get("command") == ["/schemagate"] and sg.get("args") == [command])
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
        for c in inits + pod["containers"]:
            for e in c.get("env") or []:
                if any(w_ in e["name"].upper() for w_ in ("PASSWORD", "SECRET", "TOKEN")) \
                        and not e["name"].endswith("_FILE"):
                    check(f"{w} {c['name']} {e['name']} has no literal value", "value" not in e)

    if mode == "job":
        app_inits = deploy["spec"]["template"]["spec"]["initContainers"]
        check(f"{tag} app pods never run up in job mode",
              all(c.get("args") != ["up"] for c in app_inits))
    if proxy and migrate:
        check(f"{tag} hook Job pods get the proxy too",
              migrate["spec"]["template"]["spec"]["initContainers"][0]["name"] == "cloud-sql-proxy")


if __name__ == "__main__":
    main()
