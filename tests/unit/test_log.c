/*
 * log: the JSON line's escaping and its 4,000-byte bound, byte for byte
 * against a plain reference (one byte at a time, as the escaping was written
 * before it copied runs whole), and the time of a line against gmtime_r. The
 * line goes to standard error, so each test points fd 2 at a temporary file
 * and reads it back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"

#define LINE_MAX_BYTES 4000 /* log.c's bound, newline excluded */

struct capture {
	FILE *file;
	int saved_fd;
};

static void capture_start(struct capture *c)
{
	c->file = tmpfile();
	assert_non_null(c->file);
	fflush(stderr);
	c->saved_fd = dup(STDERR_FILENO);
	assert_true(c->saved_fd >= 0);
	assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* The captured bytes (malloc'd, NUL-terminated), fd 2 restored. */
static char *capture_end(struct capture *c, size_t *len)
{
	char *text;
	long size;

	assert_true(dup2(c->saved_fd, STDERR_FILENO) >= 0);
	close(c->saved_fd);
	size = ftell(c->file);
	assert_true(size >= 0);
	text = malloc((size_t)size + 1);
	assert_non_null(text);
	rewind(c->file);
	assert_int_equal(fread(text, 1, (size_t)size, c->file), (size_t)size);
	text[size] = '\0';
	fclose(c->file);
	*len = (size_t)size;
	return text;
}

/* The reference: log.c's escaping, one byte at a time, 8 bytes to spare. */
static void reference_string(char *buf, size_t *n, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (*n < LINE_MAX_BYTES)
		buf[(*n)++] = '"';
	for (; *s && *n + 8 < LINE_MAX_BYTES; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = (char)c;
		} else if (c < 0x20) {
			memcpy(buf + *n, "\\u00", 4);
			buf[*n + 4] = hex[c >> 4];
			buf[*n + 5] = hex[c & 15];
			*n += 6;
		} else {
			buf[(*n)++] = (char)c;
		}
	}
	if (*n < LINE_MAX_BYTES)
		buf[(*n)++] = '"';
}

/* Logs {"k": value} and checks the line from ,"k": on against the reference. */
static void check_value(const char *value)
{
	char expect[LINE_MAX_BYTES + 2];
	struct capture c;
	size_t len, n, head;
	char *line, *pair;

	capture_start(&c);
	log_event(LOG_INFO, "escape_test", "k", value, NULL);
	line = capture_end(&c, &len);
	pair = strstr(line, "\"escape_test\",\"k\":");
	assert_non_null(pair);
	head = (size_t)(pair - line) + strlen("\"escape_test\"");
	/* what log_event writes after the head: the pair, '}' and '\n' */
	n = head;
	expect[n++] = ',';
	reference_string(expect, &n, "k");
	expect[n++] = ':';
	reference_string(expect, &n, value);
	expect[n++] = '}';
	expect[n++] = '\n';
	assert_true(len <= LINE_MAX_BYTES + 1);
	assert_int_equal(len, n);
	assert_memory_equal(line + head, expect + head, n - head);
	free(line);
}

static void test_escapes_round_trip(void **state)
{
	const char *value =
		"a\"b\\c\nd\x01\x1f"
		"caf\xc3\xa9 plain run of more than sixteen bytes\t";
	struct capture c;
	size_t len;
	cJSON *root;
	char *line;

	(void)state;
	check_value(value);
	capture_start(&c);
	log_event(LOG_INFO, "escape_test", "k", value, NULL);
	line = capture_end(&c, &len);
	root = cJSON_Parse(line);
	assert_non_null(root);
	assert_string_equal(
		cJSON_GetObjectItemCaseSensitive(root, "k")->valuestring,
		value);
	cJSON_Delete(root);
	free(line);
}

/* Values that cross the bound with an escape at each byte around it. */
static void test_bound_with_escapes_near_it(void **state)
{
	static const char escapes[] = { '"', '\\', '\n', 'x' };
	char value[LINE_MAX_BYTES + 64];

	(void)state;
	check_value("");
	for (size_t e = 0; e < sizeof(escapes); e++) {
		for (size_t at = LINE_MAX_BYTES - 120; at < LINE_MAX_BYTES - 40;
		     at++) {
			memset(value, 'a', sizeof(value) - 1);
			value[sizeof(value) - 1] = '\0';
			value[at] = escapes[e];
			value[at + 1] = escapes[(e + 1) % sizeof(escapes)];
			check_value(value);
		}
	}
}

/* What gmtime_r makes of sec, in log_time_text's form. */
static void reference_time(char out[64], long long sec, long nsec)
{
	time_t t = (time_t)sec;
	struct tm tm;

	assert_non_null(gmtime_r(&t, &tm));
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, nsec / 1000000);
}

static void check_time(long long sec, long nsec)
{
	char got[LOG_TIME_SIZE], want[64];

	log_time_text(got, sec, nsec);
	reference_time(want, sec, nsec);
	assert_string_equal(got, want);
}

/* The computed date against gmtime_r: a second a day, one second earlier each
 * day (so every time of day comes round) over the years 1900-2299, a second in
 * every 37 days over 0000-9999, and the edges: the epoch, leap days,
 * centuries, the first and last second. */
static void test_time_matches_gmtime(void **state)
{
	static const long long edges[] = {
		0,
		-1,
		86399,
		86400,
		951782400,
		951868799,
		951868800,
		4107456000,
		4107542400,
		1798675200,
		-2208988800,
		-2203891200,
		253402300799LL,
		-62167219200LL,
	};
	char got[LOG_TIME_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		check_time(edges[i], 999999999);
	for (long long sec = -2208988800LL; sec < 10413792000LL; sec += 86399)
		check_time(sec, (long)(sec & 0x3fffffff) % 1000000000);
	for (long long sec = -62167219200LL; sec <= 253402300799LL;
	     sec += 37 * 86400 + 1)
		check_time(sec, 0);
	/* a clock beyond the years RFC 3339 writes is clamped to them */
	log_time_text(got, 253402300800LL * 4, 0);
	assert_string_equal(got, "9999-12-31T23:59:59.000Z");
	log_time_text(got, -62167219201LL * 4, 0);
	assert_string_equal(got, "0000-01-01T00:00:00.000Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes_round_trip),
		cmocka_unit_test(test_bound_with_escapes_near_it),
		cmocka_unit_test(test_time_matches_gmtime),
	};

	log_setup(LOG_INFO, true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
