#!/bin/sh
# audit-pgsql.sh — the audit trail on PostgreSQL: a real server started by
# the test (initdb in its temp dir, pg_ctl on a free loopback port, run as
# the postgres user through runuser since the server refuses root), then
# the store unit tests (tests/unit/test_audit with CLINIMAIL_TEST_PGSQL) and
# the same end-to-end suite as audit.sh behind a real Postfix
# (tests/integration/audit-suite.sh), with the server stopped for the outage
# tests.  Skipped, with the reason, only when the PostgreSQL server is not
# installed.  TAP output.  Runs as root; writes only under its temp dir,
# removed on success (KEEP=1 keeps it).

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
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ] || ! id postgres >/dev/null 2>&1; then
	echo "1..0 # SKIP PostgreSQL server not installed (apt-get install postgresql; contrib/install-deps.sh does)"
	exit 0
fi
for t in jq runuser; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "1..0 # SKIP $t not installed"
		exit 0
	fi
done

T=$(mktemp -d /tmp/clinimail-audit-pg.XXXXXX) || exit 1
pfenv_init "$T" || { echo "Bail out! cannot set up $T"; exit 1; }
. "$top_srcdir/tests/integration/audit-suite.sh"

PG=$T/pg
PGDATA=$PG/data
PGPORT=$(pfenv_free_port)
PG_STARTED=
mkdir -p "$PG" && chown postgres "$PG"
pg() { # pg COMMAND ARGS...: a PostgreSQL program as the postgres user
	_c=$1
	shift
	runuser -u postgres -- "$PGBIN/$_c" "$@"
}
pg_up() {
	pg pg_ctl -D "$PGDATA" -l "$PG/server.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PG -c fsync=off" start \
		>>"$PG/pg_ctl.out" 2>&1 && PG_STARTED=1
}
pg_down() {
	[ -n "$PG_STARTED" ] || return 0
	pg pg_ctl -D "$PGDATA" -m fast -w -t 30 stop >>"$PG/pg_ctl.out" 2>&1
	PG_STARTED=
}
store_stop_all() { pg_down; }
trap 'pfenv_cleanup; pg_down' EXIT

if ! pg initdb -D "$PGDATA" -A trust -U postgres -E UTF8 --locale=C --no-sync \
	>"$PG/initdb.out" 2>&1; then
	echo "Bail out! initdb failed: $(tail -n 3 "$PG/initdb.out" | tr '\n' ' ')"
	exit 1
fi
if ! pg_up || ! pg createdb -h 127.0.0.1 -p "$PGPORT" clinimail_audit >>"$PG/pg_ctl.out" 2>&1; then
	echo "Bail out! PostgreSQL did not start: $(tail -n 3 "$PG/server.log" | tr '\n' ' ')"
	exit 1
fi
CONNINFO="host=127.0.0.1 port=$PGPORT dbname=clinimail_audit user=postgres"
STORE="pgsql:$CONNINFO"
STORE_KIND=pgsql
store_sql() { pg psql -X -q -h 127.0.0.1 -p "$PGPORT" -d clinimail_audit -c "$1"; }
store_down() { pg_down; }
store_up() { pg_up; }
store_dump() { pg pg_dump -h 127.0.0.1 -p "$PGPORT" --data-only clinimail_audit; }

# ---- the store's unit tests against this server ----
UNIT=$top_builddir/tests/unit/test_audit
if [ -x "$UNIT" ]; then
	CLINIMAIL_TEST_PGSQL="$CONNINFO" "$UNIT" >"$T/unit.tap" 2>"$T/unit.err"
	rc=$?
	bad=$(grep -c '^not ok' "$T/unit.tap")
	total=$(grep -c '^ok\|^not ok' "$T/unit.tap")
	[ $rc -eq 0 ] && [ "$bad" -eq 0 ] && [ "$total" -gt 50 ]
	ok $? "test_audit against PostgreSQL: $total tests, $bad failed"
	grep '^not ok' "$T/unit.tap" | sed 's/^/#   /'
	# The suite below starts from an empty database.
	store_sql "DROP TABLE IF EXISTS audit_record, audit_meta" >/dev/null
else
	skip "tests/unit/test_audit not built"
fi

audit_suite || echo "Bail out! the audit suite could not run"
if audit_suite_end; then
	trap - EXIT
	[ -z "${KEEP:-}" ] && rm -rf "$T"
	exit 0
fi
echo "# kept $T for inspection"
exit 1
