#!/usr/bin/env python3
"""usage_json.py - JSON logs are JSON from the first byte (issue 13).

usage: usage_json.py SCHEMAGATE_BINARY [SOURCE_DIR]

Runs the binary once per usage error schemagate can report (every
usage_error() of src/config.c, and the directory and exec errors that
follow parsing) with SCHEMAGATE_LOG_FORMAT=json, and asserts that stderr
holds only JSON objects, one per line, parsed strictly: no NaN or
Infinity, no duplicate keys, nothing before the first '{' or after the
last '}'. Also: --log-format json on the command line (even after the
mistake), a bad --log-format falling back to the environment's json, and
--termination-log honoured for usage errors. Needs no database.
"""
import json
import os
import re
import shutil
import sys
import tempfile

from clicheck import check, finish
import clicheck

BIN = sys.argv[1]
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def reject_constant(name):
    raise ValueError(f"non-JSON constant {name}")


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys in {keys}")
    return dict(pairs)


def strict_object(line):
    """One JSON object, exactly the line: raises ValueError otherwise."""
    decoder = json.JSONDecoder(parse_constant=reject_constant, object_pairs_hook=no_duplicates, strict=True)
    obj, end = decoder.raw_decode(line)
    if end != len(line):
        raise ValueError(f"trailing bytes after the object: {line[end:]!r}")
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    return obj


work = tempfile.mkdtemp(prefix="sg-usage-json-")
migrations = os.path.join(work, "migrations")
os.mkdir(migrations)
with open(os.path.join(migrations, "0001_a.up.sql"), "w") as f:
    f.write("CREATE TABLE a (i int);\n")
empty_file = os.path.join(work, "empty")
open(empty_file, "w").close()
url_file = os.path.join(work, "url")
with open(url_file, "w") as f:
    f.write("postgres://u:pw@127.0.0.1:1/db\n")
bad_dir = os.path.join(work, "bad")
os.mkdir(bad_dir)
with open(os.path.join(bad_dir, "0001_a.up.sql"), "w") as f:
    f.write("x")
with open(os.path.join(bad_dir, "1_a.up.sql"), "w") as f:
    f.write("y")   # 0001 and 1 are the same version: exit 2 before any lock or write
db = "sqlite:" + os.path.join(work, "never.db")
U = ["--database-url", db, "--dir", migrations]

# (name, argv, extra env); every one must exit 2.
CASES = [
    ("no command", [], {}),
    ("unknown command", ["frobnicate"], {}),
    ("help for an unknown command", ["help", "frobnicate"], {}),
    ("unknown long option", ["up", "--bogus"], {}),
    ("unknown short option", ["up", "-x"], {}),
    ("option needs a value", ["up", "--dir"], {}),
    ("flag takes no value", ["up", "--strict=yes"], {}),
    ("ambiguous abbreviation", ["up", "--database-u", "x"], {}),
    ("option of another command", ["up", "--steps", "2"] + U, {}),
    ("no database URL", ["up", "--dir", migrations], {}),
    ("empty URL file", ["up", "--database-url-file", empty_file], {}),
    ("unreadable URL file", ["up", "--database-url-file", os.path.join(work, "missing")], {}),
    ("unreadable password file", ["up", "--password-file", os.path.join(work, "missing")] + U, {}),
    ("bad URL scheme", ["up", "--database-url", "oracle://x/y"], {}),
    ("URL with a password in the error", ["up", "--database-url", "postgres://u:s3cret@127.0.0.1:99999/db"], {}),
    ("unknown URL parameter", ["up", "--database-url", "mysql://u:s3cret@127.0.0.1:1/db?bogus=1", "--dir", migrations], {}),
    ("bad duration flag", ["up", "--lock-timeout", "soon"] + U, {}),
    ("bad duration env", ["up"] + U, {"SCHEMAGATE_CONNECT_TIMEOUT": "1.5s"}),
    ("zero poll interval", ["up", "--poll-interval", "0"] + U, {}),
    ("short lease", ["up", "--lock-lease", "500ms"] + U, {}),
    ("long stop grace", ["up", "--stop-grace", "1h"] + U, {}),
    ("bad lock mode", ["up", "--lock", "file"] + U, {}),
    ("bad adopt tool", ["up", "--adopt", "flyway"] + U, {}),
    ("bad SCHEMAGATE_STRICT", ["up"] + U, {"SCHEMAGATE_STRICT": "maybe"}),
    ("bad log level", ["up", "--log-level", "loud"] + U, {}),
    ("bad table name", ["up", "--table", "a-b"] + U, {}),
    ("bad target", ["up", "--target", "v2"] + U, {}),
    ("bad baseline version", ["baseline", "v1"] + U, {}),
    ("baseline without VERSION", ["baseline"] + U, {}),
    ("extra argument", ["status", "extra"] + U, {}),
    ("repair without action", ["repair", "0001"] + U, {}),
    ("repair with two actions", ["repair", "0001", "--applied", "--reverted"] + U, {}),
    ("repair --accept-checksums with VERSION", ["repair", "0001", "--accept-checksums"] + U, {}),
    ("repair --applied without VERSION", ["repair", "--applied"] + U, {}),
    ("repair bad version", ["repair", "x1", "--applied"] + U, {}),
    ("down --steps and --to", ["down", "--steps", "1", "--to", "0"] + U, {}),
    ("down bad steps", ["down", "--steps", "-1"] + U, {}),
    ("down bad --to", ["down", "--to", "x"] + U, {}),
    ("new without NAME", ["new", "--dir", migrations], {}),
    ("new bad NAME", ["new", "a b", "--dir", migrations], {}),
    ("empty dialect", ["lint", "--dialect", "", "--dir", migrations], {}),
    ("serve bad listen", ["serve", "--listen", "nowhere"] + U, {}),
    ("serve zero check interval", ["serve", "--check-interval", "0"] + U, {}),
    ("PROGRAM after status", ["status"] + U + ["--", "true"], {}),
    ("no PROGRAM after --", ["up"] + U + ["--"], {}),
    # after parsing: the directory (exit 2 before any lock or write)
    ("duplicate versions in the directory", ["up", "--database-url", db, "--dir", bad_dir], {}),
    ("missing directory", ["up", "--database-url", db, "--dir", os.path.join(work, "nodir")], {}),
    ("target not in the directory", ["up", "--target", "0042"] + U, {}),
]

def run(argv, env):
    return clicheck.run(BIN, argv, work, env)


def assert_json_only(name, p, want_code=2):
    check(f"{name}: exit {want_code}", p.returncode == want_code, f"exit {p.returncode}\n{p.stderr}")
    check(f"{name}: nothing on stdout", p.stdout == "", p.stdout)
    check(f"{name}: stderr ends with a newline", p.stderr.endswith("\n"), repr(p.stderr[-80:]))
    lines = p.stderr.split("\n")[:-1]
    check(f"{name}: at least one line", len(lines) >= 1, repr(p.stderr))
    errors = []
    for line in lines:
        try:
            obj = strict_object(line)
        except ValueError as e:
            check(f"{name}: every stderr line is one JSON object", False, f"{e}: {line!r}")
            continue
        for key in ("ts", "level", "event", "instance", "msg"):
            check(f"{name}: '{key}' present", isinstance(obj.get(key), str), line)
        check(f"{name}: ts is RFC 3339 UTC with milliseconds", RFC3339_MS.match(obj.get("ts", "")), line)
        if obj.get("level") == "error":
            errors.append(obj)
    check(f"{name}: one error line", len(errors) == 1, p.stderr)
    check(f"{name}: no password", "s3cret" not in p.stderr, p.stderr)
    return errors[0] if errors else {}


for name, argv, env in CASES:
    p = run(argv, dict(env, SCHEMAGATE_LOG_FORMAT="json"))
    obj = assert_json_only(name, p)
    if argv[:1] and argv[0] in ("up", "status", "baseline", "repair", "down", "new", "lint", "serve") \
            and obj.get("event") == "usage":
        check(f"{name}: points to the command's help", f"schemagate {argv[0]} --help" in obj["msg"], obj)

# The flag works as well as the environment, wherever it stands.
p = run(["--bogus", "up", "--log-format", "json"], {})
obj = assert_json_only("--log-format json after the mistake", p)
check("--log-format json after the mistake: names it", "unknown option '--bogus'" in obj.get("msg", ""), p.stderr)
p = run(["up", "--log-form=json", "--steps", "1"], {})
assert_json_only("--log-form=json (abbreviated, with =)", p)
# A bad --log-format is itself the usage error; reported as the
# environment's json rather than as text.
p = run(["up", "--log-format", "xml"] + U, {"SCHEMAGATE_LOG_FORMAT": "json"})
obj = assert_json_only("--log-format xml with SCHEMAGATE_LOG_FORMAT=json", p)
check("bad --log-format: names it", "--log-format: unknown log format 'xml'" in obj.get("msg", ""), p.stderr)
# The flag wins over the environment in the other direction too.
p = run(["up", "--log-format", "text", "--bogus"], {"SCHEMAGATE_LOG_FORMAT": "json"})
check("--log-format text beats the environment: a text line",
      p.returncode == 2 and re.match(r"^\d{4}-\S+Z ERROR usage: unknown option '--bogus'", p.stderr), p.stderr)
# Without any setting, usage errors stay text.
p = run(["up", "--bogus"], {})
check("default: text", p.returncode == 2 and " ERROR usage: " in p.stderr and not p.stderr.startswith("{"),
      p.stderr)

# The termination log: the reason of a usage error goes where
# --termination-log says (kubectl describe reads it), text, one line.
reason = os.path.join(work, "reason")
p = run(["up", "--termination-log", reason, "--bogus"] + U, {"SCHEMAGATE_LOG_FORMAT": "json"})
assert_json_only("--termination-log with a usage error", p)
text = open(reason).read() if os.path.exists(reason) else ""
check("--termination-log written for a usage error",
      text.startswith("unknown option '--bogus'") and text.endswith("\n") and text.count("\n") == 1, repr(text))
if os.path.exists(reason):
    os.unlink(reason)
p = run(["--termination-log=" + reason, "frobnicate"], {})
check("--termination-log=PATH before an unknown command",
      os.path.exists(reason) and "unknown command 'frobnicate'" in open(reason).read(), p.stderr)
reason2 = os.path.join(work, "reason-pw")
p = run(["up", "--termination-log", reason2, "--database-url", "postgres://u:s3cret@127.0.0.1:99999/db"], {})
check("termination log: no password", os.path.exists(reason2) and "s3cret" not in open(reason2).read(),
      open(reason2).read() if os.path.exists(reason2) else "missing")

shutil.rmtree(work)
finish()
