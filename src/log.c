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

#include "invariant.h"
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
		/* a key is one of our names: nothing in it to escape */
		PIW_ASSERT(json_unescaped_span(key, klen) == klen);
		buf[(*n)++] = ',';
		buf[(*n)++] = '"';
		memcpy(buf + *n, key, klen);
		*n += klen;
		buf[(*n)++] = '"';
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
 * The civil date of a count of days since 1970-01-01 (proleptic Gregorian), by
 * Howard Hinnant's days-to-civil algorithm: gmtime_r takes glibc's time-zone lock
 * on every call, which the request threads would contend for.
 */
static void civil_from_days(long long days, long *year, int *month, int *day)
{
	long long z = days + 719468; /* days since 0000-03-01 */
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097; /* [0, 146096] */
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy =
		doe - (365 * yoe + yoe / 4 - yoe / 100); /* from March */
	long long mp = (5 * doy + 2) / 153; /* [0, 11], March first */

	*day = (int)(doy - (153 * mp + 2) / 5 + 1);
	*month = (int)(mp < 10 ? mp + 3 : mp - 9);
	*year = (long)(yoe + era * 400 + (*month <= 2));
}

/* The first and last second of the years RFC 3339 can write (0000 to 9999). */
#define TIME_FIRST (-62167219200LL)
#define TIME_LAST  253402300799LL

void log_time_text(char out[LOG_TIME_SIZE], long long sec, long nsec)
{
	long long days, secs;
	long year;
	int month, day;
	char *p = out;

	/* a clock that far off is wrong; the line still holds a valid time */
	sec = sec < TIME_FIRST ? TIME_FIRST : sec > TIME_LAST ? TIME_LAST : sec;
	days = sec / 86400;
	secs = sec % 86400;
	if (secs < 0) { /* C rounds toward zero: before 1970, a day less */
		secs += 86400;
		days--;
	}
	civil_from_days(days, &year, &month, &day);
	p = put_digits(p, year, 4);
	*p++ = '-';
	p = put_digits(p, month, 2);
	*p++ = '-';
	p = put_digits(p, day, 2);
	*p++ = 'T';
	p = put_digits(p, (long)(secs / 3600), 2);
	*p++ = ':';
	p = put_digits(p, (long)(secs / 60 % 60), 2);
	*p++ = ':';
	p = put_digits(p, (long)(secs % 60), 2);
	*p++ = '.';
	p = put_digits(p, nsec / 1000000, 3);
	*p++ = 'Z';
	*p = '\0';
}

void log_event(enum log_level level, const char *event, ...)
{
	char buf[LINE_MAX_BYTES + 2], when[LOG_TIME_SIZE];
	struct timespec ts;
	const char *key;
	size_t n = 0;
	va_list ap;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	log_time_text(when, (long long)ts.tv_sec, ts.tv_nsec);
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
