// A small syntax highlighter for code blocks: keywords, strings, comments, numbers, function
// names and types for common languages. It builds DOM nodes (text only, never HTML).
"use strict";

(function () {
  const words = (s) => new Set(s.split(/\s+/).filter(Boolean));

  const C_LIKE_KW =
    "auto break case char const continue default do double else enum extern float for goto if " +
    "inline int long register return short signed sizeof static struct switch typedef union " +
    "unsigned void volatile while bool true false NULL nullptr";
  const LANGS = {
    js: {
      kw: words(
        "async await break case catch class const continue debugger default delete do else " +
          "export extends finally for from function if import in instanceof let new of return " +
          "static super switch this throw try typeof var void while yield true false null " +
          "undefined interface type enum implements readonly private public protected as"
      ),
      line: ["//"],
      block: [["/*", "*/"]],
      quotes: ['"', "'", "`"],
    },
    python: {
      kw: words(
        "and as assert async await break class continue def del elif else except finally for " +
          "from global if import in is lambda nonlocal not or pass raise return try while with " +
          "yield True False None self match case"
      ),
      line: ["#"],
      block: [],
      quotes: ['"""', "'''", '"', "'"],
    },
    rust: {
      kw: words(
        "as async await break const continue crate dyn else enum extern false fn for if impl in " +
          "let loop match mod move mut pub ref return self Self static struct super trait true " +
          "type unsafe use where while Some None Ok Err"
      ),
      line: ["//"],
      block: [["/*", "*/"]],
      quotes: ['"'],
    },
    c: {
      kw: words(
        C_LIKE_KW +
          " class namespace template typename public private protected virtual override new " +
          "delete this throw try catch using operator constexpr include define"
      ),
      line: ["//"],
      block: [["/*", "*/"]],
      quotes: ['"', "'"],
    },
    java: {
      kw: words(
        "abstract assert boolean break byte case catch char class const continue default do " +
          "double else enum extends final finally float for if implements import instanceof int " +
          "interface long native new package private protected public return short static super " +
          "switch synchronized this throw throws try void volatile while true false null var " +
          "fun val when object override"
      ),
      line: ["//"],
      block: [["/*", "*/"]],
      quotes: ['"', "'"],
    },
    go: {
      kw: words(
        "break case chan const continue default defer else fallthrough for func go goto if " +
          "import interface map package range return select struct switch type var true false nil"
      ),
      line: ["//"],
      block: [["/*", "*/"]],
      quotes: ['"', "'", "`"],
    },
    shell: {
      kw: words(
        "if then else elif fi for while until do done case esac in function return export " +
          "local echo cd exit set unset source"
      ),
      line: ["#"],
      block: [],
      quotes: ['"', "'"],
    },
    sql: {
      kw: words(
        "select from where insert into values update set delete create table drop alter index " +
          "join left right inner outer on group by order having limit offset as and or not null " +
          "primary key foreign references distinct union all case when then else end is in like"
      ),
      line: ["--"],
      block: [["/*", "*/"]],
      quotes: ["'", '"'],
      nocase: true,
    },
    json: {
      kw: words("true false null"),
      line: [],
      block: [],
      quotes: ['"'],
    },
  };
  const ALIASES = {
    javascript: "js", ts: "js", typescript: "js", jsx: "js", tsx: "js", mjs: "js", node: "js",
    py: "python", python3: "python", rs: "rust", cpp: "c", "c++": "c", cc: "c", h: "c",
    hpp: "c", cs: "java", csharp: "java", kotlin: "java", kt: "java", golang: "go", sh: "shell",
    bash: "shell", zsh: "shell", console: "shell", postgres: "sql", mysql: "sql",
    sqlite: "sql",
  };

  function lookup(lang) {
    const l = (lang || "").toLowerCase();
    return LANGS[l] || LANGS[ALIASES[l]] || null;
  }

  function span(cls, text) {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  }

  // Splits `code` into [class, text] tokens (class "" for plain text).
  function tokenize(code, spec) {
    const out = [];
    let plain = "";
    const flush = () => {
      if (plain) out.push(["", plain]);
      plain = "";
    };
    const push = (cls, text) => {
      flush();
      out.push([cls, text]);
    };
    let i = 0;
    const n = code.length;
    outer: while (i < n) {
      for (const l of spec.line) {
        if (code.startsWith(l, i)) {
          // `#` starts a shell comment only at a word start (not inside `$#` or `a#b`).
          if (l === "#" && i > 0 && !/\s/.test(code[i - 1])) break;
          let end = code.indexOf("\n", i);
          if (end < 0) end = n;
          push("tok-com", code.slice(i, end));
          i = end;
          continue outer;
        }
      }
      for (const [open, close] of spec.block) {
        if (code.startsWith(open, i)) {
          let end = code.indexOf(close, i + open.length);
          end = end < 0 ? n : end + close.length;
          push("tok-com", code.slice(i, end));
          i = end;
          continue outer;
        }
      }
      for (const q of spec.quotes) {
        if (code.startsWith(q, i)) {
          let j = i + q.length;
          while (j < n) {
            if (code[j] === "\\" && q.length === 1) {
              j += 2;
              continue;
            }
            if (code.startsWith(q, j)) {
              j += q.length;
              break;
            }
            if (code[j] === "\n" && q.length === 1 && q !== "`") break;
            j++;
          }
          push("tok-str", code.slice(i, Math.min(j, n)));
          i = Math.min(j, n);
          continue outer;
        }
      }
      const rest = code.slice(i, i + 64);
      const num = /^(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)[a-zA-Z0-9_]*/.exec(rest);
      if (num && (i === 0 || !/[\w$]/.test(code[i - 1]))) {
        push("tok-num", num[0]);
        i += num[0].length;
        continue;
      }
      const id = /^[A-Za-z_$][\w$]*/.exec(code.slice(i, i + 256));
      if (id) {
        const w = id[0];
        const after = code.slice(i + w.length, i + w.length + 2);
        if (spec.kw.has(spec.nocase ? w.toLowerCase() : w)) push("tok-kw", w);
        else if (/^!?\(/.test(after)) push("tok-fn", w);
        else if (/^[A-Z][a-z0-9]/.test(w)) push("tok-ty", w);
        else plain += w;
        i += w.length;
        continue;
      }
      plain += code[i];
      i++;
    }
    flush();
    return out;
  }

  // Fills `el` (a <code>) with `code`, highlighted when `lang` is known.
  function highlightInto(el, code, lang) {
    const spec = lookup(lang);
    if (!spec) {
      el.textContent = code;
      return;
    }
    const frag = document.createDocumentFragment();
    for (const [cls, text] of tokenize(code, spec)) {
      frag.appendChild(cls ? span(cls, text) : document.createTextNode(text));
    }
    el.replaceChildren(frag);
  }

  window.Highlight = { highlightInto, tokenize, lookup };
})();
