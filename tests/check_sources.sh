#!/bin/sh
# check_sources.sh TOP: the checks a reviewer would otherwise do by eye.
# 1. No unchecked string/number functions (STYLE.md rule 8): use strutil.h instead.
# 2. Every C file is formatted per .clang-format.
# 3. No C source names a cloud (providers are data, in profiles/*.ini).
top=$1
status=0
files=$(find "$top/src" "$top/include" "$top/tests" "$top/bench" -name '*.[ch]' 2>/dev/null)
banned=$(grep -nE '\b(atoi|atol|atoll|sprintf|vsprintf|strcpy|strcat|strtok|sscanf|gets)[[:space:]]*\(' $files)
if [ -n "$banned" ]; then
	echo "banned functions (see STYLE.md rule 8, use strutil.h):" >&2
	echo "$banned" >&2
	status=1
fi
# 3. Code, identifiers (an underscore separates words: aws_region) and string
# literals are checked, comments are not: a comment may cite the peer
# implementation we stay compatible with (why), but no behaviour, flag or message
# may depend on a cloud. gcc -fpreprocessed strips the comments only (no
# macro expansion); its line markers keep the line numbers. The one exception is
# the "arn" value format (validate.c), whose partition rule is the ARN grammar's.
clouds='aws|amazon|vultr|azure|gcp|google|stackit'
if ! command -v gcc >/dev/null; then
	echo "check_sources.sh needs gcc (build-essential) to strip comments" >&2
	exit 1
fi
for f in $(find "$top/src" "$top/include" -name '*.[ch]'); do
	named=$(gcc -fpreprocessed -dD -E -x c "$f" 2>/dev/null | awk -v f="$f" -v re="(^|[^a-z0-9])($clouds)([^a-z0-9]|$)" '
		/^# [0-9]+ "/ { n = $2 - 1; next }
		{ n++; if (tolower($0) ~ re) print f ":" n ": " $0 }')
	named=$(printf '%s\n' "$named" | grep -vE '/src/validate\.c:[0-9]+: .*(arn:aws:iam|strncmp\(s, "aws", 3\))' | grep .)
	if [ -n "$named" ]; then
		echo "a cloud named in C (providers are data: put it in profiles/*.ini):" >&2
		echo "$named" >&2
		status=1
	fi
done
for f in $files; do
	if ! clang-format --style=file:"$top/.clang-format" --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted per .clang-format: $f (run clang-format -i $f)" >&2
		status=1
	fi
done
exit $status
