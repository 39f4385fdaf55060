/*
 * Per-thread error messages: the C core returns errno values and leaves a
 * human-readable account of the failure (object, offset) for the caller.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "hammer2.h"

static __thread char errbuf[512];

int
hammer2_seterr(int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return error;
}

/* Prefix the current message with more context ("inode 0x402: ..."). */
int
hammer2_preerr(int error, const char *fmt, ...)
{
	char prefix[256];
	char old[sizeof(errbuf)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, errbuf, sizeof(old));
	snprintf(errbuf, sizeof(errbuf), "%s: %s", prefix,
		 old[0] ? old : strerror(error));
	return error;
}

const char *
hammer2_errmsg(void)
{
	return errbuf;
}
