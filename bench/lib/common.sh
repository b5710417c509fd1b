# bench/lib/common.sh: what every benchmark of bench/run uses (sourced, not run).
# Servers (smtp-sink, delay_proxy, test relays, private Postfix instances) are started
# bounded in time and stopped by their PID (or `postfix -c DIR stop`) when bench/run ends.

log() { echo "bench: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ processes
PIDS=()
POSTFIX_DIRS=()
cleanup() {
    local pid d
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for d in "${POSTFIX_DIRS[@]}"; do
        python3 "$LIB/postfix_bench.py" stop "$d" >&2 || log "WARNING: a Postfix process of $d is still running"
    done
    rm -rf "$WORK" "$SHM"
}

# Stops one server we started (by its PID) and forgets it.
stop_pid() {
    local pid="$1" p keep=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_sink DIR [smtp-sink options]: a fresh smtp-sink on a free port; sets SINK_PORT,
# SINK_PID, SINK_OUT (its -c counters).
start_sink() {
    local dir="$1"; shift
    local try port
    mkdir -p "$dir"
    for try in 1 2 3 4 5; do
        port="$(free_port)"
        timeout 900 "$POOLD_SMTP_SINK" -u root -c "$@" "127.0.0.1:$port" 256 >"$dir/sink.out" 2>"$dir/sink.err" &
        SINK_PID=$!
        PIDS+=("$SINK_PID")
        local i
        for i in $(seq 1 50); do
            if ss -ltnH "sport = :$port" 2>/dev/null | grep -q LISTEN && kill -0 "$SINK_PID" 2>/dev/null; then
                SINK_PORT="$port" SINK_OUT="$dir/sink.out"
                return 0
            fi
            kill -0 "$SINK_PID" 2>/dev/null || break
            sleep 0.1
        done
        stop_pid "$SINK_PID"
    done
    die "smtp-sink does not start (see $dir/sink.err)"
}

# wait_ready_file PID FILE WHAT: waits (10 s) for a server to write its port; prints it.
wait_ready_file() {
    local pid="$1" file="$2" what="$3" i
    for i in $(seq 1 100); do
        if [ -s "$file" ]; then cat "$file"; return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    die "$what does not start"
}

# start_proxy DIR TARGET_PORT: delay_proxy with RTT_MS in front of TARGET_PORT; sets PROXY_PORT.
start_proxy() {
    local dir="$1" target="$2"
    rm -f "$dir/proxy.port"
    timeout 900 python3 "$ROOT/scripts/delay_proxy.py" --listen-port 0 --target-host 127.0.0.1 \
        --target-port "$target" --rtt-ms "$RTT_MS" --ready-file "$dir/proxy.port" --lifetime 850 \
        --quiet >"$dir/proxy.out" 2>"$dir/proxy.err" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    PROXY_PORT="$(wait_ready_file "$PROXY_PID" "$dir/proxy.port" "delay_proxy (see $dir/proxy.err)")"
}

# The sink's message count ("mesg=N" in its last -c line; 0 when none yet).
sink_mesg() {
    local n
    n="$(tr '\r' '\n' <"$1" | grep -o 'mesg=[0-9]*' | tail -n1 | cut -d= -f2 || true)"
    echo "${n:-0}"
}
# Waits (up to 5 s) until the sink has seen at least N messages; prints its count.
wait_sink_mesg() {
    local out="$1" want="$2" i n
    for i in $(seq 1 50); do
        n="$(sink_mesg "$out")"
        [ "$n" -ge "$want" ] && break
        sleep 0.1
    done
    sink_mesg "$out"
}

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
thousands() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; } # 1234567 -> 1,234,567
kv() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$2"; } # kv KEY "a=1 KEY=2": 2
timev() { grep -F "$2" "$1" | head -n1 | awk -F': ' '{ print $2 }'; }

# ------------------------------------------------------------------ the page cache
# cold_start BINARY...: sync; with DROP_CACHES=1 drop the page cache (echo 1 >
# /proc/sys/vm/drop_caches) and read the binaries and their shared libraries back in, so
# that what is cold is the spool, not the program. Sets CACHE to what was done.
cold_start() {
    sync
    CACHE="synced"
    [ "$DROP_CACHES" = 1 ] || return 0
    if { echo 1 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
        CACHE="synced, page cache dropped"
        local f
        for f in "$@"; do
            f="$(command -v "$f" || echo "$f")"
            cat "$f" >/dev/null 2>&1 || true
            ldd "$f" 2>/dev/null | awk '/=> \// { print $3 }' | xargs -r cat >/dev/null 2>&1 || true
        done
    else
        CACHE="synced (dropping the page cache was refused)"
    fi
}

# ------------------------------------------------------------------ results
# row BENCHMARK RUN WALL FIGURE CHECK: one line of the results table.
row() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"
    printf '| %s | %s | %s | %s | %s |\n' "$@"
}
raw() { printf '%s\n' "$(IFS=$'\t'; echo "$*")" >>"$RAW"; }
# A figure, or FAILED when the mail did not all arrive.
figure() { case "$CHECK" in FAILED*) echo "FAILED" ;; *) echo "$1" ;; esac; }
failed() { case "$*" in *FAILED*) return 0 ;; *) return 1 ;; esac; }

# ------------------------------------------------------------------ poold
# make_spool DIR: an empty spool; prints its path.
make_spool() { rm -rf "$1"; mkdir -p "$1/spool"; echo "$1/spool"; }

write_config() { # FILE SPOOL WORKERS PORT MAXBSMTP
    cat >"$1" <<EOF
# written by bench/run
SPOOL_DIR=$2
SMTP_FORWARD_1=$3*127.0.0.1:$4
MAXBSMTP=$5
HELO_NAME=bench.example
EOF
}

POOLD_WRAP=() # a command poold runs under (valgrind)
# run_poold DIR CONFIG EXPECT_RCPTS EXPECT_TRANSACTIONS: `poold --config CONFIG --drain`
# under /usr/bin/time -v, against the sink started last (SINK_OUT). Sets WALL
# (date-measured drain time), RSS_KB, CPU_S (user+sys), CHECK ("OK: ..." or "FAILED: ...").
run_poold() {
    local dir="$1" cfg="$2" want_rcpts="$3" want_tx="$4" spool rc t0 t1
    spool="$(sed -n 's/^SPOOL_DIR=//p' "$cfg")"
    cold_start "$POOLD" /usr/bin/time # the jobs are on disk before the clock starts, as in a real spool
    t0="$(now)"
    set +e
    timeout 900 /usr/bin/time -v -o "$dir/poold.time" "${POOLD_WRAP[@]}" "$POOLD" --config "$cfg" --drain 2>"$dir/poold.log" >"$dir/poold.stdout"
    rc=$?
    set -e
    t1="$(now)"
    WALL="$(calc %.3f "$t1 - $t0")"
    RSS_KB="$(timev "$dir/poold.time" 'Maximum resident set size')"
    CPU_S="$(calc %.2f "$(timev "$dir/poold.time" 'User time') + $(timev "$dir/poold.time" 'System time')")"
    local last delivered deferred failed left sinkn problems=()
    last="$(grep 'poold stopped:' "$dir/poold.log" | tail -n1 || true)"
    delivered="$(sed -n 's/.*poold stopped: \([0-9]*\) delivered.*/\1/p' <<<"$last")"
    deferred="$(sed -n 's/.* \([0-9]*\) deferred.*/\1/p' <<<"$last")"
    failed="$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$last")"
    left="$( { find "$spool" -maxdepth 1 -name '*.MAIL'; find "$spool/deferred" "$spool/bad" -type f 2>/dev/null; } | wc -l)"
    if [ -n "${SINK_OUT:-}" ]; then sinkn="$(wait_sink_mesg "$SINK_OUT" "$want_tx")"; else sinkn="$want_tx"; fi
    [ "$rc" = 0 ] || problems+=("exit status $rc")
    [ -n "$last" ] || problems+=("no 'poold stopped' line")
    [ "${delivered:-x}" = "$want_rcpts" ] || problems+=("poold delivered ${delivered:-?} of $want_rcpts")
    [ "${deferred:-x}" = 0 ] || problems+=("${deferred:-?} deferred")
    [ "${failed:-x}" = 0 ] || problems+=("${failed:-?} failed")
    [ "$left" = 0 ] || problems+=("$left job file(s) left in the spool")
    [ "$sinkn" = "$want_tx" ] || problems+=("sink got $sinkn of $want_tx messages")
    if [ "${#problems[@]}" = 0 ] && [ -z "${SINK_OUT:-}" ]; then
        CHECK="OK: poold $delivered delivered" # the caller checks what the relay got
    elif [ "${#problems[@]}" = 0 ]; then
        CHECK="OK: sink $sinkn/$want_tx msgs, poold $delivered delivered"
    else
        CHECK="FAILED: $(IFS=';'; echo "${problems[*]}" | sed 's/;/; /g')"
    fi
    CSW="$(timev "$dir/poold.time" 'Voluntary context switches')/$(timev "$dir/poold.time" 'Involuntary context switches')"
    raw "poold" "$dir" "wall=$WALL" "rss_kb=$RSS_KB" "cpu_s=$CPU_S" "csw_vol/invol=$CSW" "cache=$CACHE" "$CHECK"
}

# run_client DIR EXPECT_TX CMD...: a client (smtp-source, python) against the sink;
# sets WALL, CPU_S, CHECK.
run_client() {
    local dir="$1" want_tx="$2" rc t0 t1 sinkn problems=()
    shift 2
    cold_start "$1" /usr/bin/time
    t0="$(now)"
    set +e
    timeout 600 /usr/bin/time -v -o "$dir/client.time" "$@" >"$dir/client.out" 2>"$dir/client.err"
    rc=$?
    set -e
    t1="$(now)"
    WALL="$(calc %.3f "$t1 - $t0")"
    CPU_S="$(calc %.2f "$(timev "$dir/client.time" 'User time') + $(timev "$dir/client.time" 'System time')")"
    sinkn="$(wait_sink_mesg "$SINK_OUT" "$want_tx")"
    [ "$rc" = 0 ] || problems+=("exit status $rc")
    [ "$sinkn" = "$want_tx" ] || problems+=("sink got $sinkn of $want_tx messages")
    if [ "${#problems[@]}" = 0 ]; then
        CHECK="OK: sink $sinkn/$want_tx msgs"
    else
        CHECK="FAILED: $(IFS=';'; echo "${problems[*]}" | sed 's/;/; /g')"
    fi
    raw "client" "$dir" "wall=$WALL" "cpu_s=$CPU_S" "cache=$CACHE" "$CHECK" "$*"
}

# ------------------------------------------------------------------ series of runs
# Runs of one measurement accumulate under a NAME; `summarize NAME` sets WALL (median),
# RUNS ("a, b, c"), CPU_S (median), N_RUNS and CHECK (the last FAILED, else the last OK).
declare -A ACC_WALLS ACC_CPUS ACC_CHECK ACC_FAILED
accumulate() { # NAME
    ACC_WALLS[$1]="${ACC_WALLS[$1]:-} $WALL"
    ACC_CPUS[$1]="${ACC_CPUS[$1]:-} $CPU_S"
    ACC_CHECK[$1]="$CHECK"
    case "$CHECK" in FAILED*) ACC_FAILED[$1]="$CHECK" ;; esac
}
summarize() { # NAME
    RUNS="$(echo ${ACC_WALLS[$1]} | sed 's/ /, /g')"
    N_RUNS="$(echo ${ACC_WALLS[$1]} | wc -w)"
    WALL="$(echo "${ACC_WALLS[$1]}" | median)"
    CPU_S="$(echo "${ACC_CPUS[$1]}" | median)"
    CHECK="${ACC_FAILED[$1]:-${ACC_CHECK[$1]}}"
}

# poold_once NAME K WORKERS MAXBSMTP JOBS RCPTS SIZE: one drain of a fresh spool (under
# SPOOL_BASE, default the ext4 work directory) into a fresh sink; accumulates under NAME.
poold_once() {
    local name="$1" k="$2" workers="$3" max="$4" jobs="$5" rcpts="$6" size="$7" dir spool
    local base="${SPOOL_BASE:-$WORK}"
    local tx=$(( jobs * ( (rcpts + max - 1) / max ) ))
    dir="$OUT/$CURRENT/$name.$k"
    mkdir -p "$dir"
    spool="$(make_spool "$base/$name")"
    python3 "$LIB/genjobs.py" "$spool" --jobs "$jobs" --rcpts "$rcpts" --size "$size"
    start_sink "$dir"
    write_config "$dir/poold.cfg" "$spool" "$workers" "$SINK_PORT" "$max"
    run_poold "$dir" "$dir/poold.cfg" $(( jobs * rcpts )) "$tx"
    stop_pid "$SINK_PID"
    rm -rf "${base:?}/$name"
    accumulate "$name"
    log "$name run $k: ${WALL}s, poold CPU ${CPU_S}s, context switches (vol/invol) $CSW, $CACHE, $CHECK"
}

# client_once NAME K EXPECT_TX CMD... (the sink's port replaces @PORT@).
client_once() {
    local name="$1" k="$2" tx="$3" dir args a
    shift 3
    dir="$OUT/$CURRENT/$name.$k"
    mkdir -p "$dir"
    start_sink "$dir"
    args=()
    for a in "$@"; do args+=("${a//@PORT@/$SINK_PORT}"); done
    run_client "$dir" "$tx" "${args[@]}"
    stop_pid "$SINK_PID"
    accumulate "$name"
    log "$name run $k: ${WALL}s, client CPU ${CPU_S}s, $CACHE, $CHECK"
}

# repeat_poold NAME WORKERS MAXBSMTP JOBS RCPTS SIZE; repeat_client NAME EXPECT_TX CMD...:
# REPEAT runs one after the other, then summarize.
repeat_poold() {
    local k
    for k in $(seq 1 "$REPEAT"); do poold_once "$1" "$k" "${@:2}"; done
    summarize "$1"
}
repeat_client() {
    local k
    for k in $(seq 1 "$REPEAT"); do client_once "$1" "$k" "${@:2}"; done
    summarize "$1"
}
