#!/bin/sh
# check_sources.sh TOP: the checks a reviewer would otherwise do by eye.
# 1. No unchecked string/number functions (STYLE.md rule 8): use strutil.h instead.
# 2. Every C file is formatted per .clang-format.
top=$1
status=0
files=$(find "$top/src" "$top/include" "$top/tests" "$top/bench" -name '*.[ch]' 2>/dev/null)
banned=$(grep -nE '\b(atoi|atol|atoll|sprintf|vsprintf|strcpy|strcat|strtok|sscanf|gets)[[:space:]]*\(' $files)
if [ -n "$banned" ]; then
	echo "banned functions (see STYLE.md rule 8, use strutil.h):" >&2
	echo "$banned" >&2
	status=1
fi
for f in $files; do
	if ! clang-format --style=file:"$top/.clang-format" --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted per .clang-format: $f (run clang-format -i $f)" >&2
		status=1
	fi
done
exit $status
