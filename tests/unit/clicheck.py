"""clicheck.py - what the command-line tests (usage_json.py, help_readme.py)
share: a check that counts instead of stopping, so one run lists every
mismatch, and the binary run with a clean environment."""
import os
import subprocess
import sys

_counts = {"checks": 0, "failures": 0}

# The machine running the tests may export settings; none may leak in.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEMAGATE_", "DATABASE_"))}


def check(name, ok, detail=""):
    _counts["checks"] += 1
    if not ok:
        _counts["failures"] += 1
        print(f"FAIL {name}" + (f"\n     {detail}" if detail else ""))


def run(binary, argv, cwd, env=None):
    """binary ARGV in cwd with CLEAN_ENV plus env; 60 s at most."""
    e = dict(CLEAN_ENV)
    e.update(env or {})
    return subprocess.run([binary, *argv], env=e, capture_output=True, text=True, timeout=60, cwd=cwd)


def finish():
    """Print the tally and exit 1 if any check failed."""
    print(f"{_counts['checks'] - _counts['failures']}/{_counts['checks']} checks passed")
    sys.exit(1 if _counts["failures"] else 0)
