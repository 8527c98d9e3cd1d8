/* Flags and environment: precedence, types, bounds and the messages for bad values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "config.h"
#include "settings.h"

static const char *const *fake_env;

static const char *lookup_env(const char *name)
{
	for (const char *const *e = fake_env; e && *e; e += 2) {
		if (strcmp(e[0], name) == 0)
			return e[1];
	}
	return NULL;
}

static int parse(struct config *cfg, struct diag *d, const char *const *env,
		 int argc, char *const argv[])
{
	fake_env = env;
	diag_clear(d);
	return config_parse(argc, argv, lookup_env, cfg, d);
}

static void test_serve_defaults(void **state)
{
	char *argv[] = { "piw", "serve" };
	struct config cfg;
	struct diag d;

	(void)state;
	assert_int_equal(parse(&cfg, &d, NULL, 2, argv), 0);
	assert_string_equal(cfg.listen, ":8443");
	assert_string_equal(cfg.metrics_listen, ":9090");
	assert_string_equal(cfg.tls_cert, "/etc/webhook/certs/tls.crt");
	assert_string_equal(cfg.tls_min_version, "1.2");
	assert_int_equal(cfg.max_body_bytes, 1048576);
	assert_int_equal(cfg.request_timeout_ms, 10000);
	assert_int_equal(cfg.sa_lookup_timeout_ms, 1000);
	config_free(&cfg);
}

static void test_flag_beats_env_beats_default(void **state)
{
	const char *env[] = { "PIW_LISTEN",
			      "127.0.0.1:9443",
			      "PIW_LOG_LEVEL",
			      "debug",
			      "PIW_SETTINGS",
			      "region=eu-west-1, sts-regional-endpoints=true",
			      NULL };
	char *argv[] = { "piw",	     "serve",	  "--listen=[::1]:8443",
			 "--region", "us-east-2", "--shutdown-delay",
			 "1500ms" };
	struct config cfg;
	struct diag d;

	(void)state;
	assert_int_equal(parse(&cfg, &d, env, 7, argv), 0);
	assert_string_equal(cfg.listen, "[::1]:8443");
	assert_string_equal(cfg.log_level, "debug");
	/* --region is no fixed option: kept for the profile that declares it
	 * as a setting's flag (profile_set_resolve_aliases). */
	assert_string_equal(settings_get(cfg.settings, "region"), "eu-west-1");
	assert_int_equal(settings_flag_count(cfg.settings), 1);
	assert_string_equal(settings_flag_name(cfg.settings, 0), "region");
	assert_string_equal(settings_flag_value(cfg.settings, 0), "us-east-2");
	assert_string_equal(
		settings_get(cfg.settings, "sts-regional-endpoints"), "true");
	assert_int_equal(cfg.shutdown_delay_ms, 1500);
	config_free(&cfg);
}

static void test_disable_profile(void **state)
{
	const char *env[] = { "PIW_DISABLE_PROFILES", "aws, vultr", NULL };
	char *argv[] = { "piw", "mutate", "--disable-profile", "stackit" };
	char *bad[] = { "piw", "serve", "--disable-profile", "No Such" };
	struct config cfg;
	struct diag d;

	(void)state;
	assert_int_equal(parse(&cfg, &d, env, 4, argv), 0);
	assert_int_equal(settings_disabled_count(cfg.settings), 3);
	assert_true(settings_profile_disabled(cfg.settings, "aws"));
	assert_true(settings_profile_disabled(cfg.settings, "vultr"));
	assert_true(settings_profile_disabled(cfg.settings, "stackit"));
	assert_false(settings_profile_disabled(cfg.settings, "azure"));
	config_free(&cfg);
	assert_int_equal(parse(&cfg, &d, NULL, 4, bad), DIAG_EINVAL);
	assert_non_null(strstr(d.text, "is not a profile name"));
}

static void expect_error(const char *const *env, int argc, char *const argv[],
			 const char *where, const char *needle)
{
	struct config cfg;
	struct diag d;

	assert_int_equal(parse(&cfg, &d, env, argc, argv), DIAG_EINVAL);
	if (strstr(d.text, needle) == NULL || strcmp(d.where, where) != 0)
		fail_msg("want %s: ...%s..., got %s: %s", where, needle,
			 d.where, d.text);
}

static void test_refusals(void **state)
{
	const char *bad_env[] = { "PIW_MAX_BODY_BYTES", "1k", NULL };

	(void)state;
	expect_error(NULL, 3, (char *[]){ "piw", "serve", "--bogus" }, "",
		     "unknown option '--bogus' for serve");
	expect_error(NULL, 3, (char *[]){ "piw", "mutate", "--listen" }, "",
		     "unknown option '--listen' for mutate");
	expect_error(NULL, 3, (char *[]){ "piw", "serve", "--listen" },
		     "--listen", "needs a value");
	expect_error(NULL, 4,
		     (char *[]){ "piw", "serve", "--listen", "::1:80" },
		     "--listen", "is not [HOST]:PORT");
	expect_error(
		NULL, 4,
		(char *[]){ "piw", "serve", "--listen", "host.example:80" },
		"--listen", "is not [HOST]:PORT");
	expect_error(NULL, 4,
		     (char *[]){ "piw", "serve", "--listen", ":70000" },
		     "--listen", "is not [HOST]:PORT");
	expect_error(NULL, 4,
		     (char *[]){ "piw", "serve", "--tls-min-version", "1.1" },
		     "--tls-min-version", "'1.1' is not one of 1.2|1.3");
	expect_error(NULL, 4,
		     (char *[]){ "piw", "serve", "--request-timeout", "10h" },
		     "--request-timeout", "is not a duration");
	expect_error(
		NULL, 4, (char *[]){ "piw", "serve", "--max-connections", "2" },
		"--max-connections", "is not a whole number in [4, 100000]");
	expect_error(bad_env, 2, (char *[]){ "piw", "serve" },
		     "PIW_MAX_BODY_BYTES", "'1k' is not a whole number");
	expect_error(NULL, 4,
		     (char *[]){ "piw", "serve", "--setting", "novalue" },
		     "--setting", "is not NAME=VALUE");
	expect_error(NULL, 2, (char *[]){ "piw", "launch" }, "",
		     "unknown command 'launch'");
	expect_error(NULL, 4, (char *[]){ "piw", "check-profiles", "a", "b" },
		     "", "unexpected argument 'b'");
}

static void test_durations_and_addresses(void **state)
{
	int64_t ms;
	char host[64];
	int port;

	(void)state;
	assert_int_equal(config_parse_duration("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(config_parse_duration("3", &ms), 0);
	assert_int_equal(ms, 3000);
	assert_int_equal(config_parse_duration("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(config_parse_duration("1.5s", &ms), DIAG_EPARSE);
	assert_int_equal(config_parse_duration("s", &ms), DIAG_EPARSE);
	assert_int_equal(config_parse_duration("2d", &ms), DIAG_EPARSE);
	assert_int_equal(
		config_split_address(":8443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 8443);
	assert_int_equal(
		config_split_address("[fe80::1]:1", host, sizeof(host), &port),
		0);
	assert_string_equal(host, "fe80::1");
	assert_int_equal(config_split_address("10.0.0.1:65535", host,
					      sizeof(host), &port),
			 0);
	assert_int_equal(
		config_split_address("10.0.0.1", host, sizeof(host), &port),
		DIAG_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_defaults),
		cmocka_unit_test(test_disable_profile),
		cmocka_unit_test(test_flag_beats_env_beats_default),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_durations_and_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
