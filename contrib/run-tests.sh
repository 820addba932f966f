#!/usr/bin/env bash
# run-tests.sh — the whole clinimail test suite, as README.md and CI run it:
# install the dependencies (Debian 12, needs root), build with -Werror, run
# `make check` (unit tests, corpus, hostile input, real Postfix integration),
# run it again under AddressSanitizer + UndefinedBehaviorSanitizer, then
# `make distcheck`.  Prints "N passed, N failed" at the end.
#
#   contrib/run-tests.sh            everything
#   SKIP_DEPS=1 contrib/run-tests.sh  do not call apt-get
#   SKIP_SANITIZERS=1 / SKIP_DISTCHECK=1  skip those stages
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

if [ "${SKIP_DEPS:-0}" != 1 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		sh contrib/install-deps.sh
	else
		sudo sh contrib/install-deps.sh
	fi
fi

./autogen.sh >/dev/null

passed=0
failed=0
count() { # count PASS/FAIL lines of a build's test-suite.log
	local log="$1/test-suite.log" p f
	[ -f "$log" ] || return 0
	p=$(sed -n 's/^# PASS: *//p' "$log" | head -n1)
	f=$(sed -n 's/^# FAIL: *//p;s/^# ERROR: *//p' "$log" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
}

stage() { # stage NAME CONFIGURE-ARGS…
	local name="$1" dir="$top/build/$1"
	shift
	echo "=== $name: configure $*"
	rm -rf "$dir"
	mkdir -p "$dir"
	(cd "$dir" && "$top/configure" -q "$@" && make -s -j"$jobs")
	echo "=== $name: make check"
	if ! (cd "$dir" && make -s -j"$jobs" check); then
		count "$dir"
		echo "=== $name: FAILED — see $dir/test-suite.log"
		sed -n '/^FAIL\|^ERROR/p' "$dir/test-suite.log" || true
		for f in "$dir"/tests/*/*.log; do
			grep -q '^not ok\|^ERROR\|^FAIL' "$f" 2>/dev/null && { echo "--- $f"; tail -n 40 "$f"; }
		done
		return 1
	fi
	count "$dir"
}

status=0
stage default --enable-werror || status=1
if [ "${SKIP_SANITIZERS:-0}" != 1 ]; then
	stage sanitizers --enable-werror --enable-sanitizers || status=1
fi
if [ "${SKIP_DISTCHECK:-0}" != 1 ] && [ $status -eq 0 ]; then
	echo "=== distcheck"
	(cd "$top/build/default" && make -s -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror >/dev/null) ||
		{ echo "=== distcheck FAILED"; status=1; }
fi
echo "${passed} passed, ${failed} failed"
exit $status
