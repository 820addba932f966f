#!/bin/sh
# run-corpus.sh — run every case of tests/corpus/MANIFEST through
# `clinimail check --json` and compare the verdict with the expectation:
# the action (and the exit status that goes with it), the set of rules that
# fired, the recipients added, and for every reject the reply itself (each
# rejecting rule named, French before English, a CM- reference, no patient
# identifier).  Output is TAP, for automake's TAP driver.
#
# Usage: run-corpus.sh [PATTERN...]   only the cases whose file name contains
#                                     one of the patterns
# Environment: top_srcdir, top_builddir (default: this script's ../..),
#              CLINIMAIL (the binary, default $top_builddir/clinimail).
#
# Failures are "not ok" lines with "# got …" diagnostics; the script itself
# exits 0 once the plan has run (the TAP driver counts the "not ok" lines).

here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$here/../..}"
: "${top_builddir:=$here/../..}"
corpus=$top_srcdir/tests/corpus
manifest=$corpus/MANIFEST
conf=$top_srcdir/policies/clinimail.conf
bin=${CLINIMAIL:-$top_builddir/clinimail}

if [ ! -x "$bin" ]; then
	echo "1..0 # SKIP clinimail not built"
	exit 0
fi
if ! command -v jq >/dev/null 2>&1; then
	echo "Bail out! jq is required (contrib/install-deps.sh installs it)"
	exit 1
fi
if [ ! -r "$manifest" ]; then
	echo "Bail out! cannot read $manifest"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corpus.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

trim() {
	printf '%s' "$1" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//'
}

# A comma-separated list as a sorted, de-duplicated, lower-case comma list;
# "-" or empty gives "".
normset() {
	case $1 in -|'') return 0 ;; esac
	printf '%s\n' "$1" | tr ',' '\n' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' |
		tr '[:upper:]' '[:lower:]' | grep -v '^$' | sort -u | paste -sd, -
}

# Does the case (its file name) match one of the patterns given on the
# command line?  (kept one per line in $patterns: "$@" is reused below)
patterns=
for p in "$@"; do
	patterns="$patterns
$p"
done
selected() {
	[ -z "$patterns" ] && return 0
	printf '%s\n' "$patterns" | {
		while IFS= read -r p; do
			[ -n "$p" ] || continue
			case $1 in *"$p"*) exit 0 ;; esac
		done
		exit 1
	}
}

# ---- pass 1: the plan
n=0
while IFS= read -r line || [ -n "$line" ]; do
	case $line in '#'* | '') continue ;; esac
	file=$(trim "${line%%|*}")
	selected "$file" || continue
	n=$((n + 1))
done <"$manifest"
echo "1..$n"

# ---- pass 2: run each case
i=0
nfail=0
while IFS= read -r line || [ -n "$line" ]; do
	case $line in '#'* | '') continue ;; esac
	oldifs=$IFS
	IFS='|'
	set -f
	# shellcheck disable=SC2086 # split on '|' on purpose
	set -- $line
	set +f
	IFS=$oldifs
	file=$(trim "${1:-}")
	sender=$(trim "${2:-}")
	auth=$(trim "${3:-}")
	rcpts=$(trim "${4:-}")
	exp_action=$(trim "${5:-}")
	exp_rules=$(normset "$(trim "${6:--}")")
	exp_added=$(normset "$(trim "${7:--}")")
	secrets=$(trim "${8:--}")
	checks=$(trim "${9:--}")
	selected "$file" || continue
	i=$((i + 1))
	label="$file"
	[ "$auth" != - ] && [ -n "$auth" ] && label="$label [auth $auth]"
	printf '%s\n' "$label" >"$tmp/label"

	# build the command line
	set -- check -c "$conf" --from "$sender"
	[ "$auth" != - ] && [ -n "$auth" ] && set -- "$@" --auth "$auth"
	oldifs=$IFS
	IFS=','
	set -f
	for r in $rcpts; do
		IFS=$oldifs
		r=$(trim "$r")
		[ -n "$r" ] && set -- "$@" --rcpt "$r"
	done
	set +f
	IFS=$oldifs
	set -- "$@" --json "$corpus/msg/$file"

	diag=$tmp/diag
	: >"$diag"
	fail() { printf '# %s\n' "$*" >>"$diag"; }

	"$bin" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?

	# (slurped: jq -e alone succeeds on an empty output)
	if ! jq -es 'length == 1 and (.[0] | type == "object")' <"$tmp/out" >/dev/null 2>&1; then
		fail "got no JSON object (exit status $rc)"
		head -c 600 "$tmp/out" | sed 's/^/#   stdout: /' >>"$diag"
		head -c 600 "$tmp/err" | sed 's/^/#   stderr: /' >>"$diag"
	else
		j=$tmp/out
		action=$(jq -r '.action // "(none)"' "$j")
		rules=$(jq -r '[.rules[]? | if type == "object" then (.rule // .id // "?") else . end]
			| map(ascii_downcase) | unique | join(",")' "$j")
		added=$(jq -r '[.added_recipients[]?] | map(ascii_downcase) | unique | join(",")' "$j")
		jq -r '.reply | if type == "array" then join("\n") elif . == null then "" else tostring end' \
			"$j" >"$tmp/reply"
		jq -r '[.headers[]? | "\(.name // ""): \(.value // "")"] | join("\n")' "$j" >"$tmp/headers"

		[ "$action" = "$exp_action" ] || fail "got action $action, expected $exp_action"
		case $exp_action in
		accept) exp_rc=0 ;; reject) exp_rc=1 ;; hold) exp_rc=2 ;; *) exp_rc=3 ;;
		esac
		[ "$rc" -eq "$exp_rc" ] || fail "got exit status $rc, expected $exp_rc ($exp_action)"
		[ "$rules" = "$exp_rules" ] ||
			fail "got rules [${rules}], expected [${exp_rules}]"
		[ "$added" = "$exp_added" ] ||
			fail "got added recipients [${added}], expected [${exp_added}]"

		if [ "$action" = reject ]; then
			# the rules whose own action is reject; without "hits", the fired
			# rules but those that only add or warn by default
			rej=$(jq -r 'if (.hits | type) == "array"
				then [.hits[] | select(.action == "reject") | .rule] | unique | join(" ")
				else [.rules[]? | select(. != "archives-copy" and . != "subject")] | join(" ") end' "$j")
			for r in $rej; do
				grep -qiF -- "[$r]" "$tmp/reply" || fail "reply does not name [$r]"
			done
			awk 'BEGIN { RS = "\001" } {
				s = tolower($0); f = index(s, "refus"); e = index(s, "reject")
				exit !(f > 0 && e > 0 && f < e) }' "$tmp/reply" ||
				fail "reply is not French (\"refus\") before English (\"reject\")"
			grep -qF 'CM-' "$tmp/reply" || fail "reply has no CM- reference"
		fi

		if [ "$secrets" != - ] && [ -n "$secrets" ]; then
			oldifs=$IFS
			IFS=','
			set -f
			for s in $secrets; do
				IFS=$oldifs
				s=$(trim "$s")
				[ -n "$s" ] || continue
				if grep -qiF -- "$s" "$tmp/reply"; then
					fail "reply reveals the patient identifier \"$s\""
				fi
				if grep -qiF -- "$s" "$tmp/headers"; then
					fail "an added header reveals the patient identifier \"$s\""
				fi
			done
			set +f
			IFS=$oldifs
		fi

		if [ "$checks" != - ] && [ -n "$checks" ]; then
			oldifs=$IFS
			IFS=','
			set -f
			for c in $checks; do
				IFS=$oldifs
				c=$(trim "$c")
				case $c in
				untouched)
					content=$(jq -r '.content // "non-clinical" | tostring' "$j")
					for cc in $(printf '%s' "$content" | tr ',' ' '); do
						case $cc in
						non-clinical | sensitive) ;;
						*) fail "got content [$content], expected non-clinical" ;;
						esac
					done
					nh=$(jq -r '[.headers[]?] | length' "$j")
					[ "$nh" -eq 0 ] || fail "got $nh added header(s), expected none (untouched):" \
						"$(tr '\n' ';' <"$tmp/headers")"
					[ -z "$added" ] || fail "got added recipients [$added], expected none (untouched)"
					;;
				reply:*)
					want=${c#reply:}
					grep -qiF -- "$want" "$tmp/reply" || fail "reply does not contain \"$want\""
					;;
				header:*)
					want=${c#header:}
					jq -e --arg h "$want" \
						'[.headers[]? | select((.name // "" | ascii_downcase) == ($h | ascii_downcase))] | length > 0' \
						"$j" >/dev/null || fail "no header $want added"
					;;
				encrypted:*)
					want=${c#encrypted:}
					got=$(jq -r '.encryption // "none"' "$j")
					[ "$got" = "$want" ] || fail "encryption $got, expected $want"
					;;
				class:*)
					kv=${c#class:}
					addr=${kv%%=*}
					want=${kv#*=}
					got=$(jq -r --arg a "$addr" '.recipients[$a] // (.recipients | to_entries[]?
						| select(.key | ascii_downcase == ($a | ascii_downcase)) | .value) // "(none)"
						| if type == "object" then (.class // "?") else . end' "$j" | head -n 1)
					[ "$got" = "$want" ] || fail "recipient $addr got class $got, expected $want"
					;;
				exception)
					jq -e '.exception != null and .exception != "" and .exception != false' "$j" \
						>/dev/null || fail "no exception recorded"
					;;
				'') ;;
				*) fail "unknown check \"$c\" in MANIFEST" ;;
				esac
			done
			set +f
			IFS=$oldifs
		fi

		if [ -s "$diag" ]; then
			printf '#   content: %s; recipients: %s\n' "$(jq -r '.content // "?"' "$j")" \
				"$(jq -c '.recipients // {}' "$j")" >>"$diag"
			sed -n '1,4s/^/#   reply: /p' "$tmp/reply" >>"$diag"
		fi
	fi

	if [ -s "$diag" ]; then
		echo "not ok $i - $(cat "$tmp/label")"
		cat "$diag"
		nfail=$((nfail + 1))
	else
		echo "ok $i - $(cat "$tmp/label")"
	fi
done <"$manifest"

[ "$nfail" -eq 0 ] || echo "# $nfail of $i corpus cases disagree with the MANIFEST"
exit 0
