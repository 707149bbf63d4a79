#!/usr/bin/env bash
# check_info_rejects.sh KVSERVE DIR — every bad-*.gguf in DIR makes `kvserve info` print
# exactly one line on stderr and exit with status 1: no signal, no sanitizer report (a
# leak found by LeakSanitizer changes the exit status), nothing on stdout.
set -u
bin="$1"; dir="$2"; pass=0; fail=0
for f in "$dir"/bad-*.gguf; do
  out=$("$bin" info "$f" 2>/tmp/kvserve-info-err.$$); rc=$?
  lines=$(wc -l < /tmp/kvserve-info-err.$$)
  if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && [ -z "$out" ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $(basename "$f"): exit $rc, $lines stderr lines"; cat /tmp/kvserve-info-err.$$
  fi
done
rm -f /tmp/kvserve-info-err.$$
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
