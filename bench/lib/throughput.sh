# bench/lib/throughput.sh: bench_throughput, bench_workers, bench_postfix (sourced by bench/run).

POOLD_RATE_1RCPT="" # poold's msg/s (20,000-job median), for the Postfix ratio

# How the spool was prepared, for the rows' labels.
cache_label() { if [ "$DROP_CACHES" = 1 ]; then echo "$CACHE"; else echo "synced"; fi; }

bench_throughput() {
    CURRENT=throughput
    local n=20000 size=2048 jobs100=2000 k
    local t_poold t_source t_p100 t_s100 c1 c2 c3 c4 how
    local source=("$POOLD_SMTP_SOURCE" -s 4 -d -l "$size" -m "$n" 127.0.0.1:@PORT@)

    if [ "$ALTERNATE" = 1 ]; then
        # poold, smtp-source, poold, smtp-source, ...: a slow minute of the machine hits both.
        for k in $(seq 1 "$REPEAT"); do
            poold_once poold-1rcpt "$k" 4 100 "$n" 1 "$size"
            client_once smtp-source-1rcpt "$k" "$n" "${source[@]}"
        done
        how="alternating with smtp-source"
    else
        repeat_poold poold-1rcpt 4 100 "$n" 1 "$size"
        repeat_client smtp-source-1rcpt "$n" "${source[@]}"
        how="one after the other"
    fi
    summarize poold-1rcpt
    t_poold="$WALL"; c1="$CHECK"; POOLD_RATE_1RCPT="$(failed "$c1" || calc %.1f "$n / $WALL")"
    row throughput "poold, 4 workers, $n jobs × 1 rcpt, 2 KB, spool on ext4 $(cache_label) (median of $N_RUNS, $how: $RUNS s)" "${WALL} s" \
        "$(figure "$(calc %.0f "$n / $WALL") msg/s")" "$CHECK; poold CPU ${CPU_S} s"
    summarize smtp-source-1rcpt
    t_source="$WALL"; c2="$CHECK"
    row throughput "smtp-source -s 4 -d -l $size -m $n (median of $N_RUNS: $RUNS s)" "${WALL} s" \
        "$(figure "$(calc %.0f "$n / $WALL") msg/s")" "$CHECK; smtp-source CPU ${CPU_S} s"
    failed "$c1$c2" || row throughput "ratio: poold / smtp-source (1 rcpt; goal ≥ 1.0×)" "—" "$(calc %.2f "$t_source / $t_poold")×" \
        "poold takes $(calc %.2f "$t_poold / $t_source")× as long; goal $(awk "BEGIN { print ($t_source / $t_poold >= 1) ? \"met\" : \"MISSED\" }")"

    # Diagnosis, not a configuration to run: on tmpfs there is no disk and no journal, so
    # the gap to the poold row is what the spool's file-system work costs on this disk.
    if [ "${BENCH_TMPFS:-1}" = 1 ] && [ -d /dev/shm ] && mkdir -p "$SHM" 2>/dev/null; then
        SPOOL_BASE="$SHM" repeat_poold poold-1rcpt-tmpfs 4 100 "$n" 1 "$size"
        row throughput "(diagnosis) the same poold run with the spool on tmpfs (no disk, no ext4 journal, fsync free) (median of $N_RUNS: $RUNS s)" "${WALL} s" \
            "$(figure "$(calc %.0f "$n / $WALL") msg/s")" "$CHECK; poold CPU ${CPU_S} s"
        rm -rf "$SHM"
    fi

    [ "${BENCH_THROUGHPUT_EXTRA:-1}" = 1 ] || return 0
    repeat_client smtplib-1rcpt "$n" python3 "$LIB/smtplib_baseline.py" throughput --port @PORT@ --procs 4 --messages "$n" --size "$size"
    row throughput "Python smtplib, 4 processes, 1 connection each, $n msgs (median of $N_RUNS: $RUNS s)" "${WALL} s" \
        "$(figure "$(calc %.0f "$n / $WALL") msg/s")" "$CHECK; Python CPU ${CPU_S} s"

    repeat_poold poold-100rcpt 4 100 "$jobs100" 100 "$size"
    t_p100="$WALL"; c3="$CHECK"
    row throughput "poold, 4 workers, $jobs100 jobs × 100 rcpts, MAXBSMTP=100 (median of $N_RUNS: $RUNS s)" "${WALL} s" \
        "$(figure "$(calc %.0f "$jobs100 / $WALL") jobs/s, $(calc %.0f "$jobs100 * 100 / $WALL") rcpts/s")" "$CHECK; poold CPU ${CPU_S} s"

    repeat_client smtp-source-100rcpt "$jobs100" "$POOLD_SMTP_SOURCE" -s 4 -d -l "$size" -r 100 -m "$jobs100" 127.0.0.1:@PORT@
    t_s100="$WALL"; c4="$CHECK"
    row throughput "smtp-source -s 4 -d -l $size -r 100 -m $jobs100 (median of $N_RUNS: $RUNS s)" "${WALL} s" \
        "$(figure "$(calc %.0f "$jobs100 / $WALL") msgs/s, $(calc %.0f "$jobs100 * 100 / $WALL") rcpts/s")" "$CHECK; smtp-source CPU ${CPU_S} s"
    failed "$c3$c4" || row throughput "ratio: poold / smtp-source (100 rcpts)" "—" "$(calc %.2f "$t_s100 / $t_p100")×" \
        "smtp-source takes $(calc %.1f "$t_s100 / $t_p100")× as long"
}

# The workers sweep: does the rate hold as workers (connections) are added?
bench_workers() {
    CURRENT=workers
    local n="${BENCH_SWEEP_JOBS:-20000}" size=2048 w k rates="" best=0 best_w=0 r verdict fell=""
    local counts="${BENCH_WORKERS:-1 2 4 8 16}" reps="${BENCH_SWEEP_REPEAT:-1}" fs="ext4 $(cache_label)"
    # BENCH_SWEEP_TMPFS=1 (diagnosis): the spools on tmpfs, to tell file-system work apart.
    if [ "${BENCH_SWEEP_TMPFS:-0}" = 1 ]; then mkdir -p "$SHM"; export SPOOL_BASE="$SHM"; fs="tmpfs"; fi
    for w in $counts; do
        for k in $(seq 1 "$reps"); do
            poold_once "poold-w$w" "$k" "$w" 100 "$n" 1 "$size"
            client_once "smtp-source-s$w" "$k" "$n" "$POOLD_SMTP_SOURCE" -s "$w" -d -l "$size" -m "$n" 127.0.0.1:@PORT@
        done
        summarize "poold-w$w"
        r="$(failed "$CHECK" && echo 0 || calc %.0f "$n / $WALL")"
        row workers "poold, $w worker$( [ "$w" = 1 ] || echo s), $n jobs × 1 rcpt, 2 KB, $fs (median of $N_RUNS: $RUNS s)" "${WALL} s" \
            "$(figure "$r msg/s")" "$CHECK; poold CPU ${CPU_S} s"
        rates+="${rates:+, }$w: $r"
        if [ "$r" -gt "$best" ]; then best="$r"; best_w="$w"
        elif [ "$(calc %d "$r < 0.9 * $best")" = 1 ]; then fell+="${fell:+, }$w"; fi
        summarize "smtp-source-s$w"
        row workers "smtp-source -s $w -d -l $size -m $n (median of $N_RUNS: $RUNS s)" "${WALL} s" \
            "$(figure "$(calc %.0f "$n / $WALL") msg/s")" "$CHECK; smtp-source CPU ${CPU_S} s"
    done
    if [ -z "$fell" ]; then verdict="no fall of more than 10 % below the best rate so far (goal met on this run)"
    else verdict="MORE THAN 10 % BELOW the best rate ($best msg/s at $best_w) at $fell workers (goal missed on this run)"; fi
    row workers "poold: msg/s against workers (goal: the rate does not fall up to 16)" "—" "$rates" "$verdict"
    unset SPOOL_BASE
}

# Postfix as the baseline a user would run instead: a private instance, the same messages
# queued on hold, released, timed until the queue is empty and the sink counted them all.
bench_postfix() {
    CURRENT=postfix
    local n="${BENCH_POSTFIX_MESSAGES:-20000}" conc k dir inst out wall cpu sent sink left caches stopped
    local reps="${BENCH_POSTFIX_REPEAT:-1}" t_pf
    if [ ! -x /usr/lib/postfix/sbin/master ] || ! getent passwd postfix >/dev/null || [ "$(id -u)" != 0 ]; then
        row postfix "Postfix (private instance)" "—" "SKIPPED" "needs root and the postfix package installed (scripts/install-test-deps installs it unless another MTA holds the slot)"
        return 0
    fi
    if [ -z "$POOLD_RATE_1RCPT" ]; then
        # No throughput run in this invocation: measure poold the same way here.
        repeat_poold poold-1rcpt 4 100 "$n" 1 2048
        row postfix "poold, 4 workers, $n jobs × 1 rcpt, 2 KB, ext4 $(cache_label) (median of $N_RUNS: $RUNS s)" "${WALL} s" \
            "$(figure "$(calc %.0f "$n / $WALL") msg/s")" "$CHECK; poold CPU ${CPU_S} s"
        failed "$CHECK" || POOLD_RATE_1RCPT="$(calc %.1f "$n / $WALL")"
    fi
    for conc in ${BENCH_POSTFIX_CONC:-4 20}; do
        for k in $(seq 1 "$reps"); do
            dir="$OUT/postfix/postfix-c$conc.$k"; inst="$WORK/postfix-c$conc"
            rm -rf "$dir" "$inst"; mkdir -p "$dir" "$inst"
            start_sink "$dir"
            POSTFIX_DIRS+=("$inst")
            set +e
            timeout 1500 python3 "$LIB/postfix_bench.py" drain "$inst" --sink-port "$SINK_PORT" --sink-out "$SINK_OUT" \
                --messages "$n" --concurrency "$conc" $( [ "$DROP_CACHES" = 1 ] && echo --drop-caches ) \
                >"$dir/postfix.out" 2>"$dir/postfix.err"
            set -e
            stop_pid "$SINK_PID"
            cp "$inst/maillog" "$dir/maillog" 2>/dev/null || true
            cp -r "$inst/etc" "$dir/etc" 2>/dev/null || true
            out="$(tail -n1 "$dir/postfix.out")"
            wall="$(kv wall "$out")" cpu="$(kv cpu_s "$out")" sent="$(kv sent "$out")" sink="$(kv sink "$out")"
            left="$(kv left "$out")" caches="$(kv drop_caches "$out")" stopped="$(kv stopped "$out")"
            if [ -n "$wall" ] && [ "$sent" = "$n" ] && [ "$sink" = "$n" ] && [ "$left" = 0 ] && [ "$stopped" = yes ]; then
                CHECK="OK: sink $sink/$n msgs, $sent status=sent in its log, queue empty, every process stopped"
            else
                CHECK="FAILED: ${out:-no result} (see $dir/postfix.err)"
                wall="${wall:-0}" cpu="${cpu:-0}"
            fi
            WALL="$wall" CPU_S="$cpu"
            accumulate "postfix-c$conc"
            raw "postfix" "$dir" "$out"
            log "Postfix conc $conc run $k: ${wall}s, CPU ${cpu}s, page cache dropped: ${caches:-?}, $CHECK"
            rm -rf "$inst"
        done
        summarize "postfix-c$conc"
        t_pf="$WALL"
        row postfix "Postfix $(postconf -d -h mail_version 2>/dev/null), private instance, relayhost = the sink, default_destination_concurrency_limit=$conc, connection cache on; $n msgs queued on hold, queue synced$( [ "${caches:-}" = yes ] && echo ", page cache dropped"), timed from release to empty queue (median of $N_RUNS: $RUNS s)" \
            "${WALL} s" "$(figure "$(calc %.0f "$n / $WALL") msg/s")" "$CHECK; Postfix CPU ${CPU_S} s (all its processes)"
        if [ -n "$POOLD_RATE_1RCPT" ] && ! failed "$CHECK"; then
            row postfix "ratio: poold (4 workers) / Postfix (concurrency $conc), msg/s over msg/s" "—" "$(calc %.2f "$POOLD_RATE_1RCPT * $t_pf / $n")×" \
                "Postfix takes $(calc %.1f "$POOLD_RATE_1RCPT * $t_pf / $n")× as long per message as poold"
        fi
    done
}
