# Sourced by scripts/dev and scripts/test: make sure .venv exists and holds the project with the given extras.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
ensure_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { echo "notify needs Python 3.11 or newer ($py is $("$py" --version))" >&2; exit 1; }
  local stamp=".venv/.installed-$extras"
  if [ ! -x .venv/bin/python ]; then
    echo "notify: creating .venv (first run)" >&2
    "$py" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "notify: installing notify and its dependencies ($extras) into .venv; a minute or two the first time" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    # One line per package as it is fetched: progress without pip's full output (errors kept).
    set +e
    .venv/bin/python -m pip install --progress-bar off -e ".[$extras]" 2>&1 \
      | grep --line-buffered -E '^(Collecting|Successfully installed)|ERROR|error' | sed -u 's/^/  /' >&2
    local rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" -eq 0 ] || { echo "notify: installing failed (pip exit $rc, see above)" >&2; exit 1; }
    touch "$stamp"
    echo "notify: installed" >&2
  fi
}
