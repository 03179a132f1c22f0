#!/usr/bin/env python3
"""Build the tokenizer golden corpus (seeded, deterministic).

Writes:
  goldens/tokenizer/corpus.jsonl            one JSON string per line
  goldens/tokenizer/corpus_categories.json  [[start, end_exclusive, category], ...] over line numbers

Inputs (from $LLAMA31_CACHE, default ~/.cache/llama31): mmlu.jsonl, HumanEval.jsonl.gz.

JSON lines are written with ensure_ascii=False (UTF-8) but U+2028, U+2029 and U+0085 are
escaped as \\uXXXX so that no line contains a Unicode line separator; split the file on
'\\n' only.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
from pathlib import Path

SEED = 20240723  # Llama 3.1 release date
CACHE = Path(os.environ.get("LLAMA31_CACHE", Path.home() / ".cache" / "llama31"))
REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "goldens" / "tokenizer"


def dump_line(obj) -> str:
    """json.dumps for one JSONL line, safe against Unicode line separators."""
    s = json.dumps(obj, ensure_ascii=False)
    for ch in ("\u2028", "\u2029", "\u0085"):
        s = s.replace(ch, "\\u%04x" % ord(ch))
    assert "\n" not in s and "\r" not in s
    return s


# Script ranges (inclusive) used for random Unicode strings.
SCRIPTS = {
    "latin": [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF)],
    "cyrillic": [(0x400, 0x4FF)],
    "greek": [(0x370, 0x3FF), (0x1F00, 0x1FFE)],
    "arabic": [(0x600, 0x6FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFC)],
    "hebrew": [(0x591, 0x5F4)],
    "devanagari": [(0x900, 0x97F)],
    "thai": [(0xE01, 0xE5B)],
    "cjk": [(0x4E00, 0x9FFF), (0x3400, 0x4DBF)],
    "hangul": [(0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F)],
    "kana": [(0x3041, 0x3096), (0x30A1, 0x30FA), (0xFF66, 0xFF9D)],
    "combining": [(0x300, 0x36F), (0x1AB0, 0x1AFF), (0x20D0, 0x20FF)],
    "marks": [(0x200B, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069), (0xFEFF, 0xFEFF)],
    "rare_planes": [
        (0x10000, 0x1007F),  # Linear B
        (0x1D400, 0x1D7FF),  # math alphanumerics
        (0x20000, 0x2A6DF),  # CJK ext B
        (0x1F000, 0x1F02B),  # mahjong
        (0xE0020, 0xE007F),  # tags
        (0xF0000, 0xF00FF),  # supplementary private use A
        (0x10FF00, 0x10FFFD),  # supplementary private use B
        (0x13000, 0x1342F),  # egyptian hieroglyphs
    ],
    "digits_other": [
        (0x660, 0x669),  # Arabic-Indic
        (0x6F0, 0x6F9),  # Extended Arabic-Indic
        (0x966, 0x96F),  # Devanagari
        (0xE50, 0xE59),  # Thai
        (0xFF10, 0xFF19),  # fullwidth
        (0x2460, 0x249B),  # circled/parenthesized numbers
        (0x2150, 0x218B),  # number forms (roman numerals, fractions)
        (0x1D7CE, 0x1D7FF),  # math digits
        (0xB2, 0xB3),  # superscripts
        (0x2070, 0x2089),
    ],
    "punct_symbols": [(0x21, 0x2F), (0x3A, 0x40), (0x2010, 0x205E), (0x2190, 0x23FF), (0x3000, 0x303F), (0xFF01, 0xFF0F)],
    "fullwidth_latin": [(0xFF21, 0xFF3A), (0xFF41, 0xFF5A)],
}


def rand_char(rng: random.Random, script: str) -> str:
    lo, hi = rng.choice(SCRIPTS[script])
    cp = rng.randint(lo, hi)
    if 0xD800 <= cp <= 0xDFFF:  # never emit surrogates
        cp = 0xFFFD
    return chr(cp)


def rand_unicode(rng: random.Random) -> str:
    """A short string mixing scripts, ASCII, spaces and marks."""
    n_parts = rng.randint(1, 6)
    parts = []
    for _ in range(n_parts):
        script = rng.choice(list(SCRIPTS))
        k = rng.randint(1, 12)
        word = "".join(rand_char(rng, script) for _ in range(k))
        parts.append(word)
        parts.append(rng.choice([" ", " ", " ", "", "\n", ", ", ". ", "\t", "  ", "\u00a0", "\u3000", "'s ", "-"]))
    s = "".join(parts)
    if rng.random() < 0.3:
        s = s.strip()
    return s


def single_script(rng: random.Random, script: str) -> str:
    words = []
    for _ in range(rng.randint(1, 8)):
        words.append("".join(rand_char(rng, script) for _ in range(rng.randint(1, 10))))
    return " ".join(words)


SKIN = ["\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]
BASE_EMOJI = ["\U0001F44D", "\U0001F44B", "\U0001F590", "\U0001F9D1", "\U0001F469", "\U0001F468", "\U0001F476",
              "\U0001F600", "\U0001F602", "\U0001F525", "\U0001F680", "\u2764\ufe0f", "\u2705", "\U0001F389",
              "\U0001F914", "\U0001F4A9", "\U0001F43C", "\U0001F355", "\u263A", "\u2614", "\U0001FAE0"]
ZWJ_SEQS = [
    "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466",  # family
    "\U0001F469\u200D\U0001F4BB",  # woman technologist
    "\U0001F3F3\uFE0F\u200D\U0001F308",  # rainbow flag
    "\U0001F9D1\U0001F3FD\u200D\U0001F680",  # astronaut medium skin
    "\U0001F441\uFE0F\u200D\U0001F5E8\uFE0F",  # eye in speech bubble
    "\u2764\uFE0F\u200D\U0001F525",  # heart on fire
    "\U0001F468\U0001F3FF\u200D\U0001F91D\u200D\U0001F468\U0001F3FB",
]
FLAGS = ["FR", "US", "JP", "DE", "BR", "IN", "CN", "KR", "UA", "ZA", "NZ", "IL", "EG"]
TAG_FLAG_SCOTLAND = "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"
KEYCAPS = ["1\uFE0F\u20E3", "#\uFE0F\u20E3", "*\u20E3"]


def flag(cc: str) -> str:
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in cc)


def rand_emoji(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.25:
            out.append(rng.choice(BASE_EMOJI))
        elif r < 0.45:
            out.append(rng.choice(BASE_EMOJI[:7]) + rng.choice(SKIN))
        elif r < 0.65:
            out.append(rng.choice(ZWJ_SEQS))
        elif r < 0.8:
            out.append(flag(rng.choice(FLAGS)))
        elif r < 0.85:
            out.append(TAG_FLAG_SCOTLAND)
        elif r < 0.9:
            out.append(rng.choice(KEYCAPS))
        else:
            out.append(rng.choice(["hello", "ok", "Yes!", "lol", "  ", " ", "\n", "über", "日本"]))
        if rng.random() < 0.4:
            out.append(" ")
    return "".join(out)


WS = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", "\u200b", "\x0b", "\x0c", "\u2028", "\u1680", "\u0085"]


def rand_whitespace(rng: random.Random) -> str:
    mode = rng.randint(0, 5)
    if mode == 0:  # pure run of one kind
        return rng.choice(WS) * rng.randint(1, 40)
    if mode == 1:  # mixed run
        return "".join(rng.choice(WS) for _ in range(rng.randint(1, 30)))
    words = ["hello", "world", "The", "x", "42", "fn", "{", "}", "über", "Привет", "def", "end", "!"]
    parts = []
    for _ in range(rng.randint(1, 6)):
        parts.append("".join(rng.choice(WS) for _ in range(rng.randint(0, 6))))
        parts.append(rng.choice(words))
    parts.append("".join(rng.choice(WS) for _ in range(rng.randint(0, 6))))
    return "".join(parts)


def rand_number(rng: random.Random) -> str:
    mode = rng.randint(0, 7)
    n = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 20, 25, 31, 40, 64, 100])
    digits = "".join(rng.choice("0123456789") for _ in range(n))
    if mode == 0:
        return digits
    if mode == 1:
        return f"{rng.choice(['', '-', '+', ' ', '$'])}{digits}.{rng.randint(0, 99999)}"
    if mode == 2:
        return f"{rng.randint(0, 10**9):,}"
    if mode == 3:
        return f"{rng.random() * 10 ** rng.randint(-10, 10):e}"
    if mode == 4:
        return " ".join(str(rng.randint(0, 10 ** rng.randint(1, 8))) for _ in range(rng.randint(2, 8)))
    if mode == 5:
        return f"{rng.randint(1900, 2099)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    if mode == 6:
        return f"0x{rng.getrandbits(rng.choice([8, 16, 32, 64])):x} v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}"
    return f"abc{digits}def {digits}x"


CONTRACTION_WORDS = ["it", "IT", "It", "they", "THEY", "we", "We", "you", "YOU", "I", "she", "He", "John", "JOHN", "don", "DON", "can", "x"]
CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll", "'d", "'D",
                "\u2019s", "\u2019ll", "'x", "''s", "'", "'sa", "'lll", "'dd"]


def rand_contraction(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 5)):
        parts.append(rng.choice(CONTRACTION_WORDS) + rng.choice(CONTRACTIONS))
    sep = rng.choice([" ", " ", "", "\n", "  "])
    return sep.join(parts)


CODE_SNIPPETS = [
    "fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "for (let i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "def f(x):\n    return x ** 2  # square\n\n\n\nclass A:\n    pass\n",
    "<html>\n  <body>\n    <p class=\"x\">Hi &amp; bye</p>\n  </body>\n</html>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "x := map[string]int{\"a\": 1}\nif v, ok := x[\"a\"]; ok {\n\tfmt.Println(v)\n}",
    "    \n    \n\t\tindented\r\n\r\n",
    "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=6;g>>=7;h&&=i||j",
    "$ ls -la | grep '^d' && echo \"done\" >> /tmp/log.txt 2>&1",
    "lambda x: [y for y in range(x) if y % 2 == 0]",
    "#!/usr/bin/env bash\nset -euo pipefail\nIFS=$'\\n\\t'\n",
    "\\begin{equation} E = mc^2 \\end{equation}",
    "// comment with unicode: λ → ∀x∈ℝ\nlet λ = |x| x + 1;",
    "matrix = [[1,2,3],[4,5,6]]\nprint(matrix[0][-1])",
    "```python\nprint('hi')\n```",
    "key: value\nlist:\n  - a\n  - b\n",
]


def rand_code(rng: random.Random) -> str:
    k = rng.randint(1, 3)
    return "".join(rng.choice(CODE_SNIPPETS) for _ in range(k))


def rand_url(rng: random.Random) -> str:
    scheme = rng.choice(["https", "http", "ftp", "file", "ssh"])
    host = rng.choice(["example.com", "www.example.org", "sub.domain.co.uk", "127.0.0.1:8080", "[::1]:443",
                       "xn--bcher-kva.example", "bücher.example", "例え.jp"])
    path = "/".join(rng.choice(["api", "v1", "users", "%20", "file.tar.gz", "~me", "a_b-c", "UPPER", "123", "🙂"])
                    for _ in range(rng.randint(0, 5)))
    q = "" if rng.random() < 0.5 else "?" + "&".join(f"{rng.choice(['q', 'id', 'lang'])}={rng.randint(0, 999)}" for _ in range(rng.randint(1, 3)))
    frag = "" if rng.random() < 0.7 else "#section-" + str(rng.randint(1, 9))
    s = f"{scheme}://{host}/{path}{q}{frag}"
    if rng.random() < 0.3:
        s = f"See <{s}> or email user.name+tag@example.com."
    return s


SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|finetune_right_pad_id|>", "<|step_id|>", "<|image|>",
            "<|reserved_special_token_0|>", "<|reserved_special_token_5|>", "<|reserved_special_token_247|>",
            "<|reserved_special_token_250|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>"]
PARTIAL_SPECIALS = ["<|eot_id", "<|eot_id|", "eot_id|>", "<|begin_of_text", "|>", "<|", "<| eot_id |>", "<|EOT_ID|>",
                    "<|python_tag", "<<|eot_id|>>", "<|reserved_special_token_5", "<|reserved_special_token_|>",
                    "<|reserved_special_token_256|>", "< |eot_id|>", "<|start_header_id|>user<|end_header_id|>"]


def rand_special(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 5)):
        r = rng.random()
        if r < 0.45:
            parts.append(rng.choice(SPECIALS))
        elif r < 0.75:
            parts.append(rng.choice(PARTIAL_SPECIALS))
        else:
            parts.append(rng.choice(["Hello", " world", "\n\n", " ", "user", "assistant", "ipython", "x"]))
    return "".join(parts)


EDGE_CASES = [
    "", " ", "  ", "\n", "\n\n", "\r\n", "\t", "a", "A", "0", "'", "'s", "s'", "\u00a0", "\u3000", "\u200d",
    "\ufeff", "\ufeffBOM at start", "\ufffd", "\ufffe\uffff", "\U0010FFFF", "\U000E0001", "\x00", "\x00\x01\x02\x7f",
    "\x1b[31mred\x1b[0m", "e\u0301", "\u00e9", "\u1e9b\u0323", "\ufb01", "Å", "\u212b", "ﬀ", "İstanbul", "ß", "ẞ",
    "\u0130\u0131", "ǅ", "\u2126", "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309\u030a",
    "\u202eRTL override\u202c", "\u200fhello\u200e", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "你好，世界！", "안녕하세요 세계", "こんにちは世界", "ｶﾀｶﾅ", "Здравствуй, мир!", "Γειά σου Κόσμε",
    "hello\u200dworld", "zero\u200bwidth\u200bspace", "\u2060word\u2060joiner",
    " leading", "trailing ", "  both  ", "\n\nleading newlines", "trailing newlines\n\n", " \n \n ",
    "a\r\nb\rc\nd", "\r\r\r\n\n\n", "tab\there", "\t\t\tx", "x\t\t\t",
    "1234567890", "12345678901234567890", "3.14159", "-0", "1e-10", "٣٤٥", "１２３", "½¼¾",
    "!!!", "...", "???!!!", "——", "\"quoted\"", "''", "``", "~~~", "@#$%^&*()", "<>", "</", "/>", "&nbsp;",
    "Hello, World!", "HELLO", "hello", "hElLo", "The quick brown fox jumps over the lazy dog.",
]


def long_runs() -> list[tuple[str, str]]:
    n = 30_000
    mixed = ("abc def 123 " * (n // 12 + 1))[:n]
    return [
        ("long_spaces", " " * n),
        ("long_letters", "a" * n),
        ("long_digits", "7" * n),
        ("long_emoji", "\U0001F600" * (n // 4)),  # 7,500 emoji: the run is short in chars, long in bytes
        ("long_mixed", mixed),
        ("long_nospace_mixed", ("xY9_" * (n // 4 + 1))[:n]),
        ("long_newlines", "\n" * 2000 + "end"),
        ("split_boundary", "b" * 25_000 + " " + "c" * 25_001),
    ]


def main() -> int:
    rng = random.Random(SEED)
    items: list[tuple[str, str]] = []

    def add(cat: str, s: str) -> None:
        assert isinstance(s, str)
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
        items.append((cat, s))

    for s in EDGE_CASES:
        add("edge", s)

    # MMLU: question + lettered choices, and bare choices.
    mmlu = [json.loads(line) for line in (CACHE / "mmlu.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    picks = rng.sample(range(len(mmlu)), 1100)
    for i, idx in enumerate(picks):
        row = mmlu[idx]
        if i < 800:
            s = row["question"] + "".join(f"\n{L}. {row['answer_' + L.lower()]}" for L in "ABCD") + "\nAnswer:"
            add("mmlu_question", s)
        else:
            add("mmlu_choice", row["answer_" + rng.choice("abcd")])

    # HumanEval prompts + canonical solutions.
    with gzip.open(CACHE / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as f:
        he = [json.loads(line) for line in f if line.strip()]
    for row in he:
        add("humaneval_prompt", row["prompt"])
        add("humaneval_solution", row["canonical_solution"])

    for script in SCRIPTS:
        for _ in range(25):
            add(f"script_{script}", single_script(rng, script))
    for _ in range(400):
        add("unicode_mixed", rand_unicode(rng))
    for _ in range(200):
        add("emoji", rand_emoji(rng))
    for _ in range(200):
        add("whitespace", rand_whitespace(rng))
    for _ in range(200):
        add("numbers", rand_number(rng))
    for _ in range(150):
        add("contractions", rand_contraction(rng))
    for _ in range(100):
        add("code", rand_code(rng))
    for _ in range(100):
        add("urls", rand_url(rng))
    for s in SPECIALS + PARTIAL_SPECIALS:
        add("special_lookalike", s)
    for _ in range(80):
        add("special_lookalike", rand_special(rng))
    for name, s in long_runs():
        add(name, s)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    cats: list[list] = []
    with open(OUT_DIR / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for i, (cat, s) in enumerate(items):
            f.write(dump_line(s) + "\n")
            if cats and cats[-1][2] == cat and cats[-1][1] == i:
                cats[-1][1] = i + 1
            else:
                cats.append([i, i + 1, cat])
    with open(OUT_DIR / "corpus_categories.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(cats, f, indent=0)
        f.write("\n")
    print(f"wrote {len(items)} strings to {OUT_DIR / 'corpus.jsonl'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
