#!/bin/sh
# test_provenance.sh: the git commit a result file records is the one the
# binary was built from, also after HEAD moves (Makefile: build/gen/git_version.c,
# regenerated on every make, rewritten only when it changes). In a scratch clone
# (git clone --shared: no objects copied; this tree's Makefile committed there
# when it differs from HEAD's), with this build's objects copied in
# so that only the generated file is compiled and qharness relinked:
# - make, eval --out: git_commit is the clone's HEAD, in full;
# - a second make with nothing changed does not relink qharness;
# - commit, make, eval --out: git_commit is the new HEAD;
# - an uncommitted change to a tracked file, make: "<HEAD>-dirty";
#   an untracked file (not ignored) too, as it may be built (make's wildcards);
# - the binary of this tree records this tree's HEAD (+ -dirty as git sees it).
# Runs on the default build folder only (the copied objects must match the
# Makefile's default flags); skipped elsewhere or outside a git checkout.
# Not here: the other provenance attributes (test_cli.sh).
cd "$(dirname "$0")/../.." || exit 1
. tests/cli/lib.sh
require_stories260k

if ! command -v git >/dev/null 2>&1 || [ "$(git rev-parse --show-toplevel 2>/dev/null)" != "$(pwd -P)" ]; then
    skip "not a git checkout (or no git): provenance from git cannot be tested"
    summary
    exit $?
fi
if [ "$QH_BUILD" != build ]; then
    skip "QH_BUILD=$QH_BUILD: the scratch clone reuses the default build's objects only"
    summary
    exit $?
fi

E="--dataset tinystories --seqlen 128 --max-windows 1"
commit_of() { h5dump -a git_commit "$1" 2>/dev/null | sed -n 's/^ *(0): "\(.*\)"$/\1/p'; }

# ---- this tree's binary ------------------------------------------------------------------
want=$(git rev-parse HEAD)
[ -n "$(git status --porcelain | head -n 1)" ] && want=$want-dirty
gen=$(sed -n 's/.*qh_git_commit\[\] = "\(.*\)";/\1/p' build/gen/git_version.c 2>/dev/null)
"$QH" eval --model "$M" $E --out "$T/here.h5" >/dev/null 2>"$T/here.err"
got=$(commit_of "$T/here.h5")
check_same "this build records the commit it was generated for" "$got" "$gen"
# The tree may have changed since the build (a test run on an edited tree):
# only when the generated file is current must it equal git's view.
make -s build/gen/git_version.c >/dev/null 2>&1
now=$(sed -n 's/.*qh_git_commit\[\] = "\(.*\)";/\1/p' build/gen/git_version.c 2>/dev/null)
check "make's generated commit is git's view of the tree ('$now' vs '$want')" [ "$now" = "$want" ]

# ---- a scratch clone ----------------------------------------------------------------------
C=$T/clone
if ! git clone -q --shared "$(pwd -P)" "$C" 2>"$T/clone.err"; then
    fail "git clone --shared failed: $(head -c 300 "$T/clone.err")"
    summary
    exit 1
fi
# Sources older than the copied objects: make compiles only the generated file.
find "$C" -path "$C/.git" -prune -o -type f -exec touch -d @1000000000 {} +
mkdir -p "$C/build"
for d in build/*; do
    case "${d#build/}" in gen | tests | bench | qharness) continue ;; esac
    cp -pR "$d" "$C/build/"
done
git -C "$C" config user.name qharness-test
git -C "$C" config user.email test@qharness.invalid
# The clone holds HEAD: the Makefile under test is this tree's, committed there
# when it differs (uncommitted work on it is tested too).
if ! cmp -s Makefile "$C/Makefile"; then
    cp Makefile "$C/Makefile"
    touch -d @1000000000 "$C/Makefile"
    git -C "$C" commit -qam "this tree's Makefile"
fi

# rebuild LOG: make build/qharness in the clone, log in $T/LOG
rebuild() { (cd "$C" && make build/qharness) >"$T/$1" 2>&1; }
# recorded OUT: eval --out in the clone, prints the recorded commit
MA=$(cd "$(dirname "$M")" && pwd -P)/$(basename "$M")
TA=$(cd "$(dirname "$TOK")" && pwd -P)/$(basename "$TOK")
DA=$(cd "$QH_DATA" && pwd -P)
recorded() {
    (cd "$C" && QH_DATA="$DA" build/qharness eval --model "$MA" --tokenizer "$TA" $E --out "$T/$1") >/dev/null 2>"$T/$1.err"
    commit_of "$T/$1"
}

rebuild make1.log
check "clone: make builds qharness ($(tail -n 3 "$T/make1.log"))" [ -x "$C/build/qharness" ]
check "clone: only the generated file was compiled ($(grep -c ' -c ' "$T/make1.log") compilations)" \
    [ "$(grep -c ' -c ' "$T/make1.log")" = 1 ]
h1=$(git -C "$C" rev-parse HEAD)
got=$(recorded r1.h5)
check "clone: result records HEAD '$h1' (got '$got')" [ "$got" = "$h1" ]

t0=$(stat -c %Y.%y "$C/build/qharness")
rebuild make2.log
check "clone: make with nothing changed does not relink qharness" [ "$(stat -c %Y.%y "$C/build/qharness")" = "$t0" ]

echo "provenance test" >>"$C/README.md"
git -C "$C" commit -qam "provenance test commit"
h2=$(git -C "$C" rev-parse HEAD)
rebuild make3.log
got=$(recorded r2.h5)
check "clone: after a commit and make, result records the new HEAD '$h2' (got '$got')" sh -c "[ '$got' = '$h2' ] && [ '$h2' != '$h1' ]"

echo "uncommitted" >>"$C/README.md"
rebuild make4.log
got=$(recorded r3.h5)
check "clone: an uncommitted change gives '$h2-dirty' (got '$got')" [ "$got" = "$h2-dirty" ]

git -C "$C" checkout -q README.md
rebuild make5.log
got=$(recorded r4.h5)
check "clone: the change undone, clean again (got '$got')" [ "$got" = "$h2" ]

echo "int x;" >"$C/base/new_file.c"
rebuild make6.log
got=$(recorded r5.h5)
check "clone: an untracked source file gives '$h2-dirty' (got '$got')" [ "$got" = "$h2-dirty" ]

summary
