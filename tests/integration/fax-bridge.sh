#!/bin/sh
# fax-bridge.sh — clinimail-fax as the MTA runs it (deliver on stdin, exit
# status per sysexits, one output line), with the spool backend and a
# capture script standing in for sendmail: approval stamps (valid, absent,
# for another number, body altered, wrong key, several), numbers from the
# envelope only (X-FAX-* ignored), bad numbers, empty messages, exactly
# once (re-delivery, a dead delivery's claim adopted or taken over, a live
# claim), the tracker's notice (French then English, no Subject, Cc
# archives) and destruction, a notice that cannot be sent is kept, an
# unreachable HylaFAX (75, nothing left behind), the audit events read by
# "clinimail audit".  TAP output.  No root needed; writes only under its
# temp dir, removed on success (KEEP=1 keeps it).

set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
FAX=$top_builddir/clinimail-fax
CLI=$top_builddir/clinimail
DIRS=$top_srcdir/policies/directories

if [ ! -x "$FAX" ]; then
	echo "1..0 # SKIP $FAX not built"
	exit 0
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
	echo "1..0 # SKIP sqlite3 not installed (contrib/install-deps.sh installs it)"
	exit 0
fi

T=$(mktemp -d /tmp/clinimail-fax-bridge.XXXXXX) || exit 1
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { # check NAME COMMAND...: ok when the command succeeds
	name=$1
	shift
	if "$@"; then ok "$name"; else nok "$name"; fi
}

umask 077
head -c 32 /dev/urandom | base64 >"$T/key"
head -c 32 /dev/urandom | base64 >"$T/otherkey"

# The sendmail stand-in: each notice in mail/N.txt, its arguments first.
# FAIL_SENDMAIL present: exit 75 as a sendmail whose queue is unwritable.
cat >"$T/sendmail" <<EOF
#!/bin/sh
[ -e "$T/FAIL_SENDMAIL" ] && { cat >/dev/null; exit 75; }
mkdir -p "$T/mail"
i=\$(ls "$T/mail" | wc -l)
{ echo "ARGS: \$*"; cat; } >"$T/mail/\$i.txt"
EOF
chmod 700 "$T/sendmail"

write_conf() { # write_conf FILE BACKEND [extra lines]
	f=$1
	b=$2
	shift 2
	cat >"$f" <<EOF
EstablishmentName Hôpital Exemple
FaxDomain fax.hopital.example
ApprovalKey $T/key
NotifyFrom telecopie@hopital.example
Archives archives@hopital.example
Sendmail $T/sendmail
Backend $b
SpoolDirectory $T/spool
Ledger $T/ledger.db
Senders $DIRS/fax-senders.txt
Pharmacies $DIRS/pharmacies.txt
ImagingServices $DIRS/imaging.txt
AuditStore sqlite:$T/audit.db
Syslog no
EOF
	for l in "$@"; do echo "$l" >>"$f"; done
}
write_conf "$T/fax.conf" "spool:$T/outbox"
CONF=$T/fax.conf

# msg ID [extra header line]: a medication order to the Auxbonsoins pharmacy
msg() {
	printf 'From: Dr Julie Tremblay <dr.tremblay@hopital.example>\n'
	printf 'To: 9993335554@fax.hopital.example\n'
	printf 'Cc: archives@hopital.example\n'
	printf 'Subject: Ordonnance Lapointe Marie\n'
	printf 'Message-ID: <%s@hopital.example>\n' "$1"
	printf 'Date: Sun, 22 Nov 2026 10:00:00 -0500\n'
	[ -n "${2:-}" ] && printf '%s\n' "$2"
	printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n'
	printf 'Content-Transfer-Encoding: 8bit\n\n'
	printf 'Pharmacie Auxbonsoins, télécopieur 999-333-5554.\n'
	printf 'Patiente : Marie Lapointe, née le 1970-03-14, NAM LAPM70531412.\n'
	printf 'Amoxicilline 500 mg, 1 co. 3 f.p.j. x 10 jours.\n'
	printf 'Dr Julie Tremblay, permis 1-23456, 819-555-0111.\n'
}

# stamped FILE KEY REF NUMBER...: prepend a stamp to the message in FILE
stamped() {
	f=$1
	k=$2
	r=$3
	shift 3
	"$FAX" stamp -k "$k" -r "$r" "$@" <"$f" >"$f.stamp" || return 1
	cat "$f.stamp" "$f"
}

# deliver FILE RCPT...: run the delivery agent; $rc and $line
deliver() {
	f=$1
	shift
	"$FAX" deliver -c "$CONF" -q TESTQID -f dr.tremblay@hopital.example -- "$@" \
		<"$f" >"$T/out" 2>>"$T/fax.log"
	rc=$?
	line=$(cat "$T/out")
	echo "# exit $rc: $line"
}

outbox_count() { ls "$T/outbox" 2>/dev/null | grep -c '\.tif$'; }
spool_count() { ls "$T/spool" 2>/dev/null | grep -c '\.tif$'; }
claimed_rows() { sqlite3 "$T/ledger.db" "SELECT count(*) FROM faxes WHERE state = 0"; }
lines_of() { wc -l <"$T/out" | tr -d ' '; }

# ---- a valid stamp ----
msg order-1 >"$T/m1"
stamped "$T/m1" "$T/key" CM-20261122-AAAA0001 9993335554 >"$T/m1s"
deliver "$T/m1s" 9993335554@fax.hopital.example
check "valid stamp: exit 0" [ "$rc" -eq 0 ]
check "valid stamp: one line starting 2.0.0" sh -c "[ $(lines_of) -eq 1 ] && grep -q '^2\.0\.0 ' '$T/out'"
check "outbox holds one TIFF" [ "$(outbox_count)" -eq 1 ]
meta=$(ls "$T"/outbox/*.txt 2>/dev/null | head -1)
check "outbox metadata: number, pages, ref, sender, time" sh -c \
	"grep -q '^number: 9993335554' '$meta' && grep -q '^pages: [1-9]' '$meta' &&
	 grep -q '^ref: CM-20261122-AAAA0001' '$meta' && grep -q '^sender: dr.tremblay@hopital.example' '$meta' &&
	 grep -q '^time: 20' '$meta'"
tif=$(ls "$T"/outbox/*.tif 2>/dev/null | head -1)
check "outbox files are 0600" sh -c "[ \"\$(stat -c %a '$tif')\" = 600 ] && [ \"\$(stat -c %a '$meta')\" = 600 ]"
if command -v tiffinfo >/dev/null 2>&1; then
	check "outbox TIFF is fax-shaped (1728 wide, 204 dpi, CCITT)" sh -c \
		"tiffinfo '$tif' 2>/dev/null | grep -q 'Image Width: 1728' &&
		 tiffinfo '$tif' 2>/dev/null | grep -q 'Resolution: 204' &&
		 tiffinfo '$tif' 2>/dev/null | grep -q 'CCITT'"
fi
check "spool file is 0600 in a 0700 folder" sh -c \
	"[ \"\$(stat -c %a '$T/spool')\" = 700 ] && [ \"\$(stat -c %a '$T'/spool/*.tif)\" = 600 ]"
check "ledger file is 0600" [ "$(stat -c %a "$T/ledger.db")" = 600 ]
check "ledger row SUBMITTED" [ "$(sqlite3 "$T/ledger.db" "SELECT state FROM faxes")" = 1 ]
check "log names ref, ledger id, job, number, pages" \
	grep -q 'ref=CM-20261122-AAAA0001 ledger=1 job=.* number=9993335554 pages=[0-9]' "$T/fax.log"
check "log holds no subject nor patient data" sh -c "! grep -q -e Lapointe -e LAPM -e Amoxicilline '$T/fax.log'"

# ---- the same message again (MTA re-delivery) ----
deliver "$T/m1s" 9993335554@fax.hopital.example
check "re-delivery: exit 0" [ "$rc" -eq 0 ]
check "re-delivery: says duplicate and names the job" grep -q 'duplicate, already faxed as job CM-20261122-AAAA0001' "$T/out"
check "re-delivery: no second fax" [ "$(outbox_count)" -eq 1 ]

# ---- CRLF copy of a message stamped on its LF form (what the milter saw) ----
msg order-crlf >"$T/mc"
stamped "$T/mc" "$T/key" CM-20261122-AAAA0002 9993335554 | sed 's/$/\r/' >"$T/mcs"
deliver "$T/mcs" 9993335554@fax.hopital.example
check "CRLF message verifies against the stamp" [ "$rc" -eq 0 ]

# ---- refusals: 77 ----
deliver "$T/m1" 9993335554@fax.hopital.example
check "no stamp: exit 77" [ "$rc" -eq 77 ]
check "no stamp: 5.7.1, not approved by clinimail-milter, French first" sh -c \
	"[ $(lines_of) -eq 1 ] && grep -q '^5\.7\.1 telecopie refusee: .* / fax refused: not approved by clinimail-milter' '$T/out'"
msg order-3 >"$T/m3"
stamped "$T/m3" "$T/key" CM-20261122-AAAA0003 8195550102 >"$T/m3s"
deliver "$T/m3s" 9993335554@fax.hopital.example
check "stamp for another number: exit 77" [ "$rc" -eq 77 ]
check "stamp for another number: names the number" grep -q 'number 9993335554 not approved' "$T/out"
sed 's/x 10 jours/x 30 jours/' "$T/m1s" | sed 's/order-1@/order-1b@/' >/dev/null
sed 's/x 10 jours/x 30 jours/' "$T/m1s" >"$T/m1alt"
deliver "$T/m1alt" 9993335554@fax.hopital.example
check "body altered after approval: exit 77" [ "$rc" -eq 77 ]
check "body altered: says why" grep -q 'body changed' "$T/out"
sed 's/order-1@/order-9@/' "$T/m1s" >"$T/m1mid"
deliver "$T/m1mid" 9993335554@fax.hopital.example
check "Message-ID changed after approval: exit 77" [ "$rc" -eq 77 ]
stamped "$T/m3" "$T/otherkey" CM-20261122-AAAA0004 9993335554 >"$T/m4s"
deliver "$T/m4s" 9993335554@fax.hopital.example
check "stamp made with another key: exit 77" [ "$rc" -eq 77 ]
{ printf 'X-Clinimail-Fax-Approval: v=1; ref=CM-1; t=1; to=9993335554; bh=AAAA; mac=AAAA\n'; cat "$T/m3"; } >"$T/m5s"
deliver "$T/m5s" 9993335554@fax.hopital.example
check "malformed stamp: exit 77" [ "$rc" -eq 77 ]
msg order-6 >"$T/m6"
stamped "$T/m6" "$T/key" CM-20261122-AAAA0006 9993335554 8195550102 >"$T/m6s"
deliver "$T/m6s" 9993335554@fax.hopital.example 8195550202@fax.hopital.example
check "two recipients, one not approved: exit 77" [ "$rc" -eq 77 ]
check "nothing faxed for the approved one either" [ "$(sqlite3 "$T/ledger.db" "SELECT count(*) FROM faxes WHERE message_id = 'order-6@hopital.example'")" = 0 ]

# several stamps: a forged one and a valid one
msg order-7 >"$T/m7"
{
	"$FAX" stamp -k "$T/otherkey" -r CM-20261122-FORGED00 8195550102 <"$T/m7"
	stamped "$T/m7" "$T/key" CM-20261122-AAAA0007 9993335554
} >"$T/m7s"
deliver "$T/m7s" 9993335554@fax.hopital.example
check "a forged stamp beside a valid one: the valid one counts" [ "$rc" -eq 0 ]
deliver "$T/m7s" 8195550102@fax.hopital.example
check "the forged stamp's number is refused: 77" [ "$rc" -eq 77 ]

# ---- the number comes from the envelope only ----
msg order-8 'X-FAX-Dial: 8195550202' >"$T/m8"
stamped "$T/m8" "$T/key" CM-20261122-AAAA0008 9993335554 >"$T/m8s"
{ printf 'X-FAX-Number: 8195550202\nX-Fax-Recipient: 8195550202@fax.hopital.example\n'; cat "$T/m8s"; } >"$T/m8x"
deliver "$T/m8x" 9993335554@fax.hopital.example
check "X-FAX-* headers present: exit 0" [ "$rc" -eq 0 ]
check "X-FAX-* headers ignored: faxed to the envelope number only" sh -c \
	"grep -l 'ref: CM-20261122-AAAA0008' '$T'/outbox/*.txt | xargs grep -q '^number: 9993335554' &&
	 ! grep -q '8195550202' '$T'/outbox/*.txt"

# ---- bad input: 65 ----
for bad in 0195550102 12345 1195550102 44207946000 819555010x; do
	deliver "$T/m1s" "$bad@fax.hopital.example"
	check "bad number $bad: exit 65" [ "$rc" -eq 65 ]
done
check "bad number: 5.1.3, says non-North-American" grep -q '^5\.1\.3 .*non-North-American' "$T/out"
deliver "$T/m1s" 9993335554@elsewhere.example
check "recipient outside FaxDomain: exit 65" [ "$rc" -eq 65 ]
: >"$T/empty"
deliver "$T/empty" 9993335554@fax.hopital.example
check "empty message: exit 65" [ "$rc" -eq 65 ]
check "empty message: says so" grep -q 'empty message' "$T/out"
printf 'From: dr.tremblay@hopital.example\nMessage-ID: <hdr-only@hopital.example>\n\n\n' >"$T/m9"
stamped "$T/m9" "$T/key" CM-20261122-AAAA0009 9993335554 >"$T/m9s"
deliver "$T/m9s" 9993335554@fax.hopital.example
check "stamped message with an empty body: exit 65" [ "$rc" -eq 65 ]
write_conf "$T/small.conf" "spool:$T/outbox" "MaxMessageSize 2K"
CONF=$T/small.conf
{ cat "$T/m1s"; head -c 4000 /dev/zero | tr '\0' 'x'; echo; } >"$T/big"
deliver "$T/big" 9993335554@fax.hopital.example
check "message over MaxMessageSize: exit 65" [ "$rc" -eq 65 ]
CONF=$T/fax.conf
# an attachment that cannot be rendered (a "PDF" that is not one)
{
	printf 'From: Dr Julie Tremblay <dr.tremblay@hopital.example>\nMessage-ID: <att-1@hopital.example>\n'
	printf 'Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n\n'
	printf -- '--b1\nContent-Type: text/plain; charset=UTF-8\n\nVoir la pièce jointe.\n'
	printf -- '--b1\nContent-Type: application/pdf; name="ordonnance.pdf"\n'
	printf 'Content-Disposition: attachment; filename="ordonnance.pdf"\n'
	printf 'Content-Transfer-Encoding: base64\n\n%s\n--b1--\n' "$(printf 'not a PDF at all' | base64)"
} >"$T/m14"
stamped "$T/m14" "$T/key" CM-20261122-AAAA0014 9993335554 >"$T/m14s"
deliver "$T/m14s" 9993335554@fax.hopital.example
check "unrenderable attachment: exit 65, 5.6.0" sh -c "[ $rc -eq 65 ] && grep -q '^5\.6\.0 .*cannot be rendered' '$T/out'"
check "unrenderable attachment: the file name is neither in the bounce nor in the log" sh -c \
	"! grep -q ordonnance.pdf '$T/out' && ! grep -q ordonnance.pdf '$T/fax.log'"
# more pages than MaxPages
write_conf "$T/pages.conf" "spool:$T/outbox" "MaxPages 2"
CONF=$T/pages.conf
msg order-15 >"$T/m15"
for i in $(seq 1 300); do echo "Ligne $i du document, assez longue pour remplir les pages de la télécopie."; done >>"$T/m15"
stamped "$T/m15" "$T/key" CM-20261122-AAAA0015 9993335554 >"$T/m15s"
deliver "$T/m15s" 9993335554@fax.hopital.example
check "more than MaxPages: exit 65, 5.3.4" sh -c "[ $rc -eq 65 ] && grep -q '^5\.3\.4 .*more than 2 pages' '$T/out'"
CONF=$T/fax.conf
check "no claim left by the refusals" [ "$(claimed_rows)" = 0 ]
check "no spool file left by the refusals" [ "$(spool_count)" -eq "$(sqlite3 "$T/ledger.db" "SELECT count(*) FROM faxes WHERE state = 1")" ]

# ---- exactly once after a crash ----
# A delivery died after writing to the outbox but before recording the job:
# the retry finds the job by its ledger key and adopts it.
msg order-10 >"$T/m10"
stamped "$T/m10" "$T/key" CM-20261122-AAAA0010 9993335554 >"$T/m10s"
deliver "$T/m10s" 9993335554@fax.hopital.example
before=$(outbox_count)
sqlite3 "$T/ledger.db" "UPDATE faxes SET state = 0, job_id = '', claim_pid = 999999 WHERE ref = 'CM-20261122-AAAA0010'"
deliver "$T/m10s" 9993335554@fax.hopital.example
check "dead claim with a submitted job: exit 0" [ "$rc" -eq 0 ]
check "dead claim: the job is adopted, not faxed again" sh -c \
	"[ $(outbox_count) -eq $before ] && grep -q 'adopted' '$T/fax.log'"
# A delivery died before submitting: the retry takes the claim over and faxes.
msg order-11 >"$T/m11"
stamped "$T/m11" "$T/key" CM-20261122-AAAA0011 9993335554 >"$T/m11s"
bh=$(sqlite3 "$T/ledger.db" "SELECT body_sha256 FROM faxes WHERE ref = 'CM-20261122-AAAA0010'")
sqlite3 "$T/ledger.db" "INSERT INTO faxes (message_id, number, body_sha256, state, ref, sender, claimed_at, claim_pid) VALUES ('order-11@hopital.example', '9993335554', '$bh', 0, 'CM-20261122-AAAA0011', 's', strftime('%s','now'), $$)"
deliver "$T/m11s" 9993335554@fax.hopital.example
check "live claim by another process: exit 75" [ "$rc" -eq 75 ]
sqlite3 "$T/ledger.db" "UPDATE faxes SET claim_pid = 999999 WHERE ref = 'CM-20261122-AAAA0011'"
deliver "$T/m11s" 9993335554@fax.hopital.example
check "dead claim without a job: taken over and faxed" sh -c \
	"[ $rc -eq 0 ] && [ $(outbox_count) -eq $((before + 1)) ]"

# ---- the tracker: notices and destruction ----
mails_before=$(ls "$T/mail" 2>/dev/null | wc -l)
"$FAX" track -1 -c "$CONF" 2>>"$T/fax.log"
check "track -1: exit 0" [ $? -eq 0 ]
submitted=$(sqlite3 "$T/ledger.db" "SELECT count(*) FROM faxes")
check "every fax got a notice" [ "$(($(ls "$T/mail" | wc -l) - mails_before))" -eq "$submitted" ]
check "every ledger row DESTROYED" [ "$(sqlite3 "$T/ledger.db" "SELECT count(*) FROM faxes WHERE state <> 4")" = 0 ]
check "spool folder empty" [ "$(spool_count)" -eq 0 ]
check "outbox untouched by destruction" [ "$(outbox_count)" -eq "$submitted" ]
note=$(grep -l 'ref=CM-20261122-AAAA0001;' "$T"/mail/*.txt | head -1)
check "notice sent with sendmail -i -f NotifyFrom -- sender archives" \
	grep -q '^ARGS: -i -f telecopie@hopital.example -- dr.tremblay@hopital.example archives@hopital.example$' "$note"
check "notice: To the sender, Cc the archives" sh -c \
	"grep -q '^To: <dr.tremblay@hopital.example>' '$note' && grep -q '^Cc: <archives@hopital.example>' '$note'"
fr=$(grep -n 'Numéro' "$note" | head -1 | cut -d: -f1)
en=$(grep -n 'Number' "$note" | head -1 | cut -d: -f1)
check "notice: French first, then English" [ -n "$fr" ] && [ -n "$en" ] && [ "$fr" -lt "$en" ]
check "notice: number, recipient, pages, ref, Message-ID" sh -c \
	"grep -q '999-333-5554' '$note' && grep -q 'Pharmacie Auxbonsoins' '$note' &&
	 grep -q 'Pages        : [1-9] sur [1-9]' '$note' && grep -q 'Pages        : [1-9] of [1-9]' '$note' &&
	 grep -q 'CM-20261122-AAAA0001' '$note' && grep -q '<order-1@hopital.example>' '$note'"
check "spool notice says not transmitted" sh -c "grep -q 'PAS été transmise' '$note' && grep -q 'NOT transmitted' '$note'"
check "notice: no subject nor clinical content" sh -c \
	"! grep -q -i -e Lapointe -e Ordonnance -e LAPM -e Amoxicilline '$T'/mail/*.txt"
"$FAX" track -1 -c "$CONF" 2>>"$T/fax.log"
check "a second pass sends nothing more" [ "$(($(ls "$T/mail" | wc -l) - mails_before))" -eq "$submitted" ]

# a notice that cannot be sent is kept for the next pass
msg order-12 >"$T/m12"
stamped "$T/m12" "$T/key" CM-20261122-AAAA0012 8195550102 >"$T/m12s"
deliver "$T/m12s" 8195550102@fax.hopital.example
touch "$T/FAIL_SENDMAIL"
"$FAX" track -1 -c "$CONF" 2>>"$T/fax.log"
check "sendmail failing: track exits 75" [ $? -eq 75 ]
check "sendmail failing: row stays SUBMITTED, spool file kept" sh -c \
	"[ \"\$(sqlite3 '$T/ledger.db' \"SELECT state FROM faxes WHERE ref = 'CM-20261122-AAAA0012'\")\" = 1 ] && [ $(spool_count) -eq 1 ]"
rm -f "$T/FAIL_SENDMAIL"
"$FAX" track -1 -c "$CONF" 2>>"$T/fax.log"
check "sendmail back: notice sent, row DESTROYED" sh -c \
	"grep -q 'ref=CM-20261122-AAAA0012;' '$T'/mail/*.txt &&
	 [ \"\$(sqlite3 '$T/ledger.db' \"SELECT state FROM faxes WHERE ref = 'CM-20261122-AAAA0012'\")\" = 4 ] && [ $(spool_count) -eq 0 ]"
note=$(grep -l 'ref=CM-20261122-AAAA0012;' "$T"/mail/*.txt | head -1)
check "notice names Pharmacie du Lac for 819-555-0102" grep -q 'Pharmacie du Lac' "$note"

# the tracker releases the claim of a dead delivery that submitted nothing
sqlite3 "$T/ledger.db" "INSERT INTO faxes (message_id, number, body_sha256, state, ref, sender, claimed_at, claim_pid) VALUES ('ghost@hopital.example', '9993335554', '$bh', 0, 'CM-20261122-GHOST000', 's', strftime('%s','now'), 999999)"
id=$(sqlite3 "$T/ledger.db" "SELECT id FROM faxes WHERE ref = 'CM-20261122-GHOST000'")
echo x >"$T/spool/$id.tif"
"$FAX" track -1 -c "$CONF" 2>>"$T/fax.log"
check "tracker releases a dead claim and removes its spool file" sh -c \
	"[ \"\$(sqlite3 '$T/ledger.db' \"SELECT count(*) FROM faxes WHERE ref = 'CM-20261122-GHOST000'\")\" = 0 ] && [ ! -e '$T/spool/$id.tif' ]"

# ---- notice texts the spool backend cannot produce (preview) ----
"$FAX" notice -c "$CONF" failed 8195550102 2/3 "No carrier detected" >"$T/partial"
check "partial failure: '2 pages sur 3' then '2 of 3 pages'" sh -c \
	"grep -q '2 pages sur 3' '$T/partial' && grep -q '2 of 3 pages' '$T/partial'"
check "partial failure: the reason in words, both languages" sh -c \
	"grep -q 'aucun télécopieur' '$T/partial' && grep -q 'no fax machine answered' '$T/partial' &&
	 grep -q 'No carrier detected' '$T/partial'"
"$FAX" notice -c "$CONF" retrying 9993335554 0/2 "Busy signal detected" >"$T/retry"
check "retrying notice: line busy, final notice announced" sh -c \
	"grep -q 'ligne occupée' '$T/retry' && grep -q 'line busy' '$T/retry' && grep -q 'final notice' '$T/retry'"

# ---- HylaFAX unreachable: 75, nothing lost, nothing left ----
write_conf "$T/hfax.conf" "hylafax:127.0.0.1:1" "HylafaxTimeout 5"
CONF=$T/hfax.conf
msg order-13 >"$T/m13"
stamped "$T/m13" "$T/key" CM-20261122-AAAA0013 9993335554 >"$T/m13s"
deliver "$T/m13s" 9993335554@fax.hopital.example
check "HylaFAX unreachable: exit 75" [ "$rc" -eq 75 ]
check "HylaFAX unreachable: 4.x.x, will retry" grep -q '^4\.[0-9]\.[0-9] .*will retry' "$T/out"
check "HylaFAX unreachable: no claim left, no spool file" sh -c \
	"[ $(claimed_rows) = 0 ] && [ $(spool_count) -eq 0 ]"
CONF=$T/fax.conf

# ---- configuration errors: 78 with a 4.x.x text (the MTA keeps the mail) ----
printf 'FaxDomain fax.hopital.example\nBogusKey 1\n' >"$T/bad.conf"
CONF=$T/bad.conf
deliver "$T/m1s" 9993335554@fax.hopital.example
check "configuration error: exit 78, 4.3.5" sh -c "[ $rc -eq 78 ] && grep -q '^4\.3\.5 ' '$T/out'"
CONF=$T/fax.conf
chmod 0644 "$T/key"
deliver "$T/m1s" 9993335554@fax.hopital.example
check "approval key readable by others: exit 78" [ "$rc" -eq 78 ]
chmod 0600 "$T/key"
check "config check names file:line" sh -c \
	"'$FAX' config -c '$T/bad.conf' 2>&1 | grep -q 'bad.conf:2: unknown key'"

# LogFile: under pipe(8) stdout and stderr both reach the MTA; with Syslog no
# the log lines go to LogFile and only the outcome line is printed
write_conf "$T/logfile.conf" "spool:$T/outbox" "LogFile $T/bridge.log"
"$FAX" deliver -c "$T/logfile.conf" -f dr.tremblay@hopital.example -- 9993335554@fax.hopital.example \
	<"$T/m1s" >"$T/lf.out" 2>"$T/lf.err"
check "LogFile: one line out, nothing on stderr, the log in the file" sh -c \
	"[ \$(wc -l <'$T/lf.out') -eq 1 ] && grep -q duplicate '$T/lf.out' && [ ! -s '$T/lf.err' ] &&
	 grep -q 'duplicate, already faxed' '$T/bridge.log' && [ \"\$(stat -c %a '$T/bridge.log')\" = 600 ]"

# the shipped example (with this test's key) is a valid configuration
sed "s|^ApprovalKey .*|ApprovalKey $T/key|; s|^Senders directories/|Senders $DIRS/|; s|^Pharmacies directories/|Pharmacies $DIRS/|; s|^ImagingServices directories/|ImagingServices $DIRS/|" \
	"$top_srcdir/policies/clinimail-fax.conf" >"$T/shipped.conf"
check "policies/clinimail-fax.conf loads" sh -c \
	"'$FAX' config -c '$T/shipped.conf' | grep -q '^# 2 senders, 4 pharmacies, 3 imaging services'"

# ---- audit events ----
if [ -x "$CLI" ]; then
	"$CLI" audit list --store "sqlite:$T/audit.db" >"$T/audit.txt" 2>&1
	check "clinimail audit list reads the fax events" sh -c \
		"grep -q '(fax-submitted)' '$T/audit.txt' && grep -q '(fax-destroyed)' '$T/audit.txt' &&
		 grep -q '(fax-delivered)' '$T/audit.txt'"
	check "audit detail: job, pages, backend" grep -q 'job=CM-20261122-AAAA0001-1 pages=[0-9]*/[0-9]* backend=spool' "$T/audit.txt"
	"$CLI" audit verify --store "sqlite:$T/audit.db" >"$T/verify.txt" 2>&1
	check "clinimail audit verify: chain intact" [ $? -eq 0 ]
	"$CLI" audit list --store "sqlite:$T/audit.db" --kind fax-failed >/dev/null 2>&1
	"$CLI" audit show CM-20261122-AAAA0001 --store "sqlite:$T/audit.db" >"$T/show.txt" 2>&1
	check "audit show REF: recipients 'fax NUMBER', message id" sh -c \
		"grep -q 'fax 9993335554' '$T/show.txt' && grep -q 'order-1@hopital.example' '$T/show.txt'"
	check "audit store holds no subject nor patient data" sh -c \
		"! sqlite3 '$T/audit.db' .dump | grep -q -i -e Lapointe -e LAPM -e Amoxicilline"
fi

echo "1..$n"
if [ "$failed" -eq 0 ] && [ -z "${KEEP:-}" ]; then
	rm -rf "$T"
else
	echo "# kept $T"
fi
[ "$failed" -eq 0 ]
