# bench/lib/scale.sh: bench_scale (memory) and bench_callgrind (instructions per message),
# sourced by bench/run.

# scale_drain NAME WORKERS JOBS [genjobs options]: one drain into a fresh sink; sets WALL, RSS_KB, CHECK.
scale_drain() {
    local name="$1" workers="$2" jobs="$3" dir spool
    shift 3
    dir="$OUT/scale/$name"; rm -rf "$dir"; mkdir -p "$dir"
    spool="$(make_spool "$WORK/$name")"
    python3 "$LIB/genjobs.py" "$spool" --jobs "$jobs" --rcpts 1 --size 2048 "$@"
    start_sink "$dir"
    write_config "$dir/poold.cfg" "$spool" "$workers" "$SINK_PORT" 100
    run_poold "$dir" "$dir/poold.cfg" "$jobs" "$jobs"
    stop_pid "$SINK_PID"; rm -rf "${WORK:?}/$name"
    log "$name: ${WALL}s, RSS ${RSS_KB} kB, $CHECK"
}

# Bytes per queued job: (peak RSS − the 1-job reference) / jobs.
per_job() { calc %.0f "($1 - $REF_KB) * 1024 / $2"; }

bench_scale() {
    CURRENT=scale
    local dir spool want got n=20000 big="${BENCH_SCALE_JOBS:-100000}"

    scale_drain poold-1job 4 1
    REF_KB="$RSS_KB"
    row scale "poold, 4 workers, 1 job of 2 KB (reference: an almost idle daemon)" "${WALL} s" "$(figure "peak RSS $(calc %.1f "$RSS_KB / 1024") MiB")" "$CHECK"

    scale_drain poold-20000jobs 4 "$n"
    row scale "poold, 4 workers, $n jobs × 1 rcpt, 2 KB" "${WALL} s" \
        "$(figure "peak RSS $(calc %.1f "$RSS_KB / 1024") MiB; $(per_job "$RSS_KB" "$n") bytes per queued job")" "$CHECK"

    if [ "$big" -gt 0 ] && [ "$big" != "$n" ]; then
        scale_drain "poold-${big}jobs" 4 "$big"
        row scale "poold, 4 workers, $big jobs × 1 rcpt, 2 KB (goal: peak ≤ 50 MB)" "${WALL} s" \
            "$(figure "peak RSS $(calc %.1f "$RSS_KB / 1024") MiB ($(calc %.1f "$RSS_KB * 1024 / 1000000") MB; goal $(awk "BEGIN { print ($RSS_KB * 1024 <= 50000000) ? \"met\" : \"MISSED\" }")); $(per_job "$RSS_KB" "$big") bytes per queued job over the reference; $(calc %.0f "$big / $WALL") msg/s")" "$CHECK"
    fi

    # The 50 MB message: this sink dumps what it gets, to check the content arrived whole.
    dir="$OUT/scale/poold-50MB"; rm -rf "$dir"; mkdir -p "$dir"
    spool="$(make_spool "$WORK/s50")"
    python3 "$LIB/genjobs.py" "$spool" --jobs 1 --rcpts 1 --size $(( 50 * 1024 * 1024 ))
    want="$(python3 "$LIB/msghash.py" job "$spool/A00000001.MAIL")"
    start_sink "$dir" -D "$WORK/s50/dump"
    write_config "$dir/poold.cfg" "$spool" 1 "$SINK_PORT" 100
    run_poold "$dir" "$dir/poold.cfg" 1 1
    stop_pid "$SINK_PID"
    got="$(python3 "$LIB/msghash.py" dump "$WORK/s50/dump" 2>/dev/null || echo "no dump")"
    raw "50MB content" "want=$want" "got=$got"
    case "$CHECK" in
        OK*) if [ "$want" = "$got" ]; then CHECK="$CHECK; content identical (sha256, $(cut -d' ' -f2 <<<"$got") bytes)"
             else CHECK="FAILED: content differs (want $want, got $got)"; fi ;;
    esac
    rm -rf "$WORK/s50"
    log "50 MB: ${WALL}s, RSS ${RSS_KB} kB, $CHECK"
    row scale "poold, 1 worker, 1 job with a 50 MiB message (this sink dumps to disk)" "${WALL} s" \
        "$(figure "peak RSS $(calc %.1f "$RSS_KB / 1024") MiB")" "$CHECK"
}

# Instructions per delivered message: the fixed workload of BENCHMARKS.md (release build,
# 1 worker, 2,000 one-recipient 2 KB jobs, --drain into smtp-sink) under callgrind, minus
# the same with 1 job (start-up and exit), divided by 1,999.
bench_callgrind() {
    CURRENT=callgrind
    local jobs="${BENCH_CALLGRIND_JOBS:-2000}" n dir spool ir ir1="" irn="" c1="" cn=""
    if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
        row callgrind "poold under callgrind" "—" "SKIPPED" "valgrind is not installed (scripts/install-test-deps installs it)"
        return 0
    fi
    for n in 1 "$jobs"; do
        dir="$OUT/callgrind/poold-$n"; rm -rf "$dir"; mkdir -p "$dir"
        spool="$(make_spool "$WORK/cg$n")"
        python3 "$LIB/genjobs.py" "$spool" --jobs "$n" --rcpts 1 --size 2048
        start_sink "$dir"
        write_config "$dir/poold.cfg" "$spool" 1 "$SINK_PORT" 100
        POOLD_WRAP=(valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" --log-file="$dir/valgrind.log")
        run_poold "$dir" "$dir/poold.cfg" "$n" "$n"
        POOLD_WRAP=()
        stop_pid "$SINK_PID"; rm -rf "$WORK/cg$n"
        ir="$(awk '/^(summary|totals):/ { print $2; exit }' "$dir/callgrind.out" 2>/dev/null || true)"
        log "callgrind, $n job(s): ${ir:-?} Ir in ${WALL}s, $CHECK"
        row callgrind "poold --drain under valgrind --tool=callgrind, 1 worker, $n job$( [ "$n" = 1 ] && echo " (start-up and exit)" || echo "s") × 1 rcpt, 2 KB" \
            "${WALL} s" "$(figure "$(thousands "${ir:-0}") Ir")" "$CHECK"
        if [ "$n" = 1 ]; then ir1="$ir" c1="$CHECK"; else irn="$ir" cn="$CHECK"; fi
    done
    if [ -n "$ir1" ] && [ -n "$irn" ] && ! failed "$c1$cn"; then
        local per
        per="$(calc %.0f "($irn - $ir1) / ($jobs - 1)")"
        row callgrind "instructions per delivered message = (Ir($jobs) − Ir(1)) / $(( jobs - 1 )) (goal ≤ 60,000)" "—" \
            "$(thousands "$per") Ir/msg" "goal $( [ "$per" -le 60000 ] && echo met || echo MISSED )"
    fi
    # The 25 most expensive functions, inclusive, demangled when the toolchain can.
    local report="$OUT/callgrind/top25-inclusive.txt" demangle=(cat)
    command -v swift >/dev/null && swift demangle --help >/dev/null 2>&1 && demangle=(swift demangle --simplified)
    if [ -s "$OUT/callgrind/poold-$jobs/callgrind.out" ]; then
        local top='/PROGRAM TOTALS/ { print; next } /file:function/ { go = 1; print; next }
                   go == 1 && /^-+$/ { go = 2; next } go == 2 && NF { print; if (++k >= 25) exit }'
        callgrind_annotate --inclusive=yes "$OUT/callgrind/poold-$jobs/callgrind.out" 2>/dev/null \
            | "${demangle[@]}" | awk "$top" >"$report" || true
        callgrind_annotate --inclusive=no "$OUT/callgrind/poold-$jobs/callgrind.out" 2>/dev/null \
            | "${demangle[@]}" | awk "$top" >"${report/inclusive/self}" || true
        log "top functions: $report, ${report/inclusive/self}"
    fi
}
