/*
 * base64: a table-driven encoder writing straight into the output buffer (it runs on
 * every patched admission) and a strict decoder.
 */
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "diag.h"

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

int base64_append(struct strbuf *out, const unsigned char *data, size_t len)
{
	size_t i = 0;
	char *w;
	int rc = strbuf_reserve(out, (len + 2) / 3 * 4);

	if (rc != 0)
		return rc;
	w = out->buf + out->len;
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

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int base64_decode_append(struct strbuf *out, const char *text, size_t len)
{
	size_t mark = out->len, n = 0, pad = 0;
	uint32_t acc = 0;
	int rc = 0;

	for (size_t i = 0; i < len && rc == 0; i++) {
		int v = sextet(text[i]);

		if (is_space(text[i]))
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
