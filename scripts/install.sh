#!/usr/bin/env bash
# Install husai-audit and its plugins so that the installed binary finds them.
#
# husai-audit loads plugins from the directory holding its own executable (core/src/plugin/discovery.rs; without a
# plugins.lock, only plugins there run, core/src/plugin/pin.rs). `cargo install --path audit` alone installs the
# binary without any plugin, so this script builds the binary and the real plugins (release, reusing target/) and
# copies all of them into ROOT/bin. The test plugins (plugins/test-faulty) are never installed.
#
# Usage: scripts/install.sh [--root DIR] [--no-build]
#   --root DIR   install into DIR/bin (default: $CARGO_INSTALL_ROOT, else ~/.cargo, as `cargo install` does)
#   --no-build   install what target/release already holds (fails if something is missing)
# Exit: 0 installed; 2 a usage error, a failed build or a missing file.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${CARGO_INSTALL_ROOT:-$HOME/.cargo}
build=1
usage() { sed -n '9,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; root=$2; shift 2 ;;
        --root=*) root=${1#--root=}; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

# The real plugins: every cdylib crate a user runs (the test plugins are examples of plugins/test-faulty).
plugin_crates=(husai-sae-topk husai-data)
case "$(uname -s)" in Darwin) suffix=dylib ;; *) suffix=so ;; esac

if [ "$build" = 1 ]; then
    packages=(-p husai-audit)
    for c in "${plugin_crates[@]}"; do packages+=(-p "$c"); done
    (cd "$repo" && cargo build --release "${packages[@]}") || { echo "install.sh: the build failed" >&2; exit 2; }
fi

target=${CARGO_TARGET_DIR:-$repo/target}/release
files=("$target/husai-audit")
for c in "${plugin_crates[@]}"; do files+=("$target/lib${c//-/_}.$suffix"); done
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
