#!/bin/sh
# audit.sh — the audit trail with its default store, SQLite, behind a real
# Postfix and clinimail-milter (tests/integration/audit-suite.sh): one record
# per decision, verify, an SQL UPDATE found at its row, no patient identifier
# in the store, log or exports, the HTML report rendered by headless
# Chromium, a read-only database file tempfails mail and loses nothing,
# spooling and catch-up, purge.  TAP output.  Runs as root (Postfix
# instance); writes only under its temp dir, removed on success (KEEP=1
# keeps it).

set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}

. "$top_srcdir/tests/lib/postfix-env.sh"

if ! pfenv_have_tools; then
	echo "1..0 # SKIP $PFENV_MISSING not installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root to run a private Postfix instance"
	exit 0
fi
for t in jq sqlite3; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "1..0 # SKIP $t not installed (contrib/install-deps.sh installs it)"
		exit 0
	fi
done

T=$(mktemp -d /tmp/clinimail-audit.XXXXXX) || exit 1
pfenv_init "$T" || { echo "Bail out! cannot set up $T"; exit 1; }
. "$top_srcdir/tests/integration/audit-suite.sh"

# The milter runs as postfix: the store's folder is its.
mkdir -p "$T/audit" && chown postfix "$T/audit"
DB=$T/audit/audit.db
STORE=sqlite:$DB
STORE_KIND=sqlite
store_sql() { sqlite3 "$DB" "$1"; }
# Read-only for the milter (user postfix); it reopens the file after idling.
store_down() { chmod 0444 "$DB"; }
store_up() { chmod 0640 "$DB"; }
store_dump() { sqlite3 "$DB" .dump; cat "$DB" "$DB-wal" 2>/dev/null | strings; }

audit_suite || echo "Bail out! the audit suite could not run"
if audit_suite_end; then
	[ -z "${KEEP:-}" ] && rm -rf "$T"
	exit 0
fi
echo "# kept $T for inspection"
exit 1
