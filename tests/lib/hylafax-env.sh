# hylafax-env.sh — a private, throw-away HylaFAX for tests: its own spool
# tree (a copy of the /var/spool/hylafax skeleton with /etc/hylafax copied to
# <spool>/etc) under a directory the caller gives, faxq, hfaxd on a free
# 127.0.0.1 port and faxgetty driving the software Class 1 modem of
# tests/fax/faxmodem (a pty; HylaFAX names /dev/pts/N "pts_N").  Every daemon
# runs with -q <spool>, so nothing is written to /var/spool/hylafax (see
# hfenv_system_changes); everything started is stopped by hfenv_cleanup
# (installed as an EXIT trap by hfenv_init).  Root is required.
#
# POSIX sh; source it, then:
#   hfenv_have_tools || skip "$HFENV_MISSING"   # also needs root
#   hfenv_init DIR                    # DIR must exist (e.g. from mktemp -d)
#   hfenv_start                       # spool, modem, faxq, hfaxd, faxgetty; waits for "ready"
#   "$HFAX_TOOL" -p "$HFENV_PORT" submit ...; hfenv_received NUMBER; hfenv_result NUMBER
#   hfenv_docq_files; hfenv_tmp_files; hfenv_leftovers; hfenv_system_changes
#   hfenv_stop (= hfenv_cleanup)      # also run by the EXIT trap
# Settings (environment, before hfenv_start): HFENV_SPEED (audio clock, 4),
#   HFENV_REQUEUE (seconds before a retry after busy/no answer/..., 5),
#   HFENV_WAIT_CARRIER (S7: seconds of line audio to wait for fax tones, 20),
#   HFENV_TRACE (SessionTracing, 0x4f), FAXMODEM (the modem binary),
#   HFENV_MODEM_OPTS (more faxmodem options, e.g. --verbose: the AT dialogue
#   and spandsp's trace go to $HFENV_LOG/faxmodem.log).
# The hfaxd user for the tests is $HFENV_USER (fax uid 1001, no password),
# with admin password $HFENV_ADMIN_PW (hfax-tool -a): HylaFAX lets only a
# privileged client DELE documents in docq/.
# Variables set: HFENV_DIR HFENV_SPOOL HFENV_OUT HFENV_LOG HFENV_PORT
#   HFENV_PTY HFENV_DEVID HFENV_MODEM_PID HFENV_FAXQ_PID HFENV_HFAXD_PID
#   HFENV_GETTY_PID

: "${HFENV_SPEED:=4}"
: "${HFENV_REQUEUE:=5}"
: "${HFENV_WAIT_CARRIER:=20}"
: "${HFENV_TRACE:=0x4f}"
HFENV_USER=clinimail
HFENV_ADMIN_PW=hfenv-Admin1
HFENV_SYS_SPOOL=/var/spool/hylafax
HFENV_SYS_ETC=/etc/hylafax
HFENV_SBIN=/usr/sbin
HFENV_LIBEXEC=/usr/lib/hylafax/bin

hfenv_log() {
	echo "# hfenv: $*" >&2
}

# hfenv_have_tools: 0 when HylaFAX's daemons (Debian's layout) and the test
# modem are there; HFENV_MISSING names what is not.
hfenv_have_tools() {
	for t in faxq hfaxd faxgetty; do
		if [ ! -x "$HFENV_SBIN/$t" ]; then
			HFENV_MISSING="$t (hylafax-server)"
			return 1
		fi
	done
	if [ ! -x "$HFENV_LIBEXEC/faxsend" ] || [ ! -x "$HFENV_LIBEXEC/tiffcheck" ]; then
		HFENV_MISSING="$HFENV_LIBEXEC/faxsend (Debian's hylafax-server layout)"
		return 1
	fi
	for t in perl ss; do
		if ! command -v "$t" >/dev/null 2>&1; then
			HFENV_MISSING=$t
			return 1
		fi
	done
	if [ ! -d "$HFENV_SYS_SPOOL/bin" ] || [ ! -f "$HFENV_SYS_ETC/dialrules" ]; then
		HFENV_MISSING="the HylaFAX spool skeleton ($HFENV_SYS_SPOOL, $HFENV_SYS_ETC)"
		return 1
	fi
	if ! id uucp >/dev/null 2>&1; then
		HFENV_MISSING="the uucp user"
		return 1
	fi
	: "${FAXMODEM:=${top_builddir:-.}/tests/fax/faxmodem}"
	if [ ! -x "$FAXMODEM" ]; then
		HFENV_MISSING="$FAXMODEM (make check builds it)"
		return 1
	fi
	return 0
}

# hfenv_free_port: print a TCP port free on 127.0.0.1 (the kernel's choice).
hfenv_free_port() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
			LocalPort => 0, Proto => "tcp") or die "no free port: $!\n";
		print $s->sockport, "\n";'
}

# hfenv_wait_listen PORT [SECONDS]
hfenv_wait_listen() {
	_n=$(( ${2:-10} * 10 ))
	while [ "$_n" -gt 0 ]; do
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# hfenv_snapshot: what the system's HylaFAX tree looks like (names, sizes,
# modification times) and the UUCP locks in /var/lock, to prove later that
# the tests left them alone.
hfenv_snapshot() {
	{
		find "$HFENV_SYS_SPOOL" "$HFENV_SYS_ETC" -printf '%p %y %s %T@\n'
		find /var/lock/ -maxdepth 1 -name 'LCK..*' -printf '%p\n'
	} 2>/dev/null | sort
}

# hfenv_init DIR: lay out DIR and install the cleanup trap.
hfenv_init() {
	HFENV_DIR=$(cd "$1" && pwd) || return 1
	HFENV_SPOOL=$HFENV_DIR/spool
	HFENV_OUT=$HFENV_DIR/fax-out
	HFENV_LOG=$HFENV_DIR/log
	HFENV_PORT=
	HFENV_PTY=
	HFENV_DEVID=
	HFENV_MODEM_PID=
	HFENV_FAXQ_PID=
	HFENV_HFAXD_PID=
	HFENV_GETTY_PID=
	# the daemons run as uucp: they must be able to walk into DIR
	chmod 0755 "$HFENV_DIR" || return 1
	mkdir -p "$HFENV_OUT" "$HFENV_LOG" || return 1
	hfenv_snapshot >"$HFENV_LOG/system-before.txt"
	trap hfenv_cleanup EXIT
	trap 'exit 130' INT TERM
}

# hfenv_spool_setup: the private spool tree.
hfenv_spool_setup() {
	_s=$HFENV_SPOOL
	mkdir -p "$_s" || return 1
	for _d in archive bin client config dev docq doneq etc info log pollq recvq sendq \
		status tmp lock; do
		mkdir -p "$_s/$_d" || return 1
	done
	cp -p "$HFENV_SYS_SPOOL"/bin/* "$_s/bin/" || return 1
	# PLATFORM-NOTES: /etc/hylafax must be visible as <spool>/etc (systemd
	# bind-mounts it); a copy does the same without touching the system.
	cp -Rp "$HFENV_SYS_ETC"/. "$_s/etc/" || return 1
	# Debian's /usr/sbin/faxsend, tiffcheck, faxinfo … are hylafax_wrapper,
	# which bind-mounts /etc/hylafax over /var/spool/hylafax/etc around each
	# run: use the real programs (faxq's SendFaxCmd below; SBIN for the
	# scripts), and give the daemons a PATH whose mount/umount refuse and
	# log, so that a wrapper reached anyway shows up in $HFENV_LOG/guard.log.
	mkdir -p "$HFENV_DIR/sbin" "$HFENV_DIR/guard" || return 1
	for _f in "$HFENV_LIBEXEC"/*; do
		ln -sf "$_f" "$HFENV_DIR/sbin/" || return 1
	done
	sed -i "s|^SBIN=.*|SBIN='$HFENV_DIR/sbin'|" "$_s/etc/setup.cache" || return 1
	: >"$HFENV_LOG/guard.log" && chmod 0666 "$HFENV_LOG/guard.log" || return 1
	for _f in mount umount; do
		printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$_f" "$HFENV_LOG/guard.log" \
			>"$HFENV_DIR/guard/$_f"
		chmod 0755 "$HFENV_DIR/guard/$_f"
	done
	# Failed jobs always run NotifyCmd, which mails NOTIFYADDR through the
	# system's sendmail: record the call instead.
	cat >"$_s/bin/notify" <<'EOF'
#!/bin/sh
# test stub written by tests/lib/hylafax-env.sh: record, never send mail
echo "notify $*" >>log/notify.log
exit 0
EOF
	chmod 0755 "$_s/bin/notify"
	cat >"$_s/etc/config" <<EOF
# faxq configuration written by tests/lib/hylafax-env.sh (tests only)
LogFacility:		daemon
CountryCode:		1
AreaCode:		819
LongDistancePrefix:	1
InternationalPrefix:	011
DialStringRules:	etc/dialrules
ServerTracing:		1
UUCPLockDir:		$_s/lock
NotifyCmd:		bin/notify
SendFaxCmd:		$HFENV_LIBEXEC/faxsend
PageChop:		none
MaxConcurrentCalls:	1
EOF
	# The test user gets fax uid 1001, no password, and an admin password
	# (crypt form), which hfax_delete needs to DELE documents in docq/; any
	# other user from 127.0.0.1 is an anonymous client.
	_crypt=$(perl -e 'print crypt($ARGV[0], q($6$hfenvsalt$))' "$HFENV_ADMIN_PW") || return 1
	cat >"$_s/etc/hosts.hfaxd" <<EOF
^$HFENV_USER@127\.0\.0\.1\$:1001::$_crypt
127.0.0.1
EOF
	chown -R uucp:uucp "$_s" || return 1
	chmod 0755 "$_s" || return 1
	chmod 1777 "$_s/tmp" || return 1
	chmod 0600 "$_s/etc/hosts.hfaxd" || return 1
	chown root:root "$_s/bin" "$_s/bin/"* || return 1
}

# hfenv_modem_config: etc/config.<devid> for the pty modem.  Class 1 as in
# HylaFAX's config/class1 and config/iaxmodem; short waits for the tests.
hfenv_modem_config() {
	cat >"$HFENV_SPOOL/etc/config.$HFENV_DEVID" <<EOF
# modem configuration written by tests/lib/hylafax-env.sh (tests only)
LogFacility:		daemon
CountryCode:		1
AreaCode:		819
LongDistancePrefix:	1
InternationalPrefix:	011
DialStringRules:	etc/dialrules
FAXNumber:		+1.819.555.9999
LocalIdentifier:	"+1 819 555 9999"
ServerTracing:		1
SessionTracing:		$HFENV_TRACE
LogFileMode:		0600
DeviceMode:		0600
RingsBeforeAnswer:	0
SpeakerVolume:		off
GettyArgs:		""
UUCPLockDir:		$HFENV_SPOOL/lock
TagLineFormat:		""
PageChop:		none
# retry delays after a failed call: read by faxsend from this file, not by faxq
JobReqBusy:		$HFENV_REQUEUE
JobReqNoAnswer:		$HFENV_REQUEUE
JobReqNoCarrier:	$HFENV_REQUEUE
JobReqNoFCon:		$HFENV_REQUEUE
JobReqDataConn:		$HFENV_REQUEUE
JobReqError:		$HFENV_REQUEUE
JobReqProto:		$HFENV_REQUEUE
JobReqOther:		$HFENV_REQUEUE
ModemType:		Class1
ModemRate:		19200
ModemFlowControl:	xonxoff
ModemReadyCmds:		ATH0
ModemWaitTimeCmd:	ATS7=$HFENV_WAIT_CARRIER
ModemDialResponseTimeout: 60000
ModemResetDelay:	200
PollModemWait:		2
PollLockWait:		2
ModemSoftResetCmdDelay:	200
ModemDTRDropDelay:	20
Class1Cmd:		AT+FCLASS=1
Class1PPMWaitCmd:	AT+FTS=7
Class1TCFWaitCmd:	AT+FTS=7
Class1EOPWaitCmd:	AT+FTS=9
Class1SwitchingCmd:	AT+FRS=7
Class1RecvAbortOK:	200
Class1FrameOverhead:	4
Class1RecvIdentTimer:	40000
Class1TCFMaxNonZero:	10
Class1TCFMinRun:	1000
Class1TMConnectDelay:	400
EOF
	chown uucp:uucp "$HFENV_SPOOL/etc/config.$HFENV_DEVID"
}

# hfenv_modem_start: the software modem; sets HFENV_PTY and HFENV_DEVID.
hfenv_modem_start() {
	rm -f "$HFENV_DIR/pty"
	# shellcheck disable=SC2086 # HFENV_MODEM_OPTS: several words
	"$FAXMODEM" --speed "$HFENV_SPEED" --outdir "$HFENV_OUT" --pty-file "$HFENV_DIR/pty" \
		${HFENV_MODEM_OPTS:-} >/dev/null 2>>"$HFENV_LOG/faxmodem.log" &
	HFENV_MODEM_PID=$!
	_n=50
	while [ ! -s "$HFENV_DIR/pty" ] && [ "$_n" -gt 0 ]; do
		kill -0 "$HFENV_MODEM_PID" 2>/dev/null || break
		sleep 0.1
		_n=$((_n - 1))
	done
	HFENV_PTY=$(cat "$HFENV_DIR/pty" 2>/dev/null)
	case $HFENV_PTY in
	/dev/pts/[0-9]*) ;;
	*)
		hfenv_log "the fax modem did not start:"
		sed 's/^/#   /' "$HFENV_LOG/faxmodem.log" >&2
		return 1
		;;
	esac
	# faxApp::devToID: drop /dev/, then '/' -> '_'
	HFENV_DEVID=$(echo "${HFENV_PTY#/dev/}" | tr / _)
}

# hfenv_start: everything, in order; returns when the modem is ready to send.
hfenv_start() {
	hfenv_spool_setup || { hfenv_log "spool setup failed"; return 1; }
	hfenv_modem_start || return 1
	hfenv_modem_config || return 1
	HFENV_PORT=$(hfenv_free_port) || return 1
	# faxq -D and hfaxd -d stay in the foreground, so their pids are ours.
	PATH="$HFENV_DIR/guard:$PATH" "$HFENV_SBIN/faxq" -D -q "$HFENV_SPOOL" \
		>>"$HFENV_LOG/faxq.log" 2>&1 &
	HFENV_FAXQ_PID=$!
	_n=50
	while [ ! -p "$HFENV_SPOOL/FIFO" ] && [ "$_n" -gt 0 ]; do
		sleep 0.1
		_n=$((_n - 1))
	done
	[ -p "$HFENV_SPOOL/FIFO" ] || { hfenv_log "faxq did not start"; return 1; }
	# -l before -i, or hfaxd listens on every address
	PATH="$HFENV_DIR/guard:$PATH" "$HFENV_SBIN/hfaxd" -d -q "$HFENV_SPOOL" \
		-l 127.0.0.1 -i "$HFENV_PORT" >>"$HFENV_LOG/hfaxd.log" 2>&1 &
	HFENV_HFAXD_PID=$!
	hfenv_wait_listen "$HFENV_PORT" 10 || { hfenv_log "hfaxd does not listen"; return 1; }
	PATH="$HFENV_DIR/guard:$PATH" "$HFENV_SBIN/faxgetty" -q "$HFENV_SPOOL" "$HFENV_PTY" \
		>>"$HFENV_LOG/faxgetty.log" 2>&1 &
	HFENV_GETTY_PID=$!
	hfenv_wait_ready 30 || {
		hfenv_log "the modem never became ready; status: $(cat "$HFENV_SPOOL/status/$HFENV_DEVID" 2>/dev/null)"
		return 1
	}
}

# hfenv_wait_ready [SECONDS]: faxgetty reports the modem idle (status file).
hfenv_wait_ready() {
	_n=$(( ${1:-30} * 10 ))
	while [ "$_n" -gt 0 ]; do
		if grep -q "Running and idle" "$HFENV_SPOOL/status/$HFENV_DEVID" 2>/dev/null; then
			return 0
		fi
		kill -0 "$HFENV_GETTY_PID" 2>/dev/null || return 1
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# hfenv_kill_wait PID SECONDS: SIGTERM, wait, then SIGKILL.
hfenv_kill_wait() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
	_n=$(( ${2:-10} * 10 ))
	while kill -0 "$1" 2>/dev/null && [ "$_n" -gt 0 ]; do
		sleep 0.1
		_n=$((_n - 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		hfenv_log "process $1 ignored SIGTERM; killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	return 0
}

# hfenv_spool_pids: processes working in the private spool (their current
# or root directory is in it): faxq, faxsend, hfaxd and its children, faxgetty.
hfenv_spool_pids() {
	[ -n "${HFENV_SPOOL:-}" ] || return 0
	for _p in /proc/[0-9]*; do
		_c=$(readlink "$_p/cwd" 2>/dev/null)
		_r=$(readlink "$_p/root" 2>/dev/null)
		case "$_c/" in "$HFENV_SPOOL"/*) echo "${_p#/proc/}"; continue ;; esac
		case "$_r/" in "$HFENV_SPOOL"/*) echo "${_p#/proc/}" ;; esac
	done
}

hfenv_cleanup() {
	_rc=$?
	trap - EXIT
	hfenv_kill_wait "$HFENV_GETTY_PID" 10
	hfenv_kill_wait "$HFENV_HFAXD_PID" 5
	hfenv_kill_wait "$HFENV_FAXQ_PID" 10
	# faxsend (started by faxq) and hfaxd's per-client children
	for _p in $(hfenv_spool_pids); do
		kill -TERM "$_p" 2>/dev/null
	done
	sleep 0.2
	for _p in $(hfenv_spool_pids); do
		kill -KILL "$_p" 2>/dev/null
	done
	hfenv_kill_wait "$HFENV_MODEM_PID" 5
	HFENV_GETTY_PID=''
	HFENV_HFAXD_PID=''
	HFENV_FAXQ_PID=''
	HFENV_MODEM_PID=
	return $_rc
}

# hfenv_stop: stop everything started (the same as hfenv_cleanup).
hfenv_stop() {
	hfenv_cleanup
}

# hfenv_leftovers: processes of this environment still running; empty is good.
hfenv_leftovers() {
	for _p in $(hfenv_spool_pids); do
		echo "$_p $(tr '\0' ' ' <"/proc/$_p/cmdline" 2>/dev/null)"
	done
	for _p in $HFENV_MODEM_PID $HFENV_FAXQ_PID $HFENV_HFAXD_PID $HFENV_GETTY_PID; do
		kill -0 "$_p" 2>/dev/null && echo "$_p still running"
	done
	pgrep -af "$HFENV_DIR" 2>/dev/null | grep -v -e "pgrep -af" -e "^$$ " || true
	return 0
}

# hfenv_system_changes: differences in /var/spool/hylafax and /etc/hylafax
# since hfenv_init; empty is good.
hfenv_system_changes() {
	hfenv_snapshot >"$HFENV_LOG/system-after.txt"
	diff "$HFENV_LOG/system-before.txt" "$HFENV_LOG/system-after.txt" | grep '^[<>]' || true
	sed 's/^/attempted: /' "$HFENV_LOG/guard.log" 2>/dev/null
	grep -F "$HFENV_SYS_SPOOL" /proc/self/mountinfo || true
}

# hfenv_docq_files / hfenv_tmp_files: documents left in the private spool.
hfenv_docq_files() {
	find "$HFENV_SPOOL/docq" -type f ! -name seqf 2>/dev/null
}
hfenv_tmp_files() {
	find "$HFENV_SPOOL/tmp" -type f 2>/dev/null
}

# hfenv_received NUMBER: the TIFF files the far end received from NUMBER.
hfenv_received() {
	ls -1 "$HFENV_OUT/$1"-*.tif 2>/dev/null
}

# hfenv_result NUMBER [SECONDS]: wait for, and print, the far end's result
# line(s) for calls to NUMBER ("number=… pages=… result=… remote_id=…").
hfenv_result() {
	_n=$(( ${2:-10} * 10 ))
	while [ "$_n" -gt 0 ]; do
		if ls "$HFENV_OUT/$1"-*.result >/dev/null 2>&1; then
			cat "$HFENV_OUT/$1"-*.result
			return 0
		fi
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# hfenv_session_logs: HylaFAX's session logs (log/c*), for diagnostics.
hfenv_session_logs() {
	ls -1 "$HFENV_SPOOL"/log/c* 2>/dev/null
}
