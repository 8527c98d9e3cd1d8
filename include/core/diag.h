/*
 * diag: the project's error codes and the caller-provided error record.
 *
 * Every fallible function returns an int: 0 on success, a negative DIAG_E* code
 * on failure. Parsers also fill a struct diag (where, line, why) owned by the
 * caller, so reporting an error never allocates: the text becomes the CLI's
 * one-line message, the HTTP 400 body or the AdmissionReview status.message.
 */
#ifndef PIW_DIAG_H
#define PIW_DIAG_H

#include <stddef.h>

/* One list: the enum and diag_code_name() are generated from it. */
#define DIAG_CODES(X)                           \
	X(OK, 0, "success")                     \
	X(ENOMEM, -1, "out of memory")          \
	X(EINVAL, -2, "invalid argument")       \
	X(EPARSE, -3, "malformed input")        \
	X(ELIMIT, -4, "input exceeds a limit")  \
	X(EIO, -5, "input/output error")        \
	X(ENOTFOUND, -6, "not found")           \
	X(EUNAVAIL, -7, "service unavailable")  \
	X(ECONFIG, -8, "invalid configuration") \
	X(ETIMEOUT, -9, "timed out")

enum diag_code {
#define DIAG_ENUM_ENTRY(name, value, text) DIAG_##name = value,
	DIAG_CODES(DIAG_ENUM_ENTRY)
#undef DIAG_ENUM_ENTRY
};

struct diag {
	int code;	 /* a DIAG_* value; DIAG_OK when nothing was recorded */
	char where[192]; /* file name, flag or JSON path; may be empty */
	int line;	 /* 1-based line in `where`, 0 when not applicable */
	char text[400];	 /* why, one sentence, no trailing period */
};

/*
 * Returns the fixed description of a DIAG_* code ("unknown error" otherwise).
 */
const char *diag_code_name(int code);

/* Resets a record to "no error". Accepts NULL. */
void diag_clear(struct diag *d);

/*
 * Records an error (printf-style text, truncated to fit) unless one is already
 * recorded: the first failure is the root cause. Accepts d == NULL. Returns
 * code, so a caller can write `return diag_set(d, DIAG_EPARSE, "...")`.
 */
int diag_set(struct diag *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like diag_set() with a location. `where` may be NULL; line 0 means none. */
int diag_set_at(struct diag *d, int code, const char *where, int line,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Sets the location of an already recorded error if it has none. Accepts NULL.
 */
void diag_locate(struct diag *d, const char *where, int line);

/*
 * Writes "where:line: text" (parts present only when set) into buf, always
 * NUL-terminated. Falls back to the code's name when no text was recorded.
 */
void diag_format(const struct diag *d, char *buf, size_t size);

#endif
