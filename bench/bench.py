#!/usr/bin/env python3
"""bench.py - helpers for bench/run.sh: generate migrations, run replicas,
measure wake-up latency and peak RSS, and write the Markdown report.

Kept in Python (standard library only) because run.sh needs precise process
timing (os.wait4 returns the moment a child exits) and JSON handling; every
database query goes through psql, the mariadb client or Python's sqlite3,
so no driver is needed here.

  bench.py gen KIND N DIR [--alembic DIR | --sqlite-floor FILE]
  bench.py replicas N OUT.json LOGDIR [--after CMD] -- COMMAND...
  bench.py wake OUT.json LOGDIR --db URL --rounds R --waiters W --prepare CMD -- COMMAND...
  bench.py rss OUT.json RUNS -- COMMAND...
  bench.py merge RESULTS_DIR CASE
  bench.py alternate RUNS NAME=COMMAND...   (before/after comparisons, by hand)
  bench.py report RESULTS_DIR [NOTES.md]
  bench.py two-runs RESULTS_DIR_1 RESULTS_DIR_2
"""
import glob
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import urllib.parse

# --------------------------------------------------------------------------
# Migration generation: one dbmate-style set (read by dbmate and schemagate)
# and an Alembic environment running the very same SQL.

# Portable across PostgreSQL, MariaDB and SQLite.
TABLE_SQL = ("CREATE TABLE t{n} (id bigint PRIMARY KEY, name varchar(100) NOT NULL, "
             "created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP);\n"
             "CREATE INDEX t{n}_name_idx ON t{n} (name);\n")


def migration_sql(kind, n, count):
    """Up and down SQL of migration n (1-based) of a set of kind."""
    if kind == "tables":
        return TABLE_SQL.format(n=n), "DROP TABLE t{n};\n".format(n=n)
    if kind == "counter":
        # bench_counter is created by the harness before the tools start, so
        # the count does not depend on which tool won.
        up = TABLE_SQL.format(n=n) + "INSERT INTO bench_counter (version) VALUES ({n});\n".format(n=n)
        return up, "DROP TABLE t{n};\nDELETE FROM bench_counter WHERE version = {n};\n".format(n=n)
    raise SystemExit("gen: unknown kind " + kind)


# The wake-up case: one migration per engine (dialect files of one
# directory) that holds the lock for about 2 s, then records the database
# clock in epoch seconds as its last statement, just before its commit.
# SQLite has no sleep function: a counting loop of about that length.
WAKE_SQL = {
    "postgres": ("CREATE TABLE bench_wake (ts double precision NOT NULL);\n"
                 "SELECT pg_sleep(2);\n"
                 "INSERT INTO bench_wake (ts) VALUES (extract(epoch FROM clock_timestamp()));\n"),
    # SYSDATE(6): the time the statement runs (NOW() is the statement's start)
    "mysql": ("CREATE TABLE bench_wake (ts decimal(20,6) NOT NULL);\n"
              "SELECT SLEEP(2);\n"
              "INSERT INTO bench_wake (ts) VALUES (UNIX_TIMESTAMP(SYSDATE(6)));\n"),
    "sqlite": ("CREATE TABLE bench_wake (ts real NOT NULL);\n"
               "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) "
               "SELECT count(*) FROM c;\n"
               "INSERT INTO bench_wake (ts) VALUES ((julianday('now') - 2440587.5) * 86400.0);\n"),
}


def gen_wake(outdir):
    os.makedirs(outdir, exist_ok=True)
    for dialect, up in WAKE_SQL.items():
        with open(os.path.join(outdir, "00000000000001_wake.%s.sql" % dialect), "w") as f:
            f.write("-- migrate:up\n" + up + "\n-- migrate:down\nDROP TABLE bench_wake;\n")


# The data-migration case: one migration of N single-row INSERTs into a
# table the harness creates beforehand (bench_rows), and the same INSERTs
# for the engines' own clients: inserts.sql (psql -1 wraps it) and
# inserts.tx.sql inside START TRANSACTION ... COMMIT (the mariadb client).
ROWS_TABLE = ("CREATE TABLE bench_rows (id bigint PRIMARY KEY, name varchar(100) NOT NULL, "
              "payload varchar(255) NOT NULL)")


def gen_inserts(count, outdir):
    os.makedirs(os.path.join(outdir, "migrations"), exist_ok=True)
    body = "".join("INSERT INTO bench_rows (id, name, payload) VALUES (%d, 'row %d', '%s');\n"
                   % (n, n, ("payload of row %d " % n) * 8) for n in range(1, count + 1))
    files = {
        "migrations/00000000000001_inserts.sql":
            "-- migrate:up\n" + body + "\n-- migrate:down\nDELETE FROM bench_rows;\n",
        "inserts.sql": body,
        "inserts.tx.sql": "START TRANSACTION;\n" + body + "COMMIT;\n",
        "table.sql": ROWS_TABLE + ";\n",
    }
    for name, text in files.items():
        with open(os.path.join(outdir, name), "w") as f:
            f.write(text)


ALEMBIC_INI = """[alembic]
script_location = {loc}
"""

ALEMBIC_ENV = '''"""Minimal Alembic environment for the schemagate benchmark.

The URL comes from `-x url=...` or DATABASE_URL; no logging configuration
and a NullPool, to give Alembic its cheapest possible start.
"""
import os

from alembic import context
from sqlalchemy import create_engine, pool

url = context.get_x_argument(as_dictionary=True).get("url") or os.environ["DATABASE_URL"]
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
'''

ALEMBIC_REV = '''"""{name}"""
from alembic import op

revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade():
{up}

def downgrade():
{down_sql}
'''


def op_lines(sql):
    stmts = [s.strip() for s in sql.split(";") if s.strip()]
    return "".join("    op.execute({!r})\n".format(s) for s in stmts)


def cmd_gen(args):
    kind, count, outdir = args[0], int(args[1]), args[2]
    alembic_dir = args[4] if len(args) > 4 and args[3] == "--alembic" else None
    sqlite_floor = args[4] if len(args) > 4 and args[3] == "--sqlite-floor" else None
    if kind == "wake":
        return gen_wake(outdir)
    if kind == "inserts":
        return gen_inserts(count, outdir)
    os.makedirs(outdir, exist_ok=True)
    if alembic_dir:
        os.makedirs(os.path.join(alembic_dir, "versions"), exist_ok=True)
        with open(os.path.join(alembic_dir, "alembic.ini"), "w") as f:
            f.write(ALEMBIC_INI.format(loc=os.path.abspath(alembic_dir)))
        with open(os.path.join(alembic_dir, "env.py"), "w") as f:
            f.write(ALEMBIC_ENV)
        with open(os.path.join(alembic_dir, "script.py.mako"), "w") as f:
            f.write("# unused\n")
    floor = None
    if sqlite_floor:
        # the SQLite floor: what the sqlite3 client does for the same
        # migrations, each with one history INSERT in its own transaction
        floor = open(sqlite_floor, "w")
        floor.write(".bail on\nCREATE TABLE schema_history (version TEXT PRIMARY KEY, name TEXT NOT NULL, "
                    "applied_at TEXT NOT NULL);\n")
    for n in range(1, count + 1):
        up, down = migration_sql(kind, n, count)
        version = "%014d" % n
        name = "%s_%d" % (kind, n)
        if floor:
            floor.write("BEGIN;\n%sINSERT INTO schema_history VALUES ('%s', '%s', datetime('now'));\nCOMMIT;\n"
                        % (up, version, name))
        with open(os.path.join(outdir, "%s_%s.sql" % (version, name)), "w") as f:
            f.write("-- migrate:up\n" + up + "\n-- migrate:down\n" + down)
        if alembic_dir:
            rev = "r%05d" % n
            prev = "None" if n == 1 else '"r%05d"' % (n - 1)
            with open(os.path.join(alembic_dir, "versions", "%s_%s.py" % (rev, name)), "w") as f:
                f.write(ALEMBIC_REV.format(name=name, rev=rev, down=prev, up=op_lines(up),
                                           down_sql=op_lines(down)))
    if floor:
        floor.close()


# --------------------------------------------------------------------------
# Process helpers


def spawn(cmd, logpath):
    log = open(logpath, "wb")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return p


def reap(pids):
    """Wait for every pid; return {pid: (exit_code, exit_time)}."""
    done = {}
    while len(done) < len(pids):
        pid, status, _ = os.wait4(-1, 0)
        t = time.time()
        if pid in pids:
            done[pid] = (os.waitstatus_to_exitcode(status), t)
    return done


def last_line(path):
    try:
        with open(path, "rb") as f:
            lines = [l.strip() for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
    except OSError:
        return ""
    errs = [l for l in lines if ("Error" in l or "ERROR" in l or "error:" in l or "failed" in l)
            and not l.startswith("(Background") and not l.startswith("Traceback")]
    line = (errs or lines or [""])[-1]
    return line[:200]


def split_cmd(args):
    i = args.index("--")
    return args[:i], args[i + 1:]


def cmd_replicas(args):
    opts, cmd = split_cmd(args)
    n, out, logdir = int(opts[0]), opts[1], opts[2]
    after = opts[opts.index("--after") + 1] if "--after" in opts else None
    os.makedirs(logdir, exist_ok=True)
    # Start them together: each child blocks in `read` on a pipe and execs
    # the tool once the pipe closes, so spawning 50 processes (slow on a
    # loaded 2-core machine) is not part of the race nor of the time.
    rfd, wfd = os.pipe()
    gate = ["sh", "-c", 'read _ <&%d; exec "$0" "$@"' % rfd]
    procs = []
    t_spawn = time.time()
    for i in range(n):
        log = open(os.path.join(logdir, "%02d.log" % i), "wb")
        procs.append(subprocess.Popen(gate + cmd, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, pass_fds=(rfd,)))
        log.close()
    os.close(rfd)
    t_spawned = time.time()
    time.sleep(0.2)  # let every shell reach its read
    t0 = time.time()
    os.close(wfd)
    done = reap({p.pid for p in procs})
    for p in procs:
        p.returncode = done[p.pid][0]
    codes = {}
    errors = {}
    for i, p in enumerate(procs):
        code = done[p.pid][0]
        codes[str(code)] = codes.get(str(code), 0) + 1
        if code != 0:
            line = last_line(os.path.join(logdir, "%02d.log" % i))
            errors[line] = errors.get(line, 0) + 1
    res = {
        "n": n,
        "ok": codes.get("0", 0),
        "codes": codes,
        "spawn_s": t_spawned - t_spawn,
        "last_exit_s": max(t for _, t in done.values()) - t0,
        "errors": sorted(errors.items(), key=lambda kv: -kv[1])[:3],
    }
    if after:
        res["after"] = subprocess.run(after, shell=True, capture_output=True, text=True).stdout.strip()
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def db_value(url, sql):
    """First value of sql on the database of a schemagate URL, through the
    engine's own client (psql, mariadb) or Python's sqlite3."""
    if url.startswith("sqlite:"):
        import sqlite3
        path = url[len("sqlite:"):]
        path = path[2:] if path.startswith("///") else path
        with sqlite3.connect(path) as db:
            row = db.execute(sql).fetchone()
        return "" if row is None else str(row[0])
    if url.startswith(("mysql://", "mariadb://")):
        u = urllib.parse.urlsplit(url)
        cmd = ["mariadb", "--no-defaults", "-N", "-B", "-h", u.hostname, "-P", str(u.port or 3306),
               "-u", urllib.parse.unquote(u.username), "-p" + urllib.parse.unquote(u.password or ""),
               u.path.lstrip("/"), "-e", sql]
    else:
        cmd = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("%s failed: %s" % (cmd[0], r.stderr.strip()))
    return r.stdout.strip()


def wait_for_line(path, text, proc, timeout):
    """Wait until the log at path contains text (the process still running)."""
    deadline = time.time() + timeout
    while True:
        with open(path, "rb") as f:
            if text in f.read():
                return True
        if time.time() > deadline or proc.poll() is not None:
            return False
        time.sleep(0.005)


def cmd_wake(args):
    """Wake-up latency: a winner holds the lock inside a ~2 s migration whose
    last statement records the database clock; W waiters start while it
    does. Latency = waiter exit (time.time() at wait4) - that timestamp.
    The same on every engine: the waiters start once the winner has logged
    that it holds the lock."""
    opts, cmd = split_cmd(args)
    out, logdir = opts[0], opts[1]
    url = opts[opts.index("--db") + 1]
    rounds = int(opts[opts.index("--rounds") + 1])
    waiters = int(opts[opts.index("--waiters") + 1])
    prepare = opts[opts.index("--prepare") + 1]
    os.makedirs(logdir, exist_ok=True)
    lat, codes, late_starts, rounds_out = [], {}, 0, []
    for r in range(rounds):
        subprocess.run(prepare, shell=True, check=True, stdout=subprocess.DEVNULL)
        wlog = os.path.join(logdir, "r%d-winner.log" % r)
        winner = spawn(cmd, wlog)
        if not wait_for_line(wlog, b"lock acquired", winner, 30):
            raise SystemExit("wake: the winner never held the lock (see %s)" % wlog)
        starts = {}
        procs = []
        for i in range(waiters):
            starts_t = time.time()
            p = spawn(cmd, os.path.join(logdir, "r%d-w%02d.log" % (r, i)))
            starts[p.pid] = starts_t
            procs.append(p)
        done = reap({winner.pid} | {p.pid for p in procs})
        commit = float(db_value(url, "SELECT ts FROM bench_wake"))
        for p in procs:
            code, t = done[p.pid]
            codes[str(code)] = codes.get(str(code), 0) + 1
            lat.append((t - commit) * 1000.0)
            if starts[p.pid] > commit:
                late_starts += 1
        rounds_out.append({"winner_exit": done[winner.pid][0],
                           "winner_exit_after_commit_ms": (done[winner.pid][1] - commit) * 1000.0})
    lat.sort()
    res = {
        "samples": len(lat),
        "codes": codes,
        "late_starts": late_starts,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1],
        "min_ms": lat[0],
        "rounds": rounds_out,
    }
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def percentile(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def cmd_rss(args):
    opts, cmd = split_cmd(args)
    out, runs = opts[0], int(opts[1])
    vals = []
    tmp = out + ".time"
    for _ in range(runs):
        r = subprocess.run(["/usr/bin/time", "-v", "-o", tmp] + cmd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            raise SystemExit("rss: %s exited %d" % (" ".join(cmd[:1]), r.returncode))
        with open(tmp) as f:
            for line in f:
                if "Maximum resident set size" in line:
                    vals.append(int(line.rsplit(":", 1)[1]))
    os.unlink(tmp)
    with open(out, "w") as f:
        json.dump({"kib": sorted(vals)}, f)


# --------------------------------------------------------------------------
# Report

TOOLS = {
    "schemagate": "schemagate (static)",
    "schemagate-dyn": "schemagate (dynamic)",
    "schemagate-lint": "schemagate `lint` (same directory, no database)",
    "dbmate": "dbmate",
    "alembic": "Alembic",
    "floor": "floor (static libpq)",
    "floor-dyn": "floor (dynamic libpq)",
    "floor-read": "floor (static libpq) + reading and hashing every file first",
    "floor-apply": "floor (static libpq): each migration + one history INSERT, one transaction, one message",
    "psql": "`psql -1 -f` (one transaction)",
    "mariadb": "`mariadb` client, `START TRANSACTION` … `COMMIT`",
    "sqlite3": "`sqlite3` client: each migration + one history INSERT, `BEGIN` … `COMMIT`",
}


class Report:
    def __init__(self, d):
        self.d = d
        self.meta = {}
        path = os.path.join(d, "meta.txt")
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    if "=" in line:
                        k, v = line.rstrip("\n").split("=", 1)
                        self.meta[k] = v
        self.lines = []
        self.targets = []

    def load(self, name):
        path = os.path.join(self.d, name + ".json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def hf(self, case, tool):
        """(min, median, max) seconds of a hyperfine export, or None."""
        j = self.load("%s_%s" % (case, tool))
        if not j:
            return None
        r = j["results"][0]
        return r["min"], r["median"], r["max"], len(r["times"])

    def skipped(self, case, tool):
        return self.meta.get("skip.%s.%s" % (case, tool)) or self.meta.get("skip.%s" % tool) or "not run"

    def out(self, s=""):
        self.lines.append(s)

    def target(self, ok, text):
        if ok is None:
            self.targets.append("- n/a  " + text)
        else:
            self.targets.append("- %s %s" % ("PASS" if ok else "MISS", text))

    def timing_table(self, case, tools, ref="schemagate"):
        refv = self.hf(case, ref)
        self.out("| tool | min | median | max | runs | median / schemagate |")
        self.out("|---|---:|---:|---:|---:|---:|")
        for t in tools:
            v = self.hf(case, t)
            if not v:
                self.out("| %s | — | — | — | — | %s |" % (TOOLS[t], self.skipped(case, t)))
                continue
            ratio = "%.2f×" % (v[1] / refv[1]) if refv else "—"
            self.out("| %s | %s | **%s** | %s | %d | %s |" % (TOOLS[t], ms(v[0]), ms(v[1]), ms(v[2]), v[3], ratio))
        self.out()

    def ratio(self, case, a, b):
        va, vb = self.hf(case, a), self.hf(case, b)
        if not va or not vb:
            return None
        return va[1] / vb[1]

    def check_ratio(self, case, a, b, limit, text):
        r = self.ratio(case, a, b)
        self.target(None if r is None else r <= limit, "%s: %s (limit %s)" % (text, "—" if r is None else "%.3f×" % r, limit))

    def build(self):
        m = self.meta
        self.out("# schemagate benchmarks")
        self.out()
        self.out("Generated by `bench/run.sh` on %s (total bench time %s s). Medians of repeated runs "
                 "(hyperfine); every tool talks to the same private server on this machine, "
                 "PostgreSQL over TCP with SCRAM-SHA-256 on 127.0.0.1." % (m.get("date", "?"), m.get("elapsed", "?")))
        self.out()
        self.out("## Machine")
        self.out()
        for k, label in [("cpu", "CPU"), ("nproc", "cores (nproc)"), ("mem", "memory"), ("kernel", "kernel"),
                         ("os", "OS"), ("v.schemagate", "schemagate"), ("v.dbmate", "dbmate"),
                         ("v.alembic", "Alembic"), ("v.sqlalchemy", "SQLAlchemy / driver"),
                         ("v.postgres", "PostgreSQL"), ("v.mariadb", "MariaDB"), ("v.sqlite", "SQLite (schemagate's)"), ("v.sqlite3", "sqlite3 client"),
                         ("v.hyperfine", "hyperfine")]:
            self.out("- %s: %s" % (label, m.get(k, "?")))
        self.out()
        self.out("Commands: schemagate `up`; dbmate `migrate --no-dump-schema` (`up` would also "
                 "connect to the maintenance database to create the target one); Alembic "
                 "`upgrade head` with a minimal env.py (NullPool, no logging config); the floor is "
                 "`bench/floor.c`: libpq connect with the same URL + one query reading the history "
                 "table. All use the same `postgresql://user:password@127.0.0.1:PORT/db?sslmode=disable` URL "
                 "(Alembic: `postgresql+psycopg2://`, `mysql+pymysql://`). \"schemagate\" is the "
                 "static release binary (what the image ships) unless noted.")
        self.out()

        self.out("## 1. No-op start, PostgreSQL (100 migrations applied, `up` again)")
        self.out()
        self.timing_table("pg_noop", ["schemagate", "schemagate-dyn", "floor", "floor-dyn", "dbmate", "alembic"])
        # issue 24's targets
        self.check_ratio("pg_noop", "schemagate", "floor", 1.10, "no-op ≤ 1.10 × floor (static schemagate vs static-libpq floor)")
        self.check_ratio("pg_noop", "schemagate-dyn", "floor-dyn", 1.10, "no-op ≤ 1.10 × floor (dynamic schemagate vs dynamic-libpq floor)")
        self.check_ratio("pg_noop", "schemagate", "dbmate", 0.6, "no-op ≤ 0.6 × dbmate")
        self.check_ratio("pg_noop", "schemagate", "alembic", 0.05, "no-op ≤ 0.05 × Alembic")
        self.out("The same with 1,000 migrations applied. Every file is read, hashed and validated "
                 "on libuv's thread pool while the run connects and reads the history (SPEC §5); the "
                 "floor row that reads and hashes the 1,000 files first (`floor --read DIR`) is what the "
                 "same work costs without the overlap; the target is against the plain floor, as for 100:")
        self.out()
        self.timing_table("pg_noop1000", ["schemagate", "schemagate-dyn", "schemagate-lint", "floor", "floor-dyn",
                                          "floor-read", "dbmate"])
        self.check_ratio("pg_noop1000", "schemagate", "floor", 1.25,
                         "no-op with 1,000 applied ≤ 1.25 × floor (static schemagate vs static-libpq floor)")
        self.check_ratio("pg_noop1000", "schemagate-dyn", "floor-dyn", 1.25,
                         "no-op with 1,000 applied ≤ 1.25 × floor (dynamic schemagate vs dynamic-libpq floor)")
        r = self.ratio("pg_noop1000", "schemagate", "floor-read")
        self.targets.append("- info no-op with 1,000 applied vs the floor that reads and hashes the same files: %s"
                            % ("—" if r is None else "%.3f×" % r))
        self.check_ratio("pg_noop1000", "schemagate-lint", "schemagate", 1.0,
                         "lint of 1,000 migrations ≤ a no-op up of the same directory")

        self.out("## 2. Fresh apply, PostgreSQL (table + index per migration, fresh database each run)")
        self.out()
        for n in ("100", "1000"):
            self.out("### %s migrations" % n)
            self.out()
            self.timing_table("pg_apply" + n, ["schemagate", "floor-apply", "dbmate", "alembic"])
        self.out("Growth (median of 1,000 / median of 100):")
        self.out()
        self.out("| tool | 1,000 / 100 |")
        self.out("|---|---:|")
        for t in ("schemagate", "dbmate", "alembic"):
            a, b = self.hf("pg_apply1000", t), self.hf("pg_apply100", t)
            self.out("| %s | %s |" % (TOOLS[t], "%.2f×" % (a[1] / b[1]) if a and b else "—"))
        self.out()
        self.check_ratio("pg_apply100", "schemagate", "dbmate", 0.90, "fresh apply of 100, PostgreSQL ≤ 0.90 × dbmate")
        self.check_ratio("pg_apply100", "schemagate", "floor-apply", 1.15,
                         "fresh apply of 100, PostgreSQL ≤ 1.15 × the one-message-per-migration floor")
        a, b = self.hf("pg_apply1000", "schemagate"), self.hf("pg_apply100", "schemagate")
        self.target(None if not (a and b) else a[1] / b[1] <= 10,
                    "1,000 costs ≤ 10 × 100: %s" % ("%.2f×" % (a[1] / b[1]) if a and b else "—"))

        self.replicas()
        self.wake()
        self.memory()

        self.out("## 6. MariaDB and SQLite (schemagate and dbmate)")
        self.out()
        for eng, label in (("mariadb", "MariaDB"), ("sqlite", "SQLite")):
            self.out("### %s: no-op start (100 applied)" % label)
            self.out()
            self.timing_table(eng + "_noop", ["schemagate", "dbmate"])
            self.out("### %s: fresh apply of 100" % label)
            self.out()
            self.timing_table(eng + "_apply100", ["schemagate", "dbmate"] + (["sqlite3"] if eng == "sqlite" else []))
        self.check_ratio("mariadb_apply100", "schemagate", "dbmate", 0.90, "fresh apply of 100, MariaDB ≤ 0.90 × dbmate")
        self.check_ratio("sqlite_apply100", "schemagate", "dbmate", 0.95, "fresh apply of 100, SQLite ≤ 0.95 × dbmate")
        self.check_ratio("sqlite_apply100", "schemagate", "sqlite3", 1.15,
                         "fresh apply of 100, SQLite ≤ 1.15 × the sqlite3 client applying the same transactions")

        self.inserts()

        self.out("## Targets")
        self.out()
        self.lines.extend(self.targets)
        self.out()
        return "\n".join(self.lines) + "\n"

    def replicas(self):
        n = self.meta.get("replicas.n", "50")
        k = self.meta.get("replicas.migrations", "20")
        self.out("## 3. Replicas at once, PostgreSQL (%s instances, fresh database, %s migrations)" % (n, k))
        self.out()
        self.out("Each migration creates a table + index and inserts one row into `bench_counter` "
                 "(created by the harness beforehand); \"exactly once\" means %s rows, %s distinct. "
                 "All instances are forked first and held at a pipe; time runs from the "
                 "pipe's release to the last exit. The floor row is the least that %s "
                 "connections at once cost on this machine." % (k, k, n))
        self.out()
        single = self.hf("pg_apply_replicas", "schemagate")
        self.out("| tool | exit 0 | exit codes | counter rows (total / distinct) | last exit | most common failure |")
        self.out("|---|---:|---|---|---:|---|")
        sg = None
        for t in ("floor", "schemagate", "dbmate", "alembic"):
            j = self.load("replicas_" + t)
            if t == "floor":
                if j:
                    self.out("| floor (dynamic libpq): connect + 1 query, no migrations | %d/%d | %s | — | %.2f s | |" % (
                        j["ok"], j["n"], ", ".join("%s×%s" % (v, c) for c, v in sorted(j["codes"].items())), j["last_exit_s"]))
                continue
            if not j:
                self.out("| %s | — | — | — | — | %s |" % (TOOLS[t], self.skipped("replicas", t)))
                continue
            if t == "schemagate":
                sg = j
            total, distinct = (j.get("after", "|").split("|") + ["?"])[:2]
            codes = ", ".join("%s×%s" % (v, c) for c, v in sorted(j["codes"].items()))
            err = j["errors"][0][0].replace("|", "\\|") if j["errors"] else ""
            self.out("| %s | %d/%d | %s | %s / %s | %.2f s | %s |" % (TOOLS[t], j["ok"], j["n"], codes, total,
                                                                  distinct, j["last_exit_s"], "`%s`" % err if err else ""))
        self.out()
        if single:
            self.out("Single schemagate instance applying the same %s migrations: median %s." % (k, ms(single[1])))
            self.out()
        if sg:
            total, distinct = (sg.get("after", "|").split("|") + ["?"])[:2]
            self.target(sg["ok"] == sg["n"], "replicas: %d/%d exit 0" % (sg["ok"], sg["n"]))
            self.target(total == k and distinct == k, "replicas: each migration applied exactly once (%s rows, %s distinct)" % (total, distinct))
            if single:
                lim = single[1] + 0.5
                self.target(sg["last_exit_s"] <= lim, "replicas: last exit %.2f s ≤ single apply %.2f s + 0.5 s" % (sg["last_exit_s"], single[1]))
        else:
            self.target(None, "replicas: schemagate not run")

    WAKE_ENGINES = (
        ("postgres", "PostgreSQL", "`LISTEN`; the winner `NOTIFY`s after its last commit",
         "`pg_sleep(2)`", "`extract(epoch FROM clock_timestamp())`"),
        ("mariadb", "MariaDB", "wait inside `GET_LOCK(name, poll interval)`; the holder's release wakes one",
         "`SLEEP(2)`", "`UNIX_TIMESTAMP(SYSDATE(6))`"),
        ("sqlite", "SQLite", "re-read the history every 100 ms (the driver's `wake_poll_ms`)",
         "a counting loop (~2 s)", "`julianday('now')` in epoch seconds"),
    )

    def wake(self):
        self.out("## 4. Wake-up latency (PostgreSQL, MariaDB, SQLite)")
        self.out()
        w = self.meta.get("wake.waiters", "20")
        self.out("The same harness on every engine: a winner holds the lock inside a migration that runs "
                 "about 2 s and then records the database clock as its last statement, just before its "
                 "commit; %s waiters start once the winner has logged that it holds the lock. Latency = "
                 "waiter exit time (harness, `time.time()` at `wait4`) − that database timestamp (same "
                 "machine clock). \"late starts\" counts waiters started after the commit (must be 0: "
                 "they would measure a fast path, not a wake-up)." % w)
        self.out()
        self.out("| engine | how waiters wake | hold / timestamp | samples | exit codes | late starts "
                 "| min | p50 | p99 | max | winner exit after its commit |")
        self.out("|---|---|---|---:|---|---:|---:|---:|---:|---:|---|")
        for key, label, how, hold, stamp in self.WAKE_ENGINES:
            j = self.load("wake_" + key)
            if not j:
                why = self.meta.get("skip.wake_" + key, "not run")
                self.out("| %s | %s | %s / %s | — | — | — | — | — | — | — | %s |" % (label, how, hold, stamp, why))
                self.target(None, "wake-up p99 ≤ 250 ms, %s: %s" % (label, why))
                continue
            codes = ", ".join("%s×%s" % (v, c) for c, v in sorted(j["codes"].items()))
            self.out("| %s | %s | %s / %s | %d | %s | %d | %.1f ms | **%.1f ms** | **%.1f ms** | %.1f ms | %s |" % (
                label, how, hold, stamp, j["samples"], codes, j["late_starts"], j["min_ms"], j["p50_ms"],
                j["p99_ms"], j["max_ms"],
                ", ".join("%.1f ms" % r["winner_exit_after_commit_ms"] for r in j["rounds"])))
            all_ok = j["codes"].get("0", 0) == j["samples"] and j["late_starts"] == 0
            self.target(j["p99_ms"] <= 250 and all_ok,
                        "wake-up p99 ≤ 250 ms, %s: %.1f ms (all waiters exit 0 and started before the commit: %s)"
                        % (label, j["p99_ms"], all_ok))
        self.out()

    def inserts(self):
        n = self.meta.get("inserts.n", "20000")
        self.out("## 7. A data migration: %s single-row INSERTs" % n)
        self.out()
        self.out("One migration of %s single-row `INSERT`s (about 4.8 MB of SQL) into a table created "
                 "beforehand, on a fresh database each run, against the floor: the engine's own client "
                 "applying the same statements in one transaction on one connection. schemagate sends a "
                 "PostgreSQL migration as one script in its transaction; on MariaDB it groups consecutive "
                 "statements that do not commit implicitly into one transaction with their progress record "
                 "and sends them in multi-statement batches. Rows after the last schemagate run: "
                 "PostgreSQL %s, MariaDB %s." % (n, self.meta.get("inserts.rows.postgres", "?"),
                                                  self.meta.get("inserts.rows.mariadb", "?")))
        self.out()
        for case, label, floor in (("mariadb_inserts", "MariaDB", "mariadb"), ("pg_inserts", "PostgreSQL", "psql")):
            self.out("### %s" % label)
            self.out()
            self.timing_table(case, ["schemagate", floor])
            rows = self.meta.get("inserts.rows." + ("postgres" if floor == "psql" else "mariadb"), "")
            r = self.ratio(case, "schemagate", floor)
            ok = None if r is None else (r <= 1.5 and rows == n)
            self.target(ok, "%s INSERTs, %s: schemagate ≤ 1.5 × %s: %s (rows: %s)" % (
                n, label, TOOLS[floor], "—" if r is None else "%.3f×" % r, rows or "?"))

    def memory(self):
        self.out("## 5. Memory and size")
        self.out()
        self.out("Peak RSS of the PostgreSQL no-op start (`/usr/bin/time -v`, \"Maximum resident set size\"; "
                 "median of %s runs):" % self.meta.get("rss.runs", "5"))
        self.out()
        self.out("| tool | peak RSS (median) | min | max |")
        self.out("|---|---:|---:|---:|")
        sg = None
        for t in ("schemagate", "schemagate-dyn", "floor", "floor-dyn", "dbmate", "alembic"):
            j = self.load("rss_" + t)
            if not j:
                self.out("| %s | — | — | %s |" % (TOOLS[t], self.skipped("rss", t)))
                continue
            k = j["kib"]
            med = statistics.median(k)
            if t == "schemagate":
                sg = med
            self.out("| %s | **%s** | %s | %s |" % (TOOLS[t], mib(med), mib(k[0]), mib(k[-1])))
        self.out()
        self.out("Binary size:")
        self.out()
        self.out("| binary | bytes | MiB |")
        self.out("|---|---:|---:|")
        for k, label in (("size.schemagate", "schemagate (static, stripped)"),
                         ("size.schemagate-dyn", "schemagate (dynamic release build, needs ~30 shared libraries)"),
                         ("size.dbmate", "dbmate (static Go binary)")):
            v = self.meta.get(k)
            self.out("| %s | %s | %s |" % (label, v or "—", "%.2f" % (int(v) / 1048576) if v else "—"))
        self.out()
        self.target(None if sg is None else sg <= 8192, "peak RSS ≤ 8 MiB: %s" % (mib(sg) if sg else "—"))
        v = self.meta.get("size.schemagate")
        # issue 23 let the parser grow the static binary (and the image) to 10 MiB
        self.target(None if not v else int(v) <= 10 * 1048576, "static binary ≤ 10 MiB: %s" % (
            "%.2f MiB" % (int(v) / 1048576) if v else "—"))


def ms(s):
    return "%.1f ms" % (s * 1000) if s < 10 else "%.2f s" % s


def mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def cmd_merge(args):
    """Concatenate the per-round exports of every tool of a case."""
    d, case = args[0], args[1]
    by_tool = {}
    for path in sorted(glob.glob(os.path.join(d, case + "_*.r*.json"))):
        tool = os.path.basename(path)[len(case) + 1:].rsplit(".r", 1)[0]
        with open(path) as f:
            by_tool.setdefault(tool, []).append(json.load(f))
        os.unlink(path)
    for tool, parts in by_tool.items():
        merged = parts[0]
        r = merged["results"][0]
        times = [t for p in parts for t in p["results"][0]["times"]]
        r["times"] = times
        r["min"], r["max"] = min(times), max(times)
        r["median"], r["mean"] = statistics.median(times), statistics.mean(times)
        r["stddev"] = statistics.stdev(times) if len(times) > 1 else 0.0
        r["rounds"] = len(parts)
        with open(os.path.join(d, "%s_%s.json" % (case, tool)), "w") as f:
            json.dump(merged, f)


def cmd_alternate(args):
    """Run the commands in turn, RUNS times each after 3 warm-up rounds,
    and print min / median / max wall time: a comparison in which a burst
    of noise on a shared machine hits every command alike."""
    runs = int(args[0])
    cmds = [a.split("=", 1) for a in args[1:]]
    times = {name: [] for name, _ in cmds}
    for i in range(runs + 3):
        for name, cmd in cmds:
            t0 = time.perf_counter()
            r = subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode != 0:
                raise SystemExit("alternate: %s exited %d" % (name, r.returncode))
            if i >= 3:
                times[name].append((time.perf_counter() - t0) * 1000.0)
    for name, _ in cmds:
        v = sorted(times[name])
        print("| %s | %.1f ms | **%.1f ms** | %.1f ms | %d |" % (name, v[0], statistics.median(v), v[-1], len(v)))


def cmd_report(args):
    """The report of a run, then (if given) a hand-written file of
    measurements made outside run.sh (before/after comparisons)."""
    sys.stdout.write(Report(args[0]).build())
    if len(args) > 1 and os.path.exists(args[1]):
        with open(args[1]) as f:
            sys.stdout.write("\n" + f.read())


# The figures of issue 24: (case, tool, reference, limit, text).
ISSUE24 = [
    ("pg_noop", "schemagate", "floor", 1.10, "no-op `up`, 100 applied, static: schemagate / floor"),
    ("pg_noop1000", "schemagate", "floor", 1.25, "no-op `up`, 1,000 applied, static: schemagate / floor"),
    ("pg_apply100", "schemagate", "dbmate", 0.90, "fresh apply of 100, PostgreSQL: schemagate / dbmate"),
    ("pg_apply100", "schemagate", "floor-apply", 1.15, "fresh apply of 100, PostgreSQL: schemagate / one-message floor"),
    ("mariadb_apply100", "schemagate", "dbmate", 0.90, "fresh apply of 100, MariaDB: schemagate / dbmate"),
    ("sqlite_apply100", "schemagate", "dbmate", 0.95, "fresh apply of 100, SQLite: schemagate / dbmate"),
    ("sqlite_apply100", "schemagate", "sqlite3", 1.15, "fresh apply of 100, SQLite: schemagate / sqlite3 client"),
    ("growth", "schemagate", None, 10, "growth 1,000 / 100 fresh, PostgreSQL"),
]


def issue24_ratio(rep, case, tool, ref):
    if case == "growth":
        a, b = rep.hf("pg_apply1000", tool), rep.hf("pg_apply100", tool)
        return a[1] / b[1] if a and b else None
    return rep.ratio(case, tool, ref)


def cmd_two_runs(args):
    """two-runs RESULTS1 RESULTS2: the "Issue 24: two runs" table; a
    target counts when both runs meet it."""
    reps = [Report(d) for d in args[:2]]
    out = ["## Issue 24: two runs", "",
           "Generated by `bench/run.sh --twice`: the whole bench twice, back to back, on %s and %s; "
           "the tables above are run 1's. A target counts when both runs meet it." %
           (reps[0].meta.get("date", "?"), reps[1].meta.get("date", "?")), "",
           "| figure | target | run 1 | run 2 | counts |", "|---|---:|---:|---:|---|"]
    met = 0
    for case, tool, ref, limit, text in ISSUE24:
        rs = [issue24_ratio(r, case, tool, ref) for r in reps]
        ok = all(r is not None and r <= limit for r in rs)
        met += ok
        out.append("| %s | ≤ %s× | %s | %s | %s |" % (text, limit, *["—" if r is None else "%.3f×" % r for r in rs],
                                                     "yes" if ok else "no"))
    out += ["", "%d of %d targets met in both runs." % (met, len(ISSUE24)), ""]
    sys.stdout.write("\n".join(out))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmds = {"gen": cmd_gen, "replicas": cmd_replicas, "wake": cmd_wake, "rss": cmd_rss, "merge": cmd_merge,
            "alternate": cmd_alternate, "report": cmd_report, "two-runs": cmd_two_runs}
    fn = cmds.get(sys.argv[1])
    if not fn:
        sys.exit(__doc__)
    fn(sys.argv[2:])


if __name__ == "__main__":
    main()
