#!/usr/bin/env bash
# Install husai-audit and its plugins so that the installed binary finds them.
#
# husai-audit loads plugins from the directory holding its own executable (core/src/plugin/discovery.rs; without a
# plugins.lock, only plugins there run, core/src/plugin/pin.rs). `cargo install --path audit` alone installs the
# binary without any plugin, so this script builds the binary and the real plugins (release, reusing target/) and
# copies all of them into ROOT/bin. The test plugins (plugins/test-faulty) are never installed.
#
# Usage: scripts/install.sh [--root DIR] [--no-build] [--list]
#   --root DIR   install into DIR/bin (default: $CARGO_INSTALL_ROOT, else ~/.cargo, as `cargo install` does)
#   --no-build   install what target/release already holds (fails if something is missing)
#   --list       print the files it would install, one per line, and stop
# Exit: 0 installed (or listed); 2 a usage error, a failed build or a missing file.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${CARGO_INSTALL_ROOT:-$HOME/.cargo}
build=1
list=0
usage() { sed -n '9,13p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; root=$2; shift 2 ;;
        --root=*) root=${1#--root=}; shift ;;
        --no-build) build=0; shift ;;
        --list) list=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

# The real plugins: every plugins/*/ crate whose library is a cdylib. The test plugins are examples of
# plugins/test-faulty (a crate with no cdylib library of its own), so they never match.
plugin_crates=()
for manifest in "$repo"/plugins/*/Cargo.toml; do
    # [lib] comes after [package]; a crate whose only cdylibs are [[example]]s has no [lib] cdylib line before them.
    awk '/^\[\[example\]\]/{exit} /^crate-type = \[[^]]*"cdylib"/{found=1} END{exit !found}' "$manifest" || continue
    plugin_crates+=("$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -1)")
done
[ ${#plugin_crates[@]} -gt 0 ] || { echo "install.sh: no plugin crates found under $repo/plugins" >&2; exit 2; }
case "$(uname -s)" in Darwin) suffix=dylib ;; *) suffix=so ;; esac

target=${CARGO_TARGET_DIR:-$repo/target}/release
files=("$target/husai-audit")
for c in "${plugin_crates[@]}"; do files+=("$target/lib${c//-/_}.$suffix"); done
if [ "$list" = 1 ]; then printf '%s\n' "${files[@]}"; exit 0; fi

if [ "$build" = 1 ]; then
    packages=(-p husai-audit)
    for c in "${plugin_crates[@]}"; do packages+=(-p "$c"); done
    (cd "$repo" && cargo build --release "${packages[@]}") || { echo "install.sh: the build failed" >&2; exit 2; }
fi

for f in "${files[@]}"; do
    [ -f "$f" ] || { echo "install.sh: $f is missing; build it first (run without --no-build)" >&2; exit 2; }
done

bin=$root/bin
mkdir -p "$bin"
for f in "${files[@]}"; do
    # Copy under a temporary name, then rename: a husai-audit that is running keeps its old file intact.
    name=$(basename "$f")
    install -m 0755 "$f" "$bin/.$name.installing"
    mv -f "$bin/.$name.installing" "$bin/$name"
done
echo "installed husai-audit and ${#plugin_crates[@]} plugins into $bin"
case ":$PATH:" in *":$bin:"*) ;; *) echo "note: $bin is not on PATH; add it (export PATH=\"$bin:\$PATH\")" ;; esac
