#!/usr/bin/env bash
# benches/load.sh — side-by-side load test of aigate against nginx doing the same gateway job,
# with the upstream measured directly as the ceiling. Loopback only (127.0.0.1), one run.
#
# What it does, in order (everything lives in the work dir, default benches/out/, git-ignored):
#   1. makes a test CA and a server certificate for api.openai.com / localhost / 127.0.0.1 (openssl);
#   2. starts the upstream: nginx (2 workers) over TLS, answering any POST with a fixed ~1 KB
#      Responses-API JSON body (benches/fixtures/response.json), or with a 20-event SSE stream
#      (benches/fixtures/stream.sse, text/event-stream) when the request has `x-bench-stream: 1`;
#      the same server also listens on plain HTTP, which is the "direct" ceiling wrk measures;
#   3. writes a decK config (1,000 consumers with random keys, key-auth, ai-proxy-advanced to
#      api.openai.com) and an aigate settings file (threads = nginx workers, access log to a file,
#      status/metrics listener on), pointing api.openai.com:443 at the local upstream
#      (upstream_resolve + tls_trusted_ca), and starts aigate;
#   4. starts nginx as the reference gateway doing the same job as far as nginx can (a `map` over the
#      same 1,000 keys, 401 JSON otherwise, provider key injected, TLS to the upstream with SNI and
#      verification, upstream keepalive, no response buffering). nginx cannot rewrite the JSON body;
#      aigate does (adds model and options), so aigate does more work per request;
#   5. drives each system with wrk (benches/lua/responses.lua), same threads/connections/duration,
#      systems alternating, --reps repetitions each, medians reported. Scenarios:
#        json    a. authenticated JSON POST (~200-byte body, keys rotated over the 1,000)
#        sse     b. authenticated SSE stream ("stream":true + x-bench-stream: 1), plus sequential
#                   curl requests measuring time to first and last byte
#        reject  c. wrong key (only 401 is expected; statuses counted by a Lua response() hook)
#        big     d. 100 KB request bodies
#        conns   e. 1,000 concurrent keep-alive connections (RSS after load and after idle too)
#        rlsync      f. as a, through a second aigate with rate-limiting and ai-rate-limiting-advanced
#                       on a local redis-server (limits never reached), synchronous (one Lua script
#                       per plugin per request), against the plain aigate of scenario a
#        rlperiodic  g. the same with sync_rate 1 s (counted locally, synced in the background)
#   6. per run: requests/s, p50/p99/max latency, socket errors and unexpected statuses, CPU time
#      per request of the system's own processes (/proc/<pid>/stat utime+stime, all processes),
#      peak RSS (VmHWM summed over the processes, reset before each run);
#   7. prints a markdown table and writes benches/RESULTS.md (machine, versions, command line).
#
# Usage:
#   benches/load.sh [--duration S] [--reps N] [--threads N] [--connections N] [--warmup S]
#                   [--scenarios "json sse reject big conns rlsync rlperiodic"] [--aigate PATH] [--out DIR]
#                   [--workers N] [--keys N] [--ttfb-requests N] [--port-base P] [--status-hook]
#                   [--smoke] [--soak S] [--streams "N ..."] [--stream-seconds S] [--stream-reps N]
#                   [--stream-ramp S] [--stream-idle S] [--streams-bin PATH] [--aigate-setting 'name: value']
#   --smoke   1 rep of 1 s per run, no warm-up: checks that the harness works (CI). Writes
#             RESULTS.md into the work dir, never over benches/RESULTS.md.
#   --aigate  the gateway binary (default target/release/aigate; --smoke falls back to
#             target/debug/aigate when there is no release build).
#   --status-hook  count every status with the Lua hook in all scenarios (default: only reject).
#   --aigate-setting 'name: value'  a line added to aigate's generated settings (repeatable), e.g.
#             'client_read_buffer_size: 0' to compare a setting's cost.
#   --soak S  instead of the scenarios: S seconds of mixed traffic against aigate alone (JSON, SSE
#             and wrong-key requests from three wrk processes at once), sampling its RSS and open
#             file descriptors every 5 s; checks zero unexpected statuses or socket errors, RSS
#             growth under 10% and no descriptor growth, and that aigate's own request counters
#             agree with what wrk received. Writes benches/SOAK.md (with --smoke: the work dir's)
#             and exits 1 when a check fails.
#   --streams "2000 4000 8000"  instead of the scenarios: for each N, N concurrent long SSE streams
#             (~9 KB each, trickled over --stream-seconds, default 20, by a TLS upstream that can:
#             the sse_streams example, --streams-bin, default target/release/examples/sse_streams)
#             through aigate and through nginx, alternately (--stream-reps each, default 1), each
#             gateway started afresh per run: errors, peak memory and CPU per stream, memory given
#             back --stream-idle s after (default 10), aigate's per-consumer token counters against
#             what the streams carried. Writes benches/STREAMS.md (with --smoke: the work dir's) and
#             exits 1 when a stream failed or a count disagrees. See benches/streams.inc.sh.
# Ports used (all 127.0.0.1): P (aigate), P+100 (aigate status), P+80 (nginx gateway),
# P+443 (upstream TLS), P+81 (upstream plain HTTP), P+444 (streams upstream, --streams only);
# for f/g: P+1, P+2 (the aigates with limits), P+101, P+102 (their status), P+379 (redis-server);
# P = --port-base, default 24000
# (keep P and P+443 below the kernel's ephemeral range, usually 32768+, or a client socket may hold them).
#
# Needs: bash, openssl, nginx, wrk, curl, awk, pgrep, ss, timeout (and redis-server for f/g). Every process it starts is
# stopped on exit; every wrk/curl run is bounded by `timeout`/--max-time.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/benches"
CMDLINE="benches/load.sh"
for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done

DURATION=10
REPS=3
THREADS=2
CONNECTIONS=64
BIG_CONNECTIONS=1000
WARMUP=2
WORKERS=2
NKEYS=1000
TTFB_N=20
IDLE_WAIT=5
WRK_TIMEOUT=5
PORT_BASE=24000
SCENARIOS="json sse reject big conns rlsync rlperiodic"
STATUS_HOOK=0
SMOKE=0
SOAK=0
AIGATE_BIN=""
OUT=""
STREAMS=""
STREAM_SECONDS=""
AIGATE_SETTINGS=()   # --aigate-setting: extra lines of aigate.yaml
STREAM_REPS=1
STREAM_RAMP=""
STREAM_IDLE=""
STREAMS_BIN=""

usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { printf 'load.sh: %s\n' "$*" >&2; exit 2; }
need_num() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 needs a whole number, got '$2'"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) need_num "$1" "${2:-}"; DURATION=$2; shift 2 ;;
    --reps) need_num "$1" "${2:-}"; REPS=$2; shift 2 ;;
    --threads) need_num "$1" "${2:-}"; THREADS=$2; shift 2 ;;
    --connections) need_num "$1" "${2:-}"; CONNECTIONS=$2; shift 2 ;;
    --big-connections) need_num "$1" "${2:-}"; BIG_CONNECTIONS=$2; shift 2 ;;
    --warmup) need_num "$1" "${2:-}"; WARMUP=$2; shift 2 ;;
    --workers) need_num "$1" "${2:-}"; WORKERS=$2; shift 2 ;;
    --keys) need_num "$1" "${2:-}"; NKEYS=$2; shift 2 ;;
    --ttfb-requests) need_num "$1" "${2:-}"; TTFB_N=$2; shift 2 ;;
    --port-base) need_num "$1" "${2:-}"; PORT_BASE=$2; shift 2 ;;
    --scenarios) SCENARIOS=${2:-}; shift 2 ;;
    --aigate) AIGATE_BIN=${2:-}; shift 2 ;;
    --out) OUT=${2:-}; shift 2 ;;
    --status-hook) STATUS_HOOK=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --soak) need_num "$1" "${2:-}"; SOAK=$2; shift 2 ;;
    --streams) STREAMS=${2:-}; shift 2
      for n in $STREAMS; do need_num --streams "$n"; done
      [[ -n $STREAMS ]] || die "--streams needs a list of stream counts" ;;
    --stream-seconds) need_num "$1" "${2:-}"; STREAM_SECONDS=$2; shift 2 ;;
    --stream-reps) need_num "$1" "${2:-}"; STREAM_REPS=$2; shift 2 ;;
    --stream-ramp) need_num "$1" "${2:-}"; STREAM_RAMP=$2; shift 2 ;;
    --stream-idle) need_num "$1" "${2:-}"; STREAM_IDLE=$2; shift 2 ;;
    --streams-bin) STREAMS_BIN=${2:-}; shift 2 ;;
    --aigate-setting) [[ ${2:-} == *:* ]] || die "--aigate-setting needs 'name: value'"
      AIGATE_SETTINGS+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

if [[ $SMOKE == 1 ]]; then
  DURATION=1; REPS=1; WARMUP=0; TTFB_N=3; IDLE_WAIT=1
  STREAM_SECONDS=${STREAM_SECONDS:-3}; STREAM_IDLE=${STREAM_IDLE:-1}
fi
STREAM_SECONDS=${STREAM_SECONDS:-20}
STREAM_IDLE=${STREAM_IDLE:-10}
[[ $STREAM_SECONDS -ge 1 && $STREAM_REPS -ge 1 ]] || die "--stream-seconds and --stream-reps must be >= 1"
[[ $DURATION -ge 1 && $REPS -ge 1 && $THREADS -ge 1 && $WORKERS -ge 1 && $NKEYS -ge 1 ]] || die "durations, reps, threads, workers and keys must be >= 1"
[[ $CONNECTIONS -ge $THREADS && $BIG_CONNECTIONS -ge $THREADS ]] || die "connections must be >= threads"
for s in $SCENARIOS; do
  case "$s" in json|sse|reject|big|conns|rlsync|rlperiodic) ;; *) die "unknown scenario '$s' (json sse reject big conns rlsync rlperiodic)" ;; esac
done

OUT="${OUT:-$BENCH/out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [[ -z "$AIGATE_BIN" ]]; then
  AIGATE_BIN="$ROOT/target/release/aigate"
  if [[ $SMOKE == 1 && ! -x "$AIGATE_BIN" ]]; then AIGATE_BIN="$ROOT/target/debug/aigate"; fi
fi
[[ -x "$AIGATE_BIN" ]] || die "no aigate binary at $AIGATE_BIN (run: cargo build --release, or pass --aigate PATH)"
AIGATE_BIN="$(cd "$(dirname "$AIGATE_BIN")" && pwd)/$(basename "$AIGATE_BIN")"
if [[ $SMOKE == 1 ]]; then RESULTS="$OUT/RESULTS.md"; else RESULTS="$BENCH/RESULTS.md"; fi

if [[ -n $STREAMS ]]; then
  if [[ -z $STREAMS_BIN ]]; then
    STREAMS_BIN="$ROOT/target/release/examples/sse_streams"
    if [[ $SMOKE == 1 && ! -x "$STREAMS_BIN" ]]; then STREAMS_BIN="$ROOT/target/debug/examples/sse_streams"; fi
  fi
  [[ -x "$STREAMS_BIN" ]] || die "no sse_streams binary at $STREAMS_BIN (run: cargo build --release --example sse_streams, or pass --streams-bin PATH)"
fi

for tool in openssl nginx wrk curl awk pgrep ss timeout getconf; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
WITH_LIMITS=0
[[ $SOAK -eq 0 && -z $STREAMS && ( " $SCENARIOS " == *" rlsync "* || " $SCENARIOS " == *" rlperiodic "* ) ]] && WITH_LIMITS=1
if [[ $WITH_LIMITS == 1 ]]; then
  command -v redis-server >/dev/null || die "'redis-server' is not installed (Debian package redis-server), needed by scenarios rlsync/rlperiodic"
fi

P_AIGATE=$PORT_BASE
P_STATUS=$((PORT_BASE + 100))
P_NGINX=$((PORT_BASE + 80))
P_UP_TLS=$((PORT_BASE + 443))
P_UP_HTTP=$((PORT_BASE + 81))
P_STREAMS_UP=$((PORT_BASE + 444))
# The gateways' upstream: nginx's fixed answers, or the streams upstream with --streams.
P_GATEWAYS_UP=$P_UP_TLS
[[ -n $STREAMS ]] && P_GATEWAYS_UP=$P_STREAMS_UP
P_SYNC=$((PORT_BASE + 1))
P_PERIODIC=$((PORT_BASE + 2))
P_SYNC_STATUS=$((PORT_BASE + 101))
P_PERIODIC_STATUS=$((PORT_BASE + 102))
P_REDIS=$((PORT_BASE + 379))
CLK_TCK=$(getconf CLK_TCK)
LUA="$BENCH/lua/responses.lua"
PROVIDER_KEY="sk-bench-$(openssl rand -hex 12)"

log() { printf '[load.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
GIT_AT_START=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- file descriptors: 1,000 client connections + as many upstream ones, per system -------------
# (--streams: each stream holds a client and an upstream connection in the gateway)
want_fd=16384
for n in $STREAMS; do ((2 * n + 1024 > want_fd)) && want_fd=$((2 * n + 1024)); done
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $want_fd ]]; then
  hard=$(ulimit -Hn)
  # root may raise the hard limit too
  if [[ $hard != unlimited && $hard -lt $want_fd ]]; then ulimit -Hn "$want_fd" 2>/dev/null && hard=$want_fd; fi
  if [[ $hard == unlimited || $hard -ge $want_fd ]]; then ulimit -n $want_fd; else ulimit -n "$hard"; fi
fi
NOFILE=$(ulimit -n); [[ $NOFILE == unlimited ]] && NOFILE=65536
[[ $NOFILE -ge $((BIG_CONNECTIONS * 3)) ]] \
  || log "warning: ulimit -n is $(ulimit -n); scenario conns may run out of file descriptors"

# --- process bookkeeping and cleanup ------------------------------------------------------------
STARTED=()        # "pid:signal" of every process started, stopped in reverse order on exit
EXTRA_PIDS=()     # nginx workers, killed if their master left them behind
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  local i entry pid sig n
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    entry=${STARTED[$i]}; pid=${entry%%:*}; sig=${entry##*:}
    kill -0 "$pid" 2>/dev/null || continue
    kill -"$sig" "$pid" 2>/dev/null
    for ((n = 0; n < 50; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid did not stop on SIG$sig: SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
    wait "$pid" 2>/dev/null
  done
  for pid in "${EXTRA_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# busy: a listener or any live socket using the port locally (TIME-WAIT is no obstacle)
port_busy() { [[ -n "$(ss -Htan exclude time-wait "( sport = :$1 )" 2>/dev/null)" ]]; }
LIMIT_PORTS=""
[[ $WITH_LIMITS == 1 ]] && LIMIT_PORTS="$P_SYNC $P_PERIODIC $P_SYNC_STATUS $P_PERIODIC_STATUS $P_REDIS"
for p in $P_AIGATE $P_STATUS $P_NGINX $P_UP_TLS $P_UP_HTTP $([[ -n $STREAMS ]] && echo "$P_STREAMS_UP") $LIMIT_PORTS; do
  port_busy "$p" && die "port $p on this host is in use (choose another --port-base)"
done

# wait_http URL SECONDS PID: wait until URL answers 2xx, fail if PID dies or time runs out
wait_http() {
  local url=$1 secs=$2 pid=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -fs -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# --- 1. work dir, certificates, keys, bodies ----------------------------------------------------
log "work dir $OUT; aigate binary $AIGATE_BIN"
rm -rf "${OUT:?}/runs" "${OUT:?}/tmp" "${OUT:?}/www" "${OUT:?}/bin"
rm -f "$OUT"/*.log "$OUT"/*.out "$OUT"/*.tsv "$OUT"/*.pid "$OUT"/*.sock
mkdir -p "$OUT/runs" "$OUT/tmp" "$OUT/www" "$OUT/bin"
# Run a copy: a concurrent `cargo build` may replace the binary while the bench runs.
AIGATE_SRC=$AIGATE_BIN
AIGATE_BUILT=$(date -u -r "$AIGATE_SRC" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo unknown)
cp "$AIGATE_SRC" "$OUT/bin/aigate"
AIGATE_BIN="$OUT/bin/aigate"
AIGATE_SHA=$(sha256sum "$AIGATE_BIN" | cut -c1-12)

log "generating a test CA and a server certificate (openssl)"
(
  cd "$OUT"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -keyout ca.key -out ca.pem -subj "/CN=aigate bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout server.key -out server.csr -subj "/CN=api.openai.com" 2>/dev/null
  cat > server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:api.openai.com,DNS:localhost,IP:127.0.0.1
EOF
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 \
    -extfile server.ext -out server.pem 2>/dev/null
  openssl verify -CAfile ca.pem server.pem >/dev/null
)

KEYS_FILE="$OUT/keys.txt"
openssl rand -hex $((NKEYS * 8)) | fold -w 16 | head -n "$NKEYS" \
  | awk '{ printf "key-%d-%s\n", NR, $0 }' > "$KEYS_FILE"
[[ $(wc -l < "$KEYS_FILE") -eq $NKEYS ]] || die "could not generate $NKEYS keys"
GOOD_KEY=$(sed -n '1p' "$KEYS_FILE")

cp "$BENCH/fixtures/response.json" "$BENCH/fixtures/stream.sse" "$OUT/www/"

# Request bodies for curl checks (wrk builds its own, same shape, in the Lua script).
BODY_JSON='{"model":"gpt-4o","instructions":"Answer in one short sentence.","max_output_tokens":256,"temperature":0.7,"user":"bench-user","stream":false,"input":"How many requests per second can a gateway on two cores proxy?"}'
BODY_SSE=${BODY_JSON/\"stream\":false/\"stream\":true}
printf '%s' "$BODY_JSON" > "$OUT/body.json"
printf '%s' "$BODY_SSE" > "$OUT/body-sse.json"
{
  printf '%s' '{"model":"gpt-4o","stream":false,"input":"'
  head -c 102300 /dev/zero | tr '\0' 'x'
  printf '%s' '"}'
} > "$OUT/body-100k.json"

USER_LINE=""
[[ $EUID -eq 0 ]] && USER_LINE="user root root;"
TEMP_PATHS="client_body_temp_path $OUT/tmp/client; proxy_temp_path $OUT/tmp/proxy; fastcgi_temp_path $OUT/tmp/fastcgi; uwsgi_temp_path $OUT/tmp/uwsgi; scgi_temp_path $OUT/tmp/scgi;"

# --- 2. the upstream: fixed Responses-API answers over TLS (and plain HTTP for "direct") --------
cat > "$OUT/upstream.conf" <<EOF
# generated by benches/load.sh: a fast stand-in for api.openai.com (POST /v1/responses)
$USER_LINE
worker_processes $WORKERS;
daemon off;
pid $OUT/upstream.pid;
error_log $OUT/upstream-error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections 16384; multi_accept on; }
http {
    $TEMP_PATHS
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_max_body_size 16m;
    client_body_buffer_size 128k;
    open_file_cache max=16 inactive=3600s;
    open_file_cache_valid 3600s;
    etag off;
    # The harness's probe requests (header x-bench-probe) are proxied once more to this server, so
    # that the body is read in full, and logged: they show what the gateways forwarded (provider
    # key, framing, body). Load requests carry no probe header and are not logged.
    map \$http_x_bench_probe \$probe_body { default 0; "1" 1; }
    map \$http_x_bench_probe \$probe_len { default 0; "big" 1; }
    log_format probe_body escape=json '\$status len=\$request_length cl=\$http_content_length te=\$http_transfer_encoding host=\$host auth="\$http_authorization" apikey="\$http_apikey" body=\$request_body';
    log_format probe_len '\$status len=\$request_length cl=\$http_content_length te=\$http_transfer_encoding host=\$host auth="\$http_authorization" apikey="\$http_apikey" body=(not logged)';
    access_log off;
    map \$http_x_bench_stream \$bench_file { default /response.json; "1" /stream.sse; }
    server {
        listen 127.0.0.1:$P_UP_TLS ssl backlog=4096;
        listen 127.0.0.1:$P_UP_HTTP backlog=4096;
        ssl_certificate $OUT/server.pem;
        ssl_certificate_key $OUT/server.key;
        ssl_session_cache shared:BENCHUP:4m;
        root $OUT/www;
        # Any method, any path: a fixed body. The static module refuses POST with 405, so the
        # answer is re-served as GET through error_page (the request body is discarded).
        location / {
            if (\$http_x_bench_probe) { rewrite ^ /_probe last; }
            rewrite ^ \$bench_file last;
        }
        location = /_probe {
            internal;
            proxy_pass http://127.0.0.1:$P_UP_HTTP/v1/responses;
            proxy_set_header x-bench-probe "";
            proxy_set_header Host \$host;
            access_log $OUT/upstream-probe.log probe_body if=\$probe_body;
            access_log $OUT/upstream-probe.log probe_len if=\$probe_len;
        }
        location = /response.json { internal; error_page 405 =200 \$uri; types {} default_type application/json; }
        location = /stream.sse { internal; error_page 405 =200 \$uri; types {} default_type text/event-stream; add_header Cache-Control no-cache; }
    }
}
EOF

# --- 3. aigate: decK config with the same keys, settings ----------------------------------------
{
  cat <<EOF
# generated by benches/load.sh
_format_version: "3.0"
services:
- name: bench-service
  url: http://127.0.0.1:$P_UP_HTTP/
routes:
- name: bench-route
  paths:
  - "/anything"
  service:
    name: bench-service
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - route_type: llm/v1/responses
      auth:
        header_name: Authorization
        header_value: Bearer $PROVIDER_KEY
      model:
        provider: openai
        name: gpt-4o
        options:
          max_tokens: 512
          temperature: 1.0
- name: key-auth
  service: bench-service
  config:
    key_names: [apikey]
consumers:
EOF
  awk '{ printf "- username: bench-consumer-%04d\n  keyauth_credentials:\n  - key: %s\n", NR, $0 }' "$KEYS_FILE"
} > "$OUT/deck.yaml"

cat > "$OUT/aigate.yaml" <<EOF
# generated by benches/load.sh
proxy_listen: 127.0.0.1:$P_AIGATE
status_listen: 127.0.0.1:$P_STATUS
declarative_config:
  - deck.yaml
threads: $WORKERS
tls_trusted_ca: ca.pem
upstream_resolve:
  "api.openai.com:443": "127.0.0.1:$P_GATEWAYS_UP"
max_request_body_size: 8m
upstream_keepalive_pool_size: 512
upstream_read_timeout: 120000
proxy_access_log: $OUT/aigate-access.log
log_level: warn
pid_file: $OUT/aigate.pid
upgrade_sock: $OUT/aigate_upgrade.sock
grace_period: 1
shutdown_timeout: 2
EOF
for line in "${AIGATE_SETTINGS[@]}"; do echo "$line" >> "$OUT/aigate.yaml"; done

# --- 3b. for f/g: the same aigate with rate-limiting and ai-rate-limiting-advanced on Redis, limits
# never reached (every request checks and counts; per consumer, 1,000 consumers) ----------------
limits_fragment() { # limits_fragment SYNC-RATE-RL SYNC-RATE-AI
  cat <<EOF
# generated by benches/load.sh: limits high enough never to trigger
_format_version: "3.0"
plugins:
- name: rate-limiting
  config:
    second: 1000000
    minute: 60000000
    policy: redis
    sync_rate: $1
    redis: {host: 127.0.0.1, port: $P_REDIS, timeout: 1000}
- name: ai-rate-limiting-advanced
  config:
    llm_providers: [{name: openai, limit: [1000000000000, 1000000000000], window_size: [60, 3600]}]
    strategy: redis
    sync_rate: $2
    redis: {host: 127.0.0.1, port: $P_REDIS, read_timeout: 1000}
EOF
}
limits_settings() { # limits_settings NAME PORT STATUS-PORT
  sed -e "s/^proxy_listen: .*/proxy_listen: 127.0.0.1:$2/" -e "s/^status_listen: .*/status_listen: 127.0.0.1:$3/" \
      -e "s|^  - deck.yaml|  - deck.yaml\n  - limits-$1.yaml|" -e "s|aigate-access.log|aigate-$1-access.log|" \
      -e "s|aigate.pid|aigate-$1.pid|" -e "s|aigate_upgrade.sock|aigate-$1_upgrade.sock|" "$OUT/aigate.yaml"
}
if [[ $WITH_LIMITS == 1 ]]; then
  limits_fragment -1 0 > "$OUT/limits-sync.yaml"
  limits_fragment 1 1 > "$OUT/limits-periodic.yaml"
  limits_settings sync "$P_SYNC" "$P_SYNC_STATUS" > "$OUT/aigate-sync.yaml"
  limits_settings periodic "$P_PERIODIC" "$P_PERIODIC_STATUS" > "$OUT/aigate-periodic.yaml"
fi

# --- 4. nginx as the reference gateway -----------------------------------------------------------
{
  cat <<EOF
# generated by benches/load.sh: nginx doing aigate's job as far as nginx can
# (key check over the same keys, provider key injected, TLS to the provider). It does NOT
# rewrite the JSON body (no model/options injection, no usage accounting).
$USER_LINE
worker_processes $WORKERS;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $NOFILE; multi_accept on; }
http {
    $TEMP_PATHS
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_max_body_size 8m;          # = aigate max_request_body_size
    client_body_buffer_size 128k;     # 100 KB bodies stay in memory, as in aigate
    # same buffering as aigate's access log (64 KB buffer)
    access_log $OUT/nginx-access.log combined buffer=64k flush=1s;
    map_hash_max_size 8192;
    map_hash_bucket_size 128;
    map \$http_apikey \$consumer {
        default "";
EOF
  awk '{ printf "        \"%s\" \"bench-consumer-%04d\";\n", $0, NR }' "$KEYS_FILE"
  cat <<EOF
    }
    upstream openai {
        server 127.0.0.1:$P_GATEWAYS_UP;
        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
        location /anything {
            default_type application/json;    # only for the local 401 below
            if (\$consumer = "") {
                add_header WWW-Authenticate 'Key realm="kong"' always;
                return 401 '{"message":"Unauthorized"}';
            }
            proxy_pass https://openai/v1/responses;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host api.openai.com;
            proxy_set_header Authorization "Bearer $PROVIDER_KEY";
            proxy_set_header apikey "";
            proxy_set_header Accept-Encoding identity;   # as aigate does before a provider
            proxy_ssl_server_name on;
            proxy_ssl_name api.openai.com;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $OUT/ca.pem;
            proxy_ssl_session_reuse on;
            proxy_buffering off;
            proxy_read_timeout 120s;
        }
    }
}
EOF
} > "$OUT/nginx.conf"

# --- start everything -----------------------------------------------------------------------------
nginx -t -p "$OUT" -e "$OUT/upstream-error.log" -c "$OUT/upstream.conf" > "$OUT/upstream-test.out" 2>&1 \
  || { cat "$OUT/upstream-test.out" >&2; die "upstream nginx config is invalid"; }
nginx -t -p "$OUT" -e "$OUT/nginx-error.log" -c "$OUT/nginx.conf" > "$OUT/nginx-test.out" 2>&1 \
  || { cat "$OUT/nginx-test.out" >&2; die "gateway nginx config is invalid"; }
"$AIGATE_BIN" check --config "$OUT/aigate.yaml" > "$OUT/aigate-check.out" 2>&1 \
  || { cat "$OUT/aigate-check.out" >&2; die "aigate check failed"; }
log "aigate check: $(tail -n1 "$OUT/aigate-check.out")"

log "starting the upstream (nginx, $WORKERS workers, TLS on :$P_UP_TLS, plain on :$P_UP_HTTP)"
nginx -p "$OUT" -e "$OUT/upstream-error.log" -c "$OUT/upstream.conf" > "$OUT/upstream.out" 2>&1 &
UP_PID=$!
STARTED+=("$UP_PID:TERM")
wait_http "http://127.0.0.1:$P_UP_HTTP/v1/responses" 10 "$UP_PID" || die "the upstream did not start (see $OUT/upstream-error.log)"

log "starting aigate ($WORKERS threads) on :$P_AIGATE"
"$AIGATE_BIN" run --config "$OUT/aigate.yaml" > "$OUT/aigate.out" 2>&1 &
AIGATE_PID=$!
STARTED+=("$AIGATE_PID:INT")
wait_http "http://127.0.0.1:$P_STATUS/status/ready" 30 "$AIGATE_PID" \
  || { tail -n 20 "$OUT/aigate.out" >&2; die "aigate did not become ready"; }

if [[ $WITH_LIMITS == 1 ]]; then
  log "starting redis-server on :$P_REDIS and the aigates with limits on :$P_SYNC (synchronous), :$P_PERIODIC (periodic)"
  redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$OUT" --logfile "$OUT/redis.log" > /dev/null 2>&1 &
  REDIS_PID=$!
  STARTED+=("$REDIS_PID:TERM")
  for mode in sync periodic; do
    "$AIGATE_BIN" check --config "$OUT/aigate-$mode.yaml" > "$OUT/aigate-$mode-check.out" 2>&1 \
      || { cat "$OUT/aigate-$mode-check.out" >&2; die "aigate check failed ($mode)"; }
    "$AIGATE_BIN" run --config "$OUT/aigate-$mode.yaml" > "$OUT/aigate-$mode.out" 2>&1 &
    pid=$!
    STARTED+=("$pid:INT")
    if [[ $mode == sync ]]; then SYNC_PID=$pid; st=$P_SYNC_STATUS; else PERIODIC_PID=$pid; st=$P_PERIODIC_STATUS; fi
    wait_http "http://127.0.0.1:$st/status/ready" 30 "$pid" \
      || { tail -n 20 "$OUT/aigate-$mode.out" >&2; die "aigate ($mode) did not become ready"; }
  done
fi

log "starting nginx as gateway ($WORKERS workers) on :$P_NGINX"
nginx -p "$OUT" -e "$OUT/nginx-error.log" -c "$OUT/nginx.conf" > "$OUT/nginx.out" 2>&1 &
NGX_PID=$!
STARTED+=("$NGX_PID:TERM")
# /anything without a key answers 401: good enough to know it listens
wait_nginx_gateway() {
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$NGX_PID" 2>/dev/null || die "nginx gateway died (see $OUT/nginx-error.log)"
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -X POST "http://127.0.0.1:$P_NGINX/anything" || true) == 401 ]] && break
    sleep 0.1
  done
}
wait_nginx_gateway
sleep 0.3
for m in "$UP_PID" "$NGX_PID"; do
  for w in $(pgrep -P "$m" || true); do EXTRA_PIDS+=("$w"); done
done

# --- per-system helpers ---------------------------------------------------------------------------
SYSTEMS=(direct nginx aigate)
sys_url() {
  case "$1" in
    direct) echo "http://127.0.0.1:$P_UP_HTTP/v1/responses" ;;
    aigate) echo "http://127.0.0.1:$P_AIGATE/anything" ;;
    aigate-sync) echo "http://127.0.0.1:$P_SYNC/anything" ;;
    aigate-periodic) echo "http://127.0.0.1:$P_PERIODIC/anything" ;;
    nginx) echo "http://127.0.0.1:$P_NGINX/anything" ;;
  esac
}
sys_master() {
  case "$1" in
    direct) echo "$UP_PID" ;; aigate) echo "$AIGATE_PID" ;; nginx) echo "$NGX_PID" ;;
    aigate-sync) echo "$SYNC_PID" ;; aigate-periodic) echo "$PERIODIC_PID" ;;
  esac
}
# all processes of a system: the main process and its children (nginx master + workers)
# The aigates with limits count with the Redis server: its work is part of what limits cost.
sys_pids() {
  local m; m=$(sys_master "$1")
  case "$1" in aigate-sync|aigate-periodic) echo "$m" "$REDIS_PID" ;; *) echo "$m" $(pgrep -P "$m" || true) ;; esac
}
# utime+stime in clock ticks, summed (fields 14 and 15 of /proc/<pid>/stat; comm may hold spaces)
cpu_ticks() {
  local pid total=0 t
  for pid in "$@"; do
    t=$(awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
# sum of a /proc/<pid>/status field in kB (VmHWM, VmRSS)
mem_kb() {
  local field=$1 pid total=0 v; shift
  for pid in "$@"; do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
reset_hwm() { local pid; for pid in "$@"; do echo 5 > "/proc/$pid/clear_refs" 2>/dev/null || true; done; }

# scenario parameters: connections mode body-bytes stream
scn_params() {
  case "$1" in
    json) echo "$CONNECTIONS good 200 0" ;;
    sse) echo "$CONNECTIONS good 200 1" ;;
    reject) echo "$CONNECTIONS bad 200 0" ;;
    big) echo "$CONNECTIONS good 102400 0" ;;
    conns) echo "$BIG_CONNECTIONS good 200 0" ;;
    rlsync|rlperiodic) echo "$CONNECTIONS good 200 0" ;;
  esac
}
scn_label() {
  case "$1" in
    json) echo "a. JSON POST, valid key" ;;
    sse) echo "b. SSE stream, 20 events" ;;
    reject) echo "c. wrong key → 401" ;;
    big) echo "d. 100 KB request body" ;;
    conns) echo "e. $BIG_CONNECTIONS keep-alive conns" ;;
    rlsync) echo "f. as a + limits on Redis, synchronous" ;;
    rlperiodic) echo "g. as a + limits on Redis, sync_rate 1 s" ;;
  esac
}
scn_systems() {
  case "$1" in
    reject) echo "nginx aigate" ;;
    rlsync) echo "aigate aigate-sync" ;;
    rlperiodic) echo "aigate aigate-periodic" ;;
    *) echo "direct nginx aigate" ;;
  esac
}

RESULTS_TSV="$OUT/results.tsv"
RSS_TSV="$OUT/conns-rss.tsv"
printf 'scenario\tsystem\trep\trps\tp50_us\tp99_us\tmax_us\terrors\tunexpected\tcpu_us\thwm_kb\trequests\n' > "$RESULTS_TSV"
printf 'system\trep\tfirst_kb\tbefore_kb\tafter_kb\tidle_kb\n' > "$RSS_TSV"
declare -A RSS_FIRST=()   # RSS of each system before its first 1,000-connection load (warm-up included)

# run_wrk SCENARIO SYSTEM REP|warmup SECONDS
run_wrk() {
  local scn=$1 sys=$2 rep=$3 secs=$4 conns mode size stream count=0 url pids t0 t1 hwm file line
  read -r conns mode size stream <<< "$(scn_params "$scn")"
  [[ $scn == reject || $STATUS_HOOK == 1 ]] && count=1
  url=$(sys_url "$sys")
  pids=$(sys_pids "$sys")
  file="$OUT/runs/$scn-$sys-$rep.txt"
  local rss_before=0
  [[ $scn == conns ]] && rss_before=$(mem_kb VmRSS $pids)
  reset_hwm $pids
  t0=$(cpu_ticks $pids)
  local rc=0
  timeout -k 5 $((secs + WRK_TIMEOUT + 30)) \
    wrk -t"$THREADS" -c"$conns" -d"${secs}s" --timeout "${WRK_TIMEOUT}s" --latency \
      -s "$LUA" "$url" -- "$KEYS_FILE" "$mode" "$size" "$stream" "$count" > "$file" 2>&1 || rc=$?
  t1=$(cpu_ticks $pids)
  hwm=$(mem_kb VmHWM $pids)
  [[ $rep == warmup ]] && return 0
  [[ $rc -ne 0 ]] && log "wrk exited with status $rc ($file)"
  line=$(grep '^BENCH ' "$file" || true)
  if [[ -z $line ]]; then
    log "no result from wrk for $scn/$sys/$rep: $(tail -n 3 "$file" | tr '\n' ' ')"
    printf '%s\t%s\t%s\t0\t0\t0\t0\t-1\t-1\t0\t%s\t0\n' "$scn" "$sys" "$rep" "$hwm" >> "$RESULTS_TSV"
    return 0
  fi
  local ok_count
  if [[ $scn == reject ]]; then
    ok_count=$(awk '$1 == "BENCH_STATUS" && $2 == 401 { n += $3 } END { print n + 0 }' "$file")
  else
    ok_count=$(awk '$1 == "BENCH_STATUS" && $2 >= 200 && $2 < 300 { n += $3 } END { print n + 0 }' "$file")
  fi
  awk -v scn="$scn" -v sys="$sys" -v rep="$rep" -v ticks=$((t1 - t0)) -v hz="$CLK_TCK" -v hwm="$hwm" \
      -v count="$count" -v ok="$ok_count" '
    $1 == "BENCH" {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      req = v["requests"]; dur = v["duration_us"] / 1e6
      rps = (dur > 0) ? req / dur : 0
      errors = v["connect"] + v["read"] + v["write"] + v["timeout"]
      unexpected = count ? req - ok : v["status"]
      cpu = (req > 0) ? ticks * 1e6 / hz / req : 0
      printf "%s\t%s\t%s\t%.1f\t%d\t%d\t%d\t%d\t%d\t%.2f\t%d\t%d\n", scn, sys, rep, rps, v["p50_us"], v["p99_us"], v["max_us"], errors, unexpected, cpu, hwm, req
    }' "$file" >> "$RESULTS_TSV"
  log "  $(tail -n 1 "$RESULTS_TSV" | awk -F'\t' '{ printf "%-6s %-6s rep %s: %8.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %s  unexpected %s  cpu %s us/req  hwm %.1f MB", $1, $2, $3, $4, $5/1000, $6/1000, $8, $9, $10, $11/1024 }')"
  if [[ $scn == conns ]]; then
    local after idle
    after=$(mem_kb VmRSS $pids)
    sleep "$IDLE_WAIT"
    idle=$(mem_kb VmRSS $pids)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$rep" "${RSS_FIRST[$sys]:-$rss_before}" "$rss_before" "$after" "$idle" >> "$RSS_TSV"
  fi
}

# --- long streams: N concurrent streams per run against aigate and nginx, then exit ---------------
if [[ -n $STREAMS ]]; then
  # shellcheck source=benches/streams.inc.sh
  source "$BENCH/streams.inc.sh"
  exit "$STREAMS_RC"
fi

# --- sanity checks: each system answers as expected before any load ------------------------------
SANITY="$OUT/sanity.txt"
: > "$SANITY"
SANITY_FAIL=0
check() { # check NAME EXPECTED-STATUS GREP-PATTERN curl-args... (the pattern's case is ignored:
  # header names are case-insensitive, and aigate writes the limits' in lower case)
  local name=$1 want=$2 pat=$3 got body; shift 3
  body="$OUT/runs/sanity-$name.body"
  got=$(curl -s -o "$body" -w '%{http_code}' --max-time 10 "$@" || echo "curl-failed")
  if [[ $got == "$want" ]] && { [[ -z $pat ]] || grep -qi -- "$pat" "$body"; }; then
    echo "ok   $name: $got" >> "$SANITY"
  else
    echo "FAIL $name: status $got (want $want), body: $(head -c 300 "$body" 2>/dev/null | tr '\n' ' ')" >> "$SANITY"
    SANITY_FAIL=$((SANITY_FAIL + 1))
  fi
}
log "sanity checks"
for sys in "${SYSTEMS[@]}"; do
  url=$(sys_url "$sys")
  J=(-H 'Content-Type: application/json' -H "apikey: $GOOD_KEY")
  P=(-H 'x-bench-probe: 1')
  check "$sys-json" 200 '"usage"' "${J[@]}" "${P[@]}" --data-binary @"$OUT/body.json" "$url"
  check "$sys-sse" 200 'event: response.completed' "${J[@]}" "${P[@]}" -H 'x-bench-stream: 1' --data-binary @"$OUT/body-sse.json" "$url"
  n_events=$(grep -c '^event: ' "$OUT/runs/sanity-$sys-sse.body" || true)
  echo "     $sys-sse: $n_events SSE events received" >> "$SANITY"
  check "$sys-100k" 200 '"usage"' "${J[@]}" -H 'x-bench-probe: big' --data-binary @"$OUT/body-100k.json" "$url"
  if [[ $sys != direct ]]; then
    check "$sys-wrong-key" 401 '' -H 'Content-Type: application/json' -H 'apikey: wrong-key' --data-binary @"$OUT/body.json" "$url"
    check "$sys-no-key" 401 '' -H 'Content-Type: application/json' --data-binary @"$OUT/body.json" "$url"
  fi
done
if [[ $WITH_LIMITS == 1 ]]; then
  for sys in aigate-sync aigate-periodic; do
    J=(-H 'Content-Type: application/json' -H "apikey: $GOOD_KEY")
    check "$sys-ratelimit-headers" 200 'X-RateLimit-Remaining-Second' -i "${J[@]}" --data-binary @"$OUT/body.json" "$(sys_url "$sys")"
    check "$sys-budget-headers" 200 'X-AI-RateLimit-Remaining-minute-openai' -i "${J[@]}" --data-binary @"$OUT/body.json" "$(sys_url "$sys")"
  done
fi
sleep 1.2   # the upstream's probe log flushes per request; give aigate's access log its flush too
{
  echo "upstream saw (probe requests, in order: direct json, sse, 100k; nginx ...; aigate ...):"
  sed 's/^/     /' "$OUT/upstream-probe.log" 2>/dev/null || true
} >> "$SANITY"
sed 's/^/  /' "$SANITY" >&2
if [[ $SANITY_FAIL -gt 0 ]]; then
  # A smoke run proves the harness and what it measures work: a failed check fails it.
  [[ $SMOKE == 1 ]] && die "$SANITY_FAIL sanity check(s) failed (see $SANITY)"
  log "warning: $SANITY_FAIL sanity check(s) failed; the load runs go on (see $SANITY)"
fi

# --- soak: mixed traffic against aigate alone, then exit -----------------------------------------
if [[ $SOAK -gt 0 ]]; then
  # shellcheck source=benches/soak.inc.sh
  source "$BENCH/soak.inc.sh"
  exit "$SOAK_RC"
fi

# --- 5. load: systems alternate within each repetition; order rotates between repetitions -------
for scn in $SCENARIOS; do
  read -r -a systems <<< "$(scn_systems "$scn")"
  log "scenario $scn: $(scn_label "$scn")"
  if [[ $scn == conns ]]; then
    for sys in "${systems[@]}"; do RSS_FIRST[$sys]=$(mem_kb VmRSS $(sys_pids "$sys")); done
  fi
  if [[ $WARMUP -gt 0 ]]; then
    for sys in "${systems[@]}"; do run_wrk "$scn" "$sys" warmup "$WARMUP"; done
  fi
  for ((rep = 1; rep <= REPS; rep++)); do
    n=${#systems[@]}
    for ((k = 0; k < n; k++)); do
      sys=${systems[$(((k + rep - 1) % n))]}
      run_wrk "$scn" "$sys" "$rep" "$DURATION"
      [[ $SMOKE == 1 ]] || sleep 1
    done
  done
done

# --- SSE time to first / last byte: sequential requests on one keep-alive connection ------------
TTFB_TSV="$OUT/sse-ttfb.tsv"
printf 'system\tcode\tttfb_s\tttlb_s\n' > "$TTFB_TSV"
if [[ " $SCENARIOS " == *" sse "* ]]; then
  log "SSE time to first/last byte: $TTFB_N sequential requests per system"
  for sys in "${SYSTEMS[@]}"; do
    args=()
    for ((i = 0; i < TTFB_N; i++)); do args+=(-o /dev/null "$(sys_url "$sys")"); done
    timeout -k 2 $((TTFB_N * 10 + 10)) curl -s --max-time 10 -H 'Content-Type: application/json' \
      -H "apikey: $GOOD_KEY" -H 'x-bench-stream: 1' --data-binary @"$OUT/body-sse.json" \
      -w "$sys\t%{http_code}\t%{time_starttransfer}\t%{time_total}\n" "${args[@]}" >> "$TTFB_TSV" || true
  done
fi

# --- evidence from the gateways -------------------------------------------------------------------
curl -s --max-time 5 "http://127.0.0.1:$P_STATUS/metrics" > "$OUT/aigate-metrics.txt" || true
AIGATE_LOG_WARN=$(grep -ciE 'warn|error|panic' "$OUT/aigate.out" || true)
AIGATE_LOG_CLIENT_GONE=$(grep -ciE 'Downstream (ConnectionClosed|WriteError)' "$OUT/aigate.out" || true)
NGINX_LOG_ERR=$(grep -ciE '\[(error|crit|alert|emerg)\]' "$OUT/nginx-error.log" || true)
UP_LOG_ERR=$(grep -ciE '\[(error|crit|alert|emerg)\]' "$OUT/upstream-error.log" || true)

# --- 6/7. table -----------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { # col SCENARIO SYSTEM COLUMN-NUMBER
  awk -F'\t' -v s="$1" -v y="$2" -v c="$3" 'NR > 1 && $1 == s && $2 == y { print $c }' "$RESULTS_TSV"
}
col_sum() { col "$@" | awk '{ if ($1 < 0) bad = 1; n += $1 } END { if (bad) print "no result"; else print n + 0 }'; }
col_max() { col "$@" | sort -g | tail -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "–"; else printf "%.2f×", a / b }'; }

TABLE="$OUT/table.md"
{
  echo "| Scenario | System | Requests/s | p50 ms | p99 ms | max ms | Errors / unexpected status | CPU µs/req | Peak RSS MB | req/s aigate÷nginx | req/s aigate÷direct | CPU aigate÷nginx |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  for scn in $SCENARIOS; do
    read -r -a systems <<< "$(scn_systems "$scn")"
    declare -A RPS=() CPU=()
    for sys in "${systems[@]}"; do
      RPS[$sys]=$(col "$scn" "$sys" 4 | median)
      CPU[$sys]=$(col "$scn" "$sys" 10 | median)
    done
    for sys in "${systems[@]}"; do
      p50=$(col "$scn" "$sys" 5 | median); p99=$(col "$scn" "$sys" 6 | median); mx=$(col "$scn" "$sys" 7 | median)
      errs=$(col_sum "$scn" "$sys" 8); unexp=$(col_sum "$scn" "$sys" 9); hwm=$(col_max "$scn" "$sys" 11)
      r1=""; r2=""; r3=""
      if [[ $sys == aigate ]]; then
        r1=$(ratio "${RPS[aigate]}" "${RPS[nginx]:-nan}")
        r2=$(ratio "${RPS[aigate]}" "${RPS[direct]:-nan}")
        r3=$(ratio "${CPU[aigate]}" "${CPU[nginx]:-nan}")
      fi
      awk -v l="$(scn_label "$scn")" -v s="$sys" -v rps="${RPS[$sys]}" -v p50="$p50" -v p99="$p99" -v mx="$mx" \
          -v e="$errs" -v u="$unexp" -v cpu="${CPU[$sys]}" -v hwm="${hwm:-0}" -v r1="$r1" -v r2="$r2" -v r3="$r3" '
        BEGIN { printf "| %s | %s | %.0f | %.2f | %.2f | %.1f | %s / %s | %.1f | %.1f | %s | %s | %s |\n",
                l, s, rps, p50 / 1000, p99 / 1000, mx / 1000, e, u, cpu, hwm / 1024, r1, r2, r3 }'
    done
    unset RPS CPU
  done
} > "$TABLE"

# f/g: what limits on Redis cost, against the plain aigate measured alternately in the same scenario
LIMITS_MD="$OUT/limits.md"
{
  echo "| Scenario | aigate req/s | with limits req/s | ratio | ratio per rep (median) | aigate CPU µs/req | with limits CPU µs/req (aigate + redis-server) | p99 ms aigate / with limits | errors / unexpected |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
  for scn in rlsync rlperiodic; do
    [[ " $SCENARIOS " == *" $scn "* ]] || continue
    sys=aigate-sync; [[ $scn == rlperiodic ]] && sys=aigate-periodic
    b_rps=$(col "$scn" aigate 4 | median); l_rps=$(col "$scn" "$sys" 4 | median)
    b_cpu=$(col "$scn" aigate 10 | median); l_cpu=$(col "$scn" "$sys" 10 | median)
    b_p99=$(col "$scn" aigate 6 | median); l_p99=$(col "$scn" "$sys" 6 | median)
    errs=$(col_sum "$scn" "$sys" 8); unexp=$(col_sum "$scn" "$sys" 9)
    # Each rep's two runs are adjacent in time: their ratio cancels the machine's slower drifts.
    per_rep=$(awk -F'\t' -v s="$scn" -v y="$sys" '
      NR > 1 && $1 == s && $2 == "aigate" { b[$3] = $4 }
      NR > 1 && $1 == s && $2 == y { w[$3] = $4 }
      END { for (r = 1; r in b; r++) if ((r in w) && b[r] > 0) printf "%.2f ", w[r] / b[r] }' "$RESULTS_TSV")
    if [[ -n $per_rep ]]; then
      per_rep_median=$(printf '%s\n' $per_rep | median | awk '{ printf "%.2f", $1 }')
    else
      per_rep="– "; per_rep_median="–"
    fi
    awk -v l="$(scn_label "$scn")" -v br="$b_rps" -v lr="$l_rps" -v r="$(ratio "$l_rps" "$b_rps")" -v bc="$b_cpu" -v lc="$l_cpu" \
        -v bp="$b_p99" -v lp="$l_p99" -v e="$errs" -v u="$unexp" -v pr="$per_rep" -v pm="$per_rep_median" '
      BEGIN { printf "| %s | %.0f | %.0f | %s | %s(%s×) | %.1f | %.1f | %.2f / %.2f | %s / %s |\n", l, br, lr, r, pr, pm, bc, lc, bp / 1000, lp / 1000, e, u }'
  done
} > "$LIMITS_MD"

TTFB_MD="$OUT/sse-ttfb.md"
{
  echo "| System | Requests | non-200 | TTFB median ms | TTLB median ms |"
  echo "|---|--:|--:|--:|--:|"
  for sys in "${SYSTEMS[@]}"; do
    n=$(awk -F'\t' -v s="$sys" 'NR > 1 && $1 == s' "$TTFB_TSV" | wc -l)
    [[ $n -gt 0 ]] || continue
    bad=$(awk -F'\t' -v s="$sys" 'NR > 1 && $1 == s && $2 != 200' "$TTFB_TSV" | wc -l)
    f=$(awk -F'\t' -v s="$sys" 'NR > 1 && $1 == s { print $3 * 1000 }' "$TTFB_TSV" | median)
    l=$(awk -F'\t' -v s="$sys" 'NR > 1 && $1 == s { print $4 * 1000 }' "$TTFB_TSV" | median)
    printf '| %s | %d | %d | %.2f | %.2f |\n' "$sys" "$n" "$bad" "$f" "$l"
  done
} > "$TTFB_MD"

RSS_MD="$OUT/conns-rss.md"
{
  echo "| System | Rep | RSS before the first -c$BIG_CONNECTIONS load MB | before this rep MB | right after load MB | after ${IDLE_WAIT} s idle MB | idle vs first | back within 10% of first? |"
  echo "|---|--:|--:|--:|--:|--:|--:|---|"
  awk -F'\t' 'NR > 1 { d = ($3 > 0) ? ($6 - $3) * 100 / $3 : 0
      printf "| %s | %s | %.1f | %.1f | %.1f | %.1f | %+.0f%% | %s |\n", $1, $2, $3/1024, $4/1024, $5/1024, $6/1024, d, ($6 <= $3 * 1.10) ? "yes" : "NO" }' "$RSS_TSV"
} > "$RSS_MD"

# --- RESULTS.md -----------------------------------------------------------------------------------
GIT_COMMIT=$GIT_AT_START
[[ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] && GIT_COMMIT+=" + uncommitted changes in src/ or Cargo.*"
GIT_AT_END=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[[ $GIT_AT_END != "$GIT_AT_START" ]] && GIT_COMMIT+=" (HEAD moved to $GIT_AT_END during the run)"
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
AIGATE_VERSION=$("$AIGATE_BIN" --version 2>/dev/null || echo unknown)
WRK_VERSION=$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//' || true)
NGINX_VERSION=$(nginx -v 2>&1 || true)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  echo "# aigate load test: results"
  echo
  if [[ $SMOKE == 1 ]]; then echo "**Smoke run** (1 s per run, 1 rep): checks the harness, the numbers mean little."; echo; fi
  echo "Generated by \`benches/load.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). See benches/README.md for what each number means."
  echo
  echo "Command: \`$CMDLINE\`"
  echo
  echo "## Machine and versions"
  echo
  echo "- CPU: $CPU_MODEL, nproc $(nproc) (wrk, gateway and upstream share these cores)"
  echo "- Kernel: $(uname -sr)"
  echo "- $NGINX_VERSION; wrk: $WRK_VERSION"
  echo "- aigate: $AIGATE_VERSION, git HEAD $GIT_COMMIT; binary \`${AIGATE_SRC#"$ROOT"/}\` built $AIGATE_BUILT, sha256 $AIGATE_SHA… (a copy of it ran)"
  echo "- Load average (1/5/15 min) at start: $LOAD_AT_START, at end: $LOAD_AT_END (other work on the machine skews requests/s; CPU µs/req much less)"
  echo "- Load: wrk -t$THREADS -c$CONNECTIONS (scenario e: -c$BIG_CONNECTIONS), ${DURATION} s per run, $REPS rep(s) per system, ${WARMUP} s warm-up per system and scenario, systems alternating; medians over reps (errors summed, peak RSS = max)"
  echo "- Gateways: $WORKERS nginx workers / aigate threads: $WORKERS; $NKEYS consumers; upstream = nginx, $WORKERS workers, TLS"
  echo
  echo "## Results"
  echo
  cat "$TABLE"
  echo
  if [[ $WITH_LIMITS == 1 ]]; then
    echo "## Scenarios f and g: rate-limiting and ai-rate-limiting-advanced on Redis"
    echo
    echo "The same aigate with a global rate-limiting (second and minute limits) and ai-rate-limiting-advanced"
    echo "(a token budget per minute and per hour, sliding windows) on a local redis-server, limits never"
    echo "reached, against the plain aigate of scenario a measured alternately in the same run. Synchronous:"
    echo "two Lua scripts per request on the request path (one per plugin) and the budget's charge pushed after"
    echo "each answer; periodic: counted in the process, synced every second."
    echo
    cat "$LIMITS_MD"
    echo
  fi
  if [[ " $SCENARIOS " == *" sse "* ]]; then
    echo "## SSE: time to first byte / last byte ($TTFB_N sequential requests on one connection)"
    echo
    cat "$TTFB_MD"
    echo
  fi
  if [[ " $SCENARIOS " == *" conns "* ]]; then
    echo "## Scenario e: memory after load"
    echo
    cat "$RSS_MD"
    echo
  fi
  echo "## Sanity checks before load"
  echo
  echo '```'
  cat "$SANITY"
  echo '```'
  echo
  echo "## Notes"
  echo
  echo "- **nginx does less work per request than aigate**: it checks the key (a hash-map lookup), swaps the"
  echo "  provider key in and proxies the body untouched. It cannot rewrite the JSON body; aigate parses and"
  echo "  rewrites it (model, max_tokens, temperature), scans the response for usage, keeps per-consumer"
  echo "  metrics and writes its own access log. nginx logs each request too (combined format, 64 KB buffer)."
  echo "- **direct** is wrk against the upstream nginx over plain HTTP (same fixed bodies): the ceiling of"
  echo "  this machine for the client + upstream alone. Its CPU and RSS columns are the upstream's."
  echo "- Scenario c has no direct row (the upstream checks no keys); its unexpected column counts non-401."
  echo "  Elsewhere it counts statuses ≥ 400 (wrk's count), or non-2xx with --status-hook."
  echo "- Errors are wrk's socket errors (connect, read, write, timeout > ${WRK_TIMEOUT} s), summed over reps."
  echo "- CPU µs/req = (utime + stime of all the system's processes after − before the run) / requests, at"
  echo "  CLK_TCK=$CLK_TCK (10 ms resolution, so short runs are coarse)."
  echo "- Log lines: aigate stdout/stderr lines matching warn/error/panic: ${AIGATE_LOG_WARN:-0}, of which"
  echo "  ${AIGATE_LOG_CLIENT_GONE:-0} are client disconnects (Downstream ConnectionClosed/WriteError: wrk stopping with requests in flight);"
  echo "  nginx gateway error-log errors: ${NGINX_LOG_ERR:-0}; upstream error-log errors: ${UP_LOG_ERR:-0}."
  echo "  Raw wrk outputs, logs and configs: \`${OUT#"$ROOT"/}/\` (runs/, results.tsv, aigate-metrics.txt)."
} > "$RESULTS"

echo
cat "$TABLE"
[[ $WITH_LIMITS == 1 ]] && { echo; cat "$LIMITS_MD"; }
[[ " $SCENARIOS " == *" sse "* ]] && { echo; cat "$TTFB_MD"; }
[[ " $SCENARIOS " == *" conns "* ]] && { echo; cat "$RSS_MD"; }
echo
log "results written to $RESULTS"
