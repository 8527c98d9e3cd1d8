/*
 * parse_speed: the time one JSON parse of a file takes, three ways, in a loop,
 * and, given profiles and a ServiceAccount, the time of the decision after it.
 *
 *   build-release/bench_parse bench/data/admissionreview-deployment.json [N]
 *   build-release/bench_parse REVIEW N --sa SA.json [--profile FILE.ini]...
 *                             [--setting NAME=VALUE]...
 *
 * review     review_decode(): what the server does with a body (keep-schema,
 *            in an arena, strings left in a copy of the body)
 * validate   json_parse_with() keeping nothing: every byte checked, no tree
 * whole      json_parse_with() keeping everything, in an arena
 * pipeline   with --sa: review_decode(), review_decide() and review_encode(),
 *            the server's pure work for one admission (the built-in profiles,
 *            then each --profile); less "review", the decision and its answer
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
#include "profile.h"
#include "profile_set.h"
#include "review.h"
#include "service_account.h"
#include "settings.h"
#include "strutil.h"

#define FILE_MAX (8 * 1024 * 1024)
#define ROUNDS	 3

enum way { REVIEW, VALIDATE, WHOLE, PIPELINE };

static const char *const way_names[] = { "review", "validate", "whole",
					 "pipeline" };

/* What the pipeline way decides with (--sa, --profile, --setting). */
struct decision_inputs {
	struct review_policy policy;
	struct profile_set *profiles;
	struct settings *settings;
	struct service_account *sa;
};

static const struct json_keep keep_nothing[] = { { NULL, NULL, false } };

static double now_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Decode, decide and encode, as the server does once it has the body and
 * the ServiceAccount; says what was decided when `say` is set. */
static int pipeline_once(const struct decision_inputs *in, const char *buf,
			 size_t len, bool say, struct diag *d)
{
	struct review *r = NULL;
	struct strbuf out;
	int rc = review_decode(buf, len, &r, d);

	strbuf_init(&out, 1024 * 1024);
	if (rc == 0)
		rc = review_decide(r, &in->policy, in->sa, d);
	if (rc == 0 && (rc = review_encode(r, &out)) != 0)
		diag_set(d, rc, "cannot encode the answer");
	if (rc == 0 && say)
		printf("  (decided: %s, %zu patch operations, answer %zu "
		       "bytes)\n",
		       mutate_outcome_name(r->m.outcome), r->m.patch.n_ops,
		       out.len);
	strbuf_free(&out);
	review_free(r);
	return rc;
}

/* One parse the given way: 0, or the parser's error (in d). */
static int parse_once(enum way way, const struct decision_inputs *in,
		      const char *buf, size_t len, struct diag *d)
{
	_Alignas(16) char first[64 * 1024];
	struct mem_arena arena;
	struct review *r = NULL;
	cJSON *root = NULL;
	int rc;

	if (way == PIPELINE)
		return pipeline_once(in, buf, len, false, d);
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
static double time_way(enum way way, const struct decision_inputs *in,
		       const char *buf, size_t len, int64_t n)
{
	double best = -1;
	struct diag d;

	diag_clear(&d);
	for (int64_t i = 0; i < n / 10; i++) {
		if (parse_once(way, in, buf, len, &d) != 0) {
			fprintf(stderr, "bench_parse: %s: %s\n", way_names[way],
				d.text);
			return -1;
		}
	}
	for (int round = 0; round < ROUNDS; round++) {
		double start = now_seconds(), us;

		for (int64_t i = 0; i < n; i++)
			(void)parse_once(way, in, buf, len, &d);
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

/* The ServiceAccount in path: an object, or the first item of a List. */
static int load_sa(const char *path, struct service_account **ret,
		   struct diag *d)
{
	size_t len = 0;
	char *buf = read_file(path, &len);
	cJSON *root = NULL;
	const cJSON *sa;
	int rc;

	if (buf == NULL)
		return diag_set(d, DIAG_EIO, "%s: cannot read it", path);
	rc = json_parse(buf, len, &root, d);
	free(buf);
	if (rc != 0)
		return rc;
	sa = cJSON_GetObjectItemCaseSensitive(root, "items");
	sa = sa ? cJSON_GetArrayItem(sa, 0) : root;
	rc = sa_from_json(sa, NULL, NULL, NULL, ret, d);
	cJSON_Delete(root);
	return rc;
}

static int load_profile(struct profile_set *set, const char *path,
			struct diag *d)
{
	size_t len = 0;
	char *buf = read_file(path, &len);
	struct profile *p = NULL;
	int rc;

	if (buf == NULL)
		return diag_set(d, DIAG_EIO, "%s: cannot read it", path);
	rc = profile_parse(buf, len, path, &p, d);
	free(buf);
	if (rc == 0 && (rc = profile_set_add(set, p, d)) != 0)
		profile_free(p);
	return rc;
}

/* The options after FILE N: --sa, --profile, --setting. */
static int load_inputs(int argc, char **argv, struct decision_inputs *in,
		       struct diag *d)
{
	int rc = profile_set_new_builtin(&in->profiles, d);

	if (rc == 0 && (rc = settings_new(&in->settings)) != 0)
		diag_set(d, rc, "out of memory");
	for (int i = 0; rc == 0 && i < argc; i += 2) {
		if (i + 1 >= argc)
			rc = diag_set(d, DIAG_EINVAL, "%s needs a value",
				      argv[i]);
		else if (strcmp(argv[i], "--sa") == 0 && in->sa == NULL)
			rc = load_sa(argv[i + 1], &in->sa, d);
		else if (strcmp(argv[i], "--profile") == 0)
			rc = load_profile(in->profiles, argv[i + 1], d);
		else if (strcmp(argv[i], "--setting") == 0)
			rc = settings_set_pair(in->settings, argv[i + 1], d);
		else
			rc = diag_set(d, DIAG_EINVAL, "unknown option %s",
				      argv[i]);
	}
	if (rc == 0 && in->sa == NULL)
		rc = diag_set(d, DIAG_EINVAL, "--sa is required with options");
	in->policy = (struct review_policy){ .profiles = in->profiles,
					     .settings = in->settings };
	return rc;
}

static void free_inputs(struct decision_inputs *in)
{
	sa_free(in->sa);
	settings_free(in->settings);
	profile_set_free(in->profiles);
}

int main(int argc, char **argv)
{
	struct decision_inputs in = { 0 };
	int64_t n = 20000;
	size_t len = 0;
	int last = WHOLE, rc = 0;
	struct diag d;
	char *buf;

	diag_clear(&d);
	if (argc < 2 ||
	    (argc >= 3 && str_to_i64(argv[2], 1, INT32_MAX, &n) != 0)) {
		fprintf(stderr,
			"usage: bench_parse FILE [PARSES [--sa SA.json] "
			"[--profile FILE.ini]... [--setting N=V]...]\n");
		return 2;
	}
	if (argc > 3) {
		last = PIPELINE;
		if (load_inputs(argc - 3, argv + 3, &in, &d) != 0) {
			fprintf(stderr, "bench_parse: %s\n", d.text);
			free_inputs(&in);
			return 2;
		}
	}
	buf = read_file(argv[1], &len);
	if (buf == NULL) {
		fprintf(stderr,
			"bench_parse: %s: cannot read it (or over %d "
			"bytes)\n",
			argv[1], FILE_MAX);
		free_inputs(&in);
		return 2;
	}
	printf("%s: %zu bytes, %lld parses a round, best of %d\n", argv[1], len,
	       (long long)n, ROUNDS);
	if (last == PIPELINE && pipeline_once(&in, buf, len, true, &d) != 0) {
		fprintf(stderr, "bench_parse: %s\n", d.text);
		rc = 2;
	}
	for (int way = REVIEW; rc == 0 && way <= last; way++) {
		double us = time_way((enum way)way, &in, buf, len, n);

		if (us < 0)
			rc = 2;
		else
			printf("  %-9s %7.2f us per parse (%.0f MB/s)\n",
			       way_names[way], us, (double)len / us);
	}
	free(buf);
	free_inputs(&in);
	return rc;
}
