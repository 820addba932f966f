#!/bin/sh
# fax-postfix.sh — the fax path end to end (issue 4): a clinician's mail to
# NUMBER@fax.hopital.example goes through a private Postfix with
# clinimail-milter (which stamps its approval), Postfix's pipe(8) transport
# hands it to clinimail-fax (as an unprivileged user), the bridge renders it
# and submits it to a private HylaFAX (faxq, hfaxd, faxgetty) whose modem is
# the software Class 1 modem of tests/fax/faxmodem; the far end's received
# pages must equal the pages the bridge rendered.  Then the tracker confirms
# the job, notifies the sender and the archives (through Postfix again),
# destroys every copy (bridge spool, HylaFAX docq/tmp) and records the audit
# events.  The same order delivered twice is faxed once.  The failure paths
# (busy, no answer, silence, a line that drops after page 1) give the right
# notice, including "still retrying" and "1 of 2 pages".
# TAP output.  Runs as root; writes only under its temp dir (KEEP=1 keeps it).

set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
top_builddir=$(cd "$top_builddir" && pwd)
MILTER=${CLINIMAIL_MILTER:-$top_builddir/clinimail-milter}
FAX=$top_builddir/clinimail-fax
CLI=$top_builddir/clinimail
TIFFCMP=$top_builddir/tests/fax/tiff-compare
FAXMODEM=$top_builddir/tests/fax/faxmodem
export FAXMODEM

. "$top_srcdir/tests/lib/postfix-env.sh"
. "$top_srcdir/tests/lib/hylafax-env.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root (private Postfix and HylaFAX instances)"
	exit 0
fi
if ! pfenv_have_tools; then
	echo "1..0 # SKIP $PFENV_MISSING not installed"
	exit 0
fi
if ! hfenv_have_tools; then
	echo "1..0 # SKIP $HFENV_MISSING not installed (contrib/install-deps.sh installs it)"
	exit 0
fi
for t in sqlite3 runuser; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "1..0 # SKIP $t not installed"
		exit 0
	fi
done

T=$(mktemp -d /tmp/clinimail-fax-postfix.XXXXXX) || exit 1
pfenv_init "$T" || { echo "Bail out! cannot set up $T"; exit 1; }
mkdir -p "$T/hf" || exit 1
hfenv_init "$T/hf" || { echo "Bail out! cannot set up $T/hf"; exit 1; }
cleanup_all() {
	_crc=$?
	hfenv_cleanup
	pfenv_cleanup
	return $_crc
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

n=0
failed=0
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
check() {
	_d=$1
	shift
	"$@" >/dev/null 2>&1
	ok $? "$_d"
}
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

# ---- the milter's policy: the shipped one, with the approval key ----
P=$T/policies
cp -R "$top_srcdir/policies" "$P" || exit 1
CONF=$P/clinimail.conf
conf_set() {
	if grep -Eq "^$2([[:space:]]|\$)" "$1"; then
		sed -i -E "s|^$2([[:space:]].*)?\$|$2 $3|" "$1"
	else
		printf '%s %s\n' "$2" "$3" >>"$1"
	fi
}
umask 077
head -c 32 /dev/urandom | base64 >"$P/fax-approval.key"
umask 022
conf_set "$CONF" Syslog no
conf_set "$CONF" Background no
conf_set "$CONF" AuditStore none
conf_set "$CONF" FaxApprovalKey fax-approval.key
# the bridge's notices are submitted with SMTP AUTH as "faxbridge"
echo "faxbridge | telecopie@hopital.example" >>"$P/directories/sender-logins.txt"
PFENV_USERS="$PFENV_USERS faxbridge"

# ---- the bridge: runs as nobody, owns its key, spool, ledger ----
B=$T/bridge
mkdir -p "$B/spool" || exit 1
cp "$P/fax-approval.key" "$B/fax.key"
printf '%s\n' "$HFENV_ADMIN_PW" >"$B/hylafax-admin.pw"
chmod 0600 "$B/fax.key" "$B/hylafax-admin.pw"
cat >"$B/sendmail" <<EOF
#!/bin/sh
# stands in for sendmail(1) for the bridge's user: Postfix takes another
# configuration (-C) from root only, so the notices are submitted over SMTP
# (AUTH faxbridge) to the same private Postfix, through the milter.
from=
while [ \$# -gt 0 ]; do
	case \$1 in
	-f) from=\$2; shift 2 ;;
	--) shift; break ;;
	-*) shift ;;
	*) break ;;
	esac
done
rcpts=\$(echo "\$@" | tr ' ' ',')
exec "$SWAKS" --server 127.0.0.1:$PFENV_SMTPD_PORT --helo bridge.test \\
	--auth PLAIN --auth-user faxbridge --auth-password "$(pfenv_password faxbridge)" \\
	--from "\$from" --to "\$rcpts" --data - --suppress-data --timeout 60 >>"$B/sendmail.log" 2>&1
EOF
chmod 0755 "$B/sendmail"
chown -R nobody "$B"
chmod 0700 "$B/spool"

write_bridge_conf() { # write_bridge_conf MAXDIALS MAXTRIES RETRYNOTICE
	cat >"$B/fax.conf" <<EOF
EstablishmentName Hôpital Exemple
FaxDomain fax.hopital.example
ApprovalKey $B/fax.key
NotifyFrom telecopie@hopital.example
Archives archives@hopital.example
Sendmail $B/sendmail
Backend hylafax:127.0.0.1:$HFENV_PORT
HylafaxUser $HFENV_USER
HylafaxAdminPassword $B/hylafax-admin.pw
TagLine ""
MaxDials $1
MaxTries $2
RetryNoticeAfter $3
SpoolDirectory $B/spool
Ledger $B/ledger.db
Senders $P/directories/fax-senders.txt
Pharmacies $P/directories/pharmacies.txt
ImagingServices $P/directories/imaging.txt
AuditStore sqlite:$B/audit.db
Syslog no
LogFile $B/bridge.log
EOF
	chown nobody "$B/fax.conf"
}

# ---- start HylaFAX with the test modem, Postfix with the fax transport ----
hfenv_start || { echo "Bail out! HylaFAX does not start"; exit 1; }
write_bridge_conf 1 1 1
MPORT=$(pfenv_free_port) || exit 1
pfenv_postfix_setup "inet:127.0.0.1:$MPORT" "transport_maps = inline:{fax.hopital.example=fax:}
fax_destination_recipient_limit = 1" || { echo "Bail out! postfix setup"; exit 1; }
cat >>"$PFENV_CONF/master.cf" <<EOF
fax       unix  -       n       n       -       4       pipe
  user=nobody argv=$FAX deliver -c $B/fax.conf -q \${queue_id} -f \${sender} -- \${recipient}
EOF
pfenv_sink_start || { echo "Bail out! smtp-sink"; exit 1; }
pfenv_postfix_start || { echo "Bail out! postfix start"; exit 1; }
pfenv_milter_start "inet:$MPORT@127.0.0.1" "$MILTER" -f -c "$CONF" -p "inet:$MPORT@127.0.0.1" ||
	{ echo "Bail out! the milter does not start"; exit 1; }

crlf() { perl -0pi -e 's/\r?\n/\r\n/g; s/\r\n\z//' "$1"; }
send() { # send NAME TO FILE
	"$SWAKS" --server "127.0.0.1:$PFENV_SMTPD_PORT" --helo client.test \
		--from dr.tremblay@hopital.example --to "$2" --data "$3" $(pfenv_auth jtremblay) \
		--timeout 60 >"$T/$1.out" 2>&1
	return 0
}
queued_id() { sed -n 's/^<-  *250 .*queued as \([0-9A-Z]*\).*/\1/p' "$T/$1.out" | tail -n 1; }
# the ledger belongs to the bridge's user: read it as that user (a root
# sqlite3 would create the file, or its -shm, owned by root)
ledger() {
	[ -s "$B/ledger.db" ] || return 0
	runuser -u nobody -- sqlite3 "$B/ledger.db" "$1" 2>/dev/null
}
track() { runuser -u nobody -- "$FAX" track -1 -c "$B/fax.conf" >>"$B/track.out" 2>&1; }
# wait_ledger SQL WANT SECONDS: poll until the query prints WANT
wait_ledger() {
	_w=$(( $3 * 2 ))
	while [ "$_w" -gt 0 ]; do
		[ "$(ledger "$1")" = "$2" ] && return 0
		sleep 0.5
		_w=$((_w - 1))
	done
	return 1
}
# track_until SQL WANT SECONDS: run the tracker until the query prints WANT
track_until() {
	_w=$(( $3 / 2 ))
	while [ "$_w" -gt 0 ]; do
		track
		[ "$(ledger "$1")" = "$2" ] && return 0
		sleep 2
		_w=$((_w - 1))
	done
	return 1
}
notice_for() { # notice_for REF TITLE: the sink file of that notice
	for _i in $(seq 1 60); do
		_f=$(grep -l -F "$1" "$PFENV_SINK_DIR"/* 2>/dev/null | xargs -r grep -l -F "$2" | head -n 1)
		[ -n "$_f" ] && { echo "$_f"; return 0; }
		sleep 0.5
	done
	return 1
}

# ==== 1. an order to the pharmacy's fax number ====
cp "$P/samples/02-ordonnance-pharmacie.eml" "$T/order.eml"
crlf "$T/order.eml"
send order 9993335554@fax.hopital.example "$T/order.eml"
qid=$(queued_id order)
ok "$([ -n "$qid" ]; echo $?)" "the order to 9993335554@fax.hopital.example is accepted by Postfix and the milter"
wait_ledger "SELECT state FROM faxes WHERE number = '9993335554'" 1 60
ok $? "the bridge submitted it to HylaFAX (ledger: SUBMITTED)"
ref=$(ledger "SELECT ref FROM faxes WHERE number = '9993335554'")
spool=$(ledger "SELECT spool_path FROM faxes WHERE number = '9993335554'")
res=$(hfenv_result 9993335554 180)
case $res in
*"pages=2"*) ok 0 "the far end received 2 pages (cover + order): $res" ;;
*) ok 1 "the far end received 2 pages (cover + order): ${res:-nothing}" ;;
esac
rx=$(hfenv_received 9993335554 | head -n 1)
if [ -n "$rx" ] && [ -n "$spool" ] && [ -f "$spool" ]; then
	"$TIFFCMP" "$spool" "$rx" >"$T/cmp.out" 2>&1
	ok $? "the received pages equal the pages the bridge rendered ($(cat "$T/cmp.out"))"
	cp "$spool" "$T/sent.tif"
else
	ok 1 "the received pages equal the pages the bridge rendered (rx=$rx spool=$spool)"
fi
track_until "SELECT state FROM faxes WHERE number = '9993335554'" 4 120
ok $? "the tracker confirms the job and destroys the copies (ledger: DESTROYED)"
f=$(notice_for "$ref" "Fax delivered")
ok "$([ -n "$f" ]; echo $?)" "the sender gets the confirmation (Fax delivered)"
if [ -n "$f" ]; then
	check "it goes to the sender and the archives" \
		test "$(pfenv_rcpts "$f" | tr '\n' ' ')" = "archives@hopital.example dr.tremblay@hopital.example "
	pfenv_message "$f" >"$T/notice.txt"
	fr=$(grep -n 'Télécopie transmise' "$T/notice.txt" | head -n 1 | cut -d: -f1)
	en=$(grep -n '^Fax delivered' "$T/notice.txt" | tail -n 1 | cut -d: -f1)
	[ -n "$fr" ] && [ -n "$en" ] && [ "$fr" -lt "$en" ]
	ok $? "it says French first, then English"
	grep -Eq '999.?333.?5554' "$T/notice.txt" && grep -Eq '2 ?/ ?2|2 sur 2|2 of 2' "$T/notice.txt"
	ok $? "it names the number and the pages"
	! grep -Eiq 'COVT|Aspirine' "$T/notice.txt"
	ok $? "it carries no clinical content (no NAM, no drug)"
fi
[ -z "$spool" ] || [ ! -e "$spool" ]
ok $? "the bridge's spool file is gone"
check "no file left in the bridge's spool" test -z "$(ls -A "$B/spool")"
check "no document left in HylaFAX's docq" test -z "$(hfenv_docq_files)"
check "no file left in HylaFAX's tmp" test -z "$(hfenv_tmp_files)"

# ==== 2. the same order delivered twice is faxed once ====
calls_before=$(hfenv_received 9993335554 | wc -l)
send again 9993335554@fax.hopital.example "$T/order.eml"
ok "$([ -n "$(queued_id again)" ]; echo $?)" "the same order sent again is accepted by Postfix"
sleep 5
wait_ledger "SELECT count(*) FROM faxes WHERE number = '9993335554'" 1 10
ok $? "the ledger still holds one fax for it"
grep -q 'duplicate' "$B/bridge.log"
ok $? "the bridge logs the duplicate"
sleep 10
check "the far end received no second call" test "$(hfenv_received 9993335554 | wc -l)" -eq "$calls_before"

# ==== 3. failure paths ====
cat >"$T/note.eml" <<'EOF'
From: "Tremblay, Julie (Dre)" <dr.tremblay@hopital.example>
To: Clinique de cardiologie <8195550004@fax.hopital.example>
Subject: Demande de consultation
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Bonjour,

Je vous adresse M. Roger Pelletier (NAM PELR 5203 1412), 73 ans, pour une
évaluation en cardiologie : dyspnée d'effort progressive et souffle systolique
nouveau. Échocardiographie demandée.

Dre Julie Tremblay, permis 1-23456
Tél. : 819 555-0140
EOF
crlf "$T/note.eml"
fail_case() { # fail_case NUMBER WORDS_FR DESCRIPTION [PARTIAL]
	sed "s/8195550004@/$1@/" "$T/note.eml" >"$T/note-$1.eml"
	send "note-$1" "$1@fax.hopital.example" "$T/note-$1.eml"
	if [ -z "$(queued_id "note-$1")" ]; then
		ok 1 "$3: accepted by Postfix"
		return
	fi
	wait_ledger "SELECT count(*) FROM faxes WHERE number = '$1'" 1 60
	_ref=$(ledger "SELECT ref FROM faxes WHERE number = '$1'")
	track_until "SELECT state FROM faxes WHERE number = '$1'" 4 240
	_st=$?
	_f=$(notice_for "$_ref" "Fax NOT sent")
	[ -n "$_f" ] || _f=$(notice_for "$_ref" "FAILED")
	if [ $_st -eq 0 ] && [ -n "$_f" ] && pfenv_message "$_f" | grep -Eiq "$2"; then
		ok 0 "$3: the sender is told ($(pfenv_message "$_f" | sed -n 's/^ *Raison *: //p' | head -n 1))"
	else
		ok 1 "$3: the sender is told (state $(ledger "SELECT state FROM faxes WHERE number = '$1'"), notice ${_f:-none})"
		[ -n "$_f" ] && pfenv_message "$_f" | grep -i 'raison\|reason' | sed 's/^/# /'
	fi
	if [ -n "${4:-}" ]; then
		pfenv_message "$_f" | grep -q '1 page sur 2'
		ok $? "$3: the notice says 1 page of 2 was sent"
	fi
}
fail_case 8195550001 'occup' "busy line"
fail_case 8195550002 'pas de r.ponse' "no answer"
fail_case 8195550003 'aucun t.l.copieur' "a voice line (silence, no fax tones)"
fail_case 8195550004 'coup|transmission' "line dropped after page 1" partial

# still retrying: two dials on a busy line
write_bridge_conf 2 1 1
sed "s/8195550004@/5145550001@/" "$T/note.eml" >"$T/note-retry.eml"
send retry 5145550001@fax.hopital.example "$T/note-retry.eml"
wait_ledger "SELECT count(*) FROM faxes WHERE number = '5145550001'" 1 60
rref=$(ledger "SELECT ref FROM faxes WHERE number = '5145550001'")
track_until "SELECT retry_notified FROM faxes WHERE number = '5145550001'" 1 120
ok $? "busy line with two dials: the tracker notes the retry"
f=$(notice_for "$rref" "still retrying")
ok "$([ -n "$f" ]; echo $?)" "the sender is told the fax is still retrying"
track_until "SELECT state FROM faxes WHERE number = '5145550001'" 4 300
ok $? "then the final outcome is reached and the copies destroyed"

# ==== 4. the audit trail of the bridge ====
"$CLI" audit list --store "sqlite:$B/audit.db" >"$T/audit.list" 2>&1
for k in fax-submitted fax-delivered fax-destroyed fax-failed; do
	check "audit: a $k event is recorded" grep -q "($k)" "$T/audit.list"
done
check "audit: the events name the decision's reference" grep -q "$ref" "$T/audit.list"
"$CLI" audit verify --store "sqlite:$B/audit.db" >"$T/verify.out" 2>&1
ok $? "audit: the bridge's chain verifies"
! grep -Eiq 'COVT|PELR|Aspirine|dyspn' "$B/bridge.log" "$T/audit.list"
ok $? "no patient identifier nor clinical word in the bridge's log or audit"

# ==== 5. nothing left behind ====
pfenv_milter_stop
hfenv_cleanup
pfenv_cleanup
trap - EXIT
check "no HylaFAX process left" test -z "$(hfenv_leftovers)"
check "no Postfix or milter process left" test -z "$(pfenv_leftovers)"
check "the system's HylaFAX tree is untouched" test -z "$(hfenv_system_changes)"

echo "1..$n"
if [ "$failed" -eq 0 ]; then
	[ -z "${KEEP:-}" ] && rm -rf "$T"
	exit 0
fi
echo "# kept $T for inspection"
exit 1
