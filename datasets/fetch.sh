#!/bin/sh
# fetch.sh MANIFEST DEST: fill DEST (the ignored data/ folder) with the files
# listed in MANIFEST (tab-separated: name, file, sha256, upstream, licence, and
# optionally bytes, need, note). Source: $DATA_MIRROR/<file> when DATA_MIRROR
# is set and holds it, else the upstream URL ("URL#member" = a member of a zip
# archive; "mirror-only" = no public URL). Every file is checked before it is
# moved into place; a file that fails a check is refused and nothing already in
# DEST is touched.
#
#   sha256 "record"   not known in advance (the paper's C4 shards): checked
#                     against the lock file $DATA_LOCK (default
#                     datasets/manifest.lock) when it knows the name; else the
#                     digest and size of the file installed are written there
#                     ("record on first fetch"), so that another machine given
#                     that lock file verifies it has the same bytes.
#   bytes             the size in bytes, checked first ("-" or empty: unknown).
#   need "optional"   the harness works without the file: when it cannot be had
#                     (offline, no mirror), one line says so (with the note) and
#                     the exit status stays 0. DATA_OPTIONAL=0 (make test, make
#                     run) does not fetch optional files that are not there yet.
#   *.json.gz         checked whole before it is installed by `$QH check-jsonl`
#                     (default build/qharness): a truncated gzip stream or a bad
#                     JSON line is refused with the file and the line.
set -eu
manifest=$1
dest=$2
mirror=${DATA_MIRROR:-}
lock=${DATA_LOCK:-datasets/manifest.lock}
want_optional=${DATA_OPTIONAL:-1}
qh=${QH:-build/qharness}
mkdir -p "$dest"
fail=0
skipped=""
tab=$(printf '\t')
tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { wc -c <"$1" | tr -d ' '; }

# lock_get NAME: "sha256 bytes" recorded for NAME, or nothing
lock_get() {
    if [ -f "$lock" ]; then awk -F"$tab" -v n="$1" 'NR > 1 && $1 == n { print $3, $4; exit }' "$lock"; fi
}
# lock_put NAME FILE SHA BYTES FROM: (re)write NAME's line of the lock file, atomically
lock_put() {
    lt="$lock.tmp.$$"
    {
        if [ -f "$lock" ]; then
            awk -F"$tab" -v n="$1" 'NR == 1 || $1 != n' "$lock"
        else
            printf '# datasets/fetch.sh (make data): name, file, sha256, bytes, recorded (UTC), source of the files whose manifest sha256 is "record", as first fetched; copy or commit this file so that another machine checks it has the same bytes\n'
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$5"
    } >"$lt" && mv "$lt" "$lock"
}

# check FILE_AS_NAMED TMP WANT_SHA WANT_BYTES WHAT: 0 when TMP passes every check that applies
check() {
    if [ -n "$4" ] && [ "$4" != "-" ] && [ "$(size_of "$2")" != "$4" ]; then
        echo "fetch.sh: $manifest:$line: '$name' ($1) from $got is $(size_of "$2") bytes, expected $4$5; the file was NOT installed" >&2
        return 1
    fi
    if [ -n "$3" ]; then
        actual=$(sha_of "$2")
        if [ "$actual" != "$3" ]; then
            echo "fetch.sh: $manifest:$line: sha256 mismatch for '$name' ($1) from $got$5:" >&2
            echo "  expected $3" >&2
            echo "  got      $actual" >&2
            echo "  the file was NOT installed" >&2
            return 1
        fi
    fi
    case "$1" in
        *.json.gz)
            if ! "$qh" check-jsonl --file "$2" >"$tmpdir/check.out" 2>"$tmpdir/check.err"; then
                sed "s#$2#$1 (from $got)#g" "$tmpdir/check.err" >&2
                echo "fetch.sh: $manifest:$line: '$name' ($1) is damaged or not C4 JSON Lines (above); the file was NOT installed" >&2
                return 1
            fi ;;
    esac
    return 0
}

line=0
while IFS="$tab" read -r name file sha url licence bytes need note; do
    line=$((line + 1))
    [ "$line" = 1 ] && continue            # header
    [ -z "$name" ] && continue
    target="$dest/$file"
    optional=0
    [ "${need:-}" = optional ] && optional=1
    want_sha=$sha
    want_bytes=${bytes:-}
    against=""
    if [ "$sha" = record ]; then
        rec=$(lock_get "$name")
        if [ -n "$rec" ]; then
            want_sha=${rec% *}
            want_bytes=${rec#* }
            against=" (checked against $lock)"
        else
            want_sha=""
        fi
    fi
    case "$file" in
        *.json.gz)
            if [ ! -x "$qh" ]; then
                if [ $optional = 1 ]; then
                    echo "fetch.sh: optional '$name' ($file) not fetched: it is checked by $qh check-jsonl, which is not built (run make, then make data)${note:+; $note}"
                    continue
                fi
                echo "fetch.sh: $manifest:$line: '$name' ($file) is checked by $qh check-jsonl, which is not built (run make first)" >&2
                fail=1
                continue
            fi ;;
    esac
    if [ -f "$target" ]; then
        if [ -n "$want_sha" ]; then
            have=$(sha_of "$target")
            [ "$have" = "$want_sha" ] && continue
            if [ $optional = 1 ] && [ "$want_optional" = 0 ]; then
                echo "fetch.sh: $manifest:$line: '$name' ($target) is not the file expected${against}: sha256 $have, expected $want_sha; run make data to fetch it again, or remove it" >&2
                fail=1
                continue
            fi
        fi
        if [ -z "$want_sha" ]; then         # in place but never recorded: check it, then record it
            got="$target"
            if check "$file" "$target" "" "$want_bytes" ""; then
                lock_put "$name" "$file" "$(sha_of "$target")" "$(size_of "$target")" "$target"
                echo "fetch.sh: $file ok (already there); sha256 recorded in $lock"
            else
                fail=1
            fi
            continue
        fi
    fi
    if [ $optional = 1 ] && [ "$want_optional" = 0 ]; then
        skipped="$skipped $name"
        continue
    fi
    tmp="$tmpdir/$name"
    got=""
    if [ -n "$mirror" ] && [ -f "$mirror/$file" ]; then
        cp "$mirror/$file" "$tmp" && got="mirror $mirror"
    elif [ "$url" = "mirror-only" ]; then
        echo "fetch.sh: $manifest:$line: '$name' ($file) has no upstream URL and no DATA_MIRROR holds it" >&2
        fail=1
        continue
    else
        base=${url%%#*}
        member=""
        case "$url" in *#*) member=${url#*#} ;; esac
        if [ $optional = 1 ] && [ -t 1 ]; then echo "fetch.sh: downloading optional '$name' from $base ..."; fi
        if ! curl -fsSL --retry 2 --connect-timeout 20 -o "$tmp.dl" "$base" 2>"$tmpdir/curl.err"; then
            if [ $optional = 1 ]; then
                echo "fetch.sh: optional '$name' ($file) not fetched: no DATA_MIRROR holds it and $base cannot be downloaded ($(head -n 1 "$tmpdir/curl.err"))${note:+; $note}"
                rm -f "$tmp.dl"
                continue
            fi
            cat "$tmpdir/curl.err" >&2
            echo "fetch.sh: $manifest:$line: cannot download '$name' from $base" >&2
            fail=1
            continue
        fi
        case "$member" in
            "") mv "$tmp.dl" "$tmp" ;;
            first1000) gzip -dc "$tmp.dl" | head -n 1000 > "$tmp" ;;
            *) unzip -p "$tmp.dl" "$member" > "$tmp" ;;
        esac
        got="$base"
    fi
    if ! check "$file" "$tmp" "$want_sha" "$want_bytes" "$against"; then
        rm -f "$tmp"
        fail=1
        continue
    fi
    mkdir -p "$(dirname "$target")"
    mv "$tmp" "$target.part" && mv "$target.part" "$target"
    if [ "$sha" = record ] && [ -z "$want_sha" ]; then
        lock_put "$name" "$file" "$(sha_of "$target")" "$(size_of "$target")" "$got"
        echo "fetch.sh: $file ok ($got); sha256 recorded in $lock (copy or commit it: another machine then checks it has the same bytes)"
    else
        echo "fetch.sh: $file ok ($got)"
    fi
done < "$manifest"
[ -z "$skipped" ] || echo "fetch.sh: optional files not fetched by this target (make data fetches them):$skipped"
[ "$fail" = 0 ] || { echo "fetch.sh: some data files are missing or wrong (see above)" >&2; exit 1; }
