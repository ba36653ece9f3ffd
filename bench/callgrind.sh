#!/usr/bin/env bash
# Instructions per event of one stage, or of both as one process runs them, counted by
# callgrind (deterministic, whatever else runs on the machine). Used to judge hot-path
# changes: see bench/README.md.
#
#   bench/callgrind.sh router|rater|rating [RECORDS_DIR]
#
# Runs `python -m bench.offline` under callgrind over 1,000 and then 4,000 workload
# events (kept in RECORDS_DIR, default out/callgrind, so every version of the code sees
# the same bytes), counting only inside the compiled stages' entry points, and takes
# (count(4000) - count(1000)) / 3000: the cost per input event without start-up.
# bench.offline runs a lane twice (a warm-up, then the timed run), and its set-up routes
# the input once more to build the rater's input: the router is counted three times,
# the rater twice, and the figures printed are per pass. `rating` (router then rater,
# the rater taking the events the router decoded) also runs the router lane, to take
# the set-up's routing out. Needs valgrind and a compiled build (`make compile`).
set -euo pipefail
lane=${1:?usage: bench/callgrind.sh router|rater|rating [RECORDS_DIR]}
records=${2:-out/callgrind}
python=${PYTHON:-.venv/bin/python}
router_symbols=(CPyPy_stages___RouterStage___process CPyPy_stages____DecodingStage___end_batch)
rater_symbols=(CPyPy_stages___RaterStage___process CPyPy_stages___RaterStage___end_batch)
mkdir -p "$records"

# counted LANE SYMBOL...: instructions per input event inside SYMBOLs, all passes together
counted() {
  local lane=$1; shift
  local toggles=() events out
  local -A total
  for symbol in "$@"; do toggles+=("--toggle-collect=$symbol"); done
  for events in 1000 4000; do
    out=$(mktemp)
    valgrind --tool=callgrind "${toggles[@]}" --callgrind-out-file="$out" \
      "$python" -m bench.offline --events "$events" --repeat 1 --lanes "$lane" \
      --records "$records/records-$events.pkl" >/dev/null 2>&1
    callgrind_annotate "$out" > "$out.txt"
    total[$events]=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$out.txt")
    rm -f "$out" "$out.txt"
    if [[ -z ${total[$events]} ]]; then
      echo "the $lane lane failed under callgrind ($events events): run it without" >&2
      exit 1
    fi
  done
  echo $(( (total[4000] - total[1000]) / 3000 ))
}

case "$lane" in
  router) router=$(counted router "${router_symbols[@]}")
          echo "router: $(( router / 3 )) instructions per event" ;;
  rater) rater=$(counted rater "${rater_symbols[@]}")
         echo "rater: $(( rater / 2 )) instructions per event" ;;
  rating)
    router=$(counted router "${router_symbols[@]}")
    router=$(( router / 3 ))
    both=$(counted rating "${router_symbols[@]}" "${rater_symbols[@]}")
    rater=$(( (both - 3 * router) / 2 ))
    echo "rating: $(( router + rater )) instructions per event (router $router, rater $rater)" ;;
  *) echo "unknown lane $lane: router, rater or rating" >&2; exit 2 ;;
esac
