// The chat page: conversations in localStorage, streamed replies from /v1/chat/completions,
// settings, the API key, tool calls and per-reply token counts.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const KEYS = {
    conversations: "llama31.conversations",
    current: "llama31.current",
    settings: "llama31.settings",
    apiKey: "llama31.apiKey",
  };
  const DEFAULT_SETTINGS = {
    system: "",
    temperature: "",
    top_p: "",
    max_tokens: "",
    seed: "",
    tools: "",
    tool_choice: "",
    model: "",
  };

  function load(key, fallback) {
    try {
      const v = localStorage.getItem(key);
      return v == null ? fallback : JSON.parse(v);
    } catch (e) {
      return fallback;
    }
  }

  function store(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      setStatus("Could not save to this browser's storage: " + e.message, true);
    }
  }

  let conversations = load(KEYS.conversations, []);
  if (!Array.isArray(conversations)) conversations = [];
  conversations = conversations.filter(
    (c) => c && typeof c.id === "string" && Array.isArray(c.messages)
  );
  let currentId = load(KEYS.current, null);
  let settings = Object.assign({}, DEFAULT_SETTINGS, load(KEYS.settings, {}));
  let apiKey = localStorage.getItem(KEYS.apiKey) || "";
  let models = [];
  // The reply being streamed: {controller, conv, msg, el}.
  let live = null;

  const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  const current = () => conversations.find((c) => c.id === currentId) || null;

  function saveConversations() {
    store(KEYS.conversations, conversations);
    store(KEYS.current, currentId);
  }

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text || "";
    s.classList.toggle("error", !!isError);
  }

  function titleFrom(text) {
    const line = text.trim().split("\n")[0].trim();
    return line.length > 48 ? line.slice(0, 47) + "…" : line || "New chat";
  }

  function authHeaders() {
    const h = { "Content-Type": "application/json" };
    if (apiKey) h.Authorization = "Bearer " + apiKey;
    return h;
  }

  async function errorMessage(resp) {
    try {
      const v = await resp.json();
      if (v && v.error && v.error.message) return v.error.message;
    } catch (e) {
      // Not JSON: fall through to the status line.
    }
    return "HTTP " + resp.status + " " + resp.statusText;
  }

  // ---- The API key ----

  let keyWaiters = null;

  // Shows the key dialog; resolves once a key the server accepts is stored.
  function askForKey() {
    if (keyWaiters) return new Promise((r) => keyWaiters.push(r));
    keyWaiters = [];
    const d = $("key-dialog");
    $("key-error").hidden = true;
    $("key-input").value = "";
    if (!d.open) d.showModal();
    setStatus("API key required", true);
    return new Promise((r) => keyWaiters.push(r));
  }

  $("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    const resp = await fetch("/v1/models", { headers: { Authorization: "Bearer " + key } }).catch(
      () => null
    );
    if (!resp || resp.status === 401) {
      const err = $("key-error");
      err.textContent = resp ? "The server refused this key." : "The server is not reachable.";
      err.hidden = false;
      return;
    }
    apiKey = key;
    localStorage.setItem(KEYS.apiKey, key);
    $("key-dialog").close();
    $("input").focus();
    setStatus("");
    const waiters = keyWaiters || [];
    keyWaiters = null;
    waiters.forEach((r) => r());
  });
  $("key-dialog").addEventListener("cancel", (ev) => ev.preventDefault());

  // ---- Models ----

  async function loadModels() {
    let resp;
    try {
      resp = await fetch("/v1/models", { headers: authHeaders() });
    } catch (e) {
      setStatus("The server is not reachable.", true);
      return;
    }
    if (resp.status === 401) {
      await askForKey();
      return loadModels();
    }
    if (!resp.ok) {
      setStatus(await errorMessage(resp), true);
      return;
    }
    const v = await resp.json();
    models = (v.data || []).map((m) => m.id).filter((id) => typeof id === "string");
    const sel = $("model");
    sel.replaceChildren(
      ...models.map((id) => {
        const o = document.createElement("option");
        o.value = id;
        o.textContent = id;
        return o;
      })
    );
    if (models.includes(settings.model)) sel.value = settings.model;
    document.title = (sel.value || "llama31") + " · llama31 chat";
  }

  $("model").addEventListener("change", () => {
    settings.model = $("model").value;
    store(KEYS.settings, settings);
    document.title = settings.model + " · llama31 chat";
  });

  // ---- Rendering ----

  function renderList() {
    const nav = $("conversations");
    const sorted = [...conversations].sort((a, b) => (b.updated || 0) - (a.updated || 0));
    nav.replaceChildren(
      ...sorted.map((c) => {
        const item = document.createElement("div");
        item.className = "conv" + (c.id === currentId ? " active" : "");
        item.dataset.id = c.id;
        const open = document.createElement("button");
        open.type = "button";
        open.className = "conv-title";
        open.textContent = c.title || "New chat";
        open.title = c.title || "";
        const del = document.createElement("button");
        del.type = "button";
        del.className = "conv-delete";
        del.setAttribute("aria-label", "Delete conversation");
        del.title = "Delete";
        del.textContent = "×";
        item.append(open, del);
        return item;
      })
    );
  }

  function formatStats(s) {
    if (!s) return "";
    const parts = [];
    if (s.stopped) parts.push("Stopped");
    if (s.prompt_tokens != null) parts.push(s.prompt_tokens + " prompt tokens");
    if (s.completion_tokens != null)
      parts.push((s.estimated ? "~" : "") + s.completion_tokens + " completion tokens");
    if (s.tps != null) parts.push(s.tps.toFixed(1) + " tok/s");
    if (s.ttft != null) parts.push("first token " + s.ttft.toFixed(2) + " s");
    return parts.join(" · ");
  }

  function renderToolCalls(calls, box) {
    box.replaceChildren(
      ...(calls || []).map((tc) => {
        const b = document.createElement("div");
        b.className = "tool-call";
        const head = document.createElement("div");
        head.className = "tool-head";
        const label = document.createElement("span");
        label.className = "tool-label";
        label.textContent = "Tool call";
        const name = document.createElement("code");
        name.className = "tool-name";
        name.textContent = (tc.function && tc.function.name) || "?";
        head.append(label, name);
        const pre = document.createElement("pre");
        const code = document.createElement("code");
        let args = (tc.function && tc.function.arguments) || "";
        try {
          args = JSON.stringify(JSON.parse(args), null, 2);
        } catch (e) {
          // Arguments still streaming or not JSON: shown as they are.
        }
        window.Highlight.highlightInto(code, args, "json");
        pre.appendChild(code);
        b.append(head, pre);
        return b;
      })
    );
    box.hidden = !calls || calls.length === 0;
  }

  // Fills a message element from its message; `streaming` while the reply is arriving.
  function fill(el, m, streaming) {
    const content = el.querySelector(".content");
    if (m.role === "assistant") window.Markdown.render(m.content || "", content);
    else content.textContent = m.content || "";
    renderToolCalls(m.tool_calls, el.querySelector(".tool-calls"));
    const err = el.querySelector(".msg-error");
    err.textContent = m.error || "";
    err.hidden = !m.error;
    el.querySelector(".meta").textContent = formatStats(m.stats);
    el.dataset.state = streaming
      ? "streaming"
      : m.error
        ? "error"
        : m.stats && m.stats.stopped
          ? "stopped"
          : "done";
  }

  function messageEl(m) {
    const el = document.createElement("article");
    el.className = "msg " + m.role;
    el.dataset.role = m.role;
    const role = document.createElement("div");
    role.className = "role";
    role.textContent =
      m.role === "user" ? "You" : m.role === "tool" ? "Tool result" : "Assistant";
    const content = document.createElement("div");
    content.className = "content" + (m.role === "assistant" ? " md" : " plain");
    const tools = document.createElement("div");
    tools.className = "tool-calls";
    const err = document.createElement("div");
    err.className = "msg-error error";
    const meta = document.createElement("div");
    meta.className = "meta";
    el.append(role, content, tools, err, meta);
    fill(el, m);
    return el;
  }

  function nearBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function scrollToBottom() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  function renderMessages() {
    const box = $("messages");
    const conv = current();
    const nodes = (conv ? conv.messages : []).map(messageEl);
    if (live && live.conv === conv) nodes.push(live.el);
    box.replaceChildren($("empty"), ...nodes);
    $("empty").hidden = nodes.length > 0;
    scrollToBottom();
    updateComposer();
  }

  // The last reply asked for tools: the next message is their result.
  function pendingToolCall(conv) {
    const last = conv && conv.messages[conv.messages.length - 1];
    return last && last.role === "assistant" && last.tool_calls && last.tool_calls.length
      ? last.tool_calls[0]
      : null;
  }

  function updateComposer() {
    const busy = !!live;
    $("send").hidden = busy;
    $("stop").hidden = !busy;
    const call = pendingToolCall(current());
    $("tool-result").hidden = !call;
    if (call) {
      const name = (call.function && call.function.name) || "the tool call";
      $("tool-result-name").textContent = name;
    }
    $("input").placeholder =
      call && $("as-tool").checked
        ? "Result of " + $("tool-result-name").textContent + " (sent as a tool message)"
        : "Send a message (Enter to send, Shift+Enter for a new line)";
  }

  // ---- Chat ----

  function number(v, parse) {
    if (v === "" || v == null) return undefined;
    const n = parse(v);
    return Number.isFinite(n) ? n : undefined;
  }

  function requestBody(conv) {
    const messages = [];
    if (settings.system.trim()) messages.push({ role: "system", content: settings.system });
    for (const m of conv.messages) {
      if (m.role === "assistant") {
        if (m.error && !m.content && !(m.tool_calls && m.tool_calls.length)) continue;
        const o = { role: "assistant", content: m.content || "" };
        if (m.tool_calls && m.tool_calls.length) {
          o.tool_calls = m.tool_calls.map((tc) => ({
            id: tc.id,
            type: "function",
            function: { name: tc.function.name, arguments: tc.function.arguments || "{}" },
          }));
        }
        messages.push(o);
      } else if (m.role === "tool") {
        messages.push({ role: "tool", tool_call_id: m.tool_call_id, content: m.content });
      } else {
        messages.push({ role: "user", content: m.content });
      }
    }
    const body = {
      messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    if ($("model").value) body.model = $("model").value;
    const fields = {
      temperature: number(settings.temperature, parseFloat),
      top_p: number(settings.top_p, parseFloat),
      max_tokens: number(settings.max_tokens, (v) => parseInt(v, 10)),
      seed: number(settings.seed, (v) => parseInt(v, 10)),
    };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) body[k] = v;
    if (settings.tools.trim()) {
      try {
        body.tools = JSON.parse(settings.tools);
        if (settings.tool_choice) body.tool_choice = settings.tool_choice;
      } catch (e) {
        // Checked when saved; a broken value is left out.
      }
    }
    return body;
  }

  // Reads an SSE body, calling `onEvent` with each parsed `data:` JSON.
  async function readEvents(resp, onEvent) {
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = event
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trimStart())
          .join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }

  function mergeToolCalls(msg, deltas) {
    msg.tool_calls = msg.tool_calls || [];
    for (const d of deltas) {
      const k = typeof d.index === "number" ? d.index : msg.tool_calls.length;
      const tc = msg.tool_calls[k] || (msg.tool_calls[k] = { id: "", type: "function", function: { name: "", arguments: "" } });
      if (d.id) tc.id = d.id;
      if (d.function) {
        if (d.function.name) tc.function.name += d.function.name;
        if (d.function.arguments) tc.function.arguments += d.function.arguments;
      }
    }
  }

  async function generate(conv) {
    const msg = { role: "assistant", content: "" };
    const el = messageEl(msg);
    fill(el, msg, true);
    el.classList.add("streaming");
    const controller = new AbortController();
    live = { controller, conv, msg, el };
    renderMessages();
    let frame = 0;
    const paint = () => {
      frame = 0;
      const follow = nearBottom();
      fill(el, msg, true);
      if (follow) scrollToBottom();
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(paint);
    };
    const t0 = performance.now();
    let tFirst = null;
    let deltas = 0;
    let usage = null;
    let retry = false;
    try {
      const resp = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: authHeaders(),
        body: JSON.stringify(requestBody(conv)),
        signal: controller.signal,
      });
      if (resp.status === 401) {
        retry = true;
      } else if (!resp.ok) {
        throw new Error(await errorMessage(resp));
      } else {
        await readEvents(resp, (chunk) => {
          if (chunk.error) throw new Error(chunk.error.message || "The server reported an error.");
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices || []) {
            const d = choice.delta || {};
            const got = (typeof d.content === "string" && d.content) || d.tool_calls;
            if (!got) continue;
            if (tFirst == null) tFirst = performance.now();
            deltas++;
            if (typeof d.content === "string") msg.content += d.content;
            if (Array.isArray(d.tool_calls)) mergeToolCalls(msg, d.tool_calls);
            schedule();
          }
        });
      }
    } catch (e) {
      if (e.name === "AbortError") msg.stopped = true;
      else msg.error = e.message || String(e);
    }
    if (frame) cancelAnimationFrame(frame);
    const tEnd = performance.now();
    live = null;
    if (retry) {
      renderMessages();
      await askForKey();
      return generate(conv);
    }
    const n = usage ? usage.completion_tokens : deltas;
    const stats = {};
    if (usage) stats.prompt_tokens = usage.prompt_tokens;
    if (usage || deltas) stats.completion_tokens = n;
    if (!usage) stats.estimated = true;
    if (tFirst != null) {
      stats.ttft = (tFirst - t0) / 1000;
      const secs = (tEnd - tFirst) / 1000;
      if (n > 1 && secs > 0) stats.tps = (n - 1) / secs;
    }
    if (msg.stopped) stats.stopped = true;
    delete msg.stopped;
    if (Object.keys(stats).length && !(msg.error && !deltas)) msg.stats = stats;
    if (msg.tool_calls && !msg.tool_calls.length) delete msg.tool_calls;
    conv.messages.push(msg);
    conv.updated = Date.now();
    saveConversations();
    renderList();
    if (conv === current()) renderMessages();
    else updateComposer();
  }

  function send() {
    if (live) return;
    const input = $("input");
    const text = input.value;
    if (!text.trim()) return;
    let conv = current();
    if (!conv) {
      conv = { id: newId(), title: titleFrom(text), created: Date.now(), messages: [] };
      conversations.push(conv);
      currentId = conv.id;
    }
    const call = $("as-tool").checked ? pendingToolCall(conv) : null;
    if (call) conv.messages.push({ role: "tool", tool_call_id: call.id, content: text });
    else conv.messages.push({ role: "user", content: text });
    if (!conv.title || conv.title === "New chat") conv.title = titleFrom(text);
    conv.updated = Date.now();
    input.value = "";
    autosize();
    saveConversations();
    renderList();
    generate(conv);
  }

  function switchTo(id) {
    currentId = id;
    store(KEYS.current, currentId);
    renderList();
    renderMessages();
  }

  function remove(id) {
    if (live && live.conv.id === id) live.controller.abort();
    conversations = conversations.filter((c) => c.id !== id);
    if (currentId === id) currentId = null;
    saveConversations();
    renderList();
    renderMessages();
  }

  // ---- Events ----

  function autosize() {
    const t = $("input");
    t.style.height = "auto";
    t.style.height = Math.min(t.scrollHeight + 2, 240) + "px";
    t.style.overflowY = t.scrollHeight > 240 ? "auto" : "hidden";
  }

  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send();
  });
  $("input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  $("input").addEventListener("input", autosize);
  $("as-tool").addEventListener("change", updateComposer);
  $("stop").addEventListener("click", () => {
    if (live) live.controller.abort();
  });
  $("new-chat").addEventListener("click", () => {
    currentId = null;
    store(KEYS.current, null);
    renderList();
    renderMessages();
    $("input").focus();
  });
  $("conversations").addEventListener("click", (ev) => {
    const item = ev.target.closest(".conv");
    if (!item) return;
    if (ev.target.closest(".conv-delete")) remove(item.dataset.id);
    else switchTo(item.dataset.id);
  });
  $("messages").addEventListener("click", (ev) => {
    const btn = ev.target.closest(".copy");
    if (!btn) return;
    const code = btn.closest(".codeblock").querySelector("code");
    const done = (label) => {
      btn.textContent = label;
      setTimeout(() => (btn.textContent = "Copy"), 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(code.textContent).then(
        () => done("Copied"),
        () => done("Copy failed")
      );
      return;
    }
    // Plain http from another host has no clipboard API: copy through a selection.
    const area = document.createElement("textarea");
    area.value = code.textContent;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    area.remove();
    done(ok ? "Copied" : "Copy failed");
  });

  // Settings.
  const FIELDS = {
    system: "set-system",
    temperature: "set-temperature",
    top_p: "set-top-p",
    max_tokens: "set-max-tokens",
    seed: "set-seed",
    tools: "set-tools",
    tool_choice: "set-tool-choice",
  };
  $("open-settings").addEventListener("click", () => {
    for (const [k, id] of Object.entries(FIELDS)) $(id).value = settings[k] || "";
    $("set-api-key").value = apiKey;
    $("settings-error").hidden = true;
    $("settings").showModal();
  });
  $("settings-cancel").addEventListener("click", () => $("settings").close());
  $("settings-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const tools = $("set-tools").value.trim();
    if (tools) {
      let v = null;
      try {
        v = JSON.parse(tools);
      } catch (e) {
        v = null;
      }
      if (!Array.isArray(v)) {
        const err = $("settings-error");
        err.textContent = "Tools must be a JSON list of tool objects.";
        err.hidden = false;
        return;
      }
    }
    for (const [k, id] of Object.entries(FIELDS)) settings[k] = $(id).value;
    store(KEYS.settings, settings);
    const key = $("set-api-key").value.trim();
    if (key !== apiKey) {
      apiKey = key;
      if (key) localStorage.setItem(KEYS.apiKey, key);
      else localStorage.removeItem(KEYS.apiKey);
      loadModels();
    }
    $("settings").close();
  });

  // Another tab changed the conversations.
  window.addEventListener("storage", (ev) => {
    if (ev.key !== KEYS.conversations || live) return;
    conversations = load(KEYS.conversations, []);
    if (!Array.isArray(conversations)) conversations = [];
    renderList();
    renderMessages();
  });

  if (currentId && !current()) currentId = null;
  renderList();
  renderMessages();
  loadModels();
  $("input").focus();
})();
