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
      var scope = document.getElementById(reveal.getAttribute('data-reveal-toggle'));
      if (!scope) { return; }
      var showing = reveal.getAttribute('aria-pressed') === 'true';
      scope.querySelectorAll('.revealed-value').forEach(function (el) { el.hidden = showing; });
      scope.querySelectorAll('.masked-value').forEach(function (el) {
        // Values the viewer may not see have no revealed sibling: they stay masked.
        if (el.nextElementSibling && el.nextElementSibling.classList.contains('revealed-value')) {
          el.hidden = !showing;
        }
      });
      reveal.setAttribute('aria-pressed', showing ? 'false' : 'true');
      reveal.textContent = showing ? 'Reveal values' : 'Hide values';
    }
  });

  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
