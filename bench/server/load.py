#!/usr/bin/env python3
"""Load test of `llama31 serve` (standard library only).

Starts the server itself (so it can read its peak resident memory), then measures:
  1. one streaming client alone: decode tokens/s of a single stream;
  2. --parallel streaming clients at once: aggregate tokens/s (and the ratio to 1.);
  3. 2 x --parallel streaming clients for --requests requests: throughput, p50/p99 time to first
     token, errors (only 503s past --max-queue are acceptable);
  4. a client that disconnects mid-stream: time until its slot is free, against the time of one
     decode step;
and prints the server's peak resident memory (VmHWM).

  python3 bench/server/load.py --model ~/.cache/llama31/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time


def post_stream(host, port, body, on_first=None, stop_after=None):
    """POSTs a streaming chat request; returns (status, completion_tokens, ttft, seconds)."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        resp.read()
        conn.close()
        return resp.status, 0, None, time.perf_counter() - t0
    ttft, tokens, chunks = None, 0, 0
    buf = b""
    while True:
        line = resp.fp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        if ev.get("usage"):
            tokens = ev["usage"]["completion_tokens"]
        for ch in ev.get("choices", []):
            if ch.get("delta", {}).get("content"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
                    if on_first:
                        on_first()
                if stop_after and chunks >= stop_after:
                    conn.sock.close()  # the client goes away mid-stream
                    return 200, chunks, ttft, time.perf_counter() - t0
    conn.close()
    return 200, tokens, ttft, time.perf_counter() - t0


def start_server(cmd, wait_s=120):
    """Starts `llama31 serve ... --port 0` (cmd); returns (process, port) once /health answers 200."""
    srv = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in srv.stderr:
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        srv.kill()
        sys.exit("server did not start")
    threading.Thread(target=lambda: srv.stderr.read(), daemon=True).start()
    for _ in range(int(wait_s * 10)):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    return srv, port


def metric(host, port, name):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def body(args, i):
    return {
        "messages": [{"role": "user", "content": f"Tell me a long story about dragon number {i}."}],
        "max_tokens": args.max_tokens,
        "temperature": 0.8,
        "seed": i,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def run_clients(args, port, clients, requests):
    results, lock, next_id = [], threading.Lock(), [0]

    def worker():
        while True:
            with lock:
                if next_id[0] >= requests:
                    return
                i = next_id[0]
                next_id[0] += 1
            r = post_stream("127.0.0.1", port, body(args, i))
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/llama31")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/llama31/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--json", action="store_true", help="print the results as JSON on the last line")
    ap.add_argument("server_args", nargs="*", help="extra arguments for llama31 serve (after --)")
    args = ap.parse_args()

    cmd = [args.bin, "serve", "--model", args.model, "--port", "0", "--parallel", str(args.parallel),
           "--ctx", str(args.ctx), "--max-queue", str(args.max_queue), *args.server_args]
    srv, port = start_server(cmd)
    try:
        post_stream("127.0.0.1", port, body(args, 10**6) | {"max_tokens": 8})  # warm up

        out = {"parallel": args.parallel, "max_tokens": args.max_tokens}
        single, t1 = run_clients(args, port, 1, 2)
        out["single_tok_s"] = sum(r[1] for r in single) / t1
        par, tp = run_clients(args, port, args.parallel, args.parallel)
        out["parallel_tok_s"] = sum(r[1] for r in par) / tp
        out["ratio"] = out["parallel_tok_s"] / out["single_tok_s"]

        load, tl = run_clients(args, port, 2 * args.parallel, args.requests)
        ok = [r for r in load if r[0] == 200]
        errors = [r[0] for r in load if r[0] != 200]
        ttfts = [r[2] for r in ok if r[2] is not None]
        out["load"] = {
            "clients": 2 * args.parallel,
            "requests": args.requests,
            "tok_s": sum(r[1] for r in ok) / tl,
            "ttft_p50_s": pct(ttfts, 0.5),
            "ttft_p99_s": pct(ttfts, 0.99),
            "errors": len(errors),
            "non_503_errors": len([e for e in errors if e != 503]),
        }

        # Disconnect: the slot must be free within about one decode step of the client leaving.
        step = 1.0 / out["single_tok_s"]
        r = post_stream("127.0.0.1", port, body(args, 999) | {"max_tokens": 400}, stop_after=5)
        t0 = time.perf_counter()
        while metric("127.0.0.1", port, "llama31_active_slots") not in (0.0,):
            if time.perf_counter() - t0 > 30:
                break
            time.sleep(0.002)
        out["disconnect_free_s"] = time.perf_counter() - t0
        out["decode_step_s"] = step

        with open(f"/proc/{srv.pid}/status") as f:
            hwm = re.search(r"VmHWM:\s+(\d+) kB", f.read())
        out["peak_rss_mib"] = int(hwm.group(1)) / 1024 if hwm else None
    finally:
        srv.terminate()
        srv.wait()

    ld = out["load"]
    print(f"single stream          {out['single_tok_s']:8.1f} tok/s")
    print(f"{args.parallel} parallel streams     {out['parallel_tok_s']:8.1f} tok/s  ({out['ratio']:.2f}x single)")
    print(f"{ld['clients']} clients, {ld['requests']} requests {ld['tok_s']:8.1f} tok/s  TTFT p50 {ld['ttft_p50_s']:.2f}s p99 {ld['ttft_p99_s']:.2f}s  errors {ld['errors']} (non-503 {ld['non_503_errors']})")
    print(f"disconnect → slot free {out['disconnect_free_s'] * 1000:8.1f} ms  (one decode step ≈ {step * 1000:.1f} ms)")
    print(f"peak resident memory   {out['peak_rss_mib']:8.1f} MiB")
    if args.json:
        print(json.dumps(out))
    if ld["non_503_errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
