# shellcheck shell=bash
# benches/streams.inc.sh — the --streams mode of benches/load.sh (sourced by it, not run alone).
#
# Long LLM streams at scale: for each N in $STREAMS, N concurrent clients each hold one ~9 KB
# Responses-API SSE stream that a TLS upstream trickles over $STREAM_SECONDS (the sse_streams
# example: nginx cannot trickle), through aigate and through nginx doing the same gateway job
# (proxy_buffering off), alternately. Each run starts the gateway afresh, warms it up (a few
# short streams), takes its idle RSS, then runs the N streams and samples RSS (all processes,
# every 0.2 s) and CPU time (utime + stime). Reported per system and N:
#   - errors: streams that did not end well (status other than 200, socket errors, a stream
#     cut short: chunked framing incomplete, no response.completed, a byte missing);
#   - peak RSS above the idle RSS, and that divided by N (memory per stream);
#   - CPU time per completed stream, and aigate's over nginx's;
#   - RSS 0 s and $STREAM_IDLE s after the streams ended, above the idle RSS (memory given back);
#   - for aigate: aigate_llm_tokens_total per consumer (input, output, total) equals what the
#     streams of that consumer's key carried (the client reads each response.completed), and
#     aigate_http_requests_total{code="200"} grew by the streams completed.
# STREAMS_RC=1 when a stream failed or a count disagrees. Writes benches/STREAMS.md (with
# --smoke: the work dir's).
# Uses from load.sh: OUT BENCH ROOT KEYS_FILE AIGATE_PID AIGATE_BIN NGX_PID P_AIGATE P_STATUS
# P_NGINX P_STREAMS_UP STARTED SMOKE CMDLINE GIT_AT_START WORKERS NOFILE CLK_TCK AIGATE_SETTINGS log die
# wait_http wait_nginx_gateway sys_url cpu_ticks mem_kb reset_hwm.

STREAMS_DIR="$OUT/streams"
rm -rf "$STREAMS_DIR"
mkdir -p "$STREAMS_DIR"
if [[ $SMOKE == 1 ]]; then STREAMS_REPORT="$OUT/STREAMS.md"; else STREAMS_REPORT="$BENCH/STREAMS.md"; fi
STREAMS_RC=0
STREAM_DELTAS=36   # text deltas per stream: with the 7 other events, ~9 KB
STREAMS_TSV="$STREAMS_DIR/streams.tsv"
printf 'n\tsystem\trep\tok\tnon200\tsocket\ttruncated\tidle_kb\tpeak_kb\thwm_kb\tafter_kb\tlater_kb\tcpu_ticks\tbytes\tfirst_byte_p50_ms\ttokens\n' > "$STREAMS_TSV"

# --- the trickling upstream ---------------------------------------------------------------------
log "starting the streams upstream (sse_streams upstream, TLS on :$P_STREAMS_UP, ${STREAM_SECONDS} s per stream)"
"$STREAMS_BIN" upstream --listen "127.0.0.1:$P_STREAMS_UP" --cert "$OUT/server.pem" --key "$OUT/server.key" \
  --seconds "$STREAM_SECONDS" --events "$STREAM_DELTAS" --threads 1 > "$STREAMS_DIR/upstream.out" 2>&1 &
STREAMS_UP_PID=$!
STARTED+=("$STREAMS_UP_PID:TERM")
for ((i = 0; i < 100; i++)); do
  kill -0 "$STREAMS_UP_PID" 2>/dev/null || die "the streams upstream died: $(cat "$STREAMS_DIR/upstream.out")"
  [[ -n "$(ss -Htln "( sport = :$P_STREAMS_UP )" 2>/dev/null)" ]] && break
  sleep 0.1
done

# --- fresh gateways -------------------------------------------------------------------------------
# forget_started PID: drop a stopped process from the cleanup list
forget_started() {
  local keep=() e
  for e in "${STARTED[@]}"; do [[ ${e%%:*} == "$1" ]] || keep+=("$e"); done
  STARTED=("${keep[@]}")
}
stop_pid() { # stop_pid PID SIGNAL
  local n
  kill -"$2" "$1" 2>/dev/null || return 0
  for ((n = 0; n < 100; n++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null || true
  forget_started "$1"
}
restart_aigate() {
  stop_pid "$AIGATE_PID" INT
  "$AIGATE_BIN" run --config "$OUT/aigate.yaml" >> "$OUT/aigate.out" 2>&1 &
  AIGATE_PID=$!
  STARTED+=("$AIGATE_PID:INT")
  wait_http "http://127.0.0.1:$P_STATUS/status/ready" 30 "$AIGATE_PID" \
    || { tail -n 20 "$OUT/aigate.out" >&2; die "aigate did not become ready again"; }
}
restart_nginx() {
  stop_pid "$NGX_PID" TERM
  nginx -p "$OUT" -e "$OUT/nginx-error.log" -c "$OUT/nginx.conf" >> "$OUT/nginx.out" 2>&1 &
  NGX_PID=$!
  STARTED+=("$NGX_PID:TERM")
  wait_nginx_gateway
}

streams_client() { # streams_client SYSTEM N SECONDS RAMP OUTFILE TOKENSFILE
  timeout -k 5 $(($3 * 3 + ${4%.*} + 90)) "$STREAMS_BIN" client --url "$(sys_url "$1")" --keys "$KEYS_FILE" \
    --streams "$2" --seconds "$3" --ramp "$4" --timeout $(($3 * 2 + ${4%.*} + 60)) --tokens "$6" --threads 1 > "$5" 2>&1
}
# field=value from the client's STREAMS line
streams_field() { grep '^STREAMS ' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# per-consumer tokens from a metrics scrape: "consumer type value" lines
metric_tokens() {
  awk '/^aigate_llm_tokens_total\{/ {
         c = ""; t = ""
         if (match($0, /consumer="[^"]*"/)) c = substr($0, RSTART + 10, RLENGTH - 11)
         if (match($0, /token_type="[^"]*"/)) t = substr($0, RSTART + 12, RLENGTH - 13)
         if (t == "input" || t == "output" || t == "total") n[c " " t] += $NF
       }
       END { for (k in n) print k, n[k] }' "$1" | sort
}
metric_ok() { awk '/^aigate_http_requests_total\{/ && /code="200"/ { n += $NF } END { printf "%d\n", n }' "$1"; }

# check_tokens BEFORE AFTER CLIENT-TOKENS: aigate's per-consumer delta equals what the streams carried
check_tokens() {
  local before=$1 after=$2 carried=$3
  # key → consumer: the keys file's line n is bench-consumer-%04d
  awk 'NR == FNR { name[$0] = sprintf("bench-consumer-%04d", FNR); next }
       { c = name[$1]; print c, "input", $3; print c, "output", $4; print c, "total", $5 }' \
    "$KEYS_FILE" "$carried" | sort > "$STREAMS_DIR/want.txt"
  awk 'NR == FNR { b[$1 "/" $2] = $3; next } { d = $3 - b[$1 "/" $2]; if (d != 0) print $1, $2, d }' \
    <(metric_tokens "$before") <(metric_tokens "$after") | sort > "$STREAMS_DIR/got.txt"
  if diff -q "$STREAMS_DIR/want.txt" "$STREAMS_DIR/got.txt" > /dev/null; then
    echo ok
  else
    echo "MISMATCH ($(diff "$STREAMS_DIR/want.txt" "$STREAMS_DIR/got.txt" | grep -c '^[<>]') lines differ)"
  fi
}

# run_streams N SYSTEM REP
run_streams() {
  local n=$1 sys=$2 rep=$3 pids idle peak=0 hwm after later t0 t1 rss file="$STREAMS_DIR/run-$1-$2-$3"
  local ramp ok tokens="-" before after_m cpid
  if [[ $sys == aigate ]]; then restart_aigate; else restart_nginx; fi
  pids=$(sys_pids "$sys")
  # warm-up: a few short streams, so that lazily made things (TLS contexts, pools, metric
  # handles) are in the idle figure
  streams_client "$sys" 20 1 0.2 "$file.warm.txt" "$file.warm.tokens" || log "warm-up of $sys had failures ($file.warm.txt)"
  sleep 2
  [[ $sys == aigate ]] && curl -s --max-time 5 "http://127.0.0.1:$P_STATUS/metrics" > "$file.metrics-before.txt"
  idle=$(mem_kb VmRSS $pids)
  reset_hwm $pids
  t0=$(cpu_ticks $pids)
  ramp=$STREAM_RAMP
  [[ -z $ramp ]] && ramp=$(awk -v n="$n" 'BEGIN { r = n / 1000; if (r < 1) r = 1; print r }')
  streams_client "$sys" "$n" "$STREAM_SECONDS" "$ramp" "$file.txt" "$file.tokens" &
  cpid=$!
  while kill -0 "$cpid" 2>/dev/null; do
    rss=$(mem_kb VmRSS $pids)
    ((rss > peak)) && peak=$rss
    sleep 0.2
  done
  wait "$cpid" || true
  t1=$(cpu_ticks $pids)
  hwm=$(mem_kb VmHWM $pids)
  after=$(mem_kb VmRSS $pids)
  if [[ $sys == aigate ]]; then
    sleep 1.2   # the access log and counters of the last streams
    curl -s --max-time 5 "http://127.0.0.1:$P_STATUS/metrics" > "$file.metrics-after.txt"
    tokens=$(check_tokens "$file.metrics-before.txt" "$file.metrics-after.txt" "$file.tokens")
    ok=$(streams_field "$file.txt" ok)
    local grew=$(($(metric_ok "$file.metrics-after.txt") - $(metric_ok "$file.metrics-before.txt")))
    [[ $grew == "${ok:-0}" ]] || tokens+="; 200s counted $grew, streams ok ${ok:-0}"
  fi
  sleep "$STREAM_IDLE"
  later=$(mem_kb VmRSS $pids)
  if ! grep -q '^STREAMS ' "$file.txt"; then
    log "no result from the streams client for $sys N=$n: $(tail -n 3 "$file.txt" | tr '\n' ' ')"
    printf '%s\t%s\t%s\t0\t0\t%s\t0\t%s\t%s\t%s\t%s\t%s\t%s\t0\t0\t%s\n' "$n" "$sys" "$rep" "$n" "$idle" "$peak" "$hwm" "$after" "$later" $((t1 - t0)) "$tokens" >> "$STREAMS_TSV"
    STREAMS_RC=1
    return 0
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$sys" "$rep" \
    "$(streams_field "$file.txt" ok)" "$(streams_field "$file.txt" non200)" "$(streams_field "$file.txt" socket_errors)" \
    "$(streams_field "$file.txt" truncated)" "$idle" "$peak" "$hwm" "$after" "$later" $((t1 - t0)) \
    "$(streams_field "$file.txt" bytes)" "$(streams_field "$file.txt" first_byte_p50_ms)" "$tokens" >> "$STREAMS_TSV"
  log "  $(tail -n 1 "$STREAMS_TSV" | awk -F'\t' -v hz="$CLK_TCK" '{ printf "N=%-5s %-6s rep %s: ok %s, non-200 %s, socket %s, cut %s; peak +%.1f MB (%.1f KB/stream); cpu %.2f ms/stream; +%.1f MB after, +%.1f MB later; tokens %s",
      $1, $2, $3, $4, $5, $6, $7, ($9 - $8) / 1024, ($9 - $8) * 1.024 / $1, ($4 > 0 ? $13 * 1000 / hz / $4 : 0), ($11 - $8) / 1024, ($12 - $8) / 1024, $16 }')"
  if [[ $(streams_field "$file.txt" ok) != "$n" ]]; then
    log "  failed streams ($sys N=$n): $(grep '^failed stream' "$file.txt" | head -n 3 | tr '\n' ' ')"
    STREAMS_RC=1
  fi
  [[ $tokens == - || $tokens == ok ]] || STREAMS_RC=1
}

# --- the runs: N ascending, systems alternating, the order rotated each repetition ---------------
STREAM_SYSTEMS=(aigate nginx)
for n in $STREAMS; do
  if ((2 * n + 256 > NOFILE)); then
    log "N=$n needs $((2 * n + 256)) file descriptors per gateway, the limit is $NOFILE: skipped"
    continue
  fi
  log "streams: $n concurrent streams of ${STREAM_SECONDS} s"
  for ((rep = 1; rep <= STREAM_REPS; rep++)); do
    for ((k = 0; k < 2; k++)); do
      run_streams "$n" "${STREAM_SYSTEMS[$(((k + rep + n / 1000) % 2))]}" "$rep"
    done
  done
done

# --- report -------------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# scol N SYSTEM AWK-EXPRESSION: the expression over each run of that system at N
scol() { awk -F'\t' -v n="$1" -v s="$2" "NR > 1 && \$1 == n && \$2 == s { print $3 }" "$STREAMS_TSV"; }
STREAMS_TABLE="$STREAMS_DIR/table.md"
{
  echo "| streams | system | completed | errors (non-200 / socket / cut short) | idle RSS MB | peak RSS above idle MB | **memory per stream KB** | **CPU ms per stream** | CPU aigate ÷ nginx | above idle right after / ${STREAM_IDLE} s later MB | tokens per consumer |"
  echo "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"
  for n in $STREAMS; do
    declare -A CPU=()
    for sys in "${STREAM_SYSTEMS[@]}"; do
      CPU[$sys]=$(scol "$n" "$sys" '($4 > 0 ? $13 * 1000 / '"$CLK_TCK"' / $4 : 0)' | median)
    done
    for sys in "${STREAM_SYSTEMS[@]}"; do
      rows=$(awk -F'\t' -v n="$n" -v s="$sys" 'NR > 1 && $1 == n && $2 == s' "$STREAMS_TSV" | wc -l)
      [[ $rows -gt 0 ]] || continue
      ok=$(scol "$n" "$sys" '$4' | awk '{ s += $1 } END { print s + 0 }')
      errs=$(scol "$n" "$sys" '$5 " " $6 " " $7' | awk '{ a += $1; b += $2; c += $3 } END { printf "%d / %d / %d", a, b, c }')
      idle=$(scol "$n" "$sys" '$8' | median)
      above=$(scol "$n" "$sys" '$9 - $8' | median)
      per=$(scol "$n" "$sys" '($9 - $8) * 1.024 / $1' | median)
      after=$(scol "$n" "$sys" '$11 - $8' | median)
      later=$(scol "$n" "$sys" '$12 - $8' | median)
      tok=$(scol "$n" "$sys" '$16' | sort -u | tr '\n' ' ')
      ratio=""
      [[ $sys == aigate ]] && ratio=$(awk -v a="${CPU[aigate]}" -v b="${CPU[nginx]:-nan}" 'BEGIN { if (b == "nan" || b + 0 == 0) print "–"; else printf "%.2f×", a / b }')
      awk -v n="$n" -v s="$sys" -v ok="$ok" -v tot=$((n * rows)) -v e="$errs" -v idle="$idle" -v above="$above" -v per="$per" \
          -v cpu="${CPU[$sys]}" -v r="$ratio" -v after="$after" -v later="$later" -v tok="${tok% }" '
        BEGIN { printf "| %s | %s | %d / %d | %s | %.1f | %.1f | **%.1f** | **%.2f** | %s | %.1f / %.1f | %s |\n",
                n, s, ok, tot, e, idle / 1024, above / 1024, per, cpu, r, after / 1024, later / 1024, (s == "aigate" ? tok : "–") }'
    done
    unset CPU
  done
} > "$STREAMS_TABLE"

LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# aigate long-stream benchmark: results"
  echo
  if [[ $SMOKE == 1 ]]; then echo "**Smoke run** (few, short streams; debug build): checks the harness, the numbers mean little."; echo; fi
  echo "Generated by \`benches/load.sh --streams\` on $(date -u '+%Y-%m-%d %H:%M UTC'). See benches/README.md (*Long streams*) for what each number means."
  echo
  echo "Command: \`$CMDLINE\`"
  echo
  echo "- CPU: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), nproc $(nproc) (client, gateway and upstream share these cores)"
  echo "- Kernel: $(uname -sr); $(nginx -v 2>&1); aigate $("$AIGATE_BIN" --version 2>/dev/null), git $GIT_AT_START"
  echo "- Load average (1/5/15 min) at start: $LOAD_AT_START, at end: $LOAD_AT_END"
  echo "- Each stream: one client connection, one POST with a valid key (keys rotated over $NKEYS consumers), a Responses-API SSE answer of $(awk -F'\t' 'NR > 1 && $4 > 0 { b += $14; n += $4 } END { if (n) printf "%.1f", b / n / 1000; else print "?" }' "$STREAMS_TSV") KB in $((STREAM_DELTAS + 7)) events trickled over ${STREAM_SECONDS} s by a TLS upstream (HTTP/1.1); streams started over max(1 s, N/1000 s)"
  if ((${#AIGATE_SETTINGS[@]})); then echo "- aigate settings added (--aigate-setting): $(printf '`%s` ' "${AIGATE_SETTINGS[@]}")"; fi
  echo "- Gateways: $WORKERS nginx workers / aigate threads; each run starts the gateway afresh, warms it up with 20 short streams, then measures; $STREAM_REPS rep(s) per system and N, systems alternating"
  echo
  cat "$STREAMS_TABLE"
  echo
  echo "- **memory per stream** = (peak RSS during the run − idle RSS before it) / N; RSS summed over the"
  echo "  system's processes (nginx master and workers), sampled every 0.2 s. Kernel socket buffers are not in it."
  echo "- **CPU ms per stream** = (utime + stime of the system's processes during the run) / streams completed,"
  echo "  at CLK_TCK=$CLK_TCK; TLS handshakes to the upstream included (each stream needs its own upstream connection)."
  echo "- **errors**: a status other than 200, a socket error (connect, read, timeout), or a stream cut short"
  echo "  (chunked framing incomplete, no response.completed, fewer bytes than the stream had). Any error fails the run."
  echo "- **tokens per consumer**: aigate_llm_tokens_total (input, output, total) per consumer, before and after the"
  echo "  run, against the usage of every stream that consumer's key received; and aigate_http_requests_total{code=\"200\"}"
  echo "  against the streams completed. Any difference fails the run."
  echo "- Raw: \`${STREAMS_DIR#"$ROOT"/}/\` (streams.tsv, the client's output and tokens per run, metrics scrapes)."
} > "$STREAMS_REPORT"
echo
cat "$STREAMS_TABLE"
echo
log "results written to $STREAMS_REPORT"
[[ $STREAMS_RC == 0 ]] || log "FAILED: a stream failed or a count disagrees (see above)"
