# audit-suite.sh — the audit trail end to end, sourced by audit.sh (SQLite)
# and audit-pgsql.sh (PostgreSQL): corpus messages through a real Postfix and
# clinimail-milter, then the store is checked (one record per decision, the
# engine's rules and action), verified, tampered with, grepped for the
# messages' patient identifiers, reported in HTML (rendered by headless
# Chromium), and taken down: tempfail by default, spool and catch-up with
# AuditFailure spool:DIR.  Not a test by itself (not in TESTS).
#
# The caller sets: T (its temp dir, made by mktemp -d), STORE (the store
# spec), STORE_KIND (sqlite | pgsql), and defines:
#   store_sql STATEMENT   run SQL on the store (as its administrator)
#   store_down / store_up make the store unavailable / available again
#   store_dump            print the whole store's content (for the identifier grep)
# then calls audit_suite.  TAP output; ok/skip helpers below.

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
skip() {
	n=$((n + 1))
	echo "ok $n # SKIP $1"
}
diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}

CLI=${CLINIMAIL:-$top_builddir/clinimail}
MILTER=${CLINIMAIL_MILTER:-$top_builddir/clinimail-milter}
MANIFEST=$top_srcdir/tests/corpus/MANIFEST

conf_set() { # conf_set FILE KEY VALUE: replace the key's line, or add it.
	if grep -Eq "^$2([[:space:]]|\$)" "$1"; then
		sed -i -E "s|^$2([[:space:]].*)?\$|$2 $3|" "$1"
	else
		printf '%s %s\n' "$2" "$3" >>"$1"
	fi
}

# The cases: corpus file and auth login ("-": relayed by 127.0.0.1, a trusted
# relay in this test's policy), one line of the MANIFEST each.
CASES="noncl-cafeteria-menu.eml:-
order-covid-pharmacy.eml:-
clinical-pelletier-gmail.eml:-
closure-patients-to.eml:-
sensitive-onco-lapointe-exception.eml:-
order-auth-tremblay.eml:mgagnon
imaging-irm-fax.eml:-
lab-roy-phone.eml:-"

manifest_line() { # manifest_line FILE AUTH
	grep -v '^#' "$MANIFEST" | awk -F' [|] ' -v f="$1" -v a="$2" '$1 == f && $3 == a {print; exit}'
}
mfield() { # mfield LINE N
	printf '%s\n' "$1" | awk -F' [|] ' -v n="$2" '{print $n}'
}

# send NAME FILE FROM RCPTS AUTH: one SMTP transaction; the reply to the end of
# DATA (all its lines) in $T/out/NAME.reply.
send() {
	{
		[ "$5" != "-" ] && echo "AUTH $5"
		echo "MAIL $3"
		printf '%s\n' "$4" | tr ',' '\n' | sed 's/^/RCPT /'
		echo "DATA $2"
	} >"$T/out/$1.script"
	pfenv_smtp_session <"$T/out/$1.script" >"$T/out/$1.session" 2>&1
	sed -n 's/^DOT //p' "$T/out/$1.session" >"$T/out/$1.reply"
}
reply_code() {
	head -n 1 "$T/out/$1.reply" | cut -c1-3
}

# records: the store as JSON (an array), through the officers' tool.
records() {
	"$CLI" audit export --json --store "$STORE" 2>/dev/null
}
record_count() {
	records | jq '[.[] | select(.kind == "decision")] | length' 2>/dev/null || echo -1
}
wait_records() { # wait_records COUNT [SECONDS]
	_w=$(( ${2:-15} * 10 ))
	while [ "$(record_count)" != "$1" ] && [ "$_w" -gt 0 ]; do
		sleep 0.1
		_w=$((_w - 1))
	done
	[ "$(record_count)" = "$1" ]
}

start_milter() {
	pfenv_milter_start "unix:$RUN/milter.sock" "$MILTER" -f -c "$CONF" -u postfix \
		-p "unix:$RUN/milter.sock"
}

audit_suite() {
	mkdir -p "$T/out" "$T/msg" || return 1
	cp -R "$top_srcdir/policies" "$T/policies" || return 1
	CONF=$T/policies/clinimail.conf
	conf_set "$CONF" Syslog no
	conf_set "$CONF" Background no
	conf_set "$CONF" TrustedRelays 127.0.0.1
	conf_set "$CONF" Rule-patients-visible hold
	conf_set "$CONF" AuditStore "$STORE"
	conf_set "$CONF" AuditFailure tempfail
	RUN=$T/run
	mkdir -p "$RUN" && chown postfix:postfix "$RUN"
	# The password notices of mail encrypted for patients: the milter runs as
	# postfix, and Postfix's sendmail takes another configuration (-C) from
	# root only, so they are kept here (tests/integration/encrypt.sh delivers
	# them for real).
	mkdir -p "$T/notices" && chown postfix "$T/notices"
	cat >"$T/sendmail-keep" <<EOF
#!/bin/sh
cat >"$T/notices/notice.\$\$"
EOF
	chmod 0755 "$T/sendmail-keep"
	conf_set "$CONF" Sendmail "$T/sendmail-keep"

	pfenv_postfix_setup "unix:$RUN/milter.sock" || return 1
	pfenv_sink_start || return 1
	pfenv_postfix_start || return 1
	start_milter
	ok $? "clinimail-milter starts with AuditStore $STORE_KIND"

	# ---- 1. the corpus cases ----
	i=0
	expected_n=0
	: >"$T/secrets"
	: >"$T/expect"
	for c in $CASES; do
		i=$((i + 1))
		f=${c%%:*}
		auth=${c#*:}
		line=$(manifest_line "$f" "$auth")
		if [ -z "$line" ]; then
			ok 1 "case $f ($auth) found in the MANIFEST"
			continue
		fi
		from=$(mfield "$line" 2)
		rcpts=$(mfield "$line" 4)
		secrets=$(mfield "$line" 8)
		[ -n "$secrets" ] && [ "$secrets" != "-" ] &&
			printf '%s\n' "$secrets" | tr ',' '\n' >>"$T/secrets"
		mid="audit-$i.$$@audit.test"
		# The message with a Message-ID of our own (the record is found by it).
		{
			echo "Message-ID: <$mid>"
			grep -v -i '^Message-ID:' "$top_srcdir/tests/corpus/msg/$f"
		} >"$T/msg/$i.eml"
		# What the engine decides for the same envelope (clinimail check).
		set -- $(printf '%s\n' "$rcpts" | tr ',' ' ')
		rargs=
		for r in "$@"; do rargs="$rargs --rcpt $r"; done
		aargs=
		[ "$auth" != "-" ] && aargs="--auth $auth"
		# shellcheck disable=SC2086
		"$CLI" check --json -c "$CONF" --from "$from" --client-ip 127.0.0.1 $aargs $rargs \
			"$T/msg/$i.eml" >"$T/out/$i.check" 2>/dev/null
		send "$i" "$T/msg/$i.eml" "$from" "$rcpts" "$auth"
		code=$(reply_code "$i")
		want=$(jq -r '.action' "$T/out/$i.check")
		case $want:$code in
		accept:250 | hold:250 | reject:5??) s=0 ;;
		*) s=1 ;;
		esac
		ok $s "$f: SMTP answer $code matches the engine's $want"
		[ $s -eq 0 ] || sed 's/^/#   /' "$T/out/$i.session"
		expected_n=$((expected_n + 1))
		echo "$i $mid" >>"$T/expect"
	done

	wait_records "$expected_n"
	ok $? "one record per decision ($expected_n, got $(record_count))"
	records >"$T/out/records.json"

	while read -r i mid; do
		f=$(sed -n "${i}p" <<EOF
$CASES
EOF
)
		f=${f%%:*}
		rec=$(jq -c --arg m "$mid" '[.[] | select(.message_id == $m)]' "$T/out/records.json")
		cnt=$(printf '%s' "$rec" | jq 'length')
		want_action=$(jq -r 'if .action == "accept" then
				(if (.added_recipients | length) > 0 or (.changes // "") != "" or
				    ([.headers[]? | select(.name == "X-Clinimail-Fax-Approval")] | length) > 0
				 then "modified" else "accepted" end)
			elif .action == "reject" then "rejected" elif .action == "hold" then "held"
			else "tempfailed" end' "$T/out/$i.check")
		want_rules=$(jq -r '.rules | sort | join(",")' "$T/out/$i.check")
		got_action=$(printf '%s' "$rec" | jq -r '.[0].action')
		got_rules=$(printf '%s' "$rec" | jq -r '[.[0].rules[].rule] | sort | join(",")')
		[ "$cnt" = 1 ] && [ "$got_action" = "$want_action" ] && [ "$got_rules" = "$want_rules" ]
		ok $? "$f: record action $got_action rules [$got_rules] (engine: $want_action [$want_rules])"
		case $f in
		*exception*)
			[ "$(printf '%s' "$rec" | jq -r '.[0].exception')" = true ]
			ok $? "$f: the sender's exception is recorded"
			;;
		esac
		if [ "$(reply_code "$i")" != 250 ]; then
			ref=$(grep -o 'CM-[0-9]\{8\}-[A-Z0-9]\{8\}' "$T/out/$i.reply" | head -n 1)
			"$CLI" audit show "$ref" --store "$STORE" >"$T/out/$i.show" 2>&1 &&
				grep -q "^message-id: *$mid" "$T/out/$i.show"
			ok $? "$f: the reference in the bounce ($ref) finds the record"
		fi
	done <"$T/expect"

	jq -e '[.[] | select(.kind == "decision") | .queue_id != "" and .sender != "" and
		(.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")) and
		(.body_sha256 | test("^[0-9a-f]{64}$"))] | all' "$T/out/records.json" >/dev/null
	ok $? "every record has its time (UTC), queue id, sender and body SHA-256"
	grep -q ' audit: ref=CM-' "$PFENV_LOG/milter.log"
	ok $? "each record is also a log line"

	"$CLI" audit verify --store "$STORE" >"$T/out/verify1" 2>&1
	ok $? "audit verify passes ($(cat "$T/out/verify1"))"

	# ---- 2. tampering: one row altered ----
	id=$(jq '[.[] | select(.action == "rejected")][0].id' "$T/out/records.json")
	store_sql "UPDATE audit_record SET action = 'accepted' WHERE id = $id" >/dev/null
	"$CLI" audit verify --store "$STORE" >"$T/out/verify2" 2>&1
	rc=$?
	[ $rc -eq 1 ] && grep -q "record id $id " "$T/out/verify2"
	ok $? "after an SQL UPDATE of row $id verify fails there: $(head -n 1 "$T/out/verify2")"
	store_sql "UPDATE audit_record SET action = 'rejected' WHERE id = $id" >/dev/null
	"$CLI" audit verify --store "$STORE" >/dev/null 2>&1
	ok $? "restored, verify passes again"

	# ---- 3. the officers' views, and no identifier anywhere ----
	"$CLI" audit list --store "$STORE" >"$T/out/list" 2>&1
	[ "$(grep -c ' CM-' "$T/out/list")" -eq "$expected_n" ]
	ok $? "audit list shows every decision"
	"$CLI" audit list --store "$STORE" --action rejected --domain gmail.com >"$T/out/list2" 2>&1 &&
		grep -q 'dr.pfortin@gmail.com(webmail)' "$T/out/list2" &&
		! grep -qv ' rejected ' "$T/out/list2"
	ok $? "audit list filters by action and recipient domain"
	"$CLI" audit list --store "$STORE" --rule webmail --sender dr.tremblay@hopital.example \
		>"$T/out/list3" 2>&1 && [ "$(wc -l <"$T/out/list3")" -ge 1 ] &&
		! grep -qv 'webmail:' "$T/out/list3"
	ok $? "audit list filters by rule and sender"
	"$CLI" audit stats --store "$STORE" >"$T/out/stats" 2>&1 &&
		grep -q "^decisions: $expected_n" "$T/out/stats" && grep -q 'per rule' "$T/out/stats"
	ok $? "audit stats"
	"$CLI" audit export --csv --store "$STORE" -o "$T/out/export.csv" 2>/dev/null &&
		[ "$(grep -c '"decision"' "$T/out/export.csv")" -eq "$expected_n" ]
	ok $? "audit export --csv"

	rejected=$(jq '[.[] | select(.kind == "decision" and .action == "rejected")] | length' \
		"$T/out/records.json")
	held=$(jq '[.[] | select(.kind == "decision" and .action == "held")] | length' \
		"$T/out/records.json")
	"$CLI" audit report --html "$T/out/report.html" --store "$STORE" >/dev/null 2>&1 &&
		grep -q "id=\"total-decisions\">$expected_n<" "$T/out/report.html" &&
		grep -q "id=\"total-rejected\">$rejected<" "$T/out/report.html" &&
		grep -q "id=\"total-held\">$held<" "$T/out/report.html" &&
		grep -q '<svg id="chart-days"' "$T/out/report.html" &&
		! grep -Eqi '(src|href)=|<script|@import|url\(' "$T/out/report.html"
	ok $? "audit report --html: totals ($expected_n decisions, $rejected rejected, $held held), charts, no external resource"

	CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
	if [ -n "$CHROMIUM" ]; then
		mkdir -p "$T/chromium/home"
		# Its own HOME: Chromium writes under ~/.config and ~/.cache whatever
		# --user-data-dir says.
		HOME=$T/chromium/home XDG_CONFIG_HOME=$T/chromium/home/.config \
			XDG_CACHE_HOME=$T/chromium/home/.cache \
			timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
			--disable-background-networking --disable-component-update --disable-sync \
			--no-first-run --user-data-dir="$T/chromium/profile" --screenshot="$T/out/report.png" \
			--window-size=1200,1600 "file://$T/out/report.html" >"$T/out/chromium.log" 2>&1
		size=$(stat -c %s "$T/out/report.png" 2>/dev/null || echo 0)
		[ "$size" -gt 20000 ] && [ "$(head -c 8 "$T/out/report.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ]
		ok $? "headless Chromium renders the report to a PNG ($size bytes)"
	else
		skip "chromium not installed (contrib/install-deps.sh installs it)"
	fi

	store_dump >"$T/out/dump" 2>&1
	hits=
	sort -u "$T/secrets" | while read -r s; do
		[ -n "$s" ] || continue
		for f in "$T/out/dump" "$PFENV_LOG/milter.log" "$T/out/export.csv" \
			"$T/out/records.json" "$T/out/report.html" "$T/out/list" "$T/out/stats"; do
			# hex hashes may contain a short digit string by chance: not for digits-only
			# secrets in the hash-bearing files, which are checked without the hashes.
			if printf '%s' "$s" | grep -q '^[0-9]*$'; then
				sed -E 's/[0-9a-f]{64}//g' "$f" | grep -qF -- "$s" && echo "$s in ${f##*/}"
			else
				grep -qF -- "$s" "$f" && echo "$s in ${f##*/}"
			fi
		done
	done >"$T/out/hits"
	hits=$(cat "$T/out/hits")
	[ -z "$hits" ] && [ -s "$T/secrets" ]
	ok $? "no patient identifier of the messages ($(sort -u "$T/secrets" | wc -l) secrets) in the store, log, exports or report"
	[ -n "$hits" ] && diag "$hits"

	# ---- 4. store outage, tempfail (default) ----
	before=$(record_count)
	store_down
	sleep 3 # the writer's health check notices within about a second
	i=outage1
	f=$T/msg/1.eml
	send "$i" "$f" service.alimentaire@hopital.example amicale.retraites.hopital@gmail.com -
	grep -q '^451 4.7.1' "$T/out/$i.reply"
	ok $? "store down: mail is tempfailed ($(head -n 1 "$T/out/$i.reply"))"
	grep -q 'audit: store .* unavailable' "$PFENV_LOG/milter.log"
	ok $? "the outage is logged"
	store_up
	sleep 3
	send outage2 "$f" service.alimentaire@hopital.example amicale.retraites.hopital@gmail.com -
	[ "$(reply_code outage2)" = 250 ]
	ok $? "store back: mail accepted again"
	wait_records $((before + 1))
	ok $? "nothing lost: exactly one more record (the tempfailed attempt has none)"
	"$CLI" audit verify --store "$STORE" >"$T/out/verify3" 2>&1
	ok $? "verify passes after the outage ($(cat "$T/out/verify3"))"

	# ---- 5. store outage with AuditFailure spool:DIR ----
	pfenv_milter_stop 15
	mkdir -p "$T/spool" && chown postfix "$T/spool"
	conf_set "$CONF" AuditFailure "spool:$T/spool"
	start_milter
	ok $? "milter restarted with AuditFailure spool"
	before=$(record_count)
	store_down
	sleep 3
	send spool1 "$f" service.alimentaire@hopital.example amicale.retraites.hopital@gmail.com -
	send spool2 "$T/msg/3.eml" dr.tremblay@hopital.example dr.pfortin@gmail.com -
	[ "$(reply_code spool1)" = 250 ] && [ "$(reply_code spool2)" = 550 ]
	ok $? "store down, spool mode: mail is decided as usual (250, 550)"
	_w=100
	while [ "$(cat "$T"/spool/*.audit 2>/dev/null | wc -l)" -lt 2 ] && [ $_w -gt 0 ]; do
		sleep 0.1
		_w=$((_w - 1))
	done
	[ "$(cat "$T"/spool/*.audit 2>/dev/null | wc -l)" -eq 2 ]
	ok $? "both records are in the spool"
	store_up
	wait_records $((before + 2)) 20
	ok $? "store back: the spooled records are caught up"
	_w=100
	while ls "$T"/spool/*.audit >/dev/null 2>&1 && [ $_w -gt 0 ]; do
		sleep 0.1
		_w=$((_w - 1))
	done
	! ls "$T"/spool/*.audit >/dev/null 2>&1
	ok $? "the spool is empty again"
	"$CLI" audit verify --store "$STORE" >"$T/out/verify4" 2>&1
	ok $? "verify passes after the catch-up ($(cat "$T/out/verify4"))"

	# ---- 6. the HMAC key: guarded, and bound to the store ----
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/audit.key"
	chmod 0644 "$T/audit.key"
	cp "$CONF" "$CONF.keyed"
	conf_set "$CONF.keyed" AuditKey "$T/audit.key"
	"$MILTER" -n -c "$CONF.keyed" >"$T/out/key-n" 2>&1
	[ $? -ne 0 ] && grep -q 'AuditKey.*readable or writable by others' "$T/out/key-n"
	ok $? "a world-readable AuditKey stops the configuration check: $(head -n 1 "$T/out/key-n")"
	chmod 0600 "$T/audit.key"
	pfenv_milter_stop 15
	: >"$T/out/keyed.log"
	pfenv_milter_start "unix:$RUN/milter.sock" "$MILTER" -f -c "$CONF.keyed" -u postfix \
		-p "unix:$RUN/milter.sock" >/dev/null 2>&1
	# The socket is opened before the store is checked (that happens after
	# the privilege drop): the milter may be seen listening for a moment
	# before it refuses and exits.  Wait for the refusal.
	_w=600
	while ! grep -q 'chain mode' "$PFENV_LOG/milter.log" && [ $_w -gt 0 ]; do
		sleep 0.1
		_w=$((_w - 1))
	done
	_w=300
	while [ -n "$PFENV_MILTER_PID" ] && kill -0 "$PFENV_MILTER_PID" 2>/dev/null && [ $_w -gt 0 ]; do
		sleep 0.1
		_w=$((_w - 1))
	done
	_alive=0
	[ -n "$PFENV_MILTER_PID" ] && kill -0 "$PFENV_MILTER_PID" 2>/dev/null && _alive=1
	pfenv_milter_stop 15
	[ $_alive -eq 0 ] && grep -q 'chain mode' "$PFENV_LOG/milter.log"
	ok $? "a key added to an unkeyed store is refused at startup (the chain mode is the store's)"
	start_milter
	ok $? "milter restarted without the key"

	# ---- 7. retention ----
	"$CLI" audit purge --store "$STORE" --before 2000-01-01 >"$T/out/purge0" 2>&1 &&
		grep -q 'nothing to purge' "$T/out/purge0"
	ok $? "purge of nothing older than 2000"
	total=$(records | jq 'length')
	"$CLI" audit purge --store "$STORE" --before 2999-01-01 >"$T/out/purge1" 2>&1 &&
		grep -q "purged $total record" "$T/out/purge1"
	ok $? "purge of everything: $(cat "$T/out/purge1")"
	"$CLI" audit verify --store "$STORE" >"$T/out/verify5" 2>&1
	ok $? "verify passes after the purge, through the anchor ($(cat "$T/out/verify5"))"
	send after-purge "$f" service.alimentaire@hopital.example amicale.retraites.hopital@gmail.com -
	wait_records 1 && "$CLI" audit verify --store "$STORE" >/dev/null 2>&1
	ok $? "a new record after the purge chains on the anchor"

	return 0
}

# audit_suite_end: stop everything (the caller's own servers first, by its
# store_stop_all), check nothing is left, print the plan.  Returns non-zero
# when a test failed.
audit_suite_end() {
	pfenv_cleanup
	command -v store_stop_all >/dev/null 2>&1 && store_stop_all
	left=$(pfenv_leftovers)
	[ -z "$left" ]
	ok $? "no process left running"
	! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error' "$PFENV_LOG/milter.log"
	ok $? "no sanitizer report in the milter's log"
	[ -n "$left" ] && diag "$left"
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
