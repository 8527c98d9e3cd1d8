/*
 * base64: RFC 4648 encoding (the AdmissionReview patch) and strict decoding (the
 * certificate and key data in a kubeconfig).
 */
#ifndef PIW_BASE64_H
#define PIW_BASE64_H

#include <stddef.h>

#include "strbuf.h"

/* Appends the padded base64 form of len bytes. 0, DIAG_ENOMEM or DIAG_ELIMIT. */
int base64_append(struct strbuf *out, const unsigned char *data, size_t len);

/*
 * Decodes padded or unpadded base64 (whitespace between groups is skipped, as in
 * wrapped PEM-style text) and appends the bytes. DIAG_EPARSE for any other character
 * or a bad length; the buffer is then left as it was.
 */
int base64_decode_append(struct strbuf *out, const char *text, size_t len);

#endif
