#!/usr/bin/env python3
"""Soak and fault test of `llama31 serve` (standard library only).

Starts the server itself (`--port 0`, the URL read from its log) and runs five phases, each
bounded in time, then prints a summary (and, with --json PATH, writes it as JSON):

  1. soak: 2 x --parallel streaming clients for --minutes, each request seeded (temperature > 0,
     some greedy) with mixed prompt lengths and max_tokens; every answer must equal the same
     request run alone (recorded first, one client at a time). Halfway, a burst overflows the
     queue: the excess must get 503 with Retry-After in OpenAI's error shape. The server's VmRSS
     is sampled every 2 s (slope after warm-up by linear regression, and peak); TTFT and total
     latency p50/p99; at the end /metrics' running and queued gauges must be back to 0.
  2. disconnects: clients that close before sending all headers, mid-body, right after sending
     a long prompt (mid-prefill) and after k streamed chunks; every slot must free within a bound
     and a normal request must still succeed.
  3. slow clients: one trickles its request head a byte a second, one sends a streaming request
     and never reads. Both must be cut off (reported: how long the server kept each) and, while
     they hang, other requests must complete with normal latency.
  4. malformed: --malformed requests (default 1,000) of wrong types, missing fields, huge numbers,
     bad UTF-8, truncated JSON, wrong methods and content types against the routes of
     docs/openapi.yaml; every answer must be a 4xx in OpenAI's error shape (never a 5xx or a
     dropped connection) and the server must keep serving.
  5. kill -9 mid-stream: the streaming clients must end with a clean error (no hang), and the
     server started again on the same port must serve a request.

  python3 bench/server/soak.py --minutes 10 --json soak.json
Extra arguments after `--` go to `llama31 serve`. Exit status 1 if any check failed.
"""

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"  # loopback only
TOPICS = ["dragons", "the sea", "a lighthouse keeper", "bread", "a robot gardener", "winter",
          "a lost key", "the moon", "trains", "a small village"]
LONG = ("The committee reviewed the quarterly figures, the maintenance schedule and the "
        "list of open questions about the bridge before adjourning. ")


# ---------------------------------------------------------------- server and HTTP helpers

class Server:
    """`llama31 serve` as a child process; its log goes to a temporary file."""

    def __init__(self, args, port=0):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="soak-serve-", suffix=".log", delete=False)
        cmd = [args.bin, "serve", "--model", args.model, "--host", HOST, "--port", str(port),
               "--parallel", str(args.parallel), "--max-queue", str(args.max_queue),
               "--ctx", str(args.ctx), *args.server_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = None
        deadline = time.time() + 180
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"http://127\.0\.0\.1:(\d+)", open(self.log.name).read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            self.kill()
            sys.exit("server did not start:\n" + open(self.log.name).read())
        while time.time() < deadline:
            try:
                if request("GET", "/health", port=self.port, timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.kill()
        sys.exit("server did not become ready:\n" + open(self.log.name).read())

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                s = f.read()
        except OSError:
            return None, None
        rss = re.search(r"VmRSS:\s+(\d+) kB", s)
        hwm = re.search(r"VmHWM:\s+(\d+) kB", s)
        return (int(rss.group(1)) if rss else None), (int(hwm.group(1)) if hwm else None)

    def kill(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PORT = [0]


def request(method, path, body=None, headers=None, port=None, timeout=120):
    """One request on a new connection; returns (status, headers dict (lower-case), body bytes)."""
    conn = http.client.HTTPConnection(HOST, port or PORT[0], timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def gauges():
    """(running, queued) from /metrics."""
    text = request("GET", "/metrics", timeout=30)[2].decode()
    get = lambda n: float(re.search(rf"^{n} (\S+)$", text, re.M).group(1))
    return get("llama31_active_slots"), get("llama31_queue_depth")


def wait_idle(bound_s):
    """Seconds until running and queued are both 0, or None past `bound_s`."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < bound_s:
        if gauges() == (0.0, 0.0):
            return time.perf_counter() - t0
        time.sleep(0.05)
    return None


def is_openai_error(body):
    try:
        e = json.loads(body)["error"]
        return isinstance(e, dict) and all(k in e for k in ("message", "type", "param", "code")) \
            and isinstance(e["message"], str)
    except (ValueError, KeyError, TypeError):
        return False


def stream(body, timeout=300, stop_after=None):
    """A streaming chat request: dict(status, text, finish, ttft, total, chunks, headers, body)."""
    conn = http.client.HTTPConnection(HOST, PORT[0], timeout=timeout)
    t0 = time.perf_counter()
    out = {"status": None, "text": "", "finish": None, "ttft": None, "chunks": 0}
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        out["status"] = resp.status
        if resp.status != 200:
            out["headers"] = {k.lower(): v for k, v in resp.getheaders()}
            out["body"] = resp.read()
            return out
        while True:
            line = resp.fp.readline()
            if not line:
                out["error"] = "stream ended without [DONE]"
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            if line[6:] == b"[DONE]":
                break
            ev = json.loads(line[6:])
            if "error" in ev:
                out["error"] = ev["error"].get("message")
            for ch in ev.get("choices", []):
                piece = ch.get("delta", {}).get("content")
                if piece:
                    if out["ttft"] is None:
                        out["ttft"] = time.perf_counter() - t0
                    out["text"] += piece
                    out["chunks"] += 1
                if ch.get("finish_reason"):
                    out["finish"] = ch["finish_reason"]
            if stop_after and out["chunks"] >= stop_after:
                conn.sock.shutdown(socket.SHUT_RDWR)
                break
    except (OSError, http.client.HTTPException, ValueError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        out["total"] = time.perf_counter() - t0
        conn.close()
    return out


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else None


def slope_per_min(samples):
    """Least-squares slope of (seconds, KiB) samples, in KiB per minute."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return 60.0 * sxy / sxx if sxx else None


# ---------------------------------------------------------------- phase 1: soak

def make_specs(n, ctx, seed):
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        kind = i % 3
        if kind == 0:
            content = f"Write one sentence about {topic}."
        elif kind == 1:
            content = f"Tell me a short story about {topic}, with a beginning, a middle and an end."
        else:
            content = LONG * rng.randint(4, 12) + f"Now summarise that, then say something about {topic}."
        temp = 0.0 if i % 4 == 0 else rng.choice([0.6, 0.8, 1.0])
        specs.append({
            "messages": [{"role": "user", "content": content}],
            "max_tokens": rng.choice([8, 24, 48, 96, 160]),
            "temperature": temp,
            "top_p": rng.choice([1.0, 0.95]),
            "seed": 1000 + i,
            "stream": True,
        })
    return specs


def phase_soak(args, srv, res):
    specs = make_specs(args.specs, args.ctx, args.seed)
    refs = []
    for s in specs:  # references: one client at a time
        r = stream(s)
        if r["status"] != 200 or r.get("error"):
            res["failures"].append(f"soak: reference request failed: {r.get('status')} {r.get('error')}")
        refs.append((r["text"], r["finish"]))
    clients = 2 * args.parallel
    stats = {"clients": clients, "requests": 0, "ok": 0, "mismatches": 0, "errors": {},
             "ttft": [], "total": [], "mismatch_examples": []}
    lock = threading.Lock()
    deadline = time.time() + args.minutes * 60
    t_start = time.time()
    rss = []
    stop = threading.Event()
    burst_window = [float("inf"), float("inf")]

    def sampler():
        while not stop.is_set():
            v, _ = srv.rss_kib()
            if v:
                rss.append((time.time() - t_start, v))
            stop.wait(2.0)

    def client(k):
        rng = random.Random(args.seed * 100 + k)
        while time.time() < deadline:
            i = rng.randrange(len(specs))
            r = stream(specs[i])
            with lock:
                stats["requests"] += 1
                if r["status"] == 200 and not r.get("error"):
                    stats["ok"] += 1
                    stats["ttft"].append(r["ttft"] or r["total"])
                    stats["total"].append(r["total"])
                    if (r["text"], r["finish"]) != refs[i]:
                        stats["mismatches"] += 1
                        if len(stats["mismatch_examples"]) < 3:
                            stats["mismatch_examples"].append(
                                {"spec": i, "alone": refs[i][0][:120], "loaded": r["text"][:120]})
                else:
                    key = str(r["status"]) if r["status"] != 200 else "stream-error"
                    stats["errors"][key] = stats["errors"].get(key, 0) + 1
                    if r["status"] == 503:  # must be well formed; counted apart inside the burst
                        if burst_window[0] <= time.time() <= burst_window[1] + 1:
                            stats["errors"]["503_in_burst"] = stats["errors"].get("503_in_burst", 0) + 1
                            stats["errors"]["503"] -= 1
                        if "retry-after" not in r.get("headers", {}) or not is_openai_error(r.get("body", b"")):
                            res["failures"].append("soak: a 503 without Retry-After or OpenAI error shape")
                    else:
                        res["failures"].append(f"soak: request failed: {r['status']} {r.get('error')}")
            if r["status"] == 503:  # a well-behaved client waits as told
                ra = r.get("headers", {}).get("retry-after", "1")
                time.sleep(min(5.0, float(ra) if ra.isdigit() else 1.0))

    threads = [threading.Thread(target=sampler, daemon=True)]
    threads += [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    # Burst halfway: P + Q + 8 requests at once on top of the 2P clients.
    time.sleep(max(0.0, min(args.minutes * 30, deadline - time.time() - 5)))
    burst_window[0] = time.time()
    stats["burst"] = burst(args)
    burst_window[1] = time.time()
    for t in threads[1:]:
        t.join(timeout=max(1.0, deadline - time.time() + 300))
    stop.set()
    threads[0].join()
    warm = min(60.0, args.minutes * 60 * 0.2)
    after = [(t, v) for t, v in rss if t >= warm]
    _, hwm = srv.rss_kib()
    stats["rss"] = {"samples": len(rss), "warmup_s": warm, "slope_kib_per_min": slope_per_min(after),
                    "first_kib": rss[0][1] if rss else None, "last_kib": rss[-1][1] if rss else None,
                    "peak_sampled_kib": max((v for _, v in rss), default=None), "vmhwm_kib": hwm}
    for key in ("ttft", "total"):
        v = stats.pop(key)
        stats[key] = {"p50_s": pct(v, 0.5), "p99_s": pct(v, 0.99), "n": len(v)}
    stats["idle_after_s"] = wait_idle(30)
    if stats["idle_after_s"] is None:
        res["failures"].append(f"soak: running/queued not back to 0 within 30 s: {gauges()}")
    if stats["mismatches"]:
        res["failures"].append(f"soak: {stats['mismatches']} answers differ from the same request run alone")
    res["soak"] = stats


def burst(args):
    n = args.parallel + args.max_queue + 8
    out = {"sent": n, "ok": 0, "503": 0, "503_well_formed": 0, "other": {}}
    barrier = threading.Barrier(n)
    lock = threading.Lock()
    body = {"messages": [{"role": "user", "content": "Count to twenty."}], "max_tokens": 32, "temperature": 0}

    def one():
        barrier.wait(timeout=30)
        try:
            st, h, b = request("POST", "/v1/chat/completions", body, timeout=300)
        except OSError as e:
            st, h, b = type(e).__name__, {}, b""
        with lock:
            if st == 200:
                out["ok"] += 1
            elif st == 503:
                out["503"] += 1
                if h.get("retry-after", "").isdigit() and is_openai_error(b):
                    out["503_well_formed"] += 1
            else:
                out["other"][str(st)] = out["other"].get(str(st), 0) + 1

    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=400)
    return out


# ---------------------------------------------------------------- phase 2: disconnects

def raw(data, close_after=0.0):
    s = socket.create_connection((HOST, PORT[0]), timeout=10)
    s.sendall(data)
    time.sleep(close_after)
    s.close()


def chat_bytes(body):
    b = json.dumps(body).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(b)), b


def phase_disconnects(args, res):
    out = {}
    rng = random.Random(args.seed + 2)
    long_prompt = {"messages": [{"role": "user", "content": LONG * 40}], "max_tokens": 32, "stream": True}
    head, body = chat_bytes(long_prompt)
    for _ in range(5):  # before all headers
        raw(head[: rng.randrange(5, len(head) - 4)])
    for _ in range(5):  # headers, then part of the body
        raw(head + body[: rng.randrange(1, len(body) - 1)], close_after=0.05)
    for _ in range(args.parallel):  # whole long prompt, closed at once (mid-prefill)
        raw(head + body)
    ts = []
    ks = [rng.randint(1, 10) for _ in range(2 * args.parallel)]
    for k in ks:  # mid-stream after k chunks
        b = {"messages": [{"role": "user", "content": "Tell me a long story about a cat."}],
             "max_tokens": 400, "temperature": 0.8, "seed": k, "stream": True}
        ts.append(threading.Thread(target=stream, args=(b,), kwargs={"stop_after": k}))
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    out["clients"] = {"partial_headers": 5, "partial_body": 5, "mid_prefill": args.parallel,
                      "mid_stream": len(ks), "mid_stream_after_chunks": ks}
    out["idle_after_s"] = wait_idle(20)
    if out["idle_after_s"] is None:
        res["failures"].append(f"disconnects: slots not free within 20 s: {gauges()}")
    r = stream({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "stream": True})
    out["next_request_ok"] = r["status"] == 200 and not r.get("error")
    if not out["next_request_ok"]:
        res["failures"].append(f"disconnects: a normal request then failed: {r}")
    res["disconnects"] = out


# ---------------------------------------------------------------- phase 3: slow clients

def phase_slow(args, res):
    out = {"limit_s": args.slow_limit}
    t0 = time.time()
    held = {}

    def trickle():
        s = socket.create_connection((HOST, PORT[0]), timeout=5)
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 400 + b"\r\n\r\n"
        start = time.time()
        try:
            for i in range(len(head)):
                if time.time() - start > args.slow_limit:
                    held["trickle"] = None  # still open at the limit
                    return
                s.sendall(head[i:i + 1])
                s.settimeout(1.0)
                try:
                    if s.recv(4096) == b"":
                        break
                    held["trickle_answered"] = True
                    break
                except socket.timeout:
                    pass
            held["trickle"] = time.time() - start
        except OSError:
            held["trickle"] = time.time() - start
        finally:
            s.close()

    def never_read():
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((HOST, PORT[0]))
        # Two long choices with 20 logprobs per token: megabytes, more than the socket buffers.
        body = {"messages": [{"role": "user", "content": "Write a very long essay about rivers."}],
                "max_tokens": max(16, args.ctx - 100), "temperature": 0.9, "seed": 7, "ignore_eos": True,
                "logprobs": True, "top_logprobs": 20, "n": 2, "stream": True}
        h, b = chat_bytes(body)
        s.sendall(h + b)
        held["never_read_socket"] = s  # closed at the end of the phase

    cancelled0 = metric("llama31_cancelled_total")
    threads = [threading.Thread(target=trickle, daemon=True)]
    threads[0].start()
    never_read()
    t_nr = time.time()
    # Meanwhile: normal requests one after another; their latency against phase 1's.
    lat = []
    freed_at = None
    while time.time() - t0 < args.slow_limit:
        r = stream({"messages": [{"role": "user", "content": "Write one sentence about bread."}],
                    "max_tokens": 24, "temperature": 0, "stream": True}, timeout=60)
        if r["status"] == 200 and not r.get("error"):
            lat.append(r["total"])
        else:
            res["failures"].append(f"slow: a normal request failed while slow clients hung: {r.get('status')} {r.get('error')}")
        if freed_at is None and gauges()[0] == 0:  # no normal request in flight now
            freed_at = time.time() - t_nr
        if freed_at is not None and not threads[0].is_alive():
            break
        time.sleep(0.5)
    threads[0].join(timeout=5)
    # Did the server cut the never-reading connection? Read what it holds: EOF without [DONE]
    # means it closed the connection; no EOF within 10 s of silence means it still holds it.
    s = held["never_read_socket"]
    s.settimeout(10)
    tail, got = b"", 0
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                out["never_read_conn"] = "closed by the server"
                break
            got += len(d)
            tail = (tail + d)[-64:]
    except socket.timeout:
        out["never_read_conn"] = "still open"
    except OSError as e:
        out["never_read_conn"] = f"reset ({type(e).__name__})"
    out["never_read_bytes_buffered"] = got
    out["never_read_stream_complete"] = b"[DONE]" in tail
    s.close()
    out["trickle_held_s"] = held.get("trickle")
    out["never_read_slot_freed_after_s"] = freed_at
    out["never_read_cancelled"] = metric("llama31_cancelled_total") > cancelled0
    out["normal_requests"] = len(lat)
    out["normal_p50_s"] = pct(lat, 0.5)
    out["normal_max_s"] = max(lat) if lat else None
    if out["trickle_held_s"] is None:
        res["failures"].append(f"slow: the trickling client was still connected after {args.slow_limit} s")
    if freed_at is None:
        res["failures"].append(f"slow: the never-reading client still held its slot after {args.slow_limit} s")
    if out["never_read_conn"] == "still open" and not out["never_read_stream_complete"]:
        res["failures"].append("slow: the server still held the never-reading connection at the end")
    base = (res.get("soak") or {}).get("total", {}).get("p99_s")
    if base and out["normal_max_s"] and out["normal_max_s"] > 3 * base + 2:
        res["failures"].append(f"slow: normal requests took {out['normal_max_s']:.2f} s while slow clients hung (phase 1 p99 {base:.2f} s)")
    out["idle_after_s"] = wait_idle(20)
    res["slow"] = out


def metric(name):
    text = request("GET", "/metrics", timeout=30)[2].decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


# ---------------------------------------------------------------- phase 4: malformed requests

def openapi_routes(path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../docs/openapi.yaml")):
    """{route: [methods]} from docs/openapi.yaml (read with a regex: standard library only)."""
    routes, cur = {}, None
    for line in open(path):
        m = re.match(r"^  (/\S+):\s*$", line)
        if m:
            cur = m.group(1)
            routes[cur] = []
        m = re.match(r"^    (get|post|put|delete|patch):\s*$", line)
        if m and cur:
            routes[cur].append(m.group(1).upper())
    return routes


ROUTES = openapi_routes()
POST_ROUTES = [r for r, ms in ROUTES.items() if "POST" in ms]
GET_ROUTES = [r.replace("{id}", "llama31") for r, ms in ROUTES.items() if ms == ["GET"]]
BASE = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "/v1/completions": {"prompt": "hi", "max_tokens": 2},
    "/tokenize": {"prompt": "hi"},
    "/detokenize": {"tokens": [1, 2]},
    "/v1/load_lora_adapter": {"lora_name": "x", "lora_path": "/nonexistent/adapter.gguf"},
    "/v1/unload_lora_adapter": {"lora_name": "x"},
}
NUMERIC = ["temperature", "top_p", "n", "seed", "max_tokens", "presence_penalty"]


def malformed_cases(rng, n):
    """n (method, path, headers, body bytes, why) that must all be refused with a 4xx."""
    missing = [r for r in POST_ROUTES if r not in BASE]
    if missing or not POST_ROUTES:
        sys.exit(f"docs/openapi.yaml has POST routes the malformed phase does not know: {missing}")
    cases = []
    for i in range(n):
        path = rng.choice(POST_ROUTES)
        base = json.loads(json.dumps(BASE[path]))
        kind = i % 10
        hdr = {"Content-Type": "application/json"}
        if kind == 0:  # a field of the wrong type
            key = rng.choice(list(base) + (NUMERIC if "completions" in path else []))
            val = rng.choice(["hot", [], {"x": 1}, "1e3"] if key in NUMERIC else [12345, 1.5, {"x": 1}, False])
            base[key] = val
            body, why = json.dumps(base).encode(), f"{key}={val!r}"
        elif kind == 1:  # a required field missing
            base.pop(next(iter(base)))
            body, why = json.dumps(base).encode(), "missing field"
        elif kind == 2:  # huge numbers
            key = rng.choice(["max_tokens", "n", "temperature", "top_p", "seed"])
            base[key] = rng.choice([10 ** 40, -10 ** 40, 1e300, -1e300, 2 ** 64, -(2 ** 63) - 1])
            if path not in ("/v1/chat/completions", "/v1/completions"):
                base = {k: v for k, v in base.items() if k != next(iter(BASE[path]))} | {key: base[key]}
            body, why = json.dumps(base).encode(), f"huge {key}"
        elif kind == 3:  # bad UTF-8 inside the JSON
            s = json.dumps(base).encode()
            j = rng.randrange(1, len(s))
            body, why = s[:j] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]) + s[j:], "bad UTF-8"
        elif kind == 4:  # truncated JSON
            s = json.dumps(base).encode()
            body, why = s[: rng.randrange(0, len(s) - 1)], "truncated JSON"
        elif kind == 5:  # not an object
            body, why = rng.choice([b"[]", b"null", b"42", b'"text"', b"true", b"{}{}", b"{,}", b"\x00\x01"]), "not an object"
        elif kind == 6:  # wrong content type
            hdr = {"Content-Type": rng.choice(["text/plain", "application/x-www-form-urlencoded",
                                               "multipart/form-data; boundary=x", "application/xml"])}
            body, why = b"messages=hi&prompt=hi", "wrong content type"
        elif kind == 7:  # wrong method
            m = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
            cases.append((m, path, hdr, json.dumps(base).encode(), f"{m} {path}"))
            continue
        elif kind == 8:  # wrong method on a GET route, or an unknown route
            if rng.random() < 0.5:
                p = rng.choice(GET_ROUTES)
                cases.append((rng.choice(["POST", "PUT", "DELETE"]), p, hdr, b"{}", f"wrong method {p}"))
            else:
                p = rng.choice(["/v1/chat", "/v2/completions", "/v1/models/a/b", "/tokenize/x", "/%ff%fe"])
                cases.append(("POST", p, hdr, b"{}", f"unknown route {p}"))
            continue
        else:  # semantically wrong values
            if path == "/v1/chat/completions":
                base = rng.choice([
                    {"messages": [], "max_tokens": 2},
                    {"messages": [{"role": "wizard", "content": "hi"}], "max_tokens": 2},
                    {"messages": [{"content": "hi"}], "max_tokens": 2},
                    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5},
                    {"messages": [{"role": "user", "content": "hi"}], "temperature": -1},
                    {"messages": [{"role": "user", "content": "hi"}], "n": 0},
                    {"messages": [{"role": "user", "content": "hi"}], "model": "no-such-model"},
                    {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema"}},
                    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
                    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000000},
                ])
            elif path == "/v1/completions":
                base = rng.choice([{"prompt": [10 ** 12], "max_tokens": 2}, {"prompt": [[-1]]},
                                   {"prompt": "hi", "logprobs": 1000}, {"prompt": "hi", "stop": ["a"] * 1000},
                                   {"prompt": "hi", "echo": "yes"}, {"prompt": "hi", "best_of": -3}])
            elif path == "/detokenize":
                base = {"tokens": rng.choice([[-1], [10 ** 12], ["a"], [1.5], [[1]]])}
            else:
                base = {rng.choice(["prompt", "lora_name", "tokens"]): rng.choice([[], {}, 3, None])}
            body, why = json.dumps(base).encode(), "invalid value"
        cases.append(("POST", path, hdr, body, why))
    return cases


def phase_malformed(args, res):
    rng = random.Random(args.seed + 4)
    out = {"sent": 0, "4xx": 0, "2xx": 0, "5xx": 0, "dropped": 0, "not_openai_shape": 0,
           "by_status": {}, "examples": []}
    t0 = time.time()
    for method, path, hdr, body, why in malformed_cases(rng, args.malformed):
        if time.time() - t0 > 600:
            res["failures"].append("malformed: stopped at the 10-minute bound")
            break
        out["sent"] += 1
        try:
            st, _, b = request(method, path, body=body, headers=hdr, timeout=60)
        except (OSError, http.client.HTTPException) as e:
            out["dropped"] += 1
            out["examples"].append(f"{why}: {type(e).__name__}")
            continue
        out["by_status"][str(st)] = out["by_status"].get(str(st), 0) + 1
        if 400 <= st < 500:
            out["4xx"] += 1
            if not is_openai_error(b):
                out["not_openai_shape"] += 1
                out["examples"].append(f"{method} {path} {why}: {st} {b[:100]!r}")
        elif st >= 500:
            out["5xx"] += 1
            out["examples"].append(f"{method} {path} {why}: {st} {b[:100]!r}")
        else:
            out["2xx"] += 1
            if len(out["examples"]) < 30:
                out["examples"].append(f"accepted: {method} {path} {why}: {st}")
    out["examples"] = out["examples"][:30]
    out["seconds"] = time.time() - t0
    for k in ("5xx", "dropped", "not_openai_shape"):
        if out[k]:
            res["failures"].append(f"malformed: {out[k]} answers were {k}")
    r = stream({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "stream": True})
    out["next_request_ok"] = r["status"] == 200 and not r.get("error")
    if not out["next_request_ok"]:
        res["failures"].append("malformed: a normal request then failed")
    res["malformed"] = out


# ---------------------------------------------------------------- phase 5: kill -9

def phase_kill(args, srv, res):
    out = {}
    results = [None] * args.parallel
    started = threading.Barrier(args.parallel + 1)

    def client(k):
        body = {"messages": [{"role": "user", "content": "Tell me a long story about a fox."}],
                "max_tokens": max(16, args.ctx - 100), "temperature": 0.8, "seed": k, "ignore_eos": True,
                "stream": True}
        conn = http.client.HTTPConnection(HOST, PORT[0], timeout=30)
        t = None
        try:
            conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.fp.readline()
            started.wait(timeout=60)
            t = time.perf_counter()
            done = False
            while True:
                line = resp.fp.readline()
                if not line:
                    break
                if line.strip() == b"data: [DONE]":
                    done = True
                    break
            results[k] = {"ended": "done" if done else "eof", "after_kill_s": time.perf_counter() - t}
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as e:
            results[k] = {"ended": type(e).__name__, "after_kill_s": time.perf_counter() - t if t else None}
        finally:
            conn.close()

    ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.parallel)]
    for t in ts:
        t.start()
    try:
        started.wait(timeout=60)
    except threading.BrokenBarrierError:
        res["failures"].append("kill: the clients did not all start streaming")
    port = srv.port
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    for t in ts:
        t.join(timeout=40)
    out["clients"] = results
    if any(t.is_alive() for t in ts):
        res["failures"].append("kill: a client still hangs 40 s after kill -9")
    if any(r and r["ended"] == "done" for r in results):
        res["failures"].append("kill: a stream ended with [DONE] although the server was killed")
    t0 = time.perf_counter()
    srv2 = Server(args, port=port)
    out["restart_ready_s"] = time.perf_counter() - t0
    out["same_port"] = srv2.port == port
    r = stream({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "stream": True})
    out["restart_request_ok"] = r["status"] == 200 and not r.get("error")
    if not (out["same_port"] and out["restart_request_ok"]):
        res["failures"].append(f"kill: the restarted server did not serve normally: {r}")
    res["kill"] = out
    return srv2


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/llama31")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/llama31/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--max-queue", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of phase 1 (default 10)")
    ap.add_argument("--specs", type=int, default=24, help="distinct requests of phase 1")
    ap.add_argument("--malformed", type=int, default=1000)
    ap.add_argument("--slow-limit", type=float, default=90.0,
                    help="seconds a slow client may stay connected before it counts as never cut off")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phases", default="1,2,3,4,5")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    ap.add_argument("server_args", nargs="*", help="extra arguments for llama31 serve (after --)")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    res = {"args": {k: v for k, v in vars(args).items()}, "failures": []}
    t0 = time.time()
    srv = Server(args)
    PORT[0] = srv.port
    try:
        if "1" in phases:
            phase_soak(args, srv, res)
        if "2" in phases:
            phase_disconnects(args, res)
        if "3" in phases:
            phase_slow(args, res)
        if "4" in phases:
            phase_malformed(args, res)
        if "5" in phases:
            srv = phase_kill(args, srv, res)
    finally:
        srv.kill()
    res["seconds"] = time.time() - t0
    summary(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    sys.exit(1 if res["failures"] else 0)


def summary(res):
    f = lambda v, spec=".2f": "-" if v is None else format(v, spec)
    if "soak" in res:
        s = res["soak"]
        print(f"soak: {s['clients']} clients, {s['requests']} requests, {s['ok']} ok, errors {s['errors']}, "
              f"mismatches {s['mismatches']}")
        print(f"  TTFT p50 {f(s['ttft']['p50_s'])} s p99 {f(s['ttft']['p99_s'])} s; total p50 "
              f"{f(s['total']['p50_s'])} s p99 {f(s['total']['p99_s'])} s")
        r = s["rss"]
        print(f"  RSS {r['first_kib']} -> {r['last_kib']} KiB, peak {r['peak_sampled_kib']} KiB (VmHWM "
              f"{r['vmhwm_kib']}), slope after {r['warmup_s']:.0f} s warm-up {f(r['slope_kib_per_min'], '.1f')} KiB/min")
        print(f"  burst {s['burst']}; idle again after {f(s['idle_after_s'])} s")
    if "disconnects" in res:
        d = res["disconnects"]
        print(f"disconnects: {d['clients']}; idle after {f(d['idle_after_s'])} s; next request ok {d['next_request_ok']}")
    if "slow" in res:
        s = res["slow"]
        print(f"slow: trickling client cut off after {f(s['trickle_held_s'], '.1f')} s; never-reading client's slot "
              f"freed after {f(s['never_read_slot_freed_after_s'], '.1f')} s (cancelled: {s['never_read_cancelled']}; connection {s['never_read_conn']} after "
              f"{s['never_read_bytes_buffered']} bytes, stream complete {s['never_read_stream_complete']}); {s['normal_requests']} normal requests "
              f"meanwhile, p50 {f(s['normal_p50_s'])} s max {f(s['normal_max_s'])} s")
    if "malformed" in res:
        m = res["malformed"]
        print(f"malformed: {m['sent']} sent in {m['seconds']:.0f} s: 4xx {m['4xx']}, 2xx {m['2xx']}, 5xx {m['5xx']}, "
              f"dropped {m['dropped']}, not OpenAI-shaped {m['not_openai_shape']}; by status {m['by_status']}")
        for e in m["examples"][:10]:
            print("   ", e)
    if "kill" in res:
        k = res["kill"]
        print(f"kill -9: clients {k['clients']}; restart on the same port {k['same_port']} in "
              f"{k['restart_ready_s']:.1f} s, request ok {k['restart_request_ok']}")
    print(f"{len(res['failures'])} failures in {res['seconds']:.0f} s")
    for x in res["failures"]:
        print("  FAIL", x)


if __name__ == "__main__":
    main()
