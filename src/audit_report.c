/*
 * audit_report: rows are kept as one allocation each (the five strings packed
 * together) so that a report of 100,000 pods costs one block per pod; the table
 * needs every row before the first line (its columns are as wide as their
 * widest cell, as kubectl's are), and the JSON is written a row at a time.
 */
#include "audit_report.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "strbuf.h"
#include "strutil.h"

#define LINE_MAX_BYTES (64 * 1024)
#define COLUMNS	       6

struct row {
	enum audit_status status;
	const char *cell[COLUMNS - 1]; /* namespace, name, sa, profiles, reason */
	char *block;
};

struct rows {
	struct row *items;
	size_t n, cap;
};

struct audit_report {
	struct rows pods, sas;
};

enum { C_NS, C_NAME, C_SA, C_PROFILES, C_REASON };

int audit_report_new(struct audit_report **ret)
{
	*ret = mem_calloc(1, sizeof(**ret));
	return *ret ? 0 : DIAG_ENOMEM;
}

static void rows_free(struct rows *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		mem_free(rs->items[i].block);
	mem_free(rs->items);
}

void audit_report_free(struct audit_report *r)
{
	if (r == NULL)
		return;
	rows_free(&r->pods);
	rows_free(&r->sas);
	mem_free(r);
}

/* Appends a row whose cells are copied into one block. */
static int rows_add(struct rows *rs, enum audit_status status,
		    const char *const cells[COLUMNS - 1])
{
	size_t size = 0, at = 0;
	struct row *row;

	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct row *grown =
			mem_realloc(rs->items, cap * sizeof(*grown));

		if (grown == NULL)
			return DIAG_ENOMEM;
		rs->items = grown;
		rs->cap = cap;
	}
	for (size_t i = 0; i < COLUMNS - 1; i++)
		size += strlen(cells[i]) + 1;
	row = &rs->items[rs->n];
	if ((row->block = mem_alloc(size)) == NULL)
		return DIAG_ENOMEM;
	for (size_t i = 0; i < COLUMNS - 1; i++) {
		size_t len = strlen(cells[i]) + 1;

		memcpy(row->block + at, cells[i], len);
		row->cell[i] = row->block + at;
		at += len;
	}
	row->status = status;
	rs->n++;
	return 0;
}

int audit_report_add_pod(struct audit_report *r, const char *namespace,
			 const char *name, const char *service_account,
			 const struct audit_verdict *v)
{
	const char *cells[] = { namespace, name, service_account, v->profiles,
				v->reason };

	return rows_add(&r->pods, v->status, cells);
}

int audit_report_add_service_account(struct audit_report *r,
				     const char *namespace, const char *name,
				     const struct audit_verdict *v)
{
	const char *cells[] = { namespace, name, name, v->profiles, v->reason };

	return rows_add(&r->sas, v->status, cells);
}

size_t audit_report_count(const struct audit_report *r, enum audit_status s)
{
	size_t n = 0;

	for (size_t i = 0; i < r->pods.n; i++)
		n += r->pods.items[i].status == s;
	return n;
}

bool audit_report_failed(const struct audit_report *r)
{
	return audit_report_count(r, AUDIT_MISSING) ||
	       audit_report_count(r, AUDIT_STALE) ||
	       audit_report_count(r, AUDIT_DENIED);
}

/* ---- table ---- */

/* One table cell: "<none>" for an empty list, control characters as spaces. */
static const char *shown(const char *cell, size_t column)
{
	return cell[0] == '\0' && column == C_PROFILES ? "<none>" : cell;
}

static size_t cell_width(const struct row *row, size_t column)
{
	if (column == C_REASON + 1)
		return strlen(audit_status_name(row->status));
	return strlen(shown(row->cell[column], column));
}

/* Appends a cell padded to width (the last column unpadded). */
static int add_cell(struct strbuf *line, const char *text, size_t width,
		    bool last)
{
	int rc = 0;
	size_t n = 0;

	for (const char *p = text; rc == 0 && *p; p++, n++)
		rc = strbuf_addc(line, (unsigned char)*p < 0x20 ? ' ' : *p);
	while (rc == 0 && !last && n++ < width + 3)
		rc = strbuf_addc(line, ' ');
	return rc;
}

/* The order of the columns on screen, as indexes into cell[] (status: C_REASON+1). */
static const size_t pod_columns[] = { C_NS,	    C_NAME,	C_SA,
				      C_REASON + 1, C_PROFILES, C_REASON };
static const char *const pod_headers[] = { "NAMESPACE",	     "POD",
					   "SERVICEACCOUNT", "STATUS",
					   "PROFILES",	     "REASON" };
static const size_t sa_columns[] = { C_NS, C_NAME, C_REASON + 1, C_REASON };
static const char *const sa_headers[] = { "NAMESPACE", "SERVICEACCOUNT",
					  "STATUS", "REASON" };

struct table {
	const struct rows *rows;
	const size_t *columns;
	const char *const *headers;
	size_t n_columns;
};

static int emit_line(struct strbuf *line, audit_write_fn out, void *arg)
{
	int rc;

	while (line->len > 0 && line->buf[line->len - 1] == ' ')
		strbuf_truncate(line, line->len - 1);
	rc = strbuf_addc(line, '\n');

	if (rc == 0)
		rc = out(arg, line->buf, line->len);
	strbuf_reset(line);
	return rc;
}

static int render_table(const struct table *t, struct strbuf *line,
			audit_write_fn out, void *arg)
{
	size_t width[COLUMNS];
	int rc = 0;

	for (size_t c = 0; c < t->n_columns; c++) {
		width[c] = strlen(t->headers[c]);
		for (size_t i = 0; i < t->rows->n; i++) {
			size_t w =
				cell_width(&t->rows->items[i], t->columns[c]);

			width[c] = w > width[c] ? w : width[c];
		}
	}
	for (size_t c = 0; rc == 0 && c < t->n_columns; c++)
		rc = add_cell(line, t->headers[c], width[c],
			      c + 1 == t->n_columns);
	if (rc == 0)
		rc = emit_line(line, out, arg);
	for (size_t i = 0; rc == 0 && i < t->rows->n; i++) {
		const struct row *row = &t->rows->items[i];

		for (size_t c = 0; rc == 0 && c < t->n_columns; c++) {
			size_t col = t->columns[c];
			const char *text =
				col == C_REASON + 1
					? audit_status_name(row->status)
					: shown(row->cell[col], col);

			rc = add_cell(line, text, width[c],
				      c + 1 == t->n_columns);
		}
		if (rc == 0)
			rc = emit_line(line, out, arg);
	}
	return rc;
}

static int render_tables(const struct audit_report *r, struct strbuf *line,
			 audit_write_fn out, void *arg)
{
	struct table pods = { &r->pods, pod_columns, pod_headers, 6 };
	struct table sas = { &r->sas, sa_columns, sa_headers, 4 };
	int rc;

	if (r->pods.n == 0) {
		static const char none[] = "No pods found.\n";

		rc = out(arg, none, sizeof(none) - 1);
	} else {
		rc = render_table(&pods, line, out, arg);
	}
	if (rc == 0 && r->sas.n > 0) {
		rc = out(arg, "\n", 1);
		if (rc == 0)
			rc = render_table(&sas, line, out, arg);
	}
	return rc;
}

/* ---- JSON ---- */

static int add_member(struct strbuf *line, const char *key, const char *value,
		      bool first)
{
	int rc = strbuf_adds(line, first ? "{" : ",");

	if (rc == 0)
		rc = json_append_string(line, key);
	if (rc == 0)
		rc = strbuf_addc(line, ':');
	if (rc == 0)
		rc = json_append_string(line, value);
	return rc;
}

static int add_profiles(struct strbuf *line, const char *list)
{
	const char *cursor = list, *item;
	char name[128];
	size_t len, n = 0;
	int rc = strbuf_adds(line, ",\"profiles\":[");

	while (rc == 0 && str_list_next(&cursor, ",", &item, &len)) {
		snprintf(name, sizeof(name), "%.*s", (int)len, item);
		if (n++ > 0)
			rc = strbuf_addc(line, ',');
		if (rc == 0)
			rc = json_append_string(line, name);
	}
	return rc ? rc : strbuf_addc(line, ']');
}

static int json_row(const struct row *row, bool pod, struct strbuf *line)
{
	int rc = add_member(line, "namespace", row->cell[C_NS], true);

	if (rc == 0)
		rc = add_member(line, "name", row->cell[C_NAME], false);
	if (rc == 0 && pod)
		rc = add_member(line, "serviceAccount", row->cell[C_SA], false);
	if (rc == 0)
		rc = add_member(line, "status", audit_status_name(row->status),
				false);
	if (rc == 0 && pod)
		rc = add_profiles(line, row->cell[C_PROFILES]);
	if (rc == 0)
		rc = add_member(line, "reason", row->cell[C_REASON], false);
	return rc ? rc : strbuf_addc(line, '}');
}

static int render_json_rows(const struct rows *rs, bool pod,
			    struct strbuf *line, audit_write_fn out, void *arg)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < rs->n; i++) {
		if (i > 0)
			rc = strbuf_addc(line, ',');
		if (rc == 0)
			rc = json_row(&rs->items[i], pod, line);
		if (rc == 0)
			rc = emit_line(line, out, arg);
	}
	return rc;
}

static int render_json(const struct audit_report *r, struct strbuf *line,
		       audit_write_fn out, void *arg)
{
	static const char head[] = "{\"pods\":[\n";
	static const char middle[] = "],\"serviceAccounts\":[\n";
	static const char tail[] = "]}\n";
	int rc = out(arg, head, sizeof(head) - 1);

	if (rc == 0)
		rc = render_json_rows(&r->pods, true, line, out, arg);
	if (rc == 0)
		rc = out(arg, middle, sizeof(middle) - 1);
	if (rc == 0)
		rc = render_json_rows(&r->sas, false, line, out, arg);
	if (rc == 0)
		rc = out(arg, tail, sizeof(tail) - 1);
	return rc;
}

int audit_report_render(const struct audit_report *r, enum audit_format fmt,
			audit_write_fn out, void *arg)
{
	struct strbuf line;
	int rc;

	strbuf_init(&line, LINE_MAX_BYTES);
	rc = fmt == AUDIT_JSON ? render_json(r, &line, out, arg)
			       : render_tables(r, &line, out, arg);
	strbuf_free(&line);
	return rc;
}
