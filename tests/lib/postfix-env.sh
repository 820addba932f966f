# postfix-env.sh — a private, throw-away Postfix for tests, benchmarks and
# demos: its own config and queue under a directory the caller gives, an
# smtpd on a free 127.0.0.1 port, SMTP AUTH from a private sasldb, relaying to
# an smtp-sink on loopback that dumps every message it receives, and a milter
# attached to both smtpd and non-smtpd mail.  Nothing is written outside that
# directory and everything started is stopped by pfenv_cleanup (installed as
# an EXIT trap by pfenv_init).
#
# POSIX sh; source it, then:
#   pfenv_init DIR                     # DIR must exist (e.g. from mktemp -d)
#   pfenv_postfix_setup MILTER         # MILTER: unix:/path or inet:host:port (Postfix syntax)
#   pfenv_sink_start; pfenv_postfix_start
#   pfenv_milter_start SOCKET CMD ARGS...   # SOCKET as the milter spells it
#   swaks --server 127.0.0.1:$PFENV_SMTPD_PORT ... $(pfenv_auth jtremblay)
#   pfenv_wait_delivered N [SECONDS]; pfenv_sink_files; pfenv_rcpts FILE; pfenv_body FILE
#   pfenv_cleanup                      # also run by the EXIT trap
# Variables set: PFENV_DIR PFENV_CONF PFENV_QUEUE PFENV_SINK_DIR PFENV_LOG
#   PFENV_MAILLOG PFENV_SMTPD_PORT PFENV_SINK_PORT PFENV_MILTER_PID PFENV_SINK_PID
# Test users (SASL, realm = the host name mta.$PFENV_REALM, so {auth_authen}
# is the bare login): jtremblay mgagnon secretariat, with
# the password given by pfenv_password USER.

PFENV_REALM=clinimail.test
PFENV_USERS="jtremblay mgagnon secretariat"
: "${POSTFIX:=postfix}"
: "${SMTP_SINK:=smtp-sink}"
: "${SWAKS:=swaks}"

pfenv_log() {
	echo "# pfenv: $*" >&2
}

# pfenv_have_tools: 0 when Postfix, smtp-sink, swaks and saslpasswd2 are there.
pfenv_have_tools() {
	for t in "$POSTFIX" "$SMTP_SINK" "$SWAKS" saslpasswd2 postconf perl ss; do
		if ! command -v "$t" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$t" ]; then
			PFENV_MISSING=$t
			return 1
		fi
	done
	return 0
}

# pfenv_free_port: print a TCP port free on 127.0.0.1 (the kernel's choice).
pfenv_free_port() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
			LocalPort => 0, Proto => "tcp") or die "no free port: $!\n";
		print $s->sockport, "\n";'
}

# pfenv_wait_listen PORT [SECONDS]: wait until something listens on a TCP port.
pfenv_wait_listen() {
	_n=$(( ${2:-10} * 10 ))
	while [ "$_n" -gt 0 ]; do
		if ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# pfenv_init DIR: lay out DIR and install the cleanup trap.
pfenv_init() {
	PFENV_DIR=$(cd "$1" && pwd) || return 1
	PFENV_CONF=$PFENV_DIR/postfix
	PFENV_QUEUE=$PFENV_DIR/queue
	PFENV_SINK_DIR=$PFENV_DIR/sink
	PFENV_LOG=$PFENV_DIR/log
	PFENV_MAILLOG=$PFENV_DIR/maillog
	PFENV_MILTER_PID=
	PFENV_SINK_PID=
	PFENV_POSTFIX_STARTED=
	PFENV_EXTRA_PIDS=
	# Postfix daemons and the milter run as other users: they must be able
	# to walk into DIR (mktemp -d makes it 0700).
	chmod 0755 "$PFENV_DIR" || return 1
	mkdir -p "$PFENV_CONF/sasl" "$PFENV_QUEUE" "$PFENV_DIR/data" "$PFENV_SINK_DIR" \
		"$PFENV_LOG" || return 1
	chown postfix "$PFENV_DIR/data" || return 1
	# smtp-sink drops to nobody before writing its dumps.
	chown nobody "$PFENV_SINK_DIR" || return 1
	PFENV_SMTPD_PORT=$(pfenv_free_port) || return 1
	PFENV_SINK_PORT=$(pfenv_free_port) || return 1
	trap pfenv_cleanup EXIT
	trap 'exit 130' INT TERM
}

pfenv_password() {
	echo "pw-$1-Test1"
}

# pfenv_auth USER: swaks options to authenticate as USER with AUTH PLAIN.
pfenv_auth() {
	echo "--auth PLAIN --auth-user $1 --auth-password $(pfenv_password "$1")"
}

# pfenv_sasl_setup: a private sasldb with the test users, read by smtpd.
pfenv_sasl_setup() {
	_db=$PFENV_CONF/sasl/sasldb2
	for _u in $PFENV_USERS; do
		pfenv_password "$_u" | saslpasswd2 -p -c -f "$_db" -u "mta.$PFENV_REALM" "$_u" ||
			return 1
	done
	chgrp postfix "$_db" && chmod 0640 "$_db" || return 1
	# Debian's Postfix reads <config_directory>/sasl/smtpd.conf and ignores
	# cyrus_sasl_config_path.
	cat >"$PFENV_CONF/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $_db
EOF
}

# pfenv_postfix_setup MILTER [EXTRA_MAIN_CF_LINES]: write main.cf and master.cf.
# MILTER in Postfix syntax (unix:/path, inet:127.0.0.1:port, inet:[::1]:port),
# or "" for no milter.
pfenv_postfix_setup() {
	_milter=$1
	_daemon_dir=$(postconf -dh daemon_directory)
	_shlib_dir=$(postconf -dh shlib_directory)
	_meta_dir=$(postconf -dh meta_directory)
	cat >"$PFENV_CONF/main.cf" <<EOF
# Private test instance written by tests/lib/postfix-env.sh
compatibility_level = 3.6
queue_directory = $PFENV_QUEUE
data_directory = $PFENV_DIR/data
daemon_directory = $_daemon_dir
shlib_directory = $_shlib_dir
meta_directory = $_meta_dir
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.$PFENV_REALM
mydomain = $PFENV_REALM
myorigin = \$myhostname
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$PFENV_SINK_PORT
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
maillog_file = $PFENV_MAILLOG
maillog_file_prefixes = $PFENV_DIR
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_local_domain =
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
milter_protocol = 6
milter_default_action = tempfail
smtpd_milters = $_milter
non_smtpd_milters = $_milter
EOF
	if [ -n "${2:-}" ]; then
		printf '%s\n' "$2" >>"$PFENV_CONF/main.cf"
	fi
	cat >"$PFENV_CONF/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$PFENV_SMTPD_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	pfenv_sasl_setup
}

# pfenv_postfix_set NAME=VALUE...: change main.cf (use pfenv_postfix_reload after).
pfenv_postfix_set() {
	postconf -c "$PFENV_CONF" -e "$@"
}

pfenv_master_pid() {
	_pf=$PFENV_QUEUE/pid/master.pid
	[ -s "$_pf" ] && tr -d ' \n' <"$_pf"
}

pfenv_postfix_start() {
	"$POSTFIX" -c "$PFENV_CONF" start >>"$PFENV_LOG/postfix.out" 2>&1 || {
		pfenv_log "postfix start failed:"
		sed 's/^/#   /' "$PFENV_LOG/postfix.out" >&2
		return 1
	}
	PFENV_POSTFIX_STARTED=1
	pfenv_wait_listen "$PFENV_SMTPD_PORT" 15 || {
		pfenv_log "smtpd does not listen on $PFENV_SMTPD_PORT"
		return 1
	}
}

pfenv_postfix_reload() {
	"$POSTFIX" -c "$PFENV_CONF" reload >>"$PFENV_LOG/postfix.out" 2>&1
}

# pfenv_postfix_stop: stop the instance and wait for its master to be gone.
pfenv_postfix_stop() {
	[ -n "$PFENV_POSTFIX_STARTED" ] || return 0
	_mp=$(pfenv_master_pid)
	"$POSTFIX" -c "$PFENV_CONF" stop >>"$PFENV_LOG/postfix.out" 2>&1
	if [ -n "$_mp" ]; then
		_n=150
		while kill -0 "$_mp" 2>/dev/null && [ "$_n" -gt 0 ]; do
			sleep 0.1
			_n=$((_n - 1))
		done
		if kill -0 "$_mp" 2>/dev/null; then
			pfenv_log "postfix master $_mp did not stop; killing it"
			kill -9 "$_mp" 2>/dev/null
		fi
	fi
	PFENV_POSTFIX_STARTED=
}

# pfenv_sink_start [SMTP-SINK OPTIONS]: an smtp-sink that writes one file per
# message into $PFENV_SINK_DIR (headers X-Rcpt-Args etc., then the message).
pfenv_sink_start() {
	"$SMTP_SINK" -u nobody -d "$PFENV_SINK_DIR/%Y%m%d%H%M%S." "$@" \
		"127.0.0.1:$PFENV_SINK_PORT" 100 >>"$PFENV_LOG/sink.out" 2>&1 &
	PFENV_SINK_PID=$!
	pfenv_wait_listen "$PFENV_SINK_PORT" 10 || {
		pfenv_log "smtp-sink does not listen on $PFENV_SINK_PORT"
		return 1
	}
}

pfenv_sink_stop() {
	pfenv_kill_wait "$PFENV_SINK_PID" 5
	PFENV_SINK_PID=
}

# pfenv_kill_wait PID SECONDS: SIGTERM, wait, then SIGKILL.
pfenv_kill_wait() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
	_n=$(( ${2:-10} * 10 ))
	while kill -0 "$1" 2>/dev/null && [ "$_n" -gt 0 ]; do
		sleep 0.1
		_n=$((_n - 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		pfenv_log "process $1 ignored SIGTERM; killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	return 0
}

# pfenv_milter_start SOCKET CMD ARGS...: start a milter in the background
# (its stdout and stderr appended to $PFENV_LOG/milter.log), after removing a
# stale socket file; wait until it listens.  SOCKET as libmilter spells it:
# unix:/path, local:/path, inet:PORT@HOST, inet6:PORT@HOST.
pfenv_milter_start() {
	_sock=$1
	shift
	case $_sock in
	unix:* | local:*)
		_path=${_sock#*:}
		if [ -S "$_path" ]; then
			rm -f "$_path"
		fi
		;;
	esac
	"$@" >>"$PFENV_LOG/milter.log" 2>&1 &
	PFENV_MILTER_PID=$!
	# A sanitizer build needs tens of seconds to compile its vocabularies.
	_n=$(( ${PFENV_START_TIMEOUT:-120} * 10 ))
	while [ "$_n" -gt 0 ]; do
		if ! kill -0 "$PFENV_MILTER_PID" 2>/dev/null; then
			pfenv_log "milter exited at startup:"
			tail -n 20 "$PFENV_LOG/milter.log" | sed 's/^/#   /' >&2
			PFENV_MILTER_PID=
			return 1
		fi
		case $_sock in
		unix:* | local:*) [ -S "$_path" ] && return 0 ;;
		inet*:*)
			_p=${_sock#*:}
			_p=${_p%%@*}
			ss -Hltn "sport = :$_p" 2>/dev/null | grep -q . && return 0
			;;
		*) return 0 ;;
		esac
		sleep 0.1
		_n=$((_n - 1))
	done
	pfenv_log "milter does not listen on $_sock"
	return 1
}

# pfenv_milter_stop [SECONDS]: libmilter needs a few seconds to exit on SIGTERM.
pfenv_milter_stop() {
	pfenv_kill_wait "$PFENV_MILTER_PID" "${1:-15}"
	PFENV_MILTER_PID=
}

# pfenv_track PID: have pfenv_cleanup stop another process started by the caller.
pfenv_track() {
	PFENV_EXTRA_PIDS="$PFENV_EXTRA_PIDS $1"
}

pfenv_cleanup() {
	_rc=$?
	trap - EXIT
	pfenv_postfix_stop
	pfenv_milter_stop 15
	pfenv_sink_stop
	for _p in $PFENV_EXTRA_PIDS; do
		pfenv_kill_wait "$_p" 5
	done
	PFENV_EXTRA_PIDS=
	return $_rc
}

# pfenv_leftovers: print the processes still running that belong to this
# environment (by pid or by a command line naming PFENV_DIR); empty is good.
pfenv_leftovers() {
	pgrep -af "$PFENV_DIR" 2>/dev/null | grep -v "pgrep -af" || true
	for _p in $PFENV_MILTER_PID $PFENV_SINK_PID $PFENV_EXTRA_PIDS; do
		kill -0 "$_p" 2>/dev/null && echo "$_p still running"
	done
	_mp=$(pfenv_master_pid 2>/dev/null)
	if [ -n "$_mp" ] && kill -0 "$_mp" 2>/dev/null; then
		echo "postfix master $_mp still running"
	fi
	return 0
}

# pfenv_sink_count: how many messages the sink has received.
pfenv_sink_count() {
	find "$PFENV_SINK_DIR" -type f | wc -l | tr -d ' '
}

# pfenv_wait_delivered N [SECONDS]: wait until the sink holds at least N messages.
pfenv_wait_delivered() {
	_n=$(( ${2:-20} * 10 ))
	while [ "$(pfenv_sink_count)" -lt "$1" ] && [ "$_n" -gt 0 ]; do
		sleep 0.1
		_n=$((_n - 1))
	done
	[ "$(pfenv_sink_count)" -ge "$1" ]
}

# pfenv_flush: ask the queue manager to deliver now (deferred mail included).
pfenv_flush() {
	"$POSTFIX" -c "$PFENV_CONF" flush >>"$PFENV_LOG/postfix.out" 2>&1
}

# pfenv_sink_by_id QUEUEID [SECONDS]: wait for, and print, the file of the
# message this Postfix queued as QUEUEID (found by its Received header).
pfenv_sink_by_id() {
	_n=$(( ${2:-20} * 10 ))
	while [ "$_n" -gt 0 ]; do
		_f=$(grep -lE "\(Postfix\) with [A-Z]+ id $1;?\$" "$PFENV_SINK_DIR"/* 2>/dev/null | head -n 1)
		if [ -n "$_f" ]; then
			echo "$_f"
			return 0
		fi
		sleep 0.1
		_n=$((_n - 1))
	done
	return 1
}

# pfenv_sink_files: the received message files, oldest first.
pfenv_sink_files() {
	ls -1tr "$PFENV_SINK_DIR" 2>/dev/null | sed "s|^|$PFENV_SINK_DIR/|"
}

# pfenv_sink_clear: forget what the sink received so far.
pfenv_sink_clear() {
	find "$PFENV_SINK_DIR" -type f -exec rm -f {} +
}

# pfenv_sink_find STRING: the received files containing STRING.
pfenv_sink_find() {
	grep -lF -- "$1" "$PFENV_SINK_DIR"/* 2>/dev/null
}

# pfenv_rcpts FILE: the envelope recipients of one received message, one a
# line, lower case, without <>, sorted.
pfenv_rcpts() {
	sed -n 's/^X-Rcpt-Args: *<\([^>]*\)>.*/\1/p' "$1" | tr 'A-Z' 'a-z' | sort
}

# pfenv_message FILE: the message as delivered (smtp-sink's own X- lines removed).
pfenv_message() {
	awk 'skip && /^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):/ {next}
	     {skip = 0; print}' skip=1 "$1"
}

# pfenv_body FILE: the body of a received message (after the first empty
# line), with LF line ends; smtp-sink's own empty line after the message is
# left out.
pfenv_body() {
	pfenv_message "$1" | awk '
		body {if (held) print line; line = $0; held = 1; next}
		/^\r?$/ {body = 1}
		END {if (held && line != "") print line}'
}

# pfenv_header FILE NAME: the (unfolded) values of a header of a received message.
pfenv_header() {
	pfenv_message "$1" | awk -v n="$2" '
		/^\r?$/ {exit}
		/^[ \t]/ {if (keep) {l = $0; sub(/\r$/, "", l); v = v l}; next}
		{
			if (keep) print v
			keep = 0; l = $0; sub(/\r$/, "", l)
			if (tolower(substr(l, 1, length(n) + 1)) == tolower(n) ":") {
				keep = 1; v = substr(l, length(n) + 2); sub(/^[ \t]+/, "", v)
			}
		}
		END {if (keep) print v}'
}

# pfenv_smtp_session [PORT] < SCRIPT: run several SMTP transactions on one
# connection (swaks does one).  SCRIPT lines: "AUTH user" (AUTH PLAIN with
# pfenv_password), "MAIL addr", "RCPT addr", "DATA file" (LF or CRLF file,
# dot-stuffed here), "RSET", "NOOP".  EHLO is sent first and QUIT last.
# Prints every server reply line prefixed by the command it answers
# ("MAIL 250 2.1.0 Ok", "DOT 550-5.7.1 ..." for the end of DATA).
pfenv_smtp_session() {
	PFENV_PW_PATTERN=$(pfenv_password @USER@)
	export PFENV_PW_PATTERN
	perl -MIO::Socket::INET -MMIME::Base64 -e '
		use strict; use warnings;
		my $port = shift;
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port,
			Proto => "tcp", Timeout => 60) or die "connect 127.0.0.1:$port: $!\n";
		$s->autoflush(1);
		sub reply { my $tag = shift; my $last;
			while (my $l = <$s>) { $l =~ s/\r?\n$//; print "$tag $l\n"; $last = $l;
				last if $l =~ /^\d{3} /; }
			die "connection lost\n" unless defined $last;
			return substr($last, 0, 3); }
		sub cmd { my ($tag, $c) = @_; print $s "$c\r\n"; return reply($tag); }
		reply("CONNECT");
		cmd("EHLO", "EHLO client.test");
		while (my $line = <STDIN>) {
			chomp $line; next if $line =~ /^\s*(#|$)/;
			my ($verb, $arg) = split(/\s+/, $line, 2); $verb = uc $verb;
			if ($verb eq "AUTH") {
				(my $pw = $ENV{PFENV_PW_PATTERN}) =~ s/\@USER\@/$arg/g;
				cmd("AUTH", "AUTH PLAIN " . encode_base64("\0$arg\0$pw", ""));
			} elsif ($verb eq "MAIL") { cmd("MAIL", "MAIL FROM:<$arg>");
			} elsif ($verb eq "RCPT") { cmd("RCPT", "RCPT TO:<$arg>");
			} elsif ($verb eq "DATA") {
				next unless cmd("DATA", "DATA") eq "354";
				open(my $fh, "<", $arg) or die "$arg: $!\n"; binmode $fh;
				while (my $l = <$fh>) { $l =~ s/\r?\n$//; $l = ".$l" if $l =~ /^\./;
					print $s "$l\r\n"; }
				close $fh; print $s ".\r\n"; reply("DOT");
			} elsif ($verb eq "RSET" || $verb eq "NOOP") { cmd($verb, $verb);
			} else { die "pfenv_smtp_session: unknown command $verb\n"; }
		}
		cmd("QUIT", "QUIT");' "${1:-$PFENV_SMTPD_PORT}"
}

# pfenv_listen_nodelay PORT: print the TCP_NODELAY flag (1 or 0) of the socket
# listening on 127.0.0.1/::1 PORT, read from the owning process with
# pidfd_getfd (Linux >= 5.6, root).  Prints nothing when it cannot tell.
pfenv_listen_nodelay() {
	_u=$(ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\),fd=\([0-9]*\).*/\1 \2/p' | head -n 1)
	[ -n "$_u" ] || return 0
	perl -MSocket=IPPROTO_TCP,TCP_NODELAY -e '
		my ($pid, $fd) = @ARGV;
		my $pidfd = syscall(434, $pid + 0, 0);         # pidfd_open
		exit 0 if $pidfd < 0;
		my $dup = syscall(438, $pidfd, $fd + 0, 0);    # pidfd_getfd
		exit 0 if $dup < 0;
		open(my $fh, "+<&=", $dup) or exit 0;
		my $v = getsockopt($fh, IPPROTO_TCP, TCP_NODELAY) or exit 0;
		print unpack("i", $v), "\n";' $_u 2>/dev/null
}
