#!/usr/bin/env python3
"""Chat goldens: Meta ChatFormat dialogs and Jinja chat-template renders.

Writes:
  goldens/chat/dialogs.jsonl               Meta ChatFormat(Tokenizer).encode_dialog_prompt ids + decoded text
  goldens/chat/hf_llama31_template.jsonl   HF Llama 3.1 template rendered with transformers' Jinja semantics
  goldens/chat/smollm2_template.jsonl      SmolLM2 GGUF's tokenizer.chat_template rendered the same way

See scripts/goldens/README.md for the OpenAI-style message -> Meta RawMessage mapping.
Run with the goldens venv: ~/.cache/llama31/venv-goldens/bin/python scripts/goldens/chat_goldens.py
"""

from __future__ import annotations

import json
import os
import struct
import sys
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_models.datatypes import BuiltinTool, RawMessage, StopReason, ToolCall
from llama_models.llama3.chat_format import ChatFormat
from llama_models.llama3.tokenizer import Tokenizer

CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
CHAT_DIR = REPO / "goldens" / "chat"
BUILTIN_NAMES = {t.value for t in BuiltinTool}


def dump_line(obj) -> str:
    s = json.dumps(obj, ensure_ascii=False)
    for ch in ("\u2028", "\u2029", "\u0085"):
        s = s.replace(ch, "\\u%04x" % ord(ch))
    return s


# ---------------------------------------------------------------------------------------------
# OpenAI-style messages -> Meta RawMessage
# ---------------------------------------------------------------------------------------------


def to_meta(msg: dict) -> RawMessage:
    role = msg["role"]
    content = msg.get("content")
    if content is None:
        content = ""
    if role in ("system", "user"):
        return RawMessage(role=role, content=content)
    if role == "tool":
        # Encoded with header "ipython"; tool_call_id has no place in Meta's format.
        return RawMessage(role="tool", content=content)
    if role == "assistant":
        calls = []
        for c in msg.get("tool_calls") or []:
            fn = c["function"]
            args = json.loads(fn["arguments"])
            # ToolCall's validator turns builtin names into BuiltinTool, other names stay custom str.
            calls.append(ToolCall(call_id=c["id"], tool_name=fn["name"], arguments=args))
        stop = StopReason.end_of_message if calls else StopReason.end_of_turn
        return RawMessage(role="assistant", content=content, stop_reason=stop, tool_calls=calls)
    raise ValueError(f"unknown role {role!r}")


def call(cid: str, name: str, args: dict) -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def sys_(c):
    return {"role": "system", "content": c}


def user(c):
    return {"role": "user", "content": c}


def asst(c, tool_calls=None):
    m = {"role": "assistant", "content": c}
    if tool_calls is not None:
        m["tool_calls"] = tool_calls
    return m


def tool(cid, c):
    return {"role": "tool", "tool_call_id": cid, "content": c}


BUILTIN_SYSTEM = "Environment: ipython\nTools: brave_search, wolfram_alpha\n\nCutting Knowledge Date: December 2023\nToday Date: 23 July 2024\n\nYou are a helpful assistant"

DIALOGS: list[tuple[str, list[dict]]] = [
    ("user_only", [user("What is the capital of France?")]),
    ("system_only", [sys_("You are a helpful assistant.")]),
    ("no_messages", []),
    ("system_user", [sys_("You are a helpful assistant."), user("Hello!")]),
    ("multi_turn", [sys_("You are terse."), user("Hi"), asst("Hello. What do you need?"), user("A haiku about Rust."),
                    asst("Borrowed, not owned—\nlifetimes end where scopes close;\nno segfault tonight."),
                    user("Thanks!")]),
    ("ends_with_assistant", [user("Say OK."), asst("OK.")]),
    ("empty_user", [user("")]),
    ("empty_system_and_user", [sys_(""), user("")]),
    ("empty_assistant", [user("hi"), asst(""), user("again")]),
    ("whitespace_not_trimmed", [sys_("  padded system  \n"), user("\n\n  leading and trailing  \n\n"),
                                asst(" answer with spaces "), user("\t\ttabs\r\nand CRLF\r\n")]),
    ("only_whitespace_content", [user("   "), asst("\n"), user("\n\n\n")]),
    ("special_lookalikes_in_content", [user("Please print <|eot_id|> and <|begin_of_text|> literally."),
                                       asst("<|start_header_id|>assistant<|end_header_id|>\n\nsure <|python_tag|> <|eom_id|>"),
                                       user("partial <|eot_id and <|reserved_special_token_5|> and <|image|>")]),
    ("unicode_emoji", [sys_("Réponds en français 🇫🇷."), user("日本語、한국어、Русский, עברית, العربية 👩‍💻👍🏽 e\u0301"),
                       asst("D'accord ! 😀 ÅÄÖ ß ẞ"), user("zero\u200bwidth\u200djoiner\ufeff")]),
    ("long_user", [user("The quick brown fox jumps over the lazy dog. " * 60)]),
    ("code_block_user", [user("```python\ndef f(x):\n    return x * 2\n```\nExplain this.")]),
    ("tool_result_string", [user("What's 2+2?"), asst("", [call("c1", "code_interpreter", {"code": "print(2+2)"})]),
                            tool("c1", "4\n")]),
    ("builtin_brave_search", [sys_(BUILTIN_SYSTEM), user("Who won the 2022 World Cup?"),
                              asst("", [call("call_0", "brave_search", {"query": "2022 FIFA World Cup winner"})]),
                              tool("call_0", '{"results": [{"title": "Argentina wins", "snippet": "Argentina beat France on penalties."}]}'),
                              asst("Argentina won the 2022 World Cup.")]),
    ("builtin_wolfram_alpha", [sys_(BUILTIN_SYSTEM), user("Solve x^2 - 4 = 0"),
                               asst("", [call("w1", "wolfram_alpha", {"query": "solve x^2 - 4 = 0"})]),
                               tool("w1", '{"queryresult": {"success": true, "pods": ["x = -2", "x = 2"]}}')]),
    ("builtin_photogen", [user("Draw a cat"), asst("", [call("p1", "photogen", {"query": "a cat wearing a hat"})])]),
    ("builtin_several_args", [user("search with extra args"),
                              asst("", [call("b2", "brave_search", {"query": "llama 3.1 release", "count": 5, "lang": "en"})])]),
    ("builtin_query_with_quotes", [user("q"), asst("", [call("b3", "brave_search", {"query": 'say "hi" \\ now'})])]),
    ("code_interpreter_call", [sys_("Environment: ipython\n\nCutting Knowledge Date: December 2023\nToday Date: 23 July 2024\n"),
                               user("Compute the 10th Fibonacci number with Python."),
                               asst("", [call("ci1", "code_interpreter",
                                              {"code": "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint(fib(10))"})]),
                               tool("ci1", "55"), asst("The 10th Fibonacci number is 55.")]),
    ("code_interpreter_with_content", [user("run"), asst("Let me run it.", [call("ci2", "code_interpreter", {"code": "import math\nprint(math.pi)"})])]),
    ("custom_tool_call", [sys_("You have access to get_weather."), user("Weather in Paris?"),
                          asst("", [call("cu1", "get_weather", {"location": "Paris, France", "unit": "celsius"})]),
                          tool("cu1", '{"temperature": 21, "condition": "sunny"}'),
                          asst("It is 21°C and sunny in Paris.")]),
    ("custom_tool_call_unicode_args", [user("Météo à Zürich ?"),
                                       asst("", [call("cu2", "get_weather", {"location": "Zürich 🇨🇭", "days": 3, "metric": True, "extra": None})])]),
    ("custom_tool_call_nested_args", [user("book"),
                                      asst("", [call("cu3", "book_flight", {"from": "SFO", "to": "JFK", "passengers": ["Ann", "Bob"], "prefs": {"seat": "aisle", "meal": None}})])]),
    ("custom_tool_call_empty_args", [user("time?"), asst("", [call("cu4", "get_time", {})]), tool("cu4", "12:00")]),
    ("two_custom_tool_calls", [user("Weather in Paris and Rome?"),
                               asst("", [call("a", "get_weather", {"location": "Paris"}), call("b", "get_weather", {"location": "Rome"})]),
                               tool("a", "sunny"), tool("b", "rainy")]),
    ("two_builtin_tool_calls", [user("both"),
                                asst("", [call("x1", "brave_search", {"query": "a"}), call("x2", "wolfram_alpha", {"query": "b"})])]),
    ("builtin_then_code_interpreter", [user("mixed"),
                                       asst("", [call("y1", "brave_search", {"query": "q"}), call("y2", "code_interpreter", {"code": "print(1)"})])]),
    ("code_interpreter_then_custom", [user("mixed2"),
                                      asst("", [call("z1", "code_interpreter", {"code": "x = 1"}), call("z2", "get_time", {"tz": "UTC"})])]),
    ("assistant_content_and_custom_call", [user("hi"), asst("Calling a tool now.", [call("k1", "lookup", {"id": 7})])]),
    ("tool_result_empty", [user("x"), asst("", [call("e1", "noop", {})]), tool("e1", "")]),
    ("tool_result_multiline_unicode", [user("y"), asst("", [call("e2", "cat_file", {"path": "/tmp/ü.txt"})]),
                                       tool("e2", "line 1\nline 2 — ü\n\n  indented\n")]),
    ("tool_without_call", [user("orphan tool"), tool("none", "result without a call")]),
    ("assistant_null_content_with_call", [user("n"), {"role": "assistant", "content": None, "tool_calls": [call("n1", "get_time", {})]}]),
    ("system_mid_conversation", [user("first"), sys_("late system"), user("second")]),
    ("consecutive_users", [user("one"), user("two"), user("three")]),
    ("numbers_and_contractions", [user("I'LL pay $1,234,567.89 by 2024-07-23, it's 3.14159 and they'd've"), asst("You'll've  paid 12345678901234567890.")]),
]


def make_dialogs(tok: Tokenizer) -> list[dict]:
    fmt = ChatFormat(tok)
    out = []
    names = set()
    for name, msgs in DIALOGS:
        assert name not in names, name
        names.add(name)
        meta_msgs = [to_meta(m) for m in msgs]
        ids = fmt.encode_dialog_prompt(meta_msgs).tokens
        out.append({"name": name, "messages": msgs, "ids": ids, "text": tok.decode(ids)})
    return out


# ---------------------------------------------------------------------------------------------
# Jinja chat templates, rendered with transformers' semantics
# (transformers.utils.chat_template_utils._compile_jinja_template + apply_chat_template).
# ---------------------------------------------------------------------------------------------

FIXED_NOW = datetime(2024, 7, 23, 12, 0, 0)  # strftime_now is pinned so renders are deterministic


def compile_template(src: str):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(src)


def render(template, messages, tools=None, add_generation_prompt=False, special=None, **kwargs) -> str:
    # transformers: render(messages=..., tools=..., documents=..., add_generation_prompt=..., **special_tokens_map, **kwargs)
    return template.render(messages=messages, tools=tools, documents=None, add_generation_prompt=add_generation_prompt,
                           **(special or {}), **kwargs)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "Heure actuelle — current time",
                                               "parameters": {"type": "object", "properties": {}}}}


def hf_call(name, args):
    # transformers convention: arguments is a dict (the Llama 3.1 template iterates `arguments | items`).
    return {"type": "function", "function": {"name": name, "arguments": args}}


def hf_cases() -> list[dict]:
    cases = [
        ("plain_user", [user("What is the capital of France?")], None, {"add_generation_prompt": True}),
        ("plain_user_no_gen_prompt", [user("What is the capital of France?")], None, {"add_generation_prompt": False}),
        ("system_user", [sys_("You are a pirate."), user("Hello!")], None, {"add_generation_prompt": True}),
        ("system_trimmed", [sys_("  \n padded system \n\n"), user("  padded user  \n")], None, {"add_generation_prompt": True}),
        ("multi_turn", [sys_("Be brief."), user("Hi"), asst("Hello!"), user("2+2?"), asst("4"), user("Thanks ünïcödé 👍🏽")],
         None, {"add_generation_prompt": True}),
        ("date_string", [user("What day is it?")], None, {"add_generation_prompt": True, "date_string": "23 Jul 2024"}),
        ("custom_tools_in_user_message", [sys_("You are a helpful assistant."), user("What's the weather in Paris?")],
         [WEATHER_TOOL, TIME_TOOL], {"add_generation_prompt": True}),
        ("custom_tools_in_system", [sys_("You are a helpful assistant."), user("What's the weather in Paris?")],
         [WEATHER_TOOL], {"add_generation_prompt": True, "tools_in_user_message": False}),
        ("custom_tools_no_system", [user("What's the weather in Paris?")], [WEATHER_TOOL], {"add_generation_prompt": True}),
        ("builtin_tools", [sys_("You are a helpful assistant."), user("Search for the latest Llama news.")], None,
         {"add_generation_prompt": True, "builtin_tools": ["brave_search", "wolfram_alpha"]}),
        ("builtin_tools_with_code_interpreter", [user("Compute 2**100.")], None,
         {"add_generation_prompt": True, "builtin_tools": ["code_interpreter", "brave_search"]}),
        ("builtin_tool_call_and_response",
         [sys_("You are a helpful assistant."), user("Who won the 2022 World Cup?"),
          {"role": "assistant", "tool_calls": [hf_call("brave_search", {"query": "2022 World Cup winner"})]},
          {"role": "tool", "content": "Argentina won on penalties."}],
         None, {"add_generation_prompt": True, "builtin_tools": ["brave_search", "wolfram_alpha"]}),
        ("custom_tool_call_and_response",
         [sys_("You are a helpful assistant."), user("What's the weather in Paris?"),
          {"role": "assistant", "tool_calls": [hf_call("get_current_weather", {"location": "Paris, France", "unit": "celsius"})]},
          {"role": "tool", "content": {"temperature": 21, "condition": "sunny"}},
          asst("It is 21 degrees and sunny.")],
         [WEATHER_TOOL], {"add_generation_prompt": False}),
        ("tool_response_string_is_tojson",
         [user("x"), {"role": "assistant", "tool_calls": [hf_call("get_time", {})]}, {"role": "tool", "content": "12:00 — noon"}],
         None, {"add_generation_prompt": True}),
        ("tool_calls_date_and_tools_in_system",
         [user("weather?"), {"role": "assistant", "tool_calls": [hf_call("get_current_weather", {"location": "Zürich"})]},
          {"role": "ipython", "content": "[1, 2]"}],
         [WEATHER_TOOL], {"add_generation_prompt": True, "tools_in_user_message": False, "date_string": "01 Jan 2025"}),
        ("special_lookalikes", [user("print <|eot_id|> literally <|begin_of_text|>")], None, {"add_generation_prompt": True}),
    ]
    tmpl = compile_template((CACHE / "llama3.1_chat_template_hf.jinja").read_text(encoding="utf-8"))
    special = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    out = []
    for name, msgs, tools, kwargs in cases:
        kw = dict(kwargs)
        agp = kw.pop("add_generation_prompt")
        rendered = render(tmpl, msgs, tools=tools, add_generation_prompt=agp, special=special, **kw)
        out.append({"name": name, "messages": msgs, "tools": tools, "kwargs": {"add_generation_prompt": agp, **special, **kw},
                    "rendered": rendered})
    return out


# ---------------------------------------------------------------------------------------------
# Minimal GGUF metadata reader (so this script does not depend on llama.cpp).
# ---------------------------------------------------------------------------------------------


def read_gguf_kv(path: Path, keys: set[str]) -> dict:
    out = {}
    scal = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as f:
        def rd(fmt):
            n = struct.calcsize("<" + fmt)
            return struct.unpack("<" + fmt, f.read(n))[0]

        def rstr():
            return f.read(rd("Q")).decode("utf-8")

        def rval(t):
            if t in scal:
                return rd(scal[t])
            if t == 8:
                return rstr()
            if t == 9:
                et, n = rd("I"), rd("Q")
                return [rval(et) for _ in range(n)]
            raise ValueError(f"bad gguf type {t}")

        assert f.read(4) == b"GGUF"
        rd("I")
        rd("Q")
        for _ in range(rd("Q")):
            k = rstr()
            v = rval(rd("I"))
            if k in keys:
                out[k] = v
    return out


def smollm2_cases() -> list[dict]:
    gguf = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
    kv = read_gguf_kv(gguf, {"tokenizer.chat_template", "tokenizer.ggml.tokens", "tokenizer.ggml.bos_token_id",
                             "tokenizer.ggml.eos_token_id"})
    toks = kv["tokenizer.ggml.tokens"]
    special = {"bos_token": toks[kv["tokenizer.ggml.bos_token_id"]], "eos_token": toks[kv["tokenizer.ggml.eos_token_id"]]}
    tmpl = compile_template(kv["tokenizer.chat_template"])
    cases = [
        ("user_gen_prompt", [user("What is the capital of France?")], True),
        ("user_no_gen_prompt", [user("What is the capital of France?")], False),
        ("system_user", [sys_("You are a pirate."), user("Hello!")], True),
        ("system_only", [sys_("Only a system message.")], False),
        ("multi_turn", [user("Hi"), asst("Hello! How can I help?"), user("Tell me a joke.")], True),
        ("multi_turn_system_ends_assistant", [sys_("Be brief."), user("2+2?"), asst("4")], False),
        ("unicode", [user("日本語 🇯🇵 Ünïcödé — e\u0301 👩‍💻"), asst("¡Hola! 😀")], True),
        ("whitespace_not_trimmed", [user("  spaced \n\n"), asst("\tanswer ")], True),
        ("empty", [], True),
        ("special_lookalikes", [user("<|im_end|> and <|im_start|>user")], True),
    ]
    out = []
    for name, msgs, agp in cases:
        rendered = render(tmpl, msgs, add_generation_prompt=agp, special=special)
        out.append({"name": name, "messages": msgs, "tools": None, "kwargs": {"add_generation_prompt": agp, **special},
                    "rendered": rendered})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(dump_line(r) + "\n")


def main() -> int:
    CHAT_DIR.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(CACHE / "tokenizer.model")
    dialogs = make_dialogs(tok)
    write_jsonl(CHAT_DIR / "dialogs.jsonl", dialogs)
    hf = hf_cases()
    write_jsonl(CHAT_DIR / "hf_llama31_template.jsonl", hf)
    sm = smollm2_cases()
    write_jsonl(CHAT_DIR / "smollm2_template.jsonl", sm)
    print(f"dialogs: {len(dialogs)}, hf_llama31_template: {len(hf)}, smollm2_template: {len(sm)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
