/*
 * test_fax_stamp.c — the approval stamp (lib/fax_stamp.h): make/verify
 * round trip, the canonical body hash (CRLF = LF, trailing empty lines,
 * chunking), every field bound by the MAC, the wrong key, malformed values,
 * the key file checks, the Message-ID and NANP number normalisations.
 */
#include "autoconfig.h"
#include "fax_stamp.h"
#include "tap.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void hash_str(const char *s, unsigned char out[32])
{
	struct fax_body_hash *h = fax_body_hash_new();
	fax_body_hash_update(h, s, strlen(s));
	fax_body_hash_final(h, out);
}

/* Same text fed one byte at a time (CR and LF split across calls). */
static void hash_bytewise(const char *s, unsigned char out[32])
{
	struct fax_body_hash *h = fax_body_hash_new();
	for (const char *p = s; *p; p++)
		fax_body_hash_update(h, p, 1);
	fax_body_hash_final(h, out);
}

static int same(const unsigned char a[32], const unsigned char b[32])
{
	return memcmp(a, b, 32) == 0;
}

static char tmpdir[] = "/tmp/test_fax_stamp.XXXXXX";

static char *write_key(const char *name, const char *content, size_t len, mode_t mode)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	if (fp == NULL)
		return NULL;
	fwrite(content, 1, len, fp);
	fclose(fp);
	chmod(path, mode);
	return path;
}

/* Replace the first occurrence of from by to in s (new string). */
static char *subst(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	struct strbuf sb;

	if (p == NULL)
		return xstrdup(s);
	sb_init(&sb);
	sb_append(&sb, s, (size_t)(p - s));
	sb_puts(&sb, to);
	sb_puts(&sb, p + strlen(from));
	return sb_steal(&sb);
}

static int verifies(const struct fax_key *k, const char *v, const char *mid,
                    const unsigned char bh[32], char *why, size_t whylen)
{
	struct fax_stamp st;
	return fax_stamp_verify(k, v, mid, bh, &st, why, whylen) == 0;
}

int main(void)
{
	struct fax_key key, key2;
	unsigned char bh[32], bh2[32], bh3[32];
	const char *nums[] = {"9993335554", "8195550102", "9993335554"};
	const char *mid = "20261122140305.ABC123@hopital.example";
	char why[256], *v, *w, *path;
	struct fax_stamp st;

	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}

	/* ---- canonical body ---- */
	hash_str("Ordonnance\nligne 2\n", bh);
	hash_str("Ordonnance\r\nligne 2\r\n", bh2);
	ok(same(bh, bh2), "CRLF and LF bodies hash the same");
	hash_str("Ordonnance\r\nligne 2\r\n\r\n\r\n", bh2);
	ok(same(bh, bh2), "trailing empty lines are ignored");
	hash_str("Ordonnance\nligne 2", bh2);
	ok(same(bh, bh2), "a missing final LF is added");
	hash_bytewise("Ordonnance\r\nligne 2\r\n\r\n", bh2);
	ok(same(bh, bh2), "byte-by-byte updates give the same hash");
	hash_str("Ordonnance\n\nligne 2\n", bh2);
	ok(!same(bh, bh2), "an empty line inside the body counts");
	hash_str("Ordonnance\rligne 2\n", bh2);
	ok(!same(bh, bh2), "a lone CR is content");
	hash_str("Ordonnance\nligne 2 \n", bh2);
	ok(!same(bh, bh2), "a trailing space counts");
	hash_str("", bh2);
	hash_str("\r\n\n\r\n", bh3);
	ok(same(bh2, bh3), "an empty body and a body of empty lines hash the same");
	{
		/* SHA-256("") = e3b0c442… */
		char hex[65];
		fax_body_hash_hex(bh2, hex);
		is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		       "the empty body is the empty string");
		hash_str("a", bh3);
		fax_body_hash_hex(bh3, hex);
		/* SHA-256("a\n") */
		is_str(hex, "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7",
		       "\"a\" is hashed as \"a\\n\"");
	}

	/* ---- key files ---- */
	path = write_key("good.key", "0123456789abcdef0123456789abcdef\n", 33, 0600);
	ok(path && fax_key_load(path, &key, why, sizeof(why)) == 0, "key file 0600 loads");
	is_int((long)key.len, 32, "trailing newline is not part of the key");
	path = write_key("open.key", "0123456789abcdef0123456789abcdef", 32, 0644);
	ok(fax_key_load(path, &key2, why, sizeof(why)) < 0 && strstr(why, "chmod"),
	   "key file 0644 refused (%s)", why);
	path = write_key("group.key", "0123456789abcdef0123456789abcdef", 32, 0640);
	ok(fax_key_load(path, &key2, why, sizeof(why)) < 0, "key file 0640 refused");
	path = write_key("short.key", "0123456789\n", 11, 0600);
	ok(fax_key_load(path, &key2, why, sizeof(why)) < 0 && strstr(why, "shorter"),
	   "short key refused");
	{
		char big[400];
		memset(big, 'k', sizeof(big));
		path = write_key("long.key", big, sizeof(big), 0600);
		ok(fax_key_load(path, &key2, why, sizeof(why)) < 0 && strstr(why, "longer"),
		   "key over 256 bytes refused");
	}
	ok(fax_key_load(tmpdir, &key2, why, sizeof(why)) < 0, "a folder is not a key");
	ok(fax_key_load("/nonexistent/key", &key2, why, sizeof(why)) < 0, "missing key file");
	path = write_key("other.key", "another key, quite different!!!!", 32, 0600);
	ok(fax_key_load(path, &key2, why, sizeof(why)) == 0, "second key loads");

	/* ---- round trip ---- */
	hash_str("Ordonnance\nligne 2\n", bh);
	v = fax_stamp_make(&key, "CM-20261122-ABCD1234", 1795000000, mid, nums, 3, bh);
	ok(v != NULL, "stamp made");
	diag("stamp: %s", v ? v : "(null)");
	ok(v && strstr(v, "to=8195550102,9993335554;") != NULL,
	   "numbers sorted, duplicates removed");
	memset(&st, 0, sizeof(st));
	ok(fax_stamp_verify(&key, v, mid, bh, &st, why, sizeof(why)) == 0, "stamp verifies (%s)",
	   why);
	is_str(st.ref, "CM-20261122-ABCD1234", "ref read back");
	is_int((long)st.t, 1795000000L, "t read back");
	is_int((long)st.nnumbers, 2, "two numbers");
	ok(fax_stamp_allows(&st, "9993335554") && fax_stamp_allows(&st, "8195550102"),
	   "stamp allows both numbers");
	ok(!fax_stamp_allows(&st, "8195550202"), "stamp does not allow another number");
	ok(!fax_stamp_allows(&st, "999333555"), "nor a short one");

	/* the CRLF copy the milter saw verifies against the LF copy the bridge gets */
	hash_str("Ordonnance\r\nligne 2\r\n\r\n", bh2);
	ok(verifies(&key, v, mid, bh2, why, sizeof(why)), "CRLF body verifies the LF stamp");

	/* ---- every bound field ---- */
	hash_str("Ordonnance\nligne 3\n", bh2);
	ok(!verifies(&key, v, mid, bh2, why, sizeof(why)) && strstr(why, "body changed"),
	   "changed body fails (%s)", why);
	ok(!verifies(&key, v, "other@hopital.example", bh, why, sizeof(why)) &&
	       strstr(why, "bad MAC"),
	   "changed Message-ID fails");
	ok(!verifies(&key2, v, mid, bh, why, sizeof(why)), "wrong key fails");
	w = subst(v, "8195550102", "8195550202");
	ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "changed number fails");
	free(w);
	w = subst(v, "CM-20261122-ABCD1234", "CM-20261122-ABCD1235");
	ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "changed ref fails");
	free(w);
	w = subst(v, "t=1795000000", "t=1795000001");
	ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "changed time fails");
	free(w);
	w = subst(v, "to=8195550102,", "to=");
	ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "removed number fails");
	free(w);
	{
		/* a body hash of another body, MAC recomputed? No: only bh swapped. */
		char b64[64];
		const char *p = strstr(v, "bh=");
		ok(p != NULL, "bh present");
		if (p) {
			memcpy(b64, p + 3, 44);
			b64[44] = '\0';
			unsigned char other[32];
			hash_str("autre\n", other);
			char *v2 = fax_stamp_make(&key, "CM-20261122-ABCD1234", 1795000000, mid,
			                          nums, 3, other);
			const char *q = v2 ? strstr(v2, "bh=") : NULL;
			char ob64[64];
			if (q) {
				memcpy(ob64, q + 3, 44);
				ob64[44] = '\0';
				w = subst(v, b64, ob64);
				ok(!verifies(&key, w, mid, other, why, sizeof(why)),
				   "swapped bh= fails the MAC");
				free(w);
			} else {
				ok(0, "second stamp");
			}
			free(v2);
		}
	}

	/* ---- syntax accepted ---- */
	w = subst(v, "; bh=", ";\r\n\tbh=");
	ok(verifies(&key, w, mid, bh, why, sizeof(why)), "folded header verifies (%s)", why);
	free(w);
	{
		/* fold inside a base64 value */
		const char *p = strstr(v, "mac=");
		struct strbuf sb;
		sb_init(&sb);
		sb_append(&sb, v, (size_t)(p - v) + 20);
		sb_puts(&sb, "\n ");
		sb_puts(&sb, p + 20);
		ok(verifies(&key, sb.data, mid, bh, why, sizeof(why)), "fold inside mac= verifies");
		sb_free(&sb);
	}
	w = subst(v, "to=8195550102,9993335554", "to = 8195550102 , 9993335554");
	ok(verifies(&key, w, mid, bh, why, sizeof(why)), "spaces around = and , accepted");
	free(w);
	{
		struct strbuf sb;
		sb_init(&sb);
		sb_printf(&sb, " %s; ", v);
		ok(verifies(&key, sb.data, mid, bh, why, sizeof(why)), "one trailing ; accepted");
		sb_free(&sb);
	}

	/* ---- malformed values fail cleanly ---- */
	{
		struct strbuf sb;
		const char *bad[] = {
		    "",
		    "v=1",
		    "garbage",
		    ";;;",
		    "v=1; ref=CM-1; t=1; to=9993335554; bh=AAAA; mac=AAAA",
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			ok(!verifies(&key, bad[i], mid, bh, why, sizeof(why)),
			   "malformed value %zu refused (%s)", i, why);
		w = subst(v, "v=1", "v=2");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)) && strstr(why, "version"),
		   "unknown version refused");
		free(w);
		w = subst(v, "; mac=", "; mac=x; mac=");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)) && strstr(why, "twice"),
		   "duplicate tag refused (%s)", why);
		free(w);
		sb_init(&sb);
		sb_printf(&sb, "%s; ref=CM-OTHER", v);
		ok(!verifies(&key, sb.data, mid, bh, why, sizeof(why)) && strstr(why, "twice"),
		   "duplicate ref refused");
		sb_reset(&sb);
		sb_printf(&sb, "%s; x=1", v);
		ok(!verifies(&key, sb.data, mid, bh, why, sizeof(why)) && strstr(why, "unknown"),
		   "unknown tag refused");
		sb_free(&sb);
		w = subst(v, "; t=1795000000", "");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)) && strstr(why, "missing"),
		   "missing t= refused");
		free(w);
		w = subst(v, "to=8195550102,9993335554", "to=9993335554,8195550102");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)) && strstr(why, "sorted"),
		   "unsorted numbers refused");
		free(w);
		w = subst(v, "to=8195550102,9993335554", "to=8195550102,8195550102");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "repeated number refused");
		free(w);
		w = subst(v, "to=8195550102,9993335554", "to=8195550102,,9993335554");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "empty number refused");
		free(w);
		w = subst(v, "to=8195550102,9993335554", "to=18195550102,9993335554");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "11-digit number refused");
		free(w);
		w = subst(v, "bh=", "bh=!");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)) && strstr(why, "base64"),
		   "bad base64 refused");
		free(w);
		w = subst(v, "; mac=", "; mac=AA");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "mac of wrong length refused");
		free(w);
		w = subst(v, "t=1795000000", "t=-5");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "negative time refused");
		free(w);
		w = subst(v, "; bh=", ";\nbh=");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)) && strstr(why, "control"),
		   "bare line break refused");
		free(w);
		w = subst(v, "ref=CM-20261122-ABCD1234", "ref=CM 2026");
		ok(!verifies(&key, w, mid, bh, why, sizeof(why)), "ref with a space refused");
		free(w);
		/* huge value */
		char *huge = xmalloc(1 << 20);
		memset(huge, 'a', (1 << 20) - 1);
		huge[(1 << 20) - 1] = '\0';
		ok(!verifies(&key, huge, mid, bh, why, sizeof(why)) && strstr(why, "longer"),
		   "1 MiB value refused");
		/* many numbers */
		sb_init(&sb);
		sb_puts(&sb, "v=1; ref=CM-1; t=1; to=");
		for (int i = 0; i < 40; i++)
			sb_printf(&sb, "%s%010d", i ? "," : "", 2000000000 + i);
		sb_puts(&sb, "; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; "
		             "mac=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
		ok(!verifies(&key, sb.data, mid, bh, why, sizeof(why)) && strstr(why, "more than"),
		   "more than 32 numbers refused (%s)", why);
		sb_free(&sb);
		free(huge);
		ok(fax_stamp_verify(&key, NULL, mid, bh, &st, why, sizeof(why)) < 0,
		   "NULL value refused");
	}

	/* ---- make refuses bad input ---- */
	{
		const char *badnum[] = {"999333555"};
		const char *letters[] = {"99933355a4"};
		ok(fax_stamp_make(&key, "CM-1", 1, mid, badnum, 1, bh) == NULL,
		   "make refuses a 9-digit number");
		ok(fax_stamp_make(&key, "CM-1", 1, mid, letters, 1, bh) == NULL,
		   "make refuses letters");
		ok(fax_stamp_make(&key, "CM 1", 1, mid, nums, 1, bh) == NULL,
		   "make refuses a bad ref");
		ok(fax_stamp_make(&key, "CM-1", 1, mid, nums, 0, bh) == NULL,
		   "make refuses no numbers");
	}
	free(v);

	/* ---- Message-ID ---- */
	{
		char out[256];
		ok(fax_message_id_canon(" <abc@x.example>", out, sizeof(out)) == 0 &&
		       strcmp(out, "abc@x.example") == 0,
		   "Message-ID: <> and space removed");
		ok(fax_message_id_canon("\r\n <abc@x.example> ", out, sizeof(out)) == 0 &&
		       strcmp(out, "abc@x.example") == 0,
		   "Message-ID: folded value unfolded");
		ok(fax_message_id_canon("abc@x.example", out, sizeof(out)) == 0 &&
		       strcmp(out, "abc@x.example") == 0,
		   "Message-ID without <>");
		ok(fax_message_id_canon("  ", out, sizeof(out)) < 0, "empty Message-ID refused");
		ok(fax_message_id_canon("<a\nb>", out, sizeof(out)) < 0,
		   "Message-ID with a bare LF refused");
		ok(fax_message_id_canon("<abcdefgh>", out, 4) < 0, "too long Message-ID refused");
	}

	/* ---- NANP numbers ---- */
	{
		struct {
			const char *in, *out;
		} cases[] = {
		    {"9993335554", "9993335554"},
		    {"19993335554", "9993335554"},
		    {"+19993335554", "9993335554"},
		    {"819-555-0102", "8195550102"},
		    {"1.819.555.0102", "8195550102"},
		    {"0195550102", NULL},
		    {"1195550102", NULL},
		    {"8191550102", NULL},
		    {"8190550102", NULL},
		    {"12345", NULL},
		    {"29993335554", NULL},
		    {"999333555", NULL},
		    {"999333555412", NULL},
		    {"+9993335554", NULL},
		    {"99933355a4", NULL},
		    {"", NULL},
		    {"819--5550102", NULL},
		    {"-8195550102", NULL},
		    {"8195550102-", NULL},
		    {"819 555 0102", NULL},
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char out[11];
			int rc = fax_number_nanp(cases[i].in, out);
			if (cases[i].out)
				ok(rc == 0 && strcmp(out, cases[i].out) == 0, "NANP \"%s\" -> %s",
				   cases[i].in, cases[i].out);
			else
				ok(rc < 0, "NANP \"%s\" refused", cases[i].in);
		}
	}

	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
	}
	return done_testing();
}
