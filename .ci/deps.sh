#!/bin/sh
# deps.sh: install the Debian packages qharness needs (as root, with apt-get),
# or print the exact command to run. `deps.sh --check` only reports whether
# everything is present (exit 0) or not (exit 1).
set -eu
PKGS="build-essential pkg-config libhdf5-dev hdf5-tools libgsl-dev libopenblas-openmp-dev \
libinih-dev libjansson-dev libpcre2-dev libutf8proc-dev zlib1g-dev gnuplot-nox ca-certificates curl unzip"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ "${1:-}" = "--check" ]; then
    [ -z "$missing" ] && exit 0
    echo "missing packages:$missing"
    exit 1
fi

if [ -z "$missing" ]; then
    echo "qharness: all Debian packages present"
    exit 0
fi
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = "0" ]; then
    echo "qharness: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "qharness: missing Debian packages:$missing"
    echo "run as root:  apt-get update && $cmd"
    exit 1
fi
