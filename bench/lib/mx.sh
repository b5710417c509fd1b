# bench/lib/mx.sh: bench_mx (sourced by bench/run): issue 15's performance rows. Direct
# delivery to 20 sites (loopback addresses 127.0.0.10-29, one port, each an smtp-sink
# behind delay_proxy.py), 200 domains in a zone served by scripts/relays/dns_server.py,
# 20,000 recipients in jobs of a few each; poold with SMTP_FORWARD_1=16*MX against a
# private Postfix routing the same domains to the same hosts with transport_maps.

MX_FIRST=10 # site s listens on 127.0.0.(MX_FIRST + s)

# A port free on every site's address (bound and released at once: a race, but a short one).
mx_port() {
    python3 - "$MX_FIRST" "$1" <<'EOF'
import random, socket, sys
first, sites = int(sys.argv[1]), int(sys.argv[2])
for _ in range(200):
    port = random.randint(20000, 60000)
    socks = []
    try:
        for s in range(sites):
            k = socket.socket()
            socks.append(k)
            k.bind((f"127.0.0.{first + s}", port))
        print(port)
        break
    except OSError:
        pass
    finally:
        for k in socks:
            k.close()
else:
    sys.exit("no port free on every site's address")
EOF
}

# mx_sites DIR SITES PORT: per site, a fresh smtp-sink -c on 127.0.0.1 and delay_proxy.py
# (BENCH_MX_RTT_MS, default 10) listening on the site's address and PORT; sets MX_SINK_OUTS
# (the sinks' counter files, in site order) and MX_SITE_PIDS. bench/lib/connsample.py
# notes the most connections open at once (MX_CONC_OUT).
mx_sites() {
    local dir="$1" sites="$2" port="$3" s pid
    MX_SINK_OUTS=() MX_SITE_PIDS=()
    MX_CONC_OUT="$dir/connections"
    timeout 900 python3 "$LIB/connsample.py" --port "$port" --out "$MX_CONC_OUT" --lifetime 850 &
    MX_SAMPLER=$!; PIDS+=("$MX_SAMPLER")
    for s in $(seq 0 $(( sites - 1 ))); do
        start_sink "$dir/site$s"
        MX_SINK_OUTS+=("$SINK_OUT") MX_SITE_PIDS+=("$SINK_PID")
        timeout 900 python3 "$ROOT/scripts/delay_proxy.py" --listen-host "127.0.0.$(( MX_FIRST + s ))" \
            --listen-port "$port" --target-host 127.0.0.1 --target-port "$SINK_PORT" \
            --rtt-ms "${BENCH_MX_RTT_MS:-10}" --ready-file "$dir/site$s/proxy.port" --lifetime 850 \
            --log "$dir/site$s/proxy.log" >"$dir/site$s/proxy.out" 2>&1 &
        pid=$!
        PIDS+=("$pid") MX_SITE_PIDS+=("$pid")
    done
    for s in $(seq 0 $(( sites - 1 ))); do
        wait_ready_file "${MX_SITE_PIDS[$(( 2 * s + 1 ))]}" "$dir/site$s/proxy.port" "delay_proxy for site $s" >/dev/null
    done
}
mx_sites_stop() { local pid; for pid in "$MX_SAMPLER" "${MX_SITE_PIDS[@]}"; do stop_pid "$pid"; done; }

# mx_counts WANT: the sinks' totals once every session has ended (each sink's -c line is
# rewritten at the end of a session, a QUIT and a final dot); sets MX_MESG, MX_SESS
# (connections, summed), MX_SESS_MIN and MX_SESS_MAX (the fewest and most to one site).
mx_counts() {
    local want="$1" out n i
    for i in $(seq 1 50); do
        MX_MESG=0
        for out in "${MX_SINK_OUTS[@]}"; do MX_MESG=$(( MX_MESG + $(sink_mesg "$out") )); done
        [ "$MX_MESG" -ge "$want" ] && break
        sleep 0.1
    done
    sleep 1 # the proxies pass the last closes on
    MX_SESS=0 MX_SESS_MAX=0 MX_SESS_MIN=""
    for out in "${MX_SINK_OUTS[@]}"; do
        n="$(tr '\r' '\n' <"$out" | grep -o 'sess=[0-9]*' | tail -n1 | cut -d= -f2 || true)"
        n="${n:-0}"
        MX_SESS=$(( MX_SESS + n ))
        [ "$n" -le "$MX_SESS_MAX" ] || MX_SESS_MAX="$n"
        [ -n "$MX_SESS_MIN" ] && [ "$n" -ge "$MX_SESS_MIN" ] || MX_SESS_MIN="$n"
    done
}
# What connsample.py saw (after mx_sites_stop): "N at once (at most M to one site)".
mx_concurrency() {
    local c
    c="$(cat "$MX_CONC_OUT" 2>/dev/null || true)"
    echo "at most $(kv max_total "$c") open at once, $(kv max_site "$c") to one site"
}

bench_mx() {
    CURRENT=mx
    local sites="${BENCH_MX_SITES:-20}" domains="${BENCH_MX_DOMAINS:-200}" rcpts="${BENCH_MX_RECIPIENTS:-20000}"
    local per_job="${BENCH_MX_PER_JOB:-4}" conns=16 rtt="${BENCH_MX_RTT_MS:-10}"
    local gen="$WORK/mx-gen" port dns_pid dns_port expect tx jobs dir spool t_poold c1 out inst
    local wall cpu sent sink left stopped caches conc dnsq

    port="$(mx_port "$sites")"
    rm -rf "$gen"; mkdir -p "$gen"
    python3 "$LIB/genmx.py" "$gen" --sites "$sites" --domains "$domains" --recipients "$rcpts" \
        --per-job "$per_job" --port "$port" --first-address "$MX_FIRST"
    expect="$(head -n1 "$gen/expect")"
    tx="$(kv transactions "$expect")" jobs="$(kv jobs "$expect")"
    log "mx: $jobs jobs, $rcpts recipients, $domains domains on $sites sites (127.0.0.$MX_FIRST-$(( MX_FIRST + sites - 1 )):$port, ${rtt} ms RTT): $tx transactions expected"

    mkdir -p "$OUT/mx"
    timeout 900 "$POOLD_PYTHON" "$ROOT/scripts/relays/dns_server.py" --zone "$gen/zone" --port 0 \
        --ready-file "$OUT/mx/dns.port" --lifetime 850 --query-log "$OUT/mx/dns-queries.jsonl" \
        >"$OUT/mx/dns.out" 2>"$OUT/mx/dns.err" &
    dns_pid=$!; PIDS+=("$dns_pid")
    dns_port="$(wait_ready_file "$dns_pid" "$OUT/mx/dns.port" "dns_server.py (see $OUT/mx/dns.err)")"

    # poold.
    dir="$OUT/mx/poold"; rm -rf "$dir"; mkdir -p "$dir"
    mx_sites "$dir" "$sites" "$port"
    spool="$(make_spool "$WORK/mx-spool")"
    cp "$gen/jobs/"*.MAIL "$spool/"
    cat >"$dir/poold.cfg" <<EOF
# written by bench/run mx
SPOOL_DIR=$spool
SMTP_FORWARD_1=$conns*MX
DNS_SERVER=127.0.0.1:$dns_port
MX_PORT=$port
HELO_NAME=bench.example
EOF
    SINK_OUT="" run_poold "$dir" "$dir/poold.cfg" "$rcpts" "$tx"
    mx_counts "$tx"
    mx_sites_stop; rm -rf "$WORK/mx-spool"
    conc="$(mx_concurrency)"
    dnsq="$(wc -l <"$OUT/mx/dns-queries.jsonl" 2>/dev/null || echo '?')"
    if [ "$MX_MESG" != "$tx" ]; then
        CHECK="FAILED: the sites got $MX_MESG of $tx transactions; ${CHECK#OK: }"
    elif ! failed "$CHECK"; then
        CHECK="OK: the sites got $MX_MESG/$tx transactions, ${CHECK#OK: }"
    fi
    t_poold="$WALL" c1="$CHECK"
    raw "mx-poold" "$dir" "wall=$WALL" "sess=$MX_SESS" "sess_per_site=$MX_SESS_MIN-$MX_SESS_MAX" "$(cat "$MX_CONC_OUT" 2>/dev/null)" "$CHECK"
    log "mx poold: ${WALL}s, $MX_SESS connections, $CHECK"
    row mx "poold, SMTP_FORWARD_1=$conns*MX (MX_SITE_CONNECTIONS=5, MX_SITE_MESSAGES=100), $jobs jobs × $per_job rcpts = $(thousands "$rcpts") rcpts on $domains domains, $sites sites at ${rtt} ms RTT, DNS_SERVER (dns_server.py), --drain" \
        "${WALL} s" "$(figure "$(calc %.0f "$rcpts / $WALL") rcpts/s, $(calc %.0f "$tx / $WALL") transactions/s; $MX_SESS connections opened ($MX_SESS_MIN–$MX_SESS_MAX per site), $conc; $dnsq DNS questions")" \
        "$CHECK; poold CPU ${CPU_S} s, peak RSS $(calc %.1f "$RSS_KB / 1024") MiB"

    # Postfix, the same jobs, the same sites.
    if [ ! -x /usr/lib/postfix/sbin/master ] || ! getent passwd postfix >/dev/null || [ "$(id -u)" != 0 ]; then
        row mx "Postfix (private instance)" "—" "SKIPPED" "needs root and the postfix package installed (scripts/install-test-deps --bench)"
    else
        dir="$OUT/mx/postfix"; inst="$WORK/postfix-mx"
        rm -rf "$dir" "$inst"; mkdir -p "$dir" "$inst"
        mx_sites "$dir" "$sites" "$port"
        POSTFIX_DIRS+=("$inst")
        set +e
        timeout 1500 python3 "$LIB/postfix_bench.py" mx "$inst" --jobs "$gen/jobs" --transport "$gen/transport" \
            $(printf -- '--sink-out %s ' "${MX_SINK_OUTS[@]}") --expect-messages "$tx" --expect-recipients "$rcpts" \
            --connections "$conns" --site-connections 5 --site-messages 100 \
            $( [ "$DROP_CACHES" = 1 ] && echo --drop-caches ) >"$dir/postfix.out" 2>"$dir/postfix.err"
        set -e
        mx_counts 0
        mx_sites_stop
        conc="$(mx_concurrency)"
        cp "$inst/maillog" "$dir/maillog" 2>/dev/null || true
        cp -r "$inst/etc" "$dir/etc" 2>/dev/null || true
        out="$(tail -n1 "$dir/postfix.out")"
        wall="$(kv wall "$out")" cpu="$(kv cpu_s "$out")" sent="$(kv sent "$out")" sink="$(kv sink "$out")"
        left="$(kv left "$out")" stopped="$(kv stopped "$out")" caches="$(kv drop_caches "$out")"
        if [ -n "$wall" ] && [ "$sent" = "$rcpts" ] && [ "$sink" = "$tx" ] && [ "$left" = 0 ] && [ "$stopped" = yes ]; then
            CHECK="OK: the sites got $sink/$tx transactions, $sent status=sent in its log, queue empty, every process stopped"
        else
            CHECK="FAILED: ${out:-no result} (see $dir/postfix.err)"; wall="${wall:-0}"
        fi
        rm -rf "$inst"
        raw "mx-postfix" "$dir" "$out" "sess=$MX_SESS" "sess_per_site=$MX_SESS_MIN-$MX_SESS_MAX" "$(cat "$MX_CONC_OUT" 2>/dev/null)"
        log "mx Postfix: ${wall}s, $MX_SESS connections, page cache dropped: ${caches:-?}, $CHECK"
        WALL="$wall"
        row mx "Postfix $(postconf -d -h mail_version 2>/dev/null), private instance, the same jobs queued on hold; transport_maps routes each domain to smtp:[its site]:$port, $conns smtp processes, default_destination_concurrency_limit=5, connection cache on, smtp_connection_reuse_count_limit=100; timed from release to empty queue" \
            "${wall} s" "$(figure "$(calc %.0f "$rcpts / $wall") rcpts/s, $(calc %.0f "$tx / $wall") transactions/s; $MX_SESS connections opened ($MX_SESS_MIN–$MX_SESS_MAX per site), $conc")" \
            "$CHECK; Postfix CPU ${cpu:-?} s (all its processes)"
        failed "$c1$CHECK" || row mx "ratio: poold / Postfix, direct delivery to $sites sites" "—" "$(calc %.2f "$wall / $t_poold")×" \
            "Postfix takes $(calc %.1f "$wall / $t_poold")× as long"
    fi
    stop_pid "$dns_pid"
    rm -rf "$gen"
}
