/*
 * base64: a table-driven encoder writing straight into the output buffer (it runs on
 * every patched admission) and a strict decoder.
 */
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "diag.h"
#include "strutil.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The character of sextet x, as a constant expression (for the table below). */
#define B64(x)                            \
	(char)((x) < 26	   ? 'A' + (x)    \
	       : (x) < 52  ? 'a' + (x)-26 \
	       : (x) < 62  ? '0' + (x)-52 \
	       : (x) == 62 ? '+'          \
			   : '/')
#define PAIR(i)                            \
	{                                  \
		B64((i) >> 6), B64((i)&63) \
	}
#define PAIR4(i)  PAIR(i), PAIR((i) + 1), PAIR((i) + 2), PAIR((i) + 3)
#define PAIR16(i) PAIR4(i), PAIR4((i) + 4), PAIR4((i) + 8), PAIR4((i) + 12)
#define PAIR64(i) \
	PAIR16(i), PAIR16((i) + 16), PAIR16((i) + 32), PAIR16((i) + 48)
#define PAIR256(i) \
	PAIR64(i), PAIR64((i) + 64), PAIR64((i) + 128), PAIR64((i) + 192)
#define PAIR1024(i) \
	PAIR256(i), PAIR256((i) + 256), PAIR256((i) + 512), PAIR256((i) + 768)

/*
 * The two characters of every 12-bit value: two lookups per 3 input bytes instead
 * of four (the patch of every patched admission goes through here, ~5 KB).
 */
static const char pairs[4096][2] = { PAIR1024(0), PAIR1024(1024),
				     PAIR1024(2048), PAIR1024(3072) };

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/*
 * 12 input bytes to 16 characters per step with SSSE3 (the method of Muła and
 * Lemire, "Faster Base64 Encoding and Decoding using AVX2 Instructions", 2018):
 * a byte shuffle puts each 3-byte group in a 32-bit lane, two multiplies move its
 * four sextets into bytes, and a 16-entry shuffle table turns each sextet into
 * its character by adding the offset of its range. Reads 16 bytes per step, so
 * it stops 4 bytes short of the end; returns how many input bytes it encoded.
 */
__attribute__((target("ssse3"))) static size_t
encode_ssse3(const unsigned char *data, size_t len, char *w)
{
	const __m128i shuffle = _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8,
					      7, 10, 9, 11, 10);
	const __m128i offsets =
		_mm_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
			      '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
			      '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
	size_t i = 0;

	for (; i + 16 <= len; i += 12, w += 16) {
		__m128i in = _mm_shuffle_epi8(
			_mm_loadu_si128(
				(const __m128i *)(const void *)(data + i)),
			shuffle);
		__m128i hi = _mm_mulhi_epu16(
			_mm_and_si128(in, _mm_set1_epi32(0x0fc0fc00)),
			_mm_set1_epi32(0x04000040));
		__m128i lo = _mm_mullo_epi16(
			_mm_and_si128(in, _mm_set1_epi32(0x003f03f0)),
			_mm_set1_epi32(0x01000010));
		__m128i sextets = _mm_or_si128(hi, lo);
		/* 0..25 -> 13 ('A' range), 26..51 -> 0, 52..63 -> 1..12 */
		__m128i range = _mm_subs_epu8(sextets, _mm_set1_epi8(51));
		__m128i upper = _mm_cmpgt_epi8(_mm_set1_epi8(26), sextets);

		range = _mm_or_si128(range,
				     _mm_and_si128(upper, _mm_set1_epi8(13)));
		_mm_storeu_si128((__m128i *)(void *)w,
				 _mm_add_epi8(_mm_shuffle_epi8(offsets, range),
					      sextets));
	}
	return i;
}

/* Whether this CPU has SSSE3 (every x86-64 CPU since 2006, but not the
 * baseline the compiler may assume). */
static bool have_ssse3(void)
{
	return __builtin_cpu_supports("ssse3");
}
#else
static size_t encode_ssse3(const unsigned char *data, size_t len, char *w)
{
	(void)data;
	(void)len;
	(void)w;
	return 0;
}

static bool have_ssse3(void)
{
	return false;
}
#endif

int base64_append(struct strbuf *out, const unsigned char *data, size_t len)
{
	size_t i = 0;
	char *w;
	int rc = strbuf_reserve(out, (len + 2) / 3 * 4);

	if (rc != 0)
		return rc;
	w = out->buf + out->len;
	if (len >= 16 && have_ssse3()) {
		i = encode_ssse3(data, len, w);
		w += i / 3 * 4;
	}
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 |
			     (uint32_t)data[i + 1] << 8 | data[i + 2];

		memcpy(w, pairs[v >> 12], 2);
		memcpy(w + 2, pairs[v & 0xfff], 2);
		w += 4;
	}
	if (i < len) {
		uint32_t v = (uint32_t)data[i] << 16 |
			     (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);

		*w++ = alphabet[v >> 18];
		*w++ = alphabet[(v >> 12) & 63];
		*w++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		*w++ = '=';
	}
	out->len = (size_t)(w - out->buf);
	*w = '\0';
	return 0;
}

static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode_append(struct strbuf *out, const char *text, size_t len)
{
	size_t mark = out->len, n = 0, pad = 0;
	uint32_t acc = 0;
	int rc = 0;

	for (size_t i = 0; i < len && rc == 0; i++) {
		int v = sextet(text[i]);

		if (str_is_space(text[i]))
			continue;
		if (text[i] == '=' && (n % 4 == 2 || n % 4 == 3)) {
			pad++;
			n++;
			continue;
		}
		if (v < 0 || pad > 0) {
			rc = DIAG_EPARSE;
			break;
		}
		acc = acc << 6 | (uint32_t)v;
		if (++n % 4 == 0) {
			char bytes[3] = { (char)(acc >> 16), (char)(acc >> 8),
					  (char)acc };

			rc = strbuf_add(out, bytes, 3);
			acc = 0;
		}
	}
	if (rc == 0 && (n - pad) % 4 == 1)
		rc = DIAG_EPARSE;
	if (rc == 0 && (n - pad) % 4 >= 2) {
		size_t left = (n - pad) % 4;
		char bytes[2] = { (char)(acc >> (left == 2 ? 4 : 10)),
				  (char)(acc >> 2) };

		rc = strbuf_add(out, bytes, left - 1);
	}
	if (rc == 0 && pad > 0 && n % 4 != 0)
		rc = DIAG_EPARSE;
	if (rc != 0)
		strbuf_truncate(out, mark);
	return rc;
}
