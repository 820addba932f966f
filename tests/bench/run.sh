#!/bin/sh
# run.sh — the clinimail benchmark (tests/bench/README.md).  Not part of
# `make check`: it prints figures, it does not pass or fail on them.
#
# A private Postfix on loopback (tests/lib/postfix-env.sh) receives N
# messages from smtp-load (S concurrent sessions, SMTP AUTH as jtremblay,
# one connection per message) and relays them to an smtp-sink, in four
# set-ups:
#   (a) Postfix alone, no milter
#   (b) Postfix + passthrough-milter (accepts everything) on a unix socket
#   (c) Postfix + clinimail-milter with policies/clinimail.conf, unix socket
#   (d) the same clinimail-milter on an inet socket (127.0.0.1)
# for each message type: a 5 KB French medication order in the body, the
# same order as a ~100 KB mail with a one-page PDF (the same PDF every time:
# clinimail's PDF cache serves it after the first), and the PDF mail with
# a different PDF in every message (K distinct PDFs, more than the cache
# holds: every one is extracted).  Then the engine alone (bench_engine) and
# `clinimail check`.
#
# usage: tests/bench/run.sh [-b BUILDDIR] [-n MESSAGES] [-s SESSIONS] [-r RUNS]
#                          [-d DISTINCT_PDFS] [-S SETUPS] [-E] [-N] [-k]
#   -b  build directory (default: $top_builddir, else the current directory);
#       the bench programs are built there with make (EXTRA_PROGRAMS)
#   -n  messages per measurement (default 2000)
#   -s  concurrent SMTP sessions (default 4)
#   -r  runs; each figure is the median over the runs (default 1)
#   -d  distinct PDFs for the "pdf-distinct" messages, 0 to skip (default 400)
#   -S  the set-ups to measure, e.g. "a c" (default "a b c d")
#   -E  skip the engine-only figures (bench_engine, clinimail check)
#   -N  run clinimail-milter without its audit store (AuditStore none)
#   -k  keep the work directory (logs, sink) instead of deleting it
# Everything runs as root under one mktemp directory; every process started
# is stopped at exit, whatever happens.
set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=${top_builddir:-.}
count=2000
sessions=4
runs=1
distinct=400
keep=
SETUPS="a b c d"
engine=1
noaudit=

while getopts b:n:s:r:d:S:ENkh opt; do
	case $opt in
	b) builddir=$OPTARG ;;
	n) count=$OPTARG ;;
	s) sessions=$OPTARG ;;
	r) runs=$OPTARG ;;
	d) distinct=$OPTARG ;;
	S) SETUPS=$OPTARG ;;
	E) engine= ;;
	N) noaudit=1 ;;
	k) keep=1 ;;
	*)
		sed -n '/^# usage:/,/^# Everything/p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
done
for v in "$count" "$sessions" "$runs" "$distinct"; do
	case $v in
	'' | *[!0-9]*)
		echo "run.sh: numbers only for -n -s -r -d" >&2
		exit 2
		;;
	esac
done
if [ "$count" -lt 10 ] || [ "$count" -gt 100000 ] || [ "$sessions" -lt 1 ] ||
	[ "$sessions" -gt 64 ] || [ "$runs" -lt 1 ] || [ "$runs" -gt 9 ] || [ "$distinct" -gt 2000 ]; then
	echo "run.sh: -n 10..100000, -s 1..64, -r 1..9, -d 0..2000" >&2
	exit 2
fi
for v in $SETUPS; do
	case $v in
	a | b | c | d) ;;
	*)
		echo "run.sh: -S takes set-ups among a b c d" >&2
		exit 2
		;;
	esac
done
if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: must run as root (private Postfix instance)" >&2
	exit 2
fi
builddir=$(cd "$builddir" && pwd) || exit 2
if [ ! -f "$builddir/Makefile" ]; then
	echo "run.sh: $builddir is not a configured build directory (use -b)" >&2
	exit 2
fi

. "$srcdir/tests/lib/postfix-env.sh"
if ! pfenv_have_tools; then
	echo "run.sh: $PFENV_MISSING is missing (sh contrib/install-deps.sh)" >&2
	exit 2
fi

say() {
	printf '%s\n' "$*" >&2
}

progs="tests/bench/smtp-load tests/bench/gen-order-pdf"
case " $SETUPS " in *" b "*) progs="$progs tests/bench/passthrough-milter" ;; esac
case " $SETUPS " in *" c "* | *" d "*) progs="$progs clinimail-milter clinimail" ;; esac
[ -n "$engine" ] && progs="$progs clinimail tests/bench/bench_engine tests/bench/bench_secure"
echo "building the benchmark programs in $builddir ..." >&2
# shellcheck disable=SC2086
make -C "$builddir" -s $progs >&2 || {
	say "run.sh: build failed"
	exit 1
}
MILTER=$builddir/clinimail-milter
PASS=$builddir/tests/bench/passthrough-milter
LOAD=$builddir/tests/bench/smtp-load
ENGINE=$builddir/tests/bench/bench_engine
SECURE=$builddir/tests/bench/bench_secure
GENPDF=$builddir/tests/bench/gen-order-pdf
CHECK=$builddir/clinimail

W=$(mktemp -d /tmp/clinimail-bench.XXXXXX) || exit 1
pfenv_init "$W" || exit 1
B=$W/bench
mkdir -p "$B/policy" "$B/msg" "$B/res"

bench_cleanup() {
	rc=$?
	pfenv_cleanup
	if [ -n "$keep" ]; then
		say "work directory kept: $W"
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap bench_cleanup EXIT

# The shipped policy, unchanged except that the milter logs to standard error
# (there is no syslog daemon here) and stays in the foreground; its
# directories are reached through symbolic links so that relative paths keep
# their meaning.
for f in "$srcdir"/policies/*; do
	case ${f##*/} in
	clinimail.conf | samples) ;;
	*) ln -s "$f" "$B/policy/${f##*/}" ;;
	esac
done
sed -e 's/^Syslog .*/Syslog no/' -e 's/^Background .*/Background no/' \
	"$srcdir/policies/clinimail.conf" >"$B/policy/clinimail.conf"
CONF=$B/policy/clinimail.conf
# The audit trail as deployed (the shipped default is an SQLite file), but in
# the work directory; -N measures without it.
if grep -q '^#* *AuditStore[[:space:]]' "$CONF"; then
	mkdir -p "$B/audit" && chown postfix "$B/audit" || exit 1
	if [ -n "$noaudit" ]; then
		audit_spec=none
	else
		audit_spec=sqlite:$B/audit/audit.db
	fi
	sed -i '/^AuditStore[[:space:]]/d' "$CONF"
	echo "AuditStore $audit_spec" >>"$CONF"
fi
case " $SETUPS " in
*" c "* | *" d "*)
	"$MILTER" -n -c "$CONF" || {
		say "run.sh: the shipped policy does not load"
		exit 1
	}
	;;
esac

FROM=dr.tremblay@hopital.example
RCPT=commandes@auxbonsoins.example
LOGIN=jtremblay
ARCHIVES=archives@hopital.example

# ---- messages ----
cp "$here/messages/order-text-5k.eml" "$B/msg/text-5k.eml"
cp "$here/messages/order-pdf-100k.eml" "$B/msg/pdf-100k.eml"
MSG_TYPES="text-5k pdf-100k"
if [ "$distinct" -gt 0 ]; then
	say "generating $distinct distinct PDF orders ..."
	tmpl=$here/messages/order-pdf-100k.eml
	mkdir -p "$B/msg/distinct"
	i=1
	while [ "$i" -le "$distinct" ]; do
		"$GENPDF" "$B/msg/order.pdf" "$i" || exit 1
		{
			sed '/^Content-Transfer-Encoding: base64$/q' "$tmpl"
			echo
			base64 -w 76 "$B/msg/order.pdf"
			echo
			tail -n 1 "$tmpl"
		} >"$B/msg/distinct/$i.eml"
		i=$((i + 1))
	done
	MSG_TYPES="$MSG_TYPES pdf-distinct"
fi

msg_files() {
	case $1 in
	pdf-distinct) ls "$B"/msg/distinct/*.eml ;;
	*) echo "$B/msg/$1.eml" ;;
	esac
}

# ---- one set-up ----
# The milter's verdict lines ("QUEUEID: ref=CM-… action=…"), not its audit lines.
milter_log_lines() {
	grep -c -E '^clinimail-milter: [0-9A-Za-z]+: ref=[^ ]+ action=' "$PFENV_LOG/milter.log" \
		2>/dev/null || true
}

# start_setup a|b|c|d: configure and start Postfix and the set-up's milter.
start_setup() {
	case $1 in
	a) pfenv_postfix_setup "" ;;
	b)
		pfenv_postfix_setup "unix:$W/pass.sock"
		pfenv_milter_start "unix:$W/pass.sock" \
			sh -c "umask 0; exec '$PASS' -p 'unix:$W/pass.sock'" || return 1
		;;
	c)
		pfenv_postfix_setup "unix:$W/clinimail.sock"
		pfenv_milter_start "unix:$W/clinimail.sock" \
			"$MILTER" -f -c "$CONF" -u postfix -p "unix:$W/clinimail.sock" || return 1
		;;
	d)
		mport=$(pfenv_free_port) || return 1
		pfenv_postfix_setup "inet:127.0.0.1:$mport"
		pfenv_milter_start "inet:$mport@127.0.0.1" \
			"$MILTER" -f -c "$CONF" -u postfix -p "inet:$mport@127.0.0.1" || return 1
		pfenv_listen_nodelay "$mport" >"$B/res/nodelay"
		;;
	esac
	pfenv_postfix_start
}

stop_setup() {
	pfenv_postfix_stop
	pfenv_milter_stop 15
}

# wait_queue_empty: until Postfix has delivered everything (or 120 s).
wait_queue_empty() {
	_n=1200
	while [ "$_n" -gt 0 ]; do
		if [ -z "$(find "$PFENV_QUEUE/incoming" "$PFENV_QUEUE/active" "$PFENV_QUEUE/deferred" \
			"$PFENV_QUEUE/maildrop" -type f 2>/dev/null | head -n 1)" ]; then
			return 0
		fi
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# measure SETUP TYPE RUN: warm up, then the timed run; writes res/SETUP.TYPE.RUN
measure() {
	_s=$1 _t=$2 _r=$3
	_files=$(msg_files "$_t")
	_warm=20
	pfenv_sink_clear
	_before=$(milter_log_lines)
	# warm-up (not timed): process start, caches, connections
	# shellcheck disable=SC2086
	"$LOAD" -p "$PFENV_SMTPD_PORT" -s "$sessions" -n "$_warm" -f "$FROM" -t "$RCPT" \
		-a "$LOGIN:$(pfenv_password $LOGIN)" $_files >/dev/null || {
		say "run.sh: ($_s) $_t: warm-up failed"
		return 1
	}
	# shellcheck disable=SC2086
	_out=$("$LOAD" -p "$PFENV_SMTPD_PORT" -s "$sessions" -n "$count" -f "$FROM" -t "$RCPT" \
		-a "$LOGIN:$(pfenv_password $LOGIN)" -L "$B/res/lat.$_s.$_t.$_r" $_files)
	_rc=$?
	printf '%s\n' "$_out" >"$B/res/$_s.$_t.$_r"
	if [ $_rc -ne 0 ]; then
		say "run.sh: ($_s) $_t: not every message was accepted: $_out"
		return 1
	fi
	_total=$((count + _warm))
	wait_queue_empty || say "run.sh: ($_s) $_t: the queue did not drain"
	if ! pfenv_wait_delivered "$_total" 60; then
		say "run.sh: ($_s) $_t: the sink got $(pfenv_sink_count) of $_total messages"
		return 1
	fi
	# Proof that the mail went through the milter.
	case $_s in
	c | d)
		_after=$(milter_log_lines)
		_verdicts=$((_after - _before))
		_arch=$(grep -l "^X-Rcpt-Args: <$ARCHIVES>" "$PFENV_SINK_DIR"/* 2>/dev/null | wc -l)
		_hdr=$(grep -l '^X-Clinimail-Verdict:' "$PFENV_SINK_DIR"/* 2>/dev/null | wc -l)
		if [ "$_verdicts" -ne "$_total" ] || [ "$_arch" -ne "$_total" ] ||
			[ "$_hdr" -ne "$_total" ]; then
			say "run.sh: ($_s) $_t: $_total messages but $_verdicts verdict log lines," \
				"$_arch with $ARCHIVES added, $_hdr with X-Clinimail-Verdict"
			return 1
		fi
		echo "verified: $_verdicts verdicts, $_arch archives copies, $_hdr verdict headers" \
			>>"$B/res/$_s.$_t.$_r"
		;;
	esac
	return 0
}

setup_name() {
	case $1 in
	a) echo "(a) Postfix alone" ;;
	b) echo "(b) + pass-through milter, unix" ;;
	c) echo "(c) + clinimail-milter, unix" ;;
	d) echo "(d) + clinimail-milter, inet" ;;
	esac
}

pfenv_sink_start || exit 1
load_start=$(cut -d ' ' -f 1-3 /proc/loadavg)
failed=
r=1
while [ "$r" -le "$runs" ]; do
	for s in $SETUPS; do
		say "run $r/$runs: $(setup_name "$s") ..."
		if ! start_setup "$s"; then
			say "run.sh: cannot start set-up ($s)"
			exit 1
		fi
		for t in $MSG_TYPES; do
			measure "$s" "$t" "$r" || failed=1
		done
		stop_setup
		if [ -n "$failed" ]; then
			say "run.sh: stopping after a failed measurement (logs in $W, kept)"
			keep=1
			exit 1
		fi
	done
	r=$((r + 1))
done

# ---- figures ----
# field SETUP TYPE KEY: the median over the runs of KEY in smtp-load's output.
field() {
	_i=1
	while [ "$_i" -le "$runs" ]; do
		sed -n "1s/.*[[:space:]]$3=\([0-9.]*\).*/\1/p" "$B/res/$1.$2.$_i"
		_i=$((_i + 1))
	done | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

cpus=$(nproc 2>/dev/null || echo '?')
pfver=$(postconf -dh mail_version 2>/dev/null || echo '?')
echo
echo "clinimail benchmark: $count messages per figure, $sessions SMTP sessions, median of $runs run(s)"
echo "Postfix $pfver, $cpus CPU(s), loopback; latency = end of DATA to the 250 reply"
echo "load average before: $load_start, after: $(cut -d ' ' -f 1-3 /proc/loadavg)" \
	"(anything else running skews every figure)"
for t in $MSG_TYPES; do
	case $t in
	text-5k) desc="5 KB French medication order in the body" target=0.95 ;;
	pdf-100k) desc="~100 KB mail, one-page PDF order (same PDF: PDF cache hit)" target=0.80 ;;
	pdf-distinct) desc="~100 KB mail, a different PDF each time ($distinct PDFs: cache miss)" target=0.80 ;;
	esac
	echo
	echo "$t: $desc"
	printf '  %-34s %8s %8s %8s %9s %9s\n' "set-up" "msg/s" "p50 ms" "p99 ms" "+p50 ms" "+p99 ms"
	a50='' a99='' rate_b='' rate_c='' rate_d=''
	case " $SETUPS " in *" a "*)
		a50=$(field a "$t" p50_ms)
		a99=$(field a "$t" p99_ms)
		;;
	esac
	for s in $SETUPS; do
		m=$(field "$s" "$t" msg_per_s)
		p50=$(field "$s" "$t" p50_ms)
		p99=$(field "$s" "$t" p99_ms)
		eval "rate_$s=\$m"
		if [ "$s" = a ] || [ -z "$a50" ]; then
			printf '  %-34s %8.1f %8.2f %8.2f %9s %9s\n' "$(setup_name "$s")" "$m" "$p50" "$p99" - -
		else
			printf '  %-34s %8.1f %8.2f %8.2f %+9.2f %+9.2f\n' "$(setup_name "$s")" "$m" "$p50" \
				"$p99" "$(echo "$p50 $a50" | awk '{print $1 - $2}')" \
				"$(echo "$p99 $a99" | awk '{print $1 - $2}')"
		fi
	done
	if [ -n "$rate_b" ] && [ -n "$rate_c" ]; then
		awk -v b="$rate_b" -v c="$rate_c" -v t="$target" 'BEGIN {
			cb = b > 0 ? c / b : 0
			printf "  c/b = %.3f (target >= %.2f: %s)\n", cb, t, (cb >= t) ? "met" : "NOT met" }'
	fi
	if [ -n "$rate_c" ] && [ -n "$rate_d" ]; then
		awk -v c="$rate_c" -v d="$rate_d" 'BEGIN {
			du = c > 0 ? d / c : 0
			printf "  inet/unix d/c = %.3f (target 0.95..1.05: %s)\n", du,
				(du >= 0.95 && du <= 1.05) ? "met" : "NOT met" }'
	fi
done
for t in $MSG_TYPES; do
	for s in c d; do
		[ -f "$B/res/$s.$t.1" ] || continue
		v=$(sed -n 's/^verified: //p' "$B/res/$s.$t.1")
		echo "  checked ($s, $t, run 1): $v"
	done
done

if [ -n "${audit_spec:-}" ]; then
	if [ "$audit_spec" = none ]; then
		echo "  audit store: none (-N)"
	else
		echo "  audit store: $audit_spec, $("$CHECK" audit list -c "$CONF" 2>/dev/null | wc -l) records" \
			"(clinimail audit list)"
	fi
fi
if [ -f "$B/res/nodelay" ]; then
	echo "  TCP_NODELAY on clinimail-milter's inet listening socket (d): $(cat "$B/res/nodelay")" \
		"(1 = set; empty = could not read it)"
fi

# ---- the engine alone ----
[ -n "$engine" ] || exit 0
echo
echo "policy engine alone (bench_engine, 1 thread, 1000 calls each; microseconds per message)"
# the PDF of pdf-100k, for poppler's own time
sed -n '/^Content-Transfer-Encoding: base64$/,/^--/p' "$B/msg/pdf-100k.eml" | sed '1d;$d' |
	base64 -d >"$B/msg/order.pdf" 2>/dev/null
"$ENGINE" -c "$CONF" -n 1000 -P "$B/msg/order.pdf" "$B/msg/text-5k.eml" "$B/msg/pdf-100k.eml" \
	2>"$B/res/engine.err" ||
	say "run.sh: bench_engine: $(cat "$B/res/engine.err")"
sed 's/^/  verdict: /' "$B/res/engine.err"

echo
echo "clinimail check on the ~100 KB PDF mail (whole process: load the policy, one message)"
for i in 1 2; do
	t0=$(date +%s%N)
	"$CHECK" check -c "$CONF" --from "$FROM" --auth "$LOGIN" --rcpt "$RCPT" \
		"$B/msg/pdf-100k.eml" >"$B/res/check.$i" 2>&1
	rc=$?
	t1=$(date +%s%N)
	printf '  run %d: %6.1f ms, exit %d (%s)\n' "$i" "$(echo "$t0 $t1" | awk '{print ($2 - $1) / 1e6}')" \
		"$rc" "$(sed -n 's/^action: //p' "$B/res/check.$i")"
done

echo
echo "encryption for a patient (issue 3): render + AES-256 R6 per message, ~1 and ~10 pages"
"$SECURE" -c "$CONF" -n 20 2>&1 | sed 's/^/  /'
exit 0
