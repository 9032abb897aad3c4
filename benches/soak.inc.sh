# shellcheck shell=bash
# benches/soak.inc.sh — the --soak mode of benches/load.sh (sourced by it, not run alone).
#
# Mixed traffic against aigate alone for $SOAK seconds: three wrk processes at once (JSON with
# valid keys, SSE with valid keys, wrong keys), after an unjudged warm-up of the same mix. Every
# 5 s it samples aigate's RSS and open file descriptors. Checks, each printed and written to the
# report; SOAK_RC=1 when one fails:
#   - wrk saw no socket errors and no status other than the expected one (200, 200, 401);
#   - RSS at the end of the load is within 10% of RSS at its start (the warm-up has filled pools
#     and allocator caches by then, so growth means a leak);
#   - open descriptors at idle after the load are no more than at idle before it, apart from the
#     upstream keep-alive pool, which must stay within the load's concurrency;
#   - aigate's counters agree with what wrk received: aigate_http_requests_total by code and
#     aigate_llm_tokens_total{token_type="total"} against the fixtures' usage. wrk does not count
#     requests it cut off when it stopped, so aigate may count up to one per connection more
#     (as 200 or 499), never fewer.
# Uses from load.sh: OUT BENCH ROOT LUA KEYS_FILE AIGATE_PID AIGATE_BIN P_STATUS WRK_TIMEOUT SMOKE
# CMDLINE GIT_AT_START log sys_url mem_kb.

SOAK_DIR="$OUT/soak"
rm -rf "$SOAK_DIR"
mkdir -p "$SOAK_DIR"
if [[ $SMOKE == 1 ]]; then SOAK_REPORT="$OUT/SOAK.md"; else SOAK_REPORT="$BENCH/SOAK.md"; fi
SOAK_WARM=$((SOAK / 10))
((SOAK_WARM < 10)) && SOAK_WARM=10
((SOAK_WARM > 60)) && SOAK_WARM=60
SOAK_URL=$(sys_url aigate)
# name connections mode stream expected-status
SOAK_MIX=("json 16 good 0 200" "sse 8 good 1 200" "reject 8 bad 0 401")
SOAK_CONNS=32
SOAK_RC=0

soak_fds() { find "/proc/$AIGATE_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# aigate's connections to the upstream: its keep-alive pool, which may hold a few more or fewer
# after a load than before it (bounded by the load's concurrency), so they are judged apart
soak_pool() {
  ss -Htnp state established "( dport = :$P_UP_TLS )" 2>/dev/null | grep -c "pid=$AIGATE_PID," || true
}
soak_metrics() { curl -s --max-time 5 "http://127.0.0.1:$P_STATUS/metrics"; }
# "code count" lines from aigate_http_requests_total, summed over labels
soak_codes() {
  awk '/^aigate_http_requests_total\{/ { if (match($0, /code="[0-9]+"/)) n[substr($0, RSTART + 6, RLENGTH - 7)] += $NF }
       END { for (c in n) print c, n[c] }' "$1" | sort -n
}
soak_tokens() {
  awk '/^aigate_llm_tokens_total\{/ && /token_type="total"/ { n += $NF } END { printf "%d\n", n }' "$1"
}
soak_code() { awk -v c="$2" '$1 == c { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }
# total_tokens of the last usage object in a fixture
fixture_tokens() { grep -o '"total_tokens":[0-9]*' "$1" | tail -n 1 | cut -d: -f2; }

# soak_mix SECONDS TAG: the three wrk processes, in parallel, until they all stop
soak_mix() {
  local secs=$1 tag=$2 entry name conns mode stream want pids=()
  for entry in "${SOAK_MIX[@]}"; do
    read -r name conns mode stream want <<< "$entry"
    timeout -k 5 $((secs + WRK_TIMEOUT + 30)) \
      wrk -t1 -c"$conns" -d"${secs}s" --timeout "${WRK_TIMEOUT}s" --latency \
        -s "$LUA" "$SOAK_URL" -- "$KEYS_FILE" "$mode" 200 "$stream" 1 > "$SOAK_DIR/$tag-$name.txt" 2>&1 &
    pids+=($!)
  done
  if [[ $tag == load ]]; then
    local t0=$SECONDS
    # the first sample 5 s in: the baseline for growth is aigate under this load, not idle
    while sleep 5; kill -0 "${pids[0]}" 2>/dev/null || kill -0 "${pids[1]}" 2>/dev/null || kill -0 "${pids[2]}" 2>/dev/null; do
      printf '%d\t%d\t%d\n' $((SECONDS - t0)) "$(mem_kb VmRSS "$AIGATE_PID")" "$(soak_fds)" >> "$SOAK_DIR/samples.tsv"
    done
  fi
  local pid rc=0
  for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
  [[ $rc -eq 0 ]] || log "a wrk process exited with status $rc (see $SOAK_DIR/$tag-*.txt)"
}

CHECKS="$SOAK_DIR/checks.txt"
: > "$CHECKS"
soak_check() { # soak_check OK(0/1) TEXT
  if [[ $1 == 1 ]]; then echo "ok   $2" >> "$CHECKS"; else echo "FAIL $2" >> "$CHECKS"; SOAK_RC=1; fi
}

log "soak: warm-up ${SOAK_WARM} s of the mix, then ${SOAK} s judged (json -c16, sse -c8, wrong key -c8)"
soak_mix "$SOAK_WARM" warm
sleep 2
FDS_BEFORE=$(soak_fds)
POOL_BEFORE=$(soak_pool)
RSS_IDLE_BEFORE=$(mem_kb VmRSS "$AIGATE_PID")
soak_metrics > "$SOAK_DIR/metrics-before.txt"
printf 'elapsed_s\trss_kb\tfds\n' > "$SOAK_DIR/samples.tsv"
SOAK_T0=$(date -u '+%Y-%m-%d %H:%M UTC')
soak_mix "$SOAK" load
kill -0 "$AIGATE_PID" 2>/dev/null || { log "aigate died during the soak"; SOAK_RC=1; }
printf '%s\t%d\t%d\n' end "$(mem_kb VmRSS "$AIGATE_PID")" "$(soak_fds)" >> "$SOAK_DIR/samples.tsv"
sleep 2
FDS_AFTER=$(soak_fds)
POOL_AFTER=$(soak_pool)
RSS_IDLE_AFTER=$(mem_kb VmRSS "$AIGATE_PID")
soak_metrics > "$SOAK_DIR/metrics-after.txt"

# --- what wrk saw ------------------------------------------------------------------------------
WRK_TABLE="$SOAK_DIR/wrk.md"
{
  echo "| Traffic | Connections | Requests | Requests/s | p50 ms | p99 ms | max ms | Socket errors | Expected status | Other statuses |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
} > "$WRK_TABLE"
declare -A WRK_OK=()
for entry in "${SOAK_MIX[@]}"; do
  read -r name conns mode stream want <<< "$entry"
  f="$SOAK_DIR/load-$name.txt"
  line=$(grep '^BENCH ' "$f" || true)
  if [[ -z $line ]]; then
    soak_check 0 "$name: no result from wrk ($(tail -n 2 "$f" | tr '\n' ' '))"
    WRK_OK[$name]=0
    continue
  fi
  ok=$(awk -v w="$want" '$1 == "BENCH_STATUS" && $2 == w { n += $3 } END { print n + 0 }' "$f")
  WRK_OK[$name]=$ok
  read -r req errs other p50 p99 max rps < <(awk -v ok="$ok" '$1 == "BENCH" {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      d = v["duration_us"] / 1e6
      printf "%d %d %d %.2f %.2f %.1f %.0f\n", v["requests"], v["connect"] + v["read"] + v["write"] + v["timeout"],
        v["requests"] - ok, v["p50_us"] / 1000, v["p99_us"] / 1000, v["max_us"] / 1000, (d > 0) ? v["requests"] / d : 0 }' "$f")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s %s | %s |\n' \
    "$name" "$conns" "$req" "$rps" "$p50" "$p99" "$max" "$errs" "$ok ×" "$want" "$other" >> "$WRK_TABLE"
  soak_check $((req > 0 && errs == 0 && other == 0)) \
    "$name: $req requests, $errs socket errors, $other with a status other than $want"
done

# --- memory and descriptors ----------------------------------------------------------------------
RSS_FIRST=$(awk -F'\t' 'NR == 2 { print $2 }' "$SOAK_DIR/samples.tsv")
RSS_LAST=$(awk -F'\t' '$1 == "end" { print $2 }' "$SOAK_DIR/samples.tsv")
RSS_MAX=$(awk -F'\t' 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "$SOAK_DIR/samples.tsv")
FDS_MAX=$(awk -F'\t' 'NR > 1 && $3 > m { m = $3 } END { print m + 0 }' "$SOAK_DIR/samples.tsv")
RSS_GROWTH=$(awk -v a="${RSS_FIRST:-0}" -v b="${RSS_LAST:-0}" 'BEGIN { if (a > 0) printf "%.1f", (b - a) * 100 / a; else print "nan" }')
soak_check "$(awk -v g="$RSS_GROWTH" 'BEGIN { print (g != "nan" && g < 10) ? 1 : 0 }')" \
  "RSS from $((RSS_FIRST / 1024)) MB at the start of the load to $((RSS_LAST / 1024)) MB at its end: ${RSS_GROWTH}% (limit 10%; max $((RSS_MAX / 1024)) MB)"
soak_check $((FDS_AFTER - POOL_AFTER <= FDS_BEFORE - POOL_BEFORE && POOL_AFTER <= SOAK_CONNS)) \
  "open descriptors at idle: $FDS_BEFORE before the load, $FDS_AFTER after (max $FDS_MAX during); of them upstream keep-alive connections: $POOL_BEFORE before, $POOL_AFTER after (at most $SOAK_CONNS); all others: $((FDS_BEFORE - POOL_BEFORE)) before, $((FDS_AFTER - POOL_AFTER)) after"

# --- aigate's counters against wrk ---------------------------------------------------------------
soak_codes "$SOAK_DIR/metrics-before.txt" > "$SOAK_DIR/codes-before.txt"
soak_codes "$SOAK_DIR/metrics-after.txt" > "$SOAK_DIR/codes-after.txt"
GW_200=$(($(soak_code "$SOAK_DIR/codes-after.txt" 200) - $(soak_code "$SOAK_DIR/codes-before.txt" 200)))
GW_401=$(($(soak_code "$SOAK_DIR/codes-after.txt" 401) - $(soak_code "$SOAK_DIR/codes-before.txt" 401)))
GW_ALL=$(($(awk '{ n += $2 } END { print n + 0 }' "$SOAK_DIR/codes-after.txt") - $(awk '{ n += $2 } END { print n + 0 }' "$SOAK_DIR/codes-before.txt")))
GW_499=$(($(soak_code "$SOAK_DIR/codes-after.txt" 499) - $(soak_code "$SOAK_DIR/codes-before.txt" 499)))
GW_OTHER=$((GW_ALL - GW_200 - GW_401 - GW_499))
WRK_200=$((WRK_OK[json] + WRK_OK[sse]))
WRK_401=${WRK_OK[reject]}
soak_check $((GW_200 >= WRK_200 && GW_200 - WRK_200 <= SOAK_CONNS)) \
  "aigate_http_requests_total{code=\"200\"} rose by $GW_200; wrk received $WRK_200 (aigate may count up to $SOAK_CONNS more: requests wrk cut off)"
soak_check $((GW_401 >= WRK_401 && GW_401 - WRK_401 <= 8)) \
  "aigate_http_requests_total{code=\"401\"} rose by $GW_401; wrk received $WRK_401"
soak_check $((GW_OTHER == 0 && GW_499 <= SOAK_CONNS)) \
  "other codes counted by aigate: $GW_499 × 499 (clients gone, at most $SOAK_CONNS), $GW_OTHER others"
TOK_J=$(fixture_tokens "$BENCH/fixtures/response.json")
TOK_S=$(fixture_tokens "$BENCH/fixtures/stream.sse")
GW_TOK=$(($(soak_tokens "$SOAK_DIR/metrics-after.txt") - $(soak_tokens "$SOAK_DIR/metrics-before.txt")))
TOK_MIN=$((WRK_OK[json] * TOK_J + WRK_OK[sse] * TOK_S))
TOK_MAX=$((TOK_MIN + 16 * TOK_J + 8 * TOK_S))
soak_check $((GW_TOK >= TOK_MIN && GW_TOK <= TOK_MAX)) \
  "aigate_llm_tokens_total{token_type=\"total\"} rose by $GW_TOK; wrk's 200s carried $TOK_MIN ($TOK_J per JSON answer, $TOK_S per stream; at most $TOK_MAX with cut-off requests)"
PANICS=$(grep -ci 'panic' "$OUT/aigate.out" || true)
soak_check $((PANICS == 0)) "panics in aigate's output: $PANICS"

# --- report --------------------------------------------------------------------------------------
SAMPLES_MD="$SOAK_DIR/samples.md"
{
  echo "| Elapsed s | RSS MB | Open fds |"
  echo "|--:|--:|--:|"
  # at most ~20 rows: every k-th sample, plus the last
  n=$(($(wc -l < "$SOAK_DIR/samples.tsv") - 1))
  k=$(((n + 19) / 20)); ((k < 1)) && k=1
  awk -F'\t' -v k="$k" 'NR > 1 && ((NR - 2) % k == 0 || $1 == "end") { printf "| %s | %.1f | %d |\n", $1, $2 / 1024, $3 }' "$SOAK_DIR/samples.tsv"
} > "$SAMPLES_MD"
{
  echo "# aigate soak test"
  echo
  if [[ $SMOKE == 1 ]]; then echo "**Short run** (CI): checks the harness and catches gross leaks; see benches/SOAK.md for a long run."; echo; fi
  echo "Command: \`$CMDLINE\`, started $SOAK_T0; $("$AIGATE_BIN" --version 2>/dev/null || echo unknown), git $GIT_AT_START."
  echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), nproc $(nproc), shared by wrk, aigate and the upstream (nginx, TLS)."
  echo
  echo "Load: ${SOAK} s judged after ${SOAK_WARM} s of warm-up, three wrk processes at once against aigate"
  echo "(1,000 consumers, key-auth, ai-proxy-advanced to a local TLS upstream, metrics and access log on):"
  echo "JSON POSTs with valid keys (-c16), SSE streams with valid keys (-c8), wrong keys (-c8)."
  echo
  echo "## Checks"
  echo
  echo '```'
  cat "$CHECKS"
  echo '```'
  echo
  echo "## Traffic"
  echo
  cat "$WRK_TABLE"
  echo
  echo "## aigate's memory and descriptors during the load"
  echo
  echo "Idle before: RSS $((RSS_IDLE_BEFORE / 1024)) MB, $FDS_BEFORE fds; idle after: RSS $((RSS_IDLE_AFTER / 1024)) MB, $FDS_AFTER fds."
  echo
  cat "$SAMPLES_MD"
  echo
  echo "Raw data: \`${SOAK_DIR#"$ROOT"/}/\` (wrk outputs, samples.tsv, metrics before and after)."
} > "$SOAK_REPORT"
echo
cat "$CHECKS"
log "soak report written to $SOAK_REPORT"
