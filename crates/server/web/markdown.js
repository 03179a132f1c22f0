// Markdown to DOM for the model's replies: headings, paragraphs, emphasis, inline code, fenced
// code blocks (highlighted), lists (nested), block quotes, tables, rules and links.
//
// Everything the model wrote becomes text nodes: no string is ever parsed as HTML, so markup in
// a reply shows as the characters it is. Links are made only for http and https URLs.
"use strict";

(function () {
  const LIST_RE = /^( *)([-*+]|\d{1,9}[.)])(?: +(.*)|$)/;
  const FENCE_RE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
  const HEADING_RE = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*$/;
  const HR_RE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const QUOTE_RE = /^ {0,3}> ?/;
  const TABLE_SEP_RE = /^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;
  const SAFE_URL_RE = /^https?:\/\/[^\s]+$/i;

  function el(tag, cls) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    return e;
  }

  const blank = (l) => /^\s*$/.test(l);
  const lead = (l) => /^ */.exec(l)[0].length;

  function isTableStart(lines, i) {
    return (
      i + 1 < lines.length &&
      lines[i].includes("|") &&
      lines[i + 1].includes("-") &&
      lines[i + 1].includes("|") === true &&
      TABLE_SEP_RE.test(lines[i + 1])
    );
  }

  function startsBlock(lines, i) {
    const l = lines[i];
    return (
      FENCE_RE.test(l) ||
      HEADING_RE.test(l) ||
      HR_RE.test(l) ||
      QUOTE_RE.test(l) ||
      LIST_RE.test(l) ||
      isTableStart(lines, i)
    );
  }

  // A fenced code block with its language and a copy button.
  function codeBlock(code, lang) {
    const wrap = el("div", "codeblock");
    const head = el("div", "codehead");
    const name = el("span", "lang");
    name.textContent = lang || "text";
    const copy = el("button", "copy");
    copy.type = "button";
    copy.textContent = "Copy";
    head.append(name, copy);
    const pre = el("pre");
    const c = el("code");
    if (lang) c.dataset.lang = lang;
    if (window.Highlight) window.Highlight.highlightInto(c, code, lang);
    else c.textContent = code;
    pre.appendChild(c);
    wrap.append(head, pre);
    return wrap;
  }

  function splitRow(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
    const cells = [];
    let cur = "";
    let inCode = false;
    for (let i = 0; i < s.length; i++) {
      const ch = s[i];
      if (ch === "\\" && s[i + 1] === "|") {
        cur += "|";
        i++;
      } else if (ch === "`") {
        inCode = !inCode;
        cur += ch;
      } else if (ch === "|" && !inCode) {
        cells.push(cur.trim());
        cur = "";
      } else cur += ch;
    }
    cells.push(cur.trim());
    return cells;
  }

  function table(lines, i, out) {
    const header = splitRow(lines[i]);
    const aligns = splitRow(lines[i + 1]).map((c) =>
      c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : ""
    );
    const t = el("table");
    const thead = el("thead");
    const tbody = el("tbody");
    const row = (cells, tag, parent) => {
      const tr = el("tr");
      for (let k = 0; k < header.length; k++) {
        const cell = el(tag);
        if (aligns[k]) cell.className = "align-" + aligns[k];
        inline(cells[k] || "", cell);
        tr.appendChild(cell);
      }
      parent.appendChild(tr);
    };
    row(header, "th", thead);
    i += 2;
    while (i < lines.length && !blank(lines[i]) && lines[i].includes("|")) {
      row(splitRow(lines[i]), "td", tbody);
      i++;
    }
    t.append(thead, tbody);
    const wrap = el("div", "table-wrap");
    wrap.appendChild(t);
    out.push(wrap);
    return i;
  }

  function list(lines, i, out) {
    const first = LIST_RE.exec(lines[i]);
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    const sameKind = (m) => m && m[1].length === indent && /\d/.test(m[2]) === ordered;
    const node = el(ordered ? "ol" : "ul");
    if (ordered) {
      const start = parseInt(first[2], 10);
      if (start !== 1 && Number.isFinite(start)) node.start = start;
    }
    let loose = false;
    const items = [];
    while (i < lines.length) {
      const m = LIST_RE.exec(lines[i]);
      if (!sameKind(m)) break;
      const contentIndent = indent + m[2].length + 1;
      const item = [m[3] || ""];
      i++;
      while (i < lines.length) {
        const l = lines[i];
        if (blank(l)) {
          let k = i + 1;
          while (k < lines.length && blank(lines[k])) k++;
          if (k < lines.length && lead(lines[k]) > indent) {
            item.push("");
            loose = true;
            i++;
            continue;
          }
          break;
        }
        if (lead(l) > indent) {
          item.push(l.slice(Math.min(lead(l), contentIndent)));
          i++;
          continue;
        }
        if (!startsBlock(lines, i) && !blank(item[item.length - 1])) {
          item.push(l);
          i++;
          continue;
        }
        break;
      }
      items.push(item);
      // Blank lines between two items of this list.
      let k = i;
      while (k < lines.length && blank(lines[k])) k++;
      if (k > i && k < lines.length && sameKind(LIST_RE.exec(lines[k]))) {
        loose = true;
        i = k;
      }
    }
    for (const item of items) {
      const li = el("li");
      for (const b of blocks(item)) {
        if (!loose && b.tagName === "P") {
          if (li.lastChild && li.lastChild.nodeName === "#text") li.appendChild(el("br"));
          li.append(...b.childNodes);
        } else li.appendChild(b);
      }
      node.appendChild(li);
    }
    out.push(node);
    return i;
  }

  // The block nodes of `lines`.
  function blocks(lines) {
    const out = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (blank(line)) {
        i++;
        continue;
      }
      let m = FENCE_RE.exec(line);
      if (m) {
        const fence = m[1];
        const close = new RegExp("^ {0,3}" + (fence[0] === "`" ? "`" : "~") + "{" + fence.length + ",}\\s*$");
        const body = [];
        i++;
        while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
        i++;
        out.push(codeBlock(body.join("\n"), m[2]));
        continue;
      }
      m = HEADING_RE.exec(line);
      if (m) {
        const h = el("h" + m[1].length);
        inline((m[2] || "").replace(/\s+#+$/, ""), h);
        out.push(h);
        i++;
        continue;
      }
      if (HR_RE.test(line)) {
        out.push(el("hr"));
        i++;
        continue;
      }
      if (QUOTE_RE.test(line)) {
        const inner = [];
        while (i < lines.length && QUOTE_RE.test(lines[i])) inner.push(lines[i++].replace(QUOTE_RE, ""));
        const q = el("blockquote");
        q.append(...blocks(inner));
        out.push(q);
        continue;
      }
      if (isTableStart(lines, i)) {
        i = table(lines, i, out);
        continue;
      }
      if (LIST_RE.test(line) && (LIST_RE.exec(line)[3] || "").length > 0) {
        i = list(lines, i, out);
        continue;
      }
      const para = [line.trim()];
      i++;
      while (i < lines.length && !blank(lines[i]) && !startsBlock(lines, i)) para.push(lines[i++].trim());
      const p = el("p");
      inline(para.join("\n"), p);
      out.push(p);
    }
    return out;
  }

  // Where an emphasis run opened at `from` closes, or -1.
  function closing(text, mark, from) {
    let j = text.indexOf(mark, from);
    while (j >= 0) {
      // Skip past a longer run so `***x***` closes at its last two stars.
      while (text.startsWith(mark[0], j + mark.length) && mark.length < 3) j++;
      const before = text[j - 1];
      const after = text[j + mark.length];
      const okAfter = mark[0] !== "_" || !after || !/[A-Za-z0-9]/.test(after);
      if (j > from && before && !/\s/.test(before) && okAfter) return j;
      j = text.indexOf(mark, j + 1);
    }
    return -1;
  }

  function link(href, children) {
    if (!SAFE_URL_RE.test(href)) {
      const s = el("span", "unsafe-link");
      s.append(...children);
      return s;
    }
    const a = el("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    a.append(...children);
    return a;
  }

  const LINK_RE = /^\[((?:[^\[\]\\]|\\.|\[[^\]]*\])*)\]\(\s*<?([^\s<>()]*(?:\([^\s<>()]*\)[^\s<>()]*)*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/;
  const AUTO_RE = /^https?:\/\/[^\s<>"'`]+/i;

  // Appends the inline nodes of `text` to `parent`.
  function inline(text, parent) {
    let buf = "";
    const flush = () => {
      if (buf) parent.appendChild(document.createTextNode(buf));
      buf = "";
    };
    const wrapped = (tag, inner) => {
      flush();
      const e = el(tag);
      inline(inner, e);
      parent.appendChild(e);
    };
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === "\\" && /[!-/:-@[-`{-~]/.test(text[i + 1] || "")) {
        buf += text[i + 1];
        i += 2;
        continue;
      }
      if (c === "\n") {
        flush();
        parent.appendChild(el("br"));
        i++;
        continue;
      }
      if (c === "`") {
        const run = /^`+/.exec(text.slice(i))[0];
        let j = text.indexOf(run, i + run.length);
        while (j >= 0 && text[j + run.length] === "`") {
          j = text.indexOf(run, j + run.length + 1);
        }
        if (j >= 0) {
          flush();
          const code = el("code");
          let inner = text.slice(i + run.length, j);
          if (/^ .* $/.test(inner) && inner.trim()) inner = inner.slice(1, -1);
          code.textContent = inner;
          parent.appendChild(code);
          i = j + run.length;
        } else {
          buf += run;
          i += run.length;
        }
        continue;
      }
      if (c === "*" || c === "_" || c === "~") {
        const double = text[i + 1] === c;
        const prev = text[i - 1];
        const intraword = c === "_" && prev && /[A-Za-z0-9]/.test(prev);
        if (!intraword && (double || c !== "~")) {
          const mark = double ? c + c : c;
          const start = i + mark.length;
          if (text[start] && !/\s/.test(text[start])) {
            const j = closing(text, mark, start);
            if (j > start) {
              wrapped(c === "~" ? "del" : double ? "strong" : "em", text.slice(start, j));
              i = j + mark.length;
              continue;
            }
          }
        }
        buf += c;
        i++;
        continue;
      }
      if (c === "[" || (c === "!" && text[i + 1] === "[")) {
        const img = c === "!";
        const m = LINK_RE.exec(text.slice(img ? i + 1 : i));
        if (m) {
          flush();
          const holder = el("span");
          inline(m[1] || (img ? "image" : m[2]), holder);
          parent.appendChild(link(m[2], [...holder.childNodes]));
          i += m[0].length + (img ? 1 : 0);
          continue;
        }
      }
      if ((c === "h" || c === "H") && (!text[i - 1] || /[\s(*_]/.test(text[i - 1]))) {
        const m = AUTO_RE.exec(text.slice(i, i + 2048));
        if (m) {
          const url = m[0].replace(/[.,;:!?)*_]+$/, "");
          flush();
          parent.appendChild(link(url, [document.createTextNode(url)]));
          i += url.length;
          continue;
        }
      }
      if (c === "<") {
        const m = /^<(https?:\/\/[^\s<>]+)>/i.exec(text.slice(i, i + 2048));
        if (m) {
          flush();
          parent.appendChild(link(m[1], [document.createTextNode(m[1])]));
          i += m[0].length;
          continue;
        }
      }
      buf += c;
      i++;
    }
    flush();
  }

  // Replaces the children of `container` with the rendering of `src`.
  function render(src, container) {
    const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
    container.replaceChildren(...blocks(lines));
  }

  window.Markdown = { render, inline };
})();
