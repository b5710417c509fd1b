# bench/lib/dist.sh: bench_dist (sourced by bench/run; uses merge.sh's helpers): issue 13's
# closing figure. One merge job of 300,000 rows delivered (a) by one poold, (b) by three
# on this machine, the primary sharing it with DIST_FORWARD. Each instance has its own
# spool, configuration, workers and smtp-sink; the share messages travel over SMTP to
# bench/lib/share_router.py, which pipes each into its peer's `poolctl receive`.
# Both are timed from the job's rename into the (serving) primary's spool until every
# sink counted its rows.

# dist_start NAME CFG: a serving poold (not --drain); sets DIST_PID[NAME] once its status
# file is written (the spool is scanned, the workers are up).
declare -A DIST_PID
dist_start() {
    local name="$1" cfg="$2" spool i
    spool="$(sed -n 's/^SPOOL_DIR=//p' "$cfg")"
    timeout 900 "$POOLD" --config "$cfg" 2>"$(dirname "$cfg")/poold.log" >/dev/null &
    DIST_PID[$name]=$!; PIDS+=("$!")
    for i in $(seq 1 100); do [ -s "$spool/.state/status.json" ] && return 0; sleep 0.1; done
    die "poold $name does not start (see $(dirname "$cfg")/poold.log)"
}

# dist_stop NAME CFG WANT: SIGTERM, then poold's closing line must say WANT delivered, 0
# deferred, 0 failed, and no job may be left; adds what is wrong to PROBLEMS. (Not in a
# subshell: it waits for poold, its child.)
dist_stop() {
    local name="$1" cfg="$2" want="$3" spool last left
    spool="$(sed -n 's/^SPOOL_DIR=//p' "$cfg")"
    stop_pid "${DIST_PID[$name]}"
    last="$(grep 'poold stopped:' "$(dirname "$cfg")/poold.log" | tail -n1 || true)"
    left="$( { find "$spool" -maxdepth 1 -name '*.MAIL'; find "$spool/deferred" "$spool/bad" -type f 2>/dev/null; } | wc -l)"
    if ! grep -q "poold stopped: $want delivered, 0 deferred, 0 failed" <<<"$last"; then
        PROBLEMS+="$name: '${last:-no closing line}' (want $want delivered); "
    elif [ "$left" != 0 ]; then
        PROBLEMS+="$name: $left job file(s) left; "
    fi
}

# dist_config FILE SPOOL HELO LINES...: an instance's configuration; the key is shared.
dist_config() {
    local file="$1" spool="$2" helo="$3"
    shift 3
    mkdir -p "$spool"
    { echo "# written by bench/run dist"; echo "SPOOL_DIR=$spool"; echo "HELO_NAME=$helo"
      echo "DIST_SECRET=$DIST_KEY"; printf '%s\n' "$@"; } >"$file"
}

# dist_arrive STAGE SPOOL: the job, submitted to STAGE (same file system), renamed into
# SPOOL; sets T0 (just before the rename).
dist_arrive() {
    cold_start "$POOLD"
    T0="$(now)"
    mv "$1/$MERGE_JOB" "$2/$MERGE_JOB"
}

bench_dist() {
    CURRENT=dist
    local rows="${BENCH_DIST_ROWS:-300000}" workers="${BENCH_DIST_WORKERS:-4}" base dir out problems
    local t_one c_one n0 n1 n2 router rport s0 s1 s2 p0 sinks shares all k
    base="$WORK/dist"; rm -rf "$base"; mkdir -p "$base"
    DIST_KEY="$base/dist.key"
    (umask 077; head -c 32 /dev/urandom | base64 >"$DIST_KEY")
    merge_inputs "$rows"

    # (a) One instance, WORKERS workers, its sink.
    dir="$OUT/dist/one"; rm -rf "$dir"; mkdir -p "$dir"
    start_sink "$dir"
    dist_config "$dir/poold.cfg" "$base/one/spool" one.test "SMTP_FORWARD_1=$workers*127.0.0.1:$SINK_PORT"
    dist_start one "$dir/poold.cfg"
    merge_submit "$base/one/stage" "$rows"
    dist_arrive "$base/one/stage" "$base/one/spool"
    set +e
    out="$(python3 "$LIB/countwait.py" --since "$T0" --timeout 800 --group one "$rows" "$SINK_OUT")"
    set -e
    PROBLEMS=""
    dist_stop one "$dir/poold.cfg" "$rows"
    problems="$PROBLEMS"
    stop_pid "$SINK_PID"
    echo "$out" >"$dir/countwait.out"
    t_one="$(kv all "$out")"
    if [ "$t_one" = never ] || [ "$(kv got "$out")" != "$rows" ] || [ -n "$problems" ]; then
        CHECK="FAILED: sink $(kv got "$out")/$rows; ${problems:-poold OK}" t_one=0
    else
        CHECK="OK: sink $rows/$rows msgs, poold's closing line $rows delivered, spool empty"
    fi
    c_one="$CHECK"
    raw "dist-one" "$dir" "t0=$T0" "$(tr '\n' ' ' <<<"$out")" "$CHECK"
    log "dist, one instance: ${t_one}s, $CHECK"
    row dist "one poold, $workers workers → its sink, 1 merge job × $(thousands "$rows") rows; timed from the job's rename into the serving poold's spool until the sink counted every row" \
        "${t_one} s" "$(figure "$(calc %.0f "$rows / ($t_one + 0.000001)") msg/s")" "$CHECK"

    # (b) Three instances: the primary shares the job with two peers through the router.
    dir="$OUT/dist/three"; rm -rf "$dir"; mkdir -p "$dir"/{primary,dist1,dist2}
    start_sink "$dir/primary"; s0="$SINK_OUT" p0="$SINK_PORT" sinks=("$SINK_PID")
    start_sink "$dir/dist1"; s1="$SINK_OUT" sinks+=("$SINK_PID")
    dist_config "$dir/dist1/poold.cfg" "$base/dist1/spool" dist1.test "SMTP_FORWARD_1=$workers*127.0.0.1:$SINK_PORT"
    start_sink "$dir/dist2"; s2="$SINK_OUT" sinks+=("$SINK_PID")
    dist_config "$dir/dist2/poold.cfg" "$base/dist2/spool" dist2.test "SMTP_FORWARD_1=$workers*127.0.0.1:$SINK_PORT"
    timeout 900 "$POOLD_PYTHON" "$LIB/share_router.py" --port 0 --ready-file "$dir/router.port" \
        --count-file "$dir/router.count" --log "$dir/router.log" --poolctl "$POOLCTL" --lifetime 850 \
        --route poold@dist1.test "$dir/dist1/poold.cfg" --route poold@dist2.test "$dir/dist2/poold.cfg" \
        >"$dir/router.out" 2>"$dir/router.err" &
    router=$!; PIDS+=("$router")
    rport="$(wait_ready_file "$router" "$dir/router.port" "share_router.py (see $dir/router.err)")"
    # Rows go to the sink; the job, SELF's share and the share messages (files larger than
    # 64 kB) only to the router, which also counts the row slices its worker takes.
    dist_config "$dir/primary/poold.cfg" "$base/primary/spool" primary.test \
        "SMTP_FORWARD_1=$(( workers - 1 ))*127.0.0.1:$p0;MAXSIZE=64" "SMTP_FORWARD_2=127.0.0.1:$rport" \
        'DIST_FORWARD="SELF poold@dist1.test poold@dist2.test"'
    for k in dist1 dist2 primary; do dist_start "$k" "$dir/$k/poold.cfg"; done
    # Largest remainder with equal weights: the first rows % 3 slices get one more.
    n0=$(( rows / 3 + (rows % 3 > 0) )) n1=$(( rows / 3 + (rows % 3 > 1) )) n2=$(( rows / 3 ))
    merge_submit "$base/primary/stage" "$rows"
    dist_arrive "$base/primary/stage" "$base/primary/spool"
    set +e
    out="$(python3 "$LIB/countwait.py" --since "$T0" --timeout 800 --group primary "$n0" "$s0" "$dir/router.count" \
        --group dist1 "$n1" "$s1" --group dist2 "$n2" "$s2")"
    set -e
    echo "$out" >"$dir/countwait.out"
    PROBLEMS=""
    dist_stop primary "$dir/primary/poold.cfg" $(( n0 + 2 ))
    dist_stop dist1 "$dir/dist1/poold.cfg" "$n1"
    dist_stop dist2 "$dir/dist2/poold.cfg" "$n2"
    problems="$PROBLEMS"
    stop_pid "$router"
    for k in "${sinks[@]}"; do stop_pid "$k"; done
    all="$(kv all "$out")"
    shares="$(python3 -c 'import json, sys
t0 = float(sys.argv[2])
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("%s at +%.2f s (exit %d, %.1f MB, poolctl receive %.2f s)" % (r["rcpt"].split("@")[1], r["time"] - t0, r["exit"], r["bytes"] / 1e6, r["seconds"]))' "$dir/router.log" "$T0" 2>/dev/null | paste -sd ';' | sed 's/;/; /g')"
    if [ "$all" = never ] || [ -n "$problems" ] || ! grep -q "got=$n0 " <<<"$(grep primary <<<"$out")" ||
        ! grep -q "got=$n1 " <<<"$(grep dist1 <<<"$out")" || ! grep -q "got=$n2 " <<<"$(grep dist2 <<<"$out")"; then
        CHECK="FAILED: $(tr '\n' ' ' <<<"$out"); $problems" all=0
    else
        CHECK="OK: rows counted primary $n0 (sink $(sink_mesg "$s0") + router $(sed -n 's/rows=\([0-9]*\).*/\1/p' "$dir/router.count")), dist1 $n1, dist2 $n2; closing lines: primary $(( n0 + 2 )) delivered (its rows and 2 share messages), peers $n1 and $n2; spools empty"
    fi
    raw "dist-three" "$dir" "t0=$T0" "$(tr '\n' ' ' <<<"$out")" "shares: $shares" "$CHECK"
    log "dist, three instances: ${all}s, $CHECK"
    row dist "three poold on this machine: primary DIST_FORWARD=\"SELF poold@dist1.test poold@dist2.test\" ($(( workers - 1 )) workers → its sink, 1 → the share router), each peer $workers workers → its own sink; the same job, timed from its rename into the primary's spool until every sink counted its share" \
        "${all} s" "$(figure "$(calc %.0f "$rows / ($all + 0.000001)") msg/s; each instance done at: $(grep -o 'group=[a-z0-9]* .*done=[0-9.a-z]*' <<<"$out" | sed 's/group=\([a-z0-9]*\).*done=\(.*\)/\1 \2 s/' | paste -sd ',' | sed 's/,/, /g'); shares received: $shares")" "$CHECK"
    failed "$c_one$CHECK" || row dist "ratio: one instance / three instances (same machine, same 2 CPUs)" "—" "$(calc %.2f "$t_one / $all")×" \
        "three instances take $(calc %.2f "$all / $t_one")× the time of one"
    rm -rf "$base"
}
