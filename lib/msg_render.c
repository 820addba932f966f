/*
 * msg_render.c — a raw message as sender, date, recipients, subject, text
 * body and decoded attachments, for pdf_render() and fax_render().  See
 * msg_render.h.
 */
#include "autoconfig.h"
#include "msg_render.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime_text.h"
#include "util.h"

struct walk {
	struct printable_msg *p;
	size_t max_parts, max_bytes, parts, bytes;
	int failed;
	char *why;
	struct strbuf body;
	int body_is_html; /* the body came from HTML: a later text/plain replaces it */
	int have_body;
};

static char *addr_list_text(InternetAddressList *l)
{
	if (l == NULL || internet_address_list_length(l) == 0)
		return NULL;
	return internet_address_list_to_string(l, NULL, FALSE);
}

static GByteArray *decoded(GMimePart *part)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeStream *mem;
	GByteArray *out;

	if (dw == NULL)
		return NULL;
	mem = g_mime_stream_mem_new();
	if (g_mime_data_wrapper_write_to_stream(dw, mem) < 0) {
		g_object_unref(mem);
		return NULL;
	}
	out = g_byte_array_new();
	g_byte_array_append(out, g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem))->data,
	                    g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem))->len);
	g_object_unref(mem);
	return out;
}

static void add_att(struct walk *w, const char *name, const char *type, const unsigned char *data,
                    size_t len)
{
	struct printable_msg *p = w->p;
	size_t n = p->natts + 1;

	p->att_names = xrealloc(p->att_names, n * sizeof(*p->att_names));
	p->att_types = xrealloc(p->att_types, n * sizeof(*p->att_types));
	p->att_data = xrealloc(p->att_data, n * sizeof(*p->att_data));
	p->att_names[p->natts] = name ? xstrdup(name) : NULL;
	p->att_types[p->natts] = xstrdup(type);
	p->att_data[p->natts] = xmalloc(len ? len : 1);
	memcpy(p->att_data[p->natts], data, len);
	p->atts = xrealloc(p->atts, n * sizeof(*p->atts));
	p->atts[p->natts].filename = p->att_names[p->natts];
	p->atts[p->natts].content_type = p->att_types[p->natts];
	p->atts[p->natts].data = p->att_data[p->natts];
	p->atts[p->natts].len = len;
	p->natts = n;
}

static void leaf(struct walk *w, GMimeObject *parent, GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *mtype = ct ? g_mime_content_type_get_mime_type(ct) : g_strdup("text/plain");
	GMimePart *part = GMIME_PART(obj);
	const char *fname = g_mime_part_get_filename(part);
	int attachment = g_mime_part_is_attachment(part) || fname != NULL;
	int text = g_ascii_strncasecmp(mtype, "text/", 5) == 0;
	int html = g_ascii_strcasecmp(mtype, "text/html") == 0;
	GByteArray *data;

	for (char *q = mtype; *q; q++)
		*q = g_ascii_tolower(*q);
	if (++w->parts > w->max_parts) {
		w->failed = 1;
		free(w->why);
		w->why = xstrdup("too many MIME parts to render");
		g_free(mtype);
		return;
	}
	/* the HTML's own logos (multipart/related, referenced by Content-ID) */
	if (!attachment && parent && GMIME_IS_MULTIPART(parent) && !text &&
	    g_mime_object_get_content_id(obj) != NULL) {
		GMimeContentType *pct = g_mime_object_get_content_type(parent);
		if (pct && g_mime_content_type_is_type(pct, "multipart", "related")) {
			g_free(mtype);
			return;
		}
	}
	if ((data = decoded(part)) == NULL) {
		g_free(mtype);
		return;
	}
	w->bytes += data->len;
	if (w->bytes > w->max_bytes) {
		w->failed = 1;
		free(w->why);
		w->why = xstrdup("attachments too large to render");
		g_byte_array_unref(data);
		g_free(mtype);
		return;
	}
	if (text) {
		struct strbuf u, t;
		const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");
		sb_init(&u);
		sb_init(&t);
		mime_text_to_utf8(cs, (const char *)data->data, data->len, &u);
		if (html) {
			mime_html_to_text(u.data ? u.data : "", u.len, &t);
			sb_free(&u);
			u = t;
			sb_init(&t);
		}
		int alt_html_loses = html && w->have_body && !w->body_is_html;
		if (!attachment && (!w->have_body || (w->body_is_html && !html))) {
			if (!alt_html_loses) {
				sb_free(&w->body);
				w->body = u;
				sb_init(&u);
				w->have_body = 1;
				w->body_is_html = html;
			}
		} else if (!attachment && parent && GMIME_IS_MULTIPART(parent) &&
		           g_mime_content_type_is_type(g_mime_object_get_content_type(parent),
		                                       "multipart", "alternative")) {
			/* the other form of the same body */
		} else {
			add_att(w, fname, html ? "text/plain" : mtype,
			        (const unsigned char *)u.data, u.len);
		}
		sb_free(&u);
	} else {
		add_att(w, fname, mtype, data->data, data->len);
	}
	g_byte_array_unref(data);
	g_free(mtype);
}

static void walk(struct walk *w, GMimeObject *parent, GMimeObject *obj, int depth)
{
	if (w->failed || obj == NULL)
		return;
	if (depth > 32) {
		w->failed = 1;
		free(w->why);
		w->why = xstrdup("MIME structure too deep to render");
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n && !w->failed; i++)
			walk(w, obj, g_mime_multipart_get_part(mp, i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		/* a forwarded message: printed as an attachment of its own text */
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (inner) {
			GMimeFormatOptions *fo = g_mime_format_options_new();
			char *s = g_mime_object_to_string(GMIME_OBJECT(inner), fo);
			g_mime_format_options_free(fo);
			if (s) {
				add_att(w, "message.eml", "text/plain", (const unsigned char *)s,
				        strlen(s));
				g_free(s);
			}
		}
	} else if (GMIME_IS_PART(obj)) {
		leaf(w, parent, obj);
	}
}

int printable_msg_from_raw(const char *msg, size_t len, size_t max_parts, size_t max_bytes,
                           struct printable_msg *out, char *err, size_t errlen)
{
	GMimeStream *st;
	GMimeParser *parser;
	GMimeMessage *gm;
	struct walk w;
	const char *v;

	memset(out, 0, sizeof(*out));
	st = g_mime_stream_mem_new_with_buffer(msg, len);
	parser = g_mime_parser_new_with_stream(st);
	gm = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(st);
	if (gm == NULL) {
		snprintf(err, errlen, "the message cannot be parsed");
		return -1;
	}
	memset(&w, 0, sizeof(w));
	w.p = out;
	w.max_parts = max_parts ? max_parts : 1000;
	w.max_bytes = max_bytes ? max_bytes : 64u << 20;
	sb_init(&w.body);
	walk(&w, NULL, g_mime_message_get_mime_part(gm), 0);
	if (w.failed) {
		snprintf(err, errlen, "%s", w.why ? w.why : "cannot render");
		free(w.why);
		sb_free(&w.body);
		g_object_unref(gm);
		printable_msg_free(out);
		return -1;
	}
	out->body = w.body.data ? sb_steal(&w.body) : xstrdup("");
	out->from = addr_list_text(g_mime_message_get_from(gm));
	v = g_mime_object_get_header(GMIME_OBJECT(gm), "Date");
	out->date = v ? xstrdup(v) : NULL;
	v = g_mime_message_get_subject(gm);
	out->subject = v ? xstrdup(v) : NULL;
	{
		InternetAddressList *lists[2] = {g_mime_message_get_to(gm),
		                                 g_mime_message_get_cc(gm)};
		for (int i = 0; i < 2; i++) {
			char *t = addr_list_text(lists[i]);
			if (t == NULL)
				continue;
			out->rcpts = xrealloc(out->rcpts, (out->nrcpts + 1) * sizeof(*out->rcpts));
			out->rcpts[out->nrcpts++] = xstrdup(t);
			g_free(t);
		}
	}
	g_object_unref(gm);
	/* GMime's strings came from g_malloc: from was g_strdup'ed by GMime */
	if (out->from) {
		char *f = xstrdup(out->from);
		g_free(out->from);
		out->from = f;
	}
	out->m.from = out->from;
	out->m.date = out->date;
	out->m.recipients = (const char *const *)out->rcpts;
	out->m.nrecipients = out->nrcpts;
	out->m.subject = out->subject;
	out->m.body = out->body;
	out->m.body_len = strlen(out->body);
	out->m.atts = out->atts;
	out->m.natts = out->natts;
	return 0;
}

void printable_msg_free(struct printable_msg *p)
{
	if (p == NULL)
		return;
	free(p->from);
	free(p->date);
	free(p->subject);
	free(p->body);
	for (size_t i = 0; i < p->nrcpts; i++)
		free(p->rcpts[i]);
	free(p->rcpts);
	for (size_t i = 0; i < p->natts; i++) {
		free(p->att_names[i]);
		free(p->att_types[i]);
		free(p->att_data[i]);
	}
	free(p->att_names);
	free(p->att_types);
	free(p->att_data);
	free(p->atts);
	memset(p, 0, sizeof(*p));
}
