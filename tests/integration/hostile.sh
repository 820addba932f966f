#!/bin/sh
# hostile.sh — hostile input through the whole engine (`clinimail check`):
# NUL bytes, 8-bit headers, a 1 MB header, 10,000 MIME parts, deep nesting,
# a truncated message, an oversized message.  Each must give a verdict
# (exit 0-2, or 3 with a tempfail verdict), never a crash, within a memory
# bound.  TAP output.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
cm="$top_builddir/clinimail"
conf="$top_srcdir/policies/clinimail.conf"

if [ ! -x "$cm" ]; then
	echo "1..0 # SKIP clinimail not built"
	exit 0
fi
if ! command -v perl >/dev/null 2>&1; then
	echo "1..0 # SKIP perl missing"
	exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/clinimail-hostile.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }

# Memory bound (virtual, KiB) unless built with sanitizers (ASan reserves terabytes).
case "${SAN_FLAGS:-}" in
*sanitize*) limit="" ;;
*) limit=2000000 ;;
esac

# run NAME FILE RCPT EXPECTED-ACTION [RULE]
run() {
	name=$1 file=$2 rcpt=$3 want=$4 rule=${5:-}
	out="$tmp/out.json"
	(
		[ -n "$limit" ] && ulimit -v "$limit"
		exec "$cm" check -c "$conf" --from dr.tremblay@hopital.example --rcpt "$rcpt" --json "$file"
	) >"$out" 2>"$tmp/err"
	rc=$?
	if [ $rc -gt 3 ]; then
		notok "$name: crashed or killed (exit $rc)"
		sed 's/^/# /' "$tmp/err" | head -n 20
		return
	fi
	if ! grep -q "\"action\":\"$want\"" "$out"; then
		notok "$name: want action $want (exit $rc)"
		head -c 600 "$out" | sed 's/^/# /'
		sed 's/^/# /' "$tmp/err" | head -n 5
		return
	fi
	if [ -n "$rule" ] && ! grep -q "\"$rule\"" "$out"; then
		notok "$name: want rule $rule"
		head -c 600 "$out" | sed 's/^/# /'
		return
	fi
	ok "$name"
}


# 1. NUL bytes in the body, clinical content around them: still read.
perl -e 'print "From: Dr Jean Tremblay <dr.tremblay\@hopital.example>\r\nTo: x\@gmail.com\r\nSubject: suivi\r\n\r\nMme Test Covid\0, NAM : COVT\0 4653 0312, DDN 3 mars 1946.\0\r\n"' >"$tmp/nul.eml"
run "NUL bytes" "$tmp/nul.eml" x@gmail.com reject webmail

# 2. 8-bit (raw UTF-8 and Latin-1) headers.
perl -e 'print "From: Dr Jean Tr\xc3\xa9mblay <dr.tremblay\@hopital.example>\r\nTo: x\@gmail.com\r\nSubject: R\xe9union \xc3\xa0 10 h\r\nX-Bad: \xff\xfe\x01\r\n\r\nLa r\xe9union du comit\xe9 est d\xe9plac\xe9e.\r\n"' >"$tmp/8bit.eml"
run "8-bit headers" "$tmp/8bit.eml" x@gmail.com accept

# 3. A 1 MB header line.
perl -e 'print "From: dr.tremblay\@hopital.example\r\nTo: x\@gmail.com\r\nSubject: long\r\nX-Long: ", "a" x (1024*1024), "\r\n\r\nBonjour.\r\n"' >"$tmp/bighdr.eml"
run "1 MB header" "$tmp/bighdr.eml" x@gmail.com accept

# 4. 10,000 MIME parts: cannot be inspected whole, so not sent outside...
perl -e 'print "From: dr.tremblay\@hopital.example\r\nTo: x\@gmail.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"; for (1..10000) { print "--b\r\nContent-Type: text/plain\r\n\r\npart $_\r\n" } print "--b--\r\n"' >"$tmp/parts.eml"
run "10,000 MIME parts to gmail" "$tmp/parts.eml" x@gmail.com reject oversize
# ... but accepted to a colleague.
run "10,000 MIME parts to a colleague" "$tmp/parts.eml" inf.gagnon@hopital.example accept

# 5. 5,000-deep nesting.
perl -e 'print "From: dr.tremblay\@hopital.example\r\nTo: x\@gmail.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"; for (1..5000) { print "--b", $_-1, "\r\nContent-Type: multipart/mixed; boundary=\"b$_\"\r\n\r\n" } print "--b5000\r\nContent-Type: text/plain\r\n\r\nfond\r\n"' >"$tmp/deep.eml"
run "5,000-deep nesting to gmail" "$tmp/deep.eml" x@gmail.com reject oversize

# 6. Truncated message: cut in the middle of a base64 part; the clinical text before the cut is still seen.
{
	printf 'From: dr.tremblay@hopital.example\r\nTo: x@gmail.com\r\nSubject: suivi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMme Test Covid, NAM COVT 4653 0312, date de naissance 3 mars 1946.\r\n--zz\r\nContent-Type: application/pdf; name="x.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZU'
} >"$tmp/trunc.eml"
run "truncated message" "$tmp/trunc.eml" x@gmail.com reject webmail

# 7. Not a message at all: random bytes.
head -c 200000 /dev/urandom >"$tmp/random.eml"
run "random bytes" "$tmp/random.eml" inf.gagnon@hopital.example accept

# 8. Empty input.
: >"$tmp/empty.eml"
run "empty input" "$tmp/empty.eml" x@gmail.com accept

# 9. Larger than MaximumMessageSize (a private config with a 64K limit).
sed 's/^MaximumMessageSize.*//' "$conf" >"$tmp/small.conf"
printf '\nMaximumMessageSize 64K\n' >>"$tmp/small.conf"
# relative paths in the copy must still point at the shipped policy's files
for f in directories lexicons bounces.txt; do ln -s "$top_srcdir/policies/$f" "$tmp/$f"; done
perl -e 'print "From: dr.tremblay\@hopital.example\r\nTo: x\@gmail.com\r\nSubject: gros\r\n\r\n", ("Bonjour tout le monde.\r\n" x 10000)' >"$tmp/big.eml"
conf_save=$conf
conf="$tmp/small.conf"
run "oversize to gmail" "$tmp/big.eml" x@gmail.com reject oversize
run "oversize to a colleague" "$tmp/big.eml" inf.gagnon@hopital.example accept
conf=$conf_save

echo "1..$n"
exit 0
