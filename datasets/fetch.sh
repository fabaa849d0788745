#!/bin/sh
# fetch.sh MANIFEST DEST: fill DEST (the ignored data/ folder) with every file
# listed in MANIFEST (name, file, sha256, upstream, licence; tab-separated).
# Source: $DATA_MIRROR/<file> when DATA_MIRROR is set and holds it, else the
# upstream URL ("URL#member" = a member of a zip archive; "mirror-only" = no
# public URL). Every file is checked against its sha256 before it is moved
# into place; a mismatch is refused and nothing already in DEST is touched.
set -eu
manifest=$1
dest=$2
mirror=${DATA_MIRROR:-}
mkdir -p "$dest"
fail=0
tab=$(printf '\t')
tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

line=0
while IFS="$tab" read -r name file sha url licence; do
    line=$((line + 1))
    [ "$line" = 1 ] && continue            # header
    [ -z "$name" ] && continue
    target="$dest/$file"
    if [ -f "$target" ] && [ "$(sha_of "$target")" = "$sha" ]; then
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
        if ! curl -fsSL --retry 2 -o "$tmp.dl" "$base"; then
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
    actual=$(sha_of "$tmp")
    if [ "$actual" != "$sha" ]; then
        echo "fetch.sh: $manifest:$line: sha256 mismatch for '$name' ($file) from $got:" >&2
        echo "  expected $sha" >&2
        echo "  got      $actual" >&2
        echo "  the file was NOT installed" >&2
        fail=1
        continue
    fi
    mkdir -p "$(dirname "$target")"
    mv "$tmp" "$target.part" && mv "$target.part" "$target"
    echo "fetch.sh: $file ok ($got)"
done < "$manifest"
[ "$fail" = 0 ] || { echo "fetch.sh: some data files are missing or wrong (see above)" >&2; exit 1; }
