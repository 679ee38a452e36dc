#!/usr/bin/env bash
# Set up everything nbsteps needs on a fresh Debian machine with Python 3.11:
# Debian packages (graphviz's `dot`; chromium for the browser tests) and a
# virtualenv in .venv with the package installed. Usage: scripts/setup.sh [demo|test]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-demo}"
PY="${PYTHON:-python3}"

apt_pkgs=()
command -v dot >/dev/null 2>&1 || apt_pkgs+=(graphviz)
"$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || apt_pkgs+=(python3-venv)
if [ "$what" = test ]; then
  [ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${apt_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="dask"
[ "$what" = test ] && extras="test,corpus"

# The JupyterLab extension (labextension/): built into nbsteps/labextension/ with the
# machine's node when there is one (npm ci: the committed package-lock.json). The build is
# also committed, so without node the last build is used; users of the package need neither.
if command -v npm >/dev/null 2>&1 && [ "${NBSTEPS_BUILD_LABEXTENSION:-1}" != 0 ]; then
  echo "setup: building the JupyterLab extension (labextension/)"
  if ! (cd labextension && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run -s build >/dev/null); then
    echo "setup: warning: the JupyterLab extension did not build; the committed build in nbsteps/labextension/ stays" >&2
    git checkout -- nbsteps/labextension 2>/dev/null || true
  fi
fi

.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[$extras]"
# An editable install gets no data-files (a wheel puts the extension in
# share/jupyter/labextensions/nbsteps): link the build there, as `jupyter labextension develop` does
labext=.venv/share/jupyter/labextensions/nbsteps
mkdir -p "$(dirname "$labext")"
[ -L "$labext" ] || rm -rf "$labext"
ln -sfn "$PWD/nbsteps/labextension" "$labext"
