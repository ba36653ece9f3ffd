#!/usr/bin/env bash
# Instructions per event of one stage, counted by callgrind (deterministic, whatever else
# runs on the machine). Used to judge hot-path changes: see bench/README.md.
#
#   bench/callgrind.sh router|rater [RECORDS_DIR]
#
# Runs `python -m bench.offline` under callgrind over 1,000 and then 4,000 workload
# events (kept in RECORDS_DIR, default out/callgrind, so every version of the code sees
# the same bytes), counting only inside the compiled stage's entry points, and prints
# (count(4000) - count(1000)) / 3000: the cost per input event without start-up.
# The router lane also routes once untimed to build the rater's input, so its count
# is halved. Needs valgrind and a compiled build (`make compile`).
set -euo pipefail
stage=${1:?usage: bench/callgrind.sh router|rater [RECORDS_DIR]}
records=${2:-out/callgrind}
python=${PYTHON:-.venv/bin/python}
case "$stage" in
  router) symbols=(CPyPy_stages___RouterStage___process CPyPy_stages____DecodingStage___end_batch); passes=2 ;;
  rater) symbols=(CPyPy_stages___RaterStage___process CPyPy_stages___RaterStage___end_batch); passes=1 ;;
  *) echo "unknown stage $stage: router or rater" >&2; exit 2 ;;
esac
toggles=()
for symbol in "${symbols[@]}"; do toggles+=("--toggle-collect=$symbol"); done
mkdir -p "$records"
declare -A total
for events in 1000 4000; do
  out=$(mktemp)
  valgrind --tool=callgrind "${toggles[@]}" --callgrind-out-file="$out" \
    "$python" -m bench.offline --events "$events" --repeat 1 --lanes "$stage" \
    --records "$records/records-$events.pkl" >/dev/null 2>&1
  callgrind_annotate "$out" > "$out.txt"
  total[$events]=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$out.txt")
  rm -f "$out" "$out.txt"
done
echo "$stage: $(( (total[4000] - total[1000]) / 3000 / passes )) instructions per event"
