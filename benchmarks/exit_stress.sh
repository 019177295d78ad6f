#!/usr/bin/env bash
# Run each archetool command many times under CPU load and count aborts at exit (issue 10, item 9):
# exit status 134 (SIGABRT) or "terminate called" on stderr, plus any other non-zero exit.
#
#   benchmarks/exit_stress.sh [N_INFO=200] [N_OTHER=20] [CODE_ROOT=repo]
#
# Load: two background Python busy loops for the whole run. A tiny deepaa model and table are made
# in a temporary directory. Prints one line per command: runs, aborts, other failures, seconds.
set -u
N_INFO=${1:-200}
N_OTHER=${2:-20}
ROOT=${3:-$(cd "$(dirname "$0")/.." && pwd)}
PY=${PYTHON:-python}
export PYTHONPATH=$ROOT OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
WORK=$(mktemp -d)
trap 'kill $LOAD1 $LOAD2 2>/dev/null; rm -rf "$WORK"' EXIT
"$PY" -c "import sys; sys.path.insert(0, '$ROOT/tests'); from conftest import make_table; make_table(n=300).to_csv('$WORK/t.csv', index=False)"
"$PY" -m archetool -q fit "$WORK/t.csv" --side y --k 3 --epochs 3 --batch-size 32 --hidden 32,16 --no-progress --out "$WORK/m" || exit 1
"$PY" -c "while True: pass" & LOAD1=$!
"$PY" -c "while True: pass" & LOAD2=$!

run() {  # name count command...
  local name=$1 count=$2; shift 2
  local aborts=0 failures=0 start=$SECONDS
  for ((i = 0; i < count; i++)); do
    "$@" > /dev/null 2> "$WORK/err"
    local rc=$?
    if [ $rc -eq 134 ] || grep -q "terminate called" "$WORK/err"; then
      aborts=$((aborts + 1)); echo "--- $name run $i: exit $rc" >&2; tail -3 "$WORK/err" >&2
    elif [ $rc -ne 0 ]; then
      failures=$((failures + 1)); echo "--- $name run $i: exit $rc" >&2; tail -3 "$WORK/err" >&2
    fi
  done
  printf "%-12s runs=%-4d aborts=%-3d other_failures=%-3d %4ds\n" "$name" "$count" "$aborts" "$failures" $((SECONDS - start))
}

A=("$PY" -m archetool -q)
run info "$N_INFO" "${A[@]}" info "$WORK/m"
run embed "$N_OTHER" "${A[@]}" embed "$WORK/m" "$WORK/t.csv" --out "$WORK/e.parquet"
run fit "$(( (N_OTHER + 3) / 4 ))" "${A[@]}" fit "$WORK/t.csv" --side y --k 3 --epochs 2 --batch-size 32 --hidden 32,16 --no-progress --out "$WORK/m2"
run archetypes "$N_OTHER" "${A[@]}" archetypes "$WORK/m" --out "$WORK/arch"
run sample "$N_OTHER" "${A[@]}" sample "$WORK/m" --n 5
run interpolate "$N_OTHER" "${A[@]}" interpolate "$WORK/m" --start a0 --end a1 --steps 4
