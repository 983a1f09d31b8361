/* Instance pages: ask before operations that carry data-confirm, and keep the list's
   batch selection (row checkboxes belong to #batch-form) across the table's refreshes. */
(function () {
  "use strict";
  if (window.opscenterInstances) return;
  window.opscenterInstances = true;

  // An operation form with data-confirm asks first; "Cancel" sends nothing.
  document.addEventListener(
    "submit",
    function (event) {
      const form = event.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // --- batch selection on the list ---------------------------------------------------
  const selected = new Set();

  function boxes() {
    return Array.from(document.querySelectorAll('input[name="ids"][form="batch-form"]'));
  }

  function update() {
    const form = document.getElementById("batch-form");
    if (!form) return;
    const all = boxes();
    const checked = all.filter((box) => box.checked).length;
    form.querySelector("[data-batch-count]").textContent = checked
      ? checked + " instance" + (checked === 1 ? "" : "s") + " selected"
      : "Select instances to act on several at once";
    form.querySelector("[data-batch-submit]").disabled = checked === 0;
    form.classList.toggle("has-selection", checked > 0);
    const header = document.querySelector("[data-batch-all]");
    if (header) {
      header.checked = checked > 0 && checked === all.length;
      header.indeterminate = checked > 0 && checked < all.length;
    }
  }

  function restore() {
    // A refreshed table comes without ticks: put back the ones the reader made.
    boxes().forEach((box) => {
      box.checked = selected.has(box.value);
    });
    update();
  }

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target.matches('input[name="ids"][form="batch-form"]')) {
      if (target.checked) selected.add(target.value);
      else selected.delete(target.value);
      update();
    } else if (target.matches("[data-batch-all]")) {
      boxes().forEach((box) => {
        box.checked = target.checked;
        if (target.checked) selected.add(box.value);
        else selected.delete(box.value);
      });
      update();
    }
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id !== "batch-form") return;
    // Come back to the list as it is now (filters changed since the page loaded).
    form.querySelector('input[name="next"]').value = window.location.pathname + window.location.search;
  });

  document.addEventListener("htmx:afterSettle", restore);
  document.addEventListener("DOMContentLoaded", restore);
  // The back button may bring the page with ticks the browser kept.
  window.addEventListener("pageshow", function () {
    boxes().forEach((box) => {
      if (box.checked) selected.add(box.value);
    });
    update();
  });
})();
