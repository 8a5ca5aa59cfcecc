# shellcheck shell=bash
# scripts/lib.sh — helpers shared by scripts/run and scripts/test (sourced, not run).
#
# Sets TANDEM_ROOT to the repository root and loads the package lists of scripts/deps.

TANDEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/deps
. "$TANDEM_ROOT/scripts/deps"

# A visible step header on stderr.
tandem_step() {
	printf '\n== %s\n' "$*" >&2
}

# Configure (first time) or reconfigure (later) the Meson build directory $1 with the extra
# meson options that follow, then build it with ninja. Reconfiguring picks up packages
# installed since the last setup (cmocka enables the unit tests, for instance).
tandem_build() {
	local dir=$1
	shift
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		meson setup --reconfigure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
	ninja -C "$dir"
}

# Build $1 with ninja only, configuring it once when it has never been configured. Options
# that follow are used only for that first configuration.
tandem_build_quick() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@"
	fi
	ninja -C "$dir"
}
