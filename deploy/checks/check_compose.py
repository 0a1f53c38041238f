#!/usr/bin/env python3
"""Validates the compose files offline, without Docker.

Run from the repository root with the tools venv that deploy/check.sh builds
(check-jsonschema from PyPI, which brings jsonschema, ruamel.yaml and a vendored
copy of the Compose Specification's JSON schema):

    python deploy/checks/check_compose.py

For each compose file it does what `docker compose config` would, short of talking
to an engine:

1. loads the YAML (anchors and `<<` merge keys resolved);
2. interpolates ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}
   and $$ from deploy/.env.example (the file operators copy to deploy/.env),
   overridden by --set VAR=value (check.sh fills the required secrets that the
   example leaves empty); an unset variable with no default is an error;
3. validates the result against the Compose Specification schema;
4. checks references: depends_on targets exist (with a healthcheck when the
   condition is service_healthy), named volumes are declared, bind-mounted files,
   env_file files (.env is checked as .env.example), build contexts and
   Dockerfiles exist, images carry an explicit tag.

For the live files (docker-compose.yml, and docker-compose.ha.yml with its Redis
Cluster) it also checks the deployment hangs together: every gateway-N
service is in nginx.conf's upstream and in Prometheus' scrape targets (and nothing
else is), each replica has REDIS_URL to the redis service(s) (every host of a
redis+cluster:// URL), LISTEN_ADDR on 0.0.0.0, a healthcheck and env_file .env;
every Redis runs AOF everysec and noeviction (and cluster mode in the HA file); nginx's
client_max_body_size equals MAX_BODY_BYTES. Every variable in .env.example is read
by src/config.rs or by a compose file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import resources
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

DEPLOY = Path("deploy")
ENV_EXAMPLE = DEPLOY / ".env.example"
LIVE = DEPLOY / "docker-compose.yml"
HA = DEPLOY / "docker-compose.ha.yml"
SANDBOX = DEPLOY / "docker-compose.sandbox.yml"
NGINX = DEPLOY / "nginx.conf"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
CONFIG_RS = Path("src/config.rs")

VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def load_yaml(path: Path):
    yaml = YAML(typ="safe", pure=True)
    with path.open() as f:
        return yaml.load(f)


def to_plain(node):
    """ruamel's safe loader already gives dicts and lists; copy to detach merges."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    return node


def parse_env_file(path: Path) -> dict[str, str]:
    env = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if not m:
            raise SystemExit(f"{path}:{n}: not KEY=VALUE: {line!r}")
        env[m.group(1)] = m.group(2).strip().strip("'\"")
    return env


class Interpolator:
    def __init__(self, env: dict[str, str], where: str):
        self.env = env
        self.where = where
        self.problems: list[str] = []
        self.used: set[str] = set()

    def sub(self, text: str, path: str) -> str:
        def one(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) or m.group(4)
            op, arg = m.group(2), m.group(3) or ""
            self.used.add(name)
            value = self.env.get(name)
            empty = value is None or (value == "" and op is not None and op.startswith(":"))
            if op in (":-", "-"):
                return self.sub(arg, path) if (value is None if op == "-" else empty) else value
            if op in (":?", "?"):
                if (value is None) if op == "?" else empty:
                    self.problems.append(f"{self.where}: {path}: required variable {name} is unset ({arg})")
                    return ""
                return value
            if value is None:
                self.problems.append(f"{self.where}: {path}: ${{{name}}} has no default and is not in {ENV_EXAMPLE.name}")
                return ""
            return value

        return VAR.sub(one, text)

    def walk(self, node, path="$"):
        if isinstance(node, dict):
            return {k: self.walk(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str):
            return self.sub(node, path)
        return node


def compose_schema() -> dict:
    ref = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(ref.read_text())


def schema_problems(doc: dict, where: str) -> list[str]:
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        loc = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: schema: {loc}: {err.message}")
    return out


def env_list(env) -> dict[str, str]:
    if isinstance(env, dict):
        return {k: "" if v is None else str(v) for k, v in env.items()}
    out = {}
    for item in env or []:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def reference_problems(doc: dict, base: Path, where: str) -> list[str]:
    problems = []
    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        at = f"{where}: services.{name}"
        image = svc.get("image")
        if image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"{at}: image {image!r} needs an explicit, non-latest tag")
        if not image and "build" not in svc:
            problems.append(f"{at}: neither image nor build")
        build = svc.get("build")
        if build:
            ctx = base / (build if isinstance(build, str) else build.get("context", "."))
            if not ctx.is_dir():
                problems.append(f"{at}: build context {ctx} does not exist")
            elif isinstance(build, dict) and build.get("dockerfile"):
                if not (ctx / build["dockerfile"]).is_file():
                    problems.append(f"{at}: Dockerfile {ctx / build['dockerfile']} does not exist")
        deps = svc.get("depends_on") or []
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                problems.append(f"{at}: depends_on unknown service {dep!r}")
            elif (spec or {}).get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{at}: waits for {dep} to be healthy, but {dep} has no healthcheck")
        env_files = svc.get("env_file") or []
        for ef in [env_files] if isinstance(env_files, str) else env_files:
            ef_path = ef if isinstance(ef, str) else ef.get("path")
            f = base / ef_path
            stand_in = f.with_name(f.name + ".example") if f.name == ".env" else f
            if not stand_in.is_file():
                problems.append(f"{at}: env_file {f} (checked as {stand_in}) does not exist")
        for vol in svc.get("volumes") or []:
            if isinstance(vol, dict):
                src, kind = vol.get("source"), vol.get("type")
            else:
                src = str(vol).split(":")[0] if ":" in str(vol) else None
                kind = "bind" if src and src.startswith((".", "/", "~")) else "volume"
            if not src:
                continue
            if kind == "bind":
                if not (base / src).exists():
                    problems.append(f"{at}: bind mount source {base / src} does not exist")
            elif src not in volumes:
                problems.append(f"{at}: named volume {src!r} is not declared under top-level volumes")
    return problems


def nginx_upstream_servers(text: str) -> list[str]:
    text = re.sub(r"#.*", "", text)
    m = re.search(r"upstream\s+\w+\s*\{([^}]*)\}", text)
    return re.findall(r"^\s*server\s+([\w.-]+:\d+)", m.group(1), re.M) if m else []


def nginx_body_limit(text: str) -> int | None:
    m = re.search(r"^\s*client_max_body_size\s+(\d+)([kKmM]?)\s*;", text, re.M)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1 << 20}[m.group(2).lower()]


def redis_url_hosts(url: str) -> list[str]:
    """The hosts a REDIS_URL names (several for redis+cluster:// and redis+sentinel://)."""
    m = re.match(r"rediss?(?:\+(?:cluster|sentinel))?://(?:[^@/]*@)?([^/?#]+)", url)
    if not m:
        return []
    return [h.rsplit(":", 1)[0] for h in m.group(1).split(",") if h]


def live_problems(doc: dict, example: dict[str, str], path: Path = LIVE) -> list[str]:
    where = str(path)
    problems = []
    services = doc.get("services") or {}
    gateways = sorted(n for n in services if re.fullmatch(r"gateway-\d+", n))
    if len(gateways) < 2:
        problems.append(f"{where}: expected at least two gateway-N replicas, found {gateways}")
    for name in gateways:
        svc, at = services[name], f"{where}: services.{name}"
        env = env_list(svc.get("environment"))
        redis_url = env.get("REDIS_URL", "")
        hosts = redis_url_hosts(redis_url)
        if not hosts or any(h not in services for h in hosts):
            problems.append(f"{at}: REDIS_URL {redis_url!r} must point at compose services")
        if not env.get("LISTEN_ADDR", "").startswith("0.0.0.0:"):
            problems.append(f"{at}: LISTEN_ADDR must listen on 0.0.0.0 in a container")
        if "healthcheck" not in svc:
            problems.append(f"{at}: no healthcheck")
        ef = svc.get("env_file")
        if ef not in (".env", [".env"]) and not (isinstance(ef, list) and any(
            (e if isinstance(e, str) else e.get("path")) == ".env" for e in ef)):
            problems.append(f"{at}: env_file must be .env")

    cluster = path == HA
    redis_names = sorted(n for n in services if re.fullmatch(r"redis-\d+", n)) if cluster else ["redis"]
    if cluster and len(redis_names) < 6:
        problems.append(f"{where}: expected six redis-N cluster nodes (3 primaries, 3 replicas), found {redis_names}")
    for name in redis_names:
        redis = services.get(name)
        if not redis:
            problems.append(f"{where}: no {name} service")
            continue
        cmd = redis.get("command")
        cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd or "")
        wants = ["--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"]
        if cluster:
            wants.append("--cluster-enabled yes")
        for want in wants:
            if want not in cmd:
                problems.append(f"{where}: services.{name}.command lacks {want!r}")
        if "healthcheck" not in redis:
            problems.append(f"{where}: services.{name} has no healthcheck")

    want_targets = {f"{g}:8080" for g in gateways}
    nginx_text = NGINX.read_text()
    upstream = set(nginx_upstream_servers(nginx_text))
    if upstream != want_targets:
        problems.append(f"{NGINX}: upstream servers {sorted(upstream)} != gateway services {sorted(want_targets)}")
    limit = nginx_body_limit(nginx_text)
    body = int(example.get("MAX_BODY_BYTES") or 1 << 20)
    if limit != body:
        problems.append(f"{NGINX}: client_max_body_size ({limit} bytes) != MAX_BODY_BYTES ({body})")

    prom = load_yaml(PROMETHEUS)
    targets = set()
    for job in prom.get("scrape_configs") or []:
        if job.get("job_name") == "ivr-gateway":
            for sc in job.get("static_configs") or []:
                targets |= set(sc.get("targets") or [])
    if targets != want_targets:
        problems.append(f"{PROMETHEUS}: ivr-gateway targets {sorted(targets)} != gateway services {sorted(want_targets)}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", action="append", default=[], metavar="VAR=value",
                    help="a value for a variable the example leaves empty")
    args = ap.parse_args()
    example = parse_env_file(ENV_EXAMPLE)
    overrides = dict(s.split("=", 1) for s in args.set)

    problems: list[str] = []
    used: set[str] = set()
    live_env = {**example, **overrides}
    for path, env in ((LIVE, live_env), (HA, live_env), (SANDBOX, dict(overrides))):
        interp = Interpolator(env, str(path))
        doc = interp.walk(to_plain(load_yaml(path)))
        problems += interp.problems
        problems += schema_problems(doc, str(path))
        problems += reference_problems(doc, path.parent, str(path))
        if path in (LIVE, HA):
            problems += live_problems(doc, example, path)
        used |= interp.used
        print(f"  {path}: {len(doc.get('services') or {})} services, variables {sorted(interp.used)}")

    # Every setting in the example is read by the gateway or by compose: a stale
    # example would send operators after a variable nothing reads.
    config_rs = CONFIG_RS.read_text()
    gateway_vars = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', config_rs))
    for key in example:
        if key not in gateway_vars and key not in used:
            problems.append(f"{ENV_EXAMPLE}: {key} is read neither by {CONFIG_RS} nor by the compose files")

    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
