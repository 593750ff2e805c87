#!/usr/bin/env python3
"""help_readme.py - the help, the README and the binary agree (issue 13).

usage: help_readme.py SCHEMAGATE_BINARY SOURCE_DIR

Reads `schemagate --help` and `schemagate COMMAND --help` for every command
the overview lists, and README.md's tables, and checks both directions:

- every command of the overview has a row in the README's command table,
  and every row there names a command of the binary;
- every setting of the help (flag, environment variable, default) is a
  row of the README's configuration table with the same variable and the
  same default, and every row there is a setting of the help;
- every option of a command's help is mentioned in that command's row(s)
  of the command table, and every flag written in a command's row is in
  that command's help;
- every flag the help or any README table mentions (`--lock=table` in a
  sentence included) is accepted by the binary: for each command, each
  flag its help lists is run and must not be refused as unknown,
  ambiguous or not applying to the command.
Needs no database.
"""
import os
import re
import shutil
import sys
import tempfile

from clicheck import check, finish
import clicheck

BIN, SRC = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="sg-help-readme-")


def run(*argv):
    return clicheck.run(BIN, argv, work)


FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
# "  --lock-timeout DURATION  SCHEMAGATE_LOCK_TIMEOUT (default: 5m)"
SETTING = re.compile(r"^  (?:(-[a-zA-Z]), )?(--[a-z][a-z0-9-]*)(?: [A-Z]+)?\s+(?:([A-Z][A-Z0-9_]+) )?\(default: (.*)\)$")
# "  --steps N", "  VERSION --applied", "  -h, --help"
OPTION = re.compile(r"^  (?:[A-Z]+ |-[a-zA-Z], )?(--[a-z][a-z0-9-]*)")


def sections(text):
    """{"Options": [lines], "Settings": [lines], "Global": [lines], ...}: a
    paragraph starting at column 0 with a capital letter opens a section
    named by its first word."""
    out, current = {}, "head"
    for line in text.split("\n"):
        m = re.match(r"^([A-Z][a-z]+)\b", line)
        if m:
            current = m.group(1)
            continue
        out.setdefault(current, []).append(line)
    return out


def settings_of(lines):
    found = {}
    for line in lines:
        m = SETTING.match(line)
        if m:
            found[m.group(2)] = {"short": m.group(1), "env": m.group(3), "default": m.group(4)}
    return found


# ---- the binary's help
overview = run("--help")
check("--help exits 0", overview.returncode == 0, overview.stderr)
top = sections(overview.stdout)
commands = [m.group(1) for line in top.get("Commands", []) if (m := re.match(r"^  ([a-z]+)\s{2,}\S", line))]
check("the overview lists commands", len(commands) >= 10, commands)
global_settings = settings_of(top.get("Global", []))
check("the overview lists the settings", "--database-url" in global_settings, top.get("Global"))
global_other = [m.group(1) for line in top.get("Global", []) if (m := OPTION.match(line))]

helps = {}          # command -> its --help text
options = {}        # command -> flags of its Options section
settings = {}       # command -> {flag: setting}
for cmd in commands:
    p = run(cmd, "--help")
    check(f"{cmd} --help exits 0", p.returncode == 0 and p.stdout.startswith(f"Usage: schemagate {cmd}"),
          p.stdout + p.stderr)
    helps[cmd] = p.stdout
    sec = sections(p.stdout)
    options[cmd] = [m.group(1) for line in sec.get("Options", []) if (m := OPTION.match(line))]
    settings[cmd] = settings_of(sec.get("Settings", []))
    for flag, s in settings[cmd].items():
        check(f"{cmd} --help: {flag} as in the overview", global_settings.get(flag) == s,
              f"{s} vs {global_settings.get(flag)}")

every_flag = set(global_settings) | set(global_other)
for cmd in commands:
    every_flag |= set(options[cmd]) | set(settings[cmd])

# ---- README tables
readme = open(os.path.join(SRC, "README.md"), encoding="utf-8").read()


def tables(text):
    """[(header cells, [row cells])] for every pipe table."""
    result, rows, header = [], None, None
    for line in text.split("\n") + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header, rows = cells, []
            elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif header is not None:
            result.append((header, rows))
            header = None
    return result


def code_spans(cell):
    return re.findall(r"`([^`]+)`", cell)


def flags_in(cell):
    """Flags written in code spans (link targets such as #lease-lock---locktable are not code)."""
    return {f for span in code_spans(cell) for f in FLAG.findall(span)}


all_tables = tables(readme)
config_rows = [rows for header, rows in all_tables if header[:3] == ["flag", "environment", "default"]]
command_rows = [rows for header, rows in all_tables if header[:2] == ["command", "what it does"]]
check("README has one configuration table", len(config_rows) == 1)
check("README has one command table", len(command_rows) == 1)
config_rows = config_rows[0] if config_rows else []
command_rows = command_rows[0] if command_rows else []


def norm_default(text):
    text = text.replace("`", "").replace("—", "-").strip()
    return re.sub(r"\s+", " ", text)


readme_settings = {}
for row in config_rows:
    flags = flags_in(row[0])
    check(f"README configuration row names one long flag: {row[0]}", len(flags) == 1, row[0])
    envs = code_spans(row[1])
    for flag in flags:
        readme_settings[flag] = {"env": envs[0] if envs else None, "default": norm_default(row[2]),
                                 "short": next((s for s in code_spans(row[0]) if re.fullmatch(r"-[a-zA-Z]", s)),
                                               None)}

for flag, s in global_settings.items():
    r = readme_settings.get(flag)
    check(f"README documents setting {flag}", r is not None)
    if r:
        check(f"README: {flag} reads {s['env']}", r["env"] == s["env"], f"README {r['env']}, help {s['env']}")
        check(f"README: {flag} defaults to '{s['default']}'", r["default"] == norm_default(s["default"]),
              f"README '{r['default']}', help '{s['default']}'")
        check(f"README: {flag} short form {s['short']}", r["short"] == s["short"])
for flag in readme_settings:
    check(f"README setting {flag} is a setting of the binary", flag in global_settings)

readme_commands = {}
for row in command_rows:
    spans = code_spans(row[0])
    check(f"README command row starts with a command: {row[0]}", bool(spans), row[0])
    names = {s.split()[0] for s in spans if not s.startswith("-")}
    for name in names:
        readme_commands.setdefault(name, []).append(row)
for cmd in commands:
    check(f"README command table has {cmd}", cmd in readme_commands)
for cmd in readme_commands:
    check(f"README command {cmd} is a command of the binary", cmd in commands)

for cmd in commands:
    rows = readme_commands.get(cmd, [])
    row_flags = set().union(*(flags_in(" ".join(r)) for r in rows)) if rows else set()
    for flag in options[cmd]:
        check(f"README row of {cmd} mentions its option {flag}", flag in row_flags, rows)
    first_cell_flags = set().union(*(flags_in(r[0]) for r in rows)) if rows else set()
    for flag in first_cell_flags:
        known = flag in options[cmd] or flag in settings[cmd] or (cmd in ("help", "version") and
                                                                   flag in global_other)
        check(f"README row of {cmd} writes {flag}, which {cmd} --help lists", known, helps[cmd])

# ---- every flag mentioned anywhere is one the binary knows
for header, rows in all_tables:
    for row in rows:
        for flag in flags_in(" ".join(row)):
            check(f"README table flag {flag} is a flag of the binary", flag in every_flag, " | ".join(row))
for cmd, text in [("overview", overview.stdout)] + list(helps.items()):
    for flag in set(FLAG.findall(text)):
        check(f"{cmd} help mentions {flag}, a flag of the binary", flag in every_flag)

# ---- and the binary accepts each flag for the commands whose help lists it
REFUSED = re.compile(r"unknown option|ambiguous option|does not apply to|takes no value")
nodir = os.path.join(work, "nodir")
for cmd in commands:
    listed = {f: True for f in options[cmd]}
    listed.update({f: True for f in settings[cmd]})
    for flag in listed:
        takes_value = re.search(rf"^  (?:[A-Z]+ |-[a-zA-Z], )?{re.escape(flag)} [A-Z]", helps[cmd], re.M)
        # a value that is wrong for every flag and names no file that exists
        argv = [cmd, flag] + ([os.path.join(nodir, "x")] if takes_value else [])
        if flag != "--dir":
            argv += ["--dir", nodir]   # new/lint never touch a real directory
        p = run(*argv)
        check(f"{cmd} accepts {flag}", not REFUSED.search(p.stderr), p.stderr)
for flag in ("--help", "-h", "--version", "-V"):
    p = run(flag)
    check(f"{flag} is accepted", p.returncode == 0 and p.stdout, p.stderr)

check("nothing was created by the flag runs", os.listdir(work) == [], os.listdir(work))
shutil.rmtree(work)
finish()
