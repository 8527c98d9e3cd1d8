/*
 * Profile loader: the shipped profiles load, the format can express a new cloud
 * (tests/profiles/azure.ini), and every refusal path gives "source:line:
 * reason".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "mem.h"
#include "profile.h"
#include "profile_dir.h"
#include "profile_set.h"
#include "strbuf.h"
#include "settings.h"

#define VALID_HEAD                                             \
	"[profile]\nname = demo\n"                             \
	"[trigger]\nannotation = demo.io/role\nformat = any\n" \
	"[token]\naudience = demo\nexpiration = 3600\n"
#define VALID_VOLUME \
	"[volume]\nname = demo-token\nmount-path = /var/run/demo\nfile = token\n"
#define VALID VALID_HEAD VALID_VOLUME

static struct profile *parse_ok(const char *text)
{
	struct profile *p = NULL;
	struct diag d;

	diag_clear(&d);
	if (profile_parse(text, strlen(text), "t.ini", &p, &d) != 0)
		fail_msg("unexpected refusal: %s:%d: %s", d.where, d.line,
			 d.text);
	return p;
}

/* Expects a refusal at `line` whose text contains `needle`. */
static void expect_refusal(const char *text, int line, const char *needle)
{
	struct profile *p = (struct profile *)1;
	struct diag d;
	char formatted[700];

	diag_clear(&d);
	assert_int_equal(profile_parse(text, strlen(text), "t.ini", &p, &d),
			 DIAG_ECONFIG);
	assert_null(p);
	diag_format(&d, formatted, sizeof(formatted));
	if (strstr(d.text, needle) == NULL || d.line != line ||
	    strcmp(d.where, "t.ini") != 0)
		fail_msg("want t.ini:%d: ...%s..., got %s", line, needle,
			 formatted);
}

static void test_minimal_profile_defaults(void **state)
{
	struct profile *p = parse_ok(VALID);

	(void)state;
	assert_string_equal(p->name, "demo");
	assert_int_equal(p->expiration_min, 600);
	assert_int_equal(p->expiration_max, 86400);
	assert_int_equal(p->default_mode, -1);
	assert_int_equal(p->skip_match, SKIP_MATCH_TRUE);
	assert_int_equal(p->skip_label_match, SKIP_MATCH_TRUE);
	assert_int_equal(p->trigger_expect.n, 0);
	assert_int_equal(p->n_env, 0);
	assert_string_equal(p->source, "t.ini");
	profile_free(p);
}

static void test_env_sections_keep_order(void **state)
{
	struct profile *p = parse_ok(
		VALID
		"[setting region]\nformat = region\ndefault = eu01\n"
		"[env B_FIRST]\nvalue = 1\n"
		"[env A_SECOND]\nfrom = service-account-annotation:demo.io/x, "
		"setting:region\ndefault = z\n"
		"[env C]\nfrom = pod-name\nsanitize = sts-session-name\n"
		"when = setting:flag\n"
		"[setting flag]\nformat = boolean\n");

	(void)state;
	assert_int_equal(p->n_env, 3);
	assert_string_equal(p->env[0].name, "B_FIRST");
	assert_string_equal(p->env[1].name, "A_SECOND");
	assert_int_equal(p->env[1].from.n, 2);
	assert_int_equal(p->env[1].from.items[0].kind, SOURCE_SA_ANNOTATION);
	assert_string_equal(p->env[1].from.items[0].arg, "demo.io/x");
	assert_int_equal(p->env[1].from.items[1].kind, SOURCE_SETTING);
	assert_int_equal(p->env[2].sanitize, SANITIZE_STS_SESSION_NAME);
	assert_int_equal(p->n_settings, 2);
	profile_free(p);
}

static void test_comments_bom_and_crlf(void **state)
{
	struct profile *p = parse_ok(
		"\xef\xbb\xbf; comment\r\n# another\r\n[profile]\r\n"
		"name = demo ; inline comment\r\n"
		"[trigger]\nannotation = demo.io/role\nformat = any\n"
		"[token]\naudience = demo\nexpiration = 3600\n" VALID_VOLUME);

	(void)state;
	assert_string_equal(p->name, "demo");
	profile_free(p);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refusal(VALID "[volume2]\nx = 1\n", 13,
		       "unknown section [volume2]");
	expect_refusal(
		VALID_HEAD
		"[volume]\nname = demo-token\nmount-path = /var/run/demo\n"
		"file = token\nfiel = x\n",
		13, "unknown key 'fiel' in section [volume]");
	expect_refusal(VALID_HEAD "[volume]\nname = demo-token\nname = again\n",
		       11,
		       "key 'name' given twice in [volume] (first at line 10)");
	expect_refusal(VALID_HEAD "[volume]\nname = demo-token\nfile = token\n",
		       9,
		       "section [volume] lacks the required key 'mount-path'");
	expect_refusal(VALID_HEAD, 1, "missing section [volume]");
	expect_refusal(VALID "[skip]\n", 13, "section [skip] is empty");
	expect_refusal(VALID "[token]\nexpiration-min = 900\n", 13,
		       "section [token] appears twice (first at line 6)");
	expect_refusal(VALID "key = 1\n", 13,
		       "unknown key 'key' in section [volume]");
	expect_refusal("x = 1\n" VALID, 1, "outside of any [section]");
	expect_refusal(VALID "[env X]\nvalue = 1\n  continued\n", 15,
		       "indented line");
	expect_refusal(VALID "[env X]\nvalue =\n", 14,
		       "key 'value' has no value");
	expect_refusal(VALID "not a key value line\n", 13,
		       "expected 'key = value'");
	expect_refusal(VALID "[env X\n", 13, "expected 'key = value'");
}

static void test_value_refusals(void **state)
{
	(void)state;
	expect_refusal("[profile]\nname = Demo\n", 2,
		       "profile name must be [a-z0-9-]");
	expect_refusal(
		"[profile]\nname = demo\n[trigger]\nannotation = not a key\n",
		4, "is not a valid label or annotation key");
	expect_refusal("[profile]\nname = demo\n[trigger]\nformat = mail\n", 4,
		       "unknown format 'mail'");
	expect_refusal("[profile]\nname = demo\n[trigger]\nexpect = uuid, "
		       "mail\n",
		       4, "'expect': unknown format 'mail'");
#define TRIGGER_WITH(keys)                                                    \
	"[profile]\nname = demo\n[trigger]\nannotation = demo.io/role\n" keys \
	"[token]\naudience = demo\nexpiration = 3600\n" VALID_VOLUME
	expect_refusal(TRIGGER_WITH("compose = x${trigger}\n"), 5,
		       "'compose' and 'compose-pattern' go together");
	expect_refusal(TRIGGER_WITH("compose = ${pod-name}\n"
				    "compose-pattern = .*\n"),
		       5, "only ${trigger} and ${setting:NAME}");
	expect_refusal(TRIGGER_WITH("compose = ${setting:nope}\n"
				    "compose-pattern = .*\n"),
		       5, "setting 'nope' is not declared");
#undef TRIGGER_WITH
	expect_refusal("[skip]\nlabel-match = yes\n", 2,
		       "'label-match' must be 'true' or 'present'");
	expect_refusal("[token]\nexpiration = ten\n", 2,
		       "whole number of seconds");
	expect_refusal("[volume]\nname = Bad_Name\n", 2, "is not a DNS label");
	expect_refusal("[volume]\nmount-path = relative/dir\n", 2,
		       "normalised absolute path");
	expect_refusal("[volume]\nmount-path = /a/../b\n", 2,
		       "normalised absolute path");
	expect_refusal("[volume]\nfile = a//b\n", 2, "is not a relative path");
	expect_refusal("[volume]\nfile = /a\n", 2, "is not a relative path");
	expect_refusal("[volume]\nfile = a/../b\n", 2,
		       "is not a relative path");
	expect_refusal("[volume]\ndefault-mode = 0888\n", 2, "octal mode");
	expect_refusal("[volume]\ndefault-mode = 01777\n", 2, "octal mode");
	expect_refusal("[volume]\nwindows-drive = CC:\n", 2,
		       "drive such as C:");
	expect_refusal("[skip]\nmatch = yes\n", 2,
		       "'match' must be 'true' or 'present'");
	expect_refusal("[skip]\npod-labels = ok.io/a, bad key\n", 2,
		       "'bad key' is not a valid");
	expect_refusal("[env 1BAD]\nvalue = x\n", 1, "not a variable name");
	expect_refusal("[env X]\nfrom = nowhere\n", 2,
		       "unknown source 'nowhere'");
	expect_refusal("[env X]\nfrom = trigger:x\n", 2, "takes no argument");
	expect_refusal("[env X]\nfrom = setting\n", 2,
		       "needs ':' and an argument");
	expect_refusal("[env X]\nfrom = setting:Bad\n", 2, "bad setting name");
	expect_refusal("[env X]\nsanitize = lower\n", 2, "'sanitize' must be");
	expect_refusal("[env X]\ncolour = red\n", 2,
		       "unknown key 'colour' in section [env X]");
	expect_refusal("[setting s]\nshape = round\n", 2,
		       "unknown key 'shape' in section [setting s]");
	expect_refusal("[env X]\nfrom = a, b\n", 2, "unknown source 'a'");
	expect_refusal(
		"[env X]\nfrom = trigger, trigger, trigger, trigger, trigger, trigger, "
		"trigger, trigger, trigger\n",
		2, "more than 8 sources");
}

static void test_whole_profile_checks(void **state)
{
	(void)state;
	expect_refusal(VALID "[env X]\nvalue = 1\nfrom = trigger\n", 13,
		       "exactly one of 'value' and 'from'");
	expect_refusal(VALID "[env X]\nformat = email\n", 13,
		       "exactly one of 'value' and 'from'");
	expect_refusal(VALID "[env X]\nvalue = 1\ndefault = 2\n", 13,
		       "'default' and 'sanitize' go with 'from'");
	expect_refusal(VALID "[env X]\nvalue = nope\nformat = integer\n", 13,
		       "value is not a whole number");
	expect_refusal(VALID
		       "[env X]\nfrom = trigger\ndefault = x\nformat = uuid\n",
		       13, "default is not a UUID");
	expect_refusal(VALID "[env X]\nfrom = setting:nope\n", 13,
		       "setting 'nope' is not declared");
	expect_refusal(
		VALID
		"[setting s]\nformat = region\n[env X]\nvalue = 1\nwhen = setting:s\n",
		15, "needs setting 's' to have format boolean");
	expect_refusal(VALID "[env X]\nvalue = 1\nwhen = trigger\n", 13,
		       "'when' takes only annotation and setting");
	expect_refusal(VALID
		       "[setting s]\nformat = https-url\ndefault = http://x\n",
		       13, "default is not an https:// URL");
	expect_refusal(
		VALID
		"[setting s]\nformat = any\ndefault = abc\n[env X]\nfrom = setting:s\n"
		"format = integer\n",
		16, "the default of setting 's' is not a whole number");
	expect_refusal(VALID "[env X]\nvalue = 1\n[env X]\nvalue = 2\n", 15,
		       "appears twice (first at line 13)");
}

static void test_expiration_bounds(void **state)
{
	(void)state;
	expect_refusal(VALID_HEAD "expiration-min = 300\n" VALID_VOLUME, 9,
		       "at least 600");
	expect_refusal(VALID_HEAD "expiration-min = 7200\n" VALID_VOLUME, 8,
		       "'expiration' (3600) is outside [7200, 86400]");
	expect_refusal(
		VALID_HEAD
		"expiration-max = 1200\nexpiration-min = 1800\n" VALID_VOLUME,
		9, "'expiration-max' (1200) is below 'expiration-min' (1800)");
	expect_refusal(VALID_HEAD "expiration-max = 4294967296\n" VALID_VOLUME,
		       9, "whole number of seconds, 1-4294967295");
}

static void test_text_refusals(void **state)
{
	char big[70000];
	char line[260];

	(void)state;
	expect_refusal("[profile]\nname = demo\x01\n", 2,
		       "control or NUL byte 0x01");
	expect_refusal("[profile]\nname = d\xc3\x28\n", 0, "not valid UTF-8");
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	memcpy(line, "description = ", 14);
	{
		char text[400];

		snprintf(text, sizeof(text), "[profile]\n%s\n", line);
		expect_refusal(text, 2, "line longer than 199 bytes");
	}
	memset(big, '#', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_refusal(big, 0, "larger than 65536 bytes");
}

static void test_embedded_nul_is_refused(void **state)
{
	static const char text[] = "[profile]\nname = demo\0[trigger]\n";
	struct profile *p = NULL;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_parse(text, sizeof(text) - 1, "t.ini", &p, &d),
			 DIAG_ECONFIG);
	assert_non_null(strstr(d.text, "NUL byte"));
}

static void test_builtin_is_stackit(void **state)
{
	struct profile_set *set = NULL;
	const struct profile *p;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_set_new_builtin(&set, &d), 0);
	assert_int_equal(profile_set_count(set), 1);
	p = profile_set_get(set, 0);
	assert_string_equal(p->name, "stackit");
	assert_string_equal(p->source, "built-in");
	assert_string_equal(
		p->trigger_annotation,
		"workload-identity.stackit.cloud/service-account-email");
	assert_string_equal(p->volume_name, "stackit-workload-identity");
	assert_string_equal(p->mount_path,
			    "/var/run/secrets/stackit.cloud/serviceaccount");
	/* STACKIT's chart skips on the label's presence; its code on "true". */
	assert_int_equal(p->skip_label_match, SKIP_MATCH_PRESENT);
	assert_int_equal(p->skip_match, SKIP_MATCH_TRUE);
	profile_set_free(set);
}

static const char *alias_env(const char *name)
{
	return strcmp(name, "DEMO_REGION") == 0 ? "env-1" : NULL;
}

/* A profile's [setting] declares its flag and env aliases: no cloud in C. */
static void test_setting_aliases(void **state)
{
	struct profile_set *set = NULL;
	struct settings *st = NULL;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_set_new(&set), 0);
	assert_int_equal(
		profile_set_add(set,
				parse_ok(VALID
					 "[setting region]\nflag = region\n"
					 "env = DEMO_REGION\n"
					 "[setting other]\nenv = DEMO_OTHER\n"),
				&d),
		0);
	/* The env alias fills the setting when nothing else set it. */
	assert_int_equal(settings_new(&st), 0);
	settings_set_env_source(st, alias_env);
	assert_int_equal(profile_set_resolve_aliases(set, st, &d), 0);
	assert_string_equal(settings_get(st, "region"), "env-1");
	assert_null(settings_get(st, "other"));
	settings_free(st);
	/* The flag beats the env alias and an earlier --setting. */
	assert_int_equal(settings_new(&st), 0);
	settings_set_env_source(st, alias_env);
	assert_int_equal(settings_set(st, "region", "set-1", &d), 0);
	assert_int_equal(settings_add_flag(st, "region", "flag-1", &d), 0);
	assert_int_equal(profile_set_resolve_aliases(set, st, &d), 0);
	assert_string_equal(settings_get(st, "region"), "flag-1");
	settings_free(st);
	/* A flag no profile declares is an unknown option. */
	assert_int_equal(settings_new(&st), 0);
	assert_int_equal(settings_add_flag(st, "regoin", "x", &d), 0);
	assert_int_equal(profile_set_resolve_aliases(set, st, &d), DIAG_EINVAL);
	assert_non_null(strstr(d.text, "unknown option '--regoin'"));
	settings_free(st);
	profile_set_free(set);
	expect_refusal("[setting region]\nflag = --region\n", 2,
		       "'flag': '--region' is not [a-z0-9-]");
	expect_refusal("[setting region]\nenv = 1BAD\n", 2,
		       "'env': '1BAD' is not an environment variable name");
}

/* --disable-profile: any profile, the built-in one included, can be switched off. */
static void test_drop_disabled(void **state)
{
	struct profile_set *set = NULL;
	struct settings *st = NULL;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_set_new_builtin(&set, &d), 0);
	assert_int_equal(profile_set_add(set, parse_ok(VALID), &d), 0);
	assert_int_equal(settings_new(&st), 0);
	assert_int_equal(settings_disable_profile(st, "Bad Name", &d),
			 DIAG_EINVAL);
	diag_clear(&d);
	assert_int_equal(settings_disable_profile(st, "nosuch", &d), 0);
	assert_int_equal(profile_set_drop_disabled(set, st, &d), DIAG_ECONFIG);
	assert_non_null(strstr(d.text, "--disable-profile nosuch"));
	assert_int_equal(profile_set_count(set), 2);
	settings_free(st);
	assert_int_equal(settings_new(&st), 0);
	assert_int_equal(settings_disable_profile(st, "stackit", &d), 0);
	assert_int_equal(profile_set_drop_disabled(set, st, &d), 0);
	assert_int_equal(profile_set_count(set), 1);
	assert_string_equal(profile_set_get(set, 0)->name, "demo");
	settings_free(st);
	profile_set_free(set);
}

static void test_set_replace_and_conflicts(void **state)
{
	struct profile_set *set = NULL;
	struct profile *p;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_set_new_builtin(&set, &d), 0);
	/* Same name replaces in place. */
	p = parse_ok(
		"[profile]\nname = stackit\n[trigger]\nannotation = x.io/a\nformat = any\n"
		"[token]\naudience = a\nexpiration = 600\n"
		"[volume]\nname = mine\nmount-path = /var/mine\nfile = t\n");
	assert_int_equal(profile_set_add(set, p, &d), 0);
	assert_int_equal(profile_set_count(set), 1);
	assert_string_equal(profile_set_get(set, 0)->volume_name, "mine");
	/* Another profile may not reuse the volume name or mount path. */
	p = parse_ok(
		VALID_HEAD
		"[volume]\nname = mine\nmount-path = /var/other\nfile = t\n");
	assert_int_equal(profile_set_add(set, p, &d), DIAG_ECONFIG);
	assert_non_null(
		strstr(d.text,
		       "volume name 'mine' is also used by profile 'stackit'"));
	profile_free(p);
	diag_clear(&d);
	p = parse_ok(
		VALID_HEAD
		"[volume]\nname = other\nmount-path = /var/mine\nfile = t\n");
	assert_int_equal(profile_set_add(set, p, &d), DIAG_ECONFIG);
	assert_non_null(strstr(d.text, "mount path '/var/mine' is also used"));
	profile_free(p);
	profile_set_free(set);
}

static void test_settings_check(void **state)
{
	struct profile_set *set = NULL;
	struct settings *st = NULL;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_dir_load(PIW_SOURCE_DIR "/profiles", &set, &d),
			 0);
	assert_int_equal(settings_new(&st), 0);
	assert_int_equal(profile_set_check_settings(set, st, &d), 0);
	assert_int_equal(settings_set_pair(st, "region=eu-central-1", &d), 0);
	assert_int_equal(profile_set_check_settings(set, st, &d), 0);
	assert_int_equal(settings_set_pair(st, "region=EU Central", &d), 0);
	assert_int_equal(profile_set_check_settings(set, st, &d), DIAG_ECONFIG);
	assert_non_null(strstr(
		d.text, "setting 'region': 'EU Central' is not a region name"));
	settings_free(st);
	assert_int_equal(settings_new(&st), 0);
	diag_clear(&d);
	assert_int_equal(settings_set_pair(st, "colour=blue", &d), 0);
	assert_int_equal(profile_set_check_settings(set, st, &d), DIAG_ECONFIG);
	assert_non_null(strstr(d.text, "unknown setting 'colour'"));
	settings_free(st);
	assert_int_equal(settings_new(&st), 0);
	diag_clear(&d);
	assert_int_equal(
		settings_set_pair(st, "vultr-sts-endpoint=http://insecure", &d),
		0);
	assert_int_equal(profile_set_check_settings(set, st, &d), DIAG_ECONFIG);
	settings_free(st);
	profile_set_free(set);
}

static void test_dir_loads_shipped_and_azure(void **state)
{
	struct profile_set *set = NULL;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_dir_load(PIW_SOURCE_DIR "/profiles", &set, &d),
			 0);
	assert_int_equal(profile_set_count(set), 5);
	assert_string_equal(profile_set_get(set, 0)->name, "stackit");
	assert_string_equal(profile_set_get(set, 0)->source,
			    PIW_SOURCE_DIR "/profiles/stackit.ini");
	assert_string_equal(profile_set_get(set, 1)->name, "aws");
	assert_string_equal(profile_set_get(set, 2)->name, "azure");
	assert_string_equal(profile_set_get(set, 3)->name, "gcp");
	assert_string_equal(profile_set_get(set, 4)->name, "vultr");
	assert_true(profile_set_reads_sa_annotation(
		set, "eks.amazonaws.com/role-arn"));
	assert_true(profile_set_reads_sa_annotation(
		set, "eks.amazonaws.com/sts-regional-endpoints"));
	assert_true(profile_set_reads_sa_annotation(
		set, "workload-identity.stackit.cloud/federated-token-file"));
	assert_false(profile_set_reads_sa_annotation(
		set, "eks.amazonaws.com/skip-containers"));
	assert_false(profile_set_reads_sa_annotation(
		set, "kubectl.kubernetes.io/last-applied-configuration"));
	assert_non_null(profile_set_find(set, "azure"));
	assert_string_equal(profile_set_find(set, "azure")->trigger_pod_label,
			    "azure.workload.identity/use");
	assert_null(profile_set_find(set, "azure")->trigger_annotation);
	assert_non_null(profile_set_find(set, "gcp"));
	assert_int_equal(profile_set_find(set, "gcp")->n_required, 1);
	assert_int_equal(profile_set_find(set, "gcp")->n_files, 1);
	assert_true(profile_set_reads_sa_annotation(
		set, "cloud.google.com/service-account-email"));
	assert_true(profile_set_reads_sa_annotation(
		set, "azure.workload.identity/client-id"));
	profile_set_free(set);
}

static void test_new_sections(void **state)
{
	struct profile *p;

	(void)state;
	p = parse_ok(
		"[profile]\nname = demo\n[trigger]\npod-label = demo.io/use\n"
		"[token]\naudience = demo\nexpiration = 3600\n"
		"[volume]\nname = demo-token\nmount-path = /var/run/demo\n"
		"file = token/demo-token\n"
		"[env my.var-1]\nvalue = x\ngroup = g\n");
	assert_null(p->trigger_annotation);
	assert_string_equal(p->token_file, "token/demo-token");
	assert_string_equal(p->env[0].name, "my.var-1");
	assert_string_equal(p->env[0].group, "g");
	profile_free(p);
	p = parse_ok(
		"[profile]\nname = demo\n"
		"[trigger]\nannotation = demo.io/role\npattern = x-[0-9]+\n"
		"[token]\naudience = demo\nexpiration = 3600\n" VALID_VOLUME
		"[required-annotation demo.example.com/a-rather-long-annotation-name]\n"
		"pattern = [a-z]+\n"
		"[env A]\nfrom = service-account-annotation:demo.io/x\n"
		"extract = @(.*)$\n"
		"[env B]\nfrom = env:A\n"
		"[file conf.json]\nformat = json\nannotation = demo.io/conf\n"
		"volume = demo-conf\nmount-path = /var/run/demo-conf\n"
		"default-mode = 0440\n"
		"json.a = ${trigger}-$$-${env:B}\njson.b.c = ${token-path}\n");
	assert_string_equal(p->required[0].key,
			    "demo.example.com/a-rather-long-annotation-name");
	assert_non_null(p->required[0].check.re);
	assert_non_null(p->trigger_re);
	assert_int_equal(p->n_files, 1);
	assert_true(p->files[0].json);
	assert_int_equal(p->files[0].n_fields, 2);
	/* "${trigger}-$$-${env:B}": trigger, "-$-", env:B */
	assert_int_equal(p->files[0].fields[0].value.n, 3);
	assert_string_equal(p->files[0].fields[0].value.parts[1].text, "-$-");
	assert_int_equal(p->files[0].fields[0].value.parts[2].source.kind,
			 SOURCE_ENV);
	assert_int_equal(p->files[0].default_mode, 0440);
	profile_free(p);
}

static void test_new_section_refusals(void **state)
{
	(void)state;
	expect_refusal(
		"[profile]\nname = demo\n[trigger]\nformat = any\n"
		"[token]\naudience = demo\nexpiration = 3600\n" VALID_VOLUME,
		3, "needs 'annotation', 'pod-label' or both");
	expect_refusal(
		"[profile]\nname = demo\n[trigger]\npod-label = a.io/b\n"
		"format = uuid\n"
		"[token]\naudience = demo\nexpiration = 3600\n" VALID_VOLUME,
		3, "'format' and 'pattern' check 'annotation'");
	expect_refusal(
		"[profile]\nname = demo\n[trigger]\npod-label = a.io/b\n"
		"[token]\naudience = demo\nexpiration = 3600\n" VALID_VOLUME
		"[env X]\nfrom = trigger\n",
		12, "source 'trigger' needs [trigger] annotation");
	expect_refusal(
		"[profile]\nname = demo\n"
		"[trigger]\nannotation = demo.io/role\npattern = (\n"
		"[token]\naudience = demo\nexpiration = 3600\n" VALID_VOLUME,
		5, "not a POSIX extended regular expression");
	expect_refusal(VALID
		       "[required-annotation demo.io/role]\nformat = any\n",
		       13, "is the trigger annotation already");
	expect_refusal(VALID "[required-annotation Bad Key]\nformat = any\n",
		       13, "not a valid annotation key");
	expect_refusal(VALID "[required-annotation a.io/x]\ncolour = red\n", 14,
		       "unknown key 'colour'");
	expect_refusal(VALID "[env 1X]\nvalue = a\n", 13,
		       "not a variable name");
	expect_refusal(VALID "[env A]\nfrom = env:B\n[env B]\nvalue = b\n", 13,
		       "'env:B' must name an [env] section declared before it");
	expect_refusal(VALID "[env A]\nvalue = a\nextract = (x)\n", 13,
		       "'extract' goes with 'from'");
	expect_refusal(VALID "[env A]\nvalue = abc\npattern = [0-9]+\n", 13,
		       "value does not match its pattern");
	expect_refusal(VALID "[env A]\nvalue = a\ngroup = Bad\n", 15,
		       "'group' must be");
	expect_refusal(VALID "[file f]\nformat = json\nannotation = a.io/f\n"
			     "volume = v\nmount-path = /var/run/f\n"
			     "json.a = ${nope}\n",
		       18, "unknown source 'nope'");
	expect_refusal(VALID "[file f]\nformat = json\njson.a = $x\n", 15,
		       "must start ${source}");
	expect_refusal(VALID "[file f]\nformat = json\njson.a = ${trigger\n",
		       15, "must start ${source}");
	expect_refusal(VALID "[file f]\nformat = json\njson.a.b = x\n"
			     "json.a = y\n",
		       16, "collides with 'json.a.b'");
	expect_refusal(VALID "[file f]\nformat = json\njson.a..b = x\n", 15,
		       "empty member name");
	expect_refusal(VALID "[file f]\nformat = json\njson.a = x\n", 13,
		       "needs 'annotation', 'volume' and 'mount-path'");
	expect_refusal(VALID "[file f]\nformat = text\nannotation = a.io/f\n"
			     "volume = v\nmount-path = /var/run/f\n"
			     "json.a = x\n",
		       13, "format text takes a 'template'");
	expect_refusal(VALID "[file f]\nformat = text\nannotation = a.io/f\n"
			     "volume = v\nmount-path = /var/run/demo/sub\n"
			     "template = x\n",
		       13, "overlaps the token's '/var/run/demo'");
	expect_refusal(VALID "[file f]\nformat = text\nannotation = a.io/f\n"
			     "volume = demo-token\nmount-path = /var/run/f\n"
			     "template = x\n",
		       13, "is the token's volume");
	expect_refusal(VALID "[file f]\nformat = text\nannotation = a.io/f\n"
			     "volume = v\nmount-path = /var/run/f\n"
			     "template = ${setting:nope}\n",
		       13, "setting 'nope' is not declared");
	expect_refusal(VALID "[setting s]\npattern = [0-9]+\ndefault = x\n", 13,
		       "default does not match its pattern");
}

static void test_set_nested_mounts_and_shared_env(void **state)
{
	struct profile_set *set = NULL;
	struct profile *p;
	struct strbuf out;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_set_new_builtin(&set, &d), 0);
	p = parse_ok(
		VALID_HEAD
		"[volume]\nname = other\n"
		"mount-path = /var/run/secrets/stackit.cloud/serviceaccount/x\n"
		"file = t\n");
	assert_int_equal(profile_set_add(set, p, &d), DIAG_ECONFIG);
	assert_non_null(strstr(d.text, "are nested"));
	profile_free(p);
	p = parse_ok(VALID "[env STACKIT_FEDERATED_TOKEN_FILE]\nvalue = /x\n");
	assert_int_equal(profile_set_add(set, p, &d), 0);
	strbuf_init(&out, 4096);
	assert_int_equal(profile_set_describe_shared_env(set, &out), 0);
	assert_non_null(strstr(out.buf,
			       "shared variables: stackit and demo both set "
			       "STACKIT_FEDERATED_TOKEN_FILE"));
	strbuf_free(&out);
	profile_set_free(set);
	assert_true(profile_paths_overlap("/a/b", "/a/b/c"));
	assert_true(profile_paths_overlap("/a/b", "/a/b"));
	assert_false(profile_paths_overlap("/a/b", "/a/bc"));
}

static void test_dir_refusals(void **state)
{
	struct profile_set *set = (struct profile_set *)1;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(profile_dir_load(PIW_SOURCE_DIR
					  "/tests/profiles/misnamed",
					  &set, &d),
			 DIAG_ECONFIG);
	assert_null(set);
	assert_non_null(strstr(
		d.text,
		"profile name 'other' does not match the file name 'aws.ini'"));
	diag_clear(&d);
	assert_int_equal(profile_dir_load("/nonexistent-dir", &set, &d),
			 DIAG_EIO);
	assert_string_equal(d.where, "/nonexistent-dir");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_profile_defaults),
		cmocka_unit_test(test_env_sections_keep_order),
		cmocka_unit_test(test_comments_bom_and_crlf),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_value_refusals),
		cmocka_unit_test(test_whole_profile_checks),
		cmocka_unit_test(test_expiration_bounds),
		cmocka_unit_test(test_text_refusals),
		cmocka_unit_test(test_embedded_nul_is_refused),
		cmocka_unit_test(test_setting_aliases),
		cmocka_unit_test(test_drop_disabled),
		cmocka_unit_test(test_builtin_is_stackit),
		cmocka_unit_test(test_set_replace_and_conflicts),
		cmocka_unit_test(test_settings_check),
		cmocka_unit_test(test_dir_loads_shipped_and_azure),
		cmocka_unit_test(test_dir_refusals),
		cmocka_unit_test(test_new_sections),
		cmocka_unit_test(test_new_section_refusals),
		cmocka_unit_test(test_set_nested_mounts_and_shared_env),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
