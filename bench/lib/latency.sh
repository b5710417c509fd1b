# bench/lib/latency.sh: bench_latency (sourced by bench/run). The relay is RTT_MS away
# through scripts/delay_proxy.py.

# One run through the delay proxy: fresh sink + proxy; sets DIR, and the proxy port.
proxied_sink() {
    DIR="$OUT/$CURRENT/$1"
    rm -rf "$DIR"; mkdir -p "$DIR"
    start_sink "$DIR"
    start_proxy "$DIR" "$SINK_PORT"
}
unproxy() { stop_pid "$PROXY_PID"; stop_pid "$SINK_PID"; }

# The 200 one-recipient jobs through one worker, against the relay listening on RELAY_PORT
# behind a fresh proxy. Sets WALL, CHECK (the relay's own count is checked by the caller).
poold_200_via() { # NAME RELAY_PORT
    local spool
    start_proxy "$DIR" "$2"
    spool="$(make_spool "$WORK/l200")"
    python3 "$LIB/genjobs.py" "$spool" --jobs 200 --rcpts 1 --size 2048
    write_config "$DIR/poold.cfg" "$spool" 1 "$PROXY_PORT" 100
    SINK_OUT="" run_poold "$DIR" "$DIR/poold.cfg" 200 200
    stop_pid "$PROXY_PID"; rm -rf "$WORK/l200"
}

bench_latency() {
    CURRENT=latency
    local spool max
    for max in 100 1000; do
        proxied_sink "poold-1000rcpt-max$max"
        spool="$(make_spool "$WORK/l$max")"
        python3 "$LIB/genjobs.py" "$spool" --jobs 1 --rcpts 1000 --size 2048
        write_config "$DIR/poold.cfg" "$spool" 1 "$PROXY_PORT" "$max"
        run_poold "$DIR" "$DIR/poold.cfg" 1000 $(( (1000 + max - 1) / max ))
        unproxy; rm -rf "$WORK/l$max"
        log "1000 rcpts MAXBSMTP=$max: ${WALL}s, $CHECK"
        row latency "poold, 1 job × 1000 rcpts, MAXBSMTP=$max ($(( (1000 + max - 1) / max )) transaction$( [ "$max" -ge 1000 ] || echo s)), ${RTT_MS} ms RTT (goal < 2 s)" \
            "${WALL} s" "$(figure "≈ $(calc %.1f "$WALL * 1000 / $RTT_MS") × RTT; goal $(awk "BEGIN { print ($WALL < 2) ? \"met\" : \"MISSED\" }")")" "$CHECK"
    done

    proxied_sink smtplib-lockstep-1000rcpt
    run_client "$DIR" 1 python3 "$LIB/smtplib_baseline.py" lockstep --port "$PROXY_PORT" --rcpts 1000 --size 2048
    unproxy
    log "lockstep 1000 rcpts: ${WALL}s, $CHECK"
    row latency "Python smtplib lockstep (one command at a time), 1 msg × 1000 rcpts, ${RTT_MS} ms RTT" \
        "${WALL} s" "$(figure "≈ $(calc %.1f "$WALL * 1000 / $RTT_MS") × RTT")" "$CHECK"

    proxied_sink poold-200x1rcpt
    spool="$(make_spool "$WORK/l200")"
    python3 "$LIB/genjobs.py" "$spool" --jobs 200 --rcpts 1 --size 2048
    write_config "$DIR/poold.cfg" "$spool" 1 "$PROXY_PORT" 100
    run_poold "$DIR" "$DIR/poold.cfg" 200 200
    unproxy; rm -rf "$WORK/l200"
    log "200 jobs 1 worker: ${WALL}s, $CHECK"
    row latency "poold, 1 worker, 200 jobs × 1 rcpt, ${RTT_MS} ms RTT, smtp-sink (PIPELINING, no CHUNKING) (goal ≤ 1.0)" "${WALL} s" \
        "$(figure "$(calc %.2f "$WALL * 1000 / $RTT_MS / 200") RTT/msg")" "$CHECK"

    latency_test_relay CHUNKING
    latency_test_relay ""
    latency_postfix_relay chunking
    latency_postfix_relay no-chunking

    proxied_sink smtp-source-d-200
    run_client "$DIR" 200 "$POOLD_SMTP_SOURCE" -s 1 -d -l 2048 -m 200 "127.0.0.1:$PROXY_PORT"
    unproxy
    log "smtp-source -d 200: ${WALL}s, $CHECK"
    row latency "smtp-source -s 1 -d -l 2048 -m 200 (one connection, no PIPELINING), ${RTT_MS} ms RTT" "${WALL} s" \
        "$(figure "$(calc %.2f "$WALL * 1000 / $RTT_MS / 200") RTT/msg")" "$CHECK"

    proxied_sink smtp-source-200
    run_client "$DIR" 200 "$POOLD_SMTP_SOURCE" -s 1 -l 2048 -m 200 "127.0.0.1:$PROXY_PORT"
    unproxy
    log "smtp-source 200: ${WALL}s, $CHECK"
    row latency "smtp-source -s 1 -l 2048 -m 200 (a connection per message), ${RTT_MS} ms RTT" "${WALL} s" \
        "$(figure "$(calc %.2f "$WALL * 1000 / $RTT_MS / 200") RTT/msg")" "$CHECK"
}

# scripts/relays/fault_server.py as the relay (PIPELINING, and CHUNKING when asked): it
# stamps each accepted transaction, so besides wall / RTT / messages this gives the
# steady state, (last arrival − first arrival) / (n − 1) / RTT, without start-up.
latency_test_relay() { # CHUNKING | ""
    local ext="$1" name pid port rec a n bdat steady what
    name="poold-200x1rcpt-testrelay${ext:+-chunking}"
    DIR="$OUT/$CURRENT/$name"; rm -rf "$DIR"; mkdir -p "$DIR"
    rec="$SHM/$name"; rm -rf "$rec"; mkdir -p "$rec"
    timeout 900 python3 "$ROOT/scripts/relays/fault_server.py" --port 0 --out "$rec" --ready-file "$DIR/relay.port" \
        --lifetime 850 ${ext:+--ext "$ext"} >"$DIR/relay.out" 2>"$DIR/relay.err" &
    pid=$!; PIDS+=("$pid")
    port="$(wait_ready_file "$pid" "$DIR/relay.port" "fault_server.py (see $DIR/relay.err)")"
    poold_200_via "$name" "$port"
    stop_pid "$pid"
    a="$(python3 "$LIB/arrivals.py" records "$rec" --rtt-ms "$RTT_MS")"
    raw "arrivals" "$DIR" "$a"
    n="$(kv n "$a")" bdat="$(kv bdat "$a")" steady="$(kv steady_rtt "$a")"
    case "$CHECK" in OK*) [ "$n" = 200 ] && CHECK="$CHECK; relay recorded $n, $bdat by BDAT" || CHECK="FAILED: relay recorded $n of 200" ;; esac
    what="scripts/relays/fault_server.py (PIPELINING${ext:+, CHUNKING})"
    log "200 jobs via $what: ${WALL}s, steady $steady RTT/msg, $CHECK"
    row latency "poold, 1 worker, 200 jobs × 1 rcpt, ${RTT_MS} ms RTT, $what (goal ≤ 1.0)" "${WALL} s" \
        "$(figure "$(calc %.2f "$WALL * 1000 / $RTT_MS / 200") RTT/msg; steady state $steady RTT/msg")" "$CHECK"
    cp -r "$rec" "$DIR/records" 2>/dev/null || true
    rm -rf "$rec"
}

# A real MTA as the relay: a private Postfix smtpd (queue on tmpfs, discard transport),
# which offers CHUNKING unless told not to. Its log has whole seconds only: no steady state.
latency_postfix_relay() { # chunking | no-chunking
    local mode="$1" name pid port inst a n bdat
    if [ ! -x /usr/lib/postfix/sbin/master ] || [ "$(id -u)" != 0 ]; then
        row latency "poold via a private Postfix smtpd ($mode)" "—" "SKIPPED" "needs root and the postfix package"
        return 0
    fi
    name="poold-200x1rcpt-postfix-$mode"
    DIR="$OUT/$CURRENT/$name"; rm -rf "$DIR"; mkdir -p "$DIR"
    inst="$SHM/postfix-relay-$mode"; rm -rf "$inst"; mkdir -p "$inst"
    POSTFIX_DIRS+=("$inst")
    timeout 900 python3 "$LIB/postfix_bench.py" relay "$inst" --ready-file "$DIR/relay.port" --lifetime 850 \
        $( [ "$mode" = chunking ] || echo --no-chunking ) >"$DIR/relay.out" 2>"$DIR/relay.err" &
    pid=$!; PIDS+=("$pid")
    port="$(wait_ready_file "$pid" "$DIR/relay.port" "the Postfix relay (see $DIR/relay.err)")"
    poold_200_via "$name" "$port"
    sleep 1 # its discard agent logs the last deliveries
    stop_pid "$pid"
    cp "$inst/maillog" "$DIR/maillog" 2>/dev/null || true
    a="$(python3 "$LIB/arrivals.py" postfix-log "$DIR/maillog")"
    n="$(kv n "$a")" bdat="$(kv bdat "$a")"
    case "$CHECK" in OK*) [ "$n" = 200 ] && CHECK="$CHECK; Postfix accepted $n, $bdat by BDAT" || CHECK="FAILED: Postfix accepted $n of 200" ;; esac
    log "200 jobs via Postfix smtpd ($mode): ${WALL}s, $CHECK"
    row latency "poold, 1 worker, 200 jobs × 1 rcpt, ${RTT_MS} ms RTT, Postfix smtpd $( [ "$mode" = chunking ] && echo "(PIPELINING, CHUNKING)" || echo "with CHUNKING switched off (smtpd_discard_ehlo_keywords)") (goal ≤ 1.0)" \
        "${WALL} s" "$(figure "$(calc %.2f "$WALL * 1000 / $RTT_MS / 200") RTT/msg")" "$CHECK"
    rm -rf "$inst"
}
