// The live job log. Paired with pipewright-logview: the server renders the log so far into
// #job-log with to_html(), and this script polls for the rest.
//
//   <div id="job-log" data-trace-url="/…/jobs/7/trace.json" data-cursor="1~…" data-complete="false">
//     …to_html() output…
//   </div>
//
// The trace URL, given ?cursor=<encoded cursor>, answers
//   {"items": [...], "cursor": "...", "complete": false, "status": "running"}
// Items are appended where they belong: lines go into the innermost open section. The open
// sections of the server-rendered markup are the chain of last-child <details class="log-section">
// elements without data-ended. Item `html` fields are safe HTML produced (and escaped) by
// pipewright-logview; everything else is set with textContent. Elements marked
// [data-job-status] get the job's status as text, as data-job-status and as a ci-<status>
// class. The page follows the log while the reader is at the bottom, and polling stops once the
// log is complete.
(function () {
  'use strict';

  const POLL_MS = 1500;
  const MAX_BACKOFF_MS = 30000;

  const log = document.getElementById('job-log');
  if (!log) return;

  // Innermost last: the sections that still receive items.
  const open = [];
  for (let parent = log; ;) {
    const last = parent.lastElementChild;
    if (!last || !last.matches('details.log-section:not([data-ended])')) break;
    open.push(last);
    parent = last;
  }

  function target() {
    return open.length ? open[open.length - 1] : log;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The same markup as html.rs's line_body().
  function fillLine(line, number, timestamp, html) {
    line.id = 'L' + number;
    const link = el('a', 'log-line-number', String(number));
    link.href = '#L' + number;
    line.appendChild(link);
    if (timestamp) line.appendChild(el('span', 'log-ts', timestamp));
    const text = el('span', 'log-text');
    text.innerHTML = html; // escaped by pipewright-logview
    line.appendChild(text);
  }

  function append(item) {
    if (item.type === 'line') {
      const line = el('div', 'log-line');
      fillLine(line, item.number, item.timestamp, item.html);
      target().appendChild(line);
    } else if (item.type === 'section_start') {
      const section = el('details', 'log-section');
      section.dataset.section = item.name;
      section.open = !item.collapsed;
      const summary = el('summary', 'log-line log-section-header');
      fillLine(summary, item.number, null, item.header_html);
      section.appendChild(summary);
      target().appendChild(section);
      open.push(section);
    } else if (item.type === 'section_end') {
      // Ends the named section and any still open inside it (the renderer sends those first).
      let depth = open.length - 1;
      while (depth >= 0 && open[depth].dataset.section !== item.name) depth--;
      if (depth < 0) return;
      const section = open[depth];
      open.splice(depth).forEach(function (s) { s.dataset.ended = ''; });
      if (item.duration) {
        section.querySelector('summary').appendChild(
          el('span', 'log-section-duration', item.duration));
      }
    }
  }

  // Follow the log if the reader is at (or within a line of) the bottom.
  function scroller() {
    const style = getComputedStyle(log);
    const scrolls = /(auto|scroll)/.test(style.overflowY) && log.scrollHeight > log.clientHeight;
    return scrolls ? log : (document.scrollingElement || document.documentElement);
  }

  function atBottom(s) {
    return s.scrollHeight - s.scrollTop - s.clientHeight < 24;
  }

  // The page styles statuses with `ci-<status>` classes; the label is what people read
  // ("passed" for success), falling back to the status name.
  function showStatus(status, label) {
    if (typeof status !== 'string' || !/^[a-z_]+$/.test(status)) return;
    const text = typeof label === 'string' && label.length <= 40 ? label : status;
    document.querySelectorAll('[data-job-status]').forEach(function (node) {
      Array.from(node.classList)
        .filter(function (c) { return c.indexOf('ci-') === 0 && c !== 'ci-status'; })
        .forEach(function (c) { node.classList.remove(c); });
      node.classList.add('ci-' + status);
      node.dataset.jobStatus = status;
      node.textContent = text;
    });
  }

  let cursor = log.dataset.cursor || '';
  let delay = POLL_MS;

  async function poll() {
    const url = log.dataset.traceUrl;
    const sep = url.indexOf('?') === -1 ? '?' : '&';
    let response;
    try {
      response = await fetch(url + sep + 'cursor=' + encodeURIComponent(cursor), {
        headers: { Accept: 'application/json' },
        credentials: 'same-origin',
      });
    } catch (e) {
      return retry();
    }
    if (response.status >= 400 && response.status < 500) return; // gone or forbidden: stop
    if (!response.ok) return retry();
    let data;
    try {
      data = await response.json();
    } catch (e) {
      return retry();
    }
    const s = scroller();
    const follow = atBottom(s);
    (data.items || []).forEach(append);
    if (typeof data.cursor === 'string') cursor = data.cursor;
    log.dataset.cursor = cursor;
    showStatus(data.status, data.status_label);
    if (follow && data.items && data.items.length) s.scrollTop = s.scrollHeight;
    delay = POLL_MS;
    if (data.complete) {
      log.dataset.complete = 'true';
      // Controls that only make sense while the job runs (Cancel) go away with it.
      document.querySelectorAll('[data-while-running]').forEach(function (node) {
        node.hidden = true;
      });
      return;
    }
    setTimeout(poll, delay);
  }

  function retry() {
    delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    setTimeout(poll, delay);
  }

  // A link to a line inside a collapsed section opens the sections around it.
  function revealHash() {
    const id = decodeURIComponent(location.hash.slice(1));
    const line = id && document.getElementById(id);
    if (!line || !log.contains(line)) return;
    for (let d = line.closest('details'); d; d = d.parentElement.closest('details')) d.open = true;
    line.scrollIntoView({ block: 'center' });
  }
  window.addEventListener('hashchange', revealHash);
  revealHash();

  if (log.dataset.complete !== 'true' && log.dataset.traceUrl) setTimeout(poll, POLL_MS);
})();
