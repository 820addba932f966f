#!/bin/sh
# fax-hylafax.sh — the HylaFAX side of the fax bridge, end to end: a private
# HylaFAX (faxq, hfaxd on 127.0.0.1, faxgetty) drives the software Class 1
# modem of tests/fax/faxmodem, and lib/fax_hylafax.c (through
# tests/fax/hfax-tool) submits, polls, finds and deletes jobs.  A 2-page fax
# must arrive pixel for pixel with every page confirmed and the far end's
# station id reported; busy, no answer, silence and a line dropped after
# page 1 must fail with a status that says so; deleting a job must leave no
# document of ours in the spool.  TAP output.  Runs as root; writes only
# under its temp dir (removed on success) and checks that /var/spool/hylafax
# and /etc/hylafax were not touched.
#
# Environment: top_srcdir, top_builddir (make check); HFENV_SPEED (audio
# clock, default 4); KEEP=1 keeps the temp dir.

set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
HFAX_TOOL=$top_builddir/tests/fax/hfax-tool
TIFF_COMPARE=$top_builddir/tests/fax/tiff-compare
FAXMODEM=$top_builddir/tests/fax/faxmodem

. "$top_srcdir/tests/lib/hylafax-env.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root to run a private HylaFAX"
	exit 0
fi
if ! hfenv_have_tools; then
	echo "1..0 # SKIP $HFENV_MISSING not available"
	exit 0
fi
for t in "$HFAX_TOOL" "$TIFF_COMPARE"; do
	if [ ! -x "$t" ]; then
		echo "Bail out! $t not built"
		exit 1
	fi
done

T=$(mktemp -d /tmp/clinimail-hylafax.XXXXXX) || exit 1
hfenv_init "$T" || { echo "Bail out! cannot set up $T"; exit 1; }

n=0
failed=0
ok() { # ok STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}
now() {
	date +%s.%N
}
elapsed() { # elapsed START: seconds since START, one decimal
	echo "$(now) $1" | awk '{printf "%.1f", $1 - $2}'
}
# field LINE NAME: a value of hfax-tool's "name=value name=\"value\"" line
field() {
	printf '%s\n' "$1" | sed -n "s/.*\\<$2=\"\\([^\"]*\\)\".*/\\1/p; t; s/.*\\<$2=\\([^ ]*\\).*/\\1/p"
}
show_failure() {
	diag "faxmodem log:" "$(tail -n 5 "$HFENV_LOG/faxmodem.log" 2>/dev/null)"
	_l=$(find "$HFENV_SPOOL/log" -name 'c*' 2>/dev/null | sort | tail -n 1)
	[ -n "$_l" ] && diag "last session log ($_l):" "$(tail -n 15 "$_l")"
}

# ==== 1. a private HylaFAX ====
t0=$(now)
hfenv_start
rc=$?
ok $rc "HylaFAX starts in a private spool: faxq, hfaxd on 127.0.0.1:$HFENV_PORT, faxgetty on ${HFENV_PTY:-?} ($HFENV_DEVID)"
if [ $rc -ne 0 ]; then
	for f in "$HFENV_LOG"/*.log; do diag "$f:" "$(tail -n 5 "$f")"; done
	echo "Bail out! HylaFAX did not start"
	exit 1
fi
diag "started in $(elapsed "$t0") s"
# hfax-tool as the test user with admin rights; its stderr kept for the end
ht() {
	"$HFAX_TOOL" -p "$HFENV_PORT" -u "$HFENV_USER" -a "$HFENV_ADMIN_PW" "$@" 2>>"$T/hfax-tool.err"
}
ids=

"$HFAX_TOOL" mktiff "$T/two.tif" 2 && "$HFAX_TOOL" mktiff "$T/one.tif" 1
ok $? "hfax-tool mktiff writes 1- and 2-page TIFF Class F documents"
# the check faxq runs (tiff2fax) for a Letter job at 196 lpi: nothing to re-image
chk=$("$HFENV_LIBEXEC/tiffcheck" -r 196 -w 1728 -l 280 -3 "$T/two.tif" 2>&1 | head -n 1)
[ "$chk" = OK ]
ok $? "HylaFAX takes the document as it is (tiffcheck: $chk)"

# ==== 2. a 2-page fax to a normal receiver ====
NUM=8195550102
t0=$(now)
id=$(ht submit "$NUM" "$T/two.tif" --key clinimail-test-2p --maxdials 1 --maxtries 1)
rc=$?
ok $rc "a 2-page fax to $NUM is submitted (job ${id:-none})"
ids="$ids $id"
found=$(ht find clinimail-test-2p)
[ -n "$id" ] && [ "$found" = "$id" ]
ok $? "the job is found again by its key (${found:-nothing})"
ht find no-such-key >/dev/null
[ $? -eq 1 ]
ok $? "an unknown key finds no job"
line=$(ht wait "$id" 120)
diag "$line (in $(elapsed "$t0") s)"
[ "$(field "$line" state)" = DONE ]
ok $? "the job is DONE"
[ "$(field "$line" npages)" = 2 ] && [ "$(field "$line" totpages)" = 2 ]
ok $? "every page was sent: npages == totpages == 2"
[ "$(field "$line" csi)" = "+1 819 555 0000" ]
ok $? "the remote station id (CSI) is reported: $(field "$line" csi)"
res=$(hfenv_result "$NUM" 10)
diag "far end: $res"
echo "$res" | grep -q 'pages=2 result=0 '
ok $? "the far end received 2 pages and ended the call normally"
rx=$(hfenv_received "$NUM" | head -n 1)
cmp_out=$("$TIFF_COMPARE" "$T/two.tif" "$rx" 2>&1)
ok $? "the received fax equals the sent pages ($cmp_out)"
[ $failed -eq 0 ] || show_failure

# ==== 3. failure paths: the test modem's far end, chosen by number ====
# check_failure NUMBER WHAT STATUS_REGEX [NPAGES]
check_failure() {
	_t0=$(now)
	_id=$(ht submit "$1" "$T/two.tif" --maxdials 1 --maxtries 1)
	ids="$ids $_id"
	_line=$(ht wait "$_id" 120)
	diag "$2: $_line (in $(elapsed "$_t0") s)"
	_f0=$failed
	[ "$(field "$_line" state)" = FAILED ]
	ok $? "$2: the job FAILED"
	field "$_line" status | grep -Eq "$3"
	ok $? "$2: the status says so ($(field "$_line" status))"
	[ "$(field "$_line" npages)" = "${4:-0}" ] && [ "$(field "$_line" totpages)" = 2 ]
	ok $? "$2: ${4:-0} of 2 pages sent"
	[ $failed -eq "$_f0" ] || show_failure
}
check_failure 8195550001 "busy" "Busy signal"
check_failure 8195550002 "no answer" "No answer"
check_failure 8195550003 "silence" "No carrier"
check_failure 8195550004 "line dropped after page 1" "error|[Cc]arrier|[Nn]o response|dropped" 1
res=$(hfenv_result 8195550004 5)
echo "$res" | grep -q 'pages=1 '
ok $? "dropped line: the far end got exactly page 1 ($(echo "$res" | sed -n 's/.*\(pages=[0-9]*\).*/\1/p'))"
rx=$(hfenv_received 8195550004 | head -n 1)
tiffcp "$T/two.tif,0" "$T/page1.tif" 2>/dev/null &&
	"$TIFF_COMPARE" "$T/page1.tif" "$rx" >/dev/null 2>&1
ok $? "dropped line: the page received equals page 1 as sent"

# ==== 4. a busy line retried: the job waits between dials ====
t0=$(now)
id=$(ht submit 8195550001 "$T/one.tif" --maxdials 2 --maxtries 2)
ids="$ids $id"
seen=
i=0
while [ $i -lt 200 ]; do
	line=$(ht poll "$id")
	st=$(field "$line" state)
	if [ "$st" = SLEEPING ] && [ "$(field "$line" ndials)" = 1 ]; then
		seen=$line
		break
	fi
	[ "$st" = FAILED ] && break
	sleep 0.1
	i=$((i + 1))
done
diag "between dials: ${seen:-never seen}"
[ -n "$seen" ] && field "$seen" status | grep -q "Busy signal"
ok $? "after a first busy signal the job sleeps with ndials=1 and says why"
line=$(ht wait "$id" 120)
diag "$line (in $(elapsed "$t0") s)"
[ "$(field "$line" state)" = FAILED ] && [ "$(field "$line" ndials)" = 2 ]
ok $? "the job fails after its 2 dials"

# ==== 5. a job deleted while it is still in the queue ====
id=$(ht submit 8195550002 "$T/one.tif" --maxdials 3)
sleep 1
before=$(ht poll "$id")
ht delete "$id"
rc=$?
ok $rc "a queued job is killed and deleted ($(field "$before" state) before)"
[ "$(field "$(ht poll "$id")" state)" = GONE ]
ok $? "the killed job is GONE"

# ==== 6. deleting the finished jobs destroys HylaFAX's copies ====
bad=0
for i in $ids; do
	if ! ht delete "$i"; then
		bad=1
	fi
done
ok $bad "every finished job is deleted (jobs:$ids)"
gone=0
for i in $ids; do
	[ "$(field "$(ht poll "$i")" state)" = GONE ] || gone=1
done
ok $gone "every deleted job is GONE"
left=$(hfenv_docq_files)
[ -z "$left" ]
ok $? "no document remains in the spool's docq/"
[ -n "$left" ] && diag "$left"
left=$(hfenv_tmp_files)
[ -z "$left" ]
ok $? "no document remains in the spool's tmp/"
[ -n "$left" ] && diag "$left"
left=$(find "$HFENV_SPOOL/sendq" "$HFENV_SPOOL/doneq" -type f -name 'q*' 2>/dev/null)
[ -z "$left" ]
ok $? "no queue file remains in sendq/ or doneq/"
[ -n "$left" ] && diag "$left"

# ==== 7. hygiene ====
hfenv_cleanup
left=$(hfenv_leftovers)
[ -z "$left" ]
ok $? "no process left running"
[ -n "$left" ] && diag "$left"
changes=$(hfenv_system_changes)
[ -z "$changes" ]
ok $? "nothing written to /var/spool/hylafax or /etc/hylafax, no mount attempted"
[ -n "$changes" ] && diag "$changes"
! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$HFENV_LOG/faxmodem.log" \
	"$T/hfax-tool.err" 2>/dev/null
ok $? "no sanitizer report from faxmodem or hfax-tool"
grep -E 'Sanitizer|runtime error' "$HFENV_LOG/faxmodem.log" "$T/hfax-tool.err" 2>/dev/null |
	head -n 5 | sed 's/^/# /'

echo "1..$n"
if [ "$failed" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
	rm -rf "$T"
else
	diag "files kept in $T"
fi
exit 0
