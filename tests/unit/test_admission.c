/*
 * AdmissionReview decoding (strict, with reasons) and encoding (both versions).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "admission.h"
#include "base64.h"
#include "mem.h"

#define REVIEW(api, request)     \
	"{\"apiVersion\":\"" api \
	"\",\"kind\":\"AdmissionReview\",\"request\":" request "}"
#define POD_REQUEST                                                                       \
	"{\"uid\":\"u-1\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"}," \
	"\"operation\":\"CREATE\",\"namespace\":\"ns\",\"object\":{\"spec\":{}}}"

static void expect_bad(const char *body, const char *needle)
{
	struct admission_request r;
	struct diag d;

	diag_clear(&d);
	assert_int_equal(admission_decode(body, strlen(body), &r, &d),
			 DIAG_EPARSE);
	if (strstr(d.text, needle) == NULL)
		fail_msg("want '%s' in '%s'", needle, d.text);
	assert_null(r.root);
}

static void test_decode_v1_and_v1beta1(void **state)
{
	static const char *const bodies[] = {
		REVIEW("admission.k8s.io/v1", POD_REQUEST),
		REVIEW("admission.k8s.io/v1beta1", POD_REQUEST)
	};
	struct admission_request r;

	(void)state;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(admission_decode(bodies[i], strlen(bodies[i]),
						  &r, NULL),
				 0);
		assert_int_equal(r.version,
				 i == 0 ? ADMISSION_V1 : ADMISSION_V1BETA1);
		assert_string_equal(r.uid, "u-1");
		assert_string_equal(r.namespace, "ns");
		assert_true(admission_is_pod_create(&r));
		admission_request_free(&r);
	}
}

static void test_not_pod_create(void **state)
{
	static const char body[] = REVIEW(
		"admission.k8s.io/v1",
		"{\"uid\":\"u\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
		"\"operation\":\"UPDATE\",\"object\":{}}");
	static const char sub[] = REVIEW(
		"admission.k8s.io/v1",
		"{\"uid\":\"u\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
		"\"operation\":\"CREATE\",\"subResource\":\"ephemeralcontainers\",\"object\":{}}");
	struct admission_request r;

	(void)state;
	assert_int_equal(admission_decode(body, strlen(body), &r, NULL), 0);
	assert_false(admission_is_pod_create(&r));
	admission_request_free(&r);
	assert_int_equal(admission_decode(sub, strlen(sub), &r, NULL), 0);
	assert_false(admission_is_pod_create(&r));
	admission_request_free(&r);
}

static void test_decode_refusals(void **state)
{
	(void)state;
	expect_bad("", "empty document");
	expect_bad("{", "not valid JSON");
	expect_bad("[]", "no kind");
	expect_bad("{\"kind\":\"Pod\"}",
		   "not an AdmissionReview (kind is 'Pod')");
	expect_bad(REVIEW("admission.k8s.io/v2", POD_REQUEST),
		   "unsupported apiVersion");
	expect_bad(
		"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
		"request is missing");
	expect_bad(REVIEW("admission.k8s.io/v1", "{\"kind\":{}}"),
		   "request.uid is missing");
	expect_bad(REVIEW("admission.k8s.io/v1", "{\"uid\":7}"),
		   "request.uid is missing");
	expect_bad(REVIEW("admission.k8s.io/v1",
			  "{\"uid\":\"u\",\"kind\":\"Pod\"}"),
		   "request.kind is not an object");
	expect_bad(REVIEW("admission.k8s.io/v1",
			  "{\"uid\":\"u\",\"operation\":1}"),
		   "request.operation is not a string");
	expect_bad(
		REVIEW("admission.k8s.io/v1", "{\"uid\":\"u\",\"object\":[]}"),
		"request.object is not an object");
	expect_bad(REVIEW("admission.k8s.io/v1",
			  "{\"uid\":\"u\",\"dryRun\":\"yes\"}"),
		   "request.dryRun is not a boolean");
	expect_bad("{\"kind\":\"AdmissionReview\",\"x\":\"\xff\"}",
		   "invalid UTF-8");
	expect_bad("{\"kind\":\"AdmissionReview\",\"x\":\"a\\u0000b\"}",
		   "NUL character");
	expect_bad("{\"kind\":\"AdmissionReview\"} x",
		   "unexpected data after the JSON value");
}

static void test_encode(void **state)
{
	char *warnings[] = { "one \"quoted\"", "two" };
	struct admission_response r = { .uid = "u-1",
					.allowed = true,
					.patch = "[{}]",
					.patch_len = 4,
					.warnings = warnings,
					.n_warnings = 2 };
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb, 4096);
	assert_int_equal(admission_encode(ADMISSION_V1BETA1, &r, &sb), 0);
	assert_string_equal(
		strbuf_str(&sb),
		"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\","
		"\"response\":{\"uid\":\"u-1\",\"allowed\":true,\"patchType\":\"JSONPatch\","
		"\"patch\":\"W3t9XQ==\",\"warnings\":[\"one \\\"quoted\\\"\",\"two\"]}}");
	strbuf_reset(&sb);
	r = (struct admission_response){ .uid = "u-2",
					 .allowed = false,
					 .message = "no",
					 .patch = "[]",
					 .patch_len = 2 };
	assert_int_equal(admission_encode(ADMISSION_V1, &r, &sb), 0);
	assert_string_equal(
		strbuf_str(&sb),
		"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
		"\"response\":{\"uid\":\"u-2\",\"allowed\":false,"
		"\"status\":{\"code\":403,\"message\":\"no\"}}}");
	strbuf_free(&sb);
}

static void test_base64(void **state)
{
	static const char *const in[] = { "",	  "f",	   "fo",    "foo",
					  "foob", "fooba", "foobar" };
	static const char *const out[] = {
		"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"
	};
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb, 64);
	for (size_t i = 0; i < 7; i++) {
		strbuf_reset(&sb);
		assert_int_equal(base64_append(&sb,
					       (const unsigned char *)in[i],
					       strlen(in[i])),
				 0);
		assert_string_equal(strbuf_str(&sb), out[i]);
		strbuf_reset(&sb);
		assert_int_equal(
			base64_decode_append(&sb, out[i], strlen(out[i])), 0);
		assert_int_equal(sb.len, strlen(in[i]));
		assert_memory_equal(strbuf_str(&sb), in[i], sb.len);
	}
	strbuf_reset(&sb);
	assert_int_equal(base64_decode_append(&sb, "Zm9v\nYmFy", 9), 0);
	assert_string_equal(strbuf_str(&sb), "foobar");
	strbuf_reset(&sb);
	assert_int_equal(base64_decode_append(&sb, "Zm9vYg", 6),
			 0); /* unpadded */
	assert_string_equal(strbuf_str(&sb), "foob");
	assert_int_equal(base64_decode_append(&sb, "Zm9v!", 5), DIAG_EPARSE);
	assert_int_equal(base64_decode_append(&sb, "Z", 1), DIAG_EPARSE);
	assert_int_equal(base64_decode_append(&sb, "Zg==Zg==", 8), DIAG_EPARSE);
	assert_string_equal(strbuf_str(&sb), "foob");
	strbuf_free(&sb);
}

/* Every 12-bit half of a 3-byte group, in both halves: the encoder's pair table
 * whole, checked against the decoder and the alphabet's last two characters. */
static void test_base64_every_pair(void **state)
{
	static unsigned char in[3 * 4096];
	struct strbuf enc, dec;

	(void)state;
	for (unsigned v = 0; v < 4096; v++) {
		in[3 * v] = (unsigned char)(v >> 4);
		in[3 * v + 1] = (unsigned char)((v & 15) << 4 | v >> 8);
		in[3 * v + 2] = (unsigned char)(v & 255);
	}
	strbuf_init(&enc, 1 << 20);
	strbuf_init(&dec, 1 << 20);
	assert_int_equal(base64_append(&enc, in, sizeof(in)), 0);
	assert_int_equal(enc.len, sizeof(in) / 3 * 4);
	assert_memory_equal(enc.buf + 4 * 4095, "////", 4);
	assert_memory_equal(enc.buf + 4 * 4094, "/+/+", 4);
	assert_int_equal(base64_decode_append(&dec, enc.buf, enc.len), 0);
	assert_int_equal(dec.len, sizeof(in));
	assert_memory_equal(dec.buf, in, sizeof(in));
	/* every length up to 64 from every start: the 12-byte steps and the tails */
	for (size_t from = 0; from < 12; from++) {
		for (size_t len = 0; len <= 64; len++) {
			strbuf_reset(&enc);
			strbuf_reset(&dec);
			assert_int_equal(
				base64_append(&enc, in + 3000 + from, len), 0);
			assert_int_equal(enc.len, (len + 2) / 3 * 4);
			assert_int_equal(
				base64_decode_append(&dec, enc.buf, enc.len),
				0);
			assert_int_equal(dec.len, len);
			assert_memory_equal(dec.buf, in + 3000 + from, len);
		}
	}
	strbuf_free(&enc);
	strbuf_free(&dec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_v1_and_v1beta1),
		cmocka_unit_test(test_not_pod_create),
		cmocka_unit_test(test_decode_refusals),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_every_pair),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
