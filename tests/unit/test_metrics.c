/*
 * metrics: the registry (one render path for HELP/TYPE, labels and escaping; a
 * family registered twice or with a repeated label value is refused) and the
 * webhook's own families, labelled from their owners' X-macro lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "diag.h"
#include "metrics.h"

struct fixture {
	struct metrics *m;
	struct strbuf out;
};

static int setup(void **state)
{
	static struct fixture f;

	assert_int_equal(metrics_new("1.2.3", &f.m), 0);
	strbuf_init(&f.out, 1 << 20);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	metrics_free(f->m);
	strbuf_free(&f->out);
	return 0;
}

static const char *render(struct fixture *f)
{
	strbuf_reset(&f->out);
	assert_int_equal(metrics_render(f->m, &f->out), 0);
	return f->out.buf;
}

static void assert_contains(const char *text, const char *want)
{
	if (strstr(text, want) == NULL)
		fail_msg("missing from /metrics: %s", want);
}

static void test_labelled_counter_escaped(void **state)
{
	static const char *const values[] = { "plain", "a\"b\\c\nd" };
	static atomic_ullong counts[2];
	struct fixture *f = *state;
	const struct metrics_family fam = { "test_things_total",
					    "Things, by \\kind\nof thing.",
					    METRICS_COUNTER,
					    "kind",
					    values,
					    2,
					    counts,
					    .arg = counts };

	atomic_store(&counts[0], 3);
	atomic_store(&counts[1], 18446744073709551615ULL);
	assert_int_equal(metrics_register(f->m, &fam), 0);
	assert_contains(
		render(f),
		"# HELP test_things_total Things, by \\\\kind\\nof thing.\n"
		"# TYPE test_things_total counter\n"
		"test_things_total{kind=\"plain\"} 3\n"
		"test_things_total{kind=\"a\\\"b\\\\c\\nd\"} "
		"18446744073709551615\n");
	metrics_unregister(f->m, counts);
	assert_null(strstr(render(f), "test_things_total"));
}

static double half(void *arg, size_t i)
{
	return *(double *)arg + (double)i;
}

static void test_gauge_callback(void **state)
{
	static const char *const values[] = { "x", "y" };
	static double base = 2.5;
	struct fixture *f = *state;
	const struct metrics_family one = { "test_level",  "A level.",
					    METRICS_GAUGE, .n = 1,
					    .value = half, .arg = &base };
	const struct metrics_family two = { "test_levels", "Levels.",
					    METRICS_GAUGE, "at",
					    values,	   2,
					    .value = half, .arg = &base };
	const char *text;

	assert_int_equal(metrics_register(f->m, &one), 0);
	assert_int_equal(metrics_register(f->m, &two), 0);
	text = render(f);
	assert_contains(text, "# HELP test_level A level.\n"
			      "# TYPE test_level gauge\ntest_level 2.5\n");
	assert_contains(text, "test_levels{at=\"x\"} 2.5\n"
			      "test_levels{at=\"y\"} 3.5\n");
	/* Families render in registration order, after the webhook's own. */
	assert_true(strstr(text, "process_start_time_seconds") <
		    strstr(text, "test_level "));
	metrics_unregister(f->m, &base);
}

static void test_refused(void **state)
{
	static const char *const dup[] = { "a", "b", "a" };
	static atomic_ullong counts[3];
	struct fixture *f = *state;
	struct metrics_family fam = { "test_refused_total",
				      "Refused.",
				      METRICS_COUNTER,
				      "v",
				      dup,
				      2,
				      counts,
				      .arg = counts };

	assert_int_equal(metrics_register(f->m, &fam), 0);
	/* Registered twice: by the same module, or a name another one owns. */
	assert_int_equal(metrics_register(f->m, &fam), DIAG_EINVAL);
	fam.name = "piw_admissions_total";
	assert_int_equal(metrics_register(f->m, &fam), DIAG_EINVAL);
	metrics_unregister(f->m, counts);
	/* A list that names a value twice disagrees with its counters. */
	fam.name = "test_refused_total";
	fam.n = 3;
	assert_int_equal(metrics_register(f->m, &fam), DIAG_EINVAL);
	fam.n = 2;
	fam.name = "1bad";
	assert_int_equal(metrics_register(f->m, &fam), DIAG_EINVAL);
	fam.name = "test_refused_total";
	fam.label = "bad-label";
	assert_int_equal(metrics_register(f->m, &fam), DIAG_EINVAL);
	fam.label = "v";
	fam.value = half; /* two sources of samples */
	assert_int_equal(metrics_register(f->m, &fam), DIAG_EINVAL);
	fam.value = NULL;
	assert_int_equal(metrics_register(f->m, &fam), 0);
	metrics_unregister(f->m, counts);
}

/* Every name of the owners' lists labels the webhook's families. */
static void test_own_names(void **state)
{
	struct fixture *f = *state;
	char want[160];
	const char *text;

	for (int r = 0; r < SERVER_N_ROUTES; r++)
		metrics_http(f->m, METRICS_LISTENER_METRICS, r, 200);
	metrics_http(f->m, METRICS_LISTENER_HTTPS, ROUTE_MUTATE, 299);
	text = render(f);
	for (int r = 0; r < SERVER_N_ROUTES; r++) {
		snprintf(want, sizeof(want),
			 "piw_http_requests_total{listener=\"metrics\","
			 "path=\"%s\",code=\"200\"} 1\n",
			 server_route_path(r));
		assert_contains(text, want);
	}
	assert_contains(text, "piw_http_requests_total{listener=\"https\","
			      "path=\"/mutate\",code=\"other\"} 1\n");
	for (int o = 0; o < MUTATE_N_OUTCOMES; o++) {
		snprintf(want, sizeof(want),
			 "piw_admissions_total{outcome=\"%s\"} 0\n",
			 mutate_outcome_name(o));
		assert_contains(text, want);
	}
	assert_contains(text, "piw_admissions_total{outcome=\"error\"} 0\n");
	for (int d = 0; d < MUTATE_N_DENY; d++) {
		snprintf(want, sizeof(want),
			 "piw_denials_total{reason=\"%s\"} 0\n",
			 mutate_deny_name(d));
		assert_contains(text, want);
	}
	assert_contains(text, "piw_build_info{version=\"1.2.3\"} 1\n");
	assert_contains(text,
			"piw_service_account_source_ready{source=\"none\"}");
	assert_contains(text,
			"piw_certificate_reloads_total{result=\"success\"} "
			"0\npiw_certificate_reloads_total{result="
			"\"failure\"} 0\n");
}

/* Counting by enum: the outcome, its skip class, the denial class, "error". */
static void test_admissions(void **state)
{
	static const char *const applied[] = { "p1" };
	struct fixture *f = *state;
	const char *text;

	metrics_admission(f->m, MUTATE_SA_NOT_FOUND, false, 0.001, NULL, 0,
			  MUTATE_DENY_NONE);
	metrics_admission(f->m, MUTATE_DENIED, false, 0.001, NULL, 0,
			  MUTATE_DENY_MOUNT_CONFLICT);
	metrics_admission(f->m, MUTATE_DENIED, true, 0.001, NULL, 0,
			  MUTATE_DENY_VOLUME_CONFLICT);
	metrics_admission(f->m, MUTATE_PATCHED, false, 3, applied, 1,
			  MUTATE_DENY_NONE);
	metrics_certificate_reload(f->m, false);
	text = render(f);
	assert_contains(text,
			"piw_admissions_total{outcome=\"sa-not-found\"} 1\n");
	assert_contains(text, "piw_admissions_total{outcome=\"denied\"} 1\n");
	assert_contains(text, "piw_admissions_total{outcome=\"error\"} 1\n");
	assert_contains(text, "piw_admissions_total{outcome=\"patched\"} 1\n");
	assert_contains(text, "piw_skips_total{reason=\"sa-not-found\"} 1\n");
	assert_contains(text, "piw_skips_total{reason=\"no-match\"} 0\n");
	assert_null(strstr(text, "piw_skips_total{reason=\"denied\"}"));
	assert_contains(text,
			"piw_denials_total{reason=\"mount-conflict\"} 1\n");
	assert_contains(text,
			"piw_denials_total{reason=\"volume-conflict\"} 0\n");
	assert_contains(text, "piw_mutations_total{profile=\"p1\"} 1\n");
	assert_contains(text,
			"piw_admission_duration_seconds_bucket{le=\"2.5\"} "
			"3\npiw_admission_duration_seconds_bucket{le="
			"\"+Inf\"} 4\n");
	assert_contains(text, "piw_admission_duration_seconds_count 4\n");
	assert_contains(
		text, "piw_certificate_reloads_total{result=\"failure\"} 1\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_labelled_counter_escaped,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_gauge_callback, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_names, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_admissions, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
