/*
 * bounce.c — load the bounce texts (policies/bounces.txt) and expand their
 * {placeholders}.  See bounce.h for the file format.
 */
#include "autoconfig.h"

#include "bounce.h"
#include "util.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>

struct bounce_texts {
	GHashTable *texts; /* key → text, both owned */
};

void bounce_texts_free(struct bounce_texts *b)
{
	if (b == NULL)
		return;
	if (b->texts)
		g_hash_table_destroy(b->texts);
	free(b);
}

struct bounce_texts *bounce_texts_load(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	struct bounce_texts *b;
	char *line = NULL, *last_key = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	b = xcalloc(1, sizeof(*b));
	b->texts = g_hash_table_new_full(g_str_hash, g_str_equal, free, free);
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			snprintf(err, errlen, "%s:%d: NUL byte", path, lineno);
			goto fail;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#')
			continue;
		if ((line[0] == ' ' || line[0] == '\t') && last_key != NULL) {
			char *cont = str_trim(line);
			if (*cont == '\0')
				continue;
			const char *old = g_hash_table_lookup(b->texts, last_key);
			char *joined = g_strconcat(old ? old : "", old && *old ? " " : "", cont, NULL);
			char *dup = xstrdup(joined);
			g_free(joined);
			g_hash_table_replace(b->texts, xstrdup(last_key), dup);
			continue;
		}
		char *s = str_trim(line);
		if (*s == '\0') {
			free(last_key);
			last_key = NULL;
			continue;
		}
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%d: expected \"key = text\"", path, lineno);
			goto fail;
		}
		*eq = '\0';
		char *key = str_trim(s), *val = str_trim(eq + 1);
		if (*key == '\0' || strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789-._") != strlen(key)) {
			snprintf(err, errlen, "%s:%d: bad key \"%s\"", path, lineno, key);
			goto fail;
		}
		if (g_hash_table_contains(b->texts, key)) {
			snprintf(err, errlen, "%s:%d: duplicate key \"%s\"", path, lineno, key);
			goto fail;
		}
		g_hash_table_insert(b->texts, xstrdup(key), xstrdup(val));
		free(last_key);
		last_key = xstrdup(key);
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	free(line);
	free(last_key);
	fclose(fp);
	return b;
fail:
	free(line);
	free(last_key);
	fclose(fp);
	bounce_texts_free(b);
	return NULL;
}

const char *bounce_text(const struct bounce_texts *b, const char *key)
{
	return b ? g_hash_table_lookup(b->texts, key) : NULL;
}

char *bounce_expand(const char *tmpl, const char *const *names, const char *const *values,
                    size_t n)
{
	struct strbuf sb;
	const char *p = tmpl;

	sb_init(&sb);
	while (*p) {
		const char *open = strchr(p, '{');
		const char *close = open ? strchr(open, '}') : NULL;
		if (open == NULL || close == NULL) {
			sb_puts(&sb, p);
			break;
		}
		sb_append(&sb, p, (size_t)(open - p));
		size_t klen = (size_t)(close - open - 1);
		for (size_t i = 0; i < n; i++)
			if (strlen(names[i]) == klen && strncmp(names[i], open + 1, klen) == 0) {
				sb_puts(&sb, values[i] ? values[i] : "");
				break;
			}
		p = close + 1;
	}
	return sb_steal(&sb);
}
