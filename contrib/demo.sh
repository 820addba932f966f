#!/bin/sh
# demo.sh — clinimail in five minutes on a fresh Debian 12 (as root): install
# the dependencies, build, start a private Postfix on loopback with
# clinimail-milter and the shipped policy (policies/clinimail.conf) and an
# SMTP sink standing for the outside world, send the sample messages of
# policies/samples/ and print what happened to each, then leave everything
# running so that you can send more.
#
#   contrib/demo.sh [start] [--no-deps]   install, build, start, send the samples
#   contrib/demo.sh stop                  stop everything the demo started
#
# --no-deps skips contrib/install-deps.sh (apt-get).  The build goes to
# build/demo in the source tree; the running demo lives in /tmp/clinimail-demo
# (or $CLINIMAIL_DEMO_DIR): Postfix configuration and queue, the milter's
# socket and log, the sink's received mail.  Nothing else on the machine is
# touched: the system's own Postfix is neither configured nor started.
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
self=$srcdir/contrib/demo.sh
DEMO_DIR=${CLINIMAIL_DEMO_DIR:-/tmp/clinimail-demo}
STATE=$DEMO_DIR/demo.state
MARK=$DEMO_DIR/.clinimail-demo
BUILD=$srcdir/build/demo
SAMPLES=$srcdir/policies/samples

say() {
	printf '%s\n' "$*"
}

die() {
	printf 'demo.sh: %s\n' "$*" >&2
	exit 1
}

# pid_is_ours PID: the process exists and its command line names the demo folder.
pid_is_ours() {
	[ -n "$1" ] && [ -r "/proc/$1/cmdline" ] &&
		tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "$DEMO_DIR"
}

demo_stop() {
	if [ ! -f "$STATE" ]; then
		return 1
	fi
	. "$srcdir/tests/lib/postfix-env.sh"
	# shellcheck disable=SC1090
	. "$STATE"
	pid_is_ours "$PFENV_MILTER_PID" || PFENV_MILTER_PID=
	pid_is_ours "$PFENV_SINK_PID" || PFENV_SINK_PID=
	# shellcheck disable=SC2034 # read by pfenv_cleanup
	PFENV_EXTRA_PIDS= PFENV_POSTFIX_STARTED=1
	pfenv_cleanup
	rm -f "$STATE"
	return 0
}

usage() {
	sed -n '/^#   contrib/p' "$self" | sed 's/^# *//' >&2
	exit 2
}

cmd=start
deps=1
for a in "$@"; do
	case $a in
	start) cmd=start ;;
	stop) cmd=stop ;;
	--no-deps) deps= ;;
	*) usage ;;
	esac
done

[ "$(id -u)" -eq 0 ] || die "run me as root (apt-get, a private Postfix instance)"

if [ "$cmd" = stop ]; then
	if demo_stop; then
		say "clinimail demo stopped (its files stay in $DEMO_DIR until the next start)."
	else
		say "no clinimail demo is running ($STATE not found)."
	fi
	exit 0
fi

# ---- a previous demo ----
if [ -f "$STATE" ]; then
	say "Stopping the previous demo ..."
	demo_stop
fi
if [ -e "$DEMO_DIR" ]; then
	[ -f "$MARK" ] || die "$DEMO_DIR exists and is not a clinimail demo folder: move it away"
	rm -rf "$DEMO_DIR" || die "cannot remove $DEMO_DIR"
fi

# ---- dependencies and build ----
if [ -n "$deps" ]; then
	say "Installing the dependencies (contrib/install-deps.sh) ..."
	sh "$srcdir/contrib/install-deps.sh" >/tmp/clinimail-demo-deps.log 2>&1 || {
		tail -n 20 /tmp/clinimail-demo-deps.log >&2
		die "installing the dependencies failed (log: /tmp/clinimail-demo-deps.log)"
	}
fi
say "Building clinimail in $BUILD ..."
mkdir -p "$BUILD" || die "cannot create $BUILD"
blog=$BUILD/demo-build.log
: >"$blog"
if [ ! -x "$srcdir/configure" ]; then
	(cd "$srcdir" && ./autogen.sh) >>"$blog" 2>&1 || {
		tail -n 20 "$blog" >&2
		die "autogen.sh failed (log: $blog)"
	}
fi
if [ ! -f "$BUILD/Makefile" ]; then
	(cd "$BUILD" && "$srcdir/configure") >>"$blog" 2>&1 || {
		tail -n 20 "$blog" >&2
		die "configure failed (log: $blog)"
	}
fi
make -C "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" clinimail-milter clinimail clinimail-fax >>"$blog" 2>&1 || {
	tail -n 30 "$blog" >&2
	die "make failed (log: $blog)"
}
MILTER=$BUILD/clinimail-milter
FAXBRIDGE=$BUILD/clinimail-fax
CHECK=$BUILD/clinimail

# ---- the private mail system ----
. "$srcdir/tests/lib/postfix-env.sh"
pfenv_have_tools || die "$PFENV_MISSING is missing (run without --no-deps)"
mkdir -p "$DEMO_DIR" && touch "$MARK" || die "cannot create $DEMO_DIR"
pfenv_init "$DEMO_DIR" || die "cannot prepare $DEMO_DIR"
demo_failed() {
	rc=$?
	pfenv_cleanup
	say "demo.sh: failed; logs are in $PFENV_LOG and $PFENV_MAILLOG" >&2
	exit $rc
}
trap demo_failed EXIT

# The shipped policy, copied so that you can edit it and reload the milter
# (kill -USR1); only daemon settings change: log to a file (there is no
# syslog daemon on a bare machine), stay attached to the demo, and keep the
# audit trail in the demo folder.
POLICY=$DEMO_DIR/policy
mkdir -p "$POLICY" || exit 1
for f in "$srcdir"/policies/*; do
	case ${f##*/} in
	samples) ;;
	*) cp -R "$f" "$POLICY/" || exit 1 ;;
	esac
done
sed -e 's/^Syslog .*/Syslog no/' -e 's/^Background .*/Background no/' \
	"$srcdir/policies/clinimail.conf" >"$POLICY/clinimail.conf" || exit 1
CONF=$POLICY/clinimail.conf
# The milter listens on loopback TCP and stays root in the demo: the password
# notices of encrypted mail go through the private Postfix's sendmail(1), and
# Postfix takes -C (another configuration) from root only.  In production the
# milter runs as its own user (UserID) with the system's /usr/sbin/sendmail.
MPORT=$(pfenv_free_port) || die "no free port"
SOCK=inet:$MPORT@127.0.0.1
cat >"$DEMO_DIR/sendmail" <<EOF
#!/bin/sh
exec /usr/sbin/sendmail -C "$PFENV_CONF" "\$@"
EOF
chmod 0755 "$DEMO_DIR/sendmail" || exit 1
sed -i "s|^Sendmail[[:space:]].*|Sendmail $DEMO_DIR/sendmail|" "$CONF" || exit 1
echo "NotifyFrom clinimail@hopital.example" >>"$CONF" || exit 1
# The audit trail (every decision, no clinical content) in the demo folder.
AUDIT=
if grep -q '^#* *AuditStore[[:space:]]' "$CONF"; then
	AUDIT=$DEMO_DIR/audit
	mkdir -p "$AUDIT" && chown postfix "$AUDIT" || exit 1
	sed -i '/^AuditStore[[:space:]]/d' "$CONF" || exit 1
	echo "AuditStore sqlite:$AUDIT/audit.db" >>"$CONF"
fi

# Long-lived processes get their own session (setsid) so that closing the
# terminal does not stop them; Postfix's master detaches by itself.
setsid "$SMTP_SINK" -u nobody -d "$PFENV_SINK_DIR/%Y%m%d%H%M%S." "127.0.0.1:$PFENV_SINK_PORT" 100 \
	</dev/null >>"$PFENV_LOG/sink.out" 2>&1 &
PFENV_SINK_PID=$!
pfenv_wait_listen "$PFENV_SINK_PORT" 10 || die "smtp-sink does not start (see $PFENV_LOG/sink.out)"

# ---- the fax bridge, on its embedded default: an outbox folder ----
# Mail to NUMBER@fax.hopital.example that the milter approves (it adds an
# HMAC stamp with the key they share) goes through Postfix's pipe(8) to
# clinimail-fax, run as an unprivileged user (nobody here), which renders the
# fax (TIFF Class F) into the outbox; with "Backend hylafax:HOST:PORT" it
# would go to a real fax line through HylaFAX (man clinimail-fax).
FAXDIR=$DEMO_DIR/fax
mkdir -p "$FAXDIR/spool" "$FAXDIR/outbox" || exit 1
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$POLICY/fax-approval.key") ||
	exit 1
echo "FaxApprovalKey fax-approval.key" >>"$CONF" || exit 1
cp "$POLICY/fax-approval.key" "$FAXDIR/fax.key" || exit 1
# the bridge's notices reach the clinician through the same Postfix (SMTP
# AUTH faxbridge: Postfix takes another configuration, -C, from root only)
PFENV_USERS="$PFENV_USERS faxbridge"
echo "faxbridge | telecopie@hopital.example" >>"$POLICY/directories/sender-logins.txt"
cat >"$FAXDIR/sendmail" <<EOF
#!/bin/sh
from=
while [ \$# -gt 0 ]; do
	case \$1 in
	-f) from=\$2; shift 2 ;;
	--) shift; break ;;
	-*) shift ;;
	*) break ;;
	esac
done
exec swaks --server 127.0.0.1:$PFENV_SMTPD_PORT --auth PLAIN --auth-user faxbridge \\
	--auth-password "$(pfenv_password faxbridge)" --from "\$from" --to "\$(echo "\$@" | tr ' ' ',')" \\
	--data - --timeout 60 >>"$FAXDIR/sendmail.log" 2>&1
EOF
chmod 0755 "$FAXDIR/sendmail"
FAXCONF=$FAXDIR/clinimail-fax.conf
sed -e "s|^ApprovalKey .*|ApprovalKey $FAXDIR/fax.key|" \
	-e "s|^Backend .*|Backend spool:$FAXDIR/outbox|" \
	-e "s|^SpoolDirectory .*|SpoolDirectory $FAXDIR/spool|" \
	-e "s|^Ledger .*|Ledger $FAXDIR/ledger.db|" \
	-e "s|^Senders .*|Senders $POLICY/directories/fax-senders.txt|" \
	-e "s|^Pharmacies .*|Pharmacies $POLICY/directories/pharmacies.txt|" \
	-e "s|^ImagingServices .*|ImagingServices $POLICY/directories/imaging.txt|" \
	-e "s|^AuditStore .*|AuditStore sqlite:$FAXDIR/audit.db|" \
	-e "s|^Syslog .*|Syslog no|" \
	"$srcdir/policies/clinimail-fax.conf" >"$FAXCONF" || exit 1
printf 'Sendmail %s\nLogFile %s\n' "$FAXDIR/sendmail" "$PFENV_LOG/fax.log" >>"$FAXCONF"
touch "$PFENV_LOG/fax.log"
chown -R nobody "$FAXDIR" "$PFENV_LOG/fax.log" || exit 1
chmod 0700 "$FAXDIR/spool" "$FAXDIR/outbox"
chmod 0600 "$FAXDIR/fax.key"

pfenv_postfix_setup "inet:127.0.0.1:$MPORT" "transport_maps = inline:{fax.hopital.example=fax:}
fax_destination_recipient_limit = 1" || die "cannot write the Postfix configuration"
cat >>"$PFENV_CONF/master.cf" <<EOF
fax       unix  -       n       n       -       4       pipe
  user=nobody argv=$FAXBRIDGE deliver -c $FAXCONF -q \${queue_id} -f \${sender} -- \${recipient}
EOF
pfenv_milter_start "$SOCK" setsid "$MILTER" -f -c "$CONF" -p "$SOCK" ||
	die "clinimail-milter does not start (see $PFENV_LOG/milter.log)"
pfenv_postfix_start || die "Postfix does not start (see $PFENV_LOG/postfix.out)"

cat >"$STATE" <<EOF
PFENV_DIR='$PFENV_DIR'
PFENV_CONF='$PFENV_CONF'
PFENV_QUEUE='$PFENV_QUEUE'
PFENV_SINK_DIR='$PFENV_SINK_DIR'
PFENV_LOG='$PFENV_LOG'
PFENV_MAILLOG='$PFENV_MAILLOG'
PFENV_SMTPD_PORT='$PFENV_SMTPD_PORT'
PFENV_SINK_PORT='$PFENV_SINK_PORT'
PFENV_MILTER_PID='$PFENV_MILTER_PID'
PFENV_SINK_PID='$PFENV_SINK_PID'
EOF

say ""
say "clinimail-milter (pid $PFENV_MILTER_PID) runs behind a private Postfix on 127.0.0.1:$PFENV_SMTPD_PORT;"
say "the outside world is an SMTP sink that keeps every message it receives."
say "Sending the sample messages of policies/samples/ ..."

# ---- the samples ----
# outcome LOG: the server's reply to the end of DATA, one line each.
data_reply() {
	awk 'dot && /^ -> / {exit}
	     dot && /^(<-|<\*\*) / {sub(/^(<-|<\*\*) +/, ""); print}
	     /^ -> \.$/ {dot = 1}' "$1"
}

# trim_end: drop the empty lines at the end of the input.
trim_end() {
	awk '/^$/ {blank++; next} {while (blank > 0) {print ""; blank--}; print}'
}

# sink_file MESSAGE-ID: the received file holding that message (wait up to 15 s).
sink_file() {
	_n=150
	while [ "$_n" -gt 0 ]; do
		_f=$(pfenv_sink_find "$1" | head -n 1)
		if [ -n "$_f" ]; then
			echo "$_f"
			return 0
		fi
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# show_fax: what the fax bridge did with the last message (outbox, notice)
show_fax() {
	_w=100
	while [ "$_w" -gt 0 ] && [ -z "$(ls "$FAXDIR/outbox"/*.tif 2>/dev/null)" ]; do
		sleep 0.1
		_w=$((_w - 1))
	done
	_tif=$(ls -t "$FAXDIR/outbox"/*.tif 2>/dev/null | head -n 1)
	if [ -z "$_tif" ]; then
		say "      the fax bridge wrote nothing to the outbox: see $PFENV_LOG/fax.log"
		return
	fi
	say "      the fax bridge rendered it (TIFF Class F) into the outbox:"
	say "        $_tif ($(tiffinfo "$_tif" 2>/dev/null | grep -c 'TIFF Directory') pages)"
	runuser -u nobody -- "$FAXBRIDGE" track -1 -c "$FAXCONF" >>"$PFENV_LOG/fax.log" 2>&1
	_w=100
	_nf=
	while [ "$_w" -gt 0 ] && [ -z "$_nf" ]; do
		_nf=$(grep -l 'Fax written to the outbox' "$PFENV_SINK_DIR"/* 2>/dev/null | tail -n 1)
		sleep 0.1
		_w=$((_w - 1))
	done
	[ -n "$_nf" ] && say "      the sender's notice (French, then English): $_nf"
}

n=0
good=0
bad=
total=$(grep -c '^[^#[:space:]]' "$SAMPLES/SAMPLES")
while IFS='|' read -r file desc sender login rcpts; do
	case $file in '#'* | '') continue ;; esac
	file=$(echo "$file" | sed 's/^ *//; s/ *$//')
	desc=$(echo "$desc" | sed 's/^ *//; s/ *$//')
	sender=$(echo "$sender" | tr -d ' ')
	login=$(echo "$login" | tr -d ' ')
	rcpts=$(echo "$rcpts" | tr -d ' ')
	n=$((n + 1))
	log=$PFENV_LOG/swaks-$n.log
	say ""
	say "[$n/$total] $file"
	say "      $desc"
	if [ "$login" = - ]; then
		auth=
		say "      from $sender (no SMTP AUTH) to $(echo "$rcpts" | sed 's/,/, /g')"
	else
		auth=$(pfenv_auth "$login")
		say "      from $sender (SMTP AUTH $login) to $(echo "$rcpts" | sed 's/,/, /g')"
	fi
	# shellcheck disable=SC2086
	swaks --server "127.0.0.1:$PFENV_SMTPD_PORT" --from "$sender" --to "$rcpts" \
		--data "@$SAMPLES/$file" $auth >"$log" 2>&1
	reply=$(data_reply "$log")
	case $reply in
	2*)
		outcome=delivered
		mid=$(sed -n 's/^Message-ID: *//Ip' "$SAMPLES/$file" | head -n 1 | tr -d '\r')
		if f=$(sink_file "$mid"); then
			say "   => delivered; the outside world received it for:"
			for r in $(pfenv_rcpts "$f"); do
				case ",$rcpts," in
				*",$r,"*) say "        $r" ;;
				*) say "        $r   (added by clinimail)" ;;
				esac
			done
			hdrs=$(pfenv_message "$f" | awk '/^\r?$/ {exit}
				/^[ \t]/ {if (keep) {l = $0; sub(/\r$/, "", l); v = v l}; next}
				{if (keep) print v; keep = 0; l = $0; sub(/\r$/, "", l)
				 if (tolower(substr(l, 1, 12)) == "x-clinimail-") {keep = 1; v = l}}
				END {if (keep) print v}')
			if [ -n "$hdrs" ]; then
				say "      headers added:"
				printf '%s\n' "$hdrs" | sed 's/^/        /'
				case $hdrs in
				*"encrypted; ref="*)
					ref=$(printf '%s\n' "$hdrs" | sed -n 's/.*encrypted; ref=\(CM-[0-9A-Z-]*\).*/\1/p')
					subj=$(pfenv_header "$f" Subject |
						perl -MEncode -CS -ne 'print decode("MIME-Header", $_)')
					say "      encrypted: Subject now \"$subj\","
					say "      the text is in an AES-256 PDF; the original subject is inside"
					if nf=$(sink_file "$ref.password@"); then
						say "      password notice delivered to: $(pfenv_rcpts "$nf" | tr '\n' ' ')"
						say "        ($nf)"
					fi
					;;
				esac
			else
				# swaks ends the DATA with an empty line of its own: trailing
				# empty lines are not compared.
				sed '1,/^$/d' "$SAMPLES/$file" | tr -d '\r' | trim_end >"$PFENV_LOG/expected-body"
				if pfenv_body "$f" | tr -d '\r' | trim_end |
					cmp -s - "$PFENV_LOG/expected-body"; then
					say "      no header added, body identical to the sample: untouched"
				else
					say "      no header added (body differs from the sample: see $f)"
				fi
			fi
		else
			say "   => accepted by Postfix, but not (yet) received by the sink: see $PFENV_MAILLOG"
		fi
		case $rcpts in *@fax.hopital.example*) show_fax ;; esac
		;;
	[45]*)
		outcome=rejected
		say "   => rejected; the sender's mail client got:"
		printf '%s\n' "$reply" | sed 's/^/        /'
		;;
	*)
		outcome=failed
		say "   => the SMTP dialogue failed before the end of the message:"
		grep '^<\*\*\|^\*\*\*' "$log" | sed 's/^/        /'
		;;
	esac
	case $desc in
	*": $outcome"*) good=$((good + 1)) ;;
	*) bad="$bad $file" ;;
	esac
done <"$SAMPLES/SAMPLES"

# ---- leave it running ----
trap - EXIT INT TERM
say ""
say "$good of $n samples gave the outcome their description announces${bad:+ (not:$bad)}."
say ""
say "The demo keeps running (state in $DEMO_DIR)."
say "Send more mail (users jtremblay, mgagnon, secretariat; each sends as its own"
say "address, see policies/directories/sender-logins.txt), for example:"
say ""
say "  swaks --server 127.0.0.1:$PFENV_SMTPD_PORT $(pfenv_auth jtremblay) \\"
say "    --from dr.tremblay@hopital.example --to commandes@auxbonsoins.example \\"
say "    --data @$SAMPLES/02-ordonnance-pharmacie.eml"
say ""
say "or try a message offline, without sending it:"
say "  $CHECK check -c $CONF \\"
say "    --from dr.tremblay@hopital.example --auth jtremblay --rcpt commandes@auxbonsoins.example FILE.eml"
say ""
say "Delivered mail:  $PFENV_SINK_DIR/ (one file per message, envelope first)"
say "Faxes:           $FAXDIR/outbox/ (TIFF Class F + metadata; bridge log $PFENV_LOG/fax.log)"
say "Milter log:      $PFENV_LOG/milter.log (every decision; never any clinical text)"
say "Postfix log:     $PFENV_MAILLOG"
if [ -n "$AUDIT" ]; then
	say "Audit trail:     $CHECK audit list -c $CONF"
fi
say "Policy in use:   $CONF (edit, then: kill -USR1 $PFENV_MILTER_PID)"
say "Stop everything: $self stop"
exit 0
