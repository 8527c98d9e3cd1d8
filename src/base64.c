/*
 * base64: a table-driven encoder writing straight into the output buffer (it runs on
 * every patched admission) and a strict decoder.
 */
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "strutil.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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

		*w++ = alphabet[v >> 18];
		*w++ = alphabet[(v >> 12) & 63];
		*w++ = alphabet[(v >> 6) & 63];
		*w++ = alphabet[v & 63];
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
