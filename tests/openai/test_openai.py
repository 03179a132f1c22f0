"""The official `openai` client against `llama31 serve` (SmolLM2-135M-Instruct).

Usage: test_openai.py BASE_URL API_KEY [SERVER_PID]   (scripts/test-openai.sh starts the server)
"""

import json
import os
import sys
import threading
import time
import traceback

import urllib.error
import urllib.request

import openai
from openai import OpenAI

BASE, KEY = sys.argv[1], sys.argv[2]
# The server is on loopback: no proxy the environment names may stand between (urllib and httpx
# both read NO_PROXY when their clients are made).
for var in ("NO_PROXY", "no_proxy"):
    os.environ[var] = ",".join(filter(None, ["127.0.0.1,localhost", os.environ.get(var)]))
SERVER_PID = int(sys.argv[3]) if len(sys.argv) > 3 else None
client = OpenAI(base_url=f"{BASE}/v1", api_key=KEY, max_retries=0, timeout=300)
MODEL = "smollm2"
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def health():
    """(status code, JSON body) of GET /health."""
    try:
        with urllib.request.urlopen(f"{BASE}/health", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def alive(pid):
    """Whether process `pid` runs (not exited, not a zombie awaiting its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def wait_ready(limit_s=300):
    """Waits for /health to answer 200 (the model is loaded); says what it last saw if not."""
    deadline = time.monotonic() + limit_s
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = health()
            if status == 200:
                return
            last = f"HTTP {status} {body}"
        except (OSError, ValueError) as e:
            last = repr(e)
        if SERVER_PID is not None and not alive(SERVER_PID):
            raise RuntimeError(f"the server exited; last answer: {last}")
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {limit_s} s; last answer: {last}")


def ask(content, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 32)
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], **kw
    )


def stream_text(content, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 32)
    text, finish, usage = "", None, None
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": content}],
        stream=True,
        stream_options={"include_usage": True},
        **kw,
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.content:
                text += ch.delta.content
            if ch.finish_reason:
                finish = ch.finish_reason
    return text, finish, usage


@test
def models():
    ids = [m.id for m in client.models.list()]
    assert ids == [MODEL], ids


@test
def chat():
    r = ask("What is the capital of France?")
    assert "Paris" in r.choices[0].message.content, r
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@test
def stream_equals_non_stream():
    q = "Write two sentences about the ocean."
    plain = ask(q, max_tokens=48)
    text, finish, usage = stream_text(q, max_tokens=48)
    assert text == plain.choices[0].message.content, (text, plain)
    assert finish == plain.choices[0].finish_reason
    assert usage.completion_tokens == plain.usage.completion_tokens


@test
def completions():
    r = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0, logprobs=2
    )
    c = r.choices[0]
    assert isinstance(c.text, str) and c.text
    assert len(c.logprobs.tokens) == len(c.logprobs.token_logprobs) >= 1


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


@test
def forced_tool_call():
    r = ask(
        "What's the weather like in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
    )
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    call = ch.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit"), args


@test
def json_schema_output_validates():
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "year": {"type": "integer"},
            "genres": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
        },
        "required": ["title", "year", "genres"],
        "additionalProperties": False,
    }
    r = ask(
        "Describe a movie as JSON.",
        max_tokens=120,
        response_format={"type": "json_schema", "json_schema": {"name": "movie", "schema": schema}},
    )
    out = json.loads(r.choices[0].message.content)
    assert set(out) == {"title", "year", "genres"}, out
    assert isinstance(out["title"], str) and len(out["title"]) <= 40
    assert isinstance(out["year"], int) and not isinstance(out["year"], bool)
    assert isinstance(out["genres"], list) and len(out["genres"]) <= 3
    assert all(isinstance(g, str) and len(g) <= 12 for g in out["genres"])


@test
def eight_concurrent_streams_equal_alone():
    q = "Tell me a short story about a robot."
    kw = dict(max_tokens=40, temperature=0.7, seed=11)
    alone = stream_text(q, **kw)[0]
    results = [None] * 8

    def run(i):
        results[i] = stream_text(q, **kw)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == alone for r in results), (alone, results)


@test
def bad_requests_are_400():
    bad = [
        dict(messages=[]),
        dict(messages=[{"role": "user", "content": "x"}], temperature=5),
        dict(messages=[{"role": "user", "content": "x"}], n=1000),
        dict(messages=[{"role": "user", "content": "x"}], max_tokens=0),
        dict(messages=[{"role": "user", "content": "x"}], max_tokens=10**9),
        dict(messages=[{"role": "nobody", "content": "x"}]),
        dict(messages=[{"role": "user", "content": "x"}], logit_bias={"99999999": 1}),
    ]
    for kw in bad:
        try:
            client.chat.completions.create(model=MODEL, **kw)
        except openai.BadRequestError as e:
            assert e.status_code == 400
            assert e.body and "message" in e.body, e.body
        else:
            raise AssertionError(f"accepted {kw}")
    try:
        OpenAI(base_url=f"{BASE}/v1", api_key="wrong", max_retries=0).models.list()
    except openai.AuthenticationError:
        pass
    else:
        raise AssertionError("wrong key accepted")


@test
def healthy_after():
    assert health() == (200, {"status": "ok"})
    assert "Paris" in ask("What is the capital of France?").choices[0].message.content


def main():
    wait_ready()
    passed = failed = 0
    for t in TESTS:
        start = time.time()
        try:
            t()
            passed += 1
            print(f"PASS {t.__name__} ({time.time() - start:.1f}s)", flush=True)
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {t.__name__}", flush=True)
            traceback.print_exc()
    print(f"openai: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
