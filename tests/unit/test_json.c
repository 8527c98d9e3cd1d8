/*
 * The one JSON reader: its verdicts at the edges of its fast paths, RFC 8259's
 * refusals, the same verdict with a keep-schema (the tree it keeps equal to the
 * whole tree cut down by the same schema, on the heap and in an arena), and
 * out-of-memory reported as DIAG_ENOMEM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "admission.h"
#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "strutil.h"

static const struct json_keep keep_nothing[] = { { NULL, NULL, false } };
static const struct json_keep keep_k[] = { { "k", NULL, false },
					   { NULL, NULL, false } };

/*
 * Whether the kept parse of text (on the heap, and in an arena) gives the full tree
 * cut down by schema; its verdict.
 */
static int pruned_matches(const char *text, size_t len, const cJSON *full,
			  const struct json_keep *schema, struct diag *d)
{
	_Alignas(16) char first[64];
	struct mem_arena arena;
	cJSON *pruned = NULL, *in_arena = NULL,
	      *expected = cJSON_Duplicate(full, true);
	int rc = json_parse_with(text, len, schema, NULL, &pruned, d);

	assert_true(full == NULL || expected != NULL);
	json_prune_tree(expected, schema);
	if (rc == 0 && !cJSON_Compare(pruned, expected, true))
		fail_msg("pruned tree differs for %.*s", (int)len, text);
	mem_arena_init(&arena, first, sizeof(first), 1 << 20);
	assert_int_equal(
		json_parse_with(text, len, schema, &arena, &in_arena, NULL),
		rc);
	if (rc == 0 && !cJSON_Compare(in_arena, expected, true))
		fail_msg("arena tree differs for %.*s", (int)len, text);
	mem_arena_release(&arena);
	cJSON_Delete(pruned);
	cJSON_Delete(expected);
	return rc;
}

/*
 * text as the value of a member no schema keeps, so that the parser skips it
 * (skip_value, a loop of its own): the same verdict, and the same reason at the
 * same byte, as when it builds it. Once closed ({"s":text}) and once cut off
 * after it ({"s":text), where a skipped value meets the end of the document.
 */
static void skipped_agrees(const char *text, size_t len)
{
	char *doc = malloc(len + 6);

	assert_non_null(doc);
	memcpy(doc, "{\"s\":", 5);
	memcpy(doc + 5, text, len);
	doc[len + 5] = '}';
	for (size_t n = len + 5; n <= len + 6; n++) {
		cJSON *whole = NULL, *pruned = NULL;
		struct diag d, pd;
		int rc, rc_skipped;

		diag_clear(&d);
		diag_clear(&pd);
		rc = json_parse(doc, n, &whole, &d);
		rc_skipped = json_parse_with(doc, n, keep_nothing, NULL,
					     &pruned, &pd);
		if (rc != rc_skipped ||
		    (rc != 0 && strcmp(d.text, pd.text) != 0))
			fail_msg("built: %d (%s), skipped: %d (%s) for %.*s",
				 rc, d.text, rc_skipped, pd.text, (int)n, doc);
		cJSON_Delete(whole);
		cJSON_Delete(pruned);
	}
	free(doc);
}

/*
 * json_parse()'s verdict, after checking that json_parse_with() gives the same one
 * with two schemas (pruned_d: its reason then) and when the text is skipped.
 */
static int parse(const char *text, size_t len, struct diag *full_d,
		 struct diag *pruned_d)
{
	cJSON *root = NULL;
	int rc, rc_none, rc_k;

	diag_clear(full_d);
	diag_clear(pruned_d);
	rc = json_parse(text, len, &root, full_d);
	rc_none = pruned_matches(text, len, root, keep_nothing, pruned_d);
	rc_k = pruned_matches(text, len, root, keep_k, pruned_d);
	cJSON_Delete(root);
	skipped_agrees(text, len);
	if (rc != rc_none || rc != rc_k)
		fail_msg("json_parse says %d (%s), pruned %d/%d (%s) for %.*s",
			 rc, full_d->text, rc_none, rc_k, pruned_d->text,
			 (int)len, text);
	return rc;
}

static void expect_ok(const char *text)
{
	struct diag d, pd;

	if (parse(text, strlen(text), &d, &pd) != 0)
		fail_msg("refused %s: %s", text, d.text);
}

/* Both parsers refuse; json_parse() says needle, the pruned one pruned_needle. */
static void expect_refused(const char *text, size_t len, const char *needle,
			   const char *pruned_needle)
{
	struct diag d, pd;

	assert_int_equal(parse(text, len, &d, &pd), DIAG_EPARSE);
	if (strstr(d.text, needle) == NULL)
		fail_msg("want '%s' in '%s'", needle, d.text);
	if (strstr(pd.text, pruned_needle) == NULL)
		fail_msg("pruned: want '%s' in '%s'", pruned_needle, pd.text);
}

static void expect_bad(const char *text, size_t len, const char *needle)
{
	expect_refused(text, len, needle, needle);
}

static void test_strings_across_word_boundaries(void **state)
{
	(void)state;
	for (int pad = 0; pad < 17; pad++) {
		char text[128], bad[128];

		/* a quote, an escape and a UTF-8 sequence at every alignment */
		snprintf(text, sizeof(text),
			 "{\"k\":\"%.*s\\\"x\\\\\xc3\xa9\"}", pad,
			 "aaaaaaaaaaaaaaaaaaaa");
		expect_ok(text);
		snprintf(bad, sizeof(bad), "{\"k\":\"%.*s\xff\"}", pad,
			 "aaaaaaaaaaaaaaaaaaaa");
		expect_bad(bad, strlen(bad), "invalid UTF-8");
		snprintf(bad, sizeof(bad), "{\"k\":\"%.*s\xc3\"}", pad,
			 "aaaaaaaaaaaaaaaaaaaa");
		expect_bad(bad, strlen(bad), "invalid UTF-8");
	}
	expect_bad("{\"k\":\"aaaaaaaa\xed\xa0\x80\"}", 17,
		   "invalid UTF-8"); /* surrogate */
	expect_bad("{\"k\":\"aaaaaaaa\xc0\xaf\"}", 16,
		   "invalid UTF-8"); /* overlong */
}

static void test_structure_inside_strings_is_text(void **state)
{
	char text[512];

	(void)state;
	memset(text, '[', sizeof(text));
	memcpy(text, "{\"k\":\"", 6);
	memcpy(text + sizeof(text) - 3, "\"}", 3);
	expect_ok(text); /* 500 brackets inside a string: not nesting */
	expect_ok("{\"k\":\"a\\\\\",\"l\":[1]}");
}

static void test_nul_escape_refused(void **state)
{
	(void)state;
	expect_bad("{\"k\":\"aaaaaaaaaaaa\\u0000\"}", 25, "NUL character");
}

static void test_depth_limit_exact(void **state)
{
	char text[2 * BOUND_JSON_DEPTH + 8];
	size_t n = 0;

	(void)state;
	for (int i = 0; i < BOUND_JSON_DEPTH; i++)
		text[n++] = '[';
	for (int i = 0; i < BOUND_JSON_DEPTH; i++)
		text[n++] = ']';
	text[n] = '\0';
	expect_ok(text);
	memmove(text + 1, text, n + 1);
	text[0] = '[';
	text[n + 1] = ']';
	text[n + 2] = '\0';
	expect_bad(text, n + 2, "nesting deeper than");
}

static void test_embedded_nul_byte_and_trailing_data(void **state)
{
	(void)state;
	expect_bad("{\"k\":1}\0", 8, "control character at byte 7");
	expect_bad("{\"k\":\"a\tb\"}", 11,
		   "control character in a string at byte 7");
	expect_bad("{\"k\":\x01 1}", 9, "control character at byte 5");
	expect_ok("{\"k\" :\t1,\r\n\"l\":\"a\\tb\"}");
	expect_bad("{\"k\":1} {}", 10, "unexpected data");
	expect_bad("   \n", 4, "empty document");
}

/* RFC 8259's grammar: what it accepts, and what it refuses (cJSON's leniencies
 * included: leading zeros and "1." were accepted before the one reader). */
static void test_rfc8259_grammar(void **state)
{
	static const char *const accepted[] = {
		"{\"k\":-0}",
		"{\"k\":1e5}",
		"{\"k\":1E+5}",
		"{\"k\":-1.5e-3}",
		"{\"k\":0.5}",
		"{\"k\":-0.0e-0}",
		"{\"k\":10}",
		"{\"k\":1e308}",
		"[true,false,null]",
		"\xef\xbb\xbf{\"k\":1}", /* a byte-order mark */
		"\xef\xbb\xbf"
		"77",
		"\xef\xbb\xbf"
		"7", /* a byte-order mark may be ignored (RFC 8259, 8.1) */
		"{\"k\":\"\\ud83d\\ude00 \\u00e9 \\b\\f\\n\\r\\t\\/\"}",
		"{\"k\":{\"k\":[1,{\"k\":2}]},\"j\":3}",
		"  \"text\"  ",
		"7",
		"[]",
		"{}",
		"[ ]",
		"{ }",
		"{\"k\":1234567890123456789012345678901234567890123456789012345678901}",
		"{\"k\":1234567890123456789012345678901234567890123456789012345678901234567890}",
	};
	static const char *const refused[] = {
		"{\"k\":-}",
		"{\"k\":+1}",
		"{\"k\":.5}",
		"{\"k\":1e}x",
		"{\"k\":0x10}",
		"{\"k\":tru}",
		"{\"k\":nul}",
		"{\"k\":True}",
		"[1,]",
		"{\"k\":1,}",
		"{,}",
		"[,1]",
		"{\"k\"}",
		"{\"k\" 1}",
		"{k:1}",
		"{\"k\":'a'}",
		"[1 2]",
		"{\"k\":1",
		"[",
		"\"abc",
		"{\"k\":\"\\x\"}",
		"{\"k\":\"\\uZZZZ\"}",
		"{\"k\":\"\\u12\"}",
		"{\"k\":\"\\ud83d\"}",
		"{\"k\":\"\\ude00\"}",
		"{\"k\":\"\\ud83d\\u0041\"}",
		"{\"k\":\"a\\\"}",
		"\xef\xbb\xbf",
		"{\"k\":01}", /* no leading zeros */
		"{\"k\":00}",
		"{\"k\":-01}",
		"{\"k\":1.}", /* a fraction has digits */
		"{\"k\":1.e5}",
		"{\"k\":1e+}",
		"{\"k\":1.5e}",
		"{\"k\":-.5}",
		"{\"k\":1e5.5}",
		"{\"k\":- 1}",
		"{\"k\":Infinity}",
		"{\"k\":NaN}",
		"[1,2]]",
		" \xef\xbb\xbf{}",
		"[1,\xef\xbb\xbf"
		"2]",
		"{\"k\":\x80}",
		"[1]]",
		"{\"k\":1}}",
		"\x7f",
		"[-]",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(accepted) / sizeof(*accepted); i++)
		expect_ok(accepted[i]);
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		struct diag d, pd;

		if (parse(refused[i], strlen(refused[i]), &d, &pd) !=
		    DIAG_EPARSE)
			fail_msg("accepted %s", refused[i]);
	}
	expect_bad("{\"k\":\"\\uZZZZ\"}", 13, "invalid \\u escape");
	expect_bad("{\"k\":01}", 8, "invalid number at byte 5");
	expect_bad("{\"k\":1.}", 8, "invalid number at byte 5");
}

/* Out of memory is DIAG_ENOMEM, never a parse error, at every allocation of a
 * parse, on the heap and in an arena (an exhausted arena too). */
static void test_out_of_memory_is_enomem(void **state)
{
	static const char text[] =
		"{\"a\":[1,\"two\",{\"k\":null}],\"b\":true,\"c\":\"x\\u00e9\"}";
	_Alignas(16) char first[32];
	struct mem_arena arena;
	cJSON *root = NULL;
	struct diag d;
	int rc;

	(void)state;
	for (long n = 0;; n++) {
		diag_clear(&d);
		mem_fail_after(n);
		rc = json_parse(text, strlen(text), &root, &d);
		mem_fail_after(-1);
		if (rc == 0)
			break;
		assert_int_equal(rc, DIAG_ENOMEM);
		assert_null(root);
	}
	cJSON_Delete(root);
	for (long n = 0;; n++) {
		mem_arena_init(&arena, NULL, 0, 1 << 20);
		diag_clear(&d);
		mem_fail_after(n);
		rc = json_parse_with(text, strlen(text), NULL, &arena, &root,
				     &d);
		mem_fail_after(-1);
		mem_arena_release(&arena);
		if (rc == 0)
			break;
		assert_int_equal(rc, DIAG_ENOMEM);
	}
	diag_clear(&d);
	mem_arena_init(&arena, first, sizeof(first), 16);
	assert_int_equal(
		json_parse_with(text, strlen(text), NULL, &arena, &root, &d),
		DIAG_ENOMEM);
	assert_true(arena.exhausted);
	mem_arena_release(&arena);
}

static char *slurp(const char *name, size_t *len)
{
	char path[512], *text = NULL;

	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", PIW_SOURCE_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	text = mem_alloc(1 << 22);
	assert_non_null(text);
	*len = fread(text, 1, (1 << 22) - 1, f);
	assert_true(feof(f));
	text[*len] = '\0';
	fclose(f);
	return text;
}

static int count_nodes(const cJSON *node)
{
	int n = 1;

	for (const cJSON *c = node->child; c; c = c->next)
		n += count_nodes(c);
	return n;
}

/* The node at a JSON-pointer-like path ("/a/0/b"), or NULL. */
static const cJSON *at(const cJSON *node, const char *path)
{
	char key[64];
	int64_t index;

	while (node && *path == '/') {
		size_t n = strcspn(path + 1, "/");

		assert_true(n < sizeof(key));
		memcpy(key, path + 1, n);
		key[n] = '\0';
		if (cJSON_IsArray(node))
			node = str_to_i64(key, 0, INT_MAX, &index) == 0
				       ? cJSON_GetArrayItem(node, (int)index)
				       : NULL;
		else
			node = cJSON_GetObjectItemCaseSensitive(node, key);
		path += n + 1;
	}
	return node;
}

/*
 * A real AdmissionReview: the server's pruned request is the whole one cut down to
 * what the mutator reads, and keeps far fewer nodes (managedFields, resources,
 * probes... are gone).
 */
static void test_pruned_review_is_the_mutators_view(void **state)
{
	size_t len;
	char *body = slurp("bench/data/admissionreview-deployment.json", &len);
	static const char *const gone[] = {
		"/request/userInfo",
		"/request/oldObject",
		"/request/object/status",
		"/request/object/metadata/managedFields",
		"/request/object/spec/containers/0/resources",
		"/request/object/spec/tolerations",
	};
	struct admission_request full, pruned, whole;
	cJSON *expected_object;

	(void)state;
	assert_int_equal(admission_decode(body, len, &full, NULL), 0);
	assert_int_equal(admission_decode_pruned(body, len, mutate_pod_members,
						 NULL, &pruned, NULL),
			 0);
	assert_string_equal(full.uid, pruned.uid);
	assert_string_equal(full.namespace, pruned.namespace);
	assert_string_equal(full.operation, pruned.operation);
	assert_string_equal(full.kind, pruned.kind);
	expected_object = cJSON_Duplicate(full.object, true);
	json_prune_tree(expected_object, mutate_pod_members);
	assert_true(cJSON_Compare(pruned.object, expected_object, true));
	assert_true(count_nodes(pruned.root) < count_nodes(full.root));
	for (size_t i = 0; i < sizeof(gone) / sizeof(*gone); i++)
		assert_null(at(pruned.root, gone[i]));
	assert_non_null(at(full.root, "/request/object/spec/tolerations"));
	/* without an object schema, the object is kept whole */
	assert_int_equal(
		admission_decode_pruned(body, len, NULL, NULL, &whole, NULL),
		0);
	assert_true(cJSON_Compare(whole.object, full.object, true));
	cJSON_Delete(expected_object);
	admission_request_free(&full);
	admission_request_free(&pruned);
	admission_request_free(&whole);
	mem_free(body);
}

/* json_append_string escapes exactly '"', '\\' and control bytes, wherever they
 * are in the 16- and 8-byte steps and the tail; bytes >= 0x80 pass as they are.
 * json_unescaped_span finds the first of them. */
static void test_append_string_every_byte(void **state)
{
	char in[41], want[64];
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb, 4096);
	for (unsigned b = 1; b < 256; b++) {
		for (size_t at = 0; at < 40; at++) {
			size_t n = 0, first;

			memset(in, 'a', 40);
			in[40] = '\0';
			in[at] = (char)b;
			want[n++] = '"';
			memset(want + n, 'a', at);
			n += at;
			if (b == '"' || b == '\\') {
				want[n++] = '\\';
				want[n++] = (char)b;
			} else if (b < 0x20) {
				n += (size_t)snprintf(want + n, 7, "\\u%04x",
						      b);
			} else {
				want[n++] = (char)b;
			}
			memset(want + n, 'a', 39 - at);
			n += 39 - at;
			want[n++] = '"';
			strbuf_reset(&sb);
			assert_int_equal(json_append_string(&sb, in), 0);
			assert_int_equal(sb.len, n);
			assert_memory_equal(sb.buf, want, n);
			/* the span stops at the first byte to escape, and a
			 * later quote does not move it */
			in[39] = at < 39 ? '"' : in[39];
			first = at < 39 ? 39 : 40;
			if (b < 0x20 || b == '"' || b == '\\')
				first = at;
			assert_int_equal(json_unescaped_span(in, 40), first);
		}
	}
	strbuf_free(&sb);
}

/*
 * json_get() answers as cJSON_GetObjectItemCaseSensitive: the first of
 * duplicate keys, nothing for a key that only shares a first byte or a prefix,
 * for a case-folded key, inside an array or on NULL; json_member() on top of it
 * takes null as missing and checks the type.
 */
static void test_member_lookup(void **state)
{
	const char *text = "{\"a\":1,\"ab\":2,\"a\":3,\"\":4,\"n\":null,"
			   "\"s\":\"x\"}";
	const cJSON *found = NULL, *array;
	cJSON *root = NULL, *list = NULL;

	(void)state;
	assert_int_equal(json_parse(text, strlen(text), &root, NULL), 0);
	assert_int_equal(json_parse("[{\"a\":1}]", 9, &list, NULL), 0);
	array = list;
	assert_ptr_equal(json_get(root, "a"),
			 cJSON_GetObjectItemCaseSensitive(root, "a"));
	assert_int_equal(json_get(root, "a")->valueint, 1);
	assert_int_equal(json_get(root, "ab")->valueint, 2);
	assert_int_equal(json_get(root, "")->valueint, 4);
	assert_null(json_get(root, "abc"));
	assert_null(json_get(root, "A"));
	assert_null(json_get(root, "b"));
	assert_null(json_get(array, "a"));
	assert_null(json_get(NULL, "a"));
	assert_int_equal(json_member(root, "n", cJSON_String, &found),
			 JSON_MISSING);
	assert_int_equal(json_member(root, "a", cJSON_String, &found),
			 JSON_WRONG_TYPE);
	assert_int_equal(json_member(root, "s", cJSON_String, &found),
			 JSON_FOUND);
	assert_string_equal(found->valuestring, "x");
	assert_null(json_string(root, "a"));
	cJSON_Delete(root);
	cJSON_Delete(list);
}

/*
 * Keys are matched against the schema as written when they hold no escape, decoded
 * when they do: "k" kept either way; "kk", "", a prefix or an escaped other key not.
 */
static void test_schema_keys_as_written_and_escaped(void **state)
{
	(void)state;
	expect_ok("{\"k\":1}");
	expect_ok("{\"\\u006b\":[1,{\"k\":2}]}");
	expect_ok("{\"kk\":1,\"\":2,\"k\":3,\"\\u006bk\":4}");
	expect_ok("{\"K\":1,\"\\n\":2,\"k\\/\":3,\"x\":{\"k\":4}}");
}

/*
 * json_scan_plain against a byte-at-a-time reference: every byte value at every
 * offset of a 40-byte run (past the 16- and 8-byte steps and their tails), from
 * every start.
 */
static void test_scan_plain_every_byte(void **state)
{
	unsigned char buf[40];

	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		for (size_t at = 0; at < sizeof(buf); at++) {
			memset(buf, 'a', sizeof(buf));
			buf[at] = (unsigned char)b;
			for (size_t from = 0; from <= sizeof(buf); from++) {
				size_t want = from;

				while (want < sizeof(buf) &&
				       buf[want] >= 0x20 && buf[want] < 0x80 &&
				       buf[want] != '"' && buf[want] != '\\')
					want++;
				assert_int_equal(
					json_scan_plain(buf, from, sizeof(buf)),
					want);
			}
		}
	}
}

/* A number's value as strtod makes it, for the integers read without it
 * (up to 15 digits) and the numbers on either side of that path. */
static void test_numbers_as_strtod(void **state)
{
	static const char *const numbers[] = {
		"0",
		"-0",
		"7",
		"-7",
		"420",
		"3607",
		"999999999999999",
		"-999999999999999",
		"1000000000000000",
		"9007199254740993",
		"123456789012345678901234567890",
		"1.5",
		"-0.0",
		"1e3",
		"12E-2",
	};
	char text[96];
	cJSON *root;
	struct diag d;

	(void)state;
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		double want = strtod(numbers[i], NULL), got;

		snprintf(text, sizeof(text), "[%s]", numbers[i]);
		diag_clear(&d);
		assert_int_equal(json_parse(text, strlen(text), &root, &d), 0);
		got = root->child->valuedouble;
		assert_memory_equal(&got, &want, sizeof(got)); /* -0.0 too */
		cJSON_Delete(root);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings_across_word_boundaries),
		cmocka_unit_test(test_scan_plain_every_byte),
		cmocka_unit_test(test_append_string_every_byte),
		cmocka_unit_test(test_schema_keys_as_written_and_escaped),
		cmocka_unit_test(test_member_lookup),
		cmocka_unit_test(test_structure_inside_strings_is_text),
		cmocka_unit_test(test_nul_escape_refused),
		cmocka_unit_test(test_depth_limit_exact),
		cmocka_unit_test(test_embedded_nul_byte_and_trailing_data),
		cmocka_unit_test(test_rfc8259_grammar),
		cmocka_unit_test(test_numbers_as_strtod),
		cmocka_unit_test(test_out_of_memory_is_enomem),
		cmocka_unit_test(test_pruned_review_is_the_mutators_view),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
