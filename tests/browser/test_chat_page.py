"""The chat page of `llama31 serve` in headless Chromium (Selenium), against SmolLM2 on loopback.

Usage: test_chat_page.py URL API_KEY. The server must have been started with `--api-key API_KEY
--alias smollm2` (scripts/test-browser.sh does it). The tests run in order in one browser profile
(the key entered in the first is kept for the rest). SCREENSHOTS=DIR saves screenshots there.
Prints `N passed, N failed` last; exits non-zero when a test failed.
"""

import json
import os
import re
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

# Selenium must never try to download a browser or driver (Debian's are used).
os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

URL, KEY = sys.argv[1].rstrip("/"), sys.argv[2]
SHOTS = os.environ.get("SCREENSHOTS")
MODEL = "smollm2"
SYSTEM = "You are a helpful assistant. Answer in one short sentence."


def api(path, body=None):
    req = urllib.request.Request(
        URL + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read().decode()


def metric(name):
    for line in api("/metrics").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    raise AssertionError(f"metric {name} missing")


def wait_for(cond, what, timeout=30.0, every=0.05):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def wait_ready():
    def ready():
        try:
            with urllib.request.urlopen(URL + "/ready", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    wait_for(ready, "the model to load", timeout=120, every=0.2)


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,800",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tempfile.mkdtemp(prefix='llama31-browser-')}",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=service, options=opts)
    # A viewport of 1280x800 (the window's frame comes on top of it).
    w, h = d.execute_script("return [window.innerWidth, window.innerHeight]")
    d.set_window_size(1280 + 1280 - w, 800 + 800 - h)
    return d


def by_id(d, id_):
    return d.find_element(By.ID, id_)


def local(d, key):
    v = d.execute_script("return localStorage.getItem(arguments[0])", key)
    return None if v is None else json.loads(v) if key != "llama31.apiKey" else v


def shot(d, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        # Two animation frames: the page has painted what the test just did.
        d.execute_async_script(
            "const done = arguments[0];"
            "requestAnimationFrame(() => requestAnimationFrame(() => done()));"
        )
        d.save_screenshot(os.path.join(SHOTS, name))


def assistant_messages(d):
    return d.find_elements(By.CSS_SELECTOR, "#messages article.msg.assistant")


def set_settings(d, **fields):
    """Opens the settings dialog, fills `fields` (element id suffix -> value), saves."""
    by_id(d, "open-settings").click()
    wait_for(lambda: by_id(d, "settings").get_attribute("open") is not None, "settings dialog")
    for k, v in fields.items():
        e = by_id(d, "set-" + k.replace("_", "-"))
        if e.tag_name == "select":
            Select(e).select_by_value(v)
            continue
        e.clear()
        e.send_keys(str(v))
    by_id(d, "settings-save").click()
    wait_for(lambda: by_id(d, "settings").get_attribute("open") is None, "settings dialog closed")


def send(d, text):
    box = by_id(d, "input")
    box.click()
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


# Records the text of the streaming reply at every change of the page (set before sending).
RECORD = """
window.__snaps = [];
new MutationObserver(() => {
  const m = document.querySelector('#messages article.msg.assistant[data-state="streaming"] .content');
  if (m) window.__snaps.push(m.textContent);
}).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
"""

TESTS = []


def test(f):
    TESTS.append(f)
    return f


@test
def api_key_is_asked_for_and_kept(d):
    d.get(URL + "/")
    dialog = by_id(d, "key-dialog")
    wait_for(lambda: dialog.get_attribute("open") is not None, "the API key dialog")
    assert d.find_elements(By.CSS_SELECTOR, "#model option") == [], "models listed without a key"
    by_id(d, "key-input").send_keys("not-the-key")
    by_id(d, "key-save").click()
    err = by_id(d, "key-error")
    wait_for(lambda: err.is_displayed(), "the refused-key message")
    assert "refused" in err.text, err.text
    assert dialog.get_attribute("open") is not None, "a wrong key closed the dialog"
    assert local(d, "llama31.apiKey") is None, "a wrong key was stored"
    key_input = by_id(d, "key-input")
    key_input.clear()
    key_input.send_keys(KEY)
    by_id(d, "key-save").click()
    wait_for(lambda: dialog.get_attribute("open") is None, "the dialog to close")
    options = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#model option"), "the model list")
    assert [o.get_attribute("value") for o in options] == [MODEL]
    assert local(d, "llama31.apiKey") == KEY
    # The key survives a reload: no dialog the second time.
    d.refresh()
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#model option"), "the model list again")
    assert by_id(d, "key-dialog").get_attribute("open") is None


@test
def reply_streams_with_token_counts(d):
    set_settings(d, system=SYSTEM, temperature="0", max_tokens="40", seed="7")
    saved = local(d, "llama31.settings")
    assert saved["max_tokens"] == "40" and saved["system"] == SYSTEM, saved
    d.execute_script(RECORD)
    prompt = "What is the capital of France?"
    send(d, prompt)
    # The stop button shows while the reply streams.
    wait_for(lambda: by_id(d, "stop").is_displayed(), "the stop button", timeout=10, every=0.01)
    msg = wait_for(
        lambda: d.find_elements(By.CSS_SELECTOR, "article.msg.assistant[data-state=done]"),
        "the finished reply",
        timeout=60,
    )[0]
    final = msg.find_element(By.CSS_SELECTOR, ".content").text
    assert final.strip(), "empty reply"
    # Text was on the page while the reply was still streaming (the long reply of the next test
    # shows it growing).
    partial = sorted({s for s in d.execute_script("return window.__snaps") if s.strip()}, key=len)
    assert partial, "nothing was shown while the reply streamed"
    assert final.replace("\n", "").startswith(partial[0].replace("\n", "").strip()[:8]), (
        partial,
        final,
    )
    meta = msg.find_element(By.CSS_SELECTOR, ".meta").text
    m = re.fullmatch(
        r"(\d+) prompt tokens · (\d+) completion tokens · ([\d.]+) tok/s · first token ([\d.]+) s",
        meta,
    )
    assert m, meta
    prompt_tokens, completion_tokens, tps = int(m[1]), int(m[2]), float(m[3])
    assert prompt_tokens > 5 and 1 < completion_tokens <= 40 and tps > 0, meta
    assert by_id(d, "send").is_displayed() and not by_id(d, "stop").is_displayed()
    # The page assembled the same text the server gives the same request without streaming.
    want = json.loads(
        api(
            "/v1/chat/completions",
            {
                "model": MODEL,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt},
                ],
                "temperature": 0,
                "max_tokens": 40,
                "seed": 7,
            },
        )
    )
    conv = local(d, "llama31.conversations")
    assert len(conv) == 1 and conv[0]["title"] == prompt, conv
    stored = conv[0]["messages"]
    assert [x["role"] for x in stored] == ["user", "assistant"], stored
    assert stored[1]["content"] == want["choices"][0]["message"]["content"], (stored, want)
    # The same counts: the system prompt and the sampling settings went with the request.
    assert stored[1]["stats"]["completion_tokens"] == want["usage"]["completion_tokens"]
    assert stored[1]["stats"]["prompt_tokens"] == want["usage"]["prompt_tokens"] == prompt_tokens
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#conversations .conv-title")]
    assert titles == [prompt], titles
    send(d, "Name one famous landmark there.")
    wait_for(
        lambda: len(d.find_elements(By.CSS_SELECTOR, "article.msg.assistant[data-state=done]"))
        == 2,
        "the second reply",
        timeout=60,
    )
    shot(d, "web-chat.png")


@test
def stop_cancels_the_request_on_the_server(d):
    # Greedy, this prompt runs to the 1,500 tokens: it is still streaming when stopped.
    set_settings(d, max_tokens="1500", temperature="0")
    try:
        stop_a_long_reply(d)
    finally:
        set_settings(d, max_tokens="40", temperature="0")


def stop_a_long_reply(d):
    by_id(d, "new-chat").click()
    cancelled = metric("llama31_cancelled_total")
    d.execute_script(RECORD)
    send(d, "Write a very long story about a dragon who learns to cook. Make it at least 2000 words.")
    live = "article.msg.assistant[data-state=streaming] .content"
    wait_for(
        lambda: len(d.execute_script(f"return document.querySelector('{live}')?.textContent || ''"))
        > 200,
        "some streamed text",
        timeout=60,
    )
    # The reply grew on the page while it streamed.
    lengths = sorted({len(s) for s in d.execute_script("return window.__snaps") if s.strip()})
    assert len(lengths) >= 3, f"the reply did not stream: {lengths}"
    assert metric("llama31_active_slots") == 1, "the reply is not running on the server"
    by_id(d, "stop").click()
    msg = wait_for(
        lambda: d.find_elements(By.CSS_SELECTOR, "article.msg.assistant[data-state=stopped]"),
        "the stopped reply",
        timeout=10,
    )[0]
    text = msg.find_element(By.CSS_SELECTOR, ".content").text
    assert len(text) > 200, text
    assert msg.find_element(By.CSS_SELECTOR, ".meta").text.startswith("Stopped · ~")
    # The server noticed the closed connection: the sequence was cancelled and its slot freed.
    wait_for(lambda: metric("llama31_active_slots") == 0, "the slot to be freed", timeout=10)
    assert metric("llama31_cancelled_total") == cancelled + 1
    generated = metric("llama31_generation_tokens_total")
    time.sleep(0.5)
    assert metric("llama31_generation_tokens_total") == generated, "still generating"
    assert by_id(d, "send").is_displayed() and not by_id(d, "stop").is_displayed()
    stored = local(d, "llama31.conversations")
    kept = [c for c in stored if c["title"].startswith("Write a very long story")]
    assert len(kept) == 1 and kept[0]["messages"][1]["stats"]["stopped"] is True, kept


@test
def server_errors_are_shown(d):
    set_settings(d, max_tokens="4000")
    try:
        send(d, "Hello")
        msg = wait_for(
            lambda: d.find_elements(By.CSS_SELECTOR, "article.msg.assistant[data-state=error]"),
            "the error",
            timeout=10,
        )[0]
        err = msg.find_element(By.CSS_SELECTOR, ".msg-error").text
        assert "'max_tokens' is 4000, more than the context of 2048 tokens" in err, err
        assert by_id(d, "send").is_displayed()
    finally:
        set_settings(d, max_tokens="40")


@test
def conversations_survive_a_reload(d):
    before = local(d, "llama31.conversations")
    d.refresh()
    titles = wait_for(
        lambda: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#conversations .conv-title")],
        "the conversation list",
    )
    assert titles[0].startswith("Write a very long story"), titles
    assert titles[1] == "What is the capital of France?", titles
    d.find_elements(By.CSS_SELECTOR, "#conversations .conv-title")[1].click()
    shown = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#messages article.msg .content")]
    first = next(c for c in before if c["title"] == "What is the capital of France?")
    assert len(shown) == 4, shown
    assert shown[0] == "What is the capital of France?"
    assert shown[2] == "Name one famous landmark there."
    assert all(s.strip() for s in shown)
    active = d.find_element(By.CSS_SELECTOR, "#conversations .conv.active .conv-title").text
    assert active == first["title"]
    # Delete the stopped conversation: gone from the list and from storage.
    story = d.find_elements(By.CSS_SELECTOR, "#conversations .conv")[0]
    d.execute_script("arguments[0].querySelector('.conv-delete').click()", story)
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#conversations .conv-title")]
    assert titles == ["What is the capital of France?"], titles
    assert [c["title"] for c in local(d, "llama31.conversations")] == titles
    d.refresh()
    titles = wait_for(
        lambda: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#conversations .conv-title")],
        "the conversation list",
    )
    assert titles == ["What is the capital of France?"], titles


MARKDOWN = """## Reading a file

Use **pathlib** and *read_text*, or `open()` — see [the docs](https://docs.python.org/3/).

```python
from pathlib import Path

def words(path: str) -> int:
    # Count the words of a file.
    return len(Path(path).read_text().split())  # 42
```

1. First step
2. Second step
   - nested point

| Method | Lines |
|---|---:|
| `read_text` | 1 |
| `open` | 3 |

> A quote with a [bad link](javascript:window.__xss=1) and <b>no bold</b>.

<script>window.__xss = 1</script><img src=x onerror="window.__xss=1">
"""


@test
def markdown_is_rendered_and_html_is_not(d):
    conv = {
        "id": "md-test",
        "title": "Markdown and a tool call",
        "created": 1,
        "updated": int(time.time() * 1000) + 10_000,
        "messages": [
            {"role": "user", "content": "How do I count the words of a file in Python?"},
            {
                "role": "assistant",
                "content": MARKDOWN,
                "stats": {"prompt_tokens": 31, "completion_tokens": 118, "tps": 52.4, "ttft": 0.08},
            },
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city": "Paris", "unit": "celsius"}',
                        },
                    }
                ],
                "stats": {"prompt_tokens": 210, "completion_tokens": 19, "tps": 48.9, "ttft": 0.12},
            },
        ],
    }
    convs = local(d, "llama31.conversations") + [conv]
    d.execute_script(
        "localStorage.setItem('llama31.conversations', arguments[0]);"
        "localStorage.setItem('llama31.current', '\"md-test\"');",
        json.dumps(convs),
    )
    d.refresh()
    wait_for(lambda: assistant_messages(d), "the stored messages")
    md = assistant_messages(d)[0].find_element(By.CSS_SELECTOR, ".content")
    q = lambda css: md.find_elements(By.CSS_SELECTOR, css)  # noqa: E731
    assert [h.text for h in q("h2")] == ["Reading a file"]
    assert [e.text for e in q("p strong")] == ["pathlib"]
    assert [e.text for e in q("p em")] == ["read_text"]
    assert "open()" in [e.text for e in q("p code")]
    links = q("a")
    assert len(links) == 1, [a.get_attribute("outerHTML") for a in links]
    assert links[0].get_attribute("href") == "https://docs.python.org/3/"
    assert links[0].get_attribute("target") == "_blank"
    assert "noopener" in links[0].get_attribute("rel")
    # The code block: language, highlighted tokens, the exact code.
    code = q(".codeblock pre code")
    assert len(code) == 1
    assert q(".codeblock .lang")[0].text == "python"
    kws = {e.text for e in code[0].find_elements(By.CSS_SELECTOR, ".tok-kw")}
    assert {"from", "import", "def", "return"} <= kws, kws
    assert [e.text for e in code[0].find_elements(By.CSS_SELECTOR, ".tok-com")] == [
        "# Count the words of a file.",
        "# 42",
    ]
    assert "words" in {e.text for e in code[0].find_elements(By.CSS_SELECTOR, ".tok-fn")}
    assert code[0].get_attribute("textContent").startswith("from pathlib import Path\n\ndef words")
    # Copy puts the code on the clipboard (pasted back into the message box to read it).
    copy = q(".codeblock .copy")[0]
    copy.click()
    wait_for(lambda: copy.text == "Copied", "the copy confirmation", timeout=5)
    box = by_id(d, "input")
    box.click()
    box.send_keys(Keys.CONTROL, "v")
    pasted = box.get_attribute("value")
    box.clear()
    assert pasted == code[0].get_attribute("textContent"), pasted
    assert [e.text for e in q("ol > li")][0] == "First step"
    assert [e.text for e in q("ol ul > li")] == ["nested point"]
    assert [e.text for e in q("table th")] == ["Method", "Lines"]
    assert [e.text for e in q("table td")] == ["read_text", "1", "open", "3"]
    assert "align-right" in q("table td")[1].get_attribute("class")
    # Markup from the model is text: no element made from it, nothing ran.
    assert q("script, img, b, iframe") == [], "model HTML became elements"
    assert "<script>window.__xss = 1</script>" in md.text
    assert "<b>no bold</b>" in md.text
    assert q("blockquote .unsafe-link")[0].text == "bad link"
    assert d.execute_script("return window.__xss") is None
    # The tool call: a block with the function and its arguments, not reply text.
    reply = assistant_messages(d)[1]
    assert reply.find_element(By.CSS_SELECTOR, ".content").text == ""
    call = reply.find_element(By.CSS_SELECTOR, ".tool-call")
    assert call.find_element(By.CSS_SELECTOR, ".tool-name").text == "get_weather"
    args = json.loads(call.find_element(By.CSS_SELECTOR, "pre").text)
    assert args == {"city": "Paris", "unit": "celsius"}
    placeholder = by_id(d, "input").get_attribute("placeholder")
    assert placeholder.startswith("Result of get_weather"), placeholder
    assert by_id(d, "tool-result").is_displayed() and by_id(d, "as-tool").is_selected()
    d.execute_script("document.querySelector('#messages').scrollTop = 0")
    shot(d, "web-chat-markdown.png")
    d.execute_script("document.querySelector('#messages').scrollTop = 1e6")
    shot(d, "web-chat-tool-call.png")
    # The next message goes back as the tool's result, and the model answers it.
    send(d, '{"temperature_c": 22, "sky": "sunny"}')
    wait_for(
        lambda: len(d.find_elements(By.CSS_SELECTOR, "article.msg.assistant[data-state=done]"))
        == 3,
        "the reply to the tool result",
        timeout=60,
    )
    stored = next(c for c in local(d, "llama31.conversations") if c["id"] == "md-test")
    result = stored["messages"][4]
    assert result == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"temperature_c": 22, "sky": "sunny"}',
    }, result
    assert stored["messages"][5]["role"] == "assistant" and "error" not in stored["messages"][5]
    assert not by_id(d, "tool-result").is_displayed()


A = '<a href="{0}" target="_blank" rel="noopener noreferrer nofollow">{1}</a>'
# Markdown as a model writes it -> the exact HTML the renderer makes of it.
RENDERINGS = [
    (
        "***both*** and **bold _it_**",
        "<p><strong><em>both</em></strong> and <strong>bold <em>it</em></strong></p>",
    ),
    ("snake_case_name and 2 * 3 * 4", "<p>snake_case_name and 2 * 3 * 4</p>"),
    # A fence still open (the reply is streaming) is already a code block.
    (
        '```rust\nfn main() {\n    let s = "hi";',
        '<div class="codeblock"><div class="codehead"><span class="lang">rust</span>'
        '<button class="copy" type="button">Copy</button></div><pre><code data-lang="rust">'
        '<span class="tok-kw">fn</span> <span class="tok-fn">main</span>() {\n    '
        '<span class="tok-kw">let</span> s = <span class="tok-str">"hi"</span>;</code></pre></div>',
    ),
    (
        "See https://example.com/a_b. Or <https://x.org>.",
        "<p>See "
        + A.format("https://example.com/a_b", "https://example.com/a_b")
        + ". Or "
        + A.format("https://x.org", "https://x.org")
        + ".</p>",
    ),
    # No script URLs, no images (a link to the picture instead).
    (
        "[x](javascript:alert(1)) ![pic](https://x.org/p.png) [y](data:text/html,hi)",
        '<p><span class="unsafe-link">x</span> '
        + A.format("https://x.org/p.png", "pic")
        + ' <span class="unsafe-link">y</span></p>',
    ),
    (
        "`<b>not bold</b>` and ``a ` b``",
        "<p><code>&lt;b&gt;not bold&lt;/b&gt;</code> and <code>a ` b</code></p>",
    ),
    ("3. three\n4. four", '<ol start="3"><li>three</li><li>four</li></ol>'),
    (
        "## Title ##\nText\n---\n> quote\n> more",
        "<h2>Title</h2><p>Text</p><hr><blockquote><p>quote<br>more</p></blockquote>",
    ),
    ("- a\n  1. one\n  2. two", "<ul><li>a<ol><li>one</li><li>two</li></ol></li></ul>"),
    (
        "| a | b |\n|---|:-:|\n| 1 | 2 |",
        '<div class="table-wrap"><table><thead><tr><th>a</th><th class="align-center">b</th>'
        '</tr></thead><tbody><tr><td>1</td><td class="align-center">2</td></tr></tbody>'
        "</table></div>",
    ),
    ("\\*not em\\* <i>x</i>", "<p>*not em* &lt;i&gt;x&lt;/i&gt;</p>"),
]


@test
def markdown_renderings(d):
    render = (
        "const e = document.createElement('div');"
        "Markdown.render(arguments[0], e);"
        "return e.innerHTML;"
    )
    wrong = []
    for src, want in RENDERINGS:
        got = d.execute_script(render, src)
        if got != want:
            wrong.append(f"{src!r}\n  got  {got}\n  want {want}")
    assert not wrong, "\n".join(wrong)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@test
def streamed_tool_call_is_shown_as_a_call(d):
    by_id(d, "new-chat").click()
    set_settings(d, tools=json.dumps([WEATHER_TOOL]), tool_choice="required")
    try:
        send(d, "What is the weather in Paris?")
        msg = wait_for(
            lambda: d.find_elements(By.CSS_SELECTOR, "article.msg.assistant[data-state=done]"),
            "the reply",
            timeout=60,
        )[0]
        call = msg.find_element(By.CSS_SELECTOR, ".tool-call")
        assert call.find_element(By.CSS_SELECTOR, ".tool-name").text == "get_weather"
        args = json.loads(call.find_element(By.CSS_SELECTOR, "pre").text)
        assert isinstance(args.get("city"), str), args
        assert msg.find_element(By.CSS_SELECTOR, ".content").text == ""
        assert re.search(r"\d+ completion tokens", msg.find_element(By.CSS_SELECTOR, ".meta").text)
        conv = next(
            c for c in local(d, "llama31.conversations") if c["title"].startswith("What is the weather")
        )
        calls = conv["messages"][1]["tool_calls"]
        assert len(calls) == 1 and calls[0]["id"].startswith("call_"), calls
        assert json.loads(calls[0]["function"]["arguments"]) == args
        assert by_id(d, "tool-result").is_displayed()
    finally:
        set_settings(d, tools="", tool_choice="")
    assert local(d, "llama31.settings")["tools"] == ""


def main():
    wait_ready()
    d = browser()
    passed = failed = 0
    started = time.monotonic()
    try:
        for t in TESTS:
            t0 = time.monotonic()
            try:
                t(d)
                passed += 1
                print(f"ok   {t.__name__} ({time.monotonic() - t0:.1f} s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {t.__name__}", flush=True)
                traceback.print_exc()
                for entry in d.get_log("browser"):
                    print("  console:", entry.get("level"), entry.get("message"))
    finally:
        d.quit()
    print(f"{passed} passed, {failed} failed ({time.monotonic() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
