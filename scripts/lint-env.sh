# Sourced by scripts/test.sh and .ci/run: cargo compiles the workspace's own
# crates with clippy-driver, which compiles as rustc does and lints besides,
# with warnings denied, as `cargo clippy -- -D warnings` would; the
# dependencies are compiled by plain rustc as usual. CLIPPY_ARGS is how
# `cargo clippy` hands its `-- -D warnings` to the driver. Every cargo
# command run with these settings reuses what another one built; a command
# run without them compiles the workspace's crates again.
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
