#!/usr/bin/env bash
# Counts the write system calls the server makes to answer W waiting gets with
# one publish (strace from Debian's strace package). Each answer must leave in
# one write: W + 1 sendto calls in all (the +1 answers the put).
# Usage: bench/experiments/fanout-writes.sh [waiters=1000] [threads=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
waiters=${1:-1000}
threads=${2:-1}
out=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$out"' EXIT
strace -f -e trace=write,writev,sendto,sendmsg -o "$out/strace" \
  node dist/cli/main.js --port 0 --host 127.0.0.1 --threads "$threads" --log-level info > "$out/log" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q '"listening"' "$out/log" && break; sleep 0.2; done
port=$(grep -o '"port":[0-9]*' "$out/log" | head -1 | cut -d: -f2)
node bench/experiments/fanout-waiters.js "$port" "$waiters" & client=$!
sleep 3
mark=$(wc -l < "$out/strace")
curl -s "http://127.0.0.1:$port/?method=put&channel=fan&message=m" > /dev/null
wait $client
sleep 0.5
echo "threads=$threads waiters=$waiters: system calls from the publish to the last answer:"
tail -n +"$mark" "$out/strace" | grep -v -e 'write(1,' -e 'resumed>' | awk '{print $2}' | cut -d'(' -f1 | sort | uniq -c
