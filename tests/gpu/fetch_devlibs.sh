#!/bin/sh
# fetch_devlibs.sh: run HERE (a Debian bookworm machine with network, as root)
# to prepare what tests/gpu/device_check.sh needs on a bare GPU machine that
# has the CUDA toolkit and a C compiler but none of qharness's -dev packages
# and no network:
#   .devlibs/debs/*.deb   the -dev packages (headers, link symlinks, .pc) of
#                         hdf5, gsl, jansson, inih, openblas-openmp and zlib,
#                         GNU make (in case the machine lacks it), hdf5-tools,
#                         plus every shared library they need at link and run
#                         time, found by closure: unpack, ldd every .so, map
#                         each library resolved outside the unpacked tree to
#                         its Debian package (dpkg -S), download it, repeat;
#   .devlibs/data/{models,text}/...   stories260K, tok512 and the texts the
#                         GPU tests and the 7B-block runs read (data/ is
#                         ignored and does not travel).
# Libraries every glibc + gcc + CUDA machine has (libc, libm, libdl, libpthread,
# librt, libresolv, libgcc_s, libstdc++, libgomp, the loader) are not fetched.
# It does not build anything and changes nothing outside .devlibs/.
# Usage: tests/gpu/fetch_devlibs.sh        (from anywhere; QH_DATA = data root)
set -eu
cd "$(dirname "$0")/../.."
ROOT_DIR=$(pwd)
DEST=.devlibs/debs
DATA_ROOT=${QH_DATA:-data}
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

# The seed: what the Makefile compiles and links against directly, GNU make
# itself (used there only when the machine has none; it needs only libc), and
# hdf5-tools (h5diff / h5dump / h5ls, for tests/gpu/sweep_stream.sh).
SEED="libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libgsl-dev libgsl27 libjansson-dev libjansson4
libinih-dev libinih1 libopenblas-openmp-dev libopenblas0-openmp zlib1g-dev zlib1g make hdf5-tools"
BASE_RE='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libgcc_s|libstdc\+\+|libgomp)\.so'

mkdir -p "$DEST"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# fetch PKG: .devlibs/debs/PKG_*.deb of the candidate version, from the local
# apt cache when it holds that version, else with apt-get download.
fetch() {
    p=$1
    ver=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || { echo "fetch_devlibs: no candidate for $p" >&2; exit 1; }
    fver=$(printf '%s' "$ver" | sed 's/:/%3a/')
    for a in "$ARCH" all; do
        [ -f "$DEST/${p}_${fver}_$a.deb" ] && return 0
        if [ -f "/var/cache/apt/archives/${p}_${fver}_$a.deb" ]; then
            cp "/var/cache/apt/archives/${p}_${fver}_$a.deb" "$DEST/"
            return 0
        fi
    done
    (cd "$DEST" && apt-get download -q -o APT::Sandbox::User=root "$p=$ver") >/dev/null || { echo "fetch_devlibs: apt-get download $p failed" >&2; exit 1; }
}

# owner of a library path: the Debian package (without :arch)
owner() {
    for f in "$1" "$(readlink -f "$1")" "/usr$1" "$(echo "$1" | sed 's,^/usr,,')"; do
        o=$(dpkg -S "$f" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$o" ] && { echo "$o"; return 0; }
    done
    return 1
}

pkgs=$(echo $SEED)
round=0
while :; do
    round=$((round + 1))
    for p in $pkgs; do fetch "$p"; done
    # drop debs of packages no longer wanted (an older run)
    for deb in "$DEST"/*.deb; do
        n=$(basename "$deb" | cut -d_ -f1)
        case " $pkgs " in *" $n "*) ;; *) rm -f "$deb" ;; esac
    done
    R=$TMP/root
    rm -rf "$R"
    for deb in "$DEST"/*.deb; do dpkg -x "$deb" "$R"; done
    LIBS="$R/usr/lib/$MA:$R/lib/$MA:$R/usr/lib/$MA/hdf5/serial:$R/usr/lib/$MA/openblas-openmp"
    need=""
    for so in $(find "$R" -type f -name '*.so*'); do
        head -c 4 "$so" | grep -q ELF || continue
        LD_LIBRARY_PATH=$LIBS ldd "$so" 2>/dev/null | awk '/=>/ {print $1, $3}' >"$TMP/ldd"
        while read -r name path; do
            echo "$name" | grep -Eq "$BASE_RE" && continue
            case "$path" in
            "$R"/*) continue ;;
            not) echo "fetch_devlibs: $so needs $name, found nowhere" >&2; exit 1 ;;
            esac
            o=$(owner "$path") || { echo "fetch_devlibs: no package owns $path (needed by $so)" >&2; exit 1; }
            case " $pkgs $need " in *" $o "*) ;; *) need="$need $o" ;; esac
        done <"$TMP/ldd"
    done
    [ -z "$need" ] && break
    echo "fetch_devlibs: round $round adds:$need"
    pkgs="$pkgs$need"
done

# the data the GPU tests and the 7B-block runs read (data/ is ignored and does not travel)
for f in models/stories260K/stories260K.bin models/stories260K/tok512.bin text/c4/c4_train_00000_first1000.jsonl \
    text/wikitext-2-raw/wiki.test.raw text/ptb/ptb.valid.txt text/ptb/ptb.test.txt \
    text/tinystories/tinystories_sample.txt; do
    if [ -f "$DATA_ROOT/$f" ]; then
        mkdir -p ".devlibs/data/$(dirname "$f")"
        cp "$DATA_ROOT/$f" ".devlibs/data/$f"
    else
        echo "fetch_devlibs: $DATA_ROOT/$f not found (make data): the GPU tests that read it will skip" >&2
    fi
done

# what device_check.sh leaves here when run on this machine must not travel
rm -rf .devlibs/work .devlibs/out

n=$(ls "$DEST"/*.deb | wc -l)
size=$(du -sk "$DEST" | cut -f1)
echo "fetch_devlibs: $n packages, $((size / 1024)) MB in $ROOT_DIR/$DEST:"
echo "$pkgs" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' '
echo
[ "$size" -le 40960 ] || echo "fetch_devlibs: warning: more than 40 MB" >&2
