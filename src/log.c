/*
 * log: structured lines on stderr. The two settings are process-wide (configured once
 * by main before threads start, then only read); each line is built in a stack buffer
 * and written with a single write(2), which keeps lines whole under concurrency.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "strbuf.h"

#define LINE_MAX_BYTES 4000 /* below PIPE_BUF: whole lines even on a pipe */

static enum log_level min_level = LOG_INFO;
static bool json_format = true;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/* The texts around the three fields every line starts with (time, level, event):
 * [0] for text lines, [1] for JSON. */
static const char *const line_head[2][4] = {
	{ "time=", " level=", " event=", "" },
	{ "{\"time\":\"", "\",\"level\":\"", "\",\"event\":\"", "\"" },
};

void log_setup(enum log_level level, bool json)
{
	min_level = level;
	json_format = json;
}

enum log_level log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcmp(level_names[i], name) == 0)
			return (enum log_level)i;
	}
	return LOG_INFO;
}

bool log_enabled(enum log_level level)
{
	return level >= min_level;
}

/* Appends s as it is (our own names and the time, which need no escaping). */
static void put_raw(char *buf, size_t *n, const char *s)
{
	size_t len = strlen(s);

	if (len > LINE_MAX_BYTES - 1 - *n)
		len = LINE_MAX_BYTES - 1 - *n;
	memcpy(buf + *n, s, len);
	*n += len;
}

/*
 * Appends s escaped for JSON (control bytes as \u00XX), while the line has 8
 * bytes to spare. The runs between escapes are copied whole.
 */
static void put_json_string(char *buf, size_t *n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t left = strlen(s);

	if (*n < LINE_MAX_BYTES)
		buf[(*n)++] = '"';
	while (left > 0 && *n + 8 < LINE_MAX_BYTES) {
		size_t run = json_unescaped_span(s, left);
		unsigned char c;

		if (run > LINE_MAX_BYTES - 8 - *n)
			run = LINE_MAX_BYTES - 8 - *n;
		memcpy(buf + *n, s, run);
		*n += run;
		s += run;
		left -= run;
		if (left == 0 || *n + 8 >= LINE_MAX_BYTES)
			break;
		c = (unsigned char)*s++;
		left--;
		if (c == '"' || c == '\\') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = (char)c;
		} else { /* a control byte: the span stops only at these */
			memcpy(buf + *n, "\\u00", 4);
			buf[*n + 4] = hex[c >> 4];
			buf[*n + 5] = hex[c & 15];
			*n += 6;
		}
	}
	if (*n < LINE_MAX_BYTES)
		buf[(*n)++] = '"';
}

/* Appends a text value, quoted when it holds spaces, quotes or '='. */
static void put_text_value(char *buf, size_t *n, const char *s)
{
	if (s[0] != '\0' && strpbrk(s, " \"=\t\n\\") == NULL) {
		size_t len = strlen(s);

		if (len > LINE_MAX_BYTES - *n - 2)
			len = LINE_MAX_BYTES - *n - 2;
		memcpy(buf + *n, s, len);
		*n += len;
		return;
	}
	put_json_string(buf, n, s);
}

static void put_pair(char *buf, size_t *n, const char *key, const char *value)
{
	size_t klen = strlen(key);

	if (*n + klen + 8 >= LINE_MAX_BYTES)
		return;
	if (json_format) {
		buf[(*n)++] = ',';
		put_json_string(buf, n, key);
		buf[(*n)++] = ':';
		put_json_string(buf, n, value ? value : "");
	} else {
		buf[(*n)++] = ' ';
		memcpy(buf + *n, key, klen);
		*n += klen;
		buf[(*n)++] = '=';
		put_text_value(buf, n, value ? value : "");
	}
}

/* Writes v as exactly `width` decimal digits (v >= 0, zero-padded). */
static char *put_digits(char *p, long v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + width;
}

/*
 * Writes the time as RFC 3339 UTC with milliseconds (2026-12-04T15:43:15.524Z, 24
 * bytes and the NUL) by hand: strftime and snprintf were half the cost of the line.
 */
static void put_timestamp(char out[32])
{
	struct timespec ts;
	struct tm tm;
	char *p = out;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	p = put_digits(p, tm.tm_year + 1900L, 4);
	*p++ = '-';
	p = put_digits(p, tm.tm_mon + 1L, 2);
	*p++ = '-';
	p = put_digits(p, tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, ts.tv_nsec / 1000000, 3);
	*p++ = 'Z';
	*p = '\0';
}

void log_event(enum log_level level, const char *event, ...)
{
	char buf[LINE_MAX_BYTES + 2], when[32];
	const char *key;
	size_t n = 0;
	va_list ap;

	if (level < min_level)
		return;
	put_timestamp(when);
	const char *const *text = line_head[json_format];
	const char *fields[3] = { when, level_names[level], event };

	for (size_t i = 0; i < 3; i++) {
		put_raw(buf, &n, text[i]);
		put_raw(buf, &n, fields[i]);
	}
	put_raw(buf, &n, text[3]);
	va_start(ap, event);
	while ((key = va_arg(ap, const char *)) != NULL)
		put_pair(buf, &n, key, va_arg(ap, const char *));
	va_end(ap);
	if (json_format)
		buf[n++] = '}';
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0)
		return; /* nowhere left to report it */
}
