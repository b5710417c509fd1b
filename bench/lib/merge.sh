# bench/lib/merge.sh: bench_merge (sourced by bench/run): issue 12's performance rows.
# One mail-merge job (a CSV table and a ~2 KB template, bench/lib/genmerge.py) spooled with
# `poolctl submit --merge`, against smtp-source, and against LISTSERV's way (one .MAIL file
# per row).

MERGE_SENDER='news-bounces+&*VERP;@lists.example.org'
POOLCTL="$SCRATCH/release/poolctl"

# merge_inputs ROWS: the table and the template for ROWS rows (made once per invocation);
# sets MERGE_TABLE, MERGE_TEMPLATE.
merge_inputs() {
    local d="$WORK/merge-inputs"
    mkdir -p "$d"
    MERGE_TABLE="$d/table-$1.csv" MERGE_TEMPLATE="$d/template"
    [ -s "$MERGE_TABLE" ] || python3 "$LIB/genmerge.py" table "$MERGE_TABLE" --rows "$1"
    [ -s "$MERGE_TEMPLATE" ] || python3 "$LIB/genmerge.py" template "$MERGE_TEMPLATE"
}

# merge_submit SPOOL ROWS [POOL]: `poolctl submit --merge` into SPOOL (a configuration of
# its own, HELO_NAME bench.example as poold's); sets MERGE_JOB (the file's name).
merge_submit() {
    local spool="$1" rows="$2" pool="${3:-A}" cfg
    merge_inputs "$rows"
    mkdir -p "$spool"
    cfg="$(dirname "$spool")/submit.cfg"
    printf 'SPOOL_DIR=%s\nSMTP_FORWARD_1=127.0.0.1:25\nHELO_NAME=bench.example\n' "$spool" >"$cfg"
    MERGE_JOB="$("$POOLCTL" --config "$cfg" submit --merge --pool "$pool" --from "$MERGE_SENDER" \
        --table "$MERGE_TABLE" <"$MERGE_TEMPLATE" | tail -n1)"
    [ -f "$spool/$MERGE_JOB" ] || die "poolctl submit --merge wrote no job into $spool ($MERGE_JOB)"
}

# merge_drain NAME K ROWS: one merge job of ROWS rows, 4 workers, `poold --drain` into a
# fresh sink; every row must arrive (sink count = rows = poold's closing line). Accumulates.
merge_drain() {
    local name="$1" k="$2" rows="$3" dir spool
    dir="$OUT/merge/$name.$k"; rm -rf "$dir"; mkdir -p "$dir"
    spool="$(make_spool "$WORK/$name")"
    merge_submit "$spool" "$rows"
    start_sink "$dir"
    write_config "$dir/poold.cfg" "$spool" 4 "$SINK_PORT" 100
    run_poold "$dir" "$dir/poold.cfg" "$rows" "$rows"
    stop_pid "$SINK_PID"; rm -rf "${WORK:?}/$name"
    accumulate "$name"
    log "$name run $k: ${WALL}s, RSS ${RSS_KB} kB, poold CPU ${CPU_S}s, $CACHE, $CHECK"
}

# Time from the job's arrival to the first row on the wire: poold serving (not --drain)
# an empty spool, the job renamed in at t0; bench/lib/firstrow.py between poold and the
# sink notes the first connection and the first MAIL FROM; poold's log lines are stamped
# as they come (the "mail-merge pass 1" line ends the check pass). Sets FIRST_* and CHECK.
merge_first_row() {
    local rows="$1" dir spool stage t0 pid stamper i out pass_line
    dir="$OUT/merge/first-row"; rm -rf "$dir"; mkdir -p "$dir"
    spool="$(make_spool "$WORK/first/a")"
    stage="$WORK/first/stage"; mkdir -p "$stage"
    merge_submit "$stage" "$rows"
    start_sink "$dir"
    timeout 600 python3 "$LIB/firstrow.py" --target-port "$SINK_PORT" --out "$dir/stamps" \
        --ready-file "$dir/proxy.port" --lifetime 580 >"$dir/proxy.out" 2>"$dir/proxy.err" &
    PIDS+=("$!"); pid=$!
    write_config "$dir/poold.cfg" "$spool" 4 "$(wait_ready_file "$pid" "$dir/proxy.port" "firstrow.py")" 100
    mkfifo "$dir/log.fifo"
    timeout 600 python3 -u -c 'import sys, time
for line in sys.stdin:
    sys.stdout.write("%.6f %s" % (time.time(), line))' <"$dir/log.fifo" >"$dir/poold.log" &
    stamper=$!; PIDS+=("$stamper")
    timeout 600 "$POOLD" --config "$dir/poold.cfg" 2>"$dir/log.fifo" >/dev/null &
    POOLD_PID=$!; PIDS+=("$POOLD_PID")
    for i in $(seq 1 100); do [ -s "$spool/.state/status.json" ] && break; sleep 0.1; done
    [ -s "$spool/.state/status.json" ] || die "poold does not start (see $dir/poold.log)"
    cold_start "$POOLD"
    t0="$(now)"
    mv "$stage/$MERGE_JOB" "$spool/$MERGE_JOB"
    for i in $(seq 1 600); do [ -s "$dir/stamps" ] && break; sleep 0.05; done
    sleep 1 # a few rows more, then stop: this run measures the start only
    stop_pid "$POOLD_PID"
    stop_pid "$stamper"; stop_pid "$pid"; stop_pid "$SINK_PID"
    out="$(cat "$dir/stamps" 2>/dev/null || true)"
    pass_line="$(grep -m1 'mail-merge pass 1' "$dir/poold.log" || true)"
    raw "first-row" "$dir" "t0=$t0" "$out" "pass=${pass_line%% *}" "$CACHE"
    rm -rf "$WORK/first"
    if [ -z "$out" ]; then
        CHECK="FAILED: no MAIL FROM reached the relay within 30 s (see $dir/poold.log)"
        FIRST_MAIL=0 FIRST_CONNECT=0 FIRST_PASS=0
        return
    fi
    FIRST_MAIL="$(calc %.3f "$(kv mail "$out") - $t0")"
    FIRST_CONNECT="$(calc %.3f "$(kv connect "$out") - $t0")"
    FIRST_PASS="$( [ -n "$pass_line" ] && calc %.3f "${pass_line%% *} - $t0" || echo '?')"
    CHECK="OK: first MAIL FROM at the relay; poold's log: \"$(cut -d' ' -f2- <<<"$pass_line" | sed 's/^notice: //')\""
}

bench_merge() {
    CURRENT=merge
    local rows="${BENCH_MERGE_ROWS:-1000000}" small="${BENCH_MERGE_SMALL:-100000}" reps="${BENCH_MERGE_REPEAT:-1}"
    local k t_poold t_source c1 c2 rss_big rss_small t_small c_small dir spool w wr t_files c3
    local source=("$POOLD_SMTP_SOURCE" -s 4 -d -l 2048 -m "$rows" 127.0.0.1:@PORT@)
    merge_inputs "$rows"
    log "merge: table of $rows rows ($(stat -c %s "$MERGE_TABLE") bytes), template $(stat -c %s "$MERGE_TEMPLATE") bytes"

    # 1. The big job against smtp-source sending as many 2 KB messages, alternating.
    for k in $(seq 1 "$reps"); do
        merge_drain "poold-merge-$rows" "$k" "$rows"
        client_once "smtp-source-$rows" "$k" "$rows" "${source[@]}"
    done
    summarize "poold-merge-$rows"
    t_poold="$WALL" c1="$CHECK" rss_big="$RSS_KB"
    row merge "poold, 4 workers, 1 merge job × $(thousands "$rows") rows, ~2 KB rendered each (table $(( $(stat -c %s "$MERGE_TABLE") / 1000000 )) MB), --drain, job spooled by poolctl submit --merge and synced before the clock (median of $N_RUNS: $RUNS s)" \
        "${WALL} s" "$(figure "$(calc %.0f "$rows / $WALL") msg/s; peak RSS $(calc %.1f "$rss_big / 1024") MiB")" "$CHECK; poold CPU ${CPU_S} s"
    summarize "smtp-source-$rows"
    t_source="$WALL" c2="$CHECK"
    row merge "smtp-source -s 4 -d -l 2048 -m $rows (median of $N_RUNS: $RUNS s)" "${WALL} s" \
        "$(figure "$(calc %.0f "$rows / $WALL") msg/s")" "$CHECK; smtp-source CPU ${CPU_S} s"
    failed "$c1$c2" || row merge "ratio: poold merge / smtp-source (goal ≥ 1.0×)" "—" "$(calc %.2f "$t_source / $t_poold")×" \
        "goal $(awk "BEGIN { print ($t_source / $t_poold >= 1) ? \"met\" : \"MISSED\" }")"

    # 2. Memory against the table's size: the same job with fewer rows.
    merge_drain "poold-merge-$small" 1 "$small"
    t_small="$WALL" c_small="$CHECK" rss_small="$RSS_KB"
    row merge "poold, 4 workers, 1 merge job × $(thousands "$small") rows, --drain" "${WALL} s" \
        "$(figure "$(calc %.0f "$small / $WALL") msg/s; peak RSS $(calc %.1f "$rss_small / 1024") MiB")" "$CHECK; poold CPU ${CPU_S} s"
    failed "$c1$c_small" || row merge "peak RSS: $(thousands "$small") rows / $(thousands "$rows") rows (goal ≤ 64 MB, independent of the table's size)" "—" \
        "$(calc %.1f "$rss_small / 1024") / $(calc %.1f "$rss_big / 1024") MiB" \
        "goal $(awk "BEGIN { print ($rss_big * 1024 <= 64000000 && $rss_small * 1024 <= 64000000) ? \"met\" : \"MISSED\" }") ($(calc %.1f "$rss_big * 1024 / 1000000") MB at $(thousands "$rows") rows)"

    # 3. From the file's arrival to the first row on the wire (the check pass).
    merge_first_row "$rows"
    row merge "time from the job's rename into the spool of a serving poold to its first MAIL FROM at the relay, $(thousands "$rows") rows (goal < 3 s)" \
        "${FIRST_MAIL} s" "$(figure "check pass done (log line) at ${FIRST_PASS} s, first connection at ${FIRST_CONNECT} s; goal $(awk "BEGIN { print ($FIRST_MAIL < 3) ? \"met\" : \"MISSED\" }")")" "$CHECK"

    # 4. LISTSERV's way: the same personalised messages as one-recipient .MAIL files.
    dir="$OUT/merge/listserv-$small"; rm -rf "$dir"; mkdir -p "$dir"
    spool="$(make_spool "$WORK/listserv")"
    merge_inputs "$small"
    w="$(now)"
    python3 "$LIB/genmerge.py" files "$spool" --table "$MERGE_TABLE" --template "$MERGE_TEMPLATE" \
        --stem "${MERGE_JOB%.MAIL}" --rows "$small" >"$dir/files.out"
    sync
    t_files="$(calc %.3f "$(now) - $w")"
    wr="$(cat "$dir/files.out")"
    start_sink "$dir"
    write_config "$dir/poold.cfg" "$spool" 4 "$SINK_PORT" 100
    run_poold "$dir" "$dir/poold.cfg" "$small" "$small"
    stop_pid "$SINK_PID"; rm -rf "$WORK/listserv"
    c3="$CHECK"
    log "listserv-way: files ${t_files}s ($wr), drain ${WALL}s, $CHECK"
    row merge "LISTSERV's way: the same $(thousands "$small") messages rendered into $(thousands "$small") one-recipient .MAIL files (genmerge.py files: $(kv bytes "$wr") bytes), 4 workers, --drain" \
        "${WALL} s" "$(figure "$(calc %.0f "$small / $WALL") msg/s; peak RSS $(calc %.1f "$RSS_KB / 1024") MiB; writing the files (Python) and sync took ${t_files} s")" "$CHECK; poold CPU ${CPU_S} s"
    failed "$c_small$c3" || row merge "ratio: one merge job / $(thousands "$small") files, drain time" "—" "$(calc %.2f "$WALL / $t_small")×" \
        "the files take $(calc %.2f "$WALL / $t_small")× as long to drain ($(calc %.2f "($WALL + $t_files) / $t_small")× with writing them)"
}
