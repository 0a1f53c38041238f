#!/usr/bin/env python3
"""Checks that the Grafana dashboard and the Prometheus rules speak the gateway's metrics.

Standard library only. Run from the repository root (deploy/check.sh does):

    python3 deploy/checks/check_metrics.py

The catalogue is parsed from src/telemetry/metrics.rs, the single source of metric
names: every `pub const X: &str = "ivr_..."` is a family; families passed to
`describe_histogram!` are histograms (queried as `_bucket`, `_count`, `_sum`); the
doc comment above each constant names its labels in backticks, and `label`: a|b|c
lists a label's values. Every PromQL expression in the dashboard, the alert rules and
the alert unit tests must then use only:

- those series (or `up`), with functions PromQL knows;
- label names the metrics it uses carry (plus `job`, `instance`, and `le` on buckets);
- label values from the listed sets, where a set is listed.

The dashboard must also parse, carry the panels operators rely on (REQUIRED_PANELS),
query through the `$datasource` variable, and have no overlapping panels.

Exit status 0 when everything holds; otherwise each problem is printed.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

METRICS_RS = Path("src/telemetry/metrics.rs")
DASHBOARD = Path("deploy/grafana/dashboards/ivr-gateway.json")
RULE_FILES = [Path("deploy/prometheus/alerts.yml"), Path("deploy/prometheus/alerts.test.yml")]

# Panel titles the dashboard must have (operators and the README refer to them).
REQUIRED_PANELS = [
    "Callouts finished by outcome",
    "Active callouts",
    "Active calls",
    "Calls placed by result",
    "Attempt outcomes",
    "DTMF keys received",
    "Time to accept (p50 / p90 / p99)",
    "Webhook latency by route (p50 / p99)",
    "Upstream latency by upstream / operation (p50 / p99)",
    "Upstream error rate",
    "Timer lag (p50 / p99)",
    "Fallback dialplans served",
    "Replicas ready",
]

# Series Prometheus itself adds per target.
EXTERNAL_SERIES = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}

PROMQL_FUNCTIONS = {
    # aggregations
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    # functions
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta",
    "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase",
    "irate", "label_join", "label_replace", "ln", "log2", "log10", "minute", "month",
    "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc",
    "sort_by_label", "sort_by_label_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time", "mad_over_time",
    "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh",
    "tan", "tanh", "deg", "rad", "pi",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}

# Grafana's variables, replaced before parsing.
GRAFANA_VARS = re.compile(r"\$\{?(__rate_interval|__interval|__range|__range_s|datasource|instance)\}?")


@dataclass
class Family:
    name: str
    kind: str = "counter_or_gauge"
    labels: set[str] = field(default_factory=set)
    values: dict[str, set[str]] = field(default_factory=dict)


def parse_catalogue(text: str) -> dict[str, Family]:
    """Families by exported series name (histograms under _bucket/_count/_sum)."""
    consts: dict[str, Family] = {}
    doc: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("///"):
            doc.append(stripped[3:])
            continue
        m = re.match(r'pub const (\w+): &str = "([a-z_:][a-z0-9_:]*)";', stripped)
        if m:
            fam = Family(m.group(2))
            comment = " ".join(doc)
            fam.labels = set(re.findall(r"`([a-z_]+)`", comment))
            for label, vals in re.findall(r"`([a-z_]+)`\s*(?:\([^)]*\))?:\s*([A-Za-z0-9_*|+-]+(?:\|[A-Za-z0-9_*+-]+)+)", comment):
                fam.values[label] = set(vals.split("|"))
            consts[m.group(1)] = fam
        doc = []
    histograms = set(re.findall(r"describe_histogram!\(\s*(\w+)\s*,", text, re.S))
    series: dict[str, Family] = {}
    for const, fam in consts.items():
        if const in histograms:
            fam.kind = "histogram"
            for suffix in ("_bucket", "_count", "_sum"):
                series[fam.name + suffix] = fam
        else:
            series[fam.name] = fam
    missing = histograms - set(consts)
    if missing:
        raise SystemExit(f"{METRICS_RS}: describe_histogram! of unknown constants {sorted(missing)}")
    return series


MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def check_expr(expr: str, series: dict[str, Family], where: str) -> list[str]:
    problems: list[str] = []
    e = GRAFANA_VARS.sub("5m", expr)
    if "$" in e:
        problems.append(f"{where}: unknown Grafana variable in {expr!r}")
        e = e.replace("$", "")

    # Selector blocks {…}, with the metric name that precedes them (if any).
    selectors: list[tuple[str | None, list[tuple[str, str, str]]]] = []

    def take_selector(m: re.Match[str]) -> str:
        name = m.group(1)
        matchers = MATCHER.findall(m.group(2))
        body = MATCHER.sub("", m.group(2)).replace(",", "").strip()
        if body:
            problems.append(f"{where}: cannot parse matchers {{{m.group(2)}}}")
        selectors.append((name, matchers))
        return f" {name} " if name else " "

    e = re.sub(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}", take_selector, e)
    grouping_labels: list[str] = []

    def take_grouping(m: re.Match[str]) -> str:
        grouping_labels.extend(x.strip() for x in m.group(2).split(",") if x.strip())
        return " "

    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", take_grouping, e)
    e = re.sub(r"\b(group_left|group_right)\b", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range and subquery windows
    e = re.sub(r'"(?:[^"\\]|\\.)*"', " ", e)  # string arguments (label_replace…)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?(e[+-]?\d+)?(?![\w:])", " ", e)  # numbers

    used: list[str] = []
    for m in re.finditer(r"[a-zA-Z_:][\w:]*", e):
        tok = m.group(0)
        nxt = e[m.end():].lstrip()[:1]
        if nxt == "(":
            if tok not in PROMQL_FUNCTIONS:
                problems.append(f"{where}: unknown PromQL function {tok!r}")
            continue
        if tok in KEYWORDS or tok in GROUPING:
            continue
        used.append(tok)
    for name, _ in selectors:
        if name:
            used.append(name)

    known_labels = set(TARGET_LABELS)
    for tok in used:
        if tok in EXTERNAL_SERIES:
            known_labels |= EXTERNAL_SERIES[tok]
        elif tok in series:
            fam = series[tok]
            known_labels |= fam.labels
            if tok.endswith("_bucket") and fam.kind == "histogram":
                known_labels.add("le")
        elif tok.startswith("ivr_") and tok in {f.name for f in series.values()}:
            problems.append(f"{where}: {tok} is a histogram: query {tok}_bucket, _count or _sum")
        else:
            problems.append(f"{where}: {tok!r} is not a metric in {METRICS_RS} (nor `up`)")

    for label in grouping_labels:
        if label not in known_labels:
            problems.append(f"{where}: label {label!r} is not carried by the metrics used ({sorted(set(used))})")
    for name, matchers in selectors:
        fam = series.get(name) if name else None
        for label, op, value in matchers:
            if label == "__name__":
                continue
            if label not in known_labels:
                problems.append(f"{where}: label {label!r} is not carried by the metrics used ({sorted(set(used))})")
                continue
            allowed = fam.values.get(label) if fam else None
            if allowed is None or op.startswith("!"):
                continue
            wanted = value.split("|") if op == "=~" else [value]
            if op == "=~" and not all(re.fullmatch(r"[\w*+-]+", w) for w in wanted):
                continue  # a real regex: not checked
            for w in wanted:
                if w not in allowed:
                    problems.append(f"{where}: {name}{{{label}{op}\"{value}\"}}: {w!r} is not one of {sorted(allowed)}")
    return problems


def check_dashboard(series: dict[str, Family]) -> list[str]:
    problems: list[str] = []
    try:
        dash = json.loads(DASHBOARD.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return [f"{DASHBOARD}: {err}"]

    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append(f"{DASHBOARD}: needs a `datasource` variable of type datasource (prometheus)")
    if not dash.get("uid"):
        problems.append(f"{DASHBOARD}: needs a stable uid")

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    panels = list(walk(dash.get("panels", [])))
    titles = [p.get("title", "") for p in panels]
    for title in REQUIRED_PANELS:
        if title not in titles:
            problems.append(f"{DASHBOARD}: missing panel {title!r}")
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"{DASHBOARD}: panel ids must be present and unique")

    boxes = []
    queries = 0
    for p in panels:
        where = f"{DASHBOARD}: panel {p.get('title')!r}"
        g = p.get("gridPos", {})
        if not all(k in g for k in ("x", "y", "w", "h")) or g["x"] + g["w"] > 24:
            problems.append(f"{where}: bad gridPos {g}")
        else:
            boxes.append((p.get("title"), g))
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: datasource must be ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        for t in targets:
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{where}: query {t.get('refId')} must use ${{datasource}}")
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"{where}: query {t.get('refId')} is empty")
                continue
            queries += 1
            problems += check_expr(expr, series, where)
        if p.get("title") == "Webhook latency by route (p50 / p99)":
            steps = p.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
            style = p.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("thresholdsStyle", {})
            if not any(s.get("value") == 3 for s in steps) or "line" not in style.get("mode", ""):
                problems.append(f"{where}: needs a threshold line at 3 s (Routee's window)")
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]:
                problems.append(f"{DASHBOARD}: panels {ta!r} and {tb!r} overlap")
    print(f"  dashboard: {len(panels)} panels, {queries} queries, {len(REQUIRED_PANELS)} required panels")
    return problems


def rule_exprs(path: Path) -> list[tuple[int, str]]:
    """`expr:` values (inline or block scalars) and `series:` selectors of a rules or
    rule-test file. A small reader for the shapes these files use, stdlib only."""
    lines = path.read_text().splitlines()
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*(?:- )?)(expr|series):\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        # The key's own column: a block scalar is every following deeper line.
        indent, rest = len(m.group(1)), m.group(3).strip()
        if rest in ("|", ">", "|-", ">-", "|+", ">+"):
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            out.append((i, " ".join(block)))
            continue
        if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
            rest = rest[1:-1]
        out.append((i + 1, rest))
        i += 1
    return out


def main() -> int:
    series = parse_catalogue(METRICS_RS.read_text())
    families = sorted({f.name for f in series.values()})
    print(f"  catalogue: {len(families)} metric families in {METRICS_RS}")
    problems = check_dashboard(series)
    for path in RULE_FILES:
        exprs = rule_exprs(path)
        for line, expr in exprs:
            problems += check_expr(expr, series, f"{path}:{line}")
        print(f"  {path}: {len(exprs)} expressions")
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
