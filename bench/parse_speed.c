/*
 * parse_speed: the time one JSON parse of a file takes, three ways, in a loop.
 *
 *   build-release/bench_parse bench/data/admissionreview-deployment.json [N]
 *
 * review     review_decode(): what the server does with a body (keep-schema,
 *            in an arena, strings left in a copy of the body)
 * validate   json_parse_with() keeping nothing: every byte checked, no tree
 * whole      json_parse_with() keeping everything, in an arena
 *
 * callgrind counts instructions and cannot see a CPU stalled on memory or on a
 * store it cannot forward; this loop times it. It is a tool, not a test: the
 * figures depend on the machine (docs/performance.md says which were measured
 * how). Each way runs N times (default 20,000) after N/10 warm-up runs; the
 * best of three rounds is printed, in microseconds per parse.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "mem.h"
#include "review.h"
#include "strutil.h"

#define FILE_MAX (8 * 1024 * 1024)
#define ROUNDS	 3

enum way { REVIEW, VALIDATE, WHOLE };

static const char *const way_names[] = { "review", "validate", "whole" };

static const struct json_keep keep_nothing[] = { { NULL, NULL, false } };

static double now_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One parse the given way: 0, or the parser's error (in d). */
static int parse_once(enum way way, const char *buf, size_t len, struct diag *d)
{
	_Alignas(16) char first[64 * 1024];
	struct mem_arena arena;
	struct review *r = NULL;
	cJSON *root = NULL;
	int rc;

	if (way == REVIEW) {
		rc = review_decode(buf, len, &r, d);
		review_free(r);
		return rc;
	}
	mem_arena_init(&arena, first, sizeof(first), 64 * len + 4096);
	rc = json_parse_with(buf, len, way == VALIDATE ? keep_nothing : NULL,
			     &arena, &root, d);
	mem_arena_release(&arena);
	return rc;
}

/* The best of ROUNDS rounds of n parses, in microseconds per parse; < 0 when a
 * parse fails. */
static double time_way(enum way way, const char *buf, size_t len, int64_t n)
{
	double best = -1;
	struct diag d;

	for (int64_t i = 0; i < n / 10; i++) {
		if (parse_once(way, buf, len, &d) != 0) {
			fprintf(stderr, "bench_parse: %s: %s\n", way_names[way],
				d.text);
			return -1;
		}
	}
	for (int round = 0; round < ROUNDS; round++) {
		double start = now_seconds(), us;

		for (int64_t i = 0; i < n; i++)
			(void)parse_once(way, buf, len, &d);
		us = (now_seconds() - start) * 1e6 / (double)n;
		if (best < 0 || us < best)
			best = us;
	}
	return best;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = f ? malloc(FILE_MAX) : NULL;

	if (buf)
		*len = fread(buf, 1, FILE_MAX, f);
	if (buf && (ferror(f) || *len == FILE_MAX)) {
		free(buf);
		buf = NULL;
	}
	if (f)
		fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	int64_t n = 20000;
	size_t len = 0;
	char *buf;

	if (argc < 2 || argc > 3 ||
	    (argc == 3 && str_to_i64(argv[2], 1, INT32_MAX, &n) != 0)) {
		fprintf(stderr, "usage: bench_parse FILE [PARSES]\n");
		return 2;
	}
	buf = read_file(argv[1], &len);
	if (buf == NULL) {
		fprintf(stderr,
			"bench_parse: %s: cannot read it (or over %d "
			"bytes)\n",
			argv[1], FILE_MAX);
		return 2;
	}
	printf("%s: %zu bytes, %lld parses a round, best of %d\n", argv[1], len,
	       (long long)n, ROUNDS);
	for (int way = REVIEW; way <= WHOLE; way++) {
		double us = time_way((enum way)way, buf, len, n);

		if (us < 0) {
			free(buf);
			return 2;
		}
		printf("  %-9s %7.2f us per parse (%.0f MB/s)\n",
		       way_names[way], us, (double)len / us);
	}
	free(buf);
	return 0;
}
