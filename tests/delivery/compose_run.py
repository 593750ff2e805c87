#!/usr/bin/env python3
"""compose_run.py - run the replicas of a compose service as local processes.

Reads `docker-compose config` output (interpolated, normalised), takes the
service's entrypoint + command, environment and deploy.replicas, and starts
that many copies at once, as the compose engine would start containers:
  --exe NAME=PATH        the entrypoint's program (schemagate) on this host
  --path CPATH=HPATH     container paths in env values (secrets, /migrations)
  --host SVC:PORT=HOST:PORT  where a URL's "@SVC:PORT" of the compose
                         network is reachable from here
  --record DIR           replace the program after "--" by a recorder that
                         writes its pid and argv to DIR/replica-N, so the
                         test can prove schemagate exec'd it in place
Exit status 0 iff every replica exits 0 and each recorder ran with the
replica's own pid and the service's program arguments.
"""
import argparse
import os
import subprocess
import sys

import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--service", default="app")
    ap.add_argument("--exe", action="append", default=[])
    ap.add_argument("--path", action="append", default=[])
    ap.add_argument("--host", action="append", default=[])
    ap.add_argument("--record", required=True)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    with open(args.config) as f:
        svc = yaml.safe_load(f)["services"][args.service]
    argv = list(svc.get("entrypoint") or []) + list(svc.get("command") or [])
    replicas = int((svc.get("deploy") or {}).get("replicas", 1))
    env = {k: "" if v is None else str(v) for k, v in (svc.get("environment") or {}).items()}
    exes = dict(e.split("=", 1) for e in args.exe)
    paths = dict(p.split("=", 1) for p in args.path)
    hosts = dict(h.split("=", 1) for h in args.host)
    print(f"compose_run: service {args.service}: {replicas} replicas of {argv}", file=sys.stderr)
    if "--" not in argv:
        sys.exit("compose_run: the entrypoint has no '-- PROGRAM'")
    split = argv.index("--")
    program = argv[split + 1:]

    for k, v in env.items():
        for cpath, hpath in paths.items():
            if v == cpath or v.startswith(cpath + "/"):
                v = hpath + v[len(cpath):]
        for name, addr in hosts.items():
            v = v.replace(f"@{name}", f"@{addr}")
        env[k] = v
    env["PATH"] = "/usr/bin:/bin"

    procs = []
    for i in range(replicas):
        out = os.path.join(args.record, f"replica-{i}")
        recorder = ["/bin/sh", "-c", 'printf "%s\\n" "$$" "$@" >"$0"', out]
        cmd = [exes.get(argv[0], argv[0])] + argv[1:split + 1] + recorder + program
        log = open(os.path.join(args.record, f"replica-{i}.log"), "w")
        procs.append((i, subprocess.Popen(cmd, env=env, stdout=log, stderr=log), log))
    failed = 0
    for i, proc, log in procs:
        rc = proc.wait(timeout=args.timeout)
        log.close()
        try:
            with open(os.path.join(args.record, f"replica-{i}")) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        execd = bool(lines) and lines[0] == str(proc.pid) and lines[1:] == program
        print(f"compose_run: replica {i}: exit {rc}; program exec'd in place (pid {proc.pid}): {execd}",
              file=sys.stderr)
        if rc != 0 or not execd:
            failed += 1
            with open(log.name) as f:
                sys.stderr.write("".join(f.readlines()[-15:]))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
