#!/bin/sh
# test_check_layers.sh TOP: cmake/check_layers.sh passes on the core as it is and
# fails, naming file:line, on each kind of violation planted in a copy.
set -u
top=$1
check="$top/cmake/check_layers.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

expect() { # expect PASS|FAIL WHAT FILE...
	want=$1 what=$2
	shift 2
	if sh "$check" "$top/include/io" "$@" >"$tmp/out" 2>&1; then got=PASS; else got=FAIL; fi
	if [ "$got" != "$want" ]; then
		echo "FAIL: $what: expected $want, got $got" >&2
		cat "$tmp/out" >&2
		status=1
	else
		echo "ok: $what"
	fi
}

expect PASS "the core as it is" "$top"/include/core/*.h \
	$(sed -n '/^add_library(piwcore/,/)$/p' "$top/CMakeLists.txt" | grep -o 'src/[a-z_]*\.c' |
		sed "s|^|$top/|")

plant() { # plant NAME LINE: a core file with one bad line among good ones
	printf '/* server.h, fopen( and getenv( in a comment are fine */\n#include "strbuf.h"\n%s\nint ok(struct s *p) { return p->write(1); }\n' "$2" >"$tmp/$1.c"
}
plant io_header '#include "server.h"'
plant io_path '#include "../io/anything.h"'
plant io_dir '#include <io/log.h>'
plant fopen 'int f(void) { return fopen("x", "r") != 0; }'
plant getenv 'const char *g(void) { return getenv("HOME"); }'
plant clock 'long c(void) { return (long)time(0); }'
plant thread 'int t(void) { return pthread_mutex_lock(0); }'
plant curl 'void u(void) { curl_easy_init(); }'
for name in io_header io_path io_dir fopen getenv clock thread curl; do
	expect FAIL "planted $name" "$tmp/$name.c"
	if ! grep -q "$tmp/$name.c:3:" "$tmp/out"; then
		echo "FAIL: planted $name: the message does not name $name.c:3" >&2
		status=1
	fi
done
plant string_only 'const char *s = "fopen(getenv(";'
expect PASS "a string naming I/O calls" "$tmp/string_only.c"
exit $status
