#!/bin/sh
# encrypt.sh — encryption to patients (issue 3, RULES.md rule 7) end to end:
# real SMTP submissions through a private Postfix with clinimail-milter;
# what arrives at the sink is decrypted here: `openssl cms -decrypt` with the
# patient's key (and with the establishment's, for the archives copy) gives
# back the original entity; `qpdf --password=… --decrypt` and pdftotext give
# back the original text, with the generated password found in the notice
# delivered to the clinician, with the registered passphrase, and with the
# archives' password; without a password qpdf fails; the PDF is AES-256 R6.
# The outer message carries no identifier of the original.  Consent missing,
# consent for another address, third party without consent, an unusable
# certificate, a missing passphrase, two patients: rejected with the reason.
# A password notice that cannot be sent tempfails the message.
# TAP output.  Runs as root; writes only under its temp dir (KEEP=1 keeps it).

set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
MILTER=${CLINIMAIL_MILTER:-$top_builddir/clinimail-milter}

. "$top_srcdir/tests/lib/postfix-env.sh"

if ! pfenv_have_tools; then
	echo "1..0 # SKIP $PFENV_MISSING not installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root to run a private Postfix instance"
	exit 0
fi
for t in openssl qpdf pdftotext; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "1..0 # SKIP $t not installed (contrib/install-deps.sh installs it)"
		exit 0
	fi
done

T=$(mktemp -d /tmp/clinimail-encrypt.XXXXXX) || exit 1
pfenv_init "$T" || { echo "Bail out! cannot set up $T"; exit 1; }

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

# ---- keys, certificates, secrets ----
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
mkcert() { # mkcert NAME CN EMAIL
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/$1.key" -out "$P/$1.pem" -days 30 \
		-subj "/CN=$2/emailAddress=$3" -addext "keyUsage=digitalSignature,keyEncipherment" \
		-addext "extendedKeyUsage=emailProtection" >/dev/null 2>&1
}
mkcert establishment "Hopital Exemple Archives" archives@hopital.example || { echo "Bail out! openssl"; exit 1; }
mkcert marie "Marie Lapointe" marie.lapointe@videotron.ca || { echo "Bail out! openssl"; exit 1; }
echo "this is not a certificate" >"$P/broken.pem"
ARCHPW='Archives-Exemple-2026-tres-secret'
ANNEPW='trois chats gris sur le toit'
printf '%s\n' "$ARCHPW" >"$P/archives.pw"
printf '# test passphrases\nP-ANNE %s\nP-WEAK mon NAM est LAPM50531218\n' "$ANNEPW" >"$P/passphrases"
chmod 0600 "$P/archives.pw" "$P/passphrases"

# the registry: Marie has a certificate, Anne (a family address she consented
# to) registered a passphrase, Sophie gets generated passwords (shipped)
sed -i -e 's|^\(marie.lapointe@videotron.ca [|] [^|]*[|] [^|]*[|]\).*|\1 cert=../marie.pem|' \
	-e 's|^\(anne.morin@famille.example .*\)$|\1 password=registered passphrase=P-ANNE|' \
	"$P/directories/patients.txt"
cat >>"$P/directories/patients.txt" <<'EOF'
cert.broken@videotron.ca | 2024-01-10 | all | cert=../broken.pem
no.passphrase@videotron.ca | 2024-01-10 | all | password=registered passphrase=P-NONE
weak.passphrase@videotron.ca | 2024-01-10 | all | password=registered passphrase=P-WEAK
EOF

# The milter runs as root here: Postfix's sendmail(1) takes -C (the private
# instance) only from root.  Production uses /usr/sbin/sendmail as is.
cat >"$T/sendmail" <<EOF
#!/bin/sh
exec /usr/sbin/sendmail -C "$PFENV_CONF" "\$@"
EOF
chmod 0755 "$T/sendmail"

conf_set "$CONF" Syslog no
conf_set "$CONF" Background no
conf_set "$CONF" AuditStore none
conf_set "$CONF" SmimeEstablishmentCertificate establishment.pem
conf_set "$CONF" ArchivesPdfPassword archives.pw
conf_set "$CONF" PatientPassphrases passphrases
conf_set "$CONF" NotifyFrom clinimail@hopital.example
conf_set "$CONF" Sendmail "$T/sendmail"
# an inet socket: the milter runs as root (see above) and Postfix as postfix
MPORT=$(pfenv_free_port) || exit 1
SOCK=inet:$MPORT@127.0.0.1

crlf() { perl -0pi -e 's/\r?\n/\r\n/g; s/\r\n\z//' "$1"; }

# clinical note NAME TO-HEADER: the note with a NAM, a name and a file number
note() {
	cat >"$T/$1.eml" <<EOF
From: Dr Jean Tremblay <dr.tremblay@hopital.example>
To: $2
Subject: Suivi de Mme Marie Lapointe, dossier 0123456
Thread-Topic: Suivi de Mme Marie Lapointe
X-Patient-Ref: LAPM50531218
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

Bonjour Mme Lapointe,

Voici le suivi de Mme Marie Lapointe, née le 12 mars 1950, NAM LAPM50531218,
numéro de dossier 0123456. Diagnostic : diabète de type 2 et insuffisance
cardiaque. Vos résultats de laboratoire sont stables; poursuivez la
metformine. Nous vous reverrons en clinique dans trois mois.

Dr Jean Tremblay
EOF
	crlf "$T/$1.eml"
}

send() { # send NAME TO[,TO] FILE
	"$SWAKS" --server "127.0.0.1:$PFENV_SMTPD_PORT" --helo client.test \
		--from dr.tremblay@hopital.example --to "$2" --data "$3" $(pfenv_auth jtremblay) \
		--timeout 120 >"$T/$1.out" 2>&1
	return 0
}
final_reply() { sed -n 's/^<\*\* *//p; /^<-  *250 .*queued as/s/^<-  *//p' "$T/$1.out"; }
queued_id() { sed -n 's/^<-  *250 .*queued as \([0-9A-Z]*\).*/\1/p' "$T/$1.out" | tail -n 1; }
delivered() { [ -n "$1" ] && pfenv_sink_by_id "$1" 30; }
reply_has() { final_reply "$1" | grep -Eiq -- "$2"; }
# no_identifiers FILE: none of the note's identifiers in what a mailbox
# provider reads of the message as delivered: the header and every text part
# decoded (the patient's own address is the only place her name may appear).
# The encrypted parts are left out: base64 of ciphertext can spell anything.
no_identifiers() {
	pfenv_message "$1" | perl -MMIME::Base64 -e '
		local $/; my $m = <STDIN>; $m =~ s/\r\n/\n/g;
		my ($h, $b) = split /\n\n/, $m, 2; print "$h\n";
		for my $p (split /\n--[^\n]*\n/, $b // "") {
			my ($ph, $pb) = split /\n\n/, $p, 2;
			next unless defined $pb && $ph =~ m{^Content-Type:\s*text/}mi;
			print $ph =~ /base64/i ? decode_base64($pb) : $pb;
		}' >"$T/outer.txt"
	# (and it did read the message: the generic subject is there)
	grep -q 'Secure message from' "$T/outer.txt" || return 1
	! sed 's/[a-z.]*lapointe@videotron\.ca//gI' "$T/outer.txt" |
		grep -Eiq 'LAPM50531218|0123456|Lapointe|Marie Lapointe|diab|Suivi de'
}
# the attachment NAME of a delivered message, decoded, into FILE
extract_part() { # extract_part MSGFILE CONTENT-TYPE OUT
	pfenv_message "$1" | perl -MMIME::Base64 -e '
		my ($ct, $out) = @ARGV; local $/; my $m = <STDIN>; $m =~ s/\r\n/\n/g;
		for my $p (split /\n--[^\n]*\n/, $m) {
			my ($h, $b) = split /\n\n/, $p, 2;
			next unless defined $b && $h =~ /^Content-Type:\s*\Q$ct\E/mi;
			open(my $fh, ">", $out) or die; binmode $fh; print $fh decode_base64($b); exit 0;
		}
		exit 1;' "$2" "$3"
}

pfenv_postfix_setup "inet:127.0.0.1:$MPORT" || { echo "Bail out! postfix setup"; exit 1; }
pfenv_sink_start || { echo "Bail out! smtp-sink"; exit 1; }
pfenv_postfix_start || { echo "Bail out! postfix start"; exit 1; }
pfenv_milter_start "$SOCK" "$MILTER" -f -c "$CONF" -p "$SOCK" ||
	{ echo "Bail out! the milter does not start"; exit 1; }

# ==== 1. S/MIME: Marie registered a certificate ====
note smime "Marie Lapointe <marie.lapointe@videotron.ca>"
send smime marie.lapointe@videotron.ca "$T/smime.eml"
qid=$(queued_id smime)
ok "$([ -n "$qid" ]; echo $?)" "S/MIME: clinical mail to a patient with a certificate is accepted ($(final_reply smime | head -n 1))"
f=$(delivered "$qid")
ok "$([ -n "$f" ]; echo $?)" "S/MIME: it is delivered"
if [ -n "$f" ]; then
	check "S/MIME: to the patient and the archives" \
		test "$(pfenv_rcpts "$f" | tr '\n' ' ')" = "archives@hopital.example marie.lapointe@videotron.ca "
	ct=$(pfenv_header "$f" Content-Type)
	case $ct in
	*application/pkcs7-mime*enveloped-data*) ok 0 "S/MIME: the outer Content-Type is enveloped-data" ;;
	*) ok 1 "S/MIME: the outer Content-Type is enveloped-data (got: $ct)" ;;
	esac
	subj=$(pfenv_header "$f" Subject)
	case $subj in
	*"Secure message from"*) ok 0 "S/MIME: the outer Subject is the generic one" ;;
	*) ok 1 "S/MIME: the outer Subject is the generic one (got: $subj)" ;;
	esac
	no_identifiers "$f"
	ok $? "S/MIME: the outer message carries no NAM, name, file number nor subject"
	check "S/MIME: To keeps the address only" test "$(pfenv_header "$f" To)" = marie.lapointe@videotron.ca
	pfenv_message "$f" | tr -d '\r' >"$T/smime.delivered"
	openssl cms -decrypt -in "$T/smime.delivered" -inkey "$P/marie.key" -recip "$P/marie.pem" \
		-out "$T/smime.clear" >"$T/smime.err" 2>&1
	ok $? "S/MIME: openssl cms -decrypt with the patient's key"
	check "S/MIME: it gives back the original entity (text, NAM)" grep -q 'NAM LAPM50531218' "$T/smime.clear"
	check "S/MIME: the original subject is inside" grep -q '^Subject: Suivi de Mme Marie Lapointe' "$T/smime.clear"
	openssl cms -decrypt -in "$T/smime.delivered" -inkey "$P/establishment.key" \
		-recip "$P/establishment.pem" -out "$T/smime.arch" >/dev/null 2>&1 &&
		cmp -s "$T/smime.clear" "$T/smime.arch"
	ok $? "S/MIME: the archives open the same message with the establishment's key"
	openssl cms -cmsout -print -in "$T/smime.delivered" 2>/dev/null | grep -qi 'aes-256-cbc'
	ok $? "S/MIME: content encrypted with AES-256-CBC"
fi

# ==== 2. password PDF, generated password: Sophie ====
pfenv_sink_clear
note pdfgen "Sophie Gagnon <sophie.gagnon@outlook.com>"
send pdfgen sophie.gagnon@outlook.com "$T/pdfgen.eml"
qid=$(queued_id pdfgen)
ok "$([ -n "$qid" ]; echo $?)" "PDF: clinical mail to a patient without a certificate is accepted"
f=$(delivered "$qid")
ok "$([ -n "$f" ]; echo $?)" "PDF: it is delivered"
notice=
for _ in $(seq 1 100); do
	notice=$(pfenv_sink_find 'Password for secure message' | head -n 1)
	[ -n "$notice" ] && break
	sleep 0.2
done
ok "$([ -n "$notice" ]; echo $?)" "PDF: a separate password notice is delivered"
if [ -n "$f" ] && [ -n "$notice" ]; then
	check "PDF: the notice goes to the clinician only" \
		test "$(pfenv_rcpts "$notice" | tr '\n' ' ')" = "dr.tremblay@hopital.example "
	check "PDF: the patient's message does not contain the password notice" \
		sh -c "! grep -q 'PDF password' '$f'"
	pw=$(pfenv_message "$notice" | tr -d '\r' | sed -n 's/^    \([A-Za-z0-9]\{16\}\)$/\1/p' | head -n 1)
	ok "$([ ${#pw} -eq 16 ]; echo $?)" "PDF: the notice gives a 16-character password"
	no_identifiers "$f"
	ok $? "PDF: the outer message carries no NAM, name, file number nor subject"
	extract_part "$f" application/pdf "$T/pdfgen.pdf"
	ok $? "PDF: the message carries one PDF"
	qpdf --show-encryption --password="$pw" "$T/pdfgen.pdf" >"$T/pdfgen.enc" 2>&1
	check "PDF: qpdf --show-encryption reports R = 6 (AES-256)" grep -q '^R = 6' "$T/pdfgen.enc"
	check "PDF: it is encrypted with AESv3" grep -qi 'AESv3' "$T/pdfgen.enc"
	qpdf --password="$pw" --decrypt "$T/pdfgen.pdf" "$T/pdfgen.clear.pdf" >/dev/null 2>&1
	ok $? "PDF: qpdf --decrypt with the generated password"
	pdftotext "$T/pdfgen.clear.pdf" - 2>/dev/null | tr '\n' ' ' >"$T/pdfgen.txt"
	check "PDF: pdftotext finds the original text" grep -q 'NAM LAPM50531218' "$T/pdfgen.txt"
	check "PDF: the original subject is inside" grep -q 'Suivi de Mme Marie Lapointe' "$T/pdfgen.txt"
	qpdf --decrypt "$T/pdfgen.pdf" "$T/nopw.pdf" >/dev/null 2>&1
	ok "$([ $? -ne 0 ]; echo $?)" "PDF: without the password qpdf fails"
	qpdf --password=wrong-password --decrypt "$T/pdfgen.pdf" "$T/badpw.pdf" >/dev/null 2>&1
	ok "$([ $? -ne 0 ]; echo $?)" "PDF: with a wrong password qpdf fails"
	qpdf --password="$ARCHPW" --decrypt "$T/pdfgen.pdf" "$T/arch.pdf" >/dev/null 2>&1
	ok $? "PDF: the archives open their copy with ArchivesPdfPassword"
	check "PDF: to the patient and the archives" \
		test "$(pfenv_rcpts "$f" | tr '\n' ' ')" = "archives@hopital.example sophie.gagnon@outlook.com "
fi

# ==== 3. password PDF, registered passphrase: Anne (family address, consented) ====
pfenv_sink_clear
note pdfreg "anne.morin@famille.example"
send pdfreg anne.morin@famille.example "$T/pdfreg.eml"
qid=$(queued_id pdfreg)
f=$(delivered "$qid")
ok "$([ -n "$f" ]; echo $?)" "registered passphrase: the message is accepted and delivered"
if [ -n "$f" ]; then
	extract_part "$f" application/pdf "$T/pdfreg.pdf" &&
		qpdf --password="$ANNEPW" --decrypt "$T/pdfreg.pdf" "$T/pdfreg.clear.pdf" >/dev/null 2>&1 &&
		pdftotext "$T/pdfreg.clear.pdf" - 2>/dev/null | grep -q 'LAPM50531218'
	ok $? "registered passphrase: the PDF opens with the patient's passphrase"
	sleep 1
	check "registered passphrase: no password notice is sent" \
		sh -c "! grep -l 'Password for secure message' $PFENV_SINK_DIR/* 2>/dev/null | grep -q ."
fi

# ==== 4. what cannot go ====
refused() { # refused NAME RCPT PATTERN DESCRIPTION
	note "$1" "$2"
	send "$1" "$2" "$T/$1.eml"
	if reply_has "$1" '^550' && reply_has "$1" "$3" && [ -z "$(queued_id "$1")" ]; then
		ok 0 "$4"
	else
		ok 1 "$4"
		final_reply "$1" | head -n 4 | sed 's/^/# /'
	fi
}
refused withdrawn luc.bergeron@bell.net 'patient-consent' \
	"consent withdrawn: rejected (patient-consent)"
refused thirdparty paul.cote@employeur.example 'patient-consent' \
	"employer address without third-party consent: rejected (patient-consent)"
refused otheraddr marie.lapointe@gmail.com 'webmail' \
	"consent recorded for another address (the patient's Gmail): rejected (webmail)"
refused brokencert cert.broken@videotron.ca 'certificat' \
	"unusable certificate: rejected with the reason (patient-encryption)"
refused nopass no.passphrase@videotron.ca 'phrase de passe' \
	"registered passphrase missing: rejected with the reason"
refused weak weak.passphrase@videotron.ca 'identifiant' \
	"a registered passphrase containing the message's NAM: rejected with the reason"
note two "marie.lapointe@videotron.ca"
send two "marie.lapointe@videotron.ca,sophie.gagnon@outlook.com" "$T/two.eml"
reply_has two '^550' && [ -z "$(queued_id two)" ]
ok $? "one clinical message to two patients: rejected"

# ==== 5. non-clinical mail to patients in Bcc is not encrypted ====
pfenv_sink_clear
cat >"$T/closure.eml" <<'EOF'
From: Dr Jean Tremblay <dr.tremblay@hopital.example>
To: undisclosed-recipients:;
Subject: Fermeture de la clinique le 24 decembre
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8

Bonjour,

La clinique sera fermee le 24 decembre. Bonnes fetes!

La direction
EOF
crlf "$T/closure.eml"
send closure "marie.lapointe@videotron.ca,sophie.gagnon@outlook.com" "$T/closure.eml"
qid=$(queued_id closure)
f=$(delivered "$qid")
if [ -n "$f" ] && pfenv_message "$f" | grep -q 'La clinique sera fermee' &&
	[ "$(pfenv_header "$f" Subject)" = "Fermeture de la clinique le 24 decembre" ]; then
	ok 0 "a non-clinical closure notice to patients in Bcc goes in clear"
else
	ok 1 "a non-clinical closure notice to patients in Bcc goes in clear"
fi

# ==== 6. a password notice that cannot be sent: tempfail, nothing leaves ====
pfenv_milter_stop
conf_set "$CONF" Sendmail /bin/false
pfenv_milter_start "$SOCK" "$MILTER" -f -c "$CONF" -p "$SOCK" ||
	{ echo "Bail out! the milter does not restart"; exit 1; }
pfenv_sink_clear
note nonotice "sophie.gagnon@outlook.com"
send nonotice sophie.gagnon@outlook.com "$T/nonotice.eml"
reply_has nonotice '^451' && [ -z "$(queued_id nonotice)" ]
ok $? "the password notice cannot be sent: 451, the message is not accepted"
sleep 1
check "nothing was delivered" test "$(pfenv_sink_count)" -eq 0

# ==== 7. orders signed for the pharmacy (Rule-order-signature sign) ====
mkcert signing "Hopital Exemple" dr.tremblay@hopital.example || { echo "Bail out! openssl"; exit 1; }
chmod 0600 "$P/signing.key"
pfenv_milter_stop
conf_set "$CONF" Sendmail "$T/sendmail"
conf_set "$CONF" SmimeSigningCertificate signing.pem
conf_set "$CONF" SmimeSigningKey signing.key
conf_set "$CONF" Rule-order-signature sign
pfenv_milter_start "$SOCK" "$MILTER" -f -c "$CONF" -p "$SOCK" ||
	{ echo "Bail out! the milter does not restart with signing"; exit 1; }
cat >"$T/order.eml" <<'EOF'
From: Dr Jean Tremblay <dr.tremblay@hopital.example>
To: Pharmacie Auxbonsoins <commandes@auxbonsoins.example>
Subject: Ordonnance
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

Bonjour,

Voici une ordonnance pour une de vos patientes

Pharmacie Auxbonsoins
Tél : 999-333-5555
Télécopieur : 999-333-5554

Ordonnance pour Mme Test Covid, D D.N. 3 janvier 1946, NAM : COVT465303XX. Numéro de
dossier : 012345. Aucune allergie connue.

Aspirine 80 mg 1 co po ID 30 cos Ren 24 mois

Dr Test Untel , #Lic 00000, téléphone où vous pouvez me rejoindre : 123 456-7899
EOF
crlf "$T/order.eml"
pfenv_sink_clear
send order commandes@auxbonsoins.example "$T/order.eml"
f=$(delivered "$(queued_id order)")
ok "$([ -n "$f" ]; echo $?)" "signing: the order to the pharmacy is delivered"
if [ -n "$f" ]; then
	case $(pfenv_header "$f" Content-Type) in
	*multipart/signed*pkcs7-signature*) ok 0 "signing: it is multipart/signed" ;;
	*) ok 1 "signing: it is multipart/signed" ;;
	esac
	pfenv_message "$f" >"$T/order.delivered"
	openssl cms -verify -in "$T/order.delivered" -CAfile "$P/signing.pem" -out "$T/order.content" \
		>"$T/verify.out" 2>&1
	ok $? "signing: openssl cms -verify accepts the signature ($(tail -n 1 "$T/verify.out"))"
	check "signing: the signed content is the order" grep -q 'Aspirine 80 mg' "$T/order.content"
	sed 's/Aspirine 80 mg/Aspirine 81 mg/' "$T/order.delivered" >"$T/order.altered"
	openssl cms -verify -in "$T/order.altered" -CAfile "$P/signing.pem" -out /dev/null >/dev/null 2>&1
	ok "$([ $? -ne 0 ]; echo $?)" "signing: an altered order fails verification"
fi

# ==== 8. no clear text in the milter's log ====
! grep -Eiq 'LAPM50531218|0123456|diab' "$PFENV_LOG/milter.log"
ok $? "the milter's log holds no identifier nor clinical word"

pfenv_cleanup
trap - EXIT
check "no Postfix or milter process left" test -z "$(pfenv_leftovers)"
echo "1..$n"
if [ "$failed" -eq 0 ]; then
	[ -z "${KEEP:-}" ] && rm -rf "$T"
	exit 0
fi
echo "# kept $T for inspection"
exit 1
