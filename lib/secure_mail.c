/*
 * secure_mail.c — encrypt a message for a patient (S/MIME or password PDF),
 * sign an order, and hand password notices to the MTA.  See secure_mail.h.
 */
#include "autoconfig.h"
#include "secure_mail.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <gmime/gmime.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "directory.h"
#include "fax_stamp.h"
#include "msg_render.h"
#include "password.h"
#include "pdf_encrypt.h"
#include "pdf_render.h"
#include "policy.h"
#include "smime.h"
#include "util.h"

extern char **environ;

#define SECRET_MAX (64 * 1024)

const char *secure_method_name(int m)
{
	switch (m) {
	case SECURE_SMIME:
		return "smime";
	case SECURE_PDF_REGISTERED:
		return "pdf-registered";
	case SECURE_PDF_GENERATED:
		return "pdf-generated";
	default:
		return "none";
	}
}

/* ---- secrets ---- */

struct secure_secrets {
	GHashTable *passphrases; /* REF -> passphrase */
	char *archives_password;
	X509 *sign_cert;
	STACK_OF(X509) * sign_chain;
	EVP_PKEY *sign_key;
	struct fax_key fax_key;
	int have_fax_key;
};

static void cleanse_free(void *p)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, strlen(p));
		free(p);
	}
}

/* A whole secret file (already checked: regular, not for others) into memory. */
static char *read_secret(const char *path, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 007) != 0 ||
	    st.st_size > SECRET_MAX) {
		snprintf(err, errlen, "%s: not a private regular file of at most 64 KiB", path);
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return buf;
}

static char *trim(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static int load_passphrases(struct secure_secrets *s, const char *path, char *err, size_t errlen)
{
	size_t len;
	char *buf = read_secret(path, &len, err, errlen);
	char *line, *save = NULL;
	int lineno = 0;

	if (buf == NULL)
		return -1;
	for (line = buf;; line = NULL) {
		char *l = strtok_r(line, "\n", &save);
		if (l == NULL)
			break;
		lineno++; /* blank lines are skipped by strtok: numbers count non-empty lines */
		l = trim(l);
		if (*l == '\0' || *l == '#')
			continue;
		char *sp = l + strcspn(l, " \t");
		if (*sp == '\0') {
			snprintf(err, errlen, "%s: entry %d: expected \"REF passphrase\"", path,
			         lineno);
			goto bad;
		}
		*sp++ = '\0';
		char *pass = trim(sp);
		for (const char *p = l; *p; p++)
			if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.') {
				snprintf(err, errlen,
				         "%s: entry %d: bad reference (letters, digits, - _ .)",
				         path, lineno);
				goto bad;
			}
		if (!g_utf8_validate(pass, -1, NULL) ||
		    g_utf8_strlen(pass, -1) < PASSPHRASE_MIN_CHARS) {
			snprintf(
			    err, errlen,
			    "%s: entry %d (%s): passphrase shorter than %d characters or not UTF-8",
			    path, lineno, l, PASSPHRASE_MIN_CHARS);
			goto bad;
		}
		if (g_hash_table_contains(s->passphrases, l)) {
			snprintf(err, errlen, "%s: entry %d: reference %s given twice", path,
			         lineno, l);
			goto bad;
		}
		g_hash_table_insert(s->passphrases, xstrdup(l), xstrdup(pass));
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
	return 0;
bad:
	OPENSSL_cleanse(buf, len);
	free(buf);
	return -1;
}

static int load_signer(struct secure_secrets *s, const char *cert_path, const char *key_path,
                       char *err, size_t errlen)
{
	BIO *b = BIO_new_file(cert_path, "r");
	X509 *x;

	if (b == NULL) {
		snprintf(err, errlen, "%s: cannot read", cert_path);
		return -1;
	}
	s->sign_chain = sk_X509_new_null();
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (s->sign_cert == NULL)
			s->sign_cert = x;
		else
			sk_X509_push(s->sign_chain, x);
	}
	ERR_clear_error();
	BIO_free(b);
	if (s->sign_cert == NULL) {
		snprintf(err, errlen, "%s: no PEM certificate", cert_path);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(s->sign_cert)) <= 0) {
		snprintf(err, errlen, "%s: the signing certificate has expired", cert_path);
		return -1;
	}
	b = BIO_new_file(key_path, "r");
	if (b == NULL || (s->sign_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "%s: no PEM private key (an encrypted key is not supported)",
		         key_path);
		BIO_free(b);
		ERR_clear_error();
		return -1;
	}
	BIO_free(b);
	if (X509_check_private_key(s->sign_cert, s->sign_key) != 1) {
		snprintf(err, errlen, "%s: the key does not match %s", key_path, cert_path);
		ERR_clear_error();
		return -1;
	}
	return 0;
}

struct secure_secrets *secure_secrets_load(const struct cm_config *c, char *err, size_t errlen)
{
	struct secure_secrets *s = xcalloc(1, sizeof(*s));
	char why[512];

	s->passphrases = g_hash_table_new_full(g_str_hash, g_str_equal, free, cleanse_free);
	if (c->patient_passphrases_file &&
	    load_passphrases(s, c->patient_passphrases_file, err, errlen) != 0)
		goto bad;
	if (c->archives_pdf_password_file) {
		size_t len;
		char *buf = read_secret(c->archives_pdf_password_file, &len, err, errlen);
		if (buf == NULL)
			goto bad;
		buf[strcspn(buf, "\r\n")] = '\0';
		if (!g_utf8_validate(buf, -1, NULL) ||
		    g_utf8_strlen(buf, -1) < PASSPHRASE_MIN_CHARS) {
			snprintf(err, errlen,
			         "%s: the first line must be a password of at least %d characters",
			         c->archives_pdf_password_file, PASSPHRASE_MIN_CHARS);
			OPENSSL_cleanse(buf, len);
			free(buf);
			goto bad;
		}
		s->archives_password = xstrdup(buf);
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	if (c->smime_establishment_cert && smime_check_cert(c->smime_establishment_cert, time(NULL),
	                                                    why, sizeof(why)) != SMIME_OK) {
		snprintf(err, errlen, "SmimeEstablishmentCertificate: %s", why);
		goto bad;
	}
	if ((c->smime_sign_cert != NULL) != (c->smime_sign_key != NULL)) {
		snprintf(err, errlen, "SmimeSigningCertificate and SmimeSigningKey go together");
		goto bad;
	}
	if (c->smime_sign_cert &&
	    load_signer(s, c->smime_sign_cert, c->smime_sign_key, err, errlen))
		goto bad;
	if (c->actions[RULE_ORDER_SIGNATURE] == ACT_SIGN && s->sign_cert == NULL) {
		snprintf(err, errlen,
		         "Rule-order-signature sign needs SmimeSigningCertificate and "
		         "SmimeSigningKey");
		goto bad;
	}
	if (c->fax_approval_key_file) {
		if (fax_key_load(c->fax_approval_key_file, &s->fax_key, err, errlen) != 0)
			goto bad;
		s->have_fax_key = 1;
	}
	return s;
bad:
	secure_secrets_free(s);
	return NULL;
}

void secure_secrets_free(struct secure_secrets *s)
{
	if (s == NULL)
		return;
	if (s->passphrases)
		g_hash_table_destroy(s->passphrases);
	cleanse_free(s->archives_password);
	X509_free(s->sign_cert);
	sk_X509_pop_free(s->sign_chain, X509_free);
	EVP_PKEY_free(s->sign_key);
	OPENSSL_cleanse(&s->fax_key, sizeof(s->fax_key));
	free(s);
}

const char *secure_passphrase(const struct secure_secrets *s, const char *ref)
{
	if (s == NULL || ref == NULL)
		return NULL;
	return g_hash_table_lookup(s->passphrases, ref);
}

int secure_can_sign(const struct secure_secrets *s)
{
	return s != NULL && s->sign_cert != NULL;
}

int secure_have_archives_password(const struct secure_secrets *s)
{
	return s != NULL && s->archives_password != NULL;
}

const struct fax_key *secure_fax_key(const struct secure_secrets *s)
{
	return s != NULL && s->have_fax_key ? &s->fax_key : NULL;
}

/* ---- the plan ---- */

int secure_plan(const struct cm_config *cfg, const char *patient_addr, int *method,
                const char **why_key, char *err, size_t errlen)
{
	const struct patient_entry *p = dir_patient(cfg->dirs, patient_addr);
	char why[512];

	*method = SECURE_NONE;
	*why_key = NULL;
	if (p == NULL) {
		snprintf(err, errlen, "not in the patient registry");
		*why_key = "patient-encryption.cert";
		return SECURE_PERM;
	}
	if (p->cert_path) {
		if (cfg->smime_establishment_cert == NULL) {
			snprintf(err, errlen,
			         "SmimeEstablishmentCertificate is not set: the archives "
			         "could not open their copy");
			return SECURE_TEMP;
		}
		if (smime_check_cert(p->cert_path, time(NULL), why, sizeof(why)) != SMIME_OK) {
			snprintf(err, errlen, "patient certificate: %s", why);
			*why_key = "patient-encryption.cert";
			return SECURE_PERM;
		}
		*method = SECURE_SMIME;
		return SECURE_OK;
	}
	if (p->password_mode && strcmp(p->password_mode, "registered") == 0) {
		if (!secure_have_archives_password(cfg->secrets)) {
			snprintf(err, errlen,
			         "ArchivesPdfPassword is not set: the archives could not "
			         "open a copy protected by the patient's passphrase");
			return SECURE_TEMP;
		}
		if (secure_passphrase(cfg->secrets, p->passphrase_ref) == NULL) {
			snprintf(err, errlen, "no registered passphrase under reference %s",
			         p->passphrase_ref ? p->passphrase_ref : "(none)");
			*why_key = "patient-encryption.passphrase";
			return SECURE_PERM;
		}
		*method = SECURE_PDF_REGISTERED;
		return SECURE_OK;
	}
	*method = SECURE_PDF_GENERATED;
	return SECURE_OK;
}

/* ---- the raw header ---- */

struct rawhdr {
	char *name;  /* as written */
	char *value; /* unfolded, leading space removed */
	int index;   /* occurrence of this name, 1-based */
};

struct rawmsg {
	struct rawhdr *h;
	size_t n;
	const char *body;
	size_t body_len;
};

static void rawmsg_free(struct rawmsg *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->h[i].name);
		free(r->h[i].value);
	}
	free(r->h);
	memset(r, 0, sizeof(*r));
}

static void rawmsg_parse(const char *msg, size_t len, struct rawmsg *r)
{
	size_t i = 0;

	memset(r, 0, sizeof(*r));
	while (i < len) {
		size_t eol = i;
		while (eol < len && msg[eol] != '\n')
			eol++;
		size_t end = eol > i && msg[eol - 1] == '\r' ? eol - 1 : eol;
		if (end == i) { /* the empty line */
			i = eol < len ? eol + 1 : len;
			break;
		}
		if ((msg[i] == ' ' || msg[i] == '\t') && r->n > 0) {
			struct rawhdr *h = &r->h[r->n - 1];
			size_t ol = strlen(h->value);
			h->value = xrealloc(h->value, ol + (end - i) + 1);
			memcpy(h->value + ol, msg + i, end - i);
			h->value[ol + (end - i)] = '\0';
		} else {
			const char *colon = memchr(msg + i, ':', end - i);
			if (colon != NULL) {
				r->h = xrealloc(r->h, (r->n + 1) * sizeof(*r->h));
				struct rawhdr *h = &r->h[r->n++];
				h->name = xstrndup(msg + i, (size_t)(colon - (msg + i)));
				const char *v = colon + 1;
				while (v < msg + end && (*v == ' ' || *v == '\t'))
					v++;
				h->value = xstrndup(v, (size_t)(msg + end - v));
				h->index = 1;
				for (size_t k = 0; k + 1 < r->n; k++)
					if (g_ascii_strcasecmp(r->h[k].name, h->name) == 0)
						h->index++;
			}
		}
		i = eol < len ? eol + 1 : len;
	}
	r->body = msg + i;
	r->body_len = len - i;
}

static const char *rawmsg_get(const struct rawmsg *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (g_ascii_strcasecmp(r->h[i].name, name) == 0)
			return r->h[i].value;
	return NULL;
}

/* Body bytes with every line ending made CRLF. */
static void put_crlf(struct strbuf *sb, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			sb_putc(sb, '\r');
		sb_putc(sb, p[i]);
	}
}

/* The MIME entity: the Content-* header fields (plus extra lines) and the body, CRLF. */
static void build_entity(const struct rawmsg *r, const char *extra, struct strbuf *sb)
{
	int have_ct = 0, eight = 0;

	for (size_t i = 0; i < r->n; i++)
		if (g_ascii_strncasecmp(r->h[i].name, "Content-", 8) == 0) {
			sb_printf(sb, "%s: %s\r\n", r->h[i].name, r->h[i].value);
			have_ct |= g_ascii_strcasecmp(r->h[i].name, "Content-Type") == 0;
		}
	for (size_t i = 0; i < r->body_len; i++)
		eight |= (unsigned char)r->body[i] >= 0x80;
	if (!have_ct)
		sb_printf(sb, "Content-Type: text/plain; charset=%s\r\n",
		          eight ? "utf-8" : "us-ascii");
	if (extra)
		sb_puts(sb, extra);
	sb_puts(sb, "\r\n");
	put_crlf(sb, r->body, r->body_len);
}

/* ---- edits ---- */

void secure_edit_header(struct msg_edit *e, const char *name, int index, const char *value)
{
	e->hdrs = xrealloc(e->hdrs, (e->nhdrs + 1) * sizeof(*e->hdrs));
	e->hdrs[e->nhdrs].name = xstrdup(name);
	e->hdrs[e->nhdrs].index = index;
	e->hdrs[e->nhdrs].value = value ? xstrdup(value) : NULL;
	e->nhdrs++;
}

void msg_edit_free(struct msg_edit *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nhdrs; i++) {
		free(e->hdrs[i].name);
		free(e->hdrs[i].value);
	}
	free(e->hdrs);
	free(e->body);
	free(e->notice_rcpt);
	free(e->notice_cc);
	cleanse_free(e->notice);
	memset(e, 0, sizeof(*e));
}

/* Headers that route or thread a message and carry no content. */
static int outer_keeps(const char *name)
{
	static const char *const keep[] = {
	    "Return-Path", "Received",    "From",       "Sender",       "Reply-To",       "Date",
	    "Message-ID",  "In-Reply-To", "References", "MIME-Version", "Auto-Submitted", NULL};
	for (size_t i = 0; keep[i]; i++)
		if (g_ascii_strcasecmp(name, keep[i]) == 0)
			return 1;
	return 0;
}

/* "a@b, c@d": the addresses of an address header, without display names. */
static char *bare_addresses(const char *value)
{
	InternetAddressList *l = internet_address_list_parse(NULL, value);
	struct strbuf sb;

	sb_init(&sb);
	if (l != NULL) {
		int n = internet_address_list_length(l);
		for (int i = 0; i < n; i++) {
			InternetAddress *a = internet_address_list_get_address(l, i);
			if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
				const char *addr =
				    internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
				if (addr && *addr)
					sb_printf(&sb, "%s%s", sb.len ? ", " : "", addr);
			} else if (INTERNET_ADDRESS_IS_GROUP(a)) {
				InternetAddressList *m =
				    internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a));
				for (int j = 0; m && j < internet_address_list_length(m); j++) {
					InternetAddress *b =
					    internet_address_list_get_address(m, j);
					if (INTERNET_ADDRESS_IS_MAILBOX(b))
						sb_printf(&sb, "%s%s", sb.len ? ", " : "",
						          internet_address_mailbox_get_addr(
						              INTERNET_ADDRESS_MAILBOX(b)));
				}
			}
		}
		g_object_unref(l);
	}
	if (sb.len == 0)
		sb_puts(&sb, "undisclosed-recipients:;");
	return sb_steal(&sb);
}

/*
 * Header edits for the outer message: content headers replaced by ct[] (name,
 * value pairs, NULL-terminated), and, when strip is set, Subject replaced,
 * To/Cc reduced to addresses, every header outer_keeps() does not name
 * removed.  Deletions go from the last header up, so that indexes of one
 * name decrease.
 */
static void outer_edits(const struct rawmsg *r, const char *const *ct, int strip,
                        const char *subject, struct msg_edit *e)
{
	int done_ct[8] = {0}, have_subject = 0, have_mime = 0;

	for (size_t k = r->n; k-- > 0;) {
		const struct rawhdr *h = &r->h[k];
		if (g_ascii_strcasecmp(h->name, "MIME-Version") == 0)
			have_mime = 1;
		if (g_ascii_strncasecmp(h->name, "Content-", 8) == 0) {
			const char *nv = NULL;
			int slot = -1;
			for (int j = 0; ct[2 * j]; j++)
				if (g_ascii_strcasecmp(h->name, ct[2 * j]) == 0)
					nv = ct[2 * j + 1], slot = j;
			if (nv != NULL && h->index == 1) {
				secure_edit_header(e, h->name, 1, nv);
				done_ct[slot] = 1;
			} else {
				secure_edit_header(e, h->name, h->index, NULL);
			}
			continue;
		}
		if (!strip)
			continue;
		if (g_ascii_strcasecmp(h->name, "Subject") == 0) {
			if (h->index == 1) {
				secure_edit_header(e, h->name, 1, subject);
				have_subject = 1;
			} else {
				secure_edit_header(e, h->name, h->index, NULL);
			}
		} else if (g_ascii_strcasecmp(h->name, "To") == 0 ||
		           g_ascii_strcasecmp(h->name, "Cc") == 0) {
			char *b = bare_addresses(h->value);
			secure_edit_header(e, h->name, h->index, b);
			free(b);
		} else if (!outer_keeps(h->name)) {
			secure_edit_header(e, h->name, h->index, NULL);
		}
	}
	if (strip && !have_subject)
		secure_edit_header(e, "Subject", 0, subject);
	if (!have_mime)
		secure_edit_header(e, "MIME-Version", 0, "1.0");
	for (int j = 0; ct[2 * j]; j++)
		if (!done_ct[j])
			secure_edit_header(e, ct[2 * j], 0, ct[2 * j + 1]);
}

static void base64_lines(struct strbuf *sb, const unsigned char *p, size_t n)
{
	gchar *b = g_base64_encode(p, n);
	size_t bl = strlen(b);
	for (size_t i = 0; i < bl; i += 76) {
		sb_append(sb, b + i, bl - i < 76 ? bl - i : 76);
		sb_puts(sb, "\r\n");
	}
	g_free(b);
}

static void new_boundary(char *buf, size_t len, const char *tag)
{
	unsigned char rnd[12];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0x5a, sizeof(rnd)); /* uniqueness, not secrecy */
	snprintf(buf, len, "=_clinimail_%s_%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x", tag,
	         rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9],
	         rnd[10], rnd[11]);
}

static char *generic_subject(const struct cm_config *cfg)
{
	char *plain = g_strdup_printf("Message sécurisé de %s / Secure message from %s",
	                              cfg->establishment, cfg->establishment);
	char *enc = g_mime_utils_header_encode_text(NULL, plain, "utf-8");
	char *r = xstrdup(enc ? enc : "Message securise / Secure message");
	g_free(plain);
	g_free(enc);
	return r;
}

static int encrypt_smime(const struct cm_config *cfg, const struct verdict *v,
                         const struct rawmsg *r, struct msg_edit *out, char *err, size_t errlen)
{
	const struct patient_entry *p = dir_patient(cfg->dirs, v->rcpts[v->secure_rcpt].addr);
	struct smime_recipients rc;
	struct strbuf entity, hdrs, body;
	char *extra = NULL, *subject;
	int rc_code;

	if (p == NULL || p->cert_path == NULL || cfg->smime_establishment_cert == NULL) {
		snprintf(err, errlen, "S/MIME: no certificate to encrypt to");
		return SECURE_TEMP;
	}
	smime_recipients_init(&rc);
	if ((rc_code = smime_recipients_add(&rc, p->cert_path, time(NULL), err, errlen)) !=
	        SMIME_OK ||
	    (rc_code = smime_recipients_add(&rc, cfg->smime_establishment_cert, time(NULL), err,
	                                    errlen)) != SMIME_OK) {
		smime_recipients_free(&rc);
		return rc_code == SMIME_TEMP ? SECURE_TEMP : SECURE_PERM;
	}
	/* the original subject travels inside (protected header, RFC 7508 style) */
	const char *osub = rawmsg_get(r, "Subject");
	if (osub)
		extra = g_strdup_printf("Subject: %s\r\n", osub);
	sb_init(&entity);
	sb_init(&hdrs);
	sb_init(&body);
	build_entity(r, extra, &entity);
	g_free(extra);
	rc_code =
	    smime_envelope(entity.data, entity.len, rc.certs, rc.ncerts, &hdrs, &body, err, errlen);
	OPENSSL_cleanse(entity.data, entity.len);
	sb_free(&entity);
	smime_recipients_free(&rc);
	sb_free(&hdrs);
	if (rc_code != SMIME_OK) {
		sb_free(&body);
		return rc_code == SMIME_TEMP ? SECURE_TEMP : SECURE_PERM;
	}
	const char *ct[] = {SMIME_HDR_CT, SMIME_HDR_CT_VALUE, SMIME_HDR_CTE, SMIME_HDR_CTE_VALUE,
	                    SMIME_HDR_CD, SMIME_HDR_CD_VALUE, NULL};
	subject = generic_subject(cfg);
	outer_edits(r, ct, 1, subject, out);
	free(subject);
	out->body_len = body.len;
	out->body = sb_steal(&body);
	out->change = "encrypted-smime";
	return SECURE_OK;
}

static char *rfc5322_now(void)
{
	char buf[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S %z", &tm);
	return xstrdup(buf);
}

static char *password_notice(const struct cm_config *cfg, const struct verdict *v,
                             const char *sender, const char *cc, const char *password)
{
	struct strbuf sb;
	char *date = rfc5322_now();
	char *subj_plain = g_strdup_printf("Mot de passe du message sécurisé %s / Password for "
	                                   "secure message %s",
	                                   v->ref, v->ref);
	char *subj = g_mime_utils_header_encode_text(NULL, subj_plain, "utf-8");
	const char *dom = strrchr(sender, '@');
	char *pm = g_strdup_printf("postmaster@%s", dom ? dom + 1 : "localhost");
	const char *from = cfg->notify_from && *cfg->notify_from ? cfg->notify_from : pm;
	const char *patient = v->rcpts[v->secure_rcpt].addr;

	sb_init(&sb);
	sb_printf(&sb, "From: Clinimail <%s>\n", from);
	sb_printf(&sb, "To: %s\n", sender);
	if (cc)
		sb_printf(&sb, "Cc: %s\n", cc);
	sb_printf(&sb, "Subject: %s\n", subj ? subj : "Mot de passe / Password");
	sb_printf(&sb, "Date: %s\n", date);
	sb_printf(&sb, "Message-ID: <%s.password@clinimail.invalid>\n", v->ref);
	sb_puts(&sb,
	        "Auto-Submitted: auto-generated\nMIME-Version: 1.0\n"
	        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
	sb_printf(
	    &sb,
	    "Le message que vous avez envoyé à %s (référence %s) contenait de l'information "
	    "clinique : il a été remplacé par un PDF chiffré.\n\n"
	    "Mot de passe du PDF :\n\n    %s\n\n"
	    "Communiquez ce mot de passe à l'usager de vive voix, par téléphone ou par "
	    "texto, jamais par courriel. Ne transférez pas ce message.\n\n"
	    "---\n\n"
	    "The message you sent to %s (reference %s) contained clinical information: it was "
	    "replaced by an encrypted PDF.\n\n"
	    "PDF password:\n\n    %s\n\n"
	    "Give this password to the patient in person, by phone or by text message, never "
	    "by e-mail. Do not forward this message.\n",
	    patient, v->ref, password, patient, v->ref, password);
	free(date);
	g_free(pm);
	g_free(subj_plain);
	g_free(subj);
	return sb_steal(&sb);
}

static int encrypt_pdf(const struct cm_config *cfg, const struct verdict *v, const char *msg,
                       size_t len, const struct rawmsg *r, const char *sender, struct msg_edit *out,
                       char *err, size_t errlen)
{
	const struct patient_entry *p = dir_patient(cfg->dirs, v->rcpts[v->secure_rcpt].addr);
	struct printable_msg pm;
	struct pdf_render_opts ro;
	struct pdf_render_result res;
	unsigned char *pdf = NULL, *enc = NULL;
	size_t pdflen = 0, enclen = 0;
	char password[PASSWORD_GEN_LEN + 1];
	const char *user_pw;
	char why[256], boundary[80];
	int rc;

	if (p == NULL ||
	    (v->secure == SECURE_PDF_REGISTERED && !secure_have_archives_password(cfg->secrets))) {
		snprintf(err, errlen, "PDF: the patient or the archives password is missing");
		return SECURE_TEMP;
	}
	if (v->secure == SECURE_PDF_REGISTERED) {
		user_pw = secure_passphrase(cfg->secrets, p->passphrase_ref);
		if (user_pw == NULL) {
			snprintf(err, errlen, "no registered passphrase");
			return SECURE_PERM;
		}
	} else {
		if (sender == NULL || *sender == '\0') {
			snprintf(err, errlen, "no sender to give the generated password to");
			return SECURE_PERM;
		}
		if (password_generate(password, sizeof(password), PASSWORD_GEN_LEN) != 0) {
			snprintf(err, errlen, "random password generation failed");
			return SECURE_TEMP;
		}
		user_pw = password;
	}
	if (printable_msg_from_raw(msg, len, cfg->max_mime_parts, cfg->max_message_size, &pm, why,
	                           sizeof(why)) != 0) {
		snprintf(err, errlen, "cannot be rendered: %s", why);
		OPENSSL_cleanse(password, sizeof(password));
		return SECURE_PERM;
	}
	pdf_render_opts_default(&ro);
	ro.paper =
	    cfg->pdf_paper && strcmp(cfg->pdf_paper, "a4") == 0 ? PDF_PAPER_A4 : PDF_PAPER_LETTER;
	ro.title = "Message sécurisé / Secure message";
	rc = pdf_render(&pm.m, &ro, &pdf, &pdflen, &res, why, sizeof(why));
	printable_msg_free(&pm);
	if (rc != PDF_RENDER_OK) {
		snprintf(err, errlen, "PDF rendering: %s", why);
		OPENSSL_cleanse(password, sizeof(password));
		return rc == PDF_RENDER_TOO_LARGE ? SECURE_PERM : SECURE_TEMP;
	}
	if (res.atts_not_rendered > 0) {
		snprintf(err, errlen, "%d attachment(s) cannot be put in the secure PDF",
		         res.atts_not_rendered);
		OPENSSL_cleanse(pdf, pdflen);
		free(pdf);
		OPENSSL_cleanse(password, sizeof(password));
		return SECURE_PERM;
	}
	/* the archives open their copy with ArchivesPdfPassword, or, when there is
	   none, with the generated password: the notice then goes to them too */
	rc = pdf_encrypt_owner(pdf, pdflen, user_pw, cfg->secrets->archives_password,
	                       cfg->pdf_encryption && strcmp(cfg->pdf_encryption, "aes128") == 0
	                           ? PDF_ENC_AES128_R4
	                           : PDF_ENC_AES256_R6,
	                       &enc, &enclen, why, sizeof(why));
	OPENSSL_cleanse(pdf, pdflen);
	free(pdf);
	if (rc != 0) {
		snprintf(err, errlen, "PDF encryption: %s", why);
		OPENSSL_cleanse(password, sizeof(password));
		return SECURE_TEMP;
	}

	struct strbuf body, text;
	sb_init(&body);
	sb_init(&text);
	new_boundary(boundary, sizeof(boundary), "pdf");
	sb_printf(
	    &text,
	    "Vous recevez un message sécurisé de %s.\n\n"
	    "Il est dans le PDF joint, protégé par un mot de passe : %s\n\n"
	    "Ne répondez pas à ce courriel avec des renseignements de santé ; "
	    "communiquez avec votre clinicien ou votre clinique.\n\n"
	    "---\n\n"
	    "You have received a secure message from %s.\n\n"
	    "It is in the attached PDF, protected by a password: %s\n\n"
	    "Do not reply to this e-mail with health information; contact your "
	    "clinician or clinic.\n",
	    cfg->establishment,
	    v->secure == SECURE_PDF_REGISTERED
	        ? "la phrase de passe que vous avez choisie lors de votre consentement."
	        : "votre clinicien vous le communiquera de vive voix, par téléphone ou par "
	          "texto.",
	    cfg->establishment,
	    v->secure == SECURE_PDF_REGISTERED
	        ? "the passphrase you chose when you gave your consent."
	        : "your clinician will give it to you in person, by phone or by text message.");
	sb_puts(&body, "This is a multi-part message in MIME format.\r\n\r\n");
	sb_printf(&body,
	          "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	          "Content-Transfer-Encoding: base64\r\n\r\n",
	          boundary);
	base64_lines(&body, (const unsigned char *)text.data, text.len);
	sb_free(&text);
	sb_printf(&body,
	          "\r\n--%s\r\nContent-Type: application/pdf; name=\"message-securise.pdf\"\r\n"
	          "Content-Transfer-Encoding: base64\r\n"
	          "Content-Disposition: attachment; filename=\"message-securise.pdf\"\r\n\r\n",
	          boundary);
	base64_lines(&body, enc, enclen);
	free(enc);
	sb_printf(&body, "\r\n--%s--\r\n", boundary);

	char *ctype = g_strdup_printf("multipart/mixed; boundary=\"%s\"", boundary);
	const char *ct[] = {"Content-Type", ctype, NULL};
	char *subject = generic_subject(cfg);
	outer_edits(r, ct, 1, subject, out);
	free(subject);
	g_free(ctype);
	out->body_len = body.len;
	out->body = sb_steal(&body);
	out->change = "encrypted-pdf";
	if (v->secure == SECURE_PDF_GENERATED) {
		out->notice_rcpt = xstrdup(sender);
		if (!secure_have_archives_password(cfg->secrets)) {
			size_t na = 0;
			const char *dom = strrchr(sender, '@');
			char *const *arch = dir_archives_for(cfg->dirs, dom ? dom + 1 : "", &na);
			if (na > 0)
				out->notice_cc = xstrdup(arch[0]);
		}
		out->notice = password_notice(cfg, v, sender, out->notice_cc, password);
	}
	OPENSSL_cleanse(password, sizeof(password));
	return SECURE_OK;
}

int secure_mail_encrypt(const struct cm_config *cfg, const struct verdict *v, const char *msg,
                        size_t len, const char *sender, struct msg_edit *out, char *err,
                        size_t errlen)
{
	struct rawmsg r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (v->secure == SECURE_NONE || v->secure_rcpt >= v->nrcpts) {
		snprintf(err, errlen, "no encryption planned");
		return SECURE_TEMP;
	}
	rawmsg_parse(msg, len, &r);
	if (v->secure == SECURE_SMIME)
		rc = encrypt_smime(cfg, v, &r, out, err, errlen);
	else
		rc = encrypt_pdf(cfg, v, msg, len, &r, sender, out, err, errlen);
	rawmsg_free(&r);
	if (rc != SECURE_OK)
		msg_edit_free(out);
	return rc;
}

/* ---- signing ---- */

int secure_mail_sign(const struct cm_config *cfg, const char *msg, size_t len, struct msg_edit *out,
                     char *err, size_t errlen)
{
	const struct secure_secrets *s = cfg->secrets;
	struct rawmsg r;
	struct strbuf entity, body;
	BIO *in = NULL, *der = NULL;
	CMS_ContentInfo *cms = NULL;
	char boundary[80];
	int rc = SECURE_TEMP;

	memset(out, 0, sizeof(*out));
	if (!secure_can_sign(s)) {
		snprintf(err, errlen, "no signing certificate configured");
		return SECURE_TEMP;
	}
	rawmsg_parse(msg, len, &r);
	sb_init(&entity);
	sb_init(&body);
	build_entity(&r, NULL, &entity);
	if (entity.len > INT_MAX || (in = BIO_new_mem_buf(entity.data, (int)entity.len)) == NULL)
		goto done;
	cms = CMS_sign(s->sign_cert, s->sign_key, s->sign_chain, in, CMS_DETACHED | CMS_BINARY);
	if (cms == NULL) {
		snprintf(err, errlen, "CMS_sign failed");
		goto done;
	}
	if ((der = BIO_new(BIO_s_mem())) == NULL || i2d_CMS_bio(der, cms) != 1) {
		snprintf(err, errlen, "CMS encoding failed");
		goto done;
	}
	char *dp;
	long dl = BIO_get_mem_data(der, &dp);
	new_boundary(boundary, sizeof(boundary), "signed");
	sb_printf(&body, "This is an S/MIME signed message.\r\n\r\n--%s\r\n", boundary);
	sb_append(&body, entity.data, entity.len);
	sb_printf(&body,
	          "\r\n--%s\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\""
	          "\r\nContent-Transfer-Encoding: base64\r\n"
	          "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n",
	          boundary);
	base64_lines(&body, (const unsigned char *)dp, (size_t)dl);
	sb_printf(&body, "\r\n--%s--\r\n", boundary);
	char *ctype = g_strdup_printf("multipart/signed; protocol=\"application/pkcs7-signature\"; "
	                              "micalg=sha-256; boundary=\"%s\"",
	                              boundary);
	const char *ct[] = {"Content-Type", ctype, NULL};
	outer_edits(&r, ct, 0, NULL, out);
	g_free(ctype);
	out->body_len = body.len;
	out->body = sb_steal(&body);
	out->change = "signed";
	rc = SECURE_OK;
done:
	ERR_clear_error();
	BIO_free(in);
	BIO_free(der);
	CMS_ContentInfo_free(cms);
	sb_free(&entity);
	sb_free(&body);
	rawmsg_free(&r);
	if (rc != SECURE_OK)
		msg_edit_free(out);
	return rc;
}

/* ---- notices ---- */

int secure_send_notice(const struct cm_config *cfg, const char *rcpt, const char *cc,
                       const char *msg, int timeout_s, char *err, size_t errlen)
{
	int sv[2];
	pid_t pid;
	posix_spawn_file_actions_t fa;
	const char *from = cfg->notify_from && *cfg->notify_from ? cfg->notify_from : "";
	char *argv[] = {(char *)cfg->sendmail, "-i",       "-f", (char *)from, "--",
	                (char *)rcpt,          (char *)cc, NULL};
	size_t len = strlen(msg), off = 0;
	int status = 0, rc;
	struct timespec t0, t;

	if (cfg->sendmail == NULL || rcpt == NULL || *rcpt == '\0' || *rcpt == '-' ||
	    (cc != NULL && (*cc == '\0' || *cc == '-'))) {
		snprintf(err, errlen, "no Sendmail program or no recipient for the notice");
		return -1;
	}
	/* a socket pair, not a pipe: send(MSG_NOSIGNAL) cannot raise SIGPIPE in the milter */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	rc = posix_spawn(&pid, cfg->sendmail, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", cfg->sendmail, strerror(rc));
		close(sv[0]);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (off < len) {
		struct pollfd pfd = {sv[0], POLLOUT, 0};
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			break;
		ssize_t w = send(sv[0], msg + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > timeout_s)
			break;
	}
	close(sv[0]);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			return -1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > timeout_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(err, errlen, "%s: no answer within %d s", cfg->sendmail,
			         timeout_s);
			return -1;
		}
		usleep(10000);
	}
	if (off < len) {
		snprintf(err, errlen, "%s: the notice could not be written", cfg->sendmail);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "%s: exit status %d", cfg->sendmail,
		         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		return -1;
	}
	return 0;
}

/* ---- offline application (clinimail check --output, tests) ---- */

struct hentry {
	char *text; /* the whole field, folded lines and CRLF included; NULL: deleted */
	char *name;
};

int msg_edit_apply(const char *msg, size_t len, const struct msg_edit *e, struct strbuf *out)
{
	struct hentry *h = NULL;
	size_t n = 0, i = 0, body;

	while (i < len) {
		size_t eol = i;
		while (eol < len && msg[eol] != '\n')
			eol++;
		size_t next = eol < len ? eol + 1 : len;
		size_t end = eol > i && msg[eol - 1] == '\r' ? eol - 1 : eol;
		if (end == i) {
			i = next;
			break;
		}
		if ((msg[i] == ' ' || msg[i] == '\t') && n > 0) {
			char *t =
			    g_strdup_printf("%s%.*s\r\n", h[n - 1].text, (int)(end - i), msg + i);
			g_free(h[n - 1].text);
			h[n - 1].text = t;
		} else {
			const char *colon = memchr(msg + i, ':', end - i);
			h = xrealloc(h, (n + 1) * sizeof(*h));
			h[n].name =
			    colon ? xstrndup(msg + i, (size_t)(colon - (msg + i))) : xstrdup("");
			h[n].text = g_strdup_printf("%.*s\r\n", (int)(end - i), msg + i);
			n++;
		}
		i = next;
	}
	body = i;
	for (size_t k = 0; e != NULL && k < e->nhdrs; k++) {
		const struct header_edit *x = &e->hdrs[k];
		if (x->index == 0) {
			h = xrealloc(h, (n + 1) * sizeof(*h));
			h[n].name = xstrdup(x->name);
			h[n].text =
			    g_strdup_printf("%s: %s\r\n", x->name, x->value ? x->value : "");
			n++;
			continue;
		}
		int seen = 0;
		for (size_t j = 0; j < n; j++) {
			if (h[j].text == NULL || g_ascii_strcasecmp(h[j].name, x->name) != 0)
				continue;
			if (++seen != x->index)
				continue;
			g_free(h[j].text);
			h[j].text =
			    x->value ? g_strdup_printf("%s: %s\r\n", x->name, x->value) : NULL;
			break;
		}
	}
	for (size_t j = 0; j < n; j++) {
		if (h[j].text)
			sb_puts(out, h[j].text);
		g_free(h[j].text);
		free(h[j].name);
	}
	free(h);
	sb_puts(out, "\r\n");
	if (e != NULL && e->body != NULL)
		sb_append(out, e->body, e->body_len);
	else
		put_crlf(out, msg + body, len - body);
	return 0;
}

char *secure_header_value(const char *msg, size_t len, const char *name, int *count,
                          size_t *body_off)
{
	struct rawmsg r;
	char *v = NULL;
	int n = 0;

	rawmsg_parse(msg, len, &r);
	for (size_t i = 0; i < r.n; i++)
		if (g_ascii_strcasecmp(r.h[i].name, name) == 0 && n++ == 0)
			v = xstrdup(r.h[i].value);
	if (count)
		*count = n;
	if (body_off)
		*body_off = (size_t)(r.body - msg);
	rawmsg_free(&r);
	return v;
}
