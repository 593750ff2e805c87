#!/usr/bin/env python3
"""lint_outputs.py - what `schemagate lint` prints, through the binary.

usage: lint_outputs.py SCHEMAGATE_BINARY SOURCE_DIR

- --format sarif is SARIF 2.1.0 that Microsoft's SARIF Multitool
  (npm @microsoft/sarif-multitool, installed by tests/support/lint-tools.sh)
  validates without an error, and it locates each finding (uri, line,
  column, rule);
- --format github prints one workflow command per finding, exactly
  ::error file=F,line=L,col=C,title=RULE::message, with properties
  escaped as the runner unescapes them;
- --json gains rule and column; --rules lists every rule (text and JSON);
- exit codes: 4 for an error-severity rule finding, 0 for warnings only,
  4 for warnings under --strict, 2 for a broken directory.
Needs no database.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import clicheck
from clicheck import finish

BIN, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])


def check(ok, what):
    clicheck.check(what.splitlines()[0], ok, what)
work = tempfile.mkdtemp(prefix="sg-lint-outputs-")


def tools():
    out = subprocess.run(["bash", os.path.join(SRC, "tests/support/lint-tools.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def lint(*argv, cwd=work):
    r = subprocess.run([BIN, "lint", *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return r.returncode, r.stdout


def write(d, name, text):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


# a directory whose name needs escaping in a workflow command's property
mig = os.path.join(work, "db,one:m")
write(mig, "0001_users.up.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text, name text);\n")
write(mig, "0001_users.down.sql", "DROP TABLE users;\n")
write(mig, "0002_drop_email.postgres.up.sql", "-- the address moved to contacts\nALTER TABLE users DROP COLUMN email;\n")
write(mig, "0002_drop_email.down.sql", "ALTER TABLE users ADD COLUMN email text;\n")
write(mig, "0003_index.postgres.up.sql", "CREATE INDEX users_name_idx ON users (name);\n")
write(mig, "0003_index.down.sql", "DROP INDEX users_name_idx;\n")
rel = "db,one:m"

# ---- SARIF, validated by the Multitool
rc, out = lint("--format", "sarif", "--dialect", "postgres", "--dir", rel)
check(rc == 4, f"sarif: exit {rc}, expected 4 (an error-severity finding)")
sarif_path = os.path.join(work, "lint.sarif")
with open(sarif_path, "w") as f:
    f.write(out)
doc = json.loads(out)
check(doc.get("version") == "2.1.0", "sarif: version 2.1.0")
results = doc["runs"][0]["results"]
drop = [r for r in results if r["ruleId"] == "ban-drop-column"]
check(len(drop) == 1, f"sarif: one ban-drop-column result, got {len(drop)}")
if drop:
    loc = drop[0]["locations"][0]["physicalLocation"]
    check(loc["artifactLocation"]["uri"] == "db%2Cone%3Am/0002_drop_email.postgres.up.sql", f"sarif uri: {loc}")
    check(loc["region"]["startLine"] == 2 and loc["region"]["startColumn"] == 31, f"sarif region: {loc['region']}")
    check(drop[0]["level"] == "error", "sarif: ban-drop-column is an error")
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    check(rules[drop[0]["ruleIndex"]]["id"] == "ban-drop-column", "sarif: ruleIndex points at the rule")
check(any(r["ruleId"] == "require-concurrent-index-creation" and r["level"] == "warning" for r in results),
      "sarif: the index warning")
multitool = tools()["sarif"]
validation = os.path.join(work, "validation.sarif")
subprocess.run([multitool, "validate", sarif_path, "-o", validation, "-q"], stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
check(os.path.exists(validation), "the Multitool wrote its validation log")
if os.path.exists(validation):
    v = json.load(open(validation))
    errors = [r for r in v["runs"][0].get("results", []) if r.get("level") == "error"]
    check(not errors, f"the SARIF Multitool reports errors: {errors}")
# the validation itself can fail: a document without the driver's name is refused
bad = os.path.join(work, "bad.sarif")
json.dump({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}, open(bad, "w"))
bad_out = os.path.join(work, "bad-validation.sarif")
subprocess.run([multitool, "validate", bad, "-o", bad_out, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
check(any(r.get("level") == "error" for r in json.load(open(bad_out))["runs"][0]["results"]),
      "the Multitool finds errors in a broken document (the check above can fail)")

# ---- GitHub workflow commands
rc, out = lint("--format", "github", "--dialect", "postgres", "--dir", rel)
check(rc == 4, f"github: exit {rc}")
lines = out.splitlines()
f2 = "db%2Cone%3Am/0002_drop_email.postgres.up.sql"
check(f"::error file={f2},line=2,col=31,title=ban-drop-column::drops a column: column email of users" in lines,
      "github: the drop line\n" + out)
check("::warning file=db%2Cone%3Am/0003_index.postgres.up.sql,line=1,col=1,title=require-concurrent-index-creation::"
      "creates an index on an existing table without CONCURRENTLY: index on users" in lines, "github: the index line\n" + out)
check(all(l.startswith("::") for l in lines[:-1]) and lines[-1].startswith(rel + ": 3 migrations"),
      "github: commands, then the summary\n" + out)

# ---- JSON: rule and column
rc, out = lint("--json", "--dialect", "postgres", "--dir", rel)
doc = json.loads(out)
f = [x for x in doc["findings"] if x["rule"] == "ban-drop-column"]
check(len(f) == 1 and f[0]["line"] == 2 and f[0]["column"] == 31 and f[0]["file"] == "0002_drop_email.postgres.up.sql",
      f"json: {f}")
check(all("rule" in x and "column" in x for x in doc["findings"]), "json: every finding has rule and column")
check(not doc["ok"] and rc == 4, f"json: ok false, exit 4 ({rc})")

# ---- text: file:line:col, the rule, the statement
rc, out = lint("--dialect", "postgres", "--dir", rel)
check("error: 0002_drop_email.postgres.up.sql:2:31: ban-drop-column: drops a column: column email of users\n"
      "    ALTER TABLE users DROP COLUMN email\n" in out, "text:\n" + out)

# ---- exit codes: warnings alone pass, fail under --strict
warn = os.path.join(work, "warn")
write(warn, "0001_t.up.sql", "CREATE TABLE t (id bigint PRIMARY KEY, n integer);\n")
write(warn, "0001_t.down.sql", "DROP TABLE t;\n")
rc, out = lint("--dialect", "postgres", "--dir", warn)
check(rc == 0 and "prefer-bigint-over-int" in out, f"warnings only: exit {rc}\n{out}")
rc, out = lint("--dialect", "postgres", "--strict", "--dir", warn)
check(rc == 4, f"--strict with a warning: exit {rc}")
rc, out = lint("--dir", os.path.join(work, "missing"))
check(rc == 2, f"a missing directory: exit {rc}")

# ---- --rules
rc, out = lint("--rules")
check(rc == 0 and "ban-drop-column  error  postgres,mysql,sqlite" in out and "require-lock-timeout" in out,
      "--rules text:\n" + out[:400])
rc, out = lint("--rules", "--json")
rules = json.loads(out)["rules"]
check(len(rules) >= 30 and all(r["id"] and r["severity"] in ("error", "warning", "note") and r["explanation"]
                                for r in rules), "--rules --json: every rule with severity and explanation")

# ---- a directory large enough to be linted in shards (one thread per
# core, 64 versions or more each): every copy of the corpus is reported as
# the corpus alone is, whichever shard it fell in
import re
corpus = os.path.join(SRC, "tests/lint/corpus")
rc, out = lint("--json", "--dir", corpus)
# without its errors: the notes on which dialects have a version need a directory without one
erring = {f["file"] for f in json.loads(out)["findings"] if f["level"] == "error"}
one, many = os.path.join(work, "one"), os.path.join(work, "many")
COPIES = 8   # 8 x ~60 versions: up to 7 shards
for d, copies in ((one, 1), (many, COPIES)):
    for c in range(copies):
        for name in sorted(set(os.listdir(corpus)) - erring):
            v, rest = name.split("_", 1)
            with open(os.path.join(corpus, name)) as f:
                write(d, "%04d_%s" % (c * 100 + int(v), rest), f.read())
        # a version only PostgreSQL has: its note depends on which dialects saw it
        write(d, "%04d_only_postgres.postgres.up.sql" % (c * 100 + 67), "CREATE TABLE only_pg (id bigint);\n")


def findings(d):
    rc, out = lint("--json", "--dir", d)
    return rc, json.loads(out)["findings"]


def original(text):   # copy c's version c*100+v back to the corpus's v
    return re.sub(r"\b(\d{4})(?=_|\b)", lambda m: "%04d" % (int(m.group(1)) % 100), text)


def key(f, copy_of=None):
    return (f["level"], original(f["file"]), f["line"], f["column"], f["rule"], tuple(f["dialects"]),
            original(f["message"]), f.get("statement"))


rc1, alone = findings(one)
rcn, all_copies = findings(many)
want = sorted(key(f) for f in alone)
check(len(want) > 100 and any(f["rule"] for f in alone) and
      any("exists only for postgres" in f["message"] for f in alone), f"the corpus alone: {len(want)} findings")
for c in range(COPIES):
    got = sorted(key(f) for f in all_copies if int(f["file"][:4]) // 100 == c)
    check(got == want, f"shards: copy {c} has {len(got)} findings, the corpus alone {len(want)}; first difference: "
          f"{next((a, b) for a, b in zip(got + [None] * len(want), want + [None] * len(got)) if a != b) if got != want else ''}")
check(rc1 == rcn == 0, f"shards: the same exit ({rc1}, {rcn})")

shutil.rmtree(work)
finish()
