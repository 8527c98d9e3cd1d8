/*
 * diag: error codes and the fixed-size error record. Fixed buffers on purpose:
 * an error path must not need memory, least of all after an allocation failure.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *diag_code_name(int code)
{
	switch (code) {
#define DIAG_NAME_CASE(name, value, text) \
	case value:                       \
		return text;
		DIAG_CODES(DIAG_NAME_CASE)
#undef DIAG_NAME_CASE
	default:
		return "unknown error";
	}
}

void diag_clear(struct diag *d)
{
	if (d == NULL)
		return;
	d->code = DIAG_OK;
	d->where[0] = '\0';
	d->line = 0;
	d->text[0] = '\0';
}

static void diag_vset(struct diag *d, int code, const char *where, int line,
		      const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

static void diag_vset(struct diag *d, int code, const char *where, int line,
		      const char *fmt, va_list ap)
{
	d->code = code;
	d->line = line;
	snprintf(d->where, sizeof(d->where), "%s", where ? where : "");
	vsnprintf(d->text, sizeof(d->text), fmt, ap);
}

int diag_set(struct diag *d, int code, const char *fmt, ...)
{
	va_list ap;

	if (d == NULL || d->code != DIAG_OK)
		return code;
	va_start(ap, fmt);
	diag_vset(d, code, NULL, 0, fmt, ap);
	va_end(ap);
	return code;
}

int diag_set_at(struct diag *d, int code, const char *where, int line,
		const char *fmt, ...)
{
	va_list ap;

	if (d == NULL || d->code != DIAG_OK)
		return code;
	va_start(ap, fmt);
	diag_vset(d, code, where, line, fmt, ap);
	va_end(ap);
	return code;
}

void diag_locate(struct diag *d, const char *where, int line)
{
	if (d == NULL || d->code == DIAG_OK || d->where[0] != '\0')
		return;
	snprintf(d->where, sizeof(d->where), "%s", where ? where : "");
	if (d->line == 0)
		d->line = line;
}

void diag_format(const struct diag *d, char *buf, size_t size)
{
	const char *text;

	if (size == 0)
		return;
	text = d->text[0] != '\0' ? d->text : diag_code_name(d->code);
	if (d->where[0] != '\0' && d->line > 0)
		snprintf(buf, size, "%s:%d: %s", d->where, d->line, text);
	else if (d->where[0] != '\0')
		snprintf(buf, size, "%s: %s", d->where, text);
	else
		snprintf(buf, size, "%s", text);
}
