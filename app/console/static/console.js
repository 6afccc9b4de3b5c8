// The console's only script, and an enhancement: every page works without it (plain forms and links), and with it
// gains live ingestion progress, drag-and-drop upload, copy buttons and streamed answers. Each feature starts from
// the data-* attribute that marks its element. No library, no build step.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// Fetch a console URL as this page's script: same origin, the CSRF token for writes, and an error message that
// says what failed.
async function request(url, options = {}) {
  const headers = { "X-CSRF-Token": csrfToken(), ...(options.headers ?? {}) };
  const response = await fetch(url, { credentials: "same-origin", ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error.message;
    } catch (_) { /* not a JSON error body */ }
    throw new Error(message);
  }
  return response;
}

function item(text, problem) {
  const li = document.createElement("li");
  li.textContent = text;
  if (problem) li.className = "problem";
  return li;
}

// Upload: files dropped on the form (or chosen) go up with fetch; each file's outcome is listed at once.
function upload(form) {
  const results = document.getElementById("upload-results");
  const input = form.querySelector('input[type="file"]');
  async function send(files) {
    const body = new FormData();
    for (const file of files) body.append("files", file, file.name);
    results.replaceChildren(item(`Uploading ${files.length} file(s)…`));
    try {
      const response = await request(form.action, { method: "POST", body, headers: { Accept: "application/json" } });
      const outcome = await response.json();
      results.replaceChildren(...outcome.documents.map((d) => d.error
        ? item(`${d.file}: ${d.error.message}`, true)
        : item(`${d.external_id}: ${d.action}, ${d.status}`)));
    } catch (error) {
      results.replaceChildren(item(`Upload failed: ${error.message}`, true));
    }
    input.value = "";
    live.refresh();
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.files.length) send(input.files);
  });
  form.addEventListener("dragover", (event) => {
    event.preventDefault();
    form.classList.add("dragging");
  });
  form.addEventListener("dragleave", () => form.classList.remove("dragging"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("dragging");
    if (event.dataTransfer.files.length) send(event.dataTransfer.files);
  });
}

// Live progress: the server's `counts` events update the counts and the bar, and the documents table is fetched
// again whenever they change.
const live = {
  table: null,
  async refresh() {
    if (!this.table) return;
    try {
      const response = await request(this.table.dataset.live, { headers: { Accept: "text/html" } });
      if (response.redirected) {  // sent to sign in (the key expired or was revoked): go there, not into the table
        window.location.assign(response.url);
        return;
      }
      this.table.innerHTML = await response.text();
    } catch (_) { /* the next change tries again */ }
  },
};

function progress(section) {
  live.table = document.querySelector("[data-live]");
  const bar = section.querySelector("progress");
  const events = new EventSource(section.dataset.progress);
  events.addEventListener("counts", (event) => {
    const counts = JSON.parse(event.data);
    let changed = false;
    for (const [status, count] of Object.entries(counts)) {
      const span = section.querySelector(`[data-status="${status}"] .count`);
      if (span && span.textContent !== String(count)) {
        span.textContent = count;
        changed = true;
      }
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    bar.max = Math.max(total, 1);
    bar.value = counts.ready ?? 0;
    if (changed) live.refresh();  // the counts on the page are those the table was drawn with
  });
}

// Copy buttons: data-copy names the element whose text goes to the clipboard.
function copy(button) {
  button.addEventListener("click", async () => {
    const source = document.querySelector(button.dataset.copy);
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
}

// Answers: the question goes up with fetch, and the answer is read from the event stream as it comes: the sources
// first, then the text piece by piece; when it is done, each citation [n] links to its source.
function cited(text, count) {
  const nodes = [];
  let last = 0;
  for (const found of text.matchAll(/\[(\d+)\]/g)) {
    const n = Number(found[1]);
    if (n < 1 || n > count) continue;
    nodes.push(document.createTextNode(text.slice(last, found.index)));
    const link = document.createElement("a");
    link.href = `#source-${n}`;
    link.textContent = found[0];
    nodes.push(link);
    last = found.index + found[0].length;
  }
  nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

function sourceItem(source, documentUrl) {
  const li = document.createElement("li");
  li.id = `source-${source.n}`;
  li.value = source.n;
  const link = document.createElement("a");
  link.href = `${documentUrl}?id=${encodeURIComponent(source.external_id)}&at=${source.ordinal}#chunk-${source.ordinal}`;
  link.textContent = source.title || source.external_id;
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.textContent = ` ${source.external_id} #${source.ordinal}`;
  const text = document.createElement("p");
  text.textContent = source.text.length > 300 ? `${source.text.slice(0, 297)}...` : source.text;
  li.append(link, hint, text);
  return li;
}

async function* serverEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = block.match(/^event: (.*)$/m)?.[1];
      const data = block.match(/^data: (.*)$/m)?.[1];
      if (event && data) yield [event, JSON.parse(data)];
    }
  }
}

function answers(form) {
  const section = document.getElementById("answer");
  const status = document.getElementById("answer-status");
  const text = document.getElementById("answer-text");
  const list = document.getElementById("answer-sources");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    section.hidden = false;
    text.replaceChildren();
    list.replaceChildren();
    status.textContent = "Searching…";
    let count = 0;
    let answer = "";
    try {
      const response = await request(form.action, {
        method: "POST", body: new FormData(form), headers: { Accept: "text/event-stream" },
      });
      for await (const [name, data] of serverEvents(response)) {
        if (name === "sources") {
          count = data.sources.length;
          list.replaceChildren(...data.sources.map((s) => sourceItem(s, form.dataset.document)));
          status.textContent = `${data.model} is answering from ${count} sources…`;
        } else if (name === "delta") {
          answer += data.text;
          text.textContent = answer;
        } else if (name === "done") {
          if (data.answer === null) {
            text.textContent = "No source was relevant enough: no model was asked.";
          } else {
            text.replaceChildren(...cited(data.answer, count));
          }
          for (const n of data.citations) list.querySelector(`#source-${n}`)?.classList.add("cited");
          status.textContent = `${data.model} · ${data.took_ms} ms · cites ${data.citations.map((n) => `[${n}]`).join(" ") || "nothing"}`;
        } else if (name === "error") {
          status.textContent = `The answer failed: ${data.error.message}`;
        }
      }
    } catch (error) {
      status.textContent = `The answer failed: ${error.message}`;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-answer]").forEach(answers);
  document.querySelectorAll("form[data-upload]").forEach(upload);
  document.querySelectorAll("[data-progress]").forEach(progress);
  document.querySelectorAll("button[data-copy]").forEach(copy);
});
