/* fax_hylafax.c — stub, being written (every call fails HFAX_TEMP). */
#include "autoconfig.h"

#include <stdio.h>

#include "fax_hylafax.h"

int hfax_connect(const char *host, const char *port, const char *user, int timeout_s,
                 struct hfax_conn **out, char *err, size_t errlen)
{
	(void)host, (void)port, (void)user, (void)timeout_s;
	*out = NULL;
	snprintf(err, errlen, "HylaFAX client not written yet");
	return HFAX_TEMP;
}

void hfax_close(struct hfax_conn *c)
{
	(void)c;
}

int hfax_submit(struct hfax_conn *c, const struct hfax_job_opts *o, char *jobid, size_t jobidlen,
                char *err, size_t errlen)
{
	(void)c, (void)o, (void)jobid, (void)jobidlen;
	snprintf(err, errlen, "stub");
	return HFAX_TEMP;
}

int hfax_poll(struct hfax_conn *c, const char *jobid, struct hfax_status *st, char *err,
              size_t errlen)
{
	(void)c, (void)jobid, (void)st;
	snprintf(err, errlen, "stub");
	return HFAX_TEMP;
}

int hfax_delete(struct hfax_conn *c, const char *jobid, char *err, size_t errlen)
{
	(void)c, (void)jobid;
	snprintf(err, errlen, "stub");
	return HFAX_TEMP;
}

int hfax_find_by_key(struct hfax_conn *c, const char *user_key, char *jobid, size_t jobidlen,
                     char *err, size_t errlen)
{
	(void)c, (void)user_key, (void)jobid, (void)jobidlen;
	snprintf(err, errlen, "stub");
	return HFAX_TEMP;
}
