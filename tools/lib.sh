# Shared by tools/test, tools/demo and tools/bench: system packages and the build.
# shellcheck shell=bash

# Debian packages edgebuf builds against and tests with.
EDGEBUF_PACKAGES_BUILD="libsqlite3-dev libcurl4-openssl-dev openssl sqlite3"
EDGEBUF_PACKAGES_PEERS="nginx mitmproxy ruby-faye thin iptables conntrack faketime iproute2 procps systemd"

# ensure_packages PKG...: installs the ones that are missing (apt-get, as root).
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing missing system packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "edgebuf: run as root or install: ${missing[*]}" >&2; return 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# python3 through its real path: on pyenv machines `python3` is a shim whose PID is not the
# interpreter's, which matters when a script signals what it started.
python_bin() {
    python3 -c 'import sys; print(sys.executable)'
}
