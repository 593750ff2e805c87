#!/usr/bin/env python3
"""lint_agrees_with_squawk.py - schemagate lint and squawk find the same.

usage: lint_agrees_with_squawk.py SCHEMAGATE_BINARY SOURCE_DIR

Runs squawk (npm squawk-cli, pinned and installed by
tests/support/lint-tools.sh) and `schemagate lint --json --dialect
postgres` over the same PostgreSQL up scripts: the example migrations,
every directory of tests/fixtures and the corpus tests/lint/corpus. For
every rule both implement (squawk's rule ids that schemagate's rule table
marks as squawk's), the sets of (file, line, rule) findings must be
identical, except for the differences listed, each with its reason, in
tests/lint/squawk-differences.md; a listed difference that no longer
occurs fails the test too, so the table stays true.

squawk gets --assume-in-transaction for the scripts schemagate runs in a
transaction (all but those marked no-transaction), so both judge the same
situation. Single-file (dbmate) layouts are skipped: squawk would read the
down section as part of the script.
"""
import json
import os
import re
import subprocess
import sys

BIN, SRC = sys.argv[1], sys.argv[2]
PG_TAGS = {"postgres", "postgresql", "pg", "pgx"}
OTHER_TAGS = {"mysql", "mariadb", "sqlite", "sqlite3", "cockroach", "cockroachdb", "crdb", "mssql", "sqlserver",
              "clickhouse", "spanner", "oracle", "tidb", "duckdb", "snowflake", "redshift", "bigquery",
              "yugabyte", "h2"}


def tools():
    out = subprocess.run(["bash", os.path.join(SRC, "tests/support/lint-tools.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def postgres_up_files(d):
    """The up script schemagate runs on PostgreSQL per version: the
    PostgreSQL-tagged file, else the generic one. (name, no_tx)."""
    chosen = {}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".up.sql") or not re.match(r"^\d+_", name):
            continue
        stem = name[: -len(".up.sql")]
        no_tx = False
        if stem.endswith(".autocommit"):
            stem, no_tx = stem[: -len(".autocommit")], True
        word = stem.rsplit(".", 1)[-1].lower() if "." in stem else ""
        if word in OTHER_TAGS:
            continue
        specific = word in PG_TAGS
        version = int(name.split("_", 1)[0])
        text = open(os.path.join(d, name), encoding="utf-8", errors="replace").read()
        if re.search(r"^\s*--\s*schemagate:no-transaction\s*$", text, re.M):
            no_tx = True
        if version not in chosen or specific:
            chosen[version] = (name, no_tx)
    return sorted(chosen.values())


def squawk_findings(squawk, d, files, rules):
    found = set()
    for assume, group in ((True, [f for f, no_tx in files if not no_tx]), (False, [f for f, no_tx in files if no_tx])):
        if not group:
            continue
        argv = [squawk, "--reporter", "json", "--pg-version", "15"] + (["--assume-in-transaction"] if assume else [])
        r = subprocess.run(argv + group, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not r.stdout.strip():
            sys.exit(f"squawk printed nothing in {d} (exit {r.returncode}): {r.stderr}")
        for f in json.loads(r.stdout):
            if f["rule_name"] in rules:
                found.add((f["file"], f["line"] + 1, f["rule_name"]))
    return found


def schemagate_findings(d, files, rules):
    r = subprocess.run([BIN, "lint", "--json", "--dialect", "postgres", "--dir", d], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode not in (0, 2, 4):
        sys.exit(f"schemagate lint {d}: exit {r.returncode}: {r.stderr}")
    names = {f for f, _ in files}
    found = set()
    for f in json.loads(r.stdout)["findings"]:
        if f["rule"] in rules and f["file"] in names:
            found.add((f["file"], f["line"], f["rule"]))
    return found


def listed_differences():
    """Rows of the table: | dir/file | line | rule | only in | reason |."""
    rows = set()
    path = os.path.join(SRC, "tests/lint/squawk-differences.md")
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[1].isdigit():
            continue
        path_cell, line_no, rule, side, reason = cells
        if side not in ("squawk", "schemagate") or not reason:
            sys.exit(f"squawk-differences.md: bad row: {line.strip()}")
        rows.add((path_cell.strip("`"), int(line_no), rule.strip("`"), side))
    return rows


def main():
    t = tools()
    rules_doc = json.loads(subprocess.run([BIN, "lint", "--rules", "--json"], check=True, stdout=subprocess.PIPE,
                                          text=True).stdout)
    # the rules both implement (the timeout rules never fire: schemagate sets lock_timeout)
    rules = {r["id"] for r in rules_doc["rules"] if r["squawk"] and r["engines"]}
    dirs = [os.path.join(SRC, "migrations"), os.path.join(SRC, "tests/lint/corpus")]
    fixtures = os.path.join(SRC, "tests/fixtures")
    dirs += sorted(os.path.join(fixtures, x) for x in os.listdir(fixtures) if os.path.isdir(os.path.join(fixtures, x)))
    actual = set()
    nfiles = nboth = 0
    for d in dirs:
        files = postgres_up_files(d)
        if not files:
            continue
        nfiles += len(files)
        sq = squawk_findings(t["squawk"], d, files, rules)
        sg = schemagate_findings(d, files, rules)
        nboth += len(sq & sg)
        rel = os.path.relpath(d, SRC)
        actual |= {(f"{rel}/{f}", line, rule, "squawk") for f, line, rule in sq - sg}
        actual |= {(f"{rel}/{f}", line, rule, "schemagate") for f, line, rule in sg - sq}
    listed = listed_differences()
    unexplained = sorted(actual - listed)
    stale = sorted(listed - actual)
    print(f"{nfiles} files, {len(rules)} rules compared; {nboth} findings agree, {len(actual)} listed differences")
    for f, line, rule, side in unexplained:
        print(f"UNEXPLAINED: | `{f}` | {line} | `{rule}` | {side} | ? |")
    for f, line, rule, side in stale:
        print(f"STALE (listed, no longer differs): {f}:{line} {rule} only in {side}")
    if nfiles < 60 or nboth == 0:
        sys.exit(f"too little compared ({nfiles} files, {nboth} agreeing findings)")
    sys.exit(1 if unexplained or stale else 0)


main()
