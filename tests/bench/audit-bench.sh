#!/bin/sh
# audit-bench.sh — what the audit trail costs clinimail-milter behind a real
# Postfix: the same load as tests/bench/run.sh (smtp-load, text-5k order to a
# pharmacy, accepted with archives@ added: a record per message) with
#   off     AuditStore none (the audit: log line only)
#   sqlite  AuditStore sqlite:… (WAL, synchronous=FULL, one writer thread)
#   pgsql   AuditStore pgsql:… on a local PostgreSQL started here (-P)
# Prints msg/s and latency per set-up and the throughput ratio to "off"
# (target: at most 3 % lower), then audit_submit()'s own cost and the
# writer's rate without an MTA (bench_audit).  Not part of `make check`.
#
# usage: tests/bench/audit-bench.sh [-b BUILDDIR] [-n MESSAGES] [-s SESSIONS] [-r RUNS] [-P] [-k]
#   -b  configured build directory (default: $top_builddir, else .)
#   -n  messages per measurement (default 2000)   -s  SMTP sessions (default 4)
#   -r  runs, figures are medians (default 3)     -P  also PostgreSQL
#   -k  keep the work directory
# Runs as root under one mktemp directory; stops everything it started.
set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=${top_builddir:-.}
count=2000
sessions=4
runs=3
withpg=
keep=
while getopts b:n:s:r:Pkh opt; do
	case $opt in
	b) builddir=$OPTARG ;;
	n) count=$OPTARG ;;
	s) sessions=$OPTARG ;;
	r) runs=$OPTARG ;;
	P) withpg=1 ;;
	k) keep=1 ;;
	*)
		sed -n '/^# usage:/,/^# Runs as root/p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
done
for v in "$count" "$sessions" "$runs"; do
	case $v in '' | *[!0-9]*) echo "audit-bench.sh: numbers only" >&2; exit 2 ;; esac
done
[ "$count" -ge 10 ] && [ "$count" -le 100000 ] && [ "$sessions" -ge 1 ] && [ "$sessions" -le 64 ] &&
	[ "$runs" -ge 1 ] && [ "$runs" -le 9 ] || { echo "audit-bench.sh: -n 10..100000 -s 1..64 -r 1..9" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "audit-bench.sh: must run as root" >&2; exit 2; }
builddir=$(cd "$builddir" && pwd) || exit 2
[ -f "$builddir/Makefile" ] || { echo "audit-bench.sh: $builddir is not a build directory" >&2; exit 2; }

. "$srcdir/tests/lib/postfix-env.sh"
pfenv_have_tools || { echo "audit-bench.sh: $PFENV_MISSING is missing" >&2; exit 2; }
say() { printf '%s\n' "$*" >&2; }

make -C "$builddir" -s clinimail-milter clinimail tests/bench/smtp-load tests/bench/bench_audit >&2 ||
	exit 1
MILTER=$builddir/clinimail-milter
CLI=$builddir/clinimail
LOAD=$builddir/tests/bench/smtp-load

W=$(mktemp -d /tmp/clinimail-audit-bench.XXXXXX) || exit 1
pfenv_init "$W" || exit 1
B=$W/bench
mkdir -p "$B/policy" "$B/res" "$W/audit" && chown postfix "$W/audit"
PGBIN=
PG_STARTED=
pg_down() {
	[ -n "$PG_STARTED" ] || return 0
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -m fast -w stop >/dev/null 2>&1
	PG_STARTED=
}
bench_cleanup() {
	rc=$?
	pfenv_cleanup
	pg_down
	if [ -n "$keep" ]; then say "work directory kept: $W"; else rm -rf "$W"; fi
	exit "$rc"
}
trap bench_cleanup EXIT

for f in "$srcdir"/policies/*; do
	case ${f##*/} in clinimail.conf | samples) ;; *) ln -s "$f" "$B/policy/${f##*/}" ;; esac
done
BASECONF=$B/policy/base.conf
sed -e 's/^Syslog .*/Syslog no/' -e 's/^Background .*/Background no/' \
	"$srcdir/policies/clinimail.conf" | grep -v '^Audit' >"$BASECONF"

SETUPS="off sqlite"
if [ -n "$withpg" ]; then
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$PGBIN" ]; then
		say "audit-bench.sh: PostgreSQL not installed: pgsql skipped"
	else
		mkdir -p "$W/pg" && chown postgres "$W/pg"
		PGPORT=$(pfenv_free_port)
		runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg/data" -A trust -U postgres -E UTF8 \
			--locale=C >/dev/null 2>&1 &&
			runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w \
				-o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $W/pg" start >/dev/null 2>&1 &&
			PG_STARTED=1 &&
			runuser -u postgres -- "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" audit &&
			SETUPS="$SETUPS pgsql"
	fi
fi

store_of() {
	case $1 in
	off) echo none ;;
	sqlite) echo "sqlite:$W/audit/audit.db" ;;
	pgsql) echo "pgsql:host=127.0.0.1 port=$PGPORT dbname=audit user=postgres" ;;
	esac
}

FROM=dr.tremblay@hopital.example
RCPT=commandes@auxbonsoins.example
LOGIN=jtremblay
MSG=$here/messages/order-text-5k.eml

pfenv_sink_start || exit 1
pfenv_postfix_setup "unix:$W/clinimail.sock" || exit 1
pfenv_postfix_start || exit 1

wait_queue_empty() {
	_n=1200
	while [ -n "$(find "$PFENV_QUEUE/incoming" "$PFENV_QUEUE/active" "$PFENV_QUEUE/deferred" \
		"$PFENV_QUEUE/maildrop" -type f 2>/dev/null | head -n 1)" ] && [ "$_n" -gt 0 ]; do
		sleep 0.1
		_n=$((_n - 1))
	done
}

r=1
while [ "$r" -le "$runs" ]; do
	for s in $SETUPS; do
		say "run $r/$runs: audit $s ..."
		{ cat "$BASECONF"; echo "AuditStore $(store_of "$s")"; } >"$B/policy/$s.conf"
		pfenv_milter_start "unix:$W/clinimail.sock" "$MILTER" -f -c "$B/policy/$s.conf" \
			-u postfix -p "unix:$W/clinimail.sock" || exit 1
		"$LOAD" -p "$PFENV_SMTPD_PORT" -s "$sessions" -n 20 -f "$FROM" -t "$RCPT" \
			-a "$LOGIN:$(pfenv_password $LOGIN)" "$MSG" >/dev/null || exit 1
		"$LOAD" -p "$PFENV_SMTPD_PORT" -s "$sessions" -n "$count" -f "$FROM" -t "$RCPT" \
			-a "$LOGIN:$(pfenv_password $LOGIN)" "$MSG" >"$B/res/$s.$r" || {
			say "audit-bench.sh: not every message was accepted: $(cat "$B/res/$s.$r")"
			exit 1
		}
		wait_queue_empty
		pfenv_milter_stop 15
		if [ "$s" != off ]; then
			got=$("$CLI" audit export --json --store "$(store_of "$s")" 2>/dev/null |
				jq '[.[] | select(.kind == "decision")] | length')
			want=$(( (count + 20) * r ))
			[ "$got" = "$want" ] || { say "audit-bench.sh: $s store holds $got records, expected $want"; exit 1; }
			echo "records=$got" >>"$B/res/$s.$r"
		fi
		pfenv_sink_clear
	done
	r=$((r + 1))
done

field() { # field SETUP KEY: median over the runs
	_i=1
	while [ "$_i" -le "$runs" ]; do
		sed -n "1s/.*[[:space:]]$2=\([0-9.]*\).*/\1/p" "$B/res/$1.$_i"
		_i=$((_i + 1))
	done | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
echo
echo "audit trail cost: $count text-5k messages per figure, $sessions sessions, median of $runs run(s)"
printf '  %-10s %8s %8s %8s %10s\n' audit msg/s "p50 ms" "p99 ms" "vs off"
off=$(field off msg_per_s)
for s in $SETUPS; do
	m=$(field "$s" msg_per_s)
	printf '  %-10s %8.1f %8.2f %8.2f %10s\n' "$s" "$m" "$(field "$s" p50_ms)" "$(field "$s" p99_ms)" \
		"$(awk -v m="$m" -v o="$off" 'BEGIN {d = 0; if (o > 0) d = (m - o) * 100 / o; printf "%+.1f %%", d}')"
done
echo "  (target: audit on at most 3 % below off; every record checked in the store)"

# The audit trail alone (tests/bench/bench_audit.c): the cost of audit_submit()
# in the milter's thread, and the writer's sustained rate.
echo
echo "audit_submit() alone, 20000 records (microseconds per call; writer records/s)"
for s in $SETUPS; do
	st=$(store_of "$s")
	[ "$s" = sqlite ] && st="sqlite:$W/audit/bench.db"
	printf '  %-10s %s\n' "$s" "$("$builddir/tests/bench/bench_audit" "$st" 20000 2>/dev/null)"
done
