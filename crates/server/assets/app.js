// Pipewright's few behaviours: copy buttons, "Reveal values" toggles and confirmations.
// Everything works without JavaScript except copying; no inline scripts (the pages' CSP).
(function () {
  'use strict';

  function copy(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = 'Copied';
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else {
      fallback(text);
      done();
    }
  }

  function fallback(text) {
    var area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'absolute';
    area.style.left = '-9999px';
    document.body.appendChild(area);
    area.select();
    try { document.execCommand('copy'); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(area);
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy-target], [data-copy-text]');
    if (button) {
      var text = button.getAttribute('data-copy-text');
      if (text === null) {
        var target = document.getElementById(button.getAttribute('data-copy-target'));
        text = target ? (target.value !== undefined && target.tagName === 'INPUT' ? target.value : target.textContent) : '';
      }
      copy(text, button);
      return;
    }
    var reveal = event.target.closest('[data-reveal-toggle]');
    if (reveal) {
      var id = reveal.getAttribute('data-reveal-toggle');
      var show = reveal.getAttribute('aria-pressed') !== 'true';
      revealed[id] = show;
      setRevealed(id, show);
    }
  });

  // Which "Reveal values" toggles are on, so a live region's refresh keeps them on.
  var revealed = {};

  function setRevealed(id, show) {
    var scope = document.getElementById(id);
    if (!scope) { return; }
    scope.querySelectorAll('.revealed-value').forEach(function (el) { el.hidden = !show; });
    scope.querySelectorAll('.masked-value').forEach(function (el) {
      // Values the viewer may not see have no revealed sibling: they stay masked.
      if (el.nextElementSibling && el.nextElementSibling.classList.contains('revealed-value')) {
        el.hidden = show;
      }
    });
    document.querySelectorAll('[data-reveal-toggle="' + id + '"]').forEach(function (toggle) {
      toggle.setAttribute('aria-pressed', show ? 'true' : 'false');
      toggle.textContent = show ? 'Hide values' : 'Reveal values';
    });
  }

  // The new-project and new-group forms: the path follows the name (as GitLab's does) until
  // edited by hand.
  document.addEventListener('input', function (event) {
    var source = event.target;
    var targetId = source.getAttribute && source.getAttribute('data-path-source');
    if (targetId) {
      var path = document.getElementById(targetId);
      if (path && !path.dataset.edited) {
        path.value = source.value.trim().toLowerCase()
          .replace(/[^a-z0-9_.-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '');
      }
    } else if (source.id === 'project_path' || source.id === 'group_path') {
      source.dataset.edited = 'true';
    }
  });

  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Live regions: an element with an id and `data-live` is re-read from the server every few
  // seconds (while the tab is visible) and swapped in; the server drops `data-live` once
  // nothing more will change (a finished pipeline or job), which ends the polling.
  var LIVE_MS = 3000;
  function live(id) {
    function tick() {
      if (document.hidden) { setTimeout(tick, LIVE_MS); return; }
      fetch(window.location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
        .then(function (response) {
          if (!response.ok) { throw new Error('status ' + response.status); }
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById(id);
          var current = document.getElementById(id);
          if (!fresh || !current) { return; }
          current.replaceWith(document.importNode(fresh, true));
          document.dispatchEvent(new CustomEvent('pipewright:refreshed'));
          Object.keys(revealed).forEach(function (key) {
            if (revealed[key]) { setRevealed(key, true); }
          });
          if (fresh.hasAttribute('data-live')) { setTimeout(tick, LIVE_MS); }
        })
        .catch(function () { setTimeout(tick, LIVE_MS * 4); });
    }
    setTimeout(tick, LIVE_MS);
  }
  document.querySelectorAll('[data-live][id]').forEach(function (el) { live(el.id); });

  // The pipeline graph's `needs` lines: a curve from each needed job to the job needing it,
  // drawn under the nodes (the "needs:" text under a node says the same without them).
  var SVG = 'http://www.w3.org/2000/svg';
  function drawNeeds() {
    document.querySelectorAll('.graph').forEach(function (graph) {
      var old = graph.querySelector('svg.needs-lines');
      if (old) { old.remove(); }
      var nodes = graph.querySelectorAll('[data-needs]');
      if (!nodes.length) { return; }
      var box = graph.getBoundingClientRect();
      var svg = document.createElementNS(SVG, 'svg');
      svg.setAttribute('class', 'needs-lines');
      svg.setAttribute('aria-hidden', 'true');
      svg.setAttribute('width', graph.scrollWidth);
      svg.setAttribute('height', graph.scrollHeight);
      nodes.forEach(function (node) {
        node.getAttribute('data-needs').trim().split(/\s+/).forEach(function (id) {
          var from = id && document.getElementById('job-node-' + id);
          if (!from) { return; }
          var a = from.getBoundingClientRect();
          var b = node.getBoundingClientRect();
          var x1 = a.right - box.left + graph.scrollLeft;
          var y1 = a.top + a.height / 2 - box.top + graph.scrollTop;
          var x2 = b.left - box.left + graph.scrollLeft;
          var y2 = b.top + b.height / 2 - box.top + graph.scrollTop;
          var dx = Math.max(16, Math.abs(x2 - x1) / 2);
          var path = document.createElementNS(SVG, 'path');
          path.setAttribute('d', 'M' + x1 + ' ' + y1 + ' C' + (x1 + dx) + ' ' + y1 + ' ' +
            (x2 - dx) + ' ' + y2 + ' ' + x2 + ' ' + y2);
          svg.appendChild(path);
        });
      });
      graph.insertBefore(svg, graph.firstChild);
    });
  }
  drawNeeds();
  window.addEventListener('resize', drawNeeds);
  document.addEventListener('pipewright:refreshed', drawNeeds);
})();
