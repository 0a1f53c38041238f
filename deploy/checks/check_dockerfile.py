#!/usr/bin/env python3
"""Checks deploy/Dockerfile without Docker.

Run from the repository root with the tools venv that deploy/check.sh builds (it has
PyPI's `dockerfile`, which parses with BuildKit's own Go parser):

    python deploy/checks/check_dockerfile.py

- the file parses; every FROM names an explicit tag (ARG defaults resolved);
- the build runs `cargo build --release --locked`;
- the final stage runs as a non-root USER, EXPOSEs 8080, sets
  LISTEN_ADDR=0.0.0.0:8080, and has HEALTHCHECK ["ivr-gateway","healthcheck"],
  ENTRYPOINT ["ivr-gateway"] and CMD ["serve"] in exec form;
- the binary name matches Cargo.toml's [[bin]];
- every COPY source from the build context exists and is not excluded by the
  .dockerignore (the repository root's, else deploy/dockerignore.proposed).
  A source missing from this checkout is a warning, not a failure, while other
  branches are still adding it (dialplans/).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import dockerfile

DOCKERFILE = Path("deploy/Dockerfile")


def dockerignore_patterns() -> tuple[Path, list[tuple[bool, re.Pattern[str]]]]:
    path = Path(".dockerignore")
    if not path.is_file():
        path = Path("deploy/dockerignore.proposed")
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line[1:] if negate else line
        pat = pat.strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        rules.append((negate, re.compile(rx + "$")))
    return path, rules


def excluded(rel: str, rules) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent
    directory matches everything below it."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            result = not negate
    return result


def main() -> int:
    problems: list[str] = []
    warnings: list[str] = []
    cmds = dockerfile.parse_file(str(DOCKERFILE))

    args: dict[str, str] = {}
    stages: list[list] = []
    for c in cmds:
        if c.cmd.upper() == "ARG" and not stages:
            k, _, v = c.value[0].partition("=")
            args[k] = v
        if c.cmd.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(c)
    if len(stages) < 2:
        problems.append("expected a multi-stage build (builder + runtime)")

    def resolve(s: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s)

    for stage in stages:
        image = resolve(stage[0].value[0])
        if "$" in image or ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"FROM {image}: needs an explicit, non-latest tag")

    runs = " ".join(" ".join(c.value) for c in cmds if c.cmd.upper() == "RUN")
    if "cargo build --release --locked" not in runs:
        problems.append("no `cargo build --release --locked`")

    final = {c.cmd.upper(): c for c in stages[-1]} if stages else {}
    user = final.get("USER")
    if not user or user.value[0].split(":")[0] in ("root", "0"):
        problems.append("final stage must set a non-root USER")
    if not final.get("EXPOSE") or "8080" not in " ".join(final["EXPOSE"].value):
        problems.append("final stage must EXPOSE 8080")
    env = {}
    for c in stages[-1] if stages else []:
        if c.cmd.upper() == "ENV":
            env.update(zip(c.value[0::2], c.value[1::2]))
    if env.get("LISTEN_ADDR") != "0.0.0.0:8080":
        problems.append("final stage must set ENV LISTEN_ADDR=0.0.0.0:8080")
    for cmd, want in (("HEALTHCHECK", ("CMD", "ivr-gateway", "healthcheck")),
                      ("ENTRYPOINT", ("ivr-gateway",)), ("CMD", ("serve",))):
        c = final.get(cmd)
        if not c or not c.json or tuple(c.value) != want:
            problems.append(f"final stage must have {cmd} {list(want)} in exec form")

    cargo = Path("Cargo.toml").read_text()
    bins = re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', cargo)
    if "ivr-gateway" not in bins:
        problems.append(f"Cargo.toml declares no [[bin]] ivr-gateway (found {bins})")
    if "target/release/ivr-gateway" not in runs:
        problems.append("the build does not pick up target/release/ivr-gateway")

    ignore_file, rules = dockerignore_patterns()
    for c in cmds:
        if c.cmd.upper() not in ("COPY", "ADD") or any(f.startswith("--from") for f in c.flags):
            continue
        for src in c.value[:-1]:
            path = Path(src.rstrip("/"))
            if not path.exists():
                warnings.append(f"COPY {src}: not in this checkout (the image build needs it)")
                continue
            rel = path.as_posix()
            if excluded(rel, rules):
                problems.append(f"COPY {src}: excluded by {ignore_file}")
            elif path.is_dir():
                for f in path.rglob("*"):
                    if f.is_file() and excluded(f.as_posix(), rules):
                        problems.append(f"COPY {src}: {f} is excluded by {ignore_file}")
    for must_ignore in ("target", ".git", ".env", "deploy/.env"):
        if not excluded(must_ignore, rules):
            problems.append(f"{ignore_file} does not exclude {must_ignore}")

    print(f"  {DOCKERFILE}: {len(stages)} stages, {len(cmds)} instructions; ignore file {ignore_file}")
    for w in warnings:
        print(f"  WARN {w}")
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
